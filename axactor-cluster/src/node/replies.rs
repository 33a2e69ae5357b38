//! [`Replies`]: the replies to the asks one connection delivered to local
//! activations, driven by the connection's own task (its writer) instead
//! of one spawned task per ask.
//!
//! Every pending reply sits in a slot with its own waker; the reply's
//! future itself (a concrete type per hosted actor type, no box) sits in
//! the pool of its type, one per actor type seen on the connection (at
//! most `MAX_HOSTED_REGISTRIES` of them, allocated once), whose entries
//! are reused like the slots. Waking a slot puts
//! the slot's index (once until it is polled again) on a shared ready list
//! and wakes the connection task, which then polls only the slots on that
//! list: O(1) work per completed reply, whatever the number of asks in
//! flight. A completed reply waits in a FIFO until the writer takes it.
//!
//! Bounds: each entry, pending or completed, holds one of the node's
//! `inbound_asks` permits (`max_inflight_requests`), released when the
//! writer takes the reply; the ready list holds each slot at most once; a
//! pool holds at most one entry per slot.
//!
//! Concurrency: [`Replies`] belongs to one connection (its reader inserts,
//! its writer takes, both in the connection task, behind one uncontended
//! lock). Slot wakers may fire on any thread; they only touch the shared
//! ready list.

use std::any::{Any, TypeId};
use std::collections::VecDeque;
use std::future::Future;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, OnceLock, Weak};
use std::task::{Context, Poll, Wake, Waker};

use parking_lot::Mutex;
use tokio::sync::OwnedSemaphorePermit;

use super::outbound::{OutKind, Outbound};
use crate::wire::{DataMsg, Envelope, OutFrame};

/// What a reply is, to [`Replies`]: a future of its encoded frame (`None`:
/// answered `Canceled`).
pub(crate) trait ReplyFuture: Future<Output = Option<OutFrame>> + Send + Unpin + 'static {}

impl<F: Future<Output = Option<OutFrame>> + Send + Unpin + 'static> ReplyFuture for F {}

/// Where a peer's ask's reply goes once the ask is accepted: its
/// connection's [`Replies`], with the `inbound_asks` permit it holds until
/// the writer takes it.
pub(crate) struct ReplyRoom<'a> {
    replies: &'a Mutex<Replies>,
    permit: OwnedSemaphorePermit,
}

impl<'a> ReplyRoom<'a> {
    pub(crate) fn new(replies: &'a Mutex<Replies>, permit: OwnedSemaphorePermit) -> ReplyRoom<'a> {
        ReplyRoom { replies, permit }
    }

    /// The reply to `request_id`, into the connection's replies.
    pub(crate) fn put<F: ReplyFuture>(self, request_id: u64, reply: F) {
        self.replies.lock().insert(request_id, reply, self.permit);
    }
}

/// The pending replies of one future type (see the module docs), by entry.
trait Pool: Send {
    /// Polls entry `at`; a ready entry is removed.
    fn poll_at(&mut self, at: usize, cx: &mut Context<'_>) -> Poll<Option<OutFrame>>;
    /// Drops every entry.
    fn clear(&mut self);
    fn as_any(&mut self) -> &mut dyn Any;
}

struct TypedPool<F> {
    entries: Vec<Option<F>>,
    free: Vec<usize>,
}

impl<F: ReplyFuture> TypedPool<F> {
    fn insert(&mut self, reply: F) -> usize {
        match self.free.pop() {
            Some(at) => {
                self.entries[at] = Some(reply);
                at
            }
            None => {
                self.entries.push(Some(reply));
                self.entries.len() - 1
            }
        }
    }
}

impl<F: ReplyFuture> Pool for TypedPool<F> {
    fn poll_at(&mut self, at: usize, cx: &mut Context<'_>) -> Poll<Option<OutFrame>> {
        let Some(reply) = self.entries.get_mut(at).and_then(Option::as_mut) else { return Poll::Ready(None) };
        let polled = Pin::new(reply).poll(cx);
        if polled.is_ready() {
            self.entries[at] = None;
            self.free.push(at);
        }
        polled
    }

    fn clear(&mut self) {
        self.free = (0..self.entries.len()).collect();
        self.entries.iter_mut().for_each(|e| *e = None);
    }

