//! [`RedisLeaseStore`]: leases and membership in one Redis primary
//! (feature `redis-lease`).
//!
//! # Data layout
//!
//! All keys of one store sit under its prefix `P`:
//!
//! | key | type | content |
//! |---|---|---|
//! | `P:lease:{name}` | string, `PX ttl` | `"{epoch}\|{session}"`, e.g. `1718000000123456\|a#00000000deadbeef.0` |
//! | `P:epoch:{name}` | string, no expiry | the last epoch granted for `name` (decimal) |
//! | `P:group:{group}` | hash | a lease group's tags, each mapped to the expiry (ms of server time) of its newest lease |
//! | `P:members` | sorted set | sessions, scored by their expiry in ms of server time |
//!
//! Sessions are written in their `Display` form `{node}#{boot:016x}.{counter}`
//! and parsed back strictly; anything else read from the server is a
//! [`LeaseStoreError::Protocol`] error.
//!
//! # Scripts
//!
//! Every write is one Lua script, so each comparison and the write it guards
//! are atomic on the server:
//!
//! - **acquire**: if the lease key holds this session, reset its expiry and
//!   return the value (same epoch). If it holds another session, return nil.
//!   If it is absent (free, released or expired), the new epoch is
//!   `max(counter + 1, server TIME in µs)`; it is written to the counter and
//!   the lease key is set to `"{epoch}|{session}"` with `PX ttl`.
//! - **renew** / **release**: compare the lease key with exactly
//!   `"{epoch}|{session}"`, then `PEXPIRE` / `DEL` it. The counter is never
//!   deleted.
//! - **acquire in a group** / **renew in a group**: as above, after
//!   checking the group hash: a field of another tag whose expiry has not
//!   passed refuses the acquire (`conflict`); a grant or renewal moves its
//!   own tag's field to at least now + ttl, so the field always outlives the
//!   tag's live leases. Expired fields are deleted as they are met.
//! - **heartbeat** / **members**: read `TIME`, drop members whose score is
//!   not after now, then `ZADD` (score now + ttl) or return the rest.
//!
//! Expiry of leases and members is judged by the Redis server's clock only
//! (its wall clock: Redis stores expiries as absolute times).
//!
//! # Why epochs only grow
//!
//! The counter survives release and expiry, so each grant exceeds the last
//! one it recorded. The `TIME` floor covers the counter being lost too (a
//! Redis restart without persistence, a wiped key space): a new grant is at
//! least the server's current time in µs, which is after every earlier grant
//! as long as the server clock did not step back past it. Lua numbers are
//! doubles; µs since 1970 stay below 2^53, so every epoch is exact.
//!
//! # Deployment check
//!
//! At connect, the store reads the server's `maxmemory-policy` and refuses
//! any policy but `noeviction` with [`LeaseStoreError::EvictingPolicy`]
//! (`volatile-*` included: every lease key has an expiry), unless
//! [`RedisStoreOptions::allow_evicting_policy`] is set. A server that does
//! not allow `CONFIG GET` (renamed, ACL, managed services) is accepted with
//! a warning. Eviction is not the only way to lose a key: `docs/guarantees.md`
//! lists what the deployment must provide (persistence, no failover to an
//! async replica without fencing).
//!
//! # Timeouts and failures
//!
//! Every operation, including [`RedisLeaseStore::connect`], is bounded by
//! [`OP_TIMEOUT`] (2 s): the connection manager's connection and response
//! timeouts, and an outer deadline over the whole call (reconnect, script
//! load, reply). A timeout or connection failure is
//! [`LeaseStoreError::Unavailable`]; a broken connection is re-established
//! by the manager in the background for the next call. A reply this client
//! does not understand (wrong type, malformed value, script error) is
//! [`LeaseStoreError::Protocol`]. Nothing from the server is unwrapped.
//!
//! # Cancel safety
//!
//! A call that times out or is dropped may or may not have taken effect on
//! the server. Each operation is idempotent for the same arguments (an
//! acquire by the holder returns the lease it already holds), so the caller
//! retries or treats the lease as possibly lost.

use std::fmt;
use std::time::Duration;

use redis::Script;
use redis::aio::{ConnectionManager, ConnectionManagerConfig};

use super::{Epoch, GroupGrant, Lease, LeaseGroup, LeaseStore, LeaseStoreError};
use crate::future::BoxFuture;
use crate::id::SessionId;

mod bound;
mod codec;
mod policy;
mod scripts;

use bound::{OP_TIMEOUT, bounded};
use codec::Keys;

