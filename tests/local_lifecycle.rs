//! Lifecycle broadcast: `Started`, `Restarted` and `Stopped(reason)` with the
//! actor's pid and name, in order, for every way an actor can end; and the
//! order of hooks within an incarnation.

use std::time::Duration;

use axactor::{ActorLifecycleEvent, ActorLifecycleEventKind as Kind, Context, ExitReason, SpawnConfig, System, actor};
use tokio::sync::{broadcast, mpsc};

/// Reports its hooks on a channel.
#[derive(Debug)]
pub struct Hooks {
    log: mpsc::UnboundedSender<String>,
}

#[actor]
impl Hooks {
    #[msg]
    fn boom(&mut self) {
        panic!("boom")
    }

    #[msg]
    fn quit(&mut self, ctx: &mut Context, reason: ExitReason) {
        ctx.stop_with_exit(reason);
    }

    #[msg]
    fn ping(&mut self) -> u8 {
        let _ = self.log.send("ping".into());
        1
    }

    async fn on_start(&mut self, ctx: &mut Context) {
        let _ = self.log.send(format!("start {}", ctx.restart_count()));
    }

    fn on_stop(&mut self, reason: &ExitReason) {
        let _ = self.log.send(format!("stop {reason:?}"));
    }
}

async fn events_of(rx: &mut broadcast::Receiver<ActorLifecycleEvent>, n: usize) -> Vec<ActorLifecycleEvent> {
    let mut out = Vec::new();
    while out.len() < n {
        out.push(tokio::time::timeout(Duration::from_secs(10), rx.recv()).await.expect("event").expect("open"));
    }
    out
}

#[tokio::test(start_paused = true)]
async fn started_restarted_stopped_in_order_with_pid_and_name() {
    let system = System::new();
    let mut rx = system.subscribe_lifecycle();
    let (log, mut log_rx) = mpsc::unbounded_channel();
    let cfg = SpawnConfig::new("hooks", 8).restart_on_panic(1, Duration::from_millis(5), Duration::from_millis(5));
    let h = system.spawn_with(move || Hooks { log: log.clone() }, cfg).expect("runtime");
    let r = h.actor();
    r.boom_wait().await.expect("open");
    assert_eq!(r.ping_wait().await, Ok(1));
    r.quit_wait(ExitReason::Other("done".into())).await.expect("open");
    assert_eq!(h.join().await, ExitReason::Other("done".into()));

    let events = events_of(&mut rx, 3).await;
    let kinds: Vec<_> = events.iter().map(|e| e.kind).collect();
    assert_eq!(kinds, vec![Kind::Started, Kind::Restarted, Kind::Stopped]);
    assert!(events.iter().all(|e| e.pid == r.pid() && e.name == "hooks"));
    assert_eq!(events[0].reason, None);
    assert_eq!(events[1].reason, None);
    assert_eq!(events[2].reason, Some(ExitReason::Other("done".into())));

    let mut hooks = Vec::new();
    while let Ok(line) = log_rx.try_recv() {
        hooks.push(line);
    }
    assert_eq!(hooks, vec!["start 0", "stop Panic", "start 1", "ping", "stop Other(\"done\")"]);
}

#[tokio::test(start_paused = true)]
async fn stopped_carries_each_reason() {
    let reasons = [
        ExitReason::Normal,
        ExitReason::Shutdown,
        ExitReason::Killed,
        ExitReason::LeaseLost,
        ExitReason::NodeDown,
        ExitReason::Other("x".into()),
    ];
    let system = System::new();
    let mut rx = system.subscribe_lifecycle();
    for reason in reasons {
        let (log, _log_rx) = mpsc::unbounded_channel();
        let h = system.spawn(Hooks { log }, SpawnConfig::new("r", 4)).expect("runtime");
        h.actor().quit_wait(reason.clone()).await.expect("open");
        assert_eq!(h.join().await, reason);
        let events = events_of(&mut rx, 2).await;
        assert_eq!(events[1].kind, Kind::Stopped);
        assert_eq!(events[1].reason, Some(reason));
    }
    let (log, _log_rx) = mpsc::unbounded_channel();
    let h = system.spawn(Hooks { log }, SpawnConfig::new("p", 4)).expect("runtime");
    h.actor().boom().expect("room");
    assert_eq!(h.join().await, ExitReason::Panic);
    assert_eq!(events_of(&mut rx, 2).await[1].reason, Some(ExitReason::Panic));
}
