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
use crate::future::BoxFuture;
use crate::id::SessionId;
use crate::lease::{Epoch, GroupGrant, Lease, LeaseGroup, LeaseStore, LeaseStoreError, MemoryLeaseStore};

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

impl Answer {
    fn lease(self) -> Option<Option<Lease>> {
        if let Answer::Lease(l) = self { Some(l) } else { None }
    }

    fn group(self) -> Option<GroupGrant> {
        if let Answer::Group(g) = self { Some(g) } else { None }
    }

    fn flag(self) -> Option<bool> {
        if let Answer::Flag(ok) = self { Some(ok) } else { None }
    }

    fn unit(self) -> Option<()> {
        if let Answer::Unit = self { Some(()) } else { None }
    }

    fn members(self) -> Option<Vec<SessionId>> {
        if let Answer::Members(m) = self { Some(m) } else { None }
    }
}

impl SimStore {
    /// Sends `op` and takes its answer apart with `pick` (a lost answer is
    /// `Unavailable`, as from a real network).
    fn ask<T: Send + 'static>(
        &self,
        op: Op,
        pick: fn(Answer) -> Option<T>,
    ) -> BoxFuture<'static, Result<T, LeaseStoreError>> {
        let rx = self.call(op);
        Box::pin(async move {
            let answer =
                rx.await.unwrap_or(Err(LeaseStoreError::Unavailable("simulated store dropped the request")))?;
            pick(answer).ok_or(LeaseStoreError::Protocol("simulated store answered another operation"))
        })
    }
}

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
        self.ask(
            Op::Acquire {
                name: name.to_owned(),
                group: Some((group.name.to_owned(), group.tag)),
                holder: holder.clone(),
                ttl,
            },
            Answer::group,
        )
    }

    fn renew_in_group<'a>(
        &'a self,
        name: &'a str,
        group: LeaseGroup<'a>,
        holder: &'a SessionId,
        epoch: Epoch,
        ttl: Duration,
    ) -> BoxFuture<'a, Result<bool, LeaseStoreError>> {
        self.ask(
            Op::Renew {
                name: name.to_owned(),
                group: Some((group.name.to_owned(), group.tag)),
                holder: holder.clone(),
                epoch,
                ttl,
            },
            Answer::flag,
        )
    }

    fn acquire<'a>(
        &'a self,
        name: &'a str,
        holder: &'a SessionId,
        ttl: Duration,
    ) -> BoxFuture<'a, Result<Option<Lease>, LeaseStoreError>> {
        self.ask(Op::Acquire { name: name.to_owned(), group: None, holder: holder.clone(), ttl }, Answer::lease)
    }

    fn renew<'a>(
        &'a self,
        name: &'a str,
        holder: &'a SessionId,
        epoch: Epoch,
        ttl: Duration,
    ) -> BoxFuture<'a, Result<bool, LeaseStoreError>> {
        self.ask(Op::Renew { name: name.to_owned(), group: None, holder: holder.clone(), epoch, ttl }, Answer::flag)
    }

    fn release<'a>(
        &'a self,
        name: &'a str,
        holder: &'a SessionId,
        epoch: Epoch,
    ) -> BoxFuture<'a, Result<bool, LeaseStoreError>> {
        self.ask(Op::Release { name: name.to_owned(), holder: holder.clone(), epoch }, Answer::flag)
    }

    fn get<'a>(&'a self, name: &'a str) -> BoxFuture<'a, Result<Option<Lease>, LeaseStoreError>> {
        self.ask(Op::Get { name: name.to_owned() }, Answer::lease)
    }

    fn heartbeat_member<'a>(
        &'a self,
        session: &'a SessionId,
        ttl: Duration,
    ) -> BoxFuture<'a, Result<(), LeaseStoreError>> {
        self.ask(Op::Heartbeat { session: session.clone(), ttl }, Answer::unit)
    }

    fn remove_member<'a>(&'a self, session: &'a SessionId) -> BoxFuture<'a, Result<(), LeaseStoreError>> {
        self.ask(Op::Remove { session: session.clone() }, Answer::unit)
    }

    fn members(&self) -> BoxFuture<'_, Result<Vec<SessionId>, LeaseStoreError>> {
        self.ask(Op::Members, Answer::members)
    }
}
