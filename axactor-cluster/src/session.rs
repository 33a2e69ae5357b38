//! Per-session frame authentication: [`Sealer`] and [`Opener`].
//!
//! Low-level protocol internals, public for tests and fuzzing. After the
//! handshake (`crate::handshake`) both sides hold a [`SessionKeys`]: one key
//! per direction, derived from the handshake key and the transcript, so the
//! keys differ between directions and between sessions. Every frame sent
//! afterwards is a *sealed body*:
//!
//! ```text
//! [TAG_SEALED 0x02][seq: u64 big-endian][payload][HMAC-SHA256(direction key, seq_be ‖ payload): 32 bytes]
//! ```
//!
//! The layout and its constants belong to `crate::wire::msg`; this module
//! computes and checks the sequence number and the MAC, either on a whole
//! body ([`Opener::open`]) or on the parts `wire::msg::decode_body` cut it
//! into ([`Opener::open_parts`]).
//!
//! Invariants:
//! - Sequence numbers start at 0 in each direction of each session and grow
//!   by exactly one per frame. The [`Opener`] accepts only the next expected
//!   number: a replayed, reordered or skipped frame is rejected. Both
//!   overlays deliver a link's frames in order (TCP; the in-memory overlay
//!   per link), so a gap or inversion is an attack, corruption, or an
//!   injected fault — in every case the connection is closed and the node
//!   reconnects with a new handshake (new keys, sequence numbers from 0).
//! - The MAC is checked (in constant time) before the sequence number, so
//!   an unauthenticated frame never tells the sender which number was
//!   expected.
//! - After any rejected frame the [`Opener`] is closed and rejects
//!   everything that follows; the caller must drop the connection.
//! - Sequence numbers never wrap: numbers run from 0 to `u64::MAX - 1`;
//!   the sealer then fails with [`SealError::Exhausted`] and the opener
//!   refuses a frame numbered `u64::MAX` (unreachable in practice).
//!
//! Only integrity and ordering are promised; payloads are not encrypted.
//!
//! Concurrency: none. A `Sealer` belongs to the connection's write path
//! (behind its lock), an `Opener` to its reader; both are plain values
//! (`Send`, no locks).

use std::fmt;

use hmac::{Hmac, KeyInit, Mac};
use sha2::Sha256;

use bytes::Bytes;

use crate::wire::msg::{
    MAC_LEN, OutFrame, SEALED_HEADER_LEN, SEALED_OVERHEAD, SEQ_LEN, TAG_SEALED, encode_sealed, sealed_header,
};

/// Length of a frame key, in bytes.
pub const FRAME_KEY_LEN: usize = 32;

type HmacSha256 = Hmac<Sha256>;

/// A 32-byte key authenticating the frames of one direction of one session.
/// `Debug` does not print the key.
#[derive(Clone)]
pub struct FrameKey([u8; FRAME_KEY_LEN]);

impl FrameKey {
    /// A frame key with the given bytes. Normally produced by the handshake;
    /// public for tests and fuzzing.
    pub fn from_bytes(bytes: [u8; FRAME_KEY_LEN]) -> FrameKey {
        FrameKey(bytes)
    }

    #[cfg(test)]
    pub(crate) fn bytes(&self) -> &[u8; FRAME_KEY_LEN] {
        &self.0
    }

    fn mac(&self) -> HmacSha256 {
        HmacSha256::new_from_slice(&self.0).expect("HMAC accepts keys of any length")
    }
}

impl fmt::Debug for FrameKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("FrameKey(..)")
    }
}

/// The frame keys of one side of an established session: `send` seals what
/// this side sends, `recv` opens what it receives. The initiator's `send` is
/// the responder's `recv` and vice versa.
#[derive(Debug, Clone)]
pub struct SessionKeys {
    /// Key of the direction this side sends in.
    pub send: FrameKey,
    /// Key of the direction this side receives in.
    pub recv: FrameKey,
}

impl SessionKeys {
    /// The sealer for outgoing and the opener for incoming frames, both
    /// starting at sequence number 0.
    pub fn into_parts(self) -> (Sealer, Opener) {
        (Sealer::new(self.send), Opener::new(self.recv))
    }
}

/// Why a frame could not be sealed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum SealError {
    /// All `u64::MAX` sequence numbers of this direction have been used; the
    /// session must be replaced by a new handshake.
    #[error("sequence numbers exhausted")]
    Exhausted,
}

