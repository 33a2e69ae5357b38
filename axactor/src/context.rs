//! [`Context`]: what a handler or hook can ask of the runtime about its own
//! actor.

use std::sync::Arc;

use crate::system_core::SystemCore;
use crate::{ExitReason, Fence, MonitorId, Pid};

/// The actor's view of itself, passed as `&mut Context` to handlers that ask
/// for it and to every lifecycle hook. A fresh `Context` is made for each
/// incarnation, so `trap_exit` must be set again after a restart (in
/// `on_start`).
#[derive(Debug)]
pub struct Context {
    pid: Pid,
    name: Arc<str>,
    system: Arc<SystemCore>,
    fence: Option<Fence>,
    restarts: u32,
    stop: Option<ExitReason>,
    trap_exit: bool,
}

impl Context {
    pub(crate) fn new(pid: Pid, name: Arc<str>, system: Arc<SystemCore>, fence: Option<Fence>, restarts: u32) -> Self {
        Context { pid, name, system, fence, restarts, stop: None, trap_exit: false }
    }

    /// This actor's pid (stable across restarts).
    pub fn pid(&self) -> Pid {
        self.pid
    }

    /// This actor's configured name.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// How many times this actor has been restarted so far.
    pub fn restart_count(&self) -> u32 {
        self.restarts
    }

    /// Stops the actor with `ExitReason::Normal` once the current handler
    /// returns; queued messages are dropped.
    pub fn stop(&mut self) {
        self.stop_with_exit(ExitReason::Normal);
    }

    /// Stops the actor with `reason` once the current handler returns. An
    /// abnormal reason propagates to linked actors. It does not trigger a
    /// restart (only panics do).
    pub fn stop_with_exit(&mut self, reason: ExitReason) {
        self.stop = Some(reason);
    }

    /// With `true`, exits of linked actors call `on_exit` instead of stopping
    /// this actor.
    pub fn trap_exit(&mut self, trap: bool) {
        self.trap_exit = trap;
    }

    /// Whether exits are trapped.
    pub fn is_trapping_exits(&self) -> bool {
        self.trap_exit
    }

    /// The lease this activation runs under when hosted by the cluster layer;
    /// `None` for plain local actors.
    pub fn fence(&self) -> Option<Fence> {
        self.fence.clone()
    }

    /// Links this actor with `other` (see `System::link`).
    pub fn link(&self, other: Pid) -> bool {
        self.system.link(self.pid, other)
    }

    /// Removes a link (see `System::unlink`).
    pub fn unlink(&self, other: Pid) {
        self.system.unlink(self.pid, other);
    }

    /// Monitors `target` from this actor (see `System::monitor`).
    pub fn monitor(&self, target: Pid) -> Option<MonitorId> {
        self.system.monitor(self.pid, target)
    }

    /// Removes a monitor (see `System::demonitor`).
    pub fn demonitor(&self, id: MonitorId) -> bool {
        self.system.demonitor(self.pid, id)
    }

    pub(crate) fn take_stop(&mut self) -> Option<ExitReason> {
        self.stop.take()
    }
}
