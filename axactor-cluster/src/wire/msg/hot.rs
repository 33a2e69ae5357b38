//! The data plane's hot path: the same bytes as [`Envelope`], encoded and
//! decoded without intermediate allocations.
//!
//! - Decoding: [`decode_envelope_ref`] gives an [`EnvelopeRef`], whose
//!   data-plane strings and payloads borrow from the frame (the owned
//!   [`Envelope`] would copy the registry, the key and the payload of every
//!   request, and the payload of every reply).
//! - Encoding: an [`OutFrame`] is one sealed frame under construction, a
//!   single buffer sized once (carved from a chunk of memory shared by
//!   frames, `arena.rs`: no allocation per frame): room for the sealed
//!   header, the envelope, room for the MAC; `crate::session::Sealer::seal_frame` fills in the header
//!   and appends the MAC in place. Requests are encoded from borrowed parts
//!   ([`DataOut`]) and their typed payload ([`Typed`]), replies straight
//!   from the actor's typed reply ([`OutFrame::reply`]), without first
//!   encoding the payload on its own.
//!
//! The tests check both against the owned types, byte for byte.

use bytes::{BufMut, BytesMut};
use serde::{Deserialize, Serialize};

use super::{
    CodecError, ControlMsg, Envelope, MAX_BATCHED_TELLS, Rejection, SEALED_HEADER_LEN, SEALED_OVERHEAD,
    append_postcard, decode_exact,
};

/// An [`Envelope`] decoded with its data-plane strings and payloads
/// borrowed from the frame. Same variants, same indexes, same fields.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
pub enum EnvelopeRef<'a> {
    /// Index 0: as [`Envelope::Control`] (owned: control messages are rare).
    Control(ControlMsg),
    /// Index 1: as [`Envelope::Data`].
    #[serde(borrow)]
    Data(DataRef<'a>),
}

/// A [`DataMsg`](super::DataMsg) borrowing from the frame; fields as there.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[allow(missing_docs)] // Each field is documented on `DataMsg`.
pub enum DataRef<'a> {
    /// Index 0: [`DataMsg::Tell`](super::DataMsg::Tell).
    Tell { registry: &'a str, shard: u32, epoch: u64, key: &'a str, payload: &'a [u8], ack_id: Option<u64> },
    /// Index 1: [`DataMsg::Ask`](super::DataMsg::Ask).
    Ask { request_id: u64, registry: &'a str, shard: u32, epoch: u64, key: &'a str, payload: &'a [u8] },
    /// Index 2: [`DataMsg::Reply`](super::DataMsg::Reply).
    Reply { request_id: u64, payload: &'a [u8] },
    /// Index 3: [`DataMsg::Ack`](super::DataMsg::Ack).
    Ack { ack_id: u64 },
    /// Index 4: [`DataMsg::Rejected`](super::DataMsg::Rejected).
    Rejected { request_id: u64, reason: Rejection },
    /// Index 5: [`DataMsg::Canceled`](super::DataMsg::Canceled).
    Canceled { request_id: u64 },
    /// Index 6: [`DataMsg::Tells`](super::DataMsg::Tells) (protocol version 3).
    Tells {
        registry: &'a str,
        shard: u32,
        epoch: u64,
        key: &'a str,
        #[serde(borrow, deserialize_with = "tell_slices")]
        payloads: Vec<&'a [u8]>,
    },
}

/// The payloads of a `Tells`, borrowed: checked as the owned decoding
/// checks them (1 to [`MAX_BATCHED_TELLS`], the announced count first).
fn tell_slices<'de: 'a, 'a, D: serde::Deserializer<'de>>(d: D) -> Result<Vec<&'a [u8]>, D::Error> {
    use serde::de::{SeqAccess, Visitor};

    struct Slices;

    impl<'de> Visitor<'de> for Slices {
        type Value = Vec<&'de [u8]>;

        fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
            write!(f, "1 to {MAX_BATCHED_TELLS} tell payloads")
        }

        fn visit_seq<A: SeqAccess<'de>>(self, seq: A) -> Result<Self::Value, A::Error> {
            super::envelope::tell_payloads::bounded_seq(seq, MAX_BATCHED_TELLS, &self)
        }
    }

    d.deserialize_seq(Slices)
}

