//! Activation probes for the cluster behaviour tests: a remote actor that
//! logs its lifecycle, a shared log with a total order, and the checker of
//! the single-activation promise.
//!
//! Every event gets a sequence number from one mutex-guarded log, so the
//! order of the log is the order in which the events happened (on any
//! runtime: the push of an activation's `on_stop` happens before the lease
//! can be released, which happens before the next activation's `on_start`).
//! The instant (tokio's clock, paused in most tests) is recorded as well,
//! for measurements; orderings are always judged by the sequence number,
//! because on the paused clock many events share one instant.
//!
//! Also here: the node helpers those tests share (a start helper, a bounded
//! wait on virtual time, a store poller).

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use axactor::{Context, ExitReason, actor};
use axactor_cluster::{
    ClusterConfig, ClusterInspect, ClusterNode, InMemoryOverlay, Keyed, KeyedConfig, LeaseStore, MemoryLeaseStore,
    NodeId, SessionId,
};
use tokio::time::Instant;

/// What happened to an activation (or, for [`EventKind::Note`], to a test).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum EventKind {
    /// `on_start` ran.
    Start,
    /// A message was handled; `count` is the activation's counter after it.
    Handled {
        /// The counter after the message.
        count: u64,
    },
    /// `on_stop` ran (to its end) with this reason.
    Stop(ExitReason),
    /// A test-side observation (a `DownEvent` received, ...), for ordering.
    Note(String),
}

/// One logged event.
#[derive(Debug, Clone)]
pub struct Event {
    /// Position in the log: the total order of events.
    pub seq: u64,
    /// Tokio's clock when it was logged.
    pub at: Instant,
    /// The node the activation runs on (empty for notes).
    pub node: String,
    /// The key (or singleton name).
    pub key: String,
    /// Unique id of the activation (0 for notes).
    pub uid: u64,
    /// The lease epoch from `ctx.fence()` at `on_start` (0 without a fence).
    pub epoch: u64,
    /// What happened.
    pub kind: EventKind,
}

#[derive(Debug, Default)]
struct LogInner {
    events: Mutex<Vec<Event>>,
    next_uid: AtomicU64,
    stop_delay: Duration,
}

/// The shared, totally ordered event log of every probe in a test.
#[derive(Debug, Clone, Default)]
pub struct ActivationLog {
    inner: Arc<LogInner>,
}

impl ActivationLog {
    /// An empty log.
    pub fn new() -> ActivationLog {
        ActivationLog::default()
    }

    /// An empty log whose probes take `delay` (tokio time) in `on_stop`
    /// before logging their `Stop`, like an activation flushing its state:
    /// a next activation started before the old one's `on_stop` returned
    /// (say, a lease released before the stop finished) then shows as an
    /// overlap.
    pub fn with_stop_delay(delay: Duration) -> ActivationLog {
        ActivationLog { inner: Arc::new(LogInner { stop_delay: delay, ..LogInner::default() }) }
    }

    fn events_mut(&self) -> MutexGuard<'_, Vec<Event>> {
        self.inner.events.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    fn push(&self, node: &str, key: &str, uid: u64, epoch: u64, kind: EventKind) -> u64 {
        let mut events = self.events_mut();
        let seq = events.len() as u64;
        events.push(Event { seq, at: Instant::now(), node: node.to_owned(), key: key.to_owned(), uid, epoch, kind });
        seq
    }

    /// Logs a test-side observation about `key`; returns its sequence number.
    pub fn note(&self, key: &str, what: impl Into<String>) -> u64 {
        self.push("", key, 0, 0, EventKind::Note(what.into()))
    }

    /// A snapshot of every event so far, in order.
    pub fn events(&self) -> Vec<Event> {
        self.events_mut().clone()
    }

    /// The events of `key`, in order.
    pub fn events_of(&self, key: &str) -> Vec<Event> {
        self.events_mut().iter().filter(|e| e.key == key).cloned().collect()
    }

    /// The `Start` events of `key`, in order.
    pub fn starts_of(&self, key: &str) -> Vec<Event> {
        self.events_of(key).into_iter().filter(|e| e.kind == EventKind::Start).collect()
    }

