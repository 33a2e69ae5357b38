//! The cluster node over TCP on loopback (real clock, ephemeral ports): two
//! nodes authenticate; raw clients sending garbage, an absurd length prefix,
//! or a sealed-looking frame before the handshake are disconnected and
//! counted; an authenticated raw client gets data-plane requests refused
//! (no registry yet) and is disconnected on a tampered or reordered frame;
//! through all of it the two honest nodes keep exchanging heartbeats.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use axactor_cluster::handshake::{AuthKey, Initiator, Local, fresh_nonce};
use axactor_cluster::session::{Opener, Sealer};
use axactor_cluster::wire::{
    Body, ControlMsg, DataMsg, Envelope, Rejection, decode_body, decode_envelope, encode_preauth,
};
use axactor_cluster::{ClusterConfig, ClusterNode, LeaseStore, MemoryLeaseStore, NodeId, SessionId, TcpOverlay};
use axactor_tests::cluster::{
    BOUND, TOKEN, assert_closed_by_node, connected, eventually, fast_cfg, heartbeats_advance, read_frame, sealed,
    write_frame,
};
use tokio::io::AsyncWriteExt;
use tokio::net::TcpStream;
use tokio::time::{Instant, timeout};

/// Starts `names` on one overlay whose address book starts at port 0; each
/// node's bound address is published to the shared book after it starts.
async fn start_nodes(names: &[&str]) -> Vec<ClusterNode> {
    let any: SocketAddr = "127.0.0.1:0".parse().expect("addr");
    let book: HashMap<String, SocketAddr> = names.iter().map(|n| (n.to_string(), any)).collect();
    let overlay = TcpOverlay::new(book);
    let store: Arc<dyn LeaseStore> = Arc::new(MemoryLeaseStore::new());
    let mut nodes = Vec::new();
    for name in names {
        let node =
            ClusterNode::start(NodeId::new(*name), store.clone(), overlay.clone(), fast_cfg()).await.expect("start");
        overlay.insert_address(*name, node.local_addr().expect("tcp listens on an address"));
        nodes.push(node);
    }
    nodes
}

/// A raw client that runs the real handshake as `name` against `peer`.
async fn raw_session(addr: SocketAddr, name: &str, peer: &str) -> (TcpStream, Sealer, Opener) {
    raw_session_of(addr, SessionId { node: NodeId::new(name), boot: 7, counter: 0 }, peer).await
}

