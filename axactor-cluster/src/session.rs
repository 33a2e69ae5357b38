//! Per-session frame authentication: [`Sealer`] and [`Opener`].
//!
//! Low-level protocol internals, public for tests and fuzzing. After the
//! handshake (`crate::handshake`) both sides hold a [`SessionKeys`]: one key
//! per direction, derived from the handshake key and the transcript, so the
//! keys differ between directions and between sessions, and the MAC the
//! negotiated protocol version chose ([`FrameMac::for_version`]). Every
//! frame sent afterwards is a *sealed body*:
//!
//! ```text
//! versions 1-3: [TAG_SEALED 0x02][seq: u64 BE][payload][HMAC-SHA256(direction key, seq_be ‖ payload): 32 bytes]
//! version 4 on: [TAG_SEALED_GMAC 0x03][seq: u64 BE][payload][AES-256-GMAC(direction key, nonce, payload): 16 bytes]
//!               nonce = 0u32 BE ‖ seq_be (12 bytes)
//! ```
//!
//! GMAC is AES-GCM with no plaintext: the payload is the associated data,
//! and the sequence number, inside the nonce, is authenticated with it. A
//! GCM key must never see one nonce twice; here each key serves one
//! direction of one session and each sequence number is sealed once, so no
//! nonce repeats (a frame sealed again is a new number, see the invariants).
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
//! - An [`Opener`] accepts only its session's MAC: a body under the other
//!   one (its tag byte) is rejected like a forged one, so a version's MAC
//!   cannot be swapped for the other's.
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

use aes_gcm::aead::AeadInPlace;
use aes_gcm::{Aes256Gcm, Nonce};
use hmac::{Hmac, KeyInit, Mac};
use sha2::Sha256;

use bytes::Bytes;

pub use crate::wire::msg::FrameMac;
use crate::wire::msg::{GMAC_TAG_LEN, MAC_LEN, OutFrame, SEALED_HEADER_LEN, SEQ_LEN, encode_sealed, sealed_header};

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

    fn hmac(&self) -> HmacSha256 {
        HmacSha256::new_from_slice(&self.0).expect("HMAC accepts keys of any length")
    }

    fn keyed(&self, kind: FrameMac) -> Keyed {
        match kind {
            FrameMac::HmacSha256 => Keyed::Hmac(self.hmac()),
            FrameMac::Aes256Gmac => Keyed::Gmac(Box::new(<Aes256Gcm as aes_gcm::KeyInit>::new(&self.0.into()))),
        }
    }
}

/// A direction's key, ready for its MAC. The GCM state (AES round keys and
/// the hash key) is boxed: it is several hundred bytes, and sealers move.
#[derive(Clone)]
enum Keyed {
    Hmac(HmacSha256),
    Gmac(Box<Aes256Gcm>),
}

impl Keyed {
    fn kind(&self) -> FrameMac {
        match self {
            Keyed::Hmac(_) => FrameMac::HmacSha256,
            Keyed::Gmac(_) => FrameMac::Aes256Gmac,
        }
    }

    /// The MAC of `payload` numbered `seq`.
    fn compute(&self, seq: u64, payload: &[u8]) -> MacBytes {
        let mut out = MacBytes { bytes: [0; MAC_LEN], len: self.kind().mac_len() };
        match self {
            Keyed::Hmac(key) => {
                let mut mac = key.clone();
                mac.update(&seq.to_be_bytes());
                mac.update(payload);
                out.bytes.copy_from_slice(&mac.finalize().into_bytes());
            }
            Keyed::Gmac(key) => {
                // With no plaintext, sealing cannot fail: `aes-gcm` refuses
                // only associated data over 2^36 bytes (64 GiB), and this is
                // one frame, at most `u32::MAX` bytes by its length prefix.
                if let Ok(tag) = key.encrypt_in_place_detached(&gmac_nonce(seq), payload, &mut []) {
                    out.bytes[..GMAC_TAG_LEN].copy_from_slice(&tag);
                }
            }
        }
        out
    }

