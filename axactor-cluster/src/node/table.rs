//! The peer table: at most one authenticated connection per peer name, and
//! the rules that decide which connection wins (docs/protocol.md, "Session
//! replacement").
//!
//! Pure: no clock, no I/O. Only an *established* connection is ever offered
//! to [`PeerTable::admit`], so a handshake in progress or a failed one can
//! never change the table. The table is generic over the handle `H` the
//! node keeps per connection (a close signal, queues, statistics), so the
//! rules are unit-tested with `H = ()`.
//!
//! Concurrency: none; the node keeps the table behind one mutex.

use std::collections::BTreeMap;

use crate::id::{NodeId, SessionId};

/// Identifies one connection of this node (never reused within a node).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub(crate) struct ConnId(pub(crate) u64);

/// Which side opened a connection.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum PeerDirection {
    /// The peer dialled this node.
    Inbound,
    /// This node dialled the peer.
    Outbound,
}

/// One established connection, as recorded in the table.
#[derive(Debug)]
pub(crate) struct Entry<H> {
    pub(crate) conn: ConnId,
    pub(crate) session: SessionId,
    pub(crate) direction: PeerDirection,
    pub(crate) version: u16,
    pub(crate) handle: H,
}

/// What [`PeerTable::admit`] decided.
#[derive(Debug)]
pub(crate) enum Admit<H> {
    /// The first connection to this peer name.
    Inserted,
    /// The new connection took the place of `old`, which must be closed.
    Replaced {
        /// The displaced entry.
        old: Entry<H>,
        /// Whether the peer presented a new session (a restart) rather than
        /// a new connection of the same session.
        new_session: bool,
    },
    /// The new connection lost a crossed dial: close it, keep the current one.
    Duplicate(Entry<H>),
    /// The table is full: close the new connection.
    Full(Entry<H>),
}

/// Authenticated peers by name, sorted.
#[derive(Debug)]
pub(crate) struct PeerTable<H> {
    me: SessionId,
    max_peers: usize,
    peers: BTreeMap<NodeId, Entry<H>>,
}

impl<H> PeerTable<H> {
    pub(crate) fn new(me: SessionId, max_peers: usize) -> PeerTable<H> {
        PeerTable { me, max_peers, peers: BTreeMap::new() }
    }

    /// The session that initiated `entry`'s connection.
    fn initiator<'a>(&'a self, entry: &'a Entry<H>) -> &'a SessionId {
        match entry.direction {
            PeerDirection::Outbound => &self.me,
            PeerDirection::Inbound => &entry.session,
        }
    }

    /// Offers a newly established connection.
    ///
    /// Rules, in order: a peer with no entry is inserted if there is room; a
    /// different session for a known name replaces the old one; for the same
    /// session, a connection opened by the same side replaces the current
    /// one (the dialler gave up on it); for crossed dials the connection
    /// whose initiator has the smaller `SessionId` is kept, so both sides
    /// decide alike without exchanging a message.
    pub(crate) fn admit(&mut self, new: Entry<H>) -> Admit<H> {
        let name = new.session.node.clone();
        let Some(current) = self.peers.get(&name) else {
            if self.peers.len() >= self.max_peers {
                return Admit::Full(new);
            }
            self.peers.insert(name, new);
            return Admit::Inserted;
        };
        let new_session = current.session != new.session;
        let keep_new =
            new_session || current.direction == new.direction || self.initiator(&new) < self.initiator(current);
        if !keep_new {
            return Admit::Duplicate(new);
        }
        match self.peers.insert(name, new) {
            Some(old) => Admit::Replaced { old, new_session },
            None => Admit::Inserted,
        }
    }

    /// Removes the entry of `name` if it is still connection `conn` (a
    /// connection that was already replaced removes nothing).
    pub(crate) fn remove(&mut self, name: &NodeId, conn: ConnId) -> Option<Entry<H>> {
        if self.peers.get(name).is_some_and(|e| e.conn == conn) { self.peers.remove(name) } else { None }
    }

    /// The current entry of `name`.
    pub(crate) fn get(&self, name: &NodeId) -> Option<&Entry<H>> {
        self.peers.get(name)
    }

    /// Every entry, sorted by name.
    pub(crate) fn iter(&self) -> impl Iterator<Item = &Entry<H>> {
        self.peers.values()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sid(name: &str, boot: u64) -> SessionId {
        SessionId { node: NodeId::new(name), boot, counter: 0 }
    }

    fn entry(conn: u64, session: SessionId, direction: PeerDirection) -> Entry<()> {
        Entry { conn: ConnId(conn), session, direction, version: 1, handle: () }
    }

    #[test]
    fn first_connection_is_inserted_until_full() {
        let mut t = PeerTable::new(sid("me", 5), 1);
        assert!(matches!(t.admit(entry(1, sid("a", 1), PeerDirection::Inbound)), Admit::Inserted));
        assert!(matches!(t.admit(entry(2, sid("b", 1), PeerDirection::Inbound)), Admit::Full(_)));
        assert_eq!(t.get(&NodeId::new("a")).map(|e| e.conn), Some(ConnId(1)));
    }

    #[test]
    fn a_new_session_replaces_the_old_one() {
        let mut t = PeerTable::new(sid("me", 5), 1);
        let _ = t.admit(entry(1, sid("a", 1), PeerDirection::Outbound));
        match t.admit(entry(2, sid("a", 2), PeerDirection::Inbound)) {
            Admit::Replaced { old, new_session } => assert!(new_session && old.conn == ConnId(1)),
            other => panic!("{other:?}"),
        }
        // The replaced connection ending later does not remove the new one.
        assert!(t.remove(&NodeId::new("a"), ConnId(1)).is_none());
        assert!(t.remove(&NodeId::new("a"), ConnId(2)).is_some());
    }

    #[test]
    fn same_side_reconnect_replaces() {
        let mut t = PeerTable::new(sid("me", 5), 4);
        let _ = t.admit(entry(1, sid("a", 1), PeerDirection::Outbound));
        assert!(matches!(
            t.admit(entry(2, sid("a", 1), PeerDirection::Outbound)),
            Admit::Replaced { new_session: false, .. }
        ));
    }

    #[test]
    fn crossed_dials_keep_the_smaller_initiator_on_both_sides() {
        // Node "a" (boot 1) and node "b" (boot 2) dial each other at once.
        let (a, b) = (sid("a", 1), sid("b", 2));
        // On a: conn 1 = a dialled b, conn 2 = b dialled a. Order of arrival varies.
        for order in [[0, 1], [1, 0]] {
            let mut on_a = PeerTable::new(a.clone(), 4);
            let mut on_b = PeerTable::new(b.clone(), 4);
            let a_conns = [entry(1, b.clone(), PeerDirection::Outbound), entry(2, b.clone(), PeerDirection::Inbound)];
            let b_conns = [entry(1, a.clone(), PeerDirection::Inbound), entry(2, a.clone(), PeerDirection::Outbound)];
            let (mut a_conns, mut b_conns) = (a_conns.map(Some), b_conns.map(Some));
            for i in order {
                let _ = on_a.admit(a_conns[i].take().expect("once"));
                let _ = on_b.admit(b_conns[i].take().expect("once"));
            }
            // Both keep connection 1, the one "a" (the smaller session) initiated.
            assert_eq!(on_a.get(&b.node).map(|e| e.conn), Some(ConnId(1)));
            assert_eq!(on_b.get(&a.node).map(|e| e.conn), Some(ConnId(1)));
        }
    }
}
