//! The node's `inspect()` numbers through the `metrics` facade (feature
//! `metrics`): every counter of [`Counters`], the labelled maps as one
//! metric each with a `reason` (or `kind`) label, and gauges for peers,
//! owned shards per hosted registry and each bounded table's use and cap.
//! Every metric carries a `node` label (the node's name), so several nodes
//! in one process stay apart. docs/operations.md ("Metrics") lists them.
//!
//! How: a snapshot is exported, not each bump. The node's counters stay
//! the plain atomics `inspect()` reads (nothing added on any hot path);
//! [`export`] writes a snapshot with `Counter::absolute` (a recorder keeps
//! the larger of its value and ours), so the exported counters equal the
//! node's totals as of the export, never go backwards, and exporting twice
//! (the periodic task and a caller's `export_metrics`, to two recorders)
//! counts nothing twice. The cost is one snapshot per
//! [`METRICS_EXPORT_INTERVAL`]; the price is that a scrape may lag the node
//! by that interval (call `ClusterNode::export_metrics` before a scrape to
//! avoid it).

use std::sync::Arc;
use std::time::Duration;

use metrics::{Label, counter, gauge};
use tokio::time::MissedTickBehavior;

use super::inspect::{ClusterInspect, Counters};
use super::shared::Shared;

/// How often a node writes its metrics to the global recorder (and once
/// more as it stops).
pub const METRICS_EXPORT_INTERVAL: Duration = Duration::from_secs(1);

/// Writes `snap` (taken from `node`) to the current recorder.
pub(crate) fn export(node: &Shared, snap: &ClusterInspect) {
    let name = node.id.as_str().to_string();
    let plain = |metric: &'static str, value: u64| {
        counter!(metric, "node" => name.clone()).absolute(value);
    };
    let labelled = |metric: &'static str, label: &'static str, map: &std::collections::BTreeMap<&'static str, u64>| {
        for (value, n) in map {
            let labels = vec![Label::new("node", name.clone()), Label::from_static_parts(label, value)];
            counter!(metric, labels).absolute(*n);
        }
    };
    // Destructured in full: a new counter does not compile until it is exported here.
    let Counters {
        handshakes_established,
        handshake_failures,
        frame_rejections,
        preauth_budget_exceeded,
        preauth_sealed_frames,
        handshake_capacity_exceeded,
        peer_table_full,
        sessions_replaced,
        duplicate_connections,
        heartbeat_timeouts,
        goodbyes_received,
        tell_batches_received,
        batched_tells_received,
        mailbox_waits,
        mailbox_wait_micros,
        frames_read_inline,
        data_rejected_no_registry,
        dropped,
        dial_failures,
        requests_rejected,
        leases,
        member_auth_failures,
        handshake_source_limit_exceeded,
        events_dropped,
    } = &snap.counters;
    plain("axactor_cluster_handshakes_established_total", *handshakes_established);
    labelled("axactor_cluster_handshake_failures_total", "reason", handshake_failures);
    labelled("axactor_cluster_frame_rejections_total", "reason", frame_rejections);
    plain("axactor_cluster_preauth_budget_exceeded_total", *preauth_budget_exceeded);
    plain("axactor_cluster_preauth_sealed_frames_total", *preauth_sealed_frames);
    plain("axactor_cluster_handshake_capacity_exceeded_total", *handshake_capacity_exceeded);
    plain("axactor_cluster_peer_table_full_total", *peer_table_full);
    plain("axactor_cluster_sessions_replaced_total", *sessions_replaced);
    plain("axactor_cluster_duplicate_connections_total", *duplicate_connections);
    plain("axactor_cluster_heartbeat_timeouts_total", *heartbeat_timeouts);
    plain("axactor_cluster_goodbyes_received_total", *goodbyes_received);
    plain("axactor_cluster_tell_batches_received_total", *tell_batches_received);
    plain("axactor_cluster_batched_tells_received_total", *batched_tells_received);
    plain("axactor_cluster_mailbox_waits_total", *mailbox_waits);
    plain("axactor_cluster_mailbox_wait_micros_total", *mailbox_wait_micros);
    plain("axactor_cluster_frames_read_inline_total", *frames_read_inline);
    plain("axactor_cluster_data_rejected_no_registry_total", *data_rejected_no_registry);
    labelled("axactor_cluster_dropped_total", "reason", dropped);
    plain("axactor_cluster_dial_failures_total", *dial_failures);
    labelled("axactor_cluster_requests_rejected_total", "reason", requests_rejected);
    labelled("axactor_cluster_lease_events_total", "kind", leases);
    plain("axactor_cluster_member_auth_failures_total", *member_auth_failures);
    plain("axactor_cluster_handshake_source_limit_exceeded_total", *handshake_source_limit_exceeded);
    plain("axactor_cluster_events_dropped_total", *events_dropped);

    gauge!("axactor_cluster_peers", "node" => name.clone()).set(snap.peers.len() as f64);
    // Every hosted registry, so one that lost its last shard reads 0.
    for host in node.hosts.snapshot() {
        let registry = host.id().to_string();
        let owned = snap.owned_count(&registry) as f64;
        gauge!("axactor_cluster_owned_shards", "node" => name.clone(), "registry" => registry).set(owned);
    }
    for t in &snap.tables {
        let labels = vec![Label::new("node", name.clone()), Label::new("table", t.table.clone())];
        gauge!("axactor_cluster_table_entries", labels.clone()).set(t.len as f64);
        gauge!("axactor_cluster_table_capacity", labels).set(t.cap as f64);
    }
}

/// Exports every [`METRICS_EXPORT_INTERVAL`] until the node stops, then once
/// more (the final counts of a node shutting down).
pub(crate) async fn export_loop(node: Arc<Shared>) {
    let mut tick = tokio::time::interval(METRICS_EXPORT_INTERVAL);
    tick.set_missed_tick_behavior(MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            biased;
            _ = node.tasks.stopped() => break,
            _ = tick.tick() => export(&node, &node.inspect()),
        }
    }
    export(&node, &node.inspect());
}
