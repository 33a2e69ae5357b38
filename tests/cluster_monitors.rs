//! Monitors on keyed activations through the public API
//! (`XRemoteRef::monitor`), over `InMemoryOverlay` and `MemoryLeaseStore` on
//! tokio's paused clock with the default timings. Each monitor gets exactly
//! one `DownEvent`, and only once the activation can no longer execute:
//!
//! - passivation: `Stopped`, after the activation's `on_stop`;
//! - renewal paused (fenced): `LeaseLost`, after the activation's `on_stop`;
//! - owner killed: `NodeDown`, only once the lease is gone from the store;
//! - no activation: `NoSuchActor`;
//! - dropping the receiver cancels the monitor (with a limit of one monitor,
//!   a second one still works);
//! - more `Down`s at once than a connection's control queue holds: each
//!   still arrives, once;
//! - the connection to a live owner is lost and comes back: the monitor is
//!   placed again on the activation it watched, and fires once when that
//!   activation stops (while disconnected, or later);
//! - a peer's monitors are removed when its connection ends, and no longer
//!   fill the host's monitor table.
//!
//! Each case is checked from a node that does not own the key (a remote
//! monitor) and from the owner itself (a local monitor).
#![allow(missing_docs)]

use std::time::Duration;

use axactor::ExitReason;
use axactor_cluster::{CONTROL_QUEUE_CAPACITY, ClusterConfig, ClusterNode, DownEvent, DownReason, Keyed, KeyedConfig};
use axactor_tests::activations::{
    ActivationLog, EventKind, Probe, ProbeCluster, Served, StorePoller, check_single_activation, lease_name,
    paused_cfg, wait_until,
};
use tokio::sync::mpsc;
use tokio::time::{Instant, timeout};

const REG: &str = "probes";
const IDLE: Duration = Duration::from_secs(5);

fn check(log: &ActivationLog) {
    if let Err(report) = check_single_activation(&log.events()) {
        panic!("single activation violated:\n{report}");
    }
}

/// The one `DownEvent` of `rx` (within 60 s of tokio time); logged as a
/// note so its order against the activations' events can be checked.
async fn down(rx: &mut mpsc::Receiver<DownEvent>, log: &ActivationLog, who: &str) -> (DownEvent, u64, Instant) {
    let event = timeout(Duration::from_secs(60), rx.recv()).await.expect("a DownEvent in time").expect("open");
    let seq = log.note(&event.key, format!("{who} got {:?}", event.reason));
    (event, seq, Instant::now())
}

/// Nothing more arrives on `rx` (over 60 s of tokio time).
async fn no_more(rx: &mut mpsc::Receiver<DownEvent>) {
    match timeout(Duration::from_secs(60), rx.recv()).await {
        Err(_) | Ok(None) => {}
        Ok(Some(e)) => panic!("a second DownEvent: {e:?}"),
    }
}

fn expect_down(event: &DownEvent, key: &str, reason: DownReason) {
    assert_eq!((event.registry.as_str(), event.key.as_str(), event.reason), (REG, key, reason), "{event:?}");
}

async fn activate(keyed: &Keyed<Probe>, key: &str, on: &str) -> Served {
    let served = Served::from(keyed.get(key).incr().await.expect("served"));
    assert_eq!(served.node, on);
    served
}

async fn cluster(keyed_cfg: KeyedConfig, cfg: ClusterConfig, log: &ActivationLog) -> ProbeCluster {
    ProbeCluster::start(&["a", "b"], &cfg, REG, &keyed_cfg, log).await
}

