//! Handshake tests across both state machines: success, wrong token,
//! replay, reflection, downgrade, wrong peer, order, timeout, versions.

use std::time::Duration;

use proptest::prelude::*;
use tokio::time::Instant;

use super::keys::Role;
use super::*;
use crate::id::NodeId;
use crate::session::{FrameMac, OpenError};
use crate::wire::hello::{Accept, Auth, Challenge, Hello, Refusal};

fn sid(name: &str, boot: u64) -> SessionId {
    SessionId { node: NodeId::new(name), boot, counter: 0 }
}

fn local(name: &str, token: &str, versions: RangeInclusive<u16>) -> Local {
    Local {
        session: sid(name, 7),
        min_version: *versions.start(),
        max_version: *versions.end(),
        key: AuthKey::from_token(token.as_bytes()),
    }
}

struct Clock {
    start: Instant,
}

impl Clock {
    fn new() -> Clock {
        Clock { start: Instant::now() }
    }
    fn at(&self, secs: u64) -> Instant {
        self.start + Duration::from_secs(secs)
    }
}

/// A fresh pair: initiator "a" dialling "b", both with `token`s, nonces
/// `na`/`nb`, deadline 5 s.
fn pair(clock: &Clock, token_a: &str, token_b: &str, na: u8, nb: u8) -> (Initiator, HandshakeMsg, Responder) {
    let (i, hello) =
        Initiator::new(local("a", token_a, 1..=3), NodeId::new("b"), [na; 32], clock.at(5)).expect("initiator");
    let r = Responder::new(local("b", token_b, 1..=3), None, [nb; 32], clock.at(5)).expect("responder");
    (i, hello, r)
}

#[derive(Debug)]
struct Recorded {
    hello: HandshakeMsg,
    challenge: HandshakeMsg,
    auth: HandshakeMsg,
    accept: HandshakeMsg,
    initiator: Established,
    responder: Established,
}

fn run(clock: &Clock, mut i: Initiator, hello: HandshakeMsg, mut r: Responder) -> Recorded {
    let now = clock.at(1);
    let s = r.on_message(hello.clone(), now).expect("hello");
    assert!(s.established.is_none());
    let challenge = s.send.expect("challenge");
    let s = i.on_message(challenge.clone(), now).expect("challenge");
    assert!(s.established.is_none());
    let auth = s.send.expect("auth");
    let s = r.on_message(auth.clone(), now).expect("auth");
    let responder = s.established.expect("responder established");
    let accept = s.send.expect("accept");
    let s = i.on_message(accept.clone(), now).expect("accept");
    assert!(s.send.is_none());
    let initiator = s.established.expect("initiator established");
    assert_eq!((i.phase(), r.phase()), (Phase::Established, Phase::Established));
    Recorded { hello, challenge, auth, accept, initiator, responder }
}

fn handshake(na: u8, nb: u8) -> Recorded {
    let clock = Clock::new();
    let (i, hello, r) = pair(&clock, "token", "token", na, nb);
    run(&clock, i, hello, r)
}

fn seal(keys: &SessionKeys, payload: &[u8]) -> Vec<u8> {
    let (mut sealer, _) = keys.clone().into_parts();
    let mut out = Vec::new();
    sealer.seal(payload, &mut out).expect("seal");
    out
}

fn open(keys: &SessionKeys, body: &[u8]) -> Result<Vec<u8>, OpenError> {
    let (_, mut opener) = keys.clone().into_parts();
    opener.open(body).map(<[u8]>::to_vec)
}

fn challenge_of(msg: &HandshakeMsg) -> Challenge {
    match msg {
        HandshakeMsg::Challenge(c) => c.clone(),
        other => panic!("not a challenge: {other:?}"),
    }
}

fn hello_of(msg: &HandshakeMsg) -> Hello {
    match msg {
        HandshakeMsg::Hello(h) => h.clone(),
        other => panic!("not a hello: {other:?}"),
    }
}

fn mac_of(msg: &HandshakeMsg) -> [u8; 32] {
    match msg {
        HandshakeMsg::Auth(a) => a.mac,
        HandshakeMsg::Accept(a) => a.mac,
        other => panic!("no mac: {other:?}"),
    }
}

