//! `cargo bench -p axactor`: the local runtime against a hand-rolled raw-Tokio
//! actor (a bounded `tokio::sync::mpsc` loop, asks over `oneshot`) doing the
//! same work, on a multi-thread runtime with 2 workers. Prints a markdown
//! table: metric | axactor | raw tokio | ratio | target | met?
//!
//! Options after `--`: `--quick` or `quick` (small sizes, one round; also
//! `AXACTOR_BENCH_QUICK=1`) and benchmark names to run only those, from
//! `tell fanin ask spawn memory alloc` (also `AXACTOR_BENCH=tell,ask`).
//! Method and results: `docs/benchmarks.md`.

use std::alloc::System as SystemAlloc;
use std::future::Future;
use std::hint::black_box;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use axactor::{SpawnConfig, SpawnHandle, System, actor};
use stats_alloc::{INSTRUMENTED_SYSTEM, Region, StatsAlloc};
use tokio::runtime::Runtime;
use tokio::sync::{Notify, mpsc, oneshot};
use tokio::task::JoinHandle;

// Counts every allocation of the process (all threads): a few atomic adds per
// allocation and per free, paid by both sides alike.
#[global_allocator]
static GLOBAL: &StatsAlloc<SystemAlloc> = &INSTRUMENTED_SYSTEM;

/// Tokio worker threads.
const WORKERS: usize = 2;
/// Mailbox capacity of the single actor of the tell and allocation benchmarks.
const TELL_CAP: usize = 1024;
/// Mailbox capacity everywhere else.
const CAP: usize = 256;
/// Sender tasks of the fan-in benchmark.
const FAN_SENDERS: usize = 4;

/// Counts down the actors still expecting messages and wakes the waiter at
/// zero, so both sides detect "all handled" without an extra message.
struct Done {
    left: AtomicUsize,
    notify: Notify,
}

impl Done {
    fn new(actors: usize) -> Arc<Done> {
        Arc::new(Done { left: AtomicUsize::new(actors), notify: Notify::new() })
    }

    fn arrive(&self) {
        if self.left.fetch_sub(1, Ordering::AcqRel) == 1 {
            self.notify.notify_one();
        }
    }

    async fn wait(&self) {
        while self.left.load(Ordering::Acquire) != 0 {
            self.notify.notified().await;
        }
    }
}

/// The actor state both sides run: counts `inc`s and reports to `done` once
/// it has seen `expect` of them.
struct Counter {
    n: u64,
    expect: u64,
    done: Option<Arc<Done>>,
}

impl Counter {
    fn new(expect: u64, done: Option<Arc<Done>>) -> Counter {
        Counter { n: 0, expect, done }
    }

    fn on_inc(&mut self) {
        self.n += 1;
        if self.n == self.expect
            && let Some(d) = &self.done
        {
            d.arrive();
        }
    }
}

#[actor]
impl Counter {
    #[msg]
    fn inc(&mut self) {
        self.on_inc();
    }

    #[msg]
    fn get(&mut self) -> u64 {
        self.n
    }

    /// Holds the actor until `gate` is notified (lets a warm-up fill the mailbox).
    #[msg]
    async fn hold(&mut self, gate: Arc<Notify>) {
        gate.notified().await;
    }
}

/// The raw-Tokio actor: the same state behind a bounded mpsc loop.
enum RawMsg {
    Inc,
    Get(oneshot::Sender<u64>),
    Hold(Arc<Notify>),
}

async fn raw_actor(mut rx: mpsc::Receiver<RawMsg>, mut c: Counter) {
    while let Some(m) = rx.recv().await {
        match m {
            RawMsg::Inc => c.on_inc(),
            RawMsg::Get(tx) => {
                let _ = tx.send(c.n);
            }
            RawMsg::Hold(gate) => gate.notified().await,
        }
    }
}

