//! [`Shared`]: what every task of one node shares. Identity,
//! configuration, the environment, the lease store and overlay, counters
//! and the event hub are plain fields; the state lives in owners, each in
//! its own file with its fields private to it:
//!
//! | field | owner | state |
//! |---|---|---|
//! | `peers` | `node/peers.rs` | peer table, re-dials, handshake permits, members, connection ids |
//! | `in_flight` | `node/in_flight.rs` | our requests in flight, the peers' asks executing here |
//! | `owners` | `node/owner_cache.rs` | the owner cache |
//! | `monitors` | `node/remote_monitors.rs` | monitors held on remote activations |
//! | `hosts` | `node/hosts.rs` | hosted registries, placement kick, lease-driver channel |
//! | `tasks` | `node/tasks.rs` | the stop signal and the tracked tasks |
//!
//! The methods here are the operations that span owners (a connection's
//! end, a monitor's reattachment, a snapshot for `inspect()`) and short
//! paths for the drivers.

use std::collections::BTreeSet;
use std::future::Future;
use std::sync::Arc;

use tokio::sync::mpsc;
use tokio::time::Instant;

use super::events::EventHub;
use super::hosts::Hosts;
use super::in_flight::{InFlight, Response};
use super::inspect::{ClusterInspect, LiveCounters, OwnedShard, TableUse, bump};
use super::members::{Recorded, auth_failure_reason};
use super::owner_cache::OwnerCache;
use super::peers::{PeerStats, Peers};
use super::queues::PeerLink;
use super::remote_monitors::{Answered, Detached, RemoteMonitors, Watched, target_ended};
use super::table::ConnId;
use super::tasks::Tasks;
use crate::config::ClusterConfig;
use crate::counter_reasons::DropReason;
use crate::deadline::Deadlines;
use crate::env::{Env, NodeEvent};
use crate::error::RemoteError;
use crate::fence_clock::Origin;
use crate::handshake::{AuthKey, HandshakeError};
use crate::hosted::{DownEvent, HostedRegistry, MonitorNode};
use crate::id::{NodeId, SessionId};
use crate::lease::{Epoch, LeaseStore};
use crate::overlay::ClusterOverlay;
use crate::wire::hello::MONITOR_IDENTITY_VERSION;
use crate::wire::{ControlMsg, DownReason};

/// See the module docs.
pub(crate) struct Shared {
    pub(crate) id: NodeId,
    pub(crate) session: SessionId,
    pub(crate) cfg: ClusterConfig,
    pub(crate) key: AuthKey,
    pub(crate) overlay: ClusterOverlay,
    pub(crate) store: Arc<dyn LeaseStore>,
    /// Randomness, task spawning and the observer (see [`Env`]).
    pub(crate) env: Env,
    /// The local actor system activations run in.
    pub(crate) system: Arc<axactor::System>,
    pub(crate) counters: LiveCounters,
    /// Subscribers of the node's event stream.
    pub(crate) events: Arc<EventHub>,
    pub(crate) peers: Peers,
    pub(crate) in_flight: InFlight,
    pub(crate) owners: OwnerCache,
    pub(crate) monitors: RemoteMonitors,
    pub(crate) hosts: Hosts,
    pub(crate) tasks: Tasks,
    /// The deadlines of requests waiting for an answer (one sweeper task).
    pub(crate) deadlines: Deadlines,
    /// The env's fence clock (`fence_clock.rs`: the OS coarse clock in
    /// production, Tokio's in the simulation), read by a plain tell's fast
    /// path to check its route hint instead of the precise clock
    /// (`Route::joined_batch`).
    pub(crate) coarse: Origin,
    /// When the node started (`now_ms` counts from here).
    epoch: Instant,
}

impl std::fmt::Debug for Shared {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Shared").field("session", &self.session).finish_non_exhaustive()
    }
}

impl MonitorNode for Shared {
    fn env(&self) -> &Env {
        &self.env
    }

    fn dropped(&self, reason: DropReason) {
        self.counters.dropped(reason);
    }
}

impl Shared {
    pub(crate) fn new(
        session: SessionId,
        cfg: ClusterConfig,
        key: AuthKey,
        overlay: ClusterOverlay,
        store: Arc<dyn LeaseStore>,
        env: Env,
    ) -> Shared {
        Shared {
            id: session.node.clone(),
            peers: Peers::new(session.clone(), &cfg),
            in_flight: InFlight::new(cfg.max_inflight_requests),
            owners: OwnerCache::new(cfg.renew_interval),
            monitors: RemoteMonitors::new(cfg.max_remote_monitors),
            hosts: Hosts::default(),
            tasks: Tasks::new(),
            deadlines: Deadlines::default(),
            coarse: Origin::new(env.fence_clock()),
            session,
            cfg,
            key,
            overlay,
            store,
            counters: LiveCounters::default(),
            system: Arc::new(env.system()),
            env,
            events: Arc::default(),
            epoch: Instant::now(),
        }
    }