#[tokio::test(start_paused = true)]
async fn passivation_fires_one_stopped_then_no_such_actor() {
    let log = ActivationLog::with_stop_delay(Duration::from_millis(40));
    let c = cluster(KeyedConfig::new(8).idle_timeout(Some(IDLE)), paused_cfg(), &log).await;
    let (ka, kb) = (c.keyed("a"), c.keyed("b"));
    let key = c.key_owned_by("a", "idle");
    let served = activate(kb, &key, "a").await;
    let mut remote = kb.get(&key).monitor().await.expect("remote monitor");
    let mut local = ka.get(&key).monitor().await.expect("local monitor");

    let (r, r_seq, r_at) = down(&mut remote, &log, "b").await;
    let (l, l_seq, _) = down(&mut local, &log, "a").await;
    expect_down(&r, &key, DownReason::Stopped);
    expect_down(&l, &key, DownReason::Stopped);
    let stop = log.stop_of(served.uid).expect("on_stop finished before the DownEvent");
    assert_eq!(stop.kind, EventKind::Stop(ExitReason::Normal));
    assert!(stop.seq < r_seq && stop.seq < l_seq, "down before on_stop finished");
    assert!(r_at - served_at(&log, served.uid) >= IDLE, "passivated before idle_timeout");
    no_more(&mut remote).await;
    no_more(&mut local).await;

    // No activation now: both kinds of monitor say so at once.
    for keyed in [kb, ka] {
        let mut rx = keyed.get(&key).monitor().await.expect("monitor");
        let (e, _, _) = down(&mut rx, &log, "late").await;
        expect_down(&e, &key, DownReason::NoSuchActor);
        no_more(&mut rx).await;
    }
    assert!(log.live_of(&key).is_empty());
    check(&log);
    c.shutdown().await;
}

/// When activation `uid` handled its last message.
fn served_at(log: &ActivationLog, uid: u64) -> Instant {
    let handled = log.events().into_iter().filter(|e| e.uid == uid && matches!(e.kind, EventKind::Handled { .. }));
    handled.map(|e| e.at).max().expect("handled a message")
}

#[tokio::test(start_paused = true)]
async fn a_fenced_owner_fires_one_lease_lost_after_on_stop() {
    let log = ActivationLog::with_stop_delay(Duration::from_millis(40));
    let c = cluster(KeyedConfig::new(8).idle_timeout(None), paused_cfg(), &log).await;
    let (ka, kb) = (c.keyed("a"), c.keyed("b"));
    let key = c.key_owned_by("a", "fenced");
    let served = activate(kb, &key, "a").await;
    let mut remote = kb.get(&key).monitor().await.expect("remote monitor");
    let mut local = ka.get(&key).monitor().await.expect("local monitor");

    c.node("a").set_lease_renewal_paused(true);
    let (r, r_seq, _) = down(&mut remote, &log, "b").await;
    let (l, l_seq, _) = down(&mut local, &log, "a").await;
    expect_down(&r, &key, DownReason::LeaseLost);
    expect_down(&l, &key, DownReason::LeaseLost);
    let stop = log.stop_of(served.uid).expect("on_stop finished before the DownEvent");
    assert_eq!(stop.kind, EventKind::Stop(ExitReason::LeaseLost));
    assert!(stop.seq < r_seq && stop.seq < l_seq, "down before on_stop finished");
    no_more(&mut remote).await;
    no_more(&mut local).await;
    check(&log);
    c.shutdown().await;
}

#[tokio::test(start_paused = true)]
async fn a_killed_owner_fires_one_node_down_once_the_lease_is_gone() {
    let log = ActivationLog::with_stop_delay(Duration::from_millis(40));
    let c = cluster(KeyedConfig::new(8).idle_timeout(None), paused_cfg(), &log).await;
    let (a, kb) = (c.node("a"), c.keyed("b"));
    let key = c.key_owned_by("a", "killed");
    let name = lease_name(REG, 8, kb.shard_of(&key));
    let served = activate(kb, &key, "a").await;
    let mut remote = kb.get(&key).monitor().await.expect("remote monitor");
    let poller = StorePoller::start(&c.store, vec![name.clone()], Duration::from_millis(20));
    tokio::time::sleep(Duration::from_millis(50)).await;

    let killed_at = Instant::now();
    a.kill();
    let (r, _, at) = down(&mut remote, &log, "b").await;
    expect_down(&r, &key, DownReason::NodeDown);
    // Delivered only once the lease the activation ran under was gone.
    let now = c.store.get(&name).await.expect("store");
    assert!(
        now.as_ref().is_none_or(|l| (&l.holder, l.epoch.0) != (a.session(), served.epoch)),
        "NodeDown while the lease is still held: {now:?}"
    );
    let held_until = poller.last_held_by(&name, a.session()).expect("seen held");
    assert!(at > held_until, "NodeDown at {at:?}, lease held until {held_until:?}");
    println!("NodeDown delivered {:?} after the kill", at - killed_at);
    no_more(&mut remote).await;
    // The key is then served by b, under a greater epoch.
    let next = activate(kb, &key, "b").await;
    assert!(next.epoch > served.epoch);
    check(&log);
    c.node("b").shutdown().await;
}