/// Why a received sealed body was rejected. Any of these closes the
/// connection.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum OpenError {
    /// Shorter than tag, sequence number and MAC.
    #[error("sealed frame too short")]
    TooShort,
    /// The first byte is not [`TAG_SEALED`].
    #[error("not a sealed frame")]
    WrongTag,
    /// The MAC does not verify: tampered, forged, or sealed under another
    /// key (other direction, other session, other token).
    #[error("frame mac mismatch")]
    BadMac,
    /// Authentic, but not the next frame: replayed, reordered or a gap.
    #[error("frame out of sequence (expected {expected}, got {got})")]
    OutOfSequence {
        /// The sequence number the opener expected.
        expected: u64,
        /// The sequence number the frame carried.
        got: u64,
    },
    /// The peer went past the last sequence number a sealer may use.
    #[error("sequence numbers exhausted")]
    Exhausted,
    /// An earlier frame was rejected; this opener accepts nothing more.
    #[error("opener closed after an earlier rejected frame")]
    Closed,
}

impl OpenError {
    /// A short stable label for counters and logs (`"bad_mac"`, ...).
    pub fn label(&self) -> &'static str {
        match self {
            OpenError::TooShort => "too_short",
            OpenError::WrongTag => "wrong_tag",
            OpenError::BadMac => "bad_mac",
            OpenError::OutOfSequence { .. } => "out_of_sequence",
            OpenError::Exhausted => "seq_exhausted",
            OpenError::Closed => "closed",
        }
    }
}

/// Seals outgoing frames of one direction of a session.
pub struct Sealer {
    mac: HmacSha256,
    next_seq: u64,
}

impl Sealer {
    /// A sealer whose first frame gets sequence number 0.
    pub fn new(key: FrameKey) -> Sealer {
        Sealer { mac: key.mac(), next_seq: 0 }
    }

    /// The sequence number the next sealed frame will carry.
    pub fn next_seq(&self) -> u64 {
        self.next_seq
    }

    /// Appends the sealed body of `payload` to `out`
    /// (`payload.len() + SEALED_OVERHEAD` bytes) and advances the sequence
    /// number. `out` is not cleared, so a caller may reserve a length prefix
    /// first.
    ///
    /// # Errors
    /// [`SealError::Exhausted`] when no sequence number is left; `out` is
    /// unchanged.
    pub fn seal(&mut self, payload: &[u8], out: &mut Vec<u8>) -> Result<(), SealError> {
        let seq = self.next_seq;
        // u64::MAX itself is never used, so `seq + 1` cannot overflow.
        if seq == u64::MAX {
            return Err(SealError::Exhausted);
        }
        encode_sealed(seq, payload, &self.mac_of(seq, payload), out);
        self.next_seq = seq + 1;
        Ok(())
    }

    /// Seals `frame` in place: fills in its header (`TAG_SEALED`, the
    /// sequence number) and appends the MAC; the same bytes as
    /// [`seal`](Self::seal) of its envelope, without a copy.
    ///
    /// # Errors
    /// [`SealError::Exhausted`] when no sequence number is left.
    pub fn seal_frame(&mut self, frame: OutFrame) -> Result<Bytes, SealError> {
        let seq = self.next_seq;
        // u64::MAX itself is never used, so `seq + 1` cannot overflow.
        if seq == u64::MAX {
            return Err(SealError::Exhausted);
        }
        let mut buf = frame.into_buf();
        // An `OutFrame` always starts with `SEALED_HEADER_LEN` bytes of room.
        buf[..SEALED_HEADER_LEN].copy_from_slice(&sealed_header(seq));
        let mut mac = self.mac.clone();
        // `seq_be ‖ payload`, as `mac_of` covers it.
        mac.update(&buf[1..]);
        buf.extend_from_slice(&mac.finalize().into_bytes());
        self.next_seq = seq + 1;
        Ok(buf.freeze())
    }

    fn mac_of(&self, seq: u64, payload: &[u8]) -> [u8; MAC_LEN] {
        let mut mac = self.mac.clone();
        mac.update(&seq.to_be_bytes());
        mac.update(payload);
        mac.finalize().into_bytes().into()
    }

    #[cfg(test)]
    fn starting_at(key: FrameKey, next_seq: u64) -> Sealer {
        Sealer { mac: key.mac(), next_seq }
    }
}

impl fmt::Debug for Sealer {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Sealer").field("next_seq", &self.next_seq).finish_non_exhaustive()
    }
}

/// Opens incoming frames of one direction of a session, in order.
pub struct Opener {
    mac: HmacSha256,
    next_expected: u64,
    closed: bool,
}

impl Opener {
    /// An opener expecting sequence number 0 first.
    pub fn new(key: FrameKey) -> Opener {
        Opener { mac: key.mac(), next_expected: 0, closed: false }
    }