    /// Emits a node event: to the env's observer and the event stream's
    /// subscribers. `make` runs only if one of them listens.
    pub(crate) fn emit(&self, make: impl FnOnce() -> NodeEvent) {
        let subscribers = self.events.has_subscribers();
        if !subscribers && !self.env.has_observer() {
            return;
        }
        let event = make();
        if subscribers {
            let dropped = self.events.publish(&event);
            if dropped > 0 {
                self.counters.events_dropped.fetch_add(dropped, std::sync::atomic::Ordering::Relaxed);
            }
        }
        self.env.observe(&self.session, || event);
    }

    /// The largest envelope a sealed frame to a peer may carry (the node's
    /// and the overlay's frame limits, less the seal).
    #[inline]
    pub(crate) fn max_envelope(&self) -> usize {
        crate::wire::max_envelope_bytes(self.cfg.max_frame_bytes.min(self.overlay.inner().max_frame_bytes()))
    }

    /// Milliseconds since the node started, on tokio's clock (so the paused
    /// test clock works).
    pub(crate) fn now_ms(&self) -> u64 {
        u64::try_from(self.epoch.elapsed().as_millis()).unwrap_or(u64::MAX)
    }

    /// Whether the node's stop has begun.
    #[inline]
    pub(crate) fn is_stopping(&self) -> bool {
        self.tasks.is_stopping()
    }

    /// Spawns a task that `shutdown` waits for (and aborts after its bound).
    pub(crate) fn spawn(&self, fut: impl Future<Output = ()> + Send + 'static) {
        self.tasks.spawn(&self.env, fut);
    }

    /// A fresh connection id.
    pub(crate) fn next_conn(&self) -> ConnId {
        self.peers.next_conn()
    }

    /// Records the end of a dial's handshake: success resets the backoff,
    /// failure doubles it (capped at `reconnect_max`).
    pub(crate) fn dial_done(&self, peer: &NodeId, ok: bool) {
        self.peers.dial_done(peer, ok, Instant::now());
    }

    /// Completes our request `id` if it was sent on `conn`.
    pub(crate) fn complete(&self, conn: ConnId, id: u64, response: Response) {
        self.in_flight.complete(conn, id, response, &self.counters);
    }

    /// Queues `msg` on every connection's control queue (counting those
    /// full: `control_queue_full`).
    pub(crate) fn broadcast_control(&self, msg: &ControlMsg) {
        for _ in 0..self.peers.broadcast_control(msg) {
            self.counters.dropped(DropReason::ControlQueueFull);
        }
    }

    /// Every hosted registry, in id order.
    pub(crate) fn hosts_snapshot(&self) -> Vec<Arc<dyn HostedRegistry>> {
        self.hosts.snapshot()
    }

    /// `(id, shard count)` of every hosted registry, for `Hosting` (none
    /// once the node is stopping).
    pub(crate) fn hosting(&self) -> Vec<(String, u32)> {
        if self.is_stopping() {
            return Vec::new();
        }
        self.hosts.announced()
    }

    /// Records a peer's `Hosting` announcement, and kicks placement.
    pub(crate) fn peer_hosting(&self, stats: &PeerStats, registries: Vec<(String, u32)>) {
        *stats.hosted.lock() = registries.into_iter().collect();
        self.hosts.kick();
    }

    /// Nodes that may own `registry`'s shards: this one (unless stopping),
    /// and connected peers that announced the registry with the same shard
    /// count.
    pub(crate) fn candidates(&self, registry: &str, shards: u32) -> BTreeSet<NodeId> {
        let mut out = BTreeSet::new();
        if !self.is_stopping() {
            out.insert(self.id.clone());
        }
        self.peers.add_candidates(registry, shards, &mut out);
        out
    }

    /// Connected peers that announced `registry` with another shard count
    /// than `shards` (never placement candidates for it).
    pub(crate) fn hosting_other_count(&self, registry: &str, shards: u32) -> BTreeSet<NodeId> {
        self.peers.hosting_other_count(registry, shards)
    }

