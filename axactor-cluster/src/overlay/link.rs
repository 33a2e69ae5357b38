//! [`Link`]: one bidirectional, message-preserving frame link to a peer, as
//! handed out by every overlay.
//!
//! A link has two local halves and one driver behind them:
//!
//! ```text
//!  LinkSender ──(control queue, data queue)──▶ OutQueue ─▶ driver ─▶ peer
//!  LinkReceiver ◀──────(inbound queue)──────── driver ◀─ peer
//!  LinkReceiver ◀──(reads the stream itself)─────────────── peer   (TCP, TLS, stream links)
//! ```
//!
//! The driver is the TCP connection task, a stream link's task, the
//! in-memory delivery tasks, or an overlay's own (`super::driver`). On
//! stream links the receiving side has no driver: the receiver reads the
//! stream itself (`super::pull`).
//! A driver may give the senders a write-through path ([`WriteThrough`],
//! crate-internal `LinkSender::feed` / `LinkSender::flush`: TCP's
//! `tcp_conn::Direct`, and the in-memory overlay's `memory_direct::Direct`,
//! one per directed link): while the driver is idle (nothing queued, no
//! write in progress, for the in-memory overlay also no fault configured
//! and nothing scheduled or held), frames go to the transport (the peer's
//! inbound queue) from the sender's own task, sparing the driver's wake-up;
//! otherwise they are queued as above. A frame is queued only with the driver made busy,
//! and the driver turns idle only with both queues empty, both under the
//! path's lock, so the two paths never reorder frames.
//! All three queues are bounded (the overlay's `link_queue_frames`, by default
//! [`DEFAULT_LINK_QUEUE_FRAMES`]), and in
//! bytes too: the two outbound queues share one [`ByteBudget`], the inbound
//! queue has its own (by default
//! [`DEFAULT_LINK_QUEUE_BYTES`] each, set
//! per link with [`LinkSender::set_max_queued_bytes`] and
//! [`LinkReceiver::set_max_queued_bytes`]). A frame is admitted when it fits
//! the budget or its queue holds nothing (so one frame larger than the
//! budget still passes, alone); over the budget, waiting senders wait and
//! `try_send` reports [`OverlayError::Full`], exactly as for a full queue.
//! The accounting is one atomic add when a frame is queued and one atomic
//! subtract when it is taken: no lock, no allocation per frame.
//!
//! Lifecycle, shared by the halves and the driver through a [`LinkState`]:
//! `Open → Closing → Dead`, only forwards. `Closing` (after
//! [`LinkSender::close`], after every `LinkSender` clone is dropped, or when
//! the peer closed its side) refuses new frames, but the frames already
//! accepted are still sent. `Dead` (an I/O or decode error, the
//! `LinkReceiver` dropped, the linger time over) stops everything at once
//! and discards what is queued. When the driver ends, the receiver yields
//! what it already holds and then `None`.

use std::net::IpAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicU8, AtomicUsize, Ordering};

use bytes::Bytes;
use tokio::sync::mpsc;

use crate::signal::Signal;

pub(crate) use super::budget::ByteBudget;
use super::error::OverlayError;
use super::inbound::{self, InboundRx, InboundTx, InlineSink};
use super::pull::StreamInbound;

/// Default capacity of each bounded queue of a link, in frames: one queue
/// per [`Priority`] for sending, one for receiving.
pub const DEFAULT_LINK_QUEUE_FRAMES: usize = 1024;

/// Default byte budget of a link's queues, per direction: the inbound
/// queue, and the two outbound queues together (see [`LinkSender::set_max_queued_bytes`]
/// and [`LinkReceiver::set_max_queued_bytes`]).
pub const DEFAULT_LINK_QUEUE_BYTES: usize = 32 * 1024 * 1024;

/// Per-link priority: control frames are written before queued data frames.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Priority {
    /// Handshake, heartbeats, lease and membership traffic: never queued
    /// behind data.
    Control,
    /// Actor messages and replies.
    Data,
}

