//! Who takes shards: only authenticated members, and nodes started together
//! place shards on their preferred owners directly.
//!
//! - a node with the wrong token that shares the lease store joins a running
//!   cluster: it takes no shard (not even one freed by a crashed or departed
//!   node), every key stays served by the honest nodes, and its `inspect()`
//!   says which members it failed to authenticate with and why;
//! - four nodes started together with 64 shards reach a balanced placement
//!   without funnelling every shard to the first node up (no handovers).
#![allow(missing_docs)]

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use axactor_cluster::{
    AuthFailureReason, ClusterConfig, ClusterNode, Env, InMemoryOverlay, Keyed, KeyedConfig, LeaseStore, MemberState,
    MemoryLeaseStore, NodeEvent, NodeId, Observer, SessionId,
};
use axactor_tests::activations::{ActivationLog, Probe, Served, start_node, wait_until};

const REG: &str = "accounts";
const TOKEN: &str = "membership-test-token-0123456789abcdef";
const WRONG: &str = "a-different-token-from-another-deploy-0123";

fn cfg(token: &str) -> ClusterConfig {
    ClusterConfig { auth_token: Some(token.into()), ..ClusterConfig::default() }
}

/// Asks one key of every shard through `keyed`; each must be answered by a
/// node other than `not_on`.
async fn every_shard_served(keyed: &Keyed<Probe>, shards: u32, not_on: &str) {
    for shard in 0..shards {
        let key = (0..10_000).map(|i| format!("k-{i}")).find(|k| keyed.shard_of(k) == shard).expect("a key");
        let served = Served::from(keyed.get(&key).incr().await.expect("every key stays served"));
        assert_ne!(served.node, not_on, "{key} served by the wrong-token node");
    }
}

fn owned(node: &ClusterNode) -> usize {
    node.inspect().owned_count(REG)
}

#[tokio::test(start_paused = true)]
async fn a_wrong_token_node_takes_no_shard_and_says_why() {
    let net = InMemoryOverlay::new();
    let store: Arc<dyn LeaseStore> = Arc::new(MemoryLeaseStore::new());
    let log = ActivationLog::new();
    let shards = 16u32;
    let kcfg = KeyedConfig::new(shards as usize);
    let mut honest = Vec::new();
    let mut handles = Vec::new();
    for name in ["a", "b", "c"] {
        let node = start_node(name, &store, &net, &cfg(TOKEN)).await;
        handles.push(node.keyed(REG, kcfg.clone(), log.factory(name)).expect("registry"));
        honest.push(node);
    }
    wait_until(Duration::from_secs(60), "the honest cluster holds every shard", || {
        honest.iter().map(owned).sum::<usize>() == shards as usize
    })
    .await;

    // x also polls the store thirty times as often as the honest nodes, so
    // it is first to see any shard that becomes free.
    let x_cfg = ClusterConfig {
        renew_interval: Duration::from_millis(100),
        lease_ttl: Duration::from_secs(1),
        lease_store_timeout: Duration::from_millis(500),
        ..cfg(WRONG)
    };
    let x = start_node("x", &store, &net, &x_cfg).await;
    let _kx = x.keyed(REG, kcfg.clone(), log.factory("x")).expect("x registers");
    tokio::time::sleep(Duration::from_secs(20)).await;
    assert_eq!(owned(&x), 0, "the wrong-token node took shards");
    every_shard_served(&handles[0], shards, "x").await;

    // A crash frees c's shards once their leases expire: a and b take them.
    honest[2].kill();
    tokio::time::sleep(Duration::from_secs(30)).await;
    assert_eq!(owned(&x), 0, "the wrong-token node took a crashed node's shards");
    assert_eq!(owned(&honest[0]) + owned(&honest[1]), shards as usize, "a and b hold every shard");
    every_shard_served(&handles[0], shards, "x").await;

    // One honest node against one wrong-token node: the running one keeps
    // serving and takes the departed node's shards.
    honest[1].shutdown().await;
    tokio::time::sleep(Duration::from_secs(30)).await;
    assert_eq!(owned(&x), 0, "the wrong-token node took a departed node's shards");
    assert_eq!(owned(&honest[0]), shards as usize, "a holds every shard");
    every_shard_served(&handles[0], shards, "x").await;

    // Both sides say why.
    let xi = x.inspect();
    assert_eq!(xi.membership.state, MemberState::Excluded, "{:?}", xi.membership);
    let failed = xi.membership.auth_failures.iter().find(|f| f.name.as_str() == "a").expect("x names a");
    assert_eq!(failed.reason, AuthFailureReason::WrongToken);
    assert!(xi.counters.member_auth_failures > 0);
    let ai = honest[0].inspect();
    assert_eq!(ai.membership.state, MemberState::Member, "{:?}", ai.membership);
    assert!(
        ai.membership.auth_failures.iter().any(|f| f.name.as_str() == "x" && f.reason == AuthFailureReason::WrongToken)
    );

    x.shutdown().await;
    honest[0].shutdown().await;
}

/// Counts handovers across the nodes it observes.
#[derive(Debug, Default)]
struct Handovers(AtomicU64);

impl Observer for Handovers {
    fn event(&self, _node: &SessionId, event: NodeEvent) {
        if matches!(event, NodeEvent::ShardHandedOver { .. }) {
            self.0.fetch_add(1, Ordering::Relaxed);
        }
    }
}

#[tokio::test(start_paused = true)]
async fn nodes_started_together_place_shards_without_handovers() {
    let net = InMemoryOverlay::new();
    let store: Arc<dyn LeaseStore> = Arc::new(MemoryLeaseStore::new());
    let log = ActivationLog::new();
    let observer = Arc::new(Handovers::default());
    let cfg = ClusterConfig {
        renew_interval: Duration::from_millis(100),
        heartbeat_interval: Duration::from_millis(100),
        lease_ttl: Duration::from_secs(1),
        lease_store_timeout: Duration::from_millis(500),
        node_ttl: Duration::from_secs(2),
        ..cfg(TOKEN)
    };
    let mut nodes = Vec::new();
    for name in ["a", "b", "c", "d"] {
        let env = Env::production();
        env.set_observer(Arc::clone(&observer) as Arc<dyn Observer>);
        let node = ClusterNode::start_with_env(NodeId::new(name), Arc::clone(&store), net.clone(), cfg.clone(), env);
        nodes.push(node.await.expect("node starts"));
    }
    let _keyed: Vec<Keyed<Probe>> = nodes
        .iter()
        .map(|n| n.keyed(REG, KeyedConfig::new(64), log.factory(n.id().as_str())).expect("registry"))
        .collect();
    wait_until(Duration::from_secs(30), "balanced: every shard held, none over 16 per node", || {
        let owned: Vec<usize> = nodes.iter().map(owned).collect();
        owned.iter().sum::<usize>() == 64 && owned.iter().all(|o| *o <= 16)
    })
    .await;
    // Nothing moves afterwards either.
    tokio::time::sleep(Duration::from_secs(10)).await;
    let handovers = observer.0.load(Ordering::Relaxed);
    assert_eq!(handovers, 0, "shards were funnelled and moved back");
    for n in &nodes {
        n.shutdown().await;
    }
}
