//! [`Initiator`]: the side that dialled. Sends Hello, checks the Challenge
//! (peer name, version choice), sends its proof, verifies the responder's.

use std::ops::RangeInclusive;

use tokio::time::Instant;

use crate::id::{NodeId, SessionId};
use crate::wire::hello::{Auth, Challenge, HandshakeMsg, Hello, NONCE_LEN};

use super::keys::{AuthKey, Role};
use super::{Established, HandshakeError, Local, MsgKind, Phase, Step, best_common, check_peer, transcript};

/// The initiator's handshake state machine. Pure: see [`crate::handshake`].
#[derive(Debug)]
pub struct Initiator {
    key: AuthKey,
    versions: RangeInclusive<u16>,
    dialled: NodeId,
    deadline: Instant,
    state: State,
}

#[derive(Debug)]
enum State {
    AwaitChallenge { hello: Hello },
    AwaitAccept { transcript: Vec<u8>, peer: SessionId, version: u16 },
    Established,
    Closed(HandshakeError),
}

impl Initiator {
    /// Starts a handshake with the node named `dialled`, returning the
    /// machine and the Hello to send. `nonce` must be fresh
    /// ([`fresh_nonce`](super::fresh_nonce)); `deadline` is typically
    /// `now + handshake_timeout`.
    ///
    /// # Errors
    /// [`HandshakeError::BadName`] if our own name is invalid,
    /// [`HandshakeError::InvalidRange`] if our version range is empty.
    pub fn new(
        local: Local,
        dialled: NodeId,
        nonce: [u8; NONCE_LEN],
        deadline: Instant,
    ) -> Result<(Initiator, HandshakeMsg), HandshakeError> {
        let versions = local.check()?;
        let hello =
            Hello { session: local.session, min_version: local.min_version, max_version: local.max_version, nonce };
        let msg = HandshakeMsg::Hello(hello.clone());
        Ok((Initiator { key: local.key, versions, dialled, deadline, state: State::AwaitChallenge { hello } }, msg))
    }

    /// Where the handshake stands.
    pub fn phase(&self) -> Phase {
        match self.state {
            State::AwaitChallenge { .. } => Phase::AwaitChallenge,
            State::AwaitAccept { .. } => Phase::AwaitAccept,
            State::Established => Phase::Established,
            State::Closed(_) => Phase::Closed,
        }
    }

    /// Why the handshake failed, once [`Phase::Closed`].
    pub fn close_reason(&self) -> Option<&HandshakeError> {
        match &self.state {
            State::Closed(reason) => Some(reason),
            _ => None,
        }
    }

    /// The instant by which the handshake must be established.
    pub fn deadline(&self) -> Instant {
        self.deadline
    }

    /// Times the handshake out if `now` is at or past the deadline and it is
    /// still in progress.
    ///
    /// # Errors
    /// [`HandshakeError::TimedOut`] (once; the machine is then closed).
    pub fn on_tick(&mut self, now: Instant) -> Result<(), HandshakeError> {
        let in_progress = matches!(self.state, State::AwaitChallenge { .. } | State::AwaitAccept { .. });
        if in_progress && now >= self.deadline {
            return Err(self.close(HandshakeError::TimedOut));
        }
        Ok(())
    }

    /// Feeds one message from the responder.
    ///
    /// # Errors
    /// Any [`HandshakeError`]; the machine is then closed and the connection
    /// must be dropped after sending [`HandshakeError::refusal`].
    pub fn on_message(&mut self, msg: HandshakeMsg, now: Instant) -> Result<Step, HandshakeError> {
        self.on_tick(now)?;
        let unexpected = HandshakeError::Unexpected { state: self.phase(), got: MsgKind::of(&msg) };
        // Until a branch decides otherwise, the machine is closed.
        match (std::mem::replace(&mut self.state, State::Closed(unexpected.clone())), msg) {
            (State::AwaitChallenge { hello }, HandshakeMsg::Challenge(challenge)) => {
                self.on_challenge(hello, challenge)
            }
            (State::AwaitAccept { transcript, peer, version }, HandshakeMsg::Accept(accept)) => {
                if !self.key.verify(Role::Responder, &transcript, &accept.mac) {
                    return Err(self.close(HandshakeError::WrongProof));
                }
                let keys = self.key.session_keys(Role::Initiator, &transcript, version);
                self.state = State::Established;
                Ok(Step { send: None, established: Some(Established { peer, version, keys }) })
            }
            (State::AwaitChallenge { .. } | State::AwaitAccept { .. }, HandshakeMsg::Refuse(refusal)) => {
                Err(self.close(HandshakeError::PeerRefused(refusal)))
            }
            // Keep the first reason.
            (State::Closed(reason), _) => {
                self.state = State::Closed(reason);
                Err(unexpected)
            }
            (State::AwaitChallenge { .. } | State::AwaitAccept { .. } | State::Established, _) => Err(unexpected),
        }
    }

    fn on_challenge(&mut self, hello: Hello, challenge: Challenge) -> Result<Step, HandshakeError> {
        check_peer(&hello.session, &hello.nonce, &challenge.session, &challenge.nonce, Some(&self.dialled))
            .map_err(|e| self.close(e))?;
        let best =
            best_common(&self.versions, challenge.min_version, challenge.max_version).map_err(|e| self.close(e))?;
        if challenge.chosen_version != best {
            return Err(self.close(HandshakeError::Downgrade { chosen: challenge.chosen_version, best }));
        }
        let transcript = transcript(&hello, &challenge);
        let mac = self.key.proof(Role::Initiator, &transcript);
        self.state = State::AwaitAccept { transcript, peer: challenge.session, version: best };
        Ok(Step { send: Some(HandshakeMsg::Auth(Auth { mac })), established: None })
    }

    /// A sealed frame arrived while the handshake is not established (the
    /// reader must not pass sealed frames here once it is): closes the
    /// machine and returns [`HandshakeError::Unexpected`] with
    /// [`MsgKind::Sealed`], so it is counted like any out-of-order input.
    pub fn on_sealed_frame(&mut self) -> HandshakeError {
        let unexpected = HandshakeError::Unexpected { state: self.phase(), got: MsgKind::Sealed };
        if !matches!(self.state, State::Closed(_)) {
            self.state = State::Closed(unexpected.clone());
        }
        unexpected
    }

    fn close(&mut self, reason: HandshakeError) -> HandshakeError {
        self.state = State::Closed(reason.clone());
        reason
    }
}
