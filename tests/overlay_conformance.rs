//! Overlays written outside the crate, through the public extension point
//! only, pass the overlay conformance suite; a cluster runs over one; and
//! overlays with deliberate bugs fail the suite (so it can tell).
//!
//! - `ChannelOverlay`: a frame-level transport built on `endpoint` (one
//!   pump task per direction, moving frames from one end's `LinkOutbox` to
//!   the other's `LinkInbox`), with a close deadline;
//! - `DuplexOverlay`: a byte-stream transport, `tokio::io::duplex` pipes
//!   run through `stream_link`.
#![allow(missing_docs)]

use std::collections::{BTreeMap, VecDeque};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axactor::actor;
use axactor_cluster::overlay::conformance::{self, OverlayHarness};
use axactor_cluster::overlay::{
    BoxFuture, Link, LinkConfig, LinkControl, LinkDriver, LinkInbox, LinkOutbox, LinkPhase, LinkSource, Listener,
    ListenerHandle, Outgoing, Overlay, OverlayError, endpoint, stream_link,
};
use axactor_cluster::{ClusterNode, ClusterOverlay, KeyedConfig, MemoryLeaseStore, NodeId};
use axactor_tests::cluster::connected;
use axactor_tests::keyed::{owns_all, pinned_cfg};

/// Largest frame the overlays here carry.
const MAX_FRAME: usize = 1024 * 1024;

/// A deliberate bug of a [`ChannelOverlay`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Bug {
    /// Swaps every second frame with the one before it.
    Reorders,
    /// Takes every frame from the sender at once and buffers what the
    /// receiver has no room for, without limit.
    Unbounded,
    /// Never lets the peer see the end after a close (and has no close
    /// deadline that would).
    NeverEnds,
}

/// The listening names of one in-process network.
#[derive(Debug, Default)]
struct Names {
    listeners: Mutex<BTreeMap<String, ListenerHandle>>,
}

impl Names {
    fn listen(&self, me: &NodeId) -> Result<Listener, OverlayError> {
        let mut listeners = self.listeners.lock().expect("not poisoned");
        if listeners.get(me.as_str()).is_some_and(|h| !h.is_closed()) {
            return Err(OverlayError::Bind { addr: me.to_string(), kind: std::io::ErrorKind::AddrInUse });
        }
        let (handle, listener) = Listener::channel(64);
        listeners.insert(me.to_string(), handle);
        Ok(listener)
    }

    fn handle(&self, peer: &NodeId) -> Result<ListenerHandle, OverlayError> {
        match self.listeners.lock().expect("not poisoned").get(peer.as_str()) {
            Some(h) if !h.is_closed() => Ok(h.clone()),
            _ => Err(OverlayError::UnknownPeer(peer.to_string())),
        }
    }
}

/// Frames over in-process channels, driven through `endpoint`.
#[derive(Debug, Clone, Default)]
struct ChannelOverlay {
    names: Arc<Names>,
    bug: Option<Bug>,
}

impl ChannelOverlay {
    fn with_bug(bug: Bug) -> ChannelOverlay {
        ChannelOverlay { bug: Some(bug), ..ChannelOverlay::default() }
    }
}

fn config() -> LinkConfig {
    LinkConfig::new(MAX_FRAME).with_queue_frames(64).with_close_timeout(Duration::from_secs(5))
}

