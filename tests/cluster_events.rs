//! The cluster event stream (`ClusterNode::subscribe_events`), on the
//! paused clock:
//!
//! - a node alone acquires every shard; a second node joins and the first
//!   hands shards over (handed over → stopped → released), the newcomer
//!   acquires them at greater epochs; peers come up; a graceful shutdown
//!   releases the rest, the survivor acquires them at greater epochs, sees
//!   the peer go down, and the stopped node's stream ends;
//! - a node with a different token shows up as authentication failures by
//!   reason, on both sides;
//! - a subscriber that never reads loses events, counted in its stream
//!   (`Lagged`) and in `inspect()`, while the node goes on (every shard
//!   acquired, asks answered) and another subscriber misses nothing.
#![allow(missing_docs)]

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use axactor_cluster::{
    AuthFailureReason, ClusterConfig, ClusterEvent, ClusterEvents, ClusterNode, InMemoryOverlay, KeyedConfig,
    LeaseStore, MemoryLeaseStore, NodeEvent, PeerDirection,
};
use axactor_tests::activations::{ActivationLog, paused_cfg, start_node, wait_until};

const REG: &str = "events";
const SHARDS: u32 = 8;

/// The next node event (a `Lagged` fails the test: these subscribers keep up).
///
/// # Panics
/// If the stream ends or nothing arrives within 60 s of tokio time.
async fn next(events: &mut ClusterEvents) -> NodeEvent {
    match tokio::time::timeout(Duration::from_secs(60), events.recv()).await {
        Ok(Some(ClusterEvent::Node(e))) => e,
        Ok(Some(other)) => panic!("unexpected stream item {other:?}"),
        Ok(None) => panic!("the stream ended"),
        Err(_) => panic!("no event within 60 s"),
    }
}

/// Events until `done` says the ones seen so far are enough.
async fn until(events: &mut ClusterEvents, mut done: impl FnMut(&[NodeEvent]) -> bool) -> Vec<NodeEvent> {
    let mut seen = Vec::new();
    while !done(&seen) {
        seen.push(next(events).await);
    }
    seen
}

/// Shard → epoch of every `ShardAcquired` in `events`.
fn acquired(events: &[NodeEvent]) -> BTreeMap<u32, u64> {
    events
        .iter()
        .filter_map(|e| match e {
            NodeEvent::ShardAcquired { registry, shard, epoch } if registry == REG => Some((*shard, *epoch)),
            _ => None,
        })
        .collect()
}

fn released(events: &[NodeEvent]) -> BTreeMap<u32, u64> {
    events
        .iter()
        .filter_map(|e| match e {
            NodeEvent::ShardReleased { registry, shard, epoch } if registry == REG => Some((*shard, *epoch)),
            _ => None,
        })
        .collect()
}

