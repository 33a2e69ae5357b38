//! [`TcpOverlay`]: one TCP connection per link.
//!
//! A node listens on its own address-book entry; dialling looks the peer's
//! name up and connects within the connect timeout. Every connection gets
//! `TCP_NODELAY` and the configured keepalive (via `socket2`), then one
//! connection task (`super::tcp_conn`) that frames, batches and enforces
//! limits.
//!
//! Task tree: `listen` spawns one accept task per listener (ends when the
//! [`Listener`] is dropped); every connection, accepted or dialled, has one
//! connection task (ends when its link closes). No task outlives its socket.
//!
//! Reconnecting is the node's job: a failed link just ends, and the node
//! re-dials with capped backoff.
//!
//! Hostile peers: inbound connections are capped
//! ([`DEFAULT_MAX_INBOUND_CONNECTIONS`]; over the cap a connection is closed
//! at once and counted), an accepted link waits in a bounded backlog, and a
//! bad frame closes its own connection only.

use std::collections::{BTreeMap, HashMap};
use std::fmt;
use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use parking_lot::RwLock;
use socket2::{SockRef, TcpKeepalive};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{Semaphore, mpsc};

use super::counters::{ConnCounters, bump};
use super::driver::DEFAULT_CLOSE_TIMEOUT;
use super::stream::ConnParams;
use super::tcp_conn;
use super::{
    BoxFuture, ClusterOverlay, DEFAULT_ACCEPT_BACKLOG, DEFAULT_LINK_QUEUE_FRAMES, Link, LinkSource, Listener, Overlay,
    OverlayError,
};
use crate::id::NodeId;
use crate::wire::frame::DEFAULT_MAX_FRAME_BYTES;

/// Default time allowed for a TCP connect.
pub const DEFAULT_CONNECT_TIMEOUT: Duration = Duration::from_secs(5);

/// Default number of inbound connections a listener keeps open at once.
pub const DEFAULT_MAX_INBOUND_CONNECTIONS: usize = 1024;

/// Pause after a failed `accept` (e.g. out of file descriptors), so the
/// accept loop does not spin.
const ACCEPT_ERROR_PAUSE: Duration = Duration::from_millis(50);

/// TCP keepalive settings. `None` leaves the OS default.
///
/// Idle time and interval must be whole seconds from 1 s to 32 767 s, probes
/// from 1 to 127 (checked when listening or dialling).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TcpKeepaliveOptions {
    /// Whether keepalive probes are sent at all.
    pub enabled: bool,
    /// Idle time before the first probe.
    pub idle: Option<Duration>,
    /// Time between probes.
    pub interval: Option<Duration>,
    /// Unanswered probes before the connection is dropped.
    pub probes: Option<u32>,
}

impl Default for TcpKeepaliveOptions {
    /// Enabled; idle 30 s, interval 10 s, 3 probes (a dead peer is noticed
    /// after about a minute even when no frame is sent).
    fn default() -> Self {
        TcpKeepaliveOptions {
            enabled: true,
            idle: Some(Duration::from_secs(30)),
            interval: Some(Duration::from_secs(10)),
            probes: Some(3),
        }
    }
}

impl TcpKeepaliveOptions {
    fn validate(&self) -> Result<(), OverlayError> {
        let secs = |name: &str, d: Option<Duration>| match d {
            Some(d) if d.subsec_nanos() != 0 || !(1..=32_767).contains(&d.as_secs()) => {
                Err(OverlayError::Config(format!("keepalive {name} must be whole seconds in 1..=32767")))
            }
            _ => Ok(()),
        };
        secs("idle", self.idle)?;
        secs("interval", self.interval)?;
        match self.probes {
            Some(n) if !(1..=127).contains(&n) => {
                Err(OverlayError::Config("keepalive probes must be in 1..=127".into()))
            }
            _ => Ok(()),
        }
    }
}

