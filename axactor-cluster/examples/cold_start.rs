//! Cold start: `n` nodes started together, one keyed registry of 64 shards.
//! How long until placement is balanced, and how many shards are handed
//! over on the way.
//!
//! ```text
//! cargo run -p axactor-cluster --example cold_start --release
//! ```
//!
//! Each run is on tokio's paused clock (in-memory overlay and lease store),
//! so the times are simulated time and the same on every machine. Timings:
//! `renew_interval` and `heartbeat_interval` 100 ms, `lease_ttl` 1 s,
//! `node_ttl` 2 s, every other knob at its default (settle window 5 s, at
//! most 8 handovers per renew interval).
//!
//! Three ways of starting "together": *at once* (every node started, then
//! every node registers the registry), and *within 100 ms* / *within 1 s*
//! (each node starts and registers at once, the next one `100 ms / n` or
//! `1 s / n` later: all within one heartbeat interval, or within ten).
//!
//! *Balanced*: every shard is held, and no node holds more than
//! `ceil(64 / n)`; *time to balance* is measured from the moment the last
//! node has registered the registry. *Handovers* counts every
//! `NodeEvent::ShardHandedOver` until 10 s of simulated time after balance
//! (so late moves are counted too).

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use axactor::actor;
use axactor_cluster::{
    ClusterConfig, ClusterNode, Env, InMemoryOverlay, KeyedConfig, LeaseStore, MemoryLeaseStore, NodeEvent, NodeId,
    Observer, SessionId,
};

const SHARDS: usize = 64;

/// The registry's actor (placement is what is measured; it never runs).
struct Idle;

#[actor(remote)]
impl Idle {
    /// Nothing.
    #[msg]
    fn ping(&mut self) {}
}

/// Counts handovers.
#[derive(Debug, Default)]
struct Handovers(AtomicU64);

impl Observer for Handovers {
    fn event(&self, _node: &SessionId, event: NodeEvent) {
        if matches!(event, NodeEvent::ShardHandedOver { .. }) {
            self.0.fetch_add(1, Ordering::Relaxed);
        }
    }
}

struct Outcome {
    to_all_held: Option<Duration>,
    to_balance: Option<Duration>,
    handovers: u64,
}

fn cfg() -> ClusterConfig {
    ClusterConfig {
        auth_token: Some("cold-start-example-token-0123456789abcdef".into()),
        renew_interval: Duration::from_millis(100),
        heartbeat_interval: Duration::from_millis(100),
        lease_ttl: Duration::from_secs(1),
        lease_store_timeout: Duration::from_millis(500),
        node_ttl: Duration::from_secs(2),
        ..ClusterConfig::default()
    }
}

async fn run(n: usize, gap: Option<Duration>) -> Outcome {
    let store: Arc<dyn LeaseStore> = Arc::new(MemoryLeaseStore::new());
    let net = InMemoryOverlay::new();
    let observer = Arc::new(Handovers::default());
    let register = |node: &ClusterNode| node.keyed("accounts", KeyedConfig::new(SHARDS), |_: &str| Idle);
    let mut nodes = Vec::new();
    let mut keyed = Vec::new();
    for i in 0..n {
        let env = Env::production();
        env.set_observer(Arc::clone(&observer) as Arc<dyn Observer>);
        let id = NodeId::new(format!("n{i:02}"));
        let node = ClusterNode::start_with_env(id, Arc::clone(&store), net.clone(), cfg(), env).await;
        nodes.push(node.expect("node starts"));
        if let Some(gap) = gap {
            keyed.push(register(&nodes[i]).expect("registry"));
            tokio::time::sleep(gap).await;
        }
    }
    if gap.is_none() {
        keyed = nodes.iter().map(|node| register(node).expect("registry")).collect();
    }
    let start = tokio::time::Instant::now();
    let cap = SHARDS.div_ceil(n);
    let (mut to_all_held, mut to_balance) = (None, None);
    let limit = Duration::from_secs(60);
    while start.elapsed() < limit {
        let owned: Vec<usize> = nodes.iter().map(|node| node.inspect().owned_count("accounts")).collect();
        let held: usize = owned.iter().sum();
        if held == SHARDS && to_all_held.is_none() {
            to_all_held = Some(start.elapsed());
        }
        if held == SHARDS && owned.iter().all(|o| *o <= cap) {
            to_balance = Some(start.elapsed());
            break;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    tokio::time::sleep(Duration::from_secs(10)).await;
    let handovers = observer.0.load(Ordering::Relaxed);
    drop(keyed);
    for node in &nodes {
        node.shutdown().await;
    }
    Outcome { to_all_held, to_balance, handovers }
}

fn show(d: Option<Duration>) -> String {
    d.map_or_else(|| "> 60 s".to_string(), |d| format!("{:.2} s", d.as_secs_f64()))
}

fn main() {
    println!("| nodes | started | shards | all held after | balanced after | handovers |");
    println!("|---|---|---|---|---|---|");
    let spread = [
        (None, "at once"),
        (Some(Duration::from_millis(100)), "within 100 ms"),
        (Some(Duration::from_secs(1)), "within 1 s"),
    ];
    for (spread, label) in spread {
        for n in [4u32, 16] {
            let gap = spread.map(|s| s / n);
            let rt = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .start_paused(true)
                .build()
                .expect("a runtime");
            let o = rt.block_on(run(n as usize, gap));
            let (held, balanced) = (show(o.to_all_held), show(o.to_balance));
            println!("| {n} | {label} | {SHARDS} | {held} | {balanced} | {} |", o.handovers);
        }
    }
}