    /// The `Stop` event of activation `uid`, if it ran `on_stop`.
    pub fn stop_of(&self, uid: u64) -> Option<Event> {
        self.events_mut().iter().find(|e| e.uid == uid && matches!(e.kind, EventKind::Stop(_))).cloned()
    }

    /// The activations of `key` that started and have not logged a stop.
    pub fn live_of(&self, key: &str) -> Vec<Event> {
        let events = self.events_of(key);
        events
            .iter()
            .filter(|s| s.kind == EventKind::Start)
            .filter(|s| !events.iter().any(|e| e.uid == s.uid && matches!(e.kind, EventKind::Stop(_))))
            .cloned()
            .collect()
    }

    /// A factory for a keyed registry on the node named `node`.
    pub fn factory(&self, node: &str) -> impl Fn(&str) -> Probe + Send + Sync + 'static {
        let (log, node) = (self.clone(), node.to_owned());
        move |key: &str| Probe::new(&log, &node, key)
    }

    /// A factory for the singleton `name` on the node named `node`.
    pub fn singleton_factory(&self, node: &str, name: &str) -> impl Fn() -> Probe + Send + Sync + 'static {
        let (log, node, name) = (self.clone(), node.to_owned(), name.to_owned());
        move || Probe::new(&log, &node, &name)
    }
}

/// What `Probe::incr` answers: which activation served the ask, and its
/// counter after it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Served {
    /// The node the activation runs on.
    pub node: String,
    /// The activation's unique id.
    pub uid: u64,
    /// The lease epoch it runs under.
    pub epoch: u64,
    /// Its counter after this ask.
    pub count: u64,
}

impl From<(String, u64, u64, u64)> for Served {
    fn from((node, uid, epoch, count): (String, u64, u64, u64)) -> Served {
        Served { node, uid, epoch, count }
    }
}

/// A cluster activation that logs its lifecycle and every message into an
/// [`ActivationLog`], and counts messages. State is not carried over: a new
/// activation (after a handover, a failover or passivation) starts at 0.
#[derive(Debug)]
pub struct Probe {
    log: ActivationLog,
    node: String,
    key: String,
    uid: u64,
    epoch: u64,
    count: u64,
}

impl Probe {
    fn new(log: &ActivationLog, node: &str, key: &str) -> Probe {
        let uid = log.inner.next_uid.fetch_add(1, Ordering::Relaxed) + 1;
        Probe { log: log.clone(), node: node.to_owned(), key: key.to_owned(), uid, epoch: 0, count: 0 }
    }

    fn handled(&mut self) {
        self.count += 1;
        self.log.push(&self.node, &self.key, self.uid, self.epoch, EventKind::Handled { count: self.count });
    }
}

#[actor(remote)]
impl Probe {
    /// Counts one (a tell).
    #[msg]
    fn bump(&mut self) {
        self.handled();
    }

    /// Counts one and says who served it: `(node, uid, epoch, count)`.
    #[msg]
    fn incr(&mut self) -> (String, u64, u64, u64) {
        self.handled();
        (self.node.clone(), self.uid, self.epoch, self.count)
    }

    /// The activation's fence as `(registry, shard, epoch)`.
    #[msg]
    fn fence(&mut self, ctx: &mut Context) -> Option<(String, u32, u64)> {
        self.handled();
        ctx.fence().map(|f| (f.registry, f.shard, f.epoch))
    }

    async fn on_start(&mut self, ctx: &mut Context) {
        self.epoch = ctx.fence().map_or(0, |f| f.epoch);
        self.log.push(&self.node, &self.key, self.uid, self.epoch, EventKind::Start);
    }

    async fn on_stop(&mut self, _ctx: &mut Context, reason: &ExitReason) {
        let delay = self.log.inner.stop_delay;
        if !delay.is_zero() {
            tokio::time::sleep(delay).await;
        }
        self.log.push(&self.node, &self.key, self.uid, self.epoch, EventKind::Stop(reason.clone()));
    }
}

/// One activation as the checker sees it.
#[derive(Debug, Clone)]
pub struct Interval {
    /// The activation's id.
    pub uid: u64,
    /// Its node.
    pub node: String,
    /// Its epoch.
    pub epoch: u64,
    /// The sequence number of its `Start` (`None`: events without a start).
    pub start: Option<u64>,
    /// The sequence number of its last event (its `Stop`, or the last
    /// message it handled if it was killed).
    pub last: u64,
    /// Its stop reason, if `on_stop` ran.
    pub stop: Option<ExitReason>,
    /// Messages it handled.
    pub handled: u64,
}