/// What a benchmark needs from either side.
trait Side: Send + Sync + Sized + 'static {
    type Ref: Clone + Send + Sync + 'static;
    type Handle: Send + 'static;
    fn new(cap: usize) -> Self;
    fn spawn(&self, c: Counter) -> (Self::Ref, Self::Handle);
    /// A tell that waits for mailbox space.
    fn inc(r: &Self::Ref) -> impl Future<Output = ()> + Send;
    fn get(r: &Self::Ref) -> impl Future<Output = u64> + Send;
    /// Holds the actor until `gate` is notified.
    fn hold(r: &Self::Ref, gate: Arc<Notify>) -> impl Future<Output = ()> + Send;
    /// A tell that fails if the mailbox is full; `true` if enqueued.
    fn try_inc(r: &Self::Ref) -> bool;
    /// Asks the actor to stop (the ref is given up).
    fn stop(r: Self::Ref);
    /// Waits until the actor has finished.
    fn join(h: Self::Handle) -> impl Future<Output = ()> + Send;
}

/// axactor through the `#[actor]`-generated `CounterRef`. Every spawn clones
/// one `SpawnConfig` (an `Arc<str>` name clone).
struct Ax {
    system: System,
    cfg: SpawnConfig,
}

impl Side for Ax {
    type Ref = CounterRef;
    type Handle = SpawnHandle<CounterRef>;

    fn new(cap: usize) -> Self {
        Ax { system: System::new(), cfg: SpawnConfig::new("bench", cap) }
    }

    fn spawn(&self, c: Counter) -> (CounterRef, Self::Handle) {
        let (expect, done) = (c.expect, c.done);
        let h = self.system.spawn_with(move || Counter::new(expect, done.clone()), self.cfg.clone());
        let h = h.expect("spawned inside a runtime");
        (h.actor(), h)
    }

    async fn inc(r: &CounterRef) {
        r.inc_wait().await.expect("actor is running");
    }

    async fn get(r: &CounterRef) -> u64 {
        r.get_wait().await.expect("actor replies")
    }

    async fn hold(r: &CounterRef, gate: Arc<Notify>) {
        r.hold_wait(gate).await.expect("actor is running");
    }

    fn try_inc(r: &CounterRef) -> bool {
        r.inc().is_ok()
    }

    fn stop(r: CounterRef) {
        r.stop().expect("actor is running");
    }

    async fn join(h: Self::Handle) {
        h.join().await;
    }
}

/// Raw Tokio: `mpsc::channel` + `tokio::spawn`; stop = drop the sender.
struct Raw {
    cap: usize,
}

impl Side for Raw {
    type Ref = mpsc::Sender<RawMsg>;
    type Handle = JoinHandle<()>;

    fn new(cap: usize) -> Self {
        Raw { cap }
    }

    fn spawn(&self, c: Counter) -> (Self::Ref, JoinHandle<()>) {
        let (tx, rx) = mpsc::channel(self.cap);
        (tx, tokio::spawn(raw_actor(rx, c)))
    }

    async fn inc(r: &Self::Ref) {
        r.send(RawMsg::Inc).await.expect("raw actor is running");
    }

    async fn get(r: &Self::Ref) -> u64 {
        let (tx, rx) = oneshot::channel();
        r.send(RawMsg::Get(tx)).await.expect("raw actor is running");
        rx.await.expect("raw actor replies")
    }

    async fn hold(r: &Self::Ref, gate: Arc<Notify>) {
        r.send(RawMsg::Hold(gate)).await.expect("raw actor is running");
    }

    fn try_inc(r: &Self::Ref) -> bool {
        r.try_send(RawMsg::Inc).is_ok()
    }

    fn stop(r: Self::Ref) {
        drop(r);
    }

    async fn join(h: JoinHandle<()>) {
        h.await.expect("raw actor task");
    }
}

// ---------------------------------------------------------------------------
// Benchmarks: each returns its metrics for one round.
// ---------------------------------------------------------------------------

