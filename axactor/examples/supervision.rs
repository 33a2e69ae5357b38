//! Supervision and restarts: a one-for-one supervisor over a flaky worker
//! and a steady one, restart backoff, and what happens when a child fails
//! faster than the restart intensity allows.
//!
//! Run with `cargo run -p axactor --example supervision` (a few seconds,
//! exits 0).
//!
//! 1. `Worker` panics on a bad job. Its supervisor (`OneForOne`) restarts
//!    only that child, in place: the same ref keeps working, the state starts
//!    afresh, the sibling is untouched.
//! 2. A `OneForAll` group restarts every child when one fails.
//! 3. Over the intensity (here 3 restarts within 5 s) the supervisor gives
//!    up: every child stops with `RestartIntensityExceeded`.

use std::sync::Arc;
use std::time::Duration;

use axactor::{
    ActorLifecycleEvent, ActorLifecycleEventKind, Context, SpawnConfig, SupervisionStrategy, Supervisor,
    SupervisorConfig, System, actor,
};
use tokio::sync::broadcast::Receiver;

/// Counts the jobs it has done; panics on a negative job.
#[derive(Debug)]
pub struct Worker {
    name: &'static str,
    done: u32,
}

#[actor]
impl Worker {
    /// Does a job; a negative one is a bug that panics the handler.
    #[msg]
    fn work(&mut self, job: i64) -> u32 {
        assert!(job >= 0, "{}: cannot do job {job}", self.name);
        self.done += 1;
        self.done
    }

    async fn on_start(&mut self, ctx: &mut Context) {
        println!("  {} started (restart #{})", self.name, ctx.restart_count());
    }
}

/// Waits for `n` lifecycle events of `kind`.
async fn wait_for(events: &mut Receiver<ActorLifecycleEvent>, kind: ActorLifecycleEventKind, n: usize) {
    let mut seen = 0;
    while seen < n {
        match events.recv().await {
            Ok(e) if e.kind == kind => seen += 1,
            Ok(_) => {}
            Err(e) => panic!("lifecycle events: {e}"),
        }
    }
}

#[tokio::main]
async fn main() {
    // The runtime reports a panic in a handler through its tracing log; keep
    // the output to what the example prints.
    std::panic::set_hook(Box::new(|_| {}));
    let system = Arc::new(System::new());
    let mut events = system.subscribe_lifecycle();

    println!("1. one-for-one: only the failed child restarts");
    let cfg = SupervisorConfig::new(SupervisionStrategy::OneForOne)
        .intensity(3, Duration::from_secs(5))
        .backoff(Duration::from_millis(20), Duration::from_millis(200));
    let sup = Supervisor::new(Arc::clone(&system), cfg);
    let flaky = sup.spawn_child(|| Worker { name: "flaky", done: 0 }, SpawnConfig::new("flaky", 16)).expect("spawn");
    let steady = sup.spawn_child(|| Worker { name: "steady", done: 0 }, SpawnConfig::new("steady", 16)).expect("spawn");
    wait_for(&mut events, ActorLifecycleEventKind::Started, 2).await;
    let (flaky, steady) = (flaky.actor(), steady.actor());
    println!("  flaky.work(1) = {:?}, steady.work(1) = {:?}", flaky.work(1).await, steady.work(1).await);
    println!("  flaky.work(-1) = {:?} (the handler panicked)", flaky.work(-1).await);
    wait_for(&mut events, ActorLifecycleEventKind::Restarted, 1).await;
    println!(
        "  after the restart: flaky.work(2) = {:?} (fresh state), steady.work(2) = {:?} (kept its state)",
        flaky.work(2).await,
        steady.work(2).await
    );
    sup.shutdown().await;

    println!("2. one-for-all: every child restarts with the failed one");
    let sup = Supervisor::new(Arc::clone(&system), SupervisorConfig::new(SupervisionStrategy::OneForAll));
    let a = sup.spawn_child(|| Worker { name: "a", done: 0 }, SpawnConfig::new("a", 16)).expect("spawn").actor();
    let b = sup.spawn_child(|| Worker { name: "b", done: 0 }, SpawnConfig::new("b", 16)).expect("spawn").actor();
    wait_for(&mut events, ActorLifecycleEventKind::Started, 2).await;
    println!("  a.work(1) = {:?}, b.work(1) = {:?}", a.work(1).await, b.work(1).await);
    println!("  a.work(-1) = {:?}", a.work(-1).await);
    wait_for(&mut events, ActorLifecycleEventKind::Restarted, 2).await;
    println!("  both restarted: a.work(1) = {:?}, b.work(1) = {:?}", a.work(1).await, b.work(1).await);

    println!("3. over the intensity (3 restarts within 5 s) the group stops");
    for _ in 0..4 {
        let _ = a.work(-1).await;
    }
    let reason = sup.join().await;
    println!("  supervisor gave up: {reason}; a.work(1) = {:?}", a.work(1).await);

    system.shutdown_graceful(Duration::from_secs(1)).await;
    println!("done");
}