    /// The sequence number the next accepted frame must carry.
    pub fn next_expected(&self) -> u64 {
        self.next_expected
    }

    /// Whether an earlier frame was rejected (then every later call fails
    /// with [`OpenError::Closed`]).
    pub fn is_closed(&self) -> bool {
        self.closed
    }

    /// Checks a sealed body and returns its payload. Order of checks: length,
    /// tag, MAC (constant time), then the sequence number must equal
    /// [`next_expected`](Self::next_expected) exactly.
    ///
    /// # Errors
    /// See [`OpenError`]. After an error the opener is closed.
    pub fn open<'b>(&mut self, body: &'b [u8]) -> Result<&'b [u8], OpenError> {
        if self.closed {
            return Err(OpenError::Closed);
        }
        let (seq, payload, mac) = split_sealed(body).inspect_err(|_| self.closed = true)?;
        self.open_parts(seq, payload, mac)?;
        Ok(payload)
    }

    /// Like [`open`](Self::open), for a body already cut into its parts (as
    /// `wire::msg::Body::Sealed` carries them): checks the MAC over
    /// `seq_be ‖ payload` (constant time), then the sequence number.
    ///
    /// # Errors
    /// [`OpenError::BadMac`], [`OpenError::OutOfSequence`],
    /// [`OpenError::Exhausted`] or [`OpenError::Closed`]. After an error the
    /// opener is closed.
    pub fn open_parts(&mut self, seq: u64, payload: &[u8], mac: &[u8; MAC_LEN]) -> Result<(), OpenError> {
        if self.closed {
            return Err(OpenError::Closed);
        }
        let result = self.check(seq, payload, mac);
        match result {
            // `check` refuses `u64::MAX`, so this cannot overflow.
            Ok(()) => self.next_expected = seq + 1,
            Err(_) => self.closed = true,
        }
        result
    }

    fn check(&self, seq: u64, payload: &[u8], mac: &[u8; MAC_LEN]) -> Result<(), OpenError> {
        let mut check = self.mac.clone();
        check.update(&seq.to_be_bytes());
        check.update(payload);
        check.verify_slice(mac).map_err(|_| OpenError::BadMac)?;
        if seq != self.next_expected {
            return Err(OpenError::OutOfSequence { expected: self.next_expected, got: seq });
        }
        // A conforming sealer never uses u64::MAX, so accepting it would leave
        // no next number to expect.
        if seq == u64::MAX {
            return Err(OpenError::Exhausted);
        }
        Ok(())
    }

    #[cfg(test)]
    fn starting_at(key: FrameKey, next_expected: u64) -> Opener {
        Opener { mac: key.mac(), next_expected, closed: false }
    }
}

/// Cuts a sealed body into sequence number, payload and MAC.
fn split_sealed(body: &[u8]) -> Result<(u64, &[u8], &[u8; MAC_LEN]), OpenError> {
    if body.len() < SEALED_OVERHEAD {
        return Err(OpenError::TooShort);
    }
    let (&tag, rest) = body.split_first().ok_or(OpenError::TooShort)?;
    if tag != TAG_SEALED {
        return Err(OpenError::WrongTag);
    }
    let (seq, rest) = rest.split_first_chunk::<SEQ_LEN>().ok_or(OpenError::TooShort)?;
    let (payload, mac) = rest.split_last_chunk::<MAC_LEN>().ok_or(OpenError::TooShort)?;
    Ok((u64::from_be_bytes(*seq), payload, mac))
}