#[test]
fn full_handshake_establishes_matching_opposite_keys() {
    let rec = handshake(1, 2);
    assert_eq!(rec.initiator.peer, sid("b", 7));
    assert_eq!(rec.responder.peer, sid("a", 7));
    assert_eq!((rec.initiator.version, rec.responder.version), (3, 3));

    let to_b = seal(&rec.initiator.keys, b"a to b");
    assert_eq!(open(&rec.responder.keys, &to_b), Ok(b"a to b".to_vec()));
    let to_a = seal(&rec.responder.keys, b"b to a");
    assert_eq!(open(&rec.initiator.keys, &to_a), Ok(b"b to a".to_vec()));
    // The directions use different keys: a frame cannot be bounced back.
    assert_eq!(open(&rec.initiator.keys, &to_b), Err(OpenError::BadMac));
    assert_eq!(open(&rec.responder.keys, &to_a), Err(OpenError::BadMac));
}

#[test]
fn highest_common_version_is_chosen() {
    let clock = Clock::new();
    let (i, hello) = Initiator::new(local("a", "t", 1..=5), NodeId::new("b"), [1; 32], clock.at(5)).expect("initiator");
    let r = Responder::new(local("b", "t", 2..=4), None, [2; 32], clock.at(5)).expect("responder");
    let rec = run(&clock, i, hello, r);
    assert_eq!(challenge_of(&rec.challenge).chosen_version, 4);
    assert_eq!((rec.initiator.version, rec.responder.version), (4, 4));
    assert_eq!((rec.initiator.keys.mac, rec.responder.keys.mac), (FrameMac::Aes256Gmac, FrameMac::Aes256Gmac));
}

/// A session below version 4 seals with HMAC-SHA256 on both sides, so a
/// node still speaking version 3 understands every frame.
#[test]
fn a_version_3_session_seals_with_hmac() {
    let clock = Clock::new();
    let (i, hello) = Initiator::new(local("a", "t", 1..=3), NodeId::new("b"), [1; 32], clock.at(5)).expect("initiator");
    let r = Responder::new(local("b", "t", 1..=4), None, [2; 32], clock.at(5)).expect("responder");
    let rec = run(&clock, i, hello, r);
    assert_eq!((rec.initiator.version, rec.responder.version), (3, 3));
    assert_eq!((rec.initiator.keys.mac, rec.responder.keys.mac), (FrameMac::HmacSha256, FrameMac::HmacSha256));
    let to_b = seal(&rec.initiator.keys, b"a to b");
    assert_eq!(to_b[0], crate::wire::TAG_SEALED);
    assert_eq!(open(&rec.responder.keys, &to_b), Ok(b"a to b".to_vec()));
}

#[test]
fn insecure_key_interoperates_only_with_itself() {
    let clock = Clock::new();
    let insecure = |name: &str| Local { key: AuthKey::insecure(), ..local(name, "", 1..=1) };
    let (i, hello) = Initiator::new(insecure("a"), NodeId::new("b"), [1; 32], clock.at(5)).expect("initiator");
    let r = Responder::new(insecure("b"), None, [2; 32], clock.at(5)).expect("responder");
    run(&clock, i, hello, r);

    let (mut i, hello) = Initiator::new(insecure("a"), NodeId::new("b"), [1; 32], clock.at(5)).expect("initiator");
    let mut r = Responder::new(local("b", "token", 1..=1), None, [2; 32], clock.at(5)).expect("responder");
    let challenge = r.on_message(hello, clock.at(1)).expect("hello").send.expect("challenge");
    let auth = i.on_message(challenge, clock.at(1)).expect("challenge").send.expect("auth");
    assert_eq!(r.on_message(auth, clock.at(1)).err(), Some(HandshakeError::WrongProof));
}

#[test]
fn wrong_token_is_refused_by_the_responder() {
    let clock = Clock::new();
    let (mut i, hello, mut r) = pair(&clock, "token", "other token", 1, 2);
    let now = clock.at(1);
    let challenge = r.on_message(hello, now).expect("hello").send.expect("challenge");
    let auth = i.on_message(challenge, now).expect("challenge").send.expect("auth");
    let err = r.on_message(auth, now).expect_err("wrong token accepted");
    assert_eq!(err, HandshakeError::WrongProof);
    assert_eq!(err.refusal(), Some(Refusal::BadProof));
    assert_eq!(r.phase(), Phase::Closed);
    assert_eq!(r.close_reason(), Some(&HandshakeError::WrongProof));
    // The initiator learns of it and is not established either.
    let err = i.on_message(HandshakeMsg::Refuse(Refusal::BadProof), now).expect_err("refuse");
    assert_eq!(err, HandshakeError::PeerRefused(Refusal::BadProof));
    assert_eq!(err.refusal(), None);
    assert_eq!(i.phase(), Phase::Closed);
}