/// One actor, `n` waiting tells from one task: ns per tell until all handled.
async fn tell<S: Side>(n: usize) -> [f64; 1] {
    let side = S::new(TELL_CAP);
    let done = Done::new(1);
    let (r, h) = side.spawn(Counter::new(n as u64, Some(done.clone())));
    let t = Instant::now();
    for _ in 0..n {
        S::inc(&r).await;
    }
    done.wait().await;
    let ns = per_op(t.elapsed(), n);
    S::stop(r);
    S::join(h).await;
    [ns]
}

/// `actors` actors × `per_actor` waiting tells, from `FAN_SENDERS` tasks that
/// each walk over all actors round-robin (staggered starts): ms until all
/// handled.
async fn fanin<S: Side>(actors: usize, per_actor: usize) -> [f64; 1] {
    let side = S::new(CAP);
    let done = Done::new(actors);
    let (refs, handles): (Vec<_>, Vec<_>) =
        (0..actors).map(|_| side.spawn(Counter::new(per_actor as u64, Some(done.clone())))).unzip();
    let refs = Arc::new(refs);
    let t = Instant::now();
    let senders: Vec<_> = (0..FAN_SENDERS)
        .map(|s| {
            let refs = refs.clone();
            tokio::spawn(async move {
                let start = s * actors / FAN_SENDERS;
                for _ in 0..per_actor / FAN_SENDERS {
                    for i in 0..actors {
                        S::inc(&refs[(start + i) % actors]).await;
                    }
                }
            })
        })
        .collect();
    for s in senders {
        s.await.expect("sender task");
    }
    done.wait().await;
    let ms = t.elapsed().as_secs_f64() * 1e3;
    Arc::into_inner(refs).expect("senders are done").into_iter().for_each(S::stop);
    for h in handles {
        S::join(h).await;
    }
    [ms]
}

/// `n` sequential asks to one actor after a warm-up: mean, p50, p99 in ns.
async fn ask<S: Side>(n: usize) -> [f64; 3] {
    let side = S::new(CAP);
    let (r, h) = side.spawn(Counter::new(0, None));
    let mut lat = Vec::with_capacity(n);
    for i in 0..n + n / 10 {
        let t = Instant::now();
        black_box(S::get(&r).await);
        if i >= n / 10 {
            lat.push(u64::try_from(t.elapsed().as_nanos()).unwrap_or(u64::MAX));
        }
    }
    S::stop(r);
    S::join(h).await;
    lat.sort_unstable();
    let mean = lat.iter().sum::<u64>() as f64 / lat.len() as f64;
    let pct = |p: f64| lat[((lat.len() - 1) as f64 * p) as usize] as f64;
    [mean, pct(0.50), pct(0.99)]
}

/// Spawns `n` actors (timed); each then handles one ask, so all are running
/// and idle; then stops them all and waits until each has finished (timed).
/// ns and heap allocations per actor, for both phases.
async fn spawn_stop<S: Side>(n: usize) -> [f64; 4] {
    let side = S::new(CAP);
    let (mut refs, mut handles) = (Vec::with_capacity(n), Vec::with_capacity(n));
    let (t, region) = (Instant::now(), Region::new(GLOBAL));
    for _ in 0..n {
        let (r, h) = side.spawn(Counter::new(0, None));
        refs.push(r);
        handles.push(h);
    }
    let (spawn, spawn_allocs) = (per_op(t.elapsed(), n), region.change().allocations as f64 / n as f64);
    for r in &refs {
        S::get(r).await;
    }
    let (t, region) = (Instant::now(), Region::new(GLOBAL));
    refs.into_iter().for_each(S::stop);
    for h in handles {
        S::join(h).await;
    }
    [spawn, per_op(t.elapsed(), n), spawn_allocs, region.change().allocations as f64 / n as f64]
}