    /// Caches a shard's owner, unless a newer epoch is already known. Only
    /// hosted registries' shards are cached, so the cache is bounded by them.
    pub(crate) fn cache_owner(&self, registry: &str, shard: u32, holder: SessionId, epoch: Epoch) {
        if self.hosts.hosts_shard(registry, shard) {
            self.owners.insert(registry, shard, holder, epoch, Instant::now());
        }
    }

    /// Forgets a shard's cached owner.
    pub(crate) fn forget_owner(&self, registry: &str, shard: u32) {
        self.owners.forget(registry, shard);
    }

    /// A peer's lease notice: a hint only (the receiver still fences). A
    /// released lease also kicks placement.
    ///
    /// A notice numbers shards by its sender's count (`peer_count`, the
    /// count the peer announced for `registry`; `None` if it announced
    /// none). From a peer whose count is not this node's, shard `n` is
    /// another key range than this node's shard `n`, so an owner it names
    /// for a registry hosted here is not cached (counted:
    /// `lease_notice_other_count`): a node of another count finds no owner
    /// in its cache, reads its own count's lease from the store, and
    /// answers `ShardCountMismatch`. A release is applied whatever the
    /// count: it only drops a cache entry (the next request reads the
    /// store) and kicks placement, and a node shutting down withdraws its
    /// announcement before it releases.
    pub(crate) fn lease_notice(
        &self,
        registry: &str,
        shard: u32,
        epoch: u64,
        owner: Option<SessionId>,
        peer_count: Option<u32>,
    ) {
        match owner {
            Some(holder) => match self.hosts.shard_count(registry) {
                // Not hosted here: nothing to cache (as `cache_owner`).
                None => {}
                Some(ours) if peer_count == Some(ours) => self.cache_owner(registry, shard, holder, Epoch(epoch)),
                Some(_) => self.counters.dropped(DropReason::LeaseNoticeOtherCount),
            },
            None => {
                self.owners.released(registry, shard, epoch);
                self.hosts.kick();
            }
        }
    }

    /// Records a dial of `peer` whose handshake failed with `err`, if the
    /// failure shows that `peer` cannot be a member (see
    /// [`auth_failure_reason`]): counted, and a warning the first time.
    /// Only outbound dials are recorded (the name is the one this node
    /// dialled, not one a hello claimed).
    pub(crate) fn member_auth_failed(&self, peer: &NodeId, err: &HandshakeError) {
        let Some(reason) = auth_failure_reason(err) else { return };
        bump(&self.counters.member_auth_failures);
        match self.peers.members().auth_failed(peer, reason, Instant::now()) {
            Recorded::New => tracing::warn!(
                node = %self.id, peer = %peer, ?reason, error = %err,
                "cannot authenticate with a live cluster member: it takes no part in placement here \
                 (every node of a cluster must use the same auth_token and a common protocol version)"
            ),
            Recorded::Again => {
                tracing::debug!(node = %self.id, peer = %peer, ?reason, "member authentication failed again")
            }
            Recorded::Full => tracing::debug!(node = %self.id, peer = %peer, ?reason,
                "member authentication failed; the failure table is full, not recorded"),
        }
        self.hosts.kick();
    }

    /// The host's answer to `Monitor`/`Remonitor` for our monitor `id`.
    pub(crate) fn monitor_placed(&self, conn: ConnId, id: u64, activation: u64) {
        self.monitors.placed(conn, id, activation);
    }

    /// A `Down` from a peer for our monitor `id`.
    pub(crate) fn monitor_down(&self, conn: ConnId, id: u64, reason: DownReason) {
        self.monitors.down(conn, id, reason, &self.counters);
    }

    /// Registers a monitor on a remote activation, placed through `link`;
    /// returns its request id and, on a version 2 session, the receiver of
    /// the host's first answer. Dropping the event's receiver cancels it.
    pub(crate) fn register_monitor(
        self: &Arc<Self>,
        link: &PeerLink,
        watched: Watched,
        tx: mpsc::Sender<DownEvent>,
    ) -> Result<(u64, Option<Answered>), RemoteError> {
        let id = self.in_flight.next_id();
        let watch = tx.clone();
        let answered = self.monitors.insert(id, link, watched, tx, &self.counters)?;
        // Demonitor once the receiver is dropped.
        let node = Arc::clone(self);
        self.env.spawn(async move {
            watch.closed().await;
            node.monitors.cancel(id, &node.counters).await;
        });
        Ok((id, answered))
    }

