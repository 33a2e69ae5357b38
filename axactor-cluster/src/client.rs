//! The client side of routing, one [`Route`] per registry on a node: how a
//! request of this node reaches the key's owner (key → shard → owner →
//! delivery, with retries). The node-wide state it uses (requests in
//! flight, the owner cache, monitors held on remote activations) has its
//! owners in `node/` (`in_flight.rs`, `owner_cache.rs`,
//! `remote_monitors.rs`).
//!
//!
//! 1. **Local fast path**: if this node holds the key's shard (and is
//!    before its deadline), the message goes straight into the activation's
//!    mailbox: no serialization, no copy.
//! 2. Otherwise the typed payload is encoded straight into each attempt's
//!    frame (kept typed until the request ends; a frame over the frame limit
//!    is refused at once with `TooLarge`, never sent), and the owner is looked up in
//!    the node's owner cache (entries live one `renew_interval`; refreshed
//!    from the lease store on a miss or after a rejection, and updated by
//!    peers' lease notices). The frame carries the registry, shard and
//!    epoch; the owner executes it only under exactly that epoch.
//! 3. Only **definite** failures are retried (not owner, stale epoch, no
//!    connection to the owner's session, mailbox full, activation closing),
//!    with capped exponential backoff, until the request's deadline or
//!    [`MAX_ATTEMPTS`]. A timeout or a connection lost after the send is
//!    returned as is: the request may have run. `Overloaded` (this node's
//!    requests in flight, or the owner's limit) is returned at once too:
//!    retries would multiply a flood and turn its refusals into timeouts.
//!    (An unacknowledged tell still waits for room in a full connection
//!    queue by retrying.)
//!
//! Tracing: every request that leaves the local fast path runs in one
//! DEBUG span `request` with `kind` (`ask`, `tell_ack`, `tell`),
//! `registry`, `key`, `shard`, and, as it goes, `attempt` (1 for the first
//! try), `epoch` and `peer` (the owner session the last attempt went to)
//! and `outcome` (`ok` or the error in snake case: `timeout`, `not_owner`,
//! ...). Retries are TRACE events inside it. Without a subscriber that
//! enables it, the span is a level check and the future runs bare. The
//! local fast path makes no span.

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::time::Duration;

use axactor::Backoff;
use bytes::Bytes;
use parking_lot::Mutex;
use serde::Serialize;
use serde::de::DeserializeOwned;
use tokio::sync::mpsc;
use tokio::time::Instant;
use tracing::{Instrument, Span};

use crate::env::NodeEvent;
use crate::error::RemoteError;
use crate::host::{Host, Local, Tried};
use crate::hosted::{AskOf, HostedActor, HostedRegistry, PendingOf, ReplyOf, TellOf};
use crate::id::SessionId;
use crate::lease::Epoch;
use crate::node::in_flight::{Lost, PendingGuard, Response};
use crate::node::outbound::{OutKind, Outbound};
use crate::node::queues::{PeerLink, PeerQueues};
use crate::node::shared::Shared;
use crate::node::tell_batch::TellTarget;
use crate::node::write_path::Direct;
use crate::route_hint::RouteHint;
use crate::shard::{lease_name, shard_of};
use crate::wire::hello::TELL_BATCH_VERSION;
use crate::wire::{CodecError, DataOut, OutFrame, OutPayload, Raw, Rejection, Typed};

/// The `tracing` target of requests' spans and events: the one operators
/// filter on (docs/operations.md, "Spans"), whatever this file is named.
const TARGET: &str = "axactor_cluster::route";

/// Attempts per request before the last definite error is returned.
pub const MAX_ATTEMPTS: u32 = 16;
/// First retry delay; doubles per attempt up to [`MAX_RETRY_DELAY`].
pub const MIN_RETRY_DELAY: Duration = Duration::from_millis(5);
/// Cap of the retry delay.
pub const MAX_RETRY_DELAY: Duration = Duration::from_millis(250);

/// The routing state of one registry on one node.
pub(crate) struct Route<A: HostedActor> {
    pub(crate) node: Arc<Shared>,
    pub(crate) host: Arc<Host<A>>,
    shards: u32,
}

