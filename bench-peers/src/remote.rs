//! Remote figures: a client in this process asks a server in a child
//! process over loopback TCP, each ask echoing a 32-byte payload.
//!
//! - **raw**: a Tokio TCP echo with `u32` length framing (an 8-byte request
//!   id, then the payload), one connection multiplexed by a writer task and
//!   a reader task (the shape of a node's connection): the floor;
//! - **axactor**: two `ClusterNode`s over `TcpOverlay` (authenticated,
//!   sealed frames) sharing a throwaway `redis-server` as lease store (the
//!   in-memory store is per process); the server owns every shard, the
//!   client asks one key through `Keyed::get(..).echo(..)`;
//! - **ractor**: two `ractor_cluster` `NodeServer`s (cookie authentication,
//!   no encryption); the server's echo actor joins a process group, the
//!   client `call`s the remote actor it finds there.
//!
//! Figures: sequential ask p50/p99 (each ask timed), and pipelined
//! throughput with 1, 16 and 64 concurrent askers sharing the client.

mod axactor_side;
mod ractor_side;
mod raw_side;

use std::future::Future;
use std::io::{BufRead, BufReader, Read};
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

use crate::report::{cell, median};

/// Bytes echoed per ask.
pub const PAYLOAD: usize = 32;
/// Concurrent askers of the throughput runs.
const CONCURRENCY: [usize; 3] = [1, 16, 64];
/// Shared token of the axactor nodes and cookie of the ractor nodes.
pub const SECRET: &str = "peer-benchmark-secret-0123456789-abcdefghij";

/// The remote sides.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Side {
    /// Raw framed echo.
    Raw,
    /// axactor-cluster over TCP.
    Axactor,
    /// ractor_cluster.
    Ractor,
}

impl Side {
    const ALL: [Side; 3] = [Side::Raw, Side::Axactor, Side::Ractor];

    fn name(self) -> &'static str {
        match self {
            Side::Raw => "raw",
            Side::Axactor => "axactor",
            Side::Ractor => "ractor",
        }
    }

    /// Parses [`Side::name`].
    pub fn parse(s: &str) -> Option<Side> {
        Side::ALL.into_iter().find(|x| x.name() == s)
    }
}

/// A client that can be shared by concurrent askers.
pub trait Asker: Clone + Send + Sync + 'static {
    /// One ask and its reply.
    fn call(&self) -> impl Future<Output = ()> + Send;
}

/// What one side measured in one round.
#[derive(Debug, Clone, Default)]
struct Remote {
    p50_us: f64,
    p99_us: f64,
    /// asks/s per concurrency level.
    tput: Vec<f64>,
}

#[derive(Debug, Clone, Copy)]
struct Sizes {
    warm: usize,
    asks: usize,
    pipelined: usize,
}

async fn measure<A: Asker>(a: A, s: Sizes) -> Remote {
    for _ in 0..s.warm {
        a.call().await;
    }
    let mut samples = Vec::with_capacity(s.asks);
    for _ in 0..s.asks {
        let t = Instant::now();
        a.call().await;
        samples.push(t.elapsed());
    }
    samples.sort_unstable();
    let at = |q: usize| samples[(samples.len() * q / 100).min(samples.len() - 1)].as_secs_f64() * 1e6;
    let (p50_us, p99_us) = (at(50), at(99));
    let mut tput = Vec::new();
    for tasks in CONCURRENCY {
        let per = s.pipelined / tasks;
        let start = Arc::new(tokio::sync::Barrier::new(tasks + 1));
        let mut handles = Vec::new();
        for _ in 0..tasks {
            let (a, start) = (a.clone(), Arc::clone(&start));
            handles.push(tokio::spawn(async move {
                for _ in 0..s.warm / 10 {
                    a.call().await;
                }
                start.wait().await;
                for _ in 0..per {
                    a.call().await;
                }
            }));
        }
        start.wait().await;
        let t = Instant::now();
        for h in handles {
            h.await.expect("asker task");
        }
        tput.push((per * tasks) as f64 / t.elapsed().as_secs_f64());
    }
    Remote { p50_us, p99_us, tput }
}

/// A free loopback port (bound, then released).
fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0").and_then(|l| l.local_addr()).map(|a| a.port()).expect("free port")
}

/// A server child process; killed when dropped.
struct Server(Child);

