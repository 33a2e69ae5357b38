//! One registry, two shard counts (a rolling deploy from 16 to 32 shards
//! caught half way): a count mismatch is impossible to act on.
//!
//! - registering with another count than a connected peer's is refused
//!   with `ClusterError::ShardCountMismatch` naming both counts;
//! - a node that registered before it saw the others (so nothing refused
//!   it) takes none of the registry's shards: the lease store holds them
//!   under the other count, and says so (`shard_count_conflict`); keys
//!   driven through both nodes never have two activations at once, and the
//!   mismatched node's requests fail with `ShardCountMismatch`, definitely;
//! - once every node of the old count has left (and its leases expired), the
//!   new count takes over.
#![allow(missing_docs)]

use std::sync::Arc;
use std::time::Duration;

use axactor_cluster::InMemoryOverlay;
use axactor_cluster::{ClusterError, ClusterNode, Keyed, KeyedConfig, LeaseStore, MemoryLeaseStore, RemoteError};
use axactor_tests::activations::{
    ActivationLog, Probe, check_single_activation, mesh, paused_cfg, start_node, wait_until,
};

const REG: &str = "accounts";

#[tokio::test(start_paused = true)]
async fn registering_another_count_than_a_connected_peer_is_refused() {
    let net = InMemoryOverlay::new();
    let store: Arc<dyn LeaseStore> = Arc::new(MemoryLeaseStore::new());
    let log = ActivationLog::new();
    let a = start_node("a", &store, &net, &paused_cfg()).await;
    let b = start_node("b", &store, &net, &paused_cfg()).await;
    let _ka = a.keyed(REG, KeyedConfig::new(16), log.factory("a")).expect("a registers 16 shards");
    mesh(&[&a, &b]).await;
    // b has seen a's announcement once the mesh is up and a hosting message crossed.
    wait_until(Duration::from_secs(10), "b knows what a hosts", || {
        b.keyed(REG, KeyedConfig::new(32), log.factory("b")).is_err()
    })
    .await;
    match b.keyed(REG, KeyedConfig::new(32), log.factory("b")) {
        Err(ClusterError::ShardCountMismatch { registry, ours, theirs, peer }) => {
            assert_eq!((registry.as_str(), ours, theirs, peer.as_str()), (REG, 32, 16, "a"));
        }
        other => panic!("expected a shard-count mismatch, got {other:?}"),
    }
    let kb = b.keyed(REG, KeyedConfig::new(16), log.factory("b")).expect("the same count is fine");
    assert_eq!(kb.registry(), REG);
    a.shutdown().await;
    b.shutdown().await;
}

/// Nodes `a` (16 shards, holding all of them) and `b` (32), registered
/// while cut apart, so neither could refuse the other; still apart.
async fn registered_apart(
    net: &InMemoryOverlay,
    store: &Arc<dyn LeaseStore>,
    log: &ActivationLog,
) -> (ClusterNode, ClusterNode, Keyed<Probe>, Keyed<Probe>) {
    let cfg = paused_cfg();
    net.partition("a", "b");
    let a = start_node("a", store, net, &cfg).await;
    let b = start_node("b", store, net, &cfg).await;
    let ka = a.keyed(REG, KeyedConfig::new(16), log.factory("a")).expect("a: 16 shards");
    wait_until(Duration::from_secs(30), "a takes its shards", || a.inspect().owned_count(REG) == 16).await;
    let kb = b.keyed(REG, KeyedConfig::new(32), log.factory("b")).expect("b: 32 shards, nobody to object yet");
    (a, b, ka, kb)
}

