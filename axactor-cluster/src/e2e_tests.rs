//! End-to-end tests of routing inside the crate (the cross-crate behaviour
//! tests live in `tests/`), and unit tests of the host's fencing check.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use axactor::{Context, ExitReason, System, actor};
use tokio::sync::{Semaphore, mpsc};
use tokio::time::Instant;

use crate::host::{Host, Local};
use crate::hosted::{HostedRegistry, TellsDelivered};
use crate::lease::Epoch;
use crate::node::replies::{Replies, ReplyRoom};
use crate::wire::{DataMsg, Envelope, Rejection, decode_envelope};
use crate::{ClusterConfig, ClusterNode, InMemoryOverlay, KeyedConfig, MemoryLeaseStore, NodeId};

/// Events seen by the test actors: (node, key, what).
type Log = mpsc::UnboundedSender<(String, String, String)>;

pub(crate) struct Acct {
    node: String,
    key: String,
    balance: i64,
    log: Log,
}

#[actor(remote)]
impl Acct {
    #[msg]
    fn deposit(&mut self, amount: i64) {
        self.balance += amount;
    }
    #[msg]
    fn balance(&mut self) -> i64 {
        self.balance
    }
    async fn on_start(&mut self, ctx: &mut Context) {
        let fence = ctx.fence().map(|f| f.epoch).unwrap_or(0);
        let _ = self.log.send((self.node.clone(), self.key.clone(), format!("start e{fence}")));
    }
    async fn on_stop(&mut self, _ctx: &mut Context, reason: &ExitReason) {
        let _ = self.log.send((self.node.clone(), self.key.clone(), format!("stop {reason}")));
    }
}

fn cfg() -> ClusterConfig {
    ClusterConfig {
        auth_token: Some("e2e-tests-cluster-token-3a9f0c7d51".into()),
        lease_ttl: Duration::from_millis(1000),
        renew_interval: Duration::from_millis(300),
        node_ttl: Duration::from_millis(1000),
        heartbeat_interval: Duration::from_millis(100),
        request_timeout: Duration::from_millis(2000),
        lease_store_timeout: Duration::from_millis(500),
        rebalance_settle: Duration::from_millis(500),
        ..ClusterConfig::default()
    }
}

fn factory(node: &str, log: &Log) -> impl Fn(&str) -> Acct + Send + Sync + 'static {
    let (node, log) = (node.to_string(), log.clone());
    move |key: &str| Acct { node: node.clone(), key: key.to_string(), balance: 0, log: log.clone() }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_nodes_route_to_one_activation() {
    let net = InMemoryOverlay::new();
    let store = Arc::new(MemoryLeaseStore::new());
    let (log, mut events) = mpsc::unbounded_channel();
    let a = ClusterNode::start(NodeId::new("a"), store.clone(), net.clone(), cfg()).await.expect("a");
    let b = ClusterNode::start(NodeId::new("b"), store.clone(), net.clone(), cfg()).await.expect("b");
    let ka = a.keyed("accounts", KeyedConfig::new(8), factory("a", &log)).expect("keyed a");
    let kb = b.keyed("accounts", KeyedConfig::new(8), factory("b", &log)).expect("keyed b");
    for i in 0..20 {
        ka.get(format!("k{i}")).deposit_wait(1).await.expect("deposit");
        ka.get(format!("k{i}")).deposit(1).await.expect("deposit unacked");
    }
    for i in 0..20 {
        assert_eq!(kb.get(format!("k{i}")).balance().await.expect("balance"), 2);
        assert_eq!(ka.get(format!("k{i}")).balance().await.expect("balance"), 2);
    }
    let (ia, ib) = (a.inspect(), b.inspect());
    assert_eq!(ia.owned_count("accounts") + ib.owned_count("accounts"), 8, "{:?} {:?}", ia.shards, ib.shards);
    a.shutdown().await;
    // After a's graceful shutdown, b serves every key (state is not carried over).
    for i in 0..20 {
        // A request b sent to a just as a closed may be lost with the
        // connection (`ConnectionLost`: it may have run); retrying is the
        // caller's call. Definite failures are retried by the runtime.
        let r = kb.get(format!("k{i}"));
        match r.deposit_wait(1).await {
            Err(e) if !e.is_definitely_not_executed() => r.deposit_wait(1).await.expect("deposit after shutdown"),
            other => other.expect("deposit after shutdown"),
        }
    }
    assert_eq!(b.inspect().owned_count("accounts"), 8);
    b.shutdown().await;
    drop(log);
    let mut live = std::collections::BTreeMap::<String, i32>::new();
    while let Ok((_node, key, what)) = events.try_recv() {
        let n = live.entry(key).or_default();
        if what.starts_with("start") {
            *n += 1;
            assert_eq!(*n, 1, "two activations at once");
        } else {
            *n -= 1;
        }
    }
}

