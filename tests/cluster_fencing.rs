//! Lease fencing through the public API, over `InMemoryOverlay` and
//! `MemoryLeaseStore` on tokio's paused clock with the default timings
//! (lease_ttl 10 s, renew_interval 3 s, request_timeout 5 s):
//!
//! - self-fencing: an owner that cannot renew stops its activations with
//!   `LeaseLost` before the store lets anyone else take the shard;
//! - graceful handover: `shutdown()` stops, then releases, so the next
//!   owner serves the key at once (measured);
//! - crash failover: after `kill()`, the key is served elsewhere once the
//!   lease expired, within `lease_ttl + renew_interval + request_timeout`
//!   (measured);
//! - a restarted node (same name, new session) never holds a lease at an
//!   epoch granted to its previous session;
//! - a message routed under an old epoch is not executed by an owner that
//!   holds the shard at a newer epoch (it left and came back meanwhile).
//!
//! Probes take a little time in `on_stop` (like flushing state), so a next
//! activation started before the old one finished stopping is an overlap
//! the checker reports.
#![allow(missing_docs)]

use std::time::Duration;

use axactor::ExitReason;
use std::sync::Arc;

use axactor_cluster::{
    ClusterConfig, ClusterNode, Env, InMemoryOverlay, KeyedConfig, LeaseStore, MemoryLeaseStore, NodeId,
};
use axactor_tests::activations::{
    ActivationLog, Event, EventKind, ProbeCluster, Served, Sighting, StorePoller, check_single_activation, held_epoch,
    lease_name, paused_cfg, served_elsewhere, start_node, wait_until,
};
use axactor_tests::cluster::fast_cfg;
use tokio::time::Instant;

const REG: &str = "probes";
const SHARDS: usize = 16;
/// Shorter than half the drift margin (100 ms at lease_ttl 10 s), so a
/// fenced activation finishes `on_stop` before it would be killed.
const STOP_DELAY: Duration = Duration::from_millis(40);

fn check(log: &ActivationLog) {
    if let Err(report) = check_single_activation(&log.events()) {
        panic!("single activation violated:\n{report}");
    }
}

/// The `Start` of activation `uid`.
fn start_of(log: &ActivationLog, key: &str, uid: u64) -> Event {
    log.starts_of(key).into_iter().find(|e| e.uid == uid).expect("a start")
}

#[tokio::test(start_paused = true)]
async fn an_owner_that_cannot_renew_fences_before_the_next_owner_starts() {
    let cfg = paused_cfg();
    let log = ActivationLog::with_stop_delay(STOP_DELAY);
    let c = ProbeCluster::start(&["a", "b"], &cfg, REG, &KeyedConfig::new(SHARDS), &log).await;
    let (a, kb) = (c.node("a"), c.keyed("b"));
    let key = c.key_owned_by("a", "fence");
    let shard = kb.shard_of(&key);
    let name = lease_name(REG, SHARDS, shard);
    let old = Served::from(kb.get(&key).incr().await.expect("served"));
    assert_eq!(old.node, "a");
    let poller = StorePoller::start(&c.store, vec![name.clone()], Duration::from_millis(20));

    let paused_at = Instant::now();
    a.set_lease_renewal_paused(true);
    let (new, served_at) = served_elsewhere(kb, &key, "a", Duration::from_secs(60)).await;
    println!("renewal paused -> served by {} after {:?} (virtual)", new.node, served_at - paused_at);

    // The old activation stopped with LeaseLost, before the store let the
    // lease go, and before the new activation started.
    let stop = log.stop_of(old.uid).expect("the fenced activation ran on_stop");
    assert_eq!(stop.kind, EventKind::Stop(ExitReason::LeaseLost));
    let started = start_of(&log, &key, new.uid);
    assert!(stop.seq < started.seq, "old stop #{} / new start #{}", stop.seq, started.seq);
    let held_until = poller.last_held_by(&name, a.session()).expect("seen held by a");
    assert!(stop.at <= held_until, "fenced at {:?}, after the store let the lease go ({held_until:?})", stop.at);
    assert!(stop.at - paused_at <= cfg.lease_ttl, "fenced {:?} after the pause", stop.at - paused_at);
    // Served by b under a greater epoch; a no longer lists the shard.
    assert_eq!(new.node, "b");
    assert!(new.epoch > old.epoch, "{old:?} -> {new:?}");
    assert_eq!(held_epoch(&c.node("b").inspect(), REG, shard), Some(new.epoch));
    let snap = a.inspect();
    assert_eq!(held_epoch(&snap, REG, shard), None, "{:?}", snap.shards);
    assert!(snap.shards.is_empty(), "a renews nothing, so holds nothing: {:?}", snap.shards);
    assert!(snap.counters.leases.get("fenced").copied().unwrap_or(0) >= 1, "{:?}", snap.counters.leases);
    // a's own requests for the key now go to b.
    let via_a = Served::from(c.keyed("a").get(&key).incr().await.expect("served via a"));
    assert_eq!((via_a.node.as_str(), via_a.uid), ("b", new.uid));
    check(&log);
    c.shutdown().await;
}