    /// Whether `mac` is the MAC of `payload` numbered `seq`, in constant time.
    fn verify(&self, seq: u64, payload: &[u8], mac: &[u8]) -> bool {
        match self {
            Keyed::Hmac(key) => {
                let mut check = key.clone();
                check.update(&seq.to_be_bytes());
                check.update(payload);
                check.verify_slice(mac).is_ok()
            }
            Keyed::Gmac(key) => {
                use subtle::ConstantTimeEq;
                let Ok(tag) = key.encrypt_in_place_detached(&gmac_nonce(seq), payload, &mut []) else { return false };
                // Unequal lengths compare unequal.
                tag.as_slice().ct_eq(mac).into()
            }
        }
    }
}

/// A MAC's bytes: the first `len` of `bytes` (the longest MAC fits).
struct MacBytes {
    bytes: [u8; MAC_LEN],
    len: usize,
}

impl MacBytes {
    fn as_slice(&self) -> &[u8] {
        &self.bytes[..self.len]
    }
}

/// The GCM nonce of frame `seq`: four zero bytes, then `seq` big-endian.
fn gmac_nonce(seq: u64) -> Nonce<aes_gcm::aead::consts::U12> {
    let mut nonce = [0u8; 12];
    nonce[4..].copy_from_slice(&seq.to_be_bytes());
    nonce.into()
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
    /// The MAC of the session's protocol version, both directions.
    pub mac: FrameMac,
}

impl SessionKeys {
    /// The sealer for outgoing and the opener for incoming frames, both
    /// starting at sequence number 0.
    pub fn into_parts(self) -> (Sealer, Opener) {
        (Sealer::with_mac(self.send, self.mac), Opener::with_mac(self.recv, self.mac))
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
    /// The first byte is not the tag of the session's MAC
    /// ([`FrameMac::tag`]): not a sealed frame, or sealed with the MAC of
    /// another protocol version.
    #[error("not a sealed frame of this session's kind")]
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
    mac: Keyed,
    next_seq: u64,
}

impl Sealer {
    /// A sealer under HMAC-SHA256 (protocol versions 1 to 3) whose first
    /// frame gets sequence number 0.
    pub fn new(key: FrameKey) -> Sealer {
        Sealer::with_mac(key, FrameMac::HmacSha256)
    }

    /// A sealer under `mac` whose first frame gets sequence number 0.
    pub fn with_mac(key: FrameKey, mac: FrameMac) -> Sealer {
        Sealer { mac: key.keyed(mac), next_seq: 0 }
    }

    /// The MAC this sealer seals with.
    pub fn mac(&self) -> FrameMac {
        self.mac.kind()
    }

    /// The sequence number the next sealed frame will carry.
    pub fn next_seq(&self) -> u64 {
        self.next_seq
    }

    /// Appends the sealed body of `payload` to `out`
    /// (`payload.len() + self.mac().overhead()` bytes) and advances the sequence
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
        let mac = self.mac.compute(seq, payload);
        encode_sealed(self.mac.kind(), seq, payload, mac.as_slice(), out);
        self.next_seq = seq + 1;
        Ok(())
    }

    /// Seals `frame` in place: fills in its header (the MAC's tag, the
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
        buf[..SEALED_HEADER_LEN].copy_from_slice(&sealed_header(self.mac.kind(), seq));
        // The buffer has room for the longest MAC (`OutFrame`): appending
        // it does not grow the buffer.
        let mac = self.mac.compute(seq, &buf[SEALED_HEADER_LEN..]);
        buf.extend_from_slice(mac.as_slice());
        self.next_seq = seq + 1;
        Ok(buf.freeze())
    }

    #[cfg(test)]
    fn starting_at(key: FrameKey, mac: FrameMac, next_seq: u64) -> Sealer {
        Sealer { mac: key.keyed(mac), next_seq }
    }
}

