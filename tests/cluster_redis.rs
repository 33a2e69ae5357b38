//! Clusters whose leases live in a real Redis (`RedisLeaseStore`; where the
//! server comes from and when these tests skip: `support/redis.rs`), over
//! the in-memory overlay and over TCP, real clock: the scenarios of
//! `support/shared_store.rs` (routing, failover, graceful handover, a
//! restarted node's old leases).
#![allow(missing_docs)]

use std::sync::Arc;

use axactor_cluster::{LeaseStore, RedisLeaseStore};
use axactor_tests::keyed::Net;
use axactor_tests::redis::{test_redis, unique_prefix};
use axactor_tests::shared_store::{
    SharedStore, restarted_node_does_not_renew_old_leases, route_fail_over_and_hand_over,
};

/// A Redis and a key prefix of `test`'s own; `None`: skip the test.
async fn redis_store(test: &str) -> Option<SharedStore> {
    let redis = test_redis(test).await?;
    let (url, prefix) = (redis.url.clone(), unique_prefix(test));
    let connect = move || {
        let (url, prefix) = (url.clone(), prefix.clone());
        async move { Arc::new(RedisLeaseStore::connect(&url, &prefix).await.expect("connect")) as Arc<dyn LeaseStore> }
    };
    Some(SharedStore::new("redis", redis, connect).await)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn redis_cluster_routes_fails_over_and_hands_over_in_memory() {
    let Some(stores) = redis_store("cluster-memory").await else { return };
    route_fail_over_and_hand_over(&stores, Net::memory()).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn redis_cluster_routes_fails_over_and_hands_over_over_tcp() {
    let Some(stores) = redis_store("cluster-tcp").await else { return };
    route_fail_over_and_hand_over(&stores, Net::tcp()).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_restarted_node_does_not_renew_its_old_sessions_leases() {
    let Some(stores) = redis_store("restart").await else { return };
    restarted_node_does_not_renew_old_leases(&stores).await;
}
