//! Monitors: `on_down` runs exactly once per monitor when the target stops for
//! good (with the target's reason and the id `monitor` returned), at once
//! with `NoProc` when the target is already gone, never after `demonitor`,
//! and not on a restart of the target.

use std::collections::HashSet;
use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use axactor::{ActorLifecycleEventKind, Context, ExitReason, MonitorId, Pid, SpawnConfig, SpawnHandle, System, actor};
use axactor_tests::{Gate, next_event};
use tokio::sync::mpsc::{self, UnboundedReceiver, UnboundedSender, error::TryRecvError};

/// One `on_down` call, as seen by a [`Watcher`].
#[derive(Debug, Clone, PartialEq, Eq)]
struct Down {
    watcher: Pid,
    id: MonitorId,
    pid: Pid,
    reason: ExitReason,
}

/// An actor that monitors others and reports each `on_down`.
#[derive(Debug)]
pub struct Watcher {
    tx: UnboundedSender<Down>,
}

#[actor]
impl Watcher {
    #[msg]
    fn watch(&mut self, ctx: &mut Context, target: Pid) -> Option<MonitorId> {
        ctx.monitor(target)
    }

    #[msg]
    fn unwatch(&mut self, ctx: &mut Context, id: MonitorId) -> bool {
        ctx.demonitor(id)
    }

    #[msg]
    fn ping(&mut self) -> bool {
        true
    }

    #[msg]
    async fn hold(&mut self, gate: Gate) {
        gate.pass().await;
    }

    fn on_down(&mut self, ctx: &mut Context, id: MonitorId, pid: Pid, reason: ExitReason) {
        let _ = self.tx.send(Down { watcher: ctx.pid(), id, pid, reason });
    }
}

/// An actor to be monitored.
#[derive(Debug)]
pub struct Target;

#[actor]
impl Target {
    #[msg]
    fn ping(&mut self) -> bool {
        true
    }

    #[msg]
    fn quit(&mut self, ctx: &mut Context, reason: ExitReason) {
        ctx.stop_with_exit(reason);
    }

    #[msg]
    fn boom(&mut self) {
        panic!("boom (a panic the test asked for)");
    }
}

/// A system, one watcher and the channel its `on_down` reports to.
struct World {
    system: Arc<System>,
    tx: UnboundedSender<Down>,
    rx: UnboundedReceiver<Down>,
}

impl World {
    fn new() -> World {
        let (tx, rx) = mpsc::unbounded_channel();
        World { system: Arc::new(System::new()), tx, rx }
    }

    fn watcher(&self, name: &str) -> SpawnHandle<WatcherRef> {
        let tx = self.tx.clone();
        self.system.spawn_with(move || Watcher { tx: tx.clone() }, SpawnConfig::new(name, 16)).expect("spawn watcher")
    }

    fn target(&self, name: &str) -> SpawnHandle<TargetRef> {
        self.system.spawn(Target, SpawnConfig::new(name, 16)).expect("spawn target")
    }

    async fn next_down(&mut self) -> Down {
        bounded(self.rx.recv()).await.expect("down channel open")
    }

    /// Proves no further `on_down` comes: lets the (paused) clock run, makes
    /// a round trip through every watcher, then finds the channel empty.
    async fn assert_no_more_downs(&mut self, watchers: &[&WatcherRef]) {
        tokio::time::sleep(Duration::from_secs(1)).await;
        for w in watchers {
            assert_eq!(bounded(w.ping()).await, Ok(true), "watcher alive");
        }
        match self.rx.try_recv() {
            Err(TryRecvError::Empty) => {}
            other => panic!("unexpected on_down: {other:?}"),
        }
    }
}

/// Bounds a wait (60 s of the possibly paused clock).
async fn bounded<F: Future>(f: F) -> F::Output {
    tokio::time::timeout(Duration::from_secs(60), f).await.expect("timed out waiting")
}

/// Every exit reason.
fn all_reasons() -> Vec<ExitReason> {
    vec![
        ExitReason::Normal,
        ExitReason::Shutdown,
        ExitReason::Panic,
        ExitReason::Killed,
        ExitReason::LeaseLost,
        ExitReason::NodeDown,
        ExitReason::RestartIntensityExceeded,
        ExitReason::NoProc,
        ExitReason::Other("custom reason".to_owned()),
    ]
}

