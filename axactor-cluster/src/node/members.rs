//! The node's book of cluster members, the inputs of placement's
//! [`standing`](crate::shard::placement::standing): the live members last
//! read from the lease store (with when each name's newest session was
//! first seen), the members this node dialled and failed to authenticate
//! with (and why), and the standing the lease driver last computed.
//!
//! Written by the membership loop (members), the connection driver (an
//! outbound handshake's outcome) and the lease driver (standing); read by
//! the lease driver and `inspect()`. One mutex, held only to copy or update.
//!
//! Bounds: the member map holds the store's live members (it is replaced on
//! every read); failures are kept only for names in it, at most `max_peers`
//! of them (a failure beyond that is counted and logged, not kept).

use std::collections::{BTreeMap, BTreeSet};

use parking_lot::Mutex;
use tokio::time::Instant;

use super::inspect::{AuthFailure, AuthFailureReason, Membership};
use crate::handshake::HandshakeError;
use crate::id::{NodeId, SessionId};
use crate::shard::placement::MemberState;
use crate::wire::hello::Refusal;

/// The reason an outbound handshake failure shows the peer cannot be a
/// member (another token, no common version); `None` for failures that say
/// nothing about membership (timeouts, closed links, a wrong peer).
pub(crate) fn auth_failure_reason(err: &HandshakeError) -> Option<AuthFailureReason> {
    match err {
        HandshakeError::WrongProof | HandshakeError::PeerRefused(Refusal::BadProof) => {
            Some(AuthFailureReason::WrongToken)
        }
        HandshakeError::IncompatibleVersion { .. }
        | HandshakeError::Downgrade { .. }
        | HandshakeError::PeerRefused(Refusal::IncompatibleVersion) => Some(AuthFailureReason::IncompatibleVersion),
        _ => None,
    }
}

#[derive(Debug)]
struct Failure {
    reason: AuthFailureReason,
    count: u64,
    last: Instant,
}

#[derive(Debug)]
struct Book {
    reads: u64,
    last_read: Option<Instant>,
    /// The lease driver waits for the next read.
    awaited: bool,
    seen: BTreeMap<SessionId, Instant>,
    failures: BTreeMap<NodeId, Failure>,
    state: MemberState,
}

/// See the module docs.
#[derive(Debug)]
pub(crate) struct MemberBook {
    book: Mutex<Book>,
    cap: usize,
}

/// A copy of the book's placement inputs.
#[derive(Debug)]
pub(crate) struct MemberSnapshot {
    /// When the members were last read.
    pub(crate) last_read: Option<Instant>,
    /// Live members by name: when the name's newest session was first seen.
    pub(crate) members: BTreeMap<NodeId, Instant>,
    pub(crate) failed: BTreeSet<NodeId>,
}

/// What [`MemberBook::auth_failed`] did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Recorded {
    /// First failure with this name (or a new reason): worth a warning.
    New,
    /// The name had failed for this reason before.
    Again,
    /// The book is full; nothing was kept.
    Full,
}

impl MemberBook {
    pub(crate) fn new(cap: usize) -> MemberBook {
        let book = Book {
            reads: 0,
            last_read: None,
            awaited: false,
            seen: BTreeMap::new(),
            failures: BTreeMap::new(),
            state: MemberState::Joining,
        };
        MemberBook { book: Mutex::new(book), cap }
    }

    /// Records a read of the live members (`me` left out); returns whether
    /// the lease driver should look: the set changed, this is the first
    /// read, or the driver waits for it ([`MemberBook::await_read`]).
    pub(crate) fn update(&self, me: &NodeId, members: &[SessionId], now: Instant) -> bool {
        let mut b = self.book.lock();
        b.reads = b.reads.saturating_add(1);
        b.last_read = Some(now);
        let mut changed = b.reads == 1 || std::mem::take(&mut b.awaited);
        let live: BTreeSet<&SessionId> = members.iter().filter(|s| s.node != *me).collect();
        let before = b.seen.len();
        b.seen.retain(|s, _| live.contains(s));
        changed |= b.seen.len() != before;
        for s in live {
            if !b.seen.contains_key(s) {
                b.seen.insert(s.clone(), now);
                changed = true;
            }
        }
        let names: BTreeSet<NodeId> = b.seen.keys().map(|s| s.node.clone()).collect();
        b.failures.retain(|name, _| names.contains(name));
        changed
    }

