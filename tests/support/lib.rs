//! Helpers shared by the integration tests: gates to hold an actor inside a
//! handler, and lifecycle-event collection.

pub mod activations;
pub mod cluster;
pub mod etcd;
pub mod keyed;
pub mod lease_conformance;
pub mod redis;
pub mod shared_store;

use std::sync::Arc;
use std::time::Duration;

use axactor::{ActorLifecycleEvent, ActorLifecycleEventKind, Pid};
use tokio::sync::{Semaphore, broadcast};

/// A gate a handler waits on: closed until the test opens it.
#[derive(Debug, Clone)]
pub struct Gate {
    sem: Arc<Semaphore>,
}

impl Default for Gate {
    fn default() -> Self {
        Gate::new()
    }
}

impl Gate {
    /// A closed gate.
    pub fn new() -> Gate {
        Gate { sem: Arc::new(Semaphore::new(0)) }
    }

    /// Lets `n` waiters through.
    pub fn open(&self, n: usize) {
        self.sem.add_permits(n);
    }

    /// Waits until the gate lets this caller through.
    pub async fn pass(&self) {
        // The semaphore is never closed, so acquire cannot fail.
        if let Ok(p) = self.sem.acquire().await {
            p.forget();
        }
    }
}

/// Waits for the next lifecycle event of `pid` with `kind`, skipping others.
///
/// # Panics
/// If the channel closes or none arrives within 60 s (of the possibly paused
/// clock): the test fails.
pub async fn next_event(
    rx: &mut broadcast::Receiver<ActorLifecycleEvent>,
    pid: Pid,
    kind: ActorLifecycleEventKind,
) -> ActorLifecycleEvent {
    let wait = async {
        loop {
            match rx.recv().await {
                Ok(e) if e.pid == pid && e.kind == kind => return e,
                Ok(_) => {}
                Err(broadcast::error::RecvError::Lagged(_)) => {}
                Err(broadcast::error::RecvError::Closed) => panic!("lifecycle channel closed"),
            }
        }
    };
    match tokio::time::timeout(Duration::from_secs(60), wait).await {
        Ok(e) => e,
        Err(_) => panic!("no {kind:?} event for {pid} within 60 s"),
    }
}

/// The README's quick start, compiled and run as a doctest.
#[doc = include_str!("../../README.md")]
#[cfg(doctest)]
pub struct ReadmeDoctests;