/// Decodes a verified sealed payload, borrowing from it; accepts and
/// rejects exactly what [`decode_envelope`](super::decode_envelope) does.
///
/// # Errors
/// As [`decode_envelope`](super::decode_envelope).
pub fn decode_envelope_ref(payload: &[u8]) -> Result<EnvelopeRef<'_>, CodecError> {
    decode_exact(payload)
}

/// The requests of the data plane, from borrowed parts and a payload `P`
/// (bytes already encoded, [`Raw`], or a value encoded straight into the
/// frame, [`Typed`]): encodes exactly as the [`DataMsg`](super::DataMsg)
/// variant of the same name.
#[derive(Debug, Clone, Copy)]
#[allow(missing_docs)] // Each field is documented on `DataMsg`.
pub enum DataOut<'a, P = Raw<'a>> {
    /// Index 0: [`DataMsg::Tell`](super::DataMsg::Tell).
    Tell { registry: &'a str, shard: u32, epoch: u64, key: &'a str, payload: P, ack_id: Option<u64> },
    /// Index 1: [`DataMsg::Ask`](super::DataMsg::Ask).
    Ask { request_id: u64, registry: &'a str, shard: u32, epoch: u64, key: &'a str, payload: P },
}

/// A request's payload as [`OutFrame::data`] writes it: the bytes of a
/// `Vec<u8>` field (length, then the bytes).
pub trait OutPayload {
    /// The payload's length in bytes.
    ///
    /// # Errors
    /// [`CodecError::Postcard`] if the value cannot be encoded.
    fn encoded_len(&self) -> Result<usize, CodecError>;
    /// Appends the payload's bytes (exactly [`encoded_len`](Self::encoded_len) of them).
    ///
    /// # Errors
    /// [`CodecError::Postcard`] if the value cannot be encoded.
    fn append_to(&self, out: &mut BytesMut) -> Result<(), CodecError>;
}

/// A payload already encoded.
#[derive(Debug, Clone, Copy)]
pub struct Raw<'a>(pub &'a [u8]);

/// A payload that is `postcard(value)`, encoded straight into the frame.
#[derive(Debug)]
pub struct Typed<'a, T: ?Sized>(pub &'a T);

impl<T: ?Sized> Clone for Typed<'_, T> {
    fn clone(&self) -> Self {
        *self
    }
}

impl<T: ?Sized> Copy for Typed<'_, T> {}

impl OutPayload for Raw<'_> {
    fn encoded_len(&self) -> Result<usize, CodecError> {
        Ok(self.0.len())
    }

    fn append_to(&self, out: &mut BytesMut) -> Result<(), CodecError> {
        out.extend_from_slice(self.0);
        Ok(())
    }
}

impl<T: Serialize + ?Sized> OutPayload for Typed<'_, T> {
    fn encoded_len(&self) -> Result<usize, CodecError> {
        Ok(postcard::experimental::serialized_size(self.0)?)
    }

    fn append_to(&self, out: &mut BytesMut) -> Result<(), CodecError> {
        append_postcard(self.0, out)
    }
}

/// [`Envelope::Data`] and the index of [`DataMsg::Tell`](super::DataMsg::Tell).
const TELL_PREFIX: [u8; 2] = [1, 0];
/// [`Envelope::Data`] and the index of [`DataMsg::Ask`](super::DataMsg::Ask).
const ASK_PREFIX: [u8; 2] = [1, 1];

/// [`Envelope::Data`] and the index of [`DataMsg::Tells`](super::DataMsg::Tells).
const TELLS_PREFIX: [u8; 2] = [1, 6];

/// [`Envelope::Data`] and [`DataMsg::Reply`](super::DataMsg::Reply): the
/// variant indexes that open a reply's envelope.
const REPLY_PREFIX: [u8; 2] = [1, 2];

/// One sealed frame under construction (see the module docs): the sealed
/// header's room, the envelope, and capacity for the MAC.
#[derive(Debug)]
pub struct OutFrame {
    buf: BytesMut,
}

impl OutFrame {
    /// An empty frame with room for an envelope of `envelope` bytes.
    fn with_capacity(envelope: usize) -> OutFrame {
        let mut buf = super::arena::buffer(envelope.saturating_add(SEALED_OVERHEAD));
        buf.resize(SEALED_HEADER_LEN, 0);
        OutFrame { buf }
    }