    /// Records that a dial of `name` failed to authenticate for `reason`.
    pub(crate) fn auth_failed(&self, name: &NodeId, reason: AuthFailureReason, now: Instant) -> Recorded {
        let mut b = self.book.lock();
        let full = b.failures.len() >= self.cap;
        match b.failures.get_mut(name) {
            Some(f) => {
                let again = f.reason == reason;
                f.reason = reason;
                f.count = f.count.saturating_add(1);
                f.last = now;
                if again { Recorded::Again } else { Recorded::New }
            }
            None if full => Recorded::Full,
            None => {
                b.failures.insert(name.clone(), Failure { reason, count: 1, last: now });
                Recorded::New
            }
        }
    }

    /// Asks for a kick of the lease driver after the next read.
    pub(crate) fn await_read(&self) {
        self.book.lock().awaited = true;
    }

    /// Forgets failures under `name`: a session with it authenticated.
    pub(crate) fn auth_ok(&self, name: &NodeId) {
        self.book.lock().failures.remove(name);
    }

    pub(crate) fn snapshot(&self) -> MemberSnapshot {
        let b = self.book.lock();
        let mut members = BTreeMap::new();
        for (s, since) in &b.seen {
            let e = members.entry(s.node.clone()).or_insert(*since);
            *e = (*e).max(*since);
        }
        MemberSnapshot { last_read: b.last_read, members, failed: b.failures.keys().cloned().collect() }
    }

    /// Sets the standing; returns the previous one.
    pub(crate) fn set_state(&self, state: MemberState) -> MemberState {
        std::mem::replace(&mut self.book.lock().state, state)
    }

    /// The standing and the failures, for `inspect()`.
    pub(crate) fn info(&self, now: Instant) -> Membership {
        let b = self.book.lock();
        let auth_failures = b
            .failures
            .iter()
            .map(|(name, f)| AuthFailure {
                name: name.clone(),
                reason: f.reason,
                failures: f.count,
                since_last: now.saturating_duration_since(f.last),
            })
            .collect();
        Membership { state: b.state, auth_failures }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn session(node: &str, boot: u64) -> SessionId {
        SessionId { node: NodeId::new(node), boot, counter: 0 }
    }

    #[test]
    fn failures_are_kept_for_live_members_only_and_bounded() {
        let book = MemberBook::new(2);
        let t0 = Instant::now();
        let me = NodeId::new("me");
        book.update(&me, &[session("me", 1), session("a", 1), session("b", 1), session("c", 1)], t0);
        let snap = book.snapshot();
        assert_eq!(snap.members.keys().map(NodeId::as_str).collect::<Vec<_>>(), ["a", "b", "c"]);
        assert_eq!(book.auth_failed(&NodeId::new("a"), AuthFailureReason::WrongToken, t0), Recorded::New);
        assert_eq!(book.auth_failed(&NodeId::new("a"), AuthFailureReason::WrongToken, t0), Recorded::Again);
        assert_eq!(book.auth_failed(&NodeId::new("b"), AuthFailureReason::WrongToken, t0), Recorded::New);
        assert_eq!(book.auth_failed(&NodeId::new("c"), AuthFailureReason::WrongToken, t0), Recorded::Full);
        assert_eq!(book.info(t0).auth_failures.len(), 2);
        book.auth_ok(&NodeId::new("a"));
        // b left the store: its failure goes too.
        book.update(&me, &[session("a", 1), session("c", 1)], t0);
        assert!(book.snapshot().failed.is_empty());
    }

    #[test]
    fn a_restarted_member_is_seen_afresh() {
        let book = MemberBook::new(8);
        let t0 = Instant::now();
        let me = NodeId::new("me");
        book.update(&me, &[session("a", 1)], t0);
        let t1 = t0 + std::time::Duration::from_secs(30);
        book.update(&me, &[session("a", 1), session("a", 2)], t1);
        assert_eq!(book.snapshot().members.get(&NodeId::new("a")), Some(&t1));
    }

    #[test]
    fn only_membership_failures_count() {
        assert_eq!(auth_failure_reason(&HandshakeError::WrongProof), Some(AuthFailureReason::WrongToken));
        assert_eq!(
            auth_failure_reason(&HandshakeError::PeerRefused(Refusal::BadProof)),
            Some(AuthFailureReason::WrongToken)
        );
        assert_eq!(
            auth_failure_reason(&HandshakeError::PeerRefused(Refusal::IncompatibleVersion)),
            Some(AuthFailureReason::IncompatibleVersion)
        );
        assert_eq!(auth_failure_reason(&HandshakeError::TimedOut), None);
        assert_eq!(auth_failure_reason(&HandshakeError::PeerRefused(Refusal::Timeout)), None);
    }
}
