//! Restart on panic, measured on Tokio's paused clock: the factory runs again,
//! delays follow the exponential backoff within `[min_backoff, max_backoff]`,
//! at most `max_restarts` restarts then `RestartIntensityExceeded`, the mailbox
//! is kept or dropped as configured, and the ref stays valid throughout.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use axactor::{ActorLifecycleEventKind as Kind, AskError, Context, ExitReason, SpawnConfig, System, actor};
use axactor_tests::{Gate, next_event};
use tokio::time::Instant;

/// Counts, panics on demand, and can be parked on a gate.
#[derive(Debug)]
pub struct Flaky {
    n: u32,
    gate: Gate,
}

#[actor]
impl Flaky {
    #[msg]
    fn inc(&mut self) {
        self.n += 1;
    }

    #[msg]
    fn get(&mut self) -> u32 {
        self.n
    }

    #[msg]
    fn boom(&mut self) -> u32 {
        panic!("boom")
    }

    #[msg]
    async fn hold_then_boom(&mut self) {
        self.gate.pass().await;
        panic!("boom after hold")
    }

    #[msg]
    fn restarts(&mut self, ctx: &mut Context) -> u32 {
        ctx.restart_count()
    }
}

fn counting_factory(made: &Arc<AtomicUsize>, gate: &Gate) -> impl Fn() -> Flaky + Send + Sync + 'static {
    let (made, gate) = (made.clone(), gate.clone());
    move || {
        made.fetch_add(1, Ordering::SeqCst);
        Flaky { n: 0, gate: gate.clone() }
    }
}

fn ms(n: u64) -> Duration {
    Duration::from_millis(n)
}

#[tokio::test(start_paused = true)]
async fn exponential_backoff_then_intensity_exceeded() {
    let system = System::new();
    let mut events = system.subscribe_lifecycle();
    let made = Arc::new(AtomicUsize::new(0));
    let cfg = SpawnConfig::new("flaky", 8).restart_on_panic(3, ms(100), ms(300)).restart_jitter(|| 1.0);
    let h = system.spawn_with(counting_factory(&made, &Gate::new()), cfg).expect("runtime");
    let (r, pid) = (h.actor(), h.pid());
    next_event(&mut events, pid, Kind::Started).await;

    let mut delays = Vec::new();
    for _ in 0..3 {
        let failed_at = Instant::now();
        assert_eq!(r.boom().await, Err(AskError::Canceled));
        let e = next_event(&mut events, pid, Kind::Restarted).await;
        assert_eq!(e.name, "flaky");
        delays.push(failed_at.elapsed());
        assert_eq!(r.pid(), pid, "the pid survives restarts");
    }
    assert_eq!(delays, vec![ms(100), ms(200), ms(300)], "doubling from min, capped at max");
    assert_eq!(r.restarts().await, Ok(3));

    assert_eq!(r.boom().await, Err(AskError::Canceled));
    let stopped = next_event(&mut events, pid, Kind::Stopped).await;
    assert_eq!(stopped.reason, Some(ExitReason::RestartIntensityExceeded));
    assert_eq!(h.join().await, ExitReason::RestartIntensityExceeded);
    assert_eq!(made.load(Ordering::SeqCst), 4, "factory ran once per incarnation");
    assert!(r.is_closed());
}

#[tokio::test(start_paused = true)]
async fn jittered_delays_stay_within_bounds() {
    for jitter in [0.0, 0.25, 0.5, 1.0] {
        let system = System::new();
        let mut events = system.subscribe_lifecycle();
        let (min, max) = (ms(40), ms(500));
        let cfg = SpawnConfig::new("flaky", 8).restart_on_panic(6, min, max).restart_jitter(move || jitter);
        let h = system.spawn_with(counting_factory(&Arc::default(), &Gate::new()), cfg).expect("runtime");
        let r = h.actor();
        let mut base = min;
        for _ in 0..6 {
            let failed_at = Instant::now();
            assert_eq!(r.boom().await, Err(AskError::Canceled));
            next_event(&mut events, h.pid(), Kind::Restarted).await;
            let d = failed_at.elapsed();
            assert!(d >= min && d <= max, "delay {d:?} outside [{min:?}, {max:?}]");
            assert!(d <= base && d >= (base / 2).max(min), "delay {d:?} not within equal jitter of {base:?}");
            base = (base * 2).min(max);
        }
    }
}

#[tokio::test(start_paused = true)]
async fn restart_builds_fresh_state_and_the_ref_stays_valid() {
    let system = System::new();
    let cfg = SpawnConfig::new("flaky", 8).restart_on_panic(1, ms(10), ms(10));
    let h = system.spawn_with(counting_factory(&Arc::default(), &Gate::new()), cfg).expect("runtime");
    let r = h.actor();
    r.inc_wait().await.expect("open");
    assert_eq!(r.get().await, Ok(1));
    assert_eq!(r.boom().await, Err(AskError::Canceled));
    assert_eq!(r.get_wait().await, Ok(0), "the factory built a fresh value");
}

async fn queued_across_restart(cfg: SpawnConfig) -> (Result<u32, AskError>, Result<u32, AskError>) {
    let system = System::new();
    let gate = Gate::new();
    let h = system.spawn_with(counting_factory(&Arc::default(), &gate), cfg).expect("runtime");
    let r = h.actor();
    r.hold_then_boom().expect("room");
    for _ in 0..3 {
        r.inc().expect("room");
    }
    let queued_ask = tokio::spawn({
        let r = r.clone();
        async move { r.get().await }
    });
    tokio::task::yield_now().await;
    gate.open(1);
    (queued_ask.await.expect("task"), r.get_wait().await)
}

