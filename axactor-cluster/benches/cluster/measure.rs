//! What every side is measured with: sequential latency (each ask timed on
//! its own) and pipelined throughput (a fixed number of asks shared by `c`
//! concurrent tasks, timed as a whole).

use std::future::Future;
use std::time::{Duration, Instant};

/// Something that answers one request per `call`, from one task. A side
/// that can be cloned can be driven by many tasks at once.
pub(crate) trait Asker: Send + 'static {
    /// One request and its reply.
    fn call(&mut self) -> impl Future<Output = ()> + Send + '_;
}

/// Latency percentiles of one run, in microseconds.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Latency {
    pub(crate) p50: f64,
    pub(crate) p99: f64,
}

/// `warm` untimed calls, then `n` calls each timed with `Instant::now()`.
pub(crate) async fn latency<A: Asker>(a: &mut A, warm: usize, n: usize) -> Latency {
    for _ in 0..warm {
        a.call().await;
    }
    let mut samples = Vec::with_capacity(n);
    for _ in 0..n {
        let t = Instant::now();
        a.call().await;
        samples.push(t.elapsed());
    }
    percentiles(samples)
}

/// p50 and p99 of `samples`, in microseconds.
pub(crate) fn percentiles(mut samples: Vec<Duration>) -> Latency {
    samples.sort_unstable();
    let at = |q: usize| samples[(samples.len() * q / 100).min(samples.len() - 1)].as_secs_f64() * 1e6;
    Latency { p50: at(50), p99: at(99) }
}

/// `total` calls spread over `tasks` concurrent tasks (each makes its share
/// sequentially), after `warm` untimed calls per task; calls per second.
pub(crate) async fn throughput<A: Asker + Clone>(a: &A, tasks: usize, total: usize, warm: usize) -> f64 {
    let per_task = total / tasks;
    let start = std::sync::Arc::new(tokio::sync::Barrier::new(tasks + 1));
    let mut handles = Vec::with_capacity(tasks);
    for _ in 0..tasks {
        let (mut a, start) = (a.clone(), start.clone());
        handles.push(tokio::spawn(async move {
            for _ in 0..warm {
                a.call().await;
            }
            start.wait().await;
            for _ in 0..per_task {
                a.call().await;
            }
        }));
    }
    start.wait().await;
    let t = Instant::now();
    for h in handles {
        h.await.expect("asker task panicked");
    }
    (per_task * tasks) as f64 / t.elapsed().as_secs_f64()
}

/// The median of `v` (upper median for an even length).
pub(crate) fn median(v: &[f64]) -> f64 {
    let mut v = v.to_vec();
    v.sort_by(f64::total_cmp);
    v[v.len() / 2]
}