impl<A: HostedActor> std::fmt::Debug for Route<A> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Route").field("registry", self.host.registry()).finish_non_exhaustive()
    }
}

/// How an attempt finds the shard's owner.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Lookup {
    /// The owner cache, as of this instant (the request's start).
    Cached(Instant),
    /// The lease store (a retry after a definite failure).
    Fresh,
}

/// The key a request is for, its shard, and the requesting handle's hint.
#[derive(Clone, Copy)]
struct Target<'a> {
    key: &'a Arc<str>,
    shard: u32,
    /// The requesting handle's route hint (`route_hint.rs`).
    hint: &'a RouteHint,
}

/// What one remote attempt asks for, with the request's payload.
enum Req<'p, A: HostedActor> {
    Ask(&'p Held<AskOf<A>>),
    TellAck(&'p Held<TellOf<A>>),
}

impl<A: HostedActor> Clone for Req<'_, A> {
    fn clone(&self) -> Self {
        *self
    }
}

impl<A: HostedActor> Copy for Req<'_, A> {}

/// What an attempt got: a remote reply's payload, a local ask's reply, or
/// a local tell's acceptance.
enum Answer<R> {
    Bytes(Bytes),
    Reply(R),
    Done,
}

/// A request's payload, kept typed until the request ends: every remote
/// attempt encodes it straight into its frame. Only a retry that delivers
/// it in process takes the value, keeping its encoding for the attempts
/// that may follow (rare: the shard moved here during the request).
struct Held<T>(Mutex<HeldState<T>>);

enum HeldState<T> {
    Value(T),
    Encoded(Vec<u8>),
}

/// The payload as an attempt's frame takes it (see [`Held`]).
enum HeldPayload<'a, T> {
    Value(Typed<'a, T>),
    Encoded(Raw<'a>),
}

impl<T: Serialize> OutPayload for HeldPayload<'_, T> {
    fn encoded_len(&self) -> Result<usize, CodecError> {
        match self {
            HeldPayload::Value(v) => v.encoded_len(),
            HeldPayload::Encoded(b) => b.encoded_len(),
        }
    }

    fn append_to(&self, out: &mut bytes::BytesMut) -> Result<(), CodecError> {
        match self {
            HeldPayload::Value(v) => v.append_to(out),
            HeldPayload::Encoded(b) => b.append_to(out),
        }
    }
}

impl<T: Serialize + DeserializeOwned> Held<T> {
    fn new(value: T) -> Held<T> {
        Held(Mutex::new(HeldState::Value(value)))
    }

    /// `f` on the payload (the lock is held for `f` only: no await inside).
    fn with<R>(&self, f: impl FnOnce(HeldPayload<'_, T>) -> R) -> R {
        let state = self.0.lock();
        match &*state {
            HeldState::Value(v) => f(HeldPayload::Value(Typed(v))),
            HeldState::Encoded(b) => f(HeldPayload::Encoded(Raw(b))),
        }
    }

    /// The value, for delivery in process; its encoding stays for later
    /// attempts (an activation that refuses the value drops it).
    fn take(&self) -> Result<T, RemoteError> {
        let mut state = self.0.lock();
        match &*state {
            HeldState::Value(v) => {
                let encoded = encode_payload(v)?;
                match std::mem::replace(&mut *state, HeldState::Encoded(encoded)) {
                    HeldState::Value(v) => Ok(v),
                    // Matched as a value just above, under the same lock.
                    HeldState::Encoded(_) => Err(RemoteError::Codec),
                }
            }
            HeldState::Encoded(b) => postcard::from_bytes(b).map_err(|_| RemoteError::Codec),
        }
    }

    /// The value handed back by a delivery in process that did not take it.
    fn put_back(&self, value: T) {
        *self.0.lock() = HeldState::Value(value);
    }
}

fn map_rejection(r: &Rejection) -> RemoteError {
    match r {
        Rejection::NotOwner { .. } => RemoteError::NotOwner,
        Rejection::StaleEpoch { .. } => RemoteError::StaleEpoch,
        Rejection::UnknownSession => RemoteError::UnknownSession,
        Rejection::MailboxFull => RemoteError::MailboxFull,
        Rejection::ActorClosed => RemoteError::ActorClosed,
        Rejection::Unauthorized => RemoteError::Unauthorized,
        Rejection::BadPayload => RemoteError::Codec,
        Rejection::Overloaded => RemoteError::Overloaded,
        Rejection::WrongShard { .. } => RemoteError::ShardCountMismatch,
    }
}

impl<A: HostedActor> Req<'_, A> {
    /// The `kind` field of the request span.
    fn name(&self) -> &'static str {
        match self {
            Req::Ask(_) => "ask",
            Req::TellAck(_) => "tell_ack",
        }
    }
}

