//! The wire format: length-prefixed frames carrying postcard-encoded
//! messages. `docs/protocol.md` describes it byte by byte.
//!
//! - [`frame`]: the length-prefix layer (a `u32` big-endian length, then the
//!   body) and its incremental, allocation-bounded decoder;
//! - [`msg`]: what a body holds (a tagged handshake message or a sealed
//!   envelope) and the control- and data-plane messages;
//! - [`hello`]: the handshake messages.

pub mod frame;
pub mod hello;
pub mod msg;

#[cfg(test)]
mod arb;

pub use frame::{DEFAULT_MAX_FRAME_BYTES, FrameDecoder, FrameError, LEN_PREFIX, encode_frame};
pub use hello::HandshakeMsg;
pub use msg::{
    Body, CodecError, ControlMsg, DataMsg, DataOut, DataRef, DownReason, Envelope, EnvelopeRef, FrameMac, GMAC_TAG_LEN,
    MAC_LEN, MAX_BATCHED_TELLS, MAX_HOSTED_REGISTRIES, MAX_PREAUTH_FRAME_BYTES, OutFrame, OutPayload,
    PostcardErrorKind, Raw, Rejection, SEALED_HEADER_LEN, SEALED_OVERHEAD, SEQ_LEN, TAG_PREAUTH, TAG_SEALED,
    TAG_SEALED_GMAC, TellEntries, Typed, decode_body, decode_envelope, decode_envelope_ref, encode_envelope,
    encode_preauth, encode_sealed, max_envelope_bytes, sealed_header,
};
