//! Keyed-cluster scenarios run against every lease store shared over
//! connections (`tests/cluster_redis.rs`, `tests/cluster_etcd.rs`), on a
//! unique key prefix per test and one store connection per node:
//!
//! - routing: every key has one activation cluster-wide, asks from every
//!   node reach it, and the store names its holder's session and epoch;
//! - failover: after `kill()` of a key's owner, another node serves it
//!   under a greater epoch (time printed, not asserted);
//! - graceful handover: once `shutdown()` returns, the node's leases are
//!   released and the next owner serves the key under a greater epoch;
//! - a node restarted under the same name is a new session: it never
//!   renews the old session's leases, which expire and are re-acquired
//!   under greater epochs.

use std::any::Any;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use axactor::{Context, actor};
use axactor_cluster::{ClusterConfig, ClusterNode, Keyed, KeyedConfig, LeaseStore};
use tokio::time::Instant;

use crate::cluster::BOUND;
use crate::keyed::{Net, all_connected, failover_cfg, lease_name, owns_all, settled};

const REGISTRY: &str = "members";
const SHARDS: usize = 6;
const KEYS: usize = 12;

/// Activations ever made in this process: each gets its own id.
static ACTIVATIONS: AtomicU64 = AtomicU64::new(0);

/// An activation that says who it is and counts the calls it got.
#[derive(Debug)]
pub struct Member {
    node: String,
    id: u64,
    calls: u64,
}

#[actor(remote)]
impl Member {
    /// The node it runs on, the shard epoch it runs under, its id.
    #[msg]
    fn ident(&mut self, ctx: &mut Context) -> (String, u64, u64) {
        (self.node.clone(), ctx.fence().map_or(0, |f| f.epoch), self.id)
    }

    /// Counts this call; returns the count.
    #[msg]
    fn call(&mut self) -> u64 {
        self.calls += 1;
        self.calls
    }
}

fn members(node: &str) -> impl Fn(&str) -> Member + Send + Sync + 'static {
    let node = node.to_string();
    move |_key: &str| Member { node: node.clone(), id: ACTIVATIONS.fetch_add(1, Ordering::Relaxed), calls: 0 }
}

/// A future that connects to the store.
type Connecting = Pin<Box<dyn Future<Output = Arc<dyn LeaseStore>> + Send>>;

/// A lease store reached over connections: a new connection per node, and
/// the test's own (`probe`) to read leases.
pub struct SharedStore {
    kind: &'static str,
    connect: Box<dyn Fn() -> Connecting + Send + Sync>,
    probe: Arc<dyn LeaseStore>,
    _server: Box<dyn Any + Send + Sync>,
}

impl std::fmt::Debug for SharedStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SharedStore").field("kind", &self.kind).finish_non_exhaustive()
    }
}