impl Server {
    fn start(side: Side, args: &[String]) -> Server {
        let exe = std::env::current_exe().expect("own executable");
        let mut child = Command::new(exe)
            .args(["--child", "serve", side.name()])
            .args(args)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .spawn()
            .expect("server child starts");
        let mut out = BufReader::new(child.stdout.take().expect("piped stdout"));
        let mut line = String::new();
        out.read_line(&mut line).expect("server says ready");
        assert_eq!(line.trim(), "ready", "server child did not start");
        Server(child)
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// A throwaway `redis-server` on a free loopback port (no persistence),
/// stopped when dropped; `None` when there is no `redis-server`.
struct Redis(Child, String);

impl Redis {
    fn start() -> Option<Redis> {
        let port = free_port();
        let child = Command::new("redis-server")
            .args(["--port", &port.to_string(), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no"])
            .stdout(Stdio::null())
            .spawn()
            .ok()?;
        let url = format!("redis://127.0.0.1:{port}/");
        for _ in 0..100 {
            if std::net::TcpStream::connect(("127.0.0.1", port)).is_ok() {
                return Some(Redis(child, url));
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        None
    }
}

impl Drop for Redis {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// Child side: runs `side`'s server until stdin closes.
pub fn serve(side: Side, args: &[String]) {
    let rt = runtime();
    let keep = rt.block_on(async {
        match side {
            Side::Raw => raw_side::serve(args).await,
            Side::Axactor => axactor_side::serve(args).await,
            Side::Ractor => ractor_side::serve(args).await,
        }
    });
    println!("ready");
    // Until the parent closes our stdin (or dies).
    let _ = std::io::stdin().read_to_end(&mut Vec::new());
    drop(keep);
    std::process::exit(0);
}

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(crate::WORKERS)
        .enable_all()
        .build()
        .expect("tokio runtime")
}

/// One round of `side`: a fresh server child and client.
fn round(side: Side, s: Sizes, redis: Option<&str>) -> Option<Remote> {
    let (port, client_port) = (free_port(), free_port());
    let mut args = vec![port.to_string(), client_port.to_string()];
    if side == Side::Axactor {
        args.push(redis?.to_string());
    }
    let _server = Server::start(side, &args);
    let rt = runtime();
    // On a worker, as a server's request handlers ask (see `local::run`).
    let task = rt.spawn(async move {
        match side {
            Side::Raw => measure(raw_side::connect(&args).await, s).await,
            Side::Axactor => measure(axactor_side::connect(&args).await, s).await,
            Side::Ractor => measure(ractor_side::connect(&args).await, s).await,
        }
    });
    let r = rt.block_on(task).expect("the round's task");
    rt.shutdown_timeout(Duration::from_secs(1));
    Some(r)
}

/// Runs `rounds` rounds of every side (alternating) and prints the table.
pub fn report(rounds: usize, quick: bool) {
    let s = if quick {
        Sizes { warm: 500, asks: 5_000, pipelined: 20_000 }
    } else {
        Sizes { warm: 2_000, asks: 20_000, pipelined: 60_000 }
    };
    let redis = Redis::start();
    if redis.is_none() {
        eprintln!(
            "no redis-server on PATH: the axactor column is skipped (it needs a lease store shared by two processes)"
        );
    }
    let mut runs: Vec<Vec<Remote>> = vec![Vec::new(); Side::ALL.len()];
    for round_no in 0..rounds {
        for (i, side) in Side::ALL.into_iter().enumerate() {
            if let Some(r) = round(side, s, redis.as_ref().map(|r| r.1.as_str())) {
                eprintln!(
                    "round {round_no} {:>8}: p50 {:.1} us p99 {:.1} us, asks/s {:?}",
                    side.name(),
                    r.p50_us,
                    r.p99_us,
                    r.tput.iter().map(|t| *t as u64).collect::<Vec<_>>()
                );
                runs[i].push(r);
            }
        }
    }
    println!();
    println!(
        "### Remote: two processes over loopback TCP, {PAYLOAD}-byte echo; {} timed asks, {} pipelined; median of {rounds} rounds (ratio to raw)",
        s.asks, s.pipelined
    );
    println!();
    println!("| metric | raw framed echo | axactor-cluster | ractor_cluster |");
    println!("|---|---:|---:|---:|");
    let med = |i: usize, f: &dyn Fn(&Remote) -> f64| -> Option<f64> {
        (!runs[i].is_empty()).then(|| median(&runs[i].iter().map(f).collect::<Vec<_>>()))
    };
    let row = |name: &str, f: &dyn Fn(&Remote) -> f64, unit: &str| {
        let floor = med(0, f).unwrap_or(0.0);
        let cells: Vec<String> =
            (0..Side::ALL.len()).map(|i| med(i, f).map_or_else(|| "—".to_string(), |v| cell(v, floor, unit))).collect();
        println!("| {name} | {} |", cells.join(" | "));
    };
    row("sequential ask p50", &|r| r.p50_us, "µs");
    row("sequential ask p99", &|r| r.p99_us, "µs");
    for (k, tasks) in CONCURRENCY.into_iter().enumerate() {
        row(&format!("throughput, {tasks} askers"), &move |r| r.tput[k] / 1000.0, "k/s");
    }
}
