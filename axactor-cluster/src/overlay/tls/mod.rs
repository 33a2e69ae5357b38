//! [`TlsOverlay`] (feature `tls`): the TCP overlay with every connection
//! inside TLS 1.3 (tokio-rustls, ring).
//!
//! It is a [`TcpOverlay`] whose connections are upgraded before they become
//! links: the address book, connect timeout, keepalive, `TCP_NODELAY`, the
//! inbound connection cap and the frame limits are the TCP overlay's; the
//! link over the TLS stream is a stream link (`super::stream`: the same
//! framing, batching, back-pressure and close deadline, without TCP's
//! write-through). Re-dialling stays the node's job, as for TCP.
//!
//! Handshakes: a dialled connection runs the client handshake with the
//! peer's node name as the server name, so the server's certificate must
//! name that node (a DNS subject alternative name) and chain to a trusted
//! CA. An accepted connection runs the server handshake in a task of its
//! own (holding its inbound-connection permit, within the handshake
//! timeout); with mutual TLS the client must present a certificate from a
//! trusted CA, and the link carries it as its [`PeerIdentity`]: the node
//! then refuses a cluster handshake in which the client claims a node name
//! the certificate does not carry (`peer_identity`). The node's token
//! handshake and frame sealing still run inside the TLS stream. Every
//! failed handshake is counted by its [`TlsFailure`].

mod config;

use std::collections::{BTreeMap, HashMap};
use std::fmt;
use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use parking_lot::Mutex;
use rustls::pki_types::{CertificateDer, ServerName};
use rustls::{CertificateError, ClientConfig, ServerConfig};
use tokio::net::TcpStream;
use tokio_rustls::{TlsAcceptor, TlsConnector};

pub use config::{DEFAULT_TLS_HANDSHAKE_TIMEOUT, PemSource, TlsConfig, TlsConfigError};

use super::stream::{self, ConnParams};
use super::tcp::Upgrade;
use super::{
    BoxFuture, ClusterOverlay, Link, Listener, Overlay, OverlayError, PeerIdentity, TcpOverlay, TcpStats, TlsFailure,
};
use crate::id::NodeId;

/// A snapshot of a [`TlsOverlay`]'s handshake counters (all its
/// connections, since creation).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct TlsStats {
    /// TLS handshakes completed on accepted connections.
    pub handshakes_accepted: u64,
    /// TLS handshakes completed on dialled connections.
    pub handshakes_dialed: u64,
    /// Failed handshakes (both directions), by reason.
    pub failures: BTreeMap<TlsFailure, u64>,
}

#[derive(Debug, Default)]
struct TlsCounters {
    accepted: AtomicU64,
    dialed: AtomicU64,
    failures: Mutex<BTreeMap<TlsFailure, u64>>,
}

impl TlsCounters {
    fn failed(&self, reason: TlsFailure, remote: &str) -> OverlayError {
        *self.failures.lock().entry(reason).or_default() += 1;
        tracing::debug!(%remote, reason = reason.label(), "tls handshake failed");
        OverlayError::Tls(reason)
    }
}

/// A TCP transport with TLS on every connection. `Clone`: clones share the
/// address book and counters.
///
/// ```no_run
/// # async fn demo() -> Result<(), Box<dyn std::error::Error>> {
/// use std::collections::HashMap;
/// use axactor_cluster::overlay::{PemSource, TlsConfig, TlsOverlay};
/// use axactor_cluster::TcpOverlay;
///
/// let book = HashMap::from([
///     ("node-a".to_string(), "10.0.0.1:7000".parse()?),
///     ("node-b".to_string(), "10.0.0.2:7000".parse()?),
/// ]);
/// let tls = TlsConfig::new(
///     PemSource::file("node-a.crt"), // names `node-a` (DNS SAN)
///     PemSource::file("node-a.key"),
///     PemSource::file("ca.crt"),
/// )?;
/// let overlay = TlsOverlay::new(TcpOverlay::new(book), &tls)?;
/// // ClusterNode::start(NodeId::new("node-a"), store, overlay, cfg).await?
/// # Ok(()) }
/// ```
#[derive(Debug, Clone)]
pub struct TlsOverlay {
    tcp: TcpOverlay,
    tls: Arc<TlsUpgrade>,
}