#[tokio::test(start_paused = true)]
async fn shards_peers_and_a_graceful_shutdown_are_streamed() {
    let net = InMemoryOverlay::new();
    let store: Arc<dyn LeaseStore> = Arc::new(MemoryLeaseStore::new());
    let log = ActivationLog::new();
    let cfg = paused_cfg();
    let a = start_node("a", &store, &net, &cfg).await;
    let mut a_events = a.subscribe_events();
    let _ka = a.keyed(REG, KeyedConfig::new(SHARDS as usize), log.factory("a")).expect("registry");
    let first = until(&mut a_events, |seen| acquired(seen).len() == SHARDS as usize).await;
    let a_epochs = acquired(&first);

    // b joins: a sees it come up and hands shards over; b acquires them.
    let b = start_node("b", &store, &net, &cfg).await;
    let mut b_events = b.subscribe_events();
    let _kb = b.keyed(REG, KeyedConfig::new(SHARDS as usize), log.factory("b")).expect("registry");
    let a_seen = until(&mut a_events, |seen| {
        seen.iter().any(|e| matches!(e, NodeEvent::PeerUp { name, .. } if name.as_str() == "b"))
            && !released(seen).is_empty()
    })
    .await;
    let up = a_seen.iter().find_map(|e| match e {
        NodeEvent::PeerUp { name, session } if name.as_str() == "b" => Some(session.clone()),
        _ => None,
    });
    assert_eq!(up.as_ref(), Some(b.session()), "a names b's session");
    let (moved, moved_epoch) = released(&a_seen).into_iter().next().expect("a released a shard");
    // Handed over, then its activations stopped, then released: in that order.
    let pos = |want: &dyn Fn(&NodeEvent) -> bool| a_seen.iter().position(want).expect("event present");
    let handed = pos(&|e: &NodeEvent| matches!(e, NodeEvent::ShardHandedOver { shard, .. } if *shard == moved));
    let stopped = pos(&|e: &NodeEvent| matches!(e, NodeEvent::ShardStopped { shard, .. } if *shard == moved));
    let released_at = pos(&|e: &NodeEvent| matches!(e, NodeEvent::ShardReleased { shard, .. } if *shard == moved));
    assert!(handed < stopped && stopped < released_at, "{a_seen:#?}");
    assert_eq!(moved_epoch, a_epochs[&moved]);
    let b_seen = until(&mut b_events, |seen| acquired(seen).contains_key(&moved)).await;
    assert!(
        b_seen.iter().any(|e| matches!(e, NodeEvent::PeerUp { name, .. } if name.as_str() == "a")),
        "b saw a come up: {b_seen:#?}"
    );
    assert!(acquired(&b_seen)[&moved] > moved_epoch, "the new owner's epoch grows");

    // Let placement settle, then a leaves gracefully.
    wait_until(Duration::from_secs(120), "every shard held once", || {
        a.inspect().owned_count(REG) + b.inspect().owned_count(REG) == SHARDS as usize
            && b.inspect().owned_count(REG) > 0
            && a.inspect().owned_count(REG) > 0
    })
    .await;
    let a_held: BTreeMap<u32, u64> =
        a.inspect().shards.iter().filter(|s| s.registry == REG).map(|s| (s.shard, s.epoch)).collect();
    // Drain what b has seen so far.
    while b_events.try_recv().is_some() {}
    a.shutdown().await;

    // a's stream: each held shard released at its epoch, b down, then the end.
    let mut a_rest = Vec::new();
    while let Some(item) = tokio::time::timeout(Duration::from_secs(60), a_events.recv()).await.expect("ends") {
        match item {
            ClusterEvent::Node(e) => a_rest.push(e),
            other => panic!("unexpected stream item {other:?}"),
        }
    }
    for (shard, epoch) in &a_held {
        assert_eq!(released(&a_rest).get(shard), Some(epoch), "a released {shard}: {a_rest:#?}");
    }
    assert!(
        a_rest.iter().any(|e| matches!(e, NodeEvent::PeerDown { name, .. } if name.as_str() == "b")),
        "{a_rest:#?}"
    );
    assert!(a_events.is_closed());

    // b's stream: a down, and every shard a released acquired at a greater epoch.
    let a_session = a.session().clone();
    let b_rest = until(&mut b_events, |seen| {
        let got = acquired(seen);
        a_held.keys().all(|s| got.contains_key(s))
            && seen.iter().any(|e| matches!(e, NodeEvent::PeerDown { session, .. } if *session == a_session))
    })
    .await;
    for (shard, epoch) in &a_held {
        assert!(acquired(&b_rest)[shard] > *epoch, "shard {shard}: {b_rest:#?}");
    }
    b.shutdown().await;
}

#[tokio::test(start_paused = true)]
async fn a_wrong_token_node_is_streamed_as_an_auth_failure() {
    let net = InMemoryOverlay::new();
    let store: Arc<dyn LeaseStore> = Arc::new(MemoryLeaseStore::new());
    let a = start_node("a", &store, &net, &paused_cfg()).await;
    let mut a_events = a.subscribe_events();
    let wrong = ClusterConfig { auth_token: Some("another-deploy-token-0123456789abcdef".into()), ..paused_cfg() };
    let x = start_node("x", &store, &net, &wrong).await;
    let mut x_events = x.subscribe_events();

    // Each dials the other: each reports the other by name (outbound), and
    // may see the other's dial as an inbound failure (unnamed: its claimed
    // name is not authenticated).
    let names = |other: &'static str| {
        move |seen: &[NodeEvent]| {
            seen.iter().any(|e| matches!(e, NodeEvent::AuthFailed { peer: Some(p), .. } if p.as_str() == other))
        }
    };
    let a_seen = until(&mut a_events, names("x")).await;
    let x_seen = until(&mut x_events, names("a")).await;
    for seen in [&a_seen, &x_seen] {
        for e in seen {
            assert!(!matches!(e, NodeEvent::PeerUp { .. }), "no session across tokens: {e:?}");
            if let NodeEvent::AuthFailed { peer, direction, reason } = e {
                assert_eq!(*reason, AuthFailureReason::WrongToken, "{e:?}");
                assert_eq!(peer.is_some(), *direction == PeerDirection::Outbound, "{e:?}");
            }
        }
    }
    assert!(x.inspect().counters.member_auth_failures > 0);
    x.shutdown().await;
    a.shutdown().await;
}