/// One bidirectional frame link to a peer.
///
/// Dropping the `LinkReceiver` closes the link (`Dead`); dropping every
/// `LinkSender` clone closes it gracefully (queued frames are still sent).
///
/// Overlays outside this crate get links from
/// [`endpoint`](super::endpoint) or [`stream_link`](super::stream_link) and
/// may then set [`remote`](Self::remote), [`source`](Self::source) and
/// [`identity`](Self::identity).
#[derive(Debug)]
#[non_exhaustive]
pub struct Link {
    /// Sends frames to the peer.
    pub tx: LinkSender,
    /// Receives the peer's frames, in the order the peer sent them (as far as
    /// the overlay's injected faults allow).
    pub rx: LinkReceiver,
    /// Who is at the other end, for logs: a node name or a socket address.
    pub remote: String,
    /// Where an accepted link comes from, as far as the overlay can tell:
    /// the key of the node's per-source handshake limit.
    pub source: LinkSource,
    /// What the transport authenticated about the peer, if anything (a TLS
    /// certificate). The node refuses a handshake in which the peer claims
    /// a node name this identity does not cover (counted as
    /// `peer_identity`).
    pub identity: Option<Arc<dyn PeerIdentity>>,
}

impl Link {
    /// A link from its halves, without an identity.
    pub(crate) fn new(tx: LinkSender, rx: LinkReceiver, remote: String, source: LinkSource) -> Link {
        Link { tx, rx, remote, source, identity: None }
    }
}

/// What a transport proved about the peer of a link, such as a verified
/// TLS certificate: which node names the peer may use. Set by the overlay
/// on [`Link::identity`]; checked by the node against the name the peer
/// claims in its handshake.
pub trait PeerIdentity: Send + Sync + std::fmt::Debug + 'static {
    /// Whether the peer may act as the node named `node`.
    fn may_claim(&self, node: &str) -> bool;
}

/// Where an inbound link comes from. Not authenticated: only a key for
/// per-source limits before the handshake.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
#[non_exhaustive]
pub enum LinkSource {
    /// A TCP peer's IP address (without the port; an IPv4-mapped IPv6
    /// address is given as IPv4).
    Ip(IpAddr),
    /// The dialling node's name (in-memory overlay).
    Node(String),
    /// Not known (dialled links, overlays that cannot tell).
    Unknown,
}

/// Where a link is in its life. Only moves forwards:
/// `Open → Closing → Dead` (a step may be skipped).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum LinkPhase {
    /// Frames flow both ways.
    Open,
    /// No new frames are accepted; frames already queued are still sent,
    /// and frames from the peer are still received.
    Closing,
    /// Everything stops; queued frames are discarded.
    Dead,
}

pub(crate) use LinkPhase as Phase;

/// The lifecycle state shared by a link's halves and its driver.
#[derive(Debug)]
pub(crate) struct LinkState {
    /// What tasks wait on ([`PhaseWatch::reached`]).
    phase: Signal<Phase>,
    /// The same phase ([`phase_code`]), stored under the signal's lock
    /// whenever it moves: read on every frame sent and received, so
    /// without taking that lock.
    current: AtomicU8,
}

impl LinkState {
    pub(crate) fn new() -> Arc<LinkState> {
        Arc::new(LinkState { phase: Signal::new(Phase::Open), current: AtomicU8::new(phase_code(Phase::Open)) })
    }

    pub(crate) fn phase(&self) -> Phase {
        match self.current.load(Ordering::Acquire) {
            0 => Phase::Open,
            1 => Phase::Closing,
            _ => Phase::Dead,
        }
    }

    /// Moves to `to` unless the link is already there or further on.
    pub(crate) fn advance(&self, to: Phase) {
        self.phase.update(|p| {
            let moved = *p < to;
            if moved {
                *p = to;
                self.current.store(phase_code(to), Ordering::Release);
            }
            moved
        });
    }

    pub(crate) fn watch(self: &Arc<Self>) -> PhaseWatch {
        PhaseWatch { state: Arc::clone(self) }
    }
}

/// A phase as [`LinkState::phase`] decodes it.
fn phase_code(phase: Phase) -> u8 {
    match phase {
        Phase::Open => 0,
        Phase::Closing => 1,
        Phase::Dead => 2,
    }
}

/// Waits for a link to reach a phase.
#[derive(Debug)]
pub(crate) struct PhaseWatch {
    state: Arc<LinkState>,
}

impl PhaseWatch {
    /// The current phase.
    pub(crate) fn phase(&self) -> Phase {
        self.state.phase()
    }

    /// Completes once the link is at `phase` or further on. Cancel safe.
    pub(crate) async fn reached(&mut self, phase: Phase) {
        self.state.phase.wait_for(|p| *p >= phase).await;
    }
}

