//! [`SystemCore`]: the state shared by a system, its actors and their
//! contexts: the pid table, the lifecycle broadcast, the shutdown flag, the
//! injected spawner and jitter source, and the link and monitor procedures
//! that find cells by pid.
//!
//! The pid table is sharded (`SHARDS` mutex-protected maps keyed by pid) so
//! spawns and exits on different workers rarely meet on one lock. Links and
//! monitors live in each actor's cell, not in a global map; the table is only
//! used to find a cell from a pid.

use std::collections::HashMap;
use std::hash::{BuildHasherDefault, Hasher};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use parking_lot::Mutex;
use tokio::sync::broadcast;
use tokio::task::JoinHandle;

use crate::cell_ops::CellOps;
use crate::env::{BoxTask, JitterFn, Spawner};
use crate::lifecycle::{ActorLifecycleEvent, ActorLifecycleEventKind, LIFECYCLE_CAPACITY};
use crate::mailbox::Control;
use crate::{ExitReason, MonitorId, Pid};

const SHARDS: usize = 16;

/// Pids are sequential: a multiplicative mix is all the hashing they need.
#[derive(Default)]
struct PidHasher(u64);

impl Hasher for PidHasher {
    fn finish(&self) -> u64 {
        self.0
    }
    fn write(&mut self, bytes: &[u8]) {
        for b in bytes {
            self.0 = (self.0 << 8 | u64::from(*b)).wrapping_mul(0x9E37_79B9_7F4A_7C15);
        }
    }
    fn write_u64(&mut self, n: u64) {
        self.0 = n.wrapping_mul(0x9E37_79B9_7F4A_7C15);
    }
}

type PidMap = HashMap<Pid, Arc<dyn CellOps>, BuildHasherDefault<PidHasher>>;

/// State shared by the system, its actors and their contexts.
pub(crate) struct SystemCore {
    shards: [Mutex<PidMap>; SHARDS],
    lifecycle: broadcast::Sender<ActorLifecycleEvent>,
    /// Set by the first `subscribe_lifecycle`; never cleared.
    lifecycle_used: AtomicBool,
    shutting_down: AtomicBool,
    /// Starts actor tasks; `tokio::spawn` when `None`.
    spawner: Option<Arc<dyn Spawner>>,
    /// Restart jitter for actors without their own; the thread RNG when `None`.
    jitter: Option<JitterFn>,
}

impl std::fmt::Debug for SystemCore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SystemCore").field("actors", &self.len()).finish_non_exhaustive()
    }
}

impl SystemCore {
    /// An empty core that starts tasks through `spawner` (`tokio::spawn`
    /// when `None`) and samples restart jitter from `jitter`.
    pub(crate) fn new(spawner: Option<Arc<dyn Spawner>>, jitter: Option<JitterFn>) -> SystemCore {
        let (lifecycle, _) = broadcast::channel(LIFECYCLE_CAPACITY);
        SystemCore {
            shards: std::array::from_fn(|_| Mutex::new(PidMap::default())),
            lifecycle,
            lifecycle_used: AtomicBool::new(false),
            shutting_down: AtomicBool::new(false),
            spawner,
            jitter,
        }
    }

    /// The restart jitter source for actors without their own, if any.
    #[inline]
    pub(crate) fn jitter(&self) -> Option<&JitterFn> {
        self.jitter.as_ref()
    }

    /// Refuses new spawns from now on.
    pub(crate) fn begin_shutdown(&self) {
        self.shutting_down.store(true, Ordering::Release);
    }

    /// `true` once `begin_shutdown` was called.
    #[inline]
    pub(crate) fn is_shutting_down(&self) -> bool {
        self.shutting_down.load(Ordering::Acquire)
    }

    /// Subscribes to lifecycle events; from now on `emit` publishes them.
    pub(crate) fn subscribe_lifecycle(&self) -> broadcast::Receiver<ActorLifecycleEvent> {
        self.lifecycle_used.store(true, Ordering::Relaxed);
        self.lifecycle.subscribe()
    }

    fn shard(&self, pid: Pid) -> &Mutex<PidMap> {
        // The modulo keeps the index in range.
        &self.shards[(pid.as_u64() % SHARDS as u64) as usize]
    }

    pub(crate) fn register(&self, pid: Pid, cell: Arc<dyn CellOps>) {
        self.shard(pid).lock().insert(pid, cell);
    }

    pub(crate) fn unregister(&self, pid: Pid) {
        self.shard(pid).lock().remove(&pid);
    }

    pub(crate) fn lookup(&self, pid: Pid) -> Option<Arc<dyn CellOps>> {
        self.shard(pid).lock().get(&pid).cloned()
    }

    pub(crate) fn len(&self) -> usize {
        self.shards.iter().map(|s| s.lock().len()).sum()
    }

    /// Every live cell, in pid order.
    pub(crate) fn all(&self) -> Vec<Arc<dyn CellOps>> {
        let mut v: Vec<_> = self.shards.iter().flat_map(|s| s.lock().values().cloned().collect::<Vec<_>>()).collect();
        v.sort_by_key(|c| c.meta().pid());
        v
    }

    /// Starts a task of this system (an actor, a timer) through its spawner.
    pub(crate) fn spawn_task(&self, task: impl std::future::Future<Output = ()> + Send + 'static) -> JoinHandle<()> {
        match &self.spawner {
            Some(s) => s.spawn(Box::pin(task) as BoxTask),
            None => tokio::spawn(task),
        }
    }

    pub(crate) fn emit(&self, pid: Pid, name: &str, kind: ActorLifecycleEventKind, reason: Option<ExitReason>) {
        // One relaxed load instead of the channel's lock when nobody ever
        // subscribed (the common case in production).
        if !self.lifecycle_used.load(Ordering::Relaxed) || self.lifecycle.receiver_count() == 0 {
            return;
        }
        let _ = self.lifecycle.send(ActorLifecycleEvent { pid, name: name.to_owned(), kind, reason });
    }

    pub(crate) fn link(&self, a: Pid, b: Pid) -> bool {
        if a == b {
            return false;
        }
        let (Some(ca), Some(cb)) = (self.lookup(a), self.lookup(b)) else {
            return false;
        };
        if !ca.meta().add_link(b) {
            return false;
        }
        if !cb.meta().add_link(a) {
            // `b` exited between the lookups: undo, like a link to a dead pid.
            ca.meta().remove_link(b);
            return false;
        }
        true
    }

    pub(crate) fn unlink(&self, a: Pid, b: Pid) {
        if let Some(c) = self.lookup(a) {
            c.meta().remove_link(b);
        }
        if let Some(c) = self.lookup(b) {
            c.meta().remove_link(a);
        }
    }

    pub(crate) fn monitor(&self, watcher: Pid, target: Pid) -> Option<MonitorId> {
        let w = self.lookup(watcher)?;
        let id = MonitorId::next();
        if !w.meta().add_watching(id, target) {
            return None;
        }
        let outcome = match self.lookup(target) {
            Some(t) => t.meta().add_watcher(id, watcher),
            None => Err(ExitReason::NoProc),
        };
        if let Err(reason) = outcome {
            // Already gone: the down notice is due at once.
            let _ = w.signal(Control::Down { id, pid: target, reason });
        }
        Some(id)
    }

    pub(crate) fn demonitor(&self, watcher: Pid, id: MonitorId) -> bool {
        let Some(w) = self.lookup(watcher) else {
            return false;
        };
        let Some(target) = w.meta().take_watching(id) else {
            return false;
        };
        if let Some(t) = self.lookup(target) {
            t.meta().remove_watcher(id);
        }
        true
    }
}
