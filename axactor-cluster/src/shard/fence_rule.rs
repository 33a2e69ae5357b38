//! The fence rule: whether a message may reach a shard's activations now.
//!
//! A node delivers a message to a shard only while it holds the shard's
//! grant, at exactly the epoch the sender names (when it names one), and
//! before the grant's local deadline (see `lease_fsm`: the deadline is
//! counted from when the acquire or renewal was *sent*). A revoked or
//! stopping shard has no grant any more: the host drops it under the lock
//! deliveries take, so nothing more is enqueued once the revocation starts.
//! The checks run in a fixed order, which decides the rejection a sender
//! sees:
//!
//! | grant | epoch named | now | answer |
//! |---|---|---|---|
//! | none (never held, revoked, stopping) | any | any | `NotOwner` |
//! | held at `e` | `n != e` | any | `StaleEpoch { current: e }` |
//! | held at `e` | none or `e` | `>= deadline` | `NotOwner` |
//! | held at `e` | none or `e` | `< deadline` | delivered |
//!
//! Once a message is queued, each activation checks its grant's guard
//! again before running it ([`may_run`], through `crate::fence`): a message
//! queued in time does not run after the deadline or after a revocation.
//!
//! Both checks are on the per-request path: they take plain values (the
//! caller reads the clock once) and allocate nothing.

use tokio::time::Instant;

use crate::lease::Epoch;
use crate::wire::Rejection;

/// A shard's grant on this node, as deliveries see it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Grant {
    /// The epoch the lease was granted at.
    pub(crate) epoch: Epoch,
    /// The local deadline: no delivery at or after it.
    pub(crate) deadline: Instant,
}

/// Whether a message for a shard may be delivered at `now` (see the module
/// docs). `grant` is the shard's grant on this node (`None`: not held);
/// `epoch` the epoch the sender names (`None`: a local delivery, which
/// takes whatever epoch is held).
#[inline]
pub(crate) fn admit(grant: Option<Grant>, epoch: Option<u64>, now: Instant) -> Result<(), Rejection> {
    let Some(grant) = grant else {
        return Err(Rejection::NotOwner { owner_hint: None });
    };
    if let Some(e) = epoch
        && e != grant.epoch.0
        && !mutant!(SkipEpochCheck)
    {
        return Err(Rejection::StaleEpoch { current: grant.epoch.0 });
    }
    if now >= grant.deadline {
        return Err(Rejection::NotOwner { owner_hint: None });
    }
    Ok(())
}

/// Whether a queued message may start running at `now` under a grant whose
/// deadline is `limit`, both read on the guard's clock (`fence_clock.rs`).
/// A revoked grant's limit is 0: nothing runs.
#[inline]
pub(crate) fn may_run(now: u64, limit: u64) -> bool {
    now < limit
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;

    fn grant(t0: Instant) -> Option<Grant> {
        Some(Grant { epoch: Epoch(7), deadline: t0 + Duration::from_secs(10) })
    }

    #[test]
    fn a_live_grant_admits_its_epoch_and_local_deliveries() {
        let t0 = Instant::now();
        assert_eq!(admit(grant(t0), Some(7), t0), Ok(()));
        assert_eq!(admit(grant(t0), None, t0), Ok(()));
        assert_eq!(admit(grant(t0), Some(7), t0 + Duration::from_millis(9_999)), Ok(()));
    }

    #[test]
    fn no_grant_is_not_owner_whatever_the_epoch() {
        let t0 = Instant::now();
        assert_eq!(admit(None, Some(7), t0), Err(Rejection::NotOwner { owner_hint: None }));
        assert_eq!(admit(None, None, t0), Err(Rejection::NotOwner { owner_hint: None }));
    }

    #[test]
    fn another_epoch_is_stale_and_names_the_current_one() {
        let t0 = Instant::now();
        assert_eq!(admit(grant(t0), Some(6), t0), Err(Rejection::StaleEpoch { current: 7 }));
        assert_eq!(admit(grant(t0), Some(8), t0), Err(Rejection::StaleEpoch { current: 7 }));
    }

    #[test]
    fn the_epoch_is_checked_before_the_deadline() {
        let t0 = Instant::now();
        let late = t0 + Duration::from_secs(60);
        assert_eq!(admit(grant(t0), Some(6), late), Err(Rejection::StaleEpoch { current: 7 }));
    }

    #[test]
    fn the_deadline_itself_is_too_late() {
        let t0 = Instant::now();
        let deadline = t0 + Duration::from_secs(10);
        assert_eq!(admit(grant(t0), Some(7), deadline), Err(Rejection::NotOwner { owner_hint: None }));
        assert_eq!(
            admit(grant(t0), None, deadline + Duration::from_secs(1)),
            Err(Rejection::NotOwner { owner_hint: None })
        );
    }

    #[test]
    fn queued_messages_run_only_before_the_deadline() {
        assert!(may_run(0, 1));
        assert!(may_run(99, 100));
        assert!(!may_run(100, 100), "the deadline itself is too late");
        assert!(!may_run(101, 100));
    }

    #[test]
    fn a_revoked_grant_runs_nothing() {
        assert!(!may_run(0, 0));
        assert!(!may_run(5, 0));
    }
}
