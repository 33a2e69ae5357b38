//! The cluster layer of axactor: lease-fenced shard ownership over
//! authenticated overlays.
//!
//! Keys of a keyed registry map to shards; each shard has a lease (holder
//! *session* + an epoch that only grows) in a [`LeaseStore`]. The holder
//! hosts the shard's activations and executes a routed message only under
//! exactly the epoch the sender routed by, and only before its local lease
//! deadline; a node that cannot renew stops the shard's activations
//! ([`axactor::ExitReason::LeaseLost`]) before the store can hand the lease
//! to anyone else. Nodes authenticate each other with a shared token
//! (HMAC-SHA256 challenge–response) and talk over a pluggable overlay
//! ([`InMemoryOverlay`], [`TcpOverlay`]).
//!
//! ```
//! use axactor::actor;
//! use axactor_cluster::{ClusterConfig, ClusterNode, InMemoryOverlay, KeyedConfig, MemoryLeaseStore, NodeId};
//! use std::sync::Arc;
//!
//! pub struct Account { balance: i64 }
//!
//! #[actor(remote)] // also generates AccountContract and AccountRemoteRef
//! impl Account {
//!     #[msg] fn deposit(&mut self, amount: i64) { self.balance += amount }
//!     #[msg] fn balance(&mut self) -> i64 { self.balance }
//! }
//!
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() -> Result<(), Box<dyn std::error::Error>> {
//! let net = InMemoryOverlay::new();
//! let store = Arc::new(MemoryLeaseStore::new());
//! let cfg = ClusterConfig { auth_token: Some("a 32+ character secret shared by all nodes".into()), ..ClusterConfig::default() };
//! let a = ClusterNode::start(NodeId::new("a"), store.clone(), net.clone(), cfg.clone()).await?;
//! let b = ClusterNode::start(NodeId::new("b"), store.clone(), net.clone(), cfg).await?;
//!
//! let accounts_a = a.keyed("accounts", KeyedConfig::new(16), |_key: &str| Account { balance: 0 })?;
//! let accounts_b = b.keyed("accounts", KeyedConfig::new(16), |_key: &str| Account { balance: 0 })?;
//! accounts_a.get("alice").deposit_wait(10).await?;
//! assert_eq!(accounts_b.get("alice").balance().await?, 10); // one activation cluster-wide
//!
//! a.shutdown().await; // stops its activations, releases its leases: b takes over at once
//! let _served_by_b = accounts_b.get("alice").balance().await?; // (in-memory state is not carried over)
//! b.shutdown().await;
//! # Ok(()) }
//! ```
//!
//! Observability: `tracing` spans for routed requests, lease transitions
//! and handshakes; [`ClusterNode::inspect`]; the event stream
//! ([`ClusterNode::subscribe_events`]); and, with the `metrics` feature, the
//! counters and gauges through the `metrics` facade
//! (`ClusterNode::export_metrics`). `docs/operations.md` lists them all.
//!
//! See `docs/architecture.md` for the design, `docs/protocol.md` for the
//! wire format and `docs/guarantees.md` for what is promised and how each
//! promise is tested.

// Lets `#[actor(remote)]` expansions inside this crate name it by path.
#[allow(unused_extern_crates)]
extern crate self as axactor_cluster;

pub use axactor;

/// `true` when the simulation's deliberate bug `$m` ([`sim::Mutant`]) is
/// selected on this thread (feature `mutants`); the constant `false` in
/// every other build.
macro_rules! mutant {
    ($m:ident) => {{
        #[cfg(feature = "mutants")]
        {
            $crate::sim::Mutant::$m.is_active()
        }
        #[cfg(not(feature = "mutants"))]
        {
            false
        }
    }};
}

mod client;
pub mod config;
mod conn_rules;
mod counter_reasons;
mod deadline;
#[cfg(test)]
mod e2e_tests;
mod env;
mod error;
mod fence;
mod fence_clock;
mod future;
pub mod handshake;
mod hash;
mod host;
mod hosted;
mod id;
mod keyed;
pub mod lease;
mod manager;
mod node;
pub mod overlay;
mod remote;
mod route_hint;
pub mod session;
pub mod shard;
mod signal;
#[cfg(feature = "sim")]
pub mod sim;
mod tell_budget;
pub mod wire;

pub use client::{MAX_ATTEMPTS, MAX_RETRY_DELAY, MIN_RETRY_DELAY};
pub use config::{ClusterConfig, ConfigProblem};
pub use env::{Env, NodeEvent, Observer};
pub use error::{ClusterError, RemoteError};
pub use hosted::{DownEvent, PendingReply};
pub use id::{NodeId, SessionId};
pub use keyed::{
    DEFAULT_IDLE_TIMEOUT, DEFAULT_MAILBOX_CAPACITY, DEFAULT_MAX_ACTIVATIONS, DEFAULT_MAX_MONITORS,
    DEFAULT_STOP_TIMEOUT, Keyed, KeyedConfig, MAX_SHARDS, Singleton,
};
pub use lease::{Epoch, GroupGrant, Lease, LeaseGroup, LeaseStore, LeaseStoreError, MemoryLeaseStore};
#[cfg(feature = "etcd-lease")]
pub use lease::{EtcdLeaseStore, EtcdStoreOptions};
#[cfg(feature = "redis-lease")]
pub use lease::{RedisLeaseStore, RedisStoreOptions};
#[cfg(feature = "metrics")]
pub use node::METRICS_EXPORT_INTERVAL;
pub use node::{
    AuthFailure, AuthFailureReason, CLOSE_GRACE, CONTROL_QUEUE_CAPACITY, ClusterInspect, ClusterNode, Counters,
    DATA_QUEUE_CAPACITY, Membership, OWED_RESPONSE_CAPACITY, OwnedShard, PeerDirection, PeerInfo, PeerState,
    SHUTDOWN_TIMEOUT, TableUse,
};
pub use node::{ClusterEvent, ClusterEvents, DEFAULT_EVENT_CAPACITY, MAX_EVENT_CAPACITY};
pub use overlay::{ClusterOverlay, InMemoryOverlay, LinkFaults, OverlayError, TcpKeepaliveOptions, TcpOverlay};
#[cfg(feature = "tls")]
pub use overlay::{TlsConfig, TlsOverlay};
pub use remote::{AskOf, RemoteActor, RemoteHandle, ReplyOf, TellOf};
pub use shard::placement::MemberState;
pub use wire::DownReason;

/// Items only the code generated by `#[actor(remote)]` uses; not part of the API.
#[doc(hidden)]
pub mod __private {
    pub use tokio::sync::mpsc;
}
