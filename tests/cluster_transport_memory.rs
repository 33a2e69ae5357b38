//! The cluster node over the in-memory overlay, on tokio's paused clock:
//! nodes with one token authenticate each other, a wrong-token node never
//! becomes a peer (and is counted), the secure default refuses to start
//! without a token, a restarted node is a new session, and shutdown removes
//! a node from its peers promptly.
//!
//! Convergence is awaited by checking `inspect()` at virtual-time steps with
//! a bound, so a node that never converges fails the test instead of
//! hanging it.

use std::sync::Arc;
use std::time::Duration;

use axactor_cluster::{
    ClusterConfig, ClusterError, ClusterInspect, ClusterNode, InMemoryOverlay, LeaseStore, MemoryLeaseStore, NodeId,
    PeerState,
};

/// The cluster's token (strong enough for the default checks).
const SECRET: &str = "transport-memory-test-token-7d2e91c4";
/// Another valid token: a node holding it belongs to another cluster.
const OTHER_SECRET: &str = "not-the-cluster-token-0b83f5a6e12d";

fn cfg(token: &str) -> ClusterConfig {
    ClusterConfig { auth_token: Some(token.into()), ..ClusterConfig::default() }
}

async fn start(name: &str, store: &Arc<MemoryLeaseStore>, net: &InMemoryOverlay, cfg: ClusterConfig) -> ClusterNode {
    let store: Arc<dyn LeaseStore> = store.clone();
    ClusterNode::start(NodeId::new(name), store, net.clone(), cfg).await.expect("node starts")
}

