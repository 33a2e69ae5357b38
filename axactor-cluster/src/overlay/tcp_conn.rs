//! The TCP connection task: one per link, running a reader, a writer and a
//! close deadline side by side (`join!` in one task). The socket is split:
//! the reader owns the read half (read through `AsyncRead`, which also
//! clears the socket's readiness after a short read, sparing a `WouldBlock`
//! read per wake-up); the write half is shared by the writer and the
//! link's senders (write-through).
//!
//! - Write-through ([`Direct`]): while the writer is idle (both queues
//!   empty, nothing being written), frames given to `LinkSender::feed` are
//!   encoded into the link's write-through buffer, and `LinkSender::flush`
//!   writes that buffer to the socket with one non-blocking `try_write`
//!   from the sender's own task (the node's session writer), sparing a
//!   wake-up of this task per batch. Bytes the socket does not take
//!   (`WouldBlock`, a partial write, an error) make the writer busy and are
//!   handed to it, written before anything else. A frame is queued (`send`,
//!   `try_send`, or `feed` while busy) only with the writer made busy, and
//!   the writer turns idle again only with both queues empty, all under one
//!   lock: so frames leave in the order they were accepted. The buffer is
//!   flushed whenever it reaches [`BATCH_MAX_BYTES`]; once the writer ends,
//!   no sender writes (and the senders no longer hold the socket).
//! - Writer: takes frames from the link's queues (control before data),
//!   encodes as many as are ready into one buffer (up to
//!   [`BATCH_MAX_FRAMES`] frames or [`BATCH_MAX_BYTES`] bytes) and writes
//!   them with one `write_all`. When the queues drain after a close it
//!   shuts the write side down (FIN) and waits for the reader to finish.
//! - Reader: reads into one `BytesMut`, cuts frames out with
//!   [`FrameDecoder`] under the link's current frame limit, and hands them to
//!   the bounded inbound queue (waiting for room, in frames and in bytes:
//!   back-pressure reaches the peer through TCP). The buffer grows only as the decoder needs it: never
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

use std::future::poll_fn;
use std::io;
use std::net::Shutdown;
use std::sync::Arc;
use std::time::Duration;

use bytes::{Buf, BufMut, Bytes, BytesMut};
use parking_lot::{Mutex, MutexGuard};
use socket2::SockRef;
use tokio::io::AsyncReadExt;
use tokio::net::TcpStream;
use tokio::net::tcp::{OwnedReadHalf, OwnedWriteHalf};
use tokio::sync::{Notify, OwnedSemaphorePermit, mpsc};

use super::link::{self, ByteBudget, FrameLimit, LinkState, Next, OutQueue, Phase};
use super::tcp::{TcpCounters, bump};
use super::{Link, LinkSource};
use crate::wire::frame::{FrameDecoder, FrameError, LEN_PREFIX, encode_frame};

/// Most frames written by one `write_all`.
pub(crate) const BATCH_MAX_FRAMES: usize = 64;
/// A smaller batch waits for one turn of the scheduler before it is written.
const YIELD_BELOW_FRAMES: usize = 8;
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
    /// Where an accepted connection comes from.
    pub(crate) source: LinkSource,
    /// Held for the connection's life (inbound connections).
    pub(crate) permit: Option<OwnedSemaphorePermit>,
}

/// Spawns the task of a connected socket and returns its link.
pub(crate) fn spawn(stream: TcpStream, params: ConnParams) -> Link {
    let state = LinkState::new();
    // The read half is the reader's own (`AsyncRead`, which also clears the
    // socket's readiness after a short read, saving a `WouldBlock` read per
    // wake-up); the write half is shared by the writer and the senders.
    let (rd, wr) = stream.into_split();
    let stream = Arc::new(wr);
    let direct = Arc::new(Direct {
        gate: Mutex::new(Gate {
            stream: Some(Arc::clone(&stream)),
            busy: false,
            pending: BytesMut::new(),
            pending_frames: 0,
        }),
        wake: Notify::new(),
        counters: Arc::clone(&params.counters),
    });
    let (tx, out) = link::outbound(&state, params.queue_frames, params.max_frame_bytes);
    let tx = tx.with_direct(Arc::clone(&direct));
    let limit = FrameLimit::new(params.initial_max_frame_bytes, params.max_frame_bytes);
    let (inbound, bytes, rx) = link::inbound(params.queue_frames, limit.clone());
    let (remote, source) = (params.remote.clone(), params.source.clone());
    tokio::spawn(run(ReadSide { rd, inbound, bytes, limit }, stream, direct, out, state, params));
    Link { tx, rx, remote, source }
}

/// The write-through path of one TCP link, shared by its senders and its
/// connection task (see the module docs).
#[derive(Debug)]
pub(crate) struct Direct {
    gate: Mutex<Gate>,
    /// Wakes the writer when a sender hands it buffered bytes.
    wake: Notify,
    counters: Arc<TcpCounters>,
}

