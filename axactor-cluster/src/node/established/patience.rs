//! [`Patience`]: how long a connection's reader may wait for room in a full
//! mailbox, so that one stuck activation cannot hold the connection.
//!
//! A request whose activation's mailbox is full is tried again after a few
//! yields (cheap, and enough when the activation is running on another
//! worker). When those bring no room, the activation is not running: it is
//! queued behind another task, its worker is descheduled, or its handler is
//! stuck. The reader then waits for room, and while it waits nothing else on
//! the connection is read (so one sender's messages keep their order): the
//! wait is what this bounds.
//!
//! A token bucket of waiting time: at most [`PER_WAIT`] at once, from a
//! store of at most [`STORE`] that refills at one [`SHARE`]th of the time
//! that passes. However many activations are stuck, the reader spends at
//! most `STORE` plus a tenth of its time waiting, and reads the rest. A
//! wait is never shorter than [`MIN_WAIT`] (Tokio's timer granularity).
//!
//! Read on Tokio's clock, and only when a wait is due (never per frame): a
//! paused test clock drives it.

use std::time::Duration;

use tokio::time::Instant;

/// The longest single wait for room.
pub(super) const PER_WAIT: Duration = Duration::from_millis(2);
/// The most waiting time stored.
pub(super) const STORE: Duration = Duration::from_millis(20);
/// The store refills at `1 / SHARE` of the time that passes.
pub(super) const SHARE: u32 = 10;
/// The shortest wait: Tokio's timers count whole milliseconds, so a shorter
/// one would last this long anyway.
pub(super) const MIN_WAIT: Duration = Duration::from_millis(1);

/// See the module docs.
#[derive(Debug)]
pub(super) struct Patience {
    left: Duration,
    /// When `left` was last refilled.
    at: Instant,
}

impl Patience {
    /// A full store.
    pub(super) fn new() -> Patience {
        Patience { left: STORE, at: Instant::now() }
    }

    /// How long a wait may last if it starts at `now` (zero: no wait; else
    /// at least [`MIN_WAIT`]).
    pub(super) fn allowance(&mut self, now: Instant) -> Duration {
        let passed = now.saturating_duration_since(self.at);
        self.at = self.at.max(now);
        self.left = (self.left + passed / SHARE).min(STORE);
        if self.left < MIN_WAIT { Duration::ZERO } else { self.left.min(PER_WAIT) }
    }

    /// A wait took `waited`.
    pub(super) fn spend(&mut self, waited: Duration) {
        self.left = self.left.saturating_sub(waited);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Full waits until the store is spent; then only what a tenth of the
    /// time since has put back, never more than the store.
    #[tokio::test(start_paused = true)]
    async fn waits_are_bounded_by_the_store_and_a_tenth_of_the_time() {
        let mut p = Patience::new();
        let waits = (STORE.as_micros() / PER_WAIT.as_micros()) as usize;
        for _ in 0..waits {
            let now = Instant::now();
            assert_eq!(p.allowance(now), PER_WAIT);
            tokio::time::advance(PER_WAIT).await;
            p.spend(now.elapsed());
        }
        // The waits themselves put a tenth of their time back.
        let back = PER_WAIT * waits as u32 / SHARE;
        assert_eq!(p.allowance(Instant::now()), back);
        p.spend(back);
        assert_eq!(p.allowance(Instant::now()), Duration::ZERO);
        // Half a millisecond put back: too short for a timer.
        tokio::time::advance(Duration::from_millis(5)).await;
        assert_eq!(p.allowance(Instant::now()), Duration::ZERO);
        tokio::time::advance(Duration::from_millis(7)).await;
        assert_eq!(p.allowance(Instant::now()), Duration::from_micros(1200));
        tokio::time::advance(Duration::from_secs(60)).await;
        assert_eq!(p.allowance(Instant::now()), PER_WAIT, "refilled");
        p.spend(PER_WAIT);
        assert_eq!(p.left, STORE - PER_WAIT, "never more than the store");
    }
}
