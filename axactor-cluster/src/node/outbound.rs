//! [`Outbound`]: a data-plane frame on its way to a connection's peer,
//! encoded by whoever sends it (the caller for a request or a tell, the
//! activation for a reply; the write path only seals it), and [`OutKind`],
//! what it is for the connection's bookkeeping. Plain types.

use std::sync::Arc;

use super::tell_batch::TellBatch;
use crate::wire::{CodecError, OutFrame};

/// A data-plane frame queued for a connection's writer, encoded by
/// whoever queued it (the writer only seals it), or a batch of tells the
/// writer encodes once it takes it.
#[derive(Debug)]
pub(crate) struct Outbound {
    /// The frame (empty for a batch).
    pub(crate) frame: OutFrame,
    pub(crate) kind: OutKind,
    /// A batch of tells (`node/tell_batch.rs`), encoded by the writer.
    pub(crate) tells: Option<Arc<TellBatch>>,
}

impl Outbound {
    /// An encoded frame of `kind`.
    pub(crate) fn new(frame: OutFrame, kind: OutKind) -> Outbound {
        Outbound { frame, kind, tells: None }
    }

    /// A batch of tells, queued while it may still grow.
    pub(crate) fn tells(batch: Arc<TellBatch>) -> Outbound {
        Outbound { frame: OutFrame::placeholder(), kind: OutKind::Other, tells: Some(batch) }
    }

    /// How many messages it carries (a batch's tells, else one).
    pub(crate) fn messages(&self) -> usize {
        self.tells.as_ref().map_or(1, |b| b.count())
    }

    /// The frame to seal (a batch's, encoded now).
    ///
    /// # Errors
    /// [`CodecError::Postcard`] if a batch cannot be encoded (not expected).
    pub(crate) fn into_frame(self) -> Result<OutFrame, CodecError> {
        match self.tells {
            Some(batch) => batch.frame(),
            None => Ok(self.frame),
        }
    }
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
