//! The restart hand-off between an actor's task and whoever decides its next
//! incarnation: how an incarnation ended (`End`) and the actor's
//! `Restarter`, which turns that into an `Outcome` (never restarted; the
//! spawn config's `restart_on_panic` policy; or its supervision group).
//!
//! The task (`run.rs`) only reports the end and applies the outcome; the
//! rules themselves are pure (`restart.rs`) or taken under the group lock
//! (`group.rs`).

use std::time::Duration;

use crate::env::{JitterFn, sample_jitter};
use crate::group::SupervisedChild;
use crate::restart::{Decision, Outcome, RestartCounter, RestartPolicy};
use crate::{ExitReason, SpawnConfig};

/// How an incarnation ended.
#[derive(Debug)]
pub(crate) enum End {
    /// Stopped on purpose (stop request, `ctx.stop`, a linked exit).
    Exit(ExitReason),
    /// The factory, a handler or a hook panicked.
    Failed,
    /// A supervisor restarts this child because a sibling failed.
    Restart,
}

impl End {
    /// The reason the incarnation's `on_stop` sees, and the actor's exit
    /// reason if it does not restart.
    pub(crate) fn reason(&self) -> ExitReason {
        match self {
            End::Exit(r) => r.clone(),
            End::Failed => ExitReason::Panic,
            End::Restart => ExitReason::Shutdown,
        }
    }
}

/// The restart policy of one actor, with its state.
pub(crate) enum Restarter {
    /// Never restarted: a panic ends the actor with `Panic`.
    Never,
    /// `SpawnConfig::restart_on_panic`.
    OnPanic { policy: RestartPolicy, counter: RestartCounter, jitter: Option<JitterFn> },
    /// A child of a [`crate::Supervisor`], with its jitter source.
    Supervised(SupervisedChild, Option<JitterFn>),
}

impl Restarter {
    /// The restarter `cfg` asks for; `system_jitter` is the system's jitter
    /// source, used when `cfg` has none of its own.
    pub(crate) fn from_config(cfg: &SpawnConfig, system_jitter: Option<&JitterFn>) -> Restarter {
        match &cfg.restart {
            Some(policy) => Restarter::OnPanic {
                policy: *policy,
                counter: RestartCounter::default(),
                jitter: cfg.jitter.clone().or_else(|| system_jitter.cloned()),
            },
            None => Restarter::Never,
        }
    }

    /// `false` if no end can lead to a restart (so the task need not time
    /// incarnations).
    #[inline]
    pub(crate) fn can_restart(&self) -> bool {
        !matches!(self, Restarter::Never)
    }

    /// What follows an incarnation that ended with `end` after `ran_for`.
    pub(crate) fn decide(&mut self, end: &End, ran_for: Duration) -> Outcome {
        match (self, end) {
            (_, End::Restart) => Outcome::Restart(Duration::ZERO),
            (Restarter::Never, end) => Outcome::Stop(end.reason()),
            (Restarter::OnPanic { policy, counter, jitter }, End::Failed) => {
                match counter.on_failure(policy, ran_for, sample_jitter(jitter.as_ref())) {
                    Decision::Restart(d) => Outcome::Restart(d),
                    Decision::GiveUp => Outcome::Stop(ExitReason::RestartIntensityExceeded),
                }
            }
            (Restarter::OnPanic { .. }, end) => Outcome::Stop(end.reason()),
            (Restarter::Supervised(child, jitter), end) => child.decide(&end.reason(), jitter.as_ref()),
        }
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use super::*;

    fn ms(n: u64) -> Duration {
        Duration::from_millis(n)
    }

    fn on_panic(max_restarts: usize) -> SpawnConfig {
        SpawnConfig::new("a", 1).restart_on_panic(max_restarts, ms(10), ms(100))
    }

    #[test]
    fn the_reason_of_each_end() {
        assert_eq!(End::Exit(ExitReason::LeaseLost).reason(), ExitReason::LeaseLost);
        assert_eq!(End::Failed.reason(), ExitReason::Panic);
        assert_eq!(End::Restart.reason(), ExitReason::Shutdown);
    }

    #[test]
    fn without_a_policy_every_end_is_final_but_a_group_restart() {
        let mut r = Restarter::from_config(&SpawnConfig::new("a", 1), None);
        assert!(!r.can_restart());
        assert_eq!(r.decide(&End::Failed, ms(5)), Outcome::Stop(ExitReason::Panic));
        assert_eq!(r.decide(&End::Exit(ExitReason::Normal), ms(5)), Outcome::Stop(ExitReason::Normal));
        assert_eq!(r.decide(&End::Restart, ms(5)), Outcome::Restart(Duration::ZERO));
    }

    #[test]
    fn on_panic_restarts_failures_with_backoff_then_gives_up() {
        let mut r = Restarter::from_config(&on_panic(2).restart_jitter(|| 1.0), None);
        assert!(r.can_restart());
        assert_eq!(r.decide(&End::Failed, ms(5)), Outcome::Restart(ms(10)));
        assert_eq!(r.decide(&End::Failed, ms(5)), Outcome::Restart(ms(20)));
        assert_eq!(r.decide(&End::Failed, ms(5)), Outcome::Stop(ExitReason::RestartIntensityExceeded));
    }

    #[test]
    fn on_panic_never_restarts_a_stop_on_purpose() {
        let mut r = Restarter::from_config(&on_panic(5), None);
        let stop = End::Exit(ExitReason::Other("done".into()));
        assert_eq!(r.decide(&stop, ms(5)), Outcome::Stop(ExitReason::Other("done".into())));
    }

    #[test]
    fn the_config_jitter_wins_over_the_system_jitter() {
        let none: JitterFn = Arc::new(|| 0.0);
        // The system's source: the second delay is the bottom of [10, 20].
        let mut r = Restarter::from_config(&on_panic(3), Some(&none));
        assert_eq!(r.decide(&End::Failed, ms(5)), Outcome::Restart(ms(10)));
        assert_eq!(r.decide(&End::Failed, ms(5)), Outcome::Restart(ms(10)));
        // The config's own source: the top.
        let mut r = Restarter::from_config(&on_panic(3).restart_jitter(|| 1.0), Some(&none));
        assert_eq!(r.decide(&End::Failed, ms(5)), Outcome::Restart(ms(10)));
        assert_eq!(r.decide(&End::Failed, ms(5)), Outcome::Restart(ms(20)));
    }

    #[test]
    fn a_long_uptime_resets_the_backoff() {
        let mut r = Restarter::from_config(&on_panic(1).restart_reset_after(ms(50)).restart_jitter(|| 1.0), None);
        assert_eq!(r.decide(&End::Failed, ms(5)), Outcome::Restart(ms(10)));
        assert_eq!(r.decide(&End::Failed, ms(60)), Outcome::Restart(ms(10)));
        assert_eq!(r.decide(&End::Failed, ms(5)), Outcome::Stop(ExitReason::RestartIntensityExceeded));
    }
}
