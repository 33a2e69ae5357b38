//! The node's long-running drivers: the accept loop (each inbound link gets
//! a responder handshake, within the pending-handshake caps: node-wide and
//! per source address) and the
//! membership loop (refresh our membership record, read the members, dial
//! every member we have no session with, with capped exponential backoff
//! per name). Both end when the node's stop signal is set.

use std::collections::BTreeSet;
use std::sync::Arc;

use tokio::time::{Instant, MissedTickBehavior};

use super::conn::{self, Role};
use super::inspect::bump;
use super::shared::{DialState, Shared, backoff};
use crate::id::{NodeId, SessionId};
use crate::overlay::Listener;

/// What an inbound handshake holds until it ends: a node-wide permit and
/// its source's slot (none for an unknown source).
pub(crate) struct HandshakeSlot {
    _permit: tokio::sync::OwnedSemaphorePermit,
    _source: Option<super::sources::SourceSlot>,
}

/// Accepts inbound links until the node stops; dropping the listener then
/// stops the overlay from accepting more.
pub(crate) async fn accept_loop(node: Arc<Shared>, mut listener: Listener) {
    loop {
        let link = tokio::select! {
            biased;
            _ = node.stop.wait_for(|s| *s) => break,
            link = listener.accept() => match link {
                Some(link) => link,
                None => break,
            },
        };
        let Ok(permit) = Arc::clone(&node.handshakes).try_acquire_owned() else {
            bump(&node.counters.handshake_capacity_exceeded);
            tracing::debug!(node = %node.id, remote = %link.remote, "too many pending handshakes; closing");
            link.tx.close();
            continue;
        };
        // Taken with a node-wide permit only: the per-source table never
        // holds more entries than there are permits.
        let Some(source) = node.handshake_sources.try_enter(&link.source) else {
            bump(&node.counters.handshake_source_limit_exceeded);
            tracing::debug!(node = %node.id, remote = %link.remote, "too many pending handshakes from this address; closing");
            link.tx.close();
            continue;
        };
        let slot = HandshakeSlot { _permit: permit, _source: source };
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
            _ = node.stop.wait_for(|s| *s) => break,
            _ = tick.tick() => {}
            _ = node.dial_kick.notified() => {}
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
        if node.members.update(&node.id, &members, Instant::now()) {
            node.kick.notify_one();
        }
        for peer in dial_targets(&node, &members, Instant::now()) {
            let node2 = Arc::clone(&node);
            node.spawn(dial(node2, peer));
        }
    }
}

/// The member names to dial now (marked in progress): not us, no session
/// in the table, no dial in progress, backoff elapsed.
fn dial_targets(node: &Shared, members: &[SessionId], now: Instant) -> Vec<NodeId> {
    let names: BTreeSet<&NodeId> = members.iter().map(|s| &s.node).filter(|n| **n != node.id).collect();
    let table = node.table.lock();
    let mut dials = node.dials.lock();
    // Forget the schedule of names that left the membership.
    dials.retain(|name, st| st.in_progress || names.contains(name));
    let mut targets = Vec::new();
    for name in names {
        if table.get(name).is_some() {
            continue;
        }
        let st = dials.entry(name.clone()).or_insert(DialState { in_progress: false, failures: 0, not_before: now });
        if st.in_progress || now < st.not_before {
            continue;
        }
        st.in_progress = true;
        targets.push(name.clone());
    }
    targets
}

async fn dial(node: Arc<Shared>, peer: NodeId) {
    let link = tokio::select! {
        biased;
        _ = node.stop.wait_for(|s| *s) => return,
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

impl Shared {
    /// Records the end of a dial's handshake: success resets the backoff,
    /// failure doubles it (capped at `reconnect_max`).
    pub(crate) fn dial_done(&self, peer: &NodeId, ok: bool) {
        let now = Instant::now();
        let mut dials = self.dials.lock();
        let st = dials.entry(peer.clone()).or_insert(DialState { in_progress: false, failures: 0, not_before: now });
        st.in_progress = false;
        st.failures = if ok { 0 } else { st.failures.saturating_add(1) };
        st.not_before = now + backoff(st.failures, self.cfg.reconnect_min, self.cfg.reconnect_max);
    }
}