/// A snapshot of a [`TcpOverlay`]'s counters (all its links, since creation).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct TcpStats {
    /// Connections opened by `dial`.
    pub connections_dialed: u64,
    /// Connections accepted by listeners.
    pub connections_accepted: u64,
    /// Inbound connections closed at once: over the connection cap, or the
    /// listener's backlog was full.
    pub connections_rejected: u64,
    /// Connections whose task has ended.
    pub connections_closed: u64,
    /// Frames written.
    pub frames_sent: u64,
    /// Frames read.
    pub frames_received: u64,
    /// `write_all` calls (each carries one or more frames).
    pub write_batches: u64,
    /// Connections closed for a bad length prefix (oversized or empty).
    pub decode_errors: u64,
    /// Connections that ended inside a frame.
    pub truncated_frames: u64,
    /// Connections closed by an I/O error.
    pub io_errors: u64,
    /// Times a connection stopped reading because its inbound queue held
    /// its byte budget. Always 0: a TCP link has no inbound queue (its
    /// receiver reads the socket itself, only while it waits for a frame,
    /// each read capped by `LinkReceiver::set_max_queued_bytes`). Kept so
    /// code reading it still builds.
    pub byte_budget_waits: u64,
}

#[derive(Debug, Clone, Copy)]
struct TcpConfig {
    max_frame_bytes: usize,
    initial_max_frame_bytes: usize,
    connect_timeout: Duration,
    keepalive: TcpKeepaliveOptions,
    link_queue_frames: usize,
    max_inbound_connections: usize,
    close_timeout: Duration,
}

/// Turns a connected socket into a link by way of a protocol on top (the
/// TLS overlay); without one, the TCP overlay runs `tcp_conn` directly.
pub(crate) trait Upgrade: Send + Sync + fmt::Debug + 'static {
    /// An accepted connection: the protocol's handshake (within its own
    /// deadline), then the link.
    fn accept(self: Arc<Self>, stream: TcpStream, params: ConnParams)
    -> BoxFuture<'static, Result<Link, OverlayError>>;

    /// A connection dialled to `peer`.
    fn connect(
        self: Arc<Self>,
        stream: TcpStream,
        peer: NodeId,
        params: ConnParams,
    ) -> BoxFuture<'static, Result<Link, OverlayError>>;
}

