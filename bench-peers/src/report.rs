//! Runs the local rounds and prints the table: one column per library,
//! each figure with its ratio to raw Tokio measured in the same run.

use std::process::Command;

use crate::local::{self, Lib, Local, Sizes};

const FULL: Sizes = Sizes { tells: 500_000, asks: 100_000, spawns: 50_000, idle: 50_000 };
const QUICK: Sizes = Sizes { tells: 50_000, asks: 10_000, spawns: 5_000, idle: 5_000 };

/// The median of `v`.
pub fn median(v: &[f64]) -> f64 {
    let mut v = v.to_vec();
    v.sort_by(f64::total_cmp);
    v[v.len() / 2]
}

/// `value unit (ratio×)` against `floor`.
pub fn cell(value: f64, floor: f64, unit: &str) -> String {
    let v = if value >= 100.0 { format!("{value:.0}") } else { format!("{value:.1}") };
    if floor > 0.0 { format!("{v} {unit} ({:.2}×)", value / floor) } else { format!("{v} {unit}") }
}

/// Idle memory of `lib` in a fresh child process: (heap, rss) per actor.
fn idle_in_child(lib: Lib, n: usize) -> (f64, f64) {
    let exe = std::env::current_exe().expect("own executable");
    let key = lib.name().split(' ').next().unwrap_or("raw");
    let out = Command::new(exe).args(["--child", "idle", key, &n.to_string()]).output().expect("child runs");
    let text = String::from_utf8_lossy(&out.stdout);
    let mut it = text.split_whitespace().filter_map(|v| v.parse::<f64>().ok());
    (it.next().unwrap_or(f64::NAN), it.next().unwrap_or(f64::NAN))
}

/// A local table row: its name, the figure it reads, its unit.
type LocalRow = (&'static str, fn(&Local) -> f64, &'static str);

/// Runs `rounds` rounds of every library (alternating) and prints the table.
pub fn local(rounds: usize, quick: bool) {
    let s = if quick { QUICK } else { FULL };
    let mut runs: Vec<Vec<Local>> = vec![Vec::new(); Lib::ALL.len()];
    for round in 0..rounds {
        for (i, lib) in Lib::ALL.into_iter().enumerate() {
            let r = local::run(lib, s);
            eprintln!(
                "round {round} {:>9}: tell {:.0} ns, ask p50 {:.0} ns p99 {:.0} ns, spawn {:.0} ns",
                lib.name(),
                r.tell_ns,
                r.ask_p50_ns,
                r.ask_p99_ns,
                r.spawn_ns
            );
            runs[i].push(r);
        }
    }
    let idle: Vec<(f64, f64)> = Lib::ALL.into_iter().map(|l| idle_in_child(l, s.idle)).collect();
    let med = |i: usize, f: fn(&Local) -> f64| median(&runs[i].iter().map(f).collect::<Vec<_>>());
    println!();
    println!(
        "### Local: {} tells, {} asks, {} spawns, {} idle actors; median of {rounds} rounds (ratio to raw tokio)",
        s.tells, s.asks, s.spawns, s.idle
    );
    println!();
    let header: Vec<&str> = Lib::ALL.iter().map(|l| l.name()).collect();
    println!("| metric | {} |", header.join(" | "));
    println!("|---|{}", "---:|".repeat(header.len()));
    let rows: [LocalRow; 4] = [
        ("tell (1 actor, one sender)", |l| l.tell_ns, "ns"),
        ("ask p50 (sequential)", |l| l.ask_p50_ns, "ns"),
        ("ask p99 (sequential)", |l| l.ask_p99_ns, "ns"),
        ("spawn", |l| l.spawn_ns, "ns"),
    ];
    for (name, f, unit) in rows {
        let floor = med(0, f);
        let cells: Vec<String> = (0..Lib::ALL.len()).map(|i| cell(med(i, f), floor, unit)).collect();
        println!("| {name} | {} |", cells.join(" | "));
    }
    for (name, pick) in [("idle actor, net heap", 0usize), ("idle actor, RSS growth", 1)] {
        let v = |i: usize| if pick == 0 { idle[i].0 } else { idle[i].1 };
        let cells: Vec<String> = (0..Lib::ALL.len()).map(|i| cell(v(i), v(0), "B")).collect();
        println!("| {name} | {} |", cells.join(" | "));
    }
}