/// Who may write to the socket now. Senders write only while `!busy`.
#[derive(Debug)]
pub(crate) struct Gate {
    /// `None` once the writer has ended.
    stream: Option<Arc<OwnedWriteHalf>>,
    /// The writer has queued frames or bytes to write (or has ended).
    busy: bool,
    /// Encoded frames fed while idle and not written yet, or (once busy)
    /// their unwritten rest: the writer's first bytes to write.
    pending: BytesMut,
    /// Frames (some maybe partly) in `pending`, for the counters.
    pending_frames: u64,
}

impl Direct {
    pub(crate) fn lock(&self) -> MutexGuard<'_, Gate> {
        self.gate.lock()
    }

    /// Before a frame is queued: the writer becomes busy, taking the
    /// buffered bytes (written before the queue) if any.
    pub(crate) fn make_busy(&self, gate: &mut Gate) {
        if !gate.busy {
            gate.busy = true;
            if !gate.pending.is_empty() {
                self.wake.notify_one();
            }
        }
    }

    /// Buffers `frame` (already checked by the sender) for writing through
    /// if the writer is idle, writing the buffer once it reaches
    /// [`BATCH_MAX_BYTES`]; gives `frame` back (to be queued, under the
    /// same gate) if the writer is busy.
    pub(crate) fn feed(&self, gate: &mut Gate, frame: Bytes) -> Result<(), Bytes> {
        if gate.busy || gate.stream.is_none() {
            return Err(frame);
        }
        let Ok(len) = u32::try_from(frame.len()) else { return Err(frame) };
        gate.pending.reserve(LEN_PREFIX + frame.len());
        gate.pending.put_u32(len);
        gate.pending.extend_from_slice(&frame);
        gate.pending_frames += 1;
        if gate.pending.len() >= BATCH_MAX_BYTES {
            self.flush(gate);
        }
        Ok(())
    }

    /// Writes the buffered frames if the writer is idle; what the socket
    /// does not take makes the writer busy and goes to it.
    pub(crate) fn flush(&self, gate: &mut Gate) {
        if gate.busy || gate.pending.is_empty() {
            return;
        }
        let Some(stream) = &gate.stream else { return };
        // An error is left to the writer, which meets it again and ends the link.
        let written = stream.try_write(&gate.pending).unwrap_or(0);
        if written == gate.pending.len() {
            bump(&self.counters.frames_sent, std::mem::take(&mut gate.pending_frames));
            bump(&self.counters.write_batches, 1);
            gate.pending.clear();
            if gate.pending.capacity() > 4 * BATCH_MAX_BYTES {
                // Do not keep a huge frame's buffer for the link's life.
                gate.pending = BytesMut::new();
            }
            return;
        }
        gate.pending.advance(written);
        gate.busy = true;
        self.wake.notify_one();
    }
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

/// What the reader works with: its half of the socket, where frames go,
/// and the link's current frame limit.
struct ReadSide {
    rd: OwnedReadHalf,
    inbound: mpsc::Sender<Bytes>,
    /// The inbound queue's byte budget.
    bytes: Arc<ByteBudget>,
    limit: FrameLimit,
}

