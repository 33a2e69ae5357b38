//! The in-memory overlay's shared network ([`Net`]): the table of
//! listening node names, the [`FaultTable`], a change signal, the counters
//! and the [`FrameTap`], behind one `parking_lot` mutex that is never held
//! across an await. `InMemoryOverlay` (its clones) and the delivery tasks
//! share it.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};

use parking_lot::{Mutex, MutexGuard};
use tokio::sync::mpsc;

use super::faults::FaultTable;
use super::link::Link;
use crate::signal::Signal;

/// The in-memory network's counters, summed over its links
/// (`InMemoryOverlay::stats` reads them).
#[derive(Debug, Default)]
pub(crate) struct Counters {
    pub(crate) links_opened: AtomicU64,
    pub(crate) dials_failed: AtomicU64,
    pub(crate) delivered: AtomicU64,
    pub(crate) duplicated: AtomicU64,
    pub(crate) reordered: AtomicU64,
    pub(crate) held: AtomicU64,
    pub(crate) dropped_partition: AtomicU64,
    pub(crate) dropped_random: AtomicU64,
    pub(crate) dropped_hold_overflow: AtomicU64,
    pub(crate) dropped_closed: AtomicU64,
}

/// What happened to a frame the in-memory overlay carried (see [`FrameTap`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum FrameFate {
    /// Handed to the receiving link.
    Delivered,
    /// Lost to a partition.
    DroppedPartition,
    /// Lost to the drop rate.
    DroppedRandom,
    /// Lost because its held link already kept its maximum.
    DroppedHoldOverflow,
    /// Put on hold until the link is released.
    Held,
}

/// Sees every frame an [`InMemoryOverlay`](super::InMemoryOverlay) carries, as it is decided
/// (synchronously, on the link's delivery task, or on the sending task for
/// a frame that skips it: keep it quick, and call no overlay method from
/// it). The simulation uses it to put every frame into its trace.
pub trait FrameTap: Send + Sync + std::fmt::Debug + 'static {
    /// The frame `bytes` from `from` to `to` met `fate`.
    fn frame(&self, from: &str, to: &str, bytes: &[u8], fate: FrameFate);
}

/// Settings fixed when the overlay is built.
#[derive(Debug, Clone, Copy)]
pub(crate) struct MemoryConfig {
    pub(crate) max_frame_bytes: usize,
    pub(crate) link_queue_frames: usize,
    pub(crate) max_held_frames: usize,
}

/// The shared network.
#[derive(Debug)]
pub(crate) struct Net {
    inner: Mutex<NetInner>,
    /// Bumped on every fault change, so held links re-check their state.
    changes: Signal<u64>,
    /// `config.max_frame_bytes`, readable without the lock (the node reads
    /// it per request).
    max_frame_bytes: AtomicUsize,
    pub(crate) counters: Counters,
    tap: std::sync::OnceLock<Arc<dyn FrameTap>>,
}

/// What the network's lock guards.
#[derive(Debug)]
pub(crate) struct NetInner {
    /// Listening names: the listener's id and where its links go.
    pub(crate) listeners: BTreeMap<String, (u64, mpsc::Sender<Link>)>,
    pub(crate) next_listener: u64,
    pub(crate) faults: FaultTable,
    pub(crate) config: MemoryConfig,
}

impl Net {
    /// A network with no listeners, the faults of `FaultTable::new(seed)`
    /// and `config`.
    pub(crate) fn new(seed: u64, config: MemoryConfig) -> Net {
        let inner = NetInner { listeners: BTreeMap::new(), next_listener: 0, faults: FaultTable::new(seed), config };
        Net {
            inner: Mutex::new(inner),
            changes: Signal::new(0),
            max_frame_bytes: AtomicUsize::new(config.max_frame_bytes),
            counters: Counters::default(),
            tap: std::sync::OnceLock::new(),
        }
    }

    /// The network's state, locked (never held across an await).
    pub(crate) fn lock(&self) -> MutexGuard<'_, NetInner> {
        self.inner.lock()
    }

    pub(crate) fn config(&self) -> MemoryConfig {
        self.inner.lock().config
    }

    /// Changes the settings (for links opened later).
    pub(crate) fn set_config(&self, f: impl FnOnce(&mut MemoryConfig)) {
        let mut inner = self.inner.lock();
        f(&mut inner.config);
        self.max_frame_bytes.store(inner.config.max_frame_bytes, Ordering::Relaxed);
    }

    /// The largest frame carried, without taking the lock.
    pub(crate) fn max_frame_bytes(&self) -> usize {
        self.max_frame_bytes.load(Ordering::Relaxed)
    }

    pub(crate) fn with_faults<T>(&self, f: impl FnOnce(&mut FaultTable) -> T) -> T {
        f(&mut self.inner.lock().faults)
    }

    /// Sets the tap (once: `false`, and no change, if one is set).
    pub(crate) fn set_tap(&self, tap: Arc<dyn FrameTap>) -> bool {
        self.tap.set(tap).is_ok()
    }

    /// Tells the tap, if any, what happened to `bytes`.
    pub(crate) fn tap(&self, from: &str, to: &str, bytes: &[u8], fate: FrameFate) {
        if let Some(tap) = self.tap.get() {
            tap.frame(from, to, bytes, fate);
        }
    }

    /// The version of the fault table (grows with every change).
    pub(crate) fn version(&self) -> u64 {
        self.changes.get()
    }

    /// Completes once the faults changed since version `seen` (updated).
    pub(crate) async fn changed(&self, seen: &mut u64) {
        let now = *seen;
        *seen = self.changes.wait_for(|v| *v != now).await;
    }

    /// Changes the faults and wakes every task waiting in [`changed`](Self::changed).
    pub(crate) fn change_faults(&self, f: impl FnOnce(&mut FaultTable)) {
        f(&mut self.inner.lock().faults);
        self.changes.update(|n| {
            *n = n.wrapping_add(1);
            true
        });
    }
}

/// Unregisters a listening name when its `Listener` is dropped.
#[derive(Debug)]
pub(crate) struct Registration {
    pub(crate) net: Arc<Net>,
    pub(crate) name: String,
    pub(crate) id: u64,
}

impl Drop for Registration {
    fn drop(&mut self) {
        let mut inner = self.net.inner.lock();
        if inner.listeners.get(&self.name).is_some_and(|(id, _)| *id == self.id) {
            inner.listeners.remove(&self.name);
        }
    }
}
