//! [`Env`]: everything a node draws from outside its own logic, injected in
//! one place so that a run can be a pure function of a seed.
//!
//! - **Randomness**: handshake nonces, the boot part of session ids and
//!   restart jitter come from the OS CSPRNG in production
//!   ([`Env::production`], what [`ClusterNode::start`] uses) or from one
//!   seeded generator ([`Env::seeded`]: the deterministic simulation).
//! - **Session ids**: production numbers sessions with a per-process boot
//!   id and counter; a seeded env draws the boot id from its generator and
//!   keeps its own counter, so a second run in one process sees the same ids.
//! - **Tasks**: every task of the node, its activations included, is
//!   started through the env. A *pausable* env ([`Env::pausable`]) holds them
//!   all while [`Env::pause`] is in force, as a stopped process would be
//!   (time moves on, timers fire, nothing runs), then lets them run their
//!   backlog; [`Env::abort_all`] drops them all, as a crash would.
//! - **Observation**: an optional [`Observer`] is told of lease transitions,
//!   peers coming and going, authentication failures and request outcomes
//!   as the node sees them ([`NodeEvent`]): the same events, by the same
//!   path, as `ClusterNode::subscribe_events` streams (less the per-request
//!   ones).
//!
//! Clock reads and sleeps go through Tokio's clock everywhere in the crate
//! (`tokio::time`), so the paused test clock drives them: the env does not
//! wrap it. One exception, the clock the fencing guard reads before every
//! hosted message: production and pausable envs read the OS coarse
//! monotonic clock there (cheaper; it ends a grant up to two ticks early),
//! a seeded env reads Tokio's, so the paused clock drives the
//! simulation's fencing too (`fence_clock.rs`).
//!
//! [`ClusterNode::start`]: crate::ClusterNode::start

use std::fmt;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::OnceLock;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::task::{Context, Poll, Waker};

use parking_lot::Mutex;
use rand::rngs::StdRng;
use rand::{Rng, RngExt, SeedableRng};
use tokio::task::{AbortHandle, JoinHandle};

use crate::error::RemoteError;
use crate::fence_clock::FenceClock;
use crate::handshake::{NonceError, fresh_nonce, nonce_from};
use crate::id::{NodeId, SessionId};
use crate::wire::hello::NONCE_LEN;

/// What a node tells its [`Observer`].
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum NodeEvent {
    /// The node acquired a shard's lease and hosts it from now on.
    ShardAcquired {
        /// The registry id.
        registry: String,
        /// The shard.
        shard: u32,
        /// The lease epoch.
        epoch: u64,
    },
    /// The node stopped using a shard because its lease is (or may be) lost:
    /// the local deadline passed or the store refused a renewal.
    ShardFenced {
        /// The registry id.
        registry: String,
        /// The shard.
        shard: u32,
        /// The lease epoch.
        epoch: u64,
    },
    /// The node started handing a shard over to its preferred owner.
    ShardHandedOver {
        /// The registry id.
        registry: String,
        /// The shard.
        shard: u32,
        /// The lease epoch.
        epoch: u64,
    },
    /// Every activation of a revoked shard (fenced, handed over, shut down)
    /// has ended: nothing of that grant runs on the node any more.
    ShardStopped {
        /// The registry id.
        registry: String,
        /// The shard.
        shard: u32,
        /// The lease epoch.
        epoch: u64,
    },
    /// The node gave a shard's lease back to the store (after a handover
    /// or at graceful shutdown, once the shard's activations had ended):
    /// another node may acquire it at once, at a greater epoch.
    ShardReleased {
        /// The registry id.
        registry: String,
        /// The shard.
        shard: u32,
        /// The epoch the lease was held at.
        epoch: u64,
    },
    /// An authenticated session with a peer joined the node's peer table.
    PeerUp {
        /// The peer's name.
        name: NodeId,
        /// The peer's session (a restarted peer is a new session).
        session: SessionId,
    },
    /// A peer's session left the node's peer table: its connection ended
    /// (closed, timed out, refused a bad frame) or a new session of the
    /// same name replaced it.
    PeerDown {
        /// The peer's name.
        name: NodeId,
        /// The session that ended.
        session: SessionId,
    },
    /// A handshake failed in a way that shows the other side cannot be in
    /// this node's cluster (a different token, no common protocol version).
    AuthFailed {
        /// The name this node dialled (`None` for an inbound connection:
        /// its claimed name is not authenticated).
        peer: Option<NodeId>,
        /// Who dialled.
        direction: crate::node::table::PeerDirection,
        /// Why.
        reason: crate::node::inspect::AuthFailureReason,
    },
    /// The store refused this node a registry's shards: they are held
    /// under another shard count (a node registered the registry with
    /// `theirs` shards, this one with `ours`).
    ShardCountConflict {
        /// The registry id.
        registry: String,
        /// This node's shard count.
        ours: u32,
        /// The count the store holds the registry's leases under.
        theirs: u64,
    },
    /// A peer's request was refused before execution (`reason` is the
    /// label the rejection is counted under in `inspect()`).
    Rejected {
        /// The rejection's label (`not_owner`, `stale_epoch`, ...).
        reason: &'static str,
    },
    /// A request of this node was tried again after `error`.
    Retried {
        /// The registry id.
        registry: String,
        /// The key.
        key: String,
        /// Why the previous attempt failed.
        error: RemoteError,
    },
}

