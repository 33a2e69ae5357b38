//! Helpers for the keyed-registry integration tests (routing over TCP and in
//! memory, failover, Redis-backed clusters): nodes started on one overlay
//! with their addresses published, a configuration under which shards stay
//! where they were first acquired, and bounded waits on shard ownership.
//!
//! Every wait is bounded by [`BOUND`] and fails the test with the snapshot
//! it was waiting on; nothing here sleeps for a fixed time to "let things
//! settle" except [`settled`], which waits for placement to stop changing.

use std::collections::{BTreeSet, HashMap};
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use axactor_cluster::overlay::TcpStats;
use axactor_cluster::{
    ClusterConfig, ClusterError, ClusterNode, Env, InMemoryOverlay, LeaseStore, MemoryLeaseStore, NodeId, TcpOverlay,
};
use tokio::time::Instant;

use crate::cluster::{BOUND, connected, eventually, fast_cfg};

/// The overlay a test runs over; clones share one network.
#[derive(Debug, Clone)]
pub enum Net {
    /// TCP on loopback, ephemeral ports.
    Tcp(TcpOverlay),
    /// The in-process overlay, without faults.
    Memory(InMemoryOverlay),
}

impl Net {
    /// An empty TCP overlay: [`Net::start`] fills in the address book.
    pub fn tcp() -> Net {
        Net::Tcp(TcpOverlay::new(HashMap::new()))
    }

    /// A fault-free in-memory overlay.
    pub fn memory() -> Net {
        Net::Memory(InMemoryOverlay::new())
    }

    /// Which overlay, for messages.
    pub fn label(&self) -> &'static str {
        match self {
            Net::Tcp(_) => "tcp",
            Net::Memory(_) => "memory",
        }
    }

    /// Starts node `name`. Over TCP it listens on an ephemeral loopback
    /// port, published in the shared address book once bound (also when
    /// `name` was started before: a restart gets a fresh port). In memory,
    /// a restart right after `kill()` waits (bounded) until the killed
    /// node's aborted listener has been dropped and its name is free.
    ///
    /// # Panics
    /// If the node does not start within [`BOUND`].
    pub async fn start(&self, name: &str, store: Arc<dyn LeaseStore>, cfg: ClusterConfig) -> ClusterNode {
        let deadline = Instant::now() + BOUND;
        loop {
            let started = match self {
                Net::Tcp(tcp) => {
                    let any: SocketAddr = "127.0.0.1:0".parse().expect("loopback address");
                    tcp.insert_address(name, any);
                    let started =
                        ClusterNode::start(NodeId::new(name), Arc::clone(&store), tcp.clone(), cfg.clone()).await;
                    if let Ok(node) = &started {
                        tcp.insert_address(name, node.local_addr().expect("a TCP node listens on an address"));
                    }
                    started
                }
                Net::Memory(mem) => {
                    ClusterNode::start(NodeId::new(name), Arc::clone(&store), mem.clone(), cfg.clone()).await
                }
            };
            match started {
                Ok(node) => return node,
                // The name (or port) is still taken: retry shortly.
                Err(ClusterError::Overlay(_)) if Instant::now() < deadline => {
                    tokio::time::sleep(Duration::from_millis(10)).await;
                }
                Err(e) => panic!("{name} does not start: {e}"),
            }
        }
    }

    /// The TCP overlay's socket counters (`None` in memory).
    pub fn tcp_stats(&self) -> Option<TcpStats> {
        match self {
            Net::Tcp(tcp) => Some(tcp.stats()),
            Net::Memory(_) => None,
        }
    }
}

/// Starts `names` on `net` with one store and config, and waits until every
/// pair of them is connected.
pub async fn start_all(net: &Net, names: &[&str], store: Arc<dyn LeaseStore>, cfg: ClusterConfig) -> Vec<ClusterNode> {
    let mut nodes = Vec::new();
    for name in names {
        nodes.push(net.start(name, Arc::clone(&store), cfg.clone()).await);
    }
    all_connected(&nodes).await;
    nodes
}

/// Waits until every pair of `nodes` holds each other's current session.
pub async fn all_connected(nodes: &[ClusterNode]) {
    for (i, a) in nodes.iter().enumerate() {
        for b in &nodes[i + 1..] {
            connected(a, b).await;
        }
    }
}

/// [`fast_cfg`] under which a node never hands a held shard over to a
/// peer it would prefer (the settle window outlasts every test): shards
/// stay with the node that acquired them first, until it dies or shuts
/// down. Tests register a registry on the intended owner first, wait for
/// [`owns_all`], then register it on the other nodes.
pub fn pinned_cfg() -> ClusterConfig {
    ClusterConfig { rebalance_settle: Duration::from_secs(3600), ..fast_cfg() }
}

