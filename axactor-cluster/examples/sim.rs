//! The deterministic cluster simulation from the command line.
//!
//! ```text
//! cargo run -p axactor-cluster --example sim --release -- --seed 42
//! cargo run -p axactor-cluster --example sim --release -- --seeds 0..500 [--jobs 2]
//! cargo run -p axactor-cluster --example sim --release -- --seed 42 --mutant skip-epoch-check
//! ```
//!
//! One seed: runs it and prints, as the last line,
//! `sim seed=N events=E trace=HEX ok` (or `... VIOLATION: <what>`, every
//! violation above it, and exits with status 1). The same seed prints the
//! same line on every run and every machine.
//!
//! A range (`--seeds A..B`, B excluded): runs every seed (on `--jobs`
//! threads, one runtime each) with a progress bar (plain lines when stdout
//! is not a terminal), prints each failing seed's line, then a summary:
//! seeds, failures, wall time, simulated time and the speed-up over real
//! time. Exits with status 1 if any seed failed.
//!
//! Options: `--steps S` (default 200), `--mutant NAME` (one of the
//! deliberate bugs, see `axactor_cluster::sim::Mutant`), `--verbose`
//! (every violation of a single seed), `--trace` (a single seed's events,
//! frames left out, before its result).

use std::io::IsTerminal;
use std::process::ExitCode;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use axactor_cluster::sim::{DEFAULT_STEPS, Mutant, SimConfig, SimReport, run};
use indicatif::{ProgressBar, ProgressStyle};

struct Args {
    seeds: std::ops::Range<u64>,
    single: bool,
    steps: u32,
    mutant: Option<Mutant>,
    jobs: usize,
    verbose: bool,
    trace: bool,
}

fn usage(problem: &str) -> ExitCode {
    eprintln!("sim: {problem}");
    eprintln!("usage: sim (--seed N | --seeds A..B) [--steps S] [--mutant NAME] [--jobs J] [--verbose] [--trace]");
    let names: Vec<&str> = Mutant::ALL.iter().map(|m| m.name()).collect();
    eprintln!("mutants: {}", names.join(", "));
    ExitCode::from(2)
}

fn parse() -> Result<Args, String> {
    let env_seed = std::env::var("AXACTOR_SIM_SEED").ok();
    let mut args = Args {
        seeds: 0..1,
        single: true,
        steps: DEFAULT_STEPS,
        mutant: None,
        jobs: std::thread::available_parallelism().map_or(1, |n| n.get()),
        verbose: false,
        trace: false,
    };
    let mut seed_given = false;
    let mut it = std::env::args().skip(1);
    while let Some(a) = it.next() {
        let mut value = || it.next().ok_or_else(|| format!("{a} needs a value"));
        match a.as_str() {
            "--seed" => {
                let n: u64 = value()?.parse().map_err(|_| "--seed takes a number")?;
                args.seeds = n..n + 1;
                seed_given = true;
            }
            "--seeds" => {
                let v = value()?;
                let (a, b) = v.split_once("..").ok_or("--seeds takes A..B")?;
                let a: u64 = a.parse().map_err(|_| "--seeds takes A..B")?;
                let b: u64 = b.parse().map_err(|_| "--seeds takes A..B")?;
                args.seeds = a..b;
                args.single = false;
                seed_given = true;
            }
            "--steps" => args.steps = value()?.parse().map_err(|_| "--steps takes a number")?,
            "--jobs" => args.jobs = value()?.parse::<usize>().map_err(|_| "--jobs takes a number")?.max(1),
            "--mutant" => {
                let v = value()?;
                args.mutant = Some(Mutant::parse(&v).ok_or(format!("unknown mutant {v}"))?);
            }
            "--verbose" => args.verbose = true,
            "--trace" => args.trace = true,
            other => return Err(format!("unknown argument {other}")),
        }
    }
    if !seed_given {
        let n: u64 = env_seed.as_deref().unwrap_or("0").parse().map_err(|_| "AXACTOR_SIM_SEED must be a number")?;
        args.seeds = n..n + 1;
    }
    Ok(args)
}

fn main() -> ExitCode {
    let args = match parse() {
        Ok(a) => a,
        Err(e) => return usage(&e),
    };
    if args.single {
        let started = Instant::now();
        let report =
            run(&SimConfig::new(args.seeds.start).steps(args.steps).mutant(args.mutant).keep_trace(args.trace));
        let wall = started.elapsed();
        for line in &report.trace {
            println!("{line}");
        }
        if args.verbose || !report.ok() {
            for v in &report.violations {
                println!("violation: {v}");
            }
        }
        println!(
            "simulated {:.1}s in {:.2}s wall ({:.0}x), {} ops ({} ok), {} faults",
            report.simulated.as_secs_f64(),
            wall.as_secs_f64(),
            report.simulated.as_secs_f64() / wall.as_secs_f64().max(1e-9),
            report.ops,
            report.ops_ok,
            report.faults
        );
        println!("{}", report.line());
        return if report.ok() { ExitCode::SUCCESS } else { ExitCode::FAILURE };
    }
    sweep(&args)
}

fn sweep(args: &Args) -> ExitCode {
    let total = args.seeds.end.saturating_sub(args.seeds.start);
    let bar = if std::io::stdout().is_terminal() {
        let bar = ProgressBar::new(total);
        if let Ok(style) = ProgressStyle::with_template("{bar:40} {pos}/{len} seeds, {msg} [{elapsed} < {eta}]") {
            bar.set_style(style);
        }
        Some(bar)
    } else {
        None
    };
    let next = Arc::new(AtomicU64::new(args.seeds.start));
    let done = Arc::new(AtomicU64::new(0));
    let failed = Arc::new(parking_lot::Mutex::new(Vec::<SimReport>::new()));
    let simulated = Arc::new(parking_lot::Mutex::new(Duration::ZERO));
    let started = Instant::now();
    std::thread::scope(|s| {
        for _ in 0..args.jobs.min(total as usize).max(1) {
            s.spawn(|| {
                loop {
                    let seed = next.fetch_add(1, Ordering::Relaxed);
                    if seed >= args.seeds.end {
                        return;
                    }
                    let report = run(&SimConfig::new(seed).steps(args.steps).mutant(args.mutant));
                    *simulated.lock() += report.simulated;
                    if !report.ok() {
                        let line = report.line();
                        match &bar {
                            Some(bar) => bar.println(&line),
                            None => println!("{line}"),
                        }
                        failed.lock().push(report);
                    }
                    let n = done.fetch_add(1, Ordering::Relaxed) + 1;
                    let f = failed.lock().len();
                    match &bar {
                        Some(bar) => {
                            bar.set_position(n);
                            bar.set_message(format!("{f} failed"));
                        }
                        None if n.is_multiple_of(50) || n == total => println!("{n}/{total} seeds, {f} failed"),
                        None => {}
                    }
                }
            });
        }
    });
    if let Some(bar) = &bar {
        bar.finish();
    }
    let wall = started.elapsed();
    let simulated = *simulated.lock();
    let failed = failed.lock();
    println!(
        "sim seeds={}..{} runs={total} failed={} wall={:.1}s simulated={:.1}h speedup={:.0}x",
        args.seeds.start,
        args.seeds.end,
        failed.len(),
        wall.as_secs_f64(),
        simulated.as_secs_f64() / 3600.0,
        simulated.as_secs_f64() / wall.as_secs_f64().max(1e-9)
    );
    if failed.is_empty() { ExitCode::SUCCESS } else { ExitCode::FAILURE }
}
