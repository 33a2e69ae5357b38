//! Pre-authentication exhaustion over TCP on loopback (real clock,
//! ephemeral ports): a flood of connections that never send a Hello, all
//! from one source address (`127.0.0.2`, bound explicitly: on Linux the
//! whole of `127.0.0.0/8` is loopback), against a node with the default
//! handshake limits (64 pending handshakes, 5 s each). Each flood
//! connection that is closed reconnects at once, so without a per-source
//! limit the flood holds every pending-handshake slot and an honest node
//! (from `127.0.0.1`) is refused at every attempt.
//!
//! With `max_pending_handshakes_per_source` the flood holds at most that
//! many slots (the rest are refused at once and counted), `hello_timeout`
//! frees the slots it holds after 1 s instead of 5, and the honest node
//! connects and exchanges asks while the flood goes on.
#![allow(missing_docs)]

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::Duration;

use axactor::actor;
use axactor_cluster::{
    ClusterConfig, ClusterNode, KeyedConfig, LeaseStore, MemoryLeaseStore, NodeId, TcpOverlay,
    config::{DEFAULT_RECONNECT_MAX, DEFAULT_RECONNECT_MIN},
};
use axactor_tests::cluster::{connected, eventually};
use axactor_tests::keyed::{owns_all, pinned_cfg};
use tokio::io::AsyncReadExt;
use tokio::net::TcpSocket;
use tokio::task::JoinSet;
use tokio::time::Instant;

const REGISTRY: &str = "echo";
const SHARDS: usize = 4;
/// More silent connections than the node's 64 pending-handshake slots.
const FLOOD_CONNECTIONS: usize = 96;
/// A connection closed sooner than this was refused at once: its task
/// waits `REFUSED_PAUSE` before reconnecting (the flood must not spin).
const REFUSED_WITHIN: Duration = Duration::from_millis(50);
const REFUSED_PAUSE: Duration = Duration::from_millis(100);

/// Says which node it runs on.
#[derive(Debug)]
pub struct Echo {
    node: String,
}

#[actor(remote)]
impl Echo {
    /// The node this activation runs on.
    #[msg]
    fn whoami(&mut self) -> String {
        self.node.clone()
    }
}

fn echo_factory(node: &str) -> impl Fn(&str) -> Echo + Send + Sync + 'static {
    let node = node.to_string();
    move |_key: &str| Echo { node: node.clone() }
}

/// Silent connections from `127.0.0.2` to `target`, each reopened as soon
/// as the node closes it.
struct Flood {
    stop: Arc<AtomicBool>,
    opened: Arc<AtomicU64>,
    tasks: JoinSet<()>,
}

impl Flood {
    /// Starts the flood; `None` if `127.0.0.2` cannot be bound here.
    fn start(target: SocketAddr) -> Option<Flood> {
        let source: SocketAddr = "127.0.0.2:0".parse().expect("address");
        let probe = TcpSocket::new_v4().ok()?;
        probe.bind(source).ok()?;
        drop(probe);
        let (stop, opened) = (Arc::new(AtomicBool::new(false)), Arc::new(AtomicU64::new(0)));
        let mut tasks = JoinSet::new();
        for _ in 0..FLOOD_CONNECTIONS {
            let (stop, opened) = (Arc::clone(&stop), Arc::clone(&opened));
            tasks.spawn(async move {
                while !stop.load(Ordering::Relaxed) {
                    let Ok(socket) = TcpSocket::new_v4() else { return };
                    if socket.bind(source).is_err() {
                        return;
                    }
                    let Ok(mut stream) = socket.connect(target).await else {
                        tokio::time::sleep(REFUSED_PAUSE).await;
                        continue;
                    };
                    opened.fetch_add(1, Ordering::Relaxed);
                    let since = Instant::now();
                    // Never write; read until the node closes (it may send a Refuse).
                    let mut buf = [0u8; 256];
                    while !stop.load(Ordering::Relaxed) {
                        let read = tokio::time::timeout(Duration::from_millis(200), stream.read(&mut buf)).await;
                        if let Ok(Ok(0) | Err(_)) = read {
                            break;
                        }
                    }
                    if since.elapsed() < REFUSED_WITHIN {
                        tokio::time::sleep(REFUSED_PAUSE).await;
                    }
                }
            });
        }
        Some(Flood { stop, opened, tasks })
    }

