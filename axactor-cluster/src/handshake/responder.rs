//! [`Responder`]: the side that accepted the connection. Checks the Hello
//! (name, versions), answers with a Challenge, verifies the initiator's
//! proof and sends its own.

use std::ops::RangeInclusive;

use tokio::time::Instant;

use crate::id::{NodeId, SessionId};
use crate::wire::hello::{Accept, Challenge, HandshakeMsg, Hello, NONCE_LEN};

use super::keys::{AuthKey, Role};
use super::{Established, HandshakeError, Local, MsgKind, Phase, Step, best_common, check_peer, transcript};

/// The responder's handshake state machine. Pure: see [`crate::handshake`].
#[derive(Debug)]
pub struct Responder {
    key: AuthKey,
    session: SessionId,
    versions: RangeInclusive<u16>,
    expected: Option<NodeId>,
    nonce: [u8; NONCE_LEN],
    deadline: Instant,
    /// By when the Hello must have arrived (at most `deadline`).
    hello_deadline: Instant,
    state: State,
}

#[derive(Debug)]
enum State {
    AwaitHello,
    AwaitAuth { transcript: Vec<u8>, peer: SessionId, version: u16 },
    Established,
    Closed(HandshakeError),
}

impl Responder {
    /// Waits for a Hello on an accepted connection. `expected`, if set, is
    /// the only peer name accepted (a policy of the node; `None` accepts any
    /// valid name). `nonce` must be fresh
    /// ([`fresh_nonce`](super::fresh_nonce)); `deadline` is typically
    /// `now + handshake_timeout`.
    ///
    /// # Errors
    /// [`HandshakeError::BadName`] if our own name is invalid,
    /// [`HandshakeError::InvalidRange`] if our version range is empty.
    pub fn new(
        local: Local,
        expected: Option<NodeId>,
        nonce: [u8; NONCE_LEN],
        deadline: Instant,
    ) -> Result<Responder, HandshakeError> {
        let versions = local.check()?;
        Ok(Responder {
            key: local.key,
            session: local.session,
            versions,
            expected,
            nonce,
            deadline,
            hello_deadline: deadline,
            state: State::AwaitHello,
        })
    }

    /// Requires the Hello by `at` (clamped to the handshake's deadline): a
    /// connection that sends nothing is given up early
    /// ([`HandshakeError::HelloTimedOut`]), typically at
    /// `accepted + hello_timeout`.
    #[must_use]
    pub fn with_hello_deadline(mut self, at: Instant) -> Responder {
        self.hello_deadline = at.min(self.deadline);
        self
    }

    /// The next instant at which [`on_tick`](Self::on_tick) may time the
    /// handshake out: the Hello's deadline while awaiting it, then the
    /// handshake's.
    pub fn next_deadline(&self) -> Instant {
        match self.state {
            State::AwaitHello => self.hello_deadline,
            _ => self.deadline,
        }
    }

    /// Where the handshake stands.
    pub fn phase(&self) -> Phase {
        match self.state {
            State::AwaitHello => Phase::AwaitHello,
            State::AwaitAuth { .. } => Phase::AwaitAuth,
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
    /// still in progress, or at or past the Hello's deadline with no Hello yet.
    ///
    /// # Errors
    /// [`HandshakeError::TimedOut`] or [`HandshakeError::HelloTimedOut`]
    /// (once; the machine is then closed).
    pub fn on_tick(&mut self, now: Instant) -> Result<(), HandshakeError> {
        if matches!(self.state, State::AwaitHello) && now >= self.hello_deadline && now < self.deadline {
            return Err(self.close(HandshakeError::HelloTimedOut));
        }
        let in_progress = matches!(self.state, State::AwaitHello | State::AwaitAuth { .. });
        if in_progress && now >= self.deadline {
            return Err(self.close(HandshakeError::TimedOut));
        }
        Ok(())
    }

    /// Feeds one message from the initiator.
    ///
    /// # Errors
    /// Any [`HandshakeError`]; the machine is then closed and the connection
    /// must be dropped after sending [`HandshakeError::refusal`].
    pub fn on_message(&mut self, msg: HandshakeMsg, now: Instant) -> Result<Step, HandshakeError> {
        self.on_tick(now)?;
        let unexpected = HandshakeError::Unexpected { state: self.phase(), got: MsgKind::of(&msg) };
        // Until a branch decides otherwise, the machine is closed.
        match (std::mem::replace(&mut self.state, State::Closed(unexpected.clone())), msg) {
            (State::AwaitHello, HandshakeMsg::Hello(hello)) => self.on_hello(hello),
            (State::AwaitAuth { transcript, peer, version }, HandshakeMsg::Auth(auth)) => {
                if !self.key.verify(Role::Initiator, &transcript, &auth.mac) {
                    return Err(self.close(HandshakeError::WrongProof));
                }
                let mac = self.key.proof(Role::Responder, &transcript);
                let keys = self.key.session_keys(Role::Responder, &transcript, version);
                self.state = State::Established;
                Ok(Step {
                    send: Some(HandshakeMsg::Accept(Accept { mac })),
                    established: Some(Established { peer, version, keys }),
                })
            }
            (State::AwaitHello | State::AwaitAuth { .. }, HandshakeMsg::Refuse(refusal)) => {
                Err(self.close(HandshakeError::PeerRefused(refusal)))
            }
            // Keep the first reason.
            (State::Closed(reason), _) => {
                self.state = State::Closed(reason);
                Err(unexpected)
            }
            (State::AwaitHello | State::AwaitAuth { .. } | State::Established, _) => Err(unexpected),
        }
    }

    fn on_hello(&mut self, hello: Hello) -> Result<Step, HandshakeError> {
        check_peer(&self.session, &self.nonce, &hello.session, &hello.nonce, self.expected.as_ref())
            .map_err(|e| self.close(e))?;
        let version = best_common(&self.versions, hello.min_version, hello.max_version).map_err(|e| self.close(e))?;
        let challenge = Challenge {
            session: self.session.clone(),
            min_version: *self.versions.start(),
            max_version: *self.versions.end(),
            chosen_version: version,
            nonce: self.nonce,
        };
        let transcript = transcript(&hello, &challenge);
        self.state = State::AwaitAuth { transcript, peer: hello.session, version };
        Ok(Step { send: Some(HandshakeMsg::Challenge(challenge)), established: None })
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
