//! Keyed routing through the public API, over TCP on loopback (ephemeral
//! ports, real clock) and, for order, over the in-memory overlay too:
//!
//! - **order**: 2,000 sequenced tells from one remote ref, acknowledged and
//!   unacknowledged, execute in send order with no gaps (also when the
//!   unacknowledged ones travel in batches, over a slow in-memory link);
//! - **long-lived connections**: 10,000 asks (64 concurrent callers) run
//!   over the one connection the nodes already had;
//! - **bounded memory under flood**: a receiver bounds the asks it executes
//!   at once and refuses the excess before execution, a sender bounds its
//!   own requests in flight; both stay healthy; an abandoned ask frees its
//!   slot at once;
//! - **failover**: a killed owner's keys are served by another node with a
//!   greater epoch (the time is printed for docs/benchmarks.md, not
//!   asserted), and an ask in flight to the killed owner is not re-run;
//! - **safe retries**: an ask that timed out is reported as such and not
//!   executed again;
//! - **frame limit**: an ask too large for a frame is refused by the
//!   sender at once (`TooLarge`, not sent); a reply too large is answered
//!   `Canceled` (it ran); neither waits for the timeout.
//!
//! Shards are pinned (see `support/keyed.rs`): the registry is registered on
//! the intended owner first, so the activations under test never move
//! unless their node dies.
#![allow(missing_docs)]

use std::collections::BTreeSet;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use axactor::{Context, actor};
use axactor_cluster::{
    ClusterConfig, ClusterNode, Keyed, KeyedConfig, LeaseStore, LinkFaults, MemoryLeaseStore, RemoteError,
};
use axactor_tests::Gate;
use axactor_tests::cluster::BOUND;
use axactor_tests::keyed::{Net, all_connected, failover_cfg, holder, owns_all, pinned_cfg};
use tokio::task::JoinSet;
use tokio::time::Instant;

const REGISTRY: &str = "probes";
const SHARDS: usize = 4;

/// One key's activation: records sequence numbers, says where it runs,
/// counts the executions of its slow asks (in a counter shared by every
/// node of a test) and can be held on a gate.
#[derive(Debug)]
pub struct Probe {
    node: String,
    seen: Vec<u64>,
    executions: Arc<AtomicU64>,
    gate: Gate,
}

#[actor(remote)]
impl Probe {
    /// Records `seq`.
    #[msg]
    fn push(&mut self, seq: u64) {
        self.seen.push(seq);
    }

    /// The numbers recorded so far, in execution order.
    #[msg]
    fn seen(&mut self) -> Vec<u64> {
        self.seen.clone()
    }

    /// The node this activation runs on and the shard epoch it runs under.
    #[msg]
    fn whoami(&mut self, ctx: &mut Context) -> (String, u64) {
        (self.node.clone(), ctx.fence().map_or(0, |f| f.epoch))
    }

    /// `n`, unchanged.
    #[msg]
    fn echo(&mut self, n: u64) -> u64 {
        n
    }

    /// The length of `data`.
    #[msg]
    fn size(&mut self, data: Vec<u8>) -> usize {
        data.len()
    }

    /// `n` bytes.
    #[msg]
    fn blob(&mut self, n: usize) -> Vec<u8> {
        vec![7; n]
    }

    /// Counts this execution, then sleeps `ms`; returns the count so far.
    #[msg]
    async fn slow(&mut self, ms: u64) -> u64 {
        let n = self.executions.fetch_add(1, Ordering::SeqCst) + 1;
        tokio::time::sleep(Duration::from_millis(ms)).await;
        n
    }

    /// Counts this execution, then waits until the test opens the gate.
    #[msg]
    async fn hold(&mut self) -> u64 {
        let n = self.executions.fetch_add(1, Ordering::SeqCst) + 1;
        self.gate.pass().await;
        n
    }
}

/// What every node of a test shares with its activations.
#[derive(Debug, Clone, Default)]
struct Probes {
    executions: Arc<AtomicU64>,
    gate: Gate,
}

