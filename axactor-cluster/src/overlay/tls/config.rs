//! [`TlsConfig`]: a node's certificate chain and key, the CAs it trusts and
//! whether peers must present client certificates; read from PEM files or
//! memory, checked, and turned into rustls configurations (ring provider,
//! TLS 1.3 only: both ends run this code).

use std::fmt;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use rustls::RootCertStore;
use rustls::server::WebPkiClientVerifier;
use rustls::server::danger::ClientCertVerifier;
use rustls::{ClientConfig, ServerConfig};
use rustls_pki_types::pem::{self, PemObject};
use rustls_pki_types::{CertificateDer, PrivateKeyDer};

/// Default time a TLS handshake may take, from the TCP connection to the
/// last handshake message.
pub const DEFAULT_TLS_HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(5);

/// Where PEM data comes from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PemSource {
    /// A file, read when the [`TlsConfig`] is built.
    File(PathBuf),
    /// PEM text in memory.
    Memory(Vec<u8>),
}

impl PemSource {
    /// PEM data in the file at `path`.
    pub fn file(path: impl Into<PathBuf>) -> PemSource {
        PemSource::File(path.into())
    }

    /// PEM data in memory.
    pub fn memory(pem: impl Into<Vec<u8>>) -> PemSource {
        PemSource::Memory(pem.into())
    }

    fn read(&self) -> Result<Vec<u8>, TlsConfigError> {
        match self {
            PemSource::Memory(bytes) => Ok(bytes.clone()),
            PemSource::File(path) => {
                std::fs::read(path).map_err(|e| TlsConfigError::Read { path: path.clone(), kind: e.kind() })
            }
        }
    }
}

/// Why a [`TlsConfig`] (or a `TlsOverlay`) could not be built.
#[derive(Debug, Clone, thiserror::Error)]
#[non_exhaustive]
pub enum TlsConfigError {
    /// A PEM file could not be read.
    #[error("cannot read {}: {kind}", path.display())]
    Read {
        /// The file.
        path: PathBuf,
        /// The cause.
        kind: std::io::ErrorKind,
    },
    /// The PEM data holds no item of the kind needed.
    #[error("no {what} in the PEM data")]
    Missing {
        /// `certificate`, `private key` or `CA certificate`.
        what: &'static str,
    },
    /// The PEM data is malformed.
    #[error("malformed PEM data for the {what}")]
    BadPem {
        /// `certificate`, `private key` or `CA certificate`.
        what: &'static str,
    },
    /// A CA certificate cannot be used as a trust anchor.
    #[error("CA certificate refused: {0}")]
    BadCa(rustls::Error),
    /// rustls refused the certificate chain or the key (e.g. the key does
    /// not match the certificate, or its type is not supported).
    #[error("certificate or key refused: {0}")]
    Rustls(rustls::Error),
    /// The client-certificate verifier could not be built.
    #[error("cannot build the client-certificate verifier: {0:?}")]
    Verifier(Arc<rustls::server::VerifierBuilderError>),
    /// The handshake timeout is zero.
    #[error("the tls handshake timeout must be positive")]
    ZeroHandshakeTimeout,
}

/// A node's TLS settings: its certificate chain and private key, the CAs
/// whose certificates it trusts (for servers it dials and, with mutual
/// TLS, for clients it accepts), and whether clients must present a
/// certificate (mutual TLS, on by default).
///
/// Certificates name nodes: a node's certificate must carry its node name
/// as a DNS subject alternative name. A dialler checks that the server's
/// certificate names the node it dialled; with mutual TLS, a node checks
/// that a client's certificate names the node the client claims to be in
/// the cluster handshake.
///
/// ```no_run
/// use axactor_cluster::overlay::{PemSource, TlsConfig};
///
/// let tls = TlsConfig::new(
///     PemSource::file("/etc/axactor/node-a.crt"), // chain: the node's certificate first
///     PemSource::file("/etc/axactor/node-a.key"),
///     PemSource::file("/etc/axactor/ca.crt"),
/// )?;
/// # Ok::<(), axactor_cluster::overlay::TlsConfigError>(())
/// ```
#[derive(Clone)]
pub struct TlsConfig {
    chain: Vec<CertificateDer<'static>>,
    key: Arc<PrivateKeyDer<'static>>,
    roots: Arc<RootCertStore>,
    mutual: bool,
    handshake_timeout: Duration,
}

impl fmt::Debug for TlsConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("TlsConfig")
            .field("certificates", &self.chain.len())
            .field("trusted_cas", &self.roots.len())
            .field("mutual", &self.mutual)
            .field("handshake_timeout", &self.handshake_timeout)
            .finish_non_exhaustive()
    }
}

