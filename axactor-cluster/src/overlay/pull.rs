//! [`StreamInbound`]: the receiving side of a stream link (TCP, TLS, any
//! [`stream_link`](super::stream_link)), read by the receiver itself.
//!
//! [`LinkReceiver::recv`](super::LinkReceiver::recv) on a stream link reads
//! the stream in the receiver's own task: the bytes the kernel holds are
//! read into one `BytesMut` and cut into frames by [`FrameDecoder`] under
//! the link's current frame limit. There is no queue between the socket and
//! the receiver, and no task in between: a frame wakes the task that waits
//! for it directly (one hand-off less per frame than a reader task feeding
//! a queue).
//!
//! Bounds: the stream is read only while the receiver asks for a frame,
//! and the buffer holds at most what one read brings beyond the frames
//! already cut: never past `limit + 4 + READ_CHUNK` bytes, and a large
//! frame's buffer grows at most geometrically with the bytes actually
//! received (a four-byte prefix alone never makes it allocate the announced
//! length). A receiver that stops asking stops reading: back-pressure
//! reaches the peer through the stream. The receiver's byte budget
//! (`set_max_queued_bytes`) caps each read too.
//!
//! Ends: a clean EOF from the peer → `Closing` (our queued frames are still
//! sent); a bad prefix, a truncated frame, an I/O error or the receiver
//! dropped → `Dead`; a link that is `Dead` yields no more frames. Each reason
//! is logged at debug and counted here; the link's task learns of the end
//! through [`ReaderDone`].

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use bytes::{BufMut, Bytes, BytesMut};
use parking_lot::Mutex;
use tokio::io::{AsyncRead, AsyncReadExt};
use tokio::sync::Notify;

use super::counters::{ConnCounters, bump};
use crate::wire::frame::{FrameDecoder, FrameError};

/// Bytes read at a time while no large frame is pending.
pub(crate) const READ_CHUNK: usize = 32 * 1024;
/// Spare capacity read into as it is, without reclaiming or reallocating.
const MIN_READ: usize = 4 * 1024;

/// How the reading side of a stream link ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum ReaderEnd {
    Eof,
    Truncated(FrameError),
    BadFrame(FrameError),
    Io(std::io::ErrorKind),
    ReceiverDropped,
    Stopped,
}

/// The end of a link's reading side, for the link's task.
#[derive(Debug, Default)]
pub(crate) struct ReaderDone {
    end: Mutex<Option<ReaderEnd>>,
    notify: Notify,
}

impl ReaderDone {
    fn set(&self, end: ReaderEnd) {
        self.end.lock().get_or_insert(end);
        self.notify.notify_one();
    }

    /// How reading ended, once it has.
    ///
    /// # Cancel safety
    /// Cancel safe: nothing is consumed but the wake-up.
    pub(crate) async fn wait(&self) -> ReaderEnd {
        loop {
            if let Some(end) = self.end.lock().clone() {
                return end;
            }
            self.notify.notified().await;
        }
    }

    /// How reading ended, if it has.
    pub(crate) fn get(&self) -> Option<ReaderEnd> {
        self.end.lock().clone()
    }
}

/// What the reading side needs of its link (its phase and frame limit),
/// implemented by the stream driver.
pub(crate) trait LinkControl: Send + Sync + std::fmt::Debug {
    /// Whether the link is dead.
    fn is_dead(&self) -> bool;
    /// The peer ended the stream cleanly: the link closes (our queued
    /// frames are still sent).
    fn peer_closed(&self);
    /// The link dies.
    fn kill(&self);
    /// The largest frame the peer may send now.
    fn max_frame_bytes(&self) -> usize;
}

/// What a [`StreamInbound`] is made of besides its stream.
pub(crate) struct Parts {
    pub(crate) link: Arc<dyn LinkControl>,
    /// Completes once the link is dead.
    pub(crate) dead: Pin<Box<dyn Future<Output = ()> + Send>>,
    /// The first byte budget (the most one read takes).
    pub(crate) budget: usize,
    pub(crate) counters: Arc<ConnCounters>,
    pub(crate) remote: Arc<str>,
    pub(crate) done: Arc<ReaderDone>,
}

/// See the module docs.
pub(crate) struct StreamInbound {
    rd: Box<dyn AsyncRead + Send + Unpin>,
    buf: BytesMut,
    decoder: FrameDecoder,
    link: Arc<dyn LinkControl>,
    /// The receiver's byte budget: the most one read takes.
    budget: AtomicUsize,
    /// Completes once the link is `Dead` (made once, not per read).
    dead: Pin<Box<dyn Future<Output = ()> + Send>>,
    counters: Arc<ConnCounters>,
    remote: Arc<str>,
    done: Arc<ReaderDone>,
    ended: bool,
}

impl std::fmt::Debug for StreamInbound {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("StreamInbound")
            .field("remote", &self.remote)
            .field("buffered", &self.buf.len())
            .field("ended", &self.ended)
            .finish_non_exhaustive()
    }
}

