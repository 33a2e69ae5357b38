//! Node-level attacks on the cluster transport over TCP on loopback (real
//! clock, ephemeral ports). Raw clients speak the real protocol through the
//! public `handshake`, `session` and `wire` API and then misbehave: a
//! replayed handshake transcript, a reflected MAC, version downgrades and a
//! tampered transcript, a peer claiming another node's name, slow-loris
//! connections, a frame of a replaced session, malformed and oversized
//! frames, and a flood of requests from one authenticated peer.
//!
//! After every attack the test checks that (1) the node counted it under the
//! matching label of `inspect().counters` and (2) two honest nodes stay
//! authenticated and keep exchanging heartbeats.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use axactor_cluster::handshake::{AuthKey, Initiator, Local, fresh_nonce};
use axactor_cluster::overlay::TcpStats;
use axactor_cluster::session::{FrameMac, Opener, Sealer, SessionKeys};
use axactor_cluster::wire::hello::{Auth, Challenge, Hello, PROTOCOL_MAX_VERSION, Refusal};
use axactor_cluster::wire::{Body, ControlMsg, DataMsg, Envelope, HandshakeMsg, decode_body, encode_preauth};
use axactor_cluster::{ClusterConfig, ClusterNode, LeaseStore, MemoryLeaseStore, NodeId, SessionId, TcpOverlay};
use axactor_tests::cluster::{
    BOUND, TOKEN, assert_closed_by_node, connected, eventually, fast_cfg, framed, heartbeats_advance, read_frame,
    sealed, write_frame,
};
use tokio::io::AsyncWriteExt;
use tokio::net::{TcpSocket, TcpStream};
use tokio::time::{Instant, timeout};

/// A TCP cluster on loopback: one overlay, one lease store, its nodes.
struct Cluster {
    overlay: TcpOverlay,
    store: Arc<dyn LeaseStore>,
    nodes: Vec<ClusterNode>,
}

impl Cluster {
    fn new() -> Cluster {
        Cluster {
            overlay: TcpOverlay::new(HashMap::new()),
            store: Arc::new(MemoryLeaseStore::new()),
            nodes: Vec::new(),
        }
    }

    /// Starts `name` on port 0 and publishes its bound address.
    async fn start(&mut self, name: &str, cfg: ClusterConfig) -> ClusterNode {
        let any: SocketAddr = "127.0.0.1:0".parse().expect("addr");
        self.overlay.insert_address(name, any);
        let node =
            ClusterNode::start(NodeId::new(name), self.store.clone(), self.overlay.clone(), cfg).await.expect("start");
        self.overlay.insert_address(name, node.local_addr().expect("tcp listens on an address"));
        self.nodes.push(node.clone());
        node
    }

    /// Two honest nodes `a` and `b`, authenticated to each other.
    async fn pair(cfg: ClusterConfig) -> (Cluster, ClusterNode, ClusterNode) {
        let mut cluster = Cluster::new();
        let a = cluster.start("a", cfg.clone()).await;
        let b = cluster.start("b", cfg).await;
        connected(&a, &b).await;
        (cluster, a, b)
    }

    async fn shutdown(self) {
        for n in &self.nodes {
            n.shutdown().await;
        }
    }
}

