//! [`Replies`]: the replies to the asks one connection delivered to local
//! activations, driven by the connection's own task (its writer) instead
//! of one spawned task per ask.
//!
//! Every pending reply sits in a slot with its own waker. Waking it puts
//! the slot's index (once until it is polled again) on a shared ready list
//! and wakes the connection task, which then polls only the slots on that
//! list: O(1) work per completed reply, whatever the number of asks in
//! flight. A completed reply waits in a FIFO until the writer takes it.
//!
//! Bounds: each entry, pending or completed, holds one of the node's
//! `inbound_asks` permits (`max_inflight_requests`), released when the
//! writer takes the reply; the ready list holds each slot at most once.
//!
//! Concurrency: [`Replies`] belongs to one connection (its reader inserts,
//! its writer takes, both in the connection task, behind one uncontended
//! lock). Slot wakers may fire on any thread; they only touch the shared
//! ready list.

use std::collections::VecDeque;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::task::{Context, Poll, Wake, Waker};

use parking_lot::Mutex;
use tokio::sync::OwnedSemaphorePermit;

use crate::host::EncodedReply;
use crate::wire::DataMsg;

/// See the module docs.
pub(crate) struct Replies {
    slots: Vec<Option<Slot>>,
    free: Vec<usize>,
    ready: Arc<Ready>,
    /// The ready list taken out of `ready` (kept for its capacity).
    batch: Vec<usize>,
    done: VecDeque<(DataMsg, OwnedSemaphorePermit)>,
    closed: bool,
}

struct Slot {
    request_id: u64,
    reply: EncodedReply,
    wake: Arc<SlotWake>,
    waker: Waker,
    permit: OwnedSemaphorePermit,
}

#[derive(Default)]
struct Ready {
    inner: Mutex<ReadyInner>,
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
        let task = {
            let mut inner = self.ready.inner.lock();
            inner.slots.push(self.slot);
            inner.task.take()
        };
        if let Some(task) = task {
            task.wake();
        }
    }
}

impl Replies {
    pub(crate) fn new() -> Replies {
        Replies {
            slots: Vec::new(),
            free: Vec::new(),
            ready: Arc::default(),
            batch: Vec::new(),
            done: VecDeque::new(),
            closed: false,
        }
    }

    /// Adds the reply to `request_id` and polls it once (registering its
    /// waker), so no wake of the connection task is needed for it.
    pub(crate) fn insert(&mut self, request_id: u64, reply: EncodedReply, permit: OwnedSemaphorePermit) {
        let slot = self.free.pop().unwrap_or_else(|| {
            self.slots.push(None);
            self.slots.len() - 1
        });
        let wake = Arc::new(SlotWake { slot, queued: AtomicBool::new(false), ready: Arc::clone(&self.ready) });
        let waker = Waker::from(Arc::clone(&wake));
        self.slots[slot] = Some(Slot { request_id, reply, wake, waker, permit });
        self.poll_slot(slot);
        if !self.done.is_empty()
            && let Some(task) = self.ready.inner.lock().task.take()
        {
            task.wake();
        }
    }

    fn poll_slot(&mut self, index: usize) {
        // A stale index (the slot completed, or was reused) costs one spurious poll at most.
        let Some(slot) = self.slots.get_mut(index).and_then(Option::as_mut) else { return };
        slot.wake.queued.store(false, Ordering::Release);
        let Poll::Ready(reply) = slot.reply.as_mut().poll(&mut Context::from_waker(&slot.waker)) else { return };
        if let Some(slot) = self.slots[index].take() {
            self.free.push(index);
            let msg = match reply {
                Some(payload) => DataMsg::Reply { request_id: slot.request_id, payload },
                None => DataMsg::Canceled { request_id: slot.request_id },
            };
            self.done.push_back((msg, slot.permit));
        }
    }

    /// The next completed reply (its permit released); `Ready(None)` once
    /// [`close`](Self::close)d with nothing completed; `Pending` otherwise,
    /// with the task registered for the next completion.
    pub(crate) fn poll_next(&mut self, cx: &mut Context<'_>) -> Poll<Option<DataMsg>> {
        if self.done.is_empty() {
            {
                let mut inner = self.ready.inner.lock();
                if !inner.task.as_ref().is_some_and(|t| t.will_wake(cx.waker())) {
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
        match self.done.pop_front() {
            Some((msg, _permit)) => Poll::Ready(Some(msg)),
            None if self.closed => Poll::Ready(None),
            None => Poll::Pending,
        }
    }

    /// Whether no reply is pending or waiting to be taken.
    pub(crate) fn is_empty(&self) -> bool {
        self.done.is_empty() && self.free.len() == self.slots.len()
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

    fn reply(rx: oneshot::Receiver<Vec<u8>>) -> EncodedReply {
        Box::pin(async move { rx.await.ok() })
    }

    #[tokio::test]
    async fn replies_come_out_in_completion_order_and_release_their_permits() {
        let permits = Arc::new(Semaphore::new(3));
        let mut r = Replies::new();
        let (tx1, rx1) = oneshot::channel();
        let (tx2, rx2) = oneshot::channel();
        let (tx3, rx3) = oneshot::channel();
        r.insert(1, reply(rx1), permit(&permits));
        r.insert(2, reply(rx2), permit(&permits));
        r.insert(3, reply(rx3), permit(&permits));
        assert_eq!(permits.available_permits(), 0);
        assert!(poll_fn(|cx| Poll::Ready(r.poll_next(cx))).await.is_pending());
        tx2.send(vec![2]).expect("send");
        drop(tx3); // the activation dropped the request
        tx1.send(vec![1]).expect("send");
        let mut got = Vec::new();
        for _ in 0..3 {
            got.push(poll_fn(|cx| r.poll_next(cx)).await.expect("a reply"));
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
    async fn a_completion_on_another_task_wakes_the_owner_and_slots_are_reused() {
        let permits = Arc::new(Semaphore::new(1));
        let mut r = Replies::new();
        for round in 0..3u8 {
            let (tx, rx) = oneshot::channel();
            r.insert(u64::from(round), reply(rx), permit(&permits));
            tokio::spawn(async move { tx.send(vec![round]).expect("send") });
            let msg = poll_fn(|cx| r.poll_next(cx)).await.expect("a reply");
            assert!(
                matches!(msg, DataMsg::Reply { request_id, ref payload } if request_id == u64::from(round) && payload == &[round])
            );
        }
        assert_eq!(r.slots.len(), 1, "the one slot is reused");
    }
}