    /// An empty frame that is never sealed (it stands for a frame encoded
    /// later); allocates nothing.
    pub(crate) fn placeholder() -> OutFrame {
        OutFrame { buf: BytesMut::new() }
    }

    /// The frame of any envelope.
    ///
    /// # Errors
    /// [`CodecError::Postcard`] if postcard cannot encode it (not expected).
    pub fn envelope(env: &Envelope) -> Result<OutFrame, CodecError> {
        let mut frame = OutFrame::with_capacity(postcard::experimental::serialized_size(env)?);
        append_postcard(env, &mut frame.buf)?;
        Ok(frame)
    }

    /// The frame of a request, encoded from borrowed parts, its payload
    /// straight into the frame (exactly sized).
    ///
    /// # Errors
    /// [`CodecError::Postcard`] if the payload cannot be encoded, or
    /// encodes to another length than it announced.
    pub fn data<P: OutPayload>(msg: DataOut<'_, P>) -> Result<OutFrame, CodecError> {
        match msg {
            DataOut::Tell { registry, shard, epoch, key, payload, ack_id } => {
                let head = (registry, shard, epoch, key);
                OutFrame::request(TELL_PREFIX, &head, &payload, Some(ack_id))
            }
            DataOut::Ask { request_id, registry, shard, epoch, key, payload } => {
                let head = (request_id, registry, shard, epoch, key);
                OutFrame::request(ASK_PREFIX, &head, &payload, None)
            }
        }
    }

    /// A request's frame: `prefix`, the fields before the payload
    /// (`head`), the payload as a `Vec<u8>` field, then a tell's `ack_id`.
    fn request<H: Serialize, P: OutPayload>(
        prefix: [u8; 2],
        head: &H,
        payload: &P,
        ack_id: Option<Option<u64>>,
    ) -> Result<OutFrame, CodecError> {
        let len = payload.encoded_len()?;
        let tail = match ack_id {
            Some(ack_id) => postcard::experimental::serialized_size(&ack_id)?,
            None => 0,
        };
        let head_len = postcard::experimental::serialized_size(head)?;
        let mut frame = OutFrame::with_capacity(prefix.len() + head_len + varint_len(len as u64) + len + tail);
        frame.buf.extend_from_slice(&prefix);
        append_postcard(head, &mut frame.buf)?;
        put_varint(len as u64, &mut frame.buf);
        let start = frame.buf.len();
        payload.append_to(&mut frame.buf)?;
        if frame.buf.len() - start != len {
            // The value encoded differently twice: its length prefix would lie.
            return Err(CodecError::Postcard(super::PostcardErrorKind::Serialize));
        }
        if let Some(ack_id) = ack_id {
            append_postcard(&ack_id, &mut frame.buf)?;
        }
        Ok(frame)
    }

    /// The frame of a [`DataMsg::Reply`](super::DataMsg::Reply) whose
    /// payload is `postcard(reply)`, encoded straight from `reply`.
    ///
    /// # Errors
    /// [`CodecError::Postcard`] if postcard cannot encode `reply` (a
    /// `Serialize` impl that fails, say).
    pub fn reply<R: Serialize + ?Sized>(request_id: u64, reply: &R) -> Result<OutFrame, CodecError> {
        let len = postcard::experimental::serialized_size(reply)?;
        // Exactly sized: the frame takes no more of its chunk than it needs.
        let envelope = REPLY_PREFIX.len() + varint_len(request_id) + varint_len(len as u64) + len;
        let mut frame = OutFrame::with_capacity(envelope);
        frame.buf.extend_from_slice(&REPLY_PREFIX);
        put_varint(request_id, &mut frame.buf);
        put_varint(len as u64, &mut frame.buf);
        let start = frame.buf.len();
        append_postcard(reply, &mut frame.buf)?;
        if frame.buf.len() - start != len {
            // The value encoded differently twice: its length prefix would lie.
            return Err(CodecError::Postcard(super::PostcardErrorKind::Serialize));
        }
        Ok(frame)
    }

