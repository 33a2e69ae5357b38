//! The in-memory overlay's fault model: pure cores, no I/O, no clock reads.
//!
//! - [`FaultTable`] holds the fault configuration of every directed link
//!   (`from → to`, by node name) and one seeded RNG per directed link, and
//!   decides each frame's fate ([`FaultTable::decide`]).
//! - [`Schedule`] orders the frames of one direction by delivery instant,
//!   given `now` by its driver.
//!
//! Determinism: every table is a `BTreeMap` keyed by names; each directed
//! link's RNG is `StdRng` seeded from `(seed, from, to)` by a fixed mixing
//! function ([`link_seed`]), drawn only when a random fault is configured, so
//! the same configuration and the same sequence of frames give the same
//! decisions on every run and machine.

use std::collections::BTreeMap;
use std::time::Duration;

use bytes::Bytes;
use rand::rngs::StdRng;
use rand::{RngExt, SeedableRng};
use tokio::time::Instant;

use crate::hash::{Fnv1a, splitmix64};

/// The random faults of one directed link (or the default for all links).
///
/// Rates are probabilities per frame, clamped to `0.0..=1.0` (NaN counts as
/// 0). A frame's delay is drawn uniformly from `delay_min..=delay_max`
/// (swapped if given the wrong way round); delays keep a link's order, only
/// `reorder_rate` reorders.
#[derive(Debug, Clone, Copy, PartialEq, Default)]
pub struct LinkFaults {
    /// Probability that a frame is lost.
    pub drop_rate: f64,
    /// Probability that a frame is delivered twice.
    pub duplicate_rate: f64,
    /// Probability that a frame is held back behind the next frame of its
    /// link (for at most [`REORDER_MAX_WAIT`](super::REORDER_MAX_WAIT)).
    pub reorder_rate: f64,
    /// Shortest delay.
    pub delay_min: Duration,
    /// Longest delay.
    pub delay_max: Duration,
}

impl LinkFaults {
    /// No faults: frames are delivered at once, in order.
    pub const NONE: LinkFaults = LinkFaults {
        drop_rate: 0.0,
        duplicate_rate: 0.0,
        reorder_rate: 0.0,
        delay_min: Duration::ZERO,
        delay_max: Duration::ZERO,
    };

    fn is_none(&self) -> bool {
        *self == LinkFaults::NONE
    }

    fn normalized(mut self) -> LinkFaults {
        let clamp = |p: f64| if p.is_nan() { 0.0 } else { p.clamp(0.0, 1.0) };
        self.drop_rate = clamp(self.drop_rate);
        self.duplicate_rate = clamp(self.duplicate_rate);
        self.reorder_rate = clamp(self.reorder_rate);
        if self.delay_min > self.delay_max {
            std::mem::swap(&mut self.delay_min, &mut self.delay_max);
        }
        self
    }
}

/// Why the in-memory overlay dropped a frame.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum DropReason {
    /// The directed link is partitioned.
    Partition,
    /// The drop rate fired.
    Random,
}

/// What happens to one frame.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Decision {
    /// Lost.
    Drop(DropReason),
    /// Kept until the link is released.
    Hold,
    /// Delivered after `delay`, possibly twice, possibly behind the next frame.
    Deliver(Delivery),
}

/// How a delivered frame travels.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub(crate) struct Delivery {
    pub(crate) delay: Duration,
    pub(crate) duplicate: bool,
    pub(crate) reorder: bool,
}

impl Delivery {
    /// Nothing to do: deliver now, once, in order.
    pub(crate) fn is_plain(&self) -> bool {
        *self == Delivery::default()
    }
}

/// Per directed link state.
#[derive(Debug, Default)]
struct LinkEntry {
    faults: Option<LinkFaults>,
    partitioned: bool,
    held: bool,
    rng: Option<StdRng>,
}

/// Fault configuration and RNGs of every directed link.
#[derive(Debug, Default)]
pub(crate) struct FaultTable {
    seed: u64,
    default: LinkFaults,
    // from → to → entry; nested so lookups by `&str` need no allocation.
    links: BTreeMap<String, BTreeMap<String, LinkEntry>>,
}

