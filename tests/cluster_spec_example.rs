//! The cluster example of the API contract (`spec/api.md` §2), as written.
#![allow(missing_docs, missing_debug_implementations)]

use axactor::actor;
use axactor_cluster::{ClusterConfig, ClusterNode, InMemoryOverlay, KeyedConfig, MemoryLeaseStore, NodeId};
use std::sync::Arc;

pub struct Account {
    #[allow(dead_code)]
    key: String,
    balance: i64,
}

#[actor(remote)] // also generates the wire contract and AccountRemoteRef
impl Account {
    #[msg]
    fn deposit(&mut self, amount: i64) {
        self.balance += amount
    }
    #[msg]
    fn balance(&mut self) -> i64 {
        self.balance
    }
}

async fn demo() -> Result<(), Box<dyn std::error::Error>> {
    let net = InMemoryOverlay::new(); // one shared in-process network; Clone
    let store = Arc::new(MemoryLeaseStore::new()); // one shared in-process lease store
    let cfg = ClusterConfig {
        auth_token: Some("a 32+ character secret shared by all nodes".into()),
        ..ClusterConfig::default()
    };

    let a = ClusterNode::start(NodeId::new("a"), store.clone(), net.clone(), cfg.clone()).await?;
    let b = ClusterNode::start(NodeId::new("b"), store.clone(), net.clone(), cfg.clone()).await?;

    let make = |key: &str| Account { key: key.to_string(), balance: 0 };
    let accounts_a = a.keyed("accounts", KeyedConfig::new(64), make)?; // Keyed<Account>
    let accounts_b = b.keyed("accounts", KeyedConfig::new(64), make)?;

    accounts_a.get("alice").deposit_wait(10).await?; // routed to the shard's owner
    assert_eq!(accounts_b.get("alice").balance().await?, 10); // one activation cluster-wide
    a.shutdown().await;
    b.shutdown().await;
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn spec_cluster_example_runs_as_written() {
    demo().await.expect("the spec example runs");
}
