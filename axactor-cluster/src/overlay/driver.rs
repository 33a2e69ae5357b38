//! Building links for a transport of your own: [`endpoint`] makes one end
//! of a link, the [`Link`] the node uses and the [`LinkDriver`] the
//! transport runs.
//!
//! ```text
//!  node ── LinkSender ──▶ (control, data queues) ──▶ LinkOutbox ──▶ your transport ──▶ peer
//!  node ◀─ LinkReceiver ◀── (inbound queue) ◀──── LinkInbox ◀─── your transport ◀── peer
//!                         LinkControl: the phase both sides share
//! ```
//!
//! The driver's contract (the conformance suite, feature
//! `overlay-conformance`, checks what can be observed of it):
//! - take frames with [`LinkOutbox::next`] (control before data) and send
//!   them in that order, boundaries preserved, each at most
//!   [`LinkConfig::max_frame_bytes`] long (the senders already refuse
//!   longer ones);
//! - hand the peer's frames to [`LinkInbox::deliver`] in the order the peer
//!   sent them, and stop taking more from the transport while it waits:
//!   that wait is the back-pressure that must reach the peer (a TCP reader
//!   stops reading, so the peer's writes block);
//! - check each frame against [`LinkInbox::max_frame_bytes`] before
//!   allocating its body when the transport carries lengths (`deliver`
//!   checks again and closes the link on a longer frame);
//! - on [`Outgoing::Drained`] finish the write side so the peer sees the
//!   end, and keep delivering until the peer ends too; when the peer ends
//!   cleanly call [`LinkControl::close`]; on an error call
//!   [`LinkControl::fail`]; on [`Outgoing::Dead`] or a phase of
//!   [`LinkPhase::Dead`] stop at once;
//! - drop the [`LinkInbox`] when the link is over: the node's receiver
//!   then returns what it holds and `None`;
//! - bound the time a `Closing` link may take (a peer that stops reading
//!   must not hold it open forever).
//!
//! A transport that carries a byte stream need not write a driver:
//! [`stream_link`](super::stream_link) runs the TCP overlay's framing,
//! batching and limits over any `AsyncRead + AsyncWrite`.

use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;

use super::inbound::{InboundTx, NoSlot};
use super::link::{self, ByteBudget, FrameLimit, LinkOutbox, LinkPhase, LinkState};
use super::{DEFAULT_LINK_QUEUE_FRAMES, Link, LinkSource, OverlayError};
use crate::wire::frame::DEFAULT_MAX_FRAME_BYTES;

/// Default longest time a closing link may take to flush its queued frames
/// and see the peer's end before it is dropped.
pub const DEFAULT_CLOSE_TIMEOUT: Duration = Duration::from_secs(5);

/// The settings of one link endpoint ([`endpoint`], [`stream_link`](super::stream_link)).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub struct LinkConfig {
    /// Largest frame either way: the overlay's
    /// [`Overlay::max_frame_bytes`](super::Overlay::max_frame_bytes).
    pub max_frame_bytes: usize,
    /// The receive limit a new link starts with (at most `max_frame_bytes`);
    /// the node sets its own small limit before the handshake and raises it
    /// afterwards ([`LinkReceiver::set_max_frame_bytes`](super::LinkReceiver::set_max_frame_bytes)).
    pub initial_max_frame_bytes: usize,
    /// Capacity of each of the link's three queues, in frames (at least 1).
    pub queue_frames: usize,
    /// Longest time from `Closing` to `Dead` (enforced by
    /// [`stream_link`](super::stream_link); a driver of your own should do
    /// the same).
    pub close_timeout: Duration,
}

impl Default for LinkConfig {
    fn default() -> Self {
        LinkConfig::new(DEFAULT_MAX_FRAME_BYTES)
    }
}

impl LinkConfig {
    /// Frames up to `max_frame_bytes` (also the initial receive limit),
    /// [`DEFAULT_LINK_QUEUE_FRAMES`] per queue,
    /// [`DEFAULT_CLOSE_TIMEOUT`].
    pub fn new(max_frame_bytes: usize) -> LinkConfig {
        LinkConfig {
            max_frame_bytes,
            initial_max_frame_bytes: max_frame_bytes,
            queue_frames: DEFAULT_LINK_QUEUE_FRAMES,
            close_timeout: DEFAULT_CLOSE_TIMEOUT,
        }
    }