/// Short lease and node timings for failover: lease 1 s, renewal every
/// 300 ms, requests and silent peers time out after 1 s, heartbeats every
/// 100 ms; otherwise [`pinned_cfg`].
pub fn failover_cfg() -> ClusterConfig {
    ClusterConfig {
        lease_ttl: Duration::from_secs(1),
        renew_interval: Duration::from_millis(300),
        request_timeout: Duration::from_secs(1),
        node_ttl: Duration::from_secs(1),
        heartbeat_interval: Duration::from_millis(100),
        ..pinned_cfg()
    }
}

/// The lease-store name of `shard` of `registry`.
pub fn lease_name(registry: &str, shard_count: usize, shard: u32) -> String {
    axactor_cluster::shard::lease_name(registry, shard_count as u32, shard)
}

/// Two in-memory nodes on [`pinned_cfg`] for tests that hold the receiving
/// side still: `b` runs on a pausable [`Env`] (returned, to pause and resume
/// it) and holds all `shards` of `registry` once `host_on_b` has hosted it
/// there (what `host_on_b` returns, typically the `Keyed` handle, is
/// returned too); then `a` starts, and returns once it sees `b` as a peer.
/// The caller hosts `registry` on `a`.
pub async fn pausable_owner<T>(
    registry: &str,
    shards: usize,
    host_on_b: impl FnOnce(&ClusterNode) -> T,
) -> (ClusterNode, ClusterNode, Env, T) {
    let net = InMemoryOverlay::new();
    let store: Arc<dyn LeaseStore> = Arc::new(MemoryLeaseStore::new());
    let env = Env::pausable();
    let b = ClusterNode::start_with_env(NodeId::new("b"), Arc::clone(&store), net.clone(), pinned_cfg(), env.clone())
        .await
        .expect("b starts");
    let hosted = host_on_b(&b);
    owns_all(&b, registry, shards).await;
    let a = ClusterNode::start(NodeId::new("a"), store, net, pinned_cfg()).await.expect("a starts");
    eventually(&a, "b is a peer", |s| s.peers.iter().any(|p| p.name.as_str() == "b")).await;
    (a, b, env, hosted)
}

/// Waits until `node` holds every one of the `shards` shards of `registry`.
pub async fn owns_all(node: &ClusterNode, registry: &str, shards: usize) {
    eventually(node, "owns every shard", |s| s.owned_count(registry) == shards).await;
}

/// Which of `nodes` holds `shard` of `registry` now, and at which epoch.
pub fn holder(nodes: &[&ClusterNode], registry: &str, shard: u32) -> Option<(usize, u64)> {
    nodes.iter().enumerate().find_map(|(i, n)| {
        n.inspect().shards.iter().find(|s| s.registry == registry && s.shard == shard).map(|s| (i, s.epoch))
    })
}

/// Who holds what: `(node, shard, epoch)` over `nodes`, sorted.
pub fn placement(nodes: &[&ClusterNode], registry: &str) -> Vec<(String, u32, u64)> {
    let mut out: Vec<(String, u32, u64)> = nodes
        .iter()
        .flat_map(|n| {
            let snap = n.inspect();
            let name = snap.node.to_string();
            snap.shards.into_iter().filter(|s| s.registry == registry).map(move |s| (name.clone(), s.shard, s.epoch))
        })
        .collect();
    out.sort();
    out
}

/// Waits until every one of the `shards` shards of `registry` is held by
/// exactly one of `nodes` and the placement has not changed for `quiet`;
/// returns it.
///
/// # Panics
/// If that does not happen within [`BOUND`] plus `quiet`.
pub async fn settled(
    nodes: &[&ClusterNode],
    registry: &str,
    shards: usize,
    quiet: Duration,
) -> Vec<(String, u32, u64)> {
    let deadline = Instant::now() + BOUND + quiet;
    let mut last = placement(nodes, registry);
    let mut since = Instant::now();
    loop {
        tokio::time::sleep(Duration::from_millis(20)).await;
        let now = placement(nodes, registry);
        let distinct: BTreeSet<u32> = now.iter().map(|(_, shard, _)| *shard).collect();
        let complete = now.len() == shards && distinct.len() == shards;
        if now != last || !complete {
            last = now;
            since = Instant::now();
        } else if since.elapsed() >= quiet {
            return now;
        }
        assert!(Instant::now() < deadline, "{registry}: placement did not settle: {last:?}");
    }
}
