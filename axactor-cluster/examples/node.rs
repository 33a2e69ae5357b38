//! One cluster node per process: the building block of a real deployment,
//! and of `scripts/cluster-walkthrough.sh` (three of these plus a
//! `redis-server`, one killed with SIGKILL, keys moving).
//!
//! ```text
//! export AXACTOR_TOKEN="$(head -c 32 /dev/urandom | base64)"   # the same on every node, 32+ characters
//! cargo run --release -p axactor-cluster --example node -- \
//!     --name a --listen 127.0.0.1:7001 --peer b=127.0.0.1:7002 --peer c=127.0.0.1:7003 \
//!     --redis redis://127.0.0.1:6379/ [--drive 8] [--for 60]
//! ```
//!
//! The node hosts the `accounts` registry (a keyed `Account` actor that
//! answers every deposit with the node that served it and the shard epoch)
//! and prints its shards whenever they change. With `--drive N` it is also
//! a client: every half second it sends a deposit to each of `acct-0` ..
//! `acct-{N-1}` and prints `served acct-0=b@2 acct-1=c@1 ...` (node@epoch,
//! `?` for a failed call), and `moved acct-1 c@1 -> a@3` when a key's
//! server changes. It runs until SIGINT/SIGTERM (a graceful shutdown: its
//! shards move at once) or for `--for SECS`; SIGKILL is a crash (its shards
//! move once their leases expire).
//!
//! **Across processes the lease store must be shared: `--redis URL`.** The
//! in-memory store lives inside one process, so nodes in separate
//! processes with in-memory stores would each grant themselves every shard.
//! The node refuses to start with `--peer` and no `--redis`.
//!
//! The token comes from the environment variable `AXACTOR_TOKEN` (never a
//! flag: command lines are visible to every user of the machine). Timings
//! are short so a crash shows quickly: lease_ttl 2 s, renewal every 600 ms,
//! request timeout 1 s, lease-store calls 800 ms (the library defaults are
//! 10 s, 3 s, 5 s and 2 s).
//! Account balances live in the activations and restart from zero when a
//! key moves; `cluster_demo` shows durable state kept in a fenced store.

use std::collections::{BTreeMap, HashMap};
use std::net::SocketAddr;
use std::process::ExitCode;
use std::sync::Arc;
use std::time::Duration;

use axactor::{Context, actor};
use axactor_cluster::{
    ClusterConfig, ClusterNode, KeyedConfig, LeaseStore, MemoryLeaseStore, NodeId, RedisLeaseStore, TcpOverlay,
};
use serde::{Deserialize, Serialize};

const REGISTRY: &str = "accounts";
const SHARDS: usize = 16;
const TOKEN_VAR: &str = "AXACTOR_TOKEN";

/// Who served a call, under which epoch, and the balance after it.
#[derive(Debug, Clone, Serialize, Deserialize)]
struct Served {
    node: String,
    epoch: u64,
    balance: i64,
}

/// One account: its balance lives in the activation.
#[derive(Debug)]
struct Account {
    node: String,
    balance: i64,
}

#[actor(remote)]
impl Account {
    #[msg]
    fn deposit(&mut self, ctx: &mut Context, amount: i64) -> Served {
        self.balance += amount;
        Served { node: self.node.clone(), epoch: ctx.fence().map_or(0, |f| f.epoch), balance: self.balance }
    }
}

#[derive(Debug)]
struct Args {
    name: String,
    listen: SocketAddr,
    peers: Vec<(String, SocketAddr)>,
    redis: Option<String>,
    drive: usize,
    run_for: Option<Duration>,
}

fn parse() -> Result<Args, String> {
    let (mut name, mut listen, mut peers, mut redis, mut drive, mut run_for) = (None, None, Vec::new(), None, 0, None);
    let mut args = std::env::args().skip(1);
    while let Some(flag) = args.next() {
        let mut value = || args.next().ok_or(format!("{flag} needs a value"));
        match flag.as_str() {
            "--name" => name = Some(value()?),
            "--listen" => listen = Some(value()?.parse().map_err(|e| format!("--listen: {e}"))?),
            "--peer" => {
                let v = value()?;
                let (peer, addr) = v.split_once('=').ok_or(format!("--peer wants name=host:port, got {v}"))?;
                peers.push((peer.to_string(), addr.parse().map_err(|e| format!("--peer {peer}: {e}"))?));
            }
            "--redis" => redis = Some(value()?),
            "--drive" => drive = value()?.parse().map_err(|e| format!("--drive: {e}"))?,
            "--for" => run_for = Some(Duration::from_secs(value()?.parse().map_err(|e| format!("--for: {e}"))?)),
            other => return Err(format!("unknown option {other}")),
        }
    }
    let name = name.ok_or("--name is required")?;
    let listen = listen.ok_or("--listen is required")?;
    if !peers.is_empty() && redis.is_none() {
        return Err("--redis is required with --peer: the in-memory lease store lives in one process, so \
                    separate processes need a shared store (Redis) to agree on who owns a shard"
            .into());
    }
    Ok(Args { name, listen, peers, redis, drive, run_for })
}

