//! The type-independent half of an actor cell: its links, monitors, exit
//! reason and the tasks waiting for its exit (`ExitWait`).
//!
//! Invariant: `exit` is set exactly once, in the same critical section that
//! takes the links and monitors, so a link or monitor added concurrently with
//! the exit is either notified by the exit or sees that the actor is gone.

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::Poll;

use parking_lot::Mutex;
use tokio::task::AbortHandle;

use crate::waiters::{WaitList, wake_all};
use crate::{ExitReason, MonitorId, Pid};

/// Links, monitors and exit state of one actor.
#[derive(Debug)]
pub(crate) struct Meta {
    pid: Pid,
    name: Arc<str>,
    state: Mutex<MetaState>,
}

#[derive(Debug, Default)]
struct MetaState {
    exit: Option<ExitReason>,
    links: Vec<Pid>,
    /// Monitors others hold on this actor: (id, watcher).
    watchers: Vec<(MonitorId, Pid)>,
    /// Monitors this actor holds on others: (id, target).
    watching: Vec<(MonitorId, Pid)>,
    exit_waiters: WaitList,
    abort: Option<AbortHandle>,
}

/// Everything an exiting actor must notify, taken atomically with the exit.
#[derive(Debug)]
pub(crate) struct Obituary {
    pub(crate) links: Vec<Pid>,
    pub(crate) watchers: Vec<(MonitorId, Pid)>,
    pub(crate) watching: Vec<(MonitorId, Pid)>,
}

impl Meta {
    pub(crate) fn new(pid: Pid, name: Arc<str>) -> Self {
        Meta { pid, name, state: Mutex::new(MetaState::default()) }
    }

    pub(crate) fn pid(&self) -> Pid {
        self.pid
    }

    pub(crate) fn name(&self) -> &Arc<str> {
        &self.name
    }

    pub(crate) fn set_abort(&self, handle: AbortHandle) {
        let mut st = self.state.lock();
        if st.exit.is_none() {
            st.abort = Some(handle);
        }
    }

    pub(crate) fn take_abort(&self) -> Option<AbortHandle> {
        self.state.lock().abort.take()
    }

    pub(crate) fn exit_reason(&self) -> Option<ExitReason> {
        self.state.lock().exit.clone()
    }

    /// Records the exit; `None` if it was already recorded.
    pub(crate) fn record_exit(&self, reason: ExitReason) -> Option<Obituary> {
        let mut st = self.state.lock();
        if st.exit.is_some() {
            return None;
        }
        st.exit = Some(reason);
        st.abort = None;
        Some(Obituary {
            links: std::mem::take(&mut st.links),
            watchers: std::mem::take(&mut st.watchers),
            watching: std::mem::take(&mut st.watching),
        })
    }

    /// Wakes the tasks waiting in [`Meta::poll_exit`].
    pub(crate) fn wake_exit_waiters(&self) {
        let waiters = self.state.lock().exit_waiters.take_all();
        wake_all(waiters);
    }

    /// Resolves with the exit reason once recorded.
    pub(crate) fn poll_exit(&self, ticket: &mut Option<u64>, cx: &mut std::task::Context<'_>) -> Poll<ExitReason> {
        let mut st = self.state.lock();
        if let Some(r) = &st.exit {
            return Poll::Ready(r.clone());
        }
        st.exit_waiters.park(ticket, cx.waker());
        Poll::Pending
    }

    pub(crate) fn cancel_exit_wait(&self, ticket: u64) {
        self.state.lock().exit_waiters.cancel(ticket);
    }

    /// Adds a link to `other` unless this actor has exited.
    pub(crate) fn add_link(&self, other: Pid) -> bool {
        let mut st = self.state.lock();
        if st.exit.is_some() {
            return false;
        }
        if !st.links.contains(&other) {
            st.links.push(other);
        }
        true
    }

    pub(crate) fn remove_link(&self, other: Pid) {
        self.state.lock().links.retain(|p| *p != other);
    }

    /// Registers a watcher; `Err(reason)` if this actor already exited.
    pub(crate) fn add_watcher(&self, id: MonitorId, watcher: Pid) -> Result<(), ExitReason> {
        let mut st = self.state.lock();
        match &st.exit {
            Some(r) => Err(r.clone()),
            None => {
                st.watchers.push((id, watcher));
                Ok(())
            }
        }
    }

    pub(crate) fn remove_watcher(&self, id: MonitorId) {
        self.state.lock().watchers.retain(|(m, _)| *m != id);
    }

    /// Records that this actor watches `target` under `id`.
    pub(crate) fn add_watching(&self, id: MonitorId, target: Pid) -> bool {
        let mut st = self.state.lock();
        if st.exit.is_some() {
            return false;
        }
        st.watching.push((id, target));
        true
    }

    /// Removes a monitor this actor holds; its target, if it was active.
    /// Used both by `demonitor` and before running `on_down`, so a monitor
    /// fires at most once and never after `demonitor` returned `true`.
    pub(crate) fn take_watching(&self, id: MonitorId) -> Option<Pid> {
        let mut st = self.state.lock();
        let i = st.watching.iter().position(|(m, _)| *m == id)?;
        Some(st.watching.swap_remove(i).1)
    }
}

/// Resolves with the actor's final exit reason.
#[derive(Debug)]
pub(crate) struct ExitWait<'a> {
    meta: &'a Meta,
    ticket: Option<u64>,
}

impl<'a> ExitWait<'a> {
    pub(crate) fn new(meta: &'a Meta) -> Self {
        ExitWait { meta, ticket: None }
    }
}

impl Future for ExitWait<'_> {
    type Output = ExitReason;

    fn poll(mut self: Pin<&mut Self>, cx: &mut std::task::Context<'_>) -> Poll<ExitReason> {
        let this = &mut *self;
        let r = this.meta.poll_exit(&mut this.ticket, cx);
        if r.is_ready() {
            this.ticket = None;
        }
        r
    }
}

impl Drop for ExitWait<'_> {
    fn drop(&mut self) {
        if let Some(t) = self.ticket.take() {
            self.meta.cancel_exit_wait(t);
        }
    }
}
