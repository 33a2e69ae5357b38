//! A small FIFO of parked tasks, used for senders waiting on mailbox space and
//! for tasks waiting on an actor's exit. It lives inside a mutex owned by the
//! caller; wakers are returned so they can be woken after the lock is dropped.

use std::collections::VecDeque;
use std::task::Waker;

/// Parked tasks in arrival order, each under a ticket so a cancelled waiter
/// can remove itself.
#[derive(Debug, Default)]
pub(crate) struct WaitList {
    next_ticket: u64,
    parked: VecDeque<(u64, Waker)>,
}

impl WaitList {
    /// Parks `waker` under `ticket`, reusing the ticket if it is still parked
    /// (then only the waker is refreshed).
    pub(crate) fn park(&mut self, ticket: &mut Option<u64>, waker: &Waker) {
        if let Some(t) = *ticket
            && let Some(slot) = self.parked.iter_mut().find(|(id, _)| *id == t)
        {
            if !slot.1.will_wake(waker) {
                slot.1 = waker.clone();
            }
            return;
        }
        let t = self.next_ticket;
        self.next_ticket = self.next_ticket.wrapping_add(1);
        self.parked.push_back((t, waker.clone()));
        *ticket = Some(t);
    }

    /// Removes `ticket`; `false` if it was no longer parked (it was woken).
    pub(crate) fn cancel(&mut self, ticket: u64) -> bool {
        match self.parked.iter().position(|(id, _)| *id == ticket) {
            Some(i) => {
                self.parked.remove(i);
                true
            }
            None => false,
        }
    }

    /// Unparks the oldest waiter.
    pub(crate) fn pop(&mut self) -> Option<Waker> {
        self.parked.pop_front().map(|(_, w)| w)
    }

    /// Unparks everyone.
    pub(crate) fn take_all(&mut self) -> VecDeque<(u64, Waker)> {
        std::mem::take(&mut self.parked)
    }
}

/// Wakes every waker of a drained list (call after releasing the lock).
pub(crate) fn wake_all(list: VecDeque<(u64, Waker)>) {
    for (_, w) in list {
        w.wake();
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::task::Waker;

    #[test]
    fn fifo_and_cancel() {
        let mut l = WaitList::default();
        let (mut a, mut b) = (None, None);
        l.park(&mut a, Waker::noop());
        l.park(&mut b, Waker::noop());
        l.park(&mut a, Waker::noop()); // refresh keeps the place
        assert_eq!(l.parked.len(), 2);
        assert!(l.cancel(b.unwrap_or(u64::MAX)));
        assert!(l.pop().is_some());
        assert!(l.parked.is_empty());
        assert!(!l.cancel(a.unwrap_or(u64::MAX)));
    }
}