/// Reconnection attempts the manager makes per failure before a call reports
/// the error; the next call starts a new attempt.
const RECONNECT_RETRIES: usize = 2;

/// Upper bound on the manager's backoff between reconnection attempts.
const RECONNECT_MAX_DELAY: Duration = Duration::from_millis(500);

/// Options of [`RedisLeaseStore::connect_with`]. `Default` is safe.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RedisStoreOptions {
    /// Connect even when the server's `maxmemory-policy` may evict keys
    /// (anything but `noeviction`). Unsafe: an evicted lease key lets
    /// another session acquire a lease whose holder still runs. For servers
    /// known never to reach `maxmemory`, and tests. Default `false`.
    pub allow_evicting_policy: bool,
}

/// A [`LeaseStore`] in a single Redis primary, shared by all nodes of a
/// cluster (each one connects with the same URL and prefix).
///
/// Each lease is a key `{prefix}:lease:{name}` holding `"{epoch}|{session}"`
/// with the lease's ttl; a separate, never-deleted counter
/// `{prefix}:epoch:{name}` keeps epochs growing across release and expiry,
/// and every new epoch is at least the server's time in microseconds, so
/// they keep growing even if Redis loses its data (restart without
/// persistence). Members live in the sorted set `{prefix}:members`, scored by
/// expiry. Acquire, renew, release and the membership updates are atomic Lua
/// scripts; expiry is judged by the Redis server's clock. Every operation is
/// bounded by a 2 s timeout and fails with [`LeaseStoreError::Unavailable`]
/// (unreachable, timed out, not accepting writes) or
/// [`LeaseStoreError::Protocol`] (a reply this client does not understand).
/// A call that timed out may still have taken effect; each operation is
/// idempotent, so retrying is safe. `docs/guarantees.md` lists what the store
/// assumes of the deployment (one primary, clocks).
///
/// Cheap to clone: clones share one multiplexed connection, which the
/// underlying `redis` connection manager re-establishes after failures. Must
/// be used inside a Tokio runtime with I/O and time enabled.
#[derive(Clone)]
pub struct RedisLeaseStore {
    conn: ConnectionManager,
    keys: Keys,
}

impl fmt::Debug for RedisLeaseStore {
    // The URL may carry a password, so only the prefix is shown.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RedisLeaseStore").field("prefix", &self.keys.prefix()).finish_non_exhaustive()
    }
}

impl RedisLeaseStore {
    /// Connects to the Redis server at `url` (e.g. `redis://127.0.0.1:6379/`,
    /// `redis://:password@host/2`, `unix:///run/redis.sock`) and keeps every
    /// key under `prefix` (e.g. `axactor:prod`). Nodes of one cluster must
    /// use the same URL and prefix; different clusters may share a server
    /// with different prefixes.
    ///
    /// Refuses a server whose `maxmemory-policy` may evict keys (see
    /// [`RedisLeaseStore::connect_with`] to opt out); a server that does not
    /// allow `CONFIG GET` is accepted with a warning.
    ///
    /// # Errors
    /// [`LeaseStoreError::Invalid`] for an unparsable URL or an empty prefix;
    /// [`LeaseStoreError::Unavailable`] if no connection is established
    /// within 2 s; [`LeaseStoreError::EvictingPolicy`] if the server may
    /// evict keys.
    ///
    /// # Cancel safety
    /// Cancel safe: dropping the future drops the half-built connection.
    ///
    /// # Panics
    /// Outside a Tokio runtime with I/O and time enabled.
    pub async fn connect(url: &str, prefix: &str) -> Result<RedisLeaseStore, LeaseStoreError> {
        RedisLeaseStore::connect_with(url, prefix, RedisStoreOptions::default()).await
    }

    /// [`RedisLeaseStore::connect`] with `options`.
    ///
    /// # Errors
    /// As [`RedisLeaseStore::connect`]; no
    /// [`LeaseStoreError::EvictingPolicy`] with `allow_evicting_policy`.
    ///
    /// # Cancel safety
    /// As [`RedisLeaseStore::connect`].
    ///
    /// # Panics
    /// As [`RedisLeaseStore::connect`].
    pub async fn connect_with(
        url: &str,
        prefix: &str,
        options: RedisStoreOptions,
    ) -> Result<RedisLeaseStore, LeaseStoreError> {
        let keys = Keys::new(prefix)?;
        let client = redis::Client::open(url).map_err(|e| {
            tracing::debug!(error = %e, "redis lease store: bad url");
            LeaseStoreError::Invalid("bad redis url")
        })?;
        let config = ConnectionManagerConfig::new()
            .set_connection_timeout(Some(OP_TIMEOUT))
            .set_response_timeout(Some(OP_TIMEOUT))
            .set_number_of_retries(RECONNECT_RETRIES)
            .set_max_delay(RECONNECT_MAX_DELAY);
        let conn = bounded(ConnectionManager::new_with_config(client, config)).await?;
        policy::check(&conn, options.allow_evicting_policy).await?;
        Ok(RedisLeaseStore { conn, keys })
    }

