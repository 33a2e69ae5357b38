//! Errors at the cluster's public boundary: [`ClusterError`] for starting
//! and configuring a node, [`RemoteError`] for remote calls.

use crate::config::ConfigProblem;
use crate::overlay::OverlayError;

/// Why a node could not start or a registry could not be created.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum ClusterError {
    /// The configuration is inconsistent; the message names the field.
    #[error(transparent)]
    Config(#[from] ConfigProblem),
    /// The transport could not start (e.g. the TCP listener could not bind).
    #[error("overlay failed to start: {0}")]
    Overlay(#[from] OverlayError),
    /// The node has been shut down.
    #[error("the node is shut down")]
    ShutDown,
    /// A registry is hosted elsewhere with another shard count. Every node
    /// must register a registry with the same count: deploy the new count
    /// only after every node with the old one has left (see
    /// `docs/operations.md`).
    #[error("registry {registry} has {ours} shards here but {theirs} on {peer}")]
    ShardCountMismatch {
        /// The registry id.
        registry: String,
        /// The count this node was asked to use.
        ours: u32,
        /// The count another node uses.
        theirs: u64,
        /// Who uses it (a node name, or `the lease store`).
        peer: String,
    },
}

/// Why a remote call failed. [`RemoteError::is_definitely_not_executed`]
/// tells whether the request is known not to have run; only such failures
/// are retried automatically, and only those another attempt may cure
/// (listed there).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum RemoteError {
    /// No reply within the request timeout: the request may have run.
    #[error("remote request timed out")]
    Timeout,
    /// The connection was lost after the request was sent: it may have run.
    #[error("connection lost after the request was sent")]
    ConnectionLost,
    /// No node currently owns the shard (no lease holder reachable).
    #[error("no owner available for the shard")]
    NoOwner,
    /// The receiver does not own the shard (not executed).
    #[error("the receiver does not own the shard")]
    NotOwner,
    /// The request carried an epoch the receiver does not hold (not executed).
    #[error("stale shard epoch")]
    StaleEpoch,
    /// The receiver does not know the sender's session (not executed).
    #[error("unknown session")]
    UnknownSession,
    /// The peer is not authenticated (not executed).
    #[error("peer is not authenticated")]
    Unauthorized,
    /// The remote mailbox was full; the message was not enqueued.
    #[error("remote mailbox full")]
    MailboxFull,
    /// The remote actor stopped before the message was enqueued.
    #[error("remote actor closed")]
    ActorClosed,
    /// A message could not be encoded or decoded.
    #[error("codec failure")]
    Codec,
    /// The peer broke the protocol.
    #[error("protocol violation")]
    ProtocolViolation,
    /// Too many requests in flight on this node.
    #[error("too many requests in flight")]
    Overloaded,
    /// The local node is shut down.
    #[error("the node is shut down")]
    ShutDown,
    /// The activation accepted the request but stopped (or panicked) before
    /// replying: it may have run.
    #[error("the activation stopped before replying")]
    Canceled,
    /// The message, encoded, is larger than a frame may carry
    /// (`ClusterConfig::max_frame_bytes` or the overlay's limit): it was
    /// never sent. Split it, or raise the limit on every node.
    #[error("message larger than the frame limit; not sent")]
    TooLarge,
    /// The owner hosts the registry with another shard count than this
    /// node, so the key's shard means another thing there: not executed.
    /// Every node must register the registry with the same count.
    #[error("the owner uses another shard count for the registry; not executed")]
    ShardCountMismatch,
}