/// Awaits the future `make` returns inside `span`, or bare when no
/// subscriber wants the span (so a request without a tracing subscriber
/// pays nothing per poll). A macro, not an `async fn`: a function would be
/// one more future around the request's (about a kilobyte), moved once
/// more when awaited; the two branches here live in the caller's own.
macro_rules! in_span {
    ($span:expr, $make:expr) => {{
        let (span, make) = ($span, $make);
        if span.is_disabled() { make().await } else { make().instrument(span.clone()).await }
    }};
}

/// What an attempt's wait for its response ended with (`answered`: the
/// response, or the deadline first); the in-flight entry is gone either way.
fn response_of(
    guard: PendingGuard<'_>,
    answered: Result<Result<Response, Lost>, crate::deadline::Elapsed>,
) -> Result<Bytes, RemoteError> {
    match &answered {
        // Not answered in time: the entry goes now.
        Err(_) => guard.forget(),
        // Answered or failed with its connection: the entry is gone.
        Ok(_) => guard.disarm(),
    }
    match answered {
        Err(_) => Err(RemoteError::Timeout),
        Ok(Err(_)) => Err(RemoteError::ConnectionLost),
        Ok(Ok(Response::Reply(bytes))) => Ok(bytes),
        Ok(Ok(Response::Ack)) => Ok(Bytes::new()),
        Ok(Ok(Response::Canceled)) => Err(RemoteError::Canceled),
        Ok(Ok(Response::Rejected(r))) => Err(map_rejection(&r)),
    }
}

/// Notes the owner an attempt was sent to.
fn record_owner(span: &Span, holder: &SessionId, epoch: Epoch) {
    if !span.is_disabled() {
        span.record("peer", tracing::field::display(holder));
        span.record("epoch", epoch.0);
    }
}

/// The `outcome` field of a request span: `ok`, or the error's label.
fn outcome_label<T>(result: &Result<T, RemoteError>) -> &'static str {
    result.as_ref().map_or_else(RemoteError::label, |_| "ok")
}

/// Sends `out` on a connection: written from this task if the connection's
/// write path is free (`node/write_path.rs`), else queued for its writer,
/// waiting for room until `deadline` (without a timer while the queue has
/// room, the usual case). An error means it was not sent: `UnknownSession`
/// when the connection ended, `Overloaded` when no room came in time.
///
/// Not an `async fn`: the usual cases complete here, and a caller awaiting
/// a future of its own would have it in its state and move it once per
/// request; only a full queue returns the (boxed) wait for room.
fn queue(link: &PeerQueues, out: Outbound, deadline: Instant) -> Queued<'_> {
    let out = match link.shared.try_direct(out) {
        Direct::Sent => return Queued::Done(Ok(())),
        Direct::Lost => return Queued::Done(Err(RemoteError::UnknownSession)),
        Direct::Queue(out) => out,
    };
    match link.shared.try_queue(&link.data, out) {
        Ok(()) => Queued::Done(Ok(())),
        Err(mpsc::error::TrySendError::Closed(_)) => Queued::Done(Err(RemoteError::UnknownSession)),
        Err(mpsc::error::TrySendError::Full(out)) => Queued::Wait(Box::pin(async move {
            match tokio::time::timeout_at(deadline, link.shared.queue(&link.data, out)).await {
                Ok(Ok(())) => Ok(()),
                Ok(Err(_)) => Err(RemoteError::UnknownSession),
                Err(_) => Err(RemoteError::Overloaded),
            }
        })),
    }
}