/// Heap allocations per tell and per ask over `n` of each, after a warm-up
/// that fills the mailbox (so queues have their working size) and runs
/// `n / 10` asks.
async fn allocs<S: Side>(n: usize) -> [f64; 2] {
    let side = S::new(TELL_CAP);
    let done = Done::new(1);
    let (r, h) = side.spawn(Counter::new((TELL_CAP - 1 + n) as u64, Some(done.clone())));
    let gate = Arc::new(Notify::new());
    S::hold(&r, gate.clone()).await;
    // The held actor takes nothing more: `hold` plus these fill the mailbox.
    for _ in 0..TELL_CAP - 1 {
        assert!(S::try_inc(&r), "mailbox has room");
    }
    gate.notify_one();
    for _ in 0..n / 10 {
        S::get(&r).await;
    }
    let count = |region: Region<'_, SystemAlloc>| {
        let s = region.change();
        (s.allocations + s.reallocations) as f64 / n as f64
    };
    let region = Region::new(GLOBAL);
    for _ in 0..n {
        S::inc(&r).await;
    }
    done.wait().await;
    let per_tell = count(region);
    let region = Region::new(GLOBAL);
    for _ in 0..n {
        black_box(S::get(&r).await);
    }
    let per_ask = count(region);
    S::stop(r);
    S::join(h).await;
    [per_tell, per_ask]
}

/// Spawns `n` actors that each handle one ask and stay idle: growth per actor
/// of the net heap bytes and of the resident set. Runs in a child process
/// (see `idle_in_child`) so memory freed by earlier benchmarks is not reused.
async fn idle<S: Side>(n: usize) -> [f64; 2] {
    let _ = spawn_stop::<S>(1_000).await; // warms the runtime's own structures
    let side = S::new(CAP);
    let mut held = Vec::with_capacity(n);
    let rss0 = rss_bytes();
    let region = Region::new(GLOBAL);
    for _ in 0..n {
        let (r, h) = side.spawn(Counter::new(0, None));
        S::get(&r).await;
        held.push((r, h));
    }
    let s = region.change();
    let heap = (s.bytes_allocated as f64 + s.bytes_reallocated as f64 - s.bytes_deallocated as f64) / n as f64;
    let rss = rss_bytes().saturating_sub(rss0) as f64 / n as f64;
    for (r, h) in held {
        S::stop(r);
        S::join(h).await;
    }
    [heap, rss]
}

fn rss_bytes() -> u64 {
    let status = std::fs::read_to_string("/proc/self/status").expect("/proc/self/status (Linux)");
    let line = status.lines().find(|l| l.starts_with("VmRSS:")).expect("a VmRSS line");
    line.split_whitespace().nth(1).and_then(|v| v.parse::<u64>().ok()).expect("VmRSS in kB") * 1024
}

/// Runs `idle` in a fresh process: this binary with `--child-idle ax|raw N`.
fn idle_in_child(side: &str, n: usize) -> [f64; 2] {
    let exe = std::env::current_exe().expect("path of the bench binary");
    let out = std::process::Command::new(exe)
        .args(["--child-idle", side, &n.to_string()])
        .output()
        .expect("child process runs");
    assert!(out.status.success(), "child failed: {}", String::from_utf8_lossy(&out.stderr));
    let text = String::from_utf8_lossy(&out.stdout);
    let v: Vec<f64> = text.split_whitespace().map(|v| v.parse().expect("a number")).collect();
    [v[0], v[1]]
}

// ---------------------------------------------------------------------------
// Driver and report.
// ---------------------------------------------------------------------------

struct Sizes {
    rounds: usize,
    tells: usize,
    fan: (usize, usize),
    asks: usize,
    spawns: usize,
    idle: usize,
    alloc_ops: usize,
}

const FULL: Sizes = Sizes {
    rounds: 5,
    tells: 1_000_000,
    fan: (1_000, 1_000),
    asks: 200_000,
    spawns: 100_000,
    idle: 100_000,
    alloc_ops: 100_000,
};

const QUICK: Sizes =
    Sizes { rounds: 1, tells: 50_000, fan: (100, 100), asks: 10_000, spawns: 5_000, idle: 5_000, alloc_ops: 10_000 };

#[derive(Clone, Copy)]
enum Target {
    /// axactor / raw tokio at most this.
    Ratio(f64),
    /// axactor's value at most this.
    AtMost(f64),
    None,
}

