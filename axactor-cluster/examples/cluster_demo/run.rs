//! The demo's core: starts the cluster, drives the bank workload, crashes
//! the busiest node, sends a late write from it, shuts another node down
//! gracefully, and returns a [`Report`]. `main` prints it; the example's
//! test runs a short form and checks conservation.

use std::collections::{BTreeMap, HashMap};
use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::Duration;

use axactor_cluster::{
    ClusterConfig, ClusterError, ClusterNode, Keyed, KeyedConfig, LeaseStore, LeaseStoreError, MemoryLeaseStore,
    NodeId, TcpOverlay,
};
use parking_lot::{Mutex, RwLock};
use tokio::time::Instant;

use crate::bank::{Account, REGISTRY, Reply};
use crate::display::Out;
use crate::ledger::{Ledger, Outcome, WriteError};

/// Shards of the bank registry.
pub(crate) const SHARDS: usize = 24;
/// Every account's opening balance.
pub(crate) const OPENING_BALANCE: i64 = 1_000;
/// Longest a client waits for one call (the cluster's own bound is
/// `request_timeout`; this one also covers a call through a crashed node).
const CLIENT_TIMEOUT: Duration = Duration::from_secs(3);
/// How long clients may take to finish their last transfers after the run.
const DRAIN: Duration = Duration::from_secs(20);

/// The demo's settings.
#[derive(Debug, Clone)]
pub(crate) struct Options {
    /// Nodes in the cluster.
    pub nodes: usize,
    /// Accounts.
    pub keys: usize,
    /// Length of the traffic phase.
    pub duration: Duration,
    /// Seed of the workload (which accounts, which amounts).
    pub seed: u64,
    /// A Redis URL for the lease store (`None`: in memory).
    pub redis: Option<String>,
    /// Concurrent clients.
    pub clients: usize,
}

impl Default for Options {
    fn default() -> Self {
        Options { nodes: 3, keys: 64, duration: Duration::from_secs(20), seed: 1, redis: None, clients: 32 }
    }
}