#[tokio::test(start_paused = true)]
async fn two_counts_never_run_one_key_twice_and_the_store_says_why() {
    let net = InMemoryOverlay::new();
    let store: Arc<dyn LeaseStore> = Arc::new(MemoryLeaseStore::new());
    let log = ActivationLog::with_stop_delay(Duration::from_millis(40));
    let (a, b, ka, kb) = registered_apart(&net, &store, &log).await;
    net.heal("a", "b");
    mesh(&[&a, &b]).await;
    let keys: Vec<String> = (0..40).map(|i| format!("key-{i}")).collect();
    let mut mismatches = 0;
    for round in 0..20 {
        for k in &keys {
            ka.get(k).incr().await.expect("a serves every key (it holds the count's leases)");
            match kb.get(k).incr().await {
                Ok(_) => panic!("{k}: b served a key under another count (round {round})"),
                Err(RemoteError::ShardCountMismatch) => mismatches += 1,
                Err(e) => assert!(e.is_definitely_not_executed(), "{k}: {e} may have run"),
            }
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    assert!(mismatches > 0, "b's requests reach a and are refused as another count");
    let snap = b.inspect();
    assert_eq!(snap.owned_count(REG), 0, "b takes no shard while the registry is live under 16");
    assert!(snap.counters.leases.get("shard_count_conflict").copied().unwrap_or(0) >= 1, "{:?}", snap.counters.leases);
    if let Err(report) = check_single_activation(&log.events()) {
        panic!("two activations of one key:\n{report}");
    }
    assert!(log.events().iter().all(|e| e.node != "b"), "nothing ran on b");

    // The old count leaves: once its leases are gone, the new count takes over.
    a.shutdown().await;
    wait_until(Duration::from_secs(60), "b takes the registry at 32 shards", || b.inspect().owned_count(REG) == 32)
        .await;
    let served = kb.get("key-1").incr().await.expect("served by b now");
    assert_eq!(served.0, "b");
    b.shutdown().await;
}

/// A lease notice numbers shards by its sender's count: a node of another
/// count must not take it as the owner of its own shard of that number. If
/// it did, its requests for the keys the two numberings share would be
/// served (against "the mismatched node's requests fail"), and a monitor it
/// placed would watch a lease of its own count that nobody holds, so a lost
/// connection would fire `NodeDown` while the watched activation runs on
/// (simulation seed 13726).
#[tokio::test(start_paused = true)]
async fn lease_notices_of_another_count_do_not_route_the_mismatched_node() {
    let net = InMemoryOverlay::new();
    let store: Arc<dyn LeaseStore> = Arc::new(MemoryLeaseStore::new());
    let log = ActivationLog::new();
    net.partition("c", "b");
    let (a, b, _ka, kb) = registered_apart(&net, &store, &log).await;
    // c (16) registers while it sees a only, then meets b too.
    let c = start_node("c", &store, &net, &paused_cfg()).await;
    mesh(&[&a, &c]).await;
    let _kc = c.keyed(REG, KeyedConfig::new(16), log.factory("c")).expect("c: 16 shards, like a");
    net.heal("a", "b");
    net.heal("c", "b");
    mesh(&[&a, &b, &c]).await;
    // a leaves: c takes its shards, and tells b of each (count-16 numbers).
    a.shutdown().await;
    wait_until(Duration::from_secs(60), "c takes every shard", || c.inspect().owned_count(REG) == 16).await;
    let keys: Vec<String> = (0..40).map(|i| format!("key-{i}")).collect();
    let mut mismatches = 0;
    for k in &keys {
        match kb.get(k).incr().await {
            Ok(served) => panic!("{k}: b's request was served under the other count by {}", served.0),
            Err(RemoteError::ShardCountMismatch) => mismatches += 1,
            Err(e) => assert!(e.is_definitely_not_executed(), "{k}: {e} may have run"),
        }
        match kb.get(k).monitor().await {
            Ok(_) => panic!("{k}: b placed a monitor under the other count"),
            Err(e) => assert_eq!(e, RemoteError::ShardCountMismatch, "{k}: monitor"),
        }
    }
    assert_eq!(mismatches, keys.len(), "every request of b fails as another count");
    let ignored = b.inspect().counters.dropped.get("lease_notice_other_count").copied().unwrap_or(0);
    assert!(ignored >= 1, "b counts the notices it ignored: {:?}", b.inspect().counters.dropped);
    b.shutdown().await;
    c.shutdown().await;
}