/// One table row: per-round values of each side.
struct Row {
    metric: String,
    unit: &'static str,
    ax: Vec<f64>,
    raw: Vec<f64>,
    target: Target,
}

fn runtime() -> Runtime {
    tokio::runtime::Builder::new_multi_thread().worker_threads(WORKERS).enable_all().build().expect("tokio runtime")
}

/// Runs `f` as a task on a worker (not on the `block_on` thread).
fn on_worker<F: Future<Output: Send + 'static> + Send + 'static>(rt: &Runtime, f: F) -> F::Output {
    rt.block_on(rt.spawn(f)).expect("benchmark task panicked")
}

/// Runs the two sides alternately, `rounds` times; one `Vec` per metric.
fn compare<const K: usize, FA, FR>(
    rt: &Runtime,
    rounds: usize,
    ax: impl Fn() -> FA,
    raw: impl Fn() -> FR,
) -> [(Vec<f64>, Vec<f64>); K]
where
    FA: Future<Output = [f64; K]> + Send + 'static,
    FR: Future<Output = [f64; K]> + Send + 'static,
{
    let mut out = std::array::from_fn(|_| (Vec::new(), Vec::new()));
    for _ in 0..rounds {
        let (a, r) = (on_worker(rt, ax()), on_worker(rt, raw()));
        for k in 0..K {
            out[k].0.push(a[k]);
            out[k].1.push(r[k]);
        }
    }
    out
}

fn per_op(d: Duration, n: usize) -> f64 {
    d.as_nanos() as f64 / n as f64
}

fn median(v: &[f64]) -> f64 {
    let mut v = v.to_vec();
    v.sort_by(f64::total_cmp);
    v[v.len() / 2]
}

fn fmt_value(v: f64, unit: &str) -> String {
    match unit {
        "allocs" if v == 0.0 => format!("0 {unit}"),
        "allocs" => format!("{v:.5} {unit}"),
        _ if v >= 100.0 => format!("{v:.0} {unit}"),
        _ => format!("{v:.1} {unit}"),
    }
}