/// What [`queue`] did: sent or queued (or failed to), or the wait for room.
enum Queued<'a> {
    Done(Result<(), RemoteError>),
    Wait(Pin<Box<dyn Future<Output = Result<(), RemoteError>> + Send + 'a>>),
}

/// [`queue`], awaited only when it has to wait.
macro_rules! queue {
    ($link:expr, $out:expr, $deadline:expr) => {
        match queue($link, $out, $deadline) {
            Queued::Done(r) => r,
            Queued::Wait(wait) => wait.await,
        }
    };
}

/// The shard's owner and its connection for one attempt of `$route`:
/// [`Route::cached_link`] when it knows them, else the lease store's answer
/// ([`Route::looked_up_link`], boxed: a miss is rare, a first request, a
/// retry or a moved shard, and its future would grow every request's).
macro_rules! route {
    ($route:expr, $shard:expr, $lookup:expr, $hint:expr) => {
        match $route.cached_link($shard, $lookup, $hint) {
            Some(route) => Ok(route),
            None => Box::pin($route.looked_up_link($shard, $lookup)).await,
        }
    };
}

/// `postcard(value)` in a buffer of exactly its size (one allocation).
fn encode_payload<T: Serialize>(value: &T) -> Result<Vec<u8>, RemoteError> {
    let size = postcard::experimental::serialized_size(value).map_err(|_| RemoteError::Codec)?;
    postcard::to_extend(value, Vec::with_capacity(size)).map_err(|_| RemoteError::Codec)
}

/// The pause before retry number `attempt` (0-based): the workspace's one
/// exponential [`Backoff`], un-jittered, from [`MIN_RETRY_DELAY`] to
/// [`MAX_RETRY_DELAY`].
fn retry_delay(attempt: u32) -> Duration {
    const RETRY: Backoff = Backoff::new(MIN_RETRY_DELAY, MAX_RETRY_DELAY);
    RETRY.base(attempt)
}

impl<A: HostedActor> Route<A> {
    pub(crate) fn new(node: Arc<Shared>, host: Arc<Host<A>>) -> Route<A> {
        let shards = HostedRegistry::shard_count(&*host);
        Route { node, host, shards }
    }

    pub(crate) fn registry(&self) -> &str {
        self.host.registry()
    }

    pub(crate) fn shard_of(&self, key: &str) -> u32 {
        shard_of(key, self.shards)
    }

    fn check_running(&self) -> Result<(), RemoteError> {
        if self.node.is_stopping() { Err(RemoteError::ShutDown) } else { Ok(()) }
    }

    pub(crate) async fn tell(
        &self,
        key: &Arc<str>,
        shard: u32,
        tell: TellOf<A>,
        wait: bool,
        hint: &RouteHint,
    ) -> Result<(), RemoteError> {
        self.check_running()?;
        // The handle has spent the task's cooperative budget for this tell
        // (`tell_budget.rs`): a loop of tells, which wait for nothing, yields.
        // The clock is read only where it is needed: by the local path once
        // it has found the shard here, and by the remote path after the fast
        // path (which reads the cheaper fence clock) did not take the tell.
        let tell = match self.host.try_local_tell(Instant::now, shard, key, tell) {
            Tried::Sent(()) => return Ok(()),
            Tried::NotHere(tell) => tell,
            Tried::Rejected(r) => return Err(map_rejection(&r)),
            Tried::Refused(first, ()) => {
                let wait = wait.then(|| Instant::now() + self.node.cfg.request_timeout);
                return self.host.finish_refused(shard, key, first, wait).await.map_err(|r| map_rejection(&r));
            }
        };
        if !wait && self.joined_batch(key, shard, &tell, hint)? {
            return Ok(());
        }
        let started = Instant::now();
        let deadline = started + self.node.cfg.request_timeout;
        let tell = Held::new(tell);
        if wait {
            self.request(Target { key, shard, hint }, Req::TellAck(&tell), started, deadline).await.map(|_| ())
        } else {
            self.send_unacked(Target { key, shard, hint }, &tell, started, deadline).await
        }
    }

