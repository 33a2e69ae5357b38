//! The simulation's lease store: a [`MemoryLeaseStore`] behind a network of
//! its own, with seeded latency, latency spikes and outages, recording every
//! change it makes into the trace (the ground truth the checker judges
//! leases by).
//!
//! Each call is a request in flight: it reaches the store after a request
//! delay, takes effect there (and is recorded) whether or not the caller is
//! still waiting, and answers after a reply delay. The delays run on a task
//! of the store, not of the calling node, so a request sent just before its
//! node is paused still lands on time, as it would over a real network.
//! During an outage a request fails with [`LeaseStoreError::Unavailable`]
//! after its delays; half of them took effect nonetheless (the answer was
//! lost), the caller cannot tell which.

use std::sync::Arc;
use std::time::Duration;

use parking_lot::Mutex;
use rand::rngs::StdRng;
use rand::{RngExt, SeedableRng};
use tokio::sync::oneshot;

use super::trace::{Ev, Trace};
use crate::id::SessionId;
use crate::lease::{Epoch, GroupGrant, Lease, LeaseGroup, LeaseStore, LeaseStoreError, MemoryLeaseStore};
use crate::overlay::BoxFuture;

/// The normal one-way delay to and from the store: up to this, uniformly.
const NORMAL_DELAY_MAX: Duration = Duration::from_millis(3);

#[derive(Debug, Default)]
struct Faults {
    outage: bool,
    /// One-way delays are drawn from this range instead of the normal one.
    spike: Option<(Duration, Duration)>,
}

#[derive(Debug)]
struct Inner {
    store: MemoryLeaseStore,
    trace: Trace,
    faults: Mutex<Faults>,
    rng: Mutex<StdRng>,
    /// Requests sent during a latency spike and not answered yet.
    slow_in_flight: std::sync::atomic::AtomicUsize,
}

/// See the module docs. Cheap to clone; clones are one store.
#[derive(Debug, Clone)]
pub(crate) struct SimStore {
    inner: Arc<Inner>,
}

/// What a request does once it reaches the store.
enum Op {
    Acquire { name: String, group: Option<(String, u64)>, holder: SessionId, ttl: Duration },
    Renew { name: String, group: Option<(String, u64)>, holder: SessionId, epoch: Epoch, ttl: Duration },
    Release { name: String, holder: SessionId, epoch: Epoch },
    Get { name: String },
    Heartbeat { session: SessionId, ttl: Duration },
    Remove { session: SessionId },
    Members,
}

/// What the store answers.
enum Answer {
    Lease(Option<Lease>),
    Group(GroupGrant),
    Flag(bool),
    Unit,
    Members(Vec<SessionId>),
}

impl SimStore {
    pub(crate) fn new(trace: Trace, seed: u64) -> SimStore {
        let inner = Inner {
            store: MemoryLeaseStore::new(),
            trace,
            faults: Mutex::new(Faults::default()),
            rng: Mutex::new(StdRng::seed_from_u64(seed)),
            slow_in_flight: std::sync::atomic::AtomicUsize::new(0),
        };
        SimStore { inner: Arc::new(inner) }
    }

    /// Starts or ends an outage.
    pub(crate) fn set_outage(&self, on: bool) {
        self.inner.faults.lock().outage = on;
    }

    /// Starts (`Some(range)`) or ends a latency spike.
    pub(crate) fn set_spike(&self, range: Option<(Duration, Duration)>) {
        self.inner.faults.lock().spike = range;
    }

    /// Requests sent during a latency spike that have not been answered:
    /// the spike is over for the cluster once they have landed.
    pub(crate) fn slow_in_flight(&self) -> usize {
        self.inner.slow_in_flight.load(std::sync::atomic::Ordering::Relaxed)
    }

    fn delay(&self) -> Duration {
        let spike = self.inner.faults.lock().spike;
        let (lo, hi) = spike.unwrap_or((Duration::ZERO, NORMAL_DELAY_MAX));
        let (lo, hi) = (lo.as_micros() as u64, hi.as_micros().max(lo.as_micros()) as u64);
        Duration::from_micros(self.inner.rng.lock().random_range(lo..=hi))
    }