/// Waits (virtual time, at most `bound`) until `check` holds for `node`.
async fn eventually(node: &ClusterNode, bound: Duration, what: &str, check: impl Fn(&ClusterInspect) -> bool) {
    let deadline = tokio::time::Instant::now() + bound;
    loop {
        let snap = node.inspect();
        if check(&snap) {
            return;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "{}: {what}: not reached within {bound:?}: {snap:#?}",
            node.id()
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// Every node sees exactly the others, authenticated, at the newest protocol version.
async fn all_connected(nodes: &[&ClusterNode]) {
    for node in nodes {
        let others: Vec<String> = nodes.iter().filter(|n| n.id() != node.id()).map(|n| n.id().to_string()).collect();
        let sessions: Vec<_> = nodes.iter().filter(|n| n.id() != node.id()).map(|n| n.session().clone()).collect();
        eventually(node, Duration::from_secs(10), "all peers authenticated", |s| {
            s.peers.iter().map(|p| p.name.to_string()).collect::<Vec<_>>() == others
                && s.peers.iter().map(|p| p.session.clone()).collect::<Vec<_>>() == sessions
                && s.peers.iter().all(|p| {
                    p.state == PeerState::Authenticated
                        && p.version == axactor_cluster::wire::hello::PROTOCOL_MAX_VERSION
                })
        })
        .await;
    }
}

#[tokio::test(start_paused = true)]
async fn two_nodes_with_one_token_authenticate_each_other() {
    let (net, store) = (InMemoryOverlay::new(), Arc::new(MemoryLeaseStore::new()));
    let a = start("a", &store, &net, cfg(SECRET)).await;
    let b = start("b", &store, &net, cfg(SECRET)).await;
    all_connected(&[&a, &b]).await;
    // Heartbeats flow: acknowledged ones keep growing.
    let acked = |n: &ClusterNode, peer: &str| n.inspect().peer(peer).map_or(0, |p| p.heartbeats_acked);
    let before = acked(&a, "b");
    eventually(&a, Duration::from_secs(5), "heartbeats acked", |s| {
        s.peer("b").is_some_and(|p| p.heartbeats_acked > before + 2 && p.rtt.is_some())
    })
    .await;
    assert!(acked(&b, "a") > 0);
    assert!(a.inspect().counters.handshake_failures.is_empty(), "{:?}", a.inspect().counters);
    a.shutdown().await;
    b.shutdown().await;
}

#[tokio::test(start_paused = true)]
async fn three_nodes_form_a_full_mesh() {
    let (net, store) = (InMemoryOverlay::new(), Arc::new(MemoryLeaseStore::new()));
    let a = start("a", &store, &net, cfg(SECRET)).await;
    let b = start("b", &store, &net, cfg(SECRET)).await;
    let c = start("c", &store, &net, cfg(SECRET)).await;
    all_connected(&[&a, &b, &c]).await;
    // Stays a mesh: no churn over many heartbeat intervals.
    tokio::time::sleep(Duration::from_secs(30)).await;
    all_connected(&[&a, &b, &c]).await;
    for n in [&a, &b, &c] {
        let counters = n.inspect().counters;
        assert_eq!(counters.heartbeat_timeouts, 0, "{counters:?}");
        assert!(counters.frame_rejections.is_empty(), "{counters:?}");
        n.shutdown().await;
    }
}

#[tokio::test(start_paused = true)]
async fn a_wrong_token_node_never_becomes_a_peer() {
    let (net, store) = (InMemoryOverlay::new(), Arc::new(MemoryLeaseStore::new()));
    let a = start("a", &store, &net, cfg(SECRET)).await;
    let b = start("b", &store, &net, cfg(SECRET)).await;
    let w = start("w", &store, &net, cfg(OTHER_SECRET)).await;
    all_connected(&[&a, &b]).await;
    for n in [&a, &b] {
        eventually(n, Duration::from_secs(10), "wrong_proof counted", |s| {
            s.counters.handshake_failures.get("wrong_proof").copied().unwrap_or(0) > 0
        })
        .await;
    }
    let first = a.inspect().counters.handshake_failures.get("wrong_proof").copied().unwrap_or(0);
    // W keeps trying (with backoff); it never gets in, and a-b stay connected.
    tokio::time::sleep(Duration::from_secs(20)).await;
    let snap = a.inspect();
    assert!(snap.counters.handshake_failures.get("wrong_proof").copied().unwrap_or(0) > first, "{snap:#?}");
    assert!(snap.peer("w").is_none() && b.inspect().peer("w").is_none());
    assert!(w.inspect().peers.is_empty(), "{:#?}", w.inspect());
    all_connected(&[&a, &b]).await;
    assert!(snap.peer("b").is_some_and(|p| p.last_seen <= Duration::from_secs(2)), "{snap:#?}");
    for n in [&a, &b, &w] {
        n.shutdown().await;
    }
}

#[tokio::test(start_paused = true)]
async fn no_token_is_refused_unless_insecure_is_allowed() {
    let (net, store) = (InMemoryOverlay::new(), Arc::new(MemoryLeaseStore::new()));
    let store_dyn: Arc<dyn LeaseStore> = store.clone();
    let refused = ClusterNode::start(NodeId::new("a"), store_dyn, net.clone(), ClusterConfig::default()).await;
    assert!(matches!(refused, Err(ClusterError::Config(p)) if p.field == "auth_token"), "{refused:?}");

    let insecure = ClusterConfig { allow_insecure_auth: true, ..ClusterConfig::default() };
    let a = start("a", &store, &net, insecure.clone()).await;
    let b = start("b", &store, &net, insecure).await;
    all_connected(&[&a, &b]).await;
    // A node with a token never accepts an insecure one (different keys).
    let t = start("t", &store, &net, cfg(SECRET)).await;
    eventually(&t, Duration::from_secs(10), "insecure peers refused", |s| {
        s.counters.handshake_failures.values().sum::<u64>() >= 2
    })
    .await;
    assert!(t.inspect().peers.is_empty(), "{:#?}", t.inspect());
    for n in [&a, &b, &t] {
        n.shutdown().await;
    }
}

#[tokio::test(start_paused = true)]
async fn a_restarted_node_is_a_new_session() {
    let (net, store) = (InMemoryOverlay::new(), Arc::new(MemoryLeaseStore::new()));
    let a = start("a", &store, &net, cfg(SECRET)).await;
    let b = start("b", &store, &net, cfg(SECRET)).await;
    let c1 = start("c", &store, &net, cfg(SECRET)).await;
    all_connected(&[&a, &b, &c1]).await;
    let old = c1.session().clone();
    c1.shutdown().await;
    let c2 = start("c", &store, &net, cfg(SECRET)).await;
    assert_ne!(c2.session(), &old);
    assert_eq!(c2.session().node, old.node);
    all_connected(&[&a, &b, &c2]).await;
    for n in [&a, &b] {
        assert_eq!(n.inspect().peer("c").map(|p| p.session.clone()), Some(c2.session().clone()));
    }
    for n in [&a, &b, &c2] {
        n.shutdown().await;
    }
}

#[tokio::test(start_paused = true)]
async fn shutdown_removes_the_node_from_its_peers_promptly() {
    let (net, store) = (InMemoryOverlay::new(), Arc::new(MemoryLeaseStore::new()));
    let a = start("a", &store, &net, cfg(SECRET)).await;
    let b = start("b", &store, &net, cfg(SECRET)).await;
    all_connected(&[&a, &b]).await;
    let started = tokio::time::Instant::now();
    b.shutdown().await;
    assert!(started.elapsed() < Duration::from_secs(2), "shutdown took {:?}", started.elapsed());
    // Goodbye closes the session at once, well before node_ttl.
    eventually(&a, Duration::from_millis(500), "b gone", |s| s.peer("b").is_none()).await;
    assert_eq!(a.inspect().counters.goodbyes_received, 1);
    assert_eq!(store.members().await.expect("members"), vec![a.session().clone()]);
    // And b is not re-dialled: it left the membership.
    tokio::time::sleep(Duration::from_secs(5)).await;
    assert!(a.inspect().peers.is_empty());
    a.shutdown().await;
}

#[tokio::test(start_paused = true)]
async fn a_silent_peer_is_closed_after_node_ttl_and_reconnects_after_healing() {
    let (net, store) = (InMemoryOverlay::new(), Arc::new(MemoryLeaseStore::new()));
    let a = start("a", &store, &net, cfg(SECRET)).await;
    let b = start("b", &store, &net, cfg(SECRET)).await;
    all_connected(&[&a, &b]).await;
    net.partition("a", "b");
    let cut = tokio::time::Instant::now();
    let ttl = ClusterConfig::default().node_ttl;
    for n in [&a, &b] {
        eventually(n, ttl * 2, "silent peer closed", |s| s.peers.is_empty() && s.counters.heartbeat_timeouts == 1)
            .await;
    }
    // Not before node_ttl: heartbeats were merely lost, not refused.
    assert!(cut.elapsed() >= ttl, "closed after {:?}", cut.elapsed());
    // Re-dials fail while the partition lasts (with backoff), then succeed.
    tokio::time::sleep(Duration::from_secs(3)).await;
    assert!(a.inspect().counters.dial_failures > 0, "{:#?}", a.inspect());
    net.heal("a", "b");
    all_connected(&[&a, &b]).await;
    a.shutdown().await;
    b.shutdown().await;
}

#[tokio::test(start_paused = true)]
async fn crossed_dials_settle_on_one_connection() {
    let (net, store) = (InMemoryOverlay::new(), Arc::new(MemoryLeaseStore::new()));
    // a waits for b's held Hello for the whole handshake deadline, not
    // just `hello_timeout`.
    let patient = ClusterConfig { hello_timeout: ClusterConfig::default().handshake_timeout, ..cfg(SECRET) };
    let a = start("a", &store, &net, patient.clone()).await;
    // b dials a at once, but its frames are held: a sees no session from b
    // and dials b on its next membership tick, so both dials are in flight.
    net.hold("b", "a");
    let b = start("b", &store, &net, patient).await;
    tokio::time::sleep(Duration::from_secs(3)).await;
    net.release("b", "a");
    all_connected(&[&a, &b]).await;
    let dup = |n: &ClusterNode| n.inspect().counters.duplicate_connections;
    assert!(dup(&a) + dup(&b) >= 1, "both dials completed and one was dropped as a duplicate");
    // The survivor is stable: no further replacements, heartbeats keep flowing.
    let (replaced, acked) = (a.inspect().counters.sessions_replaced, a.inspect().peer("b").map(|p| p.heartbeats_acked));
    tokio::time::sleep(Duration::from_secs(10)).await;
    assert_eq!(a.inspect().counters.sessions_replaced, replaced);
    assert_eq!(a.inspect().peers.len(), 1);
    assert!(a.inspect().peer("b").map(|p| p.heartbeats_acked) > acked);
    a.shutdown().await;
    b.shutdown().await;
}