/// A TCP transport. `Clone`: clones share the address book and counters.
///
/// Every setting is checked by [`Overlay::listen`] and [`Overlay::dial`],
/// which return [`OverlayError::Config`] for a bad one.
///
/// ```
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() {
/// use std::collections::HashMap;
/// use axactor_cluster::NodeId;
/// use axactor_cluster::overlay::{Overlay, Priority, TcpOverlay};
/// use bytes::Bytes;
///
/// let (a, b) = (NodeId::new("a"), NodeId::new("b"));
/// let tcp = TcpOverlay::new(HashMap::from([("b".to_string(), "127.0.0.1:0".parse().unwrap())]));
/// let mut listener = tcp.listen(&b).await.unwrap();
/// tcp.insert_address("b", listener.local_addr().unwrap()); // the port actually bound
///
/// let link = tcp.dial(&a, &b).await.unwrap();
/// link.tx.send(Bytes::from_static(b"hello"), Priority::Data).await.unwrap();
/// let mut inbound = listener.accept().await.unwrap();
/// assert_eq!(inbound.rx.recv().await.unwrap(), "hello");
/// # }
/// ```
#[derive(Debug, Clone)]
pub struct TcpOverlay {
    config: TcpConfig,
    book: Arc<RwLock<BTreeMap<String, SocketAddr>>>,
    counters: Arc<ConnCounters>,
    upgrade: Option<Arc<dyn Upgrade>>,
}

impl TcpOverlay {
    /// An overlay with the given address book (node name → address; a node
    /// listens on its own entry), frames up to 4 MiB, a 5 s connect timeout
    /// and default keepalive.
    pub fn new(address_book: HashMap<String, SocketAddr>) -> TcpOverlay {
        TcpOverlay::with_keepalive_options(
            address_book,
            DEFAULT_MAX_FRAME_BYTES,
            DEFAULT_CONNECT_TIMEOUT,
            TcpKeepaliveOptions::default(),
        )
    }

    /// An overlay with explicit limits and keepalive settings.
    pub fn with_keepalive_options(
        address_book: HashMap<String, SocketAddr>,
        max_frame_bytes: usize,
        connect_timeout: Duration,
        keepalive: TcpKeepaliveOptions,
    ) -> TcpOverlay {
        let config = TcpConfig {
            max_frame_bytes,
            // Unauthenticated peers get a small limit until the node raises it.
            initial_max_frame_bytes: max_frame_bytes.min(crate::config::DEFAULT_PREAUTH_MAX_FRAME_BYTES),
            connect_timeout,
            keepalive,
            link_queue_frames: DEFAULT_LINK_QUEUE_FRAMES,
            max_inbound_connections: DEFAULT_MAX_INBOUND_CONNECTIONS,
            close_timeout: DEFAULT_CLOSE_TIMEOUT,
        };
        TcpOverlay {
            config,
            book: Arc::new(RwLock::new(address_book.into_iter().collect())),
            counters: Arc::default(),
            upgrade: None,
        }
    }

    /// This overlay with every connection upgraded by `upgrade` (shared
    /// address book and counters with `self`).
    #[cfg_attr(not(feature = "tls"), allow(dead_code))]
    pub(crate) fn with_upgrade(mut self, upgrade: Arc<dyn Upgrade>) -> Self {
        self.upgrade = Some(upgrade);
        self
    }

    /// Sets each link queue's capacity in frames (default [`DEFAULT_LINK_QUEUE_FRAMES`]).
    pub fn with_link_queue_frames(mut self, n: usize) -> Self {
        self.config.link_queue_frames = n;
        self
    }

    /// Sets how many inbound connections a listener keeps open at once
    /// (default [`DEFAULT_MAX_INBOUND_CONNECTIONS`]).
    pub fn with_max_inbound_connections(mut self, n: usize) -> Self {
        self.config.max_inbound_connections = n;
        self
    }

    /// Sets how long a closing link may take to flush its queued frames and
    /// see the peer's end before it is dropped (default [`DEFAULT_CLOSE_TIMEOUT`]).
    pub fn with_close_timeout(mut self, d: Duration) -> Self {
        self.config.close_timeout = d;
        self
    }

    /// Sets the frame limit every new link starts with (default: the
    /// smaller of `max_frame_bytes` and
    /// [`DEFAULT_PREAUTH_MAX_FRAME_BYTES`](crate::config::DEFAULT_PREAUTH_MAX_FRAME_BYTES)); the node raises it per link with
    /// [`LinkReceiver::set_max_frame_bytes`](super::LinkReceiver::set_max_frame_bytes)
    /// once the peer is authenticated.
    pub fn with_initial_max_frame_bytes(mut self, n: usize) -> Self {
        self.config.initial_max_frame_bytes = n;
        self
    }

    /// Adds or replaces an address-book entry (shared by all clones), e.g.
    /// after a listener on port 0 reported its address.
    pub fn insert_address(&self, name: impl Into<String>, addr: SocketAddr) {
        self.book.write().insert(name.into(), addr);
    }

    /// The address of `name`, if known.
    pub fn address(&self, name: &str) -> Option<SocketAddr> {
        self.book.read().get(name).copied()
    }

    /// The counters, summed over all links of this overlay and its clones.
    pub fn stats(&self) -> TcpStats {
        let c = &*self.counters;
        let get = |a: &AtomicU64| a.load(Ordering::Relaxed);
        TcpStats {
            connections_dialed: get(&c.connections_dialed),
            connections_accepted: get(&c.connections_accepted),
            connections_rejected: get(&c.connections_rejected),
            connections_closed: get(&c.connections_closed),
            frames_sent: get(&c.frames_sent),
            frames_received: get(&c.frames_received),
            write_batches: get(&c.write_batches),
            decode_errors: get(&c.decode_errors),
            truncated_frames: get(&c.truncated_frames),
            io_errors: get(&c.io_errors),
            byte_budget_waits: get(&c.byte_budget_waits),
        }
    }

    fn validate(&self) -> Result<(), OverlayError> {
        let c = &self.config;
        let bad = |what: &str| Err(OverlayError::Config(what.to_owned()));
        if c.max_frame_bytes == 0 || c.max_frame_bytes > u32::MAX as usize {
            return bad("max_frame_bytes must be between 1 and u32::MAX");
        }
        if c.initial_max_frame_bytes == 0 {
            return bad("initial_max_frame_bytes must be at least 1");
        }
        if c.connect_timeout.is_zero() {
            return bad("connect_timeout must be positive");
        }
        if c.link_queue_frames == 0 || c.max_inbound_connections == 0 {
            return bad("link_queue_frames and max_inbound_connections must be at least 1");
        }
        c.keepalive.validate()
    }

    fn conn_params(&self, remote: String, source: LinkSource) -> ConnParams {
        ConnParams {
            max_frame_bytes: self.config.max_frame_bytes,
            initial_max_frame_bytes: self.config.initial_max_frame_bytes,
            queue_frames: self.config.link_queue_frames,
            close_timeout: self.config.close_timeout,
            counters: Arc::clone(&self.counters),
            remote,
            source,
            permit: None,
        }
    }

    async fn listen_impl(&self, me: NodeId) -> Result<Listener, OverlayError> {
        self.validate()?;
        let Some(addr) = self.address(me.as_str()) else {
            return Err(OverlayError::Bind { addr: me.to_string(), kind: std::io::ErrorKind::NotFound });
        };
        let listener =
            TcpListener::bind(addr).await.map_err(|e| OverlayError::Bind { addr: addr.to_string(), kind: e.kind() })?;
        let local = listener.local_addr().map_err(|e| OverlayError::Bind { addr: addr.to_string(), kind: e.kind() })?;
        let (tx, rx) = mpsc::channel(DEFAULT_ACCEPT_BACKLOG);
        tokio::spawn(accept_loop(self.clone(), listener, tx));
        Ok(Listener::new(rx, Some(local), None))
    }

    async fn dial_impl(&self, peer: NodeId) -> Result<Link, OverlayError> {
        self.validate()?;
        let addr = self.address(peer.as_str()).ok_or_else(|| OverlayError::UnknownPeer(peer.to_string()))?;
        let stream = match tokio::time::timeout(self.config.connect_timeout, TcpStream::connect(addr)).await {
            Err(_) => return Err(OverlayError::ConnectTimeout),
            Ok(Err(e)) if e.kind() == std::io::ErrorKind::ConnectionRefused => {
                return Err(OverlayError::Refused(format!("{peer}@{addr}")));
            }
            Ok(Err(e)) => return Err(OverlayError::Io(e.kind())),
            Ok(Ok(stream)) => stream,
        };
        configure_socket(&stream, &self.config.keepalive);
        bump(&self.counters.connections_dialed, 1);
        let params = self.conn_params(format!("{peer}@{addr}"), LinkSource::Unknown);
        match &self.upgrade {
            None => Ok(tcp_conn::spawn(stream, params)),
            Some(upgrade) => Arc::clone(upgrade).connect(stream, peer, params).await,
        }
    }
}

/// Sets `TCP_NODELAY` and keepalive. Failures are logged, not fatal: the
/// connection still works, only less promptly or without dead-peer probes.
pub(crate) fn configure_socket(stream: &TcpStream, keepalive: &TcpKeepaliveOptions) {
    if let Err(e) = stream.set_nodelay(true) {
        tracing::debug!(error = %e, "cannot set TCP_NODELAY");
    }
    let sock = SockRef::from(stream);
    let result = if keepalive.enabled {
        let mut ka = TcpKeepalive::new();
        if let Some(idle) = keepalive.idle {
            ka = ka.with_time(idle);
        }
        #[cfg(any(
            target_os = "linux",
            target_os = "android",
            target_os = "macos",
            target_os = "ios",
            target_os = "freebsd",
            target_os = "netbsd",
            target_os = "windows"
        ))]
        {
            if let Some(interval) = keepalive.interval {
                ka = ka.with_interval(interval);
            }
            if let Some(probes) = keepalive.probes {
                ka = ka.with_retries(probes);
            }
        }
        sock.set_tcp_keepalive(&ka)
    } else {
        sock.set_keepalive(false)
    };
    if let Err(e) = result {
        tracing::debug!(error = %e, "cannot set TCP keepalive");
    }
}

