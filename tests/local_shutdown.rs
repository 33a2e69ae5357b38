//! `System::shutdown_graceful`: every actor is stopped by the deadline, even
//! one whose handler never returns; well-behaved actors drain what was
//! queued and stop with `Shutdown`; spawning afterwards fails.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use axactor::{ExitReason, SpawnConfig, SpawnError, System, actor};
use tokio::time::Instant;

/// `stuck` never returns; `work` counts.
#[derive(Debug)]
pub struct Busy {
    handled: Arc<AtomicUsize>,
}

#[actor]
impl Busy {
    #[msg]
    async fn stuck(&mut self) {
        std::future::pending::<()>().await;
    }

    #[msg]
    async fn work(&mut self) {
        tokio::time::sleep(Duration::from_millis(10)).await;
        self.handled.fetch_add(1, Ordering::SeqCst);
    }
}

fn busy(system: &System, name: &str, handled: &Arc<AtomicUsize>) -> axactor::SpawnHandle<BusyRef> {
    system.spawn(Busy { handled: handled.clone() }, SpawnConfig::new(name, 64)).expect("runtime")
}

#[tokio::test(start_paused = true)]
async fn returns_at_the_deadline_with_every_actor_stopped() {
    let system = System::new();
    let handled = Arc::new(AtomicUsize::new(0));
    let stuck = busy(&system, "stuck", &handled);
    stuck.actor().stuck().expect("room");
    let workers: Vec<_> = (0..10).map(|i| busy(&system, &format!("w{i}"), &handled)).collect();
    for w in &workers {
        for _ in 0..5 {
            w.actor().work().expect("room");
        }
    }
    tokio::task::yield_now().await;

    let start = Instant::now();
    system.shutdown_graceful(Duration::from_secs(3)).await;
    assert_eq!(start.elapsed(), Duration::from_secs(3), "waited for the stuck actor until the deadline, no longer");
    assert_eq!(system.actor_count(), 0);
    assert_eq!(handled.load(Ordering::SeqCst), 50, "queued work was drained before stopping");
    assert_eq!(stuck.join().await, ExitReason::Killed);
    for w in workers {
        assert!(w.actor().is_closed());
        assert_eq!(w.join().await, ExitReason::Shutdown);
    }
}

#[tokio::test(start_paused = true)]
async fn returns_early_when_everyone_stops_in_time() {
    let system = System::new();
    let handled = Arc::new(AtomicUsize::new(0));
    let w = busy(&system, "w", &handled);
    w.actor().work().expect("room");
    let start = Instant::now();
    system.shutdown_graceful(Duration::from_secs(30)).await;
    assert!(start.elapsed() < Duration::from_secs(1));
    assert_eq!(w.join().await, ExitReason::Shutdown);
    assert_eq!(handled.load(Ordering::SeqCst), 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_never_returning_handler_on_a_multi_thread_runtime_is_killed() {
    let system = System::new();
    let handled = Arc::new(AtomicUsize::new(0));
    let stuck: Vec<_> = (0..4).map(|i| busy(&system, &format!("s{i}"), &handled)).collect();
    for s in &stuck {
        s.actor().stuck().expect("room");
    }
    let deadline = Duration::from_millis(200);
    // Bounded: the call must return; the outer timeout only guards the test.
    tokio::time::timeout(Duration::from_secs(30), system.shutdown_graceful(deadline)).await.expect("returned");
    assert_eq!(system.actor_count(), 0);
    for s in stuck {
        assert_eq!(s.join().await, ExitReason::Killed);
    }
}

#[tokio::test(start_paused = true)]
async fn spawning_after_shutdown_fails() {
    let system = System::new();
    system.shutdown_graceful(Duration::from_secs(1)).await;
    let r = system.spawn(Busy { handled: Arc::default() }, SpawnConfig::new("late", 4));
    assert_eq!(r.err(), Some(SpawnError::ShuttingDown));
}

#[test]
fn spawning_outside_a_runtime_is_an_error() {
    let system = System::new();
    let r = system.spawn(Busy { handled: Arc::default() }, SpawnConfig::new("no-rt", 4));
    assert_eq!(r.err(), Some(SpawnError::NoRuntime));
    let r = system.spawn(Busy { handled: Arc::default() }, SpawnConfig::new("zero", 0));
    assert!(matches!(r.err(), Some(SpawnError::InvalidConfig(_))));
}
