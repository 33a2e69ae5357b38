//! The behaviour the node relies on, as checks any [`Overlay`] can run
//! against itself (feature `overlay-conformance`).
//!
//! Every check observes links only through their public halves: frames
//! arrive whole and in order both ways, frames over the limit are refused,
//! a slow receiver pushes back on the sender instead of letting queues
//! grow, a graceful close delivers what was accepted before the peer sees
//! the end, a dropped receiver ends the peer's link, dialling an unknown
//! name fails with an [`OverlayError`], and many links carry traffic at
//! once. The in-memory, TCP and TLS overlays run it in their tests, and so
//! does an overlay written outside the crate (`tests/overlay_conformance.rs`).
//!
//! Checks wait for the outcome they need, each wait bounded by [`LIMIT`]
//! (so a broken overlay fails instead of hanging); nothing is timed. They
//! run on a real clock and on Tokio's paused clock alike.
//!
//! ```
//! # #[tokio::main(flavor = "current_thread", start_paused = true)]
//! # async fn main() {
//! use axactor_cluster::InMemoryOverlay;
//! use axactor_cluster::overlay::conformance;
//!
//! conformance::run_all(&InMemoryOverlay::new()).await.unwrap();
//! # }
//! ```

use std::time::Duration;

use bytes::Bytes;

use super::{
    BoxFuture, InMemoryOverlay, Link, LinkReceiver, LinkSender, Listener, Overlay, OverlayError, Priority, TcpOverlay,
};
use crate::id::NodeId;

/// The longest any single wait of a check may take before the check fails.
pub const LIMIT: Duration = Duration::from_secs(30);

/// Bytes a sender may get accepted by a receiver that never reads before
/// the back-pressure check fails (queues, budgets and the transport's own
/// buffers all fit well below it).
pub const BACKPRESSURE_BOUND: usize = 64 * 1024 * 1024;

/// The overlay under test, and how a node name starts listening on it.
pub trait OverlayHarness: Send + Sync {
    /// The overlay.
    fn overlay(&self) -> &dyn Overlay;

    /// Starts listening as `name`, which the checks then dial. The default
    /// calls [`Overlay::listen`]; an overlay with an address book first
    /// gives `name` an address (e.g. `127.0.0.1:0`) and records the port
    /// actually bound.
    fn listen<'a>(&'a self, name: &'a NodeId) -> BoxFuture<'a, Result<Listener, OverlayError>> {
        self.overlay().listen(name)
    }
}

impl OverlayHarness for InMemoryOverlay {
    fn overlay(&self) -> &dyn Overlay {
        self
    }
}

impl OverlayHarness for TcpOverlay {
    fn overlay(&self) -> &dyn Overlay {
        self
    }

    fn listen<'a>(&'a self, name: &'a NodeId) -> BoxFuture<'a, Result<Listener, OverlayError>> {
        Box::pin(async move {
            self.insert_address(name.as_str(), std::net::SocketAddr::from(([127, 0, 0, 1], 0)));
            let listener = Overlay::listen(self, name).await?;
            if let Some(addr) = listener.local_addr() {
                self.insert_address(name.as_str(), addr);
            }
            Ok(listener)
        })
    }
}

#[cfg(feature = "tls")]
impl OverlayHarness for super::TlsOverlay {
    fn overlay(&self) -> &dyn Overlay {
        self
    }

    fn listen<'a>(&'a self, name: &'a NodeId) -> BoxFuture<'a, Result<Listener, OverlayError>> {
        Box::pin(async move {
            self.insert_address(name.as_str(), std::net::SocketAddr::from(([127, 0, 0, 1], 0)));
            let listener = Overlay::listen(self, name).await?;
            if let Some(addr) = listener.local_addr() {
                self.insert_address(name.as_str(), addr);
            }
            Ok(listener)
        })
    }
}

/// A check that failed: which one, and what it saw.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("overlay conformance check `{check}` failed: {problem}")]
pub struct ConformanceFailure {
    /// The check's name (its function's name).
    pub check: &'static str,
    /// What was observed, for a human.
    pub problem: String,
}

