//! What hosting needs to know, below every driver: [`HostedActor`] (what
//! a registry needs of its actor type: the wire contract and the
//! conversions into local messages; every `RemoteActor` is one), the
//! [`HostedRegistry`] trait (grants, revocations, deliveries, monitors:
//! a registry as the node's drivers see it, whatever its actor type), an
//! ask's [`EncodedReply`], [`PendingReply`], [`DownEvent`] and the
//! [`MonitorSink`] a monitor's `Down` goes to. `host.rs` implements
//! [`HostedRegistry`]; the node's owners and drivers hold registries only
//! through it.

use std::future::Future;
use std::pin::Pin;
use std::sync::Weak;
use std::time::Duration;

use axactor::{Actor, ExitReason, LocalRef, RefContract};
use tokio::sync::mpsc;
use tokio::time::Instant;

use crate::counter_reasons::DropReason;
use crate::env::Env;
use crate::lease::Epoch;
use crate::node::table::ConnId as ConnTag;
use crate::overlay::BoxFuture;
use crate::wire::{ControlMsg, DownReason, OutFrame, Rejection};

/// What a registry needs of its actor type. Implemented for every
/// [`RemoteActor`](crate::RemoteActor) (which `#[actor(remote)]`
/// generates), and only through it.
pub(crate) trait HostedActor: Actor {
    /// The actor's wire contract.
    type Contract: RefContract;
    /// The local handle's untyped ref.
    fn local_ref(actor: &Self::Ref) -> LocalRef<Self::Msg>;
    /// A contract tell as the actor's message.
    fn tell_message(tell: TellOf<Self>) -> Self::Msg;
    /// A contract ask as the actor's message and the future of its reply.
    fn ask_message(ask: AskOf<Self>) -> (Self::Msg, PendingReply<ReplyOf<Self>>);
}

/// The tell enum of a hosted actor's contract.
pub(crate) type TellOf<A> = <<A as HostedActor>::Contract as RefContract>::Tell;
/// The ask enum of a hosted actor's contract.
pub(crate) type AskOf<A> = <<A as HostedActor>::Contract as RefContract>::Ask;
/// The reply enum of a hosted actor's contract.
pub(crate) type ReplyOf<A> = <<A as HostedActor>::Contract as RefContract>::Reply;

/// The reply to an ask delivered in process: resolves to `None` when the
/// actor dropped the request without replying (handler panic, stop).
pub type PendingReply<R> = Pin<Box<dyn Future<Output = Option<R>> + Send + 'static>>;

/// A monitored remote activation can no longer execute.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DownEvent {
    /// The registry (or singleton) id.
    pub registry: String,
    /// The key of the activation.
    pub key: String,
    /// Why it is down.
    pub reason: DownReason,
}

/// What a peer's monitor needs of its node once its `Down` cannot be
/// queued at once: where to start the task that waits for room, and where
/// to count a `Down` whose connection has ended.
pub(crate) trait MonitorNode: Send + Sync + std::fmt::Debug {
    /// The node's env (its tasks start there).
    fn env(&self) -> &Env;
    /// Counts a dropped message under `reason`.
    fn dropped(&self, reason: DropReason);
}

/// An ask's reply, encoded as its whole `DataMsg::Reply` frame (ready to
/// seal); `None` if the activation stopped (or panicked) before replying.
pub(crate) type EncodedReply = Pin<Box<dyn Future<Output = Option<OutFrame>> + Send + 'static>>;

/// Where a monitor's `Down` goes.
#[derive(Debug)]
pub(crate) enum MonitorSink {
    /// A monitor taken on this node.
    Local { tx: mpsc::Sender<DownEvent> },
    /// A monitor taken by a peer, answered on its connection's control
    /// queue (the node: to count what cannot be sent).
    Remote { tx: mpsc::Sender<ControlMsg>, request_id: u64, conn: ConnTag, node: Weak<dyn MonitorNode> },
}

impl MonitorSink {
    /// Sends the monitor's one `Down`. A local receiver that was dropped
    /// cancelled the monitor. A remote `Down` that finds its control queue
    /// full waits for room in a task of its own (at most one per monitor
    /// held, so bounded by `max_monitors`); one whose connection has ended
    /// is counted (`down_connection_closed`): the watcher places its monitor
    /// again on a new connection and then learns that the activation stopped.
    pub(crate) fn fire(self, registry: &str, key: &str, reason: DownReason) {
        match self {
            MonitorSink::Local { tx } => {
                let _ = tx.try_send(DownEvent { registry: registry.to_string(), key: key.to_string(), reason });
            }
            MonitorSink::Remote { tx, request_id, node, .. } => {
                match tx.try_send(ControlMsg::Down { request_id, reason }) {
                    Ok(()) => {}
                    Err(mpsc::error::TrySendError::Full(msg)) => {
                        let Some(shared) = node.upgrade() else { return };
                        shared.env().spawn(async move {
                            if tx.send(msg).await.is_err() {
                                count_lost_down(&node);
                            }
                        });
                    }
                    Err(mpsc::error::TrySendError::Closed(_)) => count_lost_down(&node),
                }
            }
        }
    }
}