    fn as_any(&mut self) -> &mut dyn Any {
        self
    }
}

/// See the module docs.
pub(crate) struct Replies {
    slots: Vec<Option<Slot>>,
    /// The waker of each slot index, kept for the next occupant (a stale
    /// wake-up costs one spurious poll at most, see `poll_slot`).
    wakes: Vec<(Arc<SlotWake>, Waker)>,
    free: Vec<usize>,
    ready: Arc<Ready>,
    /// The pools of reply futures, one per type, in order of first use.
    pools: Vec<(TypeId, Box<dyn Pool>)>,
    /// The ready list taken out of `ready` (kept for its capacity).
    batch: Vec<usize>,
    done: VecDeque<(Outbound, OwnedSemaphorePermit)>,
    max_envelope: usize,
    closed: bool,
}

struct Slot {
    request_id: u64,
    /// The reply's pool (index into `pools`) and its entry there.
    pool: usize,
    at: usize,
    permit: OwnedSemaphorePermit,
}

#[derive(Default)]
struct Ready {
    inner: Mutex<ReadyInner>,
    /// Who may write a completed reply from the waking task instead of
    /// waking the connection task (see [`Replies::write_directly`]).
    direct: OnceLock<Weak<dyn WriteReady>>,
}

/// Writes completed replies from the task that completed them, if the
/// connection's write path is free: the connection task is then not woken.
pub(crate) trait WriteReady: Send + Sync {
    /// Called from a slot's waker once the slot is on the ready list;
    /// `true` if every completed reply was written (nothing left for the
    /// connection task). Must not block on the replies' lock.
    fn write_ready(&self) -> bool;
}

#[derive(Default)]
struct ReadyInner {
    slots: Vec<usize>,
    /// The connection task, to wake when a slot is ready.
    task: Option<Waker>,
}

struct SlotWake {
    slot: usize,
    /// On the ready list and not polled since.
    queued: AtomicBool,
    ready: Arc<Ready>,
}

impl Wake for SlotWake {
    fn wake(self: Arc<Self>) {
        self.wake_by_ref();
    }

    fn wake_by_ref(self: &Arc<Self>) {
        if self.queued.swap(true, Ordering::AcqRel) {
            return;
        }
        self.ready.inner.lock().slots.push(self.slot);
        if let Some(direct) = self.ready.direct.get().and_then(Weak::upgrade)
            && direct.write_ready()
        {
            return;
        }
        let task = self.ready.inner.lock().task.take();
        if let Some(task) = task {
            task.wake();
        }
    }
}

impl Replies {
    /// Replies whose envelopes may be at most `max_envelope` bytes (larger
    /// ones are answered `Canceled`: the ask ran, its reply cannot be sent).
    pub(crate) fn new(max_envelope: usize) -> Replies {
        Replies {
            max_envelope,
            slots: Vec::new(),
            wakes: Vec::new(),
            free: Vec::new(),
            ready: Arc::default(),
            pools: Vec::new(),
            batch: Vec::new(),
            done: VecDeque::new(),
            closed: false,
        }
    }

    /// Lets `direct` write completed replies from the tasks that complete
    /// them (at most once; later calls are ignored).
    pub(crate) fn write_directly(&self, direct: Weak<dyn WriteReady>) {
        let _ = self.ready.direct.set(direct);
    }

    /// The oldest completed reply (polling the ready list first, without
    /// registering the connection task), with its permit.
    pub(crate) fn take_done(&mut self) -> Option<(Outbound, OwnedSemaphorePermit)> {
        if self.done.is_empty() {
            self.poll_ready(None);
        }
        self.done.pop_front()
    }

    /// Puts back a reply taken by [`take_done`](Self::take_done), first in
    /// line, and wakes the connection task to take it.
    pub(crate) fn put_back(&mut self, reply: (Outbound, OwnedSemaphorePermit)) {
        self.done.push_front(reply);
        if let Some(task) = self.ready.inner.lock().task.take() {
            task.wake();
        }
    }