/// Waits until the overlay's counters satisfy `check`. The overlay counts a
/// link when its task has ended, just after the node saw the link close.
async fn tcp_eventually(overlay: &TcpOverlay, what: &str, check: impl Fn(&TcpStats) -> bool) {
    let deadline = Instant::now() + BOUND;
    while !check(&overlay.stats()) {
        assert!(Instant::now() < deadline, "{what}: not reached: {:#?}", overlay.stats());
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// The honest pair still talks both ways, with the right sessions.
async fn honest_traffic_flows(a: &ClusterNode, b: &ClusterNode) {
    connected(a, b).await;
    heartbeats_advance(a, b).await;
    heartbeats_advance(b, a).await;
}

fn handshake_failures(node: &ClusterNode, label: &str) -> u64 {
    node.inspect().counters.handshake_failures.get(label).copied().unwrap_or(0)
}

fn frame_rejections(node: &ClusterNode, label: &str) -> u64 {
    node.inspect().counters.frame_rejections.get(label).copied().unwrap_or(0)
}

/// Waits until the handshake failure `label` was counted `n` more times than `before`.
async fn handshake_failure_counted(node: &ClusterNode, label: &'static str, before: u64, n: u64) {
    eventually(node, label, |s| s.counters.handshake_failures.get(label).copied().unwrap_or(0) == before + n).await;
}

/// The next handshake message from the node, or `None` on close.
async fn read_preauth(stream: &mut TcpStream) -> Option<HandshakeMsg> {
    let body = read_frame(stream).await?;
    match decode_body(&body) {
        Ok(Body::PreAuth(msg)) => Some(msg),
        other => panic!("expected a handshake message, got {other:?}"),
    }
}

fn preauth(msg: &HandshakeMsg) -> Vec<u8> {
    let mut out = Vec::new();
    encode_preauth(msg, &mut out).expect("encode");
    out
}

fn run_of(name: &str, boot: u64) -> SessionId {
    SessionId { node: NodeId::new(name), boot, counter: 0 }
}

/// What a raw initiator saw and sent during one handshake.
struct Handshake {
    stream: TcpStream,
    /// Bodies sent, in order (Hello, then Auth if it got that far).
    sent: Vec<Vec<u8>>,
    /// The Challenge received, if any.
    challenge: Option<Challenge>,
    /// The Accept MAC received, if any.
    accept_mac: Option<[u8; 32]>,
    /// The node's refusal, if it sent one.
    refusal: Option<Refusal>,
    /// The frame keys, if the handshake was established.
    keys: Option<(Sealer, Opener)>,
    /// The session's keys and MAC, as the handshake produced them.
    session_keys: Option<SessionKeys>,
}

/// Runs the real initiator handshake as `local` against `peer` at `addr`;
/// `rewrite` may change the Hello on the wire (a man in the middle) after
/// the initiator machine has recorded the original in its transcript.
async fn handshake(addr: SocketAddr, local: Local, peer: &str, rewrite: impl FnOnce(&mut Hello)) -> Handshake {
    let stream = TcpStream::connect(addr).await.expect("connect");
    let deadline = Instant::now() + BOUND;
    let (mut machine, hello) =
        Initiator::new(local, NodeId::new(peer), fresh_nonce().expect("rng"), deadline).expect("initiator");
    let HandshakeMsg::Hello(mut hello) = hello else { panic!("the initiator starts with a Hello") };
    rewrite(&mut hello);
    let mut hs = Handshake {
        stream,
        sent: Vec::new(),
        challenge: None,
        accept_mac: None,
        refusal: None,
        keys: None,
        session_keys: None,
    };
    let first = preauth(&HandshakeMsg::Hello(hello));
    write_frame(&mut hs.stream, &first).await;
    hs.sent.push(first);
    while let Some(msg) = read_preauth(&mut hs.stream).await {
        match &msg {
            HandshakeMsg::Challenge(c) => hs.challenge = Some(c.clone()),
            HandshakeMsg::Accept(a) => hs.accept_mac = Some(a.mac),
            HandshakeMsg::Refuse(r) => hs.refusal = Some(*r),
            _ => {}
        }
        let Ok(step) = machine.on_message(msg, Instant::now()) else { break };
        if let Some(msg) = step.send {
            let body = preauth(&msg);
            write_frame(&mut hs.stream, &body).await;
            hs.sent.push(body);
        }
        if let Some(est) = step.established {
            hs.session_keys = Some(est.keys.clone());
            hs.keys = Some(est.keys.into_parts());
            break;
        }
    }
    hs
}

/// A real, successful handshake as session `me` with the right token.
async fn authenticated(addr: SocketAddr, me: SessionId, peer: &str) -> Handshake {
    let hs = handshake(addr, Local::new(me, AuthKey::from_token(TOKEN.as_bytes())), peer, |_| {}).await;
    assert!(hs.keys.is_some(), "the handshake with the right token succeeds (refusal: {:?})", hs.refusal);
    hs
}

/// Reads the node's answers until a `Refuse` or the close; returns the refusal.
async fn refusal_then_close(stream: &mut TcpStream) -> Option<Refusal> {
    let mut refusal = None;
    while let Some(msg) = read_preauth(stream).await {
        if let HandshakeMsg::Refuse(r) = msg {
            refusal = Some(r);
        }
    }
    refusal
}

/// The node keeps a refused link open briefly so its `Refuse` is written
/// before the close: it must arrive, with the expected reason.
fn assert_refusal(got: Option<Refusal>, want: Refusal) {
    assert_eq!(got, Some(want), "the refusal reaches the client before the close");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_replayed_handshake_transcript_is_rejected() {
    let (cluster, a, b) = Cluster::pair(fast_cfg()).await;
    let addr = a.local_addr().expect("addr");

    // An honest initiator's handshake, recorded.
    let honest = authenticated(addr, run_of("x", 1), "a").await;
    eventually(&a, "x authenticated", |s| s.peer("x").is_some()).await;
    let [hello, auth] = <[Vec<u8>; 2]>::try_from(honest.sent.clone()).expect("Hello and Auth were sent");

    // Replayed byte for byte on a new connection: the node's fresh nonce
    // changes the transcript, so the recorded proof does not verify.
    let before = handshake_failures(&a, "wrong_proof");
    let mut replay = TcpStream::connect(addr).await.expect("connect");
    write_frame(&mut replay, &hello).await;
    let Some(HandshakeMsg::Challenge(challenge)) = read_preauth(&mut replay).await else {
        panic!("the replayed Hello gets a Challenge")
    };
    assert_ne!(Some(challenge.nonce), honest.challenge.as_ref().map(|c| c.nonce), "the responder's nonce is fresh");
    write_frame(&mut replay, &auth).await;
    assert_refusal(refusal_then_close(&mut replay).await, Refusal::BadProof);
    handshake_failure_counted(&a, "wrong_proof", before, 1).await;

    // Replayed all at once (Hello and Auth back to back, without waiting):
    // the same.
    let mut replay = TcpStream::connect(addr).await.expect("connect");
    let mut both = framed(&hello);
    both.extend_from_slice(&framed(&auth));
    replay.write_all(&both).await.expect("write");
    assert_refusal(refusal_then_close(&mut replay).await, Refusal::BadProof);
    handshake_failure_counted(&a, "wrong_proof", before, 2).await;

    // The honest session of "x" was not touched by the replays.
    let snap = a.inspect();
    assert_eq!(snap.peer("x").map(|p| p.session.clone()), Some(run_of("x", 1)), "{snap:#?}");
    assert_eq!(snap.counters.sessions_replaced, 0);
    honest_traffic_flows(&a, &b).await;
    drop(honest);
    cluster.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_reflected_mac_is_rejected() {
    let (cluster, a, b) = Cluster::pair(fast_cfg()).await;
    let addr = a.local_addr().expect("addr");
    let honest = authenticated(addr, run_of("x", 1), "a").await;
    let accept_mac = honest.accept_mac.expect("an Accept was received");
    let before = handshake_failures(&a, "wrong_proof");

    // The responder's proof from a previous session, sent back as the
    // initiator's proof; then the Challenge's own nonce echoed as a "MAC".
    for (i, reflect) in [Some(accept_mac), None].into_iter().enumerate() {
        let mut s = TcpStream::connect(addr).await.expect("connect");
        let hello =
            Hello { session: run_of("y", 1), min_version: 1, max_version: 1, nonce: fresh_nonce().expect("rng") };
        write_frame(&mut s, &preauth(&HandshakeMsg::Hello(hello))).await;
        let Some(HandshakeMsg::Challenge(challenge)) = read_preauth(&mut s).await else { panic!("a Challenge") };
        let mac = reflect.unwrap_or(challenge.nonce);
        write_frame(&mut s, &preauth(&HandshakeMsg::Auth(Auth { mac }))).await;
        assert_refusal(refusal_then_close(&mut s).await, Refusal::BadProof);
        handshake_failure_counted(&a, "wrong_proof", before, i as u64 + 1).await;
    }

    // The node's own Challenge reflected back to it as a Hello (its own
    // session and nonce) is recognised as a reflection.
    let mut first = TcpStream::connect(addr).await.expect("connect");
    let hello = Hello { session: run_of("y", 2), min_version: 1, max_version: 1, nonce: fresh_nonce().expect("rng") };
    write_frame(&mut first, &preauth(&HandshakeMsg::Hello(hello))).await;
    let Some(HandshakeMsg::Challenge(challenge)) = read_preauth(&mut first).await else { panic!("a Challenge") };
    let self_before = handshake_failures(&a, "self_connect");
    let mut second = TcpStream::connect(addr).await.expect("connect");
    let mirrored = Hello { session: challenge.session, min_version: 1, max_version: 1, nonce: challenge.nonce };
    write_frame(&mut second, &preauth(&HandshakeMsg::Hello(mirrored))).await;
    assert_refusal(refusal_then_close(&mut second).await, Refusal::Unexpected);
    handshake_failure_counted(&a, "self_connect", self_before, 1).await;
    drop(first);

    let snap = a.inspect();
    assert!(snap.peer("y").is_none(), "{snap:#?}");
    assert_eq!(snap.peer("x").map(|p| p.session.clone()), Some(run_of("x", 1)));
    honest_traffic_flows(&a, &b).await;
    drop(honest);
    cluster.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn version_downgrades_and_tampered_versions_are_refused() {
    let (cluster, a, b) = Cluster::pair(fast_cfg()).await;
    let addr = a.local_addr().expect("addr");
    let key = || AuthKey::from_token(TOKEN.as_bytes());

    // Ranges that share no version with the node's 1..=PROTOCOL_MAX_VERSION,
    // and an empty one.
    let top = PROTOCOL_MAX_VERSION;
    let before = handshake_failures(&a, "incompatible_version");
    let ranges = [(top + 1, top + 3), (0, 0), (1, 0)];
    for (i, (min, max)) in ranges.into_iter().enumerate() {
        let mut s = TcpStream::connect(addr).await.expect("connect");
        let hello =
            Hello { session: run_of("v", 1), min_version: min, max_version: max, nonce: fresh_nonce().expect("rng") };
        write_frame(&mut s, &preauth(&HandshakeMsg::Hello(hello))).await;
        assert_refusal(refusal_then_close(&mut s).await, Refusal::IncompatibleVersion);
        handshake_failure_counted(&a, "incompatible_version", before, i as u64 + 1).await;
    }

    // A man in the middle narrows the initiator's range on the wire
    // (top..=top+1 becomes top..=top). The node picks `top`, a valid choice
    // for the initiator (the best both speak), but the transcripts differ:
    // the initiator's proof does not verify.
    let before = handshake_failures(&a, "wrong_proof");
    let local = Local { min_version: top, max_version: top + 1, ..Local::new(run_of("v", 2), key()) };
    let mut hs = handshake(addr, local, "a", |h| h.max_version = top).await;
    assert!(hs.keys.is_none());
    assert_eq!(hs.challenge.as_ref().map(|c| c.chosen_version), Some(top));
    assert_refusal(hs.refusal, Refusal::BadProof);
    assert_closed_by_node(&mut hs.stream).await;
    handshake_failure_counted(&a, "wrong_proof", before, 1).await;

    // The same with the lower bound rewritten (1..=top sent as 0..=top).
    let mut hs = handshake(addr, Local::new(run_of("v", 3), key()), "a", |h| h.min_version = 0).await;
    assert!(hs.keys.is_none());
    assert_refusal(hs.refusal, Refusal::BadProof);
    assert_closed_by_node(&mut hs.stream).await;
    handshake_failure_counted(&a, "wrong_proof", before, 2).await;

    assert!(a.inspect().peer("v").is_none());
    honest_traffic_flows(&a, &b).await;
    cluster.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_peer_claiming_another_nodes_name() {
    let (cluster, a, b) = Cluster::pair(fast_cfg()).await;
    let addr = a.local_addr().expect("addr");
    let acked_before = a.inspect().peer("b").map_or(0, |p| p.heartbeats_acked);

    // Without the token, even presenting b's exact session id: refused, and
    // b's connection is untouched (its heartbeat count keeps growing; a
    // replaced connection would start again from zero).
    let before = handshake_failures(&a, "wrong_proof");
    for claimed in [b.session().clone(), run_of("b", 99)] {
        let wrong = Local::new(claimed, AuthKey::from_token(b"not-the-secret"));
        let mut hs = handshake(addr, wrong, "a", |_| {}).await;
        assert!(hs.keys.is_none());
        assert_refusal(hs.refusal, Refusal::BadProof);
        assert_closed_by_node(&mut hs.stream).await;
    }
    handshake_failure_counted(&a, "wrong_proof", before, 2).await;
    heartbeats_advance(&a, &b).await;
    let snap = a.inspect();
    let peer = snap.peer("b").expect("b still connected");
    assert_eq!(peer.session, *b.session());
    assert!(peer.heartbeats_acked >= acked_before + 3, "b's connection was replaced: {snap:#?}");
    assert_eq!(snap.counters.sessions_replaced, 0);

    // With the token, a new session claiming "b" is, by design, a restart of
    // b (docs/protocol.md, "Session replacement", rule 2; a token holder is
    // trusted with any name): it replaces b's session and b's connection is
    // closed. The real b then re-dials with its own session, which replaces
    // the impostor in turn, and the impostor's connection is closed.
    let replaced = a.inspect().counters.sessions_replaced;
    let mut impostor = authenticated(addr, run_of("b", 99), "a").await;
    eventually(&a, "the real b is back", |s| {
        s.peer("b").is_some_and(|p| p.session == *b.session()) && s.counters.sessions_replaced >= replaced + 2
    })
    .await;
    assert_closed_by_node(&mut impostor.stream).await;
    honest_traffic_flows(&a, &b).await;
    cluster.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn slow_loris_connections_time_out_and_free_their_slots() {
    const SLOTS: usize = 3;
    let cfg = ClusterConfig {
        handshake_timeout: Duration::from_millis(500),
        hello_timeout: Duration::from_millis(500),
        max_pending_handshakes: SLOTS,
        max_pending_handshakes_per_source: SLOTS,
        ..fast_cfg()
    };
    let (mut cluster, a, b) = Cluster::pair(cfg.clone()).await;
    let addr = a.local_addr().expect("addr");
    let timed_out = handshake_failures(&a, "timed_out");
    let over_capacity = a.inspect().counters.handshake_capacity_exceeded;

    // Each sends one byte of a length prefix, then nothing.
    let opened = Instant::now();
    let mut loris = Vec::new();
    for _ in 0..SLOTS {
        let mut s = TcpStream::connect(addr).await.expect("connect");
        s.write_all(&[0]).await.expect("write");
        loris.push(s);
    }
    // While they hold every handshake slot, one more connection is closed at once.
    let mut extra = TcpStream::connect(addr).await.expect("connect");
    assert_closed_by_node(&mut extra).await;
    eventually(&a, "capacity exceeded counted", |s| s.counters.handshake_capacity_exceeded == over_capacity + 1).await;

    // Each is cut off at the handshake deadline, not before.
    for s in &mut loris {
        assert_closed_by_node(s).await;
    }
    let elapsed = opened.elapsed();
    assert!(elapsed >= Duration::from_millis(400) && elapsed < Duration::from_secs(5), "closed after {elapsed:?}");
    handshake_failure_counted(&a, "timed_out", timed_out, SLOTS as u64).await;

    // The slots are free again: a new honest node joins, and a-b never dropped.
    let c = cluster.start("c", cfg).await;
    connected(&a, &c).await;
    honest_traffic_flows(&a, &b).await;
    assert_eq!(a.inspect().counters.heartbeat_timeouts, 0);
    cluster.shutdown().await;
}

/// The frames a bad frame was followed by in the same write are never
/// read: the connection ends with the bad frame, counted once.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_bad_frame_ends_the_connection_before_the_frames_behind_it() {
    let (cluster, a, b) = Cluster::pair(fast_cfg()).await;
    let addr = a.local_addr().expect("addr");
    let mut x = authenticated(addr, run_of("x", 1), "a").await;
    eventually(&a, "x authenticated", |s| s.peer("x").is_some()).await;
    let (mut sealer, _opener) = x.keys.take().expect("keys");
    let (bad_mac, closed) = (frame_rejections(&a, "bad_mac"), frame_rejections(&a, "closed"));

    // One write: a frame whose MAC is broken, then three sealed heartbeats.
    let mut forged = sealed(&mut sealer, &Envelope::Control(ControlMsg::Heartbeat { sent_at_ms: 1 }));
    *forged.last_mut().expect("a sealed frame ends with its MAC") ^= 1;
    let mut bytes = framed(&forged);
    for at in 2..5 {
        bytes.extend(framed(&sealed(&mut sealer, &Envelope::Control(ControlMsg::Heartbeat { sent_at_ms: at }))));
    }
    x.stream.write_all(&bytes).await.expect("write");
    assert_closed_by_node(&mut x.stream).await;
    eventually(&a, "bad mac counted and x removed", |s| {
        s.counters.frame_rejections.get("bad_mac") == Some(&(bad_mac + 1)) && s.peer("x").is_none()
    })
    .await;
    assert_eq!(frame_rejections(&a, "closed"), closed, "frames behind the bad one were read");
    honest_traffic_flows(&a, &b).await;
    cluster.shutdown().await;
}

/// The frame MAC follows the negotiated version and cannot be swapped on
/// the wire: after a version 4 handshake, a heartbeat sealed with version
/// 3's HMAC under the session's own key ends the connection (`wrong_tag`);
/// a client speaking only version 3 gets a version 3 session whose HMAC
/// frames are read, and a flipped bit in one ends it (`bad_mac`).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_frame_mac_follows_the_version_and_cannot_be_swapped() {
    let (cluster, a, b) = Cluster::pair(fast_cfg()).await;
    let addr = a.local_addr().expect("addr");
    let heartbeat = |at| Envelope::Control(ControlMsg::Heartbeat { sent_at_ms: at });

    let mut x = authenticated(addr, run_of("x", 1), "a").await;
    eventually(&a, "x authenticated", |s| s.peer("x").is_some()).await;
    let keys = x.session_keys.take().expect("keys");
    assert_eq!(keys.mac, FrameMac::Aes256Gmac);
    let wrong_tag = frame_rejections(&a, "wrong_tag");
    let mut hmac = Sealer::with_mac(keys.send, FrameMac::HmacSha256);
    write_frame(&mut x.stream, &sealed(&mut hmac, &heartbeat(1))).await;
    assert_closed_by_node(&mut x.stream).await;
    eventually(&a, "wrong tag counted and x removed", |s| {
        s.counters.frame_rejections.get("wrong_tag") == Some(&(wrong_tag + 1)) && s.peer("x").is_none()
    })
    .await;

    let key = AuthKey::from_token(TOKEN.as_bytes());
    let old = Local { min_version: 1, max_version: 3, ..Local::new(run_of("y", 1), key) };
    let mut y = handshake(addr, old, "a", |_| {}).await;
    let (mut sealer, _opener) = y.keys.take().expect("a version 3 client is accepted");
    assert_eq!(sealer.mac(), FrameMac::HmacSha256);
    assert_eq!(y.challenge.as_ref().map(|c| c.chosen_version), Some(3));
    eventually(&a, "y authenticated at version 3", |s| s.peer("y").is_some_and(|p| p.version == 3)).await;
    let bad_mac = frame_rejections(&a, "bad_mac");
    for at in 0..3 {
        write_frame(&mut y.stream, &sealed(&mut sealer, &heartbeat(at))).await;
    }
    let mut flipped = sealed(&mut sealer, &heartbeat(3));
    flipped[10] ^= 1;
    write_frame(&mut y.stream, &flipped).await;
    assert_closed_by_node(&mut y.stream).await;
    eventually(&a, "bad mac counted and y removed", |s| {
        s.counters.frame_rejections.get("bad_mac") == Some(&(bad_mac + 1)) && s.peer("y").is_none()
    })
    .await;
    honest_traffic_flows(&a, &b).await;
    cluster.shutdown().await;
}

/// A peer's `Goodbye` ends its connection at once, even while the peer
/// keeps the link open and keeps sending heartbeats.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_goodbye_ends_the_connection_while_the_peer_keeps_talking() {
    let (cluster, a, b) = Cluster::pair(fast_cfg()).await;
    let addr = a.local_addr().expect("addr");
    let mut x = authenticated(addr, run_of("x", 1), "a").await;
    eventually(&a, "x authenticated", |s| s.peer("x").is_some()).await;
    let (mut sealer, _opener) = x.keys.take().expect("keys");
    let before = a.inspect().counters;

    write_frame(&mut x.stream, &sealed(&mut sealer, &Envelope::Control(ControlMsg::Goodbye))).await;
    // Heartbeats after the goodbye: an unread connection would stay alive on them.
    let talk = async {
        for at in 0..40 {
            let body = sealed(&mut sealer, &Envelope::Control(ControlMsg::Heartbeat { sent_at_ms: at }));
            if x.stream.write_all(&framed(&body)).await.is_err() {
                return;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    };
    let removed = eventually(&a, "x removed after its goodbye", |s| {
        s.counters.goodbyes_received == before.goodbyes_received + 1 && s.peer("x").is_none()
    });
    tokio::join!(talk, removed);
    assert_eq!(a.inspect().counters.heartbeat_timeouts, before.heartbeat_timeouts, "x was closed as silent");
    honest_traffic_flows(&a, &b).await;
    cluster.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_frame_of_a_replaced_session_is_rejected() {
    let (cluster, a, b) = Cluster::pair(fast_cfg()).await;
    let addr = a.local_addr().expect("addr");
    let replaced = a.inspect().counters.sessions_replaced;

    // Session A of raw client "x", then a new run B (new boot) replaces it.
    let mut old = authenticated(addr, run_of("x", 1), "a").await;
    eventually(&a, "A authenticated", |s| s.peer("x").is_some_and(|p| p.session == run_of("x", 1))).await;
    let (mut old_sealer, _old_opener) = old.keys.take().expect("keys");
    let mut new = authenticated(addr, run_of("x", 2), "a").await;
    eventually(&a, "B replaced A", |s| {
        s.peer("x").is_some_and(|p| p.session == run_of("x", 2)) && s.counters.sessions_replaced == replaced + 1
    })
    .await;
    assert_closed_by_node(&mut old.stream).await;

    // A frame sealed with A's keys (its next sequence number is 0, as B's
    // opener expects) on B's connection: bad MAC, connection closed.
    let bad_mac = frame_rejections(&a, "bad_mac");
    let body = sealed(&mut old_sealer, &Envelope::Control(ControlMsg::Heartbeat { sent_at_ms: 1 }));
    write_frame(&mut new.stream, &body).await;
    assert_closed_by_node(&mut new.stream).await;
    eventually(&a, "bad mac counted", |s| s.counters.frame_rejections.get("bad_mac") == Some(&(bad_mac + 1))).await;
    eventually(&a, "x removed", |s| s.peer("x").is_none()).await;
    honest_traffic_flows(&a, &b).await;
    cluster.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn truncated_empty_and_oversized_frames_before_auth_are_closed_and_counted() {
    let cfg = ClusterConfig { preauth_max_frame_bytes: 1024, ..fast_cfg() };
    let (cluster, a, b) = Cluster::pair(cfg).await;
    let addr = a.local_addr().expect("addr");
    let tcp = || cluster.overlay.stats();
    let link_closed = handshake_failures(&a, "link_closed");

    // A frame cut short, then the client closes its side.
    let truncated = tcp().truncated_frames;
    let mut s = TcpStream::connect(addr).await.expect("connect");
    s.write_all(&[0, 0, 0, 40, 0x01, 0x00, 0x01]).await.expect("write");
    s.shutdown().await.expect("shutdown");
    assert_closed_by_node(&mut s).await;
    handshake_failure_counted(&a, "link_closed", link_closed, 1).await;
    tcp_eventually(&cluster.overlay, "truncated", |t| t.truncated_frames == truncated + 1).await;

    // A zero-length frame.
    let decode_errors = tcp().decode_errors;
    let mut s = TcpStream::connect(addr).await.expect("connect");
    s.write_all(&[0, 0, 0, 0]).await.expect("write");
    assert_closed_by_node(&mut s).await;
    handshake_failure_counted(&a, "link_closed", link_closed, 2).await;
    tcp_eventually(&cluster.overlay, "decode error", |t| t.decode_errors == decode_errors + 1).await;

    // Over the overlay's initial pre-authentication limit (4 KiB), sent at once.
    let mut s = TcpStream::connect(addr).await.expect("connect");
    let mut big = framed(&vec![0x01; 4097]);
    big.truncate(1024);
    s.write_all(&big).await.expect("write");
    assert_closed_by_node(&mut s).await;
    handshake_failure_counted(&a, "link_closed", link_closed, 3).await;
    tcp_eventually(&cluster.overlay, "decode error", |t| t.decode_errors == decode_errors + 2).await;

    // Over the node's configured limit (1 KiB) but under the overlay's:
    // sent after the Challenge, once the node has certainly applied it.
    let mut s = TcpStream::connect(addr).await.expect("connect");
    let hello = Hello { session: run_of("z", 1), min_version: 1, max_version: 1, nonce: fresh_nonce().expect("rng") };
    write_frame(&mut s, &preauth(&HandshakeMsg::Hello(hello))).await;
    let Some(HandshakeMsg::Challenge(_)) = read_preauth(&mut s).await else { panic!("a Challenge") };
    let _ = s.write_all(&framed(&vec![0x01; 2000])).await;
    assert_closed_by_node(&mut s).await;
    handshake_failure_counted(&a, "link_closed", link_closed, 4).await;
    tcp_eventually(&cluster.overlay, "decode error", |t| t.decode_errors == decode_errors + 3).await;

    assert!(a.inspect().peer("z").is_none());
    honest_traffic_flows(&a, &b).await;
    cluster.shutdown().await;
}

/// The largest send buffer TCP autotuning may give a socket (Linux's
/// `tcp_wmem` maximum), or 4 MiB (the usual value) if unknown.
fn max_send_buffer() -> u64 {
    std::fs::read_to_string("/proc/sys/net/ipv4/tcp_wmem")
        .ok()
        .and_then(|s| s.split_whitespace().nth(2)?.parse().ok())
        .unwrap_or(4 << 20)
}

/// The process's resident set size in KiB (Linux), if known.
fn rss_kib() -> Option<u64> {
    proc_status_kib("VmRSS:")
}

/// A `/proc/self/status` field in KiB (Linux), if known.
fn proc_status_kib(field: &str) -> Option<u64> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let line = status.lines().find(|l| l.starts_with(field))?;
    line.split_whitespace().nth(1)?.parse().ok()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_request_flood_from_one_peer_stays_bounded() {
    // More refusals (≈ 50 bytes each) than the kernel can buffer for an
    // unread connection (up to `tcp_wmem`'s maximum send buffer), three
    // times over: the node's own bounded queues must overflow.
    let frames = (3 * max_send_buffer() / 50).clamp(50_000, 400_000);
    // Sealing that many frames (below) takes seconds in a debug build, with
    // the flooding peer silent meanwhile: it must not time out first.
    let (cluster, a, b) = Cluster::pair(ClusterConfig { node_ttl: Duration::from_secs(60), ..fast_cfg() }).await;
    let addr = a.local_addr().expect("addr");
    let rss_before = rss_kib();

    // A raw client with a small receive buffer, so the node's replies back up
    // quickly once the client stops reading.
    let socket = TcpSocket::new_v4().expect("socket");
    socket.set_recv_buffer_size(4096).expect("rcvbuf");
    let mut stream = socket.connect(addr).await.expect("connect");
    let local = Local::new(run_of("flood", 1), AuthKey::from_token(TOKEN.as_bytes()));
    let (mut machine, hello) =
        Initiator::new(local, NodeId::new("a"), fresh_nonce().expect("rng"), Instant::now() + BOUND).expect("init");
    write_frame(&mut stream, &preauth(&hello)).await;
    let mut sealer = loop {
        let msg = read_preauth(&mut stream).await.expect("handshake message");
        let step = machine.on_message(msg, Instant::now()).expect("handshake step");
        if let Some(msg) = step.send {
            write_frame(&mut stream, &preauth(&msg)).await;
        }
        if let Some(est) = step.established {
            break est.keys.into_parts().0;
        }
    };
    eventually(&a, "flood authenticated", |s| s.peer("flood").is_some()).await;
    let counters = a.inspect().counters;
    let rejected_before = counters.data_rejected_no_registry;
    let dropped_before = counters.dropped.get("data_queue_full").copied().unwrap_or(0);

    // Every Ask, sealed, in one buffer; written as fast as the node takes it,
    // while the honest pair must keep heartbeating.
    let mut flood = Vec::new();
    for request_id in 0..frames {
        let ask = DataMsg::Ask {
            request_id,
            registry: "accounts".into(),
            shard: 3,
            epoch: 1,
            key: "alice".into(),
            payload: vec![0xAB; 16],
        };
        flood.extend_from_slice(&framed(&sealed(&mut sealer, &Envelope::Data(ask))));
    }
    let started = Instant::now();
    let (written, ()) = tokio::join!(timeout(BOUND * 3, stream.write_all(&flood)), async {
        heartbeats_advance(&a, &b).await;
        heartbeats_advance(&b, &a).await;
    });
    written.expect("the node keeps reading").expect("write");
    let wrote_in = started.elapsed();
    drop(flood);

    // The node processed (counted) every request; the replies it could not
    // queue were dropped and counted, or the connection was closed.
    eventually(&a, "every ask counted", |s| s.counters.data_rejected_no_registry >= rejected_before + frames).await;
    let counters = a.inspect().counters;
    let dropped = counters.dropped.get("data_queue_full").copied().unwrap_or(0) - dropped_before;
    let rss_after = rss_kib();
    println!(
        "flood: {frames} asks written in {wrote_in:?}; replies dropped (data_queue_full): {dropped}; \
         VmRSS before {rss_before:?} KiB, after {rss_after:?} KiB (peak VmHWM {:?} KiB)",
        proc_status_kib("VmHWM:")
    );
    assert!(
        dropped > 0 || a.inspect().peer("flood").is_none(),
        "an unread flood neither dropped replies nor closed the connection: {counters:#?}"
    );
    if let (Some(before), Some(after)) = (rss_before, rss_after) {
        assert!(after.saturating_sub(before) < 200 * 1024, "RSS grew from {before} KiB to {after} KiB");
    }
    honest_traffic_flows(&a, &b).await;
    drop(stream);
    cluster.shutdown().await;
}
