//! kameo: an `Actor` with one `Message` impl per message, a bounded
//! mailbox of the same capacity; tells are `tell(..).await` (waits for
//! room), asks `ask(..).await`.

use std::any::Any;
use std::sync::Arc;
use std::time::Instant;

use kameo::actor::{ActorRef, Spawn};
use kameo::error::Infallible;
use kameo::message::{Context, Message};
use kameo::{Actor, mailbox};

use super::{CAP, Count, Done, Local, Sizes, percentiles};

/// The counter actor.
#[derive(Debug)]
pub struct Counter(Count);

impl Actor for Counter {
    type Args = Option<Arc<Done>>;
    type Error = Infallible;

    async fn on_start(done: Self::Args, _me: ActorRef<Self>) -> Result<Self, Self::Error> {
        Ok(Counter(Count::new(done)))
    }
}

/// A tell.
#[derive(Debug)]
pub struct Inc;

/// An ask.
#[derive(Debug)]
pub struct Get;

impl Message<Inc> for Counter {
    type Reply = ();
    async fn handle(&mut self, _: Inc, _ctx: &mut Context<Self, ()>) {
        self.0.inc()
    }
}

impl Message<Get> for Counter {
    type Reply = u64;
    async fn handle(&mut self, _: Get, _ctx: &mut Context<Self, u64>) -> u64 {
        self.0.get()
    }
}

fn spawn(done: Option<Arc<Done>>) -> ActorRef<Counter> {
    Counter::spawn_with_mailbox(done, mailbox::bounded(CAP))
}

async fn ask(r: &ActorRef<Counter>) -> u64 {
    r.ask(Get).await.expect("reply")
}

/// One round.
pub async fn run(s: Sizes) -> Local {
    let done = Done::new(s.tells);
    let r = spawn(Some(Arc::clone(&done)));
    let t = Instant::now();
    for _ in 0..s.tells {
        r.tell(Inc).await.expect("actor alive");
    }
    done.wait().await;
    let tell_ns = t.elapsed().as_nanos() as f64 / s.tells as f64;

    let r = spawn(None);
    for _ in 0..s.asks / 10 {
        ask(&r).await;
    }
    let mut samples = Vec::with_capacity(s.asks);
    for _ in 0..s.asks {
        let t = Instant::now();
        std::hint::black_box(ask(&r).await);
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
}

/// `n` idle actors, each having answered one ask.
pub async fn idle(n: usize) -> Box<dyn Any> {
    let mut refs = Vec::with_capacity(n);
    for _ in 0..n {
        let r = spawn(None);
        ask(&r).await;
        refs.push(r);
    }
    Box::new(refs)
}