impl Overlay for ChannelOverlay {
    fn listen(&self, me: &NodeId) -> BoxFuture<'_, Result<Listener, OverlayError>> {
        let result = self.names.listen(me);
        Box::pin(async move { result })
    }

    fn dial(&self, me: &NodeId, peer: &NodeId) -> BoxFuture<'_, Result<Link, OverlayError>> {
        let result = self.names.handle(peer).and_then(|handle| {
            let (ours, a) = endpoint(config(), peer.to_string(), LinkSource::Unknown);
            let (theirs, b) = endpoint(config(), me.to_string(), LinkSource::Node(me.to_string()));
            handle.offer(theirs).map_err(|_| OverlayError::Refused(peer.to_string()))?;
            let LinkDriver { outbox: a_out, inbox: a_in, control: a_ctl, .. } = a;
            let LinkDriver { outbox: b_out, inbox: b_in, control: b_ctl, .. } = b;
            tokio::spawn(pump(a_out, b_in, a_ctl.clone(), b_ctl.clone(), self.bug));
            tokio::spawn(pump(b_out, a_in, b_ctl.clone(), a_ctl.clone(), self.bug));
            if self.bug != Some(Bug::NeverEnds) {
                tokio::spawn(close_deadline(a_ctl));
                tokio::spawn(close_deadline(b_ctl));
            }
            Ok(ours)
        });
        Box::pin(async move { result })
    }

    fn max_frame_bytes(&self) -> usize {
        MAX_FRAME
    }
}

impl OverlayHarness for ChannelOverlay {
    fn overlay(&self) -> &dyn Overlay {
        self
    }
}

/// A closing end dies after its close timeout, so a peer that stops
/// reading cannot hold it open.
async fn close_deadline(ctl: LinkControl) {
    ctl.reached(LinkPhase::Closing).await;
    tokio::select! {
        () = ctl.reached(LinkPhase::Dead) => {}
        () = tokio::time::sleep(config().close_timeout) => ctl.fail(),
    }
}

/// Moves frames from one end (`from`) to the other (`to`) until either
/// ends. Waiting in `deliver` is the back-pressure: the sender's queues
/// fill meanwhile.
async fn pump(mut outbox: LinkOutbox, inbox: LinkInbox, from: LinkControl, to: LinkControl, bug: Option<Bug>) {
    let mut held: Option<bytes::Bytes> = None;
    let mut backlog: VecDeque<bytes::Bytes> = VecDeque::new();
    loop {
        if bug == Some(Bug::Unbounded) {
            while let Some(frame) = outbox.try_next() {
                backlog.push_back(frame);
            }
            while let Some(frame) = backlog.pop_front() {
                if let Err(OverlayError::Full) = inbox.try_deliver(frame.clone()) {
                    backlog.push_front(frame);
                    break;
                }
            }
        }
        let next = tokio::select! {
            biased;
            () = to.reached(LinkPhase::Dead) => break,
            () = tokio::time::sleep(Duration::from_millis(1)), if !backlog.is_empty() => continue,
            next = outbox.next() => next,
        };
        match next {
            Outgoing::Frame(frame) if bug == Some(Bug::Unbounded) => backlog.push_back(frame),
            Outgoing::Frame(frame) if bug == Some(Bug::Reorders) && held.is_none() => held = Some(frame),
            Outgoing::Frame(frame) => {
                if inbox.deliver(frame).await.is_err() {
                    break;
                }
                if let Some(earlier) = held.take()
                    && inbox.deliver(earlier).await.is_err()
                {
                    break;
                }
            }
            Outgoing::Drained => {
                if let Some(earlier) = held.take() {
                    let _ = inbox.deliver(earlier).await;
                }
                if bug == Some(Bug::NeverEnds) {
                    // Keeps the peer's inbox, so its receiver never ends.
                    std::future::pending::<()>().await;
                }
                // The peer sees our end; its own queued frames still go.
                to.close();
                break;
            }
            Outgoing::Dead => break,
        }
    }
    if from.phase() == LinkPhase::Dead || to.phase() == LinkPhase::Dead {
        from.fail();
        to.fail();
    }
    // Dropping `inbox` ends the peer's receiver.
}

/// Byte streams over `tokio::io::duplex`, framed by `stream_link`.
#[derive(Debug, Clone, Default)]
struct DuplexOverlay {
    names: Arc<Names>,
}