#[tokio::test(start_paused = true)]
async fn on_down_runs_once_with_the_targets_reason() {
    let mut w = World::new();
    let watcher = w.watcher("watcher");
    let wr = watcher.actor();
    for reason in all_reasons() {
        let t = w.target("t");
        let id = w.system.monitor(watcher.pid(), t.pid()).expect("watcher alive");
        let tr = t.actor();
        let sent = if reason == ExitReason::Panic { tr.boom() } else { tr.quit(reason.clone()) };
        sent.expect("tell accepted");
        let t_pid = t.pid();
        assert_eq!(bounded(t.join()).await, reason);
        assert_eq!(w.next_down().await, Down { watcher: watcher.pid(), id, pid: t_pid, reason });
    }
    // A stop through the handle is a Normal exit too.
    let t = w.target("t");
    let id = w.system.monitor(watcher.pid(), t.pid()).expect("watcher alive");
    t.actor().stop_wait().await.expect("stop");
    assert_eq!(w.next_down().await, Down { watcher: watcher.pid(), id, pid: t.pid(), reason: ExitReason::Normal });
    w.assert_no_more_downs(&[&wr]).await;
}

#[tokio::test(start_paused = true)]
async fn monitor_from_a_handler_reports_the_id_it_returned() {
    let mut w = World::new();
    let watcher = w.watcher("watcher");
    let wr = watcher.actor();
    let t = w.target("t");
    let id = bounded(wr.watch(t.pid())).await.expect("ask").expect("watcher alive");
    t.actor().boom().expect("boom");
    let t_pid = t.pid();
    assert_eq!(bounded(t.join()).await, ExitReason::Panic);
    assert_eq!(w.next_down().await, Down { watcher: watcher.pid(), id, pid: t_pid, reason: ExitReason::Panic });
    w.assert_no_more_downs(&[&wr]).await;
}

#[tokio::test(start_paused = true)]
async fn monitoring_a_dead_actor_fires_noproc_at_once() {
    let mut w = World::new();
    let watcher = w.watcher("watcher");
    let wr = watcher.actor();
    let t = w.target("t");
    let t_pid = t.pid();
    t.actor().quit(ExitReason::Other("gone".into())).expect("quit");
    assert_eq!(bounded(t.join()).await, ExitReason::Other("gone".into()));

    let id = w.system.monitor(watcher.pid(), t_pid).expect("watcher alive");
    assert_eq!(w.next_down().await, Down { watcher: watcher.pid(), id, pid: t_pid, reason: ExitReason::NoProc });

    let id2 = bounded(wr.watch(t_pid)).await.expect("ask").expect("watcher alive");
    assert_ne!(id, id2, "every monitor has its own id");
    assert_eq!(w.next_down().await, Down { watcher: watcher.pid(), id: id2, pid: t_pid, reason: ExitReason::NoProc });
    w.assert_no_more_downs(&[&wr]).await;
}

#[tokio::test(start_paused = true)]
async fn demonitor_before_the_exit_prevents_on_down() {
    let mut w = World::new();
    let watcher = w.watcher("watcher");
    let wr = watcher.actor();
    let t1 = w.target("t1");
    let t2 = w.target("t2");

    let id1 = w.system.monitor(watcher.pid(), t1.pid()).expect("watcher alive");
    assert!(w.system.demonitor(watcher.pid(), id1));
    assert!(!w.system.demonitor(watcher.pid(), id1), "a second demonitor finds nothing");

    let id2 = bounded(wr.watch(t2.pid())).await.expect("ask").expect("watcher alive");
    assert_eq!(bounded(wr.unwatch(id2)).await, Ok(true));
    assert_eq!(bounded(wr.unwatch(id2)).await, Ok(false));

    t1.actor().boom().expect("boom");
    t2.actor().quit(ExitReason::Shutdown).expect("quit");
    assert_eq!(bounded(t1.join()).await, ExitReason::Panic);
    assert_eq!(bounded(t2.join()).await, ExitReason::Shutdown);
    w.assert_no_more_downs(&[&wr]).await;
}

#[tokio::test(start_paused = true)]
async fn demonitor_after_the_notice_was_queued_still_prevents_on_down() {
    let mut w = World::new();
    let watcher = w.watcher("watcher");
    let wr = watcher.actor();
    let t = w.target("t");
    let id = w.system.monitor(watcher.pid(), t.pid()).expect("watcher alive");

    // The watcher is busy, so the down notice waits in its mailbox.
    let gate = Gate::new();
    wr.hold(gate.clone()).expect("hold");
    t.actor().quit(ExitReason::LeaseLost).expect("quit");
    assert_eq!(bounded(t.join()).await, ExitReason::LeaseLost);

    assert!(w.system.demonitor(watcher.pid(), id), "the monitor is still active until on_down runs");
    gate.open(1);
    w.assert_no_more_downs(&[&wr]).await;
}

