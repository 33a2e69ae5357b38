//! The lease-store conformance suite against `MemoryLeaseStore`, on tokio's
//! paused clock; and against deliberately broken stores, to show that each
//! kind of mistake makes the suite fail.

use std::sync::Arc;
use std::time::Duration;

use axactor_cluster::overlay::BoxFuture;
use axactor_cluster::{Epoch, Lease, LeaseStore, LeaseStoreError, MemoryLeaseStore, SessionId};
use axactor_tests::lease_conformance::{LONG, run_all};

#[tokio::test(start_paused = true)]
async fn memory_store_conforms() {
    run_all(Arc::new(MemoryLeaseStore::new()), "memory").await;
}

#[tokio::test(start_paused = true)]
async fn conformance_runs_share_one_store() {
    let store: Arc<dyn LeaseStore> = Arc::new(MemoryLeaseStore::new());
    tokio::join!(run_all(store.clone(), "one"), run_all(store.clone(), "two"));
}

/// One deliberate bug on top of a correct store.
#[derive(Debug, Clone, Copy)]
enum Bug {
    /// Every lease is granted at epoch 1.
    ConstantEpoch,
    /// Acquire grants a held lease to anyone.
    AcquireSteals,
    /// Acquire by the holder returns a new epoch.
    ReacquireBumpsEpoch,
    /// Renew checks the epoch but not the holder.
    RenewIgnoresHolder,
    /// Release checks the holder but not the epoch.
    ReleaseIgnoresEpoch,
    /// Renew reports success without extending.
    RenewDoesNotExtend,
    /// Heartbeats ignore their ttl.
    MembersNeverExpire,
    /// Members come back in insertion order.
    MembersUnsorted,
    /// A zero ttl is treated as 1 ms.
    ZeroTtlAccepted,
}

#[derive(Debug)]
struct Buggy {
    inner: MemoryLeaseStore,
    bug: Bug,
    order: std::sync::Mutex<Vec<SessionId>>,
}

impl Buggy {
    async fn acquire(&self, name: &str, holder: &SessionId, ttl: Duration) -> Result<Option<Lease>, LeaseStoreError> {
        let ttl = match self.bug {
            Bug::ZeroTtlAccepted if ttl.is_zero() => Duration::from_millis(1),
            _ => ttl,
        };
        let current = self.inner.get(name).await?;
        let got = self.inner.acquire(name, holder, ttl).await?;
        Ok(match (self.bug, got, current) {
            (Bug::ConstantEpoch, Some(l), _) => Some(Lease { epoch: Epoch(1), ..l }),
            (Bug::AcquireSteals, None, Some(cur)) => Some(Lease { holder: holder.clone(), ..cur }),
            (Bug::ReacquireBumpsEpoch, Some(l), Some(cur)) if cur.holder == *holder => {
                Some(Lease { epoch: Epoch(l.epoch.0 + 1), ..l })
            }
            (_, got, _) => got,
        })
    }

    async fn renew(
        &self,
        name: &str,
        holder: &SessionId,
        epoch: Epoch,
        ttl: Duration,
    ) -> Result<bool, LeaseStoreError> {
        match (self.bug, self.inner.get(name).await?) {
            (Bug::RenewIgnoresHolder, Some(cur)) if cur.epoch == epoch => {
                self.inner.renew(name, &cur.holder, epoch, ttl).await
            }
            (Bug::RenewDoesNotExtend, Some(cur)) => Ok(cur.holder == *holder && cur.epoch == epoch),
            _ => self.inner.renew(name, holder, epoch, ttl).await,
        }
    }

    async fn release(&self, name: &str, holder: &SessionId, epoch: Epoch) -> Result<bool, LeaseStoreError> {
        match (self.bug, self.inner.get(name).await?) {
            (Bug::ReleaseIgnoresEpoch, Some(cur)) if cur.holder == *holder => {
                self.inner.release(name, holder, cur.epoch).await
            }
            _ => self.inner.release(name, holder, epoch).await,
        }
    }

    async fn heartbeat(&self, session: &SessionId, ttl: Duration) -> Result<(), LeaseStoreError> {
        let ttl = match self.bug {
            Bug::MembersNeverExpire if !ttl.is_zero() => LONG,
            _ => ttl,
        };
        self.inner.heartbeat_member(session, ttl).await?;
        let mut order = self.order.lock().expect("order lock");
        order.retain(|s| s != session);
        order.push(session.clone());
        Ok(())
    }

    async fn members(&self) -> Result<Vec<SessionId>, LeaseStoreError> {
        let live = self.inner.members().await?;
        if let Bug::MembersUnsorted = self.bug {
            return Ok(self.order.lock().expect("order lock").iter().filter(|s| live.contains(s)).cloned().collect());
        }
        Ok(live)
    }
}

impl LeaseStore for Buggy {
    fn acquire<'a>(
        &'a self,
        name: &'a str,
        holder: &'a SessionId,
        ttl: Duration,
    ) -> BoxFuture<'a, Result<Option<Lease>, LeaseStoreError>> {
        Box::pin(Buggy::acquire(self, name, holder, ttl))
    }

    fn renew<'a>(
        &'a self,
        name: &'a str,
        holder: &'a SessionId,
        epoch: Epoch,
        ttl: Duration,
    ) -> BoxFuture<'a, Result<bool, LeaseStoreError>> {
        Box::pin(Buggy::renew(self, name, holder, epoch, ttl))
    }

    fn release<'a>(
        &'a self,
        name: &'a str,
        holder: &'a SessionId,
        epoch: Epoch,
    ) -> BoxFuture<'a, Result<bool, LeaseStoreError>> {
        Box::pin(Buggy::release(self, name, holder, epoch))
    }

    fn get<'a>(&'a self, name: &'a str) -> BoxFuture<'a, Result<Option<Lease>, LeaseStoreError>> {
        self.inner.get(name)
    }

    fn heartbeat_member<'a>(
        &'a self,
        session: &'a SessionId,
        ttl: Duration,
    ) -> BoxFuture<'a, Result<(), LeaseStoreError>> {
        Box::pin(self.heartbeat(session, ttl))
    }

    fn remove_member<'a>(&'a self, session: &'a SessionId) -> BoxFuture<'a, Result<(), LeaseStoreError>> {
        self.order.lock().expect("order lock").retain(|s| s != session);
        self.inner.remove_member(session)
    }

    fn members(&self) -> BoxFuture<'_, Result<Vec<SessionId>, LeaseStoreError>> {
        Box::pin(Buggy::members(self))
    }
}

/// Whether the suite fails against a store with `bug`.
async fn suite_fails_with(bug: Bug) -> bool {
    let store = Buggy { inner: MemoryLeaseStore::new(), bug, order: Default::default() };
    let run = tokio::spawn(run_all(Arc::new(store), "buggy"));
    run.await.is_err_and(|e| e.is_panic())
}

#[tokio::test(start_paused = true)]
async fn every_kind_of_bug_fails_the_suite() {
    for bug in [
        Bug::ConstantEpoch,
        Bug::AcquireSteals,
        Bug::ReacquireBumpsEpoch,
        Bug::RenewIgnoresHolder,
        Bug::ReleaseIgnoresEpoch,
        Bug::RenewDoesNotExtend,
        Bug::MembersNeverExpire,
        Bug::MembersUnsorted,
        Bug::ZeroTtlAccepted,
    ] {
        assert!(suite_fails_with(bug).await, "the conformance suite passed a store with {bug:?}");
    }
}
