//! Fencing a write to external storage with `ctx.fence()`.
//!
//! Run with `cargo run -p axactor-cluster --example fenced_storage` (about
//! a second, exits 0).
//!
//! A lease alone cannot stop an old owner's write that is already on its way
//! (a process pause, a slow network, a buffered flush): it may reach the
//! storage after the shard has moved. So every write carries the epoch of
//! the lease the activation runs under (`ctx.fence()`), and the storage does
//! a conditional write: it remembers the highest epoch it has seen for each
//! shard and refuses anything older. Epochs only grow, so once the new owner
//! has written, nothing from the old one lands.
//!
//! Here node `a` owns the key and buffers a write (its "outbox"); `a` shuts
//! down, `b` takes the key over at a higher epoch and writes; then `a`'s
//! buffered write is delivered late and refused.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use axactor::{Context, Fence, actor};
use axactor_cluster::{ClusterConfig, ClusterNode, InMemoryOverlay, KeyedConfig, LeaseStore, MemoryLeaseStore, NodeId};
use parking_lot::Mutex;

/// External storage with fenced (conditional) writes, e.g. a database row
/// per shard holding the highest epoch seen, checked in the same transaction.
#[derive(Debug, Default)]
pub struct Storage {
    /// Highest epoch seen by (registry, shard).
    highest: Mutex<HashMap<(String, u32), u64>>,
    /// The data.
    rows: Mutex<HashMap<String, String>>,
}

impl Storage {
    /// Writes `value` under `key` if `fence` is not older than any fence
    /// seen for its shard; otherwise refuses, naming both epochs.
    pub fn put(&self, fence: &Fence, key: &str, value: &str) -> Result<(), String> {
        let mut highest = self.highest.lock();
        let seen = highest.entry((fence.registry.clone(), fence.shard)).or_insert(0);
        if fence.epoch < *seen {
            return Err(format!(
                "refused: epoch {} is older than epoch {seen} seen for shard {}",
                fence.epoch, fence.shard
            ));
        }
        *seen = fence.epoch;
        self.rows.lock().insert(key.to_string(), value.to_string());
        Ok(())
    }
}

/// A write prepared by an activation, not yet delivered.
type Outbox = Arc<Mutex<Vec<(Fence, String, String)>>>;

/// A profile: writes go straight to storage, or into the outbox.
#[derive(Debug)]
pub struct Profile {
    key: String,
    node: String,
    storage: Arc<Storage>,
    outbox: Outbox,
}

#[actor(remote)]
impl Profile {
    /// Writes `value` now, fenced; answers who wrote and the outcome.
    #[msg]
    fn set(&mut self, ctx: &mut Context, value: String) -> String {
        let Some(fence) = ctx.fence() else { return "no fence: not a cluster activation".into() };
        let outcome = self.storage.put(&fence, &self.key, &value).map_or_else(|e| e, |()| "stored".into());
        format!("{} at epoch {}: {outcome}", self.node, fence.epoch)
    }

    /// Prepares a write for later delivery (a slow flush).
    #[msg]
    fn set_later(&mut self, ctx: &mut Context, value: String) -> u64 {
        let Some(fence) = ctx.fence() else { return 0 };
        let epoch = fence.epoch;
        self.outbox.lock().push((fence, self.key.clone(), value));
        epoch
    }
}

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let net = InMemoryOverlay::new();
    let store: Arc<dyn LeaseStore> = Arc::new(MemoryLeaseStore::new());
    let cfg = ClusterConfig {
        auth_token: Some("fenced storage example: a secret of 32+ characters".into()),
        ..ClusterConfig::default()
    };
    let storage = Arc::new(Storage::default());
    let outbox: Outbox = Arc::default();
    let factory = |node: &'static str| {
        let (storage, outbox) = (Arc::clone(&storage), Arc::clone(&outbox));
        move |key: &str| Profile {
            key: key.to_string(),
            node: node.to_string(),
            storage: Arc::clone(&storage),
            outbox: Arc::clone(&outbox),
        }
    };
    // a starts alone, so it takes every shard.
    let a = ClusterNode::start(NodeId::new("a"), Arc::clone(&store), net.clone(), cfg.clone()).await?;
    let profiles_a = a.keyed("profiles", KeyedConfig::new(8), factory("a"))?;
    println!("1. a owns the key and writes");
    println!("  {}", set(&profiles_a, "v1").await);
    let epoch = profiles_a.get("alice").set_later("v2 (from a, late)".into()).await?;
    println!("  a also prepares a write at epoch {epoch}; it is slow to leave");

    println!("2. b joins, a shuts down: b owns the key at a higher epoch and writes");
    let b = ClusterNode::start(NodeId::new("b"), Arc::clone(&store), net.clone(), cfg).await?;
    let profiles_b = b.keyed("profiles", KeyedConfig::new(8), factory("b"))?;
    a.shutdown().await;
    println!("  {}", set(&profiles_b, "v3").await);

    println!("3. a's prepared write arrives now");
    for (fence, key, value) in outbox.lock().drain(..) {
        let outcome = storage.put(&fence, &key, &value).map_or_else(|e| e, |()| "stored (fencing failed!)".into());
        println!("  epoch {}: {outcome}", fence.epoch);
    }
    println!("  alice = {:?}", storage.rows.lock().get("alice"));
    b.shutdown().await;
    println!("done");
    Ok(())
}

/// Sets alice's profile through `via`, retrying while the shard moves.
async fn set(via: &axactor_cluster::Keyed<Profile>, value: &str) -> String {
    for _ in 0..100 {
        match via.get("alice").set(value.to_string()).await {
            Ok(s) => return s,
            Err(_) => tokio::time::sleep(Duration::from_millis(50)).await,
        }
    }
    "no owner within 5 s".into()
}
