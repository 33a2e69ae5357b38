//! Helpers shared by the cluster integration tests over TCP loopback: a
//! fast-ticking config, bounded waits on `inspect()`, and a raw client's
//! frame reading and writing.

use std::time::Duration;

use axactor_cluster::session::Sealer;
use axactor_cluster::wire::{Envelope, encode_envelope};
use axactor_cluster::{ClusterConfig, ClusterInspect, ClusterNode};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::time::{Instant, timeout};

/// The shared token of the honest nodes.
pub const TOKEN: &str = "axactor-tests-shared-token-5c0e8b1f9a";
/// Upper bound of every wait in these tests.
pub const BOUND: Duration = Duration::from_secs(10);

/// A secure config with fast heartbeats and re-dials, so tests converge in
/// well under a second of real time.
pub fn fast_cfg() -> ClusterConfig {
    ClusterConfig {
        auth_token: Some(TOKEN.into()),
        heartbeat_interval: Duration::from_millis(100),
        renew_interval: Duration::from_millis(300),
        lease_ttl: Duration::from_secs(1),
        // 300 ms + 500 ms + 50 ms drift margin < 1 s.
        lease_store_timeout: Duration::from_millis(500),
        node_ttl: Duration::from_secs(2),
        reconnect_min: Duration::from_millis(20),
        reconnect_max: Duration::from_millis(200),
        ..ClusterConfig::default()
    }
}

/// Waits (at most [`BOUND`]) until `check` holds for `node`'s snapshot.
///
/// # Panics
/// If it does not within the bound: the test fails with the snapshot.
pub async fn eventually(node: &ClusterNode, what: &str, check: impl Fn(&ClusterInspect) -> bool) {
    let deadline = Instant::now() + BOUND;
    loop {
        let snap = node.inspect();
        if check(&snap) {
            return;
        }
        assert!(Instant::now() < deadline, "{}: {what}: not reached: {snap:#?}", node.id());
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// Waits until `a` and `b` hold each other's current session, at the newest protocol version.
pub async fn connected(a: &ClusterNode, b: &ClusterNode) {
    let (a_name, b_name) = (a.id().to_string(), b.id().to_string());
    let (a_session, b_session) = (a.session().clone(), b.session().clone());
    eventually(a, "peer authenticated", |s| {
        s.peer(&b_name)
            .is_some_and(|p| p.session == b_session && p.version == axactor_cluster::wire::hello::PROTOCOL_MAX_VERSION)
    })
    .await;
    eventually(b, "peer authenticated", |s| {
        s.peer(&a_name)
            .is_some_and(|p| p.session == a_session && p.version == axactor_cluster::wire::hello::PROTOCOL_MAX_VERSION)
    })
    .await;
}

/// Waits until `a` has seen at least 3 more acknowledged heartbeats from `b`.
pub async fn heartbeats_advance(a: &ClusterNode, b: &ClusterNode) {
    let name = b.id().to_string();
    let before = a.inspect().peer(&name).map_or(0, |p| p.heartbeats_acked);
    eventually(a, "heartbeats advance", |s| s.peer(&name).is_some_and(|p| p.heartbeats_acked >= before + 3)).await;
}

/// Reads until the node closes the connection.
///
/// # Panics
/// If the node keeps it open for [`BOUND`].
pub async fn assert_closed_by_node(stream: &mut TcpStream) {
    let mut buf = [0u8; 4096];
    let closed = timeout(BOUND, async {
        loop {
            match stream.read(&mut buf).await {
                Ok(0) | Err(_) => return,
                Ok(_) => {} // a Refuse, or heartbeats
            }
        }
    })
    .await;
    assert!(closed.is_ok(), "the node kept the connection open");
}

/// `body` with its `u32` big-endian length prefix.
pub fn framed(body: &[u8]) -> Vec<u8> {
    let len = u32::try_from(body.len()).expect("small frame");
    let mut frame = len.to_be_bytes().to_vec();
    frame.extend_from_slice(body);
    frame
}

/// Writes one frame.
pub async fn write_frame(stream: &mut TcpStream, body: &[u8]) {
    stream.write_all(&framed(body)).await.expect("write");
}

/// The next frame's body, or `None` once the node has closed the stream.
pub async fn read_frame(stream: &mut TcpStream) -> Option<Vec<u8>> {
    let mut len = [0u8; 4];
    timeout(BOUND, stream.read_exact(&mut len)).await.expect("frame in time").ok()?;
    let mut body = vec![0u8; u32::from_be_bytes(len) as usize];
    timeout(BOUND, stream.read_exact(&mut body)).await.expect("frame in time").ok()?;
    Some(body)
}

/// `env` encoded and sealed as the next frame body of `sealer`'s session.
pub fn sealed(sealer: &mut Sealer, env: &Envelope) -> Vec<u8> {
    let mut payload = Vec::new();
    encode_envelope(env, &mut payload).expect("encode");
    let mut body = Vec::new();
    sealer.seal(&payload, &mut body).expect("seal");
    body
}
