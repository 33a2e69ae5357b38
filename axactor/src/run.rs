//! The per-actor task: incarnations, the message loop, restarts.
//!
//! One task per actor runs [`run_actor`]. Each *incarnation* builds the actor
//! value (factory), runs `on_start`, handles messages one at a time, then
//! runs `on_stop`. The actor's `Restarter` (`restarter.rs`) decides whether
//! another incarnation follows (after a backoff, waited out here) or the
//! actor ends; the pid, the mailbox and every ref stay the same across
//! incarnations. Links and monitors fire only at the final end
//! (`Cell::finalize`).
//!
//! The message loop reads no clock and allocates nothing per message: the
//! handler future is polled in place inside `catch_async`.

use std::future::{Future, poll_fn};
use std::pin::pin;
use std::sync::Arc;
use std::task::Poll;
use std::time::Duration;

use tokio::time::Instant;

use crate::catch::{Panic, catch_async, catch_sync, panic_message};
use crate::cell::{Cell, KillGuard};
use crate::config::RestartMailbox;
use crate::env::RunGuard;
use crate::lifecycle::ActorLifecycleEventKind;
use crate::mailbox::{Control, Next};
use crate::restart::Outcome;
use crate::restarter::{End, Restarter};
use crate::{Actor, Context, ExitReason, Fence};

/// Messages handled back to back (the mailbox never empty in between)
/// before a cooperative yield, so one busy actor cannot starve the others
/// on its worker. An actor that found its mailbox empty has given its
/// worker up already: the count starts again, so an actor fed one message
/// at a time never yields for nothing (a yield with no other task ready
/// made Tokio's worker look for work, find the next message's wake-up and
/// wake another worker to take over: a hand-off between cores).
const YIELD_EVERY: u32 = 128;

/// Builds the actor value for each incarnation.
pub(crate) trait MakeActor<A>: Send + 'static {
    /// `None` when no further value can be built.
    fn make(&mut self) -> Option<A>;
}

/// A value given to `System::spawn`: one incarnation only.
pub(crate) struct MakeOnce<A>(pub(crate) Option<A>);

impl<A: Actor> MakeActor<A> for MakeOnce<A> {
    fn make(&mut self) -> Option<A> {
        self.0.take()
    }
}

/// A factory given to `System::spawn_with`: called for every incarnation.
pub(crate) struct MakeRepeat<F>(pub(crate) F);

impl<A: Actor, F: Fn() -> A + Send + Sync + 'static> MakeActor<A> for MakeRepeat<F> {
    fn make(&mut self) -> Option<A> {
        Some((self.0)())
    }
}

/// Per-actor settings the task needs beyond the cell.
pub(crate) struct RunSpec {
    pub(crate) restarter: Restarter,
    pub(crate) restart_mailbox: RestartMailbox,
    pub(crate) fence: Option<Fence>,
    /// Checked before every user message (cluster activations: the lease deadline).
    pub(crate) guard: Option<Arc<dyn RunGuard>>,
}

/// The actor task: incarnations until the restarter says stop, then the
/// exit procedure.
pub(crate) async fn run_actor<A, F>(
    cell: Arc<Cell<A::Msg>>,
    mut make: F,
    mut spec: RunSpec,
    mut guard: KillGuard<A::Msg>,
) where
    A: Actor,
    F: MakeActor<A>,
{
    let mut incarnation: u32 = 0;
    let reason = loop {
        // The uptime only matters to restart policies: no clock read otherwise.
        let started = spec.restarter.can_restart().then(Instant::now);
        let end = run_incarnation(&cell, &mut make, &spec, incarnation).await;
        let ran_for = started.map_or(Duration::ZERO, |t| t.elapsed());
        match spec.restarter.decide(&end, ran_for) {
            Outcome::Stop(reason) => break reason,
            Outcome::Restart(delay) => {
                if let Some(reason) = backoff(&cell, delay).await {
                    break reason;
                }
                if spec.restart_mailbox == RestartMailbox::DrainAndDrop {
                    cell.mailbox.clear_user();
                }
                incarnation = incarnation.saturating_add(1);
            }
        }
    };
    // Ending normally: the guard must not report `Killed`.
    guard.cell = None;
    cell.finalize(reason);
}