impl TlsOverlay {
    /// `tcp`'s settings (address book, frame limits, timeouts, keepalive,
    /// connection cap) with every connection inside TLS as `config` says.
    ///
    /// # Errors
    /// [`TlsConfigError`] if rustls refuses the certificate chain or key
    /// (e.g. a key that does not match the certificate), or the handshake
    /// timeout is zero.
    pub fn new(tcp: TcpOverlay, config: &TlsConfig) -> Result<TlsOverlay, TlsConfigError> {
        let (server, client) = config.build()?;
        let tls = Arc::new(TlsUpgrade {
            server,
            client,
            mutual: config.client_auth(),
            handshake_timeout: config.handshake_timeout(),
            counters: TlsCounters::default(),
        });
        let tcp = tcp.with_upgrade(Arc::clone(&tls) as Arc<dyn Upgrade>);
        Ok(TlsOverlay { tcp, tls })
    }

    /// Adds or replaces an address-book entry (see
    /// [`TcpOverlay::insert_address`]).
    pub fn insert_address(&self, name: impl Into<String>, addr: SocketAddr) {
        self.tcp.insert_address(name, addr);
    }

    /// The address of `name`, if known.
    pub fn address(&self, name: &str) -> Option<SocketAddr> {
        self.tcp.address(name)
    }

    /// The TLS handshake counters.
    pub fn stats(&self) -> TlsStats {
        let c = &self.tls.counters;
        TlsStats {
            handshakes_accepted: c.accepted.load(Ordering::Relaxed),
            handshakes_dialed: c.dialed.load(Ordering::Relaxed),
            failures: c.failures.lock().clone(),
        }
    }

    /// The TCP counters of the connections underneath (frames, batches,
    /// connections; see [`TcpStats`]).
    pub fn tcp_stats(&self) -> TcpStats {
        self.tcp.stats()
    }

    /// Builds an overlay with the given address book and TLS settings and
    /// the TCP defaults ([`TcpOverlay::new`]).
    ///
    /// # Errors
    /// As [`new`](Self::new).
    pub fn with_address_book(
        address_book: HashMap<String, SocketAddr>,
        config: &TlsConfig,
    ) -> Result<TlsOverlay, TlsConfigError> {
        TlsOverlay::new(TcpOverlay::new(address_book), config)
    }
}

impl Overlay for TlsOverlay {
    fn listen(&self, me: &NodeId) -> BoxFuture<'_, Result<Listener, OverlayError>> {
        self.tcp.listen(me)
    }

    fn dial(&self, me: &NodeId, peer: &NodeId) -> BoxFuture<'_, Result<Link, OverlayError>> {
        self.tcp.dial(me, peer)
    }

    fn max_frame_bytes(&self) -> usize {
        self.tcp.max_frame_bytes()
    }
}

/// The TLS side of every connection of one overlay.
struct TlsUpgrade {
    server: Arc<ServerConfig>,
    client: Arc<ClientConfig>,
    mutual: bool,
    handshake_timeout: Duration,
    counters: TlsCounters,
}

impl fmt::Debug for TlsUpgrade {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("TlsUpgrade")
            .field("mutual", &self.mutual)
            .field("handshake_timeout", &self.handshake_timeout)
            .finish_non_exhaustive()
    }
}

