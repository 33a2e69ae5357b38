//! The in-memory write-through path (`memory_direct`): frames fed while the
//! directed link is idle and clean skip the delivery task, and keep the
//! order, bounds and faults of the path through it.
//!
//! On a current-thread runtime the delivery task runs only when the test
//! yields, so a frame that `try_recv` returns right after `feed` skipped it.

use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use tokio::time::{Instant, timeout};

use super::*;
use crate::overlay::{FrameFate, FrameTap, LinkReceiver, Priority};

const LIMIT: Duration = Duration::from_secs(10);

fn frame(s: impl Into<String>) -> Bytes {
    Bytes::from(s.into())
}

async fn pair(net: &InMemoryOverlay) -> (Link, Link, Listener) {
    let mut listener = net.listen(&NodeId::new("b")).await.expect("listen");
    let ours = net.dial(&NodeId::new("a"), &NodeId::new("b")).await.expect("dial");
    let theirs = listener.accept().await.expect("accepted");
    (ours, theirs, listener)
}

async fn recv(rx: &mut LinkReceiver) -> Option<Bytes> {
    timeout(LIMIT, rx.recv()).await.expect("recv in time")
}

/// Lets the delivery tasks run until they wait.
async fn settle() {
    for _ in 0..10 {
        tokio::task::yield_now().await;
    }
}

/// Feeds `s` from `link` and says whether it skipped the delivery task
/// (received at once by `to`).
async fn fed_through(link: &Link, to: &mut LinkReceiver, s: &str) -> bool {
    link.tx.feed(frame(s), Priority::Data).await.expect("fed");
    match to.try_recv() {
        Some(f) => {
            assert_eq!(f, frame(s));
            true
        }
        None => false,
    }
}

#[derive(Debug, Default)]
struct Tap(parking_lot::Mutex<Vec<(String, FrameFate)>>);

impl FrameTap for Tap {
    fn frame(&self, from: &str, to: &str, bytes: &[u8], fate: FrameFate) {
        self.0.lock().push((format!("{from}>{to} {}", String::from_utf8_lossy(bytes)), fate));
    }
}

#[tokio::test]
async fn an_idle_clean_link_delivers_fed_frames_at_once_tapped_and_counted() {
    let net = InMemoryOverlay::new();
    let tap = Arc::new(Tap::default());
    assert!(net.set_tap(Arc::clone(&tap) as Arc<dyn FrameTap>));
    let (mut a, mut b, _l) = pair(&net).await;
    assert!(fed_through(&a, &mut b.rx, "1").await);
    assert!(fed_through(&b, &mut a.rx, "back").await, "each direction has its path");
    assert!(fed_through(&a, &mut b.rx, "2").await);
    a.tx.flush();
    assert_eq!(net.stats().delivered, 3);
    let seen = tap.0.lock().clone();
    let delivered = |s: &str| (s.to_owned(), FrameFate::Delivered);
    assert_eq!(seen, [delivered("a>b 1"), delivered("b>a back"), delivered("a>b 2")]);
}

#[tokio::test]
async fn fed_frames_never_overtake_queued_ones() {
    let net = InMemoryOverlay::new();
    let (a, mut b, _l) = pair(&net).await;
    a.tx.try_send(frame("q1"), Priority::Data).expect("queued");
    a.tx.send(frame("q2"), Priority::Control).await.expect("queued");
    assert!(!fed_through(&a, &mut b.rx, "f1").await, "behind queued frames: queued too");
    for want in ["q2", "q1", "f1"] {
        assert_eq!(recv(&mut b.rx).await, Some(frame(want)));
    }
    settle().await;
    assert!(fed_through(&a, &mut b.rx, "f2").await, "idle again once the task has nothing in hand");
    a.tx.try_send(frame("q3"), Priority::Data).expect("queued");
    assert!(!fed_through(&a, &mut b.rx, "f3").await);
    assert_eq!(recv(&mut b.rx).await, Some(frame("q3")));
    assert_eq!(recv(&mut b.rx).await, Some(frame("f3")));
    assert_eq!(net.stats().delivered, 6);
}

