//! [`ConnShared`]: what the reader, the writer and the senders of one
//! authenticated connection share, and the connection's one write path.
//!
//! Sealing numbers frames and the peer opens them strictly in that order,
//! so a frame is sealed and handed to the link in one step, under one
//! short lock (`Core`, which owns the [`Sealer`] and the write mode). The
//! writer task takes that lock for each frame it takes from its queues.
//! While it is idle, a sender holding a frame (a request, a tell) takes
//! the lock itself and writes its frame from its own task: for a lone ask
//! that spares the hand-off to the writer task, one task wake-up (and, on a
//! multi-thread runtime, often one cross-thread unpark) per request; for a
//! stream of tells, one hand-off per tell (they are queued on the link, and
//! its connection task batches them).
//!
//! A sender writes directly only if all of these hold, checked under the
//! lock; otherwise it queues its frame for the writer as before:
//! - the lock is free at once (under contention the writer batches);
//! - no frame waits in the writer's data queue (`queued`, counted from
//!   before a frame is queued until the writer has sealed it): one
//!   sender's frames keep their order, and a direct frame never overtakes
//!   a frame queued before it;
//! - the path is not `busy` (the writer waiting for room to hand over a
//!   frame it has sealed) nor `closed` (the `Goodbye` was sealed, the
//!   sequence numbers ran out, or the writer ended);
//! - the link has room for the sealed frame now, so a frame once sealed is
//!   never dropped: frames reach the link only through this path, under
//!   this same lock, and only the link's consumer frees room.
//!
//! Completed replies to the peer's asks take the same path from the task
//! that completes them (the activation's, as it answers): the reply's
//! waker writes it if the path and the replies' lock are free at once
//! ([`WriteReady`]), else puts it back, first in line, for the writer.
//! Nothing blocks in a waker: both locks are only tried.
//!
//! Frames keep the order they were sealed in: the link never reorders frames
//! of one priority, whether written through or queued (`overlay/link.rs`).

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Weak};

use parking_lot::Mutex;
use tokio::sync::mpsc;

use super::inline_scope::Scope as InlineScope;
use super::outbound::{OutKind, Outbound};
use super::replies::{Replies, WriteReady};
use super::tell_batch::{TellBatch, TellTarget};
use crate::overlay::{LinkSender, OverlayError, Priority};
use crate::session::Sealer;
use crate::wire::{CodecError, OutFrame, OutPayload, SEALED_OVERHEAD};

/// Frames in a row the writer must see sent with no other exchange in
/// flight before it writes through (latency mode) instead of letting the
/// link's connection task batch (throughput mode).
pub(super) const CALM_FRAMES: u32 = 8;

/// What the reader, the writer and the senders of one connection share.
pub(crate) struct ConnShared {
    /// The peer's asks executing here, polled as they complete.
    pub(super) replies: Mutex<Replies>,
    /// Our requests sent on this connection and not answered yet (as far
    /// as the reader has seen; only a hint for the write mode).
    pub(super) outstanding: AtomicUsize,
    /// The peer's requests received and not answered yet (likewise a hint).
    pub(super) owed_to_peer: AtomicUsize,
    /// Frames in the writer's data queue, or taken and not sealed yet.
    queued: AtomicUsize,
    core: Mutex<Core>,
    /// The batch of tells at the tail of the writer's data queue, while it
    /// may still grow (`node/tell_batch.rs`). Every item queued for the
    /// writer is queued under this lock, and ends the batch's growth.
    tail: Mutex<Option<Arc<TellBatch>>>,
    tx: LinkSender,
    /// See [`take_lost_replies`](Self::take_lost_replies).
    lost_replies: AtomicUsize,
}

impl std::fmt::Debug for ConnShared {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ConnShared").field("queued", &self.queued.load(Ordering::Relaxed)).finish_non_exhaustive()
    }
}

/// The sealer and the write mode, behind the path's lock.
struct Core {
    sealer: Sealer,
    mode: WriteMode,
    /// The writer waits for room to hand over a frame it sealed: nobody
    /// else may seal meanwhile.
    busy: bool,
    /// Nothing more is written directly.
    closed: bool,
}

/// What became of a frame offered to [`ConnShared::try_direct`].
#[derive(Debug)]
pub(crate) enum Direct {
    /// Sealed and handed to the link.
    Sent,
    /// Not sent, and the connection cannot send it (it is closed or ends).
    Lost,
    /// The path is not free: queue it for the writer.
    Queue(Outbound),
}

