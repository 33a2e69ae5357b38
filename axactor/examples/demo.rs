//! A tour of the local runtime: asks and tells, a restart after a panic,
//! a monitor, a keyed registry and graceful shutdown.
//!
//! Run with `cargo run -p axactor --example demo`.

use std::sync::Arc;
use std::time::Duration;

use axactor::registry::Registry;
use axactor::{ActorLifecycleEventKind, Context, ExitReason, MonitorId, Pid, SpawnConfig, System, actor};

/// A counter that panics when asked to divide by zero.
#[derive(Debug)]
pub struct Counter {
    n: i64,
}

#[actor]
impl Counter {
    #[msg]
    fn add(&mut self, by: i64) -> i64 {
        self.n += by;
        self.n
    }

    #[msg]
    fn divide(&mut self, by: i64) -> i64 {
        // Deliberately panics on zero: the runtime catches it and restarts.
        self.n /= by;
        self.n
    }

    async fn on_start(&mut self, ctx: &mut Context) {
        println!("  counter {} starting (restart #{})", ctx.pid(), ctx.restart_count());
    }
}

/// Watches other actors and reports when they go down.
#[derive(Debug)]
pub struct Watcher;

#[actor]
impl Watcher {
    #[msg]
    fn watch(&mut self, ctx: &mut Context, target: Pid) -> bool {
        ctx.monitor(target).is_some()
    }

    async fn on_down(&mut self, _ctx: &mut Context, _id: MonitorId, pid: Pid, reason: ExitReason) {
        println!("  watcher: {pid} is down ({reason})");
    }
}

#[tokio::main]
async fn main() {
    // A panic is reported by the runtime's tracing log; keep the demo output short.
    std::panic::set_hook(Box::new(|_| {}));
    let system = Arc::new(System::new());
    let mut events = system.subscribe_lifecycle();

    println!("1. asks and tells");
    let cfg =
        SpawnConfig::new("counter", 64).restart_on_panic(3, Duration::from_millis(10), Duration::from_millis(200));
    let counter = system.spawn_with(|| Counter { n: 0 }, cfg).expect("inside a runtime").actor();
    println!("  add(5) = {:?}", counter.add(5).await);
    println!("  add(2) = {:?}", counter.add(2).await);

    println!("2. a panicking handler: the ask is canceled, the actor restarts with fresh state");
    println!("  divide(0) = {:?}", counter.divide(0).await);
    while let Ok(e) = events.recv().await {
        if e.kind == ActorLifecycleEventKind::Restarted {
            break;
        }
    }
    println!("  add(1) = {:?} (same ref, new incarnation)", counter.add(1).await);

    println!("3. monitors");
    let watcher = system.spawn_with(|| Watcher, SpawnConfig::new("watcher", 16)).expect("inside a runtime").actor();
    println!("  watch(counter) = {:?}", watcher.watch(counter.pid()).await);
    counter.stop_wait().await.expect("counter was running");

    println!("4. a keyed registry");
    let sessions: Registry<String, CounterRef> = Registry::new(system.clone());
    for user in ["alice", "bob", "alice"] {
        let r = sessions
            .get_or_spawn(user.to_string(), SpawnConfig::new("session", 16), || Counter { n: 0 })
            .await
            .expect("inside a runtime");
        println!("  {user}: {:?}", r.add(1).await);
    }

    println!("5. graceful shutdown");
    system.shutdown_graceful(Duration::from_secs(1)).await;
    println!("  actors left: {}", system.actor_count());
}
