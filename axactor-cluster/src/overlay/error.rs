//! [`OverlayError`]: why an overlay operation failed, one type for every
//! overlay (listening, dialling, sending, configuration).

use super::tls_failure::TlsFailure;

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
