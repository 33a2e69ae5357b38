//! [`WakeFlags`]: which of a task's rare event sources woke it, so the task
//! polls only those, instead of every source on every park.
//!
//! A session reader waits on its frames and on three sources that fire a
//! few times per connection: the node's stop, the close signal (replaced)
//! and the heartbeat tick. `tokio::select!` polls all four on every park,
//! and a park is per frame when requests and replies alternate: the three
//! rare polls (two `Notify` waiters and a timer, each under Tokio's
//! cooperative budget) were about a seventh of the instructions of an
//! in-memory ask.
//!
//! Each source is polled with its own waker, which sets the source's flag
//! and wakes the task. Its future keeps that waker while it waits, so the
//! task need not poll it again until its flag is set: [`WakeFlags::take`]
//! says whether to. The task's own waker is [`register`](WakeFlags::register)ed
//! on each park (one lock, a clone only when it changed).
//!
//! No lost wake: the task registers its waker, then takes the flag (an
//! atomic read-modify-write); a source sets the flag (another), then reads
//! the waker. Whichever comes second in the flag's order sees the other's
//! write: either the task sees the flag, or the source wakes the waker just
//! registered. Every flag starts set, so each source is polled on the first
//! park.

use std::sync::Arc;
use std::sync::atomic::{AtomicU32, Ordering};
use std::task::{Context, Wake, Waker};

use parking_lot::Mutex;

/// Shared between the task and its sources' wakers.
#[derive(Debug)]
struct Shared {
    flags: AtomicU32,
    task: Mutex<Option<Waker>>,
}

/// One source's waker: sets its flag, then wakes the task.
struct Source {
    shared: Arc<Shared>,
    bit: u32,
}

impl Wake for Source {
    fn wake(self: Arc<Self>) {
        self.wake_by_ref();
    }

    fn wake_by_ref(self: &Arc<Self>) {
        self.shared.flags.fetch_or(self.bit, Ordering::AcqRel);
        // Cloned out: the task's waker is woken without the lock held.
        let task = self.shared.task.lock().clone();
        if let Some(task) = task {
            task.wake();
        }
    }
}

/// See the module docs. Up to 32 sources, numbered from 0.
#[derive(Debug)]
pub(crate) struct WakeFlags {
    shared: Arc<Shared>,
    wakers: Vec<Waker>,
}

impl WakeFlags {
    /// Flags for `sources` sources (at most 32), all set.
    pub(crate) fn new(sources: u32) -> WakeFlags {
        let sources = sources.min(32);
        let all = if sources == 32 { u32::MAX } else { (1 << sources) - 1 };
        let shared = Arc::new(Shared { flags: AtomicU32::new(all), task: Mutex::new(None) });
        let wakers =
            (0..sources).map(|i| Waker::from(Arc::new(Source { shared: Arc::clone(&shared), bit: 1 << i }))).collect();
        WakeFlags { shared, wakers }
    }

    /// Makes `waker` the one the sources wake (call on each poll, before
    /// [`take`](Self::take)).
    #[inline]
    pub(crate) fn register(&self, waker: &Waker) {
        let mut task = self.shared.task.lock();
        match &mut *task {
            Some(w) if w.will_wake(waker) => {}
            slot => *slot = Some(waker.clone()),
        }
    }

    /// Whether source `i` fired (or was [`set`](Self::set)) since its flag
    /// was last taken; clears the flag.
    #[inline]
    pub(crate) fn take(&self, i: u32) -> bool {
        let bit = 1 << i;
        // A plain read first: the flags are clear on almost every park.
        self.shared.flags.load(Ordering::Acquire) & bit != 0
            && self.shared.flags.fetch_and(!bit, Ordering::AcqRel) & bit != 0
    }

    /// Sets source `i`'s flag: it is polled on the next park (a source
    /// that completed must be polled again to wait once more).
    pub(crate) fn set(&self, i: u32) {
        self.shared.flags.fetch_or(1 << i, Ordering::AcqRel);
    }

    /// A context to poll source `i` with (`i` below the count given to
    /// [`new`](Self::new): the callers name their sources by constants).
    pub(crate) fn context(&self, i: u32) -> Context<'_> {
        Context::from_waker(&self.wakers[i as usize])
    }
}

#[cfg(test)]
mod tests {
    use std::future::Future;
    use std::pin::pin;
    use std::sync::atomic::AtomicUsize;
    use std::task::Poll;

    use tokio::sync::Notify;

    use super::*;

    /// Counts its wakes.
    struct Count(AtomicUsize);

    impl Wake for Count {
        fn wake(self: Arc<Self>) {
            self.0.fetch_add(1, Ordering::SeqCst);
        }
    }

    #[test]
    fn every_flag_starts_set_and_a_taken_flag_stays_clear() {
        let flags = WakeFlags::new(3);
        assert!(flags.take(0) && flags.take(1) && flags.take(2));
        assert!(!flags.take(0) && !flags.take(1) && !flags.take(2));
        flags.set(1);
        assert!(!flags.take(0) && flags.take(1));
    }

    #[test]
    fn a_source_sets_only_its_flag_and_wakes_the_task_registered_last() {
        let flags = WakeFlags::new(2);
        let (first, second) = (Arc::new(Count(AtomicUsize::new(0))), Arc::new(Count(AtomicUsize::new(0))));
        while flags.take(0) || flags.take(1) {}
        flags.register(&Waker::from(Arc::clone(&first)));
        flags.register(&Waker::from(Arc::clone(&second)));
        flags.wakers[1].wake_by_ref();
        assert_eq!((first.0.load(Ordering::SeqCst), second.0.load(Ordering::SeqCst)), (0, 1));
        assert!(!flags.take(0));
        assert!(flags.take(1));
    }

    #[test]
    fn a_waiting_future_keeps_its_source_waker_and_is_polled_again_only_once_flagged() {
        let flags = WakeFlags::new(1);
        let task = Arc::new(Count(AtomicUsize::new(0)));
        flags.register(&Waker::from(Arc::clone(&task)));
        let notify = Notify::new();
        let mut waiting = pin!(notify.notified());
        assert!(flags.take(0));
        assert!(waiting.as_mut().poll(&mut flags.context(0)).is_pending());
        assert!(!flags.take(0), "nothing fired: no need to poll it");
        notify.notify_waiters();
        assert_eq!(task.0.load(Ordering::SeqCst), 1, "the task is woken through the source");
        assert!(flags.take(0));
        assert_eq!(waiting.as_mut().poll(&mut flags.context(0)), Poll::Ready(()));
    }
}
