//! What `#[actor(remote)]` generates code against: the [`RemoteActor`]
//! trait (the actor's wire contract plus the conversions between contract
//! values and local messages) and [`RemoteHandle`], the routing handle every
//! generated `XRemoteRef` wraps. Every `RemoteActor` is a
//! `HostedActor` (the part of the trait hosting uses, in `hosted.rs`), so
//! the host and the client side of routing (`client.rs`) never name this
//! file.
//!
//! A [`RemoteHandle`] names a key of a keyed registry (or a singleton). Each
//! call maps the key to its shard, finds the shard's owner and its epoch, and
//! either delivers the message in process (the key's shard is owned here: no
//! serialization) or sends it over the authenticated session to the owner,
//! which executes it only under exactly that epoch.

use std::fmt;
use std::future::Future;
use std::marker::PhantomData;
use std::sync::Arc;
use std::time::Duration;

use axactor::{Actor, LocalRef, RefContract};
use tokio::sync::mpsc;

use crate::client::Route;
use crate::error::RemoteError;
use crate::hosted::{DownEvent, HostedActor};
use crate::route_hint::RouteHint;
use crate::tell_budget::TellBudget;

/// The tell enum of `A`'s contract.
pub type TellOf<A> = <<A as RemoteActor>::Contract as RefContract>::Tell;
/// The ask enum of `A`'s contract.
pub type AskOf<A> = <<A as RemoteActor>::Contract as RefContract>::Ask;
/// The reply enum of `A`'s contract.
pub type ReplyOf<A> = <<A as RemoteActor>::Contract as RefContract>::Reply;

/// An actor that can be hosted by the cluster and addressed from any node.
/// Implemented by `#[actor(remote)]`; not meant to be implemented by hand.
pub trait RemoteActor: Actor {
    /// The generated wire contract (`XContract`).
    type Contract: RefContract;
    /// The generated remote handle (`XRemoteRef`).
    type RemoteRef: Clone + Send + Sync + 'static;
    /// The future of an ask's reply delivered in process, as the
    /// contract's reply enum: a generated enum of one
    /// [`PendingReply`](crate::PendingReply) per ask.
    type Pending: Future<Output = Option<ReplyOf<Self>>> + Send + Unpin + 'static;

    /// Wraps a routing handle into the generated remote ref.
    fn remote_ref(handle: RemoteHandle<Self>) -> Self::RemoteRef;

    /// The local handle's untyped ref (`XRef::as_local_ref`).
    fn local_ref(actor: &Self::Ref) -> LocalRef<Self::Msg>;

    /// Turns a contract tell into the actor's message.
    fn tell_message(tell: TellOf<Self>) -> Self::Msg;

    /// Turns a contract ask into the actor's message and the future of its
    /// reply, already converted into the contract's reply enum.
    fn ask_message(ask: AskOf<Self>) -> (Self::Msg, Self::Pending);
}

impl<A: RemoteActor> HostedActor for A {
    type Contract = <A as RemoteActor>::Contract;
    type Pending = <A as RemoteActor>::Pending;

    #[inline]
    fn local_ref(actor: &Self::Ref) -> LocalRef<Self::Msg> {
        <A as RemoteActor>::local_ref(actor)
    }

    #[inline]
    fn tell_message(tell: TellOf<Self>) -> Self::Msg {
        <A as RemoteActor>::tell_message(tell)
    }

    #[inline]
    fn ask_message(ask: AskOf<Self>) -> (Self::Msg, Self::Pending) {
        <A as RemoteActor>::ask_message(ask)
    }
}

/// The routing handle of one key: what every generated `XRemoteRef` wraps.
/// Cheap to clone.
///
/// A handle remembers where its last request went (the owner's session,
/// epoch and connection) and reuses it while the node's owner cache and
/// peer table are unchanged, so keep a handle for a key you call often
/// rather than calling `get` each time. A clone starts without that memory.
pub struct RemoteHandle<A: RemoteActor> {
    pub(crate) route: Arc<Route<A>>,
    pub(crate) key: Arc<str>,
    pub(crate) shard: u32,
    /// Where this handle's requests went last (`route_hint.rs`); a clone
    /// starts without one.
    hint: RouteHint,
    /// How this handle's tells spend the task's budget (`tell_budget.rs`);
    /// a clone starts afresh.
    budget: TellBudget,
    _actor: PhantomData<fn() -> A>,
}

impl<A: RemoteActor> Clone for RemoteHandle<A> {
    fn clone(&self) -> Self {
        RemoteHandle {
            route: Arc::clone(&self.route),
            key: Arc::clone(&self.key),
            shard: self.shard,
            hint: RouteHint::default(),
            budget: TellBudget::default(),
            _actor: PhantomData,
        }
    }
}

impl<A: RemoteActor> fmt::Debug for RemoteHandle<A> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RemoteHandle")
            .field("registry", &self.route.registry())
            .field("key", &self.key)
            .field("shard", &self.shard)
            .finish()
    }
}

impl<A: RemoteActor> RemoteHandle<A> {
    pub(crate) fn new(route: Arc<Route<A>>, key: Arc<str>) -> Self {
        let shard = route.shard_of(&key);
        RemoteHandle {
            route,
            key,
            shard,
            hint: RouteHint::default(),
            budget: TellBudget::default(),
            _actor: PhantomData,
        }
    }

    /// The key this handle addresses.
    pub fn key(&self) -> &str {
        &self.key
    }

    /// The shard of the key.
    pub fn shard(&self) -> u32 {
        self.shard
    }

