//! `ClusterNode::start` refuses bad configuration with a typed error and
//! never panics: durations too large to add to an instant, counts too large
//! for a table, and auth tokens too weak to resist an offline guess.

use std::sync::Arc;
use std::time::Duration;

use axactor_cluster::{
    ClusterConfig, ClusterError, ClusterNode, InMemoryOverlay, LeaseStore, MemoryLeaseStore, NodeId,
};
use axactor_tests::activations::paused_cfg;

/// Starts one node with `cfg`; the field named by the config error, if any.
async fn start_refused(cfg: ClusterConfig) -> Option<&'static str> {
    let store: Arc<dyn LeaseStore> = Arc::new(MemoryLeaseStore::new());
    match ClusterNode::start(NodeId::new("a"), store, InMemoryOverlay::new(), cfg).await {
        Ok(node) => {
            node.shutdown().await;
            None
        }
        Err(ClusterError::Config(problem)) => Some(problem.field),
        Err(other) => panic!("expected a config error, got {other}"),
    }
}

#[tokio::test(start_paused = true)]
async fn duration_max_in_any_field_is_refused_at_start_naming_the_field() {
    let base = paused_cfg;
    let cases: [(&str, ClusterConfig); 10] = [
        ("lease_ttl", ClusterConfig { lease_ttl: Duration::MAX, ..base() }),
        ("renew_interval", ClusterConfig { renew_interval: Duration::MAX, ..base() }),
        ("node_ttl", ClusterConfig { node_ttl: Duration::MAX, ..base() }),
        ("heartbeat_interval", ClusterConfig { heartbeat_interval: Duration::MAX, ..base() }),
        ("request_timeout", ClusterConfig { request_timeout: Duration::MAX, ..base() }),
        ("handshake_timeout", ClusterConfig { handshake_timeout: Duration::MAX, ..base() }),
        ("reconnect_min", ClusterConfig { reconnect_min: Duration::MAX, ..base() }),
        ("reconnect_max", ClusterConfig { reconnect_max: Duration::MAX, ..base() }),
        ("rebalance_settle", ClusterConfig { rebalance_settle: Duration::MAX, ..base() }),
        ("lease_store_timeout", ClusterConfig { lease_store_timeout: Duration::MAX, ..base() }),
    ];
    for (field, cfg) in cases {
        assert_eq!(start_refused(cfg).await, Some(field), "{field} = Duration::MAX");
    }
}

#[tokio::test(start_paused = true)]
async fn oversized_limits_are_refused_at_start_naming_the_field() {
    let cfg = ClusterConfig { max_pending_handshakes: usize::MAX, ..paused_cfg() };
    assert_eq!(start_refused(cfg).await, Some("max_pending_handshakes"));
    let cfg = ClusterConfig { max_inflight_requests: usize::MAX, ..paused_cfg() };
    assert_eq!(start_refused(cfg).await, Some("max_inflight_requests"));
}

#[tokio::test(start_paused = true)]
async fn weak_tokens_are_refused_at_start_unless_allowed() {
    let weak = |token: &str| ClusterConfig { auth_token: Some(token.into()), ..paused_cfg() };
    assert_eq!(start_refused(weak("s3cret")).await, Some("auth_token"));
    assert_eq!(start_refused(weak(&"x".repeat(40))).await, Some("auth_token"));
    let allowed = ClusterConfig { allow_weak_token: true, ..weak("s3cret") };
    assert_eq!(start_refused(allowed).await, None);
    assert_eq!(start_refused(weak(&ClusterConfig::generate_token())).await, None);
}
