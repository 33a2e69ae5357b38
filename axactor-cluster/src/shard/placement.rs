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

use std::collections::BTreeSet;
use std::time::Duration;

use tokio::time::Instant;

use super::stable_hash;
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
}
