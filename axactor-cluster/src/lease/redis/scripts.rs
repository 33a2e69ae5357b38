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

/// The body shared by the acquire scripts: `KEYS[1]` lease key, `KEYS[2]`
/// epoch counter, `ARGV[1]` holder session, `ARGV[2]` ttl in ms. Leaves
/// the lease value in `value`, or nil if another session holds the lease.
///
/// If the holder already holds it, the expiry is reset and the current value
/// kept (same epoch). Otherwise the new epoch is
/// `max(counter + 1, TIME in µs)`, stored back into the counter, and the
/// value is set with `PX ttl`.
macro_rules! acquire_body {
    () => {
        r"
local value = nil
local cur = redis.call('GET', KEYS[1])
if cur then
  local bar = string.find(cur, '|', 1, true)
  if not bar then
    return redis.error_reply('axactor: malformed lease value')
  end
  if string.sub(cur, bar + 1) == ARGV[1] then
    redis.call('PEXPIRE', KEYS[1], ARGV[2])
    value = cur
  end
else
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
value = epoch .. '|' .. ARGV[1]
redis.call('SET', KEYS[1], value, 'PX', ARGV[2])
end
"
    };
}

/// [`acquire_body!`], returning the lease value `"{epoch}|{session}"`, or nil
/// if another session holds the lease.
const ACQUIRE: &str =
    concat!("if redis.replicate_commands then redis.replicate_commands() end\n", acquire_body!(), "return value\n");

/// Lua that sets `now_ms` (server time, ms) and defines
/// `touch(group_key, tag, ttl_ms)`: the tag's field of the group hash
/// becomes at least `now_ms + ttl_ms` (the expiry of its newest lease).
macro_rules! group_prelude {
    () => {
        r"
local t = redis.call('TIME')
local now_ms = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local function touch(group_key, tag, ttl)
  local until_ms = now_ms + tonumber(ttl)
  local had = tonumber(redis.call('HGET', group_key, tag) or '0') or 0
  if until_ms > had then
    redis.call('HSET', group_key, tag, string.format('%.0f', until_ms))
  end
end
"
    };
}

/// The acquire in a group: `KEYS[1]` lease key, `KEYS[2]` epoch counter,
/// `KEYS[3]` group hash (tag → expiry of its newest lease, ms of server
/// time), `ARGV[1]` holder session, `ARGV[2]` ttl in ms, `ARGV[3]` tag.
/// Returns `{'conflict', tag}` while a field of another tag has not expired
/// (expired fields are deleted on the way), `{'held', ''}` if another
/// session holds the lease, else `{'granted', value}` after moving this
/// tag's field to at least now + ttl.
const ACQUIRE_GROUPED: &str = concat!(
    "if redis.replicate_commands then redis.replicate_commands() end\n",
    group_prelude!(),
    r"
local fields = redis.call('HGETALL', KEYS[3])
for i = 1, #fields, 2 do
  local exp = tonumber(fields[i + 1])
  if not exp or exp <= now_ms then
    redis.call('HDEL', KEYS[3], fields[i])
  elseif fields[i] ~= ARGV[3] then
    return {'conflict', fields[i]}
  end
end
",
    acquire_body!(),
    r"
if not value then
  return {'held', ''}
end
touch(KEYS[3], ARGV[3], ARGV[2])
return {'granted', value}
"
);

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

/// The renewal in a group: `KEYS[1]` lease key, `KEYS[2]` group hash,
/// `ARGV[1]` expected value, `ARGV[2]` ttl in ms, `ARGV[3]` tag. As
/// [`RENEW`], and a renewed lease moves its tag's field to at least
/// now + ttl.
const RENEW_GROUPED: &str = concat!(
    "if redis.replicate_commands then redis.replicate_commands() end\n",
    group_prelude!(),
    r"
if redis.call('GET', KEYS[1]) == ARGV[1] then
  redis.call('PEXPIRE', KEYS[1], ARGV[2])
  touch(KEYS[2], ARGV[3], ARGV[2])
  return 1
end
return 0
"
);

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
pub(super) static ACQUIRE_GROUPED_SCRIPT: LazyLock<Script> = LazyLock::new(|| Script::new(ACQUIRE_GROUPED));
pub(super) static RENEW_GROUPED_SCRIPT: LazyLock<Script> = LazyLock::new(|| Script::new(RENEW_GROUPED));
pub(super) static RELEASE_SCRIPT: LazyLock<Script> = LazyLock::new(|| Script::new(RELEASE));
pub(super) static HEARTBEAT_SCRIPT: LazyLock<Script> = LazyLock::new(|| Script::new(HEARTBEAT));
pub(super) static MEMBERS_SCRIPT: LazyLock<Script> = LazyLock::new(|| Script::new(MEMBERS));
