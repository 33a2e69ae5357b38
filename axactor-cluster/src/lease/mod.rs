//! Lease stores: where shard ownership and node membership are recorded.
//!
//! A lease names a *session* (never an address or a bare node name) and
//! carries an [`Epoch`] that only grows: every acquisition of a lease name
//! gets an epoch greater than every epoch granted for that name before, also
//! across release, expiry and (for Redis) deletion of the lease key. Every
//! routed message carries the epoch its sender routed by, and the owner
//! executes it only under exactly that epoch.
//!
//! Expiry is judged by the store's clock; the holder's self-fencing deadline
//! is computed on its own clock from when it *sent* the renewal (see the
//! lease state machine), so it always stops before the store lets another
//! session acquire.
//!
//! **Lease groups.** A lease may be acquired as a member of a
//! [`LeaseGroup`] (a name and a tag): a store that enforces groups
//! ([`LeaseStore::enforces_groups`]) grants no lease of a group under one tag
//! while a live lease of that group is held under another. The cluster puts
//! every shard lease of a registry in the group named after the registry,
//! tagged with its shard count, and names the leases with the count
//! (`registry/count/shard`): two nodes that host one registry with
//! different shard counts can never both hold shards (either count's
//! shards can cover a key of the other), whatever they each believe.
//!
//! Stores: [`MemoryLeaseStore`] (one process, Tokio time),
//! `RedisLeaseStore` (feature `redis-lease`: one Redis primary shared by the
//! cluster), and `EtcdLeaseStore` (feature `etcd-lease`: an etcd cluster,
//! linearizable). All pass the conformance suite in
//! `tests/support/lease_conformance.rs`.

use std::fmt;
use std::time::Duration;

use serde::{Deserialize, Serialize};

use crate::future::BoxFuture;
use crate::id::SessionId;

#[cfg(feature = "etcd-lease")]
mod etcd;
mod memory;
#[cfg(feature = "redis-lease")]
mod redis;

#[cfg(feature = "etcd-lease")]
pub use self::etcd::{EtcdLeaseStore, EtcdStoreOptions};
#[cfg(feature = "redis-lease")]
pub use self::redis::{RedisLeaseStore, RedisStoreOptions};
pub use memory::MemoryLeaseStore;

/// A lease generation. Strictly increasing per lease name.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct Epoch(pub u64);

impl fmt::Display for Epoch {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "e{}", self.0)
    }
}

/// A granted lease.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Lease {
    /// The lease name (e.g. `accounts/17` for shard 17 of registry `accounts`).
    pub name: String,
    /// The session holding it.
    pub holder: SessionId,
    /// Its epoch.
    pub epoch: Epoch,
}

/// A family of leases that must never be held under two tags at once (see
/// the module docs).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LeaseGroup<'a> {
    /// The group's name (the cluster uses the registry id).
    pub name: &'a str,
    /// The tag this acquisition is made under (the cluster uses the
    /// registry's shard count).
    pub tag: u64,
}

/// The answer to [`LeaseStore::acquire_in_group`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum GroupGrant {
    /// The lease is the caller's (new, or held already: same epoch).
    Granted(Lease),
    /// Another session holds the lease.
    Held,
    /// A live lease of the group is held under another tag (`tag`).
    Conflict {
        /// The tag the group's live leases are held under.
        tag: u64,
    },
}

/// Why a lease-store operation failed. A failed renewal means the holder
/// must assume it may lose the lease and self-fence by its deadline.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum LeaseStoreError {
    /// The store could not be reached or did not answer.
    #[error("lease store unavailable: {0}")]
    Unavailable(&'static str),
    /// The store answered with something this client does not understand.
    #[error("lease store protocol error: {0}")]
    Protocol(&'static str),
    /// An argument was rejected (empty name, zero ttl).
    #[error("invalid lease request: {0}")]
    Invalid(&'static str),
    /// The Redis server may evict keys (`maxmemory-policy` is `policy`): an
    /// evicted lease key lets another session acquire a lease whose holder
    /// still runs. Set `maxmemory-policy noeviction` on the server, or opt
    /// out with `RedisStoreOptions::allow_evicting_policy`.
    #[error(
        "redis maxmemory-policy is `{policy}`, which may evict lease keys: set `maxmemory-policy noeviction` \
         (or opt out with RedisStoreOptions::allow_evicting_policy)"
    )]
    EvictingPolicy {
        /// The server's `maxmemory-policy`.
        policy: String,
    },
}