/// The activation intervals of every key, each key's sorted by start.
pub fn intervals(events: &[Event]) -> BTreeMap<String, Vec<Interval>> {
    let mut by_uid: BTreeMap<u64, Interval> = BTreeMap::new();
    let mut key_of: BTreeMap<u64, String> = BTreeMap::new();
    for e in events.iter().filter(|e| e.uid != 0) {
        key_of.entry(e.uid).or_insert_with(|| e.key.clone());
        let iv = by_uid.entry(e.uid).or_insert_with(|| Interval {
            uid: e.uid,
            node: e.node.clone(),
            epoch: e.epoch,
            start: None,
            last: e.seq,
            stop: None,
            handled: 0,
        });
        iv.last = iv.last.max(e.seq);
        match &e.kind {
            EventKind::Start => iv.start = Some(e.seq),
            EventKind::Handled { .. } => iv.handled += 1,
            EventKind::Stop(reason) => iv.stop = Some(reason.clone()),
            EventKind::Note(_) => {}
        }
    }
    let mut out: BTreeMap<String, Vec<Interval>> = BTreeMap::new();
    for (uid, iv) in by_uid {
        out.entry(key_of[&uid].clone()).or_default().push(iv);
    }
    for ivs in out.values_mut() {
        ivs.sort_by_key(|iv| iv.start.unwrap_or(iv.last));
    }
    out
}

/// The single-activation checker: per key, every activation starts with
/// `on_start`, logs nothing after `on_stop`, and ends (its last event)
/// strictly before the next activation of the key starts; the counter a
/// handled message reports is the activation's own message count (state is
/// per activation, starting at 0); and epochs never go down from one
/// activation of a key to the next.
///
/// # Errors
/// A report of every violation.
pub fn check_single_activation(events: &[Event]) -> Result<(), String> {
    let mut report = String::new();
    for (key, ivs) in intervals(events) {
        for iv in &ivs {
            if iv.start.is_none() {
                let _ = writeln!(report, "{key}: activation {} on {} logged events without on_start", iv.uid, iv.node);
            }
        }
        for pair in ivs.windows(2) {
            let (old, new) = (&pair[0], &pair[1]);
            let new_start = new.start.unwrap_or(new.last);
            if old.last >= new_start {
                let _ = writeln!(
                    report,
                    "{key}: activations overlap: {} on {} (epoch {}, last event #{}) and {} on {} (epoch {}, start #{})",
                    old.uid, old.node, old.epoch, old.last, new.uid, new.node, new.epoch, new_start
                );
            }
            if new.epoch < old.epoch {
                let _ = writeln!(
                    report,
                    "{key}: epoch went down: {} on {} at {} then {} on {} at {}",
                    old.uid, old.node, old.epoch, new.uid, new.node, new.epoch
                );
            }
        }
    }
    let mut seen: BTreeMap<u64, u64> = BTreeMap::new();
    let mut stopped: BTreeMap<u64, u64> = BTreeMap::new();
    for e in events.iter().filter(|e| e.uid != 0) {
        match &e.kind {
            EventKind::Handled { count } => {
                let n = seen.entry(e.uid).or_default();
                *n += 1;
                if *count != *n {
                    let _ = writeln!(report, "{}: activation {} reported count {count} for message {n}", e.key, e.uid);
                }
            }
            EventKind::Stop(_) => {
                stopped.insert(e.uid, e.seq);
            }
            _ => {}
        }
        if let Some(stop) = stopped.get(&e.uid)
            && *stop < e.seq
        {
            let _ = writeln!(report, "{}: activation {} logged {:?} after on_stop", e.key, e.uid, e.kind);
        }
    }
    if report.is_empty() { Ok(()) } else { Err(report) }
}

/// The lease name of `shard` of `registry` (of `shard_count` shards) in the store.
pub fn lease_name(registry: &str, shard_count: usize, shard: u32) -> String {
    axactor_cluster::shard::lease_name(registry, shard_count as u32, shard)
}

