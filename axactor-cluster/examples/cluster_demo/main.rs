//! The cluster demo: three nodes over TCP on loopback, in one process, run
//! a keyed bank; the busiest node crashes mid-run, another leaves
//! gracefully, and the money still adds up.
//!
//! ```text
//! cargo run --release --example cluster_demo
//! cargo run --release --example cluster_demo -- --nodes 4 --keys 200 --duration 30 --seed 7
//! cargo run --release --example cluster_demo -- --redis redis://127.0.0.1:6379/
//! ```
//!
//! What it shows:
//! - **keyed actors**: one `Account` activation per account, cluster-wide,
//!   wherever its shard's lease is held (24 shards spread over the nodes);
//! - **external state, fenced**: balances live in a small store outside the
//!   actors (an activation's state is lost when its shard moves); every
//!   write carries the writer's `ctx.fence()` epoch, and the store refuses
//!   an epoch lower than one it has seen for that shard. A transfer is a
//!   withdrawal then a deposit, each idempotent by operation id, so clients
//!   retry a step whose outcome they do not know without moving money twice;
//! - **crash failover**: a quarter into the run the node that has served the
//!   most calls is killed (no goodbye, no lease released). Its shards move
//!   to the others once their leases expire, each at a higher epoch;
//! - **fencing**: just before dying, that node sent a withdrawal whose write
//!   is slow on the network. It arrives after the new owner has written,
//!   and the store refuses it (its epoch is stale) — had it landed, money
//!   would have vanished and the conservation check would say so;
//! - **graceful handover**: three fifths in, the node holding the most
//!   shards shuts down: it stops its activations and releases its leases,
//!   so the others take over at once;
//! - a **summary**: requests, errors by kind, failover and handover times,
//!   and `conservation: ok` (or the difference, with exit status 1).
//!
//! Options: `--nodes N` (3), `--keys K` accounts (64), `--duration SECS`
//! of traffic (20), `--seed S` of the workload (1), `--clients C` (32),
//! `--redis URL` to keep the leases in Redis instead of in memory (a fresh
//! key prefix per run). Timings are short for the demo: lease_ttl 2 s,
//! renewal every 600 ms, request timeout 1 s, lease-store calls 800 ms. A live progress bar on a
//! terminal, a status line a second otherwise.

mod bank;
mod display;
mod ledger;
mod run;

use std::process::ExitCode;
use std::time::Duration;

use display::Out;
use run::{LateWrite, Options, Report};

fn usage(problem: &str) -> ExitCode {
    eprintln!("cluster_demo: {problem}");
    eprintln!(
        "usage: cluster_demo [--nodes N] [--keys K] [--duration SECS] [--seed S] [--clients C] [--redis redis://HOST:PORT/]"
    );
    ExitCode::from(2)
}

fn parse() -> Result<Options, String> {
    let mut o = Options::default();
    let mut args = std::env::args().skip(1);
    while let Some(flag) = args.next() {
        let mut value = || args.next().ok_or(format!("{flag} needs a value"));
        let number = |v: String| v.parse::<u64>().map_err(|_| format!("{flag}: not a number: {v}"));
        match flag.as_str() {
            "--nodes" => o.nodes = number(value()?)? as usize,
            "--keys" => o.keys = number(value()?)? as usize,
            "--duration" => o.duration = Duration::from_secs(number(value()?)?),
            "--seed" => o.seed = number(value()?)?,
            "--clients" => o.clients = number(value()?)? as usize,
            "--redis" => o.redis = Some(value()?),
            "-h" | "--help" => return Err("help".into()),
            other => return Err(format!("unknown option {other}")),
        }
    }
    if !(1..=16).contains(&o.nodes) {
        return Err("--nodes must be between 1 and 16".into());
    }
    if o.keys < 2 {
        return Err("--keys must be at least 2".into());
    }
    if o.duration < Duration::from_secs(2) {
        return Err("--duration must be at least 2 seconds".into());
    }
    if o.clients == 0 || o.clients > 1024 {
        return Err("--clients must be between 1 and 1024".into());
    }
    Ok(o)
}

