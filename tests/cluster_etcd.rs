//! Clusters whose leases live in a real etcd (`EtcdLeaseStore`; where the
//! server comes from and when these tests skip: `support/etcd.rs`), over
//! the in-memory overlay and over TCP, real clock: the keyed fencing
//! scenarios of `support/shared_store.rs` (routing, failover, graceful
//! handover, a restarted node's old leases), as on Redis.
#![allow(missing_docs)]

use std::sync::Arc;

use axactor_cluster::{EtcdLeaseStore, LeaseStore};
use axactor_tests::etcd::{test_etcd, unique_prefix};
use axactor_tests::keyed::Net;
use axactor_tests::shared_store::{
    SharedStore, restarted_node_does_not_renew_old_leases, route_fail_over_and_hand_over,
};

/// An etcd and a key prefix of `test`'s own; `None`: skip the test.
async fn etcd_store(test: &str) -> Option<SharedStore> {
    let etcd = test_etcd(test).await?;
    let (endpoints, prefix) = (etcd.endpoints.clone(), unique_prefix(test));
    let connect = move || {
        let (endpoints, prefix) = (endpoints.clone(), prefix.clone());
        async move {
            let endpoints: Vec<&str> = endpoints.iter().map(String::as_str).collect();
            Arc::new(EtcdLeaseStore::connect(&endpoints, &prefix).await.expect("connect")) as Arc<dyn LeaseStore>
        }
    };
    Some(SharedStore::new("etcd", etcd, connect).await)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn etcd_cluster_routes_fails_over_and_hands_over_in_memory() {
    let Some(stores) = etcd_store("cluster-memory").await else { return };
    route_fail_over_and_hand_over(&stores, Net::memory()).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn etcd_cluster_routes_fails_over_and_hands_over_over_tcp() {
    let Some(stores) = etcd_store("cluster-tcp").await else { return };
    route_fail_over_and_hand_over(&stores, Net::tcp()).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_restarted_node_does_not_renew_its_old_sessions_leases() {
    let Some(stores) = etcd_store("restart").await else { return };
    restarted_node_does_not_renew_old_leases(&stores).await;
}