    /// Sets the receive limit a new link starts with.
    pub fn with_initial_max_frame_bytes(mut self, n: usize) -> LinkConfig {
        self.initial_max_frame_bytes = n;
        self
    }

    /// Sets each queue's capacity in frames.
    pub fn with_queue_frames(mut self, n: usize) -> LinkConfig {
        self.queue_frames = n;
        self
    }

    /// Sets the longest time from `Closing` to `Dead`.
    pub fn with_close_timeout(mut self, d: Duration) -> LinkConfig {
        self.close_timeout = d;
        self
    }

    /// Checks the settings.
    ///
    /// # Errors
    /// [`OverlayError::Config`] naming the setting: `max_frame_bytes` not
    /// in `1..=u32::MAX`, `initial_max_frame_bytes` or `queue_frames` zero,
    /// `close_timeout` zero.
    pub fn validate(&self) -> Result<(), OverlayError> {
        let bad = |what: &str| Err(OverlayError::Config(what.to_owned()));
        if self.max_frame_bytes == 0 || self.max_frame_bytes > u32::MAX as usize {
            return bad("max_frame_bytes must be between 1 and u32::MAX");
        }
        if self.initial_max_frame_bytes == 0 {
            return bad("initial_max_frame_bytes must be at least 1");
        }
        if self.queue_frames == 0 {
            return bad("queue_frames must be at least 1");
        }
        if self.close_timeout.is_zero() {
            return bad("close_timeout must be positive");
        }
        Ok(())
    }
}