/// Told of a node's [`NodeEvent`]s as they happen (synchronously, on the
/// node's tasks: keep it quick and never block).
pub trait Observer: Send + Sync + fmt::Debug + 'static {
    /// `node` saw `event`.
    fn event(&self, node: &SessionId, event: NodeEvent);
}

enum Random {
    /// The OS CSPRNG (nonces), the thread RNG (jitter).
    Os,
    /// One seeded generator for everything.
    Seeded(Box<Mutex<StdRng>>),
}

/// Holds the tasks of a pausable env while it is paused, and tracks them so
/// they can all be aborted.
#[derive(Debug, Default)]
struct Gate {
    paused: AtomicBool,
    waiting: Mutex<Vec<Waker>>,
    tasks: Mutex<Vec<AbortHandle>>,
}

struct EnvInner {
    random: Random,
    /// What the fencing guard reads before each hosted message.
    fence_clock: FenceClock,
    next_session: AtomicU64,
    gate: Option<Gate>,
    observer: OnceLock<Arc<dyn Observer>>,
}

/// A node's environment (see the module docs). Cheap to clone; clones share
/// one generator and one pause state.
#[derive(Clone)]
pub struct Env {
    inner: Arc<EnvInner>,
}

impl fmt::Debug for Env {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let random = match self.inner.random {
            Random::Os => "os",
            Random::Seeded(_) => "seeded",
        };
        f.debug_struct("Env")
            .field("random", &random)
            .field("pausable", &self.inner.gate.is_some())
            .field("observer", &self.inner.observer.get())
            .finish()
    }
}

impl Default for Env {
    fn default() -> Self {
        Env::production()
    }
}

/// Random per process, drawn once from the OS generator.
fn process_boot_id() -> u64 {
    static BOOT: OnceLock<u64> = OnceLock::new();
    *BOOT.get_or_init(|| match fresh_nonce() {
        Ok(nonce) => {
            let mut b = [0u8; 8];
            b.copy_from_slice(&nonce[..8]);
            u64::from_be_bytes(b)
        }
        Err(e) => {
            // Uniqueness, not secrecy, is what the boot id needs.
            tracing::warn!(error = %e, "os rng failed; deriving the boot id from time and pid");
            let nanos =
                std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.as_nanos() as u64);
            nanos ^ (u64::from(std::process::id()) << 32)
        }
    })
}

/// Sessions started by this process (production envs share it, so two nodes
/// of one name in one process still differ).
static PROCESS_SESSIONS: AtomicU64 = AtomicU64::new(0);

impl Env {
    fn build(random: Random, fence_clock: FenceClock, gate: Option<Gate>) -> Env {
        let next_session = AtomicU64::new(0);
        Env { inner: Arc::new(EnvInner { random, fence_clock, next_session, gate, observer: OnceLock::new() }) }
    }

    /// The production environment: OS randomness, `tokio::spawn`, no
    /// observer. What [`ClusterNode::start`](crate::ClusterNode::start) uses.
    pub fn production() -> Env {
        Env::build(Random::Os, FenceClock::os(), None)
    }

    /// A deterministic environment: every random choice comes from `seed`,
    /// session ids are numbered per env, and the node's tasks can be paused
    /// and aborted as one ([`Env::pause`], [`Env::abort_all`]).
    ///
    /// Its fencing guard reads Tokio's clock, so a paused test clock
    /// drives it.
    ///
    /// **Not for production**: nonces from a known seed are predictable, so
    /// a recorded handshake could be answered by anyone who knows the seed.
    pub fn seeded(seed: u64) -> Env {
        let random = Random::Seeded(Box::new(Mutex::new(StdRng::seed_from_u64(seed))));
        Env::build(random, FenceClock::Tokio, Some(Gate::default()))
    }

    /// The production environment, with tasks that can be paused and
    /// aborted as one (for process-pause tests on real randomness).
    ///
    /// Its fencing guard reads the OS clock, as in production: in real
    /// time, a paused node's backlog is refused once its grant's deadline
    /// has passed. On Tokio's paused clock use [`Env::seeded`], whose guard
    /// follows the paused clock.
    pub fn pausable() -> Env {
        Env::build(Random::Os, FenceClock::os(), Some(Gate::default()))
    }

    /// Sets the observer (once: `false`, and no change, if one is set).
    /// Clones share it.
    pub fn set_observer(&self, observer: Arc<dyn Observer>) -> bool {
        self.inner.observer.set(observer).is_ok()
    }

    /// A fresh handshake nonce.
    pub(crate) fn nonce(&self) -> Result<[u8; NONCE_LEN], NonceError> {
        match &self.inner.random {
            Random::Os => fresh_nonce(),
            Random::Seeded(rng) => Ok(nonce_from(&mut *rng.lock())),
        }
    }