/// The largest inbound frame a link currently accepts, shared by its
/// receiver (which may change it) and its driver (which enforces it).
#[derive(Debug, Clone)]
pub(crate) struct FrameLimit {
    current: Arc<AtomicUsize>,
    ceiling: usize,
}

impl FrameLimit {
    /// A limit starting at `initial` (at most `ceiling`), never raised above `ceiling`.
    pub(crate) fn new(initial: usize, ceiling: usize) -> FrameLimit {
        FrameLimit { current: Arc::new(AtomicUsize::new(initial.min(ceiling))), ceiling }
    }

    pub(crate) fn get(&self) -> usize {
        self.current.load(Ordering::Acquire)
    }

    fn set(&self, n: usize) {
        self.current.store(n.min(self.ceiling), Ordering::Release);
    }
}

/// A driver's write-through path (see the module docs): the senders write
/// frames to the transport themselves while the driver is idle. Its lock
/// orders the two paths: a frame is queued only under it, with the driver
/// made busy.
pub(crate) trait WriteThrough: Send + Sync + std::fmt::Debug {
    /// Under the lock, makes the driver busy, then runs `queue` (which
    /// queues a frame: the driver writes what was fed before it first).
    fn queue_busy(&self, queue: &mut dyn FnMut());

    /// Under the lock: buffers `frame` to be written through if the driver
    /// is idle ([`Fed::Done`]); otherwise returns what `queue(frame)`
    /// returns (the driver is busy and cannot turn idle meanwhile).
    fn feed(&self, frame: Bytes, queue: &mut dyn FnMut(Bytes) -> Fed) -> Fed;

    /// Writes what [`feed`](Self::feed) buffered, handing what the
    /// transport does not take to the driver.
    fn flush(&self);
}

/// What became of a frame given to [`WriteThrough::feed`].
#[derive(Debug)]
pub(crate) enum Fed {
    /// Buffered to be written through, or queued.
    Done,
    /// The link is closed.
    Closed,
    /// No room now: the caller waits for room with this frame.
    Wait(Bytes),
}

/// The sending half of a [`Link`]. Cheap to clone; all clones feed the same
/// two bounded queues, one per [`Priority`].
#[derive(Debug, Clone)]
pub struct LinkSender {
    control: mpsc::Sender<Bytes>,
    data: mpsc::Sender<Bytes>,
    /// Bytes in both queues, against their shared budget.
    bytes: Arc<ByteBudget>,
    state: Arc<LinkState>,
    max_frame_bytes: usize,
    /// The driver's write-through path, if it has one (see the module docs).
    direct: Option<Arc<dyn WriteThrough>>,
}

impl LinkSender {
    /// Lets this sender (and its clones) write through (TCP, in memory).
    pub(crate) fn with_write_through(mut self, direct: Arc<dyn WriteThrough>) -> LinkSender {
        self.direct = Some(direct);
        self
    }

    fn try_queue(&self, frame: Bytes, priority: Priority) -> Result<(), OverlayError> {
        let len = frame.len();
        if !self.bytes.try_take(len) {
            return Err(OverlayError::Full);
        }
        self.queue(priority).try_send(frame).map_err(|e| {
            self.bytes.give_back(len);
            match e {
                mpsc::error::TrySendError::Full(_) => OverlayError::Full,
                mpsc::error::TrySendError::Closed(_) => OverlayError::Closed,
            }
        })
    }

    /// Sets the byte budget shared by this link's two outbound queues
    /// (default [`DEFAULT_LINK_QUEUE_BYTES`]):
    /// over it, [`send`](Self::send) waits and [`try_send`](Self::try_send)
    /// reports [`OverlayError::Full`]. A frame is always admitted into
    /// empty queues, whatever its size.
    pub fn set_max_queued_bytes(&self, max: usize) {
        self.bytes.set_max(max);
    }

    fn queue(&self, priority: Priority) -> &mpsc::Sender<Bytes> {
        match priority {
            Priority::Control => &self.control,
            Priority::Data => &self.data,
        }
    }