impl FaultTable {
    pub(crate) fn new(seed: u64) -> FaultTable {
        FaultTable { seed, ..FaultTable::default() }
    }

    /// Re-seeds: every link's RNG restarts from the new seed.
    pub(crate) fn set_seed(&mut self, seed: u64) {
        self.seed = seed;
        self.links.values_mut().flat_map(BTreeMap::values_mut).for_each(|e| e.rng = None);
    }

    fn get(&self, from: &str, to: &str) -> Option<&LinkEntry> {
        self.links.get(from).and_then(|m| m.get(to))
    }

    fn entry(&mut self, from: &str, to: &str) -> &mut LinkEntry {
        self.links.entry(from.to_owned()).or_default().entry(to.to_owned()).or_default()
    }

    pub(crate) fn set_partitioned(&mut self, from: &str, to: &str, on: bool) {
        self.entry(from, to).partitioned = on;
    }

    pub(crate) fn set_held(&mut self, from: &str, to: &str, on: bool) {
        self.entry(from, to).held = on;
    }

    pub(crate) fn is_held(&self, from: &str, to: &str) -> bool {
        self.get(from, to).is_some_and(|e| e.held)
    }

    /// Changes one link's faults, starting from the default if the link had
    /// none of its own.
    pub(crate) fn update_link(&mut self, from: &str, to: &str, f: impl FnOnce(&mut LinkFaults)) {
        let default = self.default;
        let entry = self.entry(from, to);
        let faults = entry.faults.get_or_insert(default);
        f(faults);
        *faults = faults.normalized();
    }

    /// Back to the default faults for that link.
    pub(crate) fn clear_link(&mut self, from: &str, to: &str) {
        self.entry(from, to).faults = None;
    }

    pub(crate) fn set_default(&mut self, faults: LinkFaults) {
        self.default = faults.normalized();
    }

    /// Removes every fault, partition and hold (RNG states are kept).
    pub(crate) fn clear(&mut self) {
        self.default = LinkFaults::NONE;
        for e in self.links.values_mut().flat_map(BTreeMap::values_mut) {
            e.faults = None;
            e.partitioned = false;
            e.held = false;
        }
    }

    /// Whether a new link between `a` and `b` cannot be opened: a partition
    /// in either direction blocks the round trip a dial needs.
    pub(crate) fn dial_blocked(&self, a: &str, b: &str) -> bool {
        self.get(a, b).is_some_and(|e| e.partitioned) || self.get(b, a).is_some_and(|e| e.partitioned)
    }

    /// Whether no fault could touch a frame sent from `from` to `to` now:
    /// not partitioned, not held, and no random fault or delay configured
    /// (default or its own). Then [`decide`](Self::decide) would deliver the
    /// frame at once, in order, drawing nothing from the link's RNG, so a
    /// frame may skip the delivery task (the in-memory write-through path).
    pub(crate) fn is_clean(&self, from: &str, to: &str) -> bool {
        match self.get(from, to) {
            Some(e) => !e.partitioned && !e.held && e.faults.unwrap_or(self.default).is_none(),
            None => self.default.is_none(),
        }
    }

    /// Decides the fate of the next frame sent from `from` to `to`.
    pub(crate) fn decide(&mut self, from: &str, to: &str) -> Decision {
        let (faults, partitioned, held) = match self.get(from, to) {
            Some(e) => (e.faults.unwrap_or(self.default), e.partitioned, e.held),
            None => (self.default, false, false),
        };
        if partitioned {
            return Decision::Drop(DropReason::Partition);
        }
        if held {
            return Decision::Hold;
        }
        if faults.is_none() {
            return Decision::Deliver(Delivery::default());
        }
        let seed = self.seed;
        let rng = self.entry(from, to).rng.get_or_insert_with(|| StdRng::seed_from_u64(link_seed(seed, from, to)));
        if faults.drop_rate > 0.0 && rng.random_bool(faults.drop_rate) {
            return Decision::Drop(DropReason::Random);
        }
        let spread = faults.delay_max - faults.delay_min;
        let delay = if spread.is_zero() {
            faults.delay_min
        } else {
            let nanos = u64::try_from(spread.as_nanos()).unwrap_or(u64::MAX);
            faults.delay_min + Duration::from_nanos(rng.random_range(0..=nanos))
        };
        let duplicate = faults.duplicate_rate > 0.0 && rng.random_bool(faults.duplicate_rate);
        let reorder = faults.reorder_rate > 0.0 && rng.random_bool(faults.reorder_rate);
        Decision::Deliver(Delivery { delay, duplicate, reorder })
    }
}

