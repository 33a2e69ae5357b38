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

mod budget;
#[cfg(feature = "overlay-conformance")]
pub mod conformance;
mod counters;
mod delivery;
mod driver;
mod error;
mod faults;
mod inbound;
mod link;
mod listener;
mod memory;
mod memory_direct;
mod memory_net;
mod pull;
mod stream;
mod tcp;
mod tcp_conn;
#[cfg(feature = "tls")]
mod tls;
mod tls_failure;
mod transport;

pub use crate::future::BoxFuture;
pub use delivery::REORDER_MAX_WAIT;
pub use driver::{DEFAULT_CLOSE_TIMEOUT, LinkConfig, LinkControl, LinkDriver, LinkInbox, endpoint};
pub use error::OverlayError;
pub use faults::LinkFaults;
pub(crate) use inbound::InlineSink;
pub use link::{
    DEFAULT_LINK_QUEUE_BYTES, DEFAULT_LINK_QUEUE_FRAMES, Link, LinkOutbox, LinkPhase, LinkReceiver, LinkSender,
    LinkSource, Outgoing, PeerIdentity, Priority,
};
pub use listener::{DEFAULT_ACCEPT_BACKLOG, Listener, ListenerHandle, OfferError};
pub use memory::{DEFAULT_MAX_HELD_FRAMES, InMemoryOverlay, InMemoryStats};
pub use memory_net::{FrameFate, FrameTap};
pub use stream::stream_link;
pub use tcp::{DEFAULT_CONNECT_TIMEOUT, DEFAULT_MAX_INBOUND_CONNECTIONS, TcpKeepaliveOptions, TcpOverlay, TcpStats};
#[cfg(feature = "tls")]
pub use tls::{DEFAULT_TLS_HANDSHAKE_TIMEOUT, PemSource, TlsConfig, TlsConfigError, TlsOverlay, TlsStats};
pub use tls_failure::TlsFailure;
pub use transport::{ClusterOverlay, Overlay};