type Outcome = Result<(), ConformanceFailure>;

fn failure(check: &'static str, problem: String) -> ConformanceFailure {
    ConformanceFailure { check, problem }
}

macro_rules! ensure {
    ($check:expr, $cond:expr, $($fmt:tt)+) => {
        if !$cond {
            return Err(failure($check, format!($($fmt)+)));
        }
    };
}

/// The names the checks listen as (and dial), e.g. for a certificate
/// that must name them. The dialling side uses `conformance-dialer`.
pub fn listener_names() -> Vec<NodeId> {
    [
        "conformance-order",
        "conformance-limit",
        "conformance-receive-limit",
        "conformance-backpressure",
        "conformance-close",
        "conformance-drop-senders",
        "conformance-drop-receiver",
        "conformance-many",
    ]
    .into_iter()
    .map(NodeId::new)
    .collect()
}

fn dialer() -> NodeId {
    NodeId::new("conformance-dialer")
}

/// Runs every check in turn; the first failure ends the run.
///
/// # Errors
/// The first [`ConformanceFailure`].
pub async fn run_all(h: &dyn OverlayHarness) -> Outcome {
    let max = h.overlay().max_frame_bytes();
    ensure!("run_all", max >= 1024, "the suite needs max_frame_bytes of at least 1024, not {max}");
    frames_arrive_in_order_and_intact(h).await?;
    oversized_and_empty_frames_are_refused(h).await?;
    a_frame_over_the_receivers_limit_ends_the_link(h).await?;
    a_slow_receiver_pushes_back(h).await?;
    close_delivers_what_was_accepted_then_ends(h).await?;
    dropping_every_sender_closes_gracefully(h).await?;
    dropping_the_receiver_ends_the_peer(h).await?;
    dialing_an_unknown_name_fails(h).await?;
    many_links_carry_traffic_at_once(h).await
}

async fn within<F: std::future::Future>(
    check: &'static str,
    what: &str,
    f: F,
) -> Result<F::Output, ConformanceFailure> {
    tokio::time::timeout(LIMIT, f)
        .await
        .map_err(|_| ConformanceFailure { check, problem: format!("{what}: nothing happened within {LIMIT:?}") })
}

/// Listens as `name`, dials it, accepts: (dialled end, accepted end, listener).
async fn pair(
    h: &dyn OverlayHarness,
    check: &'static str,
    name: &str,
) -> Result<(Link, Link, Listener), ConformanceFailure> {
    let name = NodeId::new(name);
    let fail = |what: &str, e: OverlayError| ConformanceFailure { check, problem: format!("{what}: {e}") };
    let mut listener = within(check, "listen", h.listen(&name)).await?.map_err(|e| fail("listen", e))?;
    let ours = within(check, "dial", h.overlay().dial(&dialer(), &name)).await?.map_err(|e| fail("dial", e))?;
    let theirs = within(check, "accept", listener.accept()).await?;
    let theirs = theirs.ok_or_else(|| ConformanceFailure { check, problem: "the listener ended".into() })?;
    // The node lowers the receive limit before its handshake and raises it
    // after; the checks use the overlay's whole limit.
    let max = h.overlay().max_frame_bytes();
    ours.rx.set_max_frame_bytes(max);
    theirs.rx.set_max_frame_bytes(max);
    Ok((ours, theirs, listener))
}

/// Frame `i` of a stream tagged `tag`, `len` bytes (at least 5): the tag,
/// the index, then bytes derived from both.
fn frame(tag: u8, i: u32, len: usize) -> Bytes {
    let mut v = Vec::with_capacity(len.max(5));
    v.push(tag);
    v.extend_from_slice(&i.to_be_bytes());
    let mut x = u64::from(i).wrapping_mul(0x9E37_79B9_7F4A_7C15) ^ u64::from(tag);
    while v.len() < len.max(5) {
        x = x.wrapping_mul(6_364_136_223_846_793_005).wrapping_add(1_442_695_040_888_963_407);
        v.push((x >> 56) as u8);
    }
    Bytes::from(v)
}

