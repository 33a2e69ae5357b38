//! Supervisors: which children restart for each strategy (checked through
//! lifecycle events and the children's state), which exits restart a child,
//! restart intensity and its sliding window, backoff, and shutdown.

use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use axactor::{
    ActorLifecycleEvent, ActorLifecycleEventKind, Context, ExitReason, Pid, SpawnConfig, SpawnError, SpawnHandle,
    SupervisionStrategy, Supervisor, SupervisorConfig, System, actor,
};
use axactor_tests::next_event;
use tokio::sync::broadcast;
use tokio::time::Instant;

/// A child with a counter, to tell a restarted child from one that kept its state.
#[derive(Debug)]
pub struct Worker {
    n: i64,
}

#[actor]
impl Worker {
    #[msg]
    fn inc(&mut self) -> i64 {
        self.n += 1;
        self.n
    }

    #[msg]
    fn get(&mut self) -> i64 {
        self.n
    }

    #[msg]
    fn incarnation(&mut self, ctx: &mut Context) -> u32 {
        ctx.restart_count()
    }

    #[msg]
    fn boom(&mut self) {
        panic!("boom (a panic the test asked for)");
    }

    #[msg]
    fn quit(&mut self, ctx: &mut Context, reason: ExitReason) {
        ctx.stop_with_exit(reason);
    }
}

type Events = broadcast::Receiver<ActorLifecycleEvent>;

/// Bounds a wait (60 s of the possibly paused clock).
async fn bounded<F: Future>(f: F) -> F::Output {
    tokio::time::timeout(Duration::from_secs(60), f).await.expect("timed out waiting")
}

fn setup(strategy: SupervisionStrategy, max_restarts: usize) -> (Arc<System>, Supervisor, Events) {
    let system = Arc::new(System::new());
    let events = system.subscribe_lifecycle();
    let sup = Supervisor::new(
        system.clone(),
        SupervisorConfig::new(strategy).intensity(max_restarts, Duration::from_secs(60)),
    );
    (system, sup, events)
}

fn child(sup: &Supervisor, name: &str) -> SpawnHandle<WorkerRef> {
    sup.spawn_child(|| Worker { n: 0 }, SpawnConfig::new(name, 16)).expect("spawn child")
}

/// Children named c0, c1, ... whose counters are set to 1, 2, ...
async fn children(sup: &Supervisor, n: usize) -> Vec<SpawnHandle<WorkerRef>> {
    let mut v = Vec::new();
    for i in 0..n {
        let h = child(sup, &format!("c{i}"));
        for _ in 0..=i {
            bounded(h.actor().inc()).await.expect("inc");
        }
        v.push(h);
    }
    v
}

/// Waits until each of `pids` has restarted once more; then, after a round
/// trip through every child (anything a restart signal asked for has been
/// done by then), returns every pid that restarted, with repeats.
async fn restarts(events: &mut Events, pids: &[Pid], all: &[SpawnHandle<WorkerRef>]) -> Vec<Pid> {
    let mut seen = Vec::new();
    bounded(async {
        while !pids.iter().all(|p| seen.contains(p)) {
            match events.recv().await {
                Ok(e) if e.kind == ActorLifecycleEventKind::Restarted => seen.push(e.pid),
                Ok(_) => {}
                Err(e) => panic!("lifecycle channel: {e}"),
            }
        }
    })
    .await;
    for h in all {
        bounded(h.actor().get()).await.expect("child alive");
    }
    while let Ok(e) = events.try_recv() {
        if e.kind == ActorLifecycleEventKind::Restarted {
            seen.push(e.pid);
        }
    }
    seen.sort();
    seen
}

async fn counters(all: &[SpawnHandle<WorkerRef>]) -> Vec<i64> {
    let mut v = Vec::new();
    for h in all {
        v.push(bounded(h.actor().get()).await.expect("get"));
    }
    v
}

fn pids(all: &[SpawnHandle<WorkerRef>]) -> Vec<Pid> {
    all.iter().map(|h| h.pid()).collect()
}

#[tokio::test(start_paused = true)]
async fn one_for_one_restarts_only_the_failed_child() {
    let (_system, sup, mut events) = setup(SupervisionStrategy::OneForOne, 5);
    let all = children(&sup, 3).await;
    assert_eq!(counters(&all).await, vec![1, 2, 3]);
    let failed = all[1].actor();
    failed.boom().expect("boom");
    assert_eq!(restarts(&mut events, &[all[1].pid()], &all).await, vec![all[1].pid()]);
    assert_eq!(counters(&all).await, vec![1, 0, 3], "siblings keep their state");
    // The same ref reaches the new incarnation; the pids did not change.
    assert_eq!(bounded(failed.incarnation()).await, Ok(1));
    assert_eq!(bounded(failed.inc()).await, Ok(1));
    assert_eq!(failed.pid(), all[1].pid());
    assert_eq!(sup.children(), pids(&all));
}