    fn check(&self, frame: &Bytes) -> Result<(), OverlayError> {
        if self.state.phase() != Phase::Open {
            return Err(OverlayError::Closed);
        }
        if frame.is_empty() {
            return Err(OverlayError::EmptyFrame);
        }
        if frame.len() > self.max_frame_bytes {
            return Err(OverlayError::FrameTooLarge { len: frame.len(), max: self.max_frame_bytes });
        }
        Ok(())
    }

    /// Queues `frame` without waiting.
    ///
    /// # Errors
    /// [`OverlayError::Full`] if that priority's queue is full or the
    /// queues hold their byte budget,
    /// [`OverlayError::Closed`] if the link is closing or closed,
    /// [`OverlayError::EmptyFrame`] / [`OverlayError::FrameTooLarge`] if the
    /// frame is empty or longer than the overlay's `max_frame_bytes`.
    pub fn try_send(&self, frame: Bytes, priority: Priority) -> Result<(), OverlayError> {
        self.check(&frame)?;
        let Some(direct) = &self.direct else { return self.try_queue(frame, priority) };
        // Queued under the path's lock, with the driver made busy.
        let (mut frame, mut queued) = (Some(frame), Err(OverlayError::Closed));
        direct.queue_busy(&mut || {
            if let Some(frame) = frame.take() {
                queued = self.try_queue(frame, priority);
            }
        });
        queued
    }

    /// Queues `frame`, waiting for room in that priority's queue.
    ///
    /// # Errors
    /// As [`try_send`](Self::try_send), except that a full queue is waited
    /// on; [`OverlayError::Closed`] if the link closes while waiting.
    ///
    /// # Cancel safety
    /// If the future is dropped before completing, the frame was not queued
    /// (it is dropped) and the queue order of other frames is unaffected.
    pub async fn send(&self, frame: Bytes, priority: Priority) -> Result<(), OverlayError> {
        self.check(&frame)?;
        let len = frame.len();
        // Fast path: room now (no waiter to register; `check` saw the link open).
        if let Ok(permit) = self.queue(priority).try_reserve() {
            if self.bytes.try_take(len) {
                self.send_reserved(permit, frame);
                return Ok(());
            }
            drop(permit);
        }
        let mut watch = self.state.watch();
        // A slot first, then the bytes: both waits are cancel safe, and
        // nothing is taken unless the frame is queued.
        let permit = tokio::select! {
            biased;
            () = watch.reached(Phase::Closing) => return Err(OverlayError::Closed),
            r = self.queue(priority).reserve() => r.map_err(|_| OverlayError::Closed)?,
        };
        tokio::select! {
            biased;
            () = watch.reached(Phase::Closing) => return Err(OverlayError::Closed),
            () = self.bytes.take(len) => {}
        }
        self.send_reserved(permit, frame);
        Ok(())
    }

    fn send_reserved(&self, permit: mpsc::Permit<'_, Bytes>, frame: Bytes) {
        let Some(direct) = &self.direct else { return permit.send(frame) };
        // Queued under the path's lock, with the driver made busy (so no
        // frame written through can overtake it).
        let mut reserved = Some((permit, frame));
        direct.queue_busy(&mut || {
            if let Some((permit, frame)) = reserved.take() {
                permit.send(frame);
            }
        });
    }

    /// As [`send`](Self::send), but on a link whose driver is idle the
    /// frame is written through from this task instead of queued. TCP: it
    /// joins the frames fed before it in one buffer, written once that
    /// buffer is full or at [`flush`](Self::flush). In memory: it is handed
    /// to the peer's inbound queue at once. The caller must call `flush`
    /// before it waits for anything: fed frames may sit in a buffer until then.
    pub(crate) async fn feed(&self, frame: Bytes, priority: Priority) -> Result<(), OverlayError> {
        let Some(direct) = &self.direct else { return self.send(frame, priority).await };
        self.check(&frame)?;
        // Busy: queued under the path's lock, so the driver cannot turn idle meanwhile.
        let fed = direct.feed(frame, &mut |frame| {
            let len = frame.len();
            if !self.bytes.try_take(len) {
                return Fed::Wait(frame);
            }
            match self.queue(priority).try_send(frame) {
                Ok(()) => Fed::Done,
                Err(mpsc::error::TrySendError::Closed(_)) => {
                    self.bytes.give_back(len);
                    Fed::Closed
                }
                Err(mpsc::error::TrySendError::Full(frame)) => {
                    self.bytes.give_back(len);
                    Fed::Wait(frame)
                }
            }
        });
        match fed {
            Fed::Done => Ok(()),
            Fed::Closed => Err(OverlayError::Closed),
            Fed::Wait(frame) => self.send(frame, priority).await,
        }
    }

