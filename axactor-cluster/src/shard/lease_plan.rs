//! The lease driver's decisions, pure: for every shard, what to do on a
//! poll, on a placement pass and on each answer of the lease store.
//!
//! The driver (`crate::manager`) owns the store I/O, the timers and the
//! hosted registries; it reads the clock once per pass and feeds `now` in.
//! A [`LeasePlan`] holds what the node decides by (the lease timing, the
//! handover pacer, whether it is a member, how fresh its view of the members
//! must be); a [`ShardPlan`] holds one shard's state: its [`ShardLease`],
//! whether a store operation (or a handover) is in flight, whether the
//! activations of a fenced grant are still stopping, and since when the
//! shard has been seen free while preferred for another node. Each input
//! returns the [`Step`] the driver must carry out, if any.
//!
//! ```text
//!  poll(now)            ─▶ Renew { epoch, bound } | Fence { epoch, kill_at }
//!  place_shard(now, ..) ─▶ Acquire | Probe | HandOver { epoch, kill_at }
//!  on_acquired          ─▶ Grant(held) | Release(epoch)
//!  on_renewed           ─▶ Extend(held) | Fence { epoch, kill_at }
//!  on_probed            ─▶ Acquire (an orphan, free for a whole renew interval)
//! ```
//!
//! Rules (see `crate::shard::placement` for who is a candidate):
//! - a shard with a store operation in flight, or whose fenced activations
//!   are still stopping, is left out of placement: a new grant's activations
//!   never overlap the fenced ones on this node;
//! - only a member takes free shards; a free shard preferred for this node
//!   is acquired at once, any other free shard is probed, and acquired only
//!   once it has been seen free for a whole `renew_interval` (its preferred
//!   owner may be alive but cut off from the store);
//! - a held shard preferred for another *connected* candidate is handed
//!   over when the pacer allows (a pending member may never show up);
//! - a fence kills what still runs half a drift margin later, still before
//!   the store can expire the lease; a handover or shutdown kills at the
//!   registry's stop timeout, but never past the lease's local deadline;
//! - a renewal may not outlive the deadline it could extend.

use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration;

use tokio::time::Instant;

use super::lease_fsm::{Acquired, Action, Held, LeaseTimes, Phase, ShardLease};
use super::placement::{MemberState, MovePacer};
use crate::id::NodeId;
use crate::lease::Epoch;

/// What the driver must do for one shard.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Step {
    /// Send an acquire request (its send time is `now`).
    Acquire,
    /// Read the lease: the shard looks free but is preferred for another node.
    Probe,
    /// Send a renewal of `epoch` (sent now), given up after `bound`.
    Renew { epoch: Epoch, bound: Duration },
    /// The lease at `epoch` is (or may be) lost: stop the shard's
    /// activations at once with `LeaseLost`, kill those still running at
    /// `kill_at`, and report [`ShardPlan::on_stopped`] once all have ended.
    Fence { epoch: Epoch, kill_at: Instant },
    /// Stop the shard's activations (killing at `kill_at`), then release
    /// the lease at `epoch` and tell the peers; report
    /// [`ShardPlan::on_released`].
    HandOver { epoch: Epoch, kill_at: Instant },
    /// The lease is ours: grant the shard to its activations.
    Grant(Held),
    /// A renewal moved the deadline (or kept it): tell the activations.
    Extend(Held),
    /// A grant not to be used: give it back quietly.
    Release(Epoch),
}

/// What the node decides by, for all its shards.
#[derive(Debug)]
pub(crate) struct LeasePlan {
    times: LeaseTimes,
    pacer: MovePacer,
    /// A read of the members at or after this instant is fresh (a heartbeat
    /// interval after start, and the newest registration).
    fresh_after: Instant,
    /// Whether the last placement pass found this node a member.
    member: bool,
    /// Per registry: the other shard count the store last refused it for.
    conflicts: BTreeMap<String, Option<u64>>,
}

/// One shard's state in the driver.
#[derive(Debug, Clone)]
pub(crate) struct ShardPlan {
    fsm: ShardLease,
    /// A store operation (or a handover) is in flight.
    busy: bool,
    /// Activations of a fenced grant are still stopping.
    stopping: bool,
    /// When this node first saw the shard free while preferring another node.
    free_since: Option<Instant>,
}

