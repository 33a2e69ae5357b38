//! Overlays: the transports that carry opaque frames between named nodes,
//! and the extension point for writing one.
//!
//! An [`Overlay`] listens as a node ([`Overlay::listen`] → [`Listener`]) and
//! dials peers ([`Overlay::dial`] → [`Link`]). A link moves
//! [`bytes::Bytes`] frames both ways with message boundaries preserved, a
//! [`Priority`] per frame (control before data) and bounded queues. An
//! overlay knows nothing of handshakes, sessions or sealing: the node runs
//! its token handshake over every fresh link and seals every frame after
//! it, whatever the overlay.
//!
//! Three overlays ship:
//! - [`InMemoryOverlay`]: one in-process network shared by its clones, with
//!   seeded, deterministic fault injection (partitions, drops, delays,
//!   duplicates, reordering, holds) for tests and the simulation;
//! - [`TcpOverlay`]: one TCP connection per link, `u32` big-endian
//!   length-prefixed frames ([`crate::wire::frame`]), keepalive and
//!   `TCP_NODELAY`, write batching;
//! - `TlsOverlay` (feature `tls`): the TCP overlay's connections inside
//!   TLS 1.3/1.2 (rustls), with optional client certificates whose names
//!   bind the node names peers may claim.
//!
//! # Writing an overlay
//!
//! Implement [`Overlay`] (object safe; `listen`, `dial`, `max_frame_bytes`)
//! and wrap it with [`ClusterOverlay::new`]. The pieces are public:
//! - a [`Listener`] from [`Listener::channel`]: the overlay keeps the
//!   [`ListenerHandle`] and [`offers`](ListenerHandle::offer) it each
//!   accepted link; when the node drops the listener the handle reports
//!   [`closed`](ListenerHandle::closed) and the overlay stops accepting;
//! - a link over a byte stream: [`stream_link`] (the TCP overlay's framing,
//!   batching, frame limits, back-pressure and close deadline over any
//!   `AsyncRead + AsyncWrite`);
//! - a link over anything else: [`endpoint`] gives the [`Link`] for the node
//!   and a [`LinkDriver`] for the transport ([`LinkOutbox`] to take frames
//!   to send, [`LinkInbox`] to hand over received ones, [`LinkControl`] for
//!   the phase); the `driver` module docs state its contract.
//! - [`PeerIdentity`] on [`Link::identity`]: what the transport proved of
//!   the peer (a certificate); the node refuses a handshake claiming a name
//!   it does not cover.
//!
//! The suite in `conformance` (feature `overlay-conformance`) checks what
//! the node relies on; every shipped overlay passes it, and so does one
//! written outside the crate (`tests/overlay_conformance.rs`).
//!
//! # What a link promises (what the node expects of an overlay)
//!
//! - **Frames.** Each frame arrives whole, once, with its boundaries, in the
//!   order it was queued per priority; control frames may overtake queued
//!   data frames (the in-memory overlay's injected faults are the only
//!   other exception). Sealed frames carry consecutive sequence numbers, so
//!   an overlay that reorders, drops or duplicates frames only makes the
//!   node close that connection.
//! - **Frame limit.** Senders refuse an empty frame ([`OverlayError::EmptyFrame`])
//!   and one longer than [`Overlay::max_frame_bytes`]
//!   ([`OverlayError::FrameTooLarge`]) before queueing it. The receiving
//!   side has its own, lower limit the node changes
//!   ([`LinkReceiver::set_max_frame_bytes`]: small until the peer is
//!   authenticated); a peer's frame over it closes the link, checked
//!   before the frame's body is buffered.
//! - **Back-pressure.** Every queue is bounded: [`DEFAULT_LINK_QUEUE_FRAMES`]
//!   per priority and direction, [`DEFAULT_LINK_QUEUE_BYTES`] per direction,
//!   [`DEFAULT_ACCEPT_BACKLOG`] links waiting in a listener. When a receiver
//!   falls behind, the overlay stops taking the peer's frames, the peer's
//!   queues fill, and its [`LinkSender::send`] waits while
//!   [`LinkSender::try_send`] reports [`OverlayError::Full`]: memory is
//!   bounded by the queues (and the transport's own buffers), never by the
//!   sender's speed.
//! - **Close.** [`LinkSender::close`] (or dropping every sender) is
//!   graceful: new frames are refused ([`OverlayError::Closed`]), frames
//!   already accepted are still delivered, then the peer's receiver returns
//!   `None`; a closing link becomes dead within a bounded time even if the
//!   peer stops reading. Dropping the [`LinkReceiver`], an I/O error or a
//!   bad frame kills the link at once: queued frames are discarded and the
//!   peer sees the end. A link's failure ends that link only.
//! - **Dial.** Dialling a name the overlay cannot reach fails with a typed
//!   [`OverlayError`] ([`UnknownPeer`](OverlayError::UnknownPeer),
//!   [`Refused`](OverlayError::Refused), ...), within a bounded time.
//!   Reconnecting is not an overlay's job: a link that fails just ends, and
//!   the node re-dials with its own capped backoff and runs a new handshake.

use std::any::Any;
use std::fmt;
use std::net::SocketAddr;
use std::sync::Arc;

