//! The floor: a raw Tokio TCP request/reply over loopback with the node's
//! framing (a `u32` big-endian length, then the body), bodies of the same
//! sizes as the node's sealed ask and reply frames, and `TCP_NODELAY` as
//! the overlay sets it.
//!
//! - Server: one task per connection; reads what is available, answers
//!   every complete request frame (echoing its 8-byte request id into a
//!   reply body of the reply size) and writes all answers with one
//!   `write_all`; a frame whose id has [`ONE_WAY`] set is read and not
//!   answered (the floor of a stream of unacknowledged tells).
//! - [`Mux`]: the client shaped like the node's connection: callers register
//!   a `oneshot` under a request id in a locked map and queue the request
//!   frame on a bounded channel; a writer task batches what is queued into
//!   one `write_all`; a reader task cuts reply frames and completes the
//!   callers. Any number of callers share the one connection.
//! - [`Direct`]: one task owns the socket and does `write_all`, then reads
//!   until the reply is complete: the lowest possible sequential latency,
//!   shown for reference.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use bytes::{Buf, BufMut, Bytes, BytesMut};
use parking_lot::Mutex;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{mpsc, oneshot};

use crate::measure::Asker;

/// Bytes read at a time (the overlay's chunk size).
const READ_CHUNK: usize = 32 * 1024;
/// Frames per `write_all`, at most (the overlay's batch limit).
const BATCH_MAX_FRAMES: usize = 64;
/// Requests queued for the writer (the node's data queue capacity).
const QUEUE: usize = 1024;

/// Set in a request id: the server reads the frame and sends no reply.
pub(crate) const ONE_WAY: u64 = 1 << 63;

/// Frame body sizes, taken from the node's encoding of the same ask.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Sizes {
    /// Body of a request frame (without the 4-byte length).
    pub(crate) request: usize,
    /// Body of a reply frame.
    pub(crate) reply: usize,
}

/// Appends one frame: the length, the id, zero padding up to `body` bytes.
fn put_frame(out: &mut BytesMut, id: u64, body: usize) {
    out.put_u32(u32::try_from(body).expect("small body"));
    out.put_u64(id);
    out.put_bytes(0, body - 8);
}

/// Cuts the next complete frame body off `buf`.
fn next_frame(buf: &mut BytesMut) -> Option<Bytes> {
    if buf.len() < 4 {
        return None;
    }
    let len = u32::from_be_bytes([buf[0], buf[1], buf[2], buf[3]]) as usize;
    if buf.len() < 4 + len {
        return None;
    }
    buf.advance(4);
    Some(buf.split_to(len).freeze())
}

/// Reads more into `buf`; `false` at end of stream or on error.
async fn fill<R: AsyncReadExt + Unpin>(rd: &mut R, buf: &mut BytesMut) -> bool {
    buf.reserve(READ_CHUNK);
    matches!(rd.read_buf(buf).await, Ok(n) if n > 0)
}

/// Starts the echo server on an ephemeral loopback port.
pub(crate) async fn server(sizes: Sizes) -> SocketAddr {
    let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind loopback");
    let addr = listener.local_addr().expect("bound address");
    tokio::spawn(async move {
        while let Ok((stream, _)) = listener.accept().await {
            stream.set_nodelay(true).expect("nodelay");
            tokio::spawn(serve(stream, sizes));
        }
    });
    addr
}

async fn serve(mut stream: TcpStream, sizes: Sizes) {
    let (mut rd, mut wr) = stream.split();
    let (mut buf, mut out) = (BytesMut::new(), BytesMut::new());
    while fill(&mut rd, &mut buf).await {
        while let Some(mut req) = next_frame(&mut buf) {
            let id = req.get_u64();
            if id & ONE_WAY == 0 {
                put_frame(&mut out, id, sizes.reply);
            }
        }
        if !out.is_empty() {
            if wr.write_all(&out).await.is_err() {
                return;
            }
            out.clear();
        }
    }
}

