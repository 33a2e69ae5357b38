//! Links over byte streams: the framing, batching, frame limits,
//! back-pressure and close deadline of the TCP overlay, for any
//! `AsyncRead + AsyncWrite` ([`stream_link`]). The TLS overlay runs its
//! links through here; the TCP overlay shares the reader, the batching
//! ([`Batch`]) and the task's shape ([`drive`]), and adds its own
//! write-through path.
//!
//! One task per link joins three futures:
//! - Reader: reads into one `BytesMut`, cuts frames out with
//!   [`FrameDecoder`] under the link's current frame limit, and hands them
//!   to the bounded inbound queue (waiting for room, in frames and in
//!   bytes: back-pressure reaches the peer through the stream). The buffer
//!   grows only as the decoder needs it: never past `limit + 4 +
//!   READ_CHUNK` bytes, and a large frame's buffer grows at most
//!   geometrically with the bytes actually received (a four-byte prefix
//!   alone never makes it allocate the announced length).
//! - Writer: takes frames from the link's queues (control before data),
//!   encodes as many as are ready into one buffer ([`Batch`]: up to
//!   [`BATCH_MAX_FRAMES`] frames or [`BATCH_MAX_BYTES`] bytes), writes and
//!   flushes them. When the queues drain after a close it shuts the write
//!   side down (TLS: `close_notify`, then FIN) and waits for the reader.
//! - Close deadline: once the link is `Closing`, it becomes `Dead` after at
//!   most the link's close timeout, so a peer that stops reading cannot
//!   keep a closing link alive.
//!
//! Ends: a clean EOF from the peer → `Closing` (our queued frames are still
//! sent); a bad prefix, a truncated frame, an I/O error or the local
//! receiver dropped → `Dead`. Each reason is logged at debug and counted.

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::time::Duration;

use bytes::{BufMut, Bytes, BytesMut};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::sync::{Notify, OwnedSemaphorePermit, mpsc};

use super::counters::{ConnCounters, bump};
use super::driver::LinkConfig;
use super::link::{self, ByteBudget, FrameLimit, LinkState, Next, OutQueue, Phase};
use super::{Link, LinkSource};
use crate::wire::frame::{FrameDecoder, FrameError, encode_frame};

/// Most frames written at once.
const BATCH_MAX_FRAMES: usize = 64;
/// A smaller batch waits for one turn of the scheduler before it is written.
const YIELD_BELOW_FRAMES: usize = 8;
/// A batch stops growing once it holds this many bytes.
pub(crate) const BATCH_MAX_BYTES: usize = 64 * 1024;
/// Bytes read at a time while no large frame is pending.
const READ_CHUNK: usize = 32 * 1024;
/// Spare capacity read into as it is, without reclaiming or reallocating.
const MIN_READ: usize = 4 * 1024;

