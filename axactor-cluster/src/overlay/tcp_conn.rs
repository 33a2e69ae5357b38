//! The TCP connection task: one per link, running a reader, a writer and a
//! close deadline side by side (`join!` in one task, over the two halves of
//! one socket).
//!
//! - Writer: takes frames from the link's queues (control before data),
//!   encodes as many as are ready into one buffer (up to
//!   [`BATCH_MAX_FRAMES`] frames or [`BATCH_MAX_BYTES`] bytes) and writes
//!   them with one `write_all`. When the queues drain after a close it
//!   shuts the write side down (FIN) and waits for the reader to finish.
//! - Reader: reads into one `BytesMut`, cuts frames out with
//!   [`FrameDecoder`] under the link's current frame limit, and hands them to
//!   the bounded inbound queue (waiting for room: back-pressure reaches the
//!   peer through TCP). The buffer grows only as the decoder needs it: never
//!   past `limit + 4 + READ_CHUNK` bytes, and a large frame's buffer grows at
//!   most geometrically with the bytes actually received (a four-byte prefix
//!   alone never makes it allocate the announced length).
//! - Close deadline: once the link is `Closing`, it becomes `Dead` after at
//!   most the overlay's close timeout (default
//!   [`DEFAULT_CLOSE_TIMEOUT`](super::DEFAULT_CLOSE_TIMEOUT)), so a peer that
//!   stops reading cannot keep a closing connection alive.
//!
//! Ends: a clean EOF from the peer → `Closing` (our queued frames are still
//! sent); a bad prefix, a truncated frame, an I/O error or the local
//! receiver dropped → `Dead`. Each reason is logged at debug and counted.

use std::sync::Arc;
use std::time::Duration;

use bytes::{BufMut, Bytes, BytesMut};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::net::tcp::{ReadHalf, WriteHalf};
use tokio::sync::{Notify, OwnedSemaphorePermit, mpsc};

use super::Link;
use super::link::{self, FrameLimit, LinkState, Next, OutQueue, Phase};
use super::tcp::{TcpCounters, bump};
use crate::wire::frame::{FrameDecoder, FrameError, encode_frame};

/// Most frames written by one `write_all`.
pub(crate) const BATCH_MAX_FRAMES: usize = 64;
/// A batch stops growing once it holds this many bytes.
pub(crate) const BATCH_MAX_BYTES: usize = 64 * 1024;
/// Bytes read at a time while no large frame is pending.
const READ_CHUNK: usize = 32 * 1024;
/// Spare capacity read into as it is, without reclaiming or reallocating.
const MIN_READ: usize = 4 * 1024;

/// What a connection task needs besides its socket.
#[derive(Debug)]
pub(crate) struct ConnParams {
    pub(crate) max_frame_bytes: usize,
    pub(crate) initial_max_frame_bytes: usize,
    pub(crate) queue_frames: usize,
    /// Longest time from `Closing` to `Dead`.
    pub(crate) close_timeout: Duration,
    pub(crate) counters: Arc<TcpCounters>,
    /// For logs.
    pub(crate) remote: String,
    /// Held for the connection's life (inbound connections).
    pub(crate) permit: Option<OwnedSemaphorePermit>,
}

