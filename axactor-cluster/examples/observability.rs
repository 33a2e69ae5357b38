//! What an operator can see of a cluster: `tracing` spans, the
//! `inspect()` numbers through the `metrics` facade, and the event stream.
//!
//! Run with
//! `cargo run -p axactor-cluster --example observability --features metrics`
//! (about a second, exits 0). Three nodes in one process over the
//! in-memory overlay, and, for a moment, a fourth with the wrong token.
//!
//! - **Spans**: a `tracing-subscriber` fmt layer prints each span as it
//!   closes, with its fields: `request` (a routed ask: registry, key,
//!   shard, epoch, peer, attempt, outcome), `lease_acquire`,
//!   `lease_handover`, `lease_release` and `handshake`. The filter enables
//!   DEBUG for the cluster's modules only; per-request spans are DEBUG
//!   (client) and TRACE (the owner's `dispatch`), so a production INFO
//!   filter never builds them.
//! - **Events**: one task per node prints its `subscribe_events()` stream:
//!   shards acquired, handed over, stopped and released with their epochs,
//!   peers up and down, the wrong-token node's authentication failures.
//! - **Metrics**: a small recorder written here (in production: a
//!   Prometheus or StatsD exporter) receives each node's
//!   `export_metrics()`; the non-zero counters and the gauges are printed
//!   at the end. Names and labels: docs/operations.md, "Metrics".

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axactor::actor;
use axactor_cluster::{
    ClusterConfig, ClusterEvent, ClusterNode, InMemoryOverlay, Keyed, KeyedConfig, LeaseStore, MemoryLeaseStore, NodeId,
};
use metrics::{Counter, Gauge, Histogram, Key, KeyName, Metadata, Recorder, SharedString, Unit};
use tracing_subscriber::fmt::format::FmtSpan;
use tracing_subscriber::layer::SubscriberExt;
use tracing_subscriber::util::SubscriberInitExt;
use tracing_subscriber::{Layer, filter};

const REG: &str = "counters";
const TOKEN: &str = "observability example: a shared secret, 32+ characters";

/// A counter per key.
#[derive(Debug, Default)]
pub struct Tally {
    n: u64,
}

#[actor(remote)]
impl Tally {
    /// Adds one; returns the count.
    #[msg]
    fn incr(&mut self) -> u64 {
        self.n += 1;
        self.n
    }
}

/// Keeps the last value of every counter and gauge, by
/// `name{label=value,...}`.
#[derive(Debug, Clone, Default)]
struct Printed {
    values: Arc<Mutex<BTreeMap<String, Arc<Value>>>>,
}

#[derive(Debug, Default)]
struct Value {
    bits: AtomicU64,
    gauge: std::sync::atomic::AtomicBool,
}

impl metrics::CounterFn for Value {
    fn increment(&self, value: u64) {
        self.bits.fetch_add(value, Ordering::Relaxed);
    }
    fn absolute(&self, value: u64) {
        self.bits.fetch_max(value, Ordering::Relaxed);
    }
}

impl metrics::GaugeFn for Value {
    fn increment(&self, value: f64) {
        self.set(f64::from_bits(self.bits.load(Ordering::Relaxed)) + value);
    }
    fn decrement(&self, value: f64) {
        self.set(f64::from_bits(self.bits.load(Ordering::Relaxed)) - value);
    }
    fn set(&self, value: f64) {
        self.gauge.store(true, Ordering::Relaxed);
        self.bits.store(value.to_bits(), Ordering::Relaxed);
    }
}

impl Printed {
    fn value(&self, key: &Key) -> Arc<Value> {
        let labels: Vec<String> = key.labels().map(|l| format!("{}={}", l.key(), l.value())).collect();
        let text = format!("{}{{{}}}", key.name(), labels.join(","));
        let mut values = self.values.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        Arc::clone(values.entry(text).or_default())
    }

    fn print(&self) {
        let values = self.values.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        for (key, v) in values.iter() {
            let bits = v.bits.load(Ordering::Relaxed);
            if v.gauge.load(Ordering::Relaxed) {
                println!("  {key} = {}", f64::from_bits(bits));
            } else if bits > 0 {
                println!("  {key} = {bits}");
            }
        }
    }
}

impl Recorder for Printed {
    fn describe_counter(&self, _: KeyName, _: Option<Unit>, _: SharedString) {}
    fn describe_gauge(&self, _: KeyName, _: Option<Unit>, _: SharedString) {}
    fn describe_histogram(&self, _: KeyName, _: Option<Unit>, _: SharedString) {}
    fn register_counter(&self, key: &Key, _: &Metadata<'_>) -> Counter {
        Counter::from_arc(self.value(key))
    }
    fn register_gauge(&self, key: &Key, _: &Metadata<'_>) -> Gauge {
        Gauge::from_arc(self.value(key))
    }
    fn register_histogram(&self, _: &Key, _: &Metadata<'_>) -> Histogram {
        Histogram::noop()
    }
}