#[test]
fn forged_accept_is_refused_by_the_initiator() {
    // A responder that does not know the token cannot produce an Accept.
    let clock = Clock::new();
    let (mut i, hello, mut r) = pair(&clock, "token", "token", 1, 2);
    let now = clock.at(1);
    let challenge = r.on_message(hello, now).expect("hello").send.expect("challenge");
    let _auth = i.on_message(challenge, now).expect("challenge");
    let err = i.on_message(HandshakeMsg::Accept(Accept { mac: [0; 32] }), now).expect_err("forged accept");
    assert_eq!(err, HandshakeError::WrongProof);
    assert_eq!(i.phase(), Phase::Closed);
}

#[test]
fn replayed_initiator_messages_fail_against_a_fresh_nonce() {
    let rec = handshake(1, 2);
    let clock = Clock::new();
    let mut r = Responder::new(local("b", "token", 1..=3), None, [3; 32], clock.at(5)).expect("responder");
    let challenge = r.on_message(rec.hello.clone(), clock.at(1)).expect("replayed hello is answered");
    assert_ne!(challenge.send, Some(rec.challenge.clone()));
    assert_eq!(r.on_message(rec.auth.clone(), clock.at(1)).err(), Some(HandshakeError::WrongProof));
    assert_eq!(r.phase(), Phase::Closed);
}

#[test]
fn replayed_responder_messages_fail_against_a_fresh_nonce() {
    let rec = handshake(1, 2);
    let clock = Clock::new();
    let (mut i, _hello) =
        Initiator::new(local("a", "token", 1..=3), NodeId::new("b"), [4; 32], clock.at(5)).expect("initiator");
    let step = i.on_message(rec.challenge.clone(), clock.at(1)).expect("replayed challenge is answered");
    assert_ne!(step.send, Some(rec.auth.clone()));
    assert_eq!(i.on_message(rec.accept.clone(), clock.at(1)).err(), Some(HandshakeError::WrongProof));
}

#[test]
fn reflected_proofs_are_rejected() {
    // Same nonces ⇒ same transcript as the recorded run, so only the label
    // tells the proofs apart.
    let rec = handshake(1, 2);
    assert_ne!(mac_of(&rec.auth), mac_of(&rec.accept));

    let clock = Clock::new();
    let (mut i, hello, mut r) = pair(&clock, "token", "token", 1, 2);
    assert_eq!(hello, rec.hello);
    let now = clock.at(1);
    let challenge = r.on_message(hello, now).expect("hello").send.expect("challenge");
    assert_eq!(challenge, rec.challenge);
    let reflected = HandshakeMsg::Auth(Auth { mac: mac_of(&rec.accept) });
    assert_eq!(r.on_message(reflected, now).err(), Some(HandshakeError::WrongProof));

    let _auth = i.on_message(challenge, now).expect("challenge");
    let reflected = HandshakeMsg::Accept(Accept { mac: mac_of(&rec.auth) });
    assert_eq!(i.on_message(reflected, now).err(), Some(HandshakeError::WrongProof));
}

#[test]
fn rewritten_chosen_version_is_a_downgrade() {
    let clock = Clock::new();
    let (mut i, hello, mut r) = pair(&clock, "token", "token", 1, 2);
    let now = clock.at(1);
    let mut challenge = challenge_of(&r.on_message(hello, now).expect("hello").send.expect("challenge"));
    challenge.chosen_version = 1;
    let err = i.on_message(HandshakeMsg::Challenge(challenge), now).expect_err("downgrade accepted");
    assert_eq!(err, HandshakeError::Downgrade { chosen: 1, best: 3 });
    assert_eq!(err.refusal(), Some(Refusal::IncompatibleVersion));
}

#[test]
fn rewritten_hello_range_is_detected() {
    // The man in the middle lowers the initiator's max so the responder
    // picks 1; the initiator sees the responder could do 3.
    let clock = Clock::new();
    let (mut i, hello, mut r) = pair(&clock, "token", "token", 1, 2);
    let now = clock.at(1);
    let mut hello = hello_of(&hello);
    hello.max_version = 1;
    let challenge = r.on_message(HandshakeMsg::Hello(hello), now).expect("hello").send.expect("challenge");
    assert_eq!(challenge_of(&challenge).chosen_version, 1);
    assert_eq!(i.on_message(challenge, now).err(), Some(HandshakeError::Downgrade { chosen: 1, best: 3 }));
}

