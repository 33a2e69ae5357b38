//! ractor: an `Actor` impl with a message enum; tells are `cast` (ractor's
//! mailboxes are unbounded: there is no waiting form), asks are `call`.

use std::any::Any;
use std::sync::Arc;
use std::time::Instant;

use ractor::{Actor, ActorProcessingErr, ActorRef, RpcReplyPort};

use super::{Count, Done, Local, Sizes, percentiles};

/// The counter's messages.
#[derive(Debug)]
pub enum Msg {
    /// A tell.
    Inc,
    /// An ask.
    Get(RpcReplyPort<u64>),
}

// `ractor_cluster` turns on ractor's `cluster` feature, which drops the
// blanket `Message` impl: local messages say so.
impl ractor::Message for Msg {}

/// The counter actor (state in [`Count`]).
#[derive(Debug)]
pub struct Counter;

impl Actor for Counter {
    type Msg = Msg;
    type State = Count;
    type Arguments = Option<Arc<Done>>;

    async fn pre_start(&self, _me: ActorRef<Msg>, done: Self::Arguments) -> Result<Count, ActorProcessingErr> {
        Ok(Count::new(done))
    }

    async fn handle(&self, _me: ActorRef<Msg>, msg: Msg, state: &mut Count) -> Result<(), ActorProcessingErr> {
        match msg {
            Msg::Inc => state.inc(),
            Msg::Get(reply) => {
                let _ = reply.send(state.get());
            }
        }
        Ok(())
    }
}

async fn spawn(done: Option<Arc<Done>>) -> ActorRef<Msg> {
    let (r, _join) = Actor::spawn(None, Counter, done).await.expect("spawn");
    r
}

async fn ask(r: &ActorRef<Msg>) -> u64 {
    match r.call(Msg::Get, None).await.expect("actor alive") {
        ractor::rpc::CallResult::Success(n) => n,
        other => panic!("ask failed: {other:?}"),
    }
}

/// One round.
pub async fn run(s: Sizes) -> Local {
    let done = Done::new(s.tells);
    let r = spawn(Some(Arc::clone(&done))).await;
    let t = Instant::now();
    for _ in 0..s.tells {
        r.cast(Msg::Inc).expect("actor alive");
    }
    done.wait().await;
    let tell_ns = t.elapsed().as_nanos() as f64 / s.tells as f64;
    r.stop(None);

    let r = spawn(None).await;
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
    r.stop(None);

    let mut refs = Vec::with_capacity(s.spawns);
    let t = Instant::now();
    for _ in 0..s.spawns {
        refs.push(spawn(None).await);
    }
    let spawn_ns = t.elapsed().as_nanos() as f64 / s.spawns as f64;
    for r in refs {
        r.stop(None);
    }
    Local { tell_ns, ask_p50_ns, ask_p99_ns, spawn_ns }
}

/// `n` idle actors, each having answered one ask.
pub async fn idle(n: usize) -> Box<dyn Any> {
    let mut refs = Vec::with_capacity(n);
    for _ in 0..n {
        let r = spawn(None).await;
        ask(&r).await;
        refs.push(r);
    }
    Box::new(refs)
}