/// A store of leases and node-membership records. Object safe.
pub trait LeaseStore: Send + Sync + fmt::Debug + 'static {
    /// Acquires `name` for `holder` for `ttl` if it is free or expired.
    /// Returns the new lease (with a fresh, greater epoch) or `None` if
    /// another session holds it. If `holder` already holds it, the lease is
    /// renewed and returned with its current epoch.
    fn acquire<'a>(
        &'a self,
        name: &'a str,
        holder: &'a SessionId,
        ttl: Duration,
    ) -> BoxFuture<'a, Result<Option<Lease>, LeaseStoreError>>;

    /// Extends the lease for `ttl` if `holder` still holds it at `epoch`.
    /// Returns `false` if it does not (expired and taken, or released).
    fn renew<'a>(
        &'a self,
        name: &'a str,
        holder: &'a SessionId,
        epoch: Epoch,
        ttl: Duration,
    ) -> BoxFuture<'a, Result<bool, LeaseStoreError>>;

    /// Releases the lease if `holder` holds it at `epoch`; returns whether
    /// it did. The next acquisition gets a greater epoch.
    fn release<'a>(
        &'a self,
        name: &'a str,
        holder: &'a SessionId,
        epoch: Epoch,
    ) -> BoxFuture<'a, Result<bool, LeaseStoreError>>;

    /// The current, unexpired lease on `name`, if any.
    fn get<'a>(&'a self, name: &'a str) -> BoxFuture<'a, Result<Option<Lease>, LeaseStoreError>>;

    /// Records (or refreshes) `session` as a live member for `ttl`.
    fn heartbeat_member<'a>(
        &'a self,
        session: &'a SessionId,
        ttl: Duration,
    ) -> BoxFuture<'a, Result<(), LeaseStoreError>>;

    /// Removes `session` from the members (graceful leave).
    fn remove_member<'a>(&'a self, session: &'a SessionId) -> BoxFuture<'a, Result<(), LeaseStoreError>>;

    /// The live members, sorted.
    fn members(&self) -> BoxFuture<'_, Result<Vec<SessionId>, LeaseStoreError>>;

    /// Whether [`LeaseStore::acquire_in_group`] enforces groups. The default
    /// methods do not (they ignore the group): a store that cannot enforce
    /// them leaves the cluster unprotected against nodes that disagree on a
    /// registry's shard count.
    fn enforces_groups(&self) -> bool {
        false
    }

    /// [`LeaseStore::acquire`], as a member of `group`: refused with
    /// [`GroupGrant::Conflict`] while a live lease of the group is held under
    /// another tag. The default ignores the group.
    fn acquire_in_group<'a>(
        &'a self,
        name: &'a str,
        group: LeaseGroup<'a>,
        holder: &'a SessionId,
        ttl: Duration,
    ) -> BoxFuture<'a, Result<GroupGrant, LeaseStoreError>> {
        let _ = group;
        Box::pin(async move {
            Ok(match self.acquire(name, holder, ttl).await? {
                Some(lease) => GroupGrant::Granted(lease),
                None => GroupGrant::Held,
            })
        })
    }

    /// [`LeaseStore::renew`] of a lease acquired in `group` (a store may
    /// track the group's liveness through it). The default ignores the
    /// group.
    fn renew_in_group<'a>(
        &'a self,
        name: &'a str,
        group: LeaseGroup<'a>,
        holder: &'a SessionId,
        epoch: Epoch,
        ttl: Duration,
    ) -> BoxFuture<'a, Result<bool, LeaseStoreError>> {
        let _ = group;
        self.renew(name, holder, epoch, ttl)
    }
}
