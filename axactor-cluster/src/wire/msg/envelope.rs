//! The messages of an established session: plain data, no behaviour.
//!
//! Postcard encodes an enum variant by its index, and a struct's fields in
//! declaration order, without names. So **the order of variants and fields is
//! the wire format**: a new variant goes at the end of its enum, together with
//! a protocol version bump, and a peer only sends variants that exist in the
//! negotiated version. An unknown variant index is a decoding error (the
//! receiver closes the connection), never a silently ignored message.
//! `docs/protocol.md` lists every index.

use serde::{Deserialize, Serialize};

use crate::id::SessionId;

/// A sealed frame's payload: one message of the control or the data plane.
///
/// The planes are kept apart so that a reader can give control messages
/// (heartbeats, monitors, goodbye) their own queue, ahead of a backlog of
/// actor traffic.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum Envelope {
    /// Index 0: membership, liveness, leases and monitors.
    Control(ControlMsg),
    /// Index 1: actor traffic.
    Data(DataMsg),
}

/// Control-plane messages.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[non_exhaustive]
pub enum ControlMsg {
    /// Index 0: a liveness probe; the peer answers [`ControlMsg::HeartbeatAck`].
    Heartbeat {
        /// The sender's monotonic clock in milliseconds; only the sender
        /// reads it back (round-trip time), so clocks need not agree.
        sent_at_ms: u64,
    },
    /// Index 1: the answer to a heartbeat.
    HeartbeatAck {
        /// The `sent_at_ms` of the heartbeat being answered.
        echo_ms: u64,
    },
    /// Index 2: a hint about who owns a shard. Only a hint: the lease store
    /// decides, and the receiver's fencing check still applies.
    LeaseNotice {
        /// The registry id.
        registry: String,
        /// The shard within the registry.
        shard: u32,
        /// The lease epoch the hint is about.
        epoch: u64,
        /// The owner at that epoch, `None` if released.
        owner: Option<SessionId>,
    },
    /// Index 3: watch the activation of `key`; answered by one
    /// [`ControlMsg::Down`] with the same `request_id`.
    Monitor {
        /// Chosen by the watcher, unique among its monitors on this session.
        request_id: u64,
        /// The registry id.
        registry: String,
        /// The key within the registry.
        key: String,
    },
    /// Index 4: cancel a monitor (no answer).
    Demonitor {
        /// The monitor's `request_id`.
        request_id: u64,
    },
    /// Index 5: a monitored activation can no longer execute.
    Down {
        /// The monitor's `request_id`.
        request_id: u64,
        /// Why.
        reason: DownReason,
    },
    /// Index 6: the sender closes the session gracefully; nothing follows.
    Goodbye,
    /// Index 7: the registries the sender hosts, as `(id, shard count)`
    /// pairs; replaces any earlier announcement on this session. Placement
    /// only considers a node for a registry it announced. An empty list
    /// (sent first thing in a graceful shutdown) withdraws the node.
    Hosting {
        /// `(registry id, shard count)`, at most
        /// [`MAX_HOSTED_REGISTRIES`](crate::wire::MAX_HOSTED_REGISTRIES):
        /// a longer list is refused while decoding, before more entries
        /// than the bound are allocated.
        #[serde(deserialize_with = "hosted_list::deserialize")]
        registries: Vec<(String, u32)>,
    },
    /// Index 8 (protocol version 2): a monitor is in place on the
    /// activation `activation` (answers [`ControlMsg::Monitor`] and
    /// [`ControlMsg::Remonitor`]; a [`ControlMsg::Down`] with the same
    /// `request_id` follows once it can no longer execute). An answer may
    /// come after the `Down` or not at all (then the `Down` answered it).
    Monitored {
        /// The monitor's `request_id`.
        request_id: u64,
        /// The activation watched: unique among the activations of the
        /// registry on the sender's session, never reused by it.
        activation: u64,
    },
    /// Index 9 (protocol version 2): watch the activation `activation` of
    /// `key` again, on a new connection of the same session (the
    /// connection that carried the monitor ended). Answered by
    /// [`ControlMsg::Monitored`] while that activation still runs, else
    /// at once by `Down { reason: Stopped }`.
    Remonitor {
        /// Chosen by the watcher, unique among its monitors on this session.
        request_id: u64,
        /// The registry id.
        registry: String,
        /// The key within the registry.
        key: String,
        /// The activation named by the `Monitored` that answered the first
        /// `Monitor`.
        activation: u64,
    },
}

/// The most registries a `Hosting` announcement may list; a longer one is
/// a protocol violation.
pub const MAX_HOSTED_REGISTRIES: usize = 1024;

/// Why a monitored activation is down.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[non_exhaustive]
pub enum DownReason {
    /// Index 0: the activation stopped.
    Stopped,
    /// Index 1: its node lost the shard's lease (reported after the lease
    /// deadline, when it can no longer execute).
    LeaseLost,
    /// Index 2: its node was declared down.
    NodeDown,
    /// Index 3: there is no such activation (or registry).
    NoSuchActor,
    /// Index 4: any other reason.
    Other,
}

