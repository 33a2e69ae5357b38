//! Overlays: the transports that carry opaque frames between named nodes.
//!
//! An [`Overlay`] listens as a node ([`Overlay::listen`] → [`Listener`]) and
//! dials peers ([`Overlay::dial`] → [`Link`]). A link moves
//! [`bytes::Bytes`] frames both ways with message boundaries preserved, a
//! [`Priority`] per frame (control before data) and bounded queues. An
//! overlay knows nothing of handshakes, sessions or encryption: the node
//! runs its handshake over a fresh link.
//!
//! Two overlays ship:
//! - [`InMemoryOverlay`]: one in-process network shared by its clones, with
//!   seeded, deterministic fault injection (partitions, drops, delays,
//!   duplicates, reordering, holds) for tests and the simulation;
//! - [`TcpOverlay`]: one TCP connection per link, `u32` big-endian
//!   length-prefixed frames ([`crate::wire::frame`]), keepalive and
//!   `TCP_NODELAY`, write batching.
//!
//! Reconnecting is not an overlay's job: a link that fails just ends (its
//! receiver yields `None`, its sender reports [`OverlayError::Closed`]); the
//! node re-dials with its own capped backoff and runs a new handshake.
//!
//! Invariants shared by both overlays:
//! - frames of one link arrive in the order they were queued per priority,
//!   control frames may overtake data frames (the in-memory overlay's
//!   injected faults are the only other exception);
//! - every queue is bounded: [`DEFAULT_LINK_QUEUE_FRAMES`] per priority and
//!   direction, [`DEFAULT_LINK_QUEUE_BYTES`] per direction,
//!   [`DEFAULT_ACCEPT_BACKLOG`] links waiting in a listener;
//! - a link's failure (a peer's bad frame included) ends that link only.

use std::any::Any;
use std::fmt;
use std::net::SocketAddr;
use std::sync::Arc;

use tokio::sync::mpsc;

use crate::id::NodeId;

mod delivery;
mod faults;
mod link;
mod memory;
mod tcp;
mod tcp_conn;

pub use faults::LinkFaults;
pub use link::{Link, LinkReceiver, LinkSender, LinkSource, Priority};
pub use memory::{DEFAULT_MAX_HELD_FRAMES, FrameFate, FrameTap, InMemoryOverlay, InMemoryStats, REORDER_MAX_WAIT};
pub use tcp::{
    DEFAULT_CLOSE_TIMEOUT, DEFAULT_CONNECT_TIMEOUT, DEFAULT_MAX_INBOUND_CONNECTIONS, TcpKeepaliveOptions, TcpOverlay,
    TcpStats,
};

/// Default capacity of each bounded queue of a link, in frames: one queue
/// per [`Priority`] for sending, one for receiving.
pub const DEFAULT_LINK_QUEUE_FRAMES: usize = 1024;

/// Default byte budget of a link's queues, per direction: the inbound
/// queue, and the two outbound queues together (see [`LinkSender::set_max_queued_bytes`]
/// and [`LinkReceiver::set_max_queued_bytes`]).
pub const DEFAULT_LINK_QUEUE_BYTES: usize = 32 * 1024 * 1024;

/// Default number of accepted links a [`Listener`] holds before
/// [`Listener::accept`] takes them; further links are refused.
pub const DEFAULT_ACCEPT_BACKLOG: usize = 128;

/// Why an overlay operation failed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum OverlayError {
    /// The node could not listen: its address is missing from the address
    /// book (`kind` is `NotFound`), already in use, or not bindable.
    #[error("cannot listen on {addr}: {kind}")]
    Bind {
        /// The address (or, in memory or when missing, the node name).
        addr: String,
        /// The cause.
        kind: std::io::ErrorKind,
    },
    /// The peer's name is not in the address book.
    #[error("unknown peer {0}")]
    UnknownPeer(String),
    /// The connection was not established within the connect timeout.
    #[error("connect timed out")]
    ConnectTimeout,
    /// The peer refused the link (nothing listening, or its backlog is full).
    #[error("connection refused by {0}")]
    Refused(String),
    /// The peer cannot be reached (an injected partition).
    #[error("peer {0} unreachable")]
    Unreachable(String),
    /// The link is closing or closed.
    #[error("link closed")]
    Closed,
    /// The link's queue for that priority is full.
    #[error("link queue full")]
    Full,
    /// An empty frame was given; frames carry at least one byte.
    #[error("empty frame")]
    EmptyFrame,
    /// The frame is longer than the overlay carries.
    #[error("frame of {len} bytes exceeds the limit of {max}")]
    FrameTooLarge {
        /// The frame's length.
        len: usize,
        /// The overlay's `max_frame_bytes`.
        max: usize,
    },
    /// The overlay's configuration is invalid; the message says which setting.
    #[error("invalid overlay configuration: {0}")]
    Config(String),
    /// Another I/O error.
    #[error("i/o error: {0}")]
    Io(std::io::ErrorKind),
}

