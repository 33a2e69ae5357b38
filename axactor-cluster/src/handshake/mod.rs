//! The authenticated handshake, as pure state machines: [`Initiator`] (the
//! side that dialled) and [`Responder`] (the side that accepted).
//!
//! Low-level protocol internals, public for tests and fuzzing; the node
//! drives them from its connection tasks. The machines never read a clock,
//! draw randomness or touch a socket: the caller passes the nonce
//! ([`fresh_nonce`] in production), the deadline and `now` with every input,
//! and carries out the returned [`Step`].
//!
//! ```text
//! Initiator                                   Responder
//! new ──────────── Hello{session, versions, nonce_i} ──────────▶ AwaitHello
//! AwaitChallenge ◀── Challenge{session, versions, chosen, nonce_r} ── AwaitAuth
//! AwaitAccept ──────── Auth{HMAC(K, "axactor/1 initiator" ‖ T)} ─▶ verify ─▶ Established
//! verify ◀──────────── Accept{HMAC(K, "axactor/1 responder" ‖ T)} ──
//! Established
//! ```
//!
//! `K` is [`AuthKey`] (derived from the token, which never goes on the
//! wire), `T` is the [`transcript`] of Hello and Challenge. Both nonces are
//! fresh, so a recorded handshake cannot be replayed; `T` binds both
//! session ids, both version ranges and the chosen version, so a rewritten
//! message makes the proof fail; the two labels differ, so a proof cannot be
//! reflected. On success both sides get [`SessionKeys`] for
//! [`crate::session`], derived from `K` and `T`.
//!
//! Invariants: the state is an enum; any input the current phase does not
//! expect, any failed check, and the deadline passing move the machine to
//! [`Phase::Closed`] with a [`HandshakeError`], and it stays there. Peer
//! names are checked ([`valid_name`]) before they are used. Only the
//! responder after a valid Auth and the initiator after a valid Accept are
//! established; only then may the node replace an existing session of that
//! peer, so an unauthenticated peer can never evict or alter one.
//!
//! Concurrency: none; each machine is owned by one connection task.

mod error;
mod initiator;
mod keys;
mod responder;
#[cfg(test)]
mod tests;
mod transcript;

use std::fmt;
use std::ops::RangeInclusive;

use rand::TryRng;

use crate::id::SessionId;
use crate::session::SessionKeys;
use crate::wire::hello::{HandshakeMsg, NONCE_LEN, PROTOCOL_MAX_VERSION, PROTOCOL_MIN_VERSION};

pub use error::HandshakeError;
pub use initiator::Initiator;
pub use keys::AuthKey;
pub use responder::Responder;
pub use transcript::transcript;

/// Longest accepted node name, in bytes (UTF-8).
pub const MAX_NAME_LEN: usize = 255;

/// What a side of the handshake brings: its session, the protocol versions
/// it speaks and the cluster's key.
#[derive(Debug, Clone)]
pub struct Local {
    /// This node's session.
    pub session: SessionId,
    /// Oldest protocol version accepted.
    pub min_version: u16,
    /// Newest protocol version accepted.
    pub max_version: u16,
    /// The handshake key shared by the cluster.
    pub key: AuthKey,
}

impl Local {
    /// `session` with this build's version range
    /// ([`PROTOCOL_MIN_VERSION`]..=[`PROTOCOL_MAX_VERSION`]).
    pub fn new(session: SessionId, key: AuthKey) -> Local {
        Local { session, min_version: PROTOCOL_MIN_VERSION, max_version: PROTOCOL_MAX_VERSION, key }
    }

    fn check(&self) -> Result<RangeInclusive<u16>, HandshakeError> {
        if !valid_name(self.session.node.as_str()) {
            return Err(HandshakeError::BadName);
        }
        if self.min_version > self.max_version {
            return Err(HandshakeError::InvalidRange { min: self.min_version, max: self.max_version });
        }
        Ok(self.min_version..=self.max_version)
    }
}

/// Where a handshake state machine stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Phase {
    /// Responder: waiting for the initiator's Hello.
    AwaitHello,
    /// Initiator: Hello sent, waiting for the Challenge.
    AwaitChallenge,
    /// Responder: Challenge sent, waiting for the initiator's proof.
    AwaitAuth,
    /// Initiator: proof sent, waiting for the responder's proof.
    AwaitAccept,
    /// Both proofs verified (responder: the initiator's, and its Accept is
    /// being sent). Terminal: further handshake input closes the machine.
    Established,
    /// Failed; terminal.
    Closed,
}

impl fmt::Display for Phase {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Phase::AwaitHello => "await_hello",
            Phase::AwaitChallenge => "await_challenge",
            Phase::AwaitAuth => "await_auth",
            Phase::AwaitAccept => "await_accept",
            Phase::Established => "established",
            Phase::Closed => "closed",
        })
    }
}

