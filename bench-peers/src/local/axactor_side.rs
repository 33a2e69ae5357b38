//! axactor: `#[actor]` with a generated typed ref.

use std::any::Any;
use std::sync::Arc;
use std::time::Instant;

use axactor::{SpawnConfig, System, actor};

use super::{CAP, Count, Done, Local, Sizes, percentiles};

/// The counter.
#[derive(Debug)]
pub struct Counter(Count);

#[actor]
impl Counter {
    #[msg]
    fn inc(&mut self) {
        self.0.inc()
    }
    #[msg]
    fn get(&mut self) -> u64 {
        self.0.get()
    }
}

fn spawn(system: &System, cfg: &SpawnConfig, done: Option<Arc<Done>>) -> CounterRef {
    let h = system.spawn_with(move || Counter(Count::new(done.clone())), cfg.clone()).expect("spawn");
    h.actor()
}

/// One round.
pub async fn run(s: Sizes) -> Local {
    let system = System::new();
    let cfg = SpawnConfig::new("counter", CAP);
    let done = Done::new(s.tells);
    let r = spawn(&system, &cfg, Some(Arc::clone(&done)));
    let t = Instant::now();
    for _ in 0..s.tells {
        r.inc_wait().await.expect("actor alive");
    }
    done.wait().await;
    let tell_ns = t.elapsed().as_nanos() as f64 / s.tells as f64;

    let r = spawn(&system, &cfg, None);
    for _ in 0..s.asks / 10 {
        r.get_wait().await.expect("reply");
    }
    let mut samples = Vec::with_capacity(s.asks);
    for _ in 0..s.asks {
        let t = Instant::now();
        std::hint::black_box(r.get_wait().await.expect("reply"));
        samples.push(t.elapsed());
    }
    let (ask_p50_ns, ask_p99_ns) = percentiles(samples);

    let mut refs = Vec::with_capacity(s.spawns);
    let t = Instant::now();
    for _ in 0..s.spawns {
        refs.push(spawn(&system, &cfg, None));
    }
    let spawn_ns = t.elapsed().as_nanos() as f64 / s.spawns as f64;
    drop(refs);
    system.shutdown_graceful(std::time::Duration::from_secs(10)).await;
    Local { tell_ns, ask_p50_ns, ask_p99_ns, spawn_ns }
}

/// `n` idle actors, each having answered one ask.
pub async fn idle(n: usize) -> Box<dyn Any> {
    let system = System::new();
    let cfg = SpawnConfig::new("counter", CAP);
    let mut refs = Vec::with_capacity(n);
    for _ in 0..n {
        let r = spawn(&system, &cfg, None);
        r.get_wait().await.expect("reply");
        refs.push(r);
    }
    Box::new((refs, system))
}
