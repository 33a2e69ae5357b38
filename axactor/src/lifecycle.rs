//! Lifecycle events broadcast by the [`System`](crate::System).

use crate::{ExitReason, Pid};

/// Capacity of the lifecycle broadcast channel; a subscriber that falls
/// further behind sees `RecvError::Lagged`.
pub const LIFECYCLE_CAPACITY: usize = 1024;

/// What happened to an actor.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ActorLifecycleEventKind {
    /// The first incarnation begins (emitted just before `on_start`).
    Started,
    /// A later incarnation begins after a restart (emitted just before its
    /// `on_start`).
    Restarted,
    /// The actor stopped for good; `reason` says why.
    Stopped,
}

/// One lifecycle event, as received from `System::subscribe_lifecycle`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ActorLifecycleEvent {
    /// The actor.
    pub pid: Pid,
    /// Its configured name.
    pub name: String,
    /// What happened.
    pub kind: ActorLifecycleEventKind,
    /// `Some` for [`ActorLifecycleEventKind::Stopped`].
    pub reason: Option<ExitReason>,
}