/// The kind of a [`HandshakeMsg`], for errors and counters.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum MsgKind {
    /// [`HandshakeMsg::Hello`].
    Hello,
    /// [`HandshakeMsg::Challenge`].
    Challenge,
    /// [`HandshakeMsg::Auth`].
    Auth,
    /// [`HandshakeMsg::Accept`].
    Accept,
    /// [`HandshakeMsg::Refuse`].
    Refuse,
    /// A sealed (post-authentication) frame, which no handshake phase
    /// accepts; see `Initiator::on_sealed_frame`.
    Sealed,
}

impl MsgKind {
    /// The kind of `msg`.
    pub fn of(msg: &HandshakeMsg) -> MsgKind {
        match msg {
            HandshakeMsg::Hello(_) => MsgKind::Hello,
            HandshakeMsg::Challenge(_) => MsgKind::Challenge,
            HandshakeMsg::Auth(_) => MsgKind::Auth,
            HandshakeMsg::Accept(_) => MsgKind::Accept,
            HandshakeMsg::Refuse(_) => MsgKind::Refuse,
        }
    }
}

impl fmt::Display for MsgKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            MsgKind::Hello => "hello",
            MsgKind::Challenge => "challenge",
            MsgKind::Auth => "auth",
            MsgKind::Accept => "accept",
            MsgKind::Refuse => "refuse",
            MsgKind::Sealed => "sealed frame",
        })
    }
}

/// An authenticated session, the result of a successful handshake.
#[derive(Debug)]
pub struct Established {
    /// The peer's session (its name was checked against the dialled or
    /// expected name, if any).
    pub peer: SessionId,
    /// The negotiated protocol version.
    pub version: u16,
    /// This side's frame keys for [`crate::session`].
    pub keys: SessionKeys,
}

/// What the caller must do after an input was accepted.
#[derive(Debug)]
#[must_use]
pub struct Step {
    /// A message to send to the peer (before anything else on this
    /// connection).
    pub send: Option<HandshakeMsg>,
    /// Set once, when the handshake has just succeeded. The responder gets
    /// it together with the Accept to send.
    pub established: Option<Established>,
}

/// Whether `name` is acceptable as a node name: 1 to [`MAX_NAME_LEN`]
/// bytes, no control characters.
pub fn valid_name(name: &str) -> bool {
    !name.is_empty() && name.len() <= MAX_NAME_LEN && !name.chars().any(char::is_control)
}

/// The operating system's random number generator failed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("os random number generator failed")]
pub struct NonceError(#[source] rand::rngs::SysError);

/// A fresh handshake nonce from the operating system's CSPRNG. The thin
/// impure helper the node calls once per handshake.
///
/// # Errors
/// [`NonceError`] when the OS generator fails; the handshake must not start.
pub fn fresh_nonce() -> Result<[u8; NONCE_LEN], NonceError> {
    let mut nonce = [0u8; NONCE_LEN];
    rand::rngs::SysRng.try_fill_bytes(&mut nonce).map_err(NonceError)?;
    Ok(nonce)
}

/// A nonce drawn from `rng`: for the deterministic simulation (a seeded
/// generator). Production uses [`fresh_nonce`].
pub fn nonce_from<R: rand::Rng + ?Sized>(rng: &mut R) -> [u8; NONCE_LEN] {
    let mut nonce = [0u8; NONCE_LEN];
    rng.fill_bytes(&mut nonce);
    nonce
}

/// The highest version in `ours` and `theirs_min..=theirs_max`.
fn best_common(ours: &RangeInclusive<u16>, theirs_min: u16, theirs_max: u16) -> Result<u16, HandshakeError> {
    let low = (*ours.start()).max(theirs_min);
    let high = (*ours.end()).min(theirs_max);
    if theirs_min > theirs_max || low > high {
        return Err(HandshakeError::IncompatibleVersion { ours: ours.clone(), theirs: theirs_min..=theirs_max });
    }
    Ok(high)
}

/// The checks both sides make on the peer's session and nonce, in order:
/// a valid name, not our own session or nonce, the expected name.
fn check_peer(
    ours: &SessionId,
    our_nonce: &[u8; NONCE_LEN],
    theirs: &SessionId,
    their_nonce: &[u8; NONCE_LEN],
    expected: Option<&crate::id::NodeId>,
) -> Result<(), HandshakeError> {
    if !valid_name(theirs.node.as_str()) {
        return Err(HandshakeError::BadName);
    }
    if theirs == ours || their_nonce == our_nonce {
        return Err(HandshakeError::SelfConnect);
    }
    match expected {
        Some(expected) if *expected != theirs.node => {
            Err(HandshakeError::WrongPeer { expected: expected.clone(), got: theirs.node.clone() })
        }
        _ => Ok(()),
    }
}
