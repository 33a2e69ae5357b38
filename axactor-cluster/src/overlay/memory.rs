//! [`InMemoryOverlay`]: an in-process network with seeded fault injection.
//!
//! All clones of an `InMemoryOverlay` share one network (`Net`, in
//! `super::memory_net`): a table of listening node names, the
//! [`FaultTable`], a change signal and counters, behind one `parking_lot`
//! mutex that is never held across an await.
//!
//! Dialling creates a pair of link endpoints sharing one `LinkState` and
//! spawns two delivery tasks (`super::delivery`), one per direction; each
//! applies the faults of its directed link, by node name, to every frame.
//! Each direction also has a write-through path (`super::memory_direct`):
//! a frame fed (`LinkSender::feed`, the node's writer in latency mode)
//! while its directed link has no fault configured and nothing queued,
//! scheduled or held skips the delivery task, in the same order and bounds.
//! Dropping either endpoint's receiver kills the link at once.
//!
//! Determinism: under a current-thread runtime with a paused clock, the same
//! seed and the same sequence of calls and sends give the same deliveries at
//! the same (virtual) instants. Nothing here iterates a hash map, every
//! `select!` is `biased;`, delays use tokio time, and each directed link draws
//! from its own RNG seeded from `(seed, from, to)`.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use tokio::sync::mpsc;

use super::counters::bump;
use super::delivery;
use super::faults::{FaultTable, LinkFaults};
use super::link::{self, FrameLimit, LinkState, WriteThrough};
use super::memory_direct::{Direct, Direction};
use super::memory_net::{FrameTap, MemoryConfig, Net, Registration};
use super::{
    BoxFuture, ClusterOverlay, DEFAULT_ACCEPT_BACKLOG, DEFAULT_LINK_QUEUE_FRAMES, Link, LinkSource, Listener, Overlay,
    OverlayError,
};
use crate::id::NodeId;
use crate::wire::frame::DEFAULT_MAX_FRAME_BYTES;

/// Default number of frames a held directed link keeps (per link) until
/// released; further frames are dropped and counted
/// ([`InMemoryStats::dropped_hold_overflow`]).
pub const DEFAULT_MAX_HELD_FRAMES: usize = 4096;

/// A snapshot of an [`InMemoryOverlay`]'s counters (all links, since creation).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct InMemoryStats {
    /// Links opened by `dial`.
    pub links_opened: u64,
    /// Dials refused (nothing listening, backlog full) or blocked by a partition.
    pub dials_failed: u64,
    /// Frames handed to a receiving link (duplicates included).
    pub delivered: u64,
    /// Extra copies made by the duplicate rate.
    pub duplicated: u64,
    /// Frames delivered behind a later frame by the reorder rate.
    pub reordered: u64,
    /// Frames put on hold.
    pub held: u64,
    /// Frames dropped by a partition.
    pub dropped_partition: u64,
    /// Frames dropped by the drop rate.
    pub dropped_random: u64,
    /// Frames dropped because a held link already kept its maximum.
    pub dropped_hold_overflow: u64,
    /// Frames discarded because their link closed first (pending, held, or
    /// larger than the receiver's frame limit, which also closes the link).
    pub dropped_closed: u64,
}

