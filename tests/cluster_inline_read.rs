//! On in-memory links a connection's reader takes a frame from the
//! sender's own task while nothing is queued (`frames_read_inline`),
//! instead of being woken for it. Observable outcomes:
//!
//! - Order and authentication hold with frames taken both ways at once: two
//!   nodes on a 2-worker runtime ask and tell each other's keys at once;
//!   every ask is answered with its own value, every key saw its sender's
//!   steps in order, no frame was refused (a frame handled out of order
//!   fails its sequence check and ends the connection: a build that takes
//!   frames inline while some are queued fails here) and the connection was
//!   never replaced; and both readers took frames inline.
//! - A paused node (its tasks held, as a stopped process) takes nothing
//!   inline: a request to it waits, unhandled, until it resumes.
//! - A frame is not taken inline while the reader task has one in hand: a
//!   tell that arrives while an earlier tell to the same key waits for room
//!   in its activation's full mailbox is delivered after it, even when room
//!   comes just before the later tell does (a build that skips the
//!   in-hand check delivers the later tell first here).
#![allow(missing_docs)]

use std::sync::Arc;
use std::time::Duration;

use axactor::actor;
use axactor_cluster::{ClusterNode, InMemoryOverlay, Keyed, KeyedConfig, LeaseStore, MemoryLeaseStore, NodeId};
use axactor_tests::cluster::{BOUND, connected};
use axactor_tests::keyed::{owns_all, pausable_owner, pinned_cfg};
use tokio::sync::Notify;

/// Hosted on `a` first (so `a` holds its shards), then on `b`.
const LEFT: &str = "left";
/// Hosted on `b` first, then on `a`.
const RIGHT: &str = "right";
const SHARDS: usize = 4;
/// Tasks per node, each with a key of its own on the other node. One per
/// node: the write path writes a lone exchange through (the frames taken
/// inline), and several in flight at once make it queue them for the
/// connection task instead.
const TASKS: u64 = 1;
/// Steps per task: asks that record their number, and every
/// `TELL_EVERY`th a tell instead (queued for the connection task: the
/// frames that are not taken inline, on the same link).
const STEPS: u64 = 1_000;
const TELL_EVERY: u64 = 50;

#[derive(Debug, Default)]
pub struct Seq {
    seen: Vec<u64>,
    /// Only for `hold`.
    gate: Option<Arc<Gate>>,
}

/// What the test and a `Seq` activation share: the activation says when
/// its `hold` has started, waits for `release`, and says when it is done.
#[derive(Debug, Default)]
pub struct Gate {
    started: Notify,
    release: Notify,
    done: Notify,
}

#[actor(remote)]
impl Seq {
    /// Keeps the activation busy until the test releases its gate (at
    /// once without one).
    #[msg]
    async fn hold(&mut self) {
        if let Some(gate) = &self.gate {
            gate.started.notify_one();
            gate.release.notified().await;
            gate.done.notify_one();
        }
    }
    #[msg]
    fn push(&mut self, n: u64) {
        self.seen.push(n);
    }
    #[msg]
    fn echo(&mut self, n: u64) -> u64 {
        n
    }
    /// An ask that is also a step of the key's history.
    #[msg]
    fn record(&mut self, n: u64) -> u64 {
        self.seen.push(n);
        n
    }
    #[msg]
    fn seen(&mut self) -> Vec<u64> {
        self.seen.clone()
    }
}

fn host(node: &ClusterNode, registry: &str) -> Keyed<Seq> {
    node.keyed(registry, KeyedConfig::new(SHARDS), |_: &str| Seq::default()).expect("hosted")
}

