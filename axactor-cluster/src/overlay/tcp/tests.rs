use std::future::Future;
use std::net::SocketAddr;

use bytes::Bytes;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::time::{Instant, timeout};

use super::*;
use crate::overlay::{LinkReceiver, Priority};

const LIMIT: Duration = Duration::from_secs(20);

async fn within<F: Future>(f: F) -> F::Output {
    timeout(LIMIT, f).await.expect("finished in time")
}

fn id(name: &str) -> NodeId {
    NodeId::new(name)
}

fn any_port() -> SocketAddr {
    SocketAddr::from(([127, 0, 0, 1], 0))
}

/// `b` listens on an ephemeral port of overlay `tb`; `ta` knows its address.
async fn setup(tb: TcpOverlay) -> (TcpOverlay, TcpOverlay, Listener) {
    tb.insert_address("b", any_port());
    let listener = tb.listen(&id("b")).await.expect("listen");
    let addr = listener.local_addr().expect("bound address");
    let ta = TcpOverlay::new(HashMap::from([("b".to_owned(), addr)]));
    (ta, tb, listener)
}

async fn connect(ta: &TcpOverlay, listener: &mut Listener) -> (Link, Link) {
    let ours = within(ta.dial(&id("a"), &id("b"))).await.expect("dial");
    let theirs = within(listener.accept()).await.expect("accepted");
    (ours, theirs)
}

async fn recv(rx: &mut LinkReceiver) -> Option<Bytes> {
    within(rx.recv()).await
}

fn frame(s: impl Into<String>) -> Bytes {
    Bytes::from(s.into())
}

