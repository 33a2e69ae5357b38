//! Rendezvous placement with bounded moves.
//!
//! Every node computes, for every shard, the *preferred* owner among the
//! candidates it knows (itself and the connected peers hosting the same
//! registry): the candidate with the highest `hash(lease name, node name)`.
//! Nodes with the same view agree without talking; a node joining or
//! leaving changes the preference of about `1/n` of the shards only. Loads
//! are bounded ([`assign`]): a candidate that already has its share of a
//! registry's shards is passed over, so small registries are balanced too.
//!
//! A node acquires the free shards it prefers for itself at once (free
//! shards move nothing). It hands over a shard it holds whose preferred
//! owner is another candidate, but only after the candidate set has been
//! stable for the settle window, and at most `max_moves` per interval, so
//! that a joining or leaving node does not cause a storm of handovers.
//!
//! **Who takes shards** ([`standing`]). The candidates are this node, the
//! connected peers hosting the registry, and, for a bounded *join window*
//! after this node first sees them in the lease store, the live members it
//! has neither authenticated with nor failed to authenticate with yet
//! (*pending*): nodes started together then each acquire the shards they
//! prefer directly instead of funnelling every shard to the first node up
//! and moving them back one handover at a time. Shards are handed over only
//! to connected candidates; a free shard preferred for a pending member that
//! never shows up is taken after it was seen free for a whole renew
//! interval, as for any other candidate.
//!
//! A live member this node *dialled* and failed to authenticate with (a
//! wrong token, no common protocol version) is *excluded*: never a
//! candidate. Only outbound failures count (an inbound hello may claim any
//! name), and an authenticated session with a name always wins over a
//! failure recorded under it. A node takes free shards only as a
//! [`MemberState::Member`]: when it excludes nobody, or it already holds
//! shards (the running cluster keeps serving and takes over its dead
//! members' shards), or its authenticated group (itself and its peers)
//! outnumbers the members it excludes (a cluster cold-starting with one
//! wrong-token node). Otherwise it is [`MemberState::Excluded`] and takes
//! nothing: a wrong-token node joining a running cluster sees every member
//! fail, holds nothing, and so never competes for a shard. While it holds
//! nothing, has no authenticated peer and still has pending members, a node
//! is [`MemberState::Joining`] and waits (at most the join window) to learn
//! which side it is on; so it does before it has read the members a
//! heartbeat interval after it started and after its newest registry was
//! registered (nodes started within a heartbeat interval of each other see
//! each other before any takes a shard).

use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration;

use tokio::time::Instant;

use crate::hash::stable_hash;
use crate::id::NodeId;

/// The candidate with the highest rendezvous weight for `lease`; `None`
/// without candidates. Ties (equal hashes) go to the smaller name, so the
/// choice never depends on iteration order.
pub(crate) fn preferred<'a>(lease: &str, candidates: impl IntoIterator<Item = &'a NodeId>) -> Option<&'a NodeId> {
    candidates
        .into_iter()
        .map(|n| (stable_hash(&[lease.as_bytes(), n.as_str().as_bytes()]), n))
        .max_by(|(ha, na), (hb, nb)| ha.cmp(hb).then_with(|| nb.cmp(na)))
        .map(|(_, n)| n)
}

/// The preferred owner of every shard `0..shard_count` of `registry`:
/// rendezvous with bounded loads. Shards are taken in order; each goes to
/// its highest-weight candidate that holds fewer than
/// `ceil(shard_count / candidates)` shards so far, so no node gets more
/// than its share rounded up (plain rendezvous leaves small registries
/// unbalanced, e.g. 2/6/8 shards of 16 on three nodes). A pure function of
/// the registry, the shard count and the candidate *set*, so nodes with the
/// same view agree. Empty without candidates.
pub(crate) fn assign(registry: &str, shard_count: u32, candidates: &BTreeSet<NodeId>) -> Vec<NodeId> {
    if candidates.is_empty() {
        return Vec::new();
    }
    let cap = (shard_count as usize).div_ceil(candidates.len());
    let mut load = vec![0usize; candidates.len()];
    let mut out = Vec::with_capacity(shard_count as usize);
    for shard in 0..shard_count {
        let lease = super::placement_name(registry, shard);
        let open = candidates.iter().zip(&load).filter(|(_, l)| **l < cap).map(|(n, _)| n);
        // Some candidate always has room: cap * candidates >= shard_count.
        let Some(owner) = preferred(&lease, open) else { break };
        if let Some(i) = candidates.iter().position(|n| n == owner) {
            load[i] += 1;
        }
        out.push(owner.clone());
    }
    out
}

