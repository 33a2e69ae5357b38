//! [`Link`]: one bidirectional, message-preserving frame link to a peer, as
//! handed out by every overlay.
//!
//! A link has two local halves and one driver behind them:
//!
//! ```text
//!  LinkSender ──(control queue, data queue)──▶ OutQueue ─▶ driver ─▶ peer
//!  LinkReceiver ◀──────(inbound queue)──────── driver ◀─ peer
//! ```
//!
//! The driver is the TCP connection task or the in-memory delivery tasks.
//! A TCP link's sender may also write through (`super::tcp_conn::Direct`,
//! crate-internal `LinkSender::feed` / `LinkSender::flush`): while the
//! driver is idle (nothing queued, no write in progress), frames go to the
//! socket from the sender's own task, sparing the driver's wake-up;
//! otherwise they are queued as above. A frame is queued only with the
//! driver made busy, and the driver turns idle only with both queues empty,
//! both under one lock, so the two paths never reorder frames.
//! All three queues are bounded (the overlay's `link_queue_frames`, by default
//! [`DEFAULT_LINK_QUEUE_FRAMES`](super::DEFAULT_LINK_QUEUE_FRAMES)).
//!
//! Lifecycle, shared by the halves and the driver through a [`LinkState`]:
//! `Open → Closing → Dead`, only forwards. `Closing` (after
//! [`LinkSender::close`], after every `LinkSender` clone is dropped, or when
//! the peer closed its side) refuses new frames, but the frames already
//! accepted are still sent. `Dead` (an I/O or decode error, the
//! `LinkReceiver` dropped, the linger time over) stops everything at once
//! and discards what is queued. When the driver ends, the receiver yields
//! what it already holds and then `None`.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use bytes::Bytes;
use tokio::sync::mpsc;

use crate::signal::Signal;

use super::OverlayError;
use super::tcp_conn::Direct;

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
#[derive(Debug)]
pub struct Link {
    /// Sends frames to the peer.
    pub tx: LinkSender,
    /// Receives the peer's frames, in the order the peer sent them (as far as
    /// the overlay's injected faults allow).
    pub rx: LinkReceiver,
    /// Who is at the other end, for logs: a node name or a socket address.
    pub remote: String,
}

/// Where a link is in its life. Only moves forwards.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub(crate) enum Phase {
    /// Frames flow both ways.
    Open,
    /// No new frames are accepted; frames already queued are still sent.
    Closing,
    /// Everything stops; queued frames are discarded.
    Dead,
}

/// The lifecycle state shared by a link's halves and its driver.
#[derive(Debug)]
pub(crate) struct LinkState {
    phase: Signal<Phase>,
}

impl LinkState {
    pub(crate) fn new() -> Arc<LinkState> {
        Arc::new(LinkState { phase: Signal::new(Phase::Open) })
    }

    pub(crate) fn phase(&self) -> Phase {
        self.phase.get()
    }

    /// Moves to `to` unless the link is already there or further on.
    pub(crate) fn advance(&self, to: Phase) {
        self.phase.update(|p| {
            let moved = *p < to;
            if moved {
                *p = to;
            }
            moved
        });
    }

