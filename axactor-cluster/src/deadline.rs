//! [`Deadlines`]: one timer for the node's request deadlines.
//!
//! Every request waits for its answer until a deadline. A tokio timer per
//! wait costs a registration in the runtime's timer wheel and its removal
//! when the answer comes first (the usual case): measured here, that
//! doubled the cost of a local ask. Instead, a waiting request puts its
//! waker and deadline in one table of reusable slots ([`Deadlines::bound`]),
//! and one sweeper task
//! per node ([`Deadlines::run`]) sleeps until the earliest deadline in the
//! table, wakes the requests whose deadline has come, and sleeps again.
//!
//! The sweeper is told about a new deadline only when it is earlier than
//! the instant it sleeps until (or when it sleeps with nothing to wait
//! for). Requests with the node's usual timeout arrive in deadline order, so
//! a stream of them never kicks the sweeper: it wakes about once per
//! timeout period, finds the deadlines that have not come yet, and sleeps
//! until the first of them.
//!
//! A waiter whose deadline has come is woken by the sweeper and sees it by
//! reading the clock when polled again (tokio's clock, so a paused test
//! clock works). Once the sweeper has ended (the node stopped), every waiter
//! falls back to a tokio timer of its own, so a deadline is never missed.
//!
//! A wait that ends leaves its entry to the next wait on the same thread
//! ([`Deadlines::leave`]): a task asking one request after another (the
//! usual caller) then takes the table's lock once per request, and keeps
//! its waker in the entry instead of cloning and dropping it each time.
//! The entry left meanwhile holds its old deadline; if no wait on that
//! thread takes it first, the sweeper wakes its task once at that deadline
//! (a spurious wake, which every future tolerates) and frees it.
//!
//! Bounds: one entry per waiting request, plus at most one entry left per
//! thread; requests in flight are bounded by their callers' limits
//! (`max_inflight_requests` for remote ones, the activations' mailboxes
//! for local ones).

use std::cell::RefCell;
use std::future::Future;
use std::pin::Pin;
use std::sync::{Arc, Weak};
use std::task::{Context, Poll, Waker};

use parking_lot::Mutex;
use tokio::sync::Notify;
use tokio::time::{Instant, Sleep};

/// A wait ended at its deadline before its future completed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Elapsed;

/// A waiter's place in the table: its slot, and the slot's generation
/// when it took it (a slot is reused once its waiter has left).
type Key = (usize, u64);

/// See the module docs.
#[derive(Debug, Default)]
pub(crate) struct Deadlines {
    /// Shared with the per-thread note of the entry left ([`LEFT`]), which
    /// holds it weakly: a table is told apart by its address, which cannot
    /// be reused while that note exists.
    inner: Arc<Mutex<Table>>,
    /// Tells the sweeper that it must look at the table again.
    kick: Notify,
}

/// The table the last wait that ended on this thread used, and the entry it
/// left there for the next wait (`None` once taken). See the module docs.
type Left = (Weak<Mutex<Table>>, Option<Key>);

thread_local! {
    static LEFT: RefCell<Option<Left>> = const { RefCell::new(None) };
}

/// The waiters, in slots reused as they leave: taking a place and leaving it
/// allocate nothing once the table has grown to the most waiters at once.
/// The sweeper scans every slot, about once per timeout period.
#[derive(Debug, Default)]
struct Table {
    slots: Vec<Slot>,
    /// Indexes of the slots without a waiter.
    free: Vec<usize>,
    /// When the sweeper wakes next (`None`: only when kicked).
    wake_at: Option<Instant>,
    /// The sweeper has ended: waiters keep a timer of their own.
    closed: bool,
}

#[derive(Debug)]
struct Slot {
    generation: u64,
    waiter: Option<(Instant, Waker)>,
}

impl Table {
    /// The waiter of `key`, if it is still in the table.
    fn waiter(&mut self, (index, generation): Key) -> Option<&mut (Instant, Waker)> {
        self.slots.get_mut(index).filter(|s| s.generation == generation)?.waiter.as_mut()
    }