/// Lengths of the order check's frames: small and varied, then some large
/// ones up to the overlay's limit (at most 1 MiB).
fn lengths(max: usize) -> Vec<usize> {
    let mut lens: Vec<usize> = (0..300u32).map(|i| 5 + (i as usize * 7919) % 3000).collect();
    for big in [16 * 1024, 64 * 1024 + 3, 256 * 1024, 1024 * 1024] {
        lens.push(big.min(max).max(5));
    }
    lens.push(max.clamp(5, 1024 * 1024));
    lens
}

/// Sends one frame tagged `tag` per length, as data (so their order is total).
async fn send_all(check: &'static str, tx: &LinkSender, tag: u8, lens: &[usize]) -> Outcome {
    for (i, &len) in lens.iter().enumerate() {
        let sent = within(check, "send", tx.send(frame(tag, i as u32, len), Priority::Data)).await?;
        ensure!(check, sent.is_ok(), "send of frame {i} ({len} bytes) failed: {sent:?}");
    }
    Ok(())
}

/// Receives the frames [`send_all`] sent, checking each.
async fn receive_all(check: &'static str, rx: &mut LinkReceiver, tag: u8, lens: &[usize]) -> Outcome {
    for (i, &len) in lens.iter().enumerate() {
        let got = within(check, "receive", rx.recv()).await?;
        let want = frame(tag, i as u32, len);
        let Some(got) = got else {
            return Err(ConformanceFailure {
                check,
                problem: format!("the link ended before frame {i} of {}", lens.len()),
            });
        };
        ensure!(
            check,
            got == want,
            "frame {i} differs: got {} bytes starting {:?}, want {} bytes starting {:?}",
            got.len(),
            &got[..got.len().min(5)],
            want.len(),
            &want[..5]
        );
    }
    Ok(())
}

/// Waits for the end of `rx`, discarding nothing: any frame still coming
/// is a failure.
async fn expect_end(check: &'static str, rx: &mut LinkReceiver, what: &str) -> Outcome {
    let got = within(check, what, rx.recv()).await?;
    ensure!(check, got.is_none(), "{what}: expected the end, got a frame of {} bytes", got.map_or(0, |f| f.len()));
    Ok(())
}

/// Waits for the end of `rx`, discarding frames that still come.
async fn drain_to_end(check: &'static str, rx: &mut LinkReceiver, what: &str) -> Outcome {
    within(check, what, async { while rx.recv().await.is_some() {} }).await
}

/// Frames of many sizes, up to the overlay's limit, arrive whole and in
/// order, in both directions at once.
///
/// # Errors
/// A [`ConformanceFailure`] saying what differed.
pub async fn frames_arrive_in_order_and_intact(h: &dyn OverlayHarness) -> Outcome {
    const CHECK: &str = "frames_arrive_in_order_and_intact";
    let (mut a, mut b, _listener) = pair(h, CHECK, "conformance-order").await?;
    let lens = lengths(h.overlay().max_frame_bytes());
    let (r1, r2, r3, r4) = tokio::join!(
        send_all(CHECK, &a.tx, 1, &lens),
        send_all(CHECK, &b.tx, 2, &lens),
        receive_all(CHECK, &mut b.rx, 1, &lens),
        receive_all(CHECK, &mut a.rx, 2, &lens),
    );
    r1.and(r2).and(r3).and(r4)
}

