//! What a [`System`](crate::System) takes from its environment, for hosts
//! that need control over it (the cluster layer's deterministic
//! simulation): how actor tasks are started ([`Spawner`]), where restart
//! jitter comes from (`JitterFn`, sampled by `sample_jitter`), and a
//! [`RunGuard`] checked before every message. They are handed in through
//! [`SystemBuilder`](crate::SystemBuilder) and
//! [`SpawnConfig`](crate::SpawnConfig).
//!
//! The defaults are what a plain Tokio program wants: actors are spawned on
//! the current runtime with `tokio::spawn`, jitter comes from the thread RNG,
//! and no guard is checked. None of this costs anything when unused (one
//! branch per spawn and per message).

use std::fmt;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;

use tokio::task::JoinHandle;

use crate::ExitReason;

/// A boxed actor task, as handed to a [`Spawner`].
pub type BoxTask = Pin<Box<dyn Future<Output = ()> + Send + 'static>>;

/// Starts the tasks of a system's actors (and their timers).
///
/// A spawner must start `task` on the current Tokio runtime (it may wrap it,
/// e.g. to hold it while a simulated process is paused) and return its
/// handle: aborting the handle must drop the task.
pub trait Spawner: Send + Sync + fmt::Debug + 'static {
    /// Starts `task`.
    fn spawn(&self, task: BoxTask) -> JoinHandle<()>;
}

/// A condition an actor checks before it starts (before its factory and
/// `on_start` run) and before it handles each user message.
///
/// The cluster layer gives every hosted activation a guard that fails once
/// the lease it runs under has passed its local deadline, so a node that
/// stalled past its lease (a long pause, CPU starvation) never runs its
/// queued backlog after it resumes. When [`RunGuard::admit`] fails before a
/// message, the message is dropped without running (an ask gets `Canceled`)
/// and the actor stops with the returned reason (`on_stop` runs as usual);
/// when it fails before the start, the actor stops with that reason without
/// being built (neither `on_start` nor `on_stop` runs).
pub trait RunGuard: Send + Sync + fmt::Debug + 'static {
    /// `Ok` if the next message may run; `Err(reason)` to stop instead.
    ///
    /// # Errors
    /// The reason the actor stops with.
    fn admit(&self) -> Result<(), ExitReason>;
}

/// A source of jitter samples in `[0, 1]` for restart backoff.
pub(crate) type JitterFn = Arc<dyn Fn() -> f64 + Send + Sync>;

/// A jitter sample in `[0, 1]`: the injected source (the spawn config's,
/// else the system's), else the thread RNG.
pub(crate) fn sample_jitter(jitter: Option<&JitterFn>) -> f64 {
    match jitter {
        Some(f) => f().clamp(0.0, 1.0),
        None => rand::random::<f64>(),
    }
}
