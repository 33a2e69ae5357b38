//! The node's routing state and the operations on it: requests in flight
//! (bounded by `max_inflight_requests`), the owner cache (one entry per
//! hosted shard at most, each valid for `renew_interval`), monitors held on
//! remote activations (bounded by `max_remote_monitors`), placement
//! candidates, and broadcasts to peers.
//!
//! A request in flight is owned by its caller's future through a
//! [`PendingGuard`]: a caller that gives up (drops the future) frees its
//! slot at once, and a late answer is counted (`unmatched_response`).
//!
//! A remote monitor fires exactly once. While its connection lives, the
//! host's `Down` fires it. When its connection ends, it stays in the table
//! (detached) and a task of its own resolves it: once the lease the target
//! ran under is no longer held at the watched epoch (`NodeDown`: the target
//! can no longer execute), or, as soon as a new connection to the same
//! session is up, by placing it again on exactly the activation it watched
//! (`Remonitor`, protocol version 2), which the host answers with `Down`
//! at once if that activation has stopped meanwhile.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use bytes::Bytes;
use parking_lot::Mutex;
use tokio::sync::{mpsc, oneshot};
use tokio::time::Instant;

use super::shared::Shared;
use super::table::ConnId;
use crate::error::RemoteError;
use crate::host::HostedRegistry;
use crate::id::{NodeId, SessionId};
use crate::lease::Epoch;
use crate::remote::DownEvent;
use crate::wire::hello::MONITOR_IDENTITY_VERSION;
use crate::wire::{ControlMsg, DownReason, OutFrame, Rejection};

/// Gives a monitor its one `DownEvent` (its receiver holds at most that
/// one, so it never finds the channel full; a dropped receiver cancelled
/// the monitor).
fn deliver_down(node: &Shared, tx: mpsc::Sender<DownEvent>, registry: String, key: String, reason: DownReason) {
    if let Err(mpsc::error::TrySendError::Full(_)) = tx.try_send(DownEvent { registry, key, reason }) {
        node.counters.dropped("down_receiver_full");
    }
}

/// The answer to a request in flight.
#[derive(Debug)]
pub(crate) enum Response {
    /// The reply's payload (a slice of the frame it came in).
    Reply(Bytes),
    Ack,
    Rejected(Rejection),
    Canceled,
}

/// A monitor this node holds on a remote activation.
#[derive(Debug)]
pub(crate) struct ClientMonitor {
    /// The connection that carries it; `None` while detached (its
    /// connection ended and it is not placed again yet).
    conn: Option<ConnId>,
    /// That connection's control queue (for `Demonitor`).
    control: mpsc::Sender<ControlMsg>,
    /// The watched activation, once the host named it (version 2 sessions).
    activation: Option<u64>,
    /// `monitor()` waiting for the host's first answer (version 2 sessions).
    placed: Option<oneshot::Sender<()>>,
    registry: String,
    key: String,
    /// The lease the monitored activation runs under.
    lease: String,
    holder: SessionId,
    epoch: Epoch,
    tx: mpsc::Sender<DownEvent>,
}

#[derive(Debug)]
struct CachedOwner {
    holder: SessionId,
    epoch: Epoch,
    at: Instant,
}

/// See the module docs.
#[derive(Debug, Default)]
pub(crate) struct Routing {
    next_id: AtomicU64,
    pending: Mutex<HashMap<u64, (ConnId, oneshot::Sender<Response>)>>,
    /// Registry → shard → owner (looked up by `&str`, without allocating).
    owners: Mutex<HashMap<String, HashMap<u32, CachedOwner>>>,
    monitors: Mutex<HashMap<u64, ClientMonitor>>,
}

/// A data-plane frame queued for a connection's writer, encoded by
/// whoever queued it (the writer only seals it).
#[derive(Debug)]
pub(crate) struct Outbound {
    pub(crate) frame: OutFrame,
    pub(crate) kind: OutKind,
}

/// What an [`Outbound`] frame is, for the writer's bookkeeping.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum OutKind {
    /// One of our requests (an ask, an acknowledged tell), by its id.
    Request(u64),
    /// An answer to one of the peer's requests.
    Response,
    /// Anything else (a plain tell).
    Other,
}

/// The queues of one authenticated connection (to its writer).
#[derive(Debug)]
pub(crate) struct PeerQueues {
    pub(crate) data: mpsc::Sender<Outbound>,
    pub(crate) control: mpsc::Sender<ControlMsg>,
    /// The protocol version the session negotiated.
    pub(crate) version: u16,
}