impl Overlay for DuplexOverlay {
    fn listen(&self, me: &NodeId) -> BoxFuture<'_, Result<Listener, OverlayError>> {
        let result = self.names.listen(me);
        Box::pin(async move { result })
    }

    fn dial(&self, me: &NodeId, peer: &NodeId) -> BoxFuture<'_, Result<Link, OverlayError>> {
        let result = self.names.handle(peer).and_then(|handle| {
            let (x, y) = tokio::io::duplex(64 * 1024);
            let ours = stream_link(x, config(), peer.to_string(), LinkSource::Unknown);
            let theirs = stream_link(y, config(), me.to_string(), LinkSource::Node(me.to_string()));
            handle.offer(theirs).map_err(|_| OverlayError::Refused(peer.to_string()))?;
            Ok(ours)
        });
        Box::pin(async move { result })
    }

    fn max_frame_bytes(&self) -> usize {
        MAX_FRAME
    }
}

impl OverlayHarness for DuplexOverlay {
    fn overlay(&self) -> &dyn Overlay {
        self
    }
}

#[tokio::test]
async fn a_frame_level_overlay_written_outside_the_crate_conforms() {
    conformance::run_all(&ChannelOverlay::default()).await.expect("ChannelOverlay conforms");
}

#[tokio::test]
async fn a_byte_stream_overlay_written_outside_the_crate_conforms() {
    conformance::run_all(&DuplexOverlay::default()).await.expect("DuplexOverlay conforms");
}

#[tokio::test(start_paused = true)]
async fn the_suite_fails_overlays_with_bugs() {
    let reorders = ChannelOverlay::with_bug(Bug::Reorders);
    let err = conformance::frames_arrive_in_order_and_intact(&reorders).await.expect_err("reordering is caught");
    assert_eq!(err.check, "frames_arrive_in_order_and_intact");

    let unbounded = ChannelOverlay::with_bug(Bug::Unbounded);
    let err = conformance::a_slow_receiver_pushes_back(&unbounded).await.expect_err("unbounded buffering is caught");
    assert_eq!(err.check, "a_slow_receiver_pushes_back");

    let never_ends = ChannelOverlay::with_bug(Bug::NeverEnds);
    let err = conformance::close_delivers_what_was_accepted_then_ends(&never_ends)
        .await
        .expect_err("a close the peer never sees is caught");
    assert_eq!(err.check, "close_delivers_what_was_accepted_then_ends");
}

/// Answers asks with its node's name and the argument doubled.
#[derive(Debug)]
pub struct Doubler {
    node: String,
}

#[actor(remote)]
impl Doubler {
    /// The node this activation runs on, and `n * 2`.
    #[msg]
    fn double(&mut self, n: u64) -> (String, u64) {
        (self.node.clone(), n * 2)
    }
}

#[tokio::test]
async fn two_nodes_run_a_remote_ask_over_an_overlay_written_outside_the_crate() {
    const REGISTRY: &str = "doublers";
    let overlay = ChannelOverlay::default();
    let store = Arc::new(MemoryLeaseStore::new());
    let start = |name: &str| {
        ClusterNode::start(NodeId::new(name), store.clone(), ClusterOverlay::new(overlay.clone()), pinned_cfg())
    };
    let a = start("a").await.expect("a starts");
    let b = start("b").await.expect("b starts");
    connected(&a, &b).await;
    // b registers first and takes every shard; a's asks then cross the overlay.
    let _on_b = b.keyed(REGISTRY, KeyedConfig::new(4), |_: &str| Doubler { node: "b".into() }).expect("b hosts");
    owns_all(&b, REGISTRY, 4).await;
    let on_a = a.keyed(REGISTRY, KeyedConfig::new(4), |_: &str| Doubler { node: "a".into() }).expect("a hosts");
    for n in 0..20u64 {
        let reply = on_a.get(format!("key-{n}")).double(n).await.expect("remote ask");
        assert_eq!(reply, ("b".to_string(), n * 2));
    }
    a.shutdown().await;
    b.shutdown().await;
}
