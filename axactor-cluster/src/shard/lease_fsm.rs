//! The lease of one shard, as seen by one node: a pure state machine.
//!
//! ```text
//!            start_acquire            on_acquired(Some)
//!   Free ──────────────────▶ Acquiring ─────────────────▶ Held ──┐ poll: Renew when due,
//!    ▲  ◀──────────────────────┘ (None / error)            │ ▲   │ on_renewed(true) extends
//!    │                                                     │ └───┘
//!    │◀── poll: Fence (local deadline passed) ─────────────┤
//!    │◀── on_renewed(false): Fence (store says: not ours) ─┤
//!    │                                                     │ start_release
//!    └──────────────── on_released ◀── Releasing ◀─────────┘
//! ```
//!
//! The **local deadline** is computed from when a request was *sent*, never
//! from when its answer arrived: `sent_at + lease_ttl - drift_margin`. The
//! store starts the lease's ttl no earlier than it receives the request, so
//! as long as the two clocks drift apart by less than the margin during one
//! ttl, this node stops using the lease before the store can grant it to
//! anyone else. The driver fences (stops the shard's activations) when
//! [`ShardLease::poll`] says so, whatever the store or network is doing.
//!
//! **Every grant this node uses has a greater epoch than every epoch the
//! store ever returned to it for this lease.** A store hands the holder its
//! current epoch again when the holder acquires a lease it still has (after
//! a fence, say, before the store expired it); and a grant that arrived too
//! late is released, but that release may land at any time later. Using the
//! same epoch twice would let such a stale release delete a grant in use,
//! and would give two activations of one key (the fenced one still stopping,
//! the new one) the same fencing epoch. So an acquire answered with an epoch
//! at or below the highest one seen is not used: the driver releases it and
//! acquires again later, when the store grants a fresh epoch.
//!
//! Time is an input (`now`), so every transition is unit tested without a
//! clock.

use std::time::Duration;

use tokio::time::Instant;

use crate::lease::Epoch;

/// The smallest drift margin.
pub(crate) const MIN_DRIFT_MARGIN: Duration = Duration::from_millis(50);

/// `max(2% of ttl, 50 ms)`.
pub(crate) fn drift_margin(ttl: Duration) -> Duration {
    (ttl / 50).max(MIN_DRIFT_MARGIN)
}

/// The timing of a lease.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct LeaseTimes {
    pub(crate) ttl: Duration,
    pub(crate) renew_interval: Duration,
    pub(crate) margin: Duration,
}

impl LeaseTimes {
    pub(crate) fn new(ttl: Duration, renew_interval: Duration) -> LeaseTimes {
        LeaseTimes { ttl, renew_interval, margin: drift_margin(ttl) }
    }

    /// The local deadline of a lease (re)granted by a request sent at `sent_at`.
    pub(crate) fn deadline(&self, sent_at: Instant) -> Instant {
        sent_at + self.ttl.saturating_sub(self.margin)
    }

    /// How soon a failed renewal is retried.
    fn retry(&self) -> Duration {
        (self.renew_interval / 4).max(Duration::from_millis(10))
    }
}

/// A held lease.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Held {
    pub(crate) epoch: Epoch,
    /// Stop using the lease at this instant unless a renewal succeeded.
    pub(crate) deadline: Instant,
    /// When the next renewal is due.
    pub(crate) next_renew: Instant,
    /// The send time of the renewal in flight, if any.
    pub(crate) renewing: Option<Instant>,
}

/// Where the lease stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Phase {
    Free,
    Acquiring { sent_at: Instant },
    Held(Held),
    Releasing { epoch: Epoch },
}

/// What the driver must do.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Action {
    /// Send a renewal for `epoch` (the send time is `now`).
    Renew { epoch: Epoch },
    /// Stop every activation of the shard at once: the lease at `epoch` is
    /// (or may be) lost.
    Fence { epoch: Epoch },
}

/// What an acquire's answer means for the driver.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Acquired {
    /// The lease is ours: use it.
    Held(Held),
    /// Granted, but not usable (too late to be safe, or an epoch already
    /// seen): release it at this epoch.
    Release(Epoch),
    /// Not granted (held by another session, or the store failed).
    Nothing,
}