#[tokio::test(start_paused = true)]
async fn graceful_shutdown_hands_over_without_waiting_for_expiry() {
    let cfg = paused_cfg();
    let log = ActivationLog::with_stop_delay(STOP_DELAY);
    let c = ProbeCluster::start(&["a", "b", "c"], &cfg, REG, &KeyedConfig::new(SHARDS), &log).await;
    let kb = c.keyed("b");
    let key = c.key_owned_by("a", "handover");
    let old = Served::from(kb.get(&key).incr().await.expect("served"));
    assert_eq!(old.node, "a");

    let a = c.node("a").clone();
    let began = Instant::now();
    let shutdown = tokio::spawn(async move { a.shutdown().await });
    let (new, served_at) = served_elsewhere(kb, &key, "a", cfg.lease_ttl).await;
    let handover = served_at - began;
    println!("graceful handover: served by {} {handover:?} (virtual) after shutdown began", new.node);
    shutdown.await.expect("shutdown");
    // Far below lease_ttl: the lease was released, not left to expire.
    assert!(handover < cfg.renew_interval, "handover took {handover:?}");
    let stop = log.stop_of(old.uid).expect("the old activation ran on_stop");
    assert_eq!(stop.kind, EventKind::Stop(ExitReason::Shutdown));
    let started = start_of(&log, &key, new.uid);
    assert!(stop.seq < started.seq, "old stop #{} / new start #{}", stop.seq, started.seq);
    assert!(new.epoch > old.epoch, "{old:?} -> {new:?}");
    assert!(c.node("a").inspect().shards.is_empty());
    check(&log);
    c.shutdown().await;
}

#[tokio::test(start_paused = true)]
async fn a_crashed_owners_keys_are_served_elsewhere_after_the_lease_expires() {
    let cfg = paused_cfg();
    let log = ActivationLog::with_stop_delay(STOP_DELAY);
    let c = ProbeCluster::start(&["a", "b", "c"], &cfg, REG, &KeyedConfig::new(SHARDS), &log).await;
    let (a, kb) = (c.node("a"), c.keyed("b"));
    let key = c.key_owned_by("a", "crash");
    let name = lease_name(REG, SHARDS, kb.shard_of(&key));
    let old = Served::from(kb.get(&key).incr().await.expect("served"));
    assert_eq!(old.node, "a");
    let poller = StorePoller::start(&c.store, vec![name.clone()], Duration::from_millis(20));
    // Let the poller see the lease held.
    tokio::time::sleep(Duration::from_millis(50)).await;

    let killed_at = Instant::now();
    a.kill();
    let (new, served_at) = served_elsewhere(kb, &key, "a", Duration::from_secs(60)).await;
    let failover = served_at - killed_at;
    println!("crash failover: served by {} {failover:?} (virtual) after the kill", new.node);
    let bound = cfg.lease_ttl + cfg.renew_interval + cfg.request_timeout;
    assert!(failover <= bound, "failover took {failover:?} > {bound:?}");
    // Not before the old lease expired in the store.
    let held_until = poller.last_held_by(&name, a.session()).expect("seen held by a");
    let started = start_of(&log, &key, new.uid);
    assert!(started.at > held_until, "new activation at {:?}, lease held until {held_until:?}", started.at);
    assert!(started.at >= killed_at + cfg.lease_ttl - cfg.renew_interval, "started before the lease could expire");
    assert!(new.epoch > old.epoch, "{old:?} -> {new:?}");
    // The killed activation never ran on_stop, and logged nothing after the kill.
    assert!(log.stop_of(old.uid).is_none());
    assert!(log.events().iter().filter(|e| e.uid == old.uid).all(|e| e.at <= killed_at));
    check(&log);
    for n in ["b", "c"] {
        c.node(n).shutdown().await;
    }
}