/// Runs a link over `stream`, a connected byte stream (a Unix socket, a
/// QUIC stream, a TLS session, ...), framed as the TCP overlay frames:
/// each frame a `u32` big-endian length, then its bytes
/// ([`crate::wire::frame`]). Spawns the link's task on the current Tokio
/// runtime and returns the link; `remote` is for logs, `source` keys the
/// node's per-source handshake limit.
///
/// Settings below their minimum are raised to it (see
/// [`LinkConfig::validate`] to refuse them instead).
///
/// # Panics
/// If called outside a Tokio runtime.
///
/// ```
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() {
/// use axactor_cluster::overlay::{LinkConfig, LinkSource, Priority, stream_link};
/// use bytes::Bytes;
///
/// let (x, y) = tokio::io::duplex(64 * 1024);
/// let a = stream_link(x, LinkConfig::new(1024), "b", LinkSource::Unknown);
/// let mut b = stream_link(y, LinkConfig::new(1024), "a", LinkSource::Unknown);
/// a.tx.send(Bytes::from_static(b"hello"), Priority::Data).await.unwrap();
/// assert_eq!(b.rx.recv().await.unwrap(), "hello");
/// # }
/// ```
pub fn stream_link<S>(stream: S, config: LinkConfig, remote: impl Into<String>, source: LinkSource) -> Link
where
    S: AsyncRead + AsyncWrite + Send + 'static,
{
    let max_frame_bytes = config.max_frame_bytes.clamp(1, u32::MAX as usize);
    let params = ConnParams {
        max_frame_bytes,
        initial_max_frame_bytes: config.initial_max_frame_bytes.max(1),
        queue_frames: config.queue_frames.max(1),
        close_timeout: if config.close_timeout.is_zero() { Duration::from_millis(1) } else { config.close_timeout },
        counters: Arc::default(),
        remote: remote.into(),
        source,
        permit: None,
    };
    spawn(stream, params)
}

/// What a connection task needs besides its stream.
#[derive(Debug)]
pub(crate) struct ConnParams {
    pub(crate) max_frame_bytes: usize,
    pub(crate) initial_max_frame_bytes: usize,
    pub(crate) queue_frames: usize,
    /// Longest time from `Closing` to `Dead`.
    pub(crate) close_timeout: Duration,
    pub(crate) counters: Arc<ConnCounters>,
    /// For logs.
    pub(crate) remote: String,
    /// Where an accepted connection comes from.
    pub(crate) source: LinkSource,
    /// Held for the connection's life (inbound connections).
    pub(crate) permit: Option<OwnedSemaphorePermit>,
}

/// Spawns the task of a connected stream and returns its link.
pub(crate) fn spawn<S>(stream: S, params: ConnParams) -> Link
where
    S: AsyncRead + AsyncWrite + Send + 'static,
{
    let state = LinkState::new();
    let (tx, out) = link::outbound(&state, params.queue_frames, params.max_frame_bytes);
    let limit = FrameLimit::new(params.initial_max_frame_bytes, params.max_frame_bytes);
    let (inbound, bytes, rx) = link::inbound(params.queue_frames, limit.clone());
    let link = Link::new(tx, rx, params.remote.clone(), params.source.clone());
    tokio::spawn(async move {
        let (mut rd, mut wr) = tokio::io::split(stream);
        let reader = read_loop(&mut rd, (inbound, &bytes), &state, &limit, &params);
        let writer = write_loop(&mut wr, out, &state, &params);
        drive(reader, writer, &state, &params).await;
    });
    link
}

/// How the reader ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum ReaderEnd {
    Eof,
    Truncated(FrameError),
    BadFrame(FrameError),
    Io(std::io::ErrorKind),
    ReceiverDropped,
    Stopped,
}

/// How the writer ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum WriterEnd {
    Finished,
    Io(std::io::ErrorKind),
    Stopped,
}

/// Runs a link's reader and writer side by side with the close deadline,
/// then counts how the link ended. After a finished writer (the write side
/// shut down) the link stays up until the reader ends too, or it dies.
pub(crate) async fn drive(
    reader: impl Future<Output = ReaderEnd>,
    writer: impl Future<Output = WriterEnd>,
    state: &Arc<LinkState>,
    params: &ConnParams,
) {
    let reader_done = Notify::new();
    let reader = async {
        let end = reader.await;
        reader_done.notify_one();
        end
    };
    let writer = async {
        let end = writer.await;
        if end == WriterEnd::Finished {
            let mut watch = state.watch();
            tokio::select! {
                biased;
                () = watch.reached(Phase::Dead) => {}
                () = reader_done.notified() => {}
            }
        }
        state.advance(Phase::Dead);
        end
    };
    let deadline = async {
        let mut watch = state.watch();
        watch.reached(Phase::Closing).await;
        tokio::select! {
            biased;
            () = watch.reached(Phase::Dead) => {}
            () = tokio::time::sleep(params.close_timeout) => state.advance(Phase::Dead),
        }
    };
    let (r, w, ()) = tokio::join!(reader, writer, deadline);
    let counters = &params.counters;
    match &r {
        ReaderEnd::Truncated(_) => bump(&counters.truncated_frames, 1),
        ReaderEnd::BadFrame(_) => bump(&counters.decode_errors, 1),
        ReaderEnd::Io(_) => bump(&counters.io_errors, 1),
        _ => {}
    }
    if matches!(w, WriterEnd::Io(_)) {
        bump(&counters.io_errors, 1);
    }
    bump(&counters.connections_closed, 1);
    tracing::debug!(remote = %params.remote, reader = ?r, writer = ?w, "link closed");
}