async fn run_incarnation<A, F>(cell: &Arc<Cell<A::Msg>>, make: &mut F, spec: &RunSpec, incarnation: u32) -> End
where
    A: Actor,
    F: MakeActor<A>,
{
    let pid = cell.pid();
    let name = cell.meta.name().clone();
    // An incarnation that may no longer run does not start: no factory, no
    // `on_start` (a task held up past its guard's deadline runs nothing).
    if let Some(guard) = spec.guard.as_deref()
        && let Err(reason) = guard.admit()
    {
        return End::Exit(reason);
    }
    let mut actor = match catch_sync(|| make.make()) {
        Ok(Some(a)) => a,
        Ok(None) => return End::Exit(ExitReason::Other("actor value already consumed".into())),
        Err(p) => {
            log_panic(cell, "factory", &p);
            return End::Failed;
        }
    };
    let mut ctx = Context::new(pid, name.clone(), cell.system.clone(), spec.fence.clone(), incarnation);
    let kind = if incarnation == 0 { ActorLifecycleEventKind::Started } else { ActorLifecycleEventKind::Restarted };
    cell.system.emit(pid, &name, kind, None);
    if let Err(p) = catch_async(|| actor.on_start(&mut ctx)).await {
        log_panic(cell, "on_start", &p);
        return End::Failed;
    }
    let end = message_loop(cell, &mut actor, &mut ctx, spec.guard.as_deref()).await;
    let reason = end.reason();
    if let Err(p) = catch_async(|| actor.on_stop(&mut ctx, &reason)).await {
        log_panic(cell, "on_stop", &p);
    }
    end
}

async fn message_loop<A: Actor>(
    cell: &Arc<Cell<A::Msg>>,
    actor: &mut A,
    ctx: &mut Context,
    guard: Option<&dyn RunGuard>,
) -> End {
    let mut since_yield = 0u32;
    loop {
        if let Some(reason) = ctx.take_stop() {
            return End::Exit(reason);
        }
        let mut waited = false;
        let next = poll_fn(|cx| {
            let next = cell.mailbox.poll_next(cx);
            waited |= next.is_pending();
            next
        })
        .await;
        if waited {
            since_yield = 0;
        }
        match next {
            Next::User(msg) => {
                // Checked when the message is about to run, not when it was
                // queued: a stalled actor must not run a backlog it may no
                // longer run. The message is dropped unrun (an ask gets
                // `Canceled`).
                if let Some(guard) = guard
                    && let Err(reason) = guard.admit()
                {
                    drop(msg);
                    return End::Exit(reason);
                }
                cell.mark_busy();
                let r = catch_async(|| actor.handle(ctx, msg)).await;
                cell.mark_idle();
                if let Err(p) = r {
                    log_panic(cell, "handler", &p);
                    return End::Failed;
                }
                since_yield += 1;
                if since_yield == YIELD_EVERY {
                    since_yield = 0;
                    tokio::task::yield_now().await;
                }
            }
            Next::Control(Control::Stop { reason }) => return End::Exit(reason),
            Next::Control(Control::Exit { from, reason }) => {
                if ctx.is_trapping_exits() {
                    if let Err(p) = catch_async(|| actor.on_exit(ctx, from, reason)).await {
                        log_panic(cell, "on_exit", &p);
                        return End::Failed;
                    }
                } else if reason.is_abnormal() {
                    return End::Exit(reason);
                }
            }
            Next::Control(Control::Down { id, pid, reason }) => {
                // A demonitor after the notice was queued removed the entry:
                // the notice is then dropped, so `on_down` runs at most once.
                if cell.meta.take_watching(id).is_some()
                    && let Err(p) = catch_async(|| actor.on_down(ctx, id, pid, reason)).await
                {
                    log_panic(cell, "on_down", &p);
                    return End::Failed;
                }
            }
            Next::Control(Control::Restart) => return End::Restart,
            Next::Drained(reason) => return End::Exit(reason),
        }
    }
}

/// Waits out a restart backoff while still obeying stop requests. Exit and
/// down notices that arrive meanwhile are kept for the next incarnation.
/// Returns `Some(reason)` if the actor must end instead of restarting.
async fn backoff<M: Send + 'static>(cell: &Cell<M>, delay: Duration) -> Option<ExitReason> {
    let mut sleep = pin!(tokio::time::sleep(delay));
    let mut deferred = Vec::new();
    let result = poll_fn(|cx| {
        loop {
            match cell.mailbox.poll_control(cx) {
                Poll::Ready(Control::Stop { reason }) => return Poll::Ready(Some(reason)),
                Poll::Ready(Control::Restart) => {}
                Poll::Ready(other) => deferred.push(other),
                Poll::Pending => break,
            }
        }
        sleep.as_mut().poll(cx).map(|()| None)
    })
    .await;
    cell.mailbox.requeue_control(deferred);
    result
}

fn log_panic<M: Send + 'static>(cell: &Cell<M>, place: &str, p: &Panic) {
    tracing::error!(
        pid = %cell.pid(),
        name = %cell.meta.name(),
        panic = panic_message(p),
        "actor panicked in {place}"
    );
}