/// The lease of one shard.
#[derive(Debug, Clone)]
pub(crate) struct ShardLease {
    times: LeaseTimes,
    phase: Phase,
    /// The highest epoch the store returned to this node for this lease.
    max_epoch: Epoch,
}

impl ShardLease {
    pub(crate) fn new(times: LeaseTimes) -> ShardLease {
        ShardLease { times, phase: Phase::Free, max_epoch: Epoch(0) }
    }

    pub(crate) fn phase(&self) -> Phase {
        self.phase
    }

    /// The epoch and deadline, while held.
    pub(crate) fn held(&self) -> Option<Held> {
        match self.phase {
            Phase::Held(h) => Some(h),
            _ => None,
        }
    }

    /// Free → Acquiring. Returns `true` if the driver must now send an
    /// acquire request (its send time is `now`).
    pub(crate) fn start_acquire(&mut self, now: Instant) -> bool {
        if self.phase != Phase::Free {
            return false;
        }
        self.phase = Phase::Acquiring { sent_at: now };
        true
    }

    /// The answer to the acquire request: `Ok(Some(epoch))` granted,
    /// `Ok(None)` held by someone else, `Err(())` unknown (store error or
    /// timeout). `allow_same_epoch` lifts the fresh-epoch rule (only the
    /// simulation's deliberate bug sets it).
    pub(crate) fn on_acquired(
        &mut self,
        result: Result<Option<Epoch>, ()>,
        now: Instant,
        allow_same_epoch: bool,
    ) -> Acquired {
        let Phase::Acquiring { sent_at } = self.phase else {
            // An answer nobody waits for (e.g. after a shutdown): give any
            // grant back.
            return match result {
                Ok(Some(epoch)) => {
                    self.max_epoch = self.max_epoch.max(epoch);
                    Acquired::Release(epoch)
                }
                _ => Acquired::Nothing,
            };
        };
        self.phase = Phase::Free;
        let Ok(Some(epoch)) = result else {
            return Acquired::Nothing;
        };
        let seen = self.max_epoch;
        self.max_epoch = seen.max(epoch);
        let deadline = self.times.deadline(sent_at);
        if deadline <= now || (epoch <= seen && !allow_same_epoch) {
            // Too late to use safely, or an epoch already seen: give it back.
            return Acquired::Release(epoch);
        }
        let held = Held { epoch, deadline, next_renew: sent_at + self.times.renew_interval, renewing: None };
        self.phase = Phase::Held(held);
        Acquired::Held(held)
    }

    /// Gives up an acquire in flight (shutdown): its answer, when it comes,
    /// is released ([`ShardLease::on_acquired`]).
    pub(crate) fn abandon(&mut self) {
        if matches!(self.phase, Phase::Acquiring { .. }) {
            self.phase = Phase::Free;
        }
    }

    /// What is due at `now`. `renew_allowed` is `false` while renewals are
    /// paused (the store is treated as unreachable).
    pub(crate) fn poll(&mut self, now: Instant, renew_allowed: bool) -> Option<Action> {
        let Phase::Held(mut h) = self.phase else {
            return None;
        };
        if now >= h.deadline {
            self.phase = Phase::Free;
            return Some(Action::Fence { epoch: h.epoch });
        }
        if renew_allowed && h.renewing.is_none() && now >= h.next_renew {
            h.renewing = Some(now);
            self.phase = Phase::Held(h);
            return Some(Action::Renew { epoch: h.epoch });
        }
        None
    }

    /// The answer to the renewal for `epoch` sent at `sent_at`:
    /// `Ok(true)` renewed, `Ok(false)` no longer ours, `Err(())` unknown.
    /// Returns `Some(Fence)` when the lease is known lost.
    pub(crate) fn on_renewed(&mut self, epoch: Epoch, result: Result<bool, ()>, now: Instant) -> Option<Action> {
        let Phase::Held(mut h) = self.phase else {
            return None;
        };
        if h.epoch != epoch {
            return None;
        }
        let sent_at = h.renewing.take()?;
        match result {
            Ok(true) => {
                h.deadline = h.deadline.max(self.times.deadline(sent_at));
                h.next_renew = sent_at + self.times.renew_interval;
            }
            Ok(false) => {
                self.phase = Phase::Free;
                return Some(Action::Fence { epoch });
            }
            Err(()) => h.next_renew = now + self.times.retry(),
        }
        self.phase = Phase::Held(h);
        None
    }

