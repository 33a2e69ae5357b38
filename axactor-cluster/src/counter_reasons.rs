//! The reasons the node's labelled counters count by: one enum per
//! labelled map of `Counters` ([`HandshakeFailure`], [`FrameRejection`],
//! [`DropReason`], [`RequestRejection`], [`LeaseEvent`]), each variant with
//! its stable label (the map key operators' dashboards read), and the typed
//! errors those reasons come from (`HandshakeError`, `OpenError`,
//! `CodecError`, `Rejection`) mapped onto them.
//!
//! Every enum lists its variants and labels once (the [`reasons!`] macro
//! writes the enum, `ALL` and `LABELS` from that one list), so the counters
//! (`node/inspect.rs`, an array indexed by [`Reason::index`]), the public
//! label lists (`Counters::labels`) and the docs test read the same set.
//! Pure data: no I/O, no lock, no driver code.

use crate::handshake::HandshakeError;
use crate::session::OpenError;
use crate::wire::{CodecError, Rejection};

/// A reason one labelled counter counts by: a fieldless enum whose
/// variants are numbered `0..ALL.len()` in declaration order.
pub(crate) trait Reason: Copy + 'static {
    /// Every variant, in declaration order (`ALL[r.index()] == r`).
    const ALL: &'static [Self];
    /// Every variant's label, in the order of `ALL`.
    const LABELS: &'static [&'static str];
    /// The variant's position in `ALL`.
    fn index(self) -> usize;
    /// The stable label the variant is counted under.
    fn label(self) -> &'static str;
}