#[tokio::test]
async fn frames_flow_both_ways() {
    let (ta, _tb, mut listener) = setup(TcpOverlay::new(HashMap::new())).await;
    let (mut a, mut b) = connect(&ta, &mut listener).await;
    assert!(a.remote.starts_with("b@127.0.0.1:"), "{}", a.remote);
    for i in 0..10 {
        a.tx.send(frame(format!("ping {i}")), Priority::Data).await.expect("send");
        assert_eq!(recv(&mut b.rx).await, Some(frame(format!("ping {i}"))));
        b.tx.try_send(frame(format!("pong {i}")), Priority::Control).expect("send");
        assert_eq!(recv(&mut a.rx).await, Some(frame(format!("pong {i}"))));
    }
    assert_eq!(ta.max_frame_bytes(), DEFAULT_MAX_FRAME_BYTES);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pipelined_frames_arrive_in_order_in_batches() {
    const N: u32 = 20_000;
    let (ta, tb, mut listener) = setup(TcpOverlay::new(HashMap::new())).await;
    let (a, mut b) = connect(&ta, &mut listener).await;
    let sender = tokio::spawn(async move {
        for i in 0..N {
            let mut body = i.to_be_bytes().to_vec();
            body.resize(4 + (i as usize % 200), 7);
            a.tx.send(Bytes::from(body), Priority::Data).await.expect("send");
        }
        a
    });
    for i in 0..N {
        let f = recv(&mut b.rx).await.expect("frame");
        assert_eq!(f.len(), 4 + (i as usize % 200));
        assert_eq!(u32::from_be_bytes(f[..4].try_into().expect("prefix")), i);
    }
    let _a = within(sender).await.expect("sender");
    // A batch is counted once its write returned: the peer may have read
    // it before the writer (preempted on a loaded machine) counted it.
    within(async {
        while ta.stats().frames_sent < u64::from(N) {
            tokio::time::sleep(Duration::from_millis(1)).await;
        }
    })
    .await;
    let (sent, received) = (ta.stats(), tb.stats());
    assert_eq!((sent.frames_sent, received.frames_received), (u64::from(N), u64::from(N)));
    // How many frames share a write depends on how far the sender runs
    // ahead of the writer (the machine's load); some always do.
    assert!(sent.write_batches < sent.frames_sent, "frames were batched: {sent:?}");
}

#[tokio::test]
async fn control_frames_overtake_queued_data() {
    // Raw overlay links (no node raises the pre-auth limit): allow big frames.
    let small = |t: TcpOverlay| t.with_link_queue_frames(8).with_initial_max_frame_bytes(1 << 20);
    let (ta, _tb, mut listener) = setup(small(TcpOverlay::new(HashMap::new()))).await;
    let ta = small(ta);
    let (a, mut b) = connect(&ta, &mut listener).await;
    // b does not read: its queue, both socket buffers, then a's data queue fill up.
    let body = vec![b'd'; 16 * 1024];
    let (mut sent, mut full_in_a_row) = (0u32, 0);
    while full_in_a_row < 3 {
        let mut f = sent.to_be_bytes().to_vec();
        f.extend_from_slice(&body);
        match a.tx.try_send(Bytes::from(f), Priority::Data) {
            Ok(()) => {
                sent += 1;
                full_in_a_row = 0;
            }
            Err(OverlayError::Full) => {
                full_in_a_row += 1;
                tokio::time::sleep(Duration::from_millis(30)).await;
            }
            Err(e) => panic!("unexpected {e}"),
        }
        assert!(sent < 100_000, "the writer never blocked");
    }
    a.tx.try_send(frame("ctl"), Priority::Control).expect("control queue has room");
    let mut order = Vec::new();
    while order.len() < sent as usize + 1 {
        let f = recv(&mut b.rx).await.expect("frame");
        order.push(if f == "ctl" { None } else { Some(u32::from_be_bytes(f[..4].try_into().expect("seq"))) });
    }
    let ctl = order.iter().position(Option::is_none).expect("control frame arrived");
    assert!(ctl < sent as usize, "control frame overtook queued data ({ctl} of {sent})");
    let data: Vec<u32> = order.into_iter().flatten().collect();
    assert_eq!(data, (0..sent).collect::<Vec<_>>());
}

/// Opens a raw client to `addr`, writes `bytes`, and returns whether the
/// server closed the connection (EOF or reset) within the time limit.
async fn raw_client_is_dropped(addr: SocketAddr, bytes: &[u8], half_close: bool) -> bool {
    let mut raw = within(tokio::net::TcpStream::connect(addr)).await.expect("raw connect");
    raw.write_all(bytes).await.expect("write");
    if half_close {
        raw.shutdown().await.expect("shutdown");
    }
    let mut sink = [0u8; 64];
    matches!(within(raw.read(&mut sink)).await, Ok(0) | Err(_))
}

#[tokio::test]
async fn bad_input_closes_only_its_own_connection() {
    let (ta, tb, mut listener) = setup(TcpOverlay::new(HashMap::new())).await;
    let addr = listener.local_addr().expect("addr");
    let (a, mut b) = connect(&ta, &mut listener).await;
    let cases: [(&[u8], bool); 3] = [
        (&[0xff, 0xff, 0xff, 0xff, 1, 2, 3], false),   // oversized length prefix
        (b"GET / HTTP/1.1\r\nHost: x\r\n\r\n", false), // garbage
        (&[0, 0, 0, 0], false),                        // empty frame
    ];
    for (bytes, half_close) in cases {
        // The receiver reads the socket itself: the bad input is read (and
        // the client dropped) once the link's receiver waits for a frame.
        let client = tokio::spawn(async move { raw_client_is_dropped(addr, bytes, half_close).await });
        let mut bad = within(listener.accept()).await.expect("bad link accepted");
        assert_eq!(recv(&mut bad.rx).await, None, "bad link ends");
        assert!(within(client).await.expect("client task"), "bad client dropped: {bytes:?}");
    }
    assert_eq!(tb.stats().decode_errors, 3);
    // The established link and new links still work.
    a.tx.try_send(frame("still here"), Priority::Data).expect("send");
    assert_eq!(recv(&mut b.rx).await, Some(frame("still here")));
    let (c, mut d) = connect(&ta, &mut listener).await;
    c.tx.try_send(frame("new link"), Priority::Data).expect("send");
    assert_eq!(recv(&mut d.rx).await, Some(frame("new link")));
}

#[tokio::test]
async fn truncated_frame_then_close_is_counted() {
    let (_ta, tb, mut listener) = setup(TcpOverlay::new(HashMap::new())).await;
    let addr = listener.local_addr().expect("addr");
    let mut bytes = vec![0, 0, 0, 2, b'o', b'k'];
    bytes.extend_from_slice(&[0, 0, 0, 100]);
    bytes.extend_from_slice(&[9; 10]);
    let client = tokio::spawn(async move { raw_client_is_dropped(addr, &bytes, true).await });
    let mut link = within(listener.accept()).await.expect("accepted");
    assert_eq!(recv(&mut link.rx).await, Some(frame("ok")));
    assert_eq!(recv(&mut link.rx).await, None);
    assert!(within(client).await.expect("client task"), "client dropped");
    let stats = tb.stats();
    assert_eq!((stats.truncated_frames, stats.decode_errors), (1, 0));
}

#[tokio::test]
async fn frame_over_the_receivers_limit_closes_the_link() {
    let (ta, tb, mut listener) = setup(TcpOverlay::new(HashMap::new())).await;
    let (a, mut b) = connect(&ta, &mut listener).await;
    b.rx.set_max_frame_bytes(4);
    a.tx.try_send(frame("fits"), Priority::Data).expect("send");
    assert_eq!(recv(&mut b.rx).await, Some(frame("fits")));
    a.tx.try_send(frame("too long"), Priority::Data).expect("send");
    assert_eq!(recv(&mut b.rx).await, None);
    assert_eq!(tb.stats().decode_errors, 1);
}

#[tokio::test]
async fn initial_frame_limit_applies_to_new_links() {
    let tb = TcpOverlay::new(HashMap::new()).with_initial_max_frame_bytes(4);
    let (ta, _tb, mut listener) = setup(tb).await;
    let (a, mut b) = connect(&ta, &mut listener).await;
    assert_eq!(b.rx.max_frame_bytes(), 4);
    b.rx.set_max_frame_bytes(usize::MAX);
    assert_eq!(b.rx.max_frame_bytes(), DEFAULT_MAX_FRAME_BYTES, "clamped to the overlay's limit");
    a.tx.try_send(frame("longer now"), Priority::Data).expect("send");
    assert_eq!(recv(&mut b.rx).await, Some(frame("longer now")));
}

#[tokio::test]
async fn close_flushes_then_ends_both_sides() {
    let (ta, _tb, mut listener) = setup(TcpOverlay::new(HashMap::new())).await;
    let (mut a, mut b) = connect(&ta, &mut listener).await;
    for i in 0..100 {
        a.tx.try_send(frame(format!("{i}")), Priority::Data).expect("send");
    }
    a.tx.close();
    assert_eq!(a.tx.try_send(frame("late"), Priority::Data), Err(OverlayError::Closed));
    for i in 0..100 {
        assert_eq!(recv(&mut b.rx).await, Some(frame(format!("{i}"))));
    }
    assert_eq!(recv(&mut b.rx).await, None);
    assert_eq!(recv(&mut a.rx).await, None);
    assert!(b.tx.is_closed());
}

#[tokio::test]
async fn dropping_every_sender_closes_gracefully() {
    let (ta, _tb, mut listener) = setup(TcpOverlay::new(HashMap::new())).await;
    let (mut a, mut b) = connect(&ta, &mut listener).await;
    a.tx.try_send(frame("last words"), Priority::Data).expect("send");
    drop(a.tx);
    assert_eq!(recv(&mut b.rx).await, Some(frame("last words")));
    assert_eq!(recv(&mut b.rx).await, None);
    assert_eq!(recv(&mut a.rx).await, None);
}

#[tokio::test]
async fn a_peer_that_stops_reading_cannot_hold_a_closing_link() {
    let close_timeout = Duration::from_millis(300);
    let (_ta, _tb, mut listener) =
        setup(TcpOverlay::new(HashMap::new()).with_close_timeout(close_timeout).with_link_queue_frames(4)).await;
    let addr = listener.local_addr().expect("addr");
    let _raw = within(tokio::net::TcpStream::connect(addr)).await.expect("connect"); // never reads
    let mut link = within(listener.accept()).await.expect("accepted");
    let body = Bytes::from(vec![0u8; 64 * 1024]);
    while link.tx.try_send(body.clone(), Priority::Data).is_ok() {
        tokio::time::sleep(Duration::from_millis(1)).await;
    }
    let start = Instant::now();
    link.tx.close();
    assert_eq!(recv(&mut link.rx).await, None);
    assert!(start.elapsed() < close_timeout + Duration::from_secs(2), "{:?}", start.elapsed());
}

#[tokio::test]
async fn dropping_the_receiver_ends_the_peer_link() {
    let (ta, _tb, mut listener) = setup(TcpOverlay::new(HashMap::new())).await;
    let (a, mut b) = connect(&ta, &mut listener).await;
    drop(a.rx);
    assert_eq!(recv(&mut b.rx).await, None);
    within(async {
        while !a.tx.is_closed() {
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
    })
    .await;
}

#[tokio::test]
async fn listen_errors_are_errors() {
    let taken = std::net::TcpListener::bind(any_port()).expect("bind");
    let addr = taken.local_addr().expect("addr");
    let t = TcpOverlay::new(HashMap::from([("a".to_owned(), addr)]));
    let err = t.listen(&id("a")).await.err();
    assert_eq!(err, Some(OverlayError::Bind { addr: addr.to_string(), kind: std::io::ErrorKind::AddrInUse }));
    let err = t.listen(&id("nobody")).await.err();
    assert_eq!(err, Some(OverlayError::Bind { addr: "nobody".into(), kind: std::io::ErrorKind::NotFound }));
}

/// A loopback listener whose accept queue is full: further connects hang
/// (Linux drops their SYNs), as with an unreachable host.
fn black_hole() -> (socket2::Socket, std::net::TcpStream, SocketAddr) {
    let socket = socket2::Socket::new(socket2::Domain::IPV4, socket2::Type::STREAM, None).expect("socket");
    socket.bind(&any_port().into()).expect("bind");
    socket.listen(0).expect("listen");
    let addr = socket.local_addr().expect("addr").as_socket().expect("inet");
    let filler = std::net::TcpStream::connect(addr).expect("fills the queue");
    (socket, filler, addr)
}

#[tokio::test]
async fn dial_errors_arrive_within_the_connect_timeout() {
    let closed = std::net::TcpListener::bind(any_port()).expect("bind").local_addr().expect("addr");
    let (_hole, _filler, silent) = black_hole();
    let book = HashMap::from([("closed".to_owned(), closed), ("silent".to_owned(), silent)]);
    let connect_timeout = Duration::from_millis(300);
    let t = TcpOverlay::with_keepalive_options(book, 1024, connect_timeout, TcpKeepaliveOptions::default());
    assert_eq!(t.dial(&id("a"), &id("ghost")).await.err(), Some(OverlayError::UnknownPeer("ghost".into())));
    let err = within(t.dial(&id("a"), &id("closed"))).await.err();
    assert!(matches!(err, Some(OverlayError::Refused(_))), "{err:?}");
    let start = Instant::now();
    let err = within(t.dial(&id("a"), &id("silent"))).await.err();
    assert_eq!(err, Some(OverlayError::ConnectTimeout));
    let took = start.elapsed();
    assert!(took >= connect_timeout && took < connect_timeout + Duration::from_secs(1), "{took:?}");
}

#[tokio::test]
async fn bad_configuration_is_an_error() {
    let book = HashMap::from([("a".to_owned(), any_port())]);
    let bad_keepalive =
        TcpKeepaliveOptions { idle: Some(Duration::from_millis(500)), ..TcpKeepaliveOptions::default() };
    let t = TcpOverlay::with_keepalive_options(book.clone(), 1024, DEFAULT_CONNECT_TIMEOUT, bad_keepalive);
    assert!(matches!(t.listen(&id("a")).await, Err(OverlayError::Config(_))));
    let probes = TcpKeepaliveOptions { probes: Some(0), ..TcpKeepaliveOptions::default() };
    let t = TcpOverlay::with_keepalive_options(book.clone(), 1024, DEFAULT_CONNECT_TIMEOUT, probes);
    assert!(matches!(t.dial(&id("b"), &id("a")).await, Err(OverlayError::Config(_))));
    let t = TcpOverlay::with_keepalive_options(book, 0, DEFAULT_CONNECT_TIMEOUT, TcpKeepaliveOptions::default());
    assert!(matches!(t.listen(&id("a")).await, Err(OverlayError::Config(_))));
}

#[tokio::test]
async fn sockets_get_nodelay_and_keepalive() {
    let listener = tokio::net::TcpListener::bind(any_port()).await.expect("bind");
    let addr = listener.local_addr().expect("addr");
    let stream = tokio::net::TcpStream::connect(addr).await.expect("connect");
    configure_socket(&stream, &TcpKeepaliveOptions::default());
    let sock = SockRef::from(&stream);
    assert!(sock.tcp_nodelay().expect("nodelay"));
    assert!(sock.keepalive().expect("keepalive"));
    #[cfg(target_os = "linux")]
    {
        assert_eq!(sock.tcp_keepalive_time().expect("idle"), Duration::from_secs(30));
        assert_eq!(sock.tcp_keepalive_interval().expect("interval"), Duration::from_secs(10));
        assert_eq!(sock.tcp_keepalive_retries().expect("probes"), 3);
    }
    configure_socket(&stream, &TcpKeepaliveOptions { enabled: false, ..TcpKeepaliveOptions::default() });
    assert!(!sock.keepalive().expect("keepalive"));
}

#[tokio::test]
async fn inbound_connections_are_capped() {
    let (_ta, tb, mut listener) = setup(TcpOverlay::new(HashMap::new()).with_max_inbound_connections(1)).await;
    let addr = listener.local_addr().expect("addr");
    let _first = within(tokio::net::TcpStream::connect(addr)).await.expect("connect");
    let _kept = within(listener.accept()).await.expect("accepted");
    assert!(raw_client_is_dropped(addr, b"", false).await, "second connection closed at once");
    assert_eq!(tb.stats().connections_rejected, 1);
}

#[tokio::test]
async fn dropping_the_listener_stops_accepting() {
    let (ta, _tb, listener) = setup(TcpOverlay::new(HashMap::new())).await;
    drop(listener);
    within(async {
        while ta.dial(&id("a"), &id("b")).await.is_ok() {
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_peer_cannot_make_the_receiver_queue_more_than_its_byte_budget() {
    const FRAME: usize = 256 * 1024;
    const BUDGET: usize = 1024 * 1024;
    // 10 MiB in 40 frames: ten times the budget.
    const FRAMES: usize = 40;
    let tb = TcpOverlay::new(HashMap::new()).with_initial_max_frame_bytes(DEFAULT_MAX_FRAME_BYTES);
    tb.insert_address("b", any_port());
    let mut listener = tb.listen(&id("b")).await.expect("listen");
    let mut raw = tokio::net::TcpStream::connect(listener.local_addr().expect("addr")).await.expect("connect");
    let mut b = within(listener.accept()).await.expect("accepted");
    assert!(matches!(b.source, LinkSource::Ip(ip) if ip.is_loopback()), "{:?}", b.source);
    b.rx.set_max_queued_bytes(BUDGET);

    // The peer writes every frame at once; the node takes none for now.
    let writer = tokio::spawn(async move {
        let mut bytes = Vec::with_capacity(FRAMES * (FRAME + 4));
        for i in 0..FRAMES {
            bytes.extend_from_slice(&(FRAME as u32).to_be_bytes());
            bytes.resize(bytes.len() + FRAME, i as u8);
        }
        raw.write_all(&bytes).await.expect("write");
        raw
    });
    // The receiver reads the socket itself: nothing is read (the kernel's
    // buffers fill, then the peer's writes block) until it asks.
    tokio::time::sleep(Duration::from_millis(100)).await;
    assert_eq!((b.rx.queued_bytes(), tb.stats().frames_received), (0, 0));

    // Back-pressure, not loss: every frame arrives, in order, as the node
    // takes them, and what is read ahead stays within the budget.
    let mut got = 0;
    while got < FRAMES {
        let frame = recv(&mut b.rx).await.expect("frame");
        assert_eq!((frame.len(), frame[0]), (FRAME, got as u8));
        let queued = b.rx.queued_bytes();
        assert!(queued <= BUDGET, "{queued} bytes read ahead, budget {BUDGET}");
        got += 1;
    }
    drop(within(writer).await.expect("writer"));
    assert_eq!(tb.stats().frames_received, FRAMES as u64);
}

#[cfg(feature = "overlay-conformance")]
#[tokio::test]
async fn passes_the_overlay_conformance_suite() {
    crate::overlay::conformance::run_all(&TcpOverlay::new(HashMap::new())).await.expect("the TCP overlay conforms");
}