/// Starts a node named `name`.
///
/// # Panics
/// If it does not start.
pub async fn start_node(
    name: &str,
    store: &Arc<dyn LeaseStore>,
    net: &InMemoryOverlay,
    cfg: &ClusterConfig,
) -> ClusterNode {
    ClusterNode::start(NodeId::new(name), Arc::clone(store), net.clone(), cfg.clone()).await.expect("node starts")
}

/// Default-scale timings (lease_ttl 10 s, renew 3 s, heartbeat 1 s, request
/// timeout 5 s, settle 5 s) with a token: free on the paused clock.
pub fn paused_cfg() -> ClusterConfig {
    ClusterConfig { auth_token: Some(crate::cluster::TOKEN.into()), ..ClusterConfig::default() }
}

/// Waits (tokio time, checking every 50 ms, at most `bound`) until `check`
/// holds.
///
/// # Panics
/// If it does not within the bound: the test fails, naming `what`.
pub async fn wait_until(bound: Duration, what: &str, mut check: impl FnMut() -> bool) {
    let deadline = Instant::now() + bound;
    loop {
        if check() {
            return;
        }
        assert!(Instant::now() < deadline, "{what}: not reached within {bound:?}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// Waits until every node in `nodes` has the others as authenticated peers.
///
/// # Panics
/// If they do not within 30 s of tokio time.
pub async fn mesh(nodes: &[&ClusterNode]) {
    let want = |n: &ClusterNode| -> Vec<SessionId> {
        nodes.iter().filter(|o| o.id() != n.id()).map(|o| o.session().clone()).collect()
    };
    wait_until(Duration::from_secs(30), "full mesh", || {
        nodes.iter().all(|n| {
            let have: Vec<SessionId> = n.inspect().peers.iter().map(|p| p.session.clone()).collect();
            have == want(n)
        })
    })
    .await;
}

/// A cluster for one keyed registry of [`Probe`]s: its store and network,
/// and per node (in order of `names`) the node and its registry handle.
#[derive(Debug)]
pub struct ProbeCluster {
    /// The shared lease store.
    pub store: Arc<dyn LeaseStore>,
    /// The shared network.
    pub net: InMemoryOverlay,
    /// The nodes.
    pub nodes: Vec<ClusterNode>,
    /// Each node's handle of the registry.
    pub keyed: Vec<Keyed<Probe>>,
}

impl ProbeCluster {
    /// Starts `names` with `cfg`, waits for the full mesh, registers
    /// `registry` with `keyed_cfg` on each (probes logging into `log`) and
    /// lets placement settle (30 s of tokio time).
    ///
    /// # Panics
    /// If a node does not start or the registry cannot be registered.
    pub async fn start(
        names: &[&str],
        cfg: &ClusterConfig,
        registry: &str,
        keyed_cfg: &KeyedConfig,
        log: &ActivationLog,
    ) -> ProbeCluster {
        let store: Arc<dyn LeaseStore> = Arc::new(MemoryLeaseStore::new());
        let net = InMemoryOverlay::new();
        let mut nodes = Vec::new();
        for name in names {
            nodes.push(start_node(name, &store, &net, cfg).await);
        }
        mesh(&nodes.iter().collect::<Vec<_>>()).await;
        let keyed = nodes
            .iter()
            .map(|n| n.keyed(registry, keyed_cfg.clone(), log.factory(n.id().as_str())).expect("registry"))
            .collect();
        tokio::time::sleep(Duration::from_secs(30)).await;
        ProbeCluster { store, net, nodes, keyed }
    }

    /// The node named `name`.
    ///
    /// # Panics
    /// If there is none.
    pub fn node(&self, name: &str) -> &ClusterNode {
        self.nodes.iter().find(|n| n.id().as_str() == name).expect("a node of that name")
    }

    /// The registry handle of the node named `name`.
    ///
    /// # Panics
    /// If there is none.
    pub fn keyed(&self, name: &str) -> &Keyed<Probe> {
        let i = self.nodes.iter().position(|n| n.id().as_str() == name).expect("a node of that name");
        &self.keyed[i]
    }

    /// The first key `{prefix}-{i}` whose shard the node named `owner` holds.
    ///
    /// # Panics
    /// If none of 1,000 candidates is.
    pub fn key_owned_by(&self, owner: &str, prefix: &str) -> String {
        let node = self.node(owner);
        let registry = self.keyed[0].registry().to_owned();
        let snap = node.inspect();
        (0..1000)
            .map(|i| format!("{prefix}-{i}"))
            .find(|k| held_epoch(&snap, &registry, self.keyed[0].shard_of(k)).is_some())
            .expect("a key on that node")
    }

    /// Shuts down every node that is still running.
    pub async fn shutdown(&self) {
        for n in &self.nodes {
            n.shutdown().await;
        }
    }
}

/// Asks `key` through `keyed` (retrying every 10 ms on errors and on
/// answers from `not_on`) until a node other than `not_on` answers; returns
/// the answer and when it came.
///
/// # Panics
/// If none does within `bound` of tokio time.
pub async fn served_elsewhere(keyed: &Keyed<Probe>, key: &str, not_on: &str, bound: Duration) -> (Served, Instant) {
    let deadline = Instant::now() + bound;
    loop {
        if let Ok(s) = keyed.get(key).incr().await {
            let s = Served::from(s);
            if s.node != not_on {
                return (s, Instant::now());
            }
        }
        assert!(Instant::now() < deadline, "{key}: not served off {not_on} within {bound:?}");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

/// The node among `nodes` that owns `shard` of `registry` (by `inspect`).
pub fn owner_of<'a>(nodes: &[&'a ClusterNode], registry: &str, shard: u32) -> Option<&'a ClusterNode> {
    nodes.iter().copied().find(|n| n.inspect().shards.iter().any(|s| s.registry == registry && s.shard == shard))
}

/// The epoch `snap` holds `shard` of `registry` at.
pub fn held_epoch(snap: &ClusterInspect, registry: &str, shard: u32) -> Option<u64> {
    snap.shards.iter().find(|s| s.registry == registry && s.shard == shard).map(|s| s.epoch)
}

/// What a [`StorePoller`] saw of one lease: each change of holder or epoch,
/// with the first and last instant it was seen.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Sighting {
    /// The holder and epoch (`None`: free).
    pub lease: Option<(SessionId, u64)>,
    /// First seen.
    pub first: Instant,
    /// Last seen.
    pub last: Instant,
}

/// Polls leases in the store every `period` of tokio time and keeps their
/// history; stops when dropped.
#[derive(Debug)]
pub struct StorePoller {
    history: Arc<Mutex<BTreeMap<String, Vec<Sighting>>>>,
    task: tokio::task::JoinHandle<()>,
}

impl StorePoller {
    /// Starts polling `names` in `store`.
    pub fn start(store: &Arc<dyn LeaseStore>, names: Vec<String>, period: Duration) -> StorePoller {
        let history: Arc<Mutex<BTreeMap<String, Vec<Sighting>>>> = Arc::default();
        let (store, h) = (Arc::clone(store), Arc::clone(&history));
        let task = tokio::spawn(async move {
            loop {
                for name in &names {
                    let Ok(current) = store.get(name).await else { continue };
                    let lease = current.map(|l| (l.holder, l.epoch.0));
                    let now = Instant::now();
                    let mut h = h.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
                    let seen = h.entry(name.clone()).or_default();
                    match seen.last_mut() {
                        Some(s) if s.lease == lease => s.last = now,
                        _ => seen.push(Sighting { lease, first: now, last: now }),
                    }
                }
                tokio::time::sleep(period).await;
            }
        });
        StorePoller { history, task }
    }

    /// The history of `name` so far.
    pub fn history(&self, name: &str) -> Vec<Sighting> {
        self.history.lock().unwrap_or_else(std::sync::PoisonError::into_inner).get(name).cloned().unwrap_or_default()
    }

    /// The last instant `name` was seen held by `holder` (any epoch).
    pub fn last_held_by(&self, name: &str, holder: &SessionId) -> Option<Instant> {
        self.history(name).iter().filter(|s| s.lease.as_ref().is_some_and(|(h, _)| h == holder)).map(|s| s.last).max()
    }
}

impl Drop for StorePoller {
    fn drop(&mut self) {
        self.task.abort();
    }
}
