//! The clock the fencing guard ([`crate::fence::GrantGuard`]) reads before
//! every hosted message: the one read on the per-message path.
//!
//! - [`FenceClock::Coarse`] (production on Linux): `CLOCK_MONOTONIC_COARSE`,
//!   which the kernel updates once per tick and which is read from the vDSO
//!   without the time-stamp counter (a few ns, against a few tens for
//!   `CLOCK_MONOTONIC`). It lags the precise clock by about one tick (its
//!   resolution, `clock_getres`), a little more when a tick interrupt comes
//!   late, so the guard takes two ticks of margin: it compares
//!   `coarse + 2 ticks` with the deadline, and may stop a grant up to two
//!   ticks early (8 ms at 250 Hz). Were the coarse clock ever to lag more,
//!   the lease's drift margin (at least 50 ms, `lease_fsm.rs`) still lies
//!   between the guard's deadline and the store's expiry. Deadlines are
//!   converted once per renewal, from Tokio's clock (which is
//!   `CLOCK_MONOTONIC` when not paused) to the OS clock, rounding down.
//! - [`FenceClock::Tokio`]: Tokio's clock, so a paused test clock drives the
//!   guard. The deterministic simulation ([`crate::Env::seeded`]) uses it,
//!   and so does every platform without a coarse monotonic clock.
//!
//! Both compare with the same rule (`shard::fence_rule::may_run`).

use std::time::Duration;

use tokio::time::Instant;

/// See the module docs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum FenceClock {
    /// Tokio's clock (follows a paused test clock).
    Tokio,
    /// The OS coarse monotonic clock, with its resolution as margin.
    #[cfg(any(target_os = "linux", target_os = "android"))]
    Coarse,
}

impl FenceClock {
    /// The cheapest clock that keeps the guard's promise here: `Coarse` on
    /// Linux, else `Tokio`.
    pub(crate) fn os() -> FenceClock {
        #[cfg(any(target_os = "linux", target_os = "android"))]
        {
            FenceClock::Coarse
        }
        #[cfg(not(any(target_os = "linux", target_os = "android")))]
        {
            FenceClock::Tokio
        }
    }
}

/// A point on a [`FenceClock`], in nanoseconds after that clock's origin
/// (for `Tokio`, the guard's creation).
#[derive(Debug, Clone, Copy)]
pub(crate) struct Origin {
    clock: FenceClock,
    /// `Tokio`: the instant times are counted from.
    base: Instant,
}

impl Origin {
    /// Counts from now on `clock`.
    pub(crate) fn new(clock: FenceClock) -> Origin {
        Origin { clock, base: Instant::now() }
    }

    /// `deadline` (on Tokio's clock) as a time on this clock, rounded down:
    /// a time on this clock never reads past it while the true time is
    /// before `deadline`.
    pub(crate) fn limit(&self, deadline: Instant) -> u64 {
        match self.clock {
            FenceClock::Tokio => nanos(deadline.saturating_duration_since(self.base)),
            #[cfg(any(target_os = "linux", target_os = "android"))]
            FenceClock::Coarse => {
                // The OS clock first: the remaining time is then measured
                // from a later point, so the limit errs early.
                let os_now = coarse::precise_ns();
                let remaining = deadline.saturating_duration_since(Instant::now());
                os_now.saturating_add(nanos(remaining)).saturating_sub(coarse::margin_ns())
            }
        }
    }

    /// Now on this clock (for `Coarse`, up to one resolution behind).
    #[inline]
    pub(crate) fn now(&self) -> u64 {
        match self.clock {
            FenceClock::Tokio => nanos(self.base.elapsed()),
            #[cfg(any(target_os = "linux", target_os = "android"))]
            FenceClock::Coarse => coarse::now_ns(),
        }
    }
}

fn nanos(d: Duration) -> u64 {
    u64::try_from(d.as_nanos()).unwrap_or(u64::MAX)
}

#[cfg(any(target_os = "linux", target_os = "android"))]
mod coarse {
    use std::sync::OnceLock;

    use rustix::time::{ClockId, Timespec, clock_getres, clock_gettime};

    fn ns(t: Timespec) -> u64 {
        let secs = u64::try_from(t.tv_sec).unwrap_or(0);
        let sub = u64::try_from(t.tv_nsec).unwrap_or(0);
        secs.saturating_mul(1_000_000_000).saturating_add(sub)
    }

    /// `CLOCK_MONOTONIC_COARSE`, ns.
    #[inline]
    pub(super) fn now_ns() -> u64 {
        ns(clock_gettime(ClockId::MonotonicCoarse))
    }

    /// `CLOCK_MONOTONIC`, ns.
    pub(super) fn precise_ns() -> u64 {
        ns(clock_gettime(ClockId::Monotonic))
    }

    /// How far the coarse clock is taken to lag the precise one: two of
    /// its ticks (`clock_getres`; one tick, plus a late tick interrupt),
    /// at least 2 ms, at most 100 ms (a kernel reporting more would make
    /// every grant end that much early).
    pub(super) fn margin_ns() -> u64 {
        static MARGIN: OnceLock<u64> = OnceLock::new();
        *MARGIN
            .get_or_init(|| ns(clock_getres(ClockId::MonotonicCoarse)).saturating_mul(2).clamp(2_000_000, 100_000_000))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The coarse clock plus its margin is never behind the precise clock:
    /// what makes `Coarse` stop a grant early, never late. (One tick alone
    /// is not enough: a late tick interrupt left it 33 ns short here.)
    #[cfg(any(target_os = "linux", target_os = "android"))]
    #[test]
    fn the_coarse_clock_with_its_margin_never_trails_the_precise_one() {
        let res = coarse::margin_ns();
        let start = std::time::Instant::now();
        let mut reads = 0u64;
        while start.elapsed() < Duration::from_millis(50) {
            let precise = coarse::precise_ns();
            let coarse_now = coarse::now_ns();
            assert!(coarse_now + res >= precise, "coarse {coarse_now} + {res} < precise {precise}");
            reads += 1;
        }
        assert!(reads > 1_000, "the loop ran ({reads} reads)");
    }

    /// A deadline converted to the coarse clock is reached no later than on
    /// Tokio's (real) clock, and no earlier than the margin before it.
    #[cfg(any(target_os = "linux", target_os = "android"))]
    #[test]
    fn a_coarse_limit_comes_at_most_one_resolution_early() {
        let o = Origin::new(FenceClock::Coarse);
        let res = coarse::margin_ns();
        let ahead = Duration::from_millis(200);
        let before = coarse::precise_ns();
        let limit = o.limit(Instant::now() + ahead);
        let after = coarse::precise_ns();
        assert!(limit <= after + nanos(ahead) - res, "never later than the deadline less the margin");
        assert!(limit + res + 1_000_000 >= before + nanos(ahead), "not more than the margin (and 1 ms) early");
        assert!(o.now() < limit);
    }

    #[tokio::test(start_paused = true)]
    async fn the_tokio_clock_follows_a_paused_clock() {
        let o = Origin::new(FenceClock::Tokio);
        let limit = o.limit(Instant::now() + Duration::from_millis(5));
        assert_eq!(limit, 5_000_000);
        tokio::time::advance(Duration::from_millis(5)).await;
        assert_eq!(o.now(), 5_000_000);
    }
}
