//! [`Tasks`]: the node's stop and the set of its live tasks. Only this file
//! touches them: the stop signal (with its atomic mirror for hot paths),
//! and the tracked tasks `shutdown` waits for (and aborts after its bound).

use std::collections::BTreeMap;
use std::future::Future;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::Duration;

use tokio::sync::watch;
use tokio::task::AbortHandle;

use crate::env::Env;
use crate::signal::Signal;

/// See the module docs.
#[derive(Debug)]
pub(crate) struct Tasks {
    /// `true` once shutdown has begun.
    stop: Signal<bool>,
    /// Mirrors `stop` (set first), for the hot paths (inline in the node's
    /// context: one load per request).
    stopping: AtomicBool,
    /// The tracked tasks (shared with each task's guard).
    set: Arc<TaskSet>,
}

/// The tracked tasks by id, with their abort handles once known.
#[derive(Debug)]
struct TaskSet {
    next_task: AtomicU64,
    tasks: watch::Sender<BTreeMap<u64, Option<AbortHandle>>>,
}

impl Tasks {
    pub(crate) fn new() -> Tasks {
        Tasks {
            stop: Signal::new(false),
            stopping: AtomicBool::new(false),
            set: Arc::new(TaskSet { next_task: AtomicU64::new(0), tasks: watch::Sender::new(BTreeMap::new()) }),
        }
    }

    /// Whether the node's stop has begun.
    #[inline]
    pub(crate) fn is_stopping(&self) -> bool {
        // Read on every request: an atomic, not the signal's lock.
        self.stopping.load(Ordering::Acquire)
    }

    /// Starts the node's stop: `is_stopping` from now on, and every task
    /// waiting in [`Tasks::stopped`] is told.
    pub(crate) fn begin_stop(&self) {
        self.stopping.store(true, Ordering::Release);
        self.stop.set(true);
    }

    /// Completes once the node's stop has begun.
    ///
    /// # Cancel safety
    /// Cancel safe: nothing is consumed.
    pub(crate) fn stopped(&self) -> impl Future<Output = bool> + '_ {
        self.stop.wait_for(|s| *s)
    }

    /// Spawns `fut` through `env` as a tracked task (one [`Tasks::join`]
    /// waits for, and aborts after its bound).
    pub(crate) fn spawn(&self, env: &Env, fut: impl Future<Output = ()> + Send + 'static) {
        let id = self.set.next_task.fetch_add(1, Ordering::Relaxed);
        let guard = TaskGuard { set: Arc::clone(&self.set), id };
        // The entry exists before the task can end (and remove it); the abort
        // handle is filled in afterwards, unless the task is already gone.
        self.set.tasks.send_modify(|tasks| {
            tasks.insert(id, None);
        });
        let handle = env.spawn(async move {
            let _guard = guard;
            fut.await;
        });
        self.set.tasks.send_if_modified(|tasks| {
            if let Some(slot) = tasks.get_mut(&id) {
                *slot = Some(handle.abort_handle());
            }
            false
        });
    }

    /// Aborts every tracked task at once.
    pub(crate) fn abort_all(&self) {
        for handle in self.set.tasks.borrow().values().flatten() {
            handle.abort();
        }
    }

    /// Waits until every tracked task has ended, at most `bound`; then
    /// aborts the rest. Returns whether all ended in time.
    ///
    /// # Cancel safety
    /// Cancel safe: dropping it only stops the waiting.
    pub(crate) async fn join(&self, bound: Duration) -> bool {
        let mut rx = self.set.tasks.subscribe();
        let done = tokio::time::timeout(bound, rx.wait_for(BTreeMap::is_empty)).await.is_ok();
        if !done {
            self.abort_all();
        }
        done
    }
}

/// Removes its task's entry when the task ends (or is dropped unpolled).
struct TaskGuard {
    set: Arc<TaskSet>,
    id: u64,
}

impl Drop for TaskGuard {
    fn drop(&mut self) {
        self.set.tasks.send_if_modified(|tasks| tasks.remove(&self.id).is_some());
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test(start_paused = true)]
    async fn join_waits_for_tracked_tasks_and_aborts_stragglers() {
        let tasks = Tasks::new();
        let env = Env::production();
        tasks.spawn(&env, async {});
        tasks.spawn(&env, std::future::pending());
        assert!(!tasks.join(Duration::from_millis(10)).await);
        tokio::task::yield_now().await;
        assert!(tasks.join(Duration::from_millis(10)).await, "the aborted task left the set");
    }

    #[tokio::test]
    async fn stop_is_seen_by_waiters_and_the_flag() {
        let tasks = Tasks::new();
        assert!(!tasks.is_stopping());
        let waiter = tasks.stopped();
        tasks.begin_stop();
        assert!(waiter.await);
        assert!(tasks.is_stopping());
    }
}