/// The seed of the RNG of the directed link `from → to`: FNV-1a over the
/// names separated by [`SEPARATOR`](crate::hash::SEPARATOR), mixed with the
/// overlay's seed by SplitMix64 (the crate's stable hash, `crate::hash`).
/// Fixed forever: simulations depend on it.
pub(crate) fn link_seed(seed: u64, from: &str, to: &str) -> u64 {
    let mut h = Fnv1a::new();
    h.write(from.as_bytes());
    h.separate();
    h.write(to.as_bytes());
    splitmix64(seed ^ splitmix64(h.finish()))
}

/// Frames of one direction waiting for their delivery instant.
///
/// Frames keep their order (each is due no earlier than the one before)
/// unless reordered: a reordered frame waits in a stash until the next frame
/// is scheduled, then goes right behind it, or is due after `reorder_wait`
/// if no frame follows.
#[derive(Debug, Default)]
pub(crate) struct Schedule {
    pending: BTreeMap<(Instant, u64), Bytes>,
    next_seq: u64,
    floor: Option<Instant>,
    stash: Option<(Instant, u64)>,
}

impl Schedule {
    pub(crate) fn len(&self) -> usize {
        self.pending.len()
    }

    pub(crate) fn is_empty(&self) -> bool {
        self.pending.is_empty()
    }

    /// When the earliest frame is due.
    pub(crate) fn next_due(&self) -> Option<Instant> {
        self.pending.keys().next().map(|k| k.0)
    }

    fn insert(&mut self, at: Instant, frame: Bytes) -> (Instant, u64) {
        let key = (at, self.next_seq);
        self.next_seq += 1;
        self.pending.insert(key, frame);
        key
    }

    /// Schedules `frame`, sent at `now`. Returns whether an earlier stashed
    /// frame now follows a later one.
    pub(crate) fn push(&mut self, now: Instant, frame: Bytes, d: Delivery, reorder_wait: Duration) -> bool {
        let at = self.floor.map_or(now + d.delay, |f| f.max(now + d.delay));
        self.floor = Some(at);
        let stashed = self.stash.take().and_then(|key| self.pending.remove(&key));
        if d.duplicate {
            self.insert(at, frame.clone());
        }
        if d.reorder {
            self.stash = Some(self.insert(at + reorder_wait, frame));
        } else {
            self.insert(at, frame);
        }
        // The stashed frame ends up behind another one unless this frame is
        // itself stashed (without a duplicate left in its place).
        let reordered = stashed.is_some() && (!d.reorder || d.duplicate);
        if let Some(old) = stashed {
            self.insert(at, old);
        }
        reordered
    }