    /// As [`feed`](Self::feed), without waiting: [`OverlayError::Full`] if
    /// the frame can neither be written through nor queued now (it is
    /// dropped). A sender that must not lose the frame checks
    /// [`has_room`](Self::has_room) first, with no other sender on the link.
    pub(crate) fn try_feed(&self, frame: Bytes, priority: Priority) -> Result<(), OverlayError> {
        let Some(direct) = &self.direct else { return self.try_send(frame, priority) };
        self.check(&frame)?;
        let fed = direct.feed(frame, &mut |frame| match self.try_queue(frame, priority) {
            Ok(()) => Fed::Done,
            Err(OverlayError::Closed) => Fed::Closed,
            Err(_) => Fed::Wait(Bytes::new()),
        });
        match fed {
            Fed::Done => Ok(()),
            Fed::Closed => Err(OverlayError::Closed),
            Fed::Wait(_) => Err(OverlayError::Full),
        }
    }

    /// Whether a frame of `len` bytes would be taken now by
    /// [`try_feed`](Self::try_feed) or [`try_send`](Self::try_send) at
    /// `priority`: the link is open and that queue has a slot and the
    /// bytes. Only the queues' consumer frees room, so the answer holds
    /// until this sender (or another) queues a frame.
    pub(crate) fn has_room(&self, len: usize, priority: Priority) -> bool {
        self.state.phase() == Phase::Open && self.queue(priority).capacity() > 0 && self.bytes.fits(len)
    }

    /// Whether frames wait in the link's `priority` queue for the
    /// transport to take them (a backlog: the transport is behind).
    pub(crate) fn is_behind(&self, priority: Priority) -> bool {
        let q = self.queue(priority);
        q.capacity() < q.max_capacity()
    }

    /// Writes the frames [`feed`](Self::feed) buffered, handing what the
    /// transport does not take to the driver. No-op on other links.
    pub(crate) fn flush(&self) {
        if let Some(direct) = &self.direct {
            direct.flush();
        }
    }

    /// Closes the link gracefully: no new frames are accepted, frames already
    /// queued are still sent, then the peer sees the link end. Idempotent.
    pub fn close(&self) {
        self.state.advance(Phase::Closing);
    }

    /// Whether the link no longer accepts frames (closing or closed).
    pub fn is_closed(&self) -> bool {
        self.state.phase() != Phase::Open || self.control.is_closed()
    }

    /// Free slots in that priority's queue right now.
    pub fn capacity(&self, priority: Priority) -> usize {
        self.queue(priority).capacity()
    }
}

/// The receiving half of a [`Link`].
#[derive(Debug)]
pub struct LinkReceiver {
    inbound: Inbound,
    limit: FrameLimit,
    /// Links built with [`endpoint`](super::endpoint): the state this
    /// receiver moves to `Dead` when dropped (built-in drivers notice the
    /// dropped receiver themselves).
    kill_on_drop: Option<Arc<LinkState>>,
}

/// Where a receiver's frames come from.
#[derive(Debug)]
enum Inbound {
    /// A bounded queue its driver fills (in-memory links, [`endpoint`](super::endpoint)).
    Queue(InboundRx),
    /// The stream itself, read by the receiver (`super::pull`).
    Stream(Box<StreamInbound>),
}

impl LinkReceiver {
    /// Makes dropping this receiver kill `state` at once (links of
    /// [`endpoint`](super::endpoint), whose drivers are not ours).
    pub(crate) fn set_kill_on_drop(&mut self, state: Arc<LinkState>) {
        self.kill_on_drop = Some(state);
    }

    /// A receiver reading a stream itself.
    pub(crate) fn from_stream(inbound: StreamInbound, limit: FrameLimit) -> LinkReceiver {
        LinkReceiver { inbound: Inbound::Stream(Box::new(inbound)), limit, kill_on_drop: None }
    }
}

impl Drop for LinkReceiver {
    fn drop(&mut self) {
        if let Some(state) = &self.kill_on_drop {
            state.advance(Phase::Dead);
        }
    }
}

