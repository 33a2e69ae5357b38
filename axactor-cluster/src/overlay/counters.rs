//! Counters of the overlays' links: [`ConnCounters`] for every link over a
//! byte stream (TCP, TLS, [`stream_link`](super::stream_link)), and
//! [`bump`], the one way any overlay counter is incremented.

use std::sync::atomic::{AtomicU64, Ordering};

/// The counters of a stream overlay's connections (shared by the
/// connections of one overlay and its clones; `TcpOverlay::stats` and
/// `TlsOverlay::stats` read them). Relaxed atomics: each is a statistic,
/// not a synchronisation point.
#[derive(Debug, Default)]
pub(crate) struct ConnCounters {
    pub(crate) connections_dialed: AtomicU64,
    pub(crate) connections_accepted: AtomicU64,
    pub(crate) connections_rejected: AtomicU64,
    pub(crate) connections_closed: AtomicU64,
    pub(crate) frames_sent: AtomicU64,
    pub(crate) frames_received: AtomicU64,
    pub(crate) write_batches: AtomicU64,
    pub(crate) decode_errors: AtomicU64,
    pub(crate) truncated_frames: AtomicU64,
    pub(crate) io_errors: AtomicU64,
    pub(crate) byte_budget_waits: AtomicU64,
}

/// Adds `n` to `counter`.
#[inline]
pub(crate) fn bump(counter: &AtomicU64, n: u64) {
    counter.fetch_add(n, Ordering::Relaxed);
}