impl fmt::Debug for Sealer {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Sealer").field("next_seq", &self.next_seq).finish_non_exhaustive()
    }
}

/// Opens incoming frames of one direction of a session, in order.
pub struct Opener {
    mac: Keyed,
    next_expected: u64,
    closed: bool,
}

impl Opener {
    /// An opener under HMAC-SHA256 (protocol versions 1 to 3) expecting
    /// sequence number 0 first.
    pub fn new(key: FrameKey) -> Opener {
        Opener::with_mac(key, FrameMac::HmacSha256)
    }

    /// An opener under `mac` expecting sequence number 0 first.
    pub fn with_mac(key: FrameKey, mac: FrameMac) -> Opener {
        Opener { mac: key.keyed(mac), next_expected: 0, closed: false }
    }

    /// The MAC this opener accepts.
    pub fn mac(&self) -> FrameMac {
        self.mac.kind()
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

    /// Checks a sealed body and returns its payload. Order of checks: tag
    /// (this opener's MAC), length, MAC (constant time), then the sequence number must equal
    /// [`next_expected`](Self::next_expected) exactly.
    ///
    /// # Errors
    /// See [`OpenError`]. After an error the opener is closed.
    pub fn open<'b>(&mut self, body: &'b [u8]) -> Result<&'b [u8], OpenError> {
        if self.closed {
            return Err(OpenError::Closed);
        }
        let kind = self.mac.kind();
        let (seq, payload, mac) = split_sealed(kind, body).inspect_err(|_| self.closed = true)?;
        self.open_parts(kind, seq, payload, mac)?;
        Ok(payload)
    }

    /// Like [`open`](Self::open), for a body already cut into its parts (as
    /// `wire::msg::Body::Sealed` carries them): checks that `kind` is this
    /// opener's MAC, the MAC of `payload` numbered `seq` (constant time),
    /// then the sequence number.
    ///
    /// # Errors
    /// [`OpenError::WrongTag`], [`OpenError::BadMac`],
    /// [`OpenError::OutOfSequence`], [`OpenError::Exhausted`] or
    /// [`OpenError::Closed`]. After an error the opener is closed.
    pub fn open_parts(&mut self, kind: FrameMac, seq: u64, payload: &[u8], mac: &[u8]) -> Result<(), OpenError> {
        if self.closed {
            return Err(OpenError::Closed);
        }
        let result = if kind == self.mac.kind() { self.check(seq, payload, mac) } else { Err(OpenError::WrongTag) };
        match result {
            // `check` refuses `u64::MAX`, so this cannot overflow.
            Ok(()) => self.next_expected = seq + 1,
            Err(_) => self.closed = true,
        }
        result
    }

    fn check(&self, seq: u64, payload: &[u8], mac: &[u8]) -> Result<(), OpenError> {
        if !self.mac.verify(seq, payload, mac) {
            return Err(OpenError::BadMac);
        }
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
    fn starting_at(key: FrameKey, mac: FrameMac, next_expected: u64) -> Opener {
        Opener { mac: key.keyed(mac), next_expected, closed: false }
    }
}

/// Cuts a body sealed with `kind` into sequence number, payload and MAC.
fn split_sealed(kind: FrameMac, body: &[u8]) -> Result<(u64, &[u8], &[u8]), OpenError> {
    let (&tag, rest) = body.split_first().ok_or(OpenError::TooShort)?;
    if tag != kind.tag() {
        return Err(OpenError::WrongTag);
    }
    let (seq, rest) = rest.split_first_chunk::<SEQ_LEN>().ok_or(OpenError::TooShort)?;
    let cut = rest.len().checked_sub(kind.mac_len()).ok_or(OpenError::TooShort)?;
    let (payload, mac) = rest.split_at(cut);
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
mod tests;