    fn insert(&mut self, deadline: Instant, waker: Waker) -> Key {
        let index = self.free.pop().unwrap_or_else(|| {
            self.slots.push(Slot { generation: 0, waiter: None });
            self.slots.len() - 1
        });
        let slot = &mut self.slots[index];
        slot.generation += 1;
        slot.waiter = Some((deadline, waker));
        (index, slot.generation)
    }

    fn take(&mut self, index: usize) -> Option<(Instant, Waker)> {
        let taken = self.slots[index].waiter.take();
        if taken.is_some() {
            self.free.push(index);
        }
        taken
    }
}

/// What [`Deadlines::enroll`] did.
enum Enrolled {
    At(Key),
    Closed,
}

impl Deadlines {
    /// Runs `fut` until it completes or `deadline` comes, whichever is first
    /// (as `tokio::time::timeout_at`).
    pub(crate) fn bound<F: Future + Unpin>(&self, deadline: Instant, fut: F) -> Bounded<'_, F> {
        Bounded { table: self, deadline, fut, key: None, fallback: None }
    }

    /// Puts (or keeps) a waiter in the table with `waker`; kicks the sweeper
    /// if it sleeps past `deadline`.
    fn enroll(&self, deadline: Instant, key: Option<Key>, waker: &Waker) -> Enrolled {
        // A first wait takes the entry this thread's last wait left here.
        let left = if key.is_none() { self.take_left() } else { None };
        let (kick, key) = {
            let mut t = self.inner.lock();
            if t.closed {
                return Enrolled::Closed;
            }
            if let Some(key) = key
                && let Some((_, w)) = t.waiter(key)
            {
                if !w.will_wake(waker) {
                    w.clone_from(waker);
                }
                return Enrolled::At(key);
            }
            let reused = left.and_then(|key| {
                let (at, w) = t.waiter(key)?;
                *at = deadline;
                if !w.will_wake(waker) {
                    w.clone_from(waker);
                }
                Some(key)
            });
            let key = reused.unwrap_or_else(|| t.insert(deadline, waker.clone()));
            let kick = t.wake_at.is_none_or(|at| deadline < at);
            if kick {
                t.wake_at = Some(deadline);
            }
            (kick, key)
        };
        if kick {
            self.kick.notify_one();
        }
        Enrolled::At(key)
    }

    /// Takes a waiter out of the table (its future completed or was dropped).
    fn remove(&self, key: Key) {
        remove_from(&self.inner, key);
    }

    /// A wait that held `key` has ended: its entry stays for the next wait
    /// on this thread (see the module docs). The entry the thread kept
    /// before, in this table or another, is taken out now: a thread keeps
    /// at most one.
    fn leave(&self, key: Key) {
        let me = Arc::as_ptr(&self.inner);
        let before = LEFT.try_with(|left| {
            let mut left = left.borrow_mut();
            match left.as_mut() {
                Some((table, kept)) if Weak::as_ptr(table) == me => kept.replace(key).map(|k| (None, k)),
                _ => {
                    let before = left.replace((Arc::downgrade(&self.inner), Some(key)));
                    before.and_then(|(table, kept)| Some((Some(table), kept?)))
                }
            }
        });
        // Removed after the note's borrow ends: dropping a waker may run code.
        match before {
            Ok(None) => {}
            Ok(Some((None, kept))) => self.remove(kept),
            Ok(Some((Some(table), kept))) => {
                if let Some(table) = table.upgrade() {
                    remove_from(&table, kept);
                }
            }
            // The thread is ending: nothing is kept.
            Err(_) => self.remove(key),
        }
    }

    /// The entry this thread's last wait left in this table, if any (taken:
    /// at most one wait reuses it).
    fn take_left(&self) -> Option<Key> {
        let me = Arc::as_ptr(&self.inner);
        LEFT.try_with(|left| match left.borrow_mut().as_mut() {
            Some((table, kept)) if Weak::as_ptr(table) == me => kept.take(),
            _ => None,
        })
        .ok()
        .flatten()
    }

    /// Takes the waiters whose deadline is at or before `now` out of the
    /// table; returns their wakers and the next deadline to wake at.
    fn sweep(&self, now: Instant) -> (Vec<Waker>, Option<Instant>) {
        let mut t = self.inner.lock();
        let mut due = Vec::new();
        let mut next: Option<Instant> = None;
        for index in 0..t.slots.len() {
            match &t.slots[index].waiter {
                Some((deadline, _)) if *deadline <= now => {
                    if let Some((_, waker)) = t.take(index) {
                        due.push(waker);
                    }
                }
                Some((deadline, _)) => next = Some(next.map_or(*deadline, |n| n.min(*deadline))),
                None => {}
            }
        }
        t.wake_at = next;
        (due, next)
    }

    /// The sweeper: wakes waiters as their deadlines come, until `stop`
    /// completes; then every waiter left is woken to keep a timer of its own.
    ///
    /// # Cancel safety
    /// Cancel safe: dropped (its task aborted), it closes the table as at
    /// `stop`, so no waiter is left without a timer.
    pub(crate) async fn run(&self, stop: impl Future<Output = ()>) {
        /// Closes the table however the sweeper ends.
        struct CloseOnDrop<'a>(&'a Deadlines);
        impl Drop for CloseOnDrop<'_> {
            fn drop(&mut self) {
                self.0.close();
            }
        }
        let _close = CloseOnDrop(self);
        tokio::pin!(stop);
        loop {
            let (due, next) = self.sweep(Instant::now());
            due.into_iter().for_each(Waker::wake);
            let sleep = tokio::time::sleep_until(next.unwrap_or_else(Instant::now));
            tokio::select! {
                biased;
                () = &mut stop => break,
                () = self.kick.notified() => {}
                () = sleep, if next.is_some() => {}
            }
        }
    }

    /// Ends the table: every waiter is woken and keeps its own timer.
    fn close(&self) {
        let wakers: Vec<Waker> = {
            let mut t = self.inner.lock();
            t.closed = true;
            t.wake_at = None;
            (0..t.slots.len()).filter_map(|i| t.take(i)).map(|(_, waker)| waker).collect()
        };
        wakers.into_iter().for_each(Waker::wake);
    }
}

