//! The cluster layer of axactor: lease-fenced shard ownership over
//! authenticated overlays.
//!
//! **Status: skeleton.** The transport (wire protocol, authenticated
//! sessions, in-memory and TCP overlays) and the lease/fencing layer are
//! being built (see the repository's issues); nothing is exported yet except
//! the re-export of the local runtime this crate builds on.
//!
//! ```
//! // The local runtime is available through this crate as well.
//! let system = axactor_cluster::axactor::System::new();
//! assert_eq!(system.actor_count(), 0);
//! ```

pub use axactor;
