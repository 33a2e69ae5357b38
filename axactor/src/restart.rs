//! Pure restart decisions: exponential backoff with jitter and restart
//! intensity. No clock or randomness is read here; callers pass `now` and a
//! jitter sample, so the rules are unit- and property-testable and behave the
//! same under Tokio's paused clock.

use std::collections::VecDeque;
use std::time::Duration;

use tokio::time::Instant;

/// Exponential backoff between `min` and `max`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Backoff {
    pub(crate) min: Duration,
    pub(crate) max: Duration,
}

impl Backoff {
    /// The delay before restart number `attempt` (0-based).
    ///
    /// The undelayed base doubles per attempt from `min`, capped at `max`;
    /// `jitter` in `[0, 1]` picks a point in `[max(min, base / 2), base]`
    /// ("equal jitter"), so the result always lies in `[min, max]` and a jitter
    /// of `1.0` gives the plain exponential sequence.
    pub(crate) fn delay(&self, attempt: u32, jitter: f64) -> Duration {
        let factor = 1u32.checked_shl(attempt.min(31)).unwrap_or(u32::MAX);
        let base = self.min.saturating_mul(factor).min(self.max).max(self.min);
        let low = (base / 2).max(self.min);
        let jitter = if jitter.is_finite() { jitter.clamp(0.0, 1.0) } else { 1.0 };
        low + (base - low).mul_f64(jitter)
    }
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
    }
}
