//! A link's inbound queue (in-memory links and [`endpoint`](super::endpoint)
//! links): Tokio's unbounded channel, bounded by two [`ByteBudget`]s, one
//! counting frames (`queue_frames`) and one counting bytes.
//!
//! Tokio's bounded channel took a lock on every frame received (to give its
//! slot back to the channel's semaphore); the frame budget gives a slot back
//! with one atomic subtract. The bounds are the same: a producer holds a
//! frame slot ([`FrameSlot`]) and the frame's bytes before the frame is
//! queued, and the receiver gives both back as it takes the frame out.
//! A frame is always admitted into an empty queue, whatever its size (the
//! byte budget's rule); a queue of `queue_frames` frames admits no more.
//!
//! The receiver may install an [`InlineSink`]: a producer that finds the
//! queue empty offers a frame to it first (in-memory links' write-through,
//! `memory_direct.rs`), so the receiver can handle it from the producer's
//! task instead of being woken for it.

use std::sync::{Arc, OnceLock};

use bytes::Bytes;
use tokio::sync::mpsc;

use super::budget::ByteBudget;

/// Why a frame slot was not taken at once.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum NoSlot {
    /// `queue_frames` frames are queued.
    Full,
    /// The receiver was dropped.
    Closed,
}

/// A receiver that can take a frame from a producer's own task, handled
/// in order before any frame queued after it.
pub(crate) trait InlineSink: Send + Sync + std::fmt::Debug {
    /// Takes `frame` if the receiver can handle it from this task now
    /// (nothing of its own in hand), calling `taken` with it first; gives
    /// it back otherwise, to be queued. Called only with the queue empty,
    /// under the producers' lock.
    fn try_take(&self, frame: Bytes, taken: &mut dyn FnMut(&Bytes)) -> Result<(), Bytes>;
}

/// Where the receiver's [`InlineSink`] is, once installed.
type InlineSlot = Arc<OnceLock<Arc<dyn InlineSink>>>;

/// The producers' end (cloned by each producer of the link).
#[derive(Debug, Clone)]
pub(crate) struct InboundTx {
    tx: mpsc::UnboundedSender<Bytes>,
    frames: Arc<ByteBudget>,
    inline: InlineSlot,
}

/// The receiver's end.
#[derive(Debug)]
pub(crate) struct InboundRx {
    rx: mpsc::UnboundedReceiver<Bytes>,
    frames: Arc<ByteBudget>,
    /// The queue's byte budget: the producers take a frame's bytes from it.
    pub(crate) bytes: Arc<ByteBudget>,
    inline: InlineSlot,
}

/// One frame's slot in the queue, taken by a producer; given back if
/// dropped unused.
#[derive(Debug)]
#[must_use = "a slot is given back when dropped"]
pub(crate) struct FrameSlot<'a> {
    tx: &'a InboundTx,
    used: bool,
}

/// A queue of at most `queue_frames` frames (at least 1) and
/// `max_bytes` bytes.
pub(crate) fn channel(queue_frames: usize, max_bytes: usize) -> (InboundTx, InboundRx) {
    let (tx, rx) = mpsc::unbounded_channel();
    let frames = ByteBudget::new(queue_frames.max(1));
    let bytes = ByteBudget::new(max_bytes);
    let inline = InlineSlot::default();
    (
        InboundTx { tx, frames: Arc::clone(&frames), inline: Arc::clone(&inline) },
        InboundRx { rx, frames, bytes, inline },
    )
}

impl InboundTx {
    /// Offers `frame` to the receiver's [`InlineSink`] if it has one and
    /// nothing is queued (`taken` is called with it if taken); gives it
    /// back otherwise. The caller holds the producers' lock, so no frame
    /// can be queued meanwhile.
    pub(crate) fn try_inline(&self, frame: Bytes, taken: &mut dyn FnMut(&Bytes)) -> Result<(), Bytes> {
        match self.inline.get() {
            Some(sink) if (self.frames.queued() == 0 || mutant!(InlineOverQueued)) && !self.tx.is_closed() => {
                sink.try_take(frame, taken)
            }
            _ => Err(frame),
        }
    }

