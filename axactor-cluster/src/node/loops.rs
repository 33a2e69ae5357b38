//! The node's long-running drivers: the accept loop (each inbound link gets
//! a responder handshake, within the pending-handshake caps: node-wide and
//! per source address) and the
//! membership loop (refresh our membership record, read the members, dial
//! every member we have no session with, with capped exponential backoff
//! per name). Both end when the node's stop signal is set.

use std::sync::Arc;

use tokio::time::{Instant, MissedTickBehavior};

use super::conn::{self, Role};
use super::inspect::bump;
use super::peers::SlotRefused;
use super::shared::Shared;
use crate::id::NodeId;
use crate::overlay::Listener;

/// Accepts inbound links until the node stops; dropping the listener then
/// stops the overlay from accepting more.
pub(crate) async fn accept_loop(node: Arc<Shared>, mut listener: Listener) {
    loop {
        let link = tokio::select! {
            biased;
            _ = node.tasks.stopped() => break,
            link = listener.accept() => match link {
                Some(link) => link,
                None => break,
            },
        };
        let slot = match node.peers.try_handshake(&link.source) {
            Ok(slot) => slot,
            Err(SlotRefused::Capacity) => {
                bump(&node.counters.handshake_capacity_exceeded);
                tracing::debug!(node = %node.id, remote = %link.remote, "too many pending handshakes; closing");
                link.tx.close();
                continue;
            }
            Err(SlotRefused::Source) => {
                bump(&node.counters.handshake_source_limit_exceeded);
                tracing::debug!(node = %node.id, remote = %link.remote, "too many pending handshakes from this address; closing");
                link.tx.close();
                continue;
            }
        };
        node.spawn(conn::run(Arc::clone(&node), link, Role::Responder, Some(slot)));
    }
}

/// Every `heartbeat_interval`: refresh membership, then dial the members we
/// have no session with.
pub(crate) async fn membership_loop(node: Arc<Shared>) {
    let mut tick = tokio::time::interval(node.cfg.heartbeat_interval);
    tick.set_missed_tick_behavior(MissedTickBehavior::Delay);
    let bound = node.cfg.lease_store_timeout;
    loop {
        tokio::select! {
            biased;
            _ = node.tasks.stopped() => break,
            _ = tick.tick() => {}
            _ = node.peers.dial_kicked() => {}
        }
        let store = &node.store;
        match tokio::time::timeout(bound, store.heartbeat_member(&node.session, node.cfg.node_ttl)).await {
            Ok(Ok(())) => {}
            Ok(Err(e)) => tracing::warn!(node = %node.id, error = %e, "membership refresh failed"),
            Err(_) => tracing::warn!(node = %node.id, "membership refresh timed out"),
        }
        let members = match tokio::time::timeout(bound, store.members()).await {
            Ok(Ok(members)) => members,
            Ok(Err(e)) => {
                tracing::debug!(node = %node.id, error = %e, "reading members failed");
                continue;
            }
            Err(_) => continue,
        };
        if node.peers.members().update(&node.id, &members, Instant::now()) {
            node.hosts.kick();
        }
        for peer in node.peers.dial_targets(&node.id, &members, Instant::now()) {
            let node2 = Arc::clone(&node);
            node.spawn(dial(node2, peer));
        }
    }
}

async fn dial(node: Arc<Shared>, peer: NodeId) {
    let link = tokio::select! {
        biased;
        _ = node.tasks.stopped() => return,
        link = node.overlay.inner().dial(&node.id, &peer) => link,
    };
    match link {
        Ok(link) => conn::run(node, link, Role::Initiator(peer), None).await,
        Err(e) => {
            bump(&node.counters.dial_failures);
            tracing::debug!(node = %node.id, peer = %peer, error = %e, "dial failed");
            node.dial_done(&peer, false);
        }
    }
}
