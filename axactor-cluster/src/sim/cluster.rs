//! The simulated cluster: real [`ClusterNode`]s over one
//! [`InMemoryOverlay`] and the simulation's lease store, each node in a
//! seeded, pausable [`Env`]; starting, crashing, pausing and stopping them,
//! and applying and healing the faults of the schedule.

use std::sync::Arc;
use std::time::Duration;

use rand::rngs::StdRng;
use rand::seq::SliceRandom;
use rand::{Rng, RngExt};
use tokio::task::JoinHandle;

use super::faults::Fault;
use super::store::SimStore;
use super::trace::{Ev, Trace};
use super::workload::{Account, BANK, COUNTER, Counter, Probe, Probes, REGISTER, Register};
use crate::config::ClusterConfig;
use crate::env::Env;
use crate::error::ClusterError;
use crate::id::NodeId;
use crate::keyed::{Keyed, KeyedConfig};
use crate::node::ClusterNode;
use crate::overlay::{InMemoryOverlay, OverlayError};

/// The protocol version a node not yet upgraded speaks at most: the one
/// before the newest (version 3, frames sealed with HMAC-SHA256, against
/// version 4's AES-256-GMAC).
const PREVIOUS_VERSION: u16 = crate::wire::hello::PROTOCOL_MAX_VERSION - 1;

/// Shards of each workload registry (the register's doubles under
/// [`Fault::ShardSkew`]).
pub(crate) const REGISTER_SHARDS: usize = 16;
pub(crate) const COUNTER_SHARDS: usize = 8;
pub(crate) const BANK_SHARDS: usize = 12;

/// A running node and its registries.
#[derive(Clone)]
pub(crate) struct Up {
    pub(crate) node: ClusterNode,
    pub(crate) env: Env,
    pub(crate) register: Keyed<Register>,
    pub(crate) counter: Keyed<Counter>,
    pub(crate) bank: Keyed<Account>,
}

/// One node slot: a name, and the node running under it, if any.
pub(crate) struct Slot {
    pub(crate) name: String,
    pub(crate) up: Option<Up>,
    /// A graceful shutdown in progress.
    pub(crate) stopping: Option<JoinHandle<()>>,
}

/// See the module docs.
pub(crate) struct Cluster {
    pub(crate) trace: Trace,
    pub(crate) store: SimStore,
    pub(crate) net: InMemoryOverlay,
    pub(crate) probes: Probes,
    pub(crate) cfg: ClusterConfig,
    pub(crate) slots: Vec<Slot>,
    /// Draws the seed of each node's env.
    pub(crate) seeds: StdRng,
    /// Idle time before activations are passivated.
    pub(crate) idle_timeout: Duration,
}

impl Cluster {
    /// `nodes` empty slots named `n0`, `n1`, ...
    pub(crate) fn slots(nodes: usize) -> Vec<Slot> {
        (0..nodes).map(|i| Slot { name: format!("n{i}"), up: None, stopping: None }).collect()
    }

    /// Starts a node in slot `i` (a new session), with `register_shards`
    /// shards for the register registry.
    pub(crate) async fn start(&mut self, i: usize, register_shards: usize) {
        if let Some(stopping) = self.slots[i].stopping.take() {
            let _ = stopping.await;
        }
        if self.slots[i].up.is_some() {
            return;
        }
        let env = Env::seeded(self.seeds.next_u64());
        env.set_observer(Arc::new(self.trace.clone()));
        // A rolling upgrade: one start in four runs the version before the
        // newest, so sessions between such a node and an upgraded one (and
        // between two old ones) use that version's frame MAC.
        let max_version = if self.seeds.random_ratio(1, 4) { PREVIOUS_VERSION } else { self.cfg.protocol_max_version };
        let cfg = ClusterConfig { protocol_max_version: max_version, ..self.cfg.clone() };
        let store: Arc<dyn crate::lease::LeaseStore> = Arc::new(self.store.clone());
        let id = NodeId::new(self.slots[i].name.clone());
        let mut tries = 0;
        let node = loop {
            let start =
                ClusterNode::start_with_env(id.clone(), Arc::clone(&store), self.net.clone(), cfg.clone(), env.clone());
            match start.await {
                Ok(node) => break node,
                // A crashed run of this name still listens until its aborted
                // tasks have been dropped, which takes a scheduler turn.
                Err(ClusterError::Overlay(OverlayError::Bind { .. })) if tries < 10 => {
                    tries += 1;
                    tokio::task::yield_now().await;
                }
                Err(e) => {
                    self.trace.push(Ev::Fault(format!("n{i} failed to start: {e}")));
                    return;
                }
            }
        };
        self.trace.push(Ev::NodeUp { session: node.session().clone(), max_version });
        let cfg = |shards| KeyedConfig::new(shards).idle_timeout(Some(self.idle_timeout));
        let (probes, session) = (self.probes.clone(), node.session().clone());
        let registered = (|| {
            let (p, s) = (probes.clone(), session.clone());
            let n = register_shards as u32;
            let register = node.keyed(REGISTER, cfg(register_shards), move |key: &str| Register {
                p: Probe::new(&p, &s, REGISTER, n, key),
            })?;
            let (p, s) = (probes.clone(), session.clone());
            let counter = node.keyed(COUNTER, cfg(COUNTER_SHARDS), move |key: &str| Counter {
                p: Probe::new(&p, &s, COUNTER, COUNTER_SHARDS as u32, key),
            })?;
            let (p, s) = (probes.clone(), session.clone());
            let bank = node.keyed(BANK, cfg(BANK_SHARDS), move |key: &str| Account {
                p: Probe::new(&p, &s, BANK, BANK_SHARDS as u32, key),
            })?;
            Ok::<_, crate::error::ClusterError>((register, counter, bank))
        })();
        match registered {
            Ok((register, counter, bank)) => self.slots[i].up = Some(Up { node, env, register, counter, bank }),
            Err(e) => {
                self.trace.push(Ev::Fault(format!("n{i} refused a registry: {e}")));
                node.kill();
                env.abort_all();
            }
        }
    }

