//! Lease-store calls are bounded by `lease_store_timeout`, not by
//! `request_timeout`: with asks allowed ten minutes, a store call that never
//! answers is abandoned after the store bound (2 s by default), so the shard
//! is still acquired within one lease ttl, and a hanging renewal still
//! fences the shard before its lease can expire in the store.
//!
//! Runs on tokio's paused clock with a store that hangs chosen calls.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::time::Duration;

use axactor_cluster::overlay::BoxFuture;
use axactor_cluster::{
    ClusterConfig, Epoch, GroupGrant, InMemoryOverlay, KeyedConfig, Lease, LeaseGroup, LeaseStore, LeaseStoreError,
    MemoryLeaseStore, SessionId,
};
use axactor_tests::activations::{ActivationLog, held_epoch, paused_cfg, start_node, wait_until};

const REGISTRY: &str = "store-bound";

/// A memory store whose next `hang_acquires` acquisitions, and every
/// renewal while `hang_renewals` is set, never answer.
#[derive(Debug, Default)]
struct Hanging {
    inner: MemoryLeaseStore,
    hang_acquires: AtomicUsize,
    hang_renewals: AtomicBool,
}

impl Hanging {
    fn take_hang(&self) -> bool {
        self.hang_acquires.fetch_update(Ordering::SeqCst, Ordering::SeqCst, |n| n.checked_sub(1)).is_ok()
    }
}

fn never<'a, T: Send + 'a>() -> BoxFuture<'a, T> {
    Box::pin(std::future::pending())
}

impl LeaseStore for Hanging {
    fn enforces_groups(&self) -> bool {
        self.inner.enforces_groups()
    }

    fn acquire_in_group<'a>(
        &'a self,
        name: &'a str,
        group: LeaseGroup<'a>,
        holder: &'a SessionId,
        ttl: Duration,
    ) -> BoxFuture<'a, Result<GroupGrant, LeaseStoreError>> {
        if self.take_hang() { never() } else { self.inner.acquire_in_group(name, group, holder, ttl) }
    }

    fn renew_in_group<'a>(
        &'a self,
        name: &'a str,
        group: LeaseGroup<'a>,
        holder: &'a SessionId,
        epoch: Epoch,
        ttl: Duration,
    ) -> BoxFuture<'a, Result<bool, LeaseStoreError>> {
        if self.hang_renewals.load(Ordering::SeqCst) {
            never()
        } else {
            self.inner.renew_in_group(name, group, holder, epoch, ttl)
        }
    }

    fn acquire<'a>(
        &'a self,
        name: &'a str,
        holder: &'a SessionId,
        ttl: Duration,
    ) -> BoxFuture<'a, Result<Option<Lease>, LeaseStoreError>> {
        if self.take_hang() { never() } else { self.inner.acquire(name, holder, ttl) }
    }

    fn renew<'a>(
        &'a self,
        name: &'a str,
        holder: &'a SessionId,
        epoch: Epoch,
        ttl: Duration,
    ) -> BoxFuture<'a, Result<bool, LeaseStoreError>> {
        if self.hang_renewals.load(Ordering::SeqCst) { never() } else { self.inner.renew(name, holder, epoch, ttl) }
    }

    fn release<'a>(
        &'a self,
        name: &'a str,
        holder: &'a SessionId,
        epoch: Epoch,
    ) -> BoxFuture<'a, Result<bool, LeaseStoreError>> {
        self.inner.release(name, holder, epoch)
    }

    fn get<'a>(&'a self, name: &'a str) -> BoxFuture<'a, Result<Option<Lease>, LeaseStoreError>> {
        self.inner.get(name)
    }

    fn heartbeat_member<'a>(
        &'a self,
        session: &'a SessionId,
        ttl: Duration,
    ) -> BoxFuture<'a, Result<(), LeaseStoreError>> {
        self.inner.heartbeat_member(session, ttl)
    }

    fn remove_member<'a>(&'a self, session: &'a SessionId) -> BoxFuture<'a, Result<(), LeaseStoreError>> {
        self.inner.remove_member(session)
    }

    fn members(&self) -> BoxFuture<'_, Result<Vec<SessionId>, LeaseStoreError>> {
        self.inner.members()
    }
}

/// Default lease timings (ttl 10 s, renewal 3 s, store bound 2 s) with
/// asks allowed ten minutes.
fn slow_asks_cfg() -> ClusterConfig {
    ClusterConfig { request_timeout: Duration::from_secs(600), ..paused_cfg() }
}

#[tokio::test(start_paused = true)]
async fn a_hanging_acquire_is_abandoned_after_the_store_bound_not_the_request_timeout() {
    let cfg = slow_asks_cfg();
    let hanging = Arc::new(Hanging::default());
    hanging.hang_acquires.store(1, Ordering::SeqCst);
    let store: Arc<dyn LeaseStore> = hanging.clone();
    let net = InMemoryOverlay::new();
    let log = ActivationLog::new();
    let a = start_node("a", &store, &net, &cfg).await;
    let _keyed = a.keyed(REGISTRY, KeyedConfig::new(1), log.factory("a")).expect("registry");

    // The first acquire never answers. Abandoned after 2 s, it is retried on
    // a later placement pass (every 3 s): the shard is held well within one
    // lease ttl. Bounded by request_timeout (600 s), it would stay in flight.
    wait_until(cfg.lease_ttl, "the shard is acquired after the hanging call", || {
        held_epoch(&a.inspect(), REGISTRY, 0).is_some()
    })
    .await;
    assert_eq!(hanging.hang_acquires.load(Ordering::SeqCst), 0, "the hanging acquire was sent");
    a.shutdown().await;
}

#[tokio::test(start_paused = true)]
async fn hanging_renewals_fence_the_shard_before_the_lease_can_expire() {
    let cfg = slow_asks_cfg();
    let hanging = Arc::new(Hanging::default());
    let store: Arc<dyn LeaseStore> = hanging.clone();
    let net = InMemoryOverlay::new();
    let log = ActivationLog::new();
    let a = start_node("a", &store, &net, &cfg).await;
    let _keyed = a.keyed(REGISTRY, KeyedConfig::new(1), log.factory("a")).expect("registry");
    wait_until(cfg.lease_ttl, "a holds the shard", || held_epoch(&a.inspect(), REGISTRY, 0).is_some()).await;

    // From now on no renewal answers. The store expires the lease one ttl
    // after the last successful renewal; the node must have stopped using
    // it by then.
    hanging.hang_renewals.store(true, Ordering::SeqCst);
    wait_until(cfg.lease_ttl, "the shard is fenced", || held_epoch(&a.inspect(), REGISTRY, 0).is_none()).await;
    hanging.hang_renewals.store(false, Ordering::SeqCst);
    a.shutdown().await;
}