/// Reads frames from `rd` into the inbound queue until the stream or the
/// link ends.
pub(crate) async fn read_loop<R: AsyncRead + Unpin>(
    rd: &mut R,
    (inbound, bytes): (mpsc::Sender<Bytes>, &ByteBudget),
    state: &Arc<LinkState>,
    limit: &FrameLimit,
    params: &ConnParams,
) -> ReaderEnd {
    let mut watch = state.watch();
    // Created once, not per frame: each creation registers and removes a waiter.
    let dead = watch.reached(Phase::Dead);
    let closed = inbound.closed();
    tokio::pin!(dead, closed);
    let mut buf = BytesMut::new();
    let mut decoder = FrameDecoder::new(limit.get());
    let end = 'read: loop {
        loop {
            // Applies to the next prefix; a frame already announced keeps its length.
            decoder.set_max_frame_bytes(limit.get());
            match decoder.decode(&mut buf) {
                Ok(Some(frame)) => {
                    bump(&params.counters.frames_received, 1);
                    // Fast path: the link is not dead and the queue has room.
                    if state.phase() == Phase::Dead {
                        break 'read ReaderEnd::Stopped;
                    }
                    // The inbound queue holds its byte budget: stop reading
                    // (back-pressure reaches the peer through the stream)
                    // until the receiver has taken enough.
                    if !bytes.try_take(frame.len()) {
                        bump(&params.counters.byte_budget_waits, 1);
                        tokio::select! {
                            biased;
                            () = &mut dead => break 'read ReaderEnd::Stopped,
                            () = &mut closed => break 'read ReaderEnd::ReceiverDropped,
                            () = bytes.take(frame.len()) => {}
                        }
                    }
                    let frame = match inbound.try_send(frame) {
                        Ok(()) => continue,
                        Err(mpsc::error::TrySendError::Closed(_)) => break 'read ReaderEnd::ReceiverDropped,
                        Err(mpsc::error::TrySendError::Full(frame)) => frame,
                    };
                    tokio::select! {
                        biased;
                        () = &mut dead => break 'read ReaderEnd::Stopped,
                        r = inbound.send(frame) => if r.is_err() {
                            break 'read ReaderEnd::ReceiverDropped;
                        },
                    }
                }
                Ok(None) => break,
                Err(e) => break 'read ReaderEnd::BadFrame(e),
            }
        }
        if let Err(end) = read_more(rd, &mut decoder, &mut buf, dead.as_mut(), closed.as_mut()).await {
            break end;
        }
    };
    end_phase(&end, state, params);
    end
}

/// Reads the next bytes of the stream into `buf` (as many as
/// [`read_size`] allows); `Err` with how the reader ends if the link died,
/// the receiver was dropped, the stream ended (cleanly between frames or
/// inside one) or failed.
async fn read_more<R: AsyncRead + Unpin>(
    rd: &mut R,
    decoder: &mut FrameDecoder,
    buf: &mut BytesMut,
    dead: Pin<&mut impl Future<Output = ()>>,
    closed: Pin<&mut impl Future<Output = ()>>,
) -> Result<(), ReaderEnd> {
    let want = read_size(decoder, buf);
    make_room(buf, want);
    let mut room = buf.limit(want);
    let read = tokio::select! {
        biased;
        () = dead => return Err(ReaderEnd::Stopped),
        () = closed => return Err(ReaderEnd::ReceiverDropped),
        // Cancel safe: nothing is read unless it completes.
        r = rd.read_buf(&mut room) => r,
    };
    match read {
        Ok(0) => match decoder.decode_eof(buf) {
            Err(e) => Err(ReaderEnd::Truncated(e)),
            // The caller's `decode` took every complete frame.
            Ok(_) => Err(ReaderEnd::Eof),
        },
        Ok(_) => Ok(()),
        Err(e) => Err(ReaderEnd::Io(e.kind())),
    }
}

