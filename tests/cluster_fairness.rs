//! A backlog of frames from one peer does not monopolise the receiving
//! node's worker: the connection's reader yields after a bounded number of
//! frames, so the activations it feeds, the lease driver and other readers
//! run in between (#11 item 3).
//!
//! Observable outcome: the receiving node is paused (its tasks held, as a
//! stopped process) while 1,000 unacknowledged tells to one activation
//! pile up on its connection; once it resumes, every tell is executed
//! although the activation's mailbox holds only 256. A reader that handled
//! every frame already received before yielding (up to 8,192 per poll)
//! filled the mailbox and refused the rest as `mailbox_full`.
//! Single-threaded runtime on the paused clock: the schedule is
//! deterministic.
//!
//! A tell whose activation's mailbox is full is tried again after the
//! reader yields (a few times), then after a wait for room (bounded by the
//! reader's patience), before it is refused: a burst larger than the
//! mailbox is executed in full, also behind a handler that pauses for a
//! moment, while an activation that stays full still refuses what does not
//! fit, and the reader goes on serving the connection's other keys, its
//! waits bounded however many requests are stuck.
#![allow(missing_docs)]

use std::future::Future;
use std::time::Duration;

use axactor::actor;
use axactor_cluster::{ClusterNode, Env, Keyed, KeyedConfig};
use axactor_tests::keyed::pausable_owner;

const REG: &str = "flood";
const TELLS: u64 = 1_000;
const MAILBOX: usize = 256;
/// Shorter than the reader's longest wait for room (2 ms).
const NAP: Duration = Duration::from_millis(1);

#[derive(Debug)]
pub struct Sink {
    count: u64,
}

#[actor(remote)]
impl Sink {
    #[msg]
    fn hit(&mut self) {
        self.count += 1;
    }
    #[msg]
    fn count(&mut self) -> u64 {
        self.count
    }
    /// Holds the activation for a moment (a handler that awaits I/O, say).
    #[msg]
    async fn nap(&mut self) {
        tokio::time::sleep(NAP).await;
    }
    /// Holds the activation (its handler does not return within the test).
    #[msg]
    async fn stall(&mut self) {
        tokio::time::sleep(Duration::from_secs(24 * 3600)).await;
    }
}

/// Nodes `b` (paused by `env` on demand, holding the one shard) and `a`,
/// the registry on both with activations of `mailbox` slots; the refs from
/// `a` to keys `k` and `j`, both activated on `b`.
struct Pair {
    // Kept: dropping a node or a `Keyed` handle would end it.
    _a: ClusterNode,
    b: ClusterNode,
    _kb: Keyed<Sink>,
    env: Env,
    k: SinkRemoteRef,
    j: SinkRemoteRef,
}

async fn pair(mailbox: usize) -> Pair {
    let cfg = KeyedConfig::new(1).mailbox_capacity(mailbox);
    let host = |b: &ClusterNode| b.keyed(REG, cfg.clone(), |_: &str| Sink { count: 0 }).expect("keyed b");
    let (a, b, env, kb) = pausable_owner(REG, 1, host).await;
    let ka = a.keyed(REG, cfg, |_: &str| Sink { count: 0 }).expect("keyed a");
    let (k, j) = (ka.get("k"), ka.get("j"));
    // Both activations exist before the backlog.
    assert_eq!(k.count().await.expect("first ask to k"), 0);
    assert_eq!(j.count().await.expect("first ask to j"), 0);
    Pair { _a: a, b, _kb: kb, env, k, j }
}

/// Holds `b` (as a stopped process) while `send` queues requests to it,
/// lets `a`'s writer move them onto `b`'s side of the link, and resumes `b`.
async fn queued_while_held(env: &Env, send: impl Future<Output = ()>) {
    env.pause();
    send.await;
    tokio::time::sleep(Duration::from_millis(1)).await;
    env.resume();
}

/// `n` plain tells to `k`.
async fn hits(k: &SinkRemoteRef, n: u64) {
    for _ in 0..n {
        k.hit().await.expect("tell sent");
    }
}

fn refused_full(node: &ClusterNode) -> (u64, u64) {
    let c = node.inspect().counters;
    (
        c.requests_rejected.get("mailbox_full").copied().unwrap_or(0),
        c.dropped.get("unacked_tell_rejected").copied().unwrap_or(0),
    )
}

