//! The keyed registry: one actor per key even under concurrent
//! `get_or_spawn`, replacement of stopped actors, `remove`, spawn errors, and
//! the idle reaper (timing on the paused clock, busy actors spared, queued
//! messages drained).

use std::collections::{HashMap, HashSet};
use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use axactor::registry::{Registry, RegistryError};
use axactor::{
    ActorLifecycleEvent, ActorLifecycleEventKind, Context, ExitReason, Pid, SpawnConfig, SpawnError, System, actor,
};
use axactor_tests::{Gate, next_event};
use tokio::sync::{Barrier, broadcast, mpsc};
use tokio::time::Instant;

/// What a [`Session`] reports around its reaping.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Trace {
    /// `from`'s `on_stop` sent a `note` to its peer; `accepted` is whether the tell was accepted.
    Forwarded {
        /// The stopping session.
        from: Pid,
        /// The tell was accepted.
        accepted: bool,
    },
    /// `by` handled a `note` sent by `from` (must not happen once reaped).
    Noted {
        /// The session that handled the note.
        by: Pid,
        /// The session that sent it.
        from: Pid,
    },
}

/// A keyed actor counting its hits.
#[derive(Debug)]
pub struct Session {
    hits: u32,
    peer: Option<SessionRef>,
    log: Option<mpsc::UnboundedSender<Trace>>,
}

impl Session {
    fn fresh() -> Session {
        Session { hits: 0, peer: None, log: None }
    }
}

#[actor]
impl Session {
    #[msg]
    fn hit(&mut self) -> u32 {
        self.hits += 1;
        self.hits
    }

    #[msg]
    fn boom(&mut self) {
        panic!("boom (a panic the test asked for)");
    }

    #[msg]
    async fn hold(&mut self, gate: Gate, entered: mpsc::UnboundedSender<()>) {
        let _ = entered.send(());
        gate.pass().await;
    }

    #[msg]
    fn pair(&mut self, peer: SessionRef, log: mpsc::UnboundedSender<Trace>) {
        self.peer = Some(peer);
        self.log = Some(log);
    }

    #[msg]
    fn note(&mut self, ctx: &mut Context, from: Pid) {
        if let Some(log) = &self.log {
            let _ = log.send(Trace::Noted { by: ctx.pid(), from });
        }
    }

    fn on_stop(&mut self, ctx: &mut Context, _reason: &ExitReason) {
        if let (Some(peer), Some(log)) = (&self.peer, &self.log) {
            let accepted = peer.note(ctx.pid()).is_ok();
            let _ = log.send(Trace::Forwarded { from: ctx.pid(), accepted });
        }
    }
}

type Reg = Registry<String, SessionRef>;
type Events = broadcast::Receiver<ActorLifecycleEvent>;

const IDLE: Duration = Duration::from_secs(1);
const CHECK: Duration = Duration::from_millis(100);

fn cfg() -> SpawnConfig {
    SpawnConfig::new("session", 64)
}

fn key(k: &str) -> String {
    k.to_owned()
}

async fn session(reg: &Reg, k: &str) -> SessionRef {
    bounded(reg.get_or_spawn(key(k), cfg(), Session::fresh)).await.expect("get_or_spawn")
}

/// Bounds a wait (60 s of the possibly paused clock).
async fn bounded<F: Future>(f: F) -> F::Output {
    tokio::time::timeout(Duration::from_secs(60), f).await.expect("timed out waiting")
}

/// A registry with the reaper running, and lifecycle events.
fn reaping() -> (Arc<System>, Reg, Events) {
    let system = Arc::new(System::new());
    let events = system.subscribe_lifecycle();
    let reg = Reg::new(system.clone());
    reg.start_reaper(IDLE, CHECK);
    (system, reg, events)
}