impl LinkReceiver {
    /// The next frame from the peer; `None` once the link has closed and
    /// every frame received before has been returned.
    ///
    /// # Cancel safety
    /// Cancel safe: a frame is never lost by dropping the future.
    pub async fn recv(&mut self) -> Option<Bytes> {
        match &mut self.inbound {
            Inbound::Queue(rx) => rx.recv().await,
            Inbound::Stream(stream) => stream.recv().await,
        }
    }

    /// Whether this link may hand frames to an [`InlineSink`] (a queue's
    /// link: in memory, [`endpoint`](super::endpoint); not a stream's).
    pub(crate) fn offers_inline(&self) -> bool {
        matches!(self.inbound, Inbound::Queue(_))
    }

    /// Lets `sink` take frames from the sender's own task while nothing is
    /// queued (in-memory links; see `inbound.rs`); `false` if this link
    /// never offers frames that way (stream links) or a sink is already
    /// installed. The receiver must still [`recv`](Self::recv) as before:
    /// frames the sink does not take are queued.
    pub(crate) fn set_inline(&self, sink: Arc<dyn InlineSink>) -> bool {
        match &self.inbound {
            Inbound::Queue(rx) => rx.set_inline(sink),
            Inbound::Stream(_) => false,
        }
    }

    /// A frame already received, without waiting; `None` if there is none
    /// right now (or the link has ended: [`recv`](Self::recv) tells which).
    pub fn try_recv(&mut self) -> Option<Bytes> {
        match &mut self.inbound {
            Inbound::Queue(rx) => rx.try_recv(),
            Inbound::Stream(stream) => stream.try_recv(),
        }
    }

    /// Sets the byte budget of the inbound queue (default
    /// [`DEFAULT_LINK_QUEUE_BYTES`]): over
    /// it, the overlay stops taking the peer's frames until frames are
    /// received here. A frame is always admitted into an empty queue,
    /// whatever its size. Stream links (TCP, TLS) have no queue: the
    /// receiver reads the stream itself, only while it waits for a frame,
    /// and the budget caps each read.
    pub fn set_max_queued_bytes(&self, max: usize) {
        match &self.inbound {
            Inbound::Queue(rx) => rx.bytes.set_max(max),
            Inbound::Stream(stream) => stream.set_budget(max),
        }
    }

    /// Bytes of frames received by the overlay and not taken by
    /// [`recv`](Self::recv) yet (stream links: bytes read and not yet
    /// returned as frames).
    pub fn queued_bytes(&self) -> usize {
        match &self.inbound {
            Inbound::Queue(rx) => rx.bytes.queued(),
            Inbound::Stream(stream) => stream.buffered(),
        }
    }

    /// Sets the largest frame the peer may send from now on (frames whose
    /// length has not been read yet), clamped to the overlay's
    /// `max_frame_bytes`. A larger frame closes the link. The node uses a
    /// small limit before the handshake and raises it afterwards.
    pub fn set_max_frame_bytes(&self, max_frame_bytes: usize) {
        self.limit.set(max_frame_bytes);
    }

    /// The largest frame the peer may currently send.
    pub fn max_frame_bytes(&self) -> usize {
        self.limit.get()
    }
}

/// The driver's end of a link's outbound queues: what the transport takes
/// frames from, control before data (see [`LinkDriver`](super::LinkDriver)).
#[derive(Debug)]
pub struct LinkOutbox {
    control: mpsc::Receiver<Bytes>,
    data: mpsc::Receiver<Bytes>,
    bytes: Arc<ByteBudget>,
    watch: PhaseWatch,
    control_done: bool,
    data_done: bool,
    closing: bool,
}

pub(crate) type OutQueue = LinkOutbox;

/// What a link's driver should do next ([`LinkOutbox::next`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outgoing {
    /// Send this frame to the peer, after every frame returned before it.
    Frame(Bytes),
    /// The link is closing (or every [`LinkSender`] is gone) and both queues
    /// are empty: nothing more will come. Finish the write side (e.g. a TCP
    /// FIN) so the peer sees the end, and keep delivering the peer's frames
    /// until it ends too.
    Drained,
    /// The link is dead: stop at once, discarding what is unsent.
    Dead,
}

pub(crate) use Outgoing as Next;