    pub(crate) fn watch(self: &Arc<Self>) -> PhaseWatch {
        PhaseWatch { state: Arc::clone(self) }
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

/// The sending half of a [`Link`]. Cheap to clone; all clones feed the same
/// two bounded queues, one per [`Priority`].
#[derive(Debug, Clone)]
pub struct LinkSender {
    control: mpsc::Sender<Bytes>,
    data: mpsc::Sender<Bytes>,
    state: Arc<LinkState>,
    max_frame_bytes: usize,
    /// A TCP link's write-through path (see the module docs).
    direct: Option<Arc<Direct>>,
}

impl LinkSender {
    /// Lets this sender (and its clones) write through to a TCP socket.
    pub(crate) fn with_direct(mut self, direct: Arc<Direct>) -> LinkSender {
        self.direct = Some(direct);
        self
    }

    fn try_queue(&self, frame: Bytes, priority: Priority) -> Result<(), OverlayError> {
        self.queue(priority).try_send(frame).map_err(|e| match e {
            mpsc::error::TrySendError::Full(_) => OverlayError::Full,
            mpsc::error::TrySendError::Closed(_) => OverlayError::Closed,
        })
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
    /// [`OverlayError::Full`] if that priority's queue is full,
    /// [`OverlayError::Closed`] if the link is closing or closed,
    /// [`OverlayError::EmptyFrame`] / [`OverlayError::FrameTooLarge`] if the
    /// frame is empty or longer than the overlay's `max_frame_bytes`.
    pub fn try_send(&self, frame: Bytes, priority: Priority) -> Result<(), OverlayError> {
        self.check(&frame)?;
        let Some(direct) = &self.direct else { return self.try_queue(frame, priority) };
        // Queued under the gate, with the driver made busy.
        let mut gate = direct.lock();
        direct.make_busy(&mut gate);
        self.try_queue(frame, priority)
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
        // Fast path: room now (no waiter to register; `check` saw the link open).
        if let Ok(permit) = self.queue(priority).try_reserve() {
            self.send_reserved(permit, frame);
            return Ok(());
        }
        let mut watch = self.state.watch();
        let permit = tokio::select! {
            biased;
            () = watch.reached(Phase::Closing) => return Err(OverlayError::Closed),
            r = self.queue(priority).reserve() => r.map_err(|_| OverlayError::Closed)?,
        };
        self.send_reserved(permit, frame);
        Ok(())
    }

    fn send_reserved(&self, permit: mpsc::Permit<'_, Bytes>, frame: Bytes) {
        // Queued under the gate, with the driver made busy (so no frame
        // written through can overtake it).
        let _gate = self.direct.as_ref().map(|direct| {
            let mut gate = direct.lock();
            direct.make_busy(&mut gate);
            gate
        });
        permit.send(frame);
    }

    /// As [`send`](Self::send), but on a TCP link whose driver is idle the
    /// frame is written through from this task instead of queued: it joins
    /// the frames fed before it in one buffer, written once that buffer is
    /// full or at [`flush`](Self::flush). The caller must call `flush`
    /// before it waits for anything: fed frames sit in the buffer until then.
    pub(crate) async fn feed(&self, frame: Bytes, priority: Priority) -> Result<(), OverlayError> {
        let Some(direct) = &self.direct else { return self.send(frame, priority).await };
        self.check(&frame)?;
        let full = {
            let mut gate = direct.lock();
            match direct.feed(&mut gate, frame) {
                Ok(()) => return Ok(()),
                // Busy: queued under the gate, so the driver cannot turn idle meanwhile.
                Err(frame) => match self.queue(priority).try_send(frame) {
                    Ok(()) => return Ok(()),
                    Err(mpsc::error::TrySendError::Closed(_)) => return Err(OverlayError::Closed),
                    Err(mpsc::error::TrySendError::Full(frame)) => frame,
                },
            }
        };
        self.send(full, priority).await
    }

    /// Writes the frames [`feed`](Self::feed) buffered, handing what the
    /// socket does not take to the driver. No-op on other links.
    pub(crate) fn flush(&self) {
        if let Some(direct) = &self.direct {
            direct.flush(&mut direct.lock());
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
    rx: mpsc::Receiver<Bytes>,
    limit: FrameLimit,
}

impl LinkReceiver {
    /// The next frame from the peer; `None` once the link has closed and
    /// every frame received before has been returned.
    ///
    /// # Cancel safety
    /// Cancel safe: a frame is never lost by dropping the future.
    pub async fn recv(&mut self) -> Option<Bytes> {
        self.rx.recv().await
    }

    /// A frame already received, without waiting; `None` if there is none
    /// right now (or the link has ended: [`recv`](Self::recv) tells which).
    pub(crate) fn try_recv(&mut self) -> Option<Bytes> {
        self.rx.try_recv().ok()
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

/// The driver's end of a link's outbound queues.
#[derive(Debug)]
pub(crate) struct OutQueue {
    control: mpsc::Receiver<Bytes>,
    data: mpsc::Receiver<Bytes>,
    watch: PhaseWatch,
    control_done: bool,
    data_done: bool,
    closing: bool,
}

/// What the driver should do next.
#[derive(Debug)]
pub(crate) enum Next {
    /// Send this frame.
    Frame(Bytes),
    /// The link is closing (or every sender is gone) and both queues are
    /// empty: nothing more will come.
    Drained,
    /// The link is dead: stop at once.
    Dead,
}

impl OutQueue {
    /// The next frame to send, control before data.
    ///
    /// # Cancel safety
    /// Cancel safe: no frame is held across an await point.
    pub(crate) async fn next(&mut self) -> Next {
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
                    Some(frame) => return Next::Frame(frame),
                    None => self.control_done = true,
                },
                r = self.data.recv(), if !self.data_done => match r {
                    Some(frame) => return Next::Frame(frame),
                    None => self.data_done = true,
                },
            }
        }
    }

    /// A frame that is ready now, control before data, without waiting.
    pub(crate) fn try_next(&mut self) -> Option<Bytes> {
        self.control.try_recv().ok().or_else(|| self.data.try_recv().ok())
    }
}

/// Creates the outbound half of a link endpoint.
pub(crate) fn outbound(state: &Arc<LinkState>, queue_frames: usize, max_frame_bytes: usize) -> (LinkSender, OutQueue) {
    let (control_tx, control_rx) = mpsc::channel(queue_frames.max(1));
    let (data_tx, data_rx) = mpsc::channel(queue_frames.max(1));
    let tx = LinkSender { control: control_tx, data: data_tx, state: Arc::clone(state), max_frame_bytes, direct: None };
    let out = OutQueue {
        control: control_rx,
        data: data_rx,
        watch: state.watch(),
        control_done: false,
        data_done: false,
        closing: false,
    };
    (tx, out)
}

/// Creates the inbound half of a link endpoint.
pub(crate) fn inbound(queue_frames: usize, limit: FrameLimit) -> (mpsc::Sender<Bytes>, LinkReceiver) {
    let (tx, rx) = mpsc::channel(queue_frames.max(1));
    (tx, LinkReceiver { rx, limit })
}
