//! Pure restart decisions: exponential backoff with jitter ([`Backoff`], the
//! one backoff of the workspace: the cluster's re-dials and request retries
//! use it too), the restart counter, supervisor restart intensity, and what
//! follows an incarnation (`Outcome`). No clock or randomness is read here;
//! callers pass `now` and a jitter sample, so the rules are unit- and
//! property-testable and behave the same under Tokio's paused clock.

use std::collections::VecDeque;
use std::time::Duration;

use tokio::time::Instant;

use crate::ExitReason;

/// Capped exponential backoff between `min` and `max`, with optional equal
/// jitter. Pure: the caller supplies the attempt number and the jitter
/// sample, so a schedule is reproducible and testable.
///
/// [`Backoff::base`] is the plain sequence `min, 2·min, 4·min, …` capped at
/// `max`; [`Backoff::delay`] picks a point in its upper half (never below
/// `min`). A schedule that waits nothing before the first try and `min`
/// after the first failure uses `base(failures - 1)` once `failures ≥ 1`.
///
/// ```
/// use axactor::Backoff;
/// use std::time::Duration;
///
/// let ms = Duration::from_millis;
/// let b = Backoff::new(ms(10), ms(100));
/// assert_eq!(b.base(0), ms(10));
/// assert_eq!(b.base(3), ms(80));
/// assert_eq!(b.base(4), ms(100)); // capped
/// assert_eq!(b.base(u32::MAX), ms(100)); // saturates, never panics
///
/// // Equal jitter: a sample in [0, 1] picks a point in [base / 2, base].
/// assert_eq!(b.delay(3, 0.0), ms(40));
/// assert_eq!(b.delay(3, 0.5), ms(60));
/// assert_eq!(b.delay(3, 1.0), b.base(3));
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Backoff {
    pub(crate) min: Duration,
    pub(crate) max: Duration,
}

impl Backoff {
    /// A backoff starting at `min` and doubling up to `max`. A `max` below
    /// `min` acts as `min` (every delay is then `min`).
    pub const fn new(min: Duration, max: Duration) -> Backoff {
        Backoff { min, max }
    }

    /// The un-jittered delay before retry number `attempt` (0-based):
    /// `min · 2^attempt`, capped at `max` (at least `min`). Saturating: any
    /// `attempt`, up to `u32::MAX`, gives a value in `[min, max]`.
    pub fn base(&self, attempt: u32) -> Duration {
        let cap = self.max.max(self.min);
        let min = self.min.as_nanos();
        // `min` is below 2^94 ns, so a shift by fewer than its leading zeros
        // loses no bit; a longer one is past any `Duration` and so past `cap`.
        if min == 0 || attempt >= min.leading_zeros() {
            return if min == 0 { Duration::ZERO } else { cap };
        }
        let scaled = min << attempt;
        if scaled >= cap.as_nanos() {
            return cap;
        }
        // Below `cap`, so its whole seconds fit in a `u64`.
        u64::try_from(scaled / NANOS_PER_SEC).map_or(cap, |secs| Duration::new(secs, (scaled % NANOS_PER_SEC) as u32))
    }

    /// The delay before retry number `attempt` (0-based), with "equal
    /// jitter": `jitter` in `[0, 1]` picks a point in
    /// `[max(min, base / 2), base]` where `base` is [`Backoff::base`], so the
    /// result always lies in `[min, max]`. A jitter of `1.0` (or one that is
    /// not finite) gives `base(attempt)` exactly; values outside `[0, 1]` are
    /// clamped. Never panics.
    pub fn delay(&self, attempt: u32, jitter: f64) -> Duration {
        let base = self.base(attempt);
        let jitter = if jitter.is_finite() { jitter.clamp(0.0, 1.0) } else { 1.0 };
        if jitter >= 1.0 {
            return base;
        }
        let low = (base / 2).max(self.min);
        let span = base - low;
        // `span` is at most `base / 2`, so the product stays far below
        // `Duration::MAX`; `min(span)` absorbs float rounding.
        low.saturating_add(span.mul_f64(jitter).min(span))
    }
}

const NANOS_PER_SEC: u128 = 1_000_000_000;