/// Empty frames and frames over [`Overlay::max_frame_bytes`] are refused by
/// `send` and `try_send` with a typed error, and the link goes on working.
///
/// # Errors
/// A [`ConformanceFailure`] saying which frame was not refused as it should.
pub async fn oversized_and_empty_frames_are_refused(h: &dyn OverlayHarness) -> Outcome {
    const CHECK: &str = "oversized_and_empty_frames_are_refused";
    let (a, mut b, _listener) = pair(h, CHECK, "conformance-limit").await?;
    let max = h.overlay().max_frame_bytes();
    let too_big = Bytes::from(vec![7u8; max.saturating_add(1)]);
    let r = a.tx.try_send(too_big.clone(), Priority::Data);
    ensure!(
        CHECK,
        matches!(r, Err(OverlayError::FrameTooLarge { len, max: m }) if len == max + 1 && m == max),
        "try_send of {} bytes with a limit of {max}: {r:?}",
        max + 1
    );
    let r = within(CHECK, "send", a.tx.send(too_big, Priority::Control)).await?;
    ensure!(CHECK, matches!(r, Err(OverlayError::FrameTooLarge { .. })), "send over the limit: {r:?}");
    let r = a.tx.try_send(Bytes::new(), Priority::Data);
    ensure!(CHECK, r == Err(OverlayError::EmptyFrame), "try_send of an empty frame: {r:?}");
    let r = within(CHECK, "send", a.tx.send(Bytes::new(), Priority::Data)).await?;
    ensure!(CHECK, r == Err(OverlayError::EmptyFrame), "send of an empty frame: {r:?}");
    // Nothing was queued, and the link still works.
    send_all(CHECK, &a.tx, 3, &[5, 100]).await?;
    receive_all(CHECK, &mut b.rx, 3, &[5, 100]).await
}

/// A frame longer than the receiver's current limit
/// ([`LinkReceiver::set_max_frame_bytes`]) ends the link: the receiver
/// gets the frames before it, then the end; it never gets that frame.
///
/// # Errors
/// A [`ConformanceFailure`] if the long frame is delivered or the link
/// does not end.
pub async fn a_frame_over_the_receivers_limit_ends_the_link(h: &dyn OverlayHarness) -> Outcome {
    const CHECK: &str = "a_frame_over_the_receivers_limit_ends_the_link";
    let (a, mut b, _listener) = pair(h, CHECK, "conformance-receive-limit").await?;
    b.rx.set_max_frame_bytes(100);
    ensure!(CHECK, b.rx.max_frame_bytes() == 100, "the limit reads {} after setting 100", b.rx.max_frame_bytes());
    send_all(CHECK, &a.tx, 4, &[100]).await?;
    receive_all(CHECK, &mut b.rx, 4, &[100]).await?;
    let r = within(CHECK, "send", a.tx.send(frame(4, 1, 101), Priority::Data)).await?;
    ensure!(CHECK, r.is_ok() || r == Err(OverlayError::Closed), "send of 101 bytes: {r:?}");
    expect_end(CHECK, &mut b.rx, "receive after a frame over the limit").await
}

/// A receiver that does not read makes its peer's sender wait: after a
/// bounded number of bytes (well under [`BACKPRESSURE_BOUND`]) `try_send`
/// keeps reporting [`OverlayError::Full`]; once the receiver reads, every
/// accepted frame arrives in order and sending works again.
///
/// # Errors
/// A [`ConformanceFailure`] if the sender could queue without bound, or
/// accepted frames were lost.
pub async fn a_slow_receiver_pushes_back(h: &dyn OverlayHarness) -> Outcome {
    const CHECK: &str = "a_slow_receiver_pushes_back";
    const LEN: usize = 16 * 1024;
    let (a, mut b, _listener) = pair(h, CHECK, "conformance-backpressure").await?;
    a.tx.set_max_queued_bytes(256 * 1024);
    b.rx.set_max_queued_bytes(256 * 1024);
    let mut sent: u32 = 0;
    let mut pushed_back = false;
    'fill: while (sent as usize) * LEN < BACKPRESSURE_BOUND {
        match a.tx.try_send(frame(5, sent, LEN), Priority::Data) {
            Ok(()) => sent += 1,
            Err(OverlayError::Full) => {
                // Give the overlay time to move frames on; a sender that stays
                // refused while the receiver reads nothing is pushed back.
                for _ in 0..20 {
                    tokio::time::sleep(Duration::from_millis(5)).await;
                    if a.tx.try_send(frame(5, sent, LEN), Priority::Data).is_ok() {
                        sent += 1;
                        continue 'fill;
                    }
                }
                pushed_back = true;
                break;
            }
            Err(e) => return Err(failure(CHECK, format!("try_send of frame {sent}: {e}"))),
        }
    }
    ensure!(
        CHECK,
        pushed_back,
        "a receiver that never reads accepted {} bytes without pushing back",
        sent as usize * LEN
    );
    let lens = vec![LEN; sent as usize];
    receive_all(CHECK, &mut b.rx, 5, &lens).await?;
    let r = within(CHECK, "send after draining", a.tx.send(frame(6, 0, 10), Priority::Data)).await?;
    ensure!(CHECK, r.is_ok(), "send after the receiver drained: {r:?}");
    receive_all(CHECK, &mut b.rx, 6, &[10]).await
}

