//! The eviction check [`RedisLeaseStore::connect`](super::RedisLeaseStore::connect)
//! runs: a lease key the server evicts is a lease another session can
//! acquire while its holder still runs, so a server that may evict keys is
//! refused unless the caller opts out.
//!
//! Every `maxmemory-policy` but `noeviction` may evict a lease key:
//! `allkeys-*` any key, `volatile-*` keys with an expiry, which every lease
//! key has. When the server does not let us read its configuration
//! (`CONFIG` renamed or denied by an ACL, as on many managed services) the
//! check cannot be made: a warning says what the deployment must guarantee
//! and the connection is kept.

use std::collections::BTreeMap;

use redis::aio::ConnectionManager;
use redis::{ErrorKind, RedisError};

use super::bound::bounded_redis;
use super::codec;
use crate::lease::LeaseStoreError;

/// The only policy under which the server never evicts a key.
const SAFE_POLICY: &str = "noeviction";

/// What reading the policy told us.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) enum Policy {
    /// `noeviction`.
    Safe,
    /// A policy that may evict lease keys.
    Evicting(String),
    /// The server would not say (`CONFIG` disabled or not permitted, or the
    /// parameter unknown).
    Unknown,
}

/// Classifies the value of `maxmemory-policy`.
pub(super) fn classify(policy: &str) -> Policy {
    if policy.eq_ignore_ascii_case(SAFE_POLICY) { Policy::Safe } else { Policy::Evicting(policy.to_owned()) }
}

/// Reads the server's `maxmemory-policy`.
async fn read(conn: &ConnectionManager) -> Result<Policy, LeaseStoreError> {
    let mut get = redis::cmd("CONFIG");
    get.arg("GET").arg("maxmemory-policy");
    let mut conn = conn.clone();
    // RESP2 answers a flat [name, value] array, RESP3 a map: both parse.
    let reply: Result<BTreeMap<String, String>, RedisError> = bounded_redis(get.query_async(&mut conn)).await?;
    match reply {
        Ok(map) => Ok(map.get("maxmemory-policy").map_or(Policy::Unknown, |p| classify(p))),
        // "unknown command" (renamed away) or NOPERM (ACL): no way to know.
        Err(e) if matches!(e.kind(), ErrorKind::Server(_)) => {
            tracing::debug!(error = %e, "redis lease store: CONFIG GET refused");
            Ok(Policy::Unknown)
        }
        Err(e) => {
            tracing::debug!(error = %e, "redis lease store: CONFIG GET failed");
            Err(codec::map_error(&e))
        }
    }
}

/// Refuses a server that may evict keys, unless `allow_evicting` is set;
/// warns when the policy cannot be read.
pub(super) async fn check(conn: &ConnectionManager, allow_evicting: bool) -> Result<(), LeaseStoreError> {
    match read(conn).await? {
        Policy::Safe => Ok(()),
        Policy::Evicting(policy) if allow_evicting => {
            tracing::warn!(
                %policy,
                "redis lease store: the server may evict lease keys (allowed by allow_evicting_policy); \
                 an evicted lease lets two nodes hold one shard"
            );
            Ok(())
        }
        Policy::Evicting(policy) => Err(LeaseStoreError::EvictingPolicy { policy }),
        Policy::Unknown => {
            tracing::warn!(
                "redis lease store: cannot read maxmemory-policy (CONFIG disabled or not permitted): make sure \
                 the server never evicts keys (maxmemory-policy noeviction) and persists them (appendonly yes, \
                 appendfsync everysec or always); a lost lease key lets two nodes hold one shard"
            );
            Ok(())
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_noeviction_is_safe() {
        assert_eq!(classify("noeviction"), Policy::Safe);
        for p in [
            "allkeys-lru",
            "allkeys-lfu",
            "allkeys-random",
            "volatile-lru",
            "volatile-lfu",
            "volatile-random",
            "volatile-ttl",
            "some-future-policy",
        ] {
            assert_eq!(classify(p), Policy::Evicting(p.to_owned()), "{p}");
        }
    }
}
