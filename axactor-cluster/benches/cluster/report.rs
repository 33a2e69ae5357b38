//! Markdown tables: medians over rounds with the ratio and the target, then
//! every round's values; trial tables with min / median / max; and the
//! run's scorecard, every targeted figure of the run in one table.

use std::sync::Mutex;
use std::time::Duration;

use crate::failover::Trial;
use crate::measure::median;

/// What a row is held to.
#[derive(Debug, Clone, Copy)]
pub(crate) enum Target {
    /// ours / theirs at most this.
    AtMost(f64),
    /// ours / theirs at least this.
    AtLeast(f64),
    /// ours at most this, in the row's unit (not a ratio).
    Below(f64),
    /// A time (trials).
    Time(Duration),
    /// Shown for information.
    None,
}

/// One table row: per-round values of each side.
pub(crate) struct Row {
    metric: String,
    unit: &'static str,
    ours: Vec<f64>,
    theirs: Vec<f64>,
    target: Target,
}

impl Row {
    pub(crate) fn new(metric: String, unit: &'static str, ours: Vec<f64>, theirs: Vec<f64>) -> Row {
        Row { metric, unit, ours, theirs, target: Target::None }
    }

    pub(crate) fn target(mut self, target: Target) -> Row {
        self.target = target;
        self
    }
}

fn fmt_value(v: f64, unit: &str) -> String {
    if unit == "allocs" {
        // Per-ask counts near a whole number: show the background's share.
        format!("{v:.2} {unit}")
    } else if v >= 100.0 {
        format!("{v:.0} {unit}")
    } else if v < 1.0 {
        // Sub-microsecond latencies (local asks): tenths would hide the gap.
        format!("{v:.3} {unit}")
    } else {
        format!("{v:.1} {unit}")
    }
}

/// One targeted figure of the run, as its table showed it.
struct Scored {
    metric: String,
    value: String,
    target: String,
    met: bool,
}

/// Every targeted figure printed so far in this run, in order.
static SCORED: Mutex<Vec<Scored>> = Mutex::new(Vec::new());

/// Adds a targeted figure to the run's scorecard.
pub(crate) fn score(metric: &str, value: String, target: String, met: bool) {
    let scored = Scored { metric: metric.to_owned(), value, target, met };
    SCORED.lock().unwrap_or_else(std::sync::PoisonError::into_inner).push(scored);
}

/// Prints every targeted figure of the run with whether it was met (none:
/// nothing printed).
pub(crate) fn scorecard(workers: usize) {
    let scored = SCORED.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
    if scored.is_empty() {
        return;
    }
    let met = scored.iter().filter(|s| s.met).count();
    println!(
        "## Targets in this run ({workers} worker(s)): {met} of {} met\n\n| figure | this run | target | met? |\n|---|---:|---|---|",
        scored.len()
    );
    for s in scored.iter() {
        println!("| {} | {} | {} | {} |", s.metric, s.value, s.target, if s.met { "yes" } else { "**no**" });
    }
    println!();
}

/// Prints the table of medians and the per-round values; every row with a
/// target also goes to the run's [`scorecard`].
pub(crate) fn table(ours_name: &str, theirs_name: &str, rows: &[Row]) {
    println!("| metric | {ours_name} | {theirs_name} | ratio | target | met? |\n|---|---:|---:|---:|---|---|");
    for r in rows {
        let (ours, theirs) = (median(&r.ours), median(&r.theirs));
        let ratio = ours / theirs;
        let (target, met) = match r.target {
            Target::AtMost(x) => (format!("≤ {x}×"), Some(ratio <= x)),
            Target::AtLeast(x) => (format!("≥ {x}×"), Some(ratio >= x)),
            Target::Below(x) => (format!("≤ {}", fmt_value(x, r.unit)), Some(ours <= x)),
            Target::Time(_) | Target::None => ("—".to_owned(), None),
        };
        if let Some(m) = met {
            let value = match r.target {
                Target::Below(_) => fmt_value(ours, r.unit),
                _ => format!("{ratio:.2}×"),
            };
            score(&r.metric, value, target.clone(), m);
        }
        let met = met.map_or("", |m| if m { "yes" } else { "**no**" });
        println!(
            "| {} | {} | {} | {ratio:.2}× | {target} | {met} |",
            r.metric,
            fmt_value(ours, r.unit),
            fmt_value(theirs, r.unit)
        );
    }
    println!("\nPer-round values ({ours_name} / {theirs_name}):");
    for r in rows {
        let f = |v: &[f64]| v.iter().map(|x| fmt_value(*x, r.unit)).collect::<Vec<_>>().join(", ");
        println!("- {}: {} / {}", r.metric, f(&r.ours), f(&r.theirs));
    }
    println!();
}

/// The trials of one stop kind.
pub(crate) struct Trials<'a> {
    /// The scorecard's name for the trials' maximum.
    pub(crate) name: &'a str,
    pub(crate) trials: &'a [Trial],
    pub(crate) target: Target,
    pub(crate) target_expr: &'a str,
}

/// Prints min / median / max against the target, then every trial.
pub(crate) fn trials(t: &Trials<'_>) {
    let ms: Vec<f64> = t.trials.iter().map(|x| x.took.as_secs_f64() * 1e3).collect();
    let max = ms.iter().copied().fold(f64::MIN, f64::max);
    let min = ms.iter().copied().fold(f64::MAX, f64::min);
    let (target, met) = match t.target {
        Target::Time(d) => {
            let d = d.as_secs_f64() * 1e3;
            score(t.name, format!("{max:.0} ms"), format!("≤ {d:.0} ms"), max <= d);
            (format!("≤ {d:.0} ms ({})", t.target_expr), if max <= d { "yes" } else { "**no**" })
        }
        _ => ("—".to_owned(), ""),
    };
    println!("| trials | min | median | max | target | met? (max) |\n|---:|---:|---:|---:|---|---|");
    println!("| {} | {min:.0} ms | {:.0} ms | {max:.0} ms | {target} | {met} |", ms.len(), median(&ms));
    println!("\nTrials:");
    for x in t.trials {
        println!(
            "- {:.0} ms, asked from `{}`, answered by `{}`, {} failed ask(s) meanwhile; round trip before the stop \
             p50 {:.0} µs",
            x.took.as_secs_f64() * 1e3,
            x.asker,
            x.new_owner,
            x.failed_asks,
            x.rtt_us
        );
    }
    println!();
}
