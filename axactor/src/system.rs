//! [`System`]: spawns actors and owns the pid table, the lifecycle broadcast,
//! links, monitors and shutdown.
//!
//! The pid table is sharded (`SHARDS` mutex-protected maps keyed by pid) so
//! spawns and exits on different workers rarely meet on one lock. Links and
//! monitors live in each actor's cell, not in a global map; the table is only
//! used to find a cell from a pid.

use std::collections::HashMap;
use std::hash::{BuildHasherDefault, Hasher};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use parking_lot::Mutex;
use tokio::sync::broadcast;
use tokio::task::JoinHandle;

use crate::cell::{Cell, CellOps, ExitWait, KillGuard};
use crate::config::JitterFn;
use crate::env::{BoxTask, Spawner, SystemBuilder};
use crate::lifecycle::{ActorLifecycleEvent, ActorLifecycleEventKind, LIFECYCLE_CAPACITY};
use crate::mailbox::Control;
use crate::run::{MakeOnce, MakeRepeat, Restarter, RunSpec, run_actor};
use crate::{Actor, ExitReason, LocalRef, MonitorId, Pid, SpawnConfig, SpawnError, SpawnHandle};

const SHARDS: usize = 16;

/// Pids are sequential: a multiplicative mix is all the hashing they need.
#[derive(Default)]
struct PidHasher(u64);

impl Hasher for PidHasher {
    fn finish(&self) -> u64 {
        self.0
    }
    fn write(&mut self, bytes: &[u8]) {
        for b in bytes {
            self.0 = (self.0 << 8 | u64::from(*b)).wrapping_mul(0x9E37_79B9_7F4A_7C15);
        }
    }
    fn write_u64(&mut self, n: u64) {
        self.0 = n.wrapping_mul(0x9E37_79B9_7F4A_7C15);
    }
}

type PidMap = HashMap<Pid, Arc<dyn CellOps>, BuildHasherDefault<PidHasher>>;

/// State shared by the system, its actors and their contexts.
pub(crate) struct SystemCore {
    shards: [Mutex<PidMap>; SHARDS],
    lifecycle: broadcast::Sender<ActorLifecycleEvent>,
    /// Set by the first `subscribe_lifecycle`; never cleared.
    lifecycle_used: AtomicBool,
    shutting_down: AtomicBool,
    /// Starts actor tasks; `tokio::spawn` when `None`.
    spawner: Option<Arc<dyn Spawner>>,
    /// Restart jitter for actors without their own; the thread RNG when `None`.
    pub(crate) jitter: Option<JitterFn>,
}

impl std::fmt::Debug for SystemCore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SystemCore").field("actors", &self.len()).finish_non_exhaustive()
    }
}

impl SystemCore {
    fn shard(&self, pid: Pid) -> &Mutex<PidMap> {
        // The modulo keeps the index in range.
        &self.shards[(pid.as_u64() % SHARDS as u64) as usize]
    }

    fn register(&self, pid: Pid, cell: Arc<dyn CellOps>) {
        self.shard(pid).lock().insert(pid, cell);
    }

    pub(crate) fn unregister(&self, pid: Pid) {
        self.shard(pid).lock().remove(&pid);
    }

    pub(crate) fn lookup(&self, pid: Pid) -> Option<Arc<dyn CellOps>> {
        self.shard(pid).lock().get(&pid).cloned()
    }

    fn len(&self) -> usize {
        self.shards.iter().map(|s| s.lock().len()).sum()
    }

    /// Every live cell, in pid order.
    fn all(&self) -> Vec<Arc<dyn CellOps>> {
        let mut v: Vec<_> = self.shards.iter().flat_map(|s| s.lock().values().cloned().collect::<Vec<_>>()).collect();
        v.sort_by_key(|c| c.meta().pid());
        v
    }

    /// Starts a task of this system (an actor, a timer) through its spawner.
    pub(crate) fn spawn_task(&self, task: impl std::future::Future<Output = ()> + Send + 'static) -> JoinHandle<()> {
        match &self.spawner {
            Some(s) => s.spawn(Box::pin(task) as BoxTask),
            None => tokio::spawn(task),
        }
    }

    pub(crate) fn emit(&self, pid: Pid, name: &str, kind: ActorLifecycleEventKind, reason: Option<ExitReason>) {
        // One relaxed load instead of the channel's lock when nobody ever
        // subscribed (the common case in production).
        if !self.lifecycle_used.load(Ordering::Relaxed) || self.lifecycle.receiver_count() == 0 {
            return;
        }
        let _ = self.lifecycle.send(ActorLifecycleEvent { pid, name: name.to_owned(), kind, reason });
    }