    /// The fast path of a plain tell: if this handle's route hint names the
    /// owner's connection (as the first attempt would use it) and that
    /// connection is behind, the tell joins the batch at the tail of its
    /// writer's queue (`node/tell_batch.rs`) without an attempt of its own.
    /// `false`: the tell takes the usual path. Not taken while the
    /// requests' debug spans are on, so that every tell still gets one.
    fn joined_batch(&self, key: &str, shard: u32, tell: &TellOf<A>, hint: &RouteHint) -> Result<bool, RemoteError> {
        if tracing::enabled!(target: TARGET, tracing::Level::DEBUG) {
            return Ok(false);
        }
        let versions = (self.node.owners.version(), self.node.peers.version());
        let joined = hint.with_route(versions, &self.node.coarse, |link, _, epoch| {
            if link.version < TELL_BATCH_VERSION {
                return Ok(false);
            }
            let target = TellTarget { registry: self.registry(), shard, epoch: epoch.0, key };
            link.shared.try_batch(&link.data, target, &Typed(tell), self.node.max_envelope())
        });
        joined.unwrap_or(Ok(false)).map_err(|_| RemoteError::Codec)
    }

    pub(crate) async fn ask(
        &self,
        key: &Arc<str>,
        shard: u32,
        ask: AskOf<A>,
        timeout: Option<Duration>,
        hint: &RouteHint,
    ) -> Result<ReplyOf<A>, RemoteError> {
        self.check_running()?;
        let started = Instant::now();
        // A caller's timeout beyond a day is a day: `Instant + Duration::MAX` would panic.
        let deadline = started + timeout.unwrap_or(self.node.cfg.request_timeout).min(crate::config::MAX_DURATION);
        // The local fast path in this one future: no nested futures to poll
        // through for an activation here with room, the common case.
        let pending = match self.host.try_local_ask(started, shard, key, ask) {
            Tried::Sent(pending) => pending,
            Tried::NotHere(ask) => {
                // Sent to the shard's owner, retried (re-resolving the
                // owner) while the answer says it may be; awaited here, not
                // in a future of its own, which would be moved once more.
                let ask = Held::new(ask);
                return match self.request(Target { key, shard, hint }, Req::Ask(&ask), started, deadline).await? {
                    Answer::Bytes(bytes) => postcard::from_bytes(&bytes).map_err(|_| RemoteError::Codec),
                    Answer::Reply(reply) => Ok(reply),
                    // Only a local tell is `Done`.
                    Answer::Done => Err(RemoteError::Codec),
                };
            }
            Tried::Rejected(r) => return Err(map_rejection(&r)),
            Tried::Refused(first, pending) => {
                self.host.finish_refused(shard, key, first, Some(deadline)).await.map_err(|r| map_rejection(&r))?;
                pending
            }
        };
        self.await_local(Ok(pending), deadline).await
    }