    /// A frame slot now, if there is room and a receiver.
    pub(crate) fn try_reserve(&self) -> Result<FrameSlot<'_>, NoSlot> {
        if self.tx.is_closed() {
            return Err(NoSlot::Closed);
        }
        if !self.frames.try_take(1) {
            return Err(NoSlot::Full);
        }
        Ok(FrameSlot { tx: self, used: false })
    }

    /// A frame slot, waiting for room; `Err` once the receiver is dropped.
    ///
    /// # Cancel safety
    /// Cancel safe: no slot is taken unless it completes.
    pub(crate) async fn reserve(&self) -> Result<FrameSlot<'_>, NoSlot> {
        tokio::select! {
            biased;
            () = self.tx.closed() => Err(NoSlot::Closed),
            () = self.frames.take(1) => Ok(FrameSlot { tx: self, used: false }),
        }
    }

    /// Completes once the receiver is dropped.
    ///
    /// # Cancel safety
    /// Cancel safe.
    pub(crate) async fn closed(&self) {
        self.tx.closed().await;
    }
}

impl FrameSlot<'_> {
    /// Queues `frame` in this slot (its bytes already taken). A frame sent
    /// after the receiver was dropped is dropped with its slot.
    pub(crate) fn send(mut self, frame: Bytes) {
        if self.tx.tx.send(frame).is_ok() {
            self.used = true;
        }
    }
}

impl Drop for FrameSlot<'_> {
    fn drop(&mut self) {
        if !self.used {
            self.tx.frames.give_back(1);
        }
    }
}

impl InboundRx {
    /// Installs the receiver's [`InlineSink`]; `false` if one already was.
    pub(crate) fn set_inline(&self, sink: Arc<dyn InlineSink>) -> bool {
        self.inline.set(sink).is_ok()
    }

    /// The next frame; `None` once every producer is gone and the queue is empty.
    ///
    /// # Cancel safety
    /// Cancel safe.
    pub(crate) async fn recv(&mut self) -> Option<Bytes> {
        let frame = self.rx.recv().await?;
        self.taken(&frame);
        Some(frame)
    }

    /// A frame queued now, if any.
    pub(crate) fn try_recv(&mut self) -> Option<Bytes> {
        let frame = self.rx.try_recv().ok()?;
        self.taken(&frame);
        Some(frame)
    }

    fn taken(&self, frame: &Bytes) {
        self.bytes.give_back(frame.len());
        self.frames.give_back(1);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// What a producer does: a slot, then the bytes, then the frame.
    fn put(tx: &InboundTx, rx: &InboundRx, frame: &'static [u8]) -> Result<(), NoSlot> {
        let slot = tx.try_reserve()?;
        if !rx.bytes.try_take(frame.len()) {
            return Err(NoSlot::Full);
        }
        slot.send(Bytes::from_static(frame));
        Ok(())
    }

    #[test]
    fn a_queue_holds_at_most_its_frames_and_frees_a_slot_per_frame_taken() {
        let (tx, mut rx) = channel(2, 1 << 20);
        assert_eq!(put(&tx, &rx, b"a"), Ok(()));
        assert_eq!(put(&tx, &rx, b"b"), Ok(()));
        assert_eq!(tx.try_reserve().err(), Some(NoSlot::Full));
        assert_eq!(rx.try_recv().as_deref(), Some(&b"a"[..]));
        assert_eq!(put(&tx, &rx, b"c"), Ok(()));
        assert_eq!(rx.try_recv().as_deref(), Some(&b"b"[..]));
        assert_eq!(rx.try_recv().as_deref(), Some(&b"c"[..]));
        assert_eq!(rx.try_recv(), None);
        assert_eq!(rx.bytes.queued(), 0, "every frame's bytes given back");
    }

    #[test]
    fn an_unused_slot_is_given_back() {
        let (tx, _rx) = channel(1, 1 << 20);
        drop(tx.try_reserve().expect("room"));
        drop(tx.try_reserve().expect("the slot came back"));
    }

    #[tokio::test]
    async fn a_waiting_producer_gets_the_slot_the_receiver_frees_and_a_dropped_receiver_ends_it() {
        let (tx, mut rx) = channel(1, 1 << 20);
        put(&tx, &rx, b"a").expect("room");
        let waiting = {
            let (tx, bytes) = (tx.clone(), Arc::clone(&rx.bytes));
            tokio::spawn(async move {
                let slot = tx.reserve().await.expect("a slot once one is free");
                assert!(bytes.try_take(1));
                slot.send(Bytes::from_static(b"b"));
            })
        };
        tokio::task::yield_now().await;
        assert_eq!(rx.recv().await.as_deref(), Some(&b"a"[..]));
        waiting.await.expect("the producer ends");
        assert_eq!(rx.try_recv().as_deref(), Some(&b"b"[..]));
        put(&tx, &rx, b"c").expect("room");
        let blocked = tokio::spawn(async move { tx.reserve().await.map(drop) });
        tokio::task::yield_now().await;
        drop(rx);
        assert_eq!(blocked.await.expect("ends"), Err(NoSlot::Closed));
    }
}
