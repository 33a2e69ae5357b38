//! The floor: a Tokio TCP echo with `u32` big-endian length framing; the
//! client multiplexes callers over one connection (a writer task batching
//! queued requests into one write, a reader task completing callers by
//! request id), `TCP_NODELAY` on both ends.

use std::any::Any;
use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use parking_lot::Mutex;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{mpsc, oneshot};

use super::{Asker, PAYLOAD};

/// Request ids awaiting their reply.
type Pending = Arc<Mutex<HashMap<u64, oneshot::Sender<()>>>>;

/// Cuts whole frames off the front of `buf`, calling `f` with each body.
fn frames(buf: &mut Vec<u8>, mut f: impl FnMut(&[u8])) {
    let mut at = 0;
    while buf.len() - at >= 4 {
        let len = u32::from_be_bytes([buf[at], buf[at + 1], buf[at + 2], buf[at + 3]]) as usize;
        if buf.len() - at - 4 < len {
            break;
        }
        f(&buf[at + 4..at + 4 + len]);
        at += 4 + len;
    }
    buf.drain(..at);
}

/// Server: echoes every frame; answers for one read go out in one write.
pub async fn serve(args: &[String]) -> Box<dyn Any> {
    let listener = TcpListener::bind(("127.0.0.1", args[0].parse::<u16>().expect("port"))).await.expect("bind");
    let task = tokio::spawn(async move {
        while let Ok((mut sock, _)) = listener.accept().await {
            let _ = sock.set_nodelay(true);
            tokio::spawn(async move {
                let (mut buf, mut chunk, mut out) = (Vec::new(), vec![0u8; 32 * 1024], Vec::new());
                loop {
                    let Ok(n) = sock.read(&mut chunk).await else { return };
                    if n == 0 {
                        return;
                    }
                    buf.extend_from_slice(&chunk[..n]);
                    frames(&mut buf, |body| {
                        out.extend_from_slice(&(body.len() as u32).to_be_bytes());
                        out.extend_from_slice(body);
                    });
                    if sock.write_all(&out).await.is_err() {
                        return;
                    }
                    out.clear();
                }
            });
        }
    });
    Box::new(task)
}

/// The multiplexing client.
#[derive(Clone)]
pub struct Client {
    next: Arc<AtomicU64>,
    pending: Pending,
    tx: mpsc::Sender<u64>,
}

/// Connects to the server of `args`.
pub async fn connect(args: &[String]) -> Client {
    let sock = TcpStream::connect(("127.0.0.1", args[0].parse::<u16>().expect("port"))).await.expect("connect");
    sock.set_nodelay(true).expect("nodelay");
    let (mut rd, mut wr) = sock.into_split();
    let pending: Pending = Arc::default();
    let (tx, mut rx) = mpsc::channel::<u64>(1024);
    tokio::spawn(async move {
        let mut out = Vec::new();
        while let Some(id) = rx.recv().await {
            let mut push = |id: u64| {
                out.extend_from_slice(&((8 + PAYLOAD) as u32).to_be_bytes());
                out.extend_from_slice(&id.to_be_bytes());
                out.extend_from_slice(&[7u8; PAYLOAD]);
            };
            push(id);
            for _ in 1..64 {
                let Ok(id) = rx.try_recv() else { break };
                push(id);
            }
            if wr.write_all(&out).await.is_err() {
                return;
            }
            out.clear();
        }
    });
    let done = Arc::clone(&pending);
    tokio::spawn(async move {
        let (mut buf, mut chunk) = (Vec::new(), vec![0u8; 32 * 1024]);
        loop {
            let Ok(n) = rd.read(&mut chunk).await else { return };
            if n == 0 {
                return;
            }
            buf.extend_from_slice(&chunk[..n]);
            let mut map = done.lock();
            frames(&mut buf, |body| {
                let id = u64::from_be_bytes(body[..8].try_into().expect("8-byte id"));
                if let Some(w) = map.remove(&id) {
                    let _ = w.send(());
                }
            });
        }
    });
    Client { next: Arc::new(AtomicU64::new(0)), pending, tx }
}

impl Asker for Client {
    async fn call(&self) {
        let id = self.next.fetch_add(1, Ordering::Relaxed);
        let (tx, rx) = oneshot::channel();
        self.pending.lock().insert(id, tx);
        self.tx.send(id).await.expect("writer alive");
        rx.await.expect("reply");
    }
}
