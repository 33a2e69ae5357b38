//! [`CellOps`]: the type-erased operations on an actor cell, whatever its
//! message type. The pid table stores cells as `dyn CellOps`; the system's
//! shutdown, supervisors, the registry's reaper and spawn handles reach
//! actors through it. `Cell<M>` (`cell.rs`) is the one implementation.

use crate::mailbox::Control;
use crate::meta::Meta;
use crate::{ExitReason, TellError};

/// Type-erased operations the system performs on any cell.
pub(crate) trait CellOps: Send + Sync + std::fmt::Debug {
    fn meta(&self) -> &Meta;
    /// Delivers a runtime signal (exit, down, stop, restart).
    fn signal(&self, c: Control) -> Result<(), TellError>;
    /// Stops the actor now, without `on_stop`: aborts its task.
    fn kill(&self, reason: ExitReason);
    /// Closes the mailbox to new messages; the actor stops with `reason`
    /// once it has handled what is queued.
    fn drain(&self, reason: ExitReason) -> Result<(), TellError>;
    /// The activity counter (see `Cell::mark_busy`): odd while a handler runs.
    fn activity(&self) -> u64;
    fn mailbox_len(&self) -> usize;
    /// `true` once the mailbox no longer accepts messages.
    fn is_closed(&self) -> bool;
}
