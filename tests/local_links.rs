//! Links between local actors: abnormal exits propagate with the same reason
//! (symmetrically, for every `ExitReason`), `Normal` exits do not, trapping
//! actors get `on_exit` instead of dying, `unlink` stops propagation, and
//! links fire only at an actor's final exit, never on a restart.

use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use axactor::{ActorLifecycleEventKind, Context, ExitReason, Pid, SpawnConfig, SpawnHandle, System, actor};
use axactor_tests::{Gate, next_event};
use tokio::sync::mpsc::{self, UnboundedReceiver, UnboundedSender};

/// What a [`Node`] reports from its hooks and handlers.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Seen {
    /// `on_exit` ran on `me` for an exit of `from`.
    Exit { me: Pid, from: Pid, reason: ExitReason },
    /// `on_stop` ran on `me`.
    Stop { me: Pid, reason: ExitReason },
    /// `me` entered its `hold` handler.
    Entered { me: Pid },
}

/// A linkable actor that reports its hooks to the test.
#[derive(Debug)]
pub struct Node {
    tx: UnboundedSender<Seen>,
    trap_on_start: bool,
    pings: u64,
}

#[actor]
impl Node {
    #[msg]
    fn ping(&mut self) -> u64 {
        self.pings += 1;
        self.pings
    }

    #[msg]
    fn quit(&mut self, ctx: &mut Context, reason: ExitReason) {
        ctx.stop_with_exit(reason);
    }

    #[msg]
    fn boom(&mut self) {
        panic!("boom (a panic the test asked for)");
    }

    #[msg]
    fn trap(&mut self, ctx: &mut Context, on: bool) {
        ctx.trap_exit(on);
    }

    #[msg]
    fn trapping(&mut self, ctx: &mut Context) -> bool {
        ctx.is_trapping_exits()
    }

    #[msg]
    fn link_to(&mut self, ctx: &mut Context, other: Pid) -> bool {
        ctx.link(other)
    }

    #[msg]
    fn unlink_from(&mut self, ctx: &mut Context, other: Pid) {
        ctx.unlink(other);
    }

    #[msg]
    async fn hold(&mut self, ctx: &mut Context, gate: Gate) {
        let _ = self.tx.send(Seen::Entered { me: ctx.pid() });
        gate.pass().await;
    }

    fn on_start(&mut self, ctx: &mut Context) {
        if self.trap_on_start {
            ctx.trap_exit(true);
        }
    }

    fn on_stop(&mut self, ctx: &mut Context, reason: &ExitReason) {
        let _ = self.tx.send(Seen::Stop { me: ctx.pid(), reason: reason.clone() });
    }

    fn on_exit(&mut self, ctx: &mut Context, from: Pid, reason: ExitReason) {
        let _ = self.tx.send(Seen::Exit { me: ctx.pid(), from, reason });
    }
}