use tokio::sync::mpsc;

use crate::id::NodeId;

#[cfg(feature = "overlay-conformance")]
pub mod conformance;
mod counters;
mod delivery;
mod driver;
mod faults;
mod link;
mod memory;
mod memory_net;
mod stream;
mod tcp;
mod tcp_conn;
#[cfg(feature = "tls")]
mod tls;
mod tls_failure;

pub use driver::{DEFAULT_CLOSE_TIMEOUT, LinkConfig, LinkControl, LinkDriver, LinkInbox, endpoint};
pub use faults::LinkFaults;
pub use crate::future::BoxFuture;
pub use link::{Link, LinkOutbox, LinkPhase, LinkReceiver, LinkSender, LinkSource, Outgoing, PeerIdentity, Priority};
pub use delivery::REORDER_MAX_WAIT;
pub use memory::{DEFAULT_MAX_HELD_FRAMES, InMemoryOverlay, InMemoryStats};
pub use memory_net::{FrameFate, FrameTap};
pub use stream::stream_link;
pub use tcp::{DEFAULT_CONNECT_TIMEOUT, DEFAULT_MAX_INBOUND_CONNECTIONS, TcpKeepaliveOptions, TcpOverlay, TcpStats};
#[cfg(feature = "tls")]
pub use tls::{DEFAULT_TLS_HANDSHAKE_TIMEOUT, PemSource, TlsConfig, TlsConfigError, TlsOverlay, TlsStats};
pub use tls_failure::TlsFailure;

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
    /// The TLS handshake failed (`TlsOverlay`, feature `tls`).
    #[error("tls handshake failed: {0}")]
    Tls(TlsFailure),
}

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

#[cfg(feature = "tls")]
impl From<TlsOverlay> for ClusterOverlay {
    fn from(overlay: TlsOverlay) -> Self {
        ClusterOverlay::new(overlay)
    }
}

/// Accepts inbound links for one node. Dropping it stops listening.
///
/// An overlay of your own makes one with [`Listener::channel`].
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

    /// A listener holding at most `backlog` accepted links (at least 1)
    /// that the node has not taken yet, and the handle the overlay offers
    /// accepted links through.
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() {
    /// use axactor_cluster::overlay::{LinkConfig, LinkSource, Listener, endpoint};
    ///
    /// let (handle, mut listener) = Listener::channel(8);
    /// let (link, _driver) = endpoint(LinkConfig::default(), "peer", LinkSource::Unknown);
    /// handle.offer(link).unwrap();
    /// assert_eq!(listener.accept().await.unwrap().remote, "peer");
    /// drop(listener);
    /// assert!(handle.is_closed(), "the node stopped listening");
    /// # }
    /// ```
    pub fn channel(backlog: usize) -> (ListenerHandle, Listener) {
        let (tx, rx) = mpsc::channel(backlog.max(1));
        (ListenerHandle { tx }, Listener::new(rx, None, None))
    }

    /// Sets the address [`local_addr`](Self::local_addr) reports.
    pub fn with_local_addr(mut self, addr: SocketAddr) -> Listener {
        self.local_addr = Some(addr);
        self
    }

    /// Keeps `guard` until the listener is dropped (e.g. to unregister the
    /// node's name from the overlay when it stops listening).
    pub fn with_drop_guard(mut self, guard: impl Any + Send + Sync) -> Listener {
        self._guard = Some(Box::new(guard));
        self
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

/// The overlay's end of a [`Listener`]: hands it accepted links. Cheap to
/// clone.
#[derive(Debug, Clone)]
pub struct ListenerHandle {
    tx: mpsc::Sender<Link>,
}

/// Why [`ListenerHandle::offer`] did not take a link; the link is given
/// back so the overlay can close it (and should count it).
#[derive(Debug, thiserror::Error)]
pub enum OfferError {
    /// The listener's backlog is full: the node is not accepting fast
    /// enough.
    #[error("listener backlog full")]
    Full(Box<Link>),
    /// The listener was dropped: stop accepting.
    #[error("listener closed")]
    Closed(Box<Link>),
}

impl OfferError {
    /// The link that was not taken.
    pub fn into_link(self) -> Link {
        match self {
            OfferError::Full(link) | OfferError::Closed(link) => *link,
        }
    }
}

impl ListenerHandle {
    /// Hands an accepted link to the listener without waiting.
    ///
    /// # Errors
    /// [`OfferError::Full`] if the backlog is full, [`OfferError::Closed`]
    /// if the listener was dropped; either gives the link back.
    pub fn offer(&self, link: Link) -> Result<(), OfferError> {
        self.tx.try_send(link).map_err(|e| match e {
            mpsc::error::TrySendError::Full(link) => OfferError::Full(Box::new(link)),
            mpsc::error::TrySendError::Closed(link) => OfferError::Closed(Box::new(link)),
        })
    }

    /// Whether the listener was dropped.
    pub fn is_closed(&self) -> bool {
        self.tx.is_closed()
    }

    /// Completes once the listener was dropped.
    ///
    /// # Cancel safety
    /// Cancel safe.
    pub async fn closed(&self) {
        self.tx.closed().await;
    }
}
