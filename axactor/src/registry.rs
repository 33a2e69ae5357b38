//! [`Registry`]: keyed actors, spawned on first use, with an idle reaper.
//!
//! The table maps a key to the actor's typed ref and its cell. Lookup,
//! spawn and insert happen under one lock (spawning does not await), so
//! concurrent `get_or_spawn` calls for one key always get the same actor.
//! An entry whose actor has stopped is replaced on the next call.
//!
//! The reaper never reads a clock per message: each actor keeps an activity
//! counter (odd while a handler runs); the reaper samples it every
//! `check_interval` and adds the interval to an entry's idle time when the
//! counter did not move, the actor is not busy and its mailbox is empty.

use std::collections::HashMap;
use std::fmt;
use std::hash::Hash;
use std::sync::{Arc, Weak};
use std::time::Duration;

use parking_lot::Mutex;
use thiserror::Error;
use tokio::task::AbortHandle;
use tokio::time::Instant;

use crate::cell_ops::CellOps;
use crate::mailbox::Control;
use crate::{Actor, ExitReason, SpawnConfig, SpawnError, System};

/// Why a registry operation failed.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
#[non_exhaustive]
pub enum RegistryError {
    /// The actor for the key could not be spawned.
    #[error("cannot spawn the actor for this key: {0}")]
    Spawn(#[from] SpawnError),
}

struct Entry<R> {
    actor: R,
    cell: Arc<dyn CellOps>,
    last_activity: u64,
    idle_for: Duration,
}

struct Inner<K, R> {
    system: Arc<System>,
    table: Mutex<HashMap<K, Entry<R>>>,
    reaper: Mutex<Option<AbortHandle>>,
}

impl<K, R> Drop for Inner<K, R> {
    fn drop(&mut self) {
        if let Some(h) = self.reaper.get_mut().take() {
            h.abort();
        }
    }
}

/// Actors addressed by key: `get_or_spawn` returns the running actor for a
/// key or spawns one. Clones share one table.
///
/// ```
/// use axactor::{actor, registry::Registry, SpawnConfig, System};
/// use std::sync::Arc;
///
/// pub struct Session { hits: u32 }
/// #[actor]
/// impl Session {
///     #[msg] fn hit(&mut self) -> u32 { self.hits += 1; self.hits }
/// }
///
/// # #[tokio::main] async fn main() {
/// let reg: Registry<String, SessionRef> = Registry::new(Arc::new(System::new()));
/// let cfg = SpawnConfig::new("session", 64);
/// let a = reg.get_or_spawn("alice".to_string(), cfg.clone(), || Session { hits: 0 }).await.unwrap();
/// a.hit().await.unwrap();
/// let again = reg.get_or_spawn("alice".to_string(), cfg, || Session { hits: 0 }).await.unwrap();
/// assert_eq!(again.hit().await.unwrap(), 2);
/// # }
/// ```
pub struct Registry<K, R> {
    inner: Arc<Inner<K, R>>,
}

impl<K, R> Clone for Registry<K, R> {
    fn clone(&self) -> Self {
        Registry { inner: self.inner.clone() }
    }
}

impl<K, R> fmt::Debug for Registry<K, R> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Registry").field("len", &self.inner.table.lock().len()).finish()
    }
}