/// Prints the table (medians) and the per-round spread; returns (met, with a target).
fn report(rows: &[Row]) -> (usize, usize) {
    let (mut met_n, mut targets) = (0, 0);
    println!("| metric | axactor | raw tokio | ratio | target | met? |\n|---|---:|---:|---:|---|---|");
    for r in rows {
        let (ax, raw) = (median(&r.ax), median(&r.raw));
        let ratio = if raw > 0.0 { format!("{:.2}×", ax / raw) } else { "—".to_owned() };
        let (target, met) = match r.target {
            Target::Ratio(x) => (format!("≤ {x}×"), Some(ax <= raw * x)),
            Target::AtMost(x) => (format!("≤ {}", fmt_value(x, r.unit)), Some(ax <= x)),
            Target::None => ("—".to_owned(), None),
        };
        targets += usize::from(met.is_some());
        met_n += usize::from(met == Some(true));
        let met = met.map_or("", |m| if m { "yes" } else { "**no**" });
        let (ax, raw) = (fmt_value(ax, r.unit), fmt_value(raw, r.unit));
        println!("| {} | {ax} | {raw} | {ratio} | {target} | {met} |", r.metric);
    }
    println!("\nPer-round values (axactor / raw tokio):");
    for r in rows.iter().filter(|r| r.ax.len() > 1) {
        let f = |v: &[f64]| v.iter().map(|x| fmt_value(*x, r.unit)).collect::<Vec<_>>().join(", ");
        println!("- {}: {} / {}", r.metric, f(&r.ax), f(&r.raw));
    }
    (met_n, targets)
}

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    if args.first().is_some_and(|a| a == "--child-idle") {
        let n = args.get(2).and_then(|v| v.parse().ok()).expect("usage: --child-idle ax|raw N");
        let v = match args[1].as_str() {
            "ax" => on_worker(&runtime(), idle::<Ax>(n)),
            _ => on_worker(&runtime(), idle::<Raw>(n)),
        };
        println!("{} {}", v[0], v[1]);
        return;
    }
    let quick_arg = |a: &String| a == "--quick" || a == "quick";
    let quick = args.iter().any(quick_arg) || std::env::var_os("AXACTOR_BENCH_QUICK").is_some();
    let mut only: Vec<String> = args.iter().filter(|a| !a.starts_with('-') && !quick_arg(a)).cloned().collect();
    if let Ok(v) = std::env::var("AXACTOR_BENCH") {
        only.extend(v.split(',').filter(|s| !s.is_empty()).map(str::to_owned));
    }
    let want = |name: &str| only.is_empty() || only.iter().any(|o| o == name);
    let sz = if quick { QUICK } else { FULL };
    let mode = if quick { "quick" } else { "full" };
    println!(
        "axactor runtime bench ({mode}): {WORKERS}-worker multi-thread runtime, median of {} round(s)\n",
        sz.rounds
    );
    let (rt, n) = (runtime(), sz.rounds);
    let mut rows = Vec::new();
    let mut row = |metric: String, unit, (ax, raw): (Vec<f64>, Vec<f64>), target| {
        rows.push(Row { metric, unit, ax, raw, target });
    };

    if want("tell") {
        let k = sz.tells;
        let [t] = compare(&rt, n, || tell::<Ax>(k), || tell::<Raw>(k));
        row(format!("tell: 1 actor, {k} `_wait` tells"), "ns/msg", t, Target::Ratio(1.25));
    }
    if want("fanin") {
        let (a, p) = sz.fan;
        let [t] = compare(&rt, n, || fanin::<Ax>(a, p), || fanin::<Raw>(a, p));
        row(format!("fan-in: {a} actors × {p} tells, {FAN_SENDERS} senders"), "ms", t, Target::Ratio(1.5));
    }
    if want("ask") {
        let k = sz.asks;
        let [mean, p50, p99] = compare(&rt, n, || ask::<Ax>(k), || ask::<Raw>(k));
        row(format!("ask round trip, mean ({k} asks)"), "ns", mean, Target::None);
        row("ask round trip, p50".to_owned(), "ns", p50, Target::Ratio(1.2));
        row("ask round trip, p99".to_owned(), "ns", p99, Target::None);
    }
    if want("spawn") {
        let k = sz.spawns;
        let [spawn, stop, spawn_allocs, stop_allocs] = compare(&rt, n, || spawn_stop::<Ax>(k), || spawn_stop::<Raw>(k));
        row(format!("spawn ({k} actors)"), "ns/actor", spawn, Target::Ratio(1.5));
        row(format!("stop + wait until finished ({k} actors)"), "ns/actor", stop, Target::Ratio(1.5));
        row("heap allocations per spawn".to_owned(), "allocs", spawn_allocs, Target::None);
        row("heap allocations per stop + wait".to_owned(), "allocs", stop_allocs, Target::None);
    }
    if want("memory") {
        let k = sz.idle;
        let (ax, raw) = (idle_in_child("ax", k), idle_in_child("raw", k));
        let target = Target::AtMost(2048.0);
        row(format!("idle actor: net heap bytes ({k} actors)"), "B/actor", (vec![ax[0]], vec![raw[0]]), target);
        row(format!("idle actor: RSS growth ({k} actors)"), "B/actor", (vec![ax[1]], vec![raw[1]]), target);
    }
    if want("alloc") {
        let k = sz.alloc_ops;
        let [tell, ask] = compare(&rt, n, || allocs::<Ax>(k), || allocs::<Raw>(k));
        row(format!("heap allocations per tell ({k} tells)"), "allocs", tell, Target::AtMost(0.0));
        row(format!("heap allocations per ask ({k} asks)"), "allocs", ask, Target::AtMost(1.0));
    }
    let (met, targets) = report(&rows);
    println!("\n{met} of {targets} targets met");
}
