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
//!   encodes as many as are ready into one buffer (the stream links'
//!   [`Batch`]: up to 64 frames or [`BATCH_MAX_BYTES`] bytes) and writes
//!   them with one `write_all`. When the queues drain after a close it
//!   shuts the write side down (FIN) and waits for the reader to finish.
//! - Reading and close deadline: those of every stream link (the receiver
//!   reads the socket itself, `super::pull`: bounded buffer growth, the
//!   frame limit, back-pressure through the socket; `Closing` → `Dead`
//!   within the close timeout, `super::stream`).
//!
//! Ends: a clean EOF from the peer → `Closing` (our queued frames are still
//! sent); a bad prefix, a truncated frame, an I/O error or the local
//! receiver dropped → `Dead`. Each reason is logged at debug and counted.

use std::future::{Future, poll_fn};
use std::io;
use std::net::Shutdown;
use std::pin::Pin;
use std::sync::Arc;

use bytes::{Buf, BufMut, Bytes, BytesMut};
use parking_lot::{Mutex, MutexGuard};
use socket2::SockRef;
use tokio::net::TcpStream;
use tokio::net::tcp::OwnedWriteHalf;
use tokio::sync::Notify;
use tokio::sync::futures::Notified;

use super::Link;
use super::counters::{ConnCounters, bump};
use super::link::{self, Fed, LinkState, Next, OutQueue, Phase, WriteThrough};
use super::stream::{self, BATCH_MAX_BYTES, Batch, ConnParams, WriterEnd, write_failed};
use crate::wire::frame::LEN_PREFIX;

/// Spawns the task of a connected socket and returns its link.
pub(crate) fn spawn(stream: TcpStream, params: ConnParams) -> Link {
    let state = LinkState::new();
    // The read half is the reader's own (`AsyncRead`, which also clears the
    // socket's readiness after a short read, saving a `WouldBlock` read per
    // wake-up); the write half is shared by the writer and the senders.
    let (rd, wr) = stream.into_split();
    let wr_stream = Arc::new(wr);
    let direct = Arc::new(Direct {
        gate: Mutex::new(Gate {
            stream: Some(Arc::clone(&wr_stream)),
            busy: false,
            pending: BytesMut::new(),
            pending_frames: 0,
        }),
        wake: Notify::new(),
        counters: Arc::clone(&params.counters),
    });
    let (tx, out) = link::outbound(&state, params.queue_frames, params.max_frame_bytes);
    let tx = tx.with_write_through(Arc::clone(&direct) as Arc<dyn WriteThrough>);
    // The receiver reads the socket itself (`super::pull`).
    let (rx, done) = stream::receiver(Box::new(rd), &state, &params);
    let link = Link::new(tx, rx, params.remote.clone(), params.source.clone());
    tokio::spawn(async move {
        let reader = stream::reader_end(&done, &state);
        let writer = async {
            let end = write_loop((*wr_stream).as_ref(), &direct, out, &state, &params).await;
            // Senders stop writing through (and let go of the socket).
            {
                let mut gate = direct.lock();
                gate.busy = true;
                gate.stream = None;
            }
            end
        };
        stream::drive(reader, writer, &state, &params).await;
    });
    link
}

/// The write-through path of one TCP link, shared by its senders and its
/// connection task (see the module docs).
#[derive(Debug)]
pub(crate) struct Direct {
    gate: Mutex<Gate>,
    /// Wakes the writer when a sender hands it buffered bytes.
    wake: Notify,
    counters: Arc<ConnCounters>,
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

impl WriteThrough for Direct {
    fn queue_busy(&self, queue: &mut dyn FnMut()) {
        let mut gate = self.lock();
        self.make_busy(&mut gate);
        queue();
    }

    fn feed(&self, frame: Bytes, queue: &mut dyn FnMut(Bytes) -> Fed) -> Fed {
        let mut gate = self.lock();
        match self.feed_idle(&mut gate, frame) {
            Ok(()) => Fed::Done,
            Err(frame) => queue(frame),
        }
    }

    fn flush(&self) {
        self.flush_idle(&mut self.lock());
    }
}

impl Direct {
    fn lock(&self) -> MutexGuard<'_, Gate> {
        self.gate.lock()
    }