/// Owns a request's entry in the in-flight table for its caller's future:
/// dropped while still armed (the caller gave up, e.g. a `timeout` around
/// the call, or an aborted task), it removes the entry, so the slot of
/// `max_inflight_requests` is free at once. Lives on the caller's stack: no
/// allocation.
#[derive(Debug)]
pub(crate) struct PendingGuard<'a> {
    node: &'a Shared,
    id: u64,
    armed: bool,
}

impl PendingGuard<'_> {
    /// The request's id.
    pub(crate) fn id(&self) -> u64 {
        self.id
    }

    /// The entry is gone already (answered, or failed with its connection).
    pub(crate) fn disarm(mut self) {
        self.armed = false;
    }

    /// Removes the entry (the request was not sent, or timed out).
    pub(crate) fn forget(mut self) {
        self.armed = false;
        self.node.forget_pending(self.id);
    }
}

impl Drop for PendingGuard<'_> {
    fn drop(&mut self) {
        if self.armed && self.node.routing.pending.lock().remove(&self.id).is_some() {
            self.node.counters.dropped("request_abandoned");
            tracing::debug!(request_id = self.id, "caller gave up on a request in flight; its answer will be dropped");
        }
    }
}

/// One authenticated connection, as a request uses it: its id and its
/// queues (one shared handle: cloning two senders per request made every
/// request touch four shared counters).
#[derive(Debug, Clone)]
pub(crate) struct PeerLink {
    pub(crate) conn: ConnId,
    queues: Arc<PeerQueues>,
}

impl std::ops::Deref for PeerLink {
    type Target = PeerQueues;

    fn deref(&self) -> &PeerQueues {
        &self.queues
    }
}

impl Shared {
    /// The connection to exactly `session`, if there is one.
    pub(crate) fn connection(&self, session: &SessionId) -> Option<PeerLink> {
        let table = self.table.lock();
        let e = table.get(&session.node)?;
        (e.session == *session).then(|| PeerLink { conn: e.conn, queues: Arc::clone(&e.handle.queues) })
    }

    /// How full each bounded table is (`ClusterInspect::tables`).
    pub(crate) fn table_use(&self) -> Vec<super::inspect::TableUse> {
        let cfg = &self.cfg;
        let use_of =
            |table: &str, len: usize, cap: usize| super::inspect::TableUse { table: table.to_string(), len, cap };
        let hosts = self.hosts_snapshot();
        let hosted_shards: usize = hosts.iter().map(|h| h.shard_count() as usize).sum();
        let cached: usize = self.routing.owners.lock().values().map(HashMap::len).sum();
        let executing = cfg.max_inflight_requests.saturating_sub(self.inbound_asks.available_permits());
        let mut out = vec![
            use_of("peers", self.table.lock().iter().count(), cfg.max_peers),
            use_of("requests_in_flight", self.routing.pending.lock().len(), cfg.max_inflight_requests),
            use_of("asks_executing", executing, cfg.max_inflight_requests),
            use_of("remote_monitors", self.routing.monitors.lock().len(), cfg.max_remote_monitors),
            use_of("owner_cache", cached, hosted_shards),
            use_of("handshake_sources", self.handshake_sources.sources(), cfg.max_pending_handshakes),
        ];
        for h in hosts {
            let ((acts, max_acts), (mons, max_mons)) = h.table_use();
            out.push(use_of(&format!("activations/{}", h.id()), acts, max_acts));
            out.push(use_of(&format!("monitors/{}", h.id()), mons, max_mons));
        }
        out
    }

    /// Asks the membership loop to look for new peers now.
    pub(crate) fn kick_dials(&self) {
        self.dial_kick.notify_one();
    }

    /// Registers a request in flight on `conn`; the guard removes it if
    /// the caller gives up.
    pub(crate) fn register_pending(
        &self,
        conn: ConnId,
    ) -> Result<(PendingGuard<'_>, oneshot::Receiver<Response>), RemoteError> {
        let id = self.routing.next_id.fetch_add(1, Ordering::Relaxed);
        let (tx, rx) = oneshot::channel();
        let mut pending = self.routing.pending.lock();
        if pending.len() >= self.cfg.max_inflight_requests {
            self.counters.dropped("inflight_table_full");
            return Err(RemoteError::Overloaded);
        }
        pending.insert(id, (conn, tx));
        Ok((PendingGuard { node: self, id, armed: true }, rx))
    }