/// Whether a node may take free shards (see the module docs), as reported
/// by `ClusterNode::inspect`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum MemberState {
    /// The node takes the free shards it prefers (and orphaned ones).
    Member,
    /// The node waits to authenticate with (or fail against) the live
    /// members it has just seen in the lease store, at most the join window.
    Joining,
    /// The node failed to authenticate with live members of the running
    /// cluster and takes no shard (`inspect().membership` names them).
    Excluded,
}

/// What a node knows of the cluster's members: the inputs of [`standing`].
#[derive(Debug)]
pub(crate) struct MemberView<'a> {
    /// Whether the live members were read recently enough: a heartbeat
    /// interval after the node started (so that nodes started together see
    /// each other) and after its newest registry was registered.
    pub(crate) members_fresh: bool,
    /// When that read became due (the join window, counted from here,
    /// bounds the wait).
    pub(crate) waiting_since: Instant,
    /// Live members from the store (this node left out), by name, with when
    /// this node first saw the name's newest session there.
    pub(crate) members: &'a BTreeMap<NodeId, Instant>,
    /// Names with an authenticated session now.
    pub(crate) authenticated: &'a BTreeSet<NodeId>,
    /// Names this node dialled and failed to authenticate with.
    pub(crate) auth_failed: &'a BTreeSet<NodeId>,
    /// Whether this node holds any shard now.
    pub(crate) holding: bool,
    /// How long a live member counts as pending after it was first seen.
    pub(crate) join_window: std::time::Duration,
    pub(crate) now: Instant,
}

/// The outcome of [`standing`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Standing {
    pub(crate) state: MemberState,
    /// Live members within the join window, not excluded (connected or
    /// not): placement candidates of every registry they are not known to
    /// host with another shard count, even before they announced hosting
    /// it (never handover targets unless connected and hosting it).
    pub(crate) pending: BTreeSet<NodeId>,
    /// Live members this node failed to authenticate with and has no
    /// session with: never candidates.
    pub(crate) excluded: BTreeSet<NodeId>,
}

/// Whether this node may take free shards, and which not-yet-connected
/// members count as candidates (see the module docs). Pure.
pub(crate) fn standing(v: &MemberView<'_>) -> Standing {
    let in_window = |since: Instant| v.now.saturating_duration_since(since) < v.join_window;
    let mut pending = BTreeSet::new();
    let mut excluded = BTreeSet::new();
    let mut unresolved = false;
    for (name, since) in v.members {
        let authenticated = v.authenticated.contains(name);
        if !authenticated && v.auth_failed.contains(name) {
            excluded.insert(name.clone());
        } else if in_window(*since) {
            pending.insert(name.clone());
            unresolved |= !authenticated;
        }
    }
    let state = if !v.members_fresh && in_window(v.waiting_since) && !v.holding {
        MemberState::Joining
    } else if v.holding {
        MemberState::Member
    } else if v.authenticated.is_empty() && unresolved {
        MemberState::Joining
    } else if excluded.is_empty() || v.authenticated.len() + 1 > excluded.len() {
        MemberState::Member
    } else {
        MemberState::Excluded
    };
    Standing { state, pending, excluded }
}

/// Handover pacing: a settle window after the candidate set changes and a
/// cap on handovers per interval.
#[derive(Debug)]
pub(crate) struct MovePacer {
    settle: Duration,
    interval: Duration,
    max_moves: usize,
    view: BTreeSet<NodeId>,
    changed_at: Instant,
    window_start: Instant,
    moves_in_window: usize,
}

impl MovePacer {
    pub(crate) fn new(settle: Duration, interval: Duration, max_moves: usize, now: Instant) -> MovePacer {
        MovePacer {
            settle,
            interval,
            max_moves,
            view: BTreeSet::new(),
            changed_at: now,
            window_start: now,
            moves_in_window: 0,
        }
    }

    /// Records the current candidate set; a change restarts the settle window.
    pub(crate) fn observe(&mut self, view: &BTreeSet<NodeId>, now: Instant) {
        if *view != self.view {
            self.view = view.clone();
            self.changed_at = now;
        }
    }