#[test]
fn rewritten_ranges_on_both_sides_break_the_proof() {
    // Consistent rewrites pass the initiator's version check, but each side
    // MACs the transcript it saw.
    let clock = Clock::new();
    let (mut i, hello, mut r) = pair(&clock, "token", "token", 1, 2);
    let now = clock.at(1);
    let mut hello = hello_of(&hello);
    hello.max_version = 1;
    let challenge = r.on_message(HandshakeMsg::Hello(hello), now).expect("hello").send.expect("challenge");
    let mut challenge = challenge_of(&challenge);
    challenge.max_version = 1;
    let auth = i.on_message(HandshakeMsg::Challenge(challenge), now).expect("challenge").send.expect("auth");
    assert_eq!(r.on_message(auth, now).err(), Some(HandshakeError::WrongProof));
}

#[test]
fn rewritten_challenge_range_breaks_the_proof() {
    let clock = Clock::new();
    let (mut i, hello, mut r) = pair(&clock, "token", "token", 1, 2);
    let now = clock.at(1);
    let mut challenge = challenge_of(&r.on_message(hello, now).expect("hello").send.expect("challenge"));
    challenge.max_version = 2;
    challenge.chosen_version = 2;
    let auth = i.on_message(HandshakeMsg::Challenge(challenge), now).expect("challenge").send.expect("auth");
    assert_eq!(r.on_message(auth, now).err(), Some(HandshakeError::WrongProof));
}

#[test]
fn rewritten_session_ids_break_the_proof() {
    let clock = Clock::new();
    let (mut i, hello, mut r) = pair(&clock, "token", "token", 1, 2);
    let now = clock.at(1);
    let mut hello = hello_of(&hello);
    hello.session.counter = 9;
    let challenge = r.on_message(HandshakeMsg::Hello(hello), now).expect("hello").send.expect("challenge");
    let auth = i.on_message(challenge, now).expect("challenge").send.expect("auth");
    assert_eq!(r.on_message(auth, now).err(), Some(HandshakeError::WrongProof));
}

#[test]
fn responder_claiming_another_name_is_wrong_peer() {
    let clock = Clock::new();
    let (mut i, hello) =
        Initiator::new(local("a", "t", 1..=3), NodeId::new("b"), [1; 32], clock.at(5)).expect("initiator");
    let mut r = Responder::new(local("c", "t", 1..=3), None, [2; 32], clock.at(5)).expect("responder");
    let challenge = r.on_message(hello, clock.at(1)).expect("hello").send.expect("challenge");
    let err = i.on_message(challenge, clock.at(1)).expect_err("wrong peer accepted");
    assert_eq!(err, HandshakeError::WrongPeer { expected: NodeId::new("b"), got: NodeId::new("c") });
    assert_eq!(i.phase(), Phase::Closed);
}

#[test]
fn initiator_not_expected_by_the_responder_is_wrong_peer() {
    let clock = Clock::new();
    let (_, hello) = Initiator::new(local("x", "t", 1..=3), NodeId::new("b"), [1; 32], clock.at(5)).expect("initiator");
    let mut r =
        Responder::new(local("b", "t", 1..=3), Some(NodeId::new("a")), [2; 32], clock.at(5)).expect("responder");
    let err = r.on_message(hello, clock.at(1)).expect_err("wrong peer accepted");
    assert_eq!(err, HandshakeError::WrongPeer { expected: NodeId::new("a"), got: NodeId::new("x") });
    assert_eq!(err.refusal(), Some(Refusal::Unexpected));
}

#[test]
fn out_of_order_messages_are_unexpected() {
    let clock = Clock::new();
    let now = clock.at(1);
    let auth = HandshakeMsg::Auth(Auth { mac: [0; 32] });
    let accept = HandshakeMsg::Accept(Accept { mac: [0; 32] });

    let (mut i, hello, mut r) = pair(&clock, "t", "t", 1, 2);
    let err = r.on_message(auth.clone(), now).expect_err("auth first");
    assert_eq!(err, HandshakeError::Unexpected { state: Phase::AwaitHello, got: MsgKind::Auth });
    assert_eq!(err.refusal(), Some(Refusal::Unexpected));
    assert_eq!(r.phase(), Phase::Closed);
    // A closed machine stays closed and keeps its first reason.
    assert_eq!(
        r.on_message(hello.clone(), now).err(),
        Some(HandshakeError::Unexpected { state: Phase::Closed, got: MsgKind::Hello })
    );
    assert_eq!(r.close_reason(), Some(&err));

    let err = i.on_message(accept.clone(), now).expect_err("accept first");
    assert_eq!(err, HandshakeError::Unexpected { state: Phase::AwaitChallenge, got: MsgKind::Accept });

    // A second Hello while waiting for Auth.
    let (mut i, hello, mut r) = pair(&clock, "t", "t", 1, 2);
    let challenge = r.on_message(hello.clone(), now).expect("hello").send.expect("challenge");
    assert_eq!(
        r.on_message(hello.clone(), now).err(),
        Some(HandshakeError::Unexpected { state: Phase::AwaitAuth, got: MsgKind::Hello })
    );
    // A second Challenge while waiting for Accept.
    let _auth = i.on_message(challenge.clone(), now).expect("challenge");
    assert_eq!(
        i.on_message(challenge, now).err(),
        Some(HandshakeError::Unexpected { state: Phase::AwaitAccept, got: MsgKind::Challenge })
    );
    // Messages meant for the other role.
    let (mut i, hello, mut r) = pair(&clock, "t", "t", 1, 2);
    assert_eq!(
        i.on_message(hello.clone(), now).err(),
        Some(HandshakeError::Unexpected { state: Phase::AwaitChallenge, got: MsgKind::Hello })
    );
    let challenge = r.on_message(hello, now).expect("hello").send.expect("challenge");
    assert_eq!(
        r.on_message(challenge, now).err(),
        Some(HandshakeError::Unexpected { state: Phase::AwaitAuth, got: MsgKind::Challenge })
    );
}

