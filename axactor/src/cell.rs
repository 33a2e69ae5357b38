//! One actor's shared state (`Cell`): its mailbox, its links and monitors,
//! and the exit procedure that every way of ending an actor goes through.
//!
//! A cell is shared by the actor's task, its refs and the system's pid table.
//! `finalize` runs exactly once per actor (guarded by `Meta::record_exit`), in
//! this order: close the mailbox (queued asks see `Canceled`), leave the pid
//! table, signal linked actors, notify watchers, broadcast `Stopped`, wake the
//! tasks waiting in `join`/`stop_wait`.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use crate::cell_ops::CellOps;
use crate::lifecycle::ActorLifecycleEventKind;
use crate::mailbox::{Control, Mailbox};
use crate::meta::Meta;
use crate::system_core::SystemCore;
use crate::{ExitReason, Pid, SpawnConfig, TellError};

/// The state of one actor shared between its task and its handles.
pub(crate) struct Cell<M> {
    pub(crate) mailbox: Mailbox<M>,
    pub(crate) meta: Meta,
    pub(crate) system: Arc<SystemCore>,
    /// Activity counter, written by the actor's task only: +1 when a message
    /// is taken, +1 when its handler returns, so an odd value means "busy".
    /// The registry's idle reaper samples it instead of a clock read per
    /// message.
    activity: AtomicU64,
    drain_on_stop: Option<Duration>,
}

impl<M> std::fmt::Debug for Cell<M> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Cell").field("pid", &self.meta.pid()).field("name", self.meta.name()).finish_non_exhaustive()
    }
}

impl<M: Send + 'static> Cell<M> {
    pub(crate) fn new(pid: Pid, cfg: &SpawnConfig, system: Arc<SystemCore>) -> Self {
        Cell {
            mailbox: Mailbox::new(cfg.capacity, cfg.control_capacity),
            meta: Meta::new(pid, cfg.name.clone()),
            system,
            activity: AtomicU64::new(0),
            drain_on_stop: cfg.drain_on_stop,
        }
    }

    pub(crate) fn pid(&self) -> Pid {
        self.meta.pid()
    }

    /// A message was taken (the counter becomes odd). Single writer, so a
    /// plain load/store instead of a read-modify-write.
    pub(crate) fn mark_busy(&self) {
        let n = self.activity.load(Ordering::Relaxed);
        self.activity.store(n.wrapping_add(1), Ordering::Relaxed);
    }

    /// The handler returned (the counter becomes even).
    pub(crate) fn mark_idle(&self) {
        self.mark_busy();
    }

    /// A stop request from a handle. Without a drain deadline, a stop goes
    /// through the control path and overtakes queued messages. With one
    /// (`SpawnConfig::shutdown_graceful`), the mailbox closes at once, the
    /// actor handles what is queued, and a timer kills it at the deadline,
    /// even if its current handler never returns.
    pub(crate) fn request_stop(self: &Arc<Self>) -> Result<(), TellError> {
        match self.drain_on_stop {
            None => self.mailbox.push_control(Control::Stop { reason: ExitReason::Normal }, true),
            Some(d) => {
                self.mailbox.begin_drain(ExitReason::Normal)?;
                spawn_deadline_killer(self, tokio::time::Instant::now() + d);
                Ok(())
            }
        }
    }

    /// Like `request_stop`, waiting for control space when it is full.
    pub(crate) async fn request_stop_wait(self: &Arc<Self>) -> Result<(), TellError> {
        match self.drain_on_stop {
            None => self.mailbox.push_control_wait(|| Control::Stop { reason: ExitReason::Normal }).await,
            Some(_) => self.request_stop(),
        }
    }

    /// Ends the actor: see the module docs for the order.
    pub(crate) fn finalize(&self, reason: ExitReason) {
        let Some(obit) = self.meta.record_exit(reason.clone()) else {
            return;
        };
        let pid = self.pid();
        self.mailbox.close();
        self.system.unregister(pid);
        for other in obit.links {
            if let Some(c) = self.system.lookup(other) {
                c.meta().remove_link(pid);
                let _ = c.signal(Control::Exit { from: pid, reason: reason.clone() });
            }
        }
        for (id, watcher) in obit.watchers {
            if let Some(c) = self.system.lookup(watcher) {
                let _ = c.signal(Control::Down { id, pid, reason: reason.clone() });
            }
        }
        for (id, target) in obit.watching {
            if let Some(c) = self.system.lookup(target) {
                c.meta().remove_watcher(id);
            }
        }
        tracing::debug!(%pid, name = %self.meta.name(), %reason, "actor stopped");
        self.system.emit(pid, self.meta.name(), ActorLifecycleEventKind::Stopped, Some(reason));
        self.meta.wake_exit_waiters();
    }
}

impl<M: Send + 'static> CellOps for Cell<M> {
    fn meta(&self) -> &Meta {
        &self.meta
    }

    fn signal(&self, c: Control) -> Result<(), TellError> {
        self.mailbox.push_control(c, false)
    }

    fn kill(&self, reason: ExitReason) {
        if let Some(h) = self.meta.take_abort() {
            h.abort();
        }
        self.finalize(reason);
    }

    fn drain(&self, reason: ExitReason) -> Result<(), TellError> {
        self.mailbox.begin_drain(reason)
    }

    fn activity(&self) -> u64 {
        self.activity.load(Ordering::Relaxed)
    }

    fn mailbox_len(&self) -> usize {
        self.mailbox.len()
    }

    fn is_closed(&self) -> bool {
        self.mailbox.is_closed()
    }
}

/// Kills a draining actor that has not finished by `deadline`. Holds only a
/// weak reference, so a finished actor is not kept alive until then.
fn spawn_deadline_killer<M: Send + 'static>(cell: &Arc<Cell<M>>, deadline: tokio::time::Instant) {
    let weak = Arc::downgrade(cell);
    cell.system.spawn_task(async move {
        tokio::time::sleep_until(deadline).await;
        if let Some(cell) = weak.upgrade()
            && cell.meta.exit_reason().is_none()
        {
            tracing::warn!(pid = %cell.pid(), name = %cell.meta.name(), "drain deadline passed; actor killed");
            cell.kill(ExitReason::Killed);
        }
    });
}

/// Finalizes the actor as `Killed` if its task is dropped before it ends
/// (aborted, or the runtime shut down).
pub(crate) struct KillGuard<M: Send + 'static> {
    pub(crate) cell: Option<Arc<Cell<M>>>,
}

impl<M: Send + 'static> Drop for KillGuard<M> {
    fn drop(&mut self) {
        if let Some(cell) = self.cell.take() {
            cell.finalize(ExitReason::Killed);
        }
    }
}
