//! Identifiers: [`Pid`] for actors, [`MonitorId`] for monitors, and the cluster
//! [`Fence`] token handed to hosted activations.
//!
//! Pids and monitor ids come from process-wide counters, so they are unique for
//! the life of the process and never reused (a stale pid can never address a
//! newer actor).

use std::fmt;
use std::sync::atomic::{AtomicU64, Ordering};

/// The identity of one actor for its whole life, across restarts.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Pid(u64);

impl Pid {
    pub(crate) fn next() -> Pid {
        static NEXT: AtomicU64 = AtomicU64::new(1);
        Pid(NEXT.fetch_add(1, Ordering::Relaxed))
    }

    /// The numeric value of the pid (unique within this process).
    pub fn as_u64(self) -> u64 {
        self.0
    }
}

impl fmt::Display for Pid {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "<{}>", self.0)
    }
}

/// Names one monitor set up with `System::monitor`; passed to `on_down`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct MonitorId(u64);

impl MonitorId {
    pub(crate) fn next() -> MonitorId {
        static NEXT: AtomicU64 = AtomicU64::new(1);
        MonitorId(NEXT.fetch_add(1, Ordering::Relaxed))
    }

    /// The numeric value of the id (unique within this process).
    pub fn as_u64(self) -> u64 {
        self.0
    }
}

impl fmt::Display for MonitorId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "mon#{}", self.0)
    }
}

/// The lease a cluster-hosted activation runs under.
///
/// Handlers pass `epoch` to their own storage as a fencing token (a write is
/// accepted only if no write with a higher epoch was seen), which closes the
/// window that leases alone cannot close: a process pause between the
/// runtime's deadline check and the write itself.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Fence {
    /// The keyed registry (or singleton) id the activation belongs to.
    pub registry: String,
    /// The shard of the key.
    pub shard: u32,
    /// The lease epoch the owner holds; strictly grows with every acquisition.
    pub epoch: u64,
}