/// `TASKS` tasks, each sending its own key of `keyed` (held by the other
/// node) `0..STEPS` in order, as asks and tells; returns once all are
/// done, with each key's history.
async fn traffic(keyed: &Keyed<Seq>, side: &str) -> Vec<Vec<u64>> {
    let tasks: Vec<_> = (0..TASKS)
        .map(|t| {
            let r = keyed.get(format!("{side}-{t}"));
            tokio::spawn(async move {
                for i in 0..STEPS {
                    if i % TELL_EVERY == 0 {
                        r.push(i).await.expect("tell");
                    } else {
                        assert_eq!(r.record(i).await.expect("ask"), i, "an ask got another's reply");
                    }
                }
                r.seen().await.expect("history")
            })
        })
        .collect();
    let mut out = Vec::new();
    for task in tasks {
        out.push(tokio::time::timeout(BOUND, task).await.expect("traffic within the bound").expect("task"));
    }
    out
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn frames_taken_inline_both_ways_keep_their_order() {
    let net = InMemoryOverlay::new();
    let store: Arc<dyn LeaseStore> = Arc::new(MemoryLeaseStore::new());
    let start = |name: &str| ClusterNode::start(NodeId::new(name), Arc::clone(&store), net.clone(), pinned_cfg());
    let a = start("a").await.expect("a starts");
    let left_a = host(&a, LEFT);
    owns_all(&a, LEFT, SHARDS).await;
    let b = start("b").await.expect("b starts");
    let right_b = host(&b, RIGHT);
    owns_all(&b, RIGHT, SHARDS).await;
    let (left_b, right_a) = (host(&b, LEFT), host(&a, RIGHT));
    connected(&a, &b).await;
    let (session_a, session_b) = (a.session().clone(), b.session().clone());

    // `a`'s tasks ask `b`'s keys and the other way round, at once.
    let (from_a, from_b) = tokio::join!(traffic(&right_a, "a"), traffic(&left_b, "b"));
    let in_order: Vec<u64> = (0..STEPS).collect();
    for seen in from_a.iter().chain(&from_b) {
        assert_eq!(seen, &in_order, "a key saw its sender's steps out of order");
    }
    for (node, peer, session) in [(&a, "b", &session_b), (&b, "a", &session_a)] {
        let snap = node.inspect();
        let c = &snap.counters;
        assert!(c.frame_rejections.is_empty(), "{}: frames refused: {:?}", node.id(), c.frame_rejections);
        assert_eq!((c.sessions_replaced, c.duplicate_connections), (0, 0), "{}: reconnected", node.id());
        assert_eq!(snap.peer(peer).map(|p| &p.session), Some(session), "{}: the peer's session changed", node.id());
        assert!(c.frames_read_inline > 0, "{}: no frame was taken inline", node.id());
    }
    drop((left_a, right_b));
    a.shutdown().await;
    b.shutdown().await;
}

#[tokio::test(start_paused = true)]
async fn a_paused_node_takes_nothing_inline() {
    let (a, b, env, _kb) = pausable_owner(RIGHT, SHARDS, |b| host(b, RIGHT)).await;
    let ka = host(&a, RIGHT);
    let r = ka.get("k");
    // Lone asks in a row: the write path writes them through.
    for i in 0..20 {
        assert_eq!(r.echo(i).await.expect("ask"), i);
    }
    let before = b.inspect().counters.frames_read_inline;
    assert!(before > 0, "lone asks' requests were taken inline");

    env.pause();
    let ask = tokio::spawn({
        let r = r.clone();
        async move { r.echo(2).await }
    });
    tokio::time::sleep(Duration::from_millis(200)).await;
    assert!(!ask.is_finished(), "a paused node answered");
    assert_eq!(b.inspect().counters.frames_read_inline, before, "a paused node took a frame inline");

    env.resume();
    let answer = tokio::time::timeout(BOUND, ask).await.expect("answered once resumed").expect("task");
    assert_eq!(answer.expect("ask"), 2);
    a.shutdown().await;
    b.shutdown().await;
}

/// `Seq` with `gate` and a mailbox of one: a second message waits for room.
fn host_held(node: &ClusterNode, gate: &Arc<Gate>) -> Keyed<Seq> {
    let gate = Arc::clone(gate);
    let cfg = KeyedConfig::new(SHARDS).mailbox_capacity(1);
    node.keyed(HELD, cfg, move |_: &str| Seq { gate: Some(Arc::clone(&gate)), ..Seq::default() }).expect("hosted")
}

/// Hosted with a mailbox of one, held by `b`.
const HELD: &str = "held";

/// Everything on one thread, so the order in which tasks run is fixed:
///
/// 1. Lone asks put `a`'s write path in latency mode (a lone request is
///    then written through, and `b` takes it inline).
/// 2. `hold` occupies the activation on `b`; the tells `push(1)` and
///    `push(2)` (queued, as plain tells are, for the connection task) fill
///    its mailbox and find it full: `b`'s reader task tries `push(2)` again
///    after yields, then waits for room, with the frame in hand.
/// 3. The test releases `hold`. The activation says it is done (which
///    queues the asking task) and then takes `push(1)` (which makes room
///    and queues the reader task, after the asking task).
/// 4. The asking task runs first and asks `record(3)`, a lone request,
///    written through while the room is there and `push(2)` is still in
///    the reader's hand: taken inline, it would take the room first.
#[tokio::test(start_paused = true)]
async fn a_frame_is_not_taken_inline_past_one_waiting_for_room() {
    let gate = Arc::new(Gate::default());
    let (a, b, _env, _kb) = pausable_owner(HELD, SHARDS, |b| host_held(b, &gate)).await;
    let ka = host_held(&a, &gate);
    let r = ka.get("k");
    for _ in 0..8 {
        assert_eq!(r.seen().await.expect("ask"), Vec::<u64>::new());
    }
    assert!(b.inspect().counters.frames_read_inline > 0, "lone asks were taken inline");

    r.hold().await.expect("tell hold");
    tokio::time::timeout(BOUND, gate.started.notified()).await.expect("hold started");
    r.push(1).await.expect("tell 1");
    r.push(2).await.expect("tell 2");
    // A task (not the test's own future, which its runtime polls only
    // between rounds of tasks) that asks once `hold` is done.
    let third = tokio::spawn({
        let (gate, r) = (Arc::clone(&gate), r.clone());
        async move {
            gate.done.notified().await;
            r.record(3).await
        }
    });
    // Every task runs until it waits before the paused clock moves: the
    // reader then waits for room for `push(2)` (a first wait lasts up to
    // 2 ms, longer than this), and the task above waits for `done`.
    tokio::time::sleep(Duration::from_millis(1)).await;
    assert_eq!(b.inspect().counters.mailbox_waits, 0, "no wait for room has ended yet");

    gate.release.notify_one();
    let answer = tokio::time::timeout(BOUND, third).await.expect("answered").expect("task");
    assert_eq!(answer.expect("ask"), 3);

    let seen = tokio::time::timeout(BOUND, r.seen()).await.expect("answered").expect("ask");
    assert_eq!(seen, vec![1, 2, 3], "a later request overtook a tell waiting for room");
    let c = b.inspect().counters;
    assert!(c.mailbox_waits > 0, "push(2) waited for room");
    assert!(c.frame_rejections.is_empty(), "frames refused: {:?}", c.frame_rejections);
    a.shutdown().await;
    b.shutdown().await;
}