    /// Runs `script` with `keys` and `args`, bounded by [`OP_TIMEOUT`].
    async fn run<T: redis::FromRedisValue>(
        &self,
        script: &Script,
        keys: &[&str],
        args: &[&str],
    ) -> Result<T, LeaseStoreError> {
        let mut inv = script.prepare_invoke();
        for k in keys {
            inv.key(*k);
        }
        for a in args {
            inv.arg(*a);
        }
        let mut conn = self.conn.clone();
        bounded(inv.invoke_async(&mut conn)).await
    }

    /// Runs one plain command, bounded by [`OP_TIMEOUT`].
    async fn query<T: redis::FromRedisValue>(&self, cmd: &redis::Cmd) -> Result<T, LeaseStoreError> {
        let mut conn = self.conn.clone();
        bounded(cmd.query_async(&mut conn)).await
    }

    async fn acquire_lease(
        &self,
        name: &str,
        holder: &SessionId,
        ttl: Duration,
    ) -> Result<Option<Lease>, LeaseStoreError> {
        codec::check_name(name)?;
        let ttl = codec::ttl_ms(ttl)?.to_string();
        let session = holder.encode();
        let (lease_key, epoch_key) = (self.keys.lease(name), self.keys.epoch(name));
        let reply: Option<String> =
            self.run(&scripts::ACQUIRE_SCRIPT, &[&lease_key, &epoch_key], &[&session, &ttl]).await?;
        let Some(value) = reply else { return Ok(None) };
        let lease = codec::parse_value(name, &value)?;
        if &lease.holder != holder {
            return Err(LeaseStoreError::Protocol("acquire returned another holder"));
        }
        Ok(Some(lease))
    }

    async fn acquire_grouped(
        &self,
        name: &str,
        group: LeaseGroup<'_>,
        holder: &SessionId,
        ttl: Duration,
    ) -> Result<GroupGrant, LeaseStoreError> {
        codec::check_name(name)?;
        let ttl = codec::ttl_ms(ttl)?.to_string();
        let (session, tag) = (holder.encode(), group.tag.to_string());
        let keys = [self.keys.lease(name), self.keys.epoch(name), self.keys.group(group.name)];
        let keys = [keys[0].as_str(), keys[1].as_str(), keys[2].as_str()];
        let reply: (String, String) =
            self.run(&scripts::ACQUIRE_GROUPED_SCRIPT, &keys, &[&session, &ttl, &tag]).await?;
        match (reply.0.as_str(), reply.1) {
            ("held", _) => Ok(GroupGrant::Held),
            ("conflict", tag) => {
                let tag = tag.parse().map_err(|_| LeaseStoreError::Protocol("malformed group tag"))?;
                Ok(GroupGrant::Conflict { tag })
            }
            ("granted", value) => {
                let lease = codec::parse_value(name, &value)?;
                if &lease.holder != holder {
                    return Err(LeaseStoreError::Protocol("acquire returned another holder"));
                }
                Ok(GroupGrant::Granted(lease))
            }
            _ => Err(LeaseStoreError::Protocol("unexpected script result")),
        }
    }

    async fn renew_grouped(
        &self,
        name: &str,
        group: LeaseGroup<'_>,
        holder: &SessionId,
        epoch: Epoch,
        ttl: Duration,
    ) -> Result<bool, LeaseStoreError> {
        codec::check_name(name)?;
        let ttl = codec::ttl_ms(ttl)?.to_string();
        let (expected, tag) = (codec::encode_value(epoch, holder), group.tag.to_string());
        let (lease_key, group_key) = (self.keys.lease(name), self.keys.group(group.name));
        match self
            .run::<i64>(&scripts::RENEW_GROUPED_SCRIPT, &[&lease_key, &group_key], &[&expected, &ttl, &tag])
            .await?
        {
            1 => Ok(true),
            0 => Ok(false),
            _ => Err(LeaseStoreError::Protocol("unexpected script result")),
        }
    }