/// Why the demo could not run.
#[derive(Debug, thiserror::Error)]
pub(crate) enum DemoError {
    /// A node did not start.
    #[error("a node did not start: {0}")]
    Start(#[from] ClusterError),
    /// The Redis lease store is unreachable.
    #[error("redis lease store: {0}")]
    Redis(#[from] LeaseStoreError),
    /// An option is out of range.
    #[error("{0}")]
    Options(&'static str),
}

/// What happened to the write the crashed node sent before it died.
#[derive(Debug, Clone)]
pub(crate) enum LateWrite {
    /// Not attempted (the reason).
    Skipped(&'static str),
    /// Refused by the store's fence.
    Refused(WriteError),
    /// Applied: the store took a write from a stale owner.
    Accepted {
        /// The epoch it carried.
        epoch: u64,
    },
}

/// Shards moving off a node, and how long until all of them were held again.
#[derive(Debug, Clone)]
pub(crate) struct Move {
    /// The node that left.
    pub node: String,
    /// Shards it held.
    pub shards: usize,
    /// Until every one of them was held by a live node (`None`: not within the bound).
    pub took: Option<Duration>,
}

/// The outcome of a run.
#[derive(Debug, Clone)]
pub(crate) struct Report {
    /// The settings.
    pub options: Options,
    /// Calls sent (each attempt counts).
    pub requests: u64,
    /// Failed calls by kind.
    pub errors: BTreeMap<&'static str, u64>,
    /// Transfers whose withdrawal and deposit both landed.
    pub completed: u64,
    /// Transfers declined for insufficient funds.
    pub declined: u64,
    /// Transfers the clients gave up on (the outcome of a step unknown).
    pub unfinished: u64,
    /// Successful calls by serving node.
    pub served: BTreeMap<String, u64>,
    /// The crash.
    pub failover: Option<Move>,
    /// The graceful shutdown.
    pub handover: Option<Move>,
    /// The crashed node's late write.
    pub late_write: LateWrite,
    /// Money at the start.
    pub expected: i64,
    /// Money at the end.
    pub counted: i64,
    /// Length of the traffic phase as it ran.
    pub elapsed: Duration,
}

impl Report {
    /// Whether the money adds up.
    pub(crate) fn conserved(&self) -> bool {
        self.expected == self.counted
    }
}

/// The cluster's timings: short leases so a crash shows within seconds.
pub(crate) fn demo_config(token: String) -> ClusterConfig {
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

/// A fresh token for this run: a fixed phrase plus 24 random hex digits
/// (long, and varied enough for any token policy).
fn fresh_token() -> String {
    let nanos = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.as_nanos());
    let mut mix = SplitMix(nanos as u64 ^ (u64::from(std::process::id()) << 32));
    format!("axactor-cluster-demo-token:{:016x}{:08x}", mix.next(), mix.next() as u32)
}

/// A small deterministic generator (splitmix64) for the workload.
#[derive(Debug, Clone)]
pub(crate) struct SplitMix(pub u64);

impl SplitMix {
    /// The next value.
    pub(crate) fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    /// A value in `0..n` (`n > 0`).
    pub(crate) fn below(&mut self, n: usize) -> usize {
        (self.next() % n as u64) as usize
    }
}

/// Everything the clients and the orchestrator share.
struct Shared {
    names: Vec<String>,
    nodes: Vec<ClusterNode>,
    banks: Vec<Keyed<Account>>,
    alive: RwLock<Vec<bool>>,
    accounts: Vec<String>,
    ledger: Arc<Ledger>,
    stop: AtomicBool,
    give_up: Mutex<Option<Instant>>,
    next_op: AtomicU64,
    requests: AtomicU64,
    completed: AtomicU64,
    declined: AtomicU64,
    unfinished: AtomicU64,
    errors: Mutex<BTreeMap<&'static str, u64>>,
    served: Mutex<BTreeMap<String, u64>>,
}

#[derive(Debug, Clone, Copy)]
enum Step {
    Withdraw,
    Deposit,
}

impl Shared {
    fn error(&self, kind: &'static str) {
        *self.errors.lock().entry(kind).or_default() += 1;
    }

    fn alive(&self) -> Vec<usize> {
        self.alive.read().iter().enumerate().filter(|(_, a)| **a).map(|(i, _)| i).collect()
    }

    /// Who holds which shard of the bank now, over the live nodes.
    fn placement(&self) -> BTreeMap<u32, (usize, u64)> {
        let mut out = BTreeMap::new();
        for i in self.alive() {
            for s in self.nodes[i].inspect().shards.into_iter().filter(|s| s.registry == REGISTRY) {
                out.insert(s.shard, (i, s.epoch));
            }
        }
        out
    }

    fn gave_up(&self) -> bool {
        self.give_up.lock().is_some_and(|t| Instant::now() >= t)
    }

    /// One step of a transfer, retried (same operation id, so at most once
    /// in effect) until it lands or the clients give up.
    async fn step(&self, rng: &mut SplitMix, step: Step, account: &str, op: u64, amount: i64) -> Option<Outcome> {
        let mut backoff = Duration::from_millis(10);
        loop {
            if self.gave_up() {
                return None;
            }
            let alive = self.alive();
            if alive.is_empty() {
                return None;
            }
            let r = self.banks[alive[rng.below(alive.len())]].get(account);
            self.requests.fetch_add(1, Ordering::Relaxed);
            let answer = match step {
                Step::Withdraw => tokio::time::timeout(CLIENT_TIMEOUT, r.withdraw(op, amount)).await,
                Step::Deposit => tokio::time::timeout(CLIENT_TIMEOUT, r.deposit(op, amount)).await,
            };
            match answer {
                Ok(Ok(Reply { node, result: Ok(outcome), .. })) => {
                    *self.served.lock().entry(node).or_default() += 1;
                    return Some(outcome);
                }
                Ok(Ok(Reply { result: Err(WriteError::Stale { .. }), .. })) => self.error("fenced_write"),
                Ok(Ok(Reply { result: Err(WriteError::Unfenced), .. })) => self.error("unfenced_write"),
                Ok(Err(e)) => self.error(e.label()),
                Err(_) => self.error("client_timeout"),
            }
            tokio::time::sleep(backoff).await;
            backoff = (backoff * 2).min(Duration::from_millis(200));
        }
    }

    async fn transfer(&self, rng: &mut SplitMix) {
        let keys = self.accounts.len();
        let from = rng.below(keys);
        let to = (from + 1 + rng.below(keys - 1)) % keys;
        let amount = 1 + rng.below(100) as i64;
        let op = self.next_op.fetch_add(1, Ordering::Relaxed);
        match self.step(rng, Step::Withdraw, &self.accounts[from], op, amount).await {
            Some(Outcome::Applied) => {}
            Some(Outcome::Insufficient) => {
                self.declined.fetch_add(1, Ordering::Relaxed);
                return;
            }
            None => {
                self.unfinished.fetch_add(1, Ordering::Relaxed);
                return;
            }
        }
        match self.step(rng, Step::Deposit, &self.accounts[to], op, amount).await {
            Some(_) => self.completed.fetch_add(1, Ordering::Relaxed),
            None => self.unfinished.fetch_add(1, Ordering::Relaxed),
        };
    }
}

/// Starts `name` on `net`, listening on an ephemeral loopback port that is
/// then published in the shared address book.
async fn start_node(
    net: &TcpOverlay,
    name: &str,
    store: &Arc<dyn LeaseStore>,
    cfg: &ClusterConfig,
) -> Result<ClusterNode, ClusterError> {
    let any = SocketAddr::from(([127, 0, 0, 1], 0));
    net.insert_address(name, any);
    let node = ClusterNode::start(NodeId::new(name), Arc::clone(store), net.clone(), cfg.clone()).await?;
    if let Some(addr) = node.local_addr() {
        net.insert_address(name, addr);
    }
    Ok(node)
}

/// Runs the demo, writing progress to `out`.
///
/// # Errors
/// Bad options, a node that does not start, an unreachable Redis.
pub(crate) async fn run(options: Options, out: &Out) -> Result<Report, DemoError> {
    if options.nodes == 0 || options.keys < 2 || options.clients == 0 {
        return Err(DemoError::Options("need at least 1 node, 2 keys and 1 client"));
    }
    let cfg = demo_config(fresh_token());
    let store: Arc<dyn LeaseStore> = match &options.redis {
        Some(url) => {
            let nanos = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.as_nanos());
            let prefix = format!("axactor-demo:{}:{nanos}", std::process::id());
            Arc::new(axactor_cluster::RedisLeaseStore::connect(url, &prefix).await?)
        }
        None => Arc::new(MemoryLeaseStore::new()),
    };
    let accounts: Vec<String> = (0..options.keys).map(|i| format!("acct-{i:04}")).collect();
    let ledger = Arc::new(Ledger::new(&accounts, OPENING_BALANCE));
    let expected = ledger.total();

    let net = TcpOverlay::new(HashMap::new());
    let names: Vec<String> = (0..options.nodes).map(|i| format!("node-{i}")).collect();
    let mut nodes = Vec::new();
    let mut banks = Vec::new();
    for name in &names {
        let node = start_node(&net, name, &store, &cfg).await?;
        out.event(&format!("started {name} on {}", node.local_addr().map_or("?".into(), |a| a.to_string())));
        nodes.push(node);
    }
    for (node, name) in nodes.iter().zip(&names) {
        let (ledger, name) = (Arc::clone(&ledger), name.clone());
        let cfg = KeyedConfig::new(SHARDS).idle_timeout(None);
        banks.push(node.keyed(REGISTRY, cfg, move |key: &str| Account::new(key, &name, Arc::clone(&ledger)))?);
    }
    let shared = Arc::new(Shared {
        alive: RwLock::new(vec![true; nodes.len()]),
        names,
        nodes,
        banks,
        accounts,
        ledger,
        stop: AtomicBool::new(false),
        give_up: Mutex::new(None),
        next_op: AtomicU64::new(1),
        requests: AtomicU64::new(0),
        completed: AtomicU64::new(0),
        declined: AtomicU64::new(0),
        unfinished: AtomicU64::new(0),
        errors: Mutex::new(BTreeMap::new()),
        served: Mutex::new(BTreeMap::new()),
    });
    spread(&shared, out).await;

    out.event(&format!(
        "traffic: {} clients moving money between {} accounts ({} each) for {:.0} s",
        options.clients,
        options.keys,
        OPENING_BALANCE,
        options.duration.as_secs_f64()
    ));
    let t0 = Instant::now();
    let mut clients = Vec::new();
    for c in 0..options.clients {
        let shared = Arc::clone(&shared);
        let mut rng = SplitMix(options.seed.wrapping_mul(1_000_003).wrapping_add(c as u64));
        clients.push(tokio::spawn(async move {
            while !shared.stop.load(Ordering::Relaxed) {
                shared.transfer(&mut rng).await;
            }
        }));
    }
    let orchestrate = async {
        let mut failover = None;
        let mut late_write = LateWrite::Skipped("needs at least 2 nodes");
        let mut handover = None;
        tokio::time::sleep_until(t0 + options.duration / 4).await;
        if shared.alive().len() >= 2 {
            let (m, late) = crash(&shared, out, &cfg).await;
            failover = Some(m);
            late_write = late;
        }
        tokio::time::sleep_until(t0 + options.duration * 3 / 5).await;
        if shared.alive().len() >= 2 {
            handover = Some(graceful(&shared, out, &cfg).await);
        } else {
            out.event("graceful shutdown skipped: needs a node left to hand over to");
        }
        tokio::time::sleep_until(t0 + options.duration).await;
        (failover, late_write, handover)
    };
    let status = async {
        while !shared.stop.load(Ordering::Relaxed) {
            tokio::time::sleep(Duration::from_millis(200)).await;
            out.status(t0.elapsed(), &status_line(&shared, t0));
        }
    };
    let (failover, late_write, handover) = tokio::select! {
        r = orchestrate => r,
        () = status => (None, LateWrite::Skipped("interrupted"), None),
    };
    shared.stop.store(true, Ordering::Relaxed);
    let elapsed = t0.elapsed();
    *shared.give_up.lock() = Some(Instant::now() + DRAIN);
    for c in clients {
        let _ = c.await;
    }
    out.finish();
    let counted = shared.ledger.total();
    for i in shared.alive() {
        shared.nodes[i].shutdown().await;
    }
    Ok(Report {
        options,
        requests: shared.requests.load(Ordering::Relaxed),
        errors: shared.errors.lock().clone(),
        completed: shared.completed.load(Ordering::Relaxed),
        declined: shared.declined.load(Ordering::Relaxed),
        unfinished: shared.unfinished.load(Ordering::Relaxed),
        served: shared.served.lock().clone(),
        failover,
        handover,
        late_write,
        expected,
        counted,
        elapsed,
    })
}

/// The status line: requests, rate, errors, and each node's shards.
fn status_line(shared: &Shared, t0: Instant) -> String {
    let requests = shared.requests.load(Ordering::Relaxed);
    let errors: u64 = shared.errors.lock().values().sum();
    let rate = requests as f64 / t0.elapsed().as_secs_f64().max(0.001);
    let placement = shared.placement();
    let alive = shared.alive.read().clone();
    let nodes: Vec<String> = shared
        .names
        .iter()
        .enumerate()
        .map(|(i, name)| {
            if alive[i] {
                let n = placement.values().filter(|(holder, _)| *holder == i).count();
                format!("{name}:{n}")
            } else {
                format!("{name}:down")
            }
        })
        .collect();
    format!(
        "{requests} requests ({rate:.0}/s), {errors} errors, {} transfers | shards {}",
        shared.completed.load(Ordering::Relaxed),
        nodes.join(" ")
    )
}

/// Waits (bounded) until every shard is held and, with several nodes,
/// each node holds some: the starting placement.
async fn spread(shared: &Shared, out: &Out) {
    let deadline = Instant::now() + Duration::from_secs(15);
    loop {
        let placement = shared.placement();
        let holders: std::collections::BTreeSet<usize> = placement.values().map(|(i, _)| *i).collect();
        if placement.len() == SHARDS && holders.len() == shared.nodes.len() {
            break;
        }
        if Instant::now() >= deadline {
            out.event("placement still moving; starting anyway");
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let placement = shared.placement();
    for (i, name) in shared.names.iter().enumerate() {
        let mine: Vec<String> =
            placement.iter().filter(|(_, (h, _))| *h == i).map(|(s, (_, e))| format!("{s}@{e}")).collect();
        out.event(&format!("{name} holds {} shards (shard@epoch): {}", mine.len(), mine.join(" ")));
    }
}

/// The shards `node` holds now, with their epochs.
fn held_by(shared: &Shared, node: usize) -> BTreeMap<u32, u64> {
    shared.placement().into_iter().filter(|(_, (h, _))| *h == node).map(|(s, (_, e))| (s, e)).collect()
}

/// Waits (bounded by `bound`) until live nodes hold every shard in `from`,
/// printing each move with its epochs. Returns the time it took.
async fn watch_moves(
    shared: &Shared,
    out: &Out,
    leaver: &str,
    mut from: BTreeMap<u32, u64>,
    since: Instant,
    bound: Duration,
) -> Option<Duration> {
    while !from.is_empty() {
        if since.elapsed() > bound {
            out.event(&format!("  {} shards still unowned after {:.1} s", from.len(), bound.as_secs_f64()));
            return None;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
        for (shard, (holder, epoch)) in shared.placement() {
            if let Some(old) = from.remove(&shard) {
                let grew = if epoch > old { "" } else { " (epoch did not grow!)" };
                out.event(&format!(
                    "  +{:>5.2} s  shard {shard:>2}: {leaver}@{old} -> {}@{epoch}{grew}",
                    since.elapsed().as_secs_f64(),
                    shared.names[holder]
                ));
            }
        }
    }
    Some(since.elapsed())
}

/// Crashes the busiest node with a write of its own still on the network,
/// watches its shards move, then delivers that late write.
async fn crash(shared: &Shared, out: &Out, cfg: &ClusterConfig) -> (Move, LateWrite) {
    let served = shared.served.lock().clone();
    let alive = shared.alive();
    let victim = alive
        .iter()
        .copied()
        .max_by_key(|i| (served.get(&shared.names[*i]).copied().unwrap_or(0), std::cmp::Reverse(*i)))
        .unwrap_or(alive[0]);
    let name = shared.names[victim].clone();
    let held = held_by(shared, victim);

    // A withdrawal from one of the victim's accounts whose write is still
    // on its way to the store when the victim dies.
    let bank = &shared.banks[victim];
    let key = shared.accounts.iter().find(|k| held.contains_key(&bank.shard_of(k))).cloned();
    let mut late_key = None;
    if let Some(key) = key {
        let slow = bank.get(key.clone());
        let op = shared.next_op.fetch_add(1, Ordering::Relaxed);
        tokio::spawn(async move {
            let _ = tokio::time::timeout(CLIENT_TIMEOUT, slow.withdraw_slowly(op, 1)).await;
        });
        let deadline = Instant::now() + Duration::from_secs(5);
        while shared.ledger.held() == 0 && Instant::now() < deadline {
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
        if shared.ledger.held() > 0 {
            let epoch = held.get(&bank.shard_of(&key)).copied().unwrap_or(0);
            out.event(&format!(
                "{name} sends a withdrawal from {key} (shard {}, epoch {epoch}); the write is slow on the network",
                bank.shard_of(&key)
            ));
            late_key = Some(key);
        }
    }

    shared.alive.write()[victim] = false;
    let t = Instant::now();
    shared.nodes[victim].kill();
    out.event(&format!(
        "CRASH {name} (busiest: {} calls served); its {} shards stay leased to it until the leases expire (lease_ttl {:.1} s)",
        served.get(&name).copied().unwrap_or(0),
        held.len(),
        cfg.lease_ttl.as_secs_f64()
    ));
    let took = watch_moves(shared, out, &name, held.clone(), t, cfg.lease_ttl * 10).await;
    if let Some(d) = took {
        out.event(&format!("failover: every shard of {name} is served again after {:.2} s", d.as_secs_f64()));
    }
    let moved = Move { node: name.clone(), shards: held.len(), took };

    let Some(key) = late_key else {
        return (moved, LateWrite::Skipped("the busiest node held no account"));
    };
    // The new owner writes first (any write of its own would do).
    let deadline = Instant::now() + Duration::from_secs(20);
    let mut rng = SplitMix(7);
    let touched = loop {
        let alive = shared.alive();
        let r = shared.banks[alive[rng.below(alive.len())]].get(key.clone());
        if let Ok(Ok(reply)) = tokio::time::timeout(CLIENT_TIMEOUT, r.touch()).await
            && reply.result.is_ok()
        {
            break Some(reply);
        }
        if Instant::now() >= deadline {
            break None;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    let Some(touched) = touched else {
        return (moved, LateWrite::Skipped("the new owner could not be reached"));
    };
    out.event(&format!("{} now owns {key} at epoch {} and has written to the store", touched.node, touched.epoch));
    let late = match shared.ledger.release_held().first() {
        Some((_, Err(e))) => {
            out.event(&format!("late write from {name} arrives: REFUSED by the fence ({e})"));
            LateWrite::Refused(*e)
        }
        Some((epoch, Ok(_))) => {
            out.event(&format!("late write from {name} arrives: ACCEPTED at epoch {epoch} (fencing failed)"));
            LateWrite::Accepted { epoch: *epoch }
        }
        None => LateWrite::Skipped("the write was not held"),
    };
    (moved, late)
}

/// Shuts the node holding the most shards down gracefully and watches its
/// shards move.
async fn graceful(shared: &Shared, out: &Out, cfg: &ClusterConfig) -> Move {
    let placement = shared.placement();
    let alive = shared.alive();
    let leaver = alive
        .iter()
        .copied()
        .max_by_key(|i| (placement.values().filter(|(h, _)| h == i).count(), std::cmp::Reverse(*i)))
        .unwrap_or(alive[0]);
    let name = shared.names[leaver].clone();
    let held = held_by(shared, leaver);
    shared.alive.write()[leaver] = false;
    out.event(&format!(
        "SHUTDOWN {name} gracefully: it stops its activations, then releases its {} leases",
        held.len()
    ));
    let t = Instant::now();
    let node = shared.nodes[leaver].clone();
    let shutdown = tokio::spawn(async move { node.shutdown().await });
    let took = watch_moves(shared, out, &name, held.clone(), t, cfg.lease_ttl * 10).await;
    if let Some(d) = took {
        out.event(&format!("handover: every shard of {name} is served again after {:.2} s", d.as_secs_f64()));
    }
    let _ = shutdown.await;
    Move { node: name, shards: held.len(), took }
}
