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
