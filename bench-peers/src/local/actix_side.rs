//! actix: an `Actor` with a `Handler` per message, on actix's own system
//! (one thread: actix runs each arbiter on a single-threaded runtime, so it
//! pays no cross-thread wake-ups here while the Tokio sides run on 2
//! workers). Tells are `do_send` (actix's waiting `send` waits for the
//! handler's result, i.e. it is an ask), asks `send(..).await`.

use std::sync::Arc;
use std::time::Instant;

use actix::prelude::*;

use super::{CAP, Count, Done, Local, Sizes, percentiles};

/// The counter actor.
#[derive(Debug)]
pub struct Counter(Count);

impl Actor for Counter {
    type Context = Context<Self>;

    fn started(&mut self, ctx: &mut Context<Self>) {
        ctx.set_mailbox_capacity(CAP);
    }
}

/// A tell.
#[derive(Debug, Message)]
#[rtype(result = "()")]
pub struct Inc;

/// An ask.
#[derive(Debug, Message)]
#[rtype(result = "u64")]
pub struct Get;

impl Handler<Inc> for Counter {
    type Result = ();
    fn handle(&mut self, _: Inc, _: &mut Context<Self>) {
        self.0.inc()
    }
}

impl Handler<Get> for Counter {
    type Result = u64;
    fn handle(&mut self, _: Get, _: &mut Context<Self>) -> u64 {
        self.0.get()
    }
}

fn spawn(done: Option<Arc<Done>>) -> Addr<Counter> {
    Counter(Count::new(done)).start()
}

/// One round, on a fresh actix system.
pub fn run(s: Sizes) -> Local {
    System::new().block_on(async move {
        let done = Done::new(s.tells);
        let r = spawn(Some(Arc::clone(&done)));
        let t = Instant::now();
        for _ in 0..s.tells {
            r.do_send(Inc);
        }
        done.wait().await;
        let tell_ns = t.elapsed().as_nanos() as f64 / s.tells as f64;

        let r = spawn(None);
        for _ in 0..s.asks / 10 {
            r.send(Get).await.expect("reply");
        }
        let mut samples = Vec::with_capacity(s.asks);
        for _ in 0..s.asks {
            let t = Instant::now();
            std::hint::black_box(r.send(Get).await.expect("reply"));
            samples.push(t.elapsed());
        }
        let (ask_p50_ns, ask_p99_ns) = percentiles(samples);

        let mut refs = Vec::with_capacity(s.spawns);
        let t = Instant::now();
        for _ in 0..s.spawns {
            refs.push(spawn(None));
        }
        let spawn_ns = t.elapsed().as_nanos() as f64 / s.spawns as f64;
        drop(refs);
        Local { tell_ns, ask_p50_ns, ask_p99_ns, spawn_ns }
    })
}

/// In this (child) process: `n` idle actors, each having answered one
/// ask; (net heap bytes, RSS growth bytes) per actor.
pub fn idle(n: usize) -> (f64, f64) {
    System::new().block_on(async move {
        let (heap0, rss0) = (crate::heap_net(), crate::rss_bytes());
        let mut refs = Vec::with_capacity(n);
        for _ in 0..n {
            let r = spawn(None);
            r.send(Get).await.expect("reply");
            refs.push(r);
        }
        let out = crate::per_actor(heap0, rss0, n);
        std::mem::forget(refs);
        out
    })
}