/// Takes the waiter of `key` out of `table`, if it is still there.
fn remove_from(table: &Mutex<Table>, key: Key) {
    let taken = {
        let mut t = table.lock();
        if t.waiter(key).is_some() { t.take(key.0) } else { None }
    };
    // The waker is dropped outside the lock.
    drop(taken);
}

/// The future of [`Deadlines::bound`].
#[derive(Debug)]
pub(crate) struct Bounded<'a, F> {
    table: &'a Deadlines,
    deadline: Instant,
    fut: F,
    /// Its entry in the table, once it has waited.
    key: Option<Key>,
    /// Its own timer, once the sweeper has ended.
    fallback: Option<Pin<Box<Sleep>>>,
}

impl<F> Bounded<'_, F> {
    fn leave(&mut self) {
        if let Some(key) = self.key.take() {
            self.table.leave(key);
        }
    }
}

impl<F: Future + Unpin> Future for Bounded<'_, F> {
    type Output = Result<F::Output, Elapsed>;

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let this = &mut *self;
        if let Poll::Ready(v) = Pin::new(&mut this.fut).poll(cx) {
            this.leave();
            return Poll::Ready(Ok(v));
        }
        if let Some(sleep) = &mut this.fallback {
            return sleep.as_mut().poll(cx).map(|()| Err(Elapsed));
        }
        // Polled again while waiting: the sweeper's wake at the deadline,
        // or the inner future's spurious one.
        if this.key.is_some() && Instant::now() >= this.deadline {
            this.leave();
            return Poll::Ready(Err(Elapsed));
        }
        match this.table.enroll(this.deadline, this.key, cx.waker()) {
            Enrolled::At(key) => {
                this.key = Some(key);
                Poll::Pending
            }
            Enrolled::Closed => {
                this.key = None;
                let mut sleep = Box::pin(tokio::time::sleep_until(this.deadline));
                let polled = sleep.as_mut().poll(cx).map(|()| Err(Elapsed));
                this.fallback = Some(sleep);
                polled
            }
        }
    }
}