    /// The frame of a [`DataMsg::Tells`](super::DataMsg::Tells) holding
    /// the payloads gathered in `tells`, in order (exactly sized).
    ///
    /// # Errors
    /// [`CodecError::Postcard`] if `tells` is empty or holds more than
    /// [`MAX_BATCHED_TELLS`] payloads (the peer would refuse the frame).
    pub fn tells(
        registry: &str,
        shard: u32,
        epoch: u64,
        key: &str,
        tells: &TellEntries,
    ) -> Result<OutFrame, CodecError> {
        if tells.count == 0 || tells.count > MAX_BATCHED_TELLS {
            return Err(CodecError::Postcard(super::PostcardErrorKind::Serialize));
        }
        let head = (registry, shard, epoch, key);
        let head_len = TellEntries::head_len(registry, shard, epoch, key)?;
        let mut frame = OutFrame::with_capacity(tells.envelope_len(head_len, None));
        frame.buf.extend_from_slice(&TELLS_PREFIX);
        append_postcard(&head, &mut frame.buf)?;
        put_varint(tells.count as u64, &mut frame.buf);
        frame.buf.extend_from_slice(&tells.buf);
        Ok(frame)
    }

    /// The encoded envelope (what gets sealed).
    pub fn envelope_bytes(&self) -> &[u8] {
        self.buf.get(SEALED_HEADER_LEN..).unwrap_or_default()
    }

    /// The buffer, for the sealer: `SEALED_HEADER_LEN` bytes of room for
    /// the header, then the envelope.
    pub(crate) fn into_buf(self) -> BytesMut {
        self.buf
    }
}

/// The payloads of a [`DataMsg::Tells`](super::DataMsg::Tells) being
/// gathered, each already encoded as its byte string (length, then the
/// bytes): [`OutFrame::tells`] copies them into the frame in one piece.
#[derive(Debug, Default)]
pub struct TellEntries {
    buf: BytesMut,
    count: usize,
}

impl TellEntries {
    /// No payloads yet.
    pub fn new() -> TellEntries {
        TellEntries::default()
    }

    /// Appends `payload` after those gathered.
    ///
    /// # Errors
    /// [`CodecError::Postcard`] if the payload cannot be encoded, or
    /// encodes to another length than it announced (nothing is appended).
    pub fn push<P: OutPayload>(&mut self, payload: &P) -> Result<(), CodecError> {
        let len = payload.encoded_len()?;
        let before = self.buf.len();
        self.buf.reserve(varint_len(len as u64) + len);
        put_varint(len as u64, &mut self.buf);
        let start = self.buf.len();
        let appended = payload.append_to(&mut self.buf);
        if appended.is_err() || self.buf.len() - start != len {
            self.buf.truncate(before);
            return Err(appended.err().unwrap_or(CodecError::Postcard(super::PostcardErrorKind::Serialize)));
        }
        self.count += 1;
        Ok(())
    }

    /// How many payloads are gathered.
    pub fn count(&self) -> usize {
        self.count
    }

    /// The length in bytes of what opens a `Tells` envelope for `registry`
    /// and `key`: the variant indexes and the fields before the payloads.
    ///
    /// # Errors
    /// [`CodecError::Postcard`] if the fields cannot be encoded (not expected).
    pub fn head_len(registry: &str, shard: u32, epoch: u64, key: &str) -> Result<usize, CodecError> {
        Ok(TELLS_PREFIX.len() + postcard::experimental::serialized_size(&(registry, shard, epoch, key))?)
    }

    /// The length in bytes of the envelope of a `Tells` opened by
    /// `head_len` bytes ([`TellEntries::head_len`]) with these payloads,
    /// and one more `more` bytes long if `Some`.
    pub fn envelope_len(&self, head_len: usize, more: Option<usize>) -> usize {
        let (count, entries) = match more {
            Some(len) => (self.count + 1, self.buf.len() + varint_len(len as u64) + len),
            None => (self.count, self.buf.len()),
        };
        head_len + varint_len(count as u64) + entries
    }
}

/// The length of [`put_varint`]'s encoding of `v`.
fn varint_len(v: u64) -> usize {
    (64 - (v | 1).leading_zeros() as usize).div_ceil(7)
}

