//! [`OwnerCache`]: who owns each shard, as far as this node knows, for
//! routing its requests: registry → shard → (holder session, epoch, when
//! cached). An entry is used for one `renew_interval`; a newer epoch is
//! never overwritten by an older one. The node caches only the hosted
//! registries' shards, so the cache is bounded by them.
//!
//! Every change bumps a version ([`OwnerCache::version`]), so a copy of an
//! entry kept elsewhere (a handle's [`RouteHint`](crate::route_hint::RouteHint))
//! knows, from one atomic read, that it may be out of date.

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use parking_lot::Mutex;
use tokio::time::Instant;

use crate::hash::FastMap;
use crate::id::SessionId;
use crate::lease::Epoch;

#[derive(Debug)]
struct CachedOwner {
    holder: SessionId,
    epoch: Epoch,
    at: Instant,
}

/// See the module docs.
#[derive(Debug)]
pub(crate) struct OwnerCache {
    /// Registry → shard → owner (looked up by `&str`, without allocating).
    owners: Mutex<FastMap<String, FastMap<u32, CachedOwner>>>,
    /// How long an entry is used (`renew_interval`).
    valid_for: Duration,
    /// Bumped after every change (see the module docs).
    version: AtomicU64,
}

impl OwnerCache {
    pub(crate) fn new(valid_for: Duration) -> OwnerCache {
        OwnerCache { owners: Mutex::new(FastMap::default()), valid_for, version: AtomicU64::new(0) }
    }

    /// The cache's version: it changes after every change of an entry.
    #[inline]
    pub(crate) fn version(&self) -> u64 {
        self.version.load(Ordering::Acquire)
    }

    fn changed(&self) {
        self.version.fetch_add(1, Ordering::AcqRel);
    }

    /// The cached owner of a shard, if cached less than `valid_for` before `now`.
    pub(crate) fn get(&self, registry: &str, shard: u32, now: Instant) -> Option<(SessionId, Epoch)> {
        self.get_until(registry, shard, now).map(|(holder, epoch, _)| (holder, epoch))
    }

    /// As [`get`](Self::get), with the instant the entry stops being used.
    pub(crate) fn get_until(&self, registry: &str, shard: u32, now: Instant) -> Option<(SessionId, Epoch, Instant)> {
        let owners = self.owners.lock();
        let o = owners.get(registry)?.get(&shard)?;
        // `renew_interval` is bounded by the configuration's checks; were the
        // sum ever past the clock's range, the entry ends now (no hint).
        let until = o.at.checked_add(self.valid_for).unwrap_or(now);
        (now.saturating_duration_since(o.at) < self.valid_for).then(|| (o.holder.clone(), o.epoch, until))
    }

    /// Caches an owner as of `now`, unless a newer epoch is already known.
    pub(crate) fn insert(&self, registry: &str, shard: u32, holder: SessionId, epoch: Epoch, now: Instant) {
        let mut owners = self.owners.lock();
        if !owners.contains_key(registry) {
            owners.insert(registry.to_string(), FastMap::default());
        }
        let Some(shards) = owners.get_mut(registry) else { return };
        if shards.get(&shard).is_some_and(|o| o.epoch > epoch) {
            return;
        }
        shards.insert(shard, CachedOwner { holder, epoch, at: now });
        drop(owners);
        self.changed();
    }

    /// Forgets a shard's owner.
    pub(crate) fn forget(&self, registry: &str, shard: u32) {
        let removed = self.owners.lock().get_mut(registry).and_then(|shards| shards.remove(&shard));
        if removed.is_some() {
            self.changed();
        }
    }

    /// Forgets a shard's owner if it was cached at `epoch` or before (the
    /// lease was released at `epoch`).
    pub(crate) fn released(&self, registry: &str, shard: u32, epoch: u64) {
        let mut owners = self.owners.lock();
        if let Some(shards) = owners.get_mut(registry)
            && shards.get(&shard).is_some_and(|o| o.epoch.0 <= epoch)
        {
            shards.remove(&shard);
            drop(owners);
            self.changed();
        }
    }

    /// Entries cached now.
    pub(crate) fn len(&self) -> usize {
        self.owners.lock().values().map(FastMap::len).sum()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::id::NodeId;

    fn session(name: &str) -> SessionId {
        SessionId { node: NodeId::new(name), boot: 1, counter: 0 }
    }

    #[test]
    fn entries_expire_and_older_epochs_never_overwrite() {
        let cache = OwnerCache::new(Duration::from_secs(1));
        let t0 = Instant::now();
        cache.insert("r", 0, session("a"), Epoch(5), t0);
        cache.insert("r", 0, session("b"), Epoch(4), t0);
        assert_eq!(cache.get("r", 0, t0), Some((session("a"), Epoch(5))));
        assert_eq!(cache.get("r", 0, t0 + Duration::from_secs(1)), None, "valid for less than renew_interval");
        cache.insert("r", 0, session("b"), Epoch(5), t0);
        assert_eq!(cache.get("r", 0, t0), Some((session("b"), Epoch(5))), "the same epoch replaces");
        assert_eq!(cache.len(), 1);
    }

    #[test]
    fn a_release_forgets_only_owners_at_or_before_its_epoch() {
        let cache = OwnerCache::new(Duration::from_secs(1));
        let t0 = Instant::now();
        cache.insert("r", 0, session("a"), Epoch(5), t0);
        cache.released("r", 0, 4);
        assert!(cache.get("r", 0, t0).is_some());
        cache.released("r", 0, 5);
        assert!(cache.get("r", 0, t0).is_none());
        cache.insert("r", 1, session("a"), Epoch(1), t0);
        cache.forget("r", 1);
        assert_eq!(cache.len(), 0);
    }
}