    /// Crashes the node in slot `i`: every task dropped, no lease released.
    pub(crate) fn crash(&mut self, i: usize) {
        if let Some(up) = self.slots[i].up.take() {
            up.node.kill();
            up.env.abort_all();
            self.trace.push(Ev::NodeDown { session: up.node.session().clone(), crashed: true });
        }
    }

    /// Starts a graceful shutdown of the node in slot `i`.
    pub(crate) fn shut_down(&mut self, i: usize) {
        if let Some(up) = self.slots[i].up.take() {
            // A paused process cannot shut down: let it run first.
            self.set_paused(&up, false);
            let trace = self.trace.clone();
            self.slots[i].stopping = Some(tokio::spawn(async move {
                up.node.shutdown().await;
                trace.push(Ev::NodeDown { session: up.node.session().clone(), crashed: false });
            }));
        }
    }

    fn set_paused(&self, up: &Up, paused: bool) {
        if up.env.is_paused() != paused {
            if paused {
                up.env.pause()
            } else {
                up.env.resume()
            }
            self.trace.push(Ev::Paused { session: up.node.session().clone(), paused });
        }
    }

    fn name(&self, i: usize) -> &str {
        &self.slots[i].name
    }

    /// Applies `fault`.
    pub(crate) async fn apply(&mut self, fault: &Fault) {
        self.trace.push(Ev::Fault(format!("inject {}", self.describe(fault))));
        let net = self.net.clone();
        match fault {
            Fault::Partition(a, b) => net.partition(self.name(*a), self.name(*b)),
            Fault::OneWay(a, b) => net.partition_one_way(self.name(*a), self.name(*b)),
            Fault::Noisy(a, b, f) => net.set_link_faults(self.name(*a), self.name(*b), *f),
            Fault::Clog(links) => {
                for (a, b) in links {
                    net.hold(self.name(*a), self.name(*b));
                }
            }
            Fault::Crash(i) => self.crash(*i),
            Fault::Pause(i) => {
                if let Some(up) = self.slots[*i].up.clone() {
                    self.set_paused(&up, true);
                }
            }
            Fault::RenewalPause(i) => {
                if let Some(up) = &self.slots[*i].up {
                    up.node.set_lease_renewal_paused(true);
                }
            }
            Fault::StoreSpike(lo, hi) => self.store.set_spike(Some((*lo, *hi))),
            Fault::StoreOutage => self.store.set_outage(true),
            Fault::Shutdown(i) => self.shut_down(*i),
            Fault::ShardSkew(i) => {
                self.crash(*i);
                self.start(*i, REGISTER_SHARDS * 2).await;
            }
        }
    }

    /// Ends `fault`; `rng` orders the release of clogged links.
    pub(crate) async fn heal(&mut self, fault: &Fault, rng: &mut StdRng) {
        self.trace.push(Ev::Fault(format!("heal {}", self.describe(fault))));
        let net = self.net.clone();
        match fault {
            Fault::Partition(a, b) => net.heal(self.name(*a), self.name(*b)),
            Fault::OneWay(a, b) => net.heal_one_way(self.name(*a), self.name(*b)),
            Fault::Noisy(a, b, _) => net.clear_link_faults(self.name(*a), self.name(*b)),
            Fault::Clog(links) => {
                let mut links = links.clone();
                links.shuffle(rng);
                for (a, b) in links {
                    net.release(self.name(a), self.name(b));
                }
            }
            Fault::Crash(i) | Fault::Shutdown(i) => self.start(*i, REGISTER_SHARDS).await,
            Fault::Pause(i) => {
                if let Some(up) = self.slots[*i].up.clone() {
                    self.set_paused(&up, false);
                }
            }
            Fault::RenewalPause(i) => {
                if let Some(up) = &self.slots[*i].up {
                    up.node.set_lease_renewal_paused(false);
                }
            }
            Fault::StoreSpike(..) => self.store.set_spike(None),
            Fault::StoreOutage => self.store.set_outage(false),
            Fault::ShardSkew(i) => {
                self.crash(*i);
                self.start(*i, REGISTER_SHARDS).await;
            }
        }
    }

    fn describe(&self, fault: &Fault) -> String {
        let n = |i: &usize| self.name(*i).to_string();
        match fault {
            Fault::Partition(a, b) => format!("partition {} | {}", n(a), n(b)),
            Fault::OneWay(a, b) => format!("one-way partition {} -> {}", n(a), n(b)),
            Fault::Noisy(a, b, f) => format!("noisy link {} -> {}: {f:?}", n(a), n(b)),
            Fault::Clog(links) => {
                let l: Vec<String> = links.iter().map(|(a, b)| format!("{}->{}", n(a), n(b))).collect();
                format!("clog {}", l.join(" "))
            }
            Fault::Crash(i) => format!("crash {}", n(i)),
            Fault::Pause(i) => format!("pause {}", n(i)),
            Fault::RenewalPause(i) => format!("renewal pause {}", n(i)),
            Fault::StoreSpike(lo, hi) => format!("store latency {lo:?}..{hi:?}"),
            Fault::StoreOutage => "store outage".into(),
            Fault::Shutdown(i) => format!("shutdown {}", n(i)),
            Fault::ShardSkew(i) => format!("shard-count skew on {}", n(i)),
        }
    }
}