    pub(crate) fn link(&self, a: Pid, b: Pid) -> bool {
        if a == b {
            return false;
        }
        let (Some(ca), Some(cb)) = (self.lookup(a), self.lookup(b)) else {
            return false;
        };
        if !ca.meta().add_link(b) {
            return false;
        }
        if !cb.meta().add_link(a) {
            // `b` exited between the lookups: undo, like a link to a dead pid.
            ca.meta().remove_link(b);
            return false;
        }
        true
    }

    pub(crate) fn unlink(&self, a: Pid, b: Pid) {
        if let Some(c) = self.lookup(a) {
            c.meta().remove_link(b);
        }
        if let Some(c) = self.lookup(b) {
            c.meta().remove_link(a);
        }
    }

    pub(crate) fn monitor(&self, watcher: Pid, target: Pid) -> Option<MonitorId> {
        let w = self.lookup(watcher)?;
        let id = MonitorId::next();
        if !w.meta().add_watching(id, target) {
            return None;
        }
        let outcome = match self.lookup(target) {
            Some(t) => t.meta().add_watcher(id, watcher),
            None => Err(ExitReason::NoProc),
        };
        if let Err(reason) = outcome {
            // Already gone: the down notice is due at once.
            let _ = w.signal(Control::Down { id, pid: target, reason });
        }
        Some(id)
    }

    pub(crate) fn demonitor(&self, watcher: Pid, id: MonitorId) -> bool {
        let Some(w) = self.lookup(watcher) else {
            return false;
        };
        let Some(target) = w.meta().take_watching(id) else {
            return false;
        };
        if let Some(t) = self.lookup(target) {
            t.meta().remove_watcher(id);
        }
        true
    }
}

/// The actor system: spawns actors and links, monitors and stops them.
///
/// Share it as `Arc<System>`. Actors run on the Tokio runtime that is current
/// when they are spawned.
#[derive(Debug)]
pub struct System {
    core: Arc<SystemCore>,
}

impl Default for System {
    fn default() -> Self {
        System::new()
    }
}

impl System {
    /// An empty system.
    pub fn new() -> System {
        System::from_builder(SystemBuilder::default())
    }

    /// A builder for a system with a custom environment (task spawner,
    /// restart jitter source).
    pub fn builder() -> SystemBuilder {
        SystemBuilder::default()
    }

    pub(crate) fn from_builder(b: SystemBuilder) -> System {
        let (lifecycle, _) = broadcast::channel(LIFECYCLE_CAPACITY);
        System {
            core: Arc::new(SystemCore {
                shards: std::array::from_fn(|_| Mutex::new(PidMap::default())),
                lifecycle,
                lifecycle_used: AtomicBool::new(false),
                shutting_down: AtomicBool::new(false),
                spawner: b.spawner,
                jitter: b.jitter,
            }),
        }
    }

    /// The system's restart jitter source, if it has one.
    pub(crate) fn core_jitter(&self) -> Option<JitterFn> {
        self.core.jitter.clone()
    }

    /// Starts `task` the way this system starts its actors (through its
    /// spawner, if it has one).
    pub(crate) fn spawn_task(&self, task: impl std::future::Future<Output = ()> + Send + 'static) -> JoinHandle<()> {
        self.core.spawn_task(task)
    }

    /// Spawns an actor built by `factory`, which runs again on every restart
    /// (see [`SpawnConfig::restart_on_panic`]).
    ///
    /// # Errors
    /// [`SpawnError::NoRuntime`] outside a Tokio runtime,
    /// [`SpawnError::ShuttingDown`] after `shutdown_graceful` began,
    /// [`SpawnError::InvalidConfig`] for an unusable config.
    pub fn spawn_with<A, F>(&self, factory: F, cfg: SpawnConfig) -> Result<SpawnHandle<A::Ref>, SpawnError>
    where
        A: Actor,
        F: Fn() -> A + Send + Sync + 'static,
    {
        let restarter = Restarter::from_config(&cfg, self.core.jitter.as_ref());
        self.spawn_inner(MakeRepeat(factory), cfg, restarter)
    }

    /// Spawns an already built actor. It is never restarted: a panic stops it
    /// with `ExitReason::Panic`, whatever the config's restart policy.
    ///
    /// # Errors
    /// As [`System::spawn_with`].
    pub fn spawn<A: Actor>(&self, actor: A, cfg: SpawnConfig) -> Result<SpawnHandle<A::Ref>, SpawnError> {
        self.spawn_inner(MakeOnce(Some(actor)), cfg, Restarter::Never)
    }