fn secs(d: Option<Duration>) -> String {
    d.map_or("not within the bound".into(), |d| format!("{:.2} s", d.as_secs_f64()))
}

/// Prints the summary table and the conservation line.
fn print_summary(r: &Report) {
    let o = &r.options;
    let store = if o.redis.is_some() { "redis" } else { "memory" };
    println!();
    println!(
        "summary: {} nodes over TCP, {} accounts, {:.1} s of traffic, seed {}, lease store: {store}",
        o.nodes,
        o.keys,
        r.elapsed.as_secs_f64(),
        o.seed
    );
    let row = |k: &str, v: String| println!("  {k:<24} {v}");
    row("requests", format!("{} ({:.0}/s)", r.requests, r.requests as f64 / r.elapsed.as_secs_f64().max(0.001)));
    row("transfers completed", r.completed.to_string());
    row("transfers declined", format!("{} (insufficient funds)", r.declined));
    row("transfers unfinished", r.unfinished.to_string());
    let errors: u64 = r.errors.values().sum();
    row("errors (retried)", errors.to_string());
    for (kind, n) in &r.errors {
        println!("    {kind:<22} {n}");
    }
    let served: Vec<String> = r.served.iter().map(|(n, c)| format!("{n} {c}")).collect();
    row("served by", served.join(", "));
    match &r.failover {
        Some(m) => row("failover (crash)", format!("{} ({}, {} shards)", secs(m.took), m.node, m.shards)),
        None => row("failover (crash)", "not run (needs 2 nodes)".into()),
    }
    match &r.handover {
        Some(m) => row("handover (graceful)", format!("{} ({}, {} shards)", secs(m.took), m.node, m.shards)),
        None => row("handover (graceful)", "not run (needs 3 nodes)".into()),
    }
    let late = match &r.late_write {
        LateWrite::Refused(e) => format!("refused ({e})"),
        LateWrite::Accepted { epoch } => format!("ACCEPTED at stale epoch {epoch}"),
        LateWrite::Skipped(why) => format!("not run ({why})"),
    };
    row("stale owner's late write", late);
    row("money", format!("{} at the start, {} at the end", r.expected, r.counted));
    if r.conserved() {
        println!("conservation: ok");
    } else {
        println!(
            "conservation: FAILED: {} expected, {} counted (difference {:+})",
            r.expected,
            r.counted,
            r.counted - r.expected
        );
    }
}

fn main() -> ExitCode {
    let options = match parse() {
        Ok(o) => o,
        Err(e) if e == "help" => return usage("a keyed bank on a three-node cluster, with a crash"),
        Err(e) => return usage(&e),
    };
    let runtime = match tokio::runtime::Builder::new_multi_thread().enable_all().build() {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("cluster_demo: cannot start the runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    let out = Out::for_stdout(options.duration);
    match runtime.block_on(run::run(options, &out)) {
        Ok(report) => {
            print_summary(&report);
            if report.conserved() { ExitCode::SUCCESS } else { ExitCode::FAILURE }
        }
        Err(e) => {
            out.finish();
            eprintln!("cluster_demo: {e}");
            ExitCode::FAILURE
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A short run in-process: the crash, the late write and the graceful
    /// shutdown all happen, and the money adds up. No timing is asserted.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_short_run_conserves_money_and_refuses_the_late_write() {
        let options = Options { duration: Duration::from_secs(4), clients: 8, ..Options::default() };
        let report = run::run(options, &Out::plain()).await.expect("the demo runs");
        print_summary(&report);
        assert!(report.conserved(), "money not conserved: {report:?}");
        assert_eq!(report.unfinished, 0, "{report:?}");
        assert!(report.completed > 0, "{report:?}");
        assert!(matches!(report.late_write, LateWrite::Refused(_)), "{:?}", report.late_write);
        assert!(report.failover.as_ref().is_some_and(|m| m.took.is_some()), "{:?}", report.failover);
        assert!(report.handover.as_ref().is_some_and(|m| m.took.is_some()), "{:?}", report.handover);
    }
}
