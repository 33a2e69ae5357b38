//! Proptest strategies for every wire message kind (test only).

use proptest::prelude::*;

use crate::id::{NodeId, SessionId};
use crate::wire::hello::{Accept, Auth, Challenge, HandshakeMsg, Hello, Refusal};
use crate::wire::msg::{ControlMsg, DataMsg, DownReason, Envelope, Rejection};

fn text() -> impl Strategy<Value = String> {
    "\\PC{0,16}"
}

fn payload() -> impl Strategy<Value = Vec<u8>> {
    prop::collection::vec(any::<u8>(), 0..64)
}

pub(super) fn session_id() -> impl Strategy<Value = SessionId> {
    (text(), any::<u64>(), any::<u64>()).prop_map(|(node, boot, counter)| SessionId {
        node: NodeId::new(node),
        boot,
        counter,
    })
}

pub(super) fn handshake_msg() -> impl Strategy<Value = HandshakeMsg> {
    let nonce = || prop::array::uniform32(any::<u8>());
    prop_oneof![
        (session_id(), any::<u16>(), any::<u16>(), nonce()).prop_map(|(session, min_version, max_version, nonce)| {
            HandshakeMsg::Hello(Hello { session, min_version, max_version, nonce })
        }),
        (session_id(), any::<u16>(), any::<u16>(), any::<u16>(), nonce()).prop_map(
            |(session, min_version, max_version, chosen_version, nonce)| {
                HandshakeMsg::Challenge(Challenge { session, min_version, max_version, chosen_version, nonce })
            }
        ),
        nonce().prop_map(|mac| HandshakeMsg::Auth(Auth { mac })),
        nonce().prop_map(|mac| HandshakeMsg::Accept(Accept { mac })),
        prop_oneof![
            Just(Refusal::IncompatibleVersion),
            Just(Refusal::BadProof),
            Just(Refusal::Unexpected),
            Just(Refusal::Timeout),
        ]
        .prop_map(HandshakeMsg::Refuse),
    ]
}

pub(super) fn down_reason() -> impl Strategy<Value = DownReason> {
    prop_oneof![
        Just(DownReason::Stopped),
        Just(DownReason::LeaseLost),
        Just(DownReason::NodeDown),
        Just(DownReason::NoSuchActor),
        Just(DownReason::Other),
    ]
}

pub(super) fn rejection() -> impl Strategy<Value = Rejection> {
    prop_oneof![
        prop::option::of(session_id()).prop_map(|owner_hint| Rejection::NotOwner { owner_hint }),
        any::<u64>().prop_map(|current| Rejection::StaleEpoch { current }),
        Just(Rejection::UnknownSession),
        Just(Rejection::MailboxFull),
        Just(Rejection::ActorClosed),
        Just(Rejection::Unauthorized),
        Just(Rejection::BadPayload),
        Just(Rejection::Overloaded),
        any::<u32>().prop_map(|shard_count| Rejection::WrongShard { shard_count }),
    ]
}

pub(super) fn control_msg() -> impl Strategy<Value = ControlMsg> {
    prop_oneof![
        any::<u64>().prop_map(|sent_at_ms| ControlMsg::Heartbeat { sent_at_ms }),
        any::<u64>().prop_map(|echo_ms| ControlMsg::HeartbeatAck { echo_ms }),
        (text(), any::<u32>(), any::<u64>(), prop::option::of(session_id()))
            .prop_map(|(registry, shard, epoch, owner)| ControlMsg::LeaseNotice { registry, shard, epoch, owner }),
        (any::<u64>(), text(), text()).prop_map(|(request_id, registry, key)| ControlMsg::Monitor {
            request_id,
            registry,
            key
        }),
        any::<u64>().prop_map(|request_id| ControlMsg::Demonitor { request_id }),
        (any::<u64>(), down_reason()).prop_map(|(request_id, reason)| ControlMsg::Down { request_id, reason }),
        Just(ControlMsg::Goodbye),
        prop::collection::vec((text(), any::<u32>()), 0..4).prop_map(|registries| ControlMsg::Hosting { registries }),
        (any::<u64>(), any::<u64>())
            .prop_map(|(request_id, activation)| ControlMsg::Monitored { request_id, activation }),
        (any::<u64>(), text(), text(), any::<u64>()).prop_map(|(request_id, registry, key, activation)| {
            ControlMsg::Remonitor { request_id, registry, key, activation }
        }),
    ]
}

pub(super) fn data_msg() -> impl Strategy<Value = DataMsg> {
    prop_oneof![
        (text(), any::<u32>(), any::<u64>(), text(), payload(), prop::option::of(any::<u64>())).prop_map(
            |(registry, shard, epoch, key, payload, ack_id)| DataMsg::Tell {
                registry,
                shard,
                epoch,
                key,
                payload,
                ack_id
            }
        ),
        (any::<u64>(), text(), any::<u32>(), any::<u64>(), text(), payload()).prop_map(
            |(request_id, registry, shard, epoch, key, payload)| DataMsg::Ask {
                request_id,
                registry,
                shard,
                epoch,
                key,
                payload
            }
        ),
        (any::<u64>(), payload()).prop_map(|(request_id, payload)| DataMsg::Reply { request_id, payload }),
        any::<u64>().prop_map(|ack_id| DataMsg::Ack { ack_id }),
        (any::<u64>(), rejection()).prop_map(|(request_id, reason)| DataMsg::Rejected { request_id, reason }),
        any::<u64>().prop_map(|request_id| DataMsg::Canceled { request_id }),
        (text(), any::<u32>(), any::<u64>(), text(), prop::collection::vec(payload(), 1..4)).prop_map(
            |(registry, shard, epoch, key, payloads)| DataMsg::Tells { registry, shard, epoch, key, payloads }
        ),
    ]
}

pub(super) fn envelope() -> impl Strategy<Value = Envelope> {
    prop_oneof![control_msg().prop_map(Envelope::Control), data_msg().prop_map(Envelope::Data)]
}

/// Byte streams that look like frames often enough to get past the prefix:
/// small plausible prefixes (zero included) mixed with raw bytes.
pub(super) fn hostile_stream() -> impl Strategy<Value = Vec<u8>> {
    let piece = prop_oneof![(0u8..80).prop_map(|len| vec![0, 0, 0, len]), prop::collection::vec(any::<u8>(), 0..40)];
    prop::collection::vec(piece, 0..16).prop_map(|pieces| pieces.concat())
}