fn count_lost_down(node: &Weak<dyn MonitorNode>) {
    if let Some(node) = node.upgrade() {
        node.dropped(DropReason::DownConnectionClosed);
        tracing::debug!("a Down found its connection closed; the watcher learns it when it monitors again");
    }
}

/// A registry as the node's drivers see it, whatever the actor type.
pub(crate) trait HostedRegistry: Send + Sync + 'static {
    fn id(&self) -> &str;
    fn shard_count(&self) -> u32;
    /// The shard is ours at `epoch` until `deadline`.
    fn grant(&self, shard: u32, epoch: Epoch, deadline: Instant);
    /// A renewal moved the deadline.
    fn extend(&self, shard: u32, epoch: Epoch, deadline: Instant);
    /// Stops accepting messages for `shard` and stops its activations with
    /// `reason`; resolves once all have stopped (those still running at
    /// `kill_at` are killed).
    fn revoke(&self, shard: u32, reason: ExitReason, kill_at: Instant) -> BoxFuture<'static, ()>;
    /// Stops accepting messages for `shard` and kills its activations at
    /// once (no `on_stop`): the crash test hook.
    fn kill_shard(&self, shard: u32, reason: ExitReason);
    /// A tell from a peer.
    fn deliver_tell(&self, shard: u32, epoch: u64, key: &str, payload: &[u8]) -> Result<(), Rejection>;
    /// An ask from a peer.
    fn deliver_ask(
        &self,
        request_id: u64,
        shard: u32,
        epoch: u64,
        key: &str,
        payload: &[u8],
    ) -> Result<EncodedReply, Rejection>;
    /// Watches the current activation of `key`; returns that activation's id.
    fn monitor(&self, key: &str, sink: MonitorSink) -> Result<u64, (MonitorSink, DownReason)>;
    /// Watches the activation `activation` of `key` again (its watcher's
    /// connection ended); `Stopped` if it has stopped (or never ran here).
    fn remonitor(&self, key: &str, activation: u64, sink: MonitorSink) -> Result<(), (MonitorSink, DownReason)>;
    /// Cancels a peer's monitor.
    fn demonitor(&self, conn: ConnTag, request_id: u64);
    /// Removes every monitor the connection `conn` carried (it ended);
    /// returns how many.
    fn drop_conn_monitors(&self, conn: ConnTag) -> usize;
    /// The owned shards and their epochs.
    fn owned(&self) -> Vec<(u32, Epoch)>;
    /// Passivates activations idle since before `now - idle_timeout`.
    fn passivate(&self, now: Instant);
    /// How long a stopping activation may take before it is killed.
    fn stop_timeout(&self) -> Duration;
    /// (activations, their cap), (monitors held, their cap) on this node.
    fn table_use(&self) -> ((usize, usize), (usize, usize));
    /// The lease store holds the registry under another shard count (that
    /// count), or not (`None`).
    fn set_count_conflict(&self, theirs: Option<u64>);
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;
    use std::sync::atomic::{AtomicUsize, Ordering};

    use super::*;
    use crate::node::table::ConnId;

    #[derive(Debug)]
    struct Node {
        env: Env,
        dropped: AtomicUsize,
    }

    impl MonitorNode for Node {
        fn env(&self) -> &Env {
            &self.env
        }

        fn dropped(&self, reason: DropReason) {
            assert_eq!(reason, DropReason::DownConnectionClosed);
            self.dropped.fetch_add(1, Ordering::Relaxed);
        }
    }

    #[test]
    fn a_local_sink_gets_its_event() {
        let (tx, mut rx) = mpsc::channel(1);
        MonitorSink::Local { tx }.fire("r", "k", DownReason::LeaseLost);
        let event = DownEvent { registry: "r".into(), key: "k".into(), reason: DownReason::LeaseLost };
        assert_eq!(rx.try_recv(), Ok(event));
    }

    #[tokio::test]
    async fn a_remote_down_waits_for_room_and_a_closed_connection_is_counted() {
        let node = Arc::new(Node { env: Env::production(), dropped: AtomicUsize::new(0) });
        let weak = Arc::downgrade(&node);
        let sink = |tx| MonitorSink::Remote { tx, request_id: 9, conn: ConnId(1), node: weak.clone() };
        let (tx, mut rx) = mpsc::channel(1);
        tx.try_send(ControlMsg::Goodbye).expect("fits in this test");
        sink(tx.clone()).fire("r", "k", DownReason::Stopped);
        assert!(matches!(rx.recv().await, Some(ControlMsg::Goodbye)));
        let down = rx.recv().await;
        assert!(matches!(down, Some(ControlMsg::Down { request_id: 9, reason: DownReason::Stopped })));
        drop(rx);
        sink(tx).fire("r", "k", DownReason::Stopped);
        assert_eq!(node.dropped.load(Ordering::Relaxed), 1);
    }
}