/// What follows an incarnation.
#[derive(Debug, PartialEq)]
pub(crate) enum Outcome {
    /// Another incarnation after this delay.
    Restart(Duration),
    /// The actor ends with this reason.
    Stop(ExitReason),
}

/// What to do after an incarnation failed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Decision {
    /// Restart after this delay.
    Restart(Duration),
    /// Give up: the actor stops with `RestartIntensityExceeded`.
    GiveUp,
}

/// `SpawnConfig::restart_on_panic`: at most `max_restarts` restarts, counted
/// over the actor's life unless `reset_after` is set, in which case an
/// incarnation that ran that long without failing resets the count (and the
/// backoff).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct RestartPolicy {
    pub(crate) max_restarts: usize,
    pub(crate) backoff: Backoff,
    pub(crate) reset_after: Option<Duration>,
}

/// Per-actor state of a [`RestartPolicy`].
#[derive(Debug, Default)]
pub(crate) struct RestartCounter {
    restarts: usize,
}

impl RestartCounter {
    /// Records a failure of an incarnation that ran for `ran_for`.
    pub(crate) fn on_failure(&mut self, policy: &RestartPolicy, ran_for: Duration, jitter: f64) -> Decision {
        if policy.reset_after.is_some_and(|d| ran_for >= d) {
            self.restarts = 0;
        }
        if self.restarts >= policy.max_restarts {
            return Decision::GiveUp;
        }
        let attempt = u32::try_from(self.restarts).unwrap_or(u32::MAX);
        self.restarts += 1;
        Decision::Restart(policy.backoff.delay(attempt, jitter))
    }
}

/// Supervisor restart intensity: at most `max_restarts` within any window of
/// length `within` (Erlang's MaxR / MaxT).
#[derive(Debug)]
pub(crate) struct Intensity {
    max_restarts: usize,
    within: Duration,
    history: VecDeque<Instant>,
}

impl Intensity {
    pub(crate) fn new(max_restarts: usize, within: Duration) -> Self {
        Intensity { max_restarts, within, history: VecDeque::new() }
    }

