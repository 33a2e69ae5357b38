//! A supervision group: the state a [`Supervisor`](crate::Supervisor) shares
//! with its children's tasks (the children in start order, the restart
//! intensity, whether the group gave up or shut down) and the decision a
//! failing child takes under the group lock (`SupervisedChild::decide`).
//!
//! The child whose incarnation ended decides whether the group may restart
//! (at most `max_restarts` within `within`) and which siblings restart with
//! it ([`SupervisionStrategy`]). Siblings are told through their control
//! mailbox (`Control::Restart`), so every restart happens in place: pids and
//! refs stay valid. When the intensity is exceeded, every child stops with
//! [`ExitReason::RestartIntensityExceeded`].
//!
//! Signals are sent after the group lock is released, so the lock order is
//! always group → nothing.

use std::sync::Arc;
use std::time::Duration;

use parking_lot::Mutex;
use tokio::time::Instant;

use crate::cell_ops::CellOps;
use crate::env::{JitterFn, sample_jitter};
use crate::mailbox::Control;
use crate::restart::{Backoff, Intensity, Outcome};
use crate::{ExitReason, SpawnError};

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

struct GroupState {
    children: Vec<Arc<dyn CellOps>>,
    intensity: Intensity,
    /// Set when the intensity was exceeded or `shutdown` began: no more
    /// restarts.
    closed: Option<ExitReason>,
}

/// The shared state of one supervisor's children.
pub(crate) struct Group {
    strategy: SupervisionStrategy,
    backoff: Backoff,
    state: Mutex<GroupState>,
}

impl Group {
    /// An empty, open group.
    pub(crate) fn new(strategy: SupervisionStrategy, backoff: Backoff, max_restarts: usize, within: Duration) -> Group {
        Group {
            strategy,
            backoff,
            state: Mutex::new(GroupState {
                children: Vec::new(),
                intensity: Intensity::new(max_restarts, within),
                closed: None,
            }),
        }
    }

    pub(crate) fn strategy(&self) -> SupervisionStrategy {
        self.strategy
    }

    /// Adds a child: `spawn` starts it with its link to the group and returns
    /// its cell. Runs under the group lock, so a child that fails at once
    /// decides only after it is a member.
    ///
    /// # Errors
    /// [`SpawnError::ShuttingDown`] once the group gave up or shut down, or
    /// what `spawn` returns.
    pub(crate) fn add_child<T>(
        self: &Arc<Self>,
        spawn: impl FnOnce(SupervisedChild) -> Result<(T, Arc<dyn CellOps>), SpawnError>,
    ) -> Result<T, SpawnError> {
        let mut st = self.state.lock();
        if st.closed.is_some() {
            return Err(SpawnError::ShuttingDown);
        }
        let child = SupervisedChild { group: self.clone(), index: st.children.len() };
        let (out, cell) = spawn(child)?;
        st.children.push(cell);
        Ok(out)
    }

    /// The children, in start order.
    pub(crate) fn children(&self) -> Vec<Arc<dyn CellOps>> {
        self.state.lock().children.clone()
    }

    /// Refuses restarts and new children from now on (unless the group
    /// already gave up); returns the children, in start order.
    pub(crate) fn close(&self) -> Vec<Arc<dyn CellOps>> {
        let mut st = self.state.lock();
        st.closed.get_or_insert(ExitReason::Shutdown);
        st.children.clone()
    }

    /// `true` if the restart intensity was exceeded.
    pub(crate) fn gave_up(&self) -> bool {
        matches!(self.state.lock().closed, Some(ExitReason::RestartIntensityExceeded))
    }
}

/// A child's link to its group, held by the child's task.
pub(crate) struct SupervisedChild {
    group: Arc<Group>,
    index: usize,
}

impl SupervisedChild {
    /// Called by the child's task when an incarnation ended with `reason`.
    pub(crate) fn decide(&mut self, reason: &ExitReason, jitter: Option<&JitterFn>) -> Outcome {
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