impl<K, R> Registry<K, R>
where
    K: Eq + Hash + Clone + Send + Sync + 'static,
    R: Clone + Send + Sync + 'static,
{
    /// An empty registry whose actors run in `system`.
    pub fn new(system: Arc<System>) -> Self {
        Registry { inner: Arc::new(Inner { system, table: Mutex::new(HashMap::new()), reaper: Mutex::new(None) }) }
    }

    /// The running actor for `key`, or a new one built by `factory` with
    /// `cfg` (restarts as configured in `cfg`).
    ///
    /// # Errors
    /// [`RegistryError::Spawn`] if the actor could not be spawned.
    ///
    /// # Cancel safety
    /// Cancel safe: the work is done before the first await point.
    pub async fn get_or_spawn<A, F>(&self, key: K, cfg: SpawnConfig, factory: F) -> Result<R, RegistryError>
    where
        A: Actor<Ref = R>,
        F: Fn() -> A + Send + Sync + 'static,
    {
        let mut table = self.inner.table.lock();
        if let Some(e) = table.get(&key)
            && e.cell.meta().exit_reason().is_none()
            && !e.cell.is_closed()
        {
            return Ok(e.actor.clone());
        }
        let handle = self.inner.system.spawn_with(factory, cfg)?;
        let actor = handle.actor();
        let cell = handle.cell().clone();
        table.insert(key, Entry { actor: actor.clone(), cell, last_activity: 0, idle_for: Duration::ZERO });
        Ok(actor)
    }

    /// The running actor for `key`, if any.
    pub fn get(&self, key: &K) -> Option<R> {
        let table = self.inner.table.lock();
        table.get(key).filter(|e| !e.cell.is_closed()).map(|e| e.actor.clone())
    }

    /// Removes `key` and stops its actor (queued messages are dropped).
    /// Returns `true` if there was an entry.
    pub fn remove(&self, key: &K) -> bool {
        let removed = self.inner.table.lock().remove(key);
        match removed {
            Some(e) => {
                let _ = e.cell.signal(Control::Stop { reason: ExitReason::Normal });
                true
            }
            None => false,
        }
    }

    /// Number of entries (including actors that stopped but were not yet
    /// replaced or reaped).
    pub fn len(&self) -> usize {
        self.inner.table.lock().len()
    }

    /// `true` if the registry has no entries.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Starts (or restarts with new settings) the idle reaper: every
    /// `check_interval` it stops actors that have been idle (no message
    /// taken, none queued, no handler running) for at least `idle_timeout`,
    /// and forgets actors that stopped. A reaped actor is removed from the
    /// table and its mailbox closes at once (later sends get `Closed`); a
    /// message that slipped in between the idle check and the close is still
    /// handled before it stops. A later `get_or_spawn` for its key starts a
    /// fresh one. Idle time is measured in steps of
    /// `check_interval`, so an actor is reaped between `idle_timeout` and
    /// `idle_timeout + check_interval` after its last message.
    ///
    /// The reaper stops when every clone of the registry is dropped.
    ///
    /// # Panics
    /// Panics if called outside a Tokio runtime.
    pub fn start_reaper(&self, idle_timeout: Duration, check_interval: Duration) {
        let check_interval = check_interval.max(Duration::from_millis(1));
        let weak = Arc::downgrade(&self.inner);
        let task = self.inner.system.spawn_task(reap_loop(weak, idle_timeout, check_interval));
        if let Some(old) = self.inner.reaper.lock().replace(task.abort_handle()) {
            old.abort();
        }
    }
}

async fn reap_loop<K, R>(weak: Weak<Inner<K, R>>, idle_timeout: Duration, check_interval: Duration)
where
    K: Eq + Hash + Clone + Send + Sync + 'static,
    R: Clone + Send + Sync + 'static,
{
    let mut ticker = tokio::time::interval_at(Instant::now() + check_interval, check_interval);
    ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        ticker.tick().await;
        let Some(inner) = weak.upgrade() else { return };
        let reaped = sweep(&mut inner.table.lock(), idle_timeout, check_interval);
        for cell in reaped {
            // Removed from the table under the lock above: later callers get a
            // fresh actor, while this one handles anything queued meanwhile.
            let _ = cell.drain(ExitReason::Normal);
        }
    }
}

/// One reaper pass over the table: drops stopped entries, ages idle ones and
/// removes those idle for `idle_timeout`, returning their cells.
fn sweep<K, R>(table: &mut HashMap<K, Entry<R>>, idle_timeout: Duration, step: Duration) -> Vec<Arc<dyn CellOps>> {
    let mut reaped = Vec::new();
    table.retain(|_, e| {
        if e.cell.is_closed() {
            return false;
        }
        let activity = e.cell.activity();
        let busy = activity % 2 == 1;
        if busy || activity != e.last_activity || e.cell.mailbox_len() > 0 {
            e.last_activity = activity;
            e.idle_for = Duration::ZERO;
            return true;
        }
        e.idle_for += step;
        if e.idle_for >= idle_timeout {
            reaped.push(e.cell.clone());
            return false;
        }
        true
    });
    reaped
}
