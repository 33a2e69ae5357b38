//! Keyed registries through the public API, over `InMemoryOverlay` and
//! `MemoryLeaseStore` on tokio's paused clock (default-scale timings cost
//! nothing and the run is deterministic):
//!
//! - single activation under load while a node joins and another leaves
//!   gracefully (rebalancing and handover), with a checker over the
//!   activations' logged lifecycles, and balanced, exclusive ownership at
//!   the end;
//! - `ctx.fence()` inside a handler names the key's shard and the owner's
//!   epoch.
//!
//! State is not carried over a handover: the next activation of a key starts
//! from its factory (count 0), which the checker relies on.
#![allow(missing_docs)]

use std::collections::BTreeMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use axactor::ExitReason;
use axactor_cluster::{ClusterNode, InMemoryOverlay, Keyed, KeyedConfig, LeaseStore, MemoryLeaseStore, RemoteError};
use axactor_tests::activations::{
    ActivationLog, Probe, ProbeCluster, Served, check_single_activation, held_epoch, intervals, lease_name, mesh,
    owner_of, paused_cfg, start_node, wait_until,
};
use tokio::time::{Instant, sleep};

const REG: &str = "probes";
const SHARDS: usize = 16;
const KEYS: usize = 50;
const WORKERS_PER_NODE: usize = 4;

fn key(i: usize) -> String {
    format!("key-{}", i % KEYS)
}

/// What one load worker saw: its replies in order, and its errors by kind.
#[derive(Debug, Default)]
struct WorkerLog {
    replies: Vec<(String, Served)>,
    tells_acked: u64,
    errors: BTreeMap<String, u64>,
}

/// Sequential asks and acknowledged tells on a moving set of keys until
/// `stop`, or until the node is shut down.
async fn worker(keyed: Keyed<Probe>, seed: usize, stop: Arc<AtomicBool>) -> WorkerLog {
    let mut out = WorkerLog::default();
    let mut i = seed;
    while !stop.load(Ordering::Relaxed) {
        i += 7;
        let k = key(i + seed * 13);
        let r = if i.is_multiple_of(3) {
            keyed.get(&k).bump_wait().await.map(|()| out.tells_acked += 1)
        } else {
            keyed.get(&k).incr().await.map(|s| out.replies.push((k.clone(), Served::from(s))))
        };
        match r {
            Ok(()) => {}
            Err(RemoteError::ShutDown) => break,
            Err(e) => *out.errors.entry(format!("{e:?}")).or_default() += 1,
        }
        sleep(Duration::from_millis(20)).await;
    }
    out
}

/// Never two nodes listing one shard at the same time; returns how many
/// samples it took.
async fn exclusive_ownership(nodes: Vec<ClusterNode>, stop: Arc<AtomicBool>) -> u64 {
    let mut samples = 0;
    while !stop.load(Ordering::Relaxed) {
        let mut owners: BTreeMap<u32, Vec<String>> = BTreeMap::new();
        for n in &nodes {
            for s in n.inspect().shards.iter().filter(|s| s.registry == REG) {
                owners.entry(s.shard).or_default().push(n.id().to_string());
            }
        }
        for (shard, who) in owners {
            assert!(who.len() == 1, "shard {shard} listed by {who:?} at once");
        }
        samples += 1;
        sleep(Duration::from_millis(50)).await;
    }
    samples
}

fn spawn_workers(
    keyed: &Keyed<Probe>,
    node: usize,
    stop: &Arc<AtomicBool>,
    into: &mut Vec<tokio::task::JoinHandle<WorkerLog>>,
) {
    for w in 0..WORKERS_PER_NODE {
        into.push(tokio::spawn(worker(keyed.clone(), node * WORKERS_PER_NODE + w, Arc::clone(stop))));
    }
}