/// As [`raw_session`], with an explicit session id.
async fn raw_session_of(addr: SocketAddr, me: SessionId, peer: &str) -> (TcpStream, Sealer, Opener) {
    let mut stream = TcpStream::connect(addr).await.expect("connect");
    let local = Local::new(me, AuthKey::from_token(TOKEN.as_bytes()));
    let deadline = Instant::now() + BOUND;
    let (mut machine, hello) =
        Initiator::new(local, NodeId::new(peer), fresh_nonce().expect("rng"), deadline).expect("initiator");
    let mut out = Vec::new();
    encode_preauth(&hello, &mut out).expect("encode");
    write_frame(&mut stream, &out).await;
    loop {
        let body = read_frame(&mut stream).await.expect("frame");
        let Ok(Body::PreAuth(msg)) = decode_body(&body) else { panic!("expected a handshake message") };
        let step = machine.on_message(msg, Instant::now()).expect("handshake step");
        if let Some(msg) = step.send {
            out.clear();
            encode_preauth(&msg, &mut out).expect("encode");
            write_frame(&mut stream, &out).await;
        }
        if let Some(est) = step.established {
            let (sealer, opener) = est.keys.into_parts();
            return (stream, sealer, opener);
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_nodes_authenticate_over_loopback() {
    let nodes = start_nodes(&["a", "b"]).await;
    let (a, b) = (&nodes[0], &nodes[1]);
    connected(a, b).await;
    heartbeats_advance(a, b).await;
    heartbeats_advance(b, a).await;
    assert!(a.inspect().peer("b").is_some_and(|p| p.rtt.is_some()));
    for n in &nodes {
        n.shutdown().await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_input_before_the_handshake_is_dropped_and_counted() {
    let nodes = start_nodes(&["a", "b"]).await;
    let (a, b) = (&nodes[0], &nodes[1]);
    connected(a, b).await;
    let addr = a.local_addr().expect("addr");

    // An unknown body tag.
    let mut s = TcpStream::connect(addr).await.expect("connect");
    s.write_all(&[0, 0, 0, 5, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF]).await.expect("write");
    assert_closed_by_node(&mut s).await;
    eventually(a, "unknown tag counted", |s| s.counters.handshake_failures.get("unknown_tag") == Some(&1)).await;

    // An absurd length prefix: the overlay refuses it before allocating and
    // closes the link; the node counts the handshake that never happened.
    let mut s = TcpStream::connect(addr).await.expect("connect");
    s.write_all(&[0xFF, 0xFF, 0xFF, 0xFF, 1, 2, 3]).await.expect("write");
    assert_closed_by_node(&mut s).await;
    eventually(a, "link closed counted", |s| s.counters.handshake_failures.get("link_closed") == Some(&1)).await;

    // A sealed-looking frame before any handshake.
    let mut s = TcpStream::connect(addr).await.expect("connect");
    let mut body = vec![0x02];
    body.extend_from_slice(&0u64.to_be_bytes());
    body.extend_from_slice(&[0xAB; 8]);
    body.extend_from_slice(&[0u8; 32]);
    write_frame(&mut s, &body).await;
    assert_closed_by_node(&mut s).await;
    eventually(a, "pre-auth sealed frame counted", |s| {
        s.counters.preauth_sealed_frames == 1 && s.counters.handshake_failures.get("unexpected") == Some(&1)
    })
    .await;

    // A client that connects and says nothing is cut off at the deadline.
    // (Covered by the handshake timeout; not waited for here: 5 s default.)

    let snap = a.inspect();
    assert_eq!(snap.peers.len(), 1, "{snap:#?}");
    heartbeats_advance(a, b).await;
    heartbeats_advance(b, a).await;
    for n in &nodes {
        n.shutdown().await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_authenticated_client_is_refused_data_and_cut_off_on_a_bad_frame() {
    let nodes = start_nodes(&["a", "b"]).await;
    let (a, b) = (&nodes[0], &nodes[1]);
    connected(a, b).await;
    let addr = a.local_addr().expect("addr");

    // A real handshake: the client becomes an authenticated peer.
    let (mut s, mut sealer, mut opener) = raw_session(addr, "x1", "a").await;
    eventually(a, "x1 authenticated", |s| s.peer("x1").is_some()).await;
    let ask = DataMsg::Ask {
        request_id: 42,
        registry: "accounts".into(),
        shard: 3,
        epoch: 1,
        key: "alice".into(),
        payload: vec![1, 2, 3],
    };
    write_frame(&mut s, &sealed(&mut sealer, &Envelope::Data(ask))).await;
    let rejected = timeout(BOUND, async {
        loop {
            let body = read_frame(&mut s).await.expect("frame");
            let Ok(Body::Sealed { kind, seq, payload, mac }) = decode_body(&body) else {
                panic!("expected a sealed frame")
            };
            opener.open_parts(kind, seq, payload, mac).expect("authentic frame from the node");
            if let Envelope::Data(DataMsg::Rejected { request_id, reason }) = decode_envelope(payload).expect("env") {
                return (request_id, reason);
            }
        }
    })
    .await
    .expect("a rejection in time");
    assert_eq!(rejected, (42, Rejection::NotOwner { owner_hint: None }));
    assert_eq!(a.inspect().counters.data_rejected_no_registry, 1);

    // A flipped bit in the payload: bad MAC, connection closed.
    let mut body = sealed(&mut sealer, &Envelope::Control(ControlMsg::Heartbeat { sent_at_ms: 1 }));
    body[10] ^= 0x01;
    write_frame(&mut s, &body).await;
    assert_closed_by_node(&mut s).await;
    eventually(a, "bad mac counted", |s| s.counters.frame_rejections.get("bad_mac") == Some(&1)).await;
    eventually(a, "x1 removed", |s| s.peer("x1").is_none()).await;

    // Frames out of order (a replay or reorder): closed too.
    let (mut s, mut sealer, _opener) = raw_session(addr, "x2", "a").await;
    let first = sealed(&mut sealer, &Envelope::Control(ControlMsg::Heartbeat { sent_at_ms: 1 }));
    let second = sealed(&mut sealer, &Envelope::Control(ControlMsg::Heartbeat { sent_at_ms: 2 }));
    write_frame(&mut s, &second).await;
    write_frame(&mut s, &first).await;
    assert_closed_by_node(&mut s).await;
    eventually(a, "reorder counted", |s| s.counters.frame_rejections.get("out_of_sequence") == Some(&1)).await;
    // Counted as the reader ends; the peer entry goes just after.
    eventually(a, "x2 removed", |s| s.peer("x2").is_none()).await;

    assert_eq!(a.inspect().peers.iter().map(|p| p.name.to_string()).collect::<Vec<_>>(), ["b"]);
    heartbeats_advance(a, b).await;
    heartbeats_advance(b, a).await;
    for n in &nodes {
        n.shutdown().await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pending_handshakes_are_capped_and_time_out() {
    let any: SocketAddr = "127.0.0.1:0".parse().expect("addr");
    let overlay = TcpOverlay::new(HashMap::from([("a".to_string(), any)]));
    let store: Arc<dyn LeaseStore> = Arc::new(MemoryLeaseStore::new());
    let cfg = ClusterConfig {
        max_pending_handshakes: 1,
        max_pending_handshakes_per_source: 1,
        handshake_timeout: Duration::from_millis(500),
        hello_timeout: Duration::from_millis(500),
        ..fast_cfg()
    };
    let a = ClusterNode::start(NodeId::new("a"), store, overlay, cfg).await.expect("start");
    let addr = a.local_addr().expect("addr");

    // The first silent client holds the only handshake slot...
    let mut silent = TcpStream::connect(addr).await.expect("connect");
    let opened = Instant::now();
    // ...so the next one is closed at once and counted.
    let mut extra = TcpStream::connect(addr).await.expect("connect");
    assert_closed_by_node(&mut extra).await;
    assert_eq!(a.inspect().counters.handshake_capacity_exceeded, 1);
    // The silent one is cut off at the handshake deadline.
    assert_closed_by_node(&mut silent).await;
    assert!(opened.elapsed() >= Duration::from_millis(400), "closed after {:?}", opened.elapsed());
    eventually(&a, "timeout counted", |s| s.counters.handshake_failures.get("timed_out") == Some(&1)).await;
    // The slot is free again: a real handshake succeeds.
    let (_s, _sealer, _opener) = raw_session(addr, "x", "a").await;
    eventually(&a, "x authenticated", |s| s.peer("x").is_some()).await;
    a.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_new_session_of_a_known_name_replaces_the_old_one() {
    let nodes = start_nodes(&["a"]).await;
    let a = &nodes[0];
    let addr = a.local_addr().expect("addr");
    let run = |boot| SessionId { node: NodeId::new("x"), boot, counter: 0 };
    let (mut old, _sealer, _opener) = raw_session_of(addr, run(1), "a").await;
    eventually(a, "first run authenticated", |s| s.peer("x").is_some_and(|p| p.session == run(1))).await;
    let (_new, _sealer2, _opener2) = raw_session_of(addr, run(2), "a").await;
    eventually(a, "second run replaced the first", |s| {
        s.peer("x").is_some_and(|p| p.session == run(2)) && s.counters.sessions_replaced == 1
    })
    .await;
    // The old run's connection is closed; the new one stays.
    assert_closed_by_node(&mut old).await;
    assert_eq!(a.inspect().peer("x").map(|p| p.session.clone()), Some(run(2)));
    a.shutdown().await;
}