/// One sender mixing queued and fed frames while the receiver reads on
/// another worker: every frame arrives once, in the order sent.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn mixed_queued_and_fed_frames_arrive_in_order_across_threads() {
    let net = InMemoryOverlay::new().with_link_queue_frames(8);
    let (a, mut b, _l) = pair(&net).await;
    const N: u32 = 20_000;
    let reader = tokio::spawn(async move {
        let mut next = 0u32;
        while next < N {
            let f = recv(&mut b.rx).await.expect("frame");
            assert_eq!(u32::from_be_bytes(f[..].try_into().expect("4 bytes")), next, "in order");
            next += 1;
            if next.is_multiple_of(97) {
                tokio::task::yield_now().await;
            }
        }
        b
    });
    for i in 0..N {
        let f = Bytes::copy_from_slice(&i.to_be_bytes());
        match i % 7 {
            0 | 3 => a.tx.send(f, Priority::Data).await.expect("queued"),
            _ => a.tx.feed(f, Priority::Data).await.expect("fed"),
        }
        if i.is_multiple_of(13) {
            tokio::task::yield_now().await;
        }
    }
    a.tx.flush();
    let _b = timeout(LIMIT, reader).await.expect("in time").expect("reader");
    assert_eq!(net.stats().delivered, u64::from(N));
}

#[tokio::test]
async fn a_fault_set_after_fed_frames_applies_to_the_next_frame() {
    let net = InMemoryOverlay::with_seed(5);
    let (a, mut b, _l) = pair(&net).await;
    assert!(fed_through(&a, &mut b.rx, "before").await);
    net.set_drop_rate("a", "b", 1.0);
    assert!(!fed_through(&a, &mut b.rx, "dropped").await);
    settle().await;
    assert_eq!((net.stats().dropped_random, b.rx.try_recv()), (1, None));
    net.clear_link_faults("a", "b");
    settle().await;
    assert!(fed_through(&a, &mut b.rx, "clean again").await);

    net.partition_one_way("a", "b");
    assert!(!fed_through(&a, &mut b.rx, "cut").await);
    settle().await;
    assert_eq!((net.stats().dropped_partition, b.rx.try_recv()), (1, None));
    net.heal_one_way("a", "b");

    net.hold("a", "b");
    assert!(!fed_through(&a, &mut b.rx, "held").await);
    settle().await;
    assert_eq!((net.stats().held, b.rx.try_recv()), (1, None));
    net.release("a", "b");
    assert!(!fed_through(&a, &mut b.rx, "behind the held one").await, "held frames go first");
    assert_eq!(recv(&mut b.rx).await, Some(frame("held")));
    assert_eq!(recv(&mut b.rx).await, Some(frame("behind the held one")));

    net.set_default_faults(LinkFaults { duplicate_rate: 1.0, ..LinkFaults::NONE });
    assert!(!fed_through(&a, &mut b.rx, "twice").await, "a default fault counts too");
    assert_eq!(recv(&mut b.rx).await, Some(frame("twice")));
    assert_eq!(recv(&mut b.rx).await, Some(frame("twice")));
    net.clear_faults();
    settle().await;
    assert!(fed_through(&a, &mut b.rx, "last").await);
}

#[tokio::test(start_paused = true)]
async fn delayed_frames_are_not_overtaken_once_the_delay_is_cleared() {
    let net = InMemoryOverlay::new();
    let (a, mut b, _l) = pair(&net).await;
    net.set_delay("a", "b", Duration::from_millis(10), Duration::from_millis(10));
    let start = Instant::now();
    assert!(!fed_through(&a, &mut b.rx, "slow").await);
    settle().await;
    net.clear_link_faults("a", "b");
    assert!(!fed_through(&a, &mut b.rx, "after").await, "a frame is scheduled: the path is busy");
    assert_eq!(recv(&mut b.rx).await, Some(frame("slow")));
    assert_eq!(recv(&mut b.rx).await, Some(frame("after")));
    assert_eq!(start.elapsed(), Duration::from_millis(10));
    settle().await;
    assert!(fed_through(&a, &mut b.rx, "fast").await);
}