/// What became of a frame the writer wrote.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Written {
    /// Handed to the link; `through`: fed to its write-through path, so
    /// the writer flushes it before it waits.
    Sent { through: bool },
    /// The connection takes no more frames.
    Ended,
}

impl ConnShared {
    /// The shared state of a connection sealing with `sealer` onto `tx`;
    /// its completed replies are written by the tasks that complete them
    /// while the path is free ([`WriteReady`]).
    pub(super) fn new(replies: Replies, sealer: Sealer, tx: LinkSender) -> Arc<ConnShared> {
        let shared = Arc::new(ConnShared {
            replies: Mutex::new(replies),
            outstanding: AtomicUsize::new(0),
            owed_to_peer: AtomicUsize::new(0),
            queued: AtomicUsize::new(0),
            core: Mutex::new(Core { sealer, mode: WriteMode::default(), busy: false, closed: false }),
            tail: Mutex::new(None),
            tx,
            lost_replies: AtomicUsize::new(0),
        });
        let weak: Weak<dyn WriteReady> = Arc::downgrade(&shared) as Weak<dyn WriteReady>;
        shared.replies.lock().write_directly(weak);
        shared
    }

    /// Whether sending a frame now is a lone exchange: at most one request
    /// in flight our way (counting `unsent` more of ours about to be sent),
    /// no request of the peer's unanswered or executing here. Decides the
    /// write mode.
    pub(super) fn lone(&self, unsent: usize) -> bool {
        self.outstanding.load(Ordering::Relaxed) + unsent <= 1
            && self.owed_to_peer.load(Ordering::Relaxed) == 0
            && self.replies.lock().is_empty()
    }

    /// Writes `out` from the caller's task if the path is free now (see the
    /// module docs); gives it back, to be queued for the writer, otherwise.
    /// A request or a response is written through in latency mode; a plain
    /// tell is always queued on the link, for its connection task to batch.
    pub(crate) fn try_direct(&self, out: Outbound) -> Direct {
        // Left last, after the path's lock: a reader that took the frame
        // inline handles it then (`established/inline.rs`).
        let _inline = InlineScope::enter();
        if self.queued.load(Ordering::SeqCst) != 0 {
            return Direct::Queue(out);
        }
        let lone = match out.kind {
            OutKind::Request(_) => self.lone(1),
            OutKind::Response => self.lone(0),
            // Not written through (see `try_direct_as`): no mode to decide.
            OutKind::Other => false,
        };
        self.try_direct_as(out, lone)
    }

    /// [`try_direct`](Self::try_direct), the write mode decided by `lone`.
    fn try_direct_as(&self, out: Outbound, lone: bool) -> Direct {
        let Some(mut core) = self.core.try_lock() else { return Direct::Queue(out) };
        let sealed_len = out.frame.envelope_bytes().len() + SEALED_OVERHEAD;
        if core.busy
            || core.closed
            || self.queued.load(Ordering::SeqCst) != 0
            || !self.tx.has_room(sealed_len, Priority::Data)
        {
            return Direct::Queue(out);
        }
        // A plain tell is queued on the link, whose connection task batches
        // a stream of them (a flush per tell would cost a write per tell),
        // and leaves the write mode as it is.
        let through = out.kind != OutKind::Other && core.mode.frame(lone);
        let Ok(body) = core.sealer.seal_frame(out.frame) else {
            tracing::debug!("sequence numbers exhausted; closing");
            core.closed = true;
            self.tx.close();
            return Direct::Lost;
        };
        let sent =
            if through { self.tx.try_feed(body, Priority::Data) } else { self.tx.try_send(body, Priority::Data) };
        match sent {
            Ok(()) => {
                match out.kind {
                    OutKind::Request(_) => {
                        self.outstanding.fetch_add(1, Ordering::Relaxed);
                    }
                    OutKind::Response => saturating_decrement(&self.owed_to_peer),
                    OutKind::Other => {}
                }
                if through {
                    self.tx.flush();
                }
                Direct::Sent
            }
            Err(e) => {
                // Closed, or (not expected: `has_room` held under the lock)
                // no room: either way the sealed frame is gone, and a frame
                // sealed after it would leave a gap the peer refuses.
                if e != OverlayError::Closed {
                    tracing::debug!(error = %e, "a sealed frame found no room; closing");
                    self.tx.close();
                }
                core.closed = true;
                Direct::Lost
            }
        }
    }