fn host(log: &Log) -> Arc<Host<Acct>> {
    let f: Arc<dyn Fn(&str) -> Acct + Send + Sync> = Arc::new(factory("n", log));
    Host::new("accounts", KeyedConfig::new(4), f, Arc::new(System::new()), crate::env::Env::production(), None)
}

/// A key of `shard` in a registry of `count` shards.
fn key_in(shard: u32, count: u32) -> String {
    (0..).map(|i| format!("k{i}")).find(|k| crate::shard::shard_of(k, count) == shard).expect("some key")
}

fn tell_bytes(amount: i64) -> Vec<u8> {
    postcard::to_allocvec(&AcctTell::Deposit { amount }).expect("encodable")
}

#[tokio::test(start_paused = true)]
async fn only_the_exact_epoch_before_the_deadline_executes() {
    let (log, _events) = mpsc::unbounded_channel();
    let h = host(&log);
    let deadline = Instant::now() + Duration::from_secs(10);
    let (k, other) = (key_in(0, 4), key_in(1, 4));
    // Not held: not owner.
    assert_eq!(h.deliver_tell(0, 5, &k, &tell_bytes(1)), Err(Rejection::NotOwner { owner_hint: None }));
    h.grant(0, Epoch(5), deadline);
    // Forged epochs, lower and higher: stale, nothing enqueued.
    assert_eq!(h.deliver_tell(0, 4, &k, &tell_bytes(1)), Err(Rejection::StaleEpoch { current: 5 }));
    assert_eq!(h.deliver_tell(0, 6, &k, &tell_bytes(1)), Err(Rejection::StaleEpoch { current: 5 }));
    // Another shard of the registry: not owner.
    assert_eq!(h.deliver_tell(1, 5, &other, &tell_bytes(1)), Err(Rejection::NotOwner { owner_hint: None }));
    // A key that is not in the shard named (a sender with another shard
    // count): refused before anything else.
    assert_eq!(h.deliver_tell(0, 5, &other, &tell_bytes(1)), Err(Rejection::WrongShard { shard_count: 4 }));
    // Garbage payload.
    assert_eq!(h.deliver_tell(0, 5, &k, &[0xFF, 0xFF]), Err(Rejection::BadPayload));
    // The exact epoch executes.
    assert_eq!(h.deliver_tell(0, 5, &k, &tell_bytes(7)), Ok(()));
    let ask = postcard::to_allocvec(&AcctAsk::Balance {}).expect("encodable");
    let (replies, permits) = (parking_lot::Mutex::new(Replies::new(1 << 16)), Arc::new(Semaphore::new(2)));
    let room = || ReplyRoom::new(&replies, Arc::clone(&permits).try_acquire_owned().expect("a permit"));
    assert_eq!(h.deliver_ask(41, 0, 5, &k, &ask, room()), Ok(()));
    let out = std::future::poll_fn(|cx| replies.lock().poll_next(cx)).await.expect("reply");
    let Ok(Envelope::Data(DataMsg::Reply { request_id: 41, payload })) = decode_envelope(out.frame.envelope_bytes())
    else {
        panic!("a reply to request 41")
    };
    let AcctReply::Balance(b) = postcard::from_bytes(&payload).expect("decodes");
    assert_eq!(b, 7, "only the exact-epoch tell ran");
    // Forged epoch on an ask.
    assert_eq!(h.deliver_ask(42, 0, 9, &k, &ask, room()), Err(Rejection::StaleEpoch { current: 5 }));
    assert_eq!(permits.available_permits(), 2, "a refused ask holds no permit, a reply taken none");
    // Past the local deadline: refused even though nobody revoked it yet.
    tokio::time::sleep_until(deadline).await;
    assert_eq!(h.deliver_tell(0, 5, &k, &tell_bytes(1)), Err(Rejection::NotOwner { owner_hint: None }));
    assert!(!h.usable(0));
}

