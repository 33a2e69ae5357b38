//! Cluster set-up for the benchmarks: the config, nodes on TCP loopback or
//! in memory, waiting until placement has settled, and picking keys by
//! owner.

use std::collections::{BTreeMap, HashMap};
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use axactor_cluster::wire::hello::PROTOCOL_MAX_VERSION;
use axactor_cluster::wire::{DataMsg, Envelope, FrameMac, encode_envelope};
use axactor_cluster::{
    ClusterConfig, ClusterNode, ClusterOverlay, InMemoryOverlay, Keyed, KeyedConfig, LeaseStore, MemoryLeaseStore,
    NodeId, TcpOverlay,
};

use crate::echo::{Echo, EchoRemoteRef};
use crate::measure::Asker;
use crate::raw::Sizes;

/// The registry every benchmark uses.
pub(crate) const REGISTRY: &str = "bench";
/// Its shard count.
pub(crate) const SHARDS: usize = 16;
/// Bytes echoed by every ask.
pub(crate) const PAYLOAD: usize = 32;
/// Longest wait for connections or placement.
const BOUND: Duration = Duration::from_secs(20);

/// The config of every node (printed with the tables).
pub(crate) fn config() -> ClusterConfig {
    ClusterConfig {
        auth_token: Some("benchmark-cluster-token-6e4d2a8c0f".into()),
        lease_ttl: Duration::from_secs(2),
        renew_interval: Duration::from_millis(500),
        request_timeout: Duration::from_secs(1),
        lease_store_timeout: Duration::from_secs(1),
        node_ttl: Duration::from_secs(2),
        heartbeat_interval: Duration::from_millis(200),
        reconnect_min: Duration::from_millis(20),
        reconnect_max: Duration::from_millis(200),
        rebalance_settle: Duration::from_millis(200),
        ..ClusterConfig::default()
    }
}

/// One line describing [`config`].
pub(crate) fn describe_config() -> String {
    let c = config();
    format!(
        "lease_ttl {:?}, renew_interval {:?}, request_timeout {:?}, node_ttl {:?}, heartbeat_interval {:?}, \
         rebalance_settle {:?}, reconnect {:?}..{:?}; registry `{REGISTRY}` with {SHARDS} shards, no passivation; \
         asks `echo(Vec<u8>)` of {PAYLOAD} bytes",
        c.lease_ttl,
        c.renew_interval,
        c.request_timeout,
        c.node_ttl,
        c.heartbeat_interval,
        c.rebalance_settle,
        c.reconnect_min,
        c.reconnect_max,
    )
}

/// Running nodes with the registry hosted on each.
pub(crate) struct Cluster {
    pub(crate) nodes: Vec<ClusterNode>,
    pub(crate) keyed: Vec<Keyed<Echo>>,
    /// The overlay of the TCP nodes (unused by in-memory ones), for its counters.
    pub(crate) tcp: TcpOverlay,
}

/// Which transport the nodes use.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Transport {
    /// `TcpOverlay` on 127.0.0.1, ephemeral ports.
    Tcp,
    /// `InMemoryOverlay` without faults.
    Memory,
    /// `TlsOverlay` (mutual TLS, one certificate per node from one CA made
    /// at start) on 127.0.0.1, ephemeral ports.
    #[cfg(feature = "tls")]
    Tls,
}

impl Cluster {
    /// Starts `names`, waits until every pair is connected, hosts the
    /// registry on every node and waits until placement has settled.
    pub(crate) async fn start(names: &[&str], transport: Transport) -> Cluster {
        let store: Arc<dyn LeaseStore> = Arc::new(MemoryLeaseStore::new());
        let any: SocketAddr = "127.0.0.1:0".parse().expect("addr");
        let tcp = TcpOverlay::new(names.iter().map(|n| (n.to_string(), any)).collect::<HashMap<_, _>>());
        let memory = InMemoryOverlay::new();
        #[cfg(feature = "tls")]
        let ca = crate::tls::Ca::new();
        let mut nodes = Vec::new();
        for name in names {
            let overlay: ClusterOverlay = match transport {
                Transport::Tcp => tcp.clone().into(),
                Transport::Memory => memory.clone().into(),
                #[cfg(feature = "tls")]
                Transport::Tls => ca.overlay(&tcp, name).into(),
            };
            let node = ClusterNode::start(NodeId::new(*name), store.clone(), overlay, config()).await.expect("start");
            if let Some(addr) = node.local_addr() {
                tcp.insert_address(*name, addr);
            }
            nodes.push(node);
        }
        wait_until("every pair connected", || nodes.iter().all(|n| n.inspect().peers.len() == names.len() - 1)).await;
        let cfg = KeyedConfig::new(SHARDS).idle_timeout(None);
        let keyed = nodes
            .iter()
            .map(|n| {
                let me = n.id().to_string();
                n.keyed(REGISTRY, cfg.clone(), move |_: &str| Echo::new(&me)).expect("register")
            })
            .collect();
        let cluster = Cluster { nodes, keyed, tcp };
        cluster.settle().await;
        cluster
    }