    /// Adds the reply to `request_id` and polls it once (registering its
    /// waker), so no wake of the connection task is needed for it.
    pub(crate) fn insert<F: ReplyFuture>(&mut self, request_id: u64, reply: F, permit: OwnedSemaphorePermit) {
        let pool = match self.pools.iter().position(|(id, _)| *id == TypeId::of::<F>()) {
            Some(pool) => pool,
            None => {
                let typed: TypedPool<F> = TypedPool { entries: Vec::new(), free: Vec::new() };
                self.pools.push((TypeId::of::<F>(), Box::new(typed)));
                self.pools.len() - 1
            }
        };
        let Some(typed) = self.pools[pool].1.as_any().downcast_mut::<TypedPool<F>>() else {
            // Found by its type id just above: not expected. The peer's ask times out.
            tracing::warn!(request_id, "reply pool of the wrong type; reply dropped");
            return;
        };
        let at = typed.insert(reply);
        let slot = self.free.pop().unwrap_or_else(|| {
            let slot = self.slots.len();
            let wake = Arc::new(SlotWake { slot, queued: AtomicBool::new(false), ready: Arc::clone(&self.ready) });
            self.wakes.push((Arc::clone(&wake), Waker::from(wake)));
            self.slots.push(None);
            slot
        });
        self.slots[slot] = Some(Slot { request_id, pool, at, permit });
        self.poll_slot(slot);
        if !self.done.is_empty()
            && let Some(task) = self.ready.inner.lock().task.take()
        {
            task.wake();
        }
    }

    fn poll_slot(&mut self, index: usize) {
        // A stale index (the slot completed, or was reused) costs one spurious poll at most.
        let (Some(slot), Some((wake, waker))) = (self.slots.get(index).and_then(Option::as_ref), self.wakes.get(index))
        else {
            return;
        };
        wake.queued.store(false, Ordering::Release);
        let Some((_, pool)) = self.pools.get_mut(slot.pool) else { return };
        let Poll::Ready(reply) = pool.poll_at(slot.at, &mut Context::from_waker(waker)) else { return };
        if let Some(slot) = self.slots[index].take() {
            self.free.push(index);
            let frame = match reply {
                Some(frame) if frame.envelope_bytes().len() <= self.max_envelope => frame,
                // Too large for a frame (the writer would drop it and the
                // asker time out): answered as if the activation had not replied.
                _ => match OutFrame::envelope(&Envelope::Data(DataMsg::Canceled { request_id: slot.request_id })) {
                    Ok(frame) => frame,
                    // Not expected for this message; the peer's request times out.
                    Err(_) => return,
                },
            };
            self.done.push_back((Outbound::new(frame, OutKind::Response), slot.permit));
        }
    }

    /// The next completed reply (its permit released); `Ready(None)` once
    /// [`close`](Self::close)d with nothing completed; `Pending` otherwise,
    /// with the task registered for the next completion.
    pub(crate) fn poll_next(&mut self, cx: &mut Context<'_>) -> Poll<Option<Outbound>> {
        if self.done.is_empty() {
            self.poll_ready(Some(cx));
        }
        match self.done.pop_front() {
            Some((msg, _permit)) => Poll::Ready(Some(msg)),
            None if self.closed => Poll::Ready(None),
            None => Poll::Pending,
        }
    }

    /// A completed reply if there is one now, without registering the task
    /// for the next completion (the writer's fast path; it goes through
    /// [`poll_next`](Self::poll_next) before it waits).
    pub(crate) fn try_next(&mut self) -> Option<Outbound> {
        self.take_done().map(|(msg, _permit)| msg)
    }

    /// Polls the slots on the ready list; registers `cx`'s task first, if given.
    fn poll_ready(&mut self, cx: Option<&mut Context<'_>>) {
        {
            let mut inner = self.ready.inner.lock();
            if let Some(cx) = cx
                && !inner.task.as_ref().is_some_and(|t| t.will_wake(cx.waker()))
            {
                inner.task = Some(cx.waker().clone());
            }
            std::mem::swap(&mut inner.slots, &mut self.batch);
        }
        let mut batch = std::mem::take(&mut self.batch);
        for &index in &batch {
            self.poll_slot(index);
        }
        batch.clear();
        self.batch = batch;
    }

    /// Whether no reply is pending or waiting to be taken.
    pub(crate) fn is_empty(&self) -> bool {
        self.done.is_empty() && self.free.len() == self.slots.len()
    }

    /// Drops every reply still pending or completed (the connection
    /// ended); returns how many.
    pub(crate) fn discard(&mut self) -> usize {
        let pending = self.slots.iter_mut().filter_map(Option::take).count();
        self.pools.iter_mut().for_each(|(_, pool)| pool.clear());
        let done = self.done.len();
        self.done.clear();
        self.free = (0..self.slots.len()).collect();
        pending + done
    }