    /// Sends a tell without waiting for an acknowledgement (`m`). `Ok` means
    /// it was handed to the owner's mailbox (local owner) or to the
    /// connection to the owner (remote owner); it may still be dropped on
    /// the way, and every such drop is counted by the receiver.
    ///
    /// # Errors
    /// A definite [`RemoteError`] when it could not be sent (no owner,
    /// mailbox or send queue full, shut down).
    ///
    /// # Cancel safety
    /// Dropping the future abandons the request: its in-flight slot is freed
    /// at once (counted as `dropped["request_abandoned"]`); a request
    /// already sent may still run, and its answer is discarded.
    pub async fn tell(&self, tell: TellOf<A>) -> Result<(), RemoteError> {
        // A tell dropped while it yields here was not sent.
        self.budget.spend().await;
        self.route.tell(&self.key, self.shard, tell, false, &self.hint).await
    }

    /// Sends a tell and waits until the owner accepted it into the
    /// activation's mailbox (`m_wait`).
    ///
    /// # Errors
    /// Definite rejections are retried within the request timeout; what
    /// remains is returned. `Timeout`/`ConnectionLost` mean it may have been
    /// enqueued.
    ///
    /// # Cancel safety
    /// Dropping the future abandons the request: its in-flight slot is freed
    /// at once (counted as `dropped["request_abandoned"]`); a request
    /// already sent may still run, and its answer is discarded.
    pub async fn tell_wait(&self, tell: TellOf<A>) -> Result<(), RemoteError> {
        self.budget.spend().await;
        self.route.tell(&self.key, self.shard, tell, true, &self.hint).await
    }

    /// Asks and waits for the reply, at most `timeout` (the node's
    /// `request_timeout` when `None`; a timeout above one day,
    /// [`MAX_DURATION`](crate::config::MAX_DURATION), waits one day).
    ///
    /// # Errors
    /// As [`RemoteHandle::tell_wait`]; plus `Canceled` when the activation
    /// accepted the request but stopped (or panicked) before replying: it may
    /// have run.
    ///
    /// # Cancel safety
    /// Dropping the future abandons the request: its in-flight slot is freed
    /// at once (counted as `dropped["request_abandoned"]`); a request
    /// already sent may still run, and its answer is discarded.
    pub fn ask(
        &self,
        ask: AskOf<A>,
        timeout: Option<Duration>,
    ) -> impl Future<Output = Result<ReplyOf<A>, RemoteError>> + Send + '_ {
        self.route.ask(&self.key, self.shard, ask, timeout, &self.hint)
    }

    /// Watches the key's current activation: the receiver gets exactly one
    /// [`DownEvent`] once that activation can no longer execute. Dropping the
    /// receiver cancels the monitor.
    ///
    /// Returns once the owner has placed the monitor and named the
    /// activation it watches (or has already answered with the event, e.g.
    /// `NoSuchActor`), so a monitor outlives a lost connection: it is placed
    /// again on that same activation over the next connection to the owner
    /// (see `docs/guarantees.md`).
    ///
    /// # Cancel safety
    /// Dropping the future cancels the monitor being placed.
    ///
    /// # Errors
    /// A definite [`RemoteError`] when no owner could be reached;
    /// `Timeout` when the owner did not answer within the request timeout
    /// (the monitor is then cancelled).
    pub async fn monitor(&self) -> Result<mpsc::Receiver<DownEvent>, RemoteError> {
        Ok(self.monitor_watching().await?.0)
    }

    /// [`RemoteHandle::monitor`], also returning the owner's session and
    /// the id it gave the watched activation, if it named one (the
    /// simulation checks a `Down` against exactly that activation).
    pub(crate) async fn monitor_watching(
        &self,
    ) -> Result<(mpsc::Receiver<DownEvent>, Option<(crate::id::SessionId, u64)>), RemoteError> {
        self.route.monitor(&self.key, self.shard).await
    }

    /// The error a generated ref returns when a reply has the wrong variant
    /// for its ask (only a peer breaking the contract can cause it).
    pub fn reply_mismatch() -> RemoteError {
        RemoteError::Codec
    }
}

#[cfg(test)]
mod tests {
    use std::future::Future;
    use std::pin::pin;
    use std::task::{Context, Poll, Waker};

    use axactor::actor;

    use super::*;

    pub(crate) struct Both;

    #[actor(remote)]
    impl Both {
        #[msg]
        fn double(&mut self, x: u32) -> u64 {
            u64::from(x) * 2
        }

        #[msg]
        fn poke(&mut self) {}
    }

    pub(crate) struct TellOnly;

    #[actor(remote)]
    impl TellOnly {
        #[msg]
        fn poke(&mut self) {}
    }

    fn poll_once<F: Future>(f: F) -> Poll<F::Output> {
        pin!(f).poll(&mut Context::from_waker(Waker::noop()))
    }

    #[test]
    fn an_ask_s_pending_reply_maps_the_handler_s_value_and_is_none_when_dropped() {
        let (msg, mut pending) = <Both as RemoteActor>::ask_message(BothAsk::Double { x: 21 });
        assert!(poll_once(&mut pending).is_pending());
        let BothMsg::Double { __reply, .. } = msg else { panic!("the ask's message") };
        __reply.send(42);
        assert!(matches!(poll_once(&mut pending), Poll::Ready(Some(BothReply::Double(42)))));
        let (msg, pending) = <Both as RemoteActor>::ask_message(BothAsk::Double { x: 1 });
        drop(msg);
        assert!(matches!(poll_once(pending), Poll::Ready(None)), "the request dropped unanswered");
    }

    #[test]
    fn an_actor_without_asks_has_an_empty_pending_type() {
        assert_eq!(std::mem::size_of::<<TellOnly as RemoteActor>::Pending>(), 0);
    }
}
