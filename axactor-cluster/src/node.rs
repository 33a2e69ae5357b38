//! [`ClusterNode`]: a small façade that wires the node's drivers together.
//!
//! Task tree (every task is tracked, so `shutdown` can wait for it):
//!
//! ```text
//! ClusterNode::start
//!  ├─ accept loop ──────── per inbound link: conn task (responder handshake,
//!  │                        at most max_pending_handshakes at once, at most
//!  │                        max_pending_handshakes_per_source per address)
//!  ├─ membership loop ──── every heartbeat_interval: refresh our membership,
//!  │                        read members, per missing peer: dial task
//!  │                        (initiator handshake, capped backoff per name)
//!  └─ conn task (established) = reader + writer, heartbeats; one Sealer
//!                           behind the write path, which callers and
//!                           activations take while the writer is idle
//! ```
//!
//! Layers, each importing only the ones below it:
//!
//! ```text
//! façade    node.rs (ClusterNode), lib.rs
//! drivers   node/{loops,conn,established,writer,metrics_export}.rs, manager.rs (leases),
//!           client.rs (a request of this node: owner, send, retries), host.rs (activations)
//! context   node/shared.rs (Shared: identity, config, env, counters + the owners;
//!           the operations that span owners)
//! owners    node/{peers,in_flight,owner_cache,remote_monitors,hosts,tasks}.rs:
//!           one piece of state each, fields private to the file
//! parts     node/{table,members,sources,queues,inspect,events,replies}.rs, hosted.rs,
//!           env.rs (types, pure rules, per-part state), and the pure cores below
//!           them (handshake, wire, shard, session)
//! ```
//!
//! Decisions live in pure parts: the handshake machines
//! ([`crate::handshake`]), the peer table's replacement rules
//! (`node/table.rs`), the re-dial backoff (`node/peers.rs`), the writer's
//! write mode (`node/writer.rs`). The drivers own links, timers and
//! spawning.
//!
//! Shutdown order: (1) the stop signal is set: the accept loop drops the
//! listener, the membership loop stops dialling, handshakes in progress are
//! abandoned; (2) each established connection queues a `Goodbye`, its writer
//! flushes it and closes the link, its reader waits briefly for the peer's
//! end; (3) the membership record is removed from the lease store; (4) the
//! node waits for every task, at most [`SHUTDOWN_TIMEOUT`], then aborts the
//! rest.

mod conn;
mod established;
mod events;
pub(crate) mod hosts;
pub(crate) mod in_flight;
mod inline_scope;
pub(crate) mod inspect;
mod loops;
mod members;
#[cfg(feature = "metrics")]
mod metrics_export;
pub(crate) mod outbound;
mod owner_cache;
mod peers;
pub(crate) mod queues;
pub(crate) mod remote_monitors;
pub(crate) mod replies;
pub(crate) mod shared;
mod sources;
pub(crate) mod table;
mod tasks;
pub(crate) mod tell_batch;
mod wake_flags;
pub(crate) mod write_path;
mod writer;

use std::fmt;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use crate::client::Route;
use crate::config::{ClusterConfig, ConfigProblem};
use crate::env::Env;
use crate::error::ClusterError;
use crate::handshake::{AuthKey, valid_name};
use crate::host::Host;
use crate::hosted::HostedRegistry;
use crate::id::{NodeId, SessionId};
use crate::keyed::{Keyed, KeyedConfig, Singleton};
use crate::lease::LeaseStore;
use crate::overlay::ClusterOverlay;
use crate::remote::RemoteActor;
use crate::wire::ControlMsg;

pub use established::{CLOSE_GRACE, CONTROL_QUEUE_CAPACITY, DATA_QUEUE_CAPACITY, OWED_RESPONSE_CAPACITY};
pub use events::{ClusterEvent, ClusterEvents, DEFAULT_EVENT_CAPACITY, MAX_EVENT_CAPACITY};
pub use inspect::{
    AuthFailure, AuthFailureReason, ClusterInspect, Counters, Membership, OwnedShard, PeerDirection, PeerInfo,
    PeerState, TableUse,
};
#[cfg(feature = "metrics")]
pub use metrics_export::METRICS_EXPORT_INTERVAL;
use shared::Shared;

/// The longest `shutdown` waits for the node's tasks before aborting them.
pub const SHUTDOWN_TIMEOUT: Duration = Duration::from_secs(5);

/// A running cluster node. Cheap to clone; all clones are one node.
#[derive(Clone)]
pub struct ClusterNode {
    shared: Arc<Shared>,
    local_addr: Option<SocketAddr>,
}

impl fmt::Debug for ClusterNode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ClusterNode").field("session", &self.shared.session).finish_non_exhaustive()
    }
}