    /// Before a frame is queued: the writer becomes busy, taking the
    /// buffered bytes (written before the queue) if any.
    fn make_busy(&self, gate: &mut Gate) {
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
    fn feed_idle(&self, gate: &mut Gate, frame: Bytes) -> Result<(), Bytes> {
        if gate.busy || gate.stream.is_none() {
            return Err(frame);
        }
        let Ok(len) = u32::try_from(frame.len()) else { return Err(frame) };
        gate.pending.reserve(LEN_PREFIX + frame.len());
        gate.pending.put_u32(len);
        gate.pending.extend_from_slice(&frame);
        gate.pending_frames += 1;
        if gate.pending.len() >= BATCH_MAX_BYTES {
            self.flush_idle(gate);
        }
        Ok(())
    }

    /// The writer's next work, under the gate: a sender's unwritten rest
    /// (which goes first), then a queued frame while the link is open. Only
    /// with both queues empty does the writer turn idle (senders write
    /// through again).
    fn next_work(&self, out: &mut OutQueue, state: &LinkState) -> (Option<(Bytes, u64)>, Option<Bytes>) {
        let mut gate = self.lock();
        let pending = take_pending(&mut gate);
        let first = if state.phase() == Phase::Open { out.try_next() } else { None };
        if gate.busy && pending.is_none() && first.is_none() && state.phase() == Phase::Open {
            gate.busy = false;
        }
        (pending, first)
    }

    /// Writes the buffered frames if the writer is idle; what the socket
    /// does not take makes the writer busy and goes to it.
    fn flush_idle(&self, gate: &mut Gate) {
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

/// The connection's writer: a sender's unwritten rest first, then queued
/// frames in batches, until the link drains or dies (see the module docs).
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
    let mut batch = Batch::default();
    loop {
        let (pending, first) = direct.next_work(&mut out, state);
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
            None => match wait_for_work(wr, direct, &mut out, woken.as_mut(), dead.as_mut(), state, params).await {
                Wait::Frame(frame) => frame,
                Wait::Woken => continue,
                Wait::End(end) => return end,
            },
        };
        if batch.fill(first, &mut out, params).await == 0 {
            continue;
        }
        let written = tokio::select! {
            biased;
            () = &mut dead => return WriterEnd::Stopped,
            r = write_all(wr, batch.bytes()) => r,
        };
        if let Err(e) = written {
            return write_failed(e, state, params);
        }
        batch.written(&params.counters);
    }
}

/// What an idle writer waited for.
enum Wait {
    /// A queued frame (a sender's rest, if any, already written).
    Frame(Bytes),
    /// A sender handed over bytes: look at the gate again.
    Woken,
    /// The writer ends.
    End(WriterEnd),
}

/// With nothing to write: waits for a sender's handed-over bytes or a
/// queued frame. Queued frames mean a busy writer, so bytes a sender
/// buffered before queueing are written first; once every sender is gone
/// (drained) the rest is written and the write side shut down (FIN).
async fn wait_for_work<'d>(
    wr: &TcpStream,
    direct: &'d Direct,
    out: &mut OutQueue,
    mut woken: Pin<&mut Notified<'d>>,
    dead: Pin<&mut impl Future<Output = ()>>,
    state: &LinkState,
    params: &ConnParams,
) -> Wait {
    let next = tokio::select! {
        biased;
        () = woken.as_mut() => {
            woken.set(direct.wake.notified());
            return Wait::Woken;
        }
        next = out.next() => next,
    };
    match next {
        Next::Frame(frame) => {
            if let Some((rest, frames)) = claim_pending(direct)
                && let Err(end) = write_rest(wr, &rest, frames, dead, state, params).await
            {
                return Wait::End(end);
            }
            Wait::Frame(frame)
        }
        Next::Dead => Wait::End(WriterEnd::Stopped),
        Next::Drained => {
            // Every sender gone counts as a close: arms the close deadline.
            state.advance(Phase::Closing);
            if let Some((rest, frames)) = claim_pending(direct)
                && let Err(end) = write_rest(wr, &rest, frames, dead, state, params).await
            {
                return Wait::End(end);
            }
            Wait::End(match SockRef::from(wr).shutdown(Shutdown::Write) {
                Ok(()) => WriterEnd::Finished,
                Err(e) => WriterEnd::Io(e.kind()),
            })
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
    dead: Pin<&mut impl Future<Output = ()>>,
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
