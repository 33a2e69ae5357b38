//! The cluster layer of axactor: lease-fenced shard ownership over
//! authenticated overlays.
//!
//! **Status: in progress.** The wire format, the authenticated handshake and
//! the overlays are being built (issue: cluster transport); the lease and
//! fencing layer follows. What is exported today is listed below.
//!
//! ```
//! use axactor_cluster::NodeId;
//!
//! let a = NodeId::new("a");
//! assert_eq!(a.to_string(), "a");
//! ```

extern crate self as axactor_cluster;

pub use axactor;

pub mod config;
mod error;
pub mod handshake;
mod id;
pub mod lease;
mod node;
pub mod overlay;
mod remote;
mod route;
pub mod session;
pub mod wire;

pub use config::{ClusterConfig, ConfigProblem};
pub use error::{ClusterError, RemoteError};
pub use id::{NodeId, SessionId};
#[cfg(feature = "redis-lease")]
pub use lease::RedisLeaseStore;
pub use lease::{Epoch, Lease, LeaseStore, LeaseStoreError, MemoryLeaseStore};
pub use node::{
    CLOSE_GRACE, CONTROL_QUEUE_CAPACITY, ClusterInspect, ClusterNode, Counters, DATA_QUEUE_CAPACITY, PeerDirection,
    PeerInfo, PeerState, SHUTDOWN_TIMEOUT,
};
pub use overlay::{ClusterOverlay, InMemoryOverlay, LinkFaults, OverlayError, TcpKeepaliveOptions, TcpOverlay};
pub use remote::{AskOf, DownEvent, PendingReply, RemoteActor, RemoteHandle, ReplyOf, TellOf};
pub use wire::DownReason;
