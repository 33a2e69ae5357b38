//! The fence checked when a hosted message is about to run.
//!
//! A [`GrantGuard`] belongs to one grant of one shard on one node (one
//! epoch): it holds the grant's local deadline, which the lease driver
//! moves forward on each renewal and sets to the past on revocation. Every
//! activation of the shard checks it before each message
//! ([`axactor::RunGuard`]), so a message queued while the lease was valid
//! does not run once the deadline has passed: a node that stalls past its
//! deadline (a long pause, CPU starvation) does not run its backlog when it
//! resumes, even before its lease driver gets to revoke the shard. The
//! activation stops with `ExitReason::LeaseLost` instead.
//!
//! The clock it reads is its node env's fence clock (`fence_clock.rs`):
//! the OS coarse monotonic clock in production, which may end a grant up to
//! two ticks early; Tokio's clock in the simulation.
//!
//! What this cannot do: stop a handler that is already running when the
//! deadline passes (handlers are never interrupted). Writes to external
//! storage must carry `ctx.fence()`'s epoch as a fencing token for that.

use std::sync::atomic::{AtomicU64, Ordering};

use axactor::{ExitReason, RunGuard};
use tokio::time::Instant;

use crate::fence_clock::{FenceClock, Origin};
use crate::shard::fence_rule::may_run;

/// See the module docs.
#[derive(Debug)]
pub(crate) struct GrantGuard {
    /// The clock read before each message, and where it counts from.
    origin: Origin,
    /// The deadline on that clock (0 once revoked).
    limit: AtomicU64,
}

impl GrantGuard {
    /// A guard valid until `deadline`, read on `clock`.
    pub(crate) fn new(deadline: Instant, clock: FenceClock) -> GrantGuard {
        let origin = Origin::new(clock);
        GrantGuard { origin, limit: AtomicU64::new(origin.limit(deadline)) }
    }

    /// Moves the deadline to `deadline` if that is later.
    pub(crate) fn extend(&self, deadline: Instant) {
        self.limit.fetch_max(self.origin.limit(deadline), Ordering::AcqRel);
    }

    /// Ends the grant now: no further message of it runs.
    pub(crate) fn revoke(&self) {
        self.limit.store(0, Ordering::Release);
    }

    /// Whether a message may run now.
    #[inline]
    pub(crate) fn valid(&self) -> bool {
        may_run(self.origin.now(), self.limit.load(Ordering::Acquire))
    }
}

impl RunGuard for GrantGuard {
    fn admit(&self) -> Result<(), ExitReason> {
        if self.valid() || mutant!(FenceWhenQueued) { Ok(()) } else { Err(ExitReason::LeaseLost) }
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;

    #[tokio::test(start_paused = true)]
    async fn admits_until_the_deadline_then_stops_with_lease_lost() {
        let g = GrantGuard::new(Instant::now() + Duration::from_millis(100), FenceClock::Tokio);
        assert_eq!(g.admit(), Ok(()));
        tokio::time::advance(Duration::from_millis(99)).await;
        assert_eq!(g.admit(), Ok(()));
        g.extend(Instant::now() + Duration::from_millis(50));
        g.extend(Instant::now()); // never moves backwards
        tokio::time::advance(Duration::from_millis(49)).await;
        assert_eq!(g.admit(), Ok(()));
        tokio::time::advance(Duration::from_millis(1)).await;
        assert_eq!(g.admit(), Err(ExitReason::LeaseLost));
    }

    #[tokio::test(start_paused = true)]
    async fn revocation_is_immediate() {
        let g = GrantGuard::new(Instant::now() + Duration::from_secs(10), FenceClock::Tokio);
        g.revoke();
        assert_eq!(g.admit(), Err(ExitReason::LeaseLost));
        assert!(!g.valid());
    }

    /// On the OS coarse clock, in real time: valid before the deadline,
    /// not after it.
    #[cfg(any(target_os = "linux", target_os = "android"))]
    #[test]
    fn the_coarse_clock_guard_ends_in_real_time() {
        let g = GrantGuard::new(Instant::now() + Duration::from_millis(60), FenceClock::Coarse);
        assert!(g.valid(), "60 ms before its deadline (two ticks of margin)");
        std::thread::sleep(Duration::from_millis(60));
        assert!(!g.valid(), "past its deadline");
        g.extend(Instant::now() + Duration::from_secs(10));
        assert!(g.valid(), "extended");
        g.revoke();
        assert!(!g.valid());
    }
}
