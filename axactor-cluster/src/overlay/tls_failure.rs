//! [`TlsFailure`]: why a TLS handshake failed, carried by
//! [`OverlayError::Tls`](super::OverlayError::Tls). Defined whether or not
//! the `tls` feature is on, so [`OverlayError`](super::OverlayError) has one
//! shape in every build.

/// Why a TLS handshake failed. Each reason is counted by the overlay
/// (`TlsOverlay::stats`, feature `tls`) under [`label`](Self::label).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, thiserror::Error)]
#[non_exhaustive]
pub enum TlsFailure {
    /// The peer's certificate does not chain to a trusted CA (or its
    /// signature is bad): not one of ours.
    #[error("peer certificate is not signed by a trusted CA")]
    UntrustedCertificate,
    /// The peer's certificate is trusted but does not name the node we
    /// dialled.
    #[error("peer certificate does not name the dialled node")]
    NameMismatch,
    /// The peer's certificate was refused for another reason (expired, not
    /// yet valid, wrong key usage, revoked, malformed).
    #[error("peer certificate refused")]
    BadCertificate,
    /// Mutual TLS is required and the client sent no certificate.
    #[error("client sent no certificate")]
    NoClientCertificate,
    /// The peer refused us (it sent an alert: our certificate is not
    /// trusted there, or it wanted one we did not send).
    #[error("peer refused the handshake")]
    RefusedByPeer,
    /// The node name to dial is not a DNS name, so no certificate can name
    /// it.
    #[error("node name is not a valid DNS name")]
    InvalidNodeName,
    /// The handshake did not finish within the handshake timeout.
    #[error("tls handshake timed out")]
    Timeout,
    /// The connection ended or failed during the handshake.
    #[error("connection lost during the tls handshake")]
    Io,
    /// Any other protocol error (no common version or cipher suite, a
    /// malformed message).
    #[error("tls protocol error")]
    Protocol,
}

impl TlsFailure {
    /// A short stable label for counters and logs.
    pub fn label(&self) -> &'static str {
        match self {
            TlsFailure::UntrustedCertificate => "untrusted_certificate",
            TlsFailure::NameMismatch => "name_mismatch",
            TlsFailure::BadCertificate => "bad_certificate",
            TlsFailure::NoClientCertificate => "no_client_certificate",
            TlsFailure::RefusedByPeer => "refused_by_peer",
            TlsFailure::InvalidNodeName => "invalid_node_name",
            TlsFailure::Timeout => "timeout",
            TlsFailure::Io => "io",
            TlsFailure::Protocol => "protocol",
        }
    }
}