#[tokio::test]
async fn the_inbound_queue_bounds_hold_for_fed_frames() {
    let net = InMemoryOverlay::new().with_link_queue_frames(2);
    let (a, mut b, _l) = pair(&net).await;
    assert!(fed_through(&a, &mut b.rx, "0").await);
    for i in 1..=4 {
        a.tx.feed(frame(format!("{i}")), Priority::Data).await.expect("fed");
    }
    settle().await;
    assert_eq!(b.rx.queued_bytes(), 2, "two frames fill the inbound queue; the others wait, in order");
    for i in 1..=4 {
        assert_eq!(recv(&mut b.rx).await, Some(frame(format!("{i}"))));
    }

    b.rx.set_max_queued_bytes(10);
    settle().await;
    assert!(fed_through(&a, &mut b.rx, "idle").await);
    a.tx.feed(frame("eight b1"), Priority::Data).await.expect("fed");
    a.tx.feed(frame("eight b2"), Priority::Data).await.expect("fed");
    settle().await;
    assert_eq!(b.rx.queued_bytes(), 8, "the second frame is over the byte budget: it waits");
    assert_eq!(recv(&mut b.rx).await, Some(frame("eight b1")));
    assert_eq!(recv(&mut b.rx).await, Some(frame("eight b2")));
}

#[tokio::test]
async fn a_fed_frame_over_the_receivers_limit_closes_the_link() {
    let net = InMemoryOverlay::new();
    let (a, mut b, _l) = pair(&net).await;
    b.rx.set_max_frame_bytes(4);
    assert!(fed_through(&a, &mut b.rx, "fits").await);
    assert!(!fed_through(&a, &mut b.rx, "too long").await);
    assert_eq!(recv(&mut b.rx).await, None);
    assert_eq!(net.stats().dropped_closed, 1);
    assert_eq!(net.stats().delivered, 1);
    assert_eq!(a.tx.feed(frame("more"), Priority::Data).await, Err(OverlayError::Closed));
}

#[tokio::test]
async fn a_closed_or_dead_link_refuses_fed_frames() {
    let net = InMemoryOverlay::new();
    let (a, mut b, _l) = pair(&net).await;
    a.tx.feed(frame("last"), Priority::Data).await.expect("fed");
    a.tx.close();
    assert_eq!(a.tx.feed(frame("late"), Priority::Data).await, Err(OverlayError::Closed));
    assert_eq!(recv(&mut b.rx).await, Some(frame("last")));
    assert_eq!(recv(&mut b.rx).await, None, "the receiver ends with the delivery task");

    let (c, d, _l) = pair(&InMemoryOverlay::new()).await;
    drop(d.rx);
    let mut c_rx = c.rx;
    assert_eq!(recv(&mut c_rx).await, None, "dead");
    assert_eq!(c.tx.feed(frame("x"), Priority::Data).await, Err(OverlayError::Closed));
    assert_eq!(d.tx.feed(frame("y"), Priority::Data).await, Err(OverlayError::Closed));
}

/// A crashed node drops its receiver; a frame its writer still feeds must
/// not reach the peer (the link is dead at once, as the link docs say).
#[tokio::test]
async fn a_dropped_receiver_stops_fed_frames_at_once() {
    let net = InMemoryOverlay::new();
    let (a, mut b, _l) = pair(&net).await;
    drop(a.rx);
    assert_eq!(a.tx.feed(frame("after the crash"), Priority::Data).await, Err(OverlayError::Closed));
    assert_eq!(b.tx.feed(frame("to the crashed"), Priority::Data).await, Err(OverlayError::Closed));
    assert_eq!(recv(&mut b.rx).await, None);
    assert_eq!(net.stats().delivered, 0);
}
