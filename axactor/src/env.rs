//! What a [`System`](crate::System) takes from its environment, for hosts
//! that need control over it (the cluster layer's deterministic
//! simulation): how actor tasks are started ([`Spawner`]), where restart
//! jitter comes from, and a [`RunGuard`] checked before every message.
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
use crate::config::JitterFn;
use crate::system::System;

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

/// Builds a [`System`] with a custom environment.
///
/// ```
/// use axactor::System;
///
/// // Deterministic restart jitter (always the full backoff).
/// let system = System::builder().restart_jitter(|| 1.0).build();
/// # drop(system);
/// ```
#[derive(Default)]
pub struct SystemBuilder {
    pub(crate) spawner: Option<Arc<dyn Spawner>>,
    pub(crate) jitter: Option<JitterFn>,
}

impl fmt::Debug for SystemBuilder {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SystemBuilder").field("spawner", &self.spawner).field("jitter", &self.jitter.is_some()).finish()
    }
}

impl SystemBuilder {
    /// Starts every actor task (and every actor timer) through `spawner`
    /// instead of `tokio::spawn`.
    pub fn spawner(mut self, spawner: Arc<dyn Spawner>) -> Self {
        self.spawner = Some(spawner);
        self
    }

    /// The jitter source of restart backoffs for actors whose
    /// [`SpawnConfig`](crate::SpawnConfig) has none of its own
    /// (`restart_jitter`); samples must lie in `[0, 1]`. Without it, the
    /// thread RNG is used.
    pub fn restart_jitter(mut self, sample: impl Fn() -> f64 + Send + Sync + 'static) -> Self {
        self.jitter = Some(Arc::new(sample));
        self
    }

    /// The system.
    pub fn build(self) -> System {
        System::from_builder(self)
    }
}