#[tokio::test(start_paused = true)]
async fn monitors_survive_restarts_of_the_target() {
    let mut w = World::new();
    let mut events = w.system.subscribe_lifecycle();
    let watcher = w.watcher("watcher");
    let wr = watcher.actor();
    let cfg = SpawnConfig::new("flaky", 16)
        .restart_on_panic(1, Duration::from_millis(10), Duration::from_millis(10))
        .restart_jitter(|| 1.0);
    let t = w.system.spawn_with(|| Target, cfg).expect("spawn");
    let tr = t.actor();
    let id = w.system.monitor(watcher.pid(), t.pid()).expect("watcher alive");

    tr.boom().expect("boom");
    next_event(&mut events, t.pid(), ActorLifecycleEventKind::Restarted).await;
    assert_eq!(bounded(tr.ping()).await, Ok(true), "same ref, new incarnation");
    w.assert_no_more_downs(&[&wr]).await;

    // The second panic exceeds max_restarts = 1: now the target is down for good.
    tr.boom().expect("boom");
    let t_pid = t.pid();
    assert_eq!(bounded(t.join()).await, ExitReason::RestartIntensityExceeded);
    assert_eq!(
        w.next_down().await,
        Down { watcher: watcher.pid(), id, pid: t_pid, reason: ExitReason::RestartIntensityExceeded }
    );
    w.assert_no_more_downs(&[&wr]).await;
}

#[tokio::test(start_paused = true)]
async fn every_monitor_fires_once() {
    let mut w = World::new();
    let w1 = w.watcher("w1");
    let w2 = w.watcher("w2");
    let (w1r, w2r) = (w1.actor(), w2.actor());
    let t = w.target("t");
    let a = w.system.monitor(w1.pid(), t.pid()).expect("w1 alive");
    let b = w.system.monitor(w1.pid(), t.pid()).expect("w1 alive");
    let c = bounded(w2r.watch(t.pid())).await.expect("ask").expect("w2 alive");
    assert_eq!(HashSet::from([a, b, c]).len(), 3, "distinct ids");

    let reason = ExitReason::Other("down".into());
    t.actor().quit(reason.clone()).expect("quit");
    let t_pid = t.pid();
    assert_eq!(bounded(t.join()).await, reason);
    let mut got = HashSet::new();
    for _ in 0..3 {
        let d = w.next_down().await;
        assert_eq!((d.pid, &d.reason), (t_pid, &reason));
        assert!(got.insert((d.watcher, d.id)), "duplicate on_down: {d:?}");
    }
    assert_eq!(got, HashSet::from([(w1.pid(), a), (w1.pid(), b), (w2.pid(), c)]));
    w.assert_no_more_downs(&[&w1r, &w2r]).await;
}

#[tokio::test(start_paused = true)]
async fn monitor_needs_a_live_watcher() {
    let mut w = World::new();
    let live = w.watcher("live");
    let dead = w.watcher("dead");
    let t = w.target("t");
    let dead_pid = dead.pid();
    let id = w.system.monitor(dead_pid, t.pid()).expect("still alive");
    dead.actor().stop_wait().await.expect("stop");
    assert_eq!(w.system.monitor(dead_pid, t.pid()), None);
    assert!(!w.system.demonitor(dead_pid, id), "the dead watcher's monitors are gone");

    // The target's exit reaches nobody, and breaks nothing.
    t.actor().quit(ExitReason::Panic).expect("quit");
    assert_eq!(bounded(t.join()).await, ExitReason::Panic);
    w.assert_no_more_downs(&[&live.actor()]).await;
}

#[tokio::test(start_paused = true)]
async fn a_watcher_that_exits_is_forgotten_by_its_target() {
    let mut w = World::new();
    let watcher = w.watcher("watcher");
    let wr = watcher.actor();
    let t = w.target("t");
    let tr = t.actor();
    // Many short-lived watchers of one long-lived target.
    for _ in 0..8 {
        let tmp = w.watcher("tmp");
        assert!(w.system.monitor(tmp.pid(), t.pid()).is_some());
        tmp.actor().stop_wait().await.expect("stop");
    }
    let id = w.system.monitor(watcher.pid(), t.pid()).expect("watcher alive");
    assert_eq!(bounded(tr.ping()).await, Ok(true));
    tr.quit(ExitReason::NodeDown).expect("quit");
    let t_pid = t.pid();
    assert_eq!(bounded(t.join()).await, ExitReason::NodeDown);
    assert_eq!(w.next_down().await, Down { watcher: watcher.pid(), id, pid: t_pid, reason: ExitReason::NodeDown });
    w.assert_no_more_downs(&[&wr]).await;
}