/// Every abnormal reason (everything but `Normal`).
fn abnormal_reasons() -> Vec<ExitReason> {
    vec![
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

/// The test's view: a system plus the channel every node reports to.
struct World {
    system: Arc<System>,
    tx: UnboundedSender<Seen>,
    rx: UnboundedReceiver<Seen>,
}

impl World {
    fn new() -> World {
        let (tx, rx) = mpsc::unbounded_channel();
        World { system: Arc::new(System::new()), tx, rx }
    }

    fn node(&self, name: &str, trap: bool) -> SpawnHandle<NodeRef> {
        self.node_with(SpawnConfig::new(name, 16), trap)
    }

    fn node_with(&self, cfg: SpawnConfig, trap: bool) -> SpawnHandle<NodeRef> {
        let tx = self.tx.clone();
        self.system.spawn_with(move || Node { tx: tx.clone(), trap_on_start: trap, pings: 0 }, cfg).expect("spawn node")
    }

    /// Everything reported so far (does not wait).
    fn drain(&mut self) -> Vec<Seen> {
        let mut v = Vec::new();
        while let Ok(s) = self.rx.try_recv() {
            v.push(s);
        }
        v
    }

    /// Waits for the next report matching `want`, skipping others.
    async fn wait_for(&mut self, want: impl Fn(&Seen) -> bool) -> Seen {
        bounded(async {
            loop {
                let s = self.rx.recv().await.expect("report channel open");
                if want(&s) {
                    return s;
                }
            }
        })
        .await
    }
}

/// Bounds a wait (60 s of the possibly paused clock).
async fn bounded<F: Future>(f: F) -> F::Output {
    tokio::time::timeout(Duration::from_secs(60), f).await.expect("timed out waiting")
}

/// Makes `r` exit with `reason`: a real panic for `Panic`, else `stop_with_exit`.
fn exit_with(r: &NodeRef, reason: &ExitReason) {
    let sent = if *reason == ExitReason::Panic { r.boom() } else { r.quit(reason.clone()) };
    sent.expect("tell accepted");
}

#[tokio::test(start_paused = true)]
async fn abnormal_exit_propagates_with_the_same_reason_both_ways() {
    let w = World::new();
    for (i, reason) in abnormal_reasons().into_iter().enumerate() {
        let a = w.node("a", false);
        let b = w.node("b", false);
        assert!(w.system.link(a.pid(), b.pid()));
        // Alternate which side dies: links are symmetric.
        let (dying, linked) = if i % 2 == 0 { (a, b) } else { (b, a) };
        exit_with(&dying.actor(), &reason);
        assert_eq!(bounded(dying.join()).await, reason, "the dying actor's own reason");
        let survivor = linked.actor();
        assert_eq!(bounded(linked.join()).await, reason, "the linked actor exits with the same reason");
        assert!(survivor.is_closed());
    }
    assert_eq!(w.system.actor_count(), 0);
}

#[tokio::test(start_paused = true)]
async fn killed_at_a_drain_deadline_propagates_killed() {
    let mut w = World::new();
    let a = w.node_with(SpawnConfig::new("a", 16).shutdown_graceful(Duration::from_secs(1)), false);
    let b = w.node("b", false);
    assert!(w.system.link(a.pid(), b.pid()));
    let ar = a.actor();
    let gate = Gate::new();
    ar.hold(gate.clone()).expect("first hold");
    ar.hold(gate.clone()).expect("second hold");
    let a_pid = a.pid();
    w.wait_for(|s| *s == Seen::Entered { me: a_pid }).await;
    // Graceful stop: the queued second hold still runs, and never returns.
    ar.stop().expect("stop accepted");
    gate.open(1);
    w.wait_for(|s| *s == Seen::Entered { me: a_pid }).await;
    let started = tokio::time::Instant::now();
    assert_eq!(bounded(a.join()).await, ExitReason::Killed);
    assert!(started.elapsed() <= Duration::from_secs(1), "killed by the deadline");
    assert_eq!(bounded(b.join()).await, ExitReason::Killed);
}

#[tokio::test(start_paused = true)]
async fn normal_exit_does_not_propagate() {
    let mut w = World::new();
    let b = w.node("b", false);
    let br = b.actor();
    // Once through ctx.stop_with_exit(Normal), once through a handle stop().
    for via_handle in [false, true] {
        let a = w.node("a", false);
        assert!(w.system.link(a.pid(), b.pid()));
        if via_handle {
            a.actor().stop().expect("stop accepted");
        } else {
            a.actor().quit(ExitReason::Normal).expect("quit accepted");
        }
        assert_eq!(bounded(a.join()).await, ExitReason::Normal);
        // A round trip after a's exit: b has seen whatever a's exit sent it.
        assert!(bounded(br.ping()).await.is_ok(), "b survives a normal exit");
    }
    assert!(!w.drain().iter().any(|s| matches!(s, Seen::Stop { me, .. } if *me == b.pid())));
    assert_eq!(w.system.actor_count(), 1);
}

#[tokio::test(start_paused = true)]
async fn a_trapping_actor_gets_on_exit_for_every_reason() {
    let mut w = World::new();
    let b = w.node("trapper", true);
    let br = b.actor();
    let mut reasons = vec![ExitReason::Normal];
    reasons.extend(abnormal_reasons());
    for reason in reasons {
        let a = w.node("a", false);
        let a_pid = a.pid();
        assert!(w.system.link(a_pid, b.pid()));
        exit_with(&a.actor(), &reason);
        assert_eq!(bounded(a.join()).await, reason);
        let seen = w.wait_for(|s| matches!(s, Seen::Exit { .. })).await;
        assert_eq!(seen, Seen::Exit { me: b.pid(), from: a_pid, reason: reason.clone() });
    }
    assert_eq!(bounded(br.trapping()).await, Ok(true));
    assert!(bounded(br.ping()).await.is_ok(), "the trapping actor is still alive");
    assert!(!w.drain().iter().any(|s| matches!(s, Seen::Stop { .. })), "only the linked actors stopped");
}

#[tokio::test(start_paused = true)]
async fn trap_exit_can_be_switched_off_again() {
    let mut w = World::new();
    let b = w.node("b", false);
    let br = b.actor();
    br.trap(true).expect("trap on");
    let a1 = w.node("a1", false);
    assert!(w.system.link(a1.pid(), b.pid()));
    a1.actor().quit(ExitReason::Other("first".into())).expect("quit");
    let a1_pid = a1.pid();
    let seen = w.wait_for(|s| matches!(s, Seen::Exit { .. })).await;
    assert_eq!(seen, Seen::Exit { me: b.pid(), from: a1_pid, reason: ExitReason::Other("first".into()) });

    br.trap(false).expect("trap off");
    assert_eq!(bounded(br.trapping()).await, Ok(false));
    let a2 = w.node("a2", false);
    assert!(w.system.link(a2.pid(), b.pid()));
    a2.actor().quit(ExitReason::Other("second".into())).expect("quit");
    assert_eq!(bounded(b.join()).await, ExitReason::Other("second".into()));
}

#[tokio::test(start_paused = true)]
async fn link_is_refused_for_self_and_for_dead_actors() {
    let w = World::new();
    let a = w.node("a", false);
    let dead = w.node("dead", false);
    let dead_pid = dead.pid();
    dead.actor().stop_wait().await.expect("stop");
    assert!(!w.system.link(a.pid(), a.pid()), "an actor cannot link to itself");
    assert!(!w.system.link(a.pid(), dead_pid), "a dead actor cannot be linked");
    assert!(!w.system.link(dead_pid, a.pid()), "a dead actor cannot link");
    let ar = a.actor();
    assert_eq!(bounded(ar.link_to(a.pid())).await, Ok(false));
    assert_eq!(bounded(ar.link_to(dead_pid)).await, Ok(false));
    // Nothing was linked: a still runs.
    assert!(bounded(ar.ping()).await.is_ok());
}

#[tokio::test(start_paused = true)]
async fn unlink_prevents_propagation() {
    let mut w = World::new();
    let b = w.node("b", true);
    let c = w.node("c", false);
    let (br, cr) = (b.actor(), c.actor());
    // Unlinked through System::unlink (either argument order), then through ctx.unlink.
    for how in 0..3 {
        let a = w.node("a", false);
        assert!(w.system.link(a.pid(), b.pid()));
        assert!(w.system.link(a.pid(), c.pid()));
        match how {
            0 => {
                w.system.unlink(a.pid(), b.pid());
                w.system.unlink(a.pid(), c.pid());
            }
            1 => {
                w.system.unlink(b.pid(), a.pid());
                w.system.unlink(c.pid(), a.pid());
            }
            _ => {
                a.actor().unlink_from(b.pid()).expect("unlink b");
                cr.unlink_from(a.pid()).expect("unlink from c's side");
                assert!(bounded(cr.ping()).await.is_ok());
            }
        }
        a.actor().boom().expect("boom");
        assert_eq!(bounded(a.join()).await, ExitReason::Panic);
        assert!(bounded(br.ping()).await.is_ok());
        assert!(bounded(cr.ping()).await.is_ok(), "c survives: unlinked");
    }
    let seen = w.drain();
    assert!(!seen.iter().any(|s| matches!(s, Seen::Exit { .. })), "no on_exit after unlink: {seen:?}");
}

#[tokio::test(start_paused = true)]
async fn ctx_link_links_from_inside_a_handler() {
    let w = World::new();
    let a = w.node("a", false);
    let b = w.node("b", false);
    assert_eq!(bounded(a.actor().link_to(b.pid())).await, Ok(true));
    b.actor().boom().expect("boom");
    assert_eq!(bounded(b.join()).await, ExitReason::Panic);
    assert_eq!(bounded(a.join()).await, ExitReason::Panic);
}

#[tokio::test(start_paused = true)]
async fn an_exit_cascades_along_a_chain_of_links() {
    let w = World::new();
    let nodes: Vec<_> = (0..4).map(|i| w.node(&format!("n{i}"), false)).collect();
    for pair in nodes.windows(2) {
        assert!(w.system.link(pair[0].pid(), pair[1].pid()));
    }
    let reason = ExitReason::Other("chain".into());
    nodes[3].actor().quit(reason.clone()).expect("quit");
    for n in nodes {
        assert_eq!(bounded(n.join()).await, reason);
    }
}

#[tokio::test(start_paused = true)]
async fn linking_twice_still_signals_once() {
    let mut w = World::new();
    let a = w.node("a", false);
    let b = w.node("b", true);
    let br = b.actor();
    assert!(w.system.link(a.pid(), b.pid()));
    assert!(w.system.link(b.pid(), a.pid()));
    let a_pid = a.pid();
    a.actor().quit(ExitReason::LeaseLost).expect("quit");
    assert_eq!(bounded(a.join()).await, ExitReason::LeaseLost);
    // Let any duplicate arrive, then a round trip as a barrier.
    tokio::time::sleep(Duration::from_secs(1)).await;
    assert!(bounded(br.ping()).await.is_ok());
    let exits: Vec<_> = w.drain().into_iter().filter(|s| matches!(s, Seen::Exit { .. })).collect();
    assert_eq!(exits, vec![Seen::Exit { me: b.pid(), from: a_pid, reason: ExitReason::LeaseLost }]);
}

#[tokio::test(start_paused = true)]
async fn restarts_do_not_fire_links_but_the_final_exit_does() {
    let mut w = World::new();
    let mut events = w.system.subscribe_lifecycle();
    let cfg = SpawnConfig::new("flaky", 16)
        .restart_on_panic(2, Duration::from_millis(10), Duration::from_millis(10))
        .restart_jitter(|| 1.0);
    let a = w.node_with(cfg, false);
    let plain = w.node("plain", false);
    let trapper = w.node("trapper", true);
    assert!(w.system.link(a.pid(), plain.pid()));
    assert!(w.system.link(a.pid(), trapper.pid()));
    let (ar, pr, tr) = (a.actor(), plain.actor(), trapper.actor());

    for _ in 0..2 {
        ar.boom().expect("boom");
        next_event(&mut events, a.pid(), ActorLifecycleEventKind::Restarted).await;
        // Round trips: both linked actors have handled anything a restart sent.
        assert!(bounded(pr.ping()).await.is_ok(), "a restart does not kill linked actors");
        assert!(bounded(tr.ping()).await.is_ok());
        let seen = w.drain();
        assert!(!seen.iter().any(|s| matches!(s, Seen::Exit { .. })), "no on_exit on a restart: {seen:?}");
        assert_eq!(ar.pid(), a.pid());
    }

    // The third panic exceeds max_restarts = 2: the final exit fires the links.
    ar.boom().expect("boom");
    let a_pid = a.pid();
    assert_eq!(bounded(a.join()).await, ExitReason::RestartIntensityExceeded);
    assert_eq!(bounded(plain.join()).await, ExitReason::RestartIntensityExceeded);
    let seen = w.wait_for(|s| matches!(s, Seen::Exit { .. })).await;
    assert_eq!(seen, Seen::Exit { me: trapper.pid(), from: a_pid, reason: ExitReason::RestartIntensityExceeded });
}

#[tokio::test(start_paused = true)]
async fn trap_exit_resets_with_each_incarnation() {
    let w = World::new();
    let mut events = w.system.subscribe_lifecycle();
    let cfg = SpawnConfig::new("a", 16)
        .restart_on_panic(3, Duration::from_millis(10), Duration::from_millis(10))
        .restart_jitter(|| 1.0);
    let a = w.node_with(cfg, false);
    let ar = a.actor();
    ar.trap(true).expect("trap");
    assert_eq!(bounded(ar.trapping()).await, Ok(true));
    ar.boom().expect("boom");
    next_event(&mut events, a.pid(), ActorLifecycleEventKind::Restarted).await;
    assert_eq!(bounded(ar.trapping()).await, Ok(false), "a fresh incarnation does not trap");

    // Not trapping any more: a linked exit kills it (and a non-panic exit is not restarted).
    let b = w.node("b", false);
    assert!(w.system.link(a.pid(), b.pid()));
    b.actor().quit(ExitReason::NodeDown).expect("quit");
    assert_eq!(bounded(b.join()).await, ExitReason::NodeDown);
    assert_eq!(bounded(a.join()).await, ExitReason::NodeDown);
}

#[tokio::test(start_paused = true)]
async fn trap_exit_set_in_on_start_survives_restarts() {
    let mut w = World::new();
    let mut events = w.system.subscribe_lifecycle();
    let cfg = SpawnConfig::new("a", 16)
        .restart_on_panic(3, Duration::from_millis(10), Duration::from_millis(10))
        .restart_jitter(|| 1.0);
    let a = w.node_with(cfg, true);
    let ar = a.actor();
    ar.boom().expect("boom");
    next_event(&mut events, a.pid(), ActorLifecycleEventKind::Restarted).await;
    assert_eq!(bounded(ar.trapping()).await, Ok(true));
    let b = w.node("b", false);
    let b_pid = b.pid();
    assert!(w.system.link(a.pid(), b_pid));
    b.actor().boom().expect("boom");
    assert_eq!(bounded(b.join()).await, ExitReason::Panic);
    let seen = w.wait_for(|s| matches!(s, Seen::Exit { .. })).await;
    assert_eq!(seen, Seen::Exit { me: a.pid(), from: b_pid, reason: ExitReason::Panic });
    assert!(bounded(ar.ping()).await.is_ok());
}