/// An in-process network. `Clone`: all clones are one shared network.
///
/// Faults apply per *directed* link between node names (`from → to`) and to
/// every link between those nodes, existing and future. Setting one fault of
/// a link the first time starts from the default faults
/// ([`set_default_faults`](Self::set_default_faults)).
///
/// ```
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() {
/// use axactor_cluster::NodeId;
/// use axactor_cluster::overlay::{InMemoryOverlay, Overlay, Priority};
/// use bytes::Bytes;
///
/// let net = InMemoryOverlay::with_seed(42);
/// let (a, b) = (NodeId::new("a"), NodeId::new("b"));
/// let mut listener = net.listen(&b).await.unwrap();
/// let link = net.dial(&a, &b).await.unwrap();
/// link.tx.try_send(Bytes::from_static(b"hi"), Priority::Data).unwrap();
/// let mut inbound = listener.accept().await.unwrap();
/// assert_eq!(inbound.remote, "a");
/// assert_eq!(inbound.rx.recv().await.unwrap(), "hi");
/// # }
/// ```
#[derive(Debug, Clone)]
pub struct InMemoryOverlay {
    net: Arc<Net>,
}

impl Default for InMemoryOverlay {
    fn default() -> Self {
        InMemoryOverlay::new()
    }
}

impl InMemoryOverlay {
    /// A fresh network with seed 0 and no faults.
    pub fn new() -> InMemoryOverlay {
        InMemoryOverlay::with_seed(0)
    }

    /// A fresh network whose random faults are drawn from `seed`.
    pub fn with_seed(seed: u64) -> InMemoryOverlay {
        let config = MemoryConfig {
            max_frame_bytes: DEFAULT_MAX_FRAME_BYTES,
            link_queue_frames: DEFAULT_LINK_QUEUE_FRAMES,
            max_held_frames: DEFAULT_MAX_HELD_FRAMES,
        };
        InMemoryOverlay { net: Arc::new(Net::new(seed, config)) }
    }

    fn set_config(self, f: impl FnOnce(&mut MemoryConfig)) -> Self {
        self.net.set_config(f);
        self
    }

    /// Sets the largest frame carried (default 4 MiB), for the whole network
    /// (every clone). Affects links opened later.
    pub fn with_max_frame_bytes(self, n: usize) -> Self {
        self.set_config(|c| c.max_frame_bytes = n.max(1))
    }

    /// Sets each link queue's capacity in frames (default
    /// [`DEFAULT_LINK_QUEUE_FRAMES`]), for the whole network. Affects links
    /// opened later.
    pub fn with_link_queue_frames(self, n: usize) -> Self {
        self.set_config(|c| c.link_queue_frames = n.max(1))
    }

    /// Sets how many frames a held link keeps (default
    /// [`DEFAULT_MAX_HELD_FRAMES`]), for the whole network. Affects links
    /// opened later.
    pub fn with_max_held_frames(self, n: usize) -> Self {
        self.set_config(|c| c.max_held_frames = n)
    }

    /// Sets the network's [`FrameTap`] (once: `false`, and no change, if one
    /// is set). Applies to every clone and every link.
    pub fn set_tap(&self, tap: Arc<dyn FrameTap>) -> bool {
        self.net.set_tap(tap)
    }

    /// Re-seeds the network: every directed link's RNG restarts from `seed`.
    pub fn set_seed(&self, seed: u64) {
        self.net.change_faults(|t| t.set_seed(seed));
    }

    /// Cuts `a` and `b` apart in both directions: frames between them are
    /// dropped (counted) when sent, and new dials between them fail.
    pub fn partition(&self, a: &str, b: &str) {
        self.net.change_faults(|t| {
            t.set_partitioned(a, b, true);
            t.set_partitioned(b, a, true);
        });
    }

    /// Undoes [`partition`](Self::partition) (both directions).
    pub fn heal(&self, a: &str, b: &str) {
        self.net.change_faults(|t| {
            t.set_partitioned(a, b, false);
            t.set_partitioned(b, a, false);
        });
    }

    /// Drops frames from `from` to `to` only; new dials between the two fail
    /// (a dial needs both directions).
    pub fn partition_one_way(&self, from: &str, to: &str) {
        self.net.change_faults(|t| t.set_partitioned(from, to, true));
    }

    /// Undoes [`partition_one_way`](Self::partition_one_way).
    pub fn heal_one_way(&self, from: &str, to: &str) {
        self.net.change_faults(|t| t.set_partitioned(from, to, false));
    }

    /// Probability that a frame from `from` to `to` is lost.
    pub fn set_drop_rate(&self, from: &str, to: &str, p: f64) {
        self.net.change_faults(|t| t.update_link(from, to, |f| f.drop_rate = p));
    }

    /// Delay of frames from `from` to `to`, uniform in `min..=max`.
    pub fn set_delay(&self, from: &str, to: &str, min: Duration, max: Duration) {
        self.net.change_faults(|t| {
            t.update_link(from, to, |f| {
                f.delay_min = min;
                f.delay_max = max;
            })
        });
    }

    /// Probability that a frame from `from` to `to` is delivered twice.
    pub fn set_duplicate_rate(&self, from: &str, to: &str, p: f64) {
        self.net.change_faults(|t| t.update_link(from, to, |f| f.duplicate_rate = p));
    }

    /// Probability that a frame from `from` to `to` is delivered behind the
    /// next one (waiting at most [`REORDER_MAX_WAIT`](super::REORDER_MAX_WAIT) for it).
    pub fn set_reorder_rate(&self, from: &str, to: &str, p: f64) {
        self.net.change_faults(|t| t.update_link(from, to, |f| f.reorder_rate = p));
    }

    /// Sets all random faults of the link `from → to` at once.
    pub fn set_link_faults(&self, from: &str, to: &str, faults: LinkFaults) {
        self.net.change_faults(|t| t.update_link(from, to, |f| *f = faults));
    }

    /// Makes the link `from → to` follow the default faults again.
    pub fn clear_link_faults(&self, from: &str, to: &str) {
        self.net.change_faults(|t| t.clear_link(from, to));
    }

    /// Queues frames from `from` to `to` until [`release`](Self::release)
    /// (at most `max_held_frames` per link; more are dropped and counted).
    pub fn hold(&self, from: &str, to: &str) {
        self.net.change_faults(|t| t.set_held(from, to, true));
    }

    /// Delivers the frames held on `from → to` (in order, through the link's
    /// faults) and stops holding.
    pub fn release(&self, from: &str, to: &str) {
        self.net.change_faults(|t| t.set_held(from, to, false));
    }

    /// The random faults of every link without faults of its own.
    pub fn set_default_faults(&self, faults: LinkFaults) {
        self.net.change_faults(|t| t.set_default(faults));
    }

    /// Removes every fault, partition and hold (held frames are released).
    pub fn clear_faults(&self) {
        self.net.change_faults(FaultTable::clear);
    }

    /// The counters, summed over all links.
    pub fn stats(&self) -> InMemoryStats {
        let c = &self.net.counters;
        let get = |a: &AtomicU64| a.load(Ordering::Relaxed);
        InMemoryStats {
            links_opened: get(&c.links_opened),
            dials_failed: get(&c.dials_failed),
            delivered: get(&c.delivered),
            duplicated: get(&c.duplicated),
            reordered: get(&c.reordered),
            held: get(&c.held),
            dropped_partition: get(&c.dropped_partition),
            dropped_random: get(&c.dropped_random),
            dropped_hold_overflow: get(&c.dropped_hold_overflow),
            dropped_closed: get(&c.dropped_closed),
        }
    }

    fn listen_now(&self, me: &NodeId) -> Result<Listener, OverlayError> {
        let mut inner = self.net.lock();
        let name = me.as_str();
        if inner.listeners.get(name).is_some_and(|(_, tx)| !tx.is_closed()) {
            return Err(OverlayError::Bind { addr: name.to_owned(), kind: std::io::ErrorKind::AddrInUse });
        }
        let id = inner.next_listener;
        inner.next_listener += 1;
        let (tx, rx) = mpsc::channel(DEFAULT_ACCEPT_BACKLOG);
        inner.listeners.insert(name.to_owned(), (id, tx));
        let guard = Registration { net: Arc::clone(&self.net), name: name.to_owned(), id };
        Ok(Listener::new(rx, None, Some(Box::new(guard))))
    }

    fn dial_now(&self, me: &NodeId, peer: &NodeId) -> Result<Link, OverlayError> {
        let (me, peer) = (me.as_str(), peer.as_str());
        let failed = |e| {
            bump(&self.net.counters.dials_failed, 1);
            Err(e)
        };
        let inner = self.net.lock();
        if inner.faults.dial_blocked(me, peer) {
            return failed(OverlayError::Unreachable(peer.to_owned()));
        }
        let Some((_, acceptor)) = inner.listeners.get(peer) else {
            return failed(OverlayError::Refused(peer.to_owned()));
        };
        let MemoryConfig { max_frame_bytes, link_queue_frames: q, .. } = inner.config;
        let state = LinkState::new();
        let (a_tx, a_out) = link::outbound(&state, q, max_frame_bytes);
        let (b_tx, b_out) = link::outbound(&state, q, max_frame_bytes);
        let a_limit = FrameLimit::new(max_frame_bytes, max_frame_bytes);
        let b_limit = FrameLimit::new(max_frame_bytes, max_frame_bytes);
        let (a_in, a_bytes, mut a_rx) = link::inbound(q, a_limit.clone());
        let (b_in, b_bytes, mut b_rx) = link::inbound(q, b_limit.clone());
        // A dropped receiver kills the link at once (not when a delivery
        // task notices): no frame is written through after it.
        a_rx.set_kill_on_drop(Arc::clone(&state));
        b_rx.set_kill_on_drop(Arc::clone(&state));
        let there = Direction {
            net: Arc::clone(&self.net),
            from: me.to_owned(),
            to: peer.to_owned(),
            limit: b_limit,
            bytes: b_bytes,
        };
        let back = Direction {
            net: Arc::clone(&self.net),
            from: peer.to_owned(),
            to: me.to_owned(),
            limit: a_limit,
            bytes: a_bytes,
        };
        // Each direction's write-through path (`memory_direct`).
        let there_direct = Direct::new(there.clone(), b_in.clone(), Arc::clone(&state));
        let back_direct = Direct::new(back.clone(), a_in.clone(), Arc::clone(&state));
        let a_tx = a_tx.with_write_through(Arc::clone(&there_direct) as Arc<dyn WriteThrough>);
        let b_tx = b_tx.with_write_through(Arc::clone(&back_direct) as Arc<dyn WriteThrough>);
        let theirs = Link::new(b_tx, b_rx, me.to_owned(), LinkSource::Node(me.to_owned()));
        if acceptor.try_send(theirs).is_err() {
            return failed(OverlayError::Refused(peer.to_owned()));
        }
        drop(inner);
        bump(&self.net.counters.links_opened, 1);
        tokio::spawn(delivery::run(there, a_out, b_in, Arc::clone(&state), there_direct));
        tokio::spawn(delivery::run(back, b_out, a_in, state, back_direct));
        Ok(Link::new(a_tx, a_rx, peer.to_owned(), LinkSource::Unknown))
    }
}

impl Overlay for InMemoryOverlay {
    fn listen(&self, me: &NodeId) -> BoxFuture<'_, Result<Listener, OverlayError>> {
        let result = self.listen_now(me);
        Box::pin(async move { result })
    }

    fn dial(&self, me: &NodeId, peer: &NodeId) -> BoxFuture<'_, Result<Link, OverlayError>> {
        let (me, peer) = (me.clone(), peer.clone());
        Box::pin(async move { self.dial_now(&me, &peer) })
    }

    fn max_frame_bytes(&self) -> usize {
        self.net.max_frame_bytes()
    }
}

impl From<InMemoryOverlay> for ClusterOverlay {
    fn from(overlay: InMemoryOverlay) -> Self {
        ClusterOverlay::new(overlay)
    }
}

#[cfg(test)]
mod direct_tests;
#[cfg(test)]
mod tests;