#[tokio::test(start_paused = true)]
async fn one_activation_per_key_while_nodes_join_and_leave_under_load() {
    let net = InMemoryOverlay::new();
    let store: Arc<dyn LeaseStore> = Arc::new(MemoryLeaseStore::new());
    let cfg = paused_cfg();
    // Activations take a moment to stop (like flushing state): a next
    // activation started before the old one's on_stop returned is an overlap.
    let log = ActivationLog::with_stop_delay(Duration::from_millis(40));
    let a = start_node("a", &store, &net, &cfg).await;
    let b = start_node("b", &store, &net, &cfg).await;
    let c = start_node("c", &store, &net, &cfg).await;
    mesh(&[&a, &b, &c]).await;
    let mut keyed = Vec::new();
    for n in [&a, &b, &c] {
        keyed.push(n.keyed(REG, KeyedConfig::new(SHARDS), log.factory(n.id().as_str())).expect("keyed"));
    }

    let stop = Arc::new(AtomicBool::new(false));
    let mut workers = Vec::new();
    for (i, k) in keyed.iter().enumerate() {
        spawn_workers(k, i, &stop, &mut workers);
    }
    let d = start_node("d", &store, &net, &cfg).await;
    let sampler = tokio::spawn(exclusive_ownership(vec![a.clone(), b.clone(), c.clone(), d.clone()], stop.clone()));
    // Three nodes under load: placement settles, shards move off the first
    // node that grabbed them.
    sleep(Duration::from_secs(12)).await;
    // A fourth node joins: about a quarter of the shards move to it.
    let kd = d.keyed(REG, KeyedConfig::new(SHARDS), log.factory("d")).expect("keyed d");
    spawn_workers(&kd, 3, &stop, &mut workers);
    sleep(Duration::from_secs(15)).await;
    // c leaves gracefully while the load goes on.
    let left = Instant::now();
    c.shutdown().await;
    println!("c shut down in {:?} (virtual)", left.elapsed());
    sleep(Duration::from_secs(15)).await;
    stop.store(true, Ordering::Relaxed);
    let mut logs = Vec::new();
    for w in workers {
        logs.push(w.await.expect("worker"));
    }
    let samples = sampler.await.expect("sampler");

    // Ownership ends balanced and exclusive on the three remaining nodes.
    let live = [&a, &b, &d];
    wait_until(Duration::from_secs(60), "balanced, exclusive ownership", || {
        let counts: Vec<usize> = live.iter().map(|n| n.inspect().owned_count(REG)).collect();
        let mean = SHARDS as f64 / live.len() as f64;
        counts.iter().sum::<usize>() == SHARDS && counts.iter().all(|&c| c as f64 / mean <= 1.25)
    })
    .await;
    let mut owned: BTreeMap<u32, Vec<String>> = BTreeMap::new();
    for n in live {
        let snap = n.inspect();
        for s in snap.shards.iter().filter(|s| s.registry == REG) {
            owned.entry(s.shard).or_default().push(n.id().to_string());
            // The store agrees: this session holds it at this epoch.
            let lease = store.get(&lease_name(REG, SHARDS, s.shard)).await.expect("store").expect("held");
            assert_eq!((&lease.holder, lease.epoch.0), (n.session(), s.epoch), "shard {}", s.shard);
        }
    }
    assert_eq!(owned.len(), SHARDS, "{owned:?}");
    assert!(owned.values().all(|who| who.len() == 1), "{owned:?}");
    assert!(c.inspect().shards.is_empty(), "{:?}", c.inspect().shards);

    // The activation log: no overlap per key, counters per activation.
    let events = log.events();
    if let Err(report) = check_single_activation(&events) {
        panic!("single activation violated:\n{report}");
    }
    let ivs = intervals(&events);
    let start_seq: BTreeMap<u64, (u64, String, u64)> =
        ivs.values().flatten().map(|iv| (iv.uid, (iv.start.expect("started"), iv.node.clone(), iv.epoch))).collect();
    // Every reply came from a logged activation (its node and epoch), and
    // one worker never sees a key go back to an older activation or count.
    let (mut asks, mut tells, mut errors) = (0, 0, BTreeMap::<String, u64>::new());
    for w in &logs {
        tells += w.tells_acked;
        for (e, n) in &w.errors {
            *errors.entry(e.clone()).or_default() += n;
        }
        let mut last: BTreeMap<&str, (u64, u64)> = BTreeMap::new();
        for (k, s) in &w.replies {
            asks += 1;
            let (start, node, epoch) = start_seq.get(&s.uid).unwrap_or_else(|| panic!("reply from unknown {s:?}"));
            assert_eq!((&s.node, s.epoch), (node, *epoch), "{k}: {s:?}");
            let now = (*start, s.count);
            if let Some(prev) = last.insert(k, now) {
                assert!(prev < now, "{k}: went back from {prev:?} to {now:?} ({s:?})");
            }
        }
    }
    // The run exercised what it is about.
    let moved = ivs.values().filter(|v| v.len() > 1).count();
    let handed_over: u64 =
        [&a, &b, &c, &d].iter().map(|n| n.inspect().counters.leases.get("handed_over").copied().unwrap_or(0)).sum();
    let stopped_on_c = ivs.values().flatten().filter(|iv| iv.node == "c" && iv.stop == Some(ExitReason::Shutdown));
    let stopped_on_c = stopped_on_c.count();
    println!(
        "asks {asks}, acked tells {tells}, errors {errors:?}, activations {}, keys that moved {moved}, \
         handovers {handed_over}, activations stopped by c's shutdown {stopped_on_c}, ownership samples {samples}",
        ivs.values().map(Vec::len).sum::<usize>()
    );
    assert_eq!(ivs.len(), KEYS, "every key was activated");
    assert!(moved > 0 && handed_over > 0 && stopped_on_c > 0);
    assert!(errors.values().sum::<u64>() * 20 < asks, "too many failed requests: {errors:?}");
    for n in [&a, &b, &d] {
        n.shutdown().await;
    }
}

