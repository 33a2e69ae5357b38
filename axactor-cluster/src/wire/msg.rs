//! What is inside a frame body, and how it is encoded.
//!
//! The first byte of a body is its tag:
//!
//! ```text
//! pre-authentication:  [0x01 TAG_PREAUTH][postcard(HandshakeMsg)]
//! after the handshake: [0x02 TAG_SEALED][seq: u64 BE][payload][mac: 32 bytes]       versions 1-3
//!                      [0x03 TAG_SEALED_GMAC][seq: u64 BE][payload][tag: 16 bytes] version 4 on
//!                      payload = postcard(Envelope)
//! ```
//!
//! The tag byte of a sealed body names its MAC ([`FrameMac`]), so a body is
//! cut into its parts without knowing the session's version; the session's
//! opener accepts only the MAC its version chose.
//!
//! This module only cuts and joins these layouts; `crate::session` computes
//! and checks the sequence number and the MAC, and `crate::handshake` decides
//! which tag is acceptable in which state. Every decoder here is pure, takes
//! a complete body, rejects trailing bytes, and allocates at most as much as
//! the body's length (postcard checks every announced length against the
//! remaining input before copying; see `docs/protocol.md`, "Allocation").
//! Errors carry no text from the peer.

use bytes::BufMut;
use serde::Serialize;

use super::hello::HandshakeMsg;

mod arena;
mod envelope;
mod hot;

pub use envelope::{ControlMsg, DataMsg, DownReason, Envelope, MAX_BATCHED_TELLS, MAX_HOSTED_REGISTRIES, Rejection};
pub use hot::{DataOut, DataRef, EnvelopeRef, OutFrame, OutPayload, Raw, TellEntries, Typed, decode_envelope_ref};

/// Tag of a pre-authentication body (a handshake message).
pub const TAG_PREAUTH: u8 = 0x01;
/// Tag of a sealed body (an authenticated envelope) under HMAC-SHA256
/// ([`FrameMac::HmacSha256`], protocol versions 1 to 3).
pub const TAG_SEALED: u8 = 0x02;
/// Tag of a sealed body under AES-256-GMAC ([`FrameMac::Aes256Gmac`],
/// protocol version 4 on).
pub const TAG_SEALED_GMAC: u8 = 0x03;
/// Length of a sealed body's sequence number (`u64` big-endian).
pub const SEQ_LEN: usize = 8;
/// Length of an HMAC-SHA256 MAC: the longest MAC a sealed body carries.
pub const MAC_LEN: usize = 32;
/// Length of an AES-256-GMAC tag.
pub const GMAC_TAG_LEN: usize = 16;
/// Length of what precedes a sealed payload: the tag and the sequence number.
pub const SEALED_HEADER_LEN: usize = 1 + SEQ_LEN;
/// The most bytes a sealed body adds to its payload (under HMAC-SHA256;
/// [`FrameMac::overhead`] gives each MAC's).
pub const SEALED_OVERHEAD: usize = SEALED_HEADER_LEN + MAC_LEN;

/// How the frames of a session are authenticated, chosen by its protocol
/// version ([`FrameMac::for_version`]) and named by each sealed body's tag
/// byte. The algorithms themselves are `crate::session`'s.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum FrameMac {
    /// HMAC-SHA256 over `seq_be ‖ payload`, 32 bytes (versions 1 to 3).
    HmacSha256,
    /// AES-256-GMAC (GCM with no plaintext) with nonce `0u32 ‖ seq_be` and
    /// the payload as associated data, 16 bytes (version 4 on): about two
    /// thirds of an HMAC's cost per frame on hardware with AES and
    /// carry-less multiply instructions (`docs/protocol.md`).
    Aes256Gmac,
}

impl FrameMac {
    /// The MAC of sessions at protocol `version`.
    pub const fn for_version(version: u16) -> FrameMac {
        if version >= super::hello::GMAC_VERSION { FrameMac::Aes256Gmac } else { FrameMac::HmacSha256 }
    }

    /// The tag byte of a body sealed with this MAC.
    pub const fn tag(self) -> u8 {
        match self {
            FrameMac::HmacSha256 => TAG_SEALED,
            FrameMac::Aes256Gmac => TAG_SEALED_GMAC,
        }
    }

    /// The length of this MAC, in bytes.
    pub const fn mac_len(self) -> usize {
        match self {
            FrameMac::HmacSha256 => MAC_LEN,
            FrameMac::Aes256Gmac => GMAC_TAG_LEN,
        }
    }

    /// The bytes a body sealed with this MAC adds to its payload.
    pub const fn overhead(self) -> usize {
        SEALED_HEADER_LEN + self.mac_len()
    }

