//! Cluster singletons through the public API, over `InMemoryOverlay` and
//! `MemoryLeaseStore` on tokio's paused clock with the default timings:
//! one activation cluster-wide, started eagerly (no message needed),
//! reachable from every node, and restarted on another node when its holder
//! crashes, shuts down or cannot renew; never two at once.
#![allow(missing_docs)]

use std::sync::Arc;
use std::time::Duration;

use axactor::ExitReason;
use axactor_cluster::{ClusterNode, InMemoryOverlay, LeaseStore, MemoryLeaseStore, Singleton};
use axactor_tests::activations::{
    ActivationLog, Event, EventKind, Probe, Served, check_single_activation, mesh, paused_cfg, start_node, wait_until,
};
use tokio::time::Instant;

const NAME: &str = "leader";

fn check(log: &ActivationLog) {
    if let Err(report) = check_single_activation(&log.events()) {
        panic!("single activation violated:\n{report}");
    }
}

/// The activation that started after log position `after`, once there is
/// one (it starts without any message: eagerly).
async fn next_start(log: &ActivationLog, after: u64, bound: Duration) -> Event {
    wait_until(bound, "singleton restarted", || log.starts_of(NAME).iter().any(|e| e.seq > after)).await;
    let starts: Vec<Event> = log.starts_of(NAME).into_iter().filter(|e| e.seq > after).collect();
    assert_eq!(starts.len(), 1, "{starts:?}");
    starts[0].clone()
}

/// Every node in `nodes` reaches activation `uid` through its handle.
async fn everyone_reaches(singletons: &[(ClusterNode, Singleton<Probe>)], nodes: &[&str], uid: u64) {
    for (node, s) in singletons.iter().filter(|(n, _)| nodes.contains(&n.id().as_str())) {
        let served = Served::from(s.get().incr().await.expect("singleton reachable"));
        assert_eq!(served.uid, uid, "via {}: {served:?}", node.id());
    }
}

#[tokio::test(start_paused = true)]
async fn one_eager_activation_that_moves_when_its_holder_goes() {
    let cfg = paused_cfg();
    let log = ActivationLog::with_stop_delay(Duration::from_millis(40));
    let store: Arc<dyn LeaseStore> = Arc::new(MemoryLeaseStore::new());
    let net = InMemoryOverlay::new();
    let mut nodes = Vec::new();
    for name in ["a", "b", "c", "d"] {
        nodes.push(start_node(name, &store, &net, &cfg).await);
    }
    mesh(&nodes.iter().collect::<Vec<_>>()).await;
    let singletons: Vec<(ClusterNode, Singleton<Probe>)> = nodes
        .iter()
        .map(|n| (n.clone(), n.singleton(NAME, log.singleton_factory(n.id().as_str(), NAME)).expect("singleton")))
        .collect();
    let node = |name: &str| nodes.iter().find(|n| n.id().as_str() == name).expect("node").clone();

    // Settled: exactly one live activation, started without any message.
    tokio::time::sleep(Duration::from_secs(30)).await;
    let live = log.live_of(NAME);
    assert_eq!(live.len(), 1, "{:?}", log.events());
    // One start, plus one per handover the initial placement made (the
    // first node to register may take the lease before it hears that the
    // preferred node hosts the singleton too).
    let starts = log.starts_of(NAME).len() as u64;
    let handovers: u64 =
        nodes.iter().map(|n| n.inspect().counters.leases.get("handed_over").copied().unwrap_or(0)).sum();
    println!("initial placement: {starts} activation(s) started, {handovers} handover(s)");
    assert_eq!(starts, 1 + handovers);
    assert!(log.events().iter().all(|e| !matches!(e.kind, EventKind::Handled { .. })), "no message was sent");
    let first = live[0].clone();
    everyone_reaches(&singletons, &["a", "b", "c", "d"], first.uid).await;
    let holder = node(&first.node);
    assert_eq!(holder.inspect().owned_count(NAME), 1);
    let others: Vec<String> = nodes.iter().filter(|n| n.id() != holder.id()).map(|n| n.id().to_string()).collect();
    for n in &others {
        assert_eq!(node(n).inspect().owned_count(NAME), 0);
    }

    // 1. The holder crashes: another node starts it once the lease expired.
    let mark = log.note(NAME, format!("kill {}", holder.id()));
    let killed_at = Instant::now();
    holder.kill();
    let second = next_start(&log, mark, Duration::from_secs(60)).await;
    println!("after kill: restarted on {} {:?} later", second.node, second.at - killed_at);
    assert_ne!(second.node, first.node);
    assert!(second.at >= killed_at + cfg.lease_ttl - cfg.renew_interval, "started before the lease could expire");
    assert!(second.at <= killed_at + cfg.lease_ttl + cfg.renew_interval * 2);
    assert!(second.epoch > first.epoch);
    let remaining: Vec<&str> = others.iter().map(String::as_str).collect();
    everyone_reaches(&singletons, &remaining, second.uid).await;

    // 2. The new holder shuts down: the next one starts at once, after the
    //    old one's on_stop.
    let holder = node(&second.node);
    let mark = log.note(NAME, format!("shutdown {}", holder.id()));
    let began = Instant::now();
    holder.shutdown().await;
    let third = next_start(&log, mark, Duration::from_secs(60)).await;
    println!("after shutdown: restarted on {} {:?} later", third.node, third.at - began);
    assert!(third.at - began < cfg.renew_interval, "handover waited {:?}", third.at - began);
    let stop = log.stop_of(second.uid).expect("on_stop ran");
    assert_eq!(stop.kind, EventKind::Stop(ExitReason::Shutdown));
    assert!(stop.seq < third.seq);
    assert!(third.epoch > second.epoch);
    let remaining: Vec<&str> = remaining.into_iter().filter(|n| *n != second.node).collect();
    everyone_reaches(&singletons, &remaining, third.uid).await;

    // 3. The next holder cannot renew: it stops with LeaseLost before the
    //    last node starts the singleton.
    let holder = node(&third.node);
    let mark = log.note(NAME, format!("pause {}", holder.id()));
    holder.set_lease_renewal_paused(true);
    let paused_at = Instant::now();
    let fourth = next_start(&log, mark, Duration::from_secs(60)).await;
    println!("after renewal pause: restarted on {} {:?} later", fourth.node, fourth.at - paused_at);
    let stop = log.stop_of(third.uid).expect("on_stop ran");
    assert_eq!(stop.kind, EventKind::Stop(ExitReason::LeaseLost));
    assert!(stop.seq < fourth.seq, "old stop #{} / new start #{}", stop.seq, fourth.seq);
    assert!(fourth.epoch > third.epoch);
    assert_ne!(fourth.node, third.node);
    assert_eq!(holder.inspect().owned_count(NAME), 0);
    everyone_reaches(&singletons, &remaining, fourth.uid).await;

    assert_eq!(log.live_of(NAME).iter().filter(|e| e.node != first.node).count(), 1);
    check(&log);
    for n in &nodes {
        if n.id().as_str() != first.node {
            n.shutdown().await;
        }
    }
}