async fn connect(addr: SocketAddr) -> TcpStream {
    let stream = TcpStream::connect(addr).await.expect("connect loopback");
    stream.set_nodelay(true).expect("nodelay");
    stream
}

type Pending = Arc<Mutex<HashMap<u64, oneshot::Sender<Bytes>>>>;

/// The multiplexing client (see the module docs). Cheap to clone.
#[derive(Clone)]
pub(crate) struct Mux {
    next: Arc<AtomicU64>,
    pending: Pending,
    queue: mpsc::Sender<BytesMut>,
    request: usize,
}

impl Mux {
    /// Connects to `addr` and starts the writer and reader tasks.
    pub(crate) async fn connect(addr: SocketAddr, sizes: Sizes) -> Mux {
        let (rd, wr) = connect(addr).await.into_split();
        let (queue, rx) = mpsc::channel(QUEUE);
        let pending: Pending = Arc::default();
        tokio::spawn(write_loop(wr, rx));
        tokio::spawn(read_loop(rd, pending.clone()));
        Mux { next: Arc::default(), pending, queue, request: sizes.request }
    }
}

async fn write_loop(mut wr: tokio::net::tcp::OwnedWriteHalf, mut rx: mpsc::Receiver<BytesMut>) {
    let mut out = BytesMut::new();
    while let Some(first) = rx.recv().await {
        out.extend_from_slice(&first);
        let mut frames = 1;
        while frames < BATCH_MAX_FRAMES
            && let Ok(more) = rx.try_recv()
        {
            out.extend_from_slice(&more);
            frames += 1;
        }
        if wr.write_all(&out).await.is_err() {
            return;
        }
        out.clear();
    }
}

async fn read_loop(mut rd: tokio::net::tcp::OwnedReadHalf, pending: Pending) {
    let mut buf = BytesMut::new();
    while fill(&mut rd, &mut buf).await {
        while let Some(mut reply) = next_frame(&mut buf) {
            let id = reply.get_u64();
            if let Some(tx) = pending.lock().remove(&id) {
                let _ = tx.send(reply);
            }
        }
    }
}

impl Mux {
    /// Queues one frame of `body` bytes that the server does not answer,
    /// waiting for queue space like the node's writer.
    pub(crate) async fn send_one_way(&self, body: usize) {
        let id = self.next.fetch_add(1, Ordering::Relaxed) | ONE_WAY;
        let mut frame = BytesMut::with_capacity(4 + body);
        put_frame(&mut frame, id, body);
        self.queue.send(frame).await.expect("writer running");
    }
}

impl Asker for Mux {
    async fn call(&mut self) {
        let id = self.next.fetch_add(1, Ordering::Relaxed);
        let (tx, rx) = oneshot::channel();
        self.pending.lock().insert(id, tx);
        let mut frame = BytesMut::with_capacity(4 + self.request);
        put_frame(&mut frame, id, self.request);
        self.queue.send(frame).await.expect("writer running");
        rx.await.expect("reply");
    }
}

/// One task, one socket, one request at a time (see the module docs).
pub(crate) struct Direct {
    stream: TcpStream,
    buf: BytesMut,
    out: BytesMut,
    next: u64,
    request: usize,
}

impl Direct {
    /// Connects to `addr`.
    pub(crate) async fn connect(addr: SocketAddr, sizes: Sizes) -> Direct {
        Direct {
            stream: connect(addr).await,
            buf: BytesMut::new(),
            out: BytesMut::new(),
            next: 0,
            request: sizes.request,
        }
    }
}

impl Asker for Direct {
    async fn call(&mut self) {
        self.next += 1;
        put_frame(&mut self.out, self.next, self.request);
        self.stream.write_all(&self.out).await.expect("write");
        self.out.clear();
        loop {
            if let Some(mut reply) = next_frame(&mut self.buf) {
                assert_eq!(reply.get_u64(), self.next, "replies come in order");
                return;
            }
            assert!(fill(&mut self.stream, &mut self.buf).await, "server closed");
        }
    }
}