    /// A jitter sample in `[0, 1]` (restart backoffs).
    pub(crate) fn jitter(&self) -> f64 {
        match &self.inner.random {
            Random::Os => rand::random::<f64>(),
            Random::Seeded(rng) => rng.lock().random::<f64>(),
        }
    }

    /// A new session id for a node named `node`.
    pub(crate) fn new_session(&self, node: NodeId) -> SessionId {
        match &self.inner.random {
            Random::Os => {
                SessionId { node, boot: process_boot_id(), counter: PROCESS_SESSIONS.fetch_add(1, Ordering::Relaxed) }
            }
            Random::Seeded(rng) => {
                let boot = rng.lock().next_u64();
                SessionId { node, boot, counter: self.inner.next_session.fetch_add(1, Ordering::Relaxed) }
            }
        }
    }

    /// The clock the fencing guard of this env's node reads.
    pub(crate) fn fence_clock(&self) -> FenceClock {
        self.inner.fence_clock
    }

    /// Whether an observer is set.
    pub(crate) fn has_observer(&self) -> bool {
        self.inner.observer.get().is_some()
    }

    /// Tells the observer, if any.
    pub(crate) fn observe(&self, node: &SessionId, event: impl FnOnce() -> NodeEvent) {
        if let Some(observer) = self.inner.observer.get() {
            observer.event(node, event());
        }
    }

    /// Starts `task` on the current Tokio runtime as one of this env's
    /// tasks (held while paused, aborted by [`Env::abort_all`]).
    ///
    /// # Panics
    /// Outside a Tokio runtime, as `tokio::spawn` does.
    pub fn spawn<F>(&self, task: F) -> JoinHandle<()>
    where
        F: Future<Output = ()> + Send + 'static,
    {
        let Some(gate) = &self.inner.gate else {
            return tokio::spawn(task);
        };
        let handle = tokio::spawn(Gated { env: self.clone(), task: Box::pin(task) });
        let mut tasks = gate.tasks.lock();
        // Forget finished tasks now and then, so the list stays as long as
        // the live tasks (amortised: at most once per doubling).
        if tasks.len() >= 64 && tasks.len().is_power_of_two() {
            tasks.retain(|t| !t.is_finished());
        }
        tasks.push(handle.abort_handle());
        handle
    }

    /// Stops every task of this env from making progress until
    /// [`Env::resume`], as a paused process: time moves on and timers fire,
    /// but nothing runs. No effect on an env that is not pausable.
    pub fn pause(&self) {
        if let Some(gate) = &self.inner.gate {
            gate.paused.store(true, Ordering::SeqCst);
        }
    }

    /// Lets the tasks run again; each then handles its backlog (expired
    /// timers, queued messages) as a resumed process would.
    pub fn resume(&self) {
        if let Some(gate) = &self.inner.gate {
            gate.paused.store(false, Ordering::SeqCst);
            let waiting = std::mem::take(&mut *gate.waiting.lock());
            for w in waiting {
                w.wake();
            }
        }
    }

    /// Whether [`Env::pause`] is in force.
    pub fn is_paused(&self) -> bool {
        self.inner.gate.as_ref().is_some_and(|g| g.paused.load(Ordering::SeqCst))
    }

    /// Aborts every task started through this env (a pausable env only), as
    /// a crash would: nothing of them runs again.
    pub fn abort_all(&self) {
        if let Some(gate) = &self.inner.gate {
            let tasks = std::mem::take(&mut *gate.tasks.lock());
            for t in tasks {
                t.abort();
            }
        }
    }

    /// A spawner for the node's actor system: its activations are tasks of
    /// this env too.
    pub(crate) fn system(&self) -> axactor::System {
        if self.inner.gate.is_none() && matches!(self.inner.random, Random::Os) {
            // Production: the runtime's own defaults (no boxing per spawn).
            return axactor::System::new();
        }
        let (spawn, jitter) = (self.clone(), self.clone());
        axactor::System::builder().spawner(Arc::new(spawn)).restart_jitter(move || jitter.jitter()).build()
    }
}

impl axactor::Spawner for Env {
    fn spawn(&self, task: axactor::BoxTask) -> JoinHandle<()> {
        Env::spawn(self, task)
    }
}

/// A task of a pausable env: not polled while the env is paused. (Boxed,
/// so it is `Unpin`; only pausable envs, i.e. tests and the simulation,
/// pay for the box.)
struct Gated {
    env: Env,
    task: axactor::BoxTask,
}

impl Future for Gated {
    type Output = ();

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<()> {
        let this = self.get_mut();
        if let Some(gate) = &this.env.inner.gate {
            // Read under the lock `resume` takes after clearing the flag, so
            // a waker is never parked after the resume that should wake it.
            let mut waiting = gate.waiting.lock();
            if gate.paused.load(Ordering::SeqCst) {
                if !waiting.iter().any(|w| w.will_wake(cx.waker())) {
                    waiting.push(cx.waker().clone());
                }
                return Poll::Pending;
            }
        }
        this.task.as_mut().poll(cx)
    }
}
