//! The floor: a bounded `tokio::sync::mpsc` loop, asks over `oneshot`.

use std::any::Any;
use std::sync::Arc;
use std::time::Instant;

use tokio::sync::{mpsc, oneshot};

use super::{CAP, Count, Done, Local, Sizes, percentiles};

enum Msg {
    Inc,
    Get(oneshot::Sender<u64>),
}

fn spawn(done: Option<Arc<Done>>) -> mpsc::Sender<Msg> {
    let (tx, mut rx) = mpsc::channel(CAP);
    tokio::spawn(async move {
        let mut c = Count::new(done);
        while let Some(m) = rx.recv().await {
            match m {
                Msg::Inc => c.inc(),
                Msg::Get(reply) => {
                    let _ = reply.send(c.get());
                }
            }
        }
    });
    tx
}

async fn ask(tx: &mpsc::Sender<Msg>) -> u64 {
    let (reply, rx) = oneshot::channel();
    tx.send(Msg::Get(reply)).await.expect("actor alive");
    rx.await.expect("reply")
}

/// One round.
pub async fn run(s: Sizes) -> Local {
    let done = Done::new(s.tells);
    let tx = spawn(Some(Arc::clone(&done)));
    let t = Instant::now();
    for _ in 0..s.tells {
        tx.send(Msg::Inc).await.expect("actor alive");
    }
    done.wait().await;
    let tell_ns = t.elapsed().as_nanos() as f64 / s.tells as f64;

    let tx = spawn(None);
    for _ in 0..s.asks / 10 {
        ask(&tx).await;
    }
    let mut samples = Vec::with_capacity(s.asks);
    for _ in 0..s.asks {
        let t = Instant::now();
        std::hint::black_box(ask(&tx).await);
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
        let tx = spawn(None);
        ask(&tx).await;
        refs.push(tx);
    }
    Box::new(refs)
}
