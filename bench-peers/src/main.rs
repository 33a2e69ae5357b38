//! Side-by-side benchmarks of axactor against raw Tokio and peer actor
//! libraries, measured by one harness in one run:
//!
//! - `local`: tell, ask, spawn and idle memory for raw Tokio, axactor,
//!   ractor, kameo and actix ([`local`]);
//! - `remote`: ask latency and pipelined throughput over loopback TCP
//!   between two processes for a raw framed echo, axactor-cluster and
//!   ractor_cluster ([`remote`]).
//!
//! Run from this directory (its own workspace, so the peers never enter the
//! main build): `cargo run --release -- [local] [remote] [--quick]
//! [--rounds=N]`. Results and method: `docs/benchmarks.md`, "Peer
//! comparison".

mod local;
mod remote;
mod report;

use std::alloc::System as SystemAlloc;

use stats_alloc::{INSTRUMENTED_SYSTEM, Region, StatsAlloc};

// Counts every allocation of the process: used for the idle-memory figure
// (in its own child process per library), paid alike by every side.
#[global_allocator]
static GLOBAL: &StatsAlloc<SystemAlloc> = &INSTRUMENTED_SYSTEM;

/// Tokio worker threads of the Tokio-based sides.
pub const WORKERS: usize = 2;

/// Net heap bytes allocated by the process so far.
pub fn heap_net() -> i64 {
    let s = Region::new(GLOBAL).initial();
    s.bytes_allocated as i64 - s.bytes_deallocated as i64 + s.bytes_reallocated as i64
}

/// The process's resident set size, bytes.
pub fn rss_bytes() -> u64 {
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<u64>().ok())
        .map_or(0, |kb| kb * 1024)
}

/// (net heap, RSS growth) per actor since `heap0` / `rss0`, for `n` actors.
pub fn per_actor(heap0: i64, rss0: u64, n: usize) -> (f64, f64) {
    let heap = (heap_net() - heap0) as f64 / n as f64;
    let rss = (rss_bytes() as i64 - rss0 as i64) as f64 / n as f64;
    (heap, rss)
}

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    if let Some(i) = args.iter().position(|a| a == "--child") {
        child(&args[i + 1..]);
        return;
    }
    let quick = args.iter().any(|a| a == "--quick");
    let rounds = args
        .iter()
        .find_map(|a| a.strip_prefix("--rounds="))
        .and_then(|v| v.parse().ok())
        .unwrap_or(if quick { 1 } else { 3 });
    let named: Vec<&str> = args.iter().filter(|a| !a.starts_with("--")).map(String::as_str).collect();
    let wants = |s: &str| named.is_empty() || named.contains(&s);
    println!("peer comparison: {} rounds, {WORKERS} Tokio workers, {} cores", rounds, num_cpus());
    if wants("local") {
        report::local(rounds, quick);
    }
    if wants("remote") {
        remote::report(rounds, quick);
    }
}

fn num_cpus() -> usize {
    std::thread::available_parallelism().map_or(1, |n| n.get())
}

/// Child-process entry points: `idle <lib> <n>` prints the idle memory per
/// actor; `serve <side> <port>` runs a remote server until stdin closes.
fn child(args: &[String]) {
    match args {
        [what, lib, n] if what == "idle" => {
            let lib = local::Lib::parse(lib).expect("library name");
            let n = n.parse().expect("actor count");
            let (heap, rss) = local::idle_memory(lib, n);
            println!("{heap} {rss}");
        }
        [what, side, rest @ ..] if what == "serve" => {
            let side = remote::Side::parse(side).expect("side name");
            remote::serve(side, rest);
        }
        _ => panic!("unknown child command {args:?}"),
    }
}