    /// Sends `op` to the store; the answer comes back after the delays.
    fn call(&self, op: Op) -> oneshot::Receiver<Result<Answer, LeaseStoreError>> {
        let slow = self.inner.faults.lock().spike.is_some();
        if slow {
            self.inner.slow_in_flight.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        }
        let (to, back) = (self.delay(), self.delay());
        // Drawn now, so the draws happen in call order whatever the delays.
        let applied_anyway = self.inner.rng.lock().random_bool(0.5);
        let (tx, rx) = oneshot::channel();
        let inner = Arc::clone(&self.inner);
        tokio::spawn(async move {
            tokio::time::sleep(to).await;
            let answer = if inner.faults.lock().outage {
                // Half the requests are lost on the way in, half take effect
                // and lose their answer: the caller cannot tell which.
                if applied_anyway {
                    let _ = inner.apply(op).await;
                }
                Err(LeaseStoreError::Unavailable("simulated store outage"))
            } else {
                inner.apply(op).await
            };
            tokio::time::sleep(back).await;
            if slow {
                inner.slow_in_flight.fetch_sub(1, std::sync::atomic::Ordering::Relaxed);
            }
            let _ = tx.send(answer);
        });
        rx
    }
}

impl Inner {
    async fn apply(&self, op: Op) -> Result<Answer, LeaseStoreError> {
        let store = &self.store;
        let until = |ttl: Duration| self.trace.now().saturating_add(ttl.as_micros() as u64);
        Ok(match op {
            Op::Acquire { name, group, holder, ttl } => {
                let got = match &group {
                    Some((g, tag)) => {
                        store.acquire_in_group(&name, LeaseGroup { name: g, tag: *tag }, &holder, ttl).await?
                    }
                    None => store.acquire(&name, &holder, ttl).await?.map_or(GroupGrant::Held, GroupGrant::Granted),
                };
                if let GroupGrant::Granted(l) = &got {
                    let (lease, holder, epoch) = (Arc::from(name.as_str()), l.holder.clone(), l.epoch.0);
                    self.trace.push(Ev::Grant { lease, holder, epoch, until: until(ttl) });
                }
                match (group, got) {
                    (Some(_), got) => Answer::Group(got),
                    (None, GroupGrant::Granted(l)) => Answer::Lease(Some(l)),
                    (None, _) => Answer::Lease(None),
                }
            }
            Op::Renew { name, group, holder, epoch, ttl } => {
                let ok = match &group {
                    Some((g, tag)) => {
                        store.renew_in_group(&name, LeaseGroup { name: g, tag: *tag }, &holder, epoch, ttl).await?
                    }
                    None => store.renew(&name, &holder, epoch, ttl).await?,
                };
                if ok {
                    let lease = Arc::from(name.as_str());
                    self.trace.push(Ev::Renew { lease, holder, epoch: epoch.0, until: until(ttl) });
                }
                Answer::Flag(ok)
            }
            Op::Release { name, holder, epoch } => {
                let ok = store.release(&name, &holder, epoch).await?;
                if ok {
                    self.trace.push(Ev::Release { lease: Arc::from(name.as_str()), holder, epoch: epoch.0 });
                }
                Answer::Flag(ok)
            }
            Op::Get { name } => Answer::Lease(store.get(&name).await?),
            Op::Heartbeat { session, ttl } => {
                store.heartbeat_member(&session, ttl).await?;
                Answer::Unit
            }
            Op::Remove { session } => {
                store.remove_member(&session).await?;
                Answer::Unit
            }
            Op::Members => Answer::Members(store.members().await?),
        })
    }
}

/// The answer, or the error a lost answer stands for.
async fn answer(rx: oneshot::Receiver<Result<Answer, LeaseStoreError>>) -> Result<Answer, LeaseStoreError> {
    rx.await.unwrap_or(Err(LeaseStoreError::Unavailable("simulated store dropped the request")))
}

const MISMATCH: LeaseStoreError = LeaseStoreError::Protocol("simulated store answered another operation");