#[tokio::test(start_paused = true)]
async fn dropping_the_receiver_cancels_the_monitor() {
    // One monitor per registry on a node, and one remote monitor per node:
    // a monitor that is not cancelled when its receiver is dropped leaves
    // no room for the next one.
    let cfg = ClusterConfig { max_remote_monitors: 1, ..paused_cfg() };
    let log = ActivationLog::with_stop_delay(Duration::from_millis(40));
    let keyed_cfg = KeyedConfig::new(8).idle_timeout(Some(IDLE)).max_monitors(1);
    let c = cluster(keyed_cfg, cfg, &log).await;
    let (ka, kb) = (c.keyed("a"), c.keyed("b"));
    let key = c.key_owned_by("a", "dropped");

    for (who, keyed) in [("b", kb), ("a", ka)] {
        let served = activate(kb, &key, "a").await;
        for _ in 0..3 {
            let rx = keyed.get(&key).monitor().await.expect("monitor");
            drop(rx);
            tokio::time::sleep(Duration::from_millis(100)).await;
            // Keep the activation from passivating meanwhile.
            activate(kb, &key, "a").await;
        }
        let mut rx = keyed.get(&key).monitor().await.expect("a monitor after the dropped ones");
        assert!(timeout(Duration::from_secs(1), rx.recv()).await.is_err(), "{who}: the monitor was refused");
        let (e, seq, _) = down(&mut rx, &log, who).await;
        expect_down(&e, &key, DownReason::Stopped);
        let stop = log.stop_of(served.uid).expect("on_stop finished before the DownEvent");
        assert!(stop.seq < seq);
        no_more(&mut rx).await;
    }
    check(&log);
    c.shutdown().await;
}

#[tokio::test(start_paused = true)]
async fn monitoring_a_key_without_activation_says_no_such_actor() {
    let log = ActivationLog::new();
    let c = cluster(KeyedConfig::new(8), paused_cfg(), &log).await;
    let key = c.key_owned_by("a", "never");
    for who in ["b", "a"] {
        let mut rx = c.keyed(who).get(&key).monitor().await.expect("monitor");
        let (e, _, _) = down(&mut rx, &log, who).await;
        expect_down(&e, &key, DownReason::NoSuchActor);
        no_more(&mut rx).await;
    }
    assert!(log.starts_of(&key).is_empty(), "monitoring does not activate");
    c.shutdown().await;
}

/// How many monitors the node holds on its activations of `REG`.
fn monitors_held(node: &ClusterNode) -> usize {
    let table = format!("monitors/{REG}");
    node.inspect().tables.iter().find(|t| t.table == table).map_or(0, |t| t.len)
}

fn dropped(node: &ClusterNode, label: &str) -> u64 {
    node.inspect().counters.dropped.get(label).copied().unwrap_or(0)
}

#[tokio::test(start_paused = true)]
async fn more_downs_at_once_than_the_control_queue_holds_all_arrive() {
    let log = ActivationLog::new();
    let c = cluster(KeyedConfig::new(8).idle_timeout(Some(IDLE)), paused_cfg(), &log).await;
    let kb = c.keyed("b");
    let key = c.key_owned_by("a", "crowd");
    let served = activate(kb, &key, "a").await;
    // All fire in one go when the activation stops: more than the control
    // queue to `b` can take before its writer runs.
    let n = CONTROL_QUEUE_CAPACITY + 64;
    let mut watchers = Vec::with_capacity(n);
    for _ in 0..n {
        watchers.push(kb.get(&key).monitor().await.expect("remote monitor"));
    }
    assert_eq!(monitors_held(c.node("a")), n);
    for rx in &mut watchers {
        let (e, seq, _) = down(rx, &log, "b").await;
        expect_down(&e, &key, DownReason::Stopped);
        assert!(log.stop_of(served.uid).expect("stopped").seq < seq);
    }
    for rx in &mut watchers {
        no_more(rx).await;
    }
    assert_eq!(monitors_held(c.node("a")), 0);
    check(&log);
    c.shutdown().await;
}