impl RemoteError {
    /// A short stable name in snake case (`"timeout"`, `"not_owner"`, ...):
    /// the `outcome` of a `request` span, and a label for the caller's own
    /// counters.
    ///
    /// ```
    /// use axactor_cluster::RemoteError;
    /// assert_eq!(RemoteError::StaleEpoch.label(), "stale_epoch");
    /// ```
    pub fn label(&self) -> &'static str {
        match self {
            RemoteError::Timeout => "timeout",
            RemoteError::ConnectionLost => "connection_lost",
            RemoteError::NoOwner => "no_owner",
            RemoteError::NotOwner => "not_owner",
            RemoteError::StaleEpoch => "stale_epoch",
            RemoteError::UnknownSession => "unknown_session",
            RemoteError::Unauthorized => "unauthorized",
            RemoteError::MailboxFull => "mailbox_full",
            RemoteError::ActorClosed => "actor_closed",
            RemoteError::Codec => "codec",
            RemoteError::ProtocolViolation => "protocol_violation",
            RemoteError::Overloaded => "overloaded",
            RemoteError::ShutDown => "shut_down",
            RemoteError::Canceled => "canceled",
            RemoteError::TooLarge => "too_large",
            RemoteError::ShardCountMismatch => "shard_count_mismatch",
        }
    }

    /// `true` only when the request is known not to have run: it was
    /// refused before execution (not owner, stale epoch, unknown session,
    /// unauthorized, mailbox full or actor closed before enqueue, no owner,
    /// overloaded, shut down, too large to send, another shard count).
    /// `false` when the outcome is unknown (timeout, connection lost after
    /// sending, canceled after acceptance) or the request failed on a codec
    /// or protocol error.
    ///
    /// Requests are retried automatically (within their deadline and
    /// [`MAX_ATTEMPTS`](crate::MAX_ATTEMPTS)) only after a definite failure
    /// another attempt may cure: not owner, stale epoch, unknown session, no
    /// owner, mailbox full, actor closed, and overloaded only for an
    /// unacknowledged tell or a monitor registration (an ask or
    /// acknowledged tell returns it at once). Never after an indefinite one.
    pub fn is_definitely_not_executed(&self) -> bool {
        match self {
            RemoteError::NotOwner
            | RemoteError::StaleEpoch
            | RemoteError::UnknownSession
            | RemoteError::Unauthorized
            | RemoteError::MailboxFull
            | RemoteError::ActorClosed
            | RemoteError::NoOwner
            | RemoteError::Overloaded
            | RemoteError::ShutDown
            | RemoteError::TooLarge
            | RemoteError::ShardCountMismatch => true,
            RemoteError::Timeout
            | RemoteError::ConnectionLost
            | RemoteError::Codec
            | RemoteError::Canceled
            | RemoteError::ProtocolViolation => false,
        }
    }

    /// Whether the router tries an unacknowledged tell or a monitor
    /// registration again after this error: a definite failure that another
    /// attempt, after a fresh owner lookup, may cure (not owner, stale
    /// epoch, unknown session, no owner, mailbox full, actor closed,
    /// overloaded). Never for a definite failure that would repeat
    /// (unauthorized, shut down, too large, another shard count), nor for
    /// an indefinite one.
    #[inline]
    pub(crate) fn is_retryable(&self) -> bool {
        self.is_definitely_not_executed()
            && !matches!(
                self,
                RemoteError::Unauthorized
                    | RemoteError::ShutDown
                    | RemoteError::TooLarge
                    | RemoteError::ShardCountMismatch
            )
    }

    /// Whether the router tries a request (an ask, an acknowledged tell)
    /// again after this error: [`is_retryable`](Self::is_retryable) except
    /// `Overloaded`, which a request returns at once (this node's requests
    /// in flight, or the owner's limit: retrying would multiply a flood and
    /// turn its refusals into timeouts).
    #[inline]
    pub(crate) fn is_retryable_request(&self) -> bool {
        self.is_retryable() && *self != RemoteError::Overloaded
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Every variant (the match fails to compile when one is added).
    fn all() -> Vec<RemoteError> {
        let all = vec![
            RemoteError::Timeout,
            RemoteError::ConnectionLost,
            RemoteError::NoOwner,
            RemoteError::NotOwner,
            RemoteError::StaleEpoch,
            RemoteError::UnknownSession,
            RemoteError::Unauthorized,
            RemoteError::MailboxFull,
            RemoteError::ActorClosed,
            RemoteError::Codec,
            RemoteError::ProtocolViolation,
            RemoteError::Overloaded,
            RemoteError::ShutDown,
            RemoteError::Canceled,
            RemoteError::TooLarge,
            RemoteError::ShardCountMismatch,
        ];
        for e in &all {
            match e {
                RemoteError::Timeout
                | RemoteError::ConnectionLost
                | RemoteError::NoOwner
                | RemoteError::NotOwner
                | RemoteError::StaleEpoch
                | RemoteError::UnknownSession
                | RemoteError::Unauthorized
                | RemoteError::MailboxFull
                | RemoteError::ActorClosed
                | RemoteError::Codec
                | RemoteError::ProtocolViolation
                | RemoteError::Overloaded
                | RemoteError::ShutDown
                | RemoteError::Canceled
                | RemoteError::TooLarge
                | RemoteError::ShardCountMismatch => {}
            }
        }
        all
    }

    #[test]
    fn labels_are_distinct_snake_case() {
        let labels: std::collections::BTreeSet<_> = all().iter().map(RemoteError::label).collect();
        assert_eq!(labels.len(), all().len());
        for l in labels {
            assert!(l.chars().all(|c| c.is_ascii_lowercase() || c == '_'), "{l}");
        }
    }

    #[test]
    fn every_retryable_error_is_definitely_not_executed() {
        for e in all() {
            if e.is_retryable_request() {
                assert!(e.is_retryable(), "{e}");
            }
            if e.is_retryable() {
                assert!(e.is_definitely_not_executed(), "{e}");
            }
        }
    }

    #[test]
    fn retries_are_exactly_the_curable_definite_failures() {
        use RemoteError::*;
        let retried: Vec<_> = all().into_iter().filter(RemoteError::is_retryable).collect();
        assert_eq!(retried, [NoOwner, NotOwner, StaleEpoch, UnknownSession, MailboxFull, ActorClosed, Overloaded]);
        let requests: Vec<_> = all().into_iter().filter(RemoteError::is_retryable_request).collect();
        assert_eq!(requests, [NoOwner, NotOwner, StaleEpoch, UnknownSession, MailboxFull, ActorClosed]);
        let indefinite: Vec<_> = all().into_iter().filter(|e| !e.is_definitely_not_executed()).collect();
        assert_eq!(indefinite, [Timeout, ConnectionLost, Codec, ProtocolViolation, Canceled]);
    }

    #[test]
    fn only_rejections_before_execution_are_definite() {
        for e in [
            RemoteError::NotOwner,
            RemoteError::StaleEpoch,
            RemoteError::UnknownSession,
            RemoteError::MailboxFull,
            RemoteError::TooLarge,
        ] {
            assert!(e.is_definitely_not_executed(), "{e}");
        }
        for e in [RemoteError::Timeout, RemoteError::ConnectionLost] {
            assert!(!e.is_definitely_not_executed(), "{e}");
        }
    }
}