#[tokio::test(start_paused = true)]
async fn a_slow_subscriber_loses_counted_events_and_never_holds_the_node_back() {
    let net = InMemoryOverlay::new();
    let store: Arc<dyn LeaseStore> = Arc::new(MemoryLeaseStore::new());
    let log = ActivationLog::new();
    let a = start_node("a", &store, &net, &paused_cfg()).await;
    let mut slow = a.subscribe_events_with_capacity(2);
    let mut keeping_up = a.subscribe_events();
    let shards = 16usize;
    let keyed = a.keyed(REG, KeyedConfig::new(shards), log.factory("a")).expect("registry");

    // The node acquires everything and answers while `slow` reads nothing.
    let seen = until(&mut keeping_up, |seen| acquired(seen).len() == shards).await;
    assert_eq!(seen.len(), shards, "only acquisitions happened: {seen:#?}");
    for i in 0..32 {
        keyed.get(format!("k{i}")).incr().await.expect("served");
    }
    assert_eq!(a.inspect().owned_count(REG), shards);

    let dropped = a.inspect().counters.events_dropped;
    assert_eq!(dropped, (shards - 2) as u64, "one per acquisition that did not fit");
    let mut items = Vec::new();
    while let Some(item) = slow.try_recv() {
        items.push(item);
    }
    assert_eq!(items.len(), 3, "{items:#?}");
    assert!(matches!(items[0], ClusterEvent::Node(NodeEvent::ShardAcquired { .. })));
    assert!(matches!(items[1], ClusterEvent::Node(NodeEvent::ShardAcquired { .. })));
    assert_eq!(items[2], ClusterEvent::Lagged(dropped));
    // At shutdown: a stop and a release per shard; two fit, the rest is one gap.
    a.shutdown().await;
    let mut rest = Vec::new();
    while let Some(item) = slow.recv().await {
        rest.push(item);
    }
    let total = 2 * shards as u64;
    assert_eq!(rest.len(), 3, "{rest:#?}");
    assert_eq!(rest[2], ClusterEvent::Lagged(total - 2));
    assert_eq!(a.inspect().counters.events_dropped, dropped + total - 2);
    // The other subscriber got them all.
    let mut all = Vec::new();
    while let Some(ClusterEvent::Node(e)) = keeping_up.recv().await {
        all.push(e);
    }
    assert_eq!(released(&all).len(), shards);
}

/// A node started alone reports its registry's acquisitions with epochs
/// that grow across restarts of the node (a new session acquires anew).
#[tokio::test(start_paused = true)]
async fn a_restarted_node_acquires_at_greater_epochs() {
    let net = InMemoryOverlay::new();
    let store: Arc<dyn LeaseStore> = Arc::new(MemoryLeaseStore::new());
    let log = ActivationLog::new();
    let mut last: BTreeMap<u32, u64> = BTreeMap::new();
    for run in 0..3 {
        let node: ClusterNode = start_node("a", &store, &net, &paused_cfg()).await;
        let mut events = node.subscribe_events();
        let _k = node.keyed(REG, KeyedConfig::new(4), log.factory("a")).expect("registry");
        let now = acquired(&until(&mut events, |seen| acquired(seen).len() == 4).await);
        for (shard, epoch) in &now {
            if let Some(before) = last.get(shard) {
                assert!(epoch > before, "run {run}, shard {shard}: {epoch} after {before}");
            }
        }
        last = now;
        node.shutdown().await;
    }
}