impl StreamInbound {
    /// The reading side of a link over `rd`.
    pub(crate) fn new(rd: Box<dyn AsyncRead + Send + Unpin>, parts: Parts) -> StreamInbound {
        let Parts { link, dead, budget, counters, remote, done } = parts;
        StreamInbound {
            rd,
            buf: BytesMut::new(),
            decoder: FrameDecoder::new(link.max_frame_bytes()),
            link,
            budget: AtomicUsize::new(budget.max(1)),
            dead,
            counters,
            remote,
            done,
            ended: false,
        }
    }

    /// The next frame; `None` once reading has ended (every frame cut
    /// before the end was returned first, unless the link died).
    ///
    /// # Cancel safety
    /// Cancel safe: bytes read stay in the buffer.
    pub(crate) async fn recv(&mut self) -> Option<Bytes> {
        loop {
            if let Some(frame) = self.try_recv() {
                return Some(frame);
            }
            if self.ended {
                return None;
            }
            if let Err(end) = self.read_more().await {
                self.finish(end);
            }
        }
    }

    /// A frame already read, without reading more.
    pub(crate) fn try_recv(&mut self) -> Option<Bytes> {
        if self.ended {
            return None;
        }
        if self.link.is_dead() {
            self.finish(ReaderEnd::Stopped);
            return None;
        }
        // Applies to the next prefix; a frame already announced keeps its length.
        self.decoder.set_max_frame_bytes(self.link.max_frame_bytes());
        match self.decoder.decode(&mut self.buf) {
            Ok(Some(frame)) => {
                bump(&self.counters.frames_received, 1);
                Some(frame)
            }
            Ok(None) => None,
            Err(e) => {
                self.finish(ReaderEnd::BadFrame(e));
                None
            }
        }
    }

    /// Bytes read and not returned as frames yet.
    pub(crate) fn buffered(&self) -> usize {
        self.buf.len()
    }

    /// Sets the most one read takes (at least 1 byte; a frame larger than
    /// it is still read, in reads of this size).
    pub(crate) fn set_budget(&self, max: usize) {
        self.budget.store(max.max(1), Ordering::Relaxed);
    }

    /// Reads the next bytes of the stream; `Err` with how reading ends if
    /// the link died or the stream ended (cleanly between frames or inside
    /// one) or failed.
    async fn read_more(&mut self) -> Result<(), ReaderEnd> {
        let want = read_size(&self.decoder, &self.buf).min(self.budget.load(Ordering::Relaxed));
        make_room(&mut self.buf, want);
        let mut room = (&mut self.buf).limit(want);
        let read = tokio::select! {
            biased;
            () = self.dead.as_mut() => return Err(ReaderEnd::Stopped),
            // Cancel safe: nothing is read unless it completes.
            r = self.rd.read_buf(&mut room) => r,
        };
        match read {
            Ok(0) => match self.decoder.decode_eof(&mut self.buf) {
                Err(e) => Err(ReaderEnd::Truncated(e)),
                // `try_recv` took every complete frame.
                Ok(_) => Err(ReaderEnd::Eof),
            },
            Ok(_) => Ok(()),
            Err(e) => Err(ReaderEnd::Io(e.kind())),
        }
    }

    /// Ends reading: moves the link on, counts and logs why, tells the task.
    fn finish(&mut self, end: ReaderEnd) {
        if self.ended {
            return;
        }
        self.ended = true;
        if end == ReaderEnd::Eof {
            self.link.peer_closed();
        } else {
            if end != ReaderEnd::Stopped {
                tracing::debug!(remote = %self.remote, reason = ?end, "closing link");
            }
            self.link.kill();
        }
        match &end {
            ReaderEnd::Truncated(_) => bump(&self.counters.truncated_frames, 1),
            ReaderEnd::BadFrame(_) => bump(&self.counters.decode_errors, 1),
            ReaderEnd::Io(_) => bump(&self.counters.io_errors, 1),
            _ => {}
        }
        self.buf = BytesMut::new();
        self.done.set(end);
    }
}

impl Drop for StreamInbound {
    fn drop(&mut self) {
        self.finish(ReaderEnd::ReceiverDropped);
    }
}

/// How many bytes to read next: a chunk while frames are small; for a large
/// frame, at most what it still needs and at most as much as already
/// buffered (geometric growth, so a peer cannot make us allocate a whole
/// frame with a four-byte prefix).
fn read_size(decoder: &FrameDecoder, buf: &BytesMut) -> usize {
    let needed = decoder.needed(buf);
    if needed <= READ_CHUNK { READ_CHUNK } else { needed.min(READ_CHUNK.max(buf.len())) }
}

/// Ensures room for the next read: the spare capacity already there if it
/// holds `min(want, MIN_READ)` bytes (frames still referencing the buffer
/// keep it from being reclaimed, and small frames would otherwise cost one
/// `READ_CHUNK` allocation per read); else `want` bytes, allocating exactly
/// (never the doubling `reserve` may choose) when the buffer cannot be
/// reclaimed.
fn make_room(buf: &mut BytesMut, want: usize) {
    if buf.capacity() - buf.len() >= want.min(MIN_READ) || buf.try_reclaim(want) {
        return;
    }
    let mut grown = BytesMut::with_capacity(buf.len() + want);
    grown.extend_from_slice(buf);
    *buf = grown;
}
