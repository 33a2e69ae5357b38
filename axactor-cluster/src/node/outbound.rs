//! [`Outbound`]: a data-plane frame on its way to a connection's peer,
//! encoded by whoever sends it (the caller for a request or a tell, the
//! activation for a reply; the write path only seals it), and [`OutKind`],
//! what it is for the connection's bookkeeping. Plain types.

use crate::wire::OutFrame;

/// A data-plane frame queued for a connection's writer, encoded by
/// whoever queued it (the writer only seals it).
#[derive(Debug)]
pub(crate) struct Outbound {
    pub(crate) frame: OutFrame,
    pub(crate) kind: OutKind,
}

/// What an [`Outbound`] frame is, for the writer's bookkeeping.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum OutKind {
    /// One of our requests (an ask, an acknowledged tell), by its id.
    Request(u64),
    /// An answer to one of the peer's requests.
    Response,
    /// Anything else (a plain tell).
    Other,
}