/// Where one shard should live, as a placement pass sees it.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Preference<'a> {
    /// This node.
    pub(crate) me: &'a NodeId,
    /// The shard's preferred owner among the registry's candidates.
    pub(crate) preferred: Option<&'a NodeId>,
    /// The registry's connected candidates (this node included).
    pub(crate) connected: &'a BTreeSet<NodeId>,
    /// The registry's stop timeout (a handover's kill deadline).
    pub(crate) stop_timeout: Duration,
}

impl LeasePlan {
    /// A plan started at `now`; members read before `now + heartbeat` are
    /// not fresh enough to take shards by.
    pub(crate) fn new(
        times: LeaseTimes,
        settle: Duration,
        max_moves: usize,
        heartbeat: Duration,
        now: Instant,
    ) -> LeasePlan {
        LeasePlan {
            times,
            pacer: MovePacer::new(settle, times.renew_interval, max_moves, now),
            fresh_after: now.checked_add(heartbeat).unwrap_or(now),
            member: false,
            conflicts: BTreeMap::new(),
        }
    }

    /// A shard's state, free.
    pub(crate) fn new_shard(&self) -> ShardPlan {
        ShardPlan { fsm: ShardLease::new(self.times), busy: false, stopping: false, free_since: None }
    }

    /// A registry was added at `now`: read the members afresh before placing
    /// its shards.
    pub(crate) fn registry_added(&mut self, now: Instant) {
        self.fresh_after = self.fresh_after.max(now);
    }

    /// Whether members read at `last_read` are fresh enough to take shards by.
    pub(crate) fn members_fresh(&self, last_read: Option<Instant>) -> bool {
        last_read.is_some_and(|at| at >= self.fresh_after)
    }

    /// Since when this node has been waiting for a fresh read of the members.
    pub(crate) fn waiting_since(&self) -> Instant {
        self.fresh_after
    }

    /// Records this pass's standing: only a member takes free shards.
    pub(crate) fn set_standing(&mut self, state: MemberState) {
        self.member = state == MemberState::Member;
    }

    /// Whether the store refusing a registry's shards because of another
    /// shard count (`conflict`, or `None`: no refusal) is news: reported
    /// once per change, per registry.
    pub(crate) fn conflict_changed(&mut self, registry: &str, conflict: Option<u64>) -> bool {
        match self.conflicts.get_mut(registry) {
            Some(known) if *known == conflict => false,
            Some(known) => {
                *known = conflict;
                true
            }
            None => {
                self.conflicts.insert(registry.to_string(), conflict);
                conflict.is_some()
            }
        }
    }

    /// Records this pass's connected candidates (all registries): a change
    /// restarts the handover settle window.
    pub(crate) fn observe_candidates(&mut self, view: &BTreeSet<NodeId>, now: Instant) {
        self.pacer.observe(view, now);
    }

    /// What is due for `shard` at `now`; `renew` is `false` while renewals
    /// are paused (the store is treated as unreachable).
    pub(crate) fn poll(&self, shard: &mut ShardPlan, now: Instant, renew: bool) -> Option<Step> {
        match shard.fsm.poll(now, renew)? {
            Action::Renew { epoch } => {
                // The renewal may not outlive the deadline it could extend.
                let bound = shard.fsm.held().map_or(Duration::ZERO, |h| h.deadline.saturating_duration_since(now));
                Some(Step::Renew { epoch, bound })
            }
            Action::Fence { epoch } => Some(self.fence(shard, epoch, now)),
        }
    }

    /// A fence: out of placement until every fenced activation has ended.
    fn fence(&self, shard: &mut ShardPlan, epoch: Epoch, now: Instant) -> Step {
        shard.stopping = true;
        Step::Fence { epoch, kill_at: now + self.times.margin / 2 }
    }

