//! The node's routing state and the operations on it: requests in flight
//! (bounded by `max_inflight_requests`), the owner cache (one entry per
//! hosted shard at most, each valid for `renew_interval`), monitors held on
//! remote activations (bounded by `max_remote_monitors`), placement
//! candidates, and broadcasts to peers.

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
use crate::wire::{ControlMsg, DownReason, OutFrame, Rejection};

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
    conn: ConnId,
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

    /// Registers a request in flight on `conn`.
    pub(crate) fn register_pending(&self, conn: ConnId) -> Result<(u64, oneshot::Receiver<Response>), RemoteError> {
        let id = self.routing.next_id.fetch_add(1, Ordering::Relaxed);
        let (tx, rx) = oneshot::channel();
        let mut pending = self.routing.pending.lock();
        if pending.len() >= self.cfg.max_inflight_requests {
            self.counters.dropped("inflight_table_full");
            return Err(RemoteError::Overloaded);
        }
        pending.insert(id, (conn, tx));
        Ok((id, rx))
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
    /// `ConnectionLost`; its monitors resolve once the target's lease is
    /// provably gone.
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
        let orphaned: Vec<ClientMonitor> = {
            let mut monitors = self.routing.monitors.lock();
            let mut ids: Vec<u64> = monitors.iter().filter(|(_, m)| m.conn == conn).map(|(id, _)| *id).collect();
            ids.sort_unstable();
            ids.into_iter().filter_map(|id| monitors.remove(&id)).collect()
        };
        for m in orphaned {
            let node = Arc::clone(self);
            self.spawn(async move { node.await_lease_gone(m).await });
        }
        self.kick.notify_one();
    }

    /// "Down means down": a monitor whose connection was lost fires only
    /// once the lease the target ran under is no longer held (expired,
    /// released or taken over), i.e. the target can no longer execute.
    async fn await_lease_gone(&self, m: ClientMonitor) {
        loop {
            if m.tx.is_closed() {
                return;
            }
            let current = tokio::time::timeout(self.cfg.lease_store_timeout, self.store.get(&m.lease)).await;
            if let Ok(Ok(lease)) = current
                && lease.is_none_or(|l| l.holder != m.holder || l.epoch != m.epoch)
            {
                let _ = m.tx.try_send(DownEvent { registry: m.registry, key: m.key, reason: DownReason::NodeDown });
                return;
            }
            tokio::time::sleep(self.cfg.renew_interval).await;
        }
    }

    /// Registers a monitor on a remote activation; returns its request id.
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
    ) -> Result<u64, RemoteError> {
        let id = self.routing.next_id.fetch_add(1, Ordering::Relaxed);
        {
            let mut monitors = self.routing.monitors.lock();
            if monitors.len() >= self.cfg.max_remote_monitors {
                self.counters.dropped("remote_monitor_table_full");
                return Err(RemoteError::Overloaded);
            }
            let watch = tx.clone();
            monitors.insert(id, ClientMonitor { conn: link.conn, registry, key, lease, holder, epoch, tx });
            // Demonitor once the receiver is dropped.
            let node = Arc::clone(self);
            let control = link.control.clone();
            self.env.spawn(async move {
                watch.closed().await;
                if node.routing.monitors.lock().remove(&id).is_some() {
                    let _ = control.try_send(ControlMsg::Demonitor { request_id: id });
                }
            });
        }
        Ok(id)
    }

    pub(crate) fn drop_monitor(&self, id: u64) {
        self.routing.monitors.lock().remove(&id);
    }

    /// A `Down` from a peer for one of our monitors.
    pub(crate) fn monitor_down(&self, conn: ConnId, id: u64, reason: DownReason) {
        let mut monitors = self.routing.monitors.lock();
        if monitors.get(&id).is_some_and(|m| m.conn == conn)
            && let Some(m) = monitors.remove(&id)
        {
            let _ = m.tx.try_send(DownEvent { registry: m.registry, key: m.key, reason });
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