/// A boxed, sendable future, as returned by [`Overlay`]'s methods.
pub type BoxFuture<'a, T> = std::pin::Pin<Box<dyn std::future::Future<Output = T> + Send + 'a>>;

/// A transport. Object safe; the node holds it as a [`ClusterOverlay`].
pub trait Overlay: Send + Sync + fmt::Debug + 'static {
    /// Starts listening as `me`. Links dialled to `me` are then handed out by
    /// the returned [`Listener`]; dropping it stops listening (links already
    /// accepted live on).
    ///
    /// # Errors
    /// [`OverlayError::Bind`] if `me` cannot listen (no address, address in
    /// use, already listening in memory), [`OverlayError::Config`] if the
    /// overlay's configuration is invalid.
    fn listen(&self, me: &NodeId) -> BoxFuture<'_, Result<Listener, OverlayError>>;

    /// Opens a link from `me` to `peer`.
    ///
    /// # Errors
    /// [`OverlayError::UnknownPeer`], [`OverlayError::Refused`],
    /// [`OverlayError::Unreachable`], [`OverlayError::ConnectTimeout`],
    /// [`OverlayError::Config`] or [`OverlayError::Io`].
    fn dial(&self, me: &NodeId, peer: &NodeId) -> BoxFuture<'_, Result<Link, OverlayError>>;

    /// Largest frame this overlay carries (TCP: the configured `max_frame_bytes`).
    fn max_frame_bytes(&self) -> usize;
}

/// What `ClusterNode::start` takes (`impl Into<ClusterOverlay>`): a shared,
/// type-erased [`Overlay`].
#[derive(Debug, Clone)]
pub struct ClusterOverlay(Arc<dyn Overlay>);

impl ClusterOverlay {
    /// Wraps any overlay.
    pub fn new(overlay: impl Overlay) -> Self {
        ClusterOverlay(Arc::new(overlay))
    }

    /// The overlay.
    pub fn inner(&self) -> &Arc<dyn Overlay> {
        &self.0
    }
}

impl From<InMemoryOverlay> for ClusterOverlay {
    fn from(overlay: InMemoryOverlay) -> Self {
        ClusterOverlay::new(overlay)
    }
}

impl From<TcpOverlay> for ClusterOverlay {
    fn from(overlay: TcpOverlay) -> Self {
        ClusterOverlay::new(overlay)
    }
}

/// Accepts inbound links for one node. Dropping it stops listening.
pub struct Listener {
    rx: mpsc::Receiver<Link>,
    local_addr: Option<SocketAddr>,
    // Unregisters the node (memory) when the listener is dropped.
    _guard: Option<Box<dyn Any + Send + Sync>>,
}

impl Listener {
    pub(crate) fn new(
        rx: mpsc::Receiver<Link>,
        local_addr: Option<SocketAddr>,
        guard: Option<Box<dyn Any + Send + Sync>>,
    ) -> Listener {
        Listener { rx, local_addr, _guard: guard }
    }

    /// The next inbound link; `None` once the overlay stopped accepting.
    ///
    /// # Cancel safety
    /// Cancel safe: a link is never lost by dropping the future.
    pub async fn accept(&mut self) -> Option<Link> {
        self.rx.recv().await
    }

    /// The bound socket address (TCP; `None` in memory). Useful with port 0.
    pub fn local_addr(&self) -> Option<SocketAddr> {
        self.local_addr
    }
}

impl fmt::Debug for Listener {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Listener").field("local_addr", &self.local_addr).finish_non_exhaustive()
    }
}