    /// Runs the renew or release script: both compare the exact value.
    async fn compare_and(
        &self,
        script: &Script,
        name: &str,
        holder: &SessionId,
        epoch: Epoch,
        ttl: Option<Duration>,
    ) -> Result<bool, LeaseStoreError> {
        codec::check_name(name)?;
        let ttl = ttl.map(codec::ttl_ms).transpose()?.map(|ms| ms.to_string());
        let expected = codec::encode_value(epoch, holder);
        let key = self.keys.lease(name);
        let mut args = vec![expected.as_str()];
        args.extend(ttl.as_deref());
        match self.run::<i64>(script, &[&key], &args).await? {
            1 => Ok(true),
            0 => Ok(false),
            _ => Err(LeaseStoreError::Protocol("unexpected script result")),
        }
    }

    async fn get_lease(&self, name: &str) -> Result<Option<Lease>, LeaseStoreError> {
        codec::check_name(name)?;
        let mut get = redis::cmd("GET");
        get.arg(self.keys.lease(name));
        let value: Option<String> = self.query(&get).await?;
        value.map(|v| codec::parse_value(name, &v)).transpose()
    }

    async fn heartbeat(&self, session: &SessionId, ttl: Duration) -> Result<(), LeaseStoreError> {
        let ttl = codec::ttl_ms(ttl)?.to_string();
        let key = self.keys.members();
        let _: i64 = self.run(&scripts::HEARTBEAT_SCRIPT, &[&key], &[&session.encode(), &ttl]).await?;
        Ok(())
    }

    async fn remove(&self, session: &SessionId) -> Result<(), LeaseStoreError> {
        let mut zrem = redis::cmd("ZREM");
        zrem.arg(self.keys.members()).arg(session.encode());
        let _: i64 = self.query(&zrem).await?;
        Ok(())
    }

    async fn live_members(&self) -> Result<Vec<SessionId>, LeaseStoreError> {
        let key = self.keys.members();
        let raw: Vec<String> = self.run(&scripts::MEMBERS_SCRIPT, &[&key], &[]).await?;
        let mut members = raw.iter().map(|m| codec::parse_member(m)).collect::<Result<Vec<_>, _>>()?;
        members.sort();
        Ok(members)
    }
}

impl LeaseStore for RedisLeaseStore {
    fn enforces_groups(&self) -> bool {
        true
    }

    fn acquire_in_group<'a>(
        &'a self,
        name: &'a str,
        group: LeaseGroup<'a>,
        holder: &'a SessionId,
        ttl: Duration,
    ) -> BoxFuture<'a, Result<GroupGrant, LeaseStoreError>> {
        Box::pin(self.acquire_grouped(name, group, holder, ttl))
    }

    fn renew_in_group<'a>(
        &'a self,
        name: &'a str,
        group: LeaseGroup<'a>,
        holder: &'a SessionId,
        epoch: Epoch,
        ttl: Duration,
    ) -> BoxFuture<'a, Result<bool, LeaseStoreError>> {
        Box::pin(self.renew_grouped(name, group, holder, epoch, ttl))
    }

    fn acquire<'a>(
        &'a self,
        name: &'a str,
        holder: &'a SessionId,
        ttl: Duration,
    ) -> BoxFuture<'a, Result<Option<Lease>, LeaseStoreError>> {
        Box::pin(self.acquire_lease(name, holder, ttl))
    }

    fn renew<'a>(
        &'a self,
        name: &'a str,
        holder: &'a SessionId,
        epoch: Epoch,
        ttl: Duration,
    ) -> BoxFuture<'a, Result<bool, LeaseStoreError>> {
        Box::pin(self.compare_and(&scripts::RENEW_SCRIPT, name, holder, epoch, Some(ttl)))
    }

    fn release<'a>(
        &'a self,
        name: &'a str,
        holder: &'a SessionId,
        epoch: Epoch,
    ) -> BoxFuture<'a, Result<bool, LeaseStoreError>> {
        Box::pin(self.compare_and(&scripts::RELEASE_SCRIPT, name, holder, epoch, None))
    }

    fn get<'a>(&'a self, name: &'a str) -> BoxFuture<'a, Result<Option<Lease>, LeaseStoreError>> {
        Box::pin(self.get_lease(name))
    }

    fn heartbeat_member<'a>(
        &'a self,
        session: &'a SessionId,
        ttl: Duration,
    ) -> BoxFuture<'a, Result<(), LeaseStoreError>> {
        Box::pin(self.heartbeat(session, ttl))
    }

    fn remove_member<'a>(&'a self, session: &'a SessionId) -> BoxFuture<'a, Result<(), LeaseStoreError>> {
        Box::pin(self.remove(session))
    }

    fn members(&self) -> BoxFuture<'_, Result<Vec<SessionId>, LeaseStoreError>> {
        Box::pin(self.live_members())
    }
}