impl ClusterNode {
    /// Starts a node named `id`: validates `cfg`, listens on `overlay`,
    /// registers as a member in `store` and starts accepting and dialling
    /// peers. Each call gets a new [`SessionId`] (per-process random boot id
    /// plus a counter), so a restarted node is a new session to its peers.
    ///
    /// Without `auth_token` and with `allow_insecure_auth`, the node uses a
    /// well-known key (no security) and logs a loud warning.
    ///
    /// Must be called within a tokio runtime (it spawns tasks). A node
    /// dropped without [`shutdown`](Self::shutdown) keeps running.
    ///
    /// # Errors
    /// [`ClusterError::Config`] for an inconsistent configuration (no token
    /// without `allow_insecure_auth`, ...) or an invalid node name,
    /// [`ClusterError::Overlay`] when the overlay cannot listen (e.g. the TCP
    /// address cannot be bound). A failed first membership refresh is only
    /// logged: the membership loop retries.
    ///
    /// # Cancel safety
    /// Not cancel safe: dropping the future after the overlay started
    /// listening releases the listener but may leave a membership record
    /// until it expires (`node_ttl`).
    pub async fn start(
        id: NodeId,
        store: Arc<dyn LeaseStore>,
        overlay: impl Into<ClusterOverlay>,
        cfg: ClusterConfig,
    ) -> Result<ClusterNode, ClusterError> {
        ClusterNode::start_with_env(id, store, overlay, cfg, Env::production()).await
    }

    /// [`ClusterNode::start`] in the environment `env`: where the node's
    /// randomness, session id and tasks come from, and who observes it (see
    /// [`Env`]). `start` uses [`Env::production`]; the deterministic
    /// simulation passes [`Env::seeded`].
    ///
    /// # Errors
    /// As [`ClusterNode::start`].
    ///
    /// # Cancel safety
    /// As [`ClusterNode::start`].
    pub async fn start_with_env(
        id: NodeId,
        store: Arc<dyn LeaseStore>,
        overlay: impl Into<ClusterOverlay>,
        cfg: ClusterConfig,
        env: Env,
    ) -> Result<ClusterNode, ClusterError> {
        cfg.validate()?;
        if !valid_name(id.as_str()) {
            let problem = "must be 1 to 255 bytes of UTF-8 without control characters";
            return Err(ConfigProblem { field: "node id", problem }.into());
        }
        let key = match &cfg.auth_token {
            Some(token) => AuthKey::from_token(token.as_bytes()),
            None => {
                tracing::warn!(
                    node = %id,
                    "INSECURE: cluster authentication is disabled (allow_insecure_auth without auth_token); \
                     any process that can reach this node can join the cluster and forge frames"
                );
                AuthKey::insecure()
            }
        };
        let overlay: ClusterOverlay = overlay.into();
        let listener = overlay.inner().listen(&id).await?;
        let local_addr = listener.local_addr();
        let mut session = env.new_session(id);
        if mutant!(ReuseSession) {
            // Every run of a name is "the same session".
            session.boot = crate::hash::stable_hash(&[session.node.as_str().as_bytes()]);
            session.counter = 0;
        }
        let shared = Arc::new(Shared::new(session, cfg, key, overlay, store, env));
        let first = shared.store.heartbeat_member(&shared.session, shared.cfg.node_ttl);
        if let Ok(Err(e)) | Err(e) = tokio::time::timeout(shared.cfg.lease_store_timeout, first)
            .await
            .map_err(|_| crate::lease::LeaseStoreError::Unavailable("timed out"))
        {
            tracing::warn!(node = %shared.id, error = %e, "first membership refresh failed; retrying");
        }
        shared.spawn(loops::accept_loop(Arc::clone(&shared), listener));
        shared.spawn(loops::membership_loop(Arc::clone(&shared)));
        // Not a task of the env: a paused node's callers (another task, in
        // a test or the simulation) still time out, as on tokio timers. It
        // ends at the node's stop or kill (and closes the table if aborted).
        tokio::spawn({
            let node = Arc::clone(&shared);
            async move {
                node.deadlines
                    .run(async {
                        node.tasks.stopped().await;
                    })
                    .await;
            }
        });
        let (cmd_tx, cmd_rx) = tokio::sync::mpsc::channel(1);
        shared.hosts.set_driver(cmd_tx);
        shared.spawn(crate::manager::run(Arc::clone(&shared), cmd_rx));
        #[cfg(feature = "metrics")]
        shared.spawn(metrics_export::export_loop(Arc::clone(&shared)));
        tracing::info!(node = %shared.id, session = %shared.session, "cluster node started");
        Ok(ClusterNode { shared, local_addr })
    }

