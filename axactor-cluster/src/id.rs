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

impl SessionId {
    /// The string form stored in lease records: the [`Display`](fmt::Display)
    /// form `{node}#{boot:016x}.{counter}`. [`SessionId::parse`] reads it back.
    #[cfg_attr(not(any(feature = "redis-lease", feature = "etcd-lease")), allow(dead_code))]
    pub(crate) fn encode(&self) -> String {
        self.to_string()
    }

    /// Parses the output of [`SessionId::encode`]; `None` for anything else.
    ///
    /// The node name is everything before the *last* `#` (so it may itself
    /// contain `#`); the boot part must be exactly 16 lowercase hex digits and
    /// the counter a decimal without sign or leading zeros, so every accepted
    /// string is the encoding of exactly one session.
    #[cfg_attr(not(any(feature = "redis-lease", feature = "etcd-lease")), allow(dead_code))]
    pub(crate) fn parse(s: &str) -> Option<SessionId> {
        let (node, rest) = s.rsplit_once('#')?;
        let (boot, counter) = rest.split_once('.')?;
        let hex = |b: u8| b.is_ascii_digit() || (b'a'..=b'f').contains(&b);
        if boot.len() != 16 || !boot.bytes().all(hex) {
            return None;
        }
        let canonical = !counter.is_empty()
            && counter.bytes().all(|b| b.is_ascii_digit())
            && (counter == "0" || !counter.starts_with('0'));
        if !canonical {
            return None;
        }
        Some(SessionId {
            node: NodeId::new(node),
            boot: u64::from_str_radix(boot, 16).ok()?,
            counter: counter.parse().ok()?,
        })
    }
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    use super::*;

    #[test]
    fn parse_rejects_malformed_strings() {
        for bad in [
            "",
            "a",
            "a#",
            "a#0000000000000001",
            "a#0000000000000001.",
            "a#000000000000001.0",
            "a#00000000000000001.0",
            "a#000000000000000G.0",
            "a#000000000000000A.0",
            "a#0000000000000001.01",
            "a#0000000000000001.+1",
            "a#0000000000000001.-1",
            "a#0000000000000001.1x",
            "a#0000000000000001.18446744073709551616",
            "a.0000000000000001#0",
        ] {
            assert_eq!(SessionId::parse(bad), None, "{bad:?}");
        }
        let s = SessionId::parse("a#b#00000000000000ff.0").expect("valid");
        assert_eq!((s.node.as_str(), s.boot, s.counter), ("a#b", 255, 0));
    }

    proptest! {
        #[test]
        fn encode_parse_round_trips(node in ".*", boot in any::<u64>(), counter in any::<u64>()) {
            let s = SessionId { node: NodeId::new(node), boot, counter };
            prop_assert_eq!(SessionId::parse(&s.encode()), Some(s));
        }

        #[test]
        fn parse_accepts_only_encodings(text in ".*") {
            if let Some(s) = SessionId::parse(&text) {
                prop_assert_eq!(s.encode(), text);
            }
        }
    }
}
