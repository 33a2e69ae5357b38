//! A cluster singleton as a leader: exactly one `Leader` activation
//! cluster-wide, started eagerly on the node holding its lease and started
//! again elsewhere when that node leaves (at once) or crashes (once the
//! lease expires).
//!
//! Run with `cargo run -p axactor-cluster --example singleton_leader`
//! (a few seconds, exits 0). Three nodes in one process over the in-memory
//! overlay and lease store; short leases (2 s) so the crash shows quickly.

use std::sync::Arc;
use std::time::Duration;

use axactor::{Context, actor};
use axactor_cluster::{ClusterConfig, ClusterNode, InMemoryOverlay, LeaseStore, MemoryLeaseStore, NodeId, Singleton};
use tokio::time::Instant;

const NAME: &str = "leader";

/// The leader: does the cluster-wide chores (here: hands out ticket numbers).
#[derive(Debug)]
pub struct Leader {
    node: String,
    next: u64,
}

#[actor(remote)]
impl Leader {
    /// Which node leads, under which lease epoch, and a fresh ticket. The
    /// counter restarts with each new leader: a real leader keeps it in
    /// storage, written with `ctx.fence()` (see `fenced_storage`).
    #[msg]
    fn ticket(&mut self, ctx: &mut Context) -> (String, u64, u64) {
        self.next += 1;
        (self.node.clone(), ctx.fence().map_or(0, |f| f.epoch), self.next)
    }

    async fn on_start(&mut self, ctx: &mut Context) {
        let epoch = ctx.fence().map_or(0, |f| f.epoch);
        println!("  leader started on {} (epoch {epoch})", self.node);
    }
}

/// Asks for a ticket through `via` until the leader answers (bounded).
async fn ticket(via: &Singleton<Leader>) -> (String, u64, u64) {
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        match via.get().ticket().await {
            Ok(t) => return t,
            Err(e) if Instant::now() < deadline => {
                println!("  (no leader yet: {e})");
                tokio::time::sleep(Duration::from_millis(300)).await;
            }
            Err(e) => panic!("no leader within 20 s: {e}"),
        }
    }
}

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let net = InMemoryOverlay::new();
    let store: Arc<dyn LeaseStore> = Arc::new(MemoryLeaseStore::new());
    let cfg = ClusterConfig {
        auth_token: Some("singleton example: a shared secret of 32+ characters".into()),
        lease_ttl: Duration::from_secs(2),
        renew_interval: Duration::from_millis(600),
        node_ttl: Duration::from_secs(2),
        heartbeat_interval: Duration::from_millis(200),
        request_timeout: Duration::from_secs(1),
        lease_store_timeout: Duration::from_millis(800),
        ..ClusterConfig::default()
    };
    let mut nodes = Vec::new();
    let mut leaders = Vec::new();
    for name in ["n1", "n2", "n3"] {
        let node = ClusterNode::start(NodeId::new(name), Arc::clone(&store), net.clone(), cfg.clone()).await?;
        let me = name.to_string();
        leaders.push(node.singleton(NAME, move || Leader { node: me.clone(), next: 0 })?);
        nodes.push(node);
    }

    println!("1. one leader, whichever node asks");
    for (node, via) in nodes.iter().zip(&leaders) {
        let (leader, epoch, n) = ticket(via).await;
        println!("  via {}: leader {leader} (epoch {epoch}) gives ticket {n}", node.id());
    }

    println!("2. the leader's node shuts down: the next leader starts at once");
    let (first, _, _) = ticket(&leaders[0]).await;
    let i = nodes.iter().position(|n| n.id().as_str() == first).expect("the leader is one of the nodes");
    nodes[i].shutdown().await;
    let rest: Vec<usize> = (0..nodes.len()).filter(|j| *j != i).collect();
    let (second, epoch, n) = ticket(&leaders[rest[0]]).await;
    println!("  leader {second} (epoch {epoch}) gives ticket {n}");

    println!("3. the new leader's node crashes: the last node leads once the lease expires");
    let j = nodes.iter().position(|n| n.id().as_str() == second).expect("the leader is one of the nodes");
    let last = *rest.iter().find(|k| **k != j).expect("a node is left");
    let t = Instant::now();
    nodes[j].kill();
    let (third, epoch, n) = ticket(&leaders[last]).await;
    println!("  leader {third} (epoch {epoch}) gives ticket {n}, {:.1} s after the crash", t.elapsed().as_secs_f64());

    nodes[last].shutdown().await;
    println!("done");
    Ok(())
}
