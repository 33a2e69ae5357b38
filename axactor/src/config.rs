//! [`SpawnConfig`]: the per-actor settings given to `System::spawn_with`.

use std::fmt;
use std::sync::Arc;
use std::time::Duration;

use crate::env::{JitterFn, RunGuard};
use crate::restart::{Backoff, RestartPolicy};
use crate::{Fence, SpawnError};

/// Default capacity of the control mailbox (stop requests).
pub const DEFAULT_CONTROL_CAPACITY: usize = 16;

/// What happens to queued user messages when an actor restarts.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum RestartMailbox {
    Keep,
    DrainAndDrop,
}

/// Settings for one actor (builder; every method takes and returns `Self`).
///
/// ```
/// use axactor::SpawnConfig;
/// use std::time::Duration;
///
/// let cfg = SpawnConfig::new("worker", 256)
///     .restart_on_panic(5, Duration::from_millis(10), Duration::from_secs(1))
///     .restart_mailbox_keep()
///     .shutdown_graceful(Duration::from_secs(2));
/// ```
#[derive(Clone)]
pub struct SpawnConfig {
    pub(crate) name: Arc<str>,
    pub(crate) capacity: usize,
    pub(crate) control_capacity: usize,
    pub(crate) restart: Option<RestartPolicy>,
    pub(crate) restart_mailbox: RestartMailbox,
    pub(crate) drain_on_stop: Option<Duration>,
    pub(crate) jitter: Option<JitterFn>,
    pub(crate) fence: Option<Fence>,
    pub(crate) run_guard: Option<Arc<dyn RunGuard>>,
}

impl SpawnConfig {
    /// A config with a name (shown in lifecycle events and logs) and the
    /// capacity of the user mailbox. No restarts; `stop()` overtakes queued
    /// messages.
    pub fn new(name: impl Into<String>, capacity: usize) -> Self {
        SpawnConfig {
            name: Arc::from(name.into()),
            capacity,
            control_capacity: DEFAULT_CONTROL_CAPACITY,
            restart: None,
            restart_mailbox: RestartMailbox::Keep,
            drain_on_stop: None,
            jitter: None,
            fence: None,
            run_guard: None,
        }
    }

    /// Restart the actor when a handler, hook or the factory panics: the
    /// factory runs again after a backoff that starts at `min_backoff` and
    /// doubles per restart up to `max_backoff` (with jitter), at most
    /// `max_restarts` times; the next panic stops the actor with
    /// `ExitReason::RestartIntensityExceeded`. The actor keeps its pid and
    /// its refs stay valid.
    pub fn restart_on_panic(mut self, max_restarts: usize, min_backoff: Duration, max_backoff: Duration) -> Self {
        self.restart =
            Some(RestartPolicy { max_restarts, backoff: Backoff::new(min_backoff, max_backoff), reset_after: None });
        self
    }

    /// With `restart_on_panic`: an incarnation that ran at least `uptime`
    /// before panicking resets the restart count and the backoff.
    pub fn restart_reset_after(mut self, uptime: Duration) -> Self {
        if let Some(p) = self.restart.as_mut() {
            p.reset_after = Some(uptime);
        }
        self
    }

    /// Replaces the random backoff jitter with `sample`, which must return a
    /// value in `[0, 1]` (1.0 = no jitter: plain exponential delays). Useful
    /// for deterministic tests.
    pub fn restart_jitter(mut self, sample: impl Fn() -> f64 + Send + Sync + 'static) -> Self {
        self.jitter = Some(Arc::new(sample));
        self
    }

    /// On restart, keep the queued user messages (the default).
    pub fn restart_mailbox_keep(mut self) -> Self {
        self.restart_mailbox = RestartMailbox::Keep;
        self
    }

    /// On restart, drop the queued user messages (pending asks get
    /// `AskError::Canceled`).
    pub fn restart_mailbox_drain_and_drop(mut self) -> Self {
        self.restart_mailbox = RestartMailbox::DrainAndDrop;
        self
    }

    /// Capacity of the control mailbox that carries stop requests sent
    /// through handles (default [`DEFAULT_CONTROL_CAPACITY`]). Exit and down
    /// signals from links and monitors are always delivered: their number is
    /// bounded by the links and monitors the actor holds.
    pub fn control_capacity(mut self, n: usize) -> Self {
        self.control_capacity = n;
        self
    }

    /// Makes `stop()` graceful: the mailbox closes to new messages and the
    /// actor handles what is already queued for up to `deadline`, then stops
    /// (a handler still running at the deadline is aborted and the actor
    /// exits with `ExitReason::Killed`). Without this, `stop()` overtakes the
    /// queue: the actor stops after the current message and queued messages
    /// are dropped.
    pub fn shutdown_graceful(mut self, deadline: Duration) -> Self {
        self.drain_on_stop = Some(deadline);
        self
    }

    /// The configured name.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// Used by the cluster layer: the fence a hosted activation runs under.
    #[doc(hidden)]
    pub fn with_fence(mut self, fence: Fence) -> Self {
        self.fence = Some(fence);
        self
    }

    /// A [`RunGuard`] checked before every user message: when it fails, the
    /// message is dropped without running and the actor stops with the
    /// reason it returns. Used by the cluster layer to stop an activation
    /// whose lease deadline has passed.
    pub fn run_guard(mut self, guard: Arc<dyn RunGuard>) -> Self {
        self.run_guard = Some(guard);
        self
    }

    pub(crate) fn validate(&self) -> Result<(), SpawnError> {
        if self.capacity == 0 {
            return Err(SpawnError::InvalidConfig("mailbox capacity must be at least 1"));
        }
        if self.control_capacity == 0 {
            return Err(SpawnError::InvalidConfig("control capacity must be at least 1"));
        }
        if let Some(p) = &self.restart
            && p.backoff.min > p.backoff.max
        {
            return Err(SpawnError::InvalidConfig("min_backoff must not exceed max_backoff"));
        }
        Ok(())
    }
}

impl fmt::Debug for SpawnConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SpawnConfig")
            .field("name", &self.name)
            .field("capacity", &self.capacity)
            .field("control_capacity", &self.control_capacity)
            .field("restart", &self.restart)
            .field("restart_mailbox", &self.restart_mailbox)
            .field("drain_on_stop", &self.drain_on_stop)
            .field("fence", &self.fence)
            .field("run_guard", &self.run_guard)
            .finish_non_exhaustive()
    }
}