    /// Whether one more handover may start now; counts it if so.
    pub(crate) fn try_move(&mut self, now: Instant) -> bool {
        if now.saturating_duration_since(self.changed_at) < self.settle {
            return false;
        }
        if now.saturating_duration_since(self.window_start) >= self.interval {
            self.window_start = now;
            self.moves_in_window = 0;
        }
        if self.moves_in_window >= self.max_moves {
            return false;
        }
        self.moves_in_window += 1;
        true
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn nodes(names: &[&str]) -> Vec<NodeId> {
        names.iter().map(|n| NodeId::new(*n)).collect()
    }

    #[test]
    fn preference_ignores_candidate_order() {
        let a = nodes(&["a", "b", "c"]);
        let mut b = a.clone();
        b.reverse();
        for s in 0..100 {
            let lease = format!("r/{s}");
            assert_eq!(preferred(&lease, &a), preferred(&lease, &b));
        }
        assert_eq!(preferred("r/0", &[]), None);
    }

    #[test]
    fn balanced_and_minimal_moves() {
        let three = nodes(&["a", "b", "c"]);
        let four = nodes(&["a", "b", "c", "d"]);
        let shards = 3000;
        let mut counts = std::collections::BTreeMap::new();
        let mut moved = 0;
        for s in 0..shards {
            let lease = format!("r/{s}");
            let before = preferred(&lease, &three).cloned();
            let after = preferred(&lease, &four).cloned();
            *counts.entry(after.clone()).or_insert(0) += 1;
            if before != after {
                moved += 1;
                // Only moves *to* the new node.
                assert_eq!(after, Some(NodeId::new("d")));
            }
        }
        // About a quarter moves; every node gets about a quarter.
        assert!((600..900).contains(&moved), "moved {moved}");
        for (_, c) in counts {
            assert!((600..900).contains(&c), "unbalanced");
        }
    }

    #[test]
    fn assignment_is_balanced() {
        for n in 1..=5 {
            let view: BTreeSet<NodeId> = nodes(&["a", "b", "c", "d", "e"][..n]).into_iter().collect();
            for shards in [1u32, 7, 16, 64] {
                let owners = assign("r", shards, &view);
                assert_eq!(owners.len(), shards as usize);
                let cap = (shards as usize).div_ceil(n);
                for node in &view {
                    assert!(owners.iter().filter(|o| *o == node).count() <= cap, "{n} nodes, {shards} shards");
                }
            }
        }
        assert!(assign("r", 4, &BTreeSet::new()).is_empty());
    }

    #[test]
    fn pacer_waits_for_settle_then_caps() {
        let t0 = Instant::now();
        let mut p = MovePacer::new(Duration::from_secs(2), Duration::from_secs(1), 2, t0);
        let view: BTreeSet<NodeId> = nodes(&["a", "b"]).into_iter().collect();
        p.observe(&view, t0);
        assert!(!p.try_move(t0 + Duration::from_millis(1999)));
        let t = t0 + Duration::from_secs(2);
        assert!(p.try_move(t));
        assert!(p.try_move(t));
        assert!(!p.try_move(t), "cap per interval");
        assert!(p.try_move(t + Duration::from_secs(1)), "new interval");
        // A view change restarts the settle window.
        let bigger: BTreeSet<NodeId> = nodes(&["a", "b", "c"]).into_iter().collect();
        let t2 = t + Duration::from_secs(5);
        p.observe(&bigger, t2);
        assert!(!p.try_move(t2 + Duration::from_secs(1)));
        assert!(p.try_move(t2 + Duration::from_secs(2)));
    }

    struct View {
        members: BTreeMap<NodeId, Instant>,
        authenticated: BTreeSet<NodeId>,
        failed: BTreeSet<NodeId>,
        holding: bool,
    }

    impl View {
        fn new(members: &[&str], authenticated: &[&str], failed: &[&str], t0: Instant) -> View {
            View {
                members: nodes(members).into_iter().map(|n| (n, t0)).collect(),
                authenticated: nodes(authenticated).into_iter().collect(),
                failed: nodes(failed).into_iter().collect(),
                holding: false,
            }
        }

        fn at(&self, t0: Instant, now: Instant) -> Standing {
            standing(&MemberView {
                members_fresh: true,
                waiting_since: t0,
                members: &self.members,
                authenticated: &self.authenticated,
                auth_failed: &self.failed,
                holding: self.holding,
                join_window: Duration::from_secs(6),
                now,
            })
        }
    }

    fn set(names: &[&str]) -> BTreeSet<NodeId> {
        nodes(names).into_iter().collect()
    }

    #[test]
    fn a_node_alone_is_a_member_once_it_has_read_fresh_members() {
        let t0 = Instant::now();
        let v = View::new(&[], &[], &[], t0);
        assert_eq!(v.at(t0, t0).state, MemberState::Member);
        let unread = MemberView {
            members_fresh: false,
            waiting_since: t0,
            members: &v.members,
            authenticated: &v.authenticated,
            auth_failed: &v.failed,
            holding: false,
            join_window: Duration::from_secs(6),
            now: t0,
        };
        assert_eq!(standing(&unread).state, MemberState::Joining);
        let late = MemberView { now: t0 + Duration::from_secs(6), ..unread };
        assert_eq!(standing(&late).state, MemberState::Member, "the wait is bounded");
    }

    #[test]
    fn nodes_started_together_count_each_other_as_pending_candidates() {
        let t0 = Instant::now();
        // b, c, d seen in the store, none connected yet: wait for one.
        let v = View::new(&["b", "c", "d"], &[], &[], t0);
        let s = v.at(t0, t0);
        assert_eq!(s.state, MemberState::Joining);
        assert_eq!(s.pending, set(&["b", "c", "d"]));
        // One connected: a member, the rest still candidates.
        let v = View::new(&["b", "c", "d"], &["b"], &[], t0);
        let s = v.at(t0, t0 + Duration::from_millis(10));
        assert_eq!((s.state, s.pending), (MemberState::Member, set(&["b", "c", "d"])));
        // After the join window, members that never connected are not candidates.
        let s = v.at(t0, t0 + Duration::from_secs(6));
        assert_eq!((s.state, s.pending), (MemberState::Member, BTreeSet::new()));
        // Nor is the wait without peers unbounded.
        let v = View::new(&["b"], &[], &[], t0);
        assert_eq!(v.at(t0, t0 + Duration::from_secs(6)).state, MemberState::Member);
    }

    #[test]
    fn a_wrong_token_node_joining_a_running_cluster_is_excluded() {
        let t0 = Instant::now();
        // x's view: every member failed.
        let x = View::new(&["a", "b", "c"], &[], &["a", "b", "c"], t0);
        let s = x.at(t0, t0);
        assert_eq!((s.state, s.excluded), (MemberState::Excluded, set(&["a", "b", "c"])));
        // One failure is known, the others are still pending: wait.
        let x = View::new(&["a", "b", "c"], &[], &["a"], t0);
        assert_eq!(x.at(t0, t0).state, MemberState::Joining);
        assert_eq!(x.at(t0, t0 + Duration::from_secs(6)).state, MemberState::Excluded);
        // The honest nodes' view: x failed; they hold shards, or outnumber it.
        let mut a = View::new(&["b", "c", "x"], &["b", "c"], &["x"], t0);
        let s = a.at(t0, t0);
        assert_eq!((s.state, s.excluded, s.pending), (MemberState::Member, set(&["x"]), set(&["b", "c"])));
        // b and c gone: one against one, the node that holds shards keeps
        // serving, the one that holds none stays out.
        a.authenticated.clear();
        a.holding = true;
        assert_eq!(a.at(t0, t0 + Duration::from_secs(60)).state, MemberState::Member);
        let x = View::new(&["a"], &[], &["a"], t0);
        assert_eq!(x.at(t0, t0 + Duration::from_secs(60)).state, MemberState::Excluded);
    }

    #[test]
    fn cold_start_with_one_wrong_token_node_serves_from_the_majority() {
        let t0 = Instant::now();
        let honest = View::new(&["b", "x"], &["b"], &["x"], t0);
        assert_eq!(honest.at(t0, t0).state, MemberState::Member);
        let x = View::new(&["a", "b"], &[], &["a", "b"], t0);
        assert_eq!(x.at(t0, t0).state, MemberState::Excluded);
    }

    #[test]
    fn an_authenticated_session_wins_over_a_failure_under_its_name() {
        let t0 = Instant::now();
        // A failure recorded under b (forged, or from before b's token was
        // fixed) while b is authenticated: b stays a peer, nobody is excluded.
        let v = View::new(&["b"], &["b"], &["b"], t0);
        let s = v.at(t0, t0);
        assert_eq!((s.state, s.excluded), (MemberState::Member, BTreeSet::new()));
        // A failure under a name that is no live member changes nothing.
        let v = View::new(&["b"], &["b"], &["ghost"], t0);
        assert_eq!(v.at(t0, t0).excluded, BTreeSet::new());
    }
}
