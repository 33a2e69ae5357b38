//! The state every task of one node shares: identity, configuration, the
//! peer table, the re-dial schedule, counters, the stop signal and the set
//! of live tasks (so `shutdown` can wait for them, and abort stragglers).

use std::collections::BTreeMap;
use std::future::Future;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::Duration;

use parking_lot::{Mutex, RwLock};
use tokio::sync::{Notify, Semaphore, mpsc, watch};
use tokio::task::AbortHandle;
use tokio::time::Instant;

use super::inspect::LiveCounters;
use super::routing::Routing;
use super::table::{ConnId, PeerTable};
use crate::config::ClusterConfig;
use crate::env::Env;
use crate::handshake::AuthKey;
use crate::host::HostedRegistry;
use crate::id::{NodeId, SessionId};
use crate::lease::LeaseStore;
use crate::overlay::ClusterOverlay;
use crate::signal::Signal;

/// What the node keeps per authenticated connection.
#[derive(Debug)]
pub(crate) struct PeerHandle {
    /// Set to `true` to close the connection (replaced, shutdown).
    pub(crate) close: watch::Sender<bool>,
    /// Liveness statistics, written by the connection's reader.
    pub(crate) stats: Arc<PeerStats>,
    /// The connection's queues (to its writer), shared with requests in flight.
    pub(crate) queues: Arc<super::routing::PeerQueues>,
}

/// Liveness of one connection, in milliseconds of the node's clock.
#[derive(Debug)]
pub(crate) struct PeerStats {
    pub(crate) last_seen_ms: AtomicU64,
    /// Latest round-trip time in microseconds; `u64::MAX` until the first ack.
    pub(crate) rtt_us: AtomicU64,
    pub(crate) heartbeats_acked: AtomicU64,
    /// The registries the peer announced (`Hosting`), id → shard count.
    pub(crate) hosted: Mutex<BTreeMap<String, u32>>,
}

impl PeerStats {
    pub(crate) fn new(now_ms: u64) -> PeerStats {
        PeerStats {
            last_seen_ms: AtomicU64::new(now_ms),
            rtt_us: AtomicU64::new(u64::MAX),
            heartbeats_acked: AtomicU64::new(0),
            hosted: Mutex::new(BTreeMap::new()),
        }
    }
}

/// Re-dial schedule of one peer name: capped exponential backoff.
#[derive(Debug, Clone, Copy)]
pub(crate) struct DialState {
    pub(crate) in_progress: bool,
    pub(crate) failures: u32,
    pub(crate) not_before: Instant,
}

/// The delay before the next dial after `failures` consecutive failures:
/// `min * 2^(failures - 1)`, capped at `max` (zero after no failure).
pub(crate) fn backoff(failures: u32, min: Duration, max: Duration) -> Duration {
    if failures == 0 {
        return Duration::ZERO;
    }
    let factor = 1u32.checked_shl(failures.saturating_sub(1).min(31)).unwrap_or(u32::MAX);
    min.saturating_mul(factor).min(max)
}

pub(crate) struct Shared {
    pub(crate) id: NodeId,
    pub(crate) session: SessionId,
    pub(crate) cfg: ClusterConfig,
    pub(crate) key: AuthKey,
    pub(crate) overlay: ClusterOverlay,
    pub(crate) store: Arc<dyn LeaseStore>,
    pub(crate) table: Mutex<PeerTable<PeerHandle>>,
    pub(crate) dials: Mutex<BTreeMap<NodeId, DialState>>,
    pub(crate) counters: LiveCounters,
    /// Permits for inbound handshakes in progress.
    pub(crate) handshakes: Arc<Semaphore>,
    /// Inbound handshakes in progress per source address.
    pub(crate) handshake_sources: Arc<super::sources::SourceQuota>,
    /// `true` once shutdown has begun.
    pub(crate) stop: Signal<bool>,
    /// Mirrors `stop` (set first), for the hot paths.
    stopping: AtomicBool,
    pub(crate) renewal_paused: AtomicBool,
    /// Randomness, task spawning and the observer (see [`Env`]).
    pub(crate) env: Env,
    /// The local actor system activations run in.
    pub(crate) system: Arc<axactor::System>,
    /// Hosted registries by id (sorted: deterministic iteration).
    pub(crate) hosts: RwLock<BTreeMap<String, Arc<dyn HostedRegistry>>>,
    /// Wakes the lease driver for a placement pass.
    pub(crate) kick: Notify,
    /// Wakes the membership loop to dial members now.
    pub(crate) dial_kick: Notify,
    /// Routing state: requests in flight, owner cache, remote monitors.
    pub(crate) routing: Routing,
    /// Live members, authentication failures with them, and the standing.
    pub(crate) members: super::members::MemberBook,
    /// Permits for asks from peers being executed here.
    pub(crate) inbound_asks: Arc<Semaphore>,
    /// Commands to the lease driver.
    pub(crate) manager: Mutex<Option<mpsc::Sender<crate::manager::Cmd>>>,
    /// Subscribers of the node's event stream.
    pub(crate) events: Arc<super::events::EventHub>,
    next_conn: AtomicU64,
    epoch: Instant,
    next_task: AtomicU64,
    tasks: watch::Sender<BTreeMap<u64, Option<AbortHandle>>>,
}

impl std::fmt::Debug for Shared {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Shared").field("session", &self.session).finish_non_exhaustive()
    }
}