fn config(token: String) -> ClusterConfig {
    ClusterConfig {
        auth_token: Some(token),
        lease_ttl: Duration::from_secs(2),
        renew_interval: Duration::from_millis(600),
        node_ttl: Duration::from_secs(2),
        heartbeat_interval: Duration::from_millis(200),
        request_timeout: Duration::from_secs(1),
        lease_store_timeout: Duration::from_millis(800),
        rebalance_settle: Duration::from_secs(1),
        ..ClusterConfig::default()
    }
}

/// Prints this node's shards (shard@epoch) when they change.
fn report_shards(node: &ClusterNode, last: &mut Vec<(u32, u64)>) {
    let now: Vec<(u32, u64)> =
        node.inspect().shards.into_iter().filter(|s| s.registry == REGISTRY).map(|s| (s.shard, s.epoch)).collect();
    if now != *last {
        let list: Vec<String> = now.iter().map(|(s, e)| format!("{s}@{e}")).collect();
        println!("{} shards {}: {}", node.id(), now.len(), list.join(" "));
        *last = now;
    }
}

async fn wait_for_signal() {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{SignalKind, signal};
        if let Ok(mut term) = signal(SignalKind::terminate()) {
            tokio::select! {
                _ = term.recv() => {}
                _ = tokio::signal::ctrl_c() => {}
            }
            return;
        }
    }
    let _ = tokio::signal::ctrl_c().await;
}

async fn run(args: Args, token: String) -> Result<(), String> {
    let store: Arc<dyn LeaseStore> = match &args.redis {
        Some(url) => Arc::new(
            RedisLeaseStore::connect(url, "axactor-walkthrough").await.map_err(|e| format!("redis {url}: {e}"))?,
        ),
        None => Arc::new(MemoryLeaseStore::new()),
    };
    let mut book: HashMap<String, SocketAddr> = args.peers.iter().cloned().collect();
    book.insert(args.name.clone(), args.listen);
    let node = ClusterNode::start(NodeId::new(&args.name), store, TcpOverlay::new(book), config(token))
        .await
        .map_err(|e| format!("start: {e}"))?;
    let me = args.name.clone();
    let accounts = node
        .keyed(REGISTRY, KeyedConfig::new(SHARDS), move |_: &str| Account { node: me.clone(), balance: 0 })
        .map_err(|e| format!("registry: {e}"))?;
    println!("{} listening on {}", args.name, args.listen);

    let stop = async {
        match args.run_for {
            Some(d) => tokio::select! { () = tokio::time::sleep(d) => {} () = wait_for_signal() => {} },
            None => wait_for_signal().await,
        }
    };
    let work = async {
        let mut shards = Vec::new();
        let mut servers: BTreeMap<String, String> = BTreeMap::new();
        let mut tick = tokio::time::interval(Duration::from_millis(500));
        loop {
            tick.tick().await;
            report_shards(&node, &mut shards);
            if args.drive == 0 {
                continue;
            }
            let calls = (0..args.drive).map(|i| {
                let r = accounts.get(format!("acct-{i}"));
                async move { r.deposit_timeout(1, Duration::from_secs(2)).await }
            });
            let answers = futures_join_all(calls).await;
            let mut line = Vec::new();
            for (i, answer) in answers.into_iter().enumerate() {
                let key = format!("acct-{i}");
                let now = match answer {
                    Ok(s) => format!("{}@{}", s.node, s.epoch),
                    Err(_) => "?".to_string(),
                };
                line.push(format!("{key}={now}"));
                if now != "?" {
                    if let Some(before) = servers.get(&key)
                        && *before != now
                    {
                        println!("moved {key} {before} -> {now}");
                    }
                    servers.insert(key, now);
                }
            }
            println!("served {}", line.join(" "));
        }
    };
    tokio::select! { () = stop => {} () = work => {} }
    println!("{} shutting down (graceful)", args.name);
    node.shutdown().await;
    Ok(())
}

/// Runs `calls` concurrently and returns their outputs in order.
async fn futures_join_all<F>(calls: impl Iterator<Item = F>) -> Vec<F::Output>
where
    F: Future + Send + 'static,
    F::Output: Send + 'static,
{
    let handles: Vec<_> = calls.map(tokio::spawn).collect();
    let mut out = Vec::with_capacity(handles.len());
    for h in handles {
        match h.await {
            Ok(v) => out.push(v),
            Err(e) => std::panic::resume_unwind(e.into_panic()),
        }
    }
    out
}

fn main() -> ExitCode {
    let args = match parse() {
        Ok(a) => a,
        Err(e) => {
            eprintln!("node: {e}");
            eprintln!(
                "usage: {TOKEN_VAR}=<shared secret, 32+ characters> node --name NAME --listen HOST:PORT \
                 [--peer NAME=HOST:PORT]... [--redis redis://HOST:PORT/] [--drive KEYS] [--for SECS]"
            );
            return ExitCode::from(2);
        }
    };
    let token = match std::env::var(TOKEN_VAR) {
        Ok(t) if !t.is_empty() => t,
        _ => {
            eprintln!("node: set {TOKEN_VAR} to the cluster's shared secret (the same on every node, 32+ characters)");
            return ExitCode::from(2);
        }
    };
    let runtime = match tokio::runtime::Builder::new_multi_thread().enable_all().build() {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("node: cannot start the runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    match runtime.block_on(run(args, token)) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("node: {e}");
            ExitCode::FAILURE
        }
    }
}