impl Probes {
    fn factory(&self, node: &str) -> impl Fn(&str) -> Probe + Send + Sync + 'static {
        let (node, executions, gate) = (node.to_string(), Arc::clone(&self.executions), self.gate.clone());
        move |_key: &str| Probe {
            node: node.clone(),
            seen: Vec::new(),
            executions: Arc::clone(&executions),
            gate: gate.clone(),
        }
    }

    fn executions(&self) -> u64 {
        self.executions.load(Ordering::SeqCst)
    }

    /// Waits (at most [`BOUND`]) until `n` executions have started.
    async fn wait_executions(&self, n: u64) {
        let deadline = Instant::now() + BOUND;
        while self.executions() < n {
            assert!(Instant::now() < deadline, "{} of {n} executions started", self.executions());
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    }
}

/// Nodes on `net` (connected), the registry pinned to the first of them
/// and registered on the others afterwards; each node's `Keyed` in order.
async fn pinned_cluster(
    net: &Net,
    names: &[&str],
    cfgs: &[ClusterConfig],
    keyed: KeyedConfig,
    probes: &Probes,
) -> (Vec<ClusterNode>, Vec<Keyed<Probe>>) {
    let store: Arc<dyn LeaseStore> = Arc::new(MemoryLeaseStore::new());
    let mut nodes = Vec::new();
    for (name, cfg) in names.iter().zip(cfgs) {
        nodes.push(net.start(name, Arc::clone(&store), cfg.clone()).await);
    }
    all_connected(&nodes).await;
    let mut registries = Vec::new();
    for (i, node) in nodes.iter().enumerate() {
        registries.push(node.keyed(REGISTRY, keyed.clone(), probes.factory(names[i])).expect("registry"));
        if i == 0 {
            owns_all(node, REGISTRY, SHARDS).await;
        }
    }
    (nodes, registries)
}

async fn shutdown_all(nodes: &[ClusterNode]) {
    for n in nodes {
        n.shutdown().await;
    }
}

/// Consecutive executions out of order (or repeated), and numbers of
/// `0..n` never executed.
fn order_faults(seen: &[u64], n: u64) -> (usize, u64) {
    let inversions = seen.windows(2).filter(|w| w[1] <= w[0]).count();
    let distinct: BTreeSet<u64> = seen.iter().copied().collect();
    let missing = (0..n).filter(|i| !distinct.contains(i)).count() as u64;
    (inversions, missing)
}

/// Messages the receiver counted as dropped or refused, all reasons.
fn counted_losses(node: &ClusterNode) -> u64 {
    let c = node.inspect().counters;
    c.dropped.values().sum::<u64>() + c.requests_rejected.values().sum::<u64>()
}

const ORDER_MESSAGES: u64 = 2_000;

