//! [`System`]: spawns actors (config validation, runtime lookup, pid-table
//! registration, starting the task), the public link and monitor entry
//! points, lifecycle subscriptions and `shutdown_graceful`; and
//! [`SystemBuilder`], which builds a system with a custom environment.
//!
//! The state behind a system (pid table, lifecycle broadcast, shutdown flag)
//! is its `SystemCore` (`system_core.rs`), shared with every actor's cell and
//! context.

use std::fmt;
use std::sync::Arc;
use std::time::Duration;

use tokio::sync::broadcast;
use tokio::task::JoinHandle;

use crate::cell::{Cell, KillGuard};
use crate::env::{JitterFn, Spawner};
use crate::lifecycle::ActorLifecycleEvent;
use crate::meta::ExitWait;
use crate::restarter::Restarter;
use crate::run::{MakeActor, MakeOnce, MakeRepeat, RunSpec, run_actor};
use crate::system_core::SystemCore;
use crate::{Actor, ExitReason, LocalRef, MonitorId, Pid, SpawnConfig, SpawnError, SpawnHandle};

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

    fn from_builder(b: SystemBuilder) -> System {
        System { core: Arc::new(SystemCore::new(b.spawner, b.jitter)) }
    }

    /// The system's restart jitter source, if it has one.
    pub(crate) fn core_jitter(&self) -> Option<JitterFn> {
        self.core.jitter().cloned()
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
        let restarter = Restarter::from_config(&cfg, self.core.jitter());
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
        F: MakeActor<A>,
    {
        cfg.validate()?;
        if self.core.is_shutting_down() {
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
        self.core.subscribe_lifecycle()
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
        self.core.begin_shutdown();
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

/// Builds a [`System`] with a custom environment.
///
/// ```
/// use axactor::System;
///
/// // Deterministic restart jitter (always the full backoff).
/// let system = System::builder().restart_jitter(|| 1.0).build();
/// # drop(system);
/// ```
#[derive(Default)]
pub struct SystemBuilder {
    spawner: Option<Arc<dyn Spawner>>,
    jitter: Option<JitterFn>,
}

impl fmt::Debug for SystemBuilder {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SystemBuilder").field("spawner", &self.spawner).field("jitter", &self.jitter.is_some()).finish()
    }
}

impl SystemBuilder {
    /// Starts every actor task (and every actor timer) through `spawner`
    /// instead of `tokio::spawn`.
    pub fn spawner(mut self, spawner: Arc<dyn Spawner>) -> Self {
        self.spawner = Some(spawner);
        self
    }

    /// The jitter source of restart backoffs for actors whose
    /// [`SpawnConfig`](crate::SpawnConfig) has none of its own
    /// (`restart_jitter`); samples must lie in `[0, 1]`. Without it, the
    /// thread RNG is used.
    pub fn restart_jitter(mut self, sample: impl Fn() -> f64 + Send + Sync + 'static) -> Self {
        self.jitter = Some(Arc::new(sample));
        self
    }

    /// The system.
    pub fn build(self) -> System {
        System::from_builder(self)
    }
}