    /// The MAC a sealed body's tag byte names.
    pub const fn of_tag(tag: u8) -> Option<FrameMac> {
        match tag {
            TAG_SEALED => Some(FrameMac::HmacSha256),
            TAG_SEALED_GMAC => Some(FrameMac::Aes256Gmac),
            _ => None,
        }
    }
}
/// The frame limit the reader applies until the handshake is done: enough for
/// any handshake message with a node name of up to a few KiB, and small
/// enough that an unauthenticated peer cannot make the node buffer much.
pub const MAX_PREAUTH_FRAME_BYTES: usize = 4 * 1024;

/// Why a body could not be encoded or decoded.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum CodecError {
    /// The body starts with a tag this build does not know.
    #[error("unknown body tag {0:#04x}")]
    UnknownTag(u8),
    /// The body ends before its layout or its message does.
    #[error("truncated body")]
    Truncated,
    /// Postcard rejected the bytes (or, when encoding, the value).
    #[error("malformed message: {0}")]
    Postcard(PostcardErrorKind),
    /// The message decoded but bytes were left after it.
    #[error("trailing bytes after message")]
    TrailingBytes,
}

/// What postcard objected to; a copy of its error kind without any text.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum PostcardErrorKind {
    /// A varint longer than its type allows.
    #[error("bad varint")]
    BadVarint,
    /// A `bool` byte other than 0 or 1.
    #[error("bad bool")]
    BadBool,
    /// An invalid `char`.
    #[error("bad char")]
    BadChar,
    /// A string that is not UTF-8.
    #[error("bad utf-8")]
    BadUtf8,
    /// An `Option` tag other than 0 or 1.
    #[error("bad option tag")]
    BadOption,
    /// An enum variant index above `u32::MAX`.
    #[error("bad enum index")]
    BadEnum,
    /// A value the type rejects: an unknown variant index, for instance.
    #[error("invalid value")]
    Invalid,
    /// Encoding failed.
    #[error("cannot encode")]
    Serialize,
    /// Anything else postcard reports.
    #[error("other postcard error")]
    Other,
}

impl From<postcard::Error> for CodecError {
    fn from(err: postcard::Error) -> Self {
        use postcard::Error as E;
        let kind = match err {
            E::DeserializeUnexpectedEnd => return CodecError::Truncated,
            E::DeserializeBadVarint => PostcardErrorKind::BadVarint,
            E::DeserializeBadBool => PostcardErrorKind::BadBool,
            E::DeserializeBadChar => PostcardErrorKind::BadChar,
            E::DeserializeBadUtf8 => PostcardErrorKind::BadUtf8,
            E::DeserializeBadOption => PostcardErrorKind::BadOption,
            E::DeserializeBadEnum => PostcardErrorKind::BadEnum,
            E::SerdeDeCustom | E::DeserializeBadEncoding => PostcardErrorKind::Invalid,
            E::SerializeBufferFull | E::SerializeSeqLengthUnknown | E::SerdeSerCustom | E::CollectStrError => {
                PostcardErrorKind::Serialize
            }
            _ => PostcardErrorKind::Other,
        };
        CodecError::Postcard(kind)
    }
}

/// A frame body, split by its tag.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum Body<'a> {
    /// A handshake message (tag [`TAG_PREAUTH`]).
    PreAuth(HandshakeMsg),
    /// A sealed frame (tag [`TAG_SEALED`] or [`TAG_SEALED_GMAC`]), not yet
    /// verified.
    Sealed {
        /// The MAC its tag names.
        kind: FrameMac,
        /// The sender's sequence number for this frame.
        seq: u64,
        /// The sealed bytes: `postcard(Envelope)` once the MAC verifies.
        /// May be empty here; [`decode_envelope`] rejects that.
        payload: &'a [u8],
        /// The frame's MAC, [`FrameMac::mac_len`] bytes.
        mac: &'a [u8],
    },
}

/// Appends a pre-authentication body (`TAG_PREAUTH`, then the message) to
/// `out`. No length prefix: pass the result to `super::frame::encode_frame`.
///
/// # Errors
/// [`CodecError::Postcard`] if postcard cannot encode the message (not
/// expected for these types). `out` is left as it was on error.
pub fn encode_preauth(msg: &HandshakeMsg, out: &mut Vec<u8>) -> Result<(), CodecError> {
    let start = out.len();
    out.push(TAG_PREAUTH);
    append_postcard(msg, out).inspect_err(|_| out.truncate(start))
}

