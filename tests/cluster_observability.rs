//! Spans and metrics of a running cluster, on the paused clock:
//!
//! - a capturing `tracing` subscriber (written here) sees a routed ask as a
//!   `request` span with its registry, key, shard, epoch, peer, attempt and
//!   outcome, its dispatch on the owner as a `dispatch` span, and lease
//!   acquisitions and a handover as `lease_*` spans; a subscriber that
//!   wants INFO and above is never asked to make a per-request span;
//! - a recording `metrics` recorder (written here) holds, after traffic, a
//!   rejection and lease events, exactly the numbers `inspect()` reports:
//!   every counter (the labelled maps as one metric with a `reason` or
//!   `kind` label), the peers, the owned shards and each table's use and
//!   cap; a second export after more traffic moves no counter backwards
//!   and counts nothing twice. Every exported name is in docs/operations.md.
#![allow(missing_docs)]

use std::collections::BTreeMap;
use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use axactor::actor;
use axactor_cluster::{
    ClusterInspect, ClusterNode, InMemoryOverlay, KeyedConfig, LeaseStore, MemoryLeaseStore, NodeId,
};
use axactor_tests::cluster::eventually;
use axactor_tests::keyed::{owns_all, pausable_owner, pinned_cfg};
use metrics::{Counter, Gauge, Histogram, Key, KeyName, Metadata, Recorder, SharedString, Unit};
use tracing::field::{Field, Visit};
use tracing::span::{Attributes, Id, Record};
use tracing::{Event, Level, Subscriber};

/// A std mutex that shrugs off poisoning (a failed assertion elsewhere).
#[derive(Debug, Default)]
struct Mutex<T>(std::sync::Mutex<T>);

impl<T> Mutex<T> {
    fn new(value: T) -> Mutex<T> {
        Mutex(std::sync::Mutex::new(value))
    }
    fn lock(&self) -> std::sync::MutexGuard<'_, T> {
        self.0.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
    }
}

const REG: &str = "observed";

#[derive(Debug)]
pub struct Echo {
    count: u64,
}

#[actor(remote)]
impl Echo {
    #[msg]
    fn hit(&mut self) {
        self.count += 1;
    }
    #[msg]
    fn count(&mut self) -> u64 {
        self.count
    }
    /// Holds the activation (its handler does not return within the test).
    #[msg]
    async fn stall(&mut self) {
        tokio::time::sleep(std::time::Duration::from_secs(24 * 3600)).await;
    }
}

// ---------------------------------------------------------------- spans

/// One span as the subscriber saw it: name, target and fields (values as
/// text; strings without quotes).
#[derive(Debug, Clone)]
struct SpanRec {
    name: &'static str,
    target: String,
    fields: BTreeMap<String, String>,
}

/// Records every span it is offered at or above `max` (more verbose levels
/// are refused, as a level filter would).
#[derive(Clone)]
struct Capture {
    max: Level,
    spans: Arc<Mutex<Vec<SpanRec>>>,
}

impl Capture {
    fn new(max: Level) -> Capture {
        Capture { max, spans: Arc::new(Mutex::new(Vec::new())) }
    }

    fn named(&self, name: &str) -> Vec<SpanRec> {
        self.spans.lock().iter().filter(|s| s.name == name).cloned().collect()
    }
}

struct Fields<'a>(&'a mut BTreeMap<String, String>);

impl Visit for Fields<'_> {
    fn record_str(&mut self, field: &Field, value: &str) {
        self.0.insert(field.name().to_string(), value.to_string());
    }
    fn record_debug(&mut self, field: &Field, value: &dyn std::fmt::Debug) {
        self.0.insert(field.name().to_string(), format!("{value:?}"));
    }
}