    /// The node's logical name.
    pub fn id(&self) -> &NodeId {
        &self.shared.id
    }

    /// This run's session id.
    pub fn session(&self) -> &SessionId {
        &self.shared.session
    }

    /// Replaces this node's cached owner of `shard` of `registry` with
    /// `holder` at `epoch` (tests: a stale view of the owner, which the
    /// cache itself never goes back to).
    #[cfg(test)]
    pub(crate) fn recache_owner(&self, registry: &str, shard: u32, holder: SessionId, epoch: crate::lease::Epoch) {
        self.shared.forget_owner(registry, shard);
        self.shared.cache_owner(registry, shard, holder, epoch);
    }

    /// The address the overlay listens on (TCP; `None` in memory). With a
    /// port-0 address-book entry, this is the bound port: put it in the
    /// other nodes' address book (`TcpOverlay::insert_address`).
    pub fn local_addr(&self) -> Option<SocketAddr> {
        self.local_addr
    }

    /// A snapshot: identity, authenticated peers sorted by name, counters.
    pub fn inspect(&self) -> ClusterInspect {
        self.shared.inspect()
    }

    /// Subscribes to the node's events (shards acquired, fenced, handed
    /// over, released and stopped; peers up and down; authentication
    /// failures), from now on, with room for [`DEFAULT_EVENT_CAPACITY`]
    /// events: see [`ClusterEvents`]. A subscriber that falls behind loses
    /// events (counted: `inspect().counters.events_dropped`, and a
    /// [`ClusterEvent::Lagged`] in its stream); the node never waits for it.
    pub fn subscribe_events(&self) -> ClusterEvents {
        self.subscribe_events_with_capacity(DEFAULT_EVENT_CAPACITY)
    }

    /// [`subscribe_events`](Self::subscribe_events) with room for
    /// `capacity` events (clamped to `1..=`[`MAX_EVENT_CAPACITY`]).
    pub fn subscribe_events_with_capacity(&self, capacity: usize) -> ClusterEvents {
        self.shared.events.subscribe(capacity)
    }

    /// Writes the node's counters, peers, owned shards and table use to the
    /// `metrics` facade's recorder now (feature `metrics`; names and labels
    /// in docs/operations.md, "Metrics"). The node also does this every
    /// [`METRICS_EXPORT_INTERVAL`] and once more as it stops, to the global
    /// recorder; call this to export on demand, e.g. before a scrape, or
    /// inside `metrics::with_local_recorder`. Counters are written with
    /// `Counter::absolute` (the node's own totals), so exports never make
    /// a counter go backwards and repeated exports do not add up.
    #[cfg(feature = "metrics")]
    pub fn export_metrics(&self) {
        metrics_export::export(&self.shared, &self.inspect());
    }

    /// Hosts the keyed registry `registry_id` on this node: keys map to
    /// `cfg.shard_count` shards, each owned by one node at a time (under a
    /// lease), and each key has at most one activation cluster-wide, made
    /// by `factory(key)` on first use. Every node hosting the registry must
    /// register it with the same id and shard count.
    ///
    /// # Errors
    /// [`ClusterError::Config`] for an invalid id or config, or an id
    /// already registered on this node; [`ClusterError::ShardCountMismatch`]
    /// when a connected peer hosts the registry with another shard count;
    /// [`ClusterError::ShutDown`] after `shutdown`. (A mismatch with a node
    /// not connected yet is caught by the lease store: this node then takes
    /// none of the registry's shards, logs a warning naming both counts and
    /// counts `shard_count_conflict`; requests it routes to the other
    /// count's owners fail with `RemoteError::ShardCountMismatch`.)
    pub fn keyed<A, F>(&self, registry_id: &str, cfg: KeyedConfig, factory: F) -> Result<Keyed<A>, ClusterError>
    where
        A: RemoteActor,
        F: Fn(&str) -> A + Send + Sync + 'static,
    {
        self.register(registry_id, cfg, Arc::new(factory), None)
    }

    /// Hosts the singleton `name`: exactly one activation cluster-wide,
    /// started eagerly on the node holding its lease and restarted on
    /// another node when that lease is lost. Every node that may run it
    /// registers it with the same name.
    ///
    /// # Errors
    /// As [`ClusterNode::keyed`].
    pub fn singleton<A, F>(&self, name: &str, factory: F) -> Result<Singleton<A>, ClusterError>
    where
        A: RemoteActor,
        F: Fn() -> A + Send + Sync + 'static,
    {
        let cfg = KeyedConfig::new(1).idle_timeout(None);
        let keyed = self.register(name, cfg, Arc::new(move |_: &str| factory()), Some(name))?;
        Ok(Singleton { keyed })
    }

