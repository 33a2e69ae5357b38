//! Deliberate bugs, compiled in with the `mutants` feature, that prove the
//! simulation's checker can fail: each must be caught within a fixed seed
//! budget (`tests/sim_mutants.rs`). A mutant is selected per thread (a
//! simulation runs on one thread), so other tests in the same process are
//! unaffected; without the feature every hook is the constant `false`.

use std::fmt;

/// One deliberate bug.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
#[non_exhaustive]
pub enum Mutant {
    /// The owner executes a message whatever epoch it carries.
    SkipEpochCheck,
    /// The lease deadline is checked when a message is queued, never when it
    /// runs: a node that stalls past its deadline runs its backlog.
    FenceWhenQueued,
    /// A handover or shutdown releases the lease before the shard's
    /// activations have stopped.
    ReleaseBeforeStop,
    /// A fenced shard may be acquired again before its activations have
    /// stopped, at the epoch it was fenced at.
    ReacquireWhileStopping,
    /// A restarted node reuses its previous session id, so the old session's
    /// leases and frames count as its own.
    ReuseSession,
    /// An ask that timed out is sent again (it may have run).
    RetryAfterTimeout,
    /// Lease names ignore the registry's shard count, and a node accepts
    /// keys that do not hash to the shard they were sent for.
    IgnoreShardCount,
    /// An in-memory link hands a frame to its reader from the sender's
    /// task while frames are still queued before it.
    InlineOverQueued,
}

impl Mutant {
    /// Every mutant, in a fixed order.
    pub const ALL: [Mutant; 8] = [
        Mutant::SkipEpochCheck,
        Mutant::FenceWhenQueued,
        Mutant::ReleaseBeforeStop,
        Mutant::ReacquireWhileStopping,
        Mutant::ReuseSession,
        Mutant::RetryAfterTimeout,
        Mutant::IgnoreShardCount,
        Mutant::InlineOverQueued,
    ];

    /// The kebab-case name (`--mutant` on the command line).
    pub fn name(self) -> &'static str {
        match self {
            Mutant::SkipEpochCheck => "skip-epoch-check",
            Mutant::FenceWhenQueued => "fence-when-queued",
            Mutant::ReleaseBeforeStop => "release-before-stop",
            Mutant::ReacquireWhileStopping => "reacquire-while-stopping",
            Mutant::ReuseSession => "reuse-session",
            Mutant::RetryAfterTimeout => "retry-after-timeout",
            Mutant::IgnoreShardCount => "ignore-shard-count",
            Mutant::InlineOverQueued => "inline-over-queued",
        }
    }

    /// The mutant named `name` ([`Mutant::name`]).
    pub fn parse(name: &str) -> Option<Mutant> {
        Mutant::ALL.into_iter().find(|m| m.name() == name)
    }

    /// Whether this mutant is selected on the current thread.
    #[cfg(feature = "mutants")]
    pub(crate) fn is_active(self) -> bool {
        ACTIVE.with(|a| a.get() == Some(self))
    }
}

impl fmt::Display for Mutant {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

#[cfg(feature = "mutants")]
thread_local! {
    static ACTIVE: std::cell::Cell<Option<Mutant>> = const { std::cell::Cell::new(None) };
}

/// Selects `mutant` on this thread until the guard is dropped.
///
/// Without the `mutants` feature nothing is compiled in to select: a run
/// that asks for a mutant then reports it as not available.
#[derive(Debug)]
pub(crate) struct Selected(());

impl Selected {
    /// `None` if mutants are not compiled in.
    pub(crate) fn select(mutant: Option<Mutant>) -> Option<Selected> {
        #[cfg(feature = "mutants")]
        {
            ACTIVE.with(|a| a.set(mutant));
            Some(Selected(()))
        }
        #[cfg(not(feature = "mutants"))]
        {
            mutant.is_none().then_some(Selected(()))
        }
    }
}

impl Drop for Selected {
    fn drop(&mut self) {
        #[cfg(feature = "mutants")]
        ACTIVE.with(|a| a.set(None));
    }
}