/// Spawns the task of a connected socket and returns its link.
pub(crate) fn spawn(stream: TcpStream, params: ConnParams) -> Link {
    let state = LinkState::new();
    let (tx, out) = link::outbound(&state, params.queue_frames, params.max_frame_bytes);
    let limit = FrameLimit::new(params.initial_max_frame_bytes, params.max_frame_bytes);
    let (inbound, rx) = link::inbound(params.queue_frames, limit.clone());
    let remote = params.remote.clone();
    tokio::spawn(run(stream, out, inbound, state, limit, params));
    Link { tx, rx, remote }
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum ReaderEnd {
    Eof,
    Truncated(FrameError),
    BadFrame(FrameError),
    Io(std::io::ErrorKind),
    ReceiverDropped,
    Stopped,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum WriterEnd {
    Finished,
    Io(std::io::ErrorKind),
    Stopped,
}

async fn run(
    mut stream: TcpStream,
    out: OutQueue,
    inbound: mpsc::Sender<Bytes>,
    state: Arc<LinkState>,
    limit: FrameLimit,
    params: ConnParams,
) {
    let (rd, wr) = stream.split();
    let reader_done = Notify::new();
    let reader = async {
        let end = read_loop(rd, inbound, &state, &limit, &params).await;
        reader_done.notify_one();
        end
    };
    let writer = async {
        let end = write_loop(wr, out, &state, &params).await;
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

async fn read_loop(
    mut rd: ReadHalf<'_>,
    inbound: mpsc::Sender<Bytes>,
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
        let want = read_size(&decoder, &buf);
        make_room(&mut buf, want);
        let mut room = (&mut buf).limit(want);
        let read = tokio::select! {
            biased;
            () = &mut dead => break ReaderEnd::Stopped,
            () = &mut closed => break ReaderEnd::ReceiverDropped,
            r = rd.read_buf(&mut room) => r,
        };
        match read {
            Ok(0) => match decoder.decode_eof(&mut buf) {
                Err(e) => break ReaderEnd::Truncated(e),
                // `decode` above took every complete frame.
                Ok(_) => break ReaderEnd::Eof,
            },
            Ok(_) => {}
            Err(e) => break ReaderEnd::Io(e.kind()),
        }
    };
    if end == ReaderEnd::Eof {
        state.advance(Phase::Closing);
    } else {
        if end != ReaderEnd::Stopped {
            tracing::debug!(remote = %params.remote, reason = ?end, "closing link");
        }
        state.advance(Phase::Dead);
    }
    end
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

async fn write_loop(
    mut wr: WriteHalf<'_>,
    mut out: OutQueue,
    state: &Arc<LinkState>,
    params: &ConnParams,
) -> WriterEnd {
    let mut watch = state.watch();
    // Created once, not per write: each creation registers and removes a waiter.
    let dead = watch.reached(Phase::Dead);
    tokio::pin!(dead);
    let mut buf = BytesMut::new();
    loop {
        let first = match out.next().await {
            Next::Frame(frame) => frame,
            Next::Dead => return WriterEnd::Stopped,
            Next::Drained => {
                // Every sender gone counts as a close: arms the close deadline.
                state.advance(Phase::Closing);
                return tokio::select! {
                    biased;
                    () = &mut dead => WriterEnd::Stopped,
                    r = wr.shutdown() => match r {
                        Ok(()) => WriterEnd::Finished,
                        Err(e) => WriterEnd::Io(e.kind()),
                    },
                };
            }
        };
        let frames = encode_batch(first, &mut out, &mut buf, params);
        if frames == 0 {
            continue;
        }
        let written = tokio::select! {
            biased;
            () = &mut dead => return WriterEnd::Stopped,
            r = wr.write_all(&buf) => r,
        };
        if let Err(e) = written {
            tracing::debug!(remote = %params.remote, error = %e, "closing link: write failed");
            state.advance(Phase::Dead);
            return WriterEnd::Io(e.kind());
        }
        bump(&params.counters.frames_sent, frames as u64);
        bump(&params.counters.write_batches, 1);
        buf.clear();
        if buf.capacity() > 4 * BATCH_MAX_BYTES {
            // Do not keep a huge frame's buffer for the connection's life.
            buf = BytesMut::new();
        }
    }
}

/// Encodes `first` and whatever else is ready into `buf`; returns the
/// number of frames encoded.
fn encode_batch(first: Bytes, out: &mut OutQueue, buf: &mut BytesMut, params: &ConnParams) -> usize {
    let mut frames = 0;
    let mut next = Some(first);
    while let Some(frame) = next.take() {
        match encode_frame(&frame, params.max_frame_bytes, buf) {
            Ok(()) => frames += 1,
            // `LinkSender` rejects such frames; this is only a safety net.
            Err(e) => tracing::debug!(remote = %params.remote, error = %e, "dropping unsendable frame"),
        }
        if frames < BATCH_MAX_FRAMES && buf.len() < BATCH_MAX_BYTES {
            next = out.try_next();
        }
    }
    frames
}