    pub(crate) fn forget_pending(&self, id: u64) {
        self.routing.pending.lock().remove(&id);
    }

    /// Completes the request `id` if it was sent on `conn`.
    pub(crate) fn complete(&self, conn: ConnId, id: u64, response: Response) {
        let mut pending = self.routing.pending.lock();
        match pending.get(&id) {
            Some((c, _)) if *c == conn => {
                if let Some((_, tx)) = pending.remove(&id) {
                    let _ = tx.send(response);
                }
            }
            _ => {
                drop(pending);
                self.counters.dropped("unmatched_response");
            }
        }
    }

    /// A connection ended: its requests in flight fail with
    /// `ConnectionLost`; a monitor still waiting for its first answer fails
    /// (its `monitor()` call places it again); the others are detached and
    /// resolved by [`Shared::reattach`]. The monitors peers held here
    /// through it are removed (counted: `remote_monitor_connection_ended`).
    pub(crate) fn connection_ended(self: &Arc<Self>, conn: ConnId) {
        // In id order, not the hash map's: which waiter wakes first must not
        // depend on hashing (the simulation replays runs from a seed).
        let failed: Vec<oneshot::Sender<Response>> = {
            let mut pending = self.routing.pending.lock();
            let mut ids: Vec<u64> = pending.iter().filter(|(_, (c, _))| *c == conn).map(|(id, _)| *id).collect();
            ids.sort_unstable();
            ids.into_iter().filter_map(|id| pending.remove(&id)).map(|(_, tx)| tx).collect()
        };
        drop(failed);
        let (detached, unplaced) = {
            let mut monitors = self.routing.monitors.lock();
            let mut ids: Vec<u64> = monitors.iter().filter(|(_, m)| m.conn == Some(conn)).map(|(id, _)| *id).collect();
            ids.sort_unstable();
            let mut detached = Vec::new();
            let mut unplaced = Vec::new();
            for id in ids {
                let Some(m) = monitors.get_mut(&id) else { continue };
                if m.placed.is_some() {
                    unplaced.extend(monitors.remove(&id));
                } else {
                    m.conn = None;
                    detached.push(id);
                }
            }
            (detached, unplaced)
        };
        // Their `monitor()` calls see the connection lost and try again.
        drop(unplaced);
        for id in detached {
            let node = Arc::clone(self);
            self.spawn(async move { node.reattach(id).await });
        }
        let mut removed = 0;
        for host in self.hosts_snapshot() {
            removed += host.drop_conn_monitors(conn);
        }
        for _ in 0..removed {
            self.counters.dropped("remote_monitor_connection_ended");
        }
        if removed > 0 {
            tracing::debug!(removed, "the monitors a peer held through an ended connection were removed");
        }
        self.kick.notify_one();
    }

    /// Resolves the detached monitor `id` (see the module docs). "Down
    /// means down": it fires here only once the lease the target ran under
    /// is no longer held at the watched epoch (expired, released or taken
    /// over), i.e. the target can no longer execute; otherwise the host
    /// decides, once the monitor is placed again on a new connection.
    async fn reattach(&self, id: u64) {
        loop {
            let (lease, holder, epoch, activation) = {
                let monitors = self.routing.monitors.lock();
                // Gone: cancelled (its receiver dropped). Attached: by
                // another run of this task (the connection ended again).
                let Some(m) = monitors.get(&id).filter(|m| m.conn.is_none()) else { return };
                if m.tx.is_closed() {
                    drop(monitors);
                    self.routing.monitors.lock().remove(&id);
                    return;
                }
                (m.lease.clone(), m.holder.clone(), m.epoch, m.activation)
            };
            let current = tokio::time::timeout(self.cfg.lease_store_timeout, self.store.get(&lease)).await;
            if let Ok(Ok(lease)) = current
                && lease.is_none_or(|l| l.holder != holder || l.epoch != epoch)
            {
                let m = {
                    let mut monitors = self.routing.monitors.lock();
                    // Still detached: nobody else will fire it.
                    match monitors.get(&id) {
                        Some(m) if m.conn.is_none() => monitors.remove(&id),
                        _ => None,
                    }
                };
                if let Some(m) = m {
                    deliver_down(self, m.tx, m.registry, m.key, DownReason::NodeDown);
                }
                return;
            }
            if let Some(activation) = activation
                && let Some(link) = self.connection(&holder)
                && link.version >= MONITOR_IDENTITY_VERSION
            {
                let msg = {
                    let mut monitors = self.routing.monitors.lock();
                    let Some(m) = monitors.get_mut(&id).filter(|m| m.conn.is_none()) else { return };
                    m.conn = Some(link.conn);
                    m.control = link.control.clone();
                    ControlMsg::Remonitor {
                        request_id: id,
                        registry: m.registry.clone(),
                        key: m.key.clone(),
                        activation,
                    }
                };
                // Fails if the connection's writer has ended (then its
                // `connection_ended` has run, or will find this monitor).
                if link.control.try_send(msg).is_ok() {
                    return;
                }
                self.counters.dropped("remonitor_not_queued");
                let mut monitors = self.routing.monitors.lock();
                match monitors.get_mut(&id) {
                    Some(m) if m.conn == Some(link.conn) => m.conn = None,
                    // Taken over by `connection_ended` (another run of this task).
                    _ => return,
                }
            }
            tokio::time::sleep(self.cfg.renew_interval).await;
        }
    }