    pub(crate) fn spawn_inner<A, F>(
        &self,
        make: F,
        cfg: SpawnConfig,
        restarter: Restarter,
    ) -> Result<SpawnHandle<A::Ref>, SpawnError>
    where
        A: Actor,
        F: crate::run::MakeActor<A>,
    {
        cfg.validate()?;
        if self.core.shutting_down.load(Ordering::Acquire) {
            return Err(SpawnError::ShuttingDown);
        }
        if tokio::runtime::Handle::try_current().is_err() {
            return Err(SpawnError::NoRuntime);
        }
        let pid = Pid::next();
        let cell = Arc::new(Cell::<A::Msg>::new(pid, &cfg, self.core.clone()));
        self.core.register(pid, cell.clone());
        let spec = RunSpec { restarter, restart_mailbox: cfg.restart_mailbox, fence: cfg.fence, guard: cfg.run_guard };
        let guard = KillGuard { cell: Some(cell.clone()) };
        let task = self.core.spawn_task(run_actor(cell.clone(), make, spec, guard));
        cell.meta.set_abort(task.abort_handle());
        let local = LocalRef::from_cell(cell);
        let ops = local.cell_ops();
        Ok(SpawnHandle::new(A::Ref::from(local), ops))
    }

    /// Subscribes to lifecycle events of every actor of this system.
    pub fn subscribe_lifecycle(&self) -> broadcast::Receiver<ActorLifecycleEvent> {
        self.core.lifecycle_used.store(true, Ordering::Relaxed);
        self.core.lifecycle.subscribe()
    }

    /// Links `a` and `b`: when one exits abnormally (any reason but
    /// `Normal`), the other exits with the same reason, unless it traps exits
    /// (`ctx.trap_exit(true)`), in which case its `on_exit` hook runs. Links
    /// are symmetric, survive restarts, and fire once, at the final exit.
    /// Returns `false` if either actor is not alive or `a == b`.
    pub fn link(&self, a: Pid, b: Pid) -> bool {
        self.core.link(a, b)
    }

    /// Removes the link between `a` and `b`, if any.
    pub fn unlink(&self, a: Pid, b: Pid) {
        self.core.unlink(a, b);
    }

    /// `watcher` monitors `target`: when `target` stops for good, the
    /// watcher's `on_down` hook runs once with the reason. If `target` is
    /// already gone, `on_down` runs at once (reason `NoProc` if the runtime no
    /// longer knows it). `None` if `watcher` is not alive.
    pub fn monitor(&self, watcher: Pid, target: Pid) -> Option<MonitorId> {
        self.core.monitor(watcher, target)
    }

    /// Removes a monitor. Returns `true` if it was active; after that its
    /// `on_down` never runs, even if the down notice was already queued.
    pub fn demonitor(&self, watcher: Pid, id: MonitorId) -> bool {
        self.core.demonitor(watcher, id)
    }

    /// Number of live actors.
    pub fn actor_count(&self) -> usize {
        self.core.len()
    }

    /// Stops every actor: each closes its mailbox, handles what is already
    /// queued and runs `on_stop` (reason `Shutdown`); at the deadline, every
    /// actor still running is killed (`ExitReason::Killed`, its task aborted).
    /// Returns by the deadline, with every actor stopped. New spawns fail
    /// with `SpawnError::ShuttingDown` from the moment it is called.
    ///
    /// # Cancel safety
    /// Dropping the future before it completes leaves the stop requests in
    /// place but does not kill the stragglers.
    pub async fn shutdown_graceful(&self, timeout: Duration) {
        self.core.shutting_down.store(true, Ordering::Release);
        let deadline = tokio::time::Instant::now() + timeout;
        let cells = self.core.all();
        for c in &cells {
            let _ = c.drain(ExitReason::Shutdown);
        }
        for c in &cells {
            if tokio::time::timeout_at(deadline, ExitWait::new(c.meta())).await.is_err() {
                break;
            }
        }
        // Kill stragglers, including actors spawned while we waited.
        for c in self.core.all() {
            if c.meta().exit_reason().is_none() {
                tracing::warn!(pid = %c.meta().pid(), name = %c.meta().name(), "killed at shutdown deadline");
                c.kill(ExitReason::Killed);
            }
        }
    }
}