#[test]
fn sealed_frame_before_established_is_unexpected() {
    let clock = Clock::new();
    let (mut i, hello, mut r) = pair(&clock, "t", "t", 1, 2);
    let err = r.on_sealed_frame();
    assert_eq!(err, HandshakeError::Unexpected { state: Phase::AwaitHello, got: MsgKind::Sealed });
    assert_eq!(err.to_string(), "unexpected sealed frame while in await_hello");
    assert_eq!(r.phase(), Phase::Closed);
    assert_eq!(r.on_message(hello, clock.at(1)).err().map(|e| e.label()), Some("unexpected"));
    assert_eq!(r.close_reason(), Some(&err));
    assert_eq!(i.on_sealed_frame(), HandshakeError::Unexpected { state: Phase::AwaitChallenge, got: MsgKind::Sealed });
    assert_eq!(i.phase(), Phase::Closed);
}

#[test]
fn input_after_established_closes() {
    let clock = Clock::new();
    let (mut i, hello, mut r) = pair(&clock, "t", "t", 1, 2);
    let now = clock.at(1);
    let challenge = r.on_message(hello.clone(), now).expect("hello").send.expect("challenge");
    let auth = i.on_message(challenge, now).expect("challenge").send.expect("auth");
    let accept = r.on_message(auth.clone(), now).expect("auth").send.expect("accept");
    let _ = i.on_message(accept.clone(), now).expect("accept");
    assert_eq!(
        r.on_message(auth, now).err(),
        Some(HandshakeError::Unexpected { state: Phase::Established, got: MsgKind::Auth })
    );
    assert_eq!(r.phase(), Phase::Closed);
    assert_eq!(
        i.on_message(accept, now).err(),
        Some(HandshakeError::Unexpected { state: Phase::Established, got: MsgKind::Accept })
    );
}

#[test]
fn a_responder_without_a_hello_gives_up_at_the_hello_deadline() {
    let clock = Clock::new();
    let (_, _, r) = pair(&clock, "t", "t", 1, 2);
    let mut r = r.with_hello_deadline(clock.at(1));
    assert_eq!(r.next_deadline(), clock.at(1));
    assert_eq!(r.on_tick(clock.at(0)), Ok(()));
    let err = r.on_tick(clock.at(1)).expect_err("no hello by its deadline");
    assert_eq!(err, HandshakeError::HelloTimedOut);
    assert_eq!((err.label(), err.refusal()), ("hello_timed_out", Some(Refusal::Timeout)));
    assert_eq!(r.phase(), Phase::Closed);

    // Once the Hello is in, only the handshake's own deadline applies.
    let (_, hello, r) = pair(&clock, "t", "t", 1, 2);
    let mut r = r.with_hello_deadline(clock.at(1));
    let _challenge = r.on_message(hello, clock.at(0)).expect("hello in time");
    assert_eq!(r.next_deadline(), clock.at(5));
    assert_eq!(r.on_tick(clock.at(4)), Ok(()));

    // A Hello deadline past the handshake's is clamped to it.
    let (_, _, r) = pair(&clock, "t", "t", 1, 2);
    assert_eq!(r.with_hello_deadline(clock.at(9)).next_deadline(), clock.at(5));
}

