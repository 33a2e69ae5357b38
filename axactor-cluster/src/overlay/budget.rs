//! [`ByteBudget`]: the byte bound of a link's bounded queues, shared by
//! the queue's producers and its consumer (the two outbound queues of a
//! link share one; an in-memory link's inbound queue has its own).

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};

use tokio::sync::Notify;

/// How many bytes of frames one bounded queue (or pair of queues) holds,
/// against its budget; shared by the queue's producers and its consumer.
///
/// A producer takes a frame's length before queueing it
/// ([`try_take`](Self::try_take) or, waiting, [`take`](Self::take)); the
/// consumer gives it back when it takes the frame out
/// ([`give_back`](Self::give_back)). A waiting producer is woken by the
/// consumer only when one has announced itself (`waiting`), so the common
/// case costs one atomic read-modify-write on each side.
#[derive(Debug)]
pub(crate) struct ByteBudget {
    queued: AtomicUsize,
    max: AtomicUsize,
    waiting: AtomicBool,
    room: Notify,
}

impl ByteBudget {
    pub(crate) fn new(max: usize) -> Arc<ByteBudget> {
        Arc::new(ByteBudget {
            queued: AtomicUsize::new(0),
            max: AtomicUsize::new(max.max(1)),
            waiting: AtomicBool::new(false),
            room: Notify::new(),
        })
    }

    /// Sets the budget (at least 1 byte); producers waiting re-check it.
    pub(crate) fn set_max(&self, max: usize) {
        self.max.store(max.max(1), Ordering::SeqCst);
        self.room.notify_waiters();
    }

    /// Bytes queued now.
    pub(crate) fn queued(&self) -> usize {
        self.queued.load(Ordering::Relaxed)
    }

    /// Whether [`try_take`](Self::try_take) of `len` bytes would succeed now.
    pub(crate) fn fits(&self, len: usize) -> bool {
        let q = self.queued.load(Ordering::SeqCst);
        q == 0 || q.saturating_add(len) <= self.max.load(Ordering::Relaxed)
    }

    /// Takes `len` bytes if they fit the budget or nothing is queued.
    pub(crate) fn try_take(&self, len: usize) -> bool {
        let max = self.max.load(Ordering::Relaxed);
        self.queued
            .fetch_update(Ordering::SeqCst, Ordering::SeqCst, |q| {
                (q == 0 || q.saturating_add(len) <= max).then_some(q.saturating_add(len))
            })
            .is_ok()
    }

    /// Takes `len` bytes, waiting until they fit.
    ///
    /// # Cancel safety
    /// Cancel safe: nothing is taken unless it completes.
    pub(crate) async fn take(&self, len: usize) {
        loop {
            if self.try_take(len) {
                return;
            }
            let notified = self.room.notified();
            tokio::pin!(notified);
            notified.as_mut().enable();
            // Announce the wait, then look again: a consumer that gave bytes
            // back before this store is seen by the second try, one after it
            // sees `waiting` and wakes us (both sequentially consistent).
            self.waiting.store(true, Ordering::SeqCst);
            if self.try_take(len) {
                return;
            }
            notified.await;
        }
    }

    /// Gives back the bytes of a frame taken out of the queue.
    pub(crate) fn give_back(&self, len: usize) {
        self.queued.fetch_sub(len, Ordering::SeqCst);
        if self.waiting.load(Ordering::SeqCst) && self.waiting.swap(false, Ordering::SeqCst) {
            self.room.notify_waiters();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_budget_admits_what_fits_or_one_frame_alone() {
        let budget = ByteBudget::new(100);
        assert!(budget.try_take(60));
        assert!(budget.try_take(40), "exactly the budget fits");
        assert!(!budget.try_take(1), "over the budget");
        budget.give_back(60);
        assert!(!budget.try_take(61));
        budget.give_back(40);
        assert!(budget.try_take(1_000), "an empty queue admits one frame of any size");
        assert!(!budget.try_take(1));
        assert_eq!(budget.queued(), 1_000);
    }

    #[tokio::test]
    async fn a_waiting_producer_is_woken_by_the_consumer() {
        let budget = ByteBudget::new(10);
        assert!(budget.try_take(10));
        let waiter = tokio::spawn({
            let budget = Arc::clone(&budget);
            async move { budget.take(5).await }
        });
        tokio::task::yield_now().await;
        assert!(!waiter.is_finished());
        budget.give_back(10);
        tokio::time::timeout(std::time::Duration::from_secs(10), waiter).await.expect("woken").expect("task");
        assert_eq!(budget.queued(), 5);
    }
}