    async fn stop(mut self) -> u64 {
        self.stop.store(true, Ordering::Relaxed);
        while self.tasks.join_next().await.is_some() {}
        self.opened.load(Ordering::Relaxed)
    }
}

fn refused(node: &ClusterNode) -> u64 {
    let c = node.inspect().counters;
    c.handshake_capacity_exceeded + c.handshake_source_limit_exceeded
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn honest_nodes_connect_and_ask_during_a_silent_connection_flood() {
    let store: Arc<dyn LeaseStore> = Arc::new(MemoryLeaseStore::new());
    // `b` is the target; its overlay does not know `a`'s address, so the
    // only way the two can meet is `a`'s connection into the flooded `b`.
    let any: SocketAddr = "127.0.0.1:0".parse().expect("address");
    let ob = TcpOverlay::new(HashMap::from([("b".to_string(), any)]));
    let b = ClusterNode::start(NodeId::new("b"), Arc::clone(&store), ob, pinned_cfg()).await.expect("start b");
    let b_addr = b.local_addr().expect("b listens");
    let kb = b.keyed(REGISTRY, KeyedConfig::new(SHARDS), echo_factory("b")).expect("registry on b");
    owns_all(&b, REGISTRY, SHARDS).await;

    let Some(flood) = Flood::start(b_addr) else {
        eprintln!("skipped: cannot bind 127.0.0.2 on this machine");
        b.shutdown().await;
        return;
    };
    // The flood has taken what it can, is being refused, and has seen
    // slots it held time out (and taken them again).
    eventually(&b, "the flood is refused and times out", |s| {
        let timeouts: u64 = ["hello_timed_out", "timed_out"]
            .iter()
            .map(|l| s.counters.handshake_failures.get(l).copied().unwrap_or(0))
            .sum();
        refused(&b) > 0 && timeouts > 0
    })
    .await;
    let opened_before_a = flood.opened.load(Ordering::Relaxed);

    // The honest node re-dials with the default backoff (50 ms doubling to
    // 5 s), as a production node would.
    let a_cfg =
        ClusterConfig { reconnect_min: DEFAULT_RECONNECT_MIN, reconnect_max: DEFAULT_RECONNECT_MAX, ..pinned_cfg() };
    let oa = TcpOverlay::new(HashMap::from([("a".to_string(), any), ("b".to_string(), b_addr)]));
    let a = ClusterNode::start(NodeId::new("a"), Arc::clone(&store), oa, a_cfg).await.expect("start a");
    connected(&a, &b).await;
    let ka = a.keyed(REGISTRY, KeyedConfig::new(SHARDS), echo_factory("a")).expect("registry on a");
    for i in 0..32 {
        let key = format!("key-{i}");
        let on = ka.get(&key).whoami().await.unwrap_or_else(|e| panic!("ask {key} from a: {e}"));
        assert_eq!(on, "b", "{key} is served by b, remotely");
    }
    assert_eq!(kb.get("local").whoami().await.expect("local ask on b"), "b");

    // The flood was still on, and was refused per source and timed out early.
    let counters = b.inspect().counters;
    let opened = flood.stop().await;
    println!(
        "flood: {opened} connections opened ({opened_before_a} before a started); b refused {} per source, {} over capacity; {} Hello timeouts",
        counters.handshake_source_limit_exceeded,
        counters.handshake_capacity_exceeded,
        counters.handshake_failures.get("hello_timed_out").copied().unwrap_or(0),
    );
    assert!(opened > FLOOD_CONNECTIONS as u64, "the flood reconnected ({opened} connections)");
    assert!(counters.handshake_source_limit_exceeded > 0, "{counters:#?}");
    assert!(counters.handshake_failures.get("hello_timed_out").is_some_and(|n| *n > 0), "{counters:#?}");
    assert!(b.inspect().tables_over_cap().is_empty());
    a.shutdown().await;
    b.shutdown().await;
}