#[test]
fn handshake_times_out_at_its_deadline() {
    let clock = Clock::new();
    let (mut i, hello, mut r) = pair(&clock, "t", "t", 1, 2);
    assert_eq!(i.deadline(), clock.at(5));
    assert_eq!(r.on_tick(clock.at(4)), Ok(()));
    let challenge = r.on_message(hello, clock.at(4)).expect("hello").send.expect("challenge");
    let err = r.on_tick(clock.at(5)).expect_err("deadline passed");
    assert_eq!(err, HandshakeError::TimedOut);
    assert_eq!(err.refusal(), Some(Refusal::Timeout));
    assert_eq!(r.phase(), Phase::Closed);
    assert_eq!(r.on_tick(clock.at(6)), Ok(()), "reported once");

    // A message arriving after the deadline is not processed.
    assert_eq!(i.on_message(challenge, clock.at(6)).err(), Some(HandshakeError::TimedOut));
    assert_eq!(i.close_reason(), Some(&HandshakeError::TimedOut));
}

#[test]
fn established_machines_ignore_ticks() {
    let clock = Clock::new();
    let (mut i, hello, mut r) = pair(&clock, "t", "t", 1, 2);
    let now = clock.at(1);
    let challenge = r.on_message(hello, now).expect("hello").send.expect("challenge");
    let auth = i.on_message(challenge, now).expect("challenge").send.expect("auth");
    let accept = r.on_message(auth, now).expect("auth").send.expect("accept");
    let _ = i.on_message(accept, now).expect("accept");
    assert_eq!(i.on_tick(clock.at(60)), Ok(()));
    assert_eq!(r.on_tick(clock.at(60)), Ok(()));
    assert_eq!((i.phase(), r.phase()), (Phase::Established, Phase::Established));
}

#[test]
fn incompatible_versions_are_refused() {
    let clock = Clock::new();
    let (mut i, hello) =
        Initiator::new(local("a", "t", 1..=2), NodeId::new("b"), [1; 32], clock.at(5)).expect("initiator");
    let mut r = Responder::new(local("b", "t", 3..=4), None, [2; 32], clock.at(5)).expect("responder");
    let err = r.on_message(hello, clock.at(1)).expect_err("incompatible accepted");
    assert_eq!(err, HandshakeError::IncompatibleVersion { ours: 3..=4, theirs: 1..=2 });
    let refusal = err.refusal().expect("a refusal to send");
    assert_eq!(refusal, Refusal::IncompatibleVersion);
    assert_eq!(
        i.on_message(HandshakeMsg::Refuse(refusal), clock.at(1)).err(),
        Some(HandshakeError::PeerRefused(Refusal::IncompatibleVersion))
    );
}

#[test]
fn challenge_outside_our_range_is_incompatible() {
    let clock = Clock::new();
    let (mut i, _) = Initiator::new(local("a", "t", 1..=2), NodeId::new("b"), [1; 32], clock.at(5)).expect("initiator");
    let challenge =
        Challenge { session: sid("b", 1), min_version: 3, max_version: 4, chosen_version: 3, nonce: [2; 32] };
    assert_eq!(
        i.on_message(HandshakeMsg::Challenge(challenge), clock.at(1)).err(),
        Some(HandshakeError::IncompatibleVersion { ours: 1..=2, theirs: 3..=4 })
    );
}

#[test]
fn inverted_peer_range_is_incompatible() {
    let clock = Clock::new();
    let (_, hello, mut r) = pair(&clock, "t", "t", 1, 2);
    let mut hello = hello_of(&hello);
    (hello.min_version, hello.max_version) = (3, 1);
    assert_eq!(
        r.on_message(HandshakeMsg::Hello(hello), clock.at(1)).err(),
        Some(HandshakeError::IncompatibleVersion { ours: 1..=3, theirs: RangeInclusive::new(3, 1) })
    );
}

#[test]
fn names_are_checked() {
    assert!(valid_name("a"));
    assert!(valid_name("node-1.eu"));
    assert!(valid_name("knoten-ü"));
    assert!(valid_name(&"x".repeat(MAX_NAME_LEN)));
    assert!(!valid_name(""));
    assert!(!valid_name(&"x".repeat(MAX_NAME_LEN + 1)));
    assert!(!valid_name("a\nb"));
    assert!(!valid_name("a\0"));
    assert!(!valid_name("\u{7f}"));

    let clock = Clock::new();
    for bad in ["", "a\r\nb", &"y".repeat(256)] {
        let (_, hello, mut r) = pair(&clock, "t", "t", 1, 2);
        let mut hello = hello_of(&hello);
        hello.session.node = NodeId::new(bad);
        assert_eq!(r.on_message(HandshakeMsg::Hello(hello), clock.at(1)).err(), Some(HandshakeError::BadName));

        let (mut i, _, _) = pair(&clock, "t", "t", 1, 2);
        let challenge =
            Challenge { session: sid(bad, 1), min_version: 1, max_version: 3, chosen_version: 3, nonce: [2; 32] };
        assert_eq!(i.on_message(HandshakeMsg::Challenge(challenge), clock.at(1)).err(), Some(HandshakeError::BadName));
    }
    let err = Responder::new(local("", "t", 1..=1), None, [2; 32], clock.at(5)).expect_err("own bad name");
    assert_eq!(err, HandshakeError::BadName);
}