impl LinkOutbox {
    /// The next frame to send, control before data.
    ///
    /// # Cancel safety
    /// Cancel safe: no frame is held across an await point.
    pub async fn next(&mut self) -> Outgoing {
        // Fast path while the link is open: a frame is ready, so no waiter
        // needs registering (the phase check below would let it through too).
        if !self.closing
            && self.watch.phase() == Phase::Open
            && let Some(frame) = self.try_next()
        {
            return Next::Frame(frame);
        }
        loop {
            if self.control_done && self.data_done {
                return Next::Drained;
            }
            let target = if self.closing { Phase::Dead } else { Phase::Closing };
            tokio::select! {
                biased;
                () = self.watch.reached(target) => {
                    if target == Phase::Dead {
                        return Next::Dead;
                    }
                    // Refuse new frames but keep what is queued.
                    self.closing = true;
                    self.control.close();
                    self.data.close();
                }
                r = self.control.recv(), if !self.control_done => match r {
                    Some(frame) => return Next::Frame(self.taken(frame)),
                    None => self.control_done = true,
                },
                r = self.data.recv(), if !self.data_done => match r {
                    Some(frame) => return Next::Frame(self.taken(frame)),
                    None => self.data_done = true,
                },
            }
        }
    }

    /// Whether both queues are empty right now (a frame queued before, by
    /// a task this one synchronised with, is seen).
    pub(crate) fn is_empty(&self) -> bool {
        self.control.is_empty() && self.data.is_empty()
    }

    /// A frame that is ready now, control before data, without waiting
    /// (to batch several frames into one write). `None` says nothing about
    /// the link's end: [`next`](Self::next) tells that.
    pub fn try_next(&mut self) -> Option<Bytes> {
        let frame = self.control.try_recv().ok().or_else(|| self.data.try_recv().ok())?;
        Some(self.taken(frame))
    }

    /// Gives a frame's bytes back to the budget as it leaves the queues.
    fn taken(&self, frame: Bytes) -> Bytes {
        self.bytes.give_back(frame.len());
        frame
    }
}

/// Creates the outbound half of a link endpoint.
pub(crate) fn outbound(state: &Arc<LinkState>, queue_frames: usize, max_frame_bytes: usize) -> (LinkSender, OutQueue) {
    let (control_tx, control_rx) = mpsc::channel(queue_frames.max(1));
    let (data_tx, data_rx) = mpsc::channel(queue_frames.max(1));
    let bytes = ByteBudget::new(DEFAULT_LINK_QUEUE_BYTES);
    let tx = LinkSender {
        control: control_tx,
        data: data_tx,
        bytes: Arc::clone(&bytes),
        state: Arc::clone(state),
        max_frame_bytes,
        direct: None,
    };
    let out = OutQueue {
        control: control_rx,
        data: data_rx,
        bytes,
        watch: state.watch(),
        control_done: false,
        data_done: false,
        closing: false,
    };
    (tx, out)
}

/// Creates the inbound half of a link endpoint: the driver's sender, the
/// inbound queue's byte budget (the driver takes a frame's bytes before
/// queueing it) and the receiver.
pub(crate) fn inbound(queue_frames: usize, limit: FrameLimit) -> (InboundTx, Arc<ByteBudget>, LinkReceiver) {
    let (tx, rx) = inbound::channel(queue_frames, DEFAULT_LINK_QUEUE_BYTES);
    let bytes = Arc::clone(&rx.bytes);
    (tx, bytes, LinkReceiver { inbound: Inbound::Queue(rx), limit, kill_on_drop: None })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test(flavor = "current_thread")]
    async fn the_phase_read_moves_only_forwards_with_what_waiters_see() {
        let state = LinkState::new();
        let mut watch = state.watch();
        assert_eq!(state.phase(), Phase::Open);
        state.advance(Phase::Closing);
        assert_eq!(state.phase(), Phase::Closing);
        watch.reached(Phase::Closing).await;
        state.advance(Phase::Open);
        assert_eq!(state.phase(), Phase::Closing, "a phase never moves back");
        state.advance(Phase::Dead);
        assert_eq!((state.phase(), watch.phase()), (Phase::Dead, Phase::Dead));
        watch.reached(Phase::Dead).await;
        state.advance(Phase::Closing);
        assert_eq!(state.phase(), Phase::Dead);
        let skipped = LinkState::new();
        skipped.advance(Phase::Dead);
        assert_eq!(skipped.phase(), Phase::Dead, "a step may be skipped");
    }
}