/// [`LinkSender::close`] refuses new frames at once, delivers every frame
/// accepted before it, then the peer's receiver ends; the peer's side then
/// ends too, so the closer's receiver ends as well.
///
/// # Errors
/// A [`ConformanceFailure`] saying what was lost or did not end.
pub async fn close_delivers_what_was_accepted_then_ends(h: &dyn OverlayHarness) -> Outcome {
    const CHECK: &str = "close_delivers_what_was_accepted_then_ends";
    let (mut a, mut b, _listener) = pair(h, CHECK, "conformance-close").await?;
    let mut lens: Vec<usize> = Vec::new();
    for i in 0..200u32 {
        // Queued without waiting for the peer (as many as the queues take):
        // close must still deliver every one accepted.
        let len = 10 + i as usize * 13;
        match a.tx.try_send(frame(7, i, len), Priority::Data) {
            Ok(()) => lens.push(len),
            Err(OverlayError::Full) if i > 0 => break,
            Err(e) => return Err(failure(CHECK, format!("try_send of frame {i}: {e}"))),
        }
    }
    a.tx.close();
    let r = a.tx.try_send(frame(7, 999, 10), Priority::Data);
    ensure!(CHECK, r == Err(OverlayError::Closed), "try_send after close: {r:?}");
    ensure!(CHECK, a.tx.is_closed(), "is_closed() is false after close()");
    receive_all(CHECK, &mut b.rx, 7, &lens).await?;
    expect_end(CHECK, &mut b.rx, "the peer's receiver after the close").await?;
    drain_to_end(CHECK, &mut a.rx, "the closer's receiver").await
}

/// Dropping every clone of a link's sender closes it as `close` does.
///
/// # Errors
/// A [`ConformanceFailure`] saying what was lost or did not end.
pub async fn dropping_every_sender_closes_gracefully(h: &dyn OverlayHarness) -> Outcome {
    const CHECK: &str = "dropping_every_sender_closes_gracefully";
    let (a, mut b, _listener) = pair(h, CHECK, "conformance-drop-senders").await?;
    let lens = [10, 2000, 30];
    let clone = a.tx.clone();
    send_all(CHECK, &clone, 8, &lens).await?;
    let Link { tx, rx: mut a_rx, .. } = a;
    drop((tx, clone));
    receive_all(CHECK, &mut b.rx, 8, &lens).await?;
    expect_end(CHECK, &mut b.rx, "the peer's receiver after every sender was dropped").await?;
    drain_to_end(CHECK, &mut a_rx, "the dropping side's receiver").await
}

