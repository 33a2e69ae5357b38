//! Node and session identities.
//!
//! A [`NodeId`] is the logical name an operator gives a node. A
//! [`SessionId`] names one *run* of that node: the name, a random part drawn
//! at boot, and a counter of sessions started by this process. Leases and
//! peer sessions name a `SessionId`, never an address or a bare name, so a
//! restarted node is a new session and frames of its previous run are
//! rejected.

use std::fmt;
use std::sync::Arc;

use serde::{Deserialize, Serialize};

/// The logical name of a node. Displays as the name.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct NodeId(Arc<str>);

impl NodeId {
    /// A node id with the logical name `name`.
    pub fn new(name: impl Into<String>) -> NodeId {
        NodeId(Arc::from(name.into()))
    }

    /// The logical name.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for NodeId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// One run of a node: its name, a random per-boot part, and a counter of
/// sessions started by this process (so two `ClusterNode::start` calls with
/// one name in one process differ too).
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct SessionId {
    /// The node's logical name.
    pub node: NodeId,
    /// Random, drawn once per boot from the OS CSPRNG.
    pub boot: u64,
    /// Sessions started by this process before this one.
    pub counter: u64,
}

impl fmt::Display for SessionId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}#{:016x}.{}", self.node, self.boot, self.counter)
    }
}
