//! The per-connection driver, first half: the handshake over a fresh link.
//!
//! Before authentication a link is hostile until proven otherwise: its
//! receive limit is `preauth_max_frame_bytes`, it may send at most
//! `preauth_frame_budget` frames, the handshake has a deadline
//! (`handshake_timeout`, tokio's clock) and an accepted link's first
//! message (the Hello) an earlier one (`hello_timeout`), and only pre-authentication bodies
//! are accepted (a sealed frame closes it). Every failure is counted by its
//! label and logged at debug level, a `Refuse` is sent best effort, and the
//! link is dropped; nothing outside this connection changes. A link whose
//! transport authenticated the peer ([`Link::identity`], e.g. a TLS client
//! certificate) is refused when the peer claims a name it does not cover
//! (`peer_identity`). Only an
//! established handshake goes on to [`super::established`], which may
//! touch the peer table.
//!
//! Spans (DEBUG): `conn` (`node`, `session`, `direction`, `peer` once
//! authenticated, `remote`) for the connection's whole life, and its child
//! `handshake` (`direction`, `peer`, `outcome`: `established`, the failure's
//! counted label, or `node_stopping`). A failure that shows the other side
//! is not of this cluster (a different token, no common protocol version)
//! is emitted as `NodeEvent::AuthFailed`.

use std::sync::Arc;

use bytes::Bytes;
use tokio::time::{Instant, sleep_until};
use tracing::Instrument;

use super::established;
use super::inspect::bump;
use super::members::auth_failure_reason;
use super::peers::HandshakeSlot;
use super::shared::Shared;
use super::table::PeerDirection;
use crate::counter_reasons::{HandshakeFailure, Reason};
use crate::env::NodeEvent;
use crate::handshake::{Established, HandshakeError, Initiator, Local, Responder, Step};
use crate::id::NodeId;
use crate::overlay::{Link, Priority};
use crate::wire::hello::Refusal;
use crate::wire::{Body, HandshakeMsg, decode_body, encode_preauth};

/// Which side of the handshake this node plays.
#[derive(Debug, Clone)]
pub(crate) enum Role {
    /// We accepted the link.
    Responder,
    /// We dialled the node with this name.
    Initiator(NodeId),
}

enum Machine {
    I(Initiator),
    R(Responder),
}

impl Machine {
    fn on_message(&mut self, msg: HandshakeMsg, now: Instant) -> Result<Step, HandshakeError> {
        match self {
            Machine::I(m) => m.on_message(msg, now),
            Machine::R(m) => m.on_message(msg, now),
        }
    }

    fn on_sealed_frame(&mut self) -> HandshakeError {
        match self {
            Machine::I(m) => m.on_sealed_frame(),
            Machine::R(m) => m.on_sealed_frame(),
        }
    }

    fn on_tick(&mut self, now: Instant) -> Result<(), HandshakeError> {
        match self {
            Machine::I(m) => m.on_tick(now),
            Machine::R(m) => m.on_tick(now),
        }
    }

    /// When the machine may time out next (a responder's Hello deadline first).
    fn next_deadline(&self) -> Instant {
        match self {
            Machine::I(m) => m.deadline(),
            Machine::R(m) => m.next_deadline(),
        }
    }
}

/// Drives one link: handshake, then (if established) the session.
/// `permit` is the inbound-handshake slot, released once the handshake ends.
pub(crate) async fn run(node: Arc<Shared>, mut link: Link, role: Role, permit: Option<HandshakeSlot>) {
    let direction = match role {
        Role::Initiator(_) => PeerDirection::Outbound,
        Role::Responder => PeerDirection::Inbound,
    };
    let span = tracing::debug_span!(
        "conn",
        node = %node.id,
        session = %node.session,
        direction = ?direction,
        peer = tracing::field::Empty,
        remote = %link.remote,
    );
    async move {
        link.rx.set_max_frame_bytes(node.cfg.preauth_max_frame_bytes);
        let dialled = match &role {
            Role::Initiator(name) => Some(name.clone()),
            Role::Responder => None,
        };
        // The handshake's own span (a child of `conn`): who, which way, and
        // how it ended (`established` or the failure's counted label).
        let hs_span = tracing::debug_span!(
            "handshake",
            direction = ?direction,
            peer = tracing::field::Empty,
            outcome = tracing::field::Empty,
        );
        if let Some(name) = &dialled {
            hs_span.record("peer", tracing::field::display(name));
        }
        let result = handshake(&node, &mut link, &role).instrument(hs_span.clone()).await;
        drop(permit);
        match &result {
            Ok(est) => {
                hs_span.record("peer", tracing::field::display(&est.peer));
                hs_span.record("outcome", "established");
            }
            Err(Some(reason)) => {
                hs_span.record("outcome", reason.label());
            }
            Err(None) => {
                hs_span.record("outcome", "node_stopping");
            }
        }
        let est = match result {
            Ok(est) => est,
            Err(reason) => {
                if let Some(reason) = reason {
                    node.counters.handshake_failed(reason);
                    tracing::debug!(parent: &hs_span, reason = reason.label(), "handshake failed; closing");
                }
                if let Some(name) = &dialled {
                    node.dial_done(name, false);
                }
                link.tx.close();
                linger(&mut link).await;
                return;
            }
        };
        tracing::Span::current().record("peer", tracing::field::display(&est.peer));
        node.peers.members().auth_ok(&est.peer.node);
        bump(&node.counters.handshakes_established);
        tracing::debug!(version = est.version, "authenticated");
        established::run(node, link, est, direction, dialled).await;
    }
    .instrument(span)
    .await
}