#[tokio::test(start_paused = true)]
async fn a_burst_larger_than_the_mailbox_waits_for_room_instead_of_being_refused() {
    const SMALL: usize = 8;
    let p = pair(SMALL).await;
    let (b, env, k) = (&p.b, &p.env, &p.k);
    queued_while_held(env, hits(k, TELLS)).await;
    // Without the yields, the reader refused all but about one mailbox of
    // each pass of up to 64 frames.
    assert_eq!(k.count().await.expect("count"), TELLS, "every tell executed: {:?}", refused_full(b));
    assert_eq!(refused_full(b), (0, 0));
}

#[tokio::test(start_paused = true)]
async fn an_activation_that_stays_full_still_refuses_and_the_reader_goes_on() {
    const SLOTS: usize = 2;
    const HITS: u64 = 10;
    let p = pair(SLOTS).await;
    let (b, env, k, j) = (&p.b, &p.env, &p.k, &p.j);
    queued_while_held(env, async {
        k.stall().await.expect("tell sent");
        hits(k, HITS).await;
    })
    .await;
    // The connection's next frame, to another key: answered, so the reader
    // did not wait on the stalled activation.
    assert_eq!(j.count().await.expect("j answers"), 0);
    // While `stall` runs, the mailbox holds two hits; every other hit was
    // refused after its yields (without them, `stall` itself was still in
    // the mailbox when the third frame came: 9 refused).
    let refused = HITS - SLOTS as u64;
    assert_eq!(refused_full(b), (refused, refused));
}

#[tokio::test(start_paused = true)]
async fn a_backlog_from_one_peer_leaves_room_for_the_activation_it_feeds() {
    let p = pair(MAILBOX).await;
    let (b, env, target) = (&p.b, &p.env, &p.k);
    queued_while_held(env, hits(target, TELLS)).await;
    // Asked after the tells on the same connection: answered once every
    // tell has been executed or refused.
    let executed = target.count().await.expect("count");
    let refused = b.inspect().counters.requests_rejected.get("mailbox_full").copied().unwrap_or(0);
    assert_eq!((executed, refused), (TELLS, 0), "tells executed, and refused for a full mailbox");
}

/// A handler that holds its activation for a moment (shorter than one wait
/// for room): the tells behind it wait for room instead of being refused.
/// With yields alone, the reader refused every hit that did not fit while
/// `nap` ran (18 of 20).
#[tokio::test(start_paused = true)]
async fn tells_behind_a_handler_that_pauses_wait_for_room() {
    const SLOTS: usize = 2;
    const HITS: u64 = 20;
    let p = pair(SLOTS).await;
    let (b, env, k) = (&p.b, &p.env, &p.k);
    queued_while_held(env, async {
        k.nap().await.expect("tell sent");
        hits(k, HITS).await;
    })
    .await;
    assert_eq!(k.count().await.expect("count"), HITS, "every hit executed: {:?}", refused_full(b));
    assert_eq!(refused_full(b), (0, 0));
    // The reader waited for room while `nap` ran, and no longer than it.
    let c = b.inspect().counters;
    assert!(c.mailbox_waits >= 1, "waited for room");
    assert!(Duration::from_micros(c.mailbox_wait_micros) <= NAP, "waited {} µs", c.mailbox_wait_micros);
}

/// Many requests (asks, a frame each) queued behind an activation that
/// stays full: the reader waits for room for each in turn, but its
/// patience bounds the waits in all (a store of 20 ms, then a tenth of the
/// time), so a request to another key behind them is answered soon. With a
/// full 2 ms wait for each, it took 100 ms and more.
#[tokio::test(start_paused = true)]
async fn the_readers_waits_for_a_stuck_activation_are_bounded_in_all() {
    const SLOTS: usize = 1;
    const ASKS: usize = 50;
    let p = pair(SLOTS).await;
    let (b, env, k, j) = (&p.b, &p.env, &p.k, &p.j);
    let mut asks = Vec::new();
    queued_while_held(env, async {
        k.stall().await.expect("tell sent");
        asks.extend((0..ASKS).map(|_| {
            let k = k.clone();
            tokio::spawn(async move { k.count().await })
        }));
    })
    .await;
    let resumed = tokio::time::Instant::now();
    assert_eq!(j.count().await.expect("j answers"), 0);
    let took = resumed.elapsed();
    assert!(took < Duration::from_millis(40), "j answered {took:?} after the resume");
    // The reader waited, for the whole store (20 ms) and within `took`.
    let waited = Duration::from_micros(b.inspect().counters.mailbox_wait_micros);
    assert!(waited >= Duration::from_millis(20) && waited <= took, "waited {waited:?} of {took:?}");
    for a in asks {
        a.abort();
    }
}