/// Asserts that no actor has stopped so far.
fn assert_nothing_stopped(events: &mut Events) {
    while let Ok(e) = events.try_recv() {
        assert_ne!(e.kind, ActorLifecycleEventKind::Stopped, "{e:?}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_get_or_spawn_gives_one_actor_per_key() {
    const KEYS: usize = 4;
    const TASKS_PER_KEY: usize = 32;
    let system = Arc::new(System::new());
    let reg = Reg::new(system.clone());
    let start = Arc::new(Barrier::new(KEYS * TASKS_PER_KEY));
    let mut tasks = Vec::new();
    for i in 0..KEYS * TASKS_PER_KEY {
        let (reg, start) = (reg.clone(), start.clone());
        let k = format!("key{}", i % KEYS);
        tasks.push(tokio::spawn(async move {
            start.wait().await;
            let r = reg.get_or_spawn(k.clone(), cfg(), Session::fresh).await.expect("get_or_spawn");
            r.hit().await.expect("hit");
            (k, r.pid())
        }));
    }
    let results = tokio::time::timeout(Duration::from_secs(20), async {
        let mut out = Vec::new();
        for t in tasks {
            out.push(t.await.expect("task"));
        }
        out
    })
    .await
    .expect("finished in time");

    let mut by_key = HashMap::<String, HashSet<Pid>>::new();
    for (k, pid) in results {
        by_key.entry(k).or_default().insert(pid);
    }
    assert_eq!(by_key.len(), KEYS);
    for (k, pids) in &by_key {
        assert_eq!(pids.len(), 1, "{k} was served by several actors: {pids:?}");
    }
    let distinct: HashSet<Pid> = by_key.values().flatten().copied().collect();
    assert_eq!(distinct.len(), KEYS, "different keys, different actors");
    assert_eq!(reg.len(), KEYS);
    assert_eq!(system.actor_count(), KEYS, "no extra actor was spawned and dropped");
    for k in by_key.keys() {
        let r = reg.get(k).expect("entry");
        let hits = r.hit().await.expect("hit");
        assert_eq!(hits, u32::try_from(TASKS_PER_KEY + 1).expect("small"), "{k}: every task hit the same actor");
    }
}

#[tokio::test(start_paused = true)]
async fn get_or_spawn_returns_the_running_actor() {
    let system = Arc::new(System::new());
    let reg = Reg::new(system.clone());
    assert!(reg.is_empty());
    assert!(reg.get(&key("a")).is_none());
    let a = session(&reg, "a").await;
    assert_eq!(bounded(a.hit()).await, Ok(1));
    let again = session(&reg, "a").await;
    assert_eq!(again.pid(), a.pid());
    assert_eq!(bounded(again.hit()).await, Ok(2), "same actor, same state");
    let b = session(&reg, "b").await;
    assert_ne!(b.pid(), a.pid());
    assert_eq!(bounded(b.hit()).await, Ok(1));
    assert_eq!(reg.get(&key("a")).map(|r| r.pid()), Some(a.pid()));
    assert_eq!(reg.len(), 2);

    // Clones share the table.
    let clone = reg.clone();
    assert_eq!(session(&clone, "a").await.pid(), a.pid());
    let c = session(&clone, "c").await;
    assert_eq!(reg.get(&key("c")).map(|r| r.pid()), Some(c.pid()));
    assert_eq!(reg.len(), 3);
    assert_eq!(system.actor_count(), 3);
}

#[tokio::test(start_paused = true)]
async fn a_stopped_actor_is_replaced_by_a_fresh_one() {
    let reg = Reg::new(Arc::new(System::new()));
    let a = session(&reg, "a").await;
    assert_eq!(bounded(a.hit()).await, Ok(1));
    a.stop_wait().await.expect("stop");
    assert!(reg.get(&key("a")).is_none(), "a stopped actor is not returned");
    let b = session(&reg, "a").await;
    assert_ne!(b.pid(), a.pid());
    assert_eq!(bounded(b.hit()).await, Ok(1), "fresh state");
    assert_eq!(reg.len(), 1);

    // Same after a panic (no restart policy: the actor ends).
    b.boom().expect("boom");
    assert_eq!(bounded(b.as_local_ref().wait_stopped()).await, ExitReason::Panic);
    let c = session(&reg, "a").await;
    assert!(c.pid() != a.pid() && c.pid() != b.pid());
    assert_eq!(bounded(c.hit()).await, Ok(1));
    assert_eq!(reg.len(), 1);
}

#[tokio::test(start_paused = true)]
async fn remove_stops_the_actor() {
    let reg = Reg::new(Arc::new(System::new()));
    let a = session(&reg, "a").await;
    assert!(reg.remove(&key("a")));
    assert!(!reg.remove(&key("a")));
    assert_eq!(bounded(a.as_local_ref().wait_stopped()).await, ExitReason::Normal);
    assert!(reg.get(&key("a")).is_none());
    assert!(reg.is_empty());
    let b = session(&reg, "a").await;
    assert_ne!(b.pid(), a.pid());
}

#[tokio::test(start_paused = true)]
async fn spawn_errors_are_reported() {
    let system = Arc::new(System::new());
    let reg = Reg::new(system.clone());
    let bad = reg.get_or_spawn(key("a"), SpawnConfig::new("bad", 0), Session::fresh).await;
    assert!(matches!(bad, Err(RegistryError::Spawn(SpawnError::InvalidConfig(_)))), "{bad:?}");
    assert!(reg.is_empty());
    bounded(system.shutdown_graceful(Duration::from_secs(1))).await;
    let late = reg.get_or_spawn(key("a"), cfg(), Session::fresh).await;
    assert!(matches!(late, Err(RegistryError::Spawn(SpawnError::ShuttingDown))), "{late:?}");
    assert!(reg.is_empty());
}

#[tokio::test(start_paused = true)]
async fn the_reaper_stops_an_idle_actor_after_the_timeout() {
    let (system, reg, mut events) = reaping();
    let a = session(&reg, "a").await;
    assert_eq!(bounded(a.hit()).await, Ok(1));
    let last_message = Instant::now();
    let stopped = next_event(&mut events, a.pid(), ActorLifecycleEventKind::Stopped).await;
    let idle = last_message.elapsed();
    assert_eq!(stopped.reason, Some(ExitReason::Normal));
    assert!(idle >= IDLE && idle <= IDLE + 2 * CHECK, "reaped after {idle:?} idle");
    assert!(a.is_closed());
    assert_eq!(reg.len(), 0, "the reaped entry is gone");
    assert!(reg.get(&key("a")).is_none());
    assert_eq!(system.actor_count(), 0);

    let b = session(&reg, "a").await;
    assert_ne!(b.pid(), a.pid());
    assert_eq!(bounded(b.hit()).await, Ok(1), "a fresh actor");
}

#[tokio::test(start_paused = true)]
async fn the_reaper_spares_an_actor_that_keeps_getting_messages() {
    let (_system, reg, mut events) = reaping();
    let idle = session(&reg, "idle").await;
    let busy = session(&reg, "busy").await;
    // Messages every 300 ms, off the reaper's 100 ms grid: at every check the
    // actor is idle with an empty mailbox, and only its activity shows it is in use.
    let mut next = Instant::now() + Duration::from_millis(350);
    for i in 1..=10 {
        tokio::time::sleep_until(next).await;
        next += Duration::from_millis(300);
        let r = session(&reg, "busy").await;
        assert_eq!(r.pid(), busy.pid(), "still the first actor after {i} messages");
        assert_eq!(bounded(r.hit()).await, Ok(i));
    }
    // 3 s in: the idle one was reaped, the busy one was not.
    let mut stopped = Vec::new();
    while let Ok(e) = events.try_recv() {
        if e.kind == ActorLifecycleEventKind::Stopped {
            stopped.push((e.pid, e.reason));
        }
    }
    assert_eq!(stopped, vec![(idle.pid(), Some(ExitReason::Normal))]);
    assert!(!busy.is_closed());
    assert_eq!(reg.len(), 1);

    // Once the messages stop, it is reaped too.
    let last_message = Instant::now();
    next_event(&mut events, busy.pid(), ActorLifecycleEventKind::Stopped).await;
    let idle_for = last_message.elapsed();
    assert!(idle_for >= IDLE && idle_for <= IDLE + 2 * CHECK, "reaped after {idle_for:?} idle");
    assert!(reg.is_empty());
}

#[tokio::test(start_paused = true)]
async fn the_reaper_spares_an_actor_inside_a_long_handler() {
    let (_system, reg, mut events) = reaping();
    let a = session(&reg, "a").await;
    let gate = Gate::new();
    let (entered_tx, mut entered) = mpsc::unbounded_channel();
    a.hold(gate.clone(), entered_tx).expect("hold");
    bounded(entered.recv()).await.expect("entered the handler");
    tokio::time::sleep(Duration::from_secs(5)).await;
    assert_nothing_stopped(&mut events);
    assert!(!a.is_closed());
    assert_eq!(reg.get(&key("a")).map(|r| r.pid()), Some(a.pid()));
    assert_eq!(reg.len(), 1);

    gate.open(1);
    let released = Instant::now();
    next_event(&mut events, a.pid(), ActorLifecycleEventKind::Stopped).await;
    let idle_for = released.elapsed();
    assert!(idle_for >= IDLE && idle_for <= IDLE + 2 * CHECK, "reaped after {idle_for:?} idle");
    assert!(reg.is_empty());
}

#[tokio::test(start_paused = true)]
async fn a_reaped_actor_accepts_nothing_new() {
    let (_system, reg, mut events) = reaping();
    let x = session(&reg, "x").await;
    let y = session(&reg, "y").await;
    let (log_tx, mut log) = mpsc::unbounded_channel();
    x.pair(y.clone(), log_tx.clone()).expect("pair x");
    y.pair(x.clone(), log_tx).expect("pair y");
    // Both go idle at the same moment, so one sweep reaps both: the sweep
    // closes both mailboxes before either runs `on_stop`, so each one's
    // parting note to the other is refused.
    let mut traces = Vec::new();
    for _ in 0..2 {
        traces.push(bounded(log.recv()).await.expect("trace"));
    }
    for t in &traces {
        assert!(matches!(t, Trace::Forwarded { accepted: false, .. }), "{traces:?}");
    }
    for r in [&x, &y] {
        assert_eq!(bounded(r.as_local_ref().wait_stopped()).await, ExitReason::Normal);
    }
    let mut stopped = Vec::new();
    while let Ok(e) = events.try_recv() {
        if e.kind == ActorLifecycleEventKind::Stopped {
            assert_eq!(e.reason, Some(ExitReason::Normal));
            stopped.push(e.pid);
        }
    }
    stopped.sort();
    assert_eq!(stopped, vec![x.pid(), y.pid()]);
    assert!(reg.is_empty());
    let fresh = session(&reg, "x").await;
    assert_ne!(fresh.pid(), x.pid());
}