    /// Queues `out` for the writer without waiting.
    pub(crate) fn try_queue(
        &self,
        data: &mpsc::Sender<Outbound>,
        out: Outbound,
    ) -> Result<(), mpsc::error::TrySendError<Outbound>> {
        let mut tail = self.tail.lock();
        *tail = None;
        self.queued.fetch_add(1, Ordering::SeqCst);
        data.try_send(out).inspect_err(|_| self.unqueue())
    }

    /// An unacknowledged tell for `target` (see `node/tell_batch.rs`):
    /// appended to the batch at the tail of the writer's queue, or queued
    /// in a new batch if the connection is behind. `false` if neither: the
    /// caller sends it as a frame of its own (also when the writer's queue
    /// is full or closed, so that the frame path waits or reports it).
    ///
    /// # Errors
    /// [`CodecError::Postcard`] if the payload cannot be encoded.
    pub(crate) fn try_batch<P: OutPayload>(
        &self,
        data: &mpsc::Sender<Outbound>,
        target: TellTarget<'_>,
        payload: &P,
        max_envelope: usize,
    ) -> Result<bool, CodecError> {
        let mut tail = self.tail.lock();
        if let Some(batch) = tail.as_ref()
            && batch.is_for(target)
            && batch.try_push(payload, max_envelope)?
        {
            return Ok(true);
        }
        if !self.is_behind() {
            return Ok(false);
        }
        let Some(batch) = TellBatch::new(target, payload, max_envelope)? else { return Ok(false) };
        let batch = Arc::new(batch);
        self.queued.fetch_add(1, Ordering::SeqCst);
        match data.try_send(Outbound::tells(Arc::clone(&batch))) {
            Ok(()) => {
                *tail = Some(batch);
                Ok(true)
            }
            Err(_) => {
                self.unqueue();
                *tail = None;
                Ok(false)
            }
        }
    }

    /// Whether a frame sent now would wait: frames wait for the writer or
    /// for the transport, or the write path is held.
    fn is_behind(&self) -> bool {
        self.queued.load(Ordering::SeqCst) != 0 || self.tx.is_behind(Priority::Data) || self.core.is_locked()
    }

    /// The writer takes `batch` from its queue: it grows no more.
    pub(super) fn end_batch(&self, batch: &Arc<TellBatch>) {
        let mut tail = self.tail.lock();
        if tail.as_ref().is_some_and(|t| Arc::ptr_eq(t, batch)) {
            *tail = None;
        }
    }

    /// Queues `out` for the writer, waiting for room.
    ///
    /// # Cancel safety
    /// If dropped before it completes, `out` was not queued.
    pub(crate) async fn queue(
        &self,
        data: &mpsc::Sender<Outbound>,
        out: Outbound,
    ) -> Result<(), mpsc::error::SendError<Outbound>> {
        struct Counted<'a>(&'a ConnShared);
        impl Drop for Counted<'_> {
            fn drop(&mut self) {
                self.0.unqueue();
            }
        }
        // Anything queued after a batch ends its growth (see `try_queue`).
        *self.tail.lock() = None;
        self.queued.fetch_add(1, Ordering::SeqCst);
        let counted = Counted(self);
        data.send(out).await?;
        // Queued: the writer counts it out once sealed.
        std::mem::forget(counted);
        Ok(())
    }

    pub(super) fn unqueue(&self) {
        saturating_decrement(&self.queued);
    }

    /// Replies written directly but lost with their connection, since the
    /// last call (the writer counts them when it ends).
    pub(super) fn take_lost_replies(&self) -> usize {
        self.lost_replies.swap(0, Ordering::Relaxed)
    }

    /// The writer's write of `frame` (`from_queue`: taken from its data
    /// queue), its mode decided by `lone`.
    pub(super) async fn write(&self, frame: OutFrame, lone: bool, from_queue: bool) -> Written {
        let waiting = {
            let mut core = self.core.lock();
            let through = core.mode.frame(lone);
            let sealed = core.sealer.seal_frame(frame);
            if from_queue {
                self.unqueue();
            }
            let Ok(body) = sealed else {
                tracing::debug!("sequence numbers exhausted; closing");
                core.closed = true;
                return Written::Ended;
            };
            if self.tx.has_room(body.len(), Priority::Data) {
                let sent = if through {
                    self.tx.try_feed(body, Priority::Data)
                } else {
                    self.tx.try_send(body, Priority::Data)
                };
                return match sent {
                    Ok(()) => Written::Sent { through },
                    Err(_) => Written::Ended,
                };
            }
            // No room: wait for it outside the lock, with the path busy.
            core.busy = true;
            (body, through)
        };
        let (body, through) = waiting;
        let sent =
            if through { self.tx.feed(body, Priority::Data).await } else { self.tx.send(body, Priority::Data).await };
        self.core.lock().busy = false;
        match sent {
            Ok(()) => Written::Sent { through },
            Err(_) => Written::Ended,
        }
    }

    /// Nothing more is written directly (the writer sealed the `Goodbye`
    /// or ends).
    pub(super) fn close_direct(&self) {
        self.core.lock().closed = true;
        // A batch still queued grows no more: what it holds is what the
        // writer sends, or counts as lost.
        *self.tail.lock() = None;
    }
}