impl Subscriber for Capture {
    fn enabled(&self, metadata: &tracing::Metadata<'_>) -> bool {
        *metadata.level() <= self.max
    }
    fn max_level_hint(&self) -> Option<tracing::level_filters::LevelFilter> {
        Some(tracing::level_filters::LevelFilter::from_level(self.max))
    }
    fn new_span(&self, attrs: &Attributes<'_>) -> Id {
        let mut fields = BTreeMap::new();
        attrs.record(&mut Fields(&mut fields));
        let meta = attrs.metadata();
        let mut spans = self.spans.lock();
        spans.push(SpanRec { name: meta.name(), target: meta.target().to_string(), fields });
        Id::from_u64(spans.len() as u64)
    }
    fn record(&self, span: &Id, values: &Record<'_>) {
        let mut spans = self.spans.lock();
        if let Some(rec) = spans.get_mut(span.into_u64() as usize - 1) {
            values.record(&mut Fields(&mut rec.fields));
        }
    }
    fn record_follows_from(&self, _: &Id, _: &Id) {}
    fn event(&self, _: &Event<'_>) {}
    fn enter(&self, _: &Id) {}
    fn exit(&self, _: &Id) {}
}

/// b (the caller) and a (the owner of every shard), meshed.
async fn two_nodes() -> (ClusterNode, ClusterNode, axactor_cluster::Keyed<Echo>, axactor_cluster::Keyed<Echo>) {
    let net = InMemoryOverlay::new();
    let store: Arc<dyn LeaseStore> = Arc::new(MemoryLeaseStore::new());
    let a = ClusterNode::start(NodeId::new("a"), Arc::clone(&store), net.clone(), pinned_cfg()).await.expect("a");
    let ka = a.keyed(REG, KeyedConfig::new(4), |_: &str| Echo { count: 0 }).expect("keyed a");
    owns_all(&a, REG, 4).await;
    let b = ClusterNode::start(NodeId::new("b"), Arc::clone(&store), net.clone(), pinned_cfg()).await.expect("b");
    let kb = b.keyed(REG, KeyedConfig::new(4), |_: &str| Echo { count: 0 }).expect("keyed b");
    eventually(&b, "a is a peer", |s| s.peer("a").is_some()).await;
    (a, b, ka, kb)
}

#[tokio::test(start_paused = true)]
async fn a_routed_ask_and_lease_transitions_leave_spans() {
    let capture = Capture::new(Level::TRACE);
    let _default = tracing::subscriber::set_default(capture.clone());
    let (a, b, _ka, kb) = two_nodes().await;
    assert_eq!(kb.get("k1").count().await.expect("routed ask"), 0);

    let shard = kb.shard_of("k1");
    let epoch = a.inspect().shards.iter().find(|s| s.shard == shard).expect("a holds it").epoch;
    let requests = capture.named("request");
    let ask = requests
        .iter()
        .find(|s| s.fields.get("key").map(String::as_str) == Some("k1"))
        .unwrap_or_else(|| panic!("a request span for k1: {requests:#?}"));
    assert_eq!(ask.target, "axactor_cluster::route");
    let want = [
        ("kind", "ask".to_string()),
        ("registry", REG.to_string()),
        ("shard", shard.to_string()),
        ("epoch", epoch.to_string()),
        ("peer", a.session().to_string()),
        ("attempt", "1".to_string()),
        ("outcome", "ok".to_string()),
    ];
    for (field, value) in want {
        assert_eq!(ask.fields.get(field), Some(&value), "field {field} of {ask:#?}");
    }
    // The owner's side: dispatched under the same epoch, from b, accepted.
    let dispatched = capture.named("dispatch");
    let on_a = dispatched
        .iter()
        .find(|s| s.fields.get("key").map(String::as_str) == Some("k1"))
        .unwrap_or_else(|| panic!("a dispatch span for k1: {dispatched:#?}"));
    assert_eq!(on_a.fields.get("peer"), Some(&b.session().to_string()));
    assert_eq!(on_a.fields.get("epoch"), Some(&epoch.to_string()));
    assert_eq!(on_a.fields.get("outcome").map(String::as_str), Some("accepted"));
    assert_eq!(on_a.fields.get("kind").map(String::as_str), Some("ask"));

    // Lease acquisitions: one granted span per shard a holds, with its epoch.
    let granted: Vec<SpanRec> = capture
        .named("lease_acquire")
        .into_iter()
        .filter(|s| s.fields.get("outcome").map(String::as_str) == Some("granted"))
        .collect();
    for held in a.inspect().shards {
        assert!(
            granted.iter().any(|s| s.fields.get("shard") == Some(&held.shard.to_string())
                && s.fields.get("epoch") == Some(&held.epoch.to_string())
                && s.fields.get("registry").map(String::as_str) == Some(REG)),
            "no granted lease_acquire span for {held:?}: {granted:#?}"
        );
    }
    // Handshakes: established both ways, with the peer named.
    let handshakes = capture.named("handshake");
    assert!(
        handshakes.iter().any(|s| s.fields.get("outcome").map(String::as_str) == Some("established")
            && s.fields.get("peer") == Some(&a.session().to_string())),
        "{handshakes:#?}"
    );

    // A graceful shutdown releases a's leases: a release span per shard.
    a.shutdown().await;
    let released = capture.named("lease_release");
    assert_eq!(
        released.iter().filter(|s| s.fields.get("outcome").map(String::as_str) == Some("released")).count(),
        4,
        "{released:#?}"
    );
    b.shutdown().await;
}

#[tokio::test(start_paused = true)]
async fn a_handover_leaves_a_span() {
    let capture = Capture::new(Level::DEBUG);
    let _default = tracing::subscriber::set_default(capture.clone());
    let net = InMemoryOverlay::new();
    let store: Arc<dyn LeaseStore> = Arc::new(MemoryLeaseStore::new());
    // A short settle: a hands shards to b soon after b shows up.
    let cfg = axactor_cluster::ClusterConfig {
        rebalance_settle: std::time::Duration::from_millis(300),
        ..axactor_tests::cluster::fast_cfg()
    };
    let a = ClusterNode::start(NodeId::new("a"), Arc::clone(&store), net.clone(), cfg.clone()).await.expect("a");
    let _ka = a.keyed(REG, KeyedConfig::new(8), |_: &str| Echo { count: 0 }).expect("keyed a");
    owns_all(&a, REG, 8).await;
    let b = ClusterNode::start(NodeId::new("b"), Arc::clone(&store), net.clone(), cfg).await.expect("b");
    let _kb = b.keyed(REG, KeyedConfig::new(8), |_: &str| Echo { count: 0 }).expect("keyed b");
    eventually(&b, "b took shards over", |s| s.owned_count(REG) > 0).await;
    let handovers = capture.named("lease_handover");
    let first = handovers.first().expect("a lease_handover span");
    assert_eq!(first.target, "axactor_cluster::manager");
    assert_eq!(first.fields.get("registry").map(String::as_str), Some(REG));
    assert!(first.fields.contains_key("shard") && first.fields.contains_key("epoch"), "{first:#?}");
    // No per-renewal spans at DEBUG (they are TRACE).
    assert!(capture.named("lease_renew").is_empty());
    a.shutdown().await;
    b.shutdown().await;
}

#[tokio::test(start_paused = true)]
async fn an_info_subscriber_is_never_asked_for_per_request_spans() {
    let capture = Capture::new(Level::INFO);
    let _default = tracing::subscriber::set_default(capture.clone());
    let (a, b, _ka, kb) = two_nodes().await;
    for i in 0..20 {
        kb.get(format!("k{i}")).count().await.expect("routed ask");
    }
    let spans = capture.spans.lock().clone();
    assert!(spans.is_empty(), "spans below INFO were made: {spans:#?}");
    a.shutdown().await;
    b.shutdown().await;
}

// -------------------------------------------------------------- metrics

/// A gauge's value as `f64` bits.
#[derive(Debug, Default)]
struct GaugeCell(AtomicU64);

impl metrics::GaugeFn for GaugeCell {
    fn increment(&self, value: f64) {
        self.set(f64::from_bits(self.0.load(Ordering::Relaxed)) + value);
    }
    fn decrement(&self, value: f64) {
        self.set(f64::from_bits(self.0.load(Ordering::Relaxed)) - value);
    }
    fn set(&self, value: f64) {
        self.0.store(value.to_bits(), Ordering::Relaxed);
    }
}

/// A counter: `absolute` keeps the larger value, as exporters do.
#[derive(Debug, Default)]
struct CounterCell(AtomicU64);

impl metrics::CounterFn for CounterCell {
    fn increment(&self, value: u64) {
        self.0.fetch_add(value, Ordering::Relaxed);
    }
    fn absolute(&self, value: u64) {
        self.0.fetch_max(value, Ordering::Relaxed);
    }
}

/// Keeps every counter and gauge by `name{label=value,...}` (labels sorted).
#[derive(Default)]
struct Recorded {
    counters: Mutex<BTreeMap<String, Arc<CounterCell>>>,
    gauges: Mutex<BTreeMap<String, Arc<GaugeCell>>>,
}

fn key_text(key: &Key) -> String {
    let mut labels: Vec<String> = key.labels().map(|l| format!("{}={}", l.key(), l.value())).collect();
    labels.sort();
    format!("{}{{{}}}", key.name(), labels.join(","))
}

impl Recorder for Recorded {
    fn describe_counter(&self, _: KeyName, _: Option<Unit>, _: SharedString) {}
    fn describe_gauge(&self, _: KeyName, _: Option<Unit>, _: SharedString) {}
    fn describe_histogram(&self, _: KeyName, _: Option<Unit>, _: SharedString) {}
    fn register_counter(&self, key: &Key, _: &Metadata<'_>) -> Counter {
        Counter::from_arc(Arc::clone(self.counters.lock().entry(key_text(key)).or_default()))
    }
    fn register_gauge(&self, key: &Key, _: &Metadata<'_>) -> Gauge {
        Gauge::from_arc(Arc::clone(self.gauges.lock().entry(key_text(key)).or_default()))
    }
    fn register_histogram(&self, _: &Key, _: &Metadata<'_>) -> Histogram {
        Histogram::noop()
    }
}

impl Recorded {
    fn counters(&self) -> BTreeMap<String, u64> {
        self.counters.lock().iter().map(|(k, v)| (k.clone(), v.0.load(Ordering::Relaxed))).collect()
    }
    fn gauges(&self) -> BTreeMap<String, f64> {
        self.gauges.lock().iter().map(|(k, v)| (k.clone(), f64::from_bits(v.0.load(Ordering::Relaxed)))).collect()
    }
}

/// What the recorder must hold for `snap`, written from the docs' rules:
/// `axactor_cluster_{counter}_total{node}` per plain counter, the maps with
/// a `reason` label (`leases`: `axactor_cluster_lease_events_total` with
/// `kind`), and the gauges.
fn expected(snap: &ClusterInspect, registries: &[&str]) -> (BTreeMap<String, u64>, BTreeMap<String, f64>) {
    let node = snap.node.as_str();
    let c = &snap.counters;
    let maps: [(&str, &str, &BTreeMap<&'static str, u64>); 5] = [
        ("handshake_failures", "reason", &c.handshake_failures),
        ("frame_rejections", "reason", &c.frame_rejections),
        ("dropped", "reason", &c.dropped),
        ("requests_rejected", "reason", &c.requests_rejected),
        ("lease_events", "kind", &c.leases),
    ];
    let mut counters = BTreeMap::new();
    for (name, label, map) in maps {
        for (value, n) in map {
            let mut labels = [format!("{label}={value}"), format!("node={node}")];
            labels.sort();
            counters.insert(format!("axactor_cluster_{name}_total{{{}}}", labels.join(",")), *n);
        }
    }
    // The plain counters, read off `Counters`' Debug form: a field added to
    // `Counters` is expected here without editing this test.
    let debug = format!("{c:?}");
    let body = debug.split_once(" { ").expect("a struct").1;
    let map_fields = ["handshake_failures", "frame_rejections", "dropped", "requests_rejected", "leases"];
    let mut plain = 0;
    for part in body.split(", ") {
        let Some((field, value)) = part.split_once(": ") else { continue };
        let field = field.trim_start_matches(['{', ' ']);
        if map_fields.contains(&field) || !field.chars().all(|ch| ch.is_ascii_lowercase() || ch == '_') {
            continue;
        }
        let Ok(value) = value.trim_end_matches([' ', '}']).parse::<u64>() else {
            panic!("counter {field} is neither a number nor a known map: {value}")
        };
        counters.insert(format!("axactor_cluster_{field}_total{{node={node}}}"), value);
        plain += 1;
    }
    assert!(plain >= 14, "parsed {plain} plain counters from {debug}");
    let mut gauges = BTreeMap::new();
    gauges.insert(format!("axactor_cluster_peers{{node={node}}}"), snap.peers.len() as f64);
    for registry in registries {
        gauges.insert(
            format!("axactor_cluster_owned_shards{{node={node},registry={registry}}}"),
            snap.owned_count(registry) as f64,
        );
    }
    for t in &snap.tables {
        gauges.insert(format!("axactor_cluster_table_entries{{node={node},table={}}}", t.table), t.len as f64);
        gauges.insert(format!("axactor_cluster_table_capacity{{node={node},table={}}}", t.table), t.cap as f64);
    }
    (counters, gauges)
}

/// Exports `node` into `recorder` and returns the snapshot taken right
/// after (nothing runs in between on this single-threaded runtime).
fn export(node: &ClusterNode, recorder: &Recorded) -> ClusterInspect {
    metrics::with_local_recorder(recorder, || node.export_metrics());
    node.inspect()
}

#[tokio::test(start_paused = true)]
async fn exported_metrics_match_inspect_after_traffic_a_rejection_and_lease_events() {
    // b owns the registry and refuses what does not fit its one-slot mailbox.
    let cfg = KeyedConfig::new(2).mailbox_capacity(1);
    let host = |b: &ClusterNode| b.keyed(REG, cfg.clone(), |_: &str| Echo { count: 0 }).expect("keyed b");
    let (a, b, env, _kb) = pausable_owner(REG, 2, host).await;
    let ka = a.keyed(REG, cfg, |_: &str| Echo { count: 0 }).expect("keyed a");
    let target = ka.get("k");
    assert_eq!(target.count().await.expect("first ask"), 0);
    // Tells pile up while b is held; on resuming, the activation stalls
    // and its one-slot mailbox refuses what does not fit (`mailbox_full`).
    env.pause();
    target.stall().await.expect("tell sent");
    for _ in 0..20 {
        target.hit().await.expect("tell sent");
    }
    tokio::time::sleep(std::time::Duration::from_millis(1)).await;
    env.resume();
    let other = ka.get("other");
    other.count().await.expect("count");
    let snap = b.inspect();
    assert!(snap.counters.requests_rejected.get("mailbox_full").copied().unwrap_or(0) > 0, "{:?}", snap.counters);
    assert!(snap.counters.leases.get("acquired").copied().unwrap_or(0) >= 2);

    let recorder = Recorded::default();
    let snap = export(&b, &recorder);
    let (want_counters, want_gauges) = expected(&snap, &[REG]);
    assert_eq!(recorder.counters(), want_counters);
    assert_eq!(recorder.gauges(), want_gauges);

    // More traffic and a release at a's shutdown: b's counters only grow,
    // and exporting again (to the same recorder) counts nothing twice.
    let before = recorder.counters();
    for i in 0..10 {
        ka.get(format!("m{i}")).count().await.expect("ask");
    }
    a.shutdown().await;
    let snap = export(&b, &recorder);
    let snap_again = export(&b, &recorder);
    assert_eq!(snap.counters, snap_again.counters);
    let (want_counters, want_gauges) = expected(&snap, &[REG]);
    assert_eq!(recorder.counters(), want_counters);
    assert_eq!(recorder.gauges(), want_gauges);
    for (key, old) in before {
        assert!(recorder.counters()[&key] >= old, "{key} went backwards");
    }

    // Every exported name is in docs/operations.md's metrics table.
    let docs = std::fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join("../docs/operations.md"))
        .expect("docs/operations.md");
    let names: std::collections::BTreeSet<String> = recorder
        .counters()
        .keys()
        .chain(recorder.gauges().keys())
        .map(|k| k.split('{').next().unwrap_or_default().to_string())
        .collect();
    for name in names {
        assert!(docs.contains(&format!("| `{name}` |")), "docs/operations.md has no row for {name}");
    }
    b.shutdown().await;
}
