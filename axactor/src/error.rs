//! Errors of the local runtime's public API.

use thiserror::Error;

/// Why a tell (or a stop request) was not enqueued.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Error)]
pub enum TellError {
    /// The mailbox is at capacity; retry later or use the `_wait` variant.
    #[error("mailbox full")]
    Full,
    /// The actor has stopped (or is stopping) and accepts no more messages.
    #[error("actor closed")]
    Closed,
}

/// Why an ask produced no reply.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Error)]
pub enum AskError {
    /// The mailbox is at capacity; retry later or use the `_wait` variant.
    #[error("mailbox full")]
    Full,
    /// The actor had stopped before the request was enqueued.
    #[error("actor closed")]
    Closed,
    /// No reply arrived within the given duration (the request may still run).
    #[error("ask timed out")]
    Timeout,
    /// The request was accepted but dropped without a reply: the handler
    /// panicked, or the actor stopped (or restarted with a drained mailbox)
    /// before handling it.
    #[error("ask canceled: the actor dropped the request")]
    Canceled,
}

impl From<TellError> for AskError {
    fn from(e: TellError) -> Self {
        match e {
            TellError::Full => AskError::Full,
            TellError::Closed => AskError::Closed,
        }
    }
}

/// Why an actor could not be spawned.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
#[non_exhaustive]
pub enum SpawnError {
    /// `spawn` was called outside a Tokio runtime; call it from within one.
    #[error("no tokio runtime: spawn actors from inside a tokio runtime")]
    NoRuntime,
    /// The system is shutting down and accepts no new actors.
    #[error("the actor system is shutting down")]
    ShuttingDown,
    /// The spawn configuration is not usable; the message says what to fix.
    #[error("invalid spawn config: {0}")]
    InvalidConfig(&'static str),
}