impl WriteReady for ConnShared {
    /// Writes the completed replies from the completing task (the
    /// activation's, typically) while the path is free: the hand-off to
    /// the writer task is spared. What cannot be written now is put back
    /// for the writer, in order.
    fn write_ready(&self) -> bool {
        if self.queued.load(Ordering::SeqCst) != 0 {
            return false;
        }
        // Left last, after the replies' and the path's locks (as in `try_direct`).
        let _inline = InlineScope::enter();
        let Some(mut replies) = self.replies.try_lock() else { return false };
        while let Some((out, permit)) = replies.take_done() {
            // This response counts in `owed_to_peer` until it is sent.
            let lone = self.outstanding.load(Ordering::Relaxed) <= 1
                && self.owed_to_peer.load(Ordering::Relaxed) <= 1
                && replies.is_empty();
            match self.try_direct_as(out, lone) {
                Direct::Sent => drop(permit),
                Direct::Lost => {
                    self.lost_replies.fetch_add(1, Ordering::Relaxed);
                    return false;
                }
                Direct::Queue(out) => {
                    replies.put_back((out, permit));
                    return false;
                }
            }
        }
        true
    }
}

/// Decrements a hint counter, never below zero.
pub(super) fn saturating_decrement(n: &AtomicUsize) {
    let _ = n.fetch_update(Ordering::Relaxed, Ordering::Relaxed, |v| v.checked_sub(1));
}

/// The write mode, decided per frame: lone exchanges for the last
/// [`CALM_FRAMES`] frames in a row are latency-bound, so their frames are
/// written through from the writing task; otherwise (a pipeline, a flood)
/// frames are queued and the link's connection task batches them
/// (throughput-bound).
#[derive(Debug, Default, Clone, Copy)]
pub(super) struct WriteMode {
    /// Lone exchanges in a row.
    calm: u32,
}

impl WriteMode {
    /// Notes a frame about to be sent (`lone`: see [`ConnShared::lone`]);
    /// returns whether to write it through.
    #[inline]
    pub(super) fn frame(&mut self, lone: bool) -> bool {
        self.calm = if lone { self.calm.saturating_add(1) } else { 0 };
        self.calm >= CALM_FRAMES
    }
}

#[cfg(test)]
mod tests {
    use std::future::poll_fn;

    use tokio::sync::{Semaphore, oneshot};

    use super::*;
    use crate::overlay::{LinkConfig, LinkDriver, LinkReceiver, LinkSource, endpoint};
    use crate::session::{FRAME_KEY_LEN, FrameKey, Opener};
    use crate::wire::{ControlMsg, DataMsg, Envelope, decode_envelope};

    impl ConnShared {
        /// A connection's shared state over a link nobody reads (unit tests).
        pub(crate) fn detached() -> Arc<ConnShared> {
            let (shared, far) = path(4);
            // Nobody reads this link; its far side lives as long as the test.
            std::mem::forget(far);
            shared
        }
    }

    fn key() -> FrameKey {
        FrameKey::from_bytes([7; FRAME_KEY_LEN])
    }

    /// The far side of a test link: its driver (the outbox holds what was
    /// written) and the link's receiver (dropping it would kill the link).
    struct Far {
        driver: LinkDriver,
        _rx: LinkReceiver,
    }