impl Upgrade for TlsUpgrade {
    fn accept(
        self: Arc<Self>,
        stream: TcpStream,
        params: ConnParams,
    ) -> BoxFuture<'static, Result<Link, OverlayError>> {
        let tls = self;
        Box::pin(async move {
            let acceptor = TlsAcceptor::from(Arc::clone(&tls.server));
            let stream = match tokio::time::timeout(tls.handshake_timeout, acceptor.accept(stream)).await {
                Err(_) => return Err(tls.counters.failed(TlsFailure::Timeout, &params.remote)),
                Ok(Err(e)) => return Err(tls.counters.failed(classify(&e), &params.remote)),
                Ok(Ok(stream)) => stream,
            };
            let identity = CertIdentity::of(stream.get_ref().1.peer_certificates());
            if tls.mutual && identity.is_none() {
                // The verifier requires a certificate; this is a safety net.
                return Err(tls.counters.failed(TlsFailure::NoClientCertificate, &params.remote));
            }
            tls.counters.accepted.fetch_add(1, Ordering::Relaxed);
            let mut link = stream::spawn(stream, params);
            link.identity = identity;
            Ok(link)
        })
    }

    fn connect(
        self: Arc<Self>,
        stream: TcpStream,
        peer: NodeId,
        params: ConnParams,
    ) -> BoxFuture<'static, Result<Link, OverlayError>> {
        let tls = self;
        Box::pin(async move {
            let Ok(name) = ServerName::try_from(peer.as_str().to_owned()) else {
                return Err(tls.counters.failed(TlsFailure::InvalidNodeName, &params.remote));
            };
            let connector = TlsConnector::from(Arc::clone(&tls.client));
            let stream = match tokio::time::timeout(tls.handshake_timeout, connector.connect(name, stream)).await {
                Err(_) => return Err(tls.counters.failed(TlsFailure::Timeout, &params.remote)),
                Ok(Err(e)) => return Err(tls.counters.failed(classify(&e), &params.remote)),
                Ok(Ok(stream)) => stream,
            };
            let identity = CertIdentity::of(stream.get_ref().1.peer_certificates());
            tls.counters.dialed.fetch_add(1, Ordering::Relaxed);
            let mut link = stream::spawn(stream, params);
            link.identity = identity;
            Ok(link)
        })
    }
}

/// Why a handshake failed, from the error tokio-rustls returned.
fn classify(e: &std::io::Error) -> TlsFailure {
    let Some(err) = e.get_ref().and_then(|inner| inner.downcast_ref::<rustls::Error>()) else {
        return TlsFailure::Io;
    };
    match err {
        rustls::Error::InvalidCertificate(c) => match c {
            CertificateError::UnknownIssuer | CertificateError::BadSignature => TlsFailure::UntrustedCertificate,
            CertificateError::NotValidForName | CertificateError::NotValidForNameContext { .. } => {
                TlsFailure::NameMismatch
            }
            _ => TlsFailure::BadCertificate,
        },
        rustls::Error::NoCertificatesPresented => TlsFailure::NoClientCertificate,
        rustls::Error::AlertReceived(_) => TlsFailure::RefusedByPeer,
        _ => TlsFailure::Protocol,
    }
}

/// A peer's verified end-entity certificate: the node names it may claim
/// are its DNS subject alternative names.
#[derive(Debug)]
struct CertIdentity {
    cert: CertificateDer<'static>,
}

impl CertIdentity {
    fn of(chain: Option<&[CertificateDer<'static>]>) -> Option<Arc<dyn PeerIdentity>> {
        let cert = chain?.first()?.clone();
        Some(Arc::new(CertIdentity { cert }))
    }
}

impl PeerIdentity for CertIdentity {
    fn may_claim(&self, node: &str) -> bool {
        let Ok(name) = ServerName::try_from(node) else { return false };
        let Ok(cert) = webpki::EndEntityCert::try_from(&self.cert) else { return false };
        cert.verify_is_valid_for_subject_name(&name).is_ok()
    }
}

impl From<TlsOverlay> for ClusterOverlay {
    fn from(overlay: TlsOverlay) -> Self {
        ClusterOverlay::new(overlay)
    }
}
