//! A backlog of frames from one peer does not monopolise the receiving
//! node's worker: the connection's reader yields after a bounded number of
//! frames, so the activations it feeds, the lease driver and other readers
//! run in between (#11 item 3).
//!
//! Observable outcome: the receiving node is paused (its tasks held, as a
//! stopped process) while 1,000 unacknowledged tells to one activation
//! pile up on its connection; once it resumes, every tell is executed
//! although the activation's mailbox holds only 256. A reader that handled
//! every frame already received before yielding (up to 8,192 per poll)
//! filled the mailbox and refused the rest as `mailbox_full`.
//! Single-threaded runtime on the paused clock: the schedule is
//! deterministic.
#![allow(missing_docs)]

use std::sync::Arc;
use std::time::Duration;

use axactor::actor;
use axactor_cluster::{ClusterNode, Env, InMemoryOverlay, KeyedConfig, LeaseStore, MemoryLeaseStore, NodeId};
use axactor_tests::cluster::eventually;
use axactor_tests::keyed::{owns_all, pinned_cfg};

const REG: &str = "flood";
const TELLS: u64 = 1_000;
const MAILBOX: usize = 256;

#[derive(Debug)]
pub struct Sink {
    count: u64,
}

#[actor(remote)]
impl Sink {
    #[msg]
    fn hit(&mut self) {
        self.count += 1;
    }
    #[msg]
    fn count(&mut self) -> u64 {
        self.count
    }
}

#[tokio::test(start_paused = true)]
async fn a_backlog_from_one_peer_leaves_room_for_the_activation_it_feeds() {
    let net = InMemoryOverlay::new();
    let store: Arc<dyn LeaseStore> = Arc::new(MemoryLeaseStore::new());
    let env = Env::pausable();
    let b = ClusterNode::start_with_env(NodeId::new("b"), Arc::clone(&store), net.clone(), pinned_cfg(), env.clone())
        .await
        .expect("b starts");
    let cfg = KeyedConfig::new(1).mailbox_capacity(MAILBOX);
    let _kb = b.keyed(REG, cfg.clone(), |_: &str| Sink { count: 0 }).expect("keyed b");
    owns_all(&b, REG, 1).await;
    let a = ClusterNode::start(NodeId::new("a"), Arc::clone(&store), net.clone(), pinned_cfg()).await.expect("a");
    let ka = a.keyed(REG, cfg, |_: &str| Sink { count: 0 }).expect("keyed a");
    eventually(&a, "b is a peer", |s| s.peers.iter().any(|p| p.name.as_str() == "b")).await;
    let target = ka.get("k");
    // The activation exists before the backlog.
    assert_eq!(target.count().await.expect("first ask"), 0);

    env.pause();
    for _ in 0..TELLS {
        target.hit().await.expect("tell sent");
    }
    // Let a's writer move the tells onto b's side of the link (b is held).
    tokio::time::sleep(Duration::from_millis(1)).await;
    env.resume();
    // Asked after the tells on the same connection: answered once every
    // tell has been executed or refused.
    let executed = target.count().await.expect("count");
    let refused = b.inspect().counters.requests_rejected.get("mailbox_full").copied().unwrap_or(0);
    assert_eq!((executed, refused), (TELLS, 0), "tells executed, and refused for a full mailbox");
}