#[tokio::test(start_paused = true)]
async fn one_for_all_restarts_every_child() {
    let (_system, sup, mut events) = setup(SupervisionStrategy::OneForAll, 5);
    let all = children(&sup, 3).await;
    all[1].actor().boom().expect("boom");
    let mut expected = pids(&all);
    expected.sort();
    assert_eq!(restarts(&mut events, &pids(&all), &all).await, expected);
    assert_eq!(counters(&all).await, vec![0, 0, 0], "every child starts afresh");
    for h in &all {
        assert_eq!(bounded(h.actor().incarnation()).await, Ok(1));
    }
    assert_eq!(sup.children(), pids(&all));
}

#[tokio::test(start_paused = true)]
async fn rest_for_one_restarts_the_failed_child_and_later_ones() {
    let (_system, sup, mut events) = setup(SupervisionStrategy::RestForOne, 5);
    let all = children(&sup, 4).await;
    all[1].actor().boom().expect("boom");
    let later = &pids(&all)[1..];
    assert_eq!(restarts(&mut events, later, &all).await, later.to_vec());
    assert_eq!(counters(&all).await, vec![1, 0, 0, 0]);

    // The last child failing restarts only itself.
    bounded(all[3].actor().inc()).await.expect("inc");
    all[3].actor().boom().expect("boom");
    assert_eq!(restarts(&mut events, &[all[3].pid()], &all).await, vec![all[3].pid()]);
    assert_eq!(counters(&all).await, vec![1, 0, 0, 0]);
    bounded(all[2].actor().inc()).await.expect("inc");
    assert_eq!(counters(&all).await, vec![1, 0, 1, 0]);
}

#[tokio::test(start_paused = true)]
async fn every_abnormal_exit_but_shutdown_and_killed_restarts_the_child() {
    let (_system, sup, mut events) = setup(SupervisionStrategy::OneForOne, 20);
    let all = children(&sup, 2).await;
    let reasons = [
        ExitReason::Panic,
        ExitReason::LeaseLost,
        ExitReason::NodeDown,
        ExitReason::RestartIntensityExceeded,
        ExitReason::NoProc,
        ExitReason::Other("custom".into()),
    ];
    let r = all[0].actor();
    for (i, reason) in reasons.into_iter().enumerate() {
        bounded(r.inc()).await.expect("inc");
        let sent = if reason == ExitReason::Panic { r.boom() } else { r.quit(reason.clone()) };
        sent.expect("tell accepted");
        assert_eq!(restarts(&mut events, &[all[0].pid()], &all).await, vec![all[0].pid()], "{reason:?}");
        assert_eq!(counters(&all).await, vec![0, 2], "{reason:?}");
        assert_eq!(bounded(r.incarnation()).await, Ok(u32::try_from(i + 1).expect("small")));
    }
}

#[tokio::test(start_paused = true)]
async fn shutdown_killed_and_normal_exits_end_a_child_for_good() {
    let (system, sup, mut events) = setup(SupervisionStrategy::OneForAll, 5);
    let all = children(&sup, 5).await;
    all[0].actor().quit(ExitReason::Shutdown).expect("quit");
    all[1].actor().quit(ExitReason::Killed).expect("quit");
    all[2].actor().quit(ExitReason::Normal).expect("quit");
    all[3].actor().stop().expect("stop");
    let mut all = all;
    let last = all.pop().expect("five children");
    let expected = [ExitReason::Shutdown, ExitReason::Killed, ExitReason::Normal, ExitReason::Normal];
    for (h, want) in all.into_iter().zip(expected) {
        assert_eq!(bounded(h.join()).await, want);
    }
    // No restart anywhere, even under one-for-all: the last child kept its state.
    assert_eq!(bounded(last.actor().get()).await, Ok(5));
    while let Ok(e) = events.try_recv() {
        assert_ne!(e.kind, ActorLifecycleEventKind::Restarted, "{e:?}");
    }
    assert_eq!(system.actor_count(), 1);
    last.actor().stop().expect("stop");
    assert_eq!(bounded(sup.join()).await, ExitReason::Normal);
}

#[tokio::test(start_paused = true)]
async fn a_linked_exit_restarts_the_child() {
    let (system, sup, mut events) = setup(SupervisionStrategy::OneForOne, 5);
    let all = children(&sup, 2).await;
    let outsider = system.spawn(Worker { n: 0 }, SpawnConfig::new("outsider", 16)).expect("spawn");
    assert!(system.link(outsider.pid(), all[0].pid()));
    let reason = ExitReason::Other("peer died".into());
    outsider.actor().quit(reason.clone()).expect("quit");
    assert_eq!(bounded(outsider.join()).await, reason);
    assert_eq!(restarts(&mut events, &[all[0].pid()], &all).await, vec![all[0].pid()]);
    assert_eq!(counters(&all).await, vec![0, 2]);
    assert_eq!(sup.children(), pids(&all));
}