    /// Held → Releasing (the driver stops the activations, then releases).
    /// Returns the epoch to release.
    pub(crate) fn start_release(&mut self) -> Option<Epoch> {
        let Phase::Held(h) = self.phase else {
            return None;
        };
        self.phase = Phase::Releasing { epoch: h.epoch };
        Some(h.epoch)
    }

    /// The release finished (or failed: the lease then expires in the store).
    pub(crate) fn on_released(&mut self) {
        if matches!(self.phase, Phase::Releasing { .. }) {
            self.phase = Phase::Free;
        }
    }

    /// The next instant [`ShardLease::poll`] has something to do.
    pub(crate) fn next_wakeup(&self, renew_allowed: bool) -> Option<Instant> {
        match self.phase {
            Phase::Held(h) if renew_allowed && h.renewing.is_none() => Some(h.deadline.min(h.next_renew)),
            Phase::Held(h) => Some(h.deadline),
            _ => None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const TTL: Duration = Duration::from_secs(10);
    const RENEW: Duration = Duration::from_secs(3);

    fn ms(n: u64) -> Duration {
        Duration::from_millis(n)
    }

    fn held_at(t0: Instant) -> ShardLease {
        let mut l = ShardLease::new(LeaseTimes::new(TTL, RENEW));
        assert!(l.start_acquire(t0));
        assert!(matches!(l.on_acquired(Ok(Some(Epoch(7))), t0 + ms(5), false), Acquired::Held(_)));
        l
    }

    #[test]
    fn margin_is_two_percent_or_fifty_ms() {
        assert_eq!(drift_margin(TTL), ms(200));
        assert_eq!(drift_margin(ms(1000)), ms(50));
    }

    #[test]
    fn deadline_counts_from_the_send_time_not_the_answer() {
        let t0 = Instant::now();
        let mut l = ShardLease::new(LeaseTimes::new(TTL, RENEW));
        l.start_acquire(t0);
        // The answer takes 2 s to arrive: the deadline still starts at t0.
        let Acquired::Held(h) = l.on_acquired(Ok(Some(Epoch(1))), t0 + ms(2000), false) else { panic!("held") };
        assert_eq!(h.deadline, t0 + TTL - ms(200));
    }

    #[test]
    fn late_grant_is_not_used() {
        let t0 = Instant::now();
        let mut l = ShardLease::new(LeaseTimes::new(TTL, RENEW));
        l.start_acquire(t0);
        assert_eq!(l.on_acquired(Ok(Some(Epoch(1))), t0 + TTL, false), Acquired::Release(Epoch(1)));
        assert_eq!(l.phase(), Phase::Free);
    }

    #[test]
    fn refused_or_failed_acquire_is_free_again() {
        let t0 = Instant::now();
        let mut l = ShardLease::new(LeaseTimes::new(TTL, RENEW));
        assert!(l.start_acquire(t0));
        assert!(!l.start_acquire(t0), "one request at a time");
        assert_eq!(l.on_acquired(Ok(None), t0, false), Acquired::Nothing);
        assert!(l.start_acquire(t0));
        assert_eq!(l.on_acquired(Err(()), t0, false), Acquired::Nothing);
        assert_eq!(l.phase(), Phase::Free);
    }

    #[test]
    fn an_epoch_seen_before_is_never_used_again() {
        let t0 = Instant::now();
        let mut l = held_at(t0);
        // Fenced at the deadline; the store still has the lease (its expiry
        // is a margin later) and hands the holder the same epoch again.
        let Some(Action::Fence { epoch }) = l.poll(t0 + TTL, false) else { panic!("fenced") };
        assert_eq!(epoch, Epoch(7));
        assert!(l.start_acquire(t0 + TTL));
        assert_eq!(l.on_acquired(Ok(Some(Epoch(7))), t0 + TTL, false), Acquired::Release(Epoch(7)));
        // A late grant's epoch is burnt too: its release may land any time.
        assert!(l.start_acquire(t0 + TTL));
        assert_eq!(l.on_acquired(Ok(Some(Epoch(8))), t0 + TTL * 3, false), Acquired::Release(Epoch(8)));
        assert!(l.start_acquire(t0 + TTL * 3));
        assert_eq!(l.on_acquired(Ok(Some(Epoch(8))), t0 + TTL * 3, false), Acquired::Release(Epoch(8)));
        // A fresh epoch is used.
        assert!(l.start_acquire(t0 + TTL * 3));
        assert!(
            matches!(l.on_acquired(Ok(Some(Epoch(9))), t0 + TTL * 3, false), Acquired::Held(h) if h.epoch == Epoch(9))
        );
    }

    #[test]
    fn answers_nobody_waits_for_are_released() {
        let t0 = Instant::now();
        let mut l = ShardLease::new(LeaseTimes::new(TTL, RENEW));
        assert!(l.start_acquire(t0));
        l.abandon();
        assert_eq!(l.phase(), Phase::Free);
        assert_eq!(l.on_acquired(Ok(Some(Epoch(3))), t0, false), Acquired::Release(Epoch(3)));
        assert_eq!(l.on_acquired(Ok(None), t0, false), Acquired::Nothing);
    }

    #[test]
    fn renews_when_due_and_extends_from_the_send_time() {
        let t0 = Instant::now();
        let mut l = held_at(t0);
        assert_eq!(l.poll(t0 + ms(2999), true), None);
        let sent = t0 + RENEW;
        assert_eq!(l.poll(sent, true), Some(Action::Renew { epoch: Epoch(7) }));
        assert_eq!(l.poll(sent + ms(1), true), None, "one renewal in flight");
        assert_eq!(l.on_renewed(Epoch(7), Ok(true), sent + ms(900)), None);
        let h = l.held().expect("held");
        assert_eq!(h.deadline, sent + TTL - ms(200));
        assert_eq!(h.next_renew, sent + RENEW);
    }

    #[test]
    fn fences_at_the_deadline_when_renewals_fail() {
        let t0 = Instant::now();
        let mut l = held_at(t0);
        let mut now = t0;
        let mut fenced = None;
        while now < t0 + TTL * 2 {
            match l.poll(now, true) {
                Some(Action::Renew { epoch }) => {
                    assert!(l.on_renewed(epoch, Err(()), now).is_none());
                }
                Some(Action::Fence { epoch }) => {
                    fenced = Some((now, epoch));
                    break;
                }
                None => {}
            }
            now += ms(10);
        }
        let (at, epoch) = fenced.expect("fenced");
        assert_eq!(epoch, Epoch(7));
        assert_eq!(at, t0 + TTL - ms(200), "fenced exactly at sent + ttl - margin");
        assert!(at < t0 + TTL, "before the store can expire the lease");
    }

    #[test]
    fn paused_renewals_fence_at_the_deadline() {
        let t0 = Instant::now();
        let mut l = held_at(t0);
        assert_eq!(l.next_wakeup(false), Some(t0 + TTL - ms(200)));
        assert_eq!(l.poll(t0 + ms(9799), false), None);
        assert_eq!(l.poll(t0 + ms(9800), false), Some(Action::Fence { epoch: Epoch(7) }));
    }

    #[test]
    fn store_saying_not_ours_fences_at_once() {
        let t0 = Instant::now();
        let mut l = held_at(t0);
        let Some(Action::Renew { epoch }) = l.poll(t0 + RENEW, true) else { panic!("renew due") };
        assert_eq!(l.on_renewed(epoch, Ok(false), t0 + RENEW), Some(Action::Fence { epoch }));
        assert_eq!(l.phase(), Phase::Free);
    }

    #[test]
    fn stale_renewal_answers_are_ignored() {
        let t0 = Instant::now();
        let mut l = held_at(t0);
        let before = l.held();
        assert_eq!(l.on_renewed(Epoch(6), Ok(false), t0), None);
        assert_eq!(l.on_renewed(Epoch(7), Ok(true), t0), None, "no renewal in flight");
        assert_eq!(l.held(), before);
    }

    #[test]
    fn release_path() {
        let t0 = Instant::now();
        let mut l = held_at(t0);
        assert_eq!(l.start_release(), Some(Epoch(7)));
        assert_eq!(l.poll(t0 + TTL, true), None, "releasing: nothing due");
        l.on_released();
        assert_eq!(l.phase(), Phase::Free);
        assert_eq!(l.start_release(), None);
    }
}