    /// Takes the earliest frame if it is due at `now`.
    pub(crate) fn pop_due(&mut self, now: Instant) -> Option<Bytes> {
        let entry = self.pending.first_entry()?;
        if entry.key().0 > now {
            return None;
        }
        if self.stash == Some(*entry.key()) {
            self.stash = None;
        }
        Some(entry.remove())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn link_seed_is_fixed_and_direction_sensitive() {
        assert_eq!(link_seed(7, "a", "b"), link_seed(7, "a", "b"));
        assert_ne!(link_seed(7, "a", "b"), link_seed(7, "b", "a"));
        assert_ne!(link_seed(7, "ab", ""), link_seed(7, "a", "b"));
        assert_ne!(link_seed(7, "a", "b"), link_seed(8, "a", "b"));
    }

    #[test]
    fn link_seeds_are_pinned() {
        // Changing these changes every simulation's faults.
        assert_eq!(link_seed(0, "n0", "n1"), 0x23bf_c1bd_c76e_8058);
        assert_eq!(link_seed(7, "a", "b"), 0x013b_cf14_1c0d_bb89);
        assert_eq!(link_seed(7, "b", "a"), 0xf04b_4ffd_52ba_5ba5);
        assert_eq!(link_seed(0xdead_beef, "node-1", "node-2"), 0xfcd7_8d48_e376_c6da);
    }

    #[test]
    fn decisions_repeat_for_a_seed() {
        let faults = LinkFaults {
            drop_rate: 0.3,
            duplicate_rate: 0.2,
            reorder_rate: 0.2,
            delay_min: Duration::from_millis(1),
            delay_max: Duration::from_millis(9),
        };
        let run = |seed| {
            let mut t = FaultTable::new(seed);
            t.set_default(faults);
            (0..200).map(|_| t.decide("a", "b")).collect::<Vec<_>>()
        };
        assert_eq!(run(1), run(1));
        assert_ne!(run(1), run(2));
        assert!(run(1).iter().any(|d| matches!(d, Decision::Drop(DropReason::Random))));
    }

    #[test]
    fn partition_beats_hold_and_blocks_dials_both_ways() {
        let mut t = FaultTable::new(0);
        t.set_held("a", "b", true);
        assert_eq!(t.decide("a", "b"), Decision::Hold);
        t.set_partitioned("a", "b", true);
        assert_eq!(t.decide("a", "b"), Decision::Drop(DropReason::Partition));
        assert!(t.dial_blocked("a", "b") && t.dial_blocked("b", "a"));
        assert_eq!(t.decide("b", "a"), Decision::Deliver(Delivery::default()));
        t.clear();
        assert!(!t.dial_blocked("a", "b"));
        assert_eq!(t.decide("a", "b"), Decision::Deliver(Delivery::default()));
    }

    #[test]
    fn clean_links_are_exactly_those_decided_plain_without_a_draw() {
        let mut t = FaultTable::new(3);
        assert!(t.is_clean("a", "b"));
        let check = |t: &mut FaultTable, clean: bool| {
            assert_eq!(t.is_clean("a", "b"), clean);
            if clean {
                assert_eq!(t.decide("a", "b"), Decision::Deliver(Delivery::default()));
                assert!(t.get("a", "b").is_none_or(|e| e.rng.is_none()), "no draw on a clean link");
            }
        };
        t.set_held("a", "b", true);
        check(&mut t, false);
        t.set_held("a", "b", false);
        check(&mut t, true);
        t.set_partitioned("a", "b", true);
        check(&mut t, false);
        t.set_partitioned("a", "b", false);
        t.set_default(LinkFaults { delay_max: Duration::from_millis(1), ..LinkFaults::NONE });
        check(&mut t, false);
        assert!(!t.is_clean("x", "y"), "the default applies to every link");
        t.update_link("a", "b", |f| *f = LinkFaults::NONE);
        check(&mut t, true);
        t.update_link("a", "b", |f| f.duplicate_rate = 0.001);
        check(&mut t, false);
        t.update_link("a", "b", |f| f.duplicate_rate = f64::NAN);
        check(&mut t, true);
        t.clear_link("a", "b");
        check(&mut t, false);
        t.clear();
        check(&mut t, true);
        assert!(t.is_clean("b", "a") && t.is_clean("x", "y"));
    }

    #[test]
    fn rates_are_clamped() {
        let mut t = FaultTable::new(0);
        t.update_link("a", "b", |f| {
            f.drop_rate = 7.0;
            f.duplicate_rate = f64::NAN;
            f.delay_min = Duration::from_secs(2);
            f.delay_max = Duration::from_secs(1);
        });
        assert_eq!(t.decide("a", "b"), Decision::Drop(DropReason::Random));
        t.update_link("a", "b", |f| f.drop_rate = -1.0);
        let Decision::Deliver(d) = t.decide("a", "b") else { panic!("delivered") };
        assert!(!d.duplicate && d.delay >= Duration::from_secs(1) && d.delay <= Duration::from_secs(2));
    }

    #[test]
    fn schedule_keeps_order_despite_shorter_delays() {
        let now = Instant::now();
        let mut s = Schedule::default();
        let ms = Duration::from_millis;
        s.push(now, Bytes::from_static(b"1"), Delivery { delay: ms(10), ..Delivery::default() }, ms(5));
        s.push(now, Bytes::from_static(b"2"), Delivery { delay: ms(1), ..Delivery::default() }, ms(5));
        assert_eq!(s.next_due(), Some(now + ms(10)));
        assert_eq!(s.pop_due(now + ms(9)), None);
        assert_eq!(s.pop_due(now + ms(10)).as_deref(), Some(&b"1"[..]));
        assert_eq!(s.pop_due(now + ms(10)).as_deref(), Some(&b"2"[..]));
        assert!(s.is_empty());
    }

    #[test]
    fn reordered_frame_goes_behind_the_next_or_times_out() {
        let now = Instant::now();
        let ms = Duration::from_millis;
        let mut s = Schedule::default();
        let reorder = Delivery { reorder: true, ..Delivery::default() };
        assert!(!s.push(now, Bytes::from_static(b"1"), reorder, ms(5)));
        assert!(s.push(now, Bytes::from_static(b"2"), Delivery { duplicate: true, ..Delivery::default() }, ms(5)));
        let got: Vec<_> = std::iter::from_fn(|| s.pop_due(now)).collect();
        assert_eq!(got, [&b"2"[..], b"2", b"1"]);
        // Alone, a reordered frame is delivered after the wait.
        s.push(now, Bytes::from_static(b"3"), reorder, ms(5));
        assert_eq!(s.pop_due(now + ms(4)), None);
        assert_eq!(s.pop_due(now + ms(5)).as_deref(), Some(&b"3"[..]));
        assert!(s.stash.is_none());
    }

    proptest::proptest! {
        /// Every frame comes out exactly once (twice if duplicated), and
        /// frames that were not reordered keep their order.
        #[test]
        fn schedule_loses_nothing_and_keeps_order(
            ops in proptest::collection::vec((0u64..20, proptest::bool::ANY, proptest::bool::ANY, 0u64..15), 0..80)
        ) {
            let ms = Duration::from_millis;
            let mut now = Instant::now();
            let mut s = Schedule::default();
            let mut out = Vec::new();
            for (i, &(delay, duplicate, reorder, advance)) in ops.iter().enumerate() {
                let d = Delivery { delay: ms(delay), duplicate, reorder };
                s.push(now, Bytes::from(i.to_string()), d, ms(5));
                now += ms(advance);
                out.extend(std::iter::from_fn(|| s.pop_due(now)));
            }
            now += ms(100);
            out.extend(std::iter::from_fn(|| s.pop_due(now)));
            proptest::prop_assert!(s.is_empty() && s.stash.is_none());
            let got: Vec<usize> = out.iter().map(|f| String::from_utf8_lossy(f).parse().expect("index")).collect();
            for (i, &(_, duplicate, _, _)) in ops.iter().enumerate() {
                let copies = got.iter().filter(|&&g| g == i).count();
                proptest::prop_assert_eq!(copies, 1 + usize::from(duplicate));
            }
            // A reordered frame's duplicate is scheduled in order; the stashed copy is the last one.
            let mut last_seen = vec![0usize; ops.len()];
            let mut in_order = Vec::new();
            for &g in &got {
                last_seen[g] += 1;
                let stashed_copy = ops[g].2 && last_seen[g] == 1 + usize::from(ops[g].1);
                if !stashed_copy {
                    in_order.push(g);
                }
            }
            proptest::prop_assert!(in_order.windows(2).all(|w| w[0] <= w[1]), "{:?}", got);
        }
    }
}
