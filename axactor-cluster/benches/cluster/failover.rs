//! Failover (the owner crashes: `ClusterNode::kill`) and graceful handover
//! (the owner leaves: `ClusterNode::shutdown`) on three TCP nodes.
//!
//! Each trial starts a fresh cluster `a`, `b`, `c`, waits until placement
//! has settled, picks the first key held by `b` (its owner), checks that the
//! asking node reaches it, then stops the owner and asks `node()` in a loop
//! until an activation on another node answers. The time is taken from
//! just before the stop call to that answer. Trials alternate the asking
//! node between `a` and `c`, so that the new owner (chosen by placement) is
//! the asking node itself in some trials and a remote node in others.

use std::time::{Duration, Instant};

use crate::measure::percentiles;
use crate::nodes::{Cluster, Transport};

/// How the owner goes away.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Stop {
    /// `kill()`: a crash, no lease released.
    Kill,
    /// `shutdown()`: graceful, leases released and peers told.
    Shutdown,
}

/// Asks timed before the stop (the round trip of the trial's cluster).
const RTT_ASKS: usize = 500;

/// Longest a trial waits for another node to answer.
const BOUND: Duration = Duration::from_secs(30);

/// What one trial observed.
#[derive(Debug, Clone)]
pub(crate) struct Trial {
    /// From the stop call to the first answer by another node.
    pub(crate) took: Duration,
    /// Who asked.
    pub(crate) asker: String,
    /// Who answered.
    pub(crate) new_owner: String,
    /// Asks that failed meanwhile (each within `request_timeout`).
    pub(crate) failed_asks: usize,
    /// p50 of sequential `node()` asks from the asking node to the owner
    /// before the stop, in microseconds.
    pub(crate) rtt_us: f64,
}

/// Trial number `n` (see the module docs).
pub(crate) async fn trial(stop: Stop, n: usize) -> Trial {
    let cluster = Cluster::start(&["a", "b", "c"], Transport::Tcp).await;
    let owner = "b";
    let key = cluster.key_owned_by(owner);
    let from = if n.is_multiple_of(2) { 0 } else { 2 };
    let asker = cluster.keyed[from].get(key.as_str());
    let mut samples = Vec::with_capacity(RTT_ASKS);
    for _ in 0..RTT_ASKS {
        let t = Instant::now();
        assert_eq!(asker.node().await.expect("ask before the stop"), owner);
        samples.push(t.elapsed());
    }
    let rtt_us = percentiles(samples).p50;
    let victim = cluster.nodes[1].clone();
    let start = Instant::now();
    let shutdown = match stop {
        Stop::Kill => {
            victim.kill();
            None
        }
        Stop::Shutdown => Some(tokio::spawn(async move { victim.shutdown().await })),
    };
    let mut failed_asks = 0;
    let new_owner = loop {
        match asker.node().await {
            Ok(name) if name != owner => break name,
            Ok(_) => {}
            Err(_) => {
                failed_asks += 1;
                // An error can come back at once (no connection yet): do not spin.
                tokio::time::sleep(Duration::from_millis(1)).await;
            }
        }
        assert!(start.elapsed() < BOUND, "no other node answered within {BOUND:?}");
    };
    let took = start.elapsed();
    if let Some(h) = shutdown {
        h.await.expect("shutdown task");
    }
    cluster.kill_all();
    Trial { took, asker: cluster.nodes[from].id().to_string(), new_owner, failed_asks, rtt_us }
}