    /// Registers a monitor on a remote activation; returns its request id
    /// and, on a version 2 session, the receiver of the host's first answer
    /// (`Monitored` or `Down`; dropped unanswered if the connection ends).
    #[allow(clippy::too_many_arguments)]
    pub(crate) fn register_monitor(
        self: &Arc<Self>,
        link: &PeerLink,
        registry: String,
        key: String,
        lease: String,
        holder: SessionId,
        epoch: Epoch,
        tx: mpsc::Sender<DownEvent>,
    ) -> Result<(u64, Option<oneshot::Receiver<()>>), RemoteError> {
        let id = self.routing.next_id.fetch_add(1, Ordering::Relaxed);
        let (placed, answered) = if link.version >= MONITOR_IDENTITY_VERSION {
            let (placed, answered) = oneshot::channel();
            (Some(placed), Some(answered))
        } else {
            (None, None)
        };
        {
            let mut monitors = self.routing.monitors.lock();
            if monitors.len() >= self.cfg.max_remote_monitors {
                self.counters.dropped("remote_monitor_table_full");
                return Err(RemoteError::Overloaded);
            }
            let watch = tx.clone();
            let control = link.control.clone();
            let m = ClientMonitor {
                conn: Some(link.conn),
                control,
                activation: None,
                placed,
                registry,
                key,
                lease,
                holder,
                epoch,
                tx,
            };
            monitors.insert(id, m);
            // Demonitor once the receiver is dropped.
            let node = Arc::clone(self);
            self.env.spawn(async move {
                watch.closed().await;
                node.cancel_monitor(id).await;
            });
        }
        Ok((id, answered))
    }

    /// Removes the monitor `id` and, if it is placed on a connection, tells
    /// the host (waiting for room in a full control queue: one such wait per
    /// monitor at most). A `Demonitor` that cannot be sent is counted; the
    /// host removes the monitor anyway when that connection ends.
    pub(crate) async fn cancel_monitor(&self, id: u64) {
        let Some(m) = self.routing.monitors.lock().remove(&id) else { return };
        if m.conn.is_some() && m.control.send(ControlMsg::Demonitor { request_id: id }).await.is_err() {
            self.counters.dropped("demonitor_connection_closed");
            tracing::debug!(request_id = id, "a Demonitor found its connection closed");
        }
    }

    pub(crate) fn drop_monitor(&self, id: u64) {
        self.routing.monitors.lock().remove(&id);
    }

    /// The host's answer to `Monitor`/`Remonitor`: the monitor is placed on
    /// the activation `activation`.
    pub(crate) fn monitor_placed(&self, conn: ConnId, id: u64, activation: u64) {
        let mut monitors = self.routing.monitors.lock();
        if let Some(m) = monitors.get_mut(&id).filter(|m| m.conn == Some(conn)) {
            m.activation.get_or_insert(activation);
            if let Some(placed) = m.placed.take() {
                let _ = placed.send(());
            }
        }
        // Else answered by its `Down` already, or cancelled: nothing to do.
    }

    /// A `Down` from a peer for one of our monitors.
    pub(crate) fn monitor_down(&self, conn: ConnId, id: u64, reason: DownReason) {
        let mut monitors = self.routing.monitors.lock();
        if monitors.get(&id).is_some_and(|m| m.conn == Some(conn))
            && let Some(mut m) = monitors.remove(&id)
        {
            drop(monitors);
            if let Some(placed) = m.placed.take() {
                let _ = placed.send(());
            }
            deliver_down(self, m.tx, m.registry, m.key, reason);
        } else {
            drop(monitors);
            self.counters.dropped("unmatched_down");
        }
    }

