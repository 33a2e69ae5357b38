//! Links over byte streams: the framing, batching, frame limits,
//! back-pressure and close deadline of the TCP overlay, for any
//! `AsyncRead + AsyncWrite` ([`stream_link`]). The TLS overlay runs its
//! links through here; the TCP overlay shares the reader, the batching
//! ([`Batch`]) and the task's shape ([`drive`]), and adds its own
//! write-through path.
//!
//! Receiving: the link's receiver reads the stream itself, in the task
//! that waits for a frame (`super::pull`): frames cut out of one
//! `BytesMut` under the link's current frame limit, no reader task and no
//! queue in between, the stream read only while a frame is awaited
//! (back-pressure reaches the peer through the stream).
//!
//! One task per link joins three futures:
//! - The end of reading: the receiver tells it (`ReaderDone`), or the link
//!   dies.
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
use std::sync::Arc;
use std::time::Duration;

use bytes::{Bytes, BytesMut};
use tokio::io::{AsyncRead, AsyncWrite, AsyncWriteExt};
use tokio::sync::{Notify, OwnedSemaphorePermit};

use super::counters::{ConnCounters, bump};
use super::driver::LinkConfig;
use super::link::{self, DEFAULT_LINK_QUEUE_BYTES, FrameLimit, LinkReceiver, LinkState, Next, OutQueue, Phase};
use super::pull::{LinkControl, Parts, ReaderDone, ReaderEnd, StreamInbound};
use super::{Link, LinkSource};
use crate::wire::frame::encode_frame;

/// Most frames written at once.
const BATCH_MAX_FRAMES: usize = 64;
/// A smaller batch waits for one turn of the scheduler before it is written.
const YIELD_BELOW_FRAMES: usize = 8;
/// A batch stops growing once it holds this many bytes.
pub(crate) const BATCH_MAX_BYTES: usize = 64 * 1024;

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
    let (rd, mut wr) = tokio::io::split(stream);
    let (rx, done) = receiver(Box::new(rd), &state, &params);
    let link = Link::new(tx, rx, params.remote.clone(), params.source.clone());
    tokio::spawn(async move {
        let writer = write_loop(&mut wr, out, &state, &params);
        drive(reader_end(&done, &state), writer, &state, &params).await;
    });
    link
}

/// The link's side of its receiver's reading (see `super::pull`).
#[derive(Debug)]
struct StreamControl {
    state: Arc<LinkState>,
    limit: FrameLimit,
}

impl LinkControl for StreamControl {
    fn is_dead(&self) -> bool {
        self.state.phase() == Phase::Dead
    }

    fn peer_closed(&self) {
        self.state.advance(Phase::Closing);
    }

    fn kill(&self) {
        self.state.advance(Phase::Dead);
    }

    fn max_frame_bytes(&self) -> usize {
        self.limit.get()
    }
}

/// The receiver of a stream link, reading `rd` itself (`super::pull`), and
/// what tells the link's task how its reading ended.
pub(crate) fn receiver(
    rd: Box<dyn AsyncRead + Send + Unpin>,
    state: &Arc<LinkState>,
    params: &ConnParams,
) -> (LinkReceiver, Arc<ReaderDone>) {
    let limit = FrameLimit::new(params.initial_max_frame_bytes, params.max_frame_bytes);
    let done = Arc::new(ReaderDone::default());
    let mut watch = state.watch();
    let parts = Parts {
        link: Arc::new(StreamControl { state: Arc::clone(state), limit: limit.clone() }),
        dead: Box::pin(async move { watch.reached(Phase::Dead).await }),
        budget: DEFAULT_LINK_QUEUE_BYTES,
        counters: Arc::clone(&params.counters),
        remote: Arc::from(params.remote.as_str()),
        done: Arc::clone(&done),
    };
    (LinkReceiver::from_stream(StreamInbound::new(rd, parts), limit), done)
}

/// The reading side's part of a link's task: how reading ended, once it
/// has, or what is known of it once the link is dead.
pub(crate) async fn reader_end(done: &ReaderDone, state: &Arc<LinkState>) -> Option<ReaderEnd> {
    let mut watch = state.watch();
    tokio::select! {
        biased;
        end = done.wait() => Some(end),
        () = watch.reached(Phase::Dead) => done.get(),
    }
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
    reader: impl Future<Output = Option<ReaderEnd>>,
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
    // The reading side counted its own end (`super::pull`).
    if matches!(w, WriterEnd::Io(_)) {
        bump(&counters.io_errors, 1);
    }
    bump(&counters.connections_closed, 1);
    tracing::debug!(remote = %params.remote, reader = ?r, writer = ?w, "link closed");
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