#[test]
fn own_session_or_nonce_is_self_connect() {
    let clock = Clock::new();
    let now = clock.at(1);
    // Our own Hello reflected back at our responder.
    let (_, hello) = Initiator::new(local("b", "t", 1..=3), NodeId::new("b"), [1; 32], clock.at(5)).expect("initiator");
    let mut r = Responder::new(local("b", "t", 1..=3), None, [2; 32], clock.at(5)).expect("responder");
    assert_eq!(r.on_message(hello, now).err(), Some(HandshakeError::SelfConnect));

    // Our own nonce echoed back in a Challenge.
    let (mut i, _, _) = pair(&clock, "t", "t", 1, 2);
    let challenge =
        Challenge { session: sid("b", 1), min_version: 1, max_version: 3, chosen_version: 3, nonce: [1; 32] };
    assert_eq!(i.on_message(HandshakeMsg::Challenge(challenge), now).err(), Some(HandshakeError::SelfConnect));

    // Dialling ourselves.
    let (mut i, hello) =
        Initiator::new(local("a", "t", 1..=3), NodeId::new("a"), [1; 32], clock.at(5)).expect("initiator");
    let challenge = Challenge {
        session: hello_of(&hello).session,
        min_version: 1,
        max_version: 3,
        chosen_version: 3,
        nonce: [2; 32],
    };
    assert_eq!(i.on_message(HandshakeMsg::Challenge(challenge), now).err(), Some(HandshakeError::SelfConnect));
}

#[test]
fn empty_local_range_is_a_configuration_error() {
    let clock = Clock::new();
    let err = Initiator::new(local("a", "t", RangeInclusive::new(3, 1)), NodeId::new("b"), [1; 32], clock.at(5))
        .expect_err("range");
    assert_eq!(err, HandshakeError::InvalidRange { min: 3, max: 1 });
    assert_eq!(err.refusal(), None);
    assert!(Responder::new(local("b", "t", RangeInclusive::new(3, 1)), None, [1; 32], clock.at(5)).is_err());
}

#[test]
fn each_session_gets_its_own_keys() {
    let old = handshake(1, 2);
    let new = handshake(1, 3);
    let stale = seal(&old.initiator.keys, b"from the old session");
    assert_eq!(open(&old.responder.keys, &stale), Ok(b"from the old session".to_vec()));
    assert_eq!(open(&new.responder.keys, &stale), Err(OpenError::BadMac));
    let stale = seal(&old.responder.keys, b"old reply");
    assert_eq!(open(&new.initiator.keys, &stale), Err(OpenError::BadMac));
}

#[test]
fn labels_and_display_are_stable() {
    assert_eq!(HandshakeError::WrongProof.label(), "wrong_proof");
    assert_eq!(HandshakeError::WrongProof.to_string(), "wrong proof");
    let e = HandshakeError::Unexpected { state: Phase::AwaitHello, got: MsgKind::Auth };
    assert_eq!(e.to_string(), "unexpected auth while in await_hello");
    let e = HandshakeError::IncompatibleVersion { ours: 1..=2, theirs: 3..=4 };
    assert_eq!(e.to_string(), "incompatible protocol versions (ours 1..=2, theirs 3..=4)");
}

#[test]
fn fresh_nonces_differ() {
    let a = fresh_nonce().expect("os rng");
    let b = fresh_nonce().expect("os rng");
    assert_ne!(a, b);
}

/// Known-answer test: the values in `docs/protocol.md` (computed there
/// independently) must match this implementation.
#[test]
fn known_answers() {
    fn hex(bytes: &[u8]) -> String {
        bytes.iter().map(|b| format!("{b:02x}")).collect()
    }
    let key = AuthKey::from_token(b"shared-secret");
    let hello = Hello { session: sid("a", 1), min_version: 1, max_version: 1, nonce: [0xa1; 32] };
    let challenge =
        Challenge { session: sid("b", 2), min_version: 1, max_version: 1, chosen_version: 1, nonce: [0xb2; 32] };
    let t = transcript(&hello, &challenge);
    let keys = key.session_keys(Role::Initiator, &t, challenge.chosen_version);
    let i2r = seal(&keys, b"");
    let r2i = seal(&SessionKeys { send: keys.recv.clone(), recv: keys.send.clone(), mac: keys.mac }, b"");
    let got = [
        hex(key.bytes()),
        hex(&t),
        hex(&key.proof(Role::Initiator, &t)),
        hex(&key.proof(Role::Responder, &t)),
        hex(keys.send.bytes()),
        hex(keys.recv.bytes()),
        hex(&i2r[9..]),
        hex(&r2i[9..]),
        hex(AuthKey::insecure().bytes()),
    ];
    assert_eq!(got, KNOWN_ANSWERS, "\n{got:#?}");
}