impl SharedStore {
    /// A store of `kind` (for messages), kept alive by `server`, whose
    /// `connect` opens a new connection under the test's prefix.
    pub async fn new<F, Fut>(kind: &'static str, server: impl Any + Send + Sync, connect: F) -> SharedStore
    where
        F: Fn() -> Fut + Send + Sync + 'static,
        Fut: Future<Output = Arc<dyn LeaseStore>> + Send + 'static,
    {
        let probe = connect().await;
        SharedStore { kind, connect: Box::new(move || Box::pin(connect())), probe, _server: Box::new(server) }
    }

    async fn start(&self, net: &Net, name: &str, cfg: ClusterConfig) -> ClusterNode {
        net.start(name, (self.connect)().await, cfg).await
    }

    /// The store's lease on the shard of `key`: (holder's session, epoch).
    async fn lease_of(&self, keyed: &Keyed<Member>, key: &str) -> Option<(axactor_cluster::SessionId, u64)> {
        let lease = self.probe.get(&lease_name(REGISTRY, SHARDS, keyed.shard_of(key))).await.expect("get");
        lease.map(|l| (l.holder, l.epoch.0))
    }
}

/// Asks `key` from `keyed` until it answers (at most [`BOUND`] after `since`).
async fn served(keyed: &Keyed<Member>, key: &str, since: Instant) -> (String, u64, u64) {
    loop {
        match keyed.get(key).ident_timeout(Duration::from_millis(500)).await {
            Ok(ident) => return ident,
            Err(e) => assert!(since.elapsed() < BOUND, "{key} not served within {BOUND:?}: {e}"),
        }
    }
}

/// Every key has one activation: all `keyed` get the same answer, from the
/// node holding the key's shard in the store, under the store's epoch; and
/// calls from every node count on one state.
async fn one_activation_per_key(stores: &SharedStore, nodes: &[&ClusterNode], keyed: &[&Keyed<Member>]) {
    for k in 0..KEYS {
        let key = format!("k{k}");
        let first = keyed[0].get(&key).ident().await.expect("ident");
        for other in &keyed[1..] {
            assert_eq!(other.get(&key).ident().await.expect("ident"), first, "{key}: one activation");
        }
        let (holder, epoch) = stores.lease_of(keyed[0], &key).await.expect("the shard has a lease");
        let owner = nodes.iter().find(|n| n.id().as_str() == first.0).expect("the answering node");
        assert_eq!((&holder, epoch), (owner.session(), first.1), "{key}: the store names the answering session");
        for (i, k) in keyed.iter().enumerate() {
            assert_eq!(k.get(&key).call().await.expect("call"), i as u64 + 1, "{key}: one state");
        }
    }
}

fn spread_cfg() -> ClusterConfig {
    ClusterConfig { rebalance_settle: Duration::from_millis(200), ..failover_cfg() }
}

const QUIET: Duration = Duration::from_secs(1);

/// Routing, failover after a crash and graceful handover on a three-node
/// cluster over `net` whose leases live in `stores`.
pub async fn route_fail_over_and_hand_over(stores: &SharedStore, net: Net) {
    let label = net.label();
    let names = ["a", "b", "c"];
    let mut nodes = Vec::new();
    for name in names {
        nodes.push(stores.start(&net, name, spread_cfg()).await);
    }
    all_connected(&nodes).await;
    let keyed: Vec<Keyed<Member>> = nodes
        .iter()
        .zip(names)
        .map(|(n, name)| n.keyed(REGISTRY, KeyedConfig::new(SHARDS), members(name)).expect("registry"))
        .collect();
    let all: Vec<&ClusterNode> = nodes.iter().collect();
    let placed = settled(&all, REGISTRY, SHARDS, QUIET).await;
    let owners: std::collections::BTreeSet<&str> = placed.iter().map(|(n, _, _)| n.as_str()).collect();
    assert!(owners.len() >= 2, "{label}: shards spread over the nodes: {placed:?}");
    one_activation_per_key(stores, &all, &keyed.iter().collect::<Vec<_>>()).await;

    // Failover: the owner of "k0" crashes.
    let key = "k0";
    let (owner, epoch, _) = keyed[0].get(key).ident().await.expect("ident");
    let x = names.iter().position(|n| *n == owner).expect("owner");
    let killed = Instant::now();
    nodes[x].kill();
    let rest: Vec<usize> = (0..3).filter(|i| *i != x).collect();
    let (node, new_epoch, _) = served(&keyed[rest[0]], key, killed).await;
    eprintln!("failover over {label} with {} leases: {key} served again after {:?}", stores.kind, killed.elapsed());
    assert!(node != owner && new_epoch > epoch, "{label}: {key} on {node} e{new_epoch}, was {owner} e{epoch}");
    let survivors: Vec<&ClusterNode> = rest.iter().map(|i| &nodes[*i]).collect();
    settled(&survivors, REGISTRY, SHARDS, QUIET).await;
    let rest_keyed: Vec<&Keyed<Member>> = rest.iter().map(|i| &keyed[*i]).collect();
    let (owner, epoch, _) = keyed[rest[0]].get(key).ident().await.expect("ident");
    assert!(epoch >= new_epoch);
    for k in &rest_keyed {
        assert_eq!(k.get(key).ident().await.expect("ident").1, epoch, "{label}: survivors agree");
    }

    // Graceful handover: the new owner shuts down.
    let y = names.iter().position(|n| *n == owner).expect("owner");
    let z = *rest.iter().find(|i| **i != y).expect("the last node");
    let old_session = nodes[y].session().clone();
    let stopping = Instant::now();
    nodes[y].shutdown().await;
    let lease = stores.lease_of(&keyed[z], key).await;
    assert!(lease.as_ref().is_none_or(|(h, _)| *h != old_session), "{label}: released by shutdown: {lease:?}");
    let (node, new_epoch, _) = served(&keyed[z], key, stopping).await;
    eprintln!(
        "graceful handover over {label} with {} leases: {key} served again after {:?}",
        stores.kind,
        stopping.elapsed()
    );
    assert!(node == names[z] && new_epoch > epoch, "{label}: {key} on {node} e{new_epoch}, was {owner} e{epoch}");
    owns_all(&nodes[z], REGISTRY, SHARDS).await;
    nodes[z].shutdown().await;
}

/// A node restarted under the same name is a new session: it never renews
/// the old session's leases, which expire and are re-acquired under greater
/// epochs.
pub async fn restarted_node_does_not_renew_old_leases(stores: &SharedStore) {
    let net = Net::memory();
    let cfg = failover_cfg();
    let (a1, b) = (stores.start(&net, "a", cfg.clone()).await, stores.start(&net, "b", cfg.clone()).await);
    all_connected(&[a1.clone(), b.clone()]).await;
    let _ka1 = a1.keyed(REGISTRY, KeyedConfig::new(SHARDS), members("a")).expect("registry");
    owns_all(&a1, REGISTRY, SHARDS).await;
    let kb = b.keyed(REGISTRY, KeyedConfig::new(SHARDS), members("b")).expect("registry");
    let mut old = Vec::new();
    for shard in 0..SHARDS as u32 {
        let lease = stores.probe.get(&lease_name(REGISTRY, SHARDS, shard)).await.expect("get").expect("held");
        assert_eq!(&lease.holder, a1.session());
        old.push(lease.epoch.0);
    }

    // Crash and restart under the same name, at once.
    a1.kill();
    let a2 = stores.start(&net, "a", cfg).await;
    assert_ne!(a2.session(), a1.session(), "a restart is a new session");
    let ka2 = a2.keyed(REGISTRY, KeyedConfig::new(SHARDS), members("a")).expect("registry");

    let deadline = Instant::now() + BOUND;
    loop {
        let mut taken_over = 0;
        for (shard, old_epoch) in (0..SHARDS as u32).zip(&old) {
            match stores.probe.get(&lease_name(REGISTRY, SHARDS, shard)).await.expect("get") {
                Some(l) if &l.holder == a1.session() => {
                    assert_eq!(l.epoch.0, *old_epoch, "shard {shard}: still the old lease, until it expires");
                }
                Some(l) => {
                    assert!(l.epoch.0 > *old_epoch, "shard {shard}: e{} after e{old_epoch}", l.epoch.0);
                    taken_over += 1;
                }
                None => {}
            }
        }
        let inherited: Vec<_> =
            a2.inspect().shards.into_iter().filter(|s| old.get(s.shard as usize) == Some(&s.epoch)).collect();
        assert!(inherited.is_empty(), "the new session uses the old session's leases: {inherited:?}");
        if taken_over == SHARDS {
            break;
        }
        assert!(Instant::now() < deadline, "the old session's leases never expired");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    for k in 0..KEYS {
        let key = format!("k{k}");
        let ident = kb.get(&key).ident().await.expect("ident");
        assert_eq!(ka2.get(&key).ident().await.expect("ident"), ident, "{key}: one activation");
        assert!(ident.1 > old[kb.shard_of(&key) as usize], "{key}: served under a new epoch");
    }
    a2.shutdown().await;
    b.shutdown().await;
}
