//! Section `cost`: heap allocations and CPU time per remote ask, against
//! the raw framed echo doing the same asks in the same run.
//!
//! Both nodes (and, for the floor, the raw client and server) run in this
//! process, so the counting allocator and the process CPU clock see both
//! ends of every ask. Allocations are counted by `stats_alloc` over the
//! system allocator (every thread; allocations plus reallocations); CPU is
//! the process's user + system time (`CLOCK_PROCESS_CPUTIME_ID`). Background
//! work (heartbeats, lease renewals) is included: about 0.01–0.02
//! allocations per ask. [`in_memory_paused`] counts the asks alone, on a
//! paused clock.

use std::time::Duration;

use stats_alloc::{INSTRUMENTED_SYSTEM, Region, StatsAlloc};

use crate::measure::{Asker, latency, throughput};

/// The counting allocator every benchmark of this binary runs on (both
/// sides of every comparison pay its two atomic adds per allocation).
#[global_allocator]
static GLOBAL: &StatsAlloc<std::alloc::System> = &INSTRUMENTED_SYSTEM;

/// What `n` asks cost, per ask.
#[derive(Debug, Clone, Copy, Default)]
pub(crate) struct Cost {
    /// Heap allocations plus reallocations per ask.
    pub(crate) allocs: f64,
    /// Process CPU time per ask, in microseconds.
    pub(crate) cpu_us: f64,
}

/// The process's CPU time so far (all threads), zero if the system cannot tell.
fn process_cpu() -> Duration {
    cpu_time::ProcessTime::try_now().map_or(Duration::ZERO, |t| t.as_duration())
}

fn per_ask(region: &Region<'_, std::alloc::System>, cpu_before: Duration, n: usize) -> Cost {
    let s = region.change();
    let cpu = process_cpu().saturating_sub(cpu_before);
    Cost { allocs: (s.allocations + s.reallocations) as f64 / n as f64, cpu_us: cpu.as_secs_f64() * 1e6 / n as f64 }
}

/// `n` sequential asks from one task (after `warm` untimed ones).
pub(crate) async fn sequential<A: Asker>(a: &mut A, warm: usize, n: usize) -> Cost {
    latency(a, warm, warm.max(1)).await;
    let region = Region::new(GLOBAL);
    let cpu = process_cpu();
    // `latency` keeps one sample per ask in a buffer allocated up front:
    // one allocation for the whole run, not per ask.
    latency(a, 0, n).await;
    per_ask(&region, cpu, n)
}

/// `n` asks from `tasks` concurrent askers.
pub(crate) async fn pipelined<A: Asker + Clone>(a: &A, tasks: usize, n: usize, warm: usize) -> Cost {
    throughput(a, tasks, warm.max(tasks), 0).await;
    let region = Region::new(GLOBAL);
    let cpu = process_cpu();
    // Spawning the askers allocates a few times per task, not per ask.
    throughput(a, tasks, n, 0).await;
    per_ask(&region, cpu, n)
}

/// Allocations per remote ask on the in-memory overlay, both nodes in this
/// process, counted on a paused clock (a current-thread runtime whose clock
/// only moves when every task waits): no time passes while the `n` asks
/// run, so no heartbeat, lease renewal or other timed work is counted,
/// only what the asks themselves allocate (the caller's argument `Vec`
/// included). Returns the count per ask and how far the clock moved.
pub(crate) fn in_memory_paused(n: usize, warm: usize) -> (f64, Duration) {
    use crate::nodes::{Cluster, Remote, Transport};
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .start_paused(true)
        .build()
        .expect("current-thread runtime");
    rt.block_on(async move {
        let cluster = Cluster::start(&["a", "b"], Transport::Memory).await;
        let key = cluster.key_owned_by("b");
        let mut remote = Remote(cluster.keyed[0].get(key.as_str()));
        for _ in 0..warm {
            remote.call().await;
        }
        let started = tokio::time::Instant::now();
        let region = Region::new(GLOBAL);
        for _ in 0..n {
            remote.call().await;
        }
        let s = region.change();
        let moved = started.elapsed();
        cluster.kill_all();
        ((s.allocations + s.reallocations) as f64 / n as f64, moved)
    })
}