    /// Owner name of every held shard.
    pub(crate) fn owners(&self) -> BTreeMap<u32, String> {
        let mut out = BTreeMap::new();
        for n in &self.nodes {
            for s in n.inspect().shards.iter().filter(|s| s.registry == REGISTRY) {
                out.insert(s.shard, n.id().to_string());
            }
        }
        out
    }

    /// Waits until every shard is held, every node holds some, and the
    /// ownership has not changed for two renew intervals.
    async fn settle(&self) {
        let quiet = config().renew_interval * 2;
        let deadline = Instant::now() + BOUND;
        let (mut last, mut since) = (BTreeMap::new(), Instant::now());
        loop {
            let owners = self.owners();
            let held_by_all = self.nodes.iter().all(|n| owners.values().any(|o| o == n.id().as_str()));
            if owners != last {
                (last, since) = (owners.clone(), Instant::now());
            } else if owners.len() == SHARDS && held_by_all && since.elapsed() >= quiet {
                return;
            }
            assert!(Instant::now() < deadline, "placement did not settle: {owners:?}");
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    /// The first key `key-<i>` whose shard `owner` holds.
    pub(crate) fn key_owned_by(&self, owner: &str) -> String {
        let owners = self.owners();
        (0..)
            .map(|i| format!("key-{i}"))
            .find(|k| owners.get(&self.keyed[0].shard_of(k)).is_some_and(|o| o == owner))
            .expect("some key maps to every node")
    }

    /// Kills every node (no waiting).
    pub(crate) fn kill_all(&self) {
        for n in &self.nodes {
            n.kill();
        }
    }
}

async fn wait_until(what: &str, check: impl Fn() -> bool) {
    let deadline = Instant::now() + BOUND;
    while !check() {
        assert!(Instant::now() < deadline, "{what}: not reached in {BOUND:?}");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

/// An `echo` ask through a generated remote ref.
#[derive(Clone)]
pub(crate) struct Remote(pub(crate) EchoRemoteRef);

impl Asker for Remote {
    async fn call(&mut self) {
        let reply = self.0.echo(vec![7; PAYLOAD]).await.expect("cluster ask");
        assert_eq!(reply.len(), PAYLOAD);
    }
}

/// The body size of the node's frame for one unacknowledged `absorb` tell
/// of `PAYLOAD` bytes to `key`, from the node's own encoding.
pub(crate) fn tell_frame_size(key: &str) -> usize {
    let tell = postcard::to_allocvec(&crate::echo::EchoTell::Absorb { data: vec![7; PAYLOAD] }).expect("encode tell");
    let msg =
        DataMsg::Tell { registry: REGISTRY.into(), shard: 7, epoch: 1, key: key.into(), payload: tell, ack_id: None };
    let mut out = Vec::new();
    encode_envelope(&Envelope::Data(msg), &mut out).expect("encode envelope");
    out.len() + sealed_overhead()
}

/// What sealing adds to a frame's envelope between two nodes of this build
/// (the MAC of the newest protocol version).
pub(crate) fn sealed_overhead() -> usize {
    FrameMac::for_version(PROTOCOL_MAX_VERSION).overhead()
}

/// The body sizes of the node's frames for this ask and its reply, from the
/// node's own encoding (`request_id` and `epoch` given typical values).
pub(crate) fn frame_sizes(key: &str) -> Sizes {
    let ask = postcard::to_allocvec(&crate::echo::EchoAsk::Echo { data: vec![7; PAYLOAD] }).expect("encode ask");
    let reply = postcard::to_allocvec(&crate::echo::EchoReply::Echo(vec![7; PAYLOAD])).expect("encode reply");
    let body = |msg: DataMsg| {
        let mut out = Vec::new();
        encode_envelope(&Envelope::Data(msg), &mut out).expect("encode envelope");
        out.len() + sealed_overhead()
    };
    let request_id = 100_000;
    let request =
        body(DataMsg::Ask { request_id, registry: REGISTRY.into(), shard: 7, epoch: 1, key: key.into(), payload: ask });
    let reply = body(DataMsg::Reply { request_id, payload: reply });
    Sizes { request, reply }
}
