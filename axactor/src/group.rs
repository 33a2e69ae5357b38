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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::meta::Meta;
    use crate::{Pid, TellError};

    /// A cell that records the signals it gets.
    #[derive(Debug)]
    struct FakeCell {
        meta: Meta,
        signals: Mutex<Vec<Control>>,
    }

    impl CellOps for FakeCell {
        fn meta(&self) -> &Meta {
            &self.meta
        }
        fn signal(&self, c: Control) -> Result<(), TellError> {
            self.signals.lock().push(c);
            Ok(())
        }
        fn kill(&self, _reason: ExitReason) {}
        fn drain(&self, _reason: ExitReason) -> Result<(), TellError> {
            Ok(())
        }
        fn activity(&self) -> u64 {
            0
        }
        fn mailbox_len(&self) -> usize {
            0
        }
        fn is_closed(&self) -> bool {
            false
        }
    }

    fn ms(n: u64) -> Duration {
        Duration::from_millis(n)
    }

    fn full_jitter() -> JitterFn {
        Arc::new(|| 1.0)
    }

    /// A group of `n` fake children; their cells and their links to the group.
    fn group(
        strategy: SupervisionStrategy,
        max_restarts: usize,
        n: usize,
    ) -> (Arc<Group>, Vec<Arc<FakeCell>>, Vec<SupervisedChild>) {
        let g = Arc::new(Group::new(strategy, Backoff::new(ms(10), ms(100)), max_restarts, Duration::from_secs(60)));
        let mut cells = Vec::new();
        let mut links = Vec::new();
        for i in 0..n {
            let cell = Arc::new(FakeCell {
                meta: Meta::new(Pid::next(), Arc::from(format!("c{i}"))),
                signals: Mutex::default(),
            });
            let dyn_cell: Arc<dyn CellOps> = cell.clone();
            links.push(g.add_child(|child| Ok((child, dyn_cell))).expect("the group is open"));
            cells.push(cell);
        }
        (g, cells, links)
    }

    fn restarts(cell: &FakeCell) -> usize {
        cell.signals.lock().iter().filter(|c| matches!(c, Control::Restart)).count()
    }

    fn stops(cell: &FakeCell) -> Vec<ExitReason> {
        cell.signals
            .lock()
            .iter()
            .filter_map(|c| match c {
                Control::Stop { reason } => Some(reason.clone()),
                _ => None,
            })
            .collect()
    }

    #[test]
    fn normal_shutdown_and_killed_end_the_child_without_touching_the_group() {
        let (_g, cells, mut links) = group(SupervisionStrategy::OneForAll, 3, 2);
        for reason in [ExitReason::Normal, ExitReason::Shutdown, ExitReason::Killed] {
            assert_eq!(links[0].decide(&reason, None), Outcome::Stop(reason.clone()));
        }
        assert!(cells.iter().all(|c| c.signals.lock().is_empty()));
    }

    #[test]
    fn one_for_one_restarts_only_the_failed_child() {
        let (_g, cells, mut links) = group(SupervisionStrategy::OneForOne, 3, 3);
        let j = full_jitter();
        assert_eq!(links[1].decide(&ExitReason::Panic, Some(&j)), Outcome::Restart(ms(10)));
        assert!(cells.iter().all(|c| c.signals.lock().is_empty()));
    }

    #[test]
    fn one_for_all_restarts_every_sibling() {
        let (_g, cells, mut links) = group(SupervisionStrategy::OneForAll, 3, 3);
        let j = full_jitter();
        assert_eq!(links[1].decide(&ExitReason::Panic, Some(&j)), Outcome::Restart(ms(10)));
        assert_eq!(cells.iter().map(|c| restarts(c)).collect::<Vec<_>>(), vec![1, 0, 1]);
    }

    #[test]
    fn rest_for_one_restarts_the_children_started_later() {
        let (_g, cells, mut links) = group(SupervisionStrategy::RestForOne, 3, 4);
        let j = full_jitter();
        assert_eq!(links[1].decide(&ExitReason::Panic, Some(&j)), Outcome::Restart(ms(10)));
        assert_eq!(cells.iter().map(|c| restarts(c)).collect::<Vec<_>>(), vec![0, 0, 1, 1]);
    }

    #[test]
    fn the_backoff_grows_with_the_restarts_in_the_window() {
        let (_g, _cells, mut links) = group(SupervisionStrategy::OneForOne, 5, 2);
        let j = full_jitter();
        let delays: Vec<_> = (0..4).map(|i| links[i % 2].decide(&ExitReason::Panic, Some(&j))).collect();
        let want: Vec<_> = [10, 20, 40, 80].map(|d| Outcome::Restart(ms(d))).into();
        assert_eq!(delays, want);
    }

    #[test]
    fn exceeding_the_intensity_stops_every_sibling_and_closes_the_group() {
        let (g, cells, mut links) = group(SupervisionStrategy::OneForOne, 1, 3);
        let j = full_jitter();
        assert_eq!(links[0].decide(&ExitReason::Panic, Some(&j)), Outcome::Restart(ms(10)));
        let gave_up = Outcome::Stop(ExitReason::RestartIntensityExceeded);
        assert_eq!(links[2].decide(&ExitReason::Panic, Some(&j)), gave_up);
        assert_eq!(stops(&cells[0]), vec![ExitReason::RestartIntensityExceeded]);
        assert_eq!(stops(&cells[1]), vec![ExitReason::RestartIntensityExceeded]);
        assert!(stops(&cells[2]).is_empty());
        assert!(g.gave_up());
        // Closed: a later failure just ends that child, a new child is refused.
        assert_eq!(links[1].decide(&ExitReason::Panic, Some(&j)), Outcome::Stop(ExitReason::Panic));
        let refused = g.add_child(|child| Ok((child, cells[0].clone() as Arc<dyn CellOps>)));
        assert!(matches!(refused, Err(SpawnError::ShuttingDown)));
        // `close` keeps the reason the group gave up with.
        assert_eq!(g.close().len(), 3);
        assert!(g.gave_up());
    }

    #[test]
    fn a_closed_group_refuses_restarts_and_children() {
        let (g, cells, mut links) = group(SupervisionStrategy::OneForAll, 3, 2);
        assert_eq!(g.close().len(), 2);
        assert!(!g.gave_up());
        assert_eq!(links[0].decide(&ExitReason::Panic, None), Outcome::Stop(ExitReason::Panic));
        assert!(cells.iter().all(|c| c.signals.lock().is_empty()));
        let refused = g.add_child(|child| Ok((child, cells[0].clone() as Arc<dyn CellOps>)));
        assert!(matches!(refused, Err(SpawnError::ShuttingDown)));
        assert_eq!(g.children().len(), 2);
    }

    #[test]
    fn a_failed_spawn_adds_no_child() {
        let (g, _cells, _links) = group(SupervisionStrategy::OneForOne, 3, 1);
        let r = g.add_child::<()>(|_child| Err(SpawnError::NoRuntime));
        assert!(matches!(r, Err(SpawnError::NoRuntime)));
        assert_eq!(g.children().len(), 1);
    }
}
