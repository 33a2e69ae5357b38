//! The handshake messages (the only frames a peer may send before it is
//! authenticated). Their meaning and the transcript they form are
//! documented in `docs/protocol.md`; the state machine that sends and checks
//! them is `crate::handshake`.

use serde::{Deserialize, Serialize};

use crate::id::SessionId;

/// Length of handshake nonces and MACs, in bytes.
pub const NONCE_LEN: usize = 32;

/// The oldest protocol version this build speaks.
pub const PROTOCOL_MIN_VERSION: u16 = 1;
/// The newest protocol version this build speaks.
pub const PROTOCOL_MAX_VERSION: u16 = 4;
/// The first version with activation identities in monitors
/// (`ControlMsg::Monitored` and `ControlMsg::Remonitor`): on older
/// sessions neither is sent.
pub(crate) const MONITOR_IDENTITY_VERSION: u16 = 2;
/// The first version with batches of tells (`DataMsg::Tells`): on older
/// sessions every tell is a frame of its own.
pub(crate) const TELL_BATCH_VERSION: u16 = 3;
/// The first version whose frames are sealed with AES-256-GMAC
/// (`wire::FrameMac::Aes256Gmac`) instead of HMAC-SHA256.
pub(crate) const GMAC_VERSION: u16 = 4;

/// Message 1, initiator → responder: who I am, which versions I speak, my
/// nonce.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Hello {
    /// The initiator's session (its logical name is `session.node`).
    pub session: SessionId,
    /// Oldest version the initiator accepts.
    pub min_version: u16,
    /// Newest version the initiator accepts.
    pub max_version: u16,
    /// Fresh random bytes from the initiator's CSPRNG.
    pub nonce: [u8; NONCE_LEN],
}

/// Message 2, responder → initiator: who I am, my versions, the chosen
/// version, my nonce. The responder commits to nothing yet.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Challenge {
    /// The responder's session.
    pub session: SessionId,
    /// Oldest version the responder accepts.
    pub min_version: u16,
    /// Newest version the responder accepts.
    pub max_version: u16,
    /// The highest version in both ranges.
    pub chosen_version: u16,
    /// Fresh random bytes from the responder's CSPRNG.
    pub nonce: [u8; NONCE_LEN],
}

/// Message 3, initiator → responder: proof of the shared key over the
/// transcript.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Auth {
    /// `HMAC(K, "axactor/1 initiator" ‖ transcript)`.
    pub mac: [u8; NONCE_LEN],
}

/// Message 4, responder → initiator: its proof; the session is
/// established.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Accept {
    /// `HMAC(K, "axactor/1 responder" ‖ transcript)`.
    pub mac: [u8; NONCE_LEN],
}

/// Why a handshake was refused (sent, best effort, before closing).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[non_exhaustive]
pub enum Refusal {
    /// No protocol version in both ranges.
    IncompatibleVersion,
    /// The proof did not verify (wrong token or tampered transcript).
    BadProof,
    /// A message arrived out of order.
    Unexpected,
    /// The handshake took too long.
    Timeout,
}

/// A handshake message, as carried in a pre-authentication frame.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum HandshakeMsg {
    /// Message 1.
    Hello(Hello),
    /// Message 2.
    Challenge(Challenge),
    /// Message 3.
    Auth(Auth),
    /// Message 4.
    Accept(Accept),
    /// Either side gives up, with a reason.
    Refuse(Refusal),
}