#[tokio::test(start_paused = true)]
async fn revoke_stops_activations_before_anything_else_runs() {
    let (log, mut events) = mpsc::unbounded_channel();
    let h = host(&log);
    let k = key_in(2, 4);
    h.grant(2, Epoch(1), Instant::now() + Duration::from_secs(10));
    assert_eq!(h.deliver_tell(2, 1, &k, &tell_bytes(1)), Ok(()));
    // Let the activation start and run its message.
    tokio::time::sleep(Duration::from_millis(1)).await;
    assert_eq!(h.deliver_tell(2, 1, &k, &tell_bytes(1)), Ok(()));
    h.revoke(2, ExitReason::LeaseLost, Instant::now() + Duration::from_millis(100)).await;
    assert_eq!(h.deliver_tell(2, 1, &k, &tell_bytes(1)), Err(Rejection::NotOwner { owner_hint: None }));
    assert!(matches!(h.local_tell(2, &k, AcctTell::Deposit { amount: 1 }, None).await, Local::NotHere(_)));
    let mut seen = Vec::new();
    while let Ok((_, _, what)) = events.try_recv() {
        seen.push(what);
    }
    assert_eq!(seen, vec!["start e1".to_string(), "stop lease lost".to_string()]);
    assert!(h.owned().is_empty());
}

#[tokio::test(start_paused = true)]
async fn an_activation_revoked_before_it_started_never_starts() {
    let (log, mut events) = mpsc::unbounded_channel();
    let h = host(&log);
    let k = key_in(3, 4);
    h.grant(3, Epoch(1), Instant::now() + Duration::from_secs(10));
    // Queued (the activation is spawned) but revoked before its task ran:
    // neither `on_start` nor the message runs.
    assert_eq!(h.deliver_tell(3, 1, &k, &tell_bytes(1)), Ok(()));
    h.revoke(3, ExitReason::LeaseLost, Instant::now() + Duration::from_millis(100)).await;
    assert!(events.try_recv().is_err(), "nothing of the revoked grant ran");
}

#[tokio::test(start_paused = true)]
async fn activations_are_bounded() {
    let (log, _events) = mpsc::unbounded_channel();
    let f: Arc<dyn Fn(&str) -> Acct + Send + Sync> = Arc::new(factory("n", &log));
    let h = Host::new(
        "accounts",
        KeyedConfig::new(1).max_activations(2),
        f,
        Arc::new(System::new()),
        crate::env::Env::production(),
        None,
    );
    h.grant(0, Epoch(1), Instant::now() + Duration::from_secs(10));
    assert_eq!(h.deliver_tell(0, 1, "a", &tell_bytes(1)), Ok(()));
    assert_eq!(h.deliver_tell(0, 1, "b", &tell_bytes(1)), Ok(()));
    assert_eq!(h.deliver_tell(0, 1, "c", &tell_bytes(1)), Err(Rejection::Overloaded));
    assert_eq!(h.deliver_tell(0, 1, "a", &tell_bytes(1)), Ok(()), "existing keys still served");
}