#[tokio::test(start_paused = true)]
async fn a_restarted_node_never_holds_a_lease_of_its_previous_session() {
    let cfg = paused_cfg();
    let log = ActivationLog::with_stop_delay(STOP_DELAY);
    let c = ProbeCluster::start(&["a", "b"], &cfg, REG, &KeyedConfig::new(SHARDS), &log).await;
    let old_a = c.node("a");
    let before = old_a.inspect();
    assert!(!before.shards.is_empty(), "a owns shards");
    let names: Vec<String> = (0..SHARDS as u32).map(|s| lease_name(REG, SHARDS, s)).collect();
    let poller = StorePoller::start(&c.store, names.clone(), Duration::from_millis(20));
    tokio::time::sleep(Duration::from_millis(50)).await;

    let killed_at = Instant::now();
    old_a.kill();
    // `kill` aborts the node's tasks; the one holding the in-memory listener
    // lets go of the name once the runtime has run it, so yield until then.
    let new_a = loop {
        let store = std::sync::Arc::clone(&c.store);
        match ClusterNode::start(NodeId::new("a"), store, c.net.clone(), cfg.clone()).await {
            Ok(n) => break n,
            Err(e) => {
                assert!(Instant::now() == killed_at, "{e}");
                tokio::task::yield_now().await;
            }
        }
    };
    assert_ne!(new_a.session(), old_a.session());
    let ka = new_a.keyed(REG, KeyedConfig::new(SHARDS), log.factory("a")).expect("registry");
    // The new session ends up with a share of the shards.
    wait_until(Duration::from_secs(120), "new a owns shards", || new_a.inspect().owned_count(REG) >= 4).await;
    tokio::time::sleep(Duration::from_secs(10)).await;

    let earliest = killed_at + cfg.lease_ttl - cfg.renew_interval;
    for name in &names {
        let history = poller.history(name);
        let held = |s: &Sighting, who| s.lease.as_ref().is_some_and(|(h, _)| h == who);
        let old_epochs: Vec<u64> =
            history.iter().filter(|s| held(s, old_a.session())).filter_map(|s| s.lease.as_ref().map(|l| l.1)).collect();
        let old_last = history.iter().filter(|s| held(s, old_a.session())).map(|s| s.last).max();
        for s in history.iter().filter(|s| held(s, new_a.session())) {
            let epoch = s.lease.as_ref().map_or(0, |l| l.1);
            assert!(old_epochs.iter().all(|o| epoch > *o), "{name}: new session at {epoch}, old at {old_epochs:?}");
            assert!(s.first >= earliest, "{name}: new session held it {:?} after the kill", s.first - killed_at);
            if let Some(old_last) = old_last {
                assert!(s.first > old_last, "{name}: new session before the old lease expired");
            }
        }
    }
    let after = new_a.inspect();
    for s in &after.shards {
        if let Some(old) = held_epoch(&before, REG, s.shard) {
            assert!(s.epoch > old, "shard {}: {} -> {}", s.shard, old, s.epoch);
        }
    }
    assert!(after.shards.iter().any(|s| held_epoch(&before, REG, s.shard).is_some()), "retook an old shard");
    // And it serves keys under those epochs.
    for i in 0..20 {
        let k = format!("restart-{i}");
        let s = Served::from(c.keyed("b").get(&k).incr().await.expect("served"));
        let owner = if s.node == "a" { &new_a } else { c.node("b") };
        assert_eq!(held_epoch(&owner.inspect(), REG, ka.shard_of(&k)), Some(s.epoch), "{k}: {s:?}");
    }
    check(&log);
    new_a.shutdown().await;
    c.node("b").shutdown().await;
}

#[tokio::test(start_paused = true)]
async fn a_message_routed_under_an_old_epoch_is_not_executed_under_a_newer_one() {
    // One shard, whose rendezvous choice is x among {s, x} and y among
    // {s, x, y} (the hash is stable across releases): y joining takes the
    // shard from x, y leaving gives it back to x at a newer epoch.
    const MOVES: &str = "epochs";
    let cfg = ClusterConfig {
        // The s -> x link is held for a few seconds; keep the session.
        node_ttl: Duration::from_secs(30),
        rebalance_settle: Duration::from_secs(1),
        ..paused_cfg()
    };
    let log = ActivationLog::new();
    let c = ProbeCluster::start(&["s", "x"], &cfg, MOVES, &KeyedConfig::new(1), &log).await;
    let (x, ks) = (c.node("x"), c.keyed("s"));
    let first = held_epoch(&x.inspect(), MOVES, 0).expect("x holds the shard");

    // A tell from s, routed to x under the first epoch, is held on the way.
    c.net.hold("s", "x");
    ks.get("k").bump().await.expect("queued for x");
    let y = start_node("y", &c.store, &c.net, &cfg).await;
    let _ky = y.keyed(MOVES, KeyedConfig::new(1), log.factory("y")).expect("registry");
    wait_until(Duration::from_secs(20), "y takes the shard", || held_epoch(&y.inspect(), MOVES, 0).is_some()).await;
    y.shutdown().await;
    wait_until(Duration::from_secs(20), "x takes it back", || held_epoch(&x.inspect(), MOVES, 0).is_some()).await;
    let again = held_epoch(&x.inspect(), MOVES, 0).expect("held");
    assert!(again > first + 1, "{first} -> {again}");
    c.net.release("s", "x");
    tokio::time::sleep(Duration::from_secs(1)).await;

    // Rejected as stale (and counted), never executed.
    assert!(log.events().iter().all(|e| !matches!(e.kind, EventKind::Handled { .. })), "{:#?}", log.events());
    let counters = x.inspect().counters;
    assert_eq!(counters.requests_rejected.get("stale_epoch"), Some(&1), "{counters:?}");
    // The key is served by x at the new epoch.
    let served = Served::from(ks.get("k").incr().await.expect("served"));
    assert_eq!((served.node.as_str(), served.epoch, served.count), ("x", again, 1));
    check(&log);
    c.shutdown().await;
}