/// Data-plane messages.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[non_exhaustive]
pub enum DataMsg {
    /// Index 0: a one-way message to the activation of `key`.
    Tell {
        /// The registry id.
        registry: String,
        /// The shard the sender routed by.
        shard: u32,
        /// The lease epoch the sender routed by (the fencing check).
        epoch: u64,
        /// The key within the registry.
        key: String,
        /// Postcard of the actor's contract tell enum; opaque here.
        #[serde(with = "bytes_field")]
        payload: Vec<u8>,
        /// `Some`: acknowledge with [`DataMsg::Ack`] once enqueued (or answer
        /// [`DataMsg::Rejected`] with this id as `request_id`).
        ack_id: Option<u64>,
    },
    /// Index 1: a request; answered by one [`DataMsg::Reply`] or
    /// [`DataMsg::Rejected`] with the same `request_id`.
    Ask {
        /// Chosen by the sender, unique among its requests in flight on this
        /// session.
        request_id: u64,
        /// The registry id.
        registry: String,
        /// The shard the sender routed by.
        shard: u32,
        /// The lease epoch the sender routed by.
        epoch: u64,
        /// The key within the registry.
        key: String,
        /// Postcard of the actor's contract ask enum; opaque here.
        #[serde(with = "bytes_field")]
        payload: Vec<u8>,
    },
    /// Index 2: the answer to an ask.
    Reply {
        /// The ask's `request_id`.
        request_id: u64,
        /// Postcard of the actor's contract reply; opaque here.
        #[serde(with = "bytes_field")]
        payload: Vec<u8>,
    },
    /// Index 3: a tell with an `ack_id` was enqueued (not yet processed).
    Ack {
        /// The tell's `ack_id`.
        ack_id: u64,
    },
    /// Index 4: an ask or acknowledged tell was refused.
    Rejected {
        /// The ask's `request_id` or the tell's `ack_id`.
        request_id: u64,
        /// Why.
        reason: Rejection,
    },
    /// Index 5: an accepted ask will get no reply: the activation stopped
    /// (or its handler panicked) first. It may have run.
    Canceled {
        /// The ask's `request_id`.
        request_id: u64,
    },
    /// Index 6 (protocol version 3): unacknowledged tells to the activation
    /// of `key`, in order, routed by one `shard` and `epoch`: each payload is
    /// handled as a [`DataMsg::Tell`] with these fields and no `ack_id`
    /// would be. At least one payload, at most [`MAX_BATCHED_TELLS`]; any
    /// other count fails to decode.
    Tells {
        /// The registry id.
        registry: String,
        /// The shard the sender routed by.
        shard: u32,
        /// The lease epoch the sender routed by (the fencing check).
        epoch: u64,
        /// The key within the registry.
        key: String,
        /// Postcard of the actor's contract tell enum, one per tell, in the
        /// order sent; opaque here.
        #[serde(with = "tell_payloads")]
        payloads: Vec<Vec<u8>>,
    },
}

/// The most tells one [`DataMsg::Tells`] may carry.
pub const MAX_BATCHED_TELLS: usize = 1024;

/// Why a request was refused. Every reason is *definite*: the request was
/// not executed and will not be, so the sender may retry it elsewhere.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[non_exhaustive]
pub enum Rejection {
    /// Index 0: this node does not hold the shard's lease.
    NotOwner {
        /// Who the receiver believes holds it, if anyone.
        owner_hint: Option<SessionId>,
    },
    /// Index 1: the shard is held here, at another epoch than the sender's.
    StaleEpoch {
        /// The receiver's epoch for the shard.
        current: u64,
    },
    /// Index 2: the request names a session the receiver does not know.
    UnknownSession,
    /// Index 3: the activation's mailbox was full; nothing was enqueued.
    MailboxFull,
    /// Index 4: the activation had stopped before the message was enqueued.
    ActorClosed,
    /// Index 5: the sender may not make this request.
    Unauthorized,
    /// Index 6: the payload did not decode as the actor's contract.
    BadPayload,
    /// Index 7: the receiver has too many requests in progress; nothing was
    /// enqueued.
    Overloaded,
    /// Index 8: the key does not belong to the shard the request names: the
    /// sender hosts the registry with another shard count than the
    /// receiver's `shard_count`.
    WrongShard {
        /// The receiver's shard count for the registry.
        shard_count: u32,
    },
}

/// Decodes a `Hosting` list with its bound checked while decoding: the
/// announced length first (postcard gives it exactly), then entry by entry,
/// so a frame claiming or holding more than [`MAX_HOSTED_REGISTRIES`]
/// entries fails after at most that many, and the vector never reserves
/// more. The bytes are those of a plain `Vec<(String, u32)>`.
mod hosted_list {
    use std::fmt;