/// Dropping a link's receiver kills the link: the peer's receiver ends and
/// its sender is refused ([`OverlayError::Closed`]).
///
/// # Errors
/// A [`ConformanceFailure`] if the peer does not see the end.
pub async fn dropping_the_receiver_ends_the_peer(h: &dyn OverlayHarness) -> Outcome {
    const CHECK: &str = "dropping_the_receiver_ends_the_peer";
    let (mut a, b, _listener) = pair(h, CHECK, "conformance-drop-receiver").await?;
    send_all(CHECK, &b.tx, 9, &[10]).await?;
    receive_all(CHECK, &mut a.rx, 9, &[10]).await?;
    drop(b);
    drain_to_end(CHECK, &mut a.rx, "the peer's receiver after the receiver was dropped").await?;
    let refused = within(CHECK, "sending to a dead link", async {
        loop {
            match a.tx.send(frame(9, 1, 10), Priority::Data).await {
                Err(OverlayError::Closed) => return true,
                Ok(()) => tokio::task::yield_now().await,
                Err(_) => return false,
            }
        }
    })
    .await?;
    ensure!(CHECK, refused, "sending to a dead link failed with something other than Closed");
    Ok(())
}

/// Dialling a name nobody listens as fails with an [`OverlayError`], in
/// bounded time.
///
/// # Errors
/// A [`ConformanceFailure`] if the dial succeeds.
pub async fn dialing_an_unknown_name_fails(h: &dyn OverlayHarness) -> Outcome {
    const CHECK: &str = "dialing_an_unknown_name_fails";
    let r = within(CHECK, "dial", h.overlay().dial(&dialer(), &NodeId::new("conformance-nobody"))).await?;
    ensure!(CHECK, r.is_err(), "dialling a name nobody listens as returned a link");
    Ok(())
}

/// Many links open at once each carry their own frames, both ways,
/// interleaved, without mixing them up.
///
/// # Errors
/// A [`ConformanceFailure`] naming the link and frame that went wrong.
pub async fn many_links_carry_traffic_at_once(h: &dyn OverlayHarness) -> Outcome {
    const CHECK: &str = "many_links_carry_traffic_at_once";
    const LINKS: usize = 32;
    const FRAMES: usize = 20;
    let name = NodeId::new("conformance-many");
    let fail = |what: &str, e: OverlayError| ConformanceFailure { check: CHECK, problem: format!("{what}: {e}") };
    let mut listener = within(CHECK, "listen", h.listen(&name)).await?.map_err(|e| fail("listen", e))?;
    let mut dialled = Vec::with_capacity(LINKS);
    for _ in 0..LINKS {
        dialled.push(within(CHECK, "dial", h.overlay().dial(&dialer(), &name)).await?.map_err(|e| fail("dial", e))?);
    }
    // Each dialled link introduces itself, so accepted links can be matched.
    for (i, link) in dialled.iter().enumerate() {
        send_all(CHECK, &link.tx, 100 + i as u8, &[5]).await?;
    }
    let mut accepted: Vec<Option<Link>> = (0..LINKS).map(|_| None).collect();
    for _ in 0..LINKS {
        let link = within(CHECK, "accept", listener.accept()).await?;
        let mut link = link.ok_or_else(|| ConformanceFailure { check: CHECK, problem: "the listener ended".into() })?;
        let hello = within(CHECK, "receive the introduction", link.rx.recv()).await?;
        let i = hello.as_ref().and_then(|f| f.first()).map_or(usize::MAX, |t| usize::from(t.wrapping_sub(100)));
        ensure!(CHECK, i < LINKS && accepted[i].is_none(), "an accepted link introduced itself as {hello:?}");
        accepted[i] = Some(link);
    }
    let mut accepted: Vec<Link> = accepted.into_iter().flatten().collect();
    let lens: Vec<usize> = (0..FRAMES).map(|f| 5 + f * 31).collect();
    // Every link sends before any receives: all are in flight together.
    for (i, (a, b)) in dialled.iter().zip(&accepted).enumerate() {
        send_all(CHECK, &a.tx, i as u8, &lens).await?;
        send_all(CHECK, &b.tx, 128 + i as u8, &lens).await?;
    }
    for (i, (a, b)) in dialled.iter_mut().zip(&mut accepted).enumerate() {
        receive_all(CHECK, &mut b.rx, i as u8, &lens).await?;
        receive_all(CHECK, &mut a.rx, 128 + i as u8, &lens).await?;
    }
    Ok(())
}