/// On the paused clock, with the fence reading Tokio's clock (a seeded env,
/// as in the simulation).
#[tokio::test(start_paused = true)]
async fn a_paused_owner_does_not_run_its_backlog_after_it_resumes() {
    paused_owner_backlog(Env::seeded(7), paused_cfg(), Duration::from_secs(60)).await;
}

/// The same in real time, with the fence reading what production reads
/// (the OS coarse clock, in a pausable env), on short timings: a few
/// seconds.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_paused_owner_does_not_run_its_backlog_after_it_resumes_in_real_time() {
    paused_owner_backlog(Env::pausable(), fast_cfg(), Duration::from_secs(10)).await;
}

/// `a`'s process (env `env_a`) pauses with five messages queued for one of
/// its keys; `b`, started then, takes the key over (within `takeover`);
/// when `a` resumes, none of them runs and the activation stops with
/// `LeaseLost`.
async fn paused_owner_backlog(env_a: Env, cfg: ClusterConfig, takeover: Duration) {
    let log = ActivationLog::new();
    let store: Arc<dyn LeaseStore> = Arc::new(MemoryLeaseStore::new());
    let net = InMemoryOverlay::new();
    // a's tasks (its activations included) can be held as a stopped process.
    let a = ClusterNode::start_with_env(NodeId::new("a"), Arc::clone(&store), net.clone(), cfg.clone(), env_a.clone())
        .await
        .expect("a starts");
    let ka = a.keyed(REG, KeyedConfig::new(SHARDS), log.factory("a")).expect("keyed a");
    // a is alone: it takes the shards, and none moves until it pauses.
    let key = "pause-0".to_string();
    wait_until(Duration::from_secs(30), "a holds the key's shard", || {
        held_epoch(&a.inspect(), REG, ka.shard_of(&key)).is_some()
    })
    .await;
    let old = Served::from(ka.get(&key).incr().await.expect("served"));
    assert_eq!(old.node, "a");

    // a stops making progress; its own clients still queue messages into
    // the activation's mailbox (the lease is valid when they are queued).
    env_a.pause();
    // The pause is cooperative: it holds each of a's tasks at its next poll.
    // On a multi-threaded runtime, a poll of the activation in flight when
    // the pause begins (it just replied to `incr`) still handles what it
    // finds, so give it a moment to end before queuing the backlog. Whether
    // some of the backlog ran then is checked below, not assumed.
    tokio::time::sleep(Duration::from_millis(30)).await;
    let paused = log.note(&key, "a paused");
    for _ in 0..5 {
        ka.get(&key).bump().await.expect("queued on a while its lease is valid");
    }
    // Time moves on: a's lease expires and b takes the key over.
    let b = start_node("b", &store, &net, &cfg).await;
    let kb = b.keyed(REG, KeyedConfig::new(SHARDS), log.factory("b")).expect("keyed b");
    let (new, _) = served_elsewhere(&kb, &key, "a", takeover).await;
    assert_eq!(new.node, "b");
    assert!(new.epoch > old.epoch);
    let taken = log.note(&key, "b serves the key");
    let handled_on_a = |from: u64| -> Vec<Event> {
        log.events_of(&key)
            .into_iter()
            .filter(|e| e.node == "a" && e.seq > from && matches!(e.kind, EventKind::Handled { .. }))
            .collect()
    };
    let before_takeover = handled_on_a(paused);
    assert!(before_takeover.len() < 5, "the whole backlog ran before the pause held a: {before_takeover:?}");
    // a resumes with its backlog: none of it runs (its grant's deadline has
    // passed), and the activation stops with LeaseLost.
    env_a.resume();
    let stopped = || log.stop_of(old.uid).is_some();
    wait_until(Duration::from_secs(5), "a's activation stopped", stopped).await;
    let ran_late = handled_on_a(taken);
    assert!(ran_late.is_empty(), "a ran its backlog after resuming: {ran_late:?}");
    let stop = log.stop_of(old.uid).expect("a's activation stopped");
    assert_eq!(stop.kind, EventKind::Stop(ExitReason::LeaseLost));
    a.shutdown().await;
    b.shutdown().await;
}