    /// No more inserts (the reader ended): [`poll_next`](Self::poll_next)
    /// returns `Ready(None)` once nothing completed is left, so the writer
    /// can end when its queues do. Pending replies are dropped with `self`.
    pub(crate) fn close(&mut self) {
        self.closed = true;
        if let Some(task) = self.ready.inner.lock().task.take() {
            task.wake();
        }
    }
}

#[cfg(test)]
mod tests {
    use std::future::poll_fn;

    use tokio::sync::{Semaphore, oneshot};

    use super::*;

    fn permit(s: &Arc<Semaphore>) -> OwnedSemaphorePermit {
        Arc::clone(s).try_acquire_owned().expect("permit")
    }

    fn reply(request_id: u64, rx: oneshot::Receiver<Vec<u8>>) -> impl ReplyFuture {
        crate::hosted::EncodedReply::new(request_id, crate::hosted::PendingReply::new(rx, |v| v))
    }

    fn decoded(out: &Outbound) -> DataMsg {
        assert_eq!(out.kind, OutKind::Response);
        match crate::wire::decode_envelope(out.frame.envelope_bytes()) {
            Ok(Envelope::Data(msg)) => msg,
            other => panic!("not a data message: {other:?}"),
        }
    }

    #[tokio::test]
    async fn replies_come_out_in_completion_order_and_release_their_permits() {
        let permits = Arc::new(Semaphore::new(3));
        let mut r = Replies::new(1024);
        let (tx1, rx1) = oneshot::channel();
        let (tx2, rx2) = oneshot::channel();
        let (tx3, rx3) = oneshot::channel();
        r.insert(1, reply(1, rx1), permit(&permits));
        r.insert(2, reply(2, rx2), permit(&permits));
        r.insert(3, reply(3, rx3), permit(&permits));
        assert_eq!(permits.available_permits(), 0);
        assert!(poll_fn(|cx| Poll::Ready(r.poll_next(cx))).await.is_pending());
        tx2.send(vec![2]).expect("send");
        drop(tx3); // the activation dropped the request
        tx1.send(vec![1]).expect("send");
        let mut got = Vec::new();
        for _ in 0..3 {
            got.push(decoded(&poll_fn(|cx| r.poll_next(cx)).await.expect("a reply")));
        }
        let ids: Vec<u64> = got
            .iter()
            .map(|m| match m {
                DataMsg::Reply { request_id, .. } | DataMsg::Canceled { request_id } => *request_id,
                other => panic!("unexpected {other:?}"),
            })
            .collect();
        assert_eq!(ids, [2, 3, 1]);
        assert!(matches!(got[1], DataMsg::Canceled { .. }));
        assert_eq!(permits.available_permits(), 3);
        r.close();
        assert!(poll_fn(|cx| r.poll_next(cx)).await.is_none());
    }

    #[tokio::test]
    async fn a_reply_too_large_for_a_frame_is_answered_canceled() {
        let permits = Arc::new(Semaphore::new(2));
        let mut r = Replies::new(64);
        let (tx1, rx1) = oneshot::channel();
        let (tx2, rx2) = oneshot::channel();
        r.insert(1, reply(1, rx1), permit(&permits));
        r.insert(2, reply(2, rx2), permit(&permits));
        tx1.send(vec![0; 100]).expect("send");
        tx2.send(vec![0; 10]).expect("send");
        let first = decoded(&poll_fn(|cx| r.poll_next(cx)).await.expect("a reply"));
        assert_eq!(first, DataMsg::Canceled { request_id: 1 });
        let second = decoded(&poll_fn(|cx| r.poll_next(cx)).await.expect("a reply"));
        assert!(matches!(second, DataMsg::Reply { request_id: 2, .. }));
        assert_eq!(permits.available_permits(), 2);
    }

    #[tokio::test]
    async fn a_completion_on_another_task_wakes_the_owner_and_slots_are_reused() {
        let permits = Arc::new(Semaphore::new(1));
        let mut r = Replies::new(1024);
        for round in 0..3u8 {
            let (tx, rx) = oneshot::channel();
            r.insert(u64::from(round), reply(u64::from(round), rx), permit(&permits));
            tokio::spawn(async move { tx.send(vec![round]).expect("send") });
            let msg = decoded(&poll_fn(|cx| r.poll_next(cx)).await.expect("a reply"));
            let payload = postcard::to_allocvec(&vec![round]).expect("encodes");
            assert_eq!(msg, DataMsg::Reply { request_id: u64::from(round), payload });
        }
        assert_eq!(r.slots.len(), 1, "the one slot is reused");
    }
}