    /// A connection ended: its requests in flight fail with
    /// `ConnectionLost`; a monitor still waiting for its first answer fails
    /// (its `monitor()` call places it again); the others are detached and
    /// resolved by [`Shared::reattach`]. The monitors peers held here
    /// through it are removed (counted: `remote_monitor_connection_ended`).
    pub(crate) fn connection_ended(self: &Arc<Self>, conn: ConnId) {
        self.in_flight.connection_ended(conn);
        for id in self.monitors.connection_ended(conn) {
            let node = Arc::clone(self);
            self.spawn(async move { node.reattach(id).await });
        }
        let mut removed = 0;
        for host in self.hosts.snapshot() {
            removed += host.drop_conn_monitors(conn);
        }
        for _ in 0..removed {
            self.counters.dropped(DropReason::RemoteMonitorConnectionEnded);
        }
        if removed > 0 {
            tracing::debug!(removed, "the monitors a peer held through an ended connection were removed");
        }
        self.hosts.kick();
    }

    /// Resolves the detached monitor `id` (see `node/remote_monitors.rs`).
    /// "Down means down": it fires here only once the lease the target ran
    /// under is gone or held by another session ([`target_ended`]), i.e.
    /// the target can no longer execute; otherwise the host decides, once
    /// the monitor is placed again on a new connection.
    async fn reattach(&self, id: u64) {
        loop {
            let Detached::Waiting { lease, holder, epoch, activation } = self.monitors.detached(id) else { return };
            let current = tokio::time::timeout(self.cfg.lease_store_timeout, self.store.get(&lease)).await;
            if let Ok(Ok(lease)) = current
                && target_ended(lease.as_ref(), &holder, epoch, activation)
            {
                if let Some(m) = self.monitors.take_detached(id) {
                    m.fire(DownReason::NodeDown, &self.counters);
                }
                return;
            }
            if let Some(activation) = activation
                && let Some(link) = self.peers.connection(&holder)
                && link.version >= MONITOR_IDENTITY_VERSION
            {
                let Some(msg) = self.monitors.attach(id, &link, activation) else { return };
                // Fails if the connection's writer has ended (then its
                // `connection_ended` has run, or will find this monitor).
                if link.control.try_send(msg).is_ok() {
                    return;
                }
                self.counters.dropped(DropReason::RemonitorNotQueued);
                if !self.monitors.detach(id, link.conn) {
                    // Taken over by `connection_ended` (another run of this task).
                    return;
                }
            }
            tokio::time::sleep(self.cfg.renew_interval).await;
        }
    }

    /// How full each bounded table is (`ClusterInspect::tables`).
    pub(crate) fn table_use(&self) -> Vec<TableUse> {
        let cfg = &self.cfg;
        let use_of = |table: &str, len: usize, cap: usize| TableUse { table: table.to_string(), len, cap };
        let hosts = self.hosts.snapshot();
        let hosted_shards: usize = hosts.iter().map(|h| h.shard_count() as usize).sum();
        let mut out = vec![
            use_of("peers", self.peers.len(), cfg.max_peers),
            use_of("requests_in_flight", self.in_flight.len(), self.in_flight.max()),
            use_of("asks_executing", self.in_flight.executing(), self.in_flight.max()),
            use_of("remote_monitors", self.monitors.len(), self.monitors.max()),
            use_of("owner_cache", self.owners.len(), hosted_shards),
            use_of("handshake_sources", self.peers.handshake_sources(), cfg.max_pending_handshakes),
        ];
        for h in hosts {
            let ((acts, max_acts), (mons, max_mons)) = h.table_use();
            out.push(use_of(&format!("activations/{}", h.id()), acts, max_acts));
            out.push(use_of(&format!("monitors/{}", h.id()), mons, max_mons));
        }
        out
    }

    /// A snapshot: identity, authenticated peers sorted by name, owned
    /// shards, counters, table use and membership.
    pub(crate) fn inspect(&self) -> ClusterInspect {
        let peers = self.peers.infos(self.now_ms());
        let mut shards: Vec<OwnedShard> = self
            .hosts
            .snapshot()
            .iter()
            .flat_map(|h| {
                h.owned().into_iter().map(|(shard, epoch)| OwnedShard {
                    registry: h.id().to_string(),
                    shard,
                    epoch: epoch.0,
                })
            })
            .collect();
        shards.sort();
        ClusterInspect {
            node: self.id.clone(),
            session: self.session.clone(),
            peers,
            shards,
            counters: self.counters.snapshot(),
            tables: self.table_use(),
            membership: self.peers.members().info(Instant::now()),
        }
    }
}