/// How long a refused connection is kept so the refusal can be written.
const REFUSE_LINGER: std::time::Duration = std::time::Duration::from_millis(250);

/// Keeps a closing link's receiving side for a short, bounded time, so the
/// queued refusal is flushed before the link is torn down (dropping the
/// receiver ends the link at once). Frames arriving meanwhile are discarded.
async fn linger(link: &mut Link) {
    let drain = async { while link.rx.recv().await.is_some() {} };
    let _ = tokio::time::timeout(REFUSE_LINGER, drain).await;
}

/// Queues a handshake message; `false` if the link no longer takes frames.
fn send_preauth(link: &Link, msg: &HandshakeMsg) -> bool {
    let mut body = Vec::new();
    encode_preauth(msg, &mut body).is_ok() && link.tx.try_send(Bytes::from(body), Priority::Control).is_ok()
}

/// Sends the error's refusal (best effort) and returns its reason.
fn refuse(link: &Link, err: &HandshakeError) -> Option<HandshakeFailure> {
    if let Some(reason) = err.refusal() {
        let _ = send_preauth(link, &HandshakeMsg::Refuse(reason));
    }
    Some(HandshakeFailure::from(err))
}

/// Whether the link's transport identity (a TLS certificate), if any,
/// lets the peer be the node `name`.
fn may_claim(link: &Link, name: &str) -> bool {
    link.identity.as_ref().is_none_or(|id| id.may_claim(name))
}

/// This side's handshake machine, deadlines from now; an initiator's
/// Hello is queued. `Err(reason)` as for [`handshake`].
fn start(node: &Shared, link: &Link, role: &Role) -> Result<Machine, Option<HandshakeFailure>> {
    let nonce = node.env.nonce().map_err(|_| Some(HandshakeFailure::Nonce))?;
    let cfg = &node.cfg;
    let now = Instant::now();
    let deadline = now + cfg.handshake_timeout;
    let local = Local {
        session: node.session.clone(),
        min_version: cfg.protocol_min_version,
        max_version: cfg.protocol_max_version,
        key: node.key.clone(),
    };
    Ok(match role {
        Role::Initiator(peer) if !may_claim(link, peer.as_str()) => return Err(Some(HandshakeFailure::PeerIdentity)),
        Role::Initiator(peer) => {
            let (m, hello) =
                Initiator::new(local, peer.clone(), nonce, deadline).map_err(|e| Some(HandshakeFailure::from(&e)))?;
            if !send_preauth(link, &hello) {
                return Err(Some(HandshakeFailure::LinkClosed));
            }
            Machine::I(m)
        }
        Role::Responder => Machine::R(
            Responder::new(local, None, nonce, deadline)
                .map_err(|e| Some(HandshakeFailure::from(&e)))?
                .with_hello_deadline(now + cfg.hello_timeout),
        ),
    })
}

/// Runs the handshake. `Err(Some(reason))` is a counted failure, `Err(None)`
/// the node stopping.
async fn handshake(node: &Shared, link: &mut Link, role: &Role) -> Result<Established, Option<HandshakeFailure>> {
    let cfg = &node.cfg;
    let mut machine = start(node, link, role)?;
    let mut frames = 0usize;
    loop {
        let body = tokio::select! {
            biased;
            _ = node.tasks.stopped() => return Err(None),
            () = sleep_until(machine.next_deadline()) => {
                let err = machine.on_tick(Instant::now()).err().unwrap_or(HandshakeError::TimedOut);
                return Err(refuse(link, &err));
            }
            frame = link.rx.recv() => match frame {
                Some(body) => body,
                None => return Err(Some(HandshakeFailure::LinkClosed)),
            },
        };
        frames += 1;
        if frames > cfg.preauth_frame_budget {
            bump(&node.counters.preauth_budget_exceeded);
            let _ = send_preauth(link, &HandshakeMsg::Refuse(Refusal::Unexpected));
            return Err(Some(HandshakeFailure::PreauthBudgetExceeded));
        }
        let step = match decode_body(&body) {
            Err(e) => return Err(Some(HandshakeFailure::from(&e))),
            Ok(Body::PreAuth(HandshakeMsg::Hello(hello))) if !may_claim(link, hello.session.node.as_str()) => {
                // The transport authenticated the peer as someone else.
                let _ = send_preauth(link, &HandshakeMsg::Refuse(Refusal::Unexpected));
                return Err(Some(HandshakeFailure::PeerIdentity));
            }
            Ok(Body::PreAuth(msg)) => machine.on_message(msg, Instant::now()),
            Ok(Body::Sealed { .. }) => {
                bump(&node.counters.preauth_sealed_frames);
                Err(machine.on_sealed_frame())
            }
        };
        match step {
            Ok(step) => {
                if let Some(msg) = step.send
                    && !send_preauth(link, &msg)
                {
                    return Err(Some(HandshakeFailure::LinkClosed));
                }
                if let Some(est) = step.established {
                    return Ok(est);
                }
            }
            Err(err) => {
                if let Role::Initiator(peer) = role {
                    node.member_auth_failed(peer, &err);
                }
                if let Some(reason) = auth_failure_reason(&err) {
                    let (peer, direction) = match role {
                        Role::Initiator(peer) => (Some(peer.clone()), PeerDirection::Outbound),
                        Role::Responder => (None, PeerDirection::Inbound),
                    };
                    node.emit(|| NodeEvent::AuthFailed { peer, direction, reason });
                }
                return Err(refuse(link, &err));
            }
        }
    }
}
