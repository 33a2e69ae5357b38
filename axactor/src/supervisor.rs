//! [`Supervisor`]: restarts a group of children together, Erlang style, and
//! [`SupervisorConfig`], its settings.
//!
//! A supervisor is not an actor; it is the public handle of a supervision
//! group (`group.rs`), the shared state its children's tasks consult when an
//! incarnation ends. This file spawns children into the group and stops or
//! joins them; the restart decision itself is the group's.

use std::fmt;
use std::sync::Arc;
use std::time::Duration;

use crate::group::Group;
use crate::mailbox::Control;
use crate::meta::ExitWait;
use crate::restart::Backoff;
use crate::restarter::Restarter;
use crate::run::MakeRepeat;
use crate::{Actor, ExitReason, Pid, SpawnConfig, SpawnError, SpawnHandle, SupervisionStrategy, System};

/// Settings of a [`Supervisor`] (builder).
#[derive(Debug, Clone)]
pub struct SupervisorConfig {
    strategy: SupervisionStrategy,
    max_restarts: usize,
    within: Duration,
    backoff: Backoff,
}

impl SupervisorConfig {
    /// A config with `strategy`, an intensity of 3 restarts within 5 s and no
    /// backoff.
    pub fn new(strategy: SupervisionStrategy) -> Self {
        SupervisorConfig {
            strategy,
            max_restarts: 3,
            within: Duration::from_secs(5),
            backoff: Backoff::new(Duration::ZERO, Duration::ZERO),
        }
    }

    /// At most `max_restarts` restarts within any window of `within`; one
    /// more failure stops every child with `RestartIntensityExceeded`.
    pub fn intensity(mut self, max_restarts: usize, within: Duration) -> Self {
        self.max_restarts = max_restarts;
        self.within = within;
        self
    }

    /// Delay before a failed child restarts: exponential in the number of
    /// restarts in the current window, between `min` and `max` (a `max`
    /// below `min` is raised to `min`).
    pub fn backoff(mut self, min: Duration, max: Duration) -> Self {
        self.backoff = Backoff::new(min, max.max(min));
        self
    }
}

/// A group of children restarted together according to a
/// [`SupervisionStrategy`].
///
/// ```
/// use axactor::{actor, SpawnConfig, Supervisor, SupervisorConfig, SupervisionStrategy, System};
/// use std::{sync::Arc, time::Duration};
///
/// pub struct Worker;
/// #[actor]
/// impl Worker {
///     #[msg] fn ping(&mut self) -> u32 { 1 }
/// }
///
/// # #[tokio::main] async fn main() {
/// let system = Arc::new(System::new());
/// let sup = Supervisor::new(system.clone(),
///     SupervisorConfig::new(SupervisionStrategy::OneForAll).intensity(5, Duration::from_secs(10)));
/// let a = sup.spawn_child(|| Worker, SpawnConfig::new("a", 16)).unwrap();
/// assert_eq!(a.actor().ping().await.unwrap(), 1);
/// sup.shutdown().await;
/// # }
/// ```
#[derive(Clone)]
pub struct Supervisor {
    system: Arc<System>,
    group: Arc<Group>,
}

impl Supervisor {
    /// An empty supervisor whose children run in `system`.
    pub fn new(system: Arc<System>, cfg: SupervisorConfig) -> Supervisor {
        let group = Group::new(cfg.strategy, cfg.backoff, cfg.max_restarts, cfg.within);
        Supervisor { system, group: Arc::new(group) }
    }

    /// Spawns a child built by `factory`. The supervisor's policy replaces
    /// the config's own restart policy: a child restarts after any abnormal
    /// end (a panic, `ctx.stop_with_exit` with an abnormal reason, a linked
    /// exit), except `Shutdown` and `Killed`; a `Normal` stop ends it for good.
    ///
    /// # Errors
    /// As [`System::spawn_with`], plus [`SpawnError::ShuttingDown`] once the
    /// supervisor gave up or was shut down.
    pub fn spawn_child<A, F>(&self, factory: F, cfg: SpawnConfig) -> Result<SpawnHandle<A::Ref>, SpawnError>
    where
        A: Actor,
        F: Fn() -> A + Send + Sync + 'static,
    {
        self.group.add_child(|child| {
            let jitter = cfg.jitter.clone().or_else(|| self.system.core_jitter());
            let handle = self.system.spawn_inner(MakeRepeat(factory), cfg, Restarter::Supervised(child, jitter))?;
            let cell = handle.cell().clone();
            Ok((handle, cell))
        })
    }

    /// Pids of the children, in start order.
    pub fn children(&self) -> Vec<Pid> {
        self.group.children().iter().map(|c| c.meta().pid()).collect()
    }

    /// Stops every child, last started first, waiting for each, and refuses
    /// new children and restarts from then on.
    ///
    /// # Cancel safety
    /// Dropping the future leaves the remaining children running.
    pub async fn shutdown(&self) {
        let children = self.group.close();
        for c in children.iter().rev() {
            let _ = c.signal(Control::Stop { reason: ExitReason::Shutdown });
            ExitWait::new(c.meta()).await;
        }
    }

    /// Resolves once every child has stopped for good: with
    /// `RestartIntensityExceeded` if the supervisor gave up, else `Normal`.
    ///
    /// # Cancel safety
    /// Cancel safe.
    pub async fn join(&self) -> ExitReason {
        let children = self.group.children();
        for c in &children {
            ExitWait::new(c.meta()).await;
        }
        if self.group.gave_up() { ExitReason::RestartIntensityExceeded } else { ExitReason::Normal }
    }
}

impl fmt::Debug for Supervisor {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Supervisor")
            .field("strategy", &self.group.strategy())
            .field("children", &self.children())
            .finish()
    }
}