/// Accepts connections until the listener is dropped.
async fn accept_loop(overlay: TcpOverlay, listener: TcpListener, links: mpsc::Sender<Link>) {
    let slots = Arc::new(Semaphore::new(overlay.config.max_inbound_connections));
    let counters = Arc::clone(&overlay.counters);
    loop {
        let accepted = tokio::select! {
            biased;
            () = links.closed() => return,
            r = listener.accept() => r,
        };
        let (stream, addr) = match accepted {
            Ok(pair) => pair,
            Err(e) => {
                tracing::debug!(error = %e, "accept failed");
                tokio::time::sleep(ACCEPT_ERROR_PAUSE).await;
                continue;
            }
        };
        let Ok(permit) = Arc::clone(&slots).try_acquire_owned() else {
            tracing::debug!(%addr, "closing inbound connection: too many connections");
            bump(&counters.connections_rejected, 1);
            continue;
        };
        let Ok(slot) = links.try_reserve() else {
            tracing::debug!(%addr, "closing inbound connection: accept backlog full");
            bump(&counters.connections_rejected, 1);
            continue;
        };
        configure_socket(&stream, &overlay.config.keepalive);
        bump(&counters.connections_accepted, 1);
        let mut params = overlay.conn_params(addr.to_string(), LinkSource::Ip(addr.ip().to_canonical()));
        params.permit = Some(permit);
        let Some(upgrade) = &overlay.upgrade else {
            slot.send(tcp_conn::spawn(stream, params));
            continue;
        };
        // The protocol's handshake runs in a task of its own, bounded by its
        // deadline and holding its connection permit; the backlog slot is
        // taken again once the link exists.
        drop(slot);
        let handshake = Arc::clone(upgrade).accept(stream, params);
        let (links, counters) = (links.clone(), Arc::clone(&counters));
        tokio::spawn(async move {
            let Ok(link) = handshake.await else { return };
            if links.try_send(link).is_err() {
                tracing::debug!(%addr, "closing inbound connection: accept backlog full");
                bump(&counters.connections_rejected, 1);
            }
        });
    }
}

impl Overlay for TcpOverlay {
    fn listen(&self, me: &NodeId) -> BoxFuture<'_, Result<Listener, OverlayError>> {
        Box::pin(self.listen_impl(me.clone()))
    }

    fn dial(&self, _me: &NodeId, peer: &NodeId) -> BoxFuture<'_, Result<Link, OverlayError>> {
        Box::pin(self.dial_impl(peer.clone()))
    }

    fn max_frame_bytes(&self) -> usize {
        self.config.max_frame_bytes
    }
}

impl From<TcpOverlay> for ClusterOverlay {
    fn from(overlay: TcpOverlay) -> Self {
        ClusterOverlay::new(overlay)
    }
}

#[cfg(test)]
mod tests;