#[tokio::test(start_paused = true)]
async fn fence_in_a_handler_names_the_shard_and_the_owners_epoch() {
    let net = InMemoryOverlay::new();
    let store: Arc<dyn LeaseStore> = Arc::new(MemoryLeaseStore::new());
    let cfg = paused_cfg();
    let log = ActivationLog::new();
    let a = start_node("a", &store, &net, &cfg).await;
    let b = start_node("b", &store, &net, &cfg).await;
    mesh(&[&a, &b]).await;
    let ka = a.keyed(REG, KeyedConfig::new(8), log.factory("a")).expect("keyed a");
    let kb = b.keyed(REG, KeyedConfig::new(8), log.factory("b")).expect("keyed b");
    // Past the settle window: each shard sits with its preferred owner.
    sleep(Duration::from_secs(20)).await;
    let mut owners = BTreeMap::new();
    for i in 0..20 {
        let k = format!("fenced-{i}");
        for keyed in [&ka, &kb] {
            let (registry, shard, epoch) = keyed.get(&k).fence().await.expect("ask").expect("a fence");
            assert_eq!((registry.as_str(), shard), (REG, ka.shard_of(&k)), "{k}");
            assert_eq!(kb.shard_of(&k), shard);
            let owner = owner_of(&[&a, &b], REG, shard).expect("owned");
            assert_eq!(held_epoch(&owner.inspect(), REG, shard), Some(epoch), "{k}");
            let lease = store.get(&lease_name(REG, 8, shard)).await.expect("store").expect("held");
            assert_eq!((&lease.holder, lease.epoch.0), (owner.session(), epoch));
            owners.insert(owner.id().to_string(), ());
        }
    }
    assert_eq!(owners.len(), 2, "keys on both nodes");
    a.shutdown().await;
    b.shutdown().await;
}

/// A handle remembers where its last request went (owner, epoch,
/// connection). When that connection ends and a new one is dialled, the
/// handle must not keep the old one: its next request goes over the new
/// connection at once, with no failed attempt and so no retry pause (the
/// first is `MIN_RETRY_DELAY`; nothing else takes time on the paused clock).
#[tokio::test(start_paused = true)]
async fn a_handle_kept_across_a_reconnection_uses_the_new_connection_at_once() {
    let log = ActivationLog::new();
    let cluster = ProbeCluster::start(&["a", "b"], &paused_cfg(), REG, &KeyedConfig::new(SHARDS), &log).await;
    let (a, b) = (cluster.node("a"), cluster.node("b"));
    let key = cluster.key_owned_by("b", "kept");
    let handle = cluster.keyed("a").get(key.as_str());
    // Two asks: the first may read the owner from the store, the second
    // finds it cached and leaves the handle its route.
    for _ in 0..2 {
        assert_eq!(handle.incr().await.expect("served by b").0, "b");
    }
    let handshakes = a.inspect().counters.handshakes_established;
    // A duplicated frame is a replay: b closes the connection on a's next
    // heartbeat, and the two dial again once the fault is gone.
    cluster.net.set_duplicate_rate("a", "b", 1.0);
    wait_until(Duration::from_secs(5), "b closed the connection on a replay", || {
        b.inspect().counters.frame_rejections.contains_key("out_of_sequence")
    })
    .await;
    cluster.net.clear_faults();
    wait_until(Duration::from_secs(5), "a new connection", || a.inspect().counters.handshakes_established > handshakes)
        .await;
    mesh(&[a, b]).await;
    let started = Instant::now();
    assert_eq!(handle.incr().await.expect("served by b over the new connection").0, "b");
    assert!(
        started.elapsed() < axactor_cluster::MIN_RETRY_DELAY,
        "the first attempt failed and was retried: {:?}",
        started.elapsed()
    );
    cluster.shutdown().await;
}
