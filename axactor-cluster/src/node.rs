//! [`ClusterNode`]: a small façade that wires the node's drivers together.
//!
//! Task tree (every task is tracked, so `shutdown` can wait for it):
//!
//! ```text
//! ClusterNode::start
//!  ├─ accept loop ──────── per inbound link: conn task (responder handshake,
//!  │                        at most max_pending_handshakes at once)
//!  ├─ membership loop ──── every heartbeat_interval: refresh our membership,
//!  │                        read members, per missing peer: dial task
//!  │                        (initiator handshake, capped backoff per name)
//!  └─ conn task (established) = reader + writer (one Sealer), heartbeats
//! ```
//!
//! Decisions live in pure parts: the handshake machines
//! ([`crate::handshake`]), the peer table's replacement rules
//! (`node/table.rs`), the backoff (`node/shared.rs`). The drivers own links,
//! timers and spawning.
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
mod inspect;
mod loops;
mod shared;
mod table;

use std::fmt;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, OnceLock};
use std::time::Duration;

use crate::config::{ClusterConfig, ConfigProblem};
use crate::error::ClusterError;
use crate::handshake::{AuthKey, fresh_nonce, valid_name};
use crate::id::{NodeId, SessionId};
use crate::lease::LeaseStore;
use crate::overlay::ClusterOverlay;

pub use established::{CLOSE_GRACE, CONTROL_QUEUE_CAPACITY, DATA_QUEUE_CAPACITY};
pub use inspect::{ClusterInspect, Counters, PeerDirection, PeerInfo, PeerState};
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

/// Random per process, drawn once from the OS generator.
fn boot_id() -> u64 {
    static BOOT: OnceLock<u64> = OnceLock::new();
    *BOOT.get_or_init(|| match fresh_nonce() {
        Ok(nonce) => {
            let mut b = [0u8; 8];
            b.copy_from_slice(&nonce[..8]);
            u64::from_be_bytes(b)
        }
        Err(e) => {
            // Uniqueness, not secrecy, is what the boot id needs.
            tracing::warn!(error = %e, "os rng failed; deriving the boot id from time and pid");
            let nanos =
                std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.as_nanos() as u64);
            nanos ^ (u64::from(std::process::id()) << 32)
        }
    })
}

fn next_session(node: NodeId) -> SessionId {
    static COUNTER: AtomicU64 = AtomicU64::new(0);
    SessionId { node, boot: boot_id(), counter: COUNTER.fetch_add(1, Ordering::Relaxed) }
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
        let session = next_session(id);
        let shared = Arc::new(Shared::new(session, cfg, key, overlay, store));
        let first = shared.store.heartbeat_member(&shared.session, shared.cfg.node_ttl);
        if let Ok(Err(e)) | Err(e) = tokio::time::timeout(shared.cfg.request_timeout, first)
            .await
            .map_err(|_| crate::lease::LeaseStoreError::Unavailable("timed out"))
        {
            tracing::warn!(node = %shared.id, error = %e, "first membership refresh failed; retrying");
        }
        shared.spawn(loops::accept_loop(Arc::clone(&shared), listener));
        shared.spawn(loops::membership_loop(Arc::clone(&shared)));
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

    /// The address the overlay listens on (TCP; `None` in memory). With a
    /// port-0 address-book entry, this is the bound port: put it in the
    /// other nodes' address book (`TcpOverlay::insert_address`).
    pub fn local_addr(&self) -> Option<SocketAddr> {
        self.local_addr
    }

    /// A snapshot: identity, authenticated peers sorted by name, counters.
    pub fn inspect(&self) -> ClusterInspect {
        let shared = &self.shared;
        let now = shared.now_ms();
        let peers = shared
            .table
            .lock()
            .iter()
            .map(|e| {
                let stats = &e.handle.stats;
                let last = stats.last_seen_ms.load(Ordering::Relaxed);
                let rtt = stats.rtt_us.load(Ordering::Relaxed);
                PeerInfo {
                    name: e.session.node.clone(),
                    session: e.session.clone(),
                    state: PeerState::Authenticated,
                    version: e.version,
                    direction: e.direction,
                    last_seen: Duration::from_millis(now.saturating_sub(last)),
                    rtt: (rtt != u64::MAX).then(|| Duration::from_micros(rtt)),
                    heartbeats_acked: stats.heartbeats_acked.load(Ordering::Relaxed),
                }
            })
            .collect();
        ClusterInspect {
            node: shared.id.clone(),
            session: shared.session.clone(),
            peers,
            counters: shared.counters.snapshot(),
        }
    }

    /// Test hook: stop renewing leases as if the lease store were
    /// unreachable. **Not yet effective**: leases are not built yet; the flag
    /// is only stored (membership refreshes are not affected).
    pub fn set_lease_renewal_paused(&self, paused: bool) {
        self.shared.renewal_paused.store(paused, Ordering::Relaxed);
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
        shared.stop.send_replace(true);
        let removal = shared.store.remove_member(&shared.session);
        match tokio::time::timeout(shared.cfg.request_timeout, removal).await {
            Ok(Ok(())) => {}
            Ok(Err(e)) => tracing::warn!(node = %shared.id, error = %e, "removing membership failed"),
            Err(_) => tracing::warn!(node = %shared.id, "removing membership timed out"),
        }
        if !shared.join_tasks(SHUTDOWN_TIMEOUT).await {
            tracing::warn!(node = %shared.id, "tasks still running at the shutdown bound; aborted");
        }
        tracing::info!(node = %shared.id, "cluster node stopped");
    }
}
