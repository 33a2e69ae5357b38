//! [`Supervisor`]: restarts a group of children together, Erlang style.
//!
//! A supervisor is not an actor; it is shared state consulted by its
//! children's tasks when an incarnation ends. The child that failed decides,
//! under the group lock, whether the group may restart (restart intensity:
//! at most `max_restarts` within `within`) and which siblings restart with it
//! (the strategy). Siblings are told through their control mailbox
//! (`Control::Restart`), so every restart happens in place: pids and refs
//! stay valid. When the intensity is exceeded, every child stops with
//! [`ExitReason::RestartIntensityExceeded`].
//!
//! Signals are sent after the group lock is released, so the lock order is
//! always group → nothing.

use std::fmt;
use std::sync::Arc;
use std::time::Duration;

use parking_lot::Mutex;
use tokio::time::Instant;

use crate::cell::{CellOps, ExitWait};
use crate::mailbox::Control;
use crate::restart::{Backoff, Intensity};
use crate::run::{MakeRepeat, Outcome, Restarter, sample_jitter};
use crate::{Actor, ExitReason, Pid, SpawnConfig, SpawnError, SpawnHandle, System};

/// Which children restart when one fails.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SupervisionStrategy {
    /// Only the failed child restarts.
    OneForOne,
    /// Every child restarts.
    OneForAll,
    /// The failed child and every child started after it restart.
    RestForOne,
}

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
            backoff: Backoff { min: Duration::ZERO, max: Duration::ZERO },
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
        self.backoff = Backoff { min, max: max.max(min) };
        self
    }
}

struct GroupState {
    children: Vec<Arc<dyn CellOps>>,
    intensity: Intensity,
    /// Set when the intensity was exceeded or `shutdown` began: no more
    /// restarts.
    closed: Option<ExitReason>,
}

struct Group {
    strategy: SupervisionStrategy,
    backoff: Backoff,
    state: Mutex<GroupState>,
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
        let group = Group {
            strategy: cfg.strategy,
            backoff: cfg.backoff,
            state: Mutex::new(GroupState {
                children: Vec::new(),
                intensity: Intensity::new(cfg.max_restarts, cfg.within),
                closed: None,
            }),
        };
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
        let mut st = self.group.state.lock();
        if st.closed.is_some() {
            return Err(SpawnError::ShuttingDown);
        }
        let index = st.children.len();
        let child = SupervisedChild { group: self.group.clone(), index };
        let jitter = cfg.jitter.clone().or_else(|| self.system.core_jitter());
        let handle = self.system.spawn_inner(MakeRepeat(factory), cfg, Restarter::Supervised(child, jitter))?;
        st.children.push(handle.cell().clone());
        Ok(handle)
    }

    /// Pids of the children, in start order.
    pub fn children(&self) -> Vec<Pid> {
        self.group.state.lock().children.iter().map(|c| c.meta().pid()).collect()
    }

    /// Stops every child, last started first, waiting for each, and refuses
    /// new children and restarts from then on.
    ///
    /// # Cancel safety
    /// Dropping the future leaves the remaining children running.
    pub async fn shutdown(&self) {
        let children = {
            let mut st = self.group.state.lock();
            st.closed.get_or_insert(ExitReason::Shutdown);
            st.children.clone()
        };
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
        let children = self.group.state.lock().children.clone();
        for c in &children {
            ExitWait::new(c.meta()).await;
        }
        match &self.group.state.lock().closed {
            Some(ExitReason::RestartIntensityExceeded) => ExitReason::RestartIntensityExceeded,
            _ => ExitReason::Normal,
        }
    }
}

impl fmt::Debug for Supervisor {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Supervisor")
            .field("strategy", &self.group.strategy)
            .field("children", &self.children())
            .finish()
    }
}

/// A child's link to its group, held by the child's task.
pub(crate) struct SupervisedChild {
    group: Arc<Group>,
    index: usize,
}

impl SupervisedChild {
    /// Called by the child's task when an incarnation ended with `reason`.
    pub(crate) fn decide(&mut self, reason: &ExitReason, jitter: Option<&crate::config::JitterFn>) -> Outcome {
        if matches!(reason, ExitReason::Normal | ExitReason::Shutdown | ExitReason::Killed) {
            return Outcome::Stop(reason.clone());
        }
        let (outcome, signals) = {
            let mut st = self.group.state.lock();
            if st.closed.is_some() {
                return Outcome::Stop(reason.clone());
            }
            match st.intensity.allow(Instant::now()) {
                None => {
                    st.closed = Some(ExitReason::RestartIntensityExceeded);
                    let stop = Control::Stop { reason: ExitReason::RestartIntensityExceeded };
                    (Outcome::Stop(ExitReason::RestartIntensityExceeded), self.siblings(&st, stop))
                }
                Some(attempt) => {
                    let delay = self.group.backoff.delay(attempt, sample_jitter(jitter));
                    let signals = match self.group.strategy {
                        SupervisionStrategy::OneForOne => Vec::new(),
                        SupervisionStrategy::OneForAll => self.siblings(&st, Control::Restart),
                        SupervisionStrategy::RestForOne => {
                            st.children.iter().skip(self.index + 1).map(|c| (c.clone(), Control::Restart)).collect()
                        }
                    };
                    (Outcome::Restart(delay), signals)
                }
            }
        };
        for (cell, c) in signals {
            let _ = cell.signal(c);
        }
        outcome
    }

    fn siblings(&self, st: &GroupState, c: Control) -> Vec<(Arc<dyn CellOps>, Control)> {
        st.children
            .iter()
            .enumerate()
            .filter(|(i, _)| *i != self.index)
            .map(|(_, cell)| (cell.clone(), c.clone()))
            .collect()
    }
}