    /// The reply of a local ask, until `deadline`: the node's deadline
    /// table, not a tokio timer per ask (see `deadline.rs`). Not an `async
    /// fn`, so awaiting it adds no future of its own around the table's.
    fn await_local(
        &self,
        r: Result<PendingOf<A>, Rejection>,
        deadline: Instant,
    ) -> impl std::future::Future<Output = Result<ReplyOf<A>, RemoteError>> + '_ {
        let mut bounded = r.map(|pending| self.node.deadlines.bound(deadline, pending));
        std::future::poll_fn(move |cx| {
            let bounded = match &mut bounded {
                Ok(b) => b,
                Err(r) => return std::task::Poll::Ready(Err(map_rejection(r))),
            };
            std::future::Future::poll(std::pin::Pin::new(bounded), cx).map(|r| match r {
                Ok(Some(reply)) => Ok(reply),
                Ok(None) => Err(RemoteError::Canceled),
                Err(_) => Err(RemoteError::Timeout),
            })
        })
    }

    /// The shard's owner: from the cache, or the store when `Fresh` or missing.
    async fn owner(&self, shard: u32, lookup: Lookup) -> Result<(SessionId, Epoch), RemoteError> {
        let registry = self.host.registry();
        if let Lookup::Cached(now) = lookup
            && let Some(hit) = self.node.owners.get(registry, shard, now)
        {
            return Ok(hit);
        }
        let name = lease_name(registry, self.shards, shard);
        let looked_up = tokio::time::timeout(self.node.cfg.lease_store_timeout, self.node.store.get(&name)).await;
        match looked_up {
            Ok(Ok(Some(lease))) => {
                self.node.cache_owner(registry, shard, lease.holder.clone(), lease.epoch);
                Ok((lease.holder, lease.epoch))
            }
            Ok(Ok(None)) => {
                self.node.owners.forget(registry, shard);
                // Nobody holds our count's shard because the store holds the
                // registry under another count: say so.
                if self.host.count_conflict() {
                    return Err(RemoteError::ShardCountMismatch);
                }
                Err(RemoteError::NoOwner)
            }
            Ok(Err(e)) => {
                tracing::debug!(target: TARGET, error = %e, "owner lookup failed");
                Err(RemoteError::NoOwner)
            }
            Err(_) => Err(RemoteError::NoOwner),
        }
    }

    /// The shard's owner and the connection to its session, if known
    /// without waiting: from `hint` while it is current (`route_hint.rs`),
    /// else from the node's owner cache (a hit then refills `hint`). Not for
    /// a `Fresh` lookup. Not a future: the usual request finds its route
    /// here, and [`Route::looked_up_link`] is awaited (boxed) only when not.
    fn cached_link(&self, shard: u32, lookup: Lookup, hint: &RouteHint) -> Option<(PeerLink, SessionId, Epoch)> {
        let Lookup::Cached(now) = lookup else { return None };
        // Read before the lookups below: a change after this read makes
        // the hint stored from them miss.
        let versions = (self.node.owners.version(), self.node.peers.version());
        if let Some(route) = hint.get(versions, &self.node.coarse) {
            return Some(route);
        }
        let (holder, epoch, until) = self.node.owners.get_until(self.host.registry(), shard, now)?;
        if holder == self.node.session {
            return None;
        }
        let link = self.node.peers.connection(&holder)?;
        hint.put(versions, until, &self.node.coarse, &link, &holder, epoch);
        Some((link, holder, epoch))
    }

    /// The shard's owner (the owner cache, else the lease store) and the
    /// connection to its session.
    async fn looked_up_link(&self, shard: u32, lookup: Lookup) -> Result<(PeerLink, SessionId, Epoch), RemoteError> {
        let (holder, epoch) = self.owner(shard, lookup).await?;
        if holder == self.node.session {
            // The store says ours, but this node does not (or no longer) use it.
            return Err(RemoteError::NoOwner);
        }
        let Some(link) = self.node.peers.connection(&holder) else {
            self.node.peers.kick_dials();
            return Err(RemoteError::UnknownSession);
        };
        Ok((link, holder, epoch))
    }

    /// Runs `attempt(lookup)` until a result, a failure `retry` refuses, the
    /// deadline or [`MAX_ATTEMPTS`]; the first attempt may use the owner
    /// cache (as of `started`), every retry re-reads the owner.
    /// Each attempt's number goes to `span`'s `attempt` field (1 first).
    async fn with_retries<T, F, Fut>(
        &self,
        key: &str,
        started: Instant,
        deadline: Instant,
        span: &Span,
        retry: impl Fn(&RemoteError) -> bool,
        mut attempt: F,
    ) -> Result<T, RemoteError>
    where
        F: FnMut(Lookup) -> Fut,
        Fut: std::future::Future<Output = Result<T, RemoteError>>,
    {
        let mut lookup = Lookup::Cached(started);
        let mut n = 0;
        loop {
            span.record("attempt", n + 1);
            let err = match attempt(lookup).await {
                Ok(v) => return Ok(v),
                Err(e) if !retry(&e) => return Err(e),
                Err(e) => e,
            };
            n += 1;
            lookup = Lookup::Fresh;
            let next = Instant::now() + retry_delay(n);
            if n >= MAX_ATTEMPTS || next >= deadline || self.node.is_stopping() {
                return Err(err);
            }
            tracing::trace!(target: TARGET, registry = %self.registry(), key, error = %err, attempt = n, "retrying");
            self.node.emit(|| NodeEvent::Retried {
                registry: self.registry().to_string(),
                key: key.to_string(),
                error: err.clone(),
            });
            tokio::time::sleep_until(next).await;
        }
    }

    /// The span of one remote request (see the module docs).
    fn request_span(&self, kind: &'static str, key: &Arc<str>, shard: u32) -> Span {
        tracing::debug_span!(
            target: TARGET,
            "request",
            kind,
            registry = self.registry(),
            key = &**key,
            shard = shard,
            epoch = tracing::field::Empty,
            peer = tracing::field::Empty,
            attempt = tracing::field::Empty,
            outcome = tracing::field::Empty,
        )
    }

    async fn request(
        &self,
        to: Target<'_>,
        req: Req<'_, A>,
        started: Instant,
        deadline: Instant,
    ) -> Result<Answer<ReplyOf<A>>, RemoteError> {
        let Target { key, shard, .. } = to;
        let span = self.request_span(req.name(), key, shard);
        let span_ref = &span;
        // `Overloaded` is not retried here: see the module docs.
        let retry =
            |e: &RemoteError| e.is_retryable_request() || (*e == RemoteError::Timeout && mutant!(RetryAfterTimeout));
        let attempts = || {
            self.with_retries(key, started, deadline, span_ref, retry, move |lookup| {
                self.attempt(to, req, deadline, lookup, span_ref)
            })
        };
        let result = in_span!(&span, attempts);
        span.record("outcome", outcome_label(&result));
        result
    }

    async fn attempt(
        &self,
        to: Target<'_>,
        req: Req<'_, A>,
        deadline: Instant,
        lookup: Lookup,
        span: &Span,
    ) -> Result<Answer<ReplyOf<A>>, RemoteError> {
        let Target { key, shard, hint } = to;
        // The shard may have moved here since the first try (which the
        // caller's local path has just checked).
        if lookup == Lookup::Fresh && self.host.usable(shard) {
            span.record("peer", tracing::field::display(&self.node.session));
            // Boxed: a retry that finds the shard held here is rare, and its
            // future would otherwise grow every request's by its size.
            return Box::pin(self.local_retry(key, shard, req, deadline)).await;
        }
        let (link, holder, epoch) = route!(self, shard, lookup, hint)?;
        record_owner(span, &holder, epoch);
        // Dropped with this future (the caller gave up), the guard frees
        // the entry.
        let guard = self.node.in_flight.register(link.conn, &self.node.counters)?;
        let request_id = guard.id();
        let (registry, shard, epoch, key) = (self.registry(), shard, epoch.0, &**key);
        let encoded = match req {
            Req::Ask(held) => {
                held.with(|payload| self.encode(DataOut::Ask { request_id, registry, shard, epoch, key, payload }))
            }
            Req::TellAck(held) => held.with(|payload| {
                self.encode(DataOut::Tell { registry, shard, epoch, key, payload, ack_id: Some(request_id) })
            }),
        };
        let frame = match encoded {
            Ok(frame) => frame,
            Err(e) => {
                guard.forget();
                return Err(e);
            }
        };
        let out = Outbound::new(frame, OutKind::Request(request_id));
        let queued = queue!(&link, out, deadline);
        if let Err(e) = queued {
            // Not queued (the connection ended, or no room in time): not sent.
            guard.forget();
            return Err(e);
        }
        let deadline = if mutant!(RetryAfterTimeout) {
            // Gives up on the attempt early, to try again (a bug: it may run).
            let now = Instant::now();
            now + deadline.saturating_duration_since(now) / 3
        } else {
            deadline
        };
        // The node's deadline table, not a tokio timer per request
        // (`deadline.rs`); awaited here, not in a future of its own, so the
        // request's future is not moved once more.
        let answered = self.node.deadlines.bound(deadline, guard.response()).await;
        response_of(guard, answered).map(Answer::Bytes)
    }

    /// The frame of `msg`: `TooLarge` beyond the frame limit (the
    /// connection's writer would drop it; refused here instead, never sent).
    fn encode<P: OutPayload>(&self, msg: DataOut<'_, P>) -> Result<OutFrame, RemoteError> {
        let frame = OutFrame::data(msg).map_err(|_| RemoteError::Codec)?;
        if frame.envelope_bytes().len() > self.node.max_envelope() {
            return Err(RemoteError::TooLarge);
        }
        Ok(frame)
    }

    /// A retry that found the shard owned here: delivers the payload in
    /// process (a local ask's reply stays typed).
    async fn local_retry(
        &self,
        key: &Arc<str>,
        shard: u32,
        req: Req<'_, A>,
        deadline: Instant,
    ) -> Result<Answer<ReplyOf<A>>, RemoteError> {
        match req {
            Req::TellAck(held) => match self.host.local_tell(shard, key, held.take()?, Some(deadline)).await {
                Local::Done(r) => r.map(|()| Answer::Done).map_err(|r| map_rejection(&r)),
                Local::NotHere(tell) => {
                    held.put_back(tell);
                    Err(RemoteError::NotOwner)
                }
            },
            Req::Ask(held) => match self.host.local_ask(shard, key, held.take()?, deadline).await {
                Local::Done(r) => self.await_local(r, deadline).await.map(Answer::Reply),
                Local::NotHere(ask) => {
                    held.put_back(ask);
                    Err(RemoteError::NotOwner)
                }
            },
        }
    }

    /// A tell without acknowledgement: resolved and queued on the owner's
    /// connection; retried only while it could not be queued at all.
    async fn send_unacked(
        &self,
        to: Target<'_>,
        payload: &Held<TellOf<A>>,
        started: Instant,
        deadline: Instant,
    ) -> Result<(), RemoteError> {
        let Target { key, shard, .. } = to;
        let span = self.request_span("tell", key, shard);
        let span_ref = &span;
        let attempts = || {
            self.with_retries(key, started, deadline, span_ref, RemoteError::is_retryable, move |lookup| {
                self.try_unacked(to, payload, lookup, deadline, span_ref)
            })
        };
        let result = in_span!(&span, attempts);
        span.record("outcome", outcome_label(&result));
        result
    }

    /// One attempt of an unacknowledged tell. A full send queue is waited
    /// on (until `deadline`), as for a request: a stream of tells from one
    /// sender is paced by the connection, not by retry sleeps.
    async fn try_unacked(
        &self,
        to: Target<'_>,
        held: &Held<TellOf<A>>,
        lookup: Lookup,
        deadline: Instant,
        span: &Span,
    ) -> Result<(), RemoteError> {
        let Target { key, shard, hint } = to;
        if lookup == Lookup::Fresh && self.host.usable(shard) {
            span.record("peer", tracing::field::display(&self.node.session));
            // Boxed, as in `attempt`: rare, and its future is large.
            return match Box::pin(self.host.local_tell(shard, key, held.take()?, None)).await {
                Local::Done(r) => r.map_err(|r| map_rejection(&r)),
                Local::NotHere(tell) => {
                    held.put_back(tell);
                    Err(RemoteError::NotOwner)
                }
            };
        }
        let (link, holder, epoch) = route!(self, shard, lookup, hint)?;
        record_owner(span, &holder, epoch);
        let (registry, epoch) = (self.registry(), epoch.0);
        if link.version >= TELL_BATCH_VERSION {
            let target = TellTarget { registry, shard, epoch, key };
            let max = self.node.max_envelope();
            let batched = held.with(|payload| {
                link.shared.try_batch(&link.data, target, &payload, max).map_err(|_| RemoteError::Codec)
            })?;
            if batched {
                return Ok(());
            }
        }
        let frame =
            held.with(|payload| self.encode(DataOut::Tell { registry, shard, epoch, key, payload, ack_id: None }))?;
        queue!(&link, Outbound::new(frame, OutKind::Other), deadline)
    }
}

mod monitor;
#[cfg(test)]
mod tests;