#[tokio::test(start_paused = true)]
async fn mailbox_is_kept_across_a_restart_by_default() {
    let cfg = SpawnConfig::new("flaky", 8).restart_on_panic(1, ms(50), ms(50)).restart_mailbox_keep();
    let (queued, after) = queued_across_restart(cfg).await;
    assert_eq!(queued, Ok(3), "the queued incs and ask ran in the new incarnation");
    assert_eq!(after, Ok(3));
}

#[tokio::test(start_paused = true)]
async fn mailbox_can_be_dropped_on_restart() {
    let cfg = SpawnConfig::new("flaky", 8).restart_on_panic(1, ms(50), ms(50)).restart_mailbox_drain_and_drop();
    let (queued, after) = queued_across_restart(cfg).await;
    assert_eq!(queued, Err(AskError::Canceled), "queued asks are canceled when dropped");
    assert_eq!(after, Ok(0));
}

#[tokio::test(start_paused = true)]
async fn spawn_of_a_value_never_restarts() {
    let system = System::new();
    let cfg = SpawnConfig::new("once", 8).restart_on_panic(5, ms(1), ms(1));
    let h = system.spawn(Flaky { n: 0, gate: Gate::new() }, cfg).expect("runtime");
    assert_eq!(h.actor().boom().await, Err(AskError::Canceled));
    assert_eq!(h.join().await, ExitReason::Panic);
}

#[tokio::test(start_paused = true)]
async fn no_restart_policy_means_a_panic_stops_the_actor() {
    let system = System::new();
    let made = Arc::new(AtomicUsize::new(0));
    let h = system.spawn_with(counting_factory(&made, &Gate::new()), SpawnConfig::new("plain", 8)).expect("runtime");
    assert_eq!(h.actor().boom().await, Err(AskError::Canceled));
    assert_eq!(h.join().await, ExitReason::Panic);
    assert_eq!(made.load(Ordering::SeqCst), 1);
}

#[tokio::test(start_paused = true)]
async fn stop_during_backoff_ends_the_actor_without_restarting() {
    let system = System::new();
    let made = Arc::new(AtomicUsize::new(0));
    let cfg = SpawnConfig::new("flaky", 8).restart_on_panic(3, Duration::from_secs(60), Duration::from_secs(60));
    let h = system.spawn_with(counting_factory(&made, &Gate::new()), cfg).expect("runtime");
    let r = h.actor();
    assert_eq!(r.boom().await, Err(AskError::Canceled));
    let start = Instant::now();
    r.stop().expect("control path open during backoff");
    assert_eq!(h.join().await, ExitReason::Normal);
    assert!(start.elapsed() < Duration::from_secs(60), "did not wait out the backoff");
    assert_eq!(made.load(Ordering::SeqCst), 1);
}

#[tokio::test(start_paused = true)]
async fn long_uptime_resets_the_restart_budget() {
    let system = System::new();
    let mut events = system.subscribe_lifecycle();
    let cfg = SpawnConfig::new("flaky", 8)
        .restart_on_panic(1, ms(10), ms(10))
        .restart_reset_after(Duration::from_secs(5))
        .restart_jitter(|| 1.0);
    let h = system.spawn_with(counting_factory(&Arc::default(), &Gate::new()), cfg).expect("runtime");
    let r = h.actor();
    for _ in 0..3 {
        tokio::time::sleep(Duration::from_secs(6)).await;
        assert_eq!(r.boom().await, Err(AskError::Canceled));
        next_event(&mut events, h.pid(), Kind::Restarted).await;
    }
    // A quick second failure exceeds the budget of one.
    assert_eq!(r.boom().await, Err(AskError::Canceled));
    assert_eq!(h.join().await, ExitReason::RestartIntensityExceeded);
}

/// Panics in `on_start` until told otherwise.
#[derive(Debug)]
pub struct BadStart {
    fail: Arc<AtomicUsize>,
}

#[actor]
impl BadStart {
    #[msg]
    fn ok(&mut self) -> bool {
        true
    }

    fn on_start(&mut self) {
        if self.fail.fetch_sub(1, Ordering::SeqCst) > 0 {
            panic!("on_start failed");
        }
    }
}

#[tokio::test(start_paused = true)]
async fn a_panic_in_on_start_counts_as_a_failure() {
    let system = System::new();
    let fail = Arc::new(AtomicUsize::new(2));
    let cfg = SpawnConfig::new("bad-start", 8).restart_on_panic(2, ms(5), ms(5));
    let f = fail.clone();
    let h = system.spawn_with(move || BadStart { fail: f.clone() }, cfg).expect("runtime");
    assert_eq!(h.actor().ok_wait().await, Ok(true), "third incarnation starts fine");

    let fail = Arc::new(AtomicUsize::new(usize::MAX));
    let cfg = SpawnConfig::new("bad-start", 8).restart_on_panic(2, ms(5), ms(5));
    let h = system.spawn_with(move || BadStart { fail: fail.clone() }, cfg).expect("runtime");
    assert_eq!(h.join().await, ExitReason::RestartIntensityExceeded);
}
