//! Local figures, one actor library at a time, with the same work on every
//! side: a counter actor that handles `Inc` (a tell) and `Get` (an ask
//! answering the count).
//!
//! - **tell**: one actor, `n` tells from one task; time until the actor has
//!   handled the last one (it signals a `Notify` at the count) / `n`.
//! - **ask**: `n` sequential asks after `n / 10` warm-up asks, each timed;
//!   p50 and p99.
//! - **spawn**: `n` actors spawned from one task / `n` (the call each
//!   library offers, awaited where it is async).
//! - **idle memory**: in a fresh child process per library, `n` actors that
//!   have each answered one ask; net heap bytes (counting allocator) and
//!   `VmRSS` growth, per actor.

pub mod actix_side;
pub mod axactor_side;
pub mod kameo_side;
pub mod ractor_side;
pub mod raw_side;

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use tokio::sync::Notify;

/// Mailbox capacity wherever a library lets it be chosen.
pub const CAP: usize = 1024;

/// The libraries compared.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Lib {
    /// A hand-written `tokio::sync::mpsc` loop (the floor).
    Raw,
    /// This repository.
    Axactor,
    /// `ractor` 0.16.
    Ractor,
    /// `kameo` 0.22.
    Kameo,
    /// `actix` 0.13 (on its own single-threaded `actix_rt` system).
    Actix,
}

impl Lib {
    /// Every library, the floor first.
    pub const ALL: [Lib; 5] = [Lib::Raw, Lib::Axactor, Lib::Ractor, Lib::Kameo, Lib::Actix];

    /// The column name.
    pub fn name(self) -> &'static str {
        match self {
            Lib::Raw => "raw tokio",
            Lib::Axactor => "axactor",
            Lib::Ractor => "ractor",
            Lib::Kameo => "kameo",
            Lib::Actix => "actix",
        }
    }

    /// Parses [`Lib::name`] without spaces (`raw`, `axactor`, ...).
    pub fn parse(s: &str) -> Option<Lib> {
        Lib::ALL.into_iter().find(|l| l.name().split(' ').next() == Some(s))
    }
}

/// Counts down the `Inc`s still expected and wakes the waiter at zero.
#[derive(Debug)]
pub struct Done {
    left: AtomicU64,
    notify: Notify,
}

impl Done {
    /// Expects `n` increments.
    pub fn new(n: u64) -> Arc<Done> {
        Arc::new(Done { left: AtomicU64::new(n), notify: Notify::new() })
    }

    /// One increment handled.
    pub fn arrive(&self) {
        if self.left.fetch_sub(1, Ordering::AcqRel) == 1 {
            self.notify.notify_one();
        }
    }

    /// Waits until every increment has been handled.
    pub async fn wait(&self) {
        while self.left.load(Ordering::Acquire) != 0 {
            self.notify.notified().await;
        }
    }
}

/// The state every side's actor keeps.
#[derive(Debug)]
pub struct Count {
    n: u64,
    done: Option<Arc<Done>>,
}

impl Count {
    /// A counter reporting each increment to `done`.
    pub fn new(done: Option<Arc<Done>>) -> Count {
        Count { n: 0, done }
    }

    /// Handles `Inc`.
    pub fn inc(&mut self) {
        self.n += 1;
        if let Some(d) = &self.done {
            d.arrive();
        }
    }

    /// Handles `Get`.
    pub fn get(&self) -> u64 {
        self.n
    }
}

/// What one library measured in one round.
#[derive(Debug, Clone, Default)]
pub struct Local {
    /// ns per tell.
    pub tell_ns: f64,
    /// Ask latency p50 and p99, ns.
    pub ask_p50_ns: f64,
    /// Ask latency p99, ns.
    pub ask_p99_ns: f64,
    /// ns per spawned actor.
    pub spawn_ns: f64,
}

/// Sizes of a run.
#[derive(Debug, Clone, Copy)]
pub struct Sizes {
    /// Tells per tell run.
    pub tells: u64,
    /// Timed asks.
    pub asks: usize,
    /// Actors spawned.
    pub spawns: usize,
    /// Actors kept idle in the memory child.
    pub idle: usize,
}

/// p50 and p99 of `samples`, in ns.
pub fn percentiles(mut samples: Vec<Duration>) -> (f64, f64) {
    samples.sort_unstable();
    let at = |q: usize| samples[(samples.len() * q / 100).min(samples.len() - 1)].as_nanos() as f64;
    (at(50), at(99))
}

/// Runs one round of `lib`'s local figures.
pub fn run(lib: Lib, s: Sizes) -> Local {
    match lib {
        Lib::Actix => actix_side::run(s),
        _ => {
            let rt = tokio::runtime::Builder::new_multi_thread()
                .worker_threads(crate::WORKERS)
                .enable_all()
                .build()
                .expect("tokio runtime");
            // On a worker, as an actor's or a request handler's asks are:
            // from `block_on`'s thread every ask would also wake that thread.
            let task = rt.spawn(async move {
                match lib {
                    Lib::Raw => raw_side::run(s).await,
                    Lib::Axactor => axactor_side::run(s).await,
                    Lib::Ractor => ractor_side::run(s).await,
                    Lib::Kameo => kameo_side::run(s).await,
                    Lib::Actix => unreachable!("actix runs on its own system"),
                }
            });
            rt.block_on(task).expect("the round's task")
        }
    }
}

/// In a child process: `n` idle actors of `lib` that have each answered
/// one ask; returns (net heap bytes, RSS growth bytes) per actor. The
/// runtime exists before the first reading.
pub fn idle_memory(lib: Lib, n: usize) -> (f64, f64) {
    if lib == Lib::Actix {
        return actix_side::idle(n);
    }
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(crate::WORKERS)
        .enable_all()
        .build()
        .expect("tokio runtime");
    rt.block_on(async move {
        let (heap0, rss0) = (crate::heap_net(), crate::rss_bytes());
        let keep = match lib {
            Lib::Raw => raw_side::idle(n).await,
            Lib::Axactor => axactor_side::idle(n).await,
            Lib::Ractor => ractor_side::idle(n).await,
            Lib::Kameo => kameo_side::idle(n).await,
            Lib::Actix => unreachable!("handled above"),
        };
        let out = crate::per_actor(heap0, rss0, n);
        std::mem::forget(keep);
        out
    })
}
