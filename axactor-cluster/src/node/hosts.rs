//! [`Hosts`]: the registries this node hosts and the lease driver's inputs.
//! Only this file touches them: the hosted registries by id (sorted, so
//! iteration is deterministic), the placement kick that wakes the lease
//! driver, the driver's command channel ([`DriverCmd`]) and the test hook
//! that pauses lease renewals.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use parking_lot::{Mutex, RwLock};
use tokio::sync::futures::Notified;
use tokio::sync::{Notify, mpsc, oneshot};

use crate::hosted::HostedRegistry;

/// Commands to the lease driver (`manager.rs`).
#[derive(Debug)]
pub(crate) enum DriverCmd {
    /// Stop every activation, release every lease, then answer and end.
    Shutdown(oneshot::Sender<()>),
}

/// See the module docs.
#[derive(Default)]
pub(crate) struct Hosts {
    /// Hosted registries by id.
    registries: RwLock<BTreeMap<String, Arc<dyn HostedRegistry>>>,
    /// Wakes the lease driver for a placement pass.
    kick: Notify,
    /// Commands to the lease driver, while it runs.
    driver: Mutex<Option<mpsc::Sender<DriverCmd>>>,
    /// The test hook: stop renewing (and acquiring) leases.
    renewal_paused: AtomicBool,
}

impl std::fmt::Debug for Hosts {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let ids: Vec<String> = self.registries.read().keys().cloned().collect();
        f.debug_struct("Hosts").field("registries", &ids).finish_non_exhaustive()
    }
}

impl Hosts {
    /// The registry `id`, if hosted here.
    #[inline]
    pub(crate) fn get(&self, id: &str) -> Option<Arc<dyn HostedRegistry>> {
        self.registries.read().get(id).cloned()
    }

    /// Every hosted registry, in id order.
    pub(crate) fn snapshot(&self) -> Vec<Arc<dyn HostedRegistry>> {
        self.registries.read().values().cloned().collect()
    }

    /// Hosts `registry` under its id; `false` (and no change) if the id is
    /// taken.
    pub(crate) fn insert(&self, registry: Arc<dyn HostedRegistry>) -> bool {
        let mut registries = self.registries.write();
        if registries.contains_key(registry.id()) {
            return false;
        }
        registries.insert(registry.id().to_string(), registry);
        true
    }

    /// `(id, shard count)` of every hosted registry.
    pub(crate) fn announced(&self) -> Vec<(String, u32)> {
        self.registries.read().values().map(|h| (h.id().to_string(), h.shard_count())).collect()
    }

    /// The shard count of the hosted registry `id`.
    pub(crate) fn shard_count(&self, id: &str) -> Option<u32> {
        self.registries.read().get(id).map(|h| h.shard_count())
    }

    /// Whether `shard` is one of the hosted registry `id`'s shards.
    pub(crate) fn hosts_shard(&self, id: &str, shard: u32) -> bool {
        self.shard_count(id).is_some_and(|count| shard < count)
    }

    /// Wakes the lease driver for a placement pass.
    pub(crate) fn kick(&self) {
        self.kick.notify_one();
    }

    /// Completes at the next [`Hosts::kick`] (or at once for one that came
    /// while the driver was busy).
    pub(crate) fn kicked(&self) -> Notified<'_> {
        self.kick.notified()
    }

    /// Sets the lease driver's command channel.
    pub(crate) fn set_driver(&self, tx: mpsc::Sender<DriverCmd>) {
        *self.driver.lock() = Some(tx);
    }

    /// Takes the lease driver's command channel (`None` once taken).
    pub(crate) fn take_driver(&self) -> Option<mpsc::Sender<DriverCmd>> {
        self.driver.lock().take()
    }

    /// Whether lease renewals are paused (test hook).
    pub(crate) fn renewal_paused(&self) -> bool {
        self.renewal_paused.load(Ordering::Relaxed)
    }

    /// Pauses or resumes lease renewals (test hook), and kicks the driver.
    pub(crate) fn set_renewal_paused(&self, paused: bool) {
        self.renewal_paused.store(paused, Ordering::Relaxed);
        self.kick();
    }
}