impl<F> Drop for Bounded<'_, F> {
    fn drop(&mut self) {
        self.leave();
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;
    use std::time::Duration;

    use tokio::sync::oneshot;

    use super::*;

    fn sweeper() -> (Arc<Deadlines>, oneshot::Sender<()>, tokio::task::JoinHandle<()>) {
        let d = Arc::new(Deadlines::default());
        let (stop, stopped) = oneshot::channel::<()>();
        let task = tokio::spawn({
            let d = Arc::clone(&d);
            async move {
                d.run(async {
                    let _ = stopped.await;
                })
                .await;
            }
        });
        (d, stop, task)
    }

    /// Entries of waits in progress: every entry but the one this thread's
    /// last ended wait left for its next one.
    fn waiting(d: &Deadlines) -> usize {
        let me = Arc::as_ptr(&d.inner);
        let kept = LEFT.with(|left| match &*left.borrow() {
            Some((table, kept)) if Weak::as_ptr(table) == me => *kept,
            _ => None,
        });
        let mut t = d.inner.lock();
        let kept = kept.and_then(|key| t.waiter(key)).is_some();
        t.slots.iter().filter(|s| s.waiter.is_some()).count() - usize::from(kept)
    }

    /// Every entry in the table, waits in progress and entries left.
    fn entries(d: &Deadlines) -> usize {
        d.inner.lock().slots.iter().filter(|s| s.waiter.is_some()).count()
    }

    /// Waits in `d` until `deadline` for an answer that never comes; the
    /// instant the wait ended (it must end as elapsed).
    async fn unanswered(d: &Deadlines, deadline: Instant) -> Instant {
        let (_tx, rx) = oneshot::channel::<u32>();
        assert_eq!(d.bound(deadline, rx).await.map(|r| r.ok()), Err(Elapsed));
        Instant::now()
    }

    /// A task waiting in `d` until `deadline` for an answer that never
    /// comes (while the returned sender lives), once it is in the table.
    async fn enrolled_waiter(
        d: &Arc<Deadlines>,
        deadline: Instant,
    ) -> (oneshot::Sender<u32>, tokio::task::JoinHandle<Result<Option<u32>, Elapsed>>) {
        let (tx, rx) = oneshot::channel::<u32>();
        let waiter = tokio::spawn({
            let d = Arc::clone(d);
            async move { d.bound(deadline, rx).await.map(|r| r.ok()) }
        });
        let before = waiting(d);
        while waiting(d) == before {
            tokio::task::yield_now().await;
        }
        (tx, waiter)
    }

    #[tokio::test(start_paused = true)]
    async fn an_answer_before_the_deadline_is_returned_and_leaves_no_entry() {
        let (d, _stop, _task) = sweeper();
        let (tx, rx) = oneshot::channel::<u32>();
        let t0 = Instant::now();
        let answer = tokio::spawn(async move {
            tokio::time::sleep(Duration::from_millis(30)).await;
            tx.send(7).expect("the waiter is alive");
        });
        let got = d.bound(t0 + Duration::from_millis(100), rx).await;
        assert_eq!(got.map(|r| r.ok()), Ok(Some(7)));
        assert_eq!(Instant::now() - t0, Duration::from_millis(30));
        assert_eq!(waiting(&d), 0);
        answer.await.expect("answered");
    }

    #[tokio::test(start_paused = true)]
    async fn a_wait_ends_exactly_at_its_deadline() {
        let (d, _stop, _task) = sweeper();
        let t0 = Instant::now();
        assert_eq!(unanswered(&d, t0 + Duration::from_millis(250)).await - t0, Duration::from_millis(250));
        assert_eq!(waiting(&d), 0);
    }

    #[tokio::test(start_paused = true)]
    async fn deadlines_out_of_order_each_end_on_time() {
        let (d, _stop, _task) = sweeper();
        let t0 = Instant::now();
        // The later deadline enrols first: the earlier one must kick the sweeper.
        let mut ends = Vec::new();
        for ms in [900u64, 100, 500, 100, 300] {
            let d = Arc::clone(&d);
            ends.push(tokio::spawn(async move {
                (ms, (unanswered(&d, t0 + Duration::from_millis(ms)).await - t0).as_millis() as u64)
            }));
            tokio::task::yield_now().await;
        }
        for end in ends {
            let (want, got) = end.await.expect("waiter");
            assert_eq!(got, want);
        }
        assert_eq!(waiting(&d), 0);
    }

    #[tokio::test(start_paused = true)]
    async fn an_aborted_sweeper_leaves_no_wait_without_a_timer() {
        let (d, _stop, task) = sweeper();
        let t0 = Instant::now();
        let (_tx, waiter) = enrolled_waiter(&d, t0 + Duration::from_millis(200)).await;
        // A killed node's tasks are aborted, the sweeper with them.
        task.abort();
        assert!(task.await.is_err_and(|e| e.is_cancelled()));
        assert_eq!(waiter.await.expect("waiter"), Err(Elapsed));
        assert_eq!(Instant::now() - t0, Duration::from_millis(200));
    }

    #[test]
    fn a_reused_slot_belongs_to_its_new_waiter() {
        let d = Deadlines::default();
        let (waker, t0) = (Waker::noop(), Instant::now());
        let Enrolled::At(first) = d.enroll(t0, None, waker) else { unreachable!("the table is open") };
        d.remove(first);
        let Enrolled::At(second) = d.enroll(t0, None, waker) else { unreachable!("the table is open") };
        assert_eq!(first.0, second.0, "the slot is reused");
        d.remove(first);
        assert_eq!(waiting(&d), 1, "a stale key leaves the new waiter alone");
        d.remove(second);
        assert_eq!(waiting(&d), 0);
    }

    #[tokio::test(start_paused = true)]
    async fn a_dropped_wait_leaves_the_table() {
        let (d, _stop, _task) = sweeper();
        let (_tx, rx) = oneshot::channel::<u32>();
        let t0 = Instant::now();
        let r = tokio::time::timeout(Duration::from_millis(10), d.bound(t0 + Duration::from_secs(5), rx)).await;
        assert!(r.is_err(), "the outer timeout ends it first");
        assert_eq!(waiting(&d), 0);
    }

    #[tokio::test(start_paused = true)]
    async fn after_the_sweeper_stops_waits_keep_their_deadlines() {
        let (d, stop, task) = sweeper();
        let t0 = Instant::now();
        let (_tx, early) = enrolled_waiter(&d, t0 + Duration::from_millis(200)).await;
        stop.send(()).expect("the sweeper runs");
        task.await.expect("sweeper ended");
        // Enrolled before the stop, and a new one after it.
        assert_eq!(unanswered(&d, t0 + Duration::from_millis(300)).await - t0, Duration::from_millis(300));
        assert_eq!(early.await.expect("waiter"), Err(Elapsed));
        assert_eq!(waiting(&d), 0);
    }

    #[tokio::test(start_paused = true)]
    async fn waits_in_deadline_order_end_on_time_with_the_sweeper_asleep_for_the_first() {
        let (d, _stop, _task) = sweeper();
        let t0 = Instant::now();
        let mut ends = Vec::new();
        for i in 0..10u64 {
            let d = Arc::clone(&d);
            let deadline = t0 + Duration::from_secs(1) + Duration::from_millis(i);
            ends.push(tokio::spawn(async move { unanswered(&d, deadline).await == deadline }));
            tokio::task::yield_now().await;
        }
        // Later deadlines never moved the sweeper's wake-up.
        assert_eq!(d.inner.lock().wake_at, Some(t0 + Duration::from_secs(1)));
        for end in ends {
            assert!(end.await.expect("waiter"), "each wait ends at its deadline");
        }
        assert_eq!(waiting(&d), 0);
    }

    #[tokio::test(start_paused = true)]
    async fn one_task_s_waits_in_a_row_use_one_entry() {
        let (d, _stop, _task) = sweeper();
        let t0 = Instant::now();
        for i in 0..100u32 {
            let (tx, rx) = oneshot::channel::<u32>();
            let answer = tokio::spawn(async move {
                tokio::task::yield_now().await;
                tx.send(i).expect("the waiter is alive");
            });
            let got = d.bound(t0 + Duration::from_secs(5), rx).await;
            assert_eq!(got.map(|r| r.ok()), Ok(Some(i)));
            answer.await.expect("answered");
            assert_eq!((waiting(&d), entries(&d)), (0, 1), "the entry left is kept for the next wait");
        }
        assert_eq!(d.inner.lock().slots.len(), 1, "every wait took the same slot");
    }

    #[tokio::test(start_paused = true)]
    async fn an_entry_left_behind_is_freed_at_its_deadline_and_never_cuts_a_later_wait_short() {
        let (d, _stop, _task) = sweeper();
        let t0 = Instant::now();
        let (tx, rx) = oneshot::channel::<u32>();
        tx.send(1).expect("the receiver is alive");
        // Answered at once: never waited, nothing enrolled.
        assert_eq!(d.bound(t0 + Duration::from_millis(100), rx).await.map(|r| r.ok()), Ok(Some(1)));
        assert_eq!(entries(&d), 0);
        // Waited, then answered: its entry stays, with its deadline.
        let (tx, rx) = oneshot::channel::<u32>();
        tokio::spawn(async move {
            tokio::time::sleep(Duration::from_millis(10)).await;
            tx.send(2).expect("the waiter is alive");
        });
        assert_eq!(d.bound(t0 + Duration::from_millis(100), rx).await.map(|r| r.ok()), Ok(Some(2)));
        assert_eq!(entries(&d), 1);
        // The sweeper frees it at that deadline.
        tokio::time::sleep_until(t0 + Duration::from_millis(101)).await;
        assert_eq!(entries(&d), 0, "freed by the sweeper");
        // A stale key left in this thread is never taken for a new wait: the
        // new wait still ends at its own deadline.
        let end = unanswered(&d, t0 + Duration::from_millis(400)).await;
        assert_eq!(end - t0, Duration::from_millis(400));
    }

    #[test]
    fn a_thread_keeps_one_entry_of_one_table() {
        let (a, b) = (Deadlines::default(), Deadlines::default());
        let (waker, t0) = (Waker::noop(), Instant::now());
        let enroll = |d: &Deadlines| match d.enroll(t0, None, waker) {
            Enrolled::At(key) => key,
            Enrolled::Closed => unreachable!("the table is open"),
        };
        let (ka, kb) = (enroll(&a), enroll(&b));
        a.leave(ka);
        b.leave(kb);
        assert_eq!((entries(&a), entries(&b)), (0, 1), "b's entry is kept, a's taken out");
        let (kb2, kb3) = (enroll(&b), enroll(&b));
        assert_eq!(kb2, kb, "the next wait takes the entry kept");
        assert_ne!(kb3, kb, "only one wait takes it");
        b.leave(kb3);
        b.leave(kb2);
        assert_eq!(entries(&b), 1, "a second entry of the same table replaces the first");
        drop(b);
        let c = Deadlines::default();
        let kc = enroll(&c);
        c.leave(kc);
        assert_eq!(entries(&c), 1, "a dropped table's note gives way");
        assert_eq!(entries(&a), 0);
    }
}