impl fmt::Debug for Opener {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Opener")
            .field("next_expected", &self.next_expected)
            .field("closed", &self.closed)
            .finish_non_exhaustive()
    }
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    use super::*;

    fn key(b: u8) -> FrameKey {
        FrameKey::from_bytes([b; FRAME_KEY_LEN])
    }

    fn pair(b: u8) -> (Sealer, Opener) {
        (Sealer::new(key(b)), Opener::new(key(b)))
    }

    fn sealed(s: &mut Sealer, payload: &[u8]) -> Vec<u8> {
        let mut out = Vec::new();
        s.seal(payload, &mut out).expect("seal");
        out
    }

    #[test]
    fn sealing_a_frame_in_place_gives_the_same_bytes_and_advances_the_sequence() {
        use crate::wire::{ControlMsg, Envelope, encode_envelope};
        let (mut a, mut b) = (Sealer::new(key(3)), Sealer::new(key(3)));
        let mut opener = Opener::new(key(3));
        for ms in [1u64, 2, 300] {
            let env = Envelope::Control(ControlMsg::Heartbeat { sent_at_ms: ms });
            let mut payload = Vec::new();
            encode_envelope(&env, &mut payload).expect("encode");
            let in_place = a.seal_frame(OutFrame::envelope(&env).expect("encode")).expect("seal");
            assert_eq!(&in_place[..], &sealed(&mut b, &payload)[..]);
            assert_eq!(opener.open(&in_place).expect("opens"), &payload[..]);
        }
        assert_eq!(a.next_seq(), 3);
    }

    #[test]
    fn layout_is_tag_seq_payload_mac() {
        let (mut s, _) = pair(1);
        let a = sealed(&mut s, b"hello");
        let b = sealed(&mut s, b"");
        assert_eq!(a.len(), 5 + SEALED_OVERHEAD);
        assert_eq!(a[0], TAG_SEALED);
        assert_eq!(&a[1..9], &0u64.to_be_bytes());
        assert_eq!(&a[9..14], b"hello");
        assert_eq!(&b[1..9], &1u64.to_be_bytes());
        assert_eq!(b.len(), SEALED_OVERHEAD);
        let mut expect = HmacSha256::new_from_slice(&[1; 32]).expect("key");
        expect.update(&0u64.to_be_bytes());
        expect.update(b"hello");
        assert_eq!(&a[14..], expect.finalize().into_bytes().as_slice());
    }

    #[test]
    fn seal_appends_to_out() {
        let (mut s, mut o) = pair(1);
        let mut out = vec![0xAA, 0xBB];
        s.seal(b"x", &mut out).expect("seal");
        assert_eq!(&out[..2], &[0xAA, 0xBB]);
        assert_eq!(o.open(&out[2..]), Ok(&b"x"[..]));
    }

    #[test]
    fn round_trip_many_frames() {
        let (mut s, mut o) = pair(7);
        for i in 0..1000u32 {
            let payload = i.to_le_bytes().repeat((i % 17) as usize);
            let body = sealed(&mut s, &payload);
            assert_eq!(o.open(&body), Ok(payload.as_slice()));
        }
        assert_eq!(s.next_seq(), 1000);
        assert_eq!(o.next_expected(), 1000);
    }

    #[test]
    fn every_flipped_bit_is_rejected() {
        let (mut s, _) = pair(3);
        let body = sealed(&mut s, b"transfer 10 to alice");
        for bit in 0..body.len() * 8 {
            let mut bad = body.clone();
            bad[bit / 8] ^= 1 << (bit % 8);
            let mut o = Opener::new(key(3));
            let err = o.open(&bad).expect_err("flipped bit accepted");
            let want = if bit < 8 { OpenError::WrongTag } else { OpenError::BadMac };
            assert_eq!(err, want, "bit {bit}");
            assert!(o.is_closed());
        }
    }

    #[test]
    fn truncated_and_extended_bodies_are_rejected() {
        let (mut s, _) = pair(3);
        let body = sealed(&mut s, b"abc");
        for len in 0..body.len() {
            let mut o = Opener::new(key(3));
            let want = if len < SEALED_OVERHEAD { OpenError::TooShort } else { OpenError::BadMac };
            assert_eq!(o.open(&body[..len]), Err(want), "len {len}");
        }
        let mut longer = body.clone();
        longer.push(0);
        assert_eq!(Opener::new(key(3)).open(&longer), Err(OpenError::BadMac));
    }

    #[test]
    fn replayed_frame_is_rejected() {
        let (mut s, mut o) = pair(4);
        let f0 = sealed(&mut s, b"a");
        let f1 = sealed(&mut s, b"b");
        assert!(o.open(&f0).is_ok());
        assert!(o.open(&f1).is_ok());
        assert_eq!(o.open(&f1), Err(OpenError::OutOfSequence { expected: 2, got: 1 }));
        assert_eq!(o.open(&sealed(&mut s, b"c")), Err(OpenError::Closed));
    }

    #[test]
    fn replay_of_first_frame_is_rejected() {
        let (mut s, mut o) = pair(4);
        let f0 = sealed(&mut s, b"a");
        assert!(o.open(&f0).is_ok());
        assert_eq!(o.open(&f0), Err(OpenError::OutOfSequence { expected: 1, got: 0 }));
    }

    #[test]
    fn reordered_frames_are_rejected() {
        let (mut s, mut o) = pair(5);
        let f0 = sealed(&mut s, b"a");
        let f1 = sealed(&mut s, b"b");
        assert_eq!(o.open(&f1), Err(OpenError::OutOfSequence { expected: 0, got: 1 }));
        assert_eq!(o.open(&f0), Err(OpenError::Closed));
    }

    #[test]
    fn gap_is_rejected() {
        let (mut s, mut o) = pair(5);
        let f0 = sealed(&mut s, b"a");
        let _dropped = sealed(&mut s, b"b");
        let f2 = sealed(&mut s, b"c");
        assert!(o.open(&f0).is_ok());
        assert_eq!(o.open(&f2), Err(OpenError::OutOfSequence { expected: 1, got: 2 }));
    }

    #[test]
    fn frame_under_other_key_is_rejected() {
        // The other direction of the same session, and an older session.
        let keys = SessionKeys { send: key(1), recv: key(2) };
        let (mut send, _) = keys.clone().into_parts();
        let (_, mut recv) = keys.into_parts();
        let body = sealed(&mut send, b"to peer");
        assert_eq!(recv.open(&body), Err(OpenError::BadMac));

        let (mut old_sealer, _) = pair(9);
        let (_, mut new_opener) = pair(10);
        assert_eq!(new_opener.open(&sealed(&mut old_sealer, b"stale")), Err(OpenError::BadMac));
    }

    #[test]
    fn sealer_stops_before_wrapping() {
        let mut s = Sealer::starting_at(key(1), u64::MAX - 1);
        let mut o = Opener::starting_at(key(1), u64::MAX - 1);
        let body = sealed(&mut s, b"last");
        assert_eq!(o.open(&body), Ok(&b"last"[..]));
        assert_eq!(s.next_seq(), u64::MAX);
        assert_eq!(o.next_expected(), u64::MAX);
        let mut out = Vec::new();
        assert_eq!(s.seal(b"one more", &mut out), Err(SealError::Exhausted));
        assert!(out.is_empty());
    }

    #[test]
    fn opener_refuses_seq_max() {
        // Forge a body with seq u64::MAX under the right key.
        let mut mac = key(1).mac();
        mac.update(&u64::MAX.to_be_bytes());
        let mut body = vec![TAG_SEALED];
        body.extend_from_slice(&u64::MAX.to_be_bytes());
        body.extend_from_slice(&mac.finalize().into_bytes());
        let mut o = Opener::starting_at(key(1), u64::MAX);
        assert_eq!(o.open(&body), Err(OpenError::Exhausted));
    }

    #[test]
    fn parts_from_the_wire_decoder_open() {
        use crate::wire::msg::{Body, decode_body};
        let (mut s, mut o) = pair(6);
        for payload in [&b"one"[..], b"", b"three"] {
            let body = sealed(&mut s, payload);
            let Ok(Body::Sealed { seq, payload: got, mac }) = decode_body(&body) else {
                panic!("not a sealed body");
            };
            assert_eq!(got, payload);
            assert_eq!(o.open_parts(seq, got, mac), Ok(()));
        }
        let body = sealed(&mut s, b"four");
        let Ok(Body::Sealed { seq, payload, mac }) = decode_body(&body) else { panic!("not a sealed body") };
        assert_eq!(o.open_parts(seq, b"fouR", mac), Err(OpenError::BadMac));
        assert_eq!(o.open_parts(seq, payload, mac), Err(OpenError::Closed));
    }

    #[test]
    fn debug_hides_keys() {
        let (s, o) = pair(0xAB);
        assert_eq!(format!("{:?}", key(0xAB)), "FrameKey(..)");
        assert_eq!(format!("{s:?}"), "Sealer { next_seq: 0, .. }");
        assert_eq!(format!("{o:?}"), "Opener { next_expected: 0, closed: false, .. }");
    }

    proptest! {
        #[test]
        fn random_payloads_round_trip(payloads in prop::collection::vec(prop::collection::vec(any::<u8>(), 0..300), 0..40)) {
            let (mut s, mut o) = pair(42);
            for p in &payloads {
                let body = sealed(&mut s, p);
                prop_assert_eq!(o.open(&body), Ok(p.as_slice()));
            }
        }

        #[test]
        fn single_bit_flips_are_rejected(
            payload in prop::collection::vec(any::<u8>(), 0..200),
            skip in 0usize..4,
            bit in any::<prop::sample::Index>(),
        ) {
            let (mut s, mut o) = pair(42);
            for _ in 0..skip {
                let body = sealed(&mut s, b"earlier");
                prop_assert!(o.open(&body).is_ok());
            }
            let mut body = sealed(&mut s, &payload);
            let bit = bit.index(body.len() * 8);
            body[bit / 8] ^= 1 << (bit % 8);
            prop_assert!(o.open(&body).is_err());
        }

        #[test]
        fn open_never_panics(body in prop::collection::vec(any::<u8>(), 0..200), start in any::<u64>()) {
            let mut o = Opener::starting_at(key(42), start);
            let _ = o.open(&body);
            let _ = o.open(&body);
        }
    }
}