/// The order promise on `net`: node `a` sends, the activations live on `b`.
/// With `slow_link` (in memory only) the unacknowledged tells go over a
/// link that delays every frame by 1 ms, so they queue while the link is
/// behind and travel in batches (`Tells`, protocol version 3).
async fn one_sender_keeps_its_order(net: Net, slow_link: bool) {
    let label = net.label();
    let probes = Probes::default();
    let cfg = KeyedConfig::new(SHARDS).mailbox_capacity(4096);
    let (nodes, keyed) = pinned_cluster(&net, &["b", "a"], &[pinned_cfg(), pinned_cfg()], cfg, &probes).await;
    let (b, ka) = (&nodes[0], &keyed[1]);

    // Acknowledged tells: each is in the mailbox before the next is sent.
    let acked = ka.get("acked");
    let home = acked.whoami().await.expect("whoami");
    assert_eq!(home.0, "b", "{label}: the activation must be remote");
    for seq in 0..ORDER_MESSAGES {
        acked.push_wait(seq).await.unwrap_or_else(|e| panic!("{label}: push_wait({seq}): {e}"));
    }
    let seen = acked.seen().await.expect("seen");
    assert_eq!(order_faults(&seen, ORDER_MESSAGES), (0, 0), "{label}: acknowledged: (inversions, missing)");
    assert_eq!(seen.len() as u64, ORDER_MESSAGES, "{label}: acknowledged: executed once each");
    assert_eq!(acked.whoami().await.expect("whoami"), home, "{label}: the activation did not move");

    // Unacknowledged tells, back to back: the ask queues behind them on the
    // same connection and in the same mailbox.
    if slow_link && let Net::Memory(mem) = &net {
        let delay = Duration::from_millis(1);
        mem.set_link_faults("a", "b", LinkFaults { delay_min: delay, delay_max: delay, ..LinkFaults::NONE });
    }
    let batches_before = b.inspect().counters.tell_batches_received;
    let losses_before = counted_losses(b);
    let unacked = ka.get("unacked");
    let home = unacked.whoami().await.expect("whoami");
    assert_eq!(home.0, "b", "{label}: the activation must be remote");
    for seq in 0..ORDER_MESSAGES {
        unacked.push(seq).await.unwrap_or_else(|e| panic!("{label}: push({seq}): {e}"));
    }
    let seen = unacked.seen().await.expect("seen");
    let (inversions, missing) = order_faults(&seen, ORDER_MESSAGES);
    assert_eq!(inversions, 0, "{label}: unacknowledged: inversions");
    let counted = counted_losses(b) - losses_before;
    assert!(missing <= counted, "{label}: {missing} tells missing, only {counted} drops counted by the receiver");
    assert_eq!(seen.len() as u64 + missing, ORDER_MESSAGES, "{label}: unacknowledged: executed at most once each");
    assert_eq!(unacked.whoami().await.expect("whoami"), home, "{label}: the activation did not move");
    let counters = b.inspect().counters;
    let batches = counters.tell_batches_received - batches_before;
    if slow_link {
        assert!(batches > 0, "{label}: the tells queued behind the slow link travelled in batches");
    }
    eprintln!(
        "order over {label}: {missing} unacknowledged tells lost ({counted} losses counted), {batches} batches received"
    );
    shutdown_all(&nodes).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_sender_keeps_its_order_over_tcp() {
    one_sender_keeps_its_order(Net::tcp(), false).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_sender_keeps_its_order_in_memory() {
    one_sender_keeps_its_order(Net::memory(), false).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_sender_keeps_its_order_in_batches_over_a_slow_link() {
    one_sender_keeps_its_order(Net::memory(), true).await;
}

const ASKS: u64 = 10_000;
const CALLERS: u64 = 64;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ten_thousand_asks_share_one_connection() {
    let net = Net::tcp();
    let probes = Probes::default();
    let (nodes, keyed) =
        pinned_cluster(&net, &["b", "a"], &[pinned_cfg(), pinned_cfg()], KeyedConfig::new(SHARDS), &probes).await;
    let (b, a, ka) = (&nodes[0], &nodes[1], &keyed[1]);
    let sockets_before = net.tcp_stats().expect("tcp");

    let mut callers = JoinSet::new();
    for caller in 0..CALLERS {
        let r = ka.get(format!("key-{}", caller % 16));
        callers.spawn(async move {
            for i in (caller..ASKS).step_by(CALLERS as usize) {
                assert_eq!(r.echo(i).await.unwrap_or_else(|e| panic!("ask {i}: {e}")), i);
            }
        });
    }
    while let Some(done) = callers.join_next().await {
        done.expect("caller");
    }

    let sockets = net.tcp_stats().expect("tcp");
    for node in [a, b] {
        let c = node.inspect().counters;
        assert!(c.handshakes_established <= 2, "{}: {} handshakes: {c:#?}", node.id(), c.handshakes_established);
        assert_eq!(c.sessions_replaced, 0, "{}: reconnected", node.id());
    }
    assert_eq!(
        (sockets.connections_dialed, sockets.connections_accepted),
        (sockets_before.connections_dialed, sockets_before.connections_accepted),
        "no socket was opened for the asks"
    );
    assert!(sockets.connections_dialed <= 2, "{sockets:?}");
    assert!(sockets.frames_sent >= 2 * ASKS, "the asks went over TCP: {sockets:?}");
    shutdown_all(&nodes).await;
}

const FLOOD: usize = 5_000;
const RECEIVER_INFLIGHT: usize = 32;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_flooded_receiver_refuses_the_excess_and_stays_healthy() {
    let net = Net::tcp();
    let probes = Probes::default();
    let receiver = ClusterConfig { max_inflight_requests: RECEIVER_INFLIGHT, ..pinned_cfg() };
    let (nodes, keyed) =
        pinned_cluster(&net, &["b", "a"], &[receiver, pinned_cfg()], KeyedConfig::new(SHARDS), &probes).await;
    let (b, ka) = (&nodes[0], &keyed[1]);
    let rejected_before = b.inspect().counters.requests_rejected;
    assert!(rejected_before.is_empty(), "{rejected_before:?}");

    let started = Instant::now();
    let slow = ka.get("slow");
    let mut asks = JoinSet::new();
    for _ in 0..FLOOD {
        let r = slow.clone();
        asks.spawn(async move { r.slow(2).await });
    }
    let (mut ok, mut refused, mut other) = (0u64, 0u64, Vec::new());
    while let Some(done) = asks.join_next().await {
        match done.expect("ask task") {
            Ok(_) => ok += 1,
            Err(e @ (RemoteError::Overloaded | RemoteError::MailboxFull)) => {
                assert!(e.is_definitely_not_executed(), "{e}");
                refused += 1;
            }
            Err(e) => other.push(e),
        }
    }
    eprintln!("flood: {ok} executed, {refused} refused in {:?}", started.elapsed());
    assert!(
        other.is_empty(),
        "only definite refusals, got {} others: {:?}",
        other.len(),
        &other[..other.len().min(10)]
    );
    assert!(refused > 0 && ok > 0, "{ok} executed, {refused} refused");
    assert_eq!(probes.executions(), ok, "a refused ask never ran");
    // Each refused ask was sent once and refused once: overload is not
    // retried (retries would multiply the flood).
    let rejected = b.inspect().counters.requests_rejected;
    let counted = rejected.get("overloaded").copied().unwrap_or(0) + rejected.get("mailbox_full").copied().unwrap_or(0);
    assert_eq!(counted, refused, "refusals counted by the receiver: {rejected:?}");

    // Healthy afterwards: a fresh ask, on the flooded activation and another.
    assert_eq!(slow.echo(7).await.expect("fresh ask"), 7);
    assert_eq!(ka.get("other").echo(8).await.expect("fresh ask"), 8);
    shutdown_all(&nodes).await;
}

const SENDER_INFLIGHT: usize = 8;
const EXTRA: u64 = 100;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_sender_bounds_its_requests_in_flight() {
    let net = Net::tcp();
    let probes = Probes::default();
    let sender = ClusterConfig { max_inflight_requests: SENDER_INFLIGHT, ..pinned_cfg() };
    let (nodes, keyed) =
        pinned_cluster(&net, &["b", "a"], &[pinned_cfg(), sender], KeyedConfig::new(SHARDS), &probes).await;
    let (b, a, ka) = (&nodes[0], &nodes[1], &keyed[1]);

    // Fill the sender's table: one held ask per activation.
    let mut held = JoinSet::new();
    for i in 0..SENDER_INFLIGHT {
        let r = ka.get(format!("held-{i}"));
        held.spawn(async move { r.hold().await });
    }
    probes.wait_executions(SENDER_INFLIGHT as u64).await;
    let rejected_at_receiver = counted_losses(b);

    let mut extra = JoinSet::new();
    for i in 0..EXTRA {
        let r = ka.get("extra");
        extra.spawn(async move { r.echo(i).await });
    }
    while let Some(done) = extra.join_next().await {
        let e = done.expect("task").expect_err("no room in the sender's table");
        assert_eq!(e, RemoteError::Overloaded);
        assert!(e.is_definitely_not_executed());
    }
    assert_eq!(held.len(), SENDER_INFLIGHT, "the held asks are still in flight");
    assert_eq!(counted_losses(b), rejected_at_receiver, "the excess never reached the receiver");
    // One attempt each: failed fast, not retried until the request timeout.
    assert_eq!(a.inspect().counters.dropped.get("inflight_table_full"), Some(&EXTRA));

    probes.gate.open(SENDER_INFLIGHT);
    while let Some(done) = held.join_next().await {
        done.expect("task").expect("held ask completes once released");
    }
    assert_eq!(ka.get("extra").echo(9).await.expect("room again"), 9);
    shutdown_all(&nodes).await;
}

const SMALL_INFLIGHT: usize = 4;

/// A caller that gives up on an ask (its task aborted, or a `timeout`
/// around the call) frees its slot of `max_inflight_requests` at once; the
/// late reply is dropped and counted.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn abandoned_asks_free_their_in_flight_slots() {
    let net = Net::tcp();
    let probes = Probes::default();
    let sender = ClusterConfig { max_inflight_requests: SMALL_INFLIGHT, ..pinned_cfg() };
    let (nodes, keyed) =
        pinned_cluster(&net, &["b", "a"], &[pinned_cfg(), sender], KeyedConfig::new(SHARDS), &probes).await;
    let (a, ka) = (&nodes[1], &keyed[1]);

    // Fill the sender's table with asks whose handlers do not return, then
    // give up on all of them.
    let mut held = JoinSet::new();
    for i in 0..SMALL_INFLIGHT {
        let r = ka.get(format!("held-{i}"));
        held.spawn(async move { r.hold().await });
    }
    probes.wait_executions(SMALL_INFLIGHT as u64).await;
    held.abort_all();
    while let Some(done) = held.join_next().await {
        assert!(done.expect_err("aborted").is_cancelled());
    }

    // Their slots are free: new asks are accepted, not refused `Overloaded`.
    for i in 0..2 * SMALL_INFLIGHT as u64 {
        assert_eq!(ka.get("fresh").echo(i).await.expect("a slot is free"), i);
    }
    assert_eq!(a.inspect().counters.dropped.get("request_abandoned"), Some(&(SMALL_INFLIGHT as u64)));
    assert_eq!(a.inspect().counters.dropped.get("inflight_table_full"), None);

    // The replies that come after all are dropped and counted.
    probes.gate.open(SMALL_INFLIGHT);
    let deadline = Instant::now() + BOUND;
    while a.inspect().counters.dropped.get("unmatched_response") != Some(&(SMALL_INFLIGHT as u64)) {
        assert!(Instant::now() < deadline, "late replies not counted: {:?}", a.inspect().counters.dropped);
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    shutdown_all(&nodes).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_killed_owner_fails_over_and_in_flight_asks_are_not_rerun() {
    let net = Net::tcp();
    let probes = Probes::default();
    let cfgs = [failover_cfg(), failover_cfg(), failover_cfg()];
    let (nodes, keyed) = pinned_cluster(&net, &["a", "b", "c"], &cfgs, KeyedConfig::new(SHARDS), &probes).await;
    let (a, kb, kc) = (&nodes[0], &keyed[1], &keyed[2]);
    let key = "k";
    let (owner, epoch) = kc.get(key).whoami().await.expect("whoami");
    assert_eq!(owner, "a");
    let shard = kc.shard_of(key);
    assert_eq!(holder(&[a], REGISTRY, shard), Some((0, epoch)));

    // An ask executing on `a` when it dies: its outcome is unknown.
    let in_flight = {
        let r = kc.get(key);
        tokio::spawn(async move { r.slow_timeout(60_000, Duration::from_secs(30)).await })
    };
    probes.wait_executions(1).await;
    let killed = Instant::now();
    a.kill();
    let lost = in_flight.await.expect("task").expect_err("the owner died");
    assert!(!lost.is_definitely_not_executed(), "{lost}: it may have run");

    let deadline = killed + BOUND;
    let (node, new_epoch) = loop {
        match kb.get(key).whoami_timeout(Duration::from_millis(500)).await {
            Ok(found) => break found,
            Err(e) => assert!(Instant::now() < deadline, "not served within {BOUND:?} of the kill: {e}"),
        }
    };
    let failover = killed.elapsed();
    eprintln!(
        "failover over tcp: key served again after {failover:?} (lease_ttl 1 s + renew 300 ms + request timeout 1 s = 2.3 s)"
    );
    assert!(node == "b" || node == "c", "served by {node}");
    assert!(new_epoch > epoch, "epoch {new_epoch} after {epoch}");
    assert_eq!(kc.get(key).whoami().await.expect("whoami"), (node, new_epoch), "b and c agree");

    // The lost ask ran once (on `a`) and was not re-run on the new owner:
    // this ask queues after anything sent for the key before it.
    assert_eq!(kc.get(key).slow(0).await.expect("slow"), 2, "executions, this one included");
    shutdown_all(&nodes[1..]).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_timed_out_ask_is_reported_and_not_rerun() {
    let net = Net::tcp();
    let probes = Probes::default();
    let (nodes, keyed) =
        pinned_cluster(&net, &["b", "a"], &[pinned_cfg(), pinned_cfg()], KeyedConfig::new(SHARDS), &probes).await;
    let ka = &keyed[1];
    let r = ka.get("timeout");
    assert_eq!(r.whoami().await.expect("whoami").0, "b");

    let e = r.slow_timeout(600, Duration::from_millis(150)).await.expect_err("the handler outlasts the timeout");
    assert_eq!(e, RemoteError::Timeout);
    assert!(!e.is_definitely_not_executed(), "a timed-out ask may have run");
    // Queued behind the first (and anything re-sent for it): counts 2 only
    // if the timed-out ask ran exactly once.
    assert_eq!(r.slow(0).await.expect("slow"), 2, "executions, this one included");
    assert_eq!(probes.executions(), 2);
    shutdown_all(&nodes).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_message_larger_than_a_frame_fails_at_once_not_by_timeout() {
    let net = Net::tcp();
    let probes = Probes::default();
    let cfg = ClusterConfig { max_frame_bytes: 64 * 1024, request_timeout: Duration::from_secs(5), ..pinned_cfg() };
    let (nodes, keyed) =
        pinned_cluster(&net, &["b", "a"], &[cfg.clone(), cfg], KeyedConfig::new(SHARDS), &probes).await;
    let r = keyed[1].get("big");
    assert_eq!(r.whoami().await.expect("whoami").0, "b");
    let sent_before = nodes[1].inspect().counters.dropped.get("unencodable").copied().unwrap_or(0);

    let started = Instant::now();
    let e = r.size(vec![7; 100 * 1024]).await.expect_err("over the 64 KiB frame limit");
    assert_eq!(e, RemoteError::TooLarge);
    assert!(e.is_definitely_not_executed());
    assert!(started.elapsed() < Duration::from_secs(5), "refused, not timed out");
    // Not handed to the connection (whose writer would have dropped it).
    assert_eq!(nodes[1].inspect().counters.dropped.get("unencodable").copied().unwrap_or(0), sent_before);
    // A reply over the limit: the ask ran, its reply cannot be sent; the
    // asker learns so at once (not a timeout).
    let started = Instant::now();
    assert_eq!(r.blob(100 * 1024).await.expect_err("reply over the limit"), RemoteError::Canceled);
    assert!(started.elapsed() < Duration::from_secs(5), "answered, not timed out");
    // Just under the limit passes, and the connection is as it was.
    assert_eq!(r.size(vec![7; 60 * 1024]).await.expect("fits"), 60 * 1024);
    assert_eq!(r.blob(60 * 1024).await.expect("fits").len(), 60 * 1024);
    assert_eq!(r.echo(5).await.expect("echo"), 5);
    shutdown_all(&nodes).await;
}
