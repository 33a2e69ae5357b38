//! [`ExitReason`]: why an actor (or one incarnation of it) stopped.

use std::fmt;

/// Why an actor stopped.
///
/// Only [`ExitReason::Normal`] is a normal exit: every other reason propagates
/// over links (see `System::link`).
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum ExitReason {
    /// Stopped on request (`stop()`, `ctx.stop()`).
    Normal,
    /// Stopped by `System::shutdown_graceful` or by its supervisor.
    Shutdown,
    /// A handler, hook or the factory panicked (and no restart followed).
    Panic,
    /// Killed without running `on_stop`: a shutdown deadline passed.
    Killed,
    /// A cluster activation lost (or could no longer renew) its shard lease.
    LeaseLost,
    /// A cluster activation's node was declared down.
    NodeDown,
    /// The restart policy gave up: too many restarts.
    RestartIntensityExceeded,
    /// The target of a monitor was not alive when the monitor was set up.
    NoProc,
    /// An application-defined reason (`ctx.stop_with_exit`).
    Other(String),
}

impl ExitReason {
    /// `true` for every reason but [`ExitReason::Normal`]; abnormal exits
    /// propagate to linked actors.
    pub fn is_abnormal(&self) -> bool {
        !matches!(self, ExitReason::Normal)
    }
}

impl fmt::Display for ExitReason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ExitReason::Normal => f.write_str("normal"),
            ExitReason::Shutdown => f.write_str("shutdown"),
            ExitReason::Panic => f.write_str("panic"),
            ExitReason::Killed => f.write_str("killed"),
            ExitReason::LeaseLost => f.write_str("lease lost"),
            ExitReason::NodeDown => f.write_str("node down"),
            ExitReason::RestartIntensityExceeded => f.write_str("restart intensity exceeded"),
            ExitReason::NoProc => f.write_str("no such actor"),
            ExitReason::Other(s) => write!(f, "{s}"),
        }
    }
}