#[tokio::test(start_paused = true)]
async fn a_monitor_survives_a_lost_connection_to_a_live_owner() {
    // Longer than it takes to notice the lost connection (`node_ttl`).
    const LONG_IDLE: Duration = Duration::from_secs(30);
    let log = ActivationLog::with_stop_delay(Duration::from_millis(40));
    let c = cluster(KeyedConfig::new(8).idle_timeout(Some(LONG_IDLE)), paused_cfg(), &log).await;
    let (ka, kb) = (c.keyed("a"), c.keyed("b"));
    // `gone` stops while the connection is down, `later` once it is back;
    // the lease of either never leaves `a`.
    let gone = c.key_owned_by("a", "gone");
    let later = c.key_owned_by("a", "later");
    let served_gone = activate(kb, &gone, "a").await;
    let served_later = activate(kb, &later, "a").await;
    let mut rx_gone = kb.get(&gone).monitor().await.expect("remote monitor");
    let mut rx_later = kb.get(&later).monitor().await.expect("remote monitor");

    c.net.partition("a", "b");
    wait_until(Duration::from_secs(60), "the connection ended", || {
        c.node("b").inspect().peer("a").is_none() && c.node("a").inspect().peer("b").is_none()
    })
    .await;
    // The host dropped the monitors that connection carried.
    assert!(log.stop_of(served_gone.uid).is_none() && log.stop_of(served_later.uid).is_none());
    assert_eq!(monitors_held(c.node("a")), 0);
    assert_eq!(dropped(c.node("a"), "remote_monitor_connection_ended"), 2);
    // `later` kept busy by its owner; `gone` passivates meanwhile.
    let bound = Instant::now() + Duration::from_secs(60);
    while log.stop_of(served_gone.uid).is_none() {
        assert!(Instant::now() < bound, "`gone` did not passivate");
        activate(ka, &later, "a").await;
        tokio::time::sleep(Duration::from_secs(1)).await;
    }
    c.net.heal("a", "b");

    let (e, seq, _) = down(&mut rx_gone, &log, "b").await;
    expect_down(&e, &gone, DownReason::Stopped);
    assert!(log.stop_of(served_gone.uid).expect("stopped").seq < seq);
    // `later` is watched again, and fires once it passivates.
    let (e, seq, _) = down(&mut rx_later, &log, "b").await;
    expect_down(&e, &later, DownReason::Stopped);
    let stop = log.stop_of(served_later.uid).expect("on_stop finished before the DownEvent");
    assert!(stop.seq < seq, "down before on_stop finished");
    no_more(&mut rx_gone).await;
    no_more(&mut rx_later).await;
    check(&log);
    c.shutdown().await;
}

#[tokio::test(start_paused = true)]
async fn a_peers_monitors_are_removed_when_its_connection_ends() {
    const MAX: usize = 8;
    let log = ActivationLog::new();
    let keyed_cfg = KeyedConfig::new(8).idle_timeout(None).max_monitors(MAX);
    let c = ProbeCluster::start(&["a", "b", "c"], &paused_cfg(), REG, &keyed_cfg, &log).await;
    let (a, kb, kc) = (c.node("a"), c.keyed("b"), c.keyed("c"));
    let key = c.key_owned_by("a", "watched");
    activate(kb, &key, "a").await;
    let mut held = Vec::new();
    for _ in 0..MAX {
        held.push(kb.get(&key).monitor().await.expect("remote monitor"));
    }
    assert_eq!(monitors_held(a), MAX);
    // The table is full: the next monitor is refused at once.
    let mut refused = kc.get(&key).monitor().await.expect("monitor");
    let (e, _, _) = down(&mut refused, &log, "c").await;
    expect_down(&e, &key, DownReason::Other);

    c.node("b").kill();
    wait_until(Duration::from_secs(60), "the dead peer's monitors removed", || monitors_held(a) == 0).await;
    assert_eq!(dropped(a, "remote_monitor_connection_ended"), MAX as u64);
    // Room again: a new monitor is accepted and waits.
    let mut rx = kc.get(&key).monitor().await.expect("monitor");
    assert!(timeout(Duration::from_secs(1), rx.recv()).await.is_err(), "the monitor was refused");
    assert_eq!(monitors_held(a), 1);
    drop(held);
    check(&log);
    c.node("c").shutdown().await;
    c.node("a").shutdown().await;
}