/// Splits a frame body by its tag. A pre-authentication body is decoded
/// whole; a sealed body is only cut into its parts, for `crate::session` to
/// verify.
///
/// # Errors
/// [`CodecError::Truncated`] for an empty body or a sealed body shorter than
/// its MAC's [`FrameMac::overhead`], [`CodecError::UnknownTag`], and for a handshake
/// message [`CodecError::Postcard`] or [`CodecError::TrailingBytes`]. Each
/// means the peer is broken or hostile: the caller closes the connection.
pub fn decode_body(body: &[u8]) -> Result<Body<'_>, CodecError> {
    let (&tag, rest) = body.split_first().ok_or(CodecError::Truncated)?;
    match tag {
        TAG_PREAUTH => decode_exact(rest).map(Body::PreAuth),
        other => {
            let kind = FrameMac::of_tag(other).ok_or(CodecError::UnknownTag(other))?;
            let (seq, rest) = rest.split_first_chunk::<SEQ_LEN>().ok_or(CodecError::Truncated)?;
            let cut = rest.len().checked_sub(kind.mac_len()).ok_or(CodecError::Truncated)?;
            let (payload, mac) = rest.split_at(cut);
            Ok(Body::Sealed { kind, seq: u64::from_be_bytes(*seq), payload, mac })
        }
    }
}

/// The bytes that precede a payload sealed with `kind`: its tag and `seq`
/// big-endian.
pub fn sealed_header(kind: FrameMac, seq: u64) -> [u8; SEALED_HEADER_LEN] {
    let mut header = [0u8; SEALED_HEADER_LEN];
    header[0] = kind.tag();
    header[1..].copy_from_slice(&seq.to_be_bytes());
    header
}

/// Appends a sealed body (`sealed_header(kind, seq)`, `payload`, `mac`) to
/// `out`; the inverse of the [`Body::Sealed`] split. `mac` is
/// `kind.mac_len()` bytes.
pub fn encode_sealed(kind: FrameMac, seq: u64, payload: &[u8], mac: &[u8], out: &mut Vec<u8>) {
    out.reserve(SEALED_HEADER_LEN + payload.len() + mac.len());
    out.extend_from_slice(&sealed_header(kind, seq));
    out.extend_from_slice(payload);
    out.extend_from_slice(mac);
}

/// The largest envelope encoding that fits a sealed frame under
/// `max_frame_bytes`.
pub const fn max_envelope_bytes(max_frame_bytes: usize) -> usize {
    max_frame_bytes.saturating_sub(SEALED_OVERHEAD)
}

/// Appends `postcard(env)` (a sealed payload) to `out`.
///
/// # Errors
/// [`CodecError::Postcard`] if postcard cannot encode it (not expected for
/// these types). `out` is left as it was on error.
pub fn encode_envelope(env: &Envelope, out: &mut Vec<u8>) -> Result<(), CodecError> {
    let start = out.len();
    append_postcard(env, out).inspect_err(|_| out.truncate(start))
}

/// Decodes a verified sealed payload.
///
/// # Errors
/// [`CodecError::Truncated`], [`CodecError::Postcard`] (including an unknown
/// variant index) or [`CodecError::TrailingBytes`]: the caller closes the
/// connection.
pub fn decode_envelope(payload: &[u8]) -> Result<Envelope, CodecError> {
    decode_exact(payload)
}

/// Decodes one `T` that must use all of `bytes`.
fn decode_exact<'de, T: serde::Deserialize<'de>>(bytes: &'de [u8]) -> Result<T, CodecError> {
    let (value, rest) = postcard::take_from_bytes(bytes)?;
    if rest.is_empty() { Ok(value) } else { Err(CodecError::TrailingBytes) }
}

fn append_postcard<T: Serialize + ?Sized, B: BufMut>(value: &T, out: &mut B) -> Result<(), CodecError> {
    postcard::serialize_with_flavor(value, Append(out)).map_err(CodecError::from)
}

/// A postcard output that appends to a caller's buffer (a `Vec` or a
/// frame's `BytesMut`; postcard's own `Vec` outputs either own the vector
/// or consume it).
struct Append<'a, B>(&'a mut B);

impl<B: BufMut> postcard::ser_flavors::Flavor for Append<'_, B> {
    type Output = ();

    fn try_push(&mut self, data: u8) -> postcard::Result<()> {
        self.0.put_u8(data);
        Ok(())
    }

    fn try_extend(&mut self, data: &[u8]) -> postcard::Result<()> {
        self.0.put_slice(data);
        Ok(())
    }

    fn finalize(self) -> postcard::Result<()> {
        Ok(())
    }
}

#[cfg(test)]
mod tests;