/// Computed with Python's `hmac`/`hashlib` from the description in
/// `docs/protocol.md`: K, T, Auth MAC, Accept MAC, the initiator→responder
/// and responder→initiator frame keys, the MAC of frame 0 (empty payload) in
/// each direction, the insecure key.
const KNOWN_ANSWERS: [&str; 9] = [
    "1309260846745e85116e920f48b7c7a96bc2ebbad57c7fc46b53dbf58249bbc3",
    "000000016100000008000000000000000100000008000000000000000000000002000100000002000100000020\
     a1a1a1a1a1a1a1a1a1a1a1a1a1a1a1a1a1a1a1a1a1a1a1a1a1a1a1a1a1a1a1a1\
     000000016200000008000000000000000200000008000000000000000000000002000100000002000100000002000100000020\
     b2b2b2b2b2b2b2b2b2b2b2b2b2b2b2b2b2b2b2b2b2b2b2b2b2b2b2b2b2b2b2b2",
    "16b90085e04e49502acc26055903dd05435330a5f5fdc20e0ab4119901256a1d",
    "af6655acd3e6d4659c05662a03452824a9d8d0df8914a4c9b029c5e9ec1359c8",
    "d434d9128e46eefcd0c62ecdeaf17c95636c062ddcb7144f9424c6725815d2c1",
    "6033f2b765cd22967091435062d60563db98e88849e20d8fe59bb70a6c805a67",
    "371eb9695bb00d3280ad287ff9b9b30926435bed6b372197ae208cbc53860382",
    "93cb4372016d8579e3fb813c746de014a93de4a85ff89c66272a15f88a935261",
    "d1f85ac3e5f63a1e826658fc4ac0c23a18fc86f3c94f8ccbfbfc6e97259452a1",
];

fn arb_session() -> impl Strategy<Value = SessionId> {
    (prop::sample::select(vec!["a", "b", "c", ""]), 0u64..3, 0u64..3).prop_map(|(n, boot, counter)| SessionId {
        node: NodeId::new(n),
        boot,
        counter,
    })
}

fn arb_msg() -> impl Strategy<Value = HandshakeMsg> {
    let nonce = prop::array::uniform32(0u8..3);
    prop_oneof![
        (arb_session(), 0u16..4, 0u16..4, nonce.clone()).prop_map(|(session, min_version, max_version, nonce)| {
            HandshakeMsg::Hello(Hello { session, min_version, max_version, nonce })
        }),
        (arb_session(), 0u16..4, 0u16..4, 0u16..4, nonce).prop_map(
            |(session, min_version, max_version, chosen_version, nonce)| {
                HandshakeMsg::Challenge(Challenge { session, min_version, max_version, chosen_version, nonce })
            }
        ),
        any::<[u8; 32]>().prop_map(|mac| HandshakeMsg::Auth(Auth { mac })),
        any::<[u8; 32]>().prop_map(|mac| HandshakeMsg::Accept(Accept { mac })),
        Just(HandshakeMsg::Refuse(Refusal::BadProof)),
    ]
}

proptest! {
    /// Arbitrary message sequences (no valid proof among them) never panic
    /// and never establish a session; once closed, a machine stays closed.
    #[test]
    fn arbitrary_input_never_establishes(msgs in prop::collection::vec((arb_msg(), 0u64..7), 0..8)) {
        let clock = Clock::new();
        let (mut i, _hello, mut r) = pair(&clock, "t", "t", 1, 2);
        let (mut i_closed, mut r_closed) = (false, false);
        for (msg, secs) in msgs {
            let now = clock.at(secs);
            match r.on_message(msg.clone(), now) {
                Ok(step) => prop_assert!(step.established.is_none()),
                Err(_) => r_closed = true,
            }
            match i.on_message(msg, now) {
                Ok(step) => prop_assert!(step.established.is_none()),
                Err(_) => i_closed = true,
            }
            prop_assert_eq!(r_closed, r.phase() == Phase::Closed);
            prop_assert_eq!(i_closed, i.phase() == Phase::Closed);
        }
    }
}