async fn run(
    read: ReadSide,
    stream: Arc<OwnedWriteHalf>,
    direct: Arc<Direct>,
    out: OutQueue,
    state: Arc<LinkState>,
    params: ConnParams,
) {
    let ReadSide { mut rd, inbound, bytes, limit } = read;
    let reader_done = Notify::new();
    let reader = async {
        let end = read_loop(&mut rd, (inbound, &bytes), &state, &limit, &params).await;
        reader_done.notify_one();
        end
    };
    let writer = async {
        let end = write_loop((*stream).as_ref(), &direct, out, &state, &params).await;
        // Senders stop writing through (and let go of the socket).
        {
            let mut gate = direct.lock();
            gate.busy = true;
            gate.stream = None;
        }
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
    rd: &mut OwnedReadHalf,
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
                    // (back-pressure reaches the peer through TCP) until
                    // the receiver has taken enough.
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
        let want = read_size(&decoder, &buf);
        make_room(&mut buf, want);
        let mut room = (&mut buf).limit(want);
        let read = tokio::select! {
            biased;
            () = &mut dead => break ReaderEnd::Stopped,
            () = &mut closed => break ReaderEnd::ReceiverDropped,
            // Cancel safe: nothing is read unless it completes.
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
    wr: &TcpStream,
    direct: &Direct,
    mut out: OutQueue,
    state: &Arc<LinkState>,
    params: &ConnParams,
) -> WriterEnd {
    let mut watch = state.watch();
    // Created once, not per write: each creation registers and removes a waiter.
    let dead = watch.reached(Phase::Dead);
    // Re-armed only after it fires (creating one per pass registers and
    // removes a waiter under the `Notify`'s lock).
    let woken = direct.wake.notified();
    tokio::pin!(dead, woken);
    let mut buf = BytesMut::new();
    loop {
        // A sender's unwritten rest goes first; then whatever is queued.
        // Only with both queues empty does the writer turn idle (senders
        // write through again), under the gate.
        let (pending, first) = {
            let mut gate = direct.lock();
            let pending = take_pending(&mut gate);
            let first = if state.phase() == Phase::Open { out.try_next() } else { None };
            if gate.busy && pending.is_none() && first.is_none() && state.phase() == Phase::Open {
                gate.busy = false;
            }
            (pending, first)
        };
        if let Some((rest, frames)) = pending {
            if let Err(end) = write_rest(wr, &rest, frames, dead.as_mut(), state, params).await {
                return end;
            }
            if first.is_none() {
                // Look again: turn idle or take what was queued meanwhile.
                continue;
            }
        }
        let first = match first {
            Some(frame) => frame,
            None => {
                let next = tokio::select! {
                    biased;
                    () = &mut woken => {
                        woken.set(direct.wake.notified());
                        continue;
                    }
                    next = out.next() => next,
                };
                match next {
                    Next::Frame(frame) => {
                        // Queued frames mean a busy writer; bytes a sender
                        // buffered before queueing this frame go first.
                        if let Some((rest, frames)) = claim_pending(direct)
                            && let Err(end) = write_rest(wr, &rest, frames, dead.as_mut(), state, params).await
                        {
                            return end;
                        }
                        frame
                    }
                    Next::Dead => return WriterEnd::Stopped,
                    Next::Drained => {
                        // Every sender gone counts as a close: arms the close deadline.
                        state.advance(Phase::Closing);
                        if let Some((rest, frames)) = claim_pending(direct)
                            && let Err(end) = write_rest(wr, &rest, frames, dead.as_mut(), state, params).await
                        {
                            return end;
                        }
                        return match SockRef::from(wr).shutdown(Shutdown::Write) {
                            Ok(()) => WriterEnd::Finished,
                            Err(e) => WriterEnd::Io(e.kind()),
                        };
                    }
                }
            }
        };
        let mut frames = encode_batch(first, &mut out, &mut buf, params);
        if frames == 0 {
            continue;
        }
        if frames < YIELD_BELOW_FRAMES {
            // A small batch under load: let the senders add to it first.
            tokio::task::yield_now().await;
            while frames < BATCH_MAX_FRAMES && buf.len() < BATCH_MAX_BYTES {
                let Some(more) = out.try_next() else { break };
                frames += encode_batch(more, &mut out, &mut buf, params);
            }
        }
        let written = tokio::select! {
            biased;
            () = &mut dead => return WriterEnd::Stopped,
            r = write_all(wr, &buf) => r,
        };
        if let Err(e) = written {
            return write_failed(e, state, params);
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

/// The bytes senders left to the (busy) writer, and their frame count. An
/// idle writer leaves them to the senders (they are still buffering).
/// Marks the connection task busy (queued frames follow) and takes the
/// bytes a sender left unwritten, which must go first.
fn claim_pending(direct: &Direct) -> Option<(Bytes, u64)> {
    let mut gate = direct.lock();
    gate.busy = true;
    take_pending(&mut gate)
}

/// Writes a sender's unwritten rest (`frames` frames) and counts it;
/// `Err` with how the writer ends if the link died or the write failed.
async fn write_rest(
    wr: &TcpStream,
    rest: &[u8],
    frames: u64,
    dead: std::pin::Pin<&mut impl std::future::Future<Output = ()>>,
    state: &LinkState,
    params: &ConnParams,
) -> Result<(), WriterEnd> {
    let written = tokio::select! {
        biased;
        () = dead => return Err(WriterEnd::Stopped),
        r = write_all(wr, rest) => r,
    };
    if let Err(e) = written {
        return Err(write_failed(e, state, params));
    }
    bump(&params.counters.frames_sent, frames);
    bump(&params.counters.write_batches, 1);
    Ok(())
}

fn take_pending(gate: &mut Gate) -> Option<(Bytes, u64)> {
    if !gate.busy || gate.pending.is_empty() {
        return None;
    }
    Some((gate.pending.split().freeze(), std::mem::take(&mut gate.pending_frames)))
}

fn write_failed(e: io::Error, state: &LinkState, params: &ConnParams) -> WriterEnd {
    tracing::debug!(remote = %params.remote, error = %e, "closing link: write failed");
    state.advance(Phase::Dead);
    WriterEnd::Io(e.kind())
}

/// Writes all of `buf`, waiting for the socket as needed (through its
/// single write-readiness slot: only this task waits to write). Cancelled
/// only when the link is dead.
async fn write_all(wr: &TcpStream, mut buf: &[u8]) -> io::Result<()> {
    while !buf.is_empty() {
        match wr.try_write(buf) {
            Ok(0) => return Err(io::ErrorKind::WriteZero.into()),
            Ok(n) => buf = &buf[n..],
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => poll_fn(|cx| wr.poll_write_ready(cx)).await?,
            Err(e) => return Err(e),
        }
    }
    Ok(())
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
