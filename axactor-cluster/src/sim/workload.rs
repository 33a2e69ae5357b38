//! The simulated workload's actors: a register, a counter and a bank
//! account, each keyed, each recording its lifecycle and every operation it
//! executes into the trace.
//!
//! State lives where a real service keeps it: in storage outside the actor
//! ([`Storage`], written through on every change), loaded into the
//! activation when it starts and served from memory afterwards. So a key
//! that is (wrongly) active in two places serves stale values from one of
//! them, which the linearizability check sees; and a move between nodes
//! keeps the state, so the checks can expect continuity across moves.
//!
//! Every operation carries the client's operation id, so the checker can
//! count executions per request.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use axactor::{Context, ExitReason, actor};
use parking_lot::Mutex;

use super::trace::{Effect, Ev, Trace};
use crate::id::SessionId;

/// The registries of the workload.
pub(crate) const REGISTER: &str = "register";
pub(crate) const COUNTER: &str = "counter";
pub(crate) const BANK: &str = "bank";

/// State outside the actors, by (registry, key). Never fenced: it stores
/// whatever the activations write, so wrong activations show up as wrong
/// values rather than being masked.
#[derive(Debug, Clone, Default)]
pub(crate) struct Storage {
    values: Arc<Mutex<BTreeMap<Object, i64>>>,
}

/// One workload object: (registry, key).
type Object = (&'static str, Arc<str>);

impl Storage {
    fn load(&self, registry: &'static str, key: &Arc<str>) -> i64 {
        self.values.lock().get(&(registry, Arc::clone(key))).copied().unwrap_or(0)
    }

    fn store(&self, registry: &'static str, key: &Arc<str>, value: i64) {
        self.values.lock().insert((registry, Arc::clone(key)), value);
    }
}

/// What every workload actor shares: where it runs, what it is, and where
/// it records.
#[derive(Debug, Clone)]
pub(crate) struct Probes {
    pub(crate) trace: Trace,
    pub(crate) storage: Storage,
    pub(crate) uids: Arc<AtomicU64>,
    /// How long `on_stop` takes (like flushing state).
    pub(crate) stop_delay: Duration,
}

/// One activation's bookkeeping, embedded in each workload actor.
#[derive(Debug)]
pub(crate) struct Probe {
    probes: Probes,
    session: SessionId,
    registry: &'static str,
    /// The registry's shard count on this node.
    shards: u32,
    key: Arc<str>,
    uid: u64,
    state: i64,
    stopped: bool,
}

/// The name of a lease as the nodes name it.
fn lease_of(registry: &str, shard: u32, shards: u32) -> Arc<str> {
    Arc::from(crate::shard::lease_name(registry, shards, shard).as_str())
}

impl Probe {
    pub(crate) fn new(probes: &Probes, session: &SessionId, registry: &'static str, shards: u32, key: &str) -> Probe {
        Probe {
            probes: probes.clone(),
            session: session.clone(),
            registry,
            shards,
            key: Arc::from(key),
            uid: probes.uids.fetch_add(1, Ordering::Relaxed),
            state: 0,
            stopped: false,
        }
    }

    fn start(&mut self, ctx: &Context) {
        self.state = self.probes.storage.load(self.registry, &self.key);
        let (shard, epoch) = ctx.fence().map_or((u32::MAX, 0), |f| (f.shard, f.epoch));
        self.probes.trace.push(Ev::ActStart {
            uid: self.uid,
            activation: crate::host::activation_id(ctx.name()).unwrap_or(u64::MAX),
            session: self.session.clone(),
            registry: self.registry,
            key: Arc::clone(&self.key),
            lease: lease_of(self.registry, shard, self.shards),
            epoch,
        });
    }

    async fn stop(&mut self, reason: &ExitReason) {
        if !self.probes.stop_delay.is_zero() {
            tokio::time::sleep(self.probes.stop_delay).await;
        }
        self.end(reason.to_string());
    }

    fn end(&mut self, reason: String) {
        if !self.stopped {
            self.stopped = true;
            self.probes.trace.push(Ev::ActStop { uid: self.uid, reason });
        }
    }

    /// Records the execution of `op` and writes the new state through.
    fn exec(&mut self, op: u64, effect: Effect) {
        self.probes.trace.push(Ev::Exec { uid: self.uid, op, effect });
        self.probes.storage.store(self.registry, &self.key, self.state);
    }
}

impl Drop for Probe {
    fn drop(&mut self) {
        // Killed (task aborted) before `on_stop` finished: it ends here.
        self.end("dropped".into());
    }
}

/// A register: last write wins, reads see the latest write.
#[derive(Debug)]
pub(crate) struct Register {
    pub(crate) p: Probe,
}

#[actor(remote)]
impl Register {
    #[msg]
    fn write(&mut self, op: u64, value: i64) -> i64 {
        let prev = self.p.state;
        self.p.state = value;
        self.p.exec(op, Effect::Write { prev, value });
        prev
    }

    #[msg]
    fn read(&mut self, op: u64) -> i64 {
        let value = self.p.state;
        self.p.exec(op, Effect::Read { value });
        value
    }

    async fn on_start(&mut self, ctx: &mut Context) {
        self.p.start(ctx);
    }

    async fn on_stop(&mut self, _ctx: &mut Context, reason: &ExitReason) {
        self.p.stop(reason).await;
    }
}

/// A counter: each increment returns the next value.
#[derive(Debug)]
pub(crate) struct Counter {
    pub(crate) p: Probe,
}

#[actor(remote)]
impl Counter {
    #[msg]
    fn incr(&mut self, op: u64) -> i64 {
        self.p.state += 1;
        let value = self.p.state;
        self.p.exec(op, Effect::Incr { value });
        value
    }

    async fn on_start(&mut self, ctx: &mut Context) {
        self.p.start(ctx);
    }

    async fn on_stop(&mut self, _ctx: &mut Context, reason: &ExitReason) {
        self.p.stop(reason).await;
    }
}

/// A bank account: deposits (tells) and balance reads.
#[derive(Debug)]
pub(crate) struct Account {
    pub(crate) p: Probe,
}

#[actor(remote)]
impl Account {
    #[msg]
    fn deposit(&mut self, op: u64, amount: i64) {
        self.p.state += amount;
        let balance = self.p.state;
        self.p.exec(op, Effect::Deposit { amount, balance });
    }

    #[msg]
    fn balance(&mut self, op: u64) -> i64 {
        let value = self.p.state;
        self.p.exec(op, Effect::Read { value });
        value
    }

    async fn on_start(&mut self, ctx: &mut Context) {
        self.p.start(ctx);
    }

    async fn on_stop(&mut self, _ctx: &mut Context, reason: &ExitReason) {
        self.p.stop(reason).await;
    }
}