    /// One shard's part of a placement pass at `now`.
    pub(crate) fn place_shard(&mut self, shard: &mut ShardPlan, pref: &Preference<'_>, now: Instant) -> Option<Step> {
        if shard.busy || shard.stopping {
            return None;
        }
        let preferred = pref.preferred;
        // Handovers go to connected candidates only: a pending member may
        // never show up.
        let target = preferred.is_some_and(|p| p != pref.me && pref.connected.contains(p));
        match shard.fsm.phase() {
            Phase::Free if !self.member => None,
            Phase::Free if preferred == Some(pref.me) => shard.start_acquire(now),
            Phase::Free => {
                shard.busy = true;
                Some(Step::Probe)
            }
            Phase::Held(_) if target && self.pacer.try_move(now) => {
                let kill_at = shard.stop_deadline(now, pref.stop_timeout);
                let epoch = shard.fsm.start_release()?;
                shard.busy = true;
                Some(Step::HandOver { epoch, kill_at })
            }
            _ => None,
        }
    }

    /// The answer to the acquire sent for `shard`. `allow_same_epoch`: see
    /// [`ShardLease::on_acquired`].
    pub(crate) fn on_acquired(
        &self,
        shard: &mut ShardPlan,
        result: Result<Option<Epoch>, ()>,
        now: Instant,
        allow_same_epoch: bool,
    ) -> Option<Step> {
        shard.busy = false;
        shard.free_since = None;
        match shard.fsm.on_acquired(result, now, allow_same_epoch) {
            Acquired::Held(held) => Some(Step::Grant(held)),
            // Granted too late, or at an epoch this node saw before.
            Acquired::Release(epoch) => Some(Step::Release(epoch)),
            Acquired::Nothing => None,
        }
    }

    /// The answer to the renewal of `epoch`.
    pub(crate) fn on_renewed(
        &self,
        shard: &mut ShardPlan,
        epoch: Epoch,
        result: Result<bool, ()>,
        now: Instant,
    ) -> Option<Step> {
        match shard.fsm.on_renewed(epoch, result, now) {
            Some(Action::Fence { epoch }) => Some(self.fence(shard, epoch, now)),
            Some(Action::Renew { .. }) => None,
            None => shard.fsm.held().map(Step::Extend),
        }
    }

    /// The answer to a probe: whether the lease was free. An orphan (free
    /// for a whole renew interval) is acquired by a member.
    pub(crate) fn on_probed(&self, shard: &mut ShardPlan, free: bool, now: Instant) -> Option<Step> {
        shard.busy = false;
        if !free {
            shard.free_since = None;
            return None;
        }
        let since = *shard.free_since.get_or_insert(now);
        let waited = now.saturating_duration_since(since) >= self.times.renew_interval;
        if self.member && shard.fsm.phase() == Phase::Free && waited {
            return shard.start_acquire(now);
        }
        None
    }
}

impl ShardPlan {
    /// Whether the shard is held or being released (not free, not acquiring).
    pub(crate) fn holding(&self) -> bool {
        !matches!(self.fsm.phase(), Phase::Free | Phase::Acquiring { .. })
    }

    /// The next instant [`LeasePlan::poll`] has something to do.
    pub(crate) fn next_wakeup(&self, renew: bool) -> Option<Instant> {
        self.fsm.next_wakeup(renew)
    }

    fn start_acquire(&mut self, now: Instant) -> Option<Step> {
        if !self.fsm.start_acquire(now) {
            return None;
        }
        self.busy = true;
        Some(Step::Acquire)
    }

    /// When activations still running after a stop request are killed: the
    /// registry's stop timeout, but never past the lease's local deadline
    /// (renewals stop while a shard is being released).
    fn stop_deadline(&self, now: Instant, stop_timeout: Duration) -> Instant {
        let by_timeout = now + stop_timeout;
        self.fsm.held().map_or(by_timeout, |h| by_timeout.min(h.deadline))
    }

    /// Every activation of the fenced grant has ended: back in placement.
    pub(crate) fn on_stopped(&mut self) {
        self.stopping = false;
    }

    /// A release (handover, or a shutdown's) finished or failed.
    pub(crate) fn on_released(&mut self) {
        self.busy = false;
        self.fsm.on_released();
    }

    /// A probe's answer arriving during shutdown: nothing more to do.
    pub(crate) fn on_probe_ended(&mut self) {
        self.busy = false;
    }

