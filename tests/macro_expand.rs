//! Exercises everything `#[actor]` generates through the public API: the
//! message enum, every `XRef` method (tells, asks and their `_wait` /
//! `_timeout` / `_wait_timeout` variants, `pid`, `stop`, `stop_wait`,
//! `mailbox_len`, `is_closed`, `as_local_ref`), handler dispatch (sync and
//! async, with and without `Context`) and the lifecycle hooks (sync and async,
//! with and without `Context`).
//!
//! The lints below are denied so that generated code that would warn in a
//! user's crate (missing docs, unreachable `pub`, private types in `pub`
//! items, dead code) fails this test.
#![deny(
    missing_docs,
    missing_debug_implementations,
    unreachable_pub,
    private_interfaces,
    private_bounds,
    dead_code,
    unused
)]

use std::sync::Arc;
use std::time::Duration;

use axactor::{AskError, Context, ExitReason, LocalRef, MonitorId, Pid, SpawnConfig, System, TellError, actor};
use tokio::sync::{mpsc, oneshot};

/// A counter exercising tells, asks, async handlers and the context.
#[derive(Debug, Default)]
pub struct Counter {
    n: i64,
}

/// Not `Debug`, not `Clone`: message arguments need neither.
struct Opaque(i64);

#[actor]
impl Counter {
    /// A fresh counter (a plain method: stays a plain method).
    pub fn new() -> Self {
        Self { n: 0 }
    }

    /// Adds one.
    #[msg]
    fn inc(&mut self) {
        self.n += 1;
    }

    /// Adds `by` and returns the new value.
    #[msg]
    fn add(&mut self, by: i64) -> i64 {
        self.n += by;
        self.n
    }

    #[msg]
    fn get_value(&mut self) -> i64 {
        self.n
    }

    /// An explicit `-> ()` is a tell; a `mut` argument is fine.
    #[msg]
    #[allow(clippy::unused_unit)]
    fn set(&mut self, mut v: i64) -> () {
        v += 0;
        self.n = v;
    }

    /// An argument that is neither `Debug` nor `Clone`.
    #[msg]
    fn add_opaque(&mut self, o: Opaque) -> i64 {
        self.n += o.0;
        self.n
    }

    /// `Self` in argument and return types means the actor type.
    #[msg]
    fn replace(&mut self, with: Self) -> Self {
        std::mem::replace(self, with)
    }

    /// A raw identifier as a message name.
    #[msg]
    fn r#type(&mut self) -> &'static str {
        "counter"
    }

    /// Sync handler with the context.
    #[msg]
    fn whoami(&mut self, ctx: &mut Context) -> Pid {
        ctx.pid()
    }

    /// Async tell with the context: sleeps, then maybe stops the actor.
    #[msg]
    async fn slow(&mut self, ctx: &mut Context, ms: u64, stop_after: bool) {
        tokio::time::sleep(Duration::from_millis(ms)).await;
        self.n += 1;
        if stop_after {
            ctx.stop();
        }
    }

    /// Async ask without the context.
    #[msg]
    async fn slow_get(&mut self, ms: u64) -> i64 {
        tokio::time::sleep(Duration::from_millis(ms)).await;
        self.n
    }

    /// Async ask with the context.
    #[msg]
    async fn name_after(&mut self, ctx: &mut Context, ms: u64) -> String {
        tokio::time::sleep(Duration::from_millis(ms)).await;
        ctx.name().to_owned()
    }

    /// Blocks the actor until `gate` fires, after signalling `started`.
    #[msg]
    async fn block(&mut self, started: oneshot::Sender<()>, gate: oneshot::Receiver<()>) {
        let _ = started.send(());
        let _ = gate.await;
    }

    /// Argument names that look like the generated code's own names.
    #[msg]
    #[allow(clippy::too_many_arguments)]
    fn shadow(&mut self, c: &mut Context, ctx: i64, __msg: i64, __ctx: i64, __a0: i64, inner: i64, f: i64) -> i64 {
        let _ = c.pid();
        self.n = ctx + __msg + __ctx + __a0 + inner + f;
        self.n
    }

    /// Compiled out: no variant, no arm, no `CounterRef` methods.
    #[cfg(not(test))]
    #[msg]
    fn never(&mut self, x: NoSuchType) {}

    /// Compiled in.
    #[cfg(test)]
    #[msg]
    fn always(&mut self) -> bool {
        true
    }

    /// Panics, so the ask is canceled.
    #[msg]
    fn boom(&mut self) -> u8 {
        panic!("boom (expected by the test)")
    }
}