/// The local fast path when the activation's mailbox is full: a plain tell
/// is refused at once (`MailboxFull`, never run), while an acknowledged
/// tell and an ask wait for room until their deadline and then go through.
#[tokio::test(start_paused = true)]
async fn a_full_local_mailbox_refuses_a_plain_tell_and_makes_waiting_calls_wait() {
    let (log, _events) = mpsc::unbounded_channel();
    let store = Arc::new(MemoryLeaseStore::new());
    let node = ClusterNode::start(NodeId::new("solo"), store, InMemoryOverlay::new(), cfg()).await.expect("node");
    let keyed = node.keyed("accounts", KeyedConfig::new(1).mailbox_capacity(1), factory("solo", &log)).expect("keyed");
    let r = keyed.get("k");
    // Bounded wait for the one shard (and the activation) to be here.
    let started = Instant::now();
    while r.balance().await.is_err() {
        assert!(started.elapsed() < Duration::from_secs(30), "the node never took its shard");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert_eq!(node.inspect().owned_count("accounts"), 1);
    // One test thread: the activation runs only when this task waits, so
    // the first tell fills its one-slot mailbox and the second finds it full.
    r.deposit(1).await.expect("room for one");
    assert!(matches!(r.deposit(2).await, Err(crate::RemoteError::MailboxFull)));
    r.deposit_wait(4).await.expect("waits for room");
    assert_eq!(r.balance().await.expect("waits for room, then the reply"), 5, "the refused tell never ran");
    node.shutdown().await;
}

/// Reports its actor's name when it starts.
pub(crate) struct Named(mpsc::UnboundedSender<String>);

#[actor(remote)]
impl Named {
    #[msg]
    fn poke(&mut self) {}
    async fn on_start(&mut self, ctx: &mut Context) {
        let _ = self.0.send(ctx.name().to_owned());
    }
}

/// An activation's actor is named `registry/key#id`, `id` being what its
/// monitors are told it is (`Monitored`); the next activation of the key
/// gets another id.
#[tokio::test(start_paused = true)]
async fn an_activation_is_named_by_the_id_its_monitors_are_given() {
    let (tx, mut names) = mpsc::unbounded_channel();
    let f: Arc<dyn Fn(&str) -> Named + Send + Sync> = Arc::new(move |_: &str| Named(tx.clone()));
    let h = Host::new("named", KeyedConfig::new(4), f, Arc::new(System::new()), crate::env::Env::production(), None);
    let k = key_in(1, 4);
    let poke = postcard::to_allocvec(&NamedTell::Poke {}).expect("encodable");
    let mut ids = Vec::new();
    for epoch in 1..=2 {
        h.grant(1, Epoch(epoch), Instant::now() + Duration::from_secs(10));
        assert_eq!(h.deliver_tell(1, epoch, &k, &poke), Ok(()));
        let (down_tx, _down_rx) = mpsc::channel(1);
        let Ok(id) = HostedRegistry::monitor(&*h, &k, crate::hosted::MonitorSink::Local { tx: down_tx }) else {
            panic!("the monitor is placed on the running activation")
        };
        let name = names.recv().await.expect("the activation started");
        assert_eq!(name, format!("named/{k}#{id}"));
        assert_eq!(crate::host::activation_id(&name), Some(id));
        ids.push(id);
        h.revoke(1, ExitReason::LeaseLost, Instant::now() + Duration::from_millis(100)).await;
    }
    assert_ne!(ids[0], ids[1], "ids are never reused");
}

/// Waits (paused clock, bounded) until `check` holds.
async fn until(what: &str, check: impl Fn() -> bool) {
    let bound = Instant::now() + Duration::from_secs(60);
    while !check() {
        assert!(Instant::now() < bound, "not within 60 s: {what}");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

/// Simulation seed 83243, deterministically: the watcher's owner cache
/// names the activation's node at an older epoch than the one it runs
/// under. The monitor placed by it survives a lost connection while the
/// owner keeps its lease (no `NodeDown` made up from the epoch it routed
/// by), and still fires once the activation stops.
#[tokio::test(start_paused = true)]
async fn a_monitor_routed_by_a_stale_epoch_does_not_fire_while_its_activation_runs() {
    let net = InMemoryOverlay::new();
    let store = Arc::new(MemoryLeaseStore::new());
    let (log, mut events) = mpsc::unbounded_channel();
    let keyed_cfg = || KeyedConfig::new(8).idle_timeout(None);
    let a = ClusterNode::start(NodeId::new("a"), store.clone(), net.clone(), cfg()).await.expect("a");
    let b = ClusterNode::start(NodeId::new("b"), store.clone(), net.clone(), cfg()).await.expect("b");
    let ka = a.keyed("accounts", keyed_cfg(), factory("a", &log)).expect("keyed a");
    let kb = b.keyed("accounts", keyed_cfg(), factory("b", &log)).expect("keyed b");
    until("placement settles", || a.inspect().owned_count("accounts") + b.inspect().owned_count("accounts") == 8).await;
    tokio::time::sleep(Duration::from_secs(2)).await;
    let held = |key: &str| a.inspect().shards.iter().find(|s| s.shard == ka.shard_of(key)).map(|s| s.epoch);
    let key = (0..100).map(|i| format!("k{i}")).find(|k| held(k).is_some()).expect("a key a holds");
    let (shard, epoch) = (ka.shard_of(&key), held(&key).expect("held"));
    ka.get(key.as_str()).deposit_wait(1).await.expect("activated on a");
    // b's cache: a, one epoch back.
    b.recache_owner("accounts", shard, a.session().clone(), Epoch(epoch - 1));
    let mut rx = kb.get(key.as_str()).monitor().await.expect("monitor placed");

    net.partition("a", "b");
    until("the connection ended", || b.inspect().peer("a").is_none()).await;
    // Many store reads by the detached monitor (one per renew interval):
    // the lease stays a's, at `epoch`, and the activation runs on.
    tokio::time::sleep(Duration::from_secs(5)).await;
    assert_eq!(held(&key), Some(epoch));
    assert!(rx.try_recv().is_err(), "fired while its activation runs");
    net.heal("a", "b");
    until("reconnected", || b.inspect().peer("a").is_some()).await;
    tokio::time::sleep(Duration::from_secs(2)).await;
    assert!(rx.try_recv().is_err(), "fired while its activation runs");
    assert_eq!(ka.get(key.as_str()).balance().await.expect("still served by a"), 1);
    let stops = |events: &mut mpsc::UnboundedReceiver<(String, String, String)>| {
        std::iter::from_fn(|| events.try_recv().ok())
            .filter(|(n, k, w)| *n == "a" && *k == key && w.starts_with("stop"))
            .count()
    };
    assert_eq!(stops(&mut events), 0);
    // The activation stops (a leaves): the monitor fires, once.
    a.shutdown().await;
    let down = tokio::time::timeout(Duration::from_secs(30), rx.recv()).await.expect("a Down").expect("one event");
    assert_eq!(down.key, key);
    assert_eq!(stops(&mut events), 1);
    assert!(rx.try_recv().is_err(), "a second event");
    b.shutdown().await;
}

/// A `Tells` is checked once (the shard, the fence) and its tells enqueued
/// in order; a payload that does not decode is refused on its own.
#[tokio::test(start_paused = true)]
async fn a_batch_of_tells_is_checked_once_and_enqueued_in_order() {
    let (log, _events) = mpsc::unbounded_channel();
    let h = host(&log);
    let (k, other) = (key_in(0, 4), key_in(1, 4));
    let (one, two, four) = (tell_bytes(1), tell_bytes(2), tell_bytes(4));
    let batch: [&[u8]; 4] = [&one, &[0xFF, 0xFF], &two, &four];
    assert_eq!(h.deliver_tells(0, 5, &k, &batch), Err(Rejection::NotOwner { owner_hint: None }));
    h.grant(0, Epoch(5), Instant::now() + Duration::from_secs(10));
    assert_eq!(h.deliver_tells(0, 4, &k, &batch), Err(Rejection::StaleEpoch { current: 5 }));
    assert_eq!(h.deliver_tells(0, 5, &other, &batch), Err(Rejection::WrongShard { shard_count: 4 }));
    let done = h.deliver_tells(0, 5, &k, &batch).expect("delivered");
    assert_eq!(done, TellsDelivered { taken: 4, refused: vec![(1, Rejection::BadPayload)] });
    let (replies, permits) = (parking_lot::Mutex::new(Replies::new(1 << 16)), Arc::new(Semaphore::new(1)));
    let room = ReplyRoom::new(&replies, Arc::clone(&permits).try_acquire_owned().expect("a permit"));
    let ask = postcard::to_allocvec(&AcctAsk::Balance {}).expect("encodable");
    assert_eq!(h.deliver_ask(7, 0, 5, &k, &ask, room), Ok(()));
    let out = std::future::poll_fn(|cx| replies.lock().poll_next(cx)).await.expect("reply");
    let Ok(Envelope::Data(DataMsg::Reply { payload, .. })) = decode_envelope(out.frame.envelope_bytes()) else {
        panic!("a reply")
    };
    let AcctReply::Balance(b) = postcard::from_bytes(&payload).expect("decodes");
    assert_eq!(b, 7, "the three good tells ran, the bad one did not");
}

/// A full mailbox stops a batch at the first tell it has no room for; the
/// rest can be delivered from there once the activation has made room.
#[tokio::test(start_paused = true)]
async fn a_full_mailbox_stops_a_batch_where_it_has_no_room() {
    let (log, _events) = mpsc::unbounded_channel();
    let f: Arc<dyn Fn(&str) -> Acct + Send + Sync> = Arc::new(factory("n", &log));
    let cfg = KeyedConfig::new(1).mailbox_capacity(2);
    let h = Host::new("accounts", cfg, f, Arc::new(System::new()), crate::env::Env::production(), None);
    h.grant(0, Epoch(1), Instant::now() + Duration::from_secs(10));
    let tells: Vec<Vec<u8>> = (0..5).map(tell_bytes).collect();
    let batch: Vec<&[u8]> = tells.iter().map(Vec::as_slice).collect();
    // One test thread: the activation has not run yet, so two fit.
    assert_eq!(h.deliver_tells(0, 1, "k", &batch), Ok(TellsDelivered { taken: 2, refused: vec![] }));
    tokio::time::sleep(Duration::from_millis(1)).await;
    assert_eq!(h.deliver_tells(0, 1, "k", &batch[2..4]), Ok(TellsDelivered { taken: 2, refused: vec![] }));
}

/// A key of `registry` held by `node`, once placement has given it some.
async fn key_held_by(node: &ClusterNode, keyed: &crate::Keyed<Acct>) -> String {
    until("the node holds a shard", || node.inspect().owned_count("accounts") > 0).await;
    let held: Vec<u32> = node.inspect().shards.iter().map(|s| s.shard).collect();
    (0..).map(|i| format!("k{i}")).find(|k| held.contains(&keyed.shard_of(k))).expect("some key")
}

/// Two connected nodes on one in-memory network: `b` holds `key` (its one
/// shard), `a` speaks protocol versions up to `a_max_version`.
struct Pair {
    a: ClusterNode,
    b: ClusterNode,
    ka: crate::Keyed<Acct>,
    key: String,
}

async fn pair_on(net: &InMemoryOverlay, a_max_version: u16) -> Pair {
    let store = Arc::new(MemoryLeaseStore::new());
    // The actors' events are not looked at here.
    let (log, _) = mpsc::unbounded_channel();
    let b = ClusterNode::start(NodeId::new("b"), store.clone(), net.clone(), cfg()).await.expect("b");
    let kb = b.keyed("accounts", KeyedConfig::new(1), factory("b", &log)).expect("keyed b");
    let key = key_held_by(&b, &kb).await;
    let a_cfg = ClusterConfig { protocol_max_version: a_max_version, ..cfg() };
    let a = ClusterNode::start(NodeId::new("a"), store, net.clone(), a_cfg).await.expect("a");
    let ka = a.keyed("accounts", KeyedConfig::new(1), factory("a", &log)).expect("keyed a");
    until("a and b are connected", || a.inspect().peers.len() == 1 && b.inspect().peers.len() == 1).await;
    Pair { a, b, ka, key }
}

/// How many tells [`tells_over_a_delayed_link`] sends.
const TELLS: i64 = 1000;

/// Unacknowledged tells sent while the connection is behind (here: a
/// delayed in-memory link, so frames wait for the link's delivery task)
/// travel in `Tells` batches on a version 3 session, and arrive complete
/// and in order; with a version 2 peer every tell is a frame of its own.
/// A task beside the sending loop records the most tells sent between two
/// of its turns on the (one) worker.
async fn tells_over_a_delayed_link(sender_max_version: u16) -> Batching {
    let net = InMemoryOverlay::new();
    let Pair { a, b, ka, key } = pair_on(&net, sender_max_version).await;
    let r = ka.get(key.as_str());
    assert_eq!(r.balance().await.expect("routed to b"), 0);
    let delay = Duration::from_millis(1);
    net.set_link_faults("a", "b", crate::LinkFaults { delay_min: delay, delay_max: delay, ..crate::LinkFaults::NONE });
    let before = b.inspect().counters;
    // The ticker never waits, so the paused clock stands still (the link
    // delivers nothing) until it is stopped after the loop.
    let (sent, seen, longest) =
        (Arc::new(AtomicUsize::new(0)), Arc::new(AtomicUsize::new(0)), Arc::new(AtomicUsize::new(0)));
    let ticker = tokio::spawn({
        let (sent, seen, longest) = (Arc::clone(&sent), Arc::clone(&seen), Arc::clone(&longest));
        async move {
            loop {
                let now = sent.load(Ordering::Relaxed);
                longest.fetch_max(now - seen.swap(now, Ordering::Relaxed), Ordering::Relaxed);
                tokio::task::yield_now().await;
            }
        }
    });
    for i in 1..=TELLS {
        r.deposit(i).await.expect("tell");
        sent.fetch_add(1, Ordering::Relaxed);
    }
    ticker.abort();
    let _ = ticker.await;
    let longest_run = longest.load(Ordering::Relaxed).max(sent.load(Ordering::Relaxed) - seen.load(Ordering::Relaxed));
    // Behind the tells on the same connection, in the same mailbox.
    let balance = r.balance().await.expect("balance");
    let after = b.inspect().counters;
    a.shutdown().await;
    b.shutdown().await;
    Batching {
        balance,
        batches: after.tell_batches_received - before.tell_batches_received,
        tells: after.batched_tells_received - before.batched_tells_received,
        dropped: after.dropped.values().sum::<u64>() - before.dropped.values().sum::<u64>(),
        longest_run,
    }
}

/// What [`tells_over_a_delayed_link`] saw at the receiver.
struct Batching {
    balance: i64,
    batches: u64,
    tells: u64,
    dropped: u64,
    /// The most tells the sender sent without letting another task run.
    longest_run: usize,
}

#[tokio::test(start_paused = true)]
async fn tells_queued_behind_a_slow_link_travel_in_batches() {
    let b = tells_over_a_delayed_link(crate::wire::hello::PROTOCOL_MAX_VERSION).await;
    assert_eq!(b.balance, (1..=TELLS).sum::<i64>(), "every tell ran once");
    assert!(b.batches >= 1, "batched");
    assert!(b.tells >= 10 * b.batches, "{} tells in {} batches", b.tells, b.batches);
    assert_eq!(b.dropped, 0, "nothing dropped");
    // Joining a batch waits for nothing: without Tokio's budget the loop
    // would keep the worker until the writer's queue was full.
    assert!(b.longest_run <= 256, "{} tells in a row without a yield", b.longest_run);
}

#[tokio::test(start_paused = true)]
async fn a_version_2_peer_is_sent_no_batch() {
    let b = tells_over_a_delayed_link(2).await;
    assert_eq!(b.balance, (1..=TELLS).sum::<i64>(), "every tell ran once");
    assert_eq!((b.batches, b.tells), (0, 0));
}

/// The tag bytes of the sealed frames an in-memory network delivered.
#[derive(Debug, Default)]
struct SealedTags(parking_lot::Mutex<std::collections::BTreeSet<u8>>);

impl crate::overlay::FrameTap for SealedTags {
    fn frame(&self, _from: &str, _to: &str, bytes: &[u8], fate: crate::overlay::FrameFate) {
        if let (crate::overlay::FrameFate::Delivered, Some(&tag)) = (fate, bytes.first())
            && tag != crate::wire::TAG_PREAUTH
        {
            self.0.lock().insert(tag);
        }
    }
}

/// The session's protocol version chooses the frames' MAC: a version 3 peer
/// gets (and sends) HMAC-SHA256 frames, two version 4 nodes seal with
/// AES-256-GMAC; asks and tells work either way.
async fn sealed_tags_between(a_max_version: u16) -> (u16, std::collections::BTreeSet<u8>) {
    let net = InMemoryOverlay::new();
    let tags = Arc::new(SealedTags::default());
    assert!(net.set_tap(tags.clone()));
    let Pair { a, b, ka, key } = pair_on(&net, a_max_version).await;
    let r = ka.get(key.as_str());
    r.deposit(5).await.expect("tell routed to b");
    assert_eq!(r.balance().await.expect("ask routed to b"), 5);
    let version = a.inspect().peer("b").map(|p| p.version).expect("a knows b");
    a.shutdown().await;
    b.shutdown().await;
    let seen = tags.0.lock().clone();
    (version, seen)
}

#[tokio::test(start_paused = true)]
async fn the_session_version_chooses_the_frame_mac() {
    use crate::wire::{TAG_SEALED, TAG_SEALED_GMAC};
    let newest = crate::wire::hello::PROTOCOL_MAX_VERSION;
    assert_eq!(sealed_tags_between(newest).await, (newest, [TAG_SEALED_GMAC].into()));
    assert_eq!(sealed_tags_between(3).await, (3, [TAG_SEALED].into()));
}