    /// Shutdown: stop the activations (killing at the returned instant) and
    /// release the lease at the returned epoch, if held.
    pub(crate) fn start_shutdown(&mut self, now: Instant, stop_timeout: Duration) -> Option<(Epoch, Instant)> {
        let kill_at = self.stop_deadline(now, stop_timeout);
        self.fsm.start_release().map(|epoch| (epoch, kill_at))
    }

    /// Whether shutdown must still wait for this shard's operation in flight.
    pub(crate) fn in_flight(&self) -> bool {
        self.busy && self.fsm.phase() != Phase::Free
    }

    /// An acquire's answer arriving during shutdown: the epoch to give back,
    /// if it was granted.
    pub(crate) fn on_acquired_at_shutdown(&mut self, result: Result<Option<Epoch>, ()>, now: Instant) -> Option<Epoch> {
        self.busy = false;
        self.fsm.abandon();
        match self.fsm.on_acquired(result, now, false) {
            Acquired::Release(epoch) => Some(epoch),
            Acquired::Held(_) | Acquired::Nothing => None,
        }
    }
}

/// The candidates of one registry: its connected candidates and the pending
/// members not known to host it with another shard count.
pub(crate) fn registry_candidates(
    connected: &BTreeSet<NodeId>,
    pending: &BTreeSet<NodeId>,
    other_count: &BTreeSet<NodeId>,
) -> BTreeSet<NodeId> {
    connected.iter().chain(pending.iter().filter(|n| !other_count.contains(*n))).cloned().collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    const TTL: Duration = Duration::from_secs(10);
    const RENEW: Duration = Duration::from_secs(3);
    const STOP: Duration = Duration::from_secs(5);

    fn ms(n: u64) -> Duration {
        Duration::from_millis(n)
    }

    fn plan(t0: Instant) -> LeasePlan {
        let mut p = LeasePlan::new(LeaseTimes::new(TTL, RENEW), Duration::ZERO, 1, ms(500), t0);
        p.set_standing(MemberState::Member);
        p
    }

    fn ids(names: &[&str]) -> BTreeSet<NodeId> {
        names.iter().map(|n| NodeId::new(*n)).collect()
    }

    struct View {
        me: NodeId,
        pref: Option<NodeId>,
        connected: BTreeSet<NodeId>,
    }

    impl View {
        fn new(pref: Option<&str>, connected: &[&str]) -> View {
            View { me: NodeId::new("me"), pref: pref.map(NodeId::new), connected: ids(connected) }
        }

        fn pref(&self) -> Preference<'_> {
            Preference { me: &self.me, preferred: self.pref.as_ref(), connected: &self.connected, stop_timeout: STOP }
        }
    }

    /// A shard held at epoch 7, acquired at `t0`.
    fn held(p: &mut LeasePlan, t0: Instant) -> ShardPlan {
        let mut s = p.new_shard();
        let mine = View::new(Some("me"), &["me"]);
        assert_eq!(p.place_shard(&mut s, &mine.pref(), t0), Some(Step::Acquire));
        let Some(Step::Grant(h)) = p.on_acquired(&mut s, Ok(Some(Epoch(7))), t0, false) else { panic!("granted") };
        assert_eq!(h.epoch, Epoch(7));
        s
    }

    #[test]
    fn a_shard_preferred_here_is_acquired_at_once_and_only_once() {
        let t0 = Instant::now();
        let mut p = plan(t0);
        let mut s = p.new_shard();
        let v = View::new(Some("me"), &["me"]);
        assert_eq!(p.place_shard(&mut s, &v.pref(), t0), Some(Step::Acquire));
        assert_eq!(p.place_shard(&mut s, &v.pref(), t0), None, "busy: one operation at a time");
        assert_eq!(p.on_acquired(&mut s, Ok(None), t0, false), None, "held elsewhere");
        assert_eq!(p.place_shard(&mut s, &v.pref(), t0), Some(Step::Acquire));
    }

    #[test]
    fn only_a_member_takes_free_shards() {
        let t0 = Instant::now();
        let mut p = plan(t0);
        let mut s = p.new_shard();
        for state in [MemberState::Joining, MemberState::Excluded] {
            p.set_standing(state);
            assert_eq!(p.place_shard(&mut s, &View::new(Some("me"), &["me"]).pref(), t0), None);
            assert_eq!(p.place_shard(&mut s, &View::new(Some("b"), &["me", "b"]).pref(), t0), None);
        }
    }

    #[test]
    fn a_free_shard_preferred_elsewhere_or_by_nobody_is_probed() {
        let t0 = Instant::now();
        let mut p = plan(t0);
        let mut s = p.new_shard();
        assert_eq!(p.place_shard(&mut s, &View::new(Some("b"), &["me"]).pref(), t0), Some(Step::Probe));
        assert_eq!(p.place_shard(&mut s, &View::new(Some("b"), &["me"]).pref(), t0), None, "probe in flight");
        assert_eq!(p.on_probed(&mut s, false, t0), None);
        assert_eq!(p.place_shard(&mut s, &View::new(None, &[]).pref(), t0), Some(Step::Probe));
    }

    #[test]
    fn an_orphan_is_acquired_after_a_whole_renew_interval_free() {
        let t0 = Instant::now();
        let mut p = plan(t0);
        let mut s = p.new_shard();
        let v = View::new(Some("b"), &["me", "b"]);
        assert_eq!(p.place_shard(&mut s, &v.pref(), t0), Some(Step::Probe));
        assert_eq!(p.on_probed(&mut s, true, t0), None, "first seen free");
        assert_eq!(p.place_shard(&mut s, &v.pref(), t0 + ms(2999)), Some(Step::Probe));
        assert_eq!(p.on_probed(&mut s, true, t0 + ms(2999)), None, "not a whole interval yet");
        assert_eq!(p.place_shard(&mut s, &v.pref(), t0 + RENEW), Some(Step::Probe));
        assert_eq!(p.on_probed(&mut s, true, t0 + RENEW), Some(Step::Acquire));
        assert_eq!(p.place_shard(&mut s, &v.pref(), t0 + RENEW), None, "acquire in flight");
    }

    #[test]
    fn seeing_the_shard_held_restarts_the_orphan_wait() {
        let t0 = Instant::now();
        let p = plan(t0);
        let mut s = p.new_shard();
        assert_eq!(p.on_probed(&mut s, true, t0), None);
        assert_eq!(p.on_probed(&mut s, false, t0 + ms(1000)), None);
        assert_eq!(p.on_probed(&mut s, true, t0 + RENEW), None, "free again: the wait starts over");
        assert_eq!(p.on_probed(&mut s, true, t0 + RENEW * 2), Some(Step::Acquire));
    }

    #[test]
    fn an_acquire_answer_restarts_the_orphan_wait() {
        let t0 = Instant::now();
        let p = plan(t0);
        let mut s = p.new_shard();
        assert_eq!(p.on_probed(&mut s, true, t0), None);
        assert_eq!(p.on_acquired(&mut s, Ok(None), t0, false), None);
        assert_eq!(p.on_probed(&mut s, true, t0 + RENEW), None);
    }

    #[test]
    fn a_non_member_does_not_take_orphans() {
        let t0 = Instant::now();
        let mut p = plan(t0);
        p.set_standing(MemberState::Excluded);
        let mut s = p.new_shard();
        assert_eq!(p.on_probed(&mut s, true, t0), None);
        assert_eq!(p.on_probed(&mut s, true, t0 + RENEW), None);
    }

    #[test]
    fn a_held_shard_is_handed_over_only_to_a_connected_candidate() {
        let t0 = Instant::now();
        let mut p = plan(t0);
        let mut s = held(&mut p, t0);
        // Preferred for a pending member (not connected): kept.
        assert_eq!(p.place_shard(&mut s, &View::new(Some("b"), &["me"]).pref(), t0), None);
        // Preferred here: kept.
        assert_eq!(p.place_shard(&mut s, &View::new(Some("me"), &["me", "b"]).pref(), t0), None);
        let step = p.place_shard(&mut s, &View::new(Some("b"), &["me", "b"]).pref(), t0);
        assert_eq!(step, Some(Step::HandOver { epoch: Epoch(7), kill_at: t0 + STOP }));
        assert_eq!(p.place_shard(&mut s, &View::new(Some("b"), &["me", "b"]).pref(), t0), None, "busy");
        assert!(s.holding(), "releasing");
        s.on_released();
        assert!(!s.holding());
    }

    #[test]
    fn a_handover_kills_no_later_than_the_local_deadline() {
        let t0 = Instant::now();
        let mut p = plan(t0);
        let mut s = held(&mut p, t0);
        let late = t0 + ms(9000);
        let step = p.place_shard(&mut s, &View::new(Some("b"), &["me", "b"]).pref(), late);
        assert_eq!(step, Some(Step::HandOver { epoch: Epoch(7), kill_at: t0 + TTL - ms(200) }));
    }

    #[test]
    fn handovers_are_paced() {
        let t0 = Instant::now();
        let mut p = LeasePlan::new(LeaseTimes::new(TTL, RENEW), ms(1000), 1, ms(500), t0);
        p.set_standing(MemberState::Member);
        let mut a = held(&mut p, t0);
        let mut b = held(&mut p, t0);
        let v = View::new(Some("b"), &["me", "b"]);
        p.observe_candidates(&v.connected, t0);
        assert_eq!(p.place_shard(&mut a, &v.pref(), t0 + ms(999)), None, "settling");
        assert!(matches!(p.place_shard(&mut a, &v.pref(), t0 + ms(1000)), Some(Step::HandOver { .. })));
        assert_eq!(p.place_shard(&mut b, &v.pref(), t0 + ms(1000)), None, "one move per interval");
        assert!(matches!(p.place_shard(&mut b, &v.pref(), t0 + ms(1000) + RENEW), Some(Step::HandOver { .. })));
    }

    #[test]
    fn poll_renews_with_the_time_left_as_bound() {
        let t0 = Instant::now();
        let mut p = plan(t0);
        let mut s = held(&mut p, t0);
        assert_eq!(p.poll(&mut s, t0 + ms(2999), true), None);
        assert_eq!(p.poll(&mut s, t0 + RENEW, true), Some(Step::Renew { epoch: Epoch(7), bound: ms(6800) }));
        let Some(Step::Extend(h)) = p.on_renewed(&mut s, Epoch(7), Ok(true), t0 + RENEW) else { panic!("extended") };
        assert_eq!(h.deadline, t0 + RENEW + TTL - ms(200));
    }

    #[test]
    fn a_failed_renewal_still_extends_with_the_unchanged_grant() {
        let t0 = Instant::now();
        let mut p = plan(t0);
        let mut s = held(&mut p, t0);
        assert!(matches!(p.poll(&mut s, t0 + RENEW, true), Some(Step::Renew { .. })));
        let Some(Step::Extend(h)) = p.on_renewed(&mut s, Epoch(7), Err(()), t0 + RENEW) else { panic!("extend") };
        assert_eq!(h.deadline, t0 + TTL - ms(200));
    }

    #[test]
    fn paused_renewals_fence_at_the_deadline_and_keep_the_shard_out_until_stopped() {
        let t0 = Instant::now();
        let mut p = plan(t0);
        let mut s = held(&mut p, t0);
        let deadline = t0 + TTL - ms(200);
        assert_eq!(s.next_wakeup(false), Some(deadline));
        assert_eq!(p.poll(&mut s, deadline, false), Some(Step::Fence { epoch: Epoch(7), kill_at: deadline + ms(100) }));
        let mine = View::new(Some("me"), &["me"]);
        assert_eq!(p.place_shard(&mut s, &mine.pref(), deadline), None, "fenced activations still stopping");
        s.on_stopped();
        assert_eq!(p.place_shard(&mut s, &mine.pref(), deadline), Some(Step::Acquire));
    }

    #[test]
    fn a_refused_renewal_fences_at_once() {
        let t0 = Instant::now();
        let mut p = plan(t0);
        let mut s = held(&mut p, t0);
        assert!(matches!(p.poll(&mut s, t0 + RENEW, true), Some(Step::Renew { .. })));
        let at = t0 + RENEW + ms(10);
        assert_eq!(
            p.on_renewed(&mut s, Epoch(7), Ok(false), at),
            Some(Step::Fence { epoch: Epoch(7), kill_at: at + ms(100) })
        );
        assert_eq!(p.on_renewed(&mut s, Epoch(7), Ok(true), at), None, "not held any more");
    }

    #[test]
    fn a_late_grant_is_released() {
        let t0 = Instant::now();
        let mut p = plan(t0);
        let mut s = p.new_shard();
        assert_eq!(p.place_shard(&mut s, &View::new(Some("me"), &["me"]).pref(), t0), Some(Step::Acquire));
        assert_eq!(p.on_acquired(&mut s, Ok(Some(Epoch(1))), t0 + TTL, false), Some(Step::Release(Epoch(1))));
        assert!(!s.holding());
    }

    #[test]
    fn shutdown_releases_what_is_held_and_gives_back_late_grants() {
        let t0 = Instant::now();
        let mut p = plan(t0);
        let mut h = held(&mut p, t0);
        assert_eq!(h.start_shutdown(t0, STOP), Some((Epoch(7), t0 + STOP)));
        assert!(!h.in_flight(), "a shutdown release is awaited by the driver itself");
        let mut free = p.new_shard();
        assert_eq!(free.start_shutdown(t0, STOP), None);
        let mut acquiring = p.new_shard();
        assert_eq!(p.place_shard(&mut acquiring, &View::new(Some("me"), &["me"]).pref(), t0), Some(Step::Acquire));
        assert!(acquiring.in_flight());
        assert_eq!(acquiring.on_acquired_at_shutdown(Ok(Some(Epoch(3))), t0), Some(Epoch(3)));
        assert!(!acquiring.in_flight());
        assert_eq!(acquiring.on_acquired_at_shutdown(Ok(None), t0), None);
    }

    #[test]
    fn a_handover_in_flight_is_awaited_at_shutdown() {
        let t0 = Instant::now();
        let mut p = plan(t0);
        let mut s = held(&mut p, t0);
        assert!(matches!(
            p.place_shard(&mut s, &View::new(Some("b"), &["me", "b"]).pref(), t0),
            Some(Step::HandOver { .. })
        ));
        assert!(s.in_flight());
        s.on_released();
        assert!(!s.in_flight());
    }

    #[test]
    fn a_probe_is_not_awaited_at_shutdown() {
        let t0 = Instant::now();
        let mut p = plan(t0);
        let mut s = p.new_shard();
        assert_eq!(p.place_shard(&mut s, &View::new(Some("b"), &["me"]).pref(), t0), Some(Step::Probe));
        assert!(!s.in_flight(), "free: nothing to give back");
        s.on_probe_ended();
        assert_eq!(p.place_shard(&mut s, &View::new(Some("b"), &["me"]).pref(), t0), Some(Step::Probe));
    }

    #[test]
    fn members_are_fresh_only_after_start_plus_a_heartbeat_and_the_newest_registry() {
        let t0 = Instant::now();
        let mut p = plan(t0);
        assert!(!p.members_fresh(None));
        assert!(!p.members_fresh(Some(t0 + ms(499))));
        assert!(p.members_fresh(Some(t0 + ms(500))));
        assert_eq!(p.waiting_since(), t0 + ms(500));
        p.registry_added(t0 + ms(100));
        assert_eq!(p.waiting_since(), t0 + ms(500), "never moves back");
        p.registry_added(t0 + ms(800));
        assert!(!p.members_fresh(Some(t0 + ms(500))));
        assert!(p.members_fresh(Some(t0 + ms(800))));
    }

    #[test]
    fn count_conflicts_are_news_once_per_change() {
        let t0 = Instant::now();
        let mut p = plan(t0);
        assert!(!p.conflict_changed("r", None), "no conflict to begin with");
        assert!(p.conflict_changed("r", Some(8)));
        assert!(!p.conflict_changed("r", Some(8)));
        assert!(p.conflict_changed("r", Some(16)));
        assert!(p.conflict_changed("r", None), "cleared");
        assert!(!p.conflict_changed("r", None));
        assert!(p.conflict_changed("s", Some(4)), "per registry");
    }

    #[test]
    fn pending_members_hosting_another_count_are_not_candidates() {
        let all = registry_candidates(&ids(&["me", "b"]), &ids(&["b", "c", "d"]), &ids(&["d"]));
        assert_eq!(all, ids(&["me", "b", "c"]));
    }
}