    fn register<A: RemoteActor>(
        &self,
        id: &str,
        cfg: KeyedConfig,
        factory: Arc<dyn Fn(&str) -> A + Send + Sync>,
        eager: Option<&str>,
    ) -> Result<Keyed<A>, ClusterError> {
        let shared = &self.shared;
        if shared.is_stopping() {
            return Err(ClusterError::ShutDown);
        }
        if !valid_name(id) {
            let problem = "must be 1 to 255 bytes of UTF-8 without control characters";
            return Err(ConfigProblem { field: "registry id", problem }.into());
        }
        cfg.validate()?;
        let ours = cfg.shard_count_u32();
        if let Some((peer, theirs)) = shared.peers.other_shard_count(id, ours) {
            return Err(ClusterError::ShardCountMismatch {
                registry: id.to_string(),
                ours,
                theirs: u64::from(theirs),
                peer,
            });
        }
        let host = Host::new(id, cfg, factory, Arc::clone(&shared.system), shared.env.clone(), eager);
        if !shared.hosts.insert(Arc::clone(&host) as Arc<dyn HostedRegistry>) {
            let problem = "is already registered on this node";
            return Err(ConfigProblem { field: "registry id", problem }.into());
        }
        shared.broadcast_control(&ControlMsg::Hosting { registries: shared.hosting() });
        shared.hosts.kick();
        Ok(Keyed { route: Arc::new(Route::new(Arc::clone(shared), host)) })
    }

    /// Test hook: stop renewing (and acquiring) leases as if the lease
    /// store were unreachable. Held shards are fenced at their local
    /// deadline: their activations stop with `ExitReason::LeaseLost` before
    /// the store can hand the lease to another node. Membership refreshes
    /// are not affected.
    pub fn set_lease_renewal_paused(&self, paused: bool) {
        self.shared.hosts.set_renewal_paused(paused);
    }

    /// Test hook: stops the node abruptly, as a crash would. Every task is
    /// aborted (links drop without `Goodbye`, the listener closes), every
    /// activation is killed without `on_stop` finishing, and **no lease is
    /// released**: the other nodes take the shards over only once the
    /// leases expire, and the membership record lingers until `node_ttl`.
    /// Used to test failover; production code wants [`ClusterNode::shutdown`].
    pub fn kill(&self) {
        let shared = &self.shared;
        shared.tasks.abort_all();
        shared.hosts.take_driver();
        for host in shared.hosts_snapshot() {
            for (shard, _) in host.owned() {
                host.kill_shard(shard, axactor::ExitReason::Killed);
            }
        }
        shared.tasks.begin_stop();
        shared.tasks.abort_all();
        // A pausable env tracks every task (activations, connection
        // writers, watchers): a crash leaves none of them.
        shared.env.abort_all();
        shared.events.close();
        tracing::info!(node = %shared.id, "cluster node killed (test hook)");
    }

    /// Shuts the node down gracefully, in the order described in the module
    /// docs: stop accepting and dialling, say `Goodbye` to every peer and
    /// close the links, remove the membership record, then wait for the
    /// node's tasks (at most [`SHUTDOWN_TIMEOUT`], then they are aborted).
    /// Idempotent; every clone sees the node stopped.
    ///
    /// # Cancel safety
    /// Cancel safe in the sense that the node is stopping once this was
    /// first polled; dropping the future only skips the waiting and the
    /// removal of the membership record (it then expires after `node_ttl`).
    pub async fn shutdown(&self) {
        let shared = &self.shared;
        // Withdraw from placement, then stop the activations and release
        // the leases (peers are told), then close the transport.
        shared.broadcast_control(&ControlMsg::Hosting { registries: Vec::new() });
        let manager = shared.hosts.take_driver();
        if let Some(manager) = manager {
            let (done_tx, done_rx) = tokio::sync::oneshot::channel();
            if manager.send(hosts::DriverCmd::Shutdown(done_tx)).await.is_ok() {
                let _ = done_rx.await;
            }
        }
        shared.system.shutdown_graceful(Duration::from_secs(1)).await;
        shared.tasks.begin_stop();
        let removal = shared.store.remove_member(&shared.session);
        match tokio::time::timeout(shared.cfg.lease_store_timeout, removal).await {
            Ok(Ok(())) => {}
            Ok(Err(e)) => tracing::warn!(node = %shared.id, error = %e, "removing membership failed"),
            Err(_) => tracing::warn!(node = %shared.id, "removing membership timed out"),
        }
        if !shared.tasks.join(SHUTDOWN_TIMEOUT).await {
            tracing::warn!(node = %shared.id, "tasks still running at the shutdown bound; aborted");
        }
        shared.events.close();
        tracing::info!(node = %shared.id, "cluster node stopped");
    }
}