    /// The cached owner of a shard, if cached less than `renew_interval` before `now`.
    pub(crate) fn cached_owner(&self, registry: &str, shard: u32, now: Instant) -> Option<(SessionId, Epoch)> {
        let owners = self.routing.owners.lock();
        let o = owners.get(registry)?.get(&shard)?;
        (now.saturating_duration_since(o.at) < self.cfg.renew_interval).then(|| (o.holder.clone(), o.epoch))
    }

    /// Caches an owner, unless a newer epoch is already known. Only hosted
    /// registries are cached, so the cache is bounded by their shards.
    pub(crate) fn cache_owner(&self, registry: &str, shard: u32, holder: SessionId, epoch: Epoch) {
        let hosted = self.hosts.read().get(registry).is_some_and(|h| shard < h.shard_count());
        if !hosted {
            return;
        }
        let mut owners = self.routing.owners.lock();
        if !owners.contains_key(registry) {
            owners.insert(registry.to_string(), HashMap::new());
        }
        let Some(shards) = owners.get_mut(registry) else { return };
        if shards.get(&shard).is_some_and(|o| o.epoch > epoch) {
            return;
        }
        shards.insert(shard, CachedOwner { holder, epoch, at: Instant::now() });
    }

    pub(crate) fn forget_owner(&self, registry: &str, shard: u32) {
        if let Some(shards) = self.routing.owners.lock().get_mut(registry) {
            shards.remove(&shard);
        }
    }

    /// A peer's lease notice: a hint only (the receiver still fences).
    pub(crate) fn lease_notice(&self, registry: &str, shard: u32, epoch: u64, owner: Option<SessionId>) {
        match owner {
            Some(holder) => self.cache_owner(registry, shard, holder, Epoch(epoch)),
            None => {
                let mut owners = self.routing.owners.lock();
                if let Some(shards) = owners.get_mut(registry)
                    && shards.get(&shard).is_some_and(|o| o.epoch.0 <= epoch)
                {
                    shards.remove(&shard);
                }
                drop(owners);
                self.kick.notify_one();
            }
        }
    }

    pub(crate) fn hosts_snapshot(&self) -> Vec<Arc<dyn HostedRegistry>> {
        self.hosts.read().values().cloned().collect()
    }

    /// `(id, shard count)` of every hosted registry, for `Hosting`.
    pub(crate) fn hosting(&self) -> Vec<(String, u32)> {
        if self.is_stopping() {
            return Vec::new();
        }
        self.hosts.read().values().map(|h| (h.id().to_string(), h.shard_count())).collect()
    }

    /// A connected peer that announced `registry` with another shard count
    /// than `shards`, and its count.
    pub(crate) fn peer_shard_count(&self, registry: &str, shards: u32) -> Option<(String, u32)> {
        self.table.lock().iter().find_map(|e| {
            let n = *e.handle.stats.hosted.lock().get(registry)?;
            (n != shards).then(|| (e.session.node.to_string(), n))
        })
    }

    /// Nodes that may own `registry`'s shards: this one, and connected peers
    /// that announced the registry with the same shard count.
    pub(crate) fn candidates(&self, registry: &str, shards: u32) -> BTreeSet<NodeId> {
        let mut out = BTreeSet::new();
        if !self.is_stopping() {
            out.insert(self.id.clone());
        }
        for e in self.table.lock().iter() {
            let hosted = e.handle.stats.hosted.lock();
            match hosted.get(registry) {
                Some(n) if *n == shards => {
                    out.insert(e.session.node.clone());
                }
                Some(n) => {
                    tracing::warn!(peer = %e.session, registry, ours = shards, theirs = *n,
                        "peer hosts the registry with another shard count; ignoring it for placement");
                }
                None => {}
            }
        }
        out
    }

    /// Queues `msg` on every connection's control queue.
    pub(crate) fn broadcast_control(&self, msg: &ControlMsg) {
        for e in self.table.lock().iter() {
            if e.handle.queues.control.try_send(msg.clone()).is_err() {
                self.counters.dropped("control_queue_full");
            }
        }
    }

    /// Records a peer's `Hosting` announcement.
    pub(crate) fn peer_hosting(&self, stats: &super::shared::PeerStats, registries: Vec<(String, u32)>) {
        let map: BTreeMap<String, u32> = registries.into_iter().collect();
        *stats.hosted.lock() = map;
        self.kick.notify_one();
    }
}