/// Writes a fieldless reason enum from `Variant => "label"` lines: the
/// enum, its [`Reason`] impl (`ALL`, `LABELS`, `index`, `label`), so a new
/// variant is in `ALL` and has a label by construction.
macro_rules! reasons {
    (
        $(#[$meta:meta])*
        $name:ident {
            $( $(#[$vmeta:meta])* $variant:ident => $label:literal, )+
        }
    ) => {
        $(#[$meta])*
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
        pub(crate) enum $name {
            $( $(#[$vmeta])* $variant, )+
        }

        impl Reason for $name {
            const ALL: &'static [Self] = &[$( $name::$variant, )+];
            const LABELS: &'static [&'static str] = &[$( $label, )+];

            #[inline]
            fn index(self) -> usize {
                self as usize
            }

            #[inline]
            fn label(self) -> &'static str {
                match self {
                    $( $name::$variant => $label, )+
                }
            }
        }
    };
}

reasons! {
    /// Why a handshake failed (`Counters::handshake_failures`).
    HandshakeFailure {
        /// `HandshakeError::WrongProof`.
        WrongProof => "wrong_proof",
        /// `HandshakeError::Unexpected`.
        Unexpected => "unexpected",
        /// `HandshakeError::IncompatibleVersion`.
        IncompatibleVersion => "incompatible_version",
        /// `HandshakeError::Downgrade`.
        Downgrade => "downgrade",
        /// `HandshakeError::WrongPeer`.
        WrongPeer => "wrong_peer",
        /// `HandshakeError::TimedOut`.
        TimedOut => "timed_out",
        /// `HandshakeError::HelloTimedOut`.
        HelloTimedOut => "hello_timed_out",
        /// `HandshakeError::BadName`.
        BadName => "bad_name",
        /// `HandshakeError::SelfConnect`.
        SelfConnect => "self_connect",
        /// `HandshakeError::PeerRefused`.
        PeerRefused => "peer_refused",
        /// `HandshakeError::InvalidRange`.
        InvalidRange => "invalid_range",
        /// A peer claimed this node's name.
        OwnName => "own_name",
        /// The link ended before the handshake did.
        LinkClosed => "link_closed",
        /// `CodecError::UnknownTag`.
        UnknownTag => "unknown_tag",
        /// `CodecError::Truncated`.
        Truncated => "truncated",
        /// `CodecError::Postcard`.
        Malformed => "malformed",
        /// `CodecError::TrailingBytes`.
        TrailingBytes => "trailing_bytes",
        /// More frames before authentication than `preauth_frame_budget`.
        PreauthBudgetExceeded => "preauth_budget_exceeded",
        /// The env gave no nonce.
        Nonce => "nonce",
        /// The peer claimed a name its transport identity does not carry.
        PeerIdentity => "peer_identity",
    }
}

reasons! {
    /// Why an established connection closed on a bad frame
    /// (`Counters::frame_rejections`).
    FrameRejection {
        /// `OpenError::TooShort`.
        TooShort => "too_short",
        /// `OpenError::WrongTag`.
        WrongTag => "wrong_tag",
        /// `OpenError::BadMac`.
        BadMac => "bad_mac",
        /// `OpenError::OutOfSequence` (a replay, reorder or gap).
        OutOfSequence => "out_of_sequence",
        /// `OpenError::Exhausted`.
        SeqExhausted => "seq_exhausted",
        /// `OpenError::Closed`.
        Closed => "closed",
        /// `CodecError::UnknownTag`.
        UnknownTag => "unknown_tag",
        /// `CodecError::Truncated`.
        Truncated => "truncated",
        /// `CodecError::Postcard`.
        Malformed => "malformed",
        /// `CodecError::TrailingBytes`.
        TrailingBytes => "trailing_bytes",
        /// A handshake message on an authenticated connection.
        HandshakeAfterAuth => "handshake_after_auth",
    }
}

reasons! {
    /// Why a message or signal was dropped without a connection error
    /// (`Counters::dropped`).
    DropReason {
        /// A control message did not fit its connection's queue.
        ControlQueueFull => "control_queue_full",
        /// A response did not fit its connection's data queue (nor the
        /// responses owed).
        DataQueueFull => "data_queue_full",
        /// A tell sent without an ack was rejected here.
        UnackedTellRejected => "unacked_tell_rejected",
        /// A message could not be encoded.
        Unencodable => "unencodable",
        /// The in-flight request table was full.
        InflightTableFull => "inflight_table_full",
        /// The remote monitor table was full.
        RemoteMonitorTableFull => "remote_monitor_table_full",
        /// A response for a request no longer waiting.
        UnmatchedResponse => "unmatched_response",
        /// A `Down` for a monitor no longer waiting.
        UnmatchedDown => "unmatched_down",
        /// A caller dropped its ask before the answer.
        RequestAbandoned => "request_abandoned",
        /// A local watcher's `Down` receiver was full.
        DownReceiverFull => "down_receiver_full",
        /// A `Down` found its connection closed.
        DownConnectionClosed => "down_connection_closed",
        /// A `Demonitor` found its connection closed.
        DemonitorConnectionClosed => "demonitor_connection_closed",
        /// A `Remonitor` could not be queued.
        RemonitorNotQueued => "remonitor_not_queued",
        /// A peer's monitors removed with its connection.
        RemoteMonitorConnectionEnded => "remote_monitor_connection_ended",
        /// A peer's lease notice naming an owner, for a registry the peer
        /// hosts with another shard count than this node (or has not
        /// announced): not cached.
        LeaseNoticeOtherCount => "lease_notice_other_count",
        /// A tell a closing connection never sent.
        TellDiscardedAtClose => "tell_discarded_at_close",
        /// A response a closing connection never sent.
        ResponseDiscardedAtClose => "response_discarded_at_close",
        /// A reply a closing connection never sent.
        ReplyDiscardedAtClose => "reply_discarded_at_close",
        /// A `Down` a closing connection never sent.
        DownDiscardedAtClose => "down_discarded_at_close",
        /// Another signal-carrying control message a closing connection
        /// never sent.
        ControlDiscardedAtClose => "control_discarded_at_close",
    }
}

reasons! {
    /// Why a peer's request was refused before execution
    /// (`Counters::requests_rejected`): the kind of a wire [`Rejection`].
    RequestRejection {
        /// `Rejection::NotOwner`.
        NotOwner => "not_owner",
        /// `Rejection::StaleEpoch`.
        StaleEpoch => "stale_epoch",
        /// `Rejection::WrongShard`.
        WrongShard => "wrong_shard",
        /// `Rejection::UnknownSession`.
        UnknownSession => "unknown_session",
        /// `Rejection::MailboxFull`.
        MailboxFull => "mailbox_full",
        /// `Rejection::ActorClosed`.
        ActorClosed => "actor_closed",
        /// `Rejection::Unauthorized`.
        Unauthorized => "unauthorized",
        /// `Rejection::BadPayload`.
        BadPayload => "bad_payload",
        /// `Rejection::Overloaded`.
        Overloaded => "overloaded",
    }
}

reasons! {
    /// A lease event on this node (`Counters::leases`).
    LeaseEvent {
        /// A shard's lease was acquired.
        Acquired => "acquired",
        /// The store confirmed a release (after a handover or at graceful
        /// shutdown).
        Released => "released",
        /// A shard was handed over to another node.
        HandedOver => "handed_over",
        /// A lease was lost or not renewed in time.
        Fenced => "fenced",
        /// The store refused a registration under another shard count.
        ShardCountConflict => "shard_count_conflict",
    }
}

impl From<&HandshakeError> for HandshakeFailure {
    fn from(err: &HandshakeError) -> Self {
        match err {
            HandshakeError::WrongProof => HandshakeFailure::WrongProof,
            HandshakeError::Unexpected { .. } => HandshakeFailure::Unexpected,
            HandshakeError::IncompatibleVersion { .. } => HandshakeFailure::IncompatibleVersion,
            HandshakeError::Downgrade { .. } => HandshakeFailure::Downgrade,
            HandshakeError::WrongPeer { .. } => HandshakeFailure::WrongPeer,
            HandshakeError::TimedOut => HandshakeFailure::TimedOut,
            HandshakeError::HelloTimedOut => HandshakeFailure::HelloTimedOut,
            HandshakeError::BadName => HandshakeFailure::BadName,
            HandshakeError::SelfConnect => HandshakeFailure::SelfConnect,
            HandshakeError::PeerRefused(_) => HandshakeFailure::PeerRefused,
            HandshakeError::InvalidRange { .. } => HandshakeFailure::InvalidRange,
        }
    }
}

impl From<&CodecError> for HandshakeFailure {
    fn from(err: &CodecError) -> Self {
        match err {
            CodecError::UnknownTag(_) => HandshakeFailure::UnknownTag,
            CodecError::Truncated => HandshakeFailure::Truncated,
            CodecError::Postcard(_) => HandshakeFailure::Malformed,
            CodecError::TrailingBytes => HandshakeFailure::TrailingBytes,
        }
    }
}

impl From<&OpenError> for FrameRejection {
    fn from(err: &OpenError) -> Self {
        match err {
            OpenError::TooShort => FrameRejection::TooShort,
            OpenError::WrongTag => FrameRejection::WrongTag,
            OpenError::BadMac => FrameRejection::BadMac,
            OpenError::OutOfSequence { .. } => FrameRejection::OutOfSequence,
            OpenError::Exhausted => FrameRejection::SeqExhausted,
            OpenError::Closed => FrameRejection::Closed,
        }
    }
}

impl From<&CodecError> for FrameRejection {
    fn from(err: &CodecError) -> Self {
        match err {
            CodecError::UnknownTag(_) => FrameRejection::UnknownTag,
            CodecError::Truncated => FrameRejection::Truncated,
            CodecError::Postcard(_) => FrameRejection::Malformed,
            CodecError::TrailingBytes => FrameRejection::TrailingBytes,
        }
    }
}

impl From<&Rejection> for RequestRejection {
    #[inline]
    fn from(reason: &Rejection) -> Self {
        match reason {
            Rejection::NotOwner { .. } => RequestRejection::NotOwner,
            Rejection::StaleEpoch { .. } => RequestRejection::StaleEpoch,
            Rejection::UnknownSession => RequestRejection::UnknownSession,
            Rejection::MailboxFull => RequestRejection::MailboxFull,
            Rejection::ActorClosed => RequestRejection::ActorClosed,
            Rejection::Unauthorized => RequestRejection::Unauthorized,
            Rejection::BadPayload => RequestRejection::BadPayload,
            Rejection::Overloaded => RequestRejection::Overloaded,
            Rejection::WrongShard { .. } => RequestRejection::WrongShard,
        }
    }
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeSet;

    use super::*;
    use crate::handshake::{MsgKind, Phase};
    use crate::id::NodeId;
    use crate::wire::PostcardErrorKind;
    use crate::wire::hello::Refusal;

    /// `ALL` is numbered by `index`, `LABELS` follows it, and no two
    /// variants share a label.
    fn assert_well_formed<R: Reason + PartialEq + std::fmt::Debug>() {
        assert_eq!(R::ALL.len(), R::LABELS.len());
        for (i, r) in R::ALL.iter().enumerate() {
            assert_eq!(r.index(), i, "{r:?}");
            assert_eq!(r.label(), R::LABELS[i], "{r:?}");
            assert!(!r.label().is_empty());
            assert!(r.label().chars().all(|c| c.is_ascii_lowercase() || c == '_'), "{r:?}");
        }
        let distinct: BTreeSet<_> = R::LABELS.iter().collect();
        assert_eq!(distinct.len(), R::LABELS.len(), "labels repeat: {:?}", R::LABELS);
    }

    #[test]
    fn every_reason_enum_is_numbered_and_labelled_once() {
        assert_well_formed::<HandshakeFailure>();
        assert_well_formed::<FrameRejection>();
        assert_well_formed::<DropReason>();
        assert_well_formed::<RequestRejection>();
        assert_well_formed::<LeaseEvent>();
    }

    fn handshake_errors() -> Vec<HandshakeError> {
        vec![
            HandshakeError::WrongProof,
            HandshakeError::Unexpected { state: Phase::Closed, got: MsgKind::Hello },
            HandshakeError::IncompatibleVersion { ours: 1..=2, theirs: 3..=4 },
            HandshakeError::Downgrade { chosen: 1, best: 2 },
            HandshakeError::WrongPeer { expected: NodeId::new("a"), got: NodeId::new("b") },
            HandshakeError::TimedOut,
            HandshakeError::HelloTimedOut,
            HandshakeError::BadName,
            HandshakeError::SelfConnect,
            HandshakeError::PeerRefused(Refusal::Timeout),
            HandshakeError::InvalidRange { min: 2, max: 1 },
        ]
    }

    fn codec_errors() -> Vec<CodecError> {
        vec![
            CodecError::UnknownTag(0xff),
            CodecError::Truncated,
            CodecError::Postcard(PostcardErrorKind::BadVarint),
            CodecError::TrailingBytes,
        ]
    }

    #[test]
    fn a_handshake_error_counts_under_its_own_label() {
        let errors = handshake_errors();
        let mut seen = BTreeSet::new();
        for err in &errors {
            let reason = HandshakeFailure::from(err);
            assert_eq!(reason.label(), err.label(), "{err:?}");
            seen.insert(reason.index());
        }
        assert_eq!(seen.len(), errors.len(), "two errors share a reason");
    }

    #[test]
    fn an_open_error_counts_under_its_own_label() {
        let errors = [
            OpenError::TooShort,
            OpenError::WrongTag,
            OpenError::BadMac,
            OpenError::OutOfSequence { expected: 1, got: 3 },
            OpenError::Exhausted,
            OpenError::Closed,
        ];
        for err in &errors {
            assert_eq!(FrameRejection::from(err).label(), err.label(), "{err:?}");
        }
        let distinct: BTreeSet<_> = errors.iter().map(|e| FrameRejection::from(e).index()).collect();
        assert_eq!(distinct.len(), errors.len());
    }

    #[test]
    fn a_codec_error_has_one_label_in_handshakes_and_frames() {
        let labels: Vec<_> = codec_errors().iter().map(|e| HandshakeFailure::from(e).label()).collect();
        assert_eq!(labels, ["unknown_tag", "truncated", "malformed", "trailing_bytes"]);
        for err in &codec_errors() {
            assert_eq!(HandshakeFailure::from(err).label(), FrameRejection::from(err).label(), "{err:?}");
        }
    }

    #[test]
    fn every_rejection_has_its_own_label() {
        let all = [
            Rejection::NotOwner { owner_hint: None },
            Rejection::StaleEpoch { current: 1 },
            Rejection::UnknownSession,
            Rejection::MailboxFull,
            Rejection::ActorClosed,
            Rejection::Unauthorized,
            Rejection::BadPayload,
            Rejection::Overloaded,
            Rejection::WrongShard { shard_count: 4 },
        ];
        let reasons: BTreeSet<_> = all.iter().map(|r| RequestRejection::from(r).index()).collect();
        assert_eq!(reasons.len(), all.len());
        assert_eq!(reasons.len(), RequestRejection::ALL.len(), "a reason no rejection maps to");
        assert_eq!(RequestRejection::from(&Rejection::StaleEpoch { current: 9 }).label(), "stale_epoch");
    }

    #[test]
    fn labels_are_the_ones_dashboards_read() {
        assert_eq!(HandshakeFailure::OwnName.label(), "own_name");
        assert_eq!(FrameRejection::SeqExhausted.label(), "seq_exhausted");
        assert_eq!(DropReason::RequestAbandoned.label(), "request_abandoned");
        assert_eq!(LeaseEvent::ShardCountConflict.label(), "shard_count_conflict");
        assert_eq!(LeaseEvent::LABELS, ["acquired", "released", "handed_over", "fenced", "shard_count_conflict"]);
    }
}