#[tokio::test(start_paused = true)]
async fn exceeding_the_intensity_stops_every_child() {
    let (system, sup, mut events) = setup(SupervisionStrategy::OneForOne, 2);
    let all = children(&sup, 3).await;
    let r = all[0].actor();
    for _ in 0..2 {
        r.boom().expect("boom");
        assert_eq!(restarts(&mut events, &[all[0].pid()], &all).await, vec![all[0].pid()]);
    }
    r.boom().expect("boom");
    for h in all {
        assert_eq!(bounded(h.join()).await, ExitReason::RestartIntensityExceeded);
    }
    assert_eq!(bounded(sup.join()).await, ExitReason::RestartIntensityExceeded);
    assert!(matches!(sup.spawn_child(|| Worker { n: 0 }, SpawnConfig::new("late", 16)), Err(SpawnError::ShuttingDown)));
    assert_eq!(system.actor_count(), 0);
}

#[tokio::test(start_paused = true)]
async fn the_intensity_window_slides() {
    let system = Arc::new(System::new());
    let mut events = system.subscribe_lifecycle();
    let cfg = SupervisorConfig::new(SupervisionStrategy::OneForOne).intensity(1, Duration::from_secs(1));
    let sup = Supervisor::new(system.clone(), cfg);
    let all = children(&sup, 1).await;
    let r = all[0].actor();
    r.boom().expect("boom");
    assert_eq!(restarts(&mut events, &[all[0].pid()], &all).await, vec![all[0].pid()]);
    // Once the first restart is older than the window, one more is allowed.
    tokio::time::sleep(Duration::from_millis(1500)).await;
    r.boom().expect("boom");
    assert_eq!(restarts(&mut events, &[all[0].pid()], &all).await, vec![all[0].pid()]);
    // A second failure within the window is one too many.
    r.boom().expect("boom");
    let h = all.into_iter().next().expect("one child");
    assert_eq!(bounded(h.join()).await, ExitReason::RestartIntensityExceeded);
    assert_eq!(bounded(sup.join()).await, ExitReason::RestartIntensityExceeded);
}

#[tokio::test(start_paused = true)]
async fn restarts_wait_for_the_backoff() {
    let system = Arc::new(System::new());
    let mut events = system.subscribe_lifecycle();
    let cfg = SupervisorConfig::new(SupervisionStrategy::OneForOne)
        .intensity(5, Duration::from_secs(60))
        .backoff(Duration::from_millis(100), Duration::from_secs(1));
    let sup = Supervisor::new(system.clone(), cfg);
    let h = sup.spawn_child(|| Worker { n: 0 }, SpawnConfig::new("w", 16).restart_jitter(|| 1.0)).expect("spawn child");
    let r = h.actor();
    // Without jitter the delays double: 100 ms, then 200 ms.
    for want in [Duration::from_millis(100), Duration::from_millis(200)] {
        let t0 = Instant::now();
        r.boom().expect("boom");
        next_event(&mut events, h.pid(), ActorLifecycleEventKind::Restarted).await;
        let took = t0.elapsed();
        assert!(took >= want && took < want + Duration::from_millis(50), "restart after {took:?}, want {want:?}");
    }
    assert_eq!(bounded(r.incarnation()).await, Ok(2));
}

#[tokio::test(start_paused = true)]
async fn shutdown_stops_children_last_first_and_join_returns_normal() {
    let (system, sup, mut events) = setup(SupervisionStrategy::OneForAll, 5);
    let all = children(&sup, 3).await;
    bounded(sup.shutdown()).await;
    let mut stopped = Vec::new();
    while let Ok(e) = events.try_recv() {
        if e.kind == ActorLifecycleEventKind::Stopped {
            assert_eq!(e.reason, Some(ExitReason::Shutdown), "{e:?}");
            stopped.push(e.pid);
        }
        assert_ne!(e.kind, ActorLifecycleEventKind::Restarted, "a shutdown restarts nothing");
    }
    let mut last_first = pids(&all);
    last_first.reverse();
    assert_eq!(stopped, last_first);
    for h in all {
        assert!(h.actor().is_closed());
        assert_eq!(bounded(h.join()).await, ExitReason::Shutdown);
    }
    assert_eq!(bounded(sup.join()).await, ExitReason::Normal);
    assert!(matches!(sup.spawn_child(|| Worker { n: 0 }, SpawnConfig::new("late", 16)), Err(SpawnError::ShuttingDown)));
    assert_eq!(system.actor_count(), 0);
}

#[tokio::test(start_paused = true)]
async fn a_restart_keeps_queued_messages_for_the_new_incarnation() {
    let (_system, sup, mut events) = setup(SupervisionStrategy::OneForOne, 5);
    let all = children(&sup, 1).await;
    let r = all[0].actor();
    r.boom().expect("boom");
    // Queued behind the panic: handled by the next incarnation (the old one had counted to 1).
    assert_eq!(bounded(r.inc()).await, Ok(1));
    assert_eq!(restarts(&mut events, &[all[0].pid()], &all).await, vec![all[0].pid()]);
    assert_eq!(bounded(r.incarnation()).await, Ok(1));
}