/// The link's phase after the reader ended: a clean end of the stream
/// closes it (our queued frames are still sent), anything else kills it.
fn end_phase(end: &ReaderEnd, state: &LinkState, params: &ConnParams) {
    if *end == ReaderEnd::Eof {
        state.advance(Phase::Closing);
    } else {
        if *end != ReaderEnd::Stopped {
            tracing::debug!(remote = %params.remote, reason = ?end, "closing link");
        }
        state.advance(Phase::Dead);
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

/// Writes queued frames to `wr` in batches until the link drains or dies.
async fn write_loop<W: AsyncWrite + Unpin>(
    wr: &mut W,
    mut out: OutQueue,
    state: &Arc<LinkState>,
    params: &ConnParams,
) -> WriterEnd {
    let mut watch = state.watch();
    let dead = watch.reached(Phase::Dead);
    tokio::pin!(dead);
    let mut batch = Batch::default();
    loop {
        let first = match out.next().await {
            Next::Frame(frame) => frame,
            Next::Dead => return WriterEnd::Stopped,
            Next::Drained => {
                // Every sender gone counts as a close: arms the close deadline.
                state.advance(Phase::Closing);
                let shut = tokio::select! {
                    biased;
                    () = &mut dead => return WriterEnd::Stopped,
                    r = wr.shutdown() => r,
                };
                return match shut {
                    Ok(()) => WriterEnd::Finished,
                    Err(e) => WriterEnd::Io(e.kind()),
                };
            }
        };
        if batch.fill(first, &mut out, params).await == 0 {
            continue;
        }
        let written = tokio::select! {
            biased;
            () = &mut dead => return WriterEnd::Stopped,
            r = async {
                wr.write_all(batch.bytes()).await?;
                wr.flush().await
            } => r,
        };
        if let Err(e) = written {
            return write_failed(e, state, params);
        }
        batch.written(&params.counters);
    }
}

/// A failed write ends the writer and kills the link.
pub(crate) fn write_failed(e: std::io::Error, state: &LinkState, params: &ConnParams) -> WriterEnd {
    tracing::debug!(remote = %params.remote, error = %e, "closing link: write failed");
    state.advance(Phase::Dead);
    WriterEnd::Io(e.kind())
}

/// The writer's batch: frames encoded into one buffer, written with one
/// write. The buffer is reused from batch to batch (one allocation per
/// link, not per batch), except after a huge frame.
#[derive(Debug, Default)]
pub(crate) struct Batch {
    buf: BytesMut,
    frames: usize,
}

impl Batch {
    /// Encodes `first` and whatever else is ready (see `encode`). A batch
    /// of fewer than [`YIELD_BELOW_FRAMES`] frames waits one scheduler turn
    /// (the senders may be about to add to it), then takes what came while
    /// it holds fewer than [`BATCH_MAX_FRAMES`] frames and
    /// [`BATCH_MAX_BYTES`] bytes. Returns the frames in the batch; 0 means
    /// nothing to write.
    pub(crate) async fn fill(&mut self, first: Bytes, out: &mut OutQueue, params: &ConnParams) -> usize {
        self.frames = self.encode(first, out, params);
        if self.frames != 0 && self.frames < YIELD_BELOW_FRAMES {
            // A small batch under load: let the senders add to it first.
            tokio::task::yield_now().await;
            while self.frames < BATCH_MAX_FRAMES && self.buf.len() < BATCH_MAX_BYTES {
                let Some(more) = out.try_next() else { break };
                self.frames += self.encode(more, out, params);
            }
        }
        self.frames
    }

    /// The encoded frames, to write.
    pub(crate) fn bytes(&self) -> &[u8] {
        &self.buf
    }

    /// After the batch was written: counts it and empties the buffer
    /// (dropping it if a huge frame grew it, so the link does not keep it
    /// for its life).
    pub(crate) fn written(&mut self, counters: &ConnCounters) {
        bump(&counters.frames_sent, self.frames as u64);
        bump(&counters.write_batches, 1);
        self.frames = 0;
        self.buf.clear();
        if self.buf.capacity() > 4 * BATCH_MAX_BYTES {
            self.buf = BytesMut::new();
        }
    }

    /// Encodes `first` and whatever else is ready into the buffer, up to
    /// [`BATCH_MAX_FRAMES`] frames (counted per call) or [`BATCH_MAX_BYTES`]
    /// bytes; returns the number of frames encoded.
    fn encode(&mut self, first: Bytes, out: &mut OutQueue, params: &ConnParams) -> usize {
        let mut frames = 0;
        let mut next = Some(first);
        while let Some(frame) = next.take() {
            match encode_frame(&frame, params.max_frame_bytes, &mut self.buf) {
                Ok(()) => frames += 1,
                // `LinkSender` rejects such frames; this is only a safety net.
                Err(e) => tracing::debug!(remote = %params.remote, error = %e, "dropping unsendable frame"),
            }
            if frames < BATCH_MAX_FRAMES && self.buf.len() < BATCH_MAX_BYTES {
                next = out.try_next();
            }
        }
        frames
    }
}
