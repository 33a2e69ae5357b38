//! The Lua scripts behind [`RedisLeaseStore`](super::RedisLeaseStore).
//!
//! Each runs atomically on the server, so "compare, then write" needs no
//! client-side locking. Times come from the server's `TIME` (seconds and
//! microseconds as strings), never from the client. Numbers in Redis's Lua
//! are doubles: every value handled here (microseconds or milliseconds since
//! 1970, epoch counters below 2^53) is an exact integer, and numbers are
//! written back with `string.format('%.0f', n)`, never `tostring` (which
//! would print `1.7e+15`).
//!
//! `redis.replicate_commands()` (called where present) makes Redis 3.2–4
//! replicate the effects of scripts that read `TIME`; Redis ≥ 5 does so
//! anyway and Redis 7 keeps the function as a no-op.

use std::sync::LazyLock;

use redis::Script;

/// `KEYS[1]` lease key, `KEYS[2]` epoch counter, `ARGV[1]` holder session,
/// `ARGV[2]` ttl in ms. Returns the lease value `"{epoch}|{session}"`, or nil
/// if another session holds the lease.
///
/// If the holder already holds it, the expiry is reset and the current value
/// returned (same epoch). Otherwise the new epoch is
/// `max(counter + 1, TIME in µs)`, stored back into the counter, and the
/// value is set with `PX ttl`.
const ACQUIRE: &str = r"
if redis.replicate_commands then redis.replicate_commands() end
local cur = redis.call('GET', KEYS[1])
if cur then
  local bar = string.find(cur, '|', 1, true)
  if not bar then
    return redis.error_reply('axactor: malformed lease value')
  end
  if string.sub(cur, bar + 1) ~= ARGV[1] then
    return false
  end
  redis.call('PEXPIRE', KEYS[1], ARGV[2])
  return cur
end
local t = redis.call('TIME')
local epoch = tonumber(t[1]) * 1000000 + tonumber(t[2])
local last = redis.call('GET', KEYS[2])
if last then
  local n = tonumber(last)
  if not n or n ~= math.floor(n) or n < 0 or n >= 9007199254740991 then
    return redis.error_reply('axactor: malformed epoch counter')
  end
  if n + 1 > epoch then
    epoch = n + 1
  end
end
epoch = string.format('%.0f', epoch)
redis.call('SET', KEYS[2], epoch)
local value = epoch .. '|' .. ARGV[1]
redis.call('SET', KEYS[1], value, 'PX', ARGV[2])
return value
";

/// `KEYS[1]` lease key, `ARGV[1]` expected value `"{epoch}|{session}"`,
/// `ARGV[2]` ttl in ms. Resets the expiry and returns 1 only if the value is
/// exactly the expected one; else 0.
const RENEW: &str = r"
if redis.call('GET', KEYS[1]) == ARGV[1] then
  redis.call('PEXPIRE', KEYS[1], ARGV[2])
  return 1
end
return 0
";

/// `KEYS[1]` lease key, `ARGV[1]` expected value. Deletes the lease key (never
/// the epoch counter) and returns 1 only if the value is exactly the expected
/// one; else 0.
const RELEASE: &str = r"
if redis.call('GET', KEYS[1]) == ARGV[1] then
  redis.call('DEL', KEYS[1])
  return 1
end
return 0
";

/// `KEYS[1]` members sorted set, `ARGV[1]` session, `ARGV[2]` ttl in ms.
/// Drops members whose expiry (the score, ms of server time) has passed and
/// sets this one's expiry to now + ttl.
const HEARTBEAT: &str = r"
if redis.replicate_commands then redis.replicate_commands() end
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', string.format('%.0f', now))
redis.call('ZADD', KEYS[1], string.format('%.0f', now + tonumber(ARGV[2])), ARGV[1])
return 1
";

/// `KEYS[1]` members sorted set. Drops expired members and returns the rest.
const MEMBERS: &str = r"
if redis.replicate_commands then redis.replicate_commands() end
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', string.format('%.0f', now))
return redis.call('ZRANGE', KEYS[1], 0, -1)
";

pub(super) static ACQUIRE_SCRIPT: LazyLock<Script> = LazyLock::new(|| Script::new(ACQUIRE));
pub(super) static RENEW_SCRIPT: LazyLock<Script> = LazyLock::new(|| Script::new(RENEW));
pub(super) static RELEASE_SCRIPT: LazyLock<Script> = LazyLock::new(|| Script::new(RELEASE));
pub(super) static HEARTBEAT_SCRIPT: LazyLock<Script> = LazyLock::new(|| Script::new(HEARTBEAT));
pub(super) static MEMBERS_SCRIPT: LazyLock<Script> = LazyLock::new(|| Script::new(MEMBERS));