/// Appends `v` as postcard's varint (LEB128: 7 bits per byte, low first,
/// the high bit set on every byte but the last).
fn put_varint(mut v: u64, out: &mut impl BufMut) {
    while v >= 0x80 {
        out.put_u8((v as u8) | 0x80);
        v >>= 7;
    }
    out.put_u8(v as u8);
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    use super::super::{DataMsg, decode_envelope, encode_envelope};
    use super::*;
    use crate::wire::arb;

    fn owned(env: &EnvelopeRef<'_>) -> Envelope {
        match env {
            EnvelopeRef::Control(c) => Envelope::Control(c.clone()),
            EnvelopeRef::Data(d) => Envelope::Data(match *d {
                DataRef::Tell { registry, shard, epoch, key, payload, ack_id } => DataMsg::Tell {
                    registry: registry.into(),
                    shard,
                    epoch,
                    key: key.into(),
                    payload: payload.to_vec(),
                    ack_id,
                },
                DataRef::Ask { request_id, registry, shard, epoch, key, payload } => DataMsg::Ask {
                    request_id,
                    registry: registry.into(),
                    shard,
                    epoch,
                    key: key.into(),
                    payload: payload.to_vec(),
                },
                DataRef::Reply { request_id, payload } => DataMsg::Reply { request_id, payload: payload.to_vec() },
                DataRef::Ack { ack_id } => DataMsg::Ack { ack_id },
                DataRef::Rejected { request_id, ref reason } => {
                    DataMsg::Rejected { request_id, reason: reason.clone() }
                }
                DataRef::Canceled { request_id } => DataMsg::Canceled { request_id },
                DataRef::Tells { registry, shard, epoch, key, ref payloads } => DataMsg::Tells {
                    registry: registry.into(),
                    shard,
                    epoch,
                    key: key.into(),
                    payloads: payloads.iter().map(|p| p.to_vec()).collect(),
                },
            }),
        }
    }

    fn owned_bytes(env: &Envelope) -> Vec<u8> {
        let mut out = Vec::new();
        encode_envelope(env, &mut out).expect("encodable");
        out
    }

    proptest! {
        #[test]
        fn borrowed_decoding_agrees_with_owned_decoding(env in arb::envelope()) {
            let bytes = owned_bytes(&env);
            let decoded = decode_envelope_ref(&bytes).expect("decodes");
            prop_assert_eq!(owned(&decoded), env);
        }

        #[test]
        fn borrowed_decoding_accepts_exactly_what_owned_decoding_accepts(
            bytes in proptest::collection::vec(any::<u8>(), 0..64),
        ) {
            let by_ref = decode_envelope_ref(&bytes).map(|e| owned(&e));
            prop_assert_eq!(by_ref, decode_envelope(&bytes));
        }

        #[test]
        fn out_frames_encode_like_the_owned_messages(
            request_id in any::<u64>(),
            registry in ".{0,12}",
            shard in any::<u32>(),
            epoch in any::<u64>(),
            key in ".{0,12}",
            payload in proptest::collection::vec(any::<u8>(), 0..300),
            ack_id in any::<Option<u64>>(),
        ) {
            let ask = OutFrame::data(DataOut::Ask {
                request_id, registry: &registry, shard, epoch, key: &key, payload: Raw(&payload),
            }).expect("encodes");
            let owned_ask = Envelope::Data(DataMsg::Ask {
                request_id, registry: registry.clone(), shard, epoch, key: key.clone(), payload: payload.clone(),
            });
            prop_assert_eq!(ask.envelope_bytes(), &owned_bytes(&owned_ask)[..]);
            let tell = OutFrame::data(DataOut::Tell {
                registry: &registry, shard, epoch, key: &key, payload: Raw(&payload), ack_id,
            }).expect("encodes");
            let owned_tell = Envelope::Data(DataMsg::Tell { registry, shard, epoch, key, payload, ack_id });
            prop_assert_eq!(tell.envelope_bytes(), &owned_bytes(&owned_tell)[..]);
        }

        #[test]
        fn typed_request_frames_encode_like_the_owned_messages_exactly_sized(
            request_id in any::<u64>(),
            registry in ".{0,12}",
            shard in any::<u32>(),
            key in ".{0,12}",
            value in any::<(String, Vec<u32>)>(),
            ack_id in any::<Option<u64>>(),
        ) {
            let payload = postcard::to_allocvec(&value).expect("encodes");
            let ask = OutFrame::data(DataOut::Ask {
                request_id, registry: &registry, shard, epoch: 7, key: &key, payload: Typed(&value),
            }).expect("encodes");
            prop_assert_eq!(ask.buf.capacity(), ask.buf.len() + super::super::MAC_LEN, "exactly sized");
            let owned_ask = Envelope::Data(DataMsg::Ask {
                request_id, registry: registry.clone(), shard, epoch: 7, key: key.clone(), payload: payload.clone(),
            });
            prop_assert_eq!(ask.envelope_bytes(), &owned_bytes(&owned_ask)[..]);
            let tell = OutFrame::data(DataOut::Tell {
                registry: &registry, shard, epoch: 7, key: &key, payload: Typed(&value), ack_id,
            }).expect("encodes");
            prop_assert_eq!(tell.buf.capacity(), tell.buf.len() + super::super::MAC_LEN, "exactly sized");
            let owned_tell = Envelope::Data(DataMsg::Tell { registry, shard, epoch: 7, key, payload, ack_id });
            prop_assert_eq!(tell.envelope_bytes(), &owned_bytes(&owned_tell)[..]);
        }

        #[test]
        fn reply_frames_encode_like_the_owned_reply(request_id in any::<u64>(), reply in any::<(String, Vec<u32>)>()) {
            let frame = OutFrame::reply(request_id, &reply).expect("encodes");
            prop_assert_eq!(frame.buf.capacity(), frame.buf.len() + super::super::MAC_LEN, "exactly sized");
            let payload = postcard::to_allocvec(&reply).expect("encodes");
            let expected = Envelope::Data(DataMsg::Reply { request_id, payload });
            prop_assert_eq!(frame.envelope_bytes(), &owned_bytes(&expected)[..]);
            prop_assert_eq!(decode_envelope(frame.envelope_bytes()).expect("decodes"), expected);
        }

        #[test]
        fn tells_frames_encode_like_the_owned_message_exactly_sized(
            registry in ".{0,12}",
            shard in any::<u32>(),
            epoch in any::<u64>(),
            key in ".{0,12}",
            values in proptest::collection::vec(any::<(String, Vec<u32>)>(), 1..20),
        ) {
            let mut tells = TellEntries::new();
            let head_len = TellEntries::head_len(&registry, shard, epoch, &key).expect("sized");
            for (i, v) in values.iter().enumerate() {
                let predicted = tells.envelope_len(head_len, Some(postcard::to_allocvec(v).expect("encodes").len()));
                tells.push(&Typed(v)).expect("encodes");
                prop_assert_eq!(tells.count(), i + 1);
                prop_assert_eq!(tells.envelope_len(head_len, None), predicted);
            }
            let frame = OutFrame::tells(&registry, shard, epoch, &key, &tells).expect("encodes");
            prop_assert_eq!(frame.buf.capacity(), frame.buf.len() + super::super::MAC_LEN, "exactly sized");
            prop_assert_eq!(frame.envelope_bytes().len(), tells.envelope_len(head_len, None));
            let payloads = values.iter().map(|v| postcard::to_allocvec(v).expect("encodes")).collect();
            let owned_tells = Envelope::Data(DataMsg::Tells { registry, shard, epoch, key, payloads });
            prop_assert_eq!(frame.envelope_bytes(), &owned_bytes(&owned_tells)[..]);
            prop_assert_eq!(owned(&decode_envelope_ref(frame.envelope_bytes()).expect("decodes")), owned_tells);
        }

        #[test]
        fn varint_len_is_the_encoded_length(v in any::<u64>()) {
            let mut out = Vec::new();
            put_varint(v, &mut out);
            prop_assert_eq!(out.len(), varint_len(v));
            prop_assert_eq!(out, postcard::to_allocvec(&v).expect("encodes"));
        }

        #[test]
        fn envelope_frames_hold_the_envelope_and_room_for_the_seal(env in arb::envelope()) {
            let frame = OutFrame::envelope(&env).expect("encodes");
            prop_assert_eq!(frame.envelope_bytes(), &owned_bytes(&env)[..]);
            let buf = frame.into_buf();
            prop_assert!(buf.capacity() >= buf.len() + super::super::MAC_LEN);
        }
    }
}