/// Starts `name`, prints its events from now on, and hosts the registry.
async fn node(
    name: &'static str,
    store: &Arc<dyn LeaseStore>,
    net: &InMemoryOverlay,
    cfg: &ClusterConfig,
) -> Result<(ClusterNode, Keyed<Tally>, tokio::task::JoinHandle<()>), Box<dyn std::error::Error>> {
    let node = ClusterNode::start(NodeId::new(name), Arc::clone(store), net.clone(), cfg.clone()).await?;
    let mut events = node.subscribe_events();
    let printer = tokio::spawn(async move {
        while let Some(event) = events.recv().await {
            match event {
                ClusterEvent::Node(e) => println!("[events {name}] {e:?}"),
                ClusterEvent::Lagged(n) => println!("[events {name}] missed {n} events"),
                other => println!("[events {name}] {other:?}"),
            }
        }
        println!("[events {name}] stream ended");
    });
    let keyed = node.keyed(REG, KeyedConfig::new(8), |_: &str| Tally::default())?;
    Ok((node, keyed, printer))
}

/// Waits (at most 10 s) until `check` holds.
async fn until(what: &str, check: impl Fn() -> bool) {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    while !check() {
        if tokio::time::Instant::now() >= deadline {
            println!("(gave up waiting: {what})");
            return;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    // Spans of the cluster's modules at DEBUG, printed when they close.
    let spans = filter::Targets::new()
        .with_target("axactor_cluster::route", tracing::Level::DEBUG)
        .with_target("axactor_cluster::manager", tracing::Level::DEBUG)
        .with_target("axactor_cluster::node::conn", tracing::Level::DEBUG)
        .with_default(tracing::Level::WARN);
    let fmt = tracing_subscriber::fmt::layer().with_span_events(FmtSpan::CLOSE).with_target(false).without_time();
    tracing_subscriber::registry().with(fmt.with_filter(spans)).init();
    let recorder = Printed::default();
    metrics::set_global_recorder(recorder.clone())?;

    let net = InMemoryOverlay::new();
    let store: Arc<dyn LeaseStore> = Arc::new(MemoryLeaseStore::new());
    let cfg = ClusterConfig {
        auth_token: Some(TOKEN.into()),
        heartbeat_interval: Duration::from_millis(100),
        renew_interval: Duration::from_millis(300),
        lease_ttl: Duration::from_secs(1),
        lease_store_timeout: Duration::from_millis(500),
        node_ttl: Duration::from_secs(2),
        rebalance_settle: Duration::from_millis(300),
        ..ClusterConfig::default()
    };

    println!("== a and b start and share the registry's 8 shards");
    let (a, ka, pa) = node("a", &store, &net, &cfg).await?;
    let (b, _kb, pb) = node("b", &store, &net, &cfg).await?;
    until("a and b hold shards", || a.inspect().owned_count(REG) > 0 && b.inspect().owned_count(REG) > 0).await;

    println!("== c joins: shards are handed over to it");
    let (c, _kc, pc) = node("c", &store, &net, &cfg).await?;
    until("c holds shards", || c.inspect().owned_count(REG) > 0).await;

    println!("== asks from a: the remote ones are `request` spans");
    for key in ["apple", "pear", "plum", "fig", "kiwi", "lime"] {
        ka.get(key).incr().await?;
    }

    println!("== x, with another token, tries to join: authentication failures");
    let wrong = ClusterConfig { auth_token: Some("x's token is not the cluster's, 32+ chars".into()), ..cfg.clone() };
    let x = ClusterNode::start(NodeId::new("x"), Arc::clone(&store), net.clone(), wrong).await?;
    until("a saw x fail", || a.inspect().counters.member_auth_failures > 0).await;
    x.shutdown().await;

    println!("== metrics (non-zero counters and every gauge)");
    for n in [&a, &b, &c] {
        n.export_metrics();
    }
    recorder.print();

    println!("== c leaves gracefully: its shards are released and taken over");
    c.shutdown().await;
    until("a and b hold every shard", || a.inspect().owned_count(REG) + b.inspect().owned_count(REG) == 8).await;
    a.shutdown().await;
    b.shutdown().await;
    for printer in [pa, pb, pc] {
        printer.await?;
    }
    println!("done");
    Ok(())
}
