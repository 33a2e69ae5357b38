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
//! What this cannot do: stop a handler that is already running when the
//! deadline passes (handlers are never interrupted). Writes to external
//! storage must carry `ctx.fence()`'s epoch as a fencing token for that.

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use axactor::{ExitReason, RunGuard};
use tokio::time::Instant;

use crate::shard::fence_rule::may_run;

/// See the module docs.
#[derive(Debug)]
pub(crate) struct GrantGuard {
    /// Deadlines are kept as microseconds after this instant (tokio's clock).
    base: Instant,
    deadline_us: AtomicU64,
}

impl GrantGuard {
    /// A guard valid until `deadline`.
    pub(crate) fn new(deadline: Instant) -> GrantGuard {
        let base = Instant::now();
        GrantGuard { base, deadline_us: AtomicU64::new(micros(deadline.saturating_duration_since(base))) }
    }

    /// Moves the deadline to `deadline` if that is later.
    pub(crate) fn extend(&self, deadline: Instant) {
        self.deadline_us.fetch_max(micros(deadline.saturating_duration_since(self.base)), Ordering::AcqRel);
    }

    /// Ends the grant now: no further message of it runs.
    pub(crate) fn revoke(&self) {
        self.deadline_us.store(0, Ordering::Release);
    }

    /// Whether a message may run now.
    pub(crate) fn valid(&self) -> bool {
        may_run(micros(self.base.elapsed()), self.deadline_us.load(Ordering::Acquire))
    }
}

fn micros(d: Duration) -> u64 {
    u64::try_from(d.as_micros()).unwrap_or(u64::MAX)
}

impl RunGuard for GrantGuard {
    fn admit(&self) -> Result<(), ExitReason> {
        if self.valid() || mutant!(FenceWhenQueued) { Ok(()) } else { Err(ExitReason::LeaseLost) }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test(start_paused = true)]
    async fn admits_until_the_deadline_then_stops_with_lease_lost() {
        let g = GrantGuard::new(Instant::now() + Duration::from_millis(100));
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
        let g = GrantGuard::new(Instant::now() + Duration::from_secs(10));
        g.revoke();
        assert_eq!(g.admit(), Err(ExitReason::LeaseLost));
        assert!(!g.valid());
    }
}