impl TlsConfig {
    /// Reads the node's certificate chain (its own certificate first, then
    /// any intermediates), its private key (PKCS#8, PKCS#1 or SEC1) and the
    /// trusted CA certificates (one or more). Mutual TLS is on.
    ///
    /// # Errors
    /// [`TlsConfigError::Read`] for an unreadable file,
    /// [`TlsConfigError::Missing`] or [`TlsConfigError::BadPem`] for PEM
    /// data without the item or malformed, [`TlsConfigError::BadCa`] for a
    /// CA certificate that cannot be a trust anchor.
    pub fn new(
        cert_chain: PemSource,
        private_key: PemSource,
        trusted_cas: PemSource,
    ) -> Result<TlsConfig, TlsConfigError> {
        let chain = certificates(&cert_chain.read()?, "certificate")?;
        let key = PrivateKeyDer::from_pem_slice(&private_key.read()?).map_err(|e| pem_error(e, "private key"))?;
        let mut roots = RootCertStore::empty();
        for ca in certificates(&trusted_cas.read()?, "CA certificate")? {
            roots.add(ca).map_err(TlsConfigError::BadCa)?;
        }
        Ok(TlsConfig {
            chain,
            key: Arc::new(key),
            roots: Arc::new(roots),
            mutual: true,
            handshake_timeout: DEFAULT_TLS_HANDSHAKE_TIMEOUT,
        })
    }

    /// [`new`](Self::new) with PEM text in memory.
    ///
    /// # Errors
    /// As `new`.
    pub fn from_pem(cert_chain: &[u8], private_key: &[u8], trusted_cas: &[u8]) -> Result<TlsConfig, TlsConfigError> {
        TlsConfig::new(PemSource::memory(cert_chain), PemSource::memory(private_key), PemSource::memory(trusted_cas))
    }

    /// Whether accepted peers must present a certificate signed by a
    /// trusted CA (mutual TLS; default `true`). Without it, the node's
    /// token handshake alone authenticates peers, and no name is bound to
    /// a certificate on the accepting side.
    pub fn with_client_auth(mut self, required: bool) -> TlsConfig {
        self.mutual = required;
        self
    }

    /// Whether mutual TLS is on.
    pub fn client_auth(&self) -> bool {
        self.mutual
    }

    /// Sets how long a TLS handshake may take (default
    /// [`DEFAULT_TLS_HANDSHAKE_TIMEOUT`]).
    pub fn with_handshake_timeout(mut self, d: Duration) -> TlsConfig {
        self.handshake_timeout = d;
        self
    }

    /// The TLS handshake timeout.
    pub fn handshake_timeout(&self) -> Duration {
        self.handshake_timeout
    }

    /// The rustls configurations: (server, client).
    pub(super) fn build(&self) -> Result<(Arc<ServerConfig>, Arc<ClientConfig>), TlsConfigError> {
        if self.handshake_timeout.is_zero() {
            return Err(TlsConfigError::ZeroHandshakeTimeout);
        }
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let versions = [&rustls::version::TLS13];
        let verifier: Arc<dyn ClientCertVerifier> = if self.mutual {
            WebPkiClientVerifier::builder_with_provider(Arc::clone(&self.roots), Arc::clone(&provider))
                .build()
                .map_err(|e| TlsConfigError::Verifier(Arc::new(e)))?
        } else {
            WebPkiClientVerifier::no_client_auth()
        };
        let server = ServerConfig::builder_with_provider(Arc::clone(&provider))
            .with_protocol_versions(&versions)
            .map_err(TlsConfigError::Rustls)?
            .with_client_cert_verifier(verifier)
            .with_single_cert(self.chain.clone(), self.key.clone_key())
            .map_err(TlsConfigError::Rustls)?;
        // Clients always present their certificate; a server without
        // mutual TLS does not ask for it.
        let client = ClientConfig::builder_with_provider(provider)
            .with_protocol_versions(&versions)
            .map_err(TlsConfigError::Rustls)?
            .with_root_certificates(Arc::clone(&self.roots))
            .with_client_auth_cert(self.chain.clone(), self.key.clone_key())
            .map_err(TlsConfigError::Rustls)?;
        Ok((Arc::new(server), Arc::new(client)))
    }
}

/// Every certificate in `pem`; at least one.
fn certificates(pem: &[u8], what: &'static str) -> Result<Vec<CertificateDer<'static>>, TlsConfigError> {
    let certs = CertificateDer::pem_slice_iter(pem).collect::<Result<Vec<_>, _>>().map_err(|e| pem_error(e, what))?;
    if certs.is_empty() {
        return Err(TlsConfigError::Missing { what });
    }
    Ok(certs)
}

fn pem_error(e: pem::Error, what: &'static str) -> TlsConfigError {
    match e {
        pem::Error::NoItemsFound => TlsConfigError::Missing { what },
        _ => TlsConfigError::BadPem { what },
    }
}
