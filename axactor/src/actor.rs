//! The [`Actor`] trait: what the runtime needs from an actor type.
//!
//! `#[actor]` implements it for you; implementing it by hand is possible for
//! actors that want a hand-written message enum. The runtime owns the actor
//! value inside one task and calls these methods one at a time, so `&mut self`
//! is never shared.

use std::future::Future;

use crate::{Context, ExitReason, LocalRef, MonitorId, Pid};

/// A type that can run as an actor.
///
/// Every method returns a `Send` future so actors can run on a multi-thread
/// runtime; the runtime polls them in place (no boxing per message).
pub trait Actor: Send + Sized + 'static {
    /// The message enum this actor handles (`XMsg` for `#[actor] impl X`).
    type Msg: Send + 'static;
    /// The typed handle returned by `System::spawn_with` (`XRef`).
    type Ref: From<LocalRef<Self::Msg>> + Clone + Send + Sync + 'static;

    /// Handles one message. Panics are caught by the runtime.
    fn handle(&mut self, ctx: &mut Context, msg: Self::Msg) -> impl Future<Output = ()> + Send;

    /// Runs before the first message of every incarnation (also after a restart).
    fn on_start(&mut self, ctx: &mut Context) -> impl Future<Output = ()> + Send {
        let _ = ctx;
        async {}
    }

    /// Runs when an incarnation ends, with the reason it ends.
    fn on_stop(&mut self, ctx: &mut Context, reason: &ExitReason) -> impl Future<Output = ()> + Send {
        let _ = (ctx, reason);
        async {}
    }

    /// Runs when a linked actor exits while this actor traps exits
    /// (`ctx.trap_exit(true)`).
    fn on_exit(&mut self, ctx: &mut Context, from: Pid, reason: ExitReason) -> impl Future<Output = ()> + Send {
        let _ = (ctx, from, reason);
        async {}
    }

    /// Runs once per monitor when the monitored actor has stopped.
    fn on_down(
        &mut self,
        ctx: &mut Context,
        id: MonitorId,
        pid: Pid,
        reason: ExitReason,
    ) -> impl Future<Output = ()> + Send {
        let _ = (ctx, id, pid, reason);
        async {}
    }
}