    /// Records a restart request at `now`; `false` when it would exceed the
    /// intensity (the caller then gives up). Returns the number of restarts in
    /// the window before this one via `attempt` for backoff purposes.
    pub(crate) fn allow(&mut self, now: Instant) -> Option<u32> {
        while let Some(&first) = self.history.front() {
            if now.saturating_duration_since(first) >= self.within {
                self.history.pop_front();
            } else {
                break;
            }
        }
        if self.history.len() >= self.max_restarts {
            return None;
        }
        let attempt = u32::try_from(self.history.len()).unwrap_or(u32::MAX);
        self.history.push_back(now);
        Some(attempt)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn policy(max: usize, min_ms: u64, max_ms: u64) -> RestartPolicy {
        RestartPolicy {
            max_restarts: max,
            backoff: Backoff { min: Duration::from_millis(min_ms), max: Duration::from_millis(max_ms) },
            reset_after: None,
        }
    }

    #[test]
    fn exponential_without_jitter() {
        let b = Backoff { min: Duration::from_millis(10), max: Duration::from_millis(100) };
        let delays: Vec<_> = (0..6).map(|a| b.delay(a, 1.0).as_millis()).collect();
        assert_eq!(delays, vec![10, 20, 40, 80, 100, 100]);
    }

    #[test]
    fn base_doubles_from_min_and_caps_at_max() {
        let b = Backoff::new(Duration::from_millis(10), Duration::from_millis(100));
        let bases: Vec<_> = (0..6).map(|a| b.base(a).as_millis()).collect();
        assert_eq!(bases, vec![10, 20, 40, 80, 100, 100]);
        assert_eq!(b.base(u32::MAX), Duration::from_millis(100));
    }

    #[test]
    fn base_saturates_at_the_extremes() {
        let ns = Duration::from_nanos;
        assert_eq!(Backoff::new(ns(1), Duration::MAX).base(u32::MAX), Duration::MAX);
        assert_eq!(Backoff::new(ns(1), Duration::MAX).base(127), Duration::MAX);
        assert_eq!(Backoff::new(ns(1), Duration::MAX).base(93), Duration::from_nanos(1 << 63) * (1 << 30));
        assert_eq!(Backoff::new(Duration::MAX, Duration::MAX).base(7), Duration::MAX);
        assert_eq!(Backoff::new(Duration::ZERO, Duration::MAX).base(u32::MAX), Duration::ZERO);
        assert_eq!(Backoff::new(Duration::ZERO, Duration::ZERO).base(3), Duration::ZERO);
    }

    #[test]
    fn base_keeps_doubling_past_thirty_one_attempts() {
        let b = Backoff::new(Duration::from_nanos(1), Duration::from_secs(3_600));
        assert_eq!(b.base(40), Duration::from_nanos(1 << 40));
        assert_eq!(b.base(42), Duration::from_secs(3_600));
    }

    #[test]
    fn max_below_min_acts_as_min() {
        let b = Backoff::new(Duration::from_millis(50), Duration::from_millis(10));
        for a in [0, 1, 5, u32::MAX] {
            assert_eq!(b.base(a), Duration::from_millis(50));
            assert_eq!(b.delay(a, 0.0), Duration::from_millis(50));
            assert_eq!(b.delay(a, 1.0), Duration::from_millis(50));
        }
    }

    #[test]
    fn delay_picks_a_point_in_the_upper_half() {
        let b = Backoff::new(Duration::from_millis(10), Duration::from_millis(100));
        assert_eq!(b.delay(0, 0.0), Duration::from_millis(10));
        assert_eq!(b.delay(3, 0.0), Duration::from_millis(40));
        assert_eq!(b.delay(3, 0.25), Duration::from_millis(50));
        assert_eq!(b.delay(3, 1.0), Duration::from_millis(80));
        assert_eq!(b.delay(9, 0.0), Duration::from_millis(50));
        // Out-of-range samples are clamped; a non-finite one means "no jitter".
        assert_eq!(b.delay(3, -4.0), Duration::from_millis(40));
        assert_eq!(b.delay(3, 7.0), Duration::from_millis(80));
        assert_eq!(b.delay(3, f64::NAN), Duration::from_millis(80));
        assert_eq!(b.delay(3, f64::NEG_INFINITY), Duration::from_millis(80));
    }

    /// The cluster's re-dial schedule: nothing before the first dial,
    /// `min · 2^(failures - 1)` capped at `max` after `failures` failures.
    fn redial(failures: u32, min: Duration, max: Duration) -> Duration {
        if failures == 0 {
            return Duration::ZERO;
        }
        let factor = 1u32.checked_shl(failures.saturating_sub(1).min(31)).unwrap_or(u32::MAX);
        min.saturating_mul(factor).min(max)
    }

    #[test]
    fn base_expresses_the_redial_schedule() {
        let (min, max) = (Duration::from_millis(20), Duration::from_millis(400));
        let b = Backoff::new(min, max);
        for failures in [1, 2, 3, 5, 6, 31, 32, 100, u32::MAX] {
            assert_eq!(b.base(failures - 1), redial(failures, min, max), "failures {failures}");
        }
    }

    #[test]
    fn base_expresses_the_request_retry_schedule() {
        const MIN: Duration = Duration::from_millis(5);
        const MAX: Duration = Duration::from_millis(250);
        let b = Backoff::new(MIN, MAX);
        for attempt in (0..=40).chain([1_000, u32::MAX]) {
            assert_eq!(b.base(attempt), MIN.saturating_mul(1u32 << attempt.min(16)).min(MAX), "attempt {attempt}");
        }
    }

    #[test]
    fn gives_up_after_max_restarts() {
        let p = policy(3, 1, 10);
        let mut c = RestartCounter::default();
        for _ in 0..3 {
            assert!(matches!(c.on_failure(&p, Duration::ZERO, 0.5), Decision::Restart(_)));
        }
        assert_eq!(c.on_failure(&p, Duration::ZERO, 0.5), Decision::GiveUp);
    }

    #[test]
    fn long_uptime_resets_the_count() {
        let mut p = policy(1, 1, 10);
        p.reset_after = Some(Duration::from_secs(1));
        let mut c = RestartCounter::default();
        assert!(matches!(c.on_failure(&p, Duration::ZERO, 1.0), Decision::Restart(_)));
        assert_eq!(c.on_failure(&p, Duration::from_millis(10), 1.0), Decision::GiveUp);
        let mut c = RestartCounter::default();
        assert!(matches!(c.on_failure(&p, Duration::ZERO, 1.0), Decision::Restart(_)));
        assert_eq!(c.on_failure(&p, Duration::from_secs(2), 1.0), Decision::Restart(Duration::from_millis(1)));
    }

    #[test]
    fn intensity_window_slides() {
        let t0 = Instant::now();
        let mut i = Intensity::new(2, Duration::from_secs(1));
        assert_eq!(i.allow(t0), Some(0));
        assert_eq!(i.allow(t0 + Duration::from_millis(100)), Some(1));
        assert_eq!(i.allow(t0 + Duration::from_millis(200)), None);
        assert_eq!(i.allow(t0 + Duration::from_millis(1050)), Some(1));
    }

    proptest! {
        #[test]
        fn backoff_within_bounds(min_ms in 0u64..10_000, extra in 0u64..100_000, attempt in 0u32..200, jitter in proptest::num::f64::ANY) {
            let b = Backoff { min: Duration::from_millis(min_ms), max: Duration::from_millis(min_ms + extra) };
            let d = b.delay(attempt, jitter);
            prop_assert!(d >= b.min && d <= b.max, "{d:?} not in [{:?}, {:?}]", b.min, b.max);
        }

        #[test]
        fn backoff_base_never_shrinks(min_ms in 1u64..1_000, extra in 0u64..10_000, attempt in 0u32..60) {
            let b = Backoff { min: Duration::from_millis(min_ms), max: Duration::from_millis(min_ms + extra) };
            prop_assert!(b.delay(attempt + 1, 1.0) >= b.delay(attempt, 1.0));
        }

        #[test]
        fn base_is_min_times_two_to_the_attempt_capped(
            min_ns in prop_oneof![0u64..1_000_000, any::<u64>()],
            max_s in prop_oneof![0u64..1_000, any::<u64>()],
            max_ns in 0u32..1_000_000_000,
            attempt in prop_oneof![0u32..140, any::<u32>()],
        ) {
            let b = Backoff::new(Duration::from_nanos(min_ns), Duration::new(max_s, max_ns));
            let cap = b.max.max(b.min);
            let exact = if attempt >= 128 { None } else { u128::from(min_ns).checked_mul(1u128 << attempt) };
            let want = match exact {
                _ if min_ns == 0 => Duration::ZERO,
                Some(n) if n < cap.as_nanos() => {
                    Duration::new(u64::try_from(n / 1_000_000_000).unwrap_or(u64::MAX), (n % 1_000_000_000) as u32)
                }
                _ => cap,
            };
            prop_assert_eq!(b.base(attempt), want);
            prop_assert!(b.base(attempt) >= b.min && b.base(attempt) <= cap);
            prop_assert!(b.base(attempt.saturating_add(1)) >= b.base(attempt));
        }

        #[test]
        fn delay_never_panics_and_full_jitter_is_base(min_s in any::<u64>(), min_ns in 0u32..1_000_000_000, max_s in any::<u64>(), attempt in any::<u32>(), jitter in proptest::num::f64::ANY) {
            let b = Backoff::new(Duration::new(min_s, min_ns), Duration::new(max_s, 0));
            let d = b.delay(attempt, jitter);
            prop_assert!(d >= b.min && d <= b.max.max(b.min));
            prop_assert!(d <= b.base(attempt));
            prop_assert_eq!(b.delay(attempt, 1.0), b.base(attempt));
        }

        #[test]
        fn base_matches_the_redial_schedule(min_ms in 1u64..10_000, extra in 0u64..1_000_000, failures in 1u32..=32) {
            let (min, max) = (Duration::from_millis(min_ms), Duration::from_millis(min_ms + extra));
            prop_assert_eq!(Backoff::new(min, max).base(failures - 1), redial(failures, min, max));
        }
    }
}