    use serde::Deserializer;
    use serde::de::{self, SeqAccess, Visitor};

    use super::MAX_HOSTED_REGISTRIES;

    pub(super) fn deserialize<'de, D: Deserializer<'de>>(deserializer: D) -> Result<Vec<(String, u32)>, D::Error> {
        deserializer.deserialize_seq(HostedVisitor)
    }

    struct HostedVisitor;

    impl<'de> Visitor<'de> for HostedVisitor {
        type Value = Vec<(String, u32)>;

        fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
            write!(f, "at most {MAX_HOSTED_REGISTRIES} (registry, shard count) pairs")
        }

        fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Self::Value, A::Error> {
            let too_long = || de::Error::invalid_length(MAX_HOSTED_REGISTRIES + 1, &HostedVisitor);
            let announced = seq.size_hint().unwrap_or(0);
            if announced > MAX_HOSTED_REGISTRIES {
                return Err(too_long());
            }
            let mut out = Vec::with_capacity(announced);
            while let Some(entry) = seq.next_element::<(String, u32)>()? {
                if out.len() == MAX_HOSTED_REGISTRIES {
                    return Err(too_long());
                }
                out.push(entry);
            }
            Ok(out)
        }
    }
}

/// The payloads of a [`DataMsg::Tells`]: a sequence of byte strings (the
/// bytes of a plain `Vec<Vec<u8>>`), its count checked while decoding: the
/// announced count first, so a frame claiming more than
/// [`MAX_BATCHED_TELLS`] fails before anything is reserved, and an empty
/// list fails too.
pub(super) mod tell_payloads {
    use std::fmt;

    use serde::de::{self, SeqAccess, Visitor};
    use serde::ser::SerializeSeq;
    use serde::{Deserialize, Deserializer, Serialize, Serializer};

    use super::MAX_BATCHED_TELLS;

    /// One payload, as a byte string.
    struct Payload<'a>(&'a Vec<u8>);

    impl Serialize for Payload<'_> {
        fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
            super::bytes_field::serialize(self.0, s)
        }
    }

    /// One payload, read as a byte string.
    struct Owned(Vec<u8>);

    impl<'de> Deserialize<'de> for Owned {
        fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Owned, D::Error> {
            super::bytes_field::deserialize(d).map(Owned)
        }
    }

    #[allow(clippy::ptr_arg)] // serde's `with` passes the field's own type.
    pub(super) fn serialize<S: Serializer>(payloads: &Vec<Vec<u8>>, s: S) -> Result<S::Ok, S::Error> {
        let mut seq = s.serialize_seq(Some(payloads.len()))?;
        for p in payloads {
            seq.serialize_element(&Payload(p))?;
        }
        seq.end()
    }

    pub(super) fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Vec<Vec<u8>>, D::Error> {
        d.deserialize_seq(PayloadsVisitor)
    }

    struct PayloadsVisitor;

    impl<'de> Visitor<'de> for PayloadsVisitor {
        type Value = Vec<Vec<u8>>;

        fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
            write!(f, "1 to {MAX_BATCHED_TELLS} tell payloads")
        }

        fn visit_seq<A: SeqAccess<'de>>(self, seq: A) -> Result<Self::Value, A::Error> {
            let payloads: Vec<Owned> = bounded_seq(seq, MAX_BATCHED_TELLS, &self)?;
            Ok(payloads.into_iter().map(|Owned(p)| p).collect())
        }
    }

    /// The elements of `seq`, 1 to `max` of them: a count announced or
    /// reached above `max`, or none, is refused before more is reserved.
    pub(in crate::wire::msg) fn bounded_seq<'de, A: SeqAccess<'de>, T: Deserialize<'de>>(
        mut seq: A,
        max: usize,
        expected: &dyn de::Expected,
    ) -> Result<Vec<T>, A::Error> {
        let announced = seq.size_hint().unwrap_or(0);
        if announced > max {
            return Err(de::Error::invalid_length(announced, expected));
        }
        let mut out = Vec::with_capacity(announced);
        while let Some(element) = seq.next_element::<T>()? {
            if out.len() == max {
                return Err(de::Error::invalid_length(max + 1, expected));
            }
            out.push(element);
        }
        if out.is_empty() {
            return Err(de::Error::invalid_length(0, expected));
        }
        Ok(out)
    }
}

/// Serde adapter for opaque byte payloads: the same bytes on the wire as a
/// plain `Vec<u8>` in postcard (varint length, then the bytes), but copied in
/// one piece instead of element by element. The one `#[actor(remote)]` puts
/// on `Vec<u8>` message arguments (a sequence from a self-describing format
/// is accepted too, its reservation capped).
mod bytes_field {
    pub(super) use axactor::__private::byte_vec::{deserialize, serialize};
}
