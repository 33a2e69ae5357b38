//! [`HandshakeError`]: why a handshake did not establish a session.

use std::ops::RangeInclusive;

use crate::id::NodeId;
use crate::wire::hello::Refusal;

use super::{MsgKind, Phase};

/// Why a handshake failed. The state machine that returns one is closed
/// (`Phase::Closed`) and the connection must be dropped, after sending
/// [`HandshakeError::refusal`] if there is one. The node counts these per
/// [`label`](HandshakeError::label).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum HandshakeError {
    /// The peer's proof (Auth or Accept MAC) did not verify: a different
    /// token, or a tampered, replayed or reflected handshake.
    #[error("wrong proof")]
    WrongProof,
    /// A message that the current phase does not accept.
    #[error("unexpected {got} while in {state}")]
    Unexpected {
        /// The phase the handshake was in.
        state: Phase,
        /// The kind of message that arrived.
        got: MsgKind,
    },
    /// No protocol version is in both ranges (or the peer's range is empty).
    #[error("incompatible protocol versions (ours {ours:?}, theirs {theirs:?})")]
    IncompatibleVersion {
        /// Our accepted range.
        ours: RangeInclusive<u16>,
        /// The peer's announced range.
        theirs: RangeInclusive<u16>,
    },
    /// The Challenge chose a version other than the highest one in both
    /// ranges (a downgrade attempt or a broken peer).
    #[error("version downgrade (chosen {chosen}, best common {best})")]
    Downgrade {
        /// The version the Challenge chose.
        chosen: u16,
        /// The highest version in both ranges.
        best: u16,
    },
    /// The peer is not the node we dialled (initiator) or expected
    /// (responder).
    #[error("wrong peer (expected {expected}, got {got})")]
    WrongPeer {
        /// The name we dialled or expected.
        expected: NodeId,
        /// The name the peer claimed.
        got: NodeId,
    },
    /// The handshake did not complete by its deadline.
    #[error("handshake timed out")]
    TimedOut,
    /// The responder got no Hello by the Hello's deadline (the node's
    /// `hello_timeout`, shorter than the handshake's).
    #[error("no hello in time")]
    HelloTimedOut,
    /// The peer's node name is empty, longer than
    /// [`MAX_NAME_LEN`](super::MAX_NAME_LEN) bytes, or contains control
    /// characters. Our own name is checked the same way at construction.
    #[error("invalid node name")]
    BadName,
    /// The peer presented our own session or echoed our own nonce: we are
    /// talking to ourselves, or a message was reflected back at us.
    #[error("connection to self or reflected message")]
    SelfConnect,
    /// The peer refused the handshake.
    #[error("peer refused: {0:?}")]
    PeerRefused(Refusal),
    /// Our own configured version range is empty (`min > max`); nothing was
    /// sent.
    #[error("invalid local version range {min}..={max}")]
    InvalidRange {
        /// Configured oldest version.
        min: u16,
        /// Configured newest version.
        max: u16,
    },
}

impl HandshakeError {
    /// The `Refuse` message to send (best effort) before closing, if any.
    /// None when the peer refused first or the problem is local.
    pub fn refusal(&self) -> Option<Refusal> {
        match self {
            HandshakeError::WrongProof => Some(Refusal::BadProof),
            HandshakeError::IncompatibleVersion { .. } | HandshakeError::Downgrade { .. } => {
                Some(Refusal::IncompatibleVersion)
            }
            HandshakeError::TimedOut | HandshakeError::HelloTimedOut => Some(Refusal::Timeout),
            HandshakeError::Unexpected { .. }
            | HandshakeError::WrongPeer { .. }
            | HandshakeError::BadName
            | HandshakeError::SelfConnect => Some(Refusal::Unexpected),
            HandshakeError::PeerRefused(_) | HandshakeError::InvalidRange { .. } => None,
        }
    }

    /// A short stable label for counters and logs (`"wrong_proof"`, ...).
    pub fn label(&self) -> &'static str {
        match self {
            HandshakeError::WrongProof => "wrong_proof",
            HandshakeError::Unexpected { .. } => "unexpected",
            HandshakeError::IncompatibleVersion { .. } => "incompatible_version",
            HandshakeError::Downgrade { .. } => "downgrade",
            HandshakeError::WrongPeer { .. } => "wrong_peer",
            HandshakeError::TimedOut => "timed_out",
            HandshakeError::HelloTimedOut => "hello_timed_out",
            HandshakeError::BadName => "bad_name",
            HandshakeError::SelfConnect => "self_connect",
            HandshakeError::PeerRefused(_) => "peer_refused",
            HandshakeError::InvalidRange { .. } => "invalid_range",
        }
    }
}