impl LeaseStore for SimStore {
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
        let group = Some((group.name.to_owned(), group.tag));
        let rx = self.call(Op::Acquire { name: name.to_owned(), group, holder: holder.clone(), ttl });
        Box::pin(async move {
            match answer(rx).await? {
                Answer::Group(g) => Ok(g),
                _ => Err(MISMATCH),
            }
        })
    }

    fn renew_in_group<'a>(
        &'a self,
        name: &'a str,
        group: LeaseGroup<'a>,
        holder: &'a SessionId,
        epoch: Epoch,
        ttl: Duration,
    ) -> BoxFuture<'a, Result<bool, LeaseStoreError>> {
        let group = Some((group.name.to_owned(), group.tag));
        let rx = self.call(Op::Renew { name: name.to_owned(), group, holder: holder.clone(), epoch, ttl });
        Box::pin(async move {
            match answer(rx).await? {
                Answer::Flag(ok) => Ok(ok),
                _ => Err(MISMATCH),
            }
        })
    }

    fn acquire<'a>(
        &'a self,
        name: &'a str,
        holder: &'a SessionId,
        ttl: Duration,
    ) -> BoxFuture<'a, Result<Option<Lease>, LeaseStoreError>> {
        let rx = self.call(Op::Acquire { name: name.to_owned(), group: None, holder: holder.clone(), ttl });
        Box::pin(async move {
            match answer(rx).await? {
                Answer::Lease(l) => Ok(l),
                _ => Err(MISMATCH),
            }
        })
    }

    fn renew<'a>(
        &'a self,
        name: &'a str,
        holder: &'a SessionId,
        epoch: Epoch,
        ttl: Duration,
    ) -> BoxFuture<'a, Result<bool, LeaseStoreError>> {
        let rx = self.call(Op::Renew { name: name.to_owned(), group: None, holder: holder.clone(), epoch, ttl });
        Box::pin(async move {
            match answer(rx).await? {
                Answer::Flag(ok) => Ok(ok),
                _ => Err(MISMATCH),
            }
        })
    }

    fn release<'a>(
        &'a self,
        name: &'a str,
        holder: &'a SessionId,
        epoch: Epoch,
    ) -> BoxFuture<'a, Result<bool, LeaseStoreError>> {
        let rx = self.call(Op::Release { name: name.to_owned(), holder: holder.clone(), epoch });
        Box::pin(async move {
            match answer(rx).await? {
                Answer::Flag(ok) => Ok(ok),
                _ => Err(MISMATCH),
            }
        })
    }

    fn get<'a>(&'a self, name: &'a str) -> BoxFuture<'a, Result<Option<Lease>, LeaseStoreError>> {
        let rx = self.call(Op::Get { name: name.to_owned() });
        Box::pin(async move {
            match answer(rx).await? {
                Answer::Lease(l) => Ok(l),
                _ => Err(MISMATCH),
            }
        })
    }

    fn heartbeat_member<'a>(
        &'a self,
        session: &'a SessionId,
        ttl: Duration,
    ) -> BoxFuture<'a, Result<(), LeaseStoreError>> {
        let rx = self.call(Op::Heartbeat { session: session.clone(), ttl });
        Box::pin(async move {
            match answer(rx).await? {
                Answer::Unit => Ok(()),
                _ => Err(MISMATCH),
            }
        })
    }

    fn remove_member<'a>(&'a self, session: &'a SessionId) -> BoxFuture<'a, Result<(), LeaseStoreError>> {
        let rx = self.call(Op::Remove { session: session.clone() });
        Box::pin(async move {
            match answer(rx).await? {
                Answer::Unit => Ok(()),
                _ => Err(MISMATCH),
            }
        })
    }

    fn members(&self) -> BoxFuture<'_, Result<Vec<SessionId>, LeaseStoreError>> {
        let rx = self.call(Op::Members);
        Box::pin(async move {
            match answer(rx).await? {
                Answer::Members(m) => Ok(m),
                _ => Err(MISMATCH),
            }
        })
    }
}