    /// A connection's shared state over a link of `queue_frames` frames per
    /// queue.
    fn path(queue_frames: usize) -> (Arc<ConnShared>, Far) {
        let config = LinkConfig { queue_frames, ..LinkConfig::new(1 << 16) };
        let (link, driver) = endpoint(config, "peer", LinkSource::Unknown);
        let shared = ConnShared::new(Replies::new(1 << 16), Sealer::new(key()), link.tx);
        (shared, Far { driver, _rx: link.rx })
    }

    /// Request `n`: a frame told apart by its content.
    fn request(n: u64) -> Outbound {
        let frame = OutFrame::envelope(&Envelope::Control(ControlMsg::Heartbeat { sent_at_ms: n }));
        Outbound::new(frame.expect("encodes"), OutKind::Request(n))
    }

    /// The envelopes written so far, opened in order as the peer would.
    fn written(far: &mut Far, opener: &mut Opener) -> Vec<Envelope> {
        std::iter::from_fn(|| far.driver.outbox.try_next())
            .map(|body| {
                let payload = opener.open(&body).expect("sealed in sequence");
                decode_envelope(payload).expect("an envelope")
            })
            .collect()
    }

    fn heartbeats(envelopes: &[Envelope]) -> Vec<u64> {
        envelopes
            .iter()
            .map(|e| match e {
                Envelope::Control(ControlMsg::Heartbeat { sent_at_ms }) => *sent_at_ms,
                other => panic!("not a test request: {other:?}"),
            })
            .collect()
    }

    #[tokio::test]
    async fn a_free_path_is_taken_directly_and_frames_keep_the_order_sealed() {
        let (shared, mut far) = path(16);
        let mut opener = Opener::new(key());
        assert!(matches!(shared.try_direct(request(1)), Direct::Sent));
        let writer = shared.write(request(2).frame, true, false).await;
        assert_eq!(writer, Written::Sent { through: false });
        assert!(matches!(shared.try_direct(request(3)), Direct::Sent));
        assert_eq!(heartbeats(&written(&mut far, &mut opener)), [1, 2, 3]);
        assert_eq!(shared.outstanding.load(Ordering::Relaxed), 2, "the two requests written directly");
    }

    #[tokio::test]
    async fn a_plain_tell_is_written_directly_and_leaves_the_write_mode_as_it_is() {
        let (shared, mut far) = path(16);
        let mut opener = Opener::new(key());
        shared.core.lock().mode = WriteMode { calm: CALM_FRAMES };
        let tell = Outbound { kind: OutKind::Other, ..request(1) };
        assert!(matches!(shared.try_direct(tell), Direct::Sent));
        assert_eq!(shared.core.lock().mode.calm, CALM_FRAMES, "a tell is no exchange");
        assert_eq!(shared.outstanding.load(Ordering::Relaxed), 0, "nor a request in flight");
        assert!(matches!(shared.try_direct(request(2)), Direct::Sent));
        assert_eq!(shared.core.lock().mode.calm, CALM_FRAMES + 1);
        assert_eq!(heartbeats(&written(&mut far, &mut opener)), [1, 2]);
    }

    #[tokio::test]
    async fn a_frame_waiting_for_the_writer_keeps_later_frames_off_the_direct_path() {
        let (shared, mut far) = path(16);
        let mut opener = Opener::new(key());
        let (data, mut queue) = mpsc::channel(4);
        shared.try_queue(&data, request(1)).expect("room");
        let Direct::Queue(second) = shared.try_direct(request(2)) else {
            panic!("overtook a frame queued before it");
        };
        // The writer takes the first one: the path is free again.
        let first = queue.try_recv().expect("queued");
        assert_eq!(shared.write(first.frame, false, true).await, Written::Sent { through: false });
        assert!(matches!(shared.try_direct(second), Direct::Sent));
        assert_eq!(heartbeats(&written(&mut far, &mut opener)), [1, 2]);
    }

    #[tokio::test]
    async fn without_room_on_the_link_nothing_is_sealed() {
        let (shared, mut far) = path(1);
        let mut opener = Opener::new(key());
        shared.tx.try_send(bytes::Bytes::from_static(b"filler"), Priority::Data).expect("room for one");
        let Direct::Queue(out) = shared.try_direct(request(1)) else { panic!("no room, yet written") };
        assert_eq!(far.driver.outbox.try_next().as_deref(), Some(&b"filler"[..]));
        // Sealed with sequence number 0 (else the opener refuses it).
        assert!(matches!(shared.try_direct(out), Direct::Sent));
        assert_eq!(heartbeats(&written(&mut far, &mut opener)), [1]);
    }