impl Shared {
    pub(crate) fn new(
        session: SessionId,
        cfg: ClusterConfig,
        key: AuthKey,
        overlay: ClusterOverlay,
        store: Arc<dyn LeaseStore>,
        env: Env,
    ) -> Shared {
        let max_inflight = cfg.max_inflight_requests;
        let max_peers = cfg.max_peers;
        Shared {
            id: session.node.clone(),
            table: Mutex::new(PeerTable::new(session.clone(), cfg.max_peers)),
            handshakes: Arc::new(Semaphore::new(cfg.max_pending_handshakes)),
            handshake_sources: super::sources::SourceQuota::new(cfg.max_pending_handshakes_per_source),
            session,
            cfg,
            key,
            overlay,
            store,
            dials: Mutex::new(BTreeMap::new()),
            counters: LiveCounters::default(),
            stop: Signal::new(false),
            stopping: AtomicBool::new(false),
            renewal_paused: AtomicBool::new(false),
            system: Arc::new(env.system()),
            env,
            hosts: RwLock::new(BTreeMap::new()),
            kick: Notify::new(),
            dial_kick: Notify::new(),
            routing: Routing::default(),
            members: super::members::MemberBook::new(max_peers),
            inbound_asks: Arc::new(Semaphore::new(max_inflight)),
            manager: Mutex::new(None),
            events: Arc::default(),
            next_conn: AtomicU64::new(0),
            epoch: Instant::now(),
            next_task: AtomicU64::new(0),
            tasks: watch::Sender::new(BTreeMap::new()),
        }
    }

    /// Emits a node event: to the env's observer and the event stream's
    /// subscribers. `make` runs only if one of them listens.
    pub(crate) fn emit(&self, make: impl FnOnce() -> crate::env::NodeEvent) {
        let subscribers = self.events.has_subscribers();
        if !subscribers && !self.env.has_observer() {
            return;
        }
        let event = make();
        if subscribers {
            let dropped = self.events.publish(&event);
            if dropped > 0 {
                self.counters.events_dropped.fetch_add(dropped, Ordering::Relaxed);
            }
        }
        self.env.observe(&self.session, || event);
    }

    pub(crate) fn next_conn(&self) -> ConnId {
        ConnId(self.next_conn.fetch_add(1, Ordering::Relaxed))
    }

    /// Milliseconds since the node started, on tokio's clock (so the paused
    /// test clock works).
    /// The largest envelope a sealed frame to a peer may carry (the node's
    /// and the overlay's frame limits, less the seal).
    pub(crate) fn max_envelope(&self) -> usize {
        crate::wire::max_envelope_bytes(self.cfg.max_frame_bytes.min(self.overlay.inner().max_frame_bytes()))
    }

    pub(crate) fn now_ms(&self) -> u64 {
        u64::try_from(self.epoch.elapsed().as_millis()).unwrap_or(u64::MAX)
    }

    pub(crate) fn is_stopping(&self) -> bool {
        // Read on every request: an atomic, not the watch's lock.
        self.stopping.load(Ordering::Acquire)
    }

    /// Starts the node's stop: `is_stopping` from now on, and every task
    /// watching `stop` is told.
    pub(crate) fn begin_stop(&self) {
        self.stopping.store(true, Ordering::Release);
        self.stop.set(true);
    }

    /// Spawns a task that `shutdown` waits for (and aborts after its bound).
    pub(crate) fn spawn(self: &Arc<Self>, fut: impl Future<Output = ()> + Send + 'static) {
        let id = self.next_task.fetch_add(1, Ordering::Relaxed);
        let guard = TaskGuard { shared: Arc::clone(self), id };
        // The entry exists before the task can end (and remove it); the abort
        // handle is filled in afterwards, unless the task is already gone.
        self.tasks.send_modify(|tasks| {
            tasks.insert(id, None);
        });
        let handle = self.env.spawn(async move {
            let _guard = guard;
            fut.await;
        });
        self.tasks.send_if_modified(|tasks| {
            if let Some(slot) = tasks.get_mut(&id) {
                *slot = Some(handle.abort_handle());
            }
            false
        });
    }

    /// Aborts every spawned task at once.
    pub(crate) fn abort_tasks(&self) {
        for handle in self.tasks.borrow().values().flatten() {
            handle.abort();
        }
    }

    /// Waits until every spawned task has ended, at most `bound`; then aborts
    /// the rest. Returns whether all ended in time.
    pub(crate) async fn join_tasks(&self, bound: Duration) -> bool {
        let mut rx = self.tasks.subscribe();
        let done = tokio::time::timeout(bound, rx.wait_for(BTreeMap::is_empty)).await.is_ok();
        if !done {
            for handle in self.tasks.borrow().values().flatten() {
                handle.abort();
            }
        }
        done
    }
}

struct TaskGuard {
    shared: Arc<Shared>,
    id: u64,
}

impl Drop for TaskGuard {
    fn drop(&mut self) {
        self.shared.tasks.send_if_modified(|tasks| tasks.remove(&self.id).is_some());
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_doubles_and_caps() {
        let (min, max) = (Duration::from_millis(50), Duration::from_secs(1));
        assert_eq!(backoff(0, min, max), Duration::ZERO);
        assert_eq!(backoff(1, min, max), min);
        assert_eq!(backoff(2, min, max), Duration::from_millis(100));
        assert_eq!(backoff(6, min, max), max);
        assert_eq!(backoff(u32::MAX, min, max), max);
    }
}
