//! [`Signal`]: a small value that tasks wait on, like `tokio::sync::watch`,
//! but waking its waiters in a deterministic order.
//!
//! Tokio's `watch` spreads its waiters over eight `Notify`s chosen at random
//! (the runtime's RNG, which cannot be seeded on stable Tokio), so when one
//! change wakes several tasks they run in a random order, and a simulated
//! run would not be a function of its seed. A `Signal` keeps one `Notify`:
//! waiters wake in the order they registered.

use std::pin::pin;

use parking_lot::Mutex;
use tokio::sync::Notify;

/// See the module docs.
#[derive(Debug, Default)]
pub(crate) struct Signal<T> {
    value: Mutex<T>,
    changed: Notify,
}

impl<T: Copy> Signal<T> {
    pub(crate) fn new(value: T) -> Signal<T> {
        Signal { value: Mutex::new(value), changed: Notify::new() }
    }

    /// The current value.
    pub(crate) fn get(&self) -> T {
        *self.value.lock()
    }

    /// Changes the value with `f`; if `f` returns `true` (it changed), wakes
    /// every waiter. Returns what `f` returned.
    pub(crate) fn update(&self, f: impl FnOnce(&mut T) -> bool) -> bool {
        let changed = f(&mut self.value.lock());
        if changed {
            self.changed.notify_waiters();
        }
        changed
    }

    /// Sets the value and wakes every waiter.
    pub(crate) fn set(&self, value: T) {
        self.update(|v| {
            *v = value;
            true
        });
    }

    /// Completes with the value once `pred` holds for it (at once if it
    /// already does).
    ///
    /// # Cancel safety
    /// Cancel safe: nothing is consumed.
    pub(crate) async fn wait_for(&self, pred: impl Fn(&T) -> bool) -> T {
        loop {
            let mut notified = pin!(self.changed.notified());
            // Registered before the value is read: a change made after the
            // read wakes this waiter.
            notified.as_mut().enable();
            let value = self.get();
            if pred(&value) {
                return value;
            }
            notified.await;
        }
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use super::*;

    #[tokio::test(flavor = "current_thread")]
    async fn waiters_see_changes_and_wake_in_order() {
        let s = Arc::new(Signal::new(0u32));
        assert_eq!(s.wait_for(|v| *v == 0).await, 0, "already true: at once");
        let order = Arc::new(Mutex::new(Vec::new()));
        let mut tasks = Vec::new();
        for i in 0..5 {
            let (s, order) = (Arc::clone(&s), Arc::clone(&order));
            tasks.push(tokio::spawn(async move {
                s.wait_for(|v| *v >= 1).await;
                order.lock().push(i);
            }));
            tokio::task::yield_now().await;
        }
        assert!(!s.update(|_| false), "no change, no wake-up");
        s.set(1);
        for t in tasks {
            t.await.expect("waiter");
        }
        assert_eq!(*order.lock(), vec![0, 1, 2, 3, 4]);
    }
}