    #[tokio::test]
    async fn a_closed_path_or_link_is_not_taken_directly() {
        let (shared, mut far) = path(16);
        shared.close_direct();
        assert!(matches!(shared.try_direct(request(1)), Direct::Queue(_)));
        let (shared, _far) = path(16);
        shared.tx.close();
        assert!(matches!(shared.try_direct(request(1)), Direct::Queue(_)));
        assert!(far.driver.outbox.try_next().is_none());
    }

    fn reply(request_id: u64, rx: oneshot::Receiver<Vec<u8>>) -> impl crate::node::replies::ReplyFuture {
        crate::hosted::EncodedReply::new(request_id, crate::hosted::PendingReply::new(rx, |v| v))
    }

    /// Whether `envelope` is the reply to `id` carrying `value` (a `Vec<u8>`,
    /// postcard-encoded as the contract's reply).
    fn is_reply(envelope: &Envelope, id: u64, value: &[u8]) -> bool {
        let bytes = postcard::to_allocvec(&value.to_vec()).expect("encodes");
        matches!(envelope, Envelope::Data(DataMsg::Reply { request_id, payload }) if *request_id == id && *payload == bytes)
    }

    /// A peer's ask `id` executing here, as the reader records it: its
    /// reply pending in `shared`'s replies, holding the one permit of the
    /// returned semaphore. Completing the returned sender completes it.
    fn executing_ask(shared: &ConnShared, id: u64) -> (oneshot::Sender<Vec<u8>>, Arc<Semaphore>) {
        let permits = Arc::new(Semaphore::new(1));
        let (tx, rx) = oneshot::channel();
        let permit = Arc::clone(&permits).try_acquire_owned().expect("permit");
        shared.owed_to_peer.fetch_add(1, Ordering::Relaxed);
        shared.replies.lock().insert(id, reply(id, rx), permit);
        (tx, permits)
    }

    #[tokio::test]
    async fn a_completed_reply_is_written_by_the_task_that_completes_it() {
        let (shared, mut far) = path(16);
        let mut opener = Opener::new(key());
        let (tx, permits) = executing_ask(&shared, 7);
        assert!(far.driver.outbox.try_next().is_none(), "not complete yet");
        tx.send(vec![1, 2]).expect("send");
        let sent = written(&mut far, &mut opener);
        assert!(sent.len() == 1 && is_reply(&sent[0], 7, &[1, 2]), "{sent:?}");
        assert!(shared.replies.lock().is_empty());
        assert_eq!(permits.available_permits(), 1, "its permit is released");
        assert_eq!(shared.owed_to_peer.load(Ordering::Relaxed), 0);
    }

    #[tokio::test]
    async fn a_reply_completed_while_the_path_is_held_is_left_to_the_writer() {
        let (shared, mut far) = path(16);
        let mut opener = Opener::new(key());
        let (tx, _permits) = executing_ask(&shared, 7);
        let held = shared.core.lock();
        tx.send(vec![3]).expect("send");
        drop(held);
        assert!(far.driver.outbox.try_next().is_none(), "left for the writer");
        let out = poll_fn(|cx| shared.replies.lock().poll_next(cx)).await.expect("the reply");
        assert_eq!(shared.write(out.frame, false, false).await, Written::Sent { through: false });
        let sent = written(&mut far, &mut opener);
        assert!(sent.len() == 1 && is_reply(&sent[0], 7, &[3]), "{sent:?}");
    }

    #[test]
    fn writes_through_only_after_calm_frames_lone_exchanges_in_a_row() {
        let mut mode = WriteMode::default();
        for _ in 1..CALM_FRAMES {
            assert!(!mode.frame(true));
        }
        assert!(mode.frame(true), "the CALM_FRAMES-th lone frame in a row");
        assert!(mode.frame(true));
        assert!(!mode.frame(false), "a pipeline or a flood: queued at once");
        assert!(!mode.frame(true), "and calm must build up again");
    }

    #[test]
    fn the_calm_count_saturates() {
        let mut mode = WriteMode { calm: u32::MAX };
        assert!(mode.frame(true));
        assert_eq!(mode.calm, u32::MAX);
    }
}