fn spawn_counter(system: &System, name: &str, capacity: usize) -> CounterRef {
    match system.spawn_with(Counter::new, SpawnConfig::new(name, capacity)) {
        Ok(h) => h.actor(),
        Err(e) => panic!("spawn failed: {e}"),
    }
}

fn assert_send<T: Send>(t: T) -> T {
    t
}

#[test]
fn plain_methods_stay_inherent_methods() {
    let mut c = Counter::new();
    c.inc();
    assert_eq!(c.add(2), 3);
    assert_eq!(c.get_value(), 3);
    c.set(7);
    assert_eq!(c.add_opaque(Opaque(1)), 8);
    assert_eq!(c.replace(Counter { n: 1 }).n, 8);
    assert_eq!(c.r#type(), "counter");
}

#[test]
fn message_enum_shape_and_debug() {
    let (tx, _rx) = axactor::ReplyTo::<i64>::channel();
    let (tx2, _rx2) = axactor::ReplyTo::<i64>::channel();
    let msgs = [
        CounterMsg::Inc {},
        CounterMsg::Add { by: 1, __reply: tx },
        CounterMsg::Set { v: 3 },
        CounterMsg::AddOpaque { o: Opaque(1), __reply: tx2 },
        CounterMsg::Slow { ms: 1, stop_after: false },
    ];
    let names: Vec<String> = msgs.iter().map(|m| format!("{m:?}")).collect();
    assert_eq!(names, ["Inc", "Add", "Set", "AddOpaque", "Slow"]);
    let (tx, _rx) = axactor::ReplyTo::<&'static str>::channel();
    assert_eq!(format!("{:?}", CounterMsg::Type { __reply: tx }), "Type");
    let (tx, _rx) = axactor::ReplyTo::<i64>::channel();
    assert_eq!(format!("{:?}", CounterMsg::GetValue { __reply: tx }), "GetValue");
}

#[tokio::test]
async fn tells_and_asks() {
    let system = System::new();
    let r = spawn_counter(&system, "counter", 16);

    r.inc().expect("inc");
    r.inc_wait().await.expect("inc_wait");
    assert_eq!(r.add(3).await, Ok(5));
    assert_eq!(r.add_wait(1).await, Ok(6));
    assert_eq!(r.add_timeout(1, Duration::from_secs(5)).await, Ok(7));
    assert_eq!(r.add_wait_timeout(1, Duration::from_secs(5)).await, Ok(8));
    assert_eq!(r.get_value().await, Ok(8));
    assert_eq!(r.get_value_wait().await, Ok(8));
    assert_eq!(r.get_value_timeout(Duration::from_secs(5)).await, Ok(8));
    assert_eq!(r.get_value_wait_timeout(Duration::from_secs(5)).await, Ok(8));

    r.set(10).expect("set");
    r.set_wait(20).await.expect("set_wait");
    assert_eq!(r.add_opaque(Opaque(2)).await, Ok(22));
    assert_eq!(r.add_opaque_wait(Opaque(2)).await, Ok(24));
    assert_eq!(r.add_opaque_timeout(Opaque(2), Duration::from_secs(5)).await, Ok(26));
    assert_eq!(r.add_opaque_wait_timeout(Opaque(2), Duration::from_secs(5)).await, Ok(28));

    let old = r.replace(Counter { n: 100 }).await.expect("replace");
    assert_eq!(old.n, 28);
    assert_eq!(r.replace_wait(Counter { n: 1 }).await.map(|c| c.n), Ok(100));
    assert_eq!(r.replace_timeout(Counter { n: 2 }, Duration::from_secs(5)).await.map(|c| c.n), Ok(1));
    assert_eq!(r.replace_wait_timeout(Counter { n: 3 }, Duration::from_secs(5)).await.map(|c| c.n), Ok(2));

    assert_eq!(r.r#type().await, Ok("counter"));
    assert_eq!(r.type_wait().await, Ok("counter"));
    assert_eq!(r.type_timeout(Duration::from_secs(5)).await, Ok("counter"));
    assert_eq!(r.type_wait_timeout(Duration::from_secs(5)).await, Ok("counter"));

    // Argument names cannot capture the generated code's names.
    assert_eq!(r.shadow(1, 2, 3, 4, 5, 6).await, Ok(21));
    assert_eq!(r.shadow_wait(1, 1, 1, 1, 1, 1).await, Ok(6));
    assert_eq!(r.shadow_timeout(1, 1, 1, 1, 1, 2, Duration::from_secs(5)).await, Ok(7));
    assert_eq!(r.shadow_wait_timeout(1, 1, 1, 1, 1, 3, Duration::from_secs(5)).await, Ok(8));
    assert_eq!(r.always().await, Ok(true));
    assert_eq!(r.always_wait().await, Ok(true));
    assert_eq!(r.always_timeout(Duration::from_secs(5)).await, Ok(true));
    assert_eq!(r.always_wait_timeout(Duration::from_secs(5)).await, Ok(true));
    r.set(3).expect("set");

    // Handlers taking the context get this actor's context.
    let pid = r.pid();
    assert_eq!(r.whoami().await, Ok(pid));
    assert_eq!(r.whoami_wait().await, Ok(pid));
    assert_eq!(r.whoami_timeout(Duration::from_secs(5)).await, Ok(pid));
    assert_eq!(r.whoami_wait_timeout(Duration::from_secs(5)).await, Ok(pid));

    // Async handlers, with and without the context.
    r.slow(1, false).expect("slow");
    r.slow_wait(1, false).await.expect("slow_wait");
    assert_eq!(r.slow_get(1).await, Ok(5));
    assert_eq!(r.slow_get_wait(1).await, Ok(5));
    assert_eq!(r.slow_get_timeout(1, Duration::from_secs(5)).await, Ok(5));
    assert_eq!(r.slow_get_wait_timeout(1, Duration::from_secs(5)).await, Ok(5));
    assert_eq!(r.name_after(1).await.as_deref(), Ok("counter"));
    assert_eq!(r.name_after_wait(1).await.as_deref(), Ok("counter"));
    assert_eq!(r.name_after_timeout(1, Duration::from_secs(5)).await.as_deref(), Ok("counter"));
    assert_eq!(r.name_after_wait_timeout(1, Duration::from_secs(5)).await.as_deref(), Ok("counter"));

    // The handle's own methods.
    let clone = r.clone();
    assert_eq!(clone.pid(), pid);
    assert!(format!("{r:?}").starts_with("CounterRef"), "{r:?}");
    let local: LocalRef<CounterMsg> = r.as_local_ref();
    assert_eq!(local.pid(), pid);
    assert_eq!(local.ask(|__reply| CounterMsg::GetValue { __reply }).await, Ok(5));
    let again = CounterRef::from(local);
    assert_eq!(again.add(1).await, Ok(6));
    assert_eq!(r.mailbox_len(), 0);
    assert!(!r.is_closed());

    // A handler can stop its actor through the context.
    r.slow_wait(1, true).await.expect("slow_wait");
    r.as_local_ref().wait_stopped().await;
    assert!(r.is_closed());
    assert_eq!(r.inc(), Err(TellError::Closed));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn generated_futures_and_handles_are_send() {
    fn send_sync_clone<T: Send + Sync + Clone + 'static>() {}
    send_sync_clone::<CounterRef>();
    let system = System::new();
    let r = spawn_counter(&system, "send", 4);
    assert_eq!(assert_send(r.add(1)).await, Ok(1));
    assert_eq!(assert_send(r.add_wait_timeout(1, Duration::from_secs(1))).await, Ok(2));
    assert_send(r.inc_wait()).await.expect("inc_wait");
    assert_send(r.name_after(0)).await.expect("name_after");
    // Also from a task spawned on the multi-thread runtime.
    let r2 = r.clone();
    let task = tokio::spawn(async move { r2.slow_get_wait(0).await });
    assert_eq!(task.await.expect("join"), Ok(3));
    assert_send(r.stop_wait()).await.expect("stop_wait");
}

#[tokio::test]
async fn full_mailbox_and_wait_variants() {
    let system = System::new();
    let r = spawn_counter(&system, "full", 1);

    // Park the actor inside a handler so nothing is dequeued.
    let (started_tx, started_rx) = oneshot::channel();
    let (gate_tx, gate_rx) = oneshot::channel();
    r.block(started_tx, gate_rx).expect("block");
    started_rx.await.expect("started");

    r.inc().expect("fills the only slot");
    assert_eq!(r.mailbox_len(), 1);
    assert_eq!(r.inc(), Err(TellError::Full));
    assert_eq!(r.add(1).await, Err(AskError::Full));
    assert_eq!(r.add_timeout(1, Duration::from_secs(5)).await, Err(AskError::Full));

    // `_wait` variants wait for space instead.
    let waiting = {
        let r = r.clone();
        tokio::spawn(async move {
            r.inc_wait().await.expect("inc_wait");
            r.add_wait(10).await
        })
    };
    tokio::time::sleep(Duration::from_millis(20)).await;
    assert!(!waiting.is_finished());
    gate_tx.send(()).expect("gate");
    assert_eq!(waiting.await.expect("join"), Ok(12));
}

#[tokio::test(start_paused = true)]
async fn timeouts() {
    let system = System::new();
    let r = spawn_counter(&system, "timeouts", 4);
    assert_eq!(r.slow_get_timeout(1_000, Duration::from_millis(10)).await, Err(AskError::Timeout));
    assert_eq!(r.slow_get_wait_timeout(1_000, Duration::from_millis(10)).await, Err(AskError::Timeout));
    assert_eq!(r.name_after_timeout(1_000, Duration::from_millis(10)).await, Err(AskError::Timeout));
    // Both requests still ran.
    assert_eq!(r.slow_get_wait_timeout(0, Duration::from_secs(60)).await, Ok(0));
}

#[tokio::test]
async fn stop_closed_and_canceled() {
    let system = System::new();
    let r = spawn_counter(&system, "stop", 4);
    assert_eq!(r.boom().await, Err(AskError::Canceled));
    assert_eq!(r.as_local_ref().wait_stopped().await, ExitReason::Panic);

    let r = spawn_counter(&system, "stop2", 4);
    r.stop().expect("stop");
    r.as_local_ref().wait_stopped().await;
    assert!(r.is_closed());
    assert_eq!(r.stop(), Err(TellError::Closed));
    assert_eq!(r.inc_wait().await, Err(TellError::Closed));
    assert_eq!(r.add(1).await, Err(AskError::Closed));
    assert_eq!(r.add_wait(1).await, Err(AskError::Closed));

    let r = spawn_counter(&system, "stop3", 4);
    r.stop_wait().await.expect("stop_wait");
    assert!(r.is_closed());
    assert_eq!(r.stop_wait().await, Err(TellError::Closed));
}

// ---------------------------------------------------------------------------
// Lifecycle hooks: every hook, sync and async, with and without the context.
// ---------------------------------------------------------------------------

type Events = mpsc::UnboundedSender<String>;

/// Async `on_start` with ctx, sync `on_stop` without, async `on_exit`
/// without, sync `on_down` with.
#[derive(Debug)]
pub struct HooksA {
    events: Events,
}

#[actor]
impl HooksA {
    async fn on_start(&mut self, ctx: &mut Context) {
        ctx.trap_exit(true);
        let _ = self.events.send(format!("A start trap={}", ctx.is_trapping_exits()));
    }

    fn on_stop(&mut self, reason: &ExitReason) {
        let _ = self.events.send(format!("A stop {reason}"));
    }

    async fn on_exit(&mut self, _from: Pid, reason: ExitReason) {
        tokio::task::yield_now().await;
        let _ = self.events.send(format!("A exit {reason}"));
    }

    fn on_down(&mut self, ctx: &mut Context, _id: MonitorId, _pid: Pid, reason: ExitReason) {
        let _ = self.events.send(format!("A down {reason} self={}", ctx.name()));
    }

    /// Links to and monitors `other`.
    #[msg]
    fn watch(&mut self, ctx: &mut Context, other: Pid) -> bool {
        ctx.link(other) && ctx.monitor(other).is_some()
    }
}

/// Sync `on_start` without ctx, async `on_stop` with, sync `on_exit` with,
/// async `on_down` without.
#[derive(Debug)]
pub struct HooksB {
    events: Events,
}

#[actor]
impl HooksB {
    fn on_start(&mut self) {
        let _ = self.events.send("B start".to_owned());
    }

    async fn on_stop(&mut self, ctx: &mut Context, reason: &ExitReason) {
        tokio::task::yield_now().await;
        let _ = self.events.send(format!("B stop {reason} self={}", ctx.name()));
    }

    fn on_exit(&mut self, ctx: &mut Context, _from: Pid, reason: ExitReason) {
        let _ = self.events.send(format!("B exit {reason} self={}", ctx.name()));
    }

    async fn on_down(&mut self, _id: MonitorId, _pid: Pid, reason: ExitReason) {
        tokio::task::yield_now().await;
        let _ = self.events.send(format!("B down {reason}"));
    }

    /// Traps exits, then links to and monitors `other`.
    #[msg]
    async fn watch(&mut self, ctx: &mut Context, other: Pid) -> bool {
        ctx.trap_exit(true);
        ctx.link(other) && ctx.monitor(other).is_some()
    }
}

/// An actor that exits abnormally on request.
#[derive(Debug)]
pub struct Target;

#[actor]
impl Target {
    /// Stops with an application-defined reason.
    #[msg]
    fn die(&mut self, ctx: &mut Context) {
        ctx.stop_with_exit(ExitReason::Other("bye".to_owned()));
    }
}

async fn next_event(rx: &mut mpsc::UnboundedReceiver<String>) -> String {
    match tokio::time::timeout(Duration::from_secs(5), rx.recv()).await {
        Ok(Some(e)) => e,
        other => panic!("no event: {other:?}"),
    }
}

#[tokio::test]
async fn lifecycle_hooks() {
    let system = Arc::new(System::new());
    let (tx, mut rx) = mpsc::unbounded_channel();
    let cfg = |name: &str| SpawnConfig::new(name, 8);

    let a = system.spawn(HooksA { events: tx.clone() }, cfg("a")).expect("spawn a").actor();
    assert_eq!(next_event(&mut rx).await, "A start trap=true");
    let b = system.spawn(HooksB { events: tx.clone() }, cfg("b")).expect("spawn b").actor();
    assert_eq!(next_event(&mut rx).await, "B start");

    for (name, watch) in [("ta", true), ("tb", false)] {
        let t: TargetRef = system.spawn(Target, cfg(name)).expect("spawn target").actor();
        if watch {
            assert_eq!(a.watch(t.pid()).await, Ok(true));
        } else {
            assert_eq!(b.watch(t.pid()).await, Ok(true));
        }
        t.die().expect("die");
        let mut got = vec![next_event(&mut rx).await, next_event(&mut rx).await];
        got.sort();
        if watch {
            assert_eq!(got, ["A down bye self=a", "A exit bye"]);
        } else {
            assert_eq!(got, ["B down bye", "B exit bye self=b"]);
        }
    }

    a.stop_wait().await.expect("stop a");
    assert_eq!(next_event(&mut rx).await, "A stop normal");
    b.stop_wait().await.expect("stop b");
    assert_eq!(next_event(&mut rx).await, "B stop normal self=b");
}

/// Actors in a private module, with private argument and reply types, must
/// compile without `unreachable_pub` / `private_interfaces` warnings.
mod private {
    use axactor::actor;

    struct Secret(u8);

    pub(crate) struct Hidden;

    #[actor]
    impl Hidden {
        #[msg]
        fn peek(&mut self, s: Secret) -> Secret {
            s
        }
    }

    pub(crate) async fn roundtrip(system: &axactor::System) -> u8 {
        let h = system.spawn(Hidden, axactor::SpawnConfig::new("hidden", 1)).expect("spawn");
        h.actor().peek(Secret(9)).await.map(|s| s.0).unwrap_or(0)
    }
}

#[tokio::test]
async fn private_actor_in_module() {
    assert_eq!(private::roundtrip(&System::new()).await, 9);
}

/// An actor with no messages and no hooks still gets a (useless) ref.
#[derive(Debug)]
pub struct Idle;

#[actor]
impl Idle {}

#[tokio::test]
async fn empty_actor() {
    let system = System::new();
    let r: IdleRef = system.spawn(Idle, SpawnConfig::new("idle", 1)).expect("spawn").actor();
    assert!(!r.is_closed());
    r.stop_wait().await.expect("stop_wait");
    assert!(r.is_closed());
}