/// Creates one end of a link: the [`Link`] to hand to the node (from
/// [`Overlay::dial`](super::Overlay::dial), or through a
/// [`ListenerHandle`](super::ListenerHandle)) and the [`LinkDriver`] that
/// the transport runs (see the module docs for its contract). `remote` is
/// for logs; `source` keys the node's per-source handshake limit.
///
/// Settings below their minimum are raised to it (see
/// [`LinkConfig::validate`] to refuse them instead).
///
/// ```
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() {
/// use axactor_cluster::overlay::{LinkConfig, LinkSource, Outgoing, Priority, endpoint};
/// use bytes::Bytes;
///
/// // Two ends joined by a trivial in-process "transport": one task per direction.
/// let (a, mut a_drv) = endpoint(LinkConfig::new(1024), "b", LinkSource::Unknown);
/// let (mut b, b_drv) = endpoint(LinkConfig::new(1024), "a", LinkSource::Unknown);
/// tokio::spawn(async move {
///     while let Outgoing::Frame(frame) = a_drv.outbox.next().await {
///         if b_drv.inbox.deliver(frame).await.is_err() {
///             break;
///         }
///     }
///     // Dropping `b_drv.inbox` ends b's receiver.
/// });
/// a.tx.send(Bytes::from_static(b"hello"), Priority::Data).await.unwrap();
/// a.tx.close();
/// assert_eq!(b.rx.recv().await.unwrap(), "hello");
/// assert_eq!(b.rx.recv().await, None);
/// # }
/// ```
pub fn endpoint(config: LinkConfig, remote: impl Into<String>, source: LinkSource) -> (Link, LinkDriver) {
    let max = config.max_frame_bytes.max(1);
    let state = LinkState::new();
    let (tx, outbox) = link::outbound(&state, config.queue_frames, max);
    let limit = FrameLimit::new(config.initial_max_frame_bytes.max(1), max);
    let (inbound, bytes, mut rx) = link::inbound(config.queue_frames, limit.clone());
    rx.set_kill_on_drop(Arc::clone(&state));
    let control = LinkControl { state };
    let inbox = LinkInbox { tx: inbound, bytes, limit, control: control.clone() };
    (Link::new(tx, rx, remote.into(), source), LinkDriver { outbox, inbox, control })
}

/// The transport's side of one link end (see the module docs).
#[derive(Debug)]
#[non_exhaustive]
pub struct LinkDriver {
    /// Frames to send to the peer.
    pub outbox: LinkOutbox,
    /// Where the peer's frames go.
    pub inbox: LinkInbox,
    /// The link's phase.
    pub control: LinkControl,
}

/// The phase of one link end, shared by its halves and its driver. Cheap
/// to clone.
#[derive(Debug, Clone)]
pub struct LinkControl {
    state: Arc<LinkState>,
}

impl LinkControl {
    /// Where the link is now.
    pub fn phase(&self) -> LinkPhase {
        self.state.phase()
    }

    /// The peer ended its side cleanly: no new frames are accepted from the
    /// node, frames already queued are still sent. No-op once closing.
    pub fn close(&self) {
        self.state.advance(LinkPhase::Closing);
    }

    /// The link failed (an I/O error, a bad frame, the close deadline): stop
    /// everything, discard what is queued.
    pub fn fail(&self) {
        self.state.advance(LinkPhase::Dead);
    }

    /// Completes once the link is at `phase` or further on.
    ///
    /// # Cancel safety
    /// Cancel safe.
    pub async fn reached(&self, phase: LinkPhase) {
        self.state.watch().reached(phase).await;
    }
}

/// The transport's end of a link's inbound queue.
#[derive(Debug)]
pub struct LinkInbox {
    tx: InboundTx,
    bytes: Arc<ByteBudget>,
    limit: FrameLimit,
    control: LinkControl,
}

impl LinkInbox {
    /// The largest frame the node takes from the peer right now (it may
    /// change between frames). Check a frame's announced length against it
    /// before allocating the frame.
    pub fn max_frame_bytes(&self) -> usize {
        self.limit.get()
    }

    /// Checks `frame` against the limits; a bad frame kills the link.
    fn check(&self, frame: &Bytes) -> Result<(), OverlayError> {
        let max = self.limit.get();
        let err = if frame.is_empty() {
            OverlayError::EmptyFrame
        } else if frame.len() > max {
            OverlayError::FrameTooLarge { len: frame.len(), max }
        } else if self.control.phase() == LinkPhase::Dead {
            OverlayError::Closed
        } else {
            return Ok(());
        };
        self.control.fail();
        Err(err)
    }

    /// Hands the peer's next frame to the node, waiting for room in the
    /// inbound queue (in frames and in bytes, see
    /// [`LinkReceiver::set_max_queued_bytes`](super::LinkReceiver::set_max_queued_bytes)).
    ///
    /// # Errors
    /// [`OverlayError::EmptyFrame`] or [`OverlayError::FrameTooLarge`] (the
    /// frame is over [`max_frame_bytes`](Self::max_frame_bytes)): the link
    /// is now dead. [`OverlayError::Closed`]: the link died or the node
    /// dropped its receiver; stop delivering.
    ///
    /// # Cancel safety
    /// Cancel safe: if the future is dropped, the frame was not delivered.
    pub async fn deliver(&self, frame: Bytes) -> Result<(), OverlayError> {
        self.check(&frame)?;
        let slot = tokio::select! {
            biased;
            () = self.control.reached(LinkPhase::Dead) => return Err(OverlayError::Closed),
            r = self.tx.reserve() => r.map_err(|_| OverlayError::Closed)?,
        };
        if !self.bytes.try_take(frame.len()) {
            tokio::select! {
                biased;
                () = self.control.reached(LinkPhase::Dead) => return Err(OverlayError::Closed),
                () = self.bytes.take(frame.len()) => {}
            }
        }
        slot.send(frame);
        Ok(())
    }

    /// As [`deliver`](Self::deliver), without waiting.
    ///
    /// # Errors
    /// As `deliver`, and [`OverlayError::Full`] if the inbound queue has no
    /// room now (the frame is not delivered; the link stays open).
    pub fn try_deliver(&self, frame: Bytes) -> Result<(), OverlayError> {
        self.check(&frame)?;
        let slot = self.tx.try_reserve().map_err(|e| match e {
            NoSlot::Full => OverlayError::Full,
            NoSlot::Closed => OverlayError::Closed,
        })?;
        if !self.bytes.try_take(frame.len()) {
            return Err(OverlayError::Full);
        }
        slot.send(frame);
        Ok(())
    }

    /// Completes once the node dropped its receiver (the link is then dead).
    ///
    /// # Cancel safety
    /// Cancel safe.
    pub async fn closed(&self) {
        self.tx.closed().await;
    }
}
