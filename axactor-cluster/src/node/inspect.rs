//! [`ClusterInspect`]: a snapshot of a node for tests and operators, and the
//! live counters it is taken from.
//!
//! Every rejected or dropped input is counted here with its reason (the
//! "no silent drops" promise). Plain events are atomics; failures are kept
//! by a short stable label (`HandshakeError::label`, `OpenError::label`, a
//! codec label) in small maps that only the fixed set of labels can grow.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use parking_lot::Mutex;

use crate::id::{NodeId, SessionId};
use crate::shard::placement::MemberState;
use crate::wire::CodecError;

pub use super::table::PeerDirection;

/// A snapshot of a node, from `ClusterNode::inspect`.
#[derive(Debug, Clone)]
#[non_exhaustive]
pub struct ClusterInspect {
    /// This node's name.
    pub node: NodeId,
    /// This node's session.
    pub session: SessionId,
    /// Authenticated peers, sorted by name.
    pub peers: Vec<PeerInfo>,
    /// Shards this node holds (usable now), sorted by registry and shard.
    pub shards: Vec<OwnedShard>,
    /// Event and rejection counters since start.
    pub counters: Counters,
    /// How full each bounded table is, against its cap.
    pub tables: Vec<TableUse>,
    /// Whether this node takes shards, and the live members it failed to
    /// authenticate with.
    pub membership: Membership,
}

/// Whether a node takes shards, and why not (see `MemberState`).
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct Membership {
    /// The node's standing, as of its lease driver's last placement pass.
    pub state: MemberState,
    /// Live members this node dialled and failed to authenticate with, and
    /// has no authenticated session with now, sorted by name.
    pub auth_failures: Vec<AuthFailure>,
}

/// A live member this node failed to authenticate with.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct AuthFailure {
    /// The member's name.
    pub name: NodeId,
    /// Why.
    pub reason: AuthFailureReason,
    /// Failed dials so far.
    pub failures: u64,
    /// Time since the latest one.
    pub since_last: Duration,
}

/// Why a handshake with a member failed in a way that shows it cannot be in
/// this node's cluster.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum AuthFailureReason {
    /// A proof did not verify: the two nodes have different `auth_token`s.
    WrongToken,
    /// The two nodes share no protocol version.
    IncompatibleVersion,
}

/// How full one bounded table of a node is.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct TableUse {
    /// The table: `peers`, `requests_in_flight`, `asks_executing`,
    /// `remote_monitors`, `owner_cache`, `handshake_sources` (addresses
    /// with a handshake pending), or `activations/{registry}` and
    /// `monitors/{registry}` per hosted registry.
    pub table: String,
    /// Entries now.
    pub len: usize,
    /// The most it may hold (its `ClusterConfig` / `KeyedConfig` bound).
    pub cap: usize,
}

/// A shard held by a node.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
#[non_exhaustive]
pub struct OwnedShard {
    /// The registry (or singleton) id.
    pub registry: String,
    /// The shard.
    pub shard: u32,
    /// The lease epoch it is held at.
    pub epoch: u64,
}

impl ClusterInspect {
    /// The tables holding more entries than their cap (none, unless a bound
    /// is broken).
    pub fn tables_over_cap(&self) -> Vec<&TableUse> {
        self.tables.iter().filter(|t| t.len > t.cap).collect()
    }

    /// How many shards of `registry` this node holds.
    pub fn owned_count(&self, registry: &str) -> usize {
        self.shards.iter().filter(|s| s.registry == registry).count()
    }

    /// The peer named `name`, if it is connected.
    pub fn peer(&self, name: &str) -> Option<&PeerInfo> {
        self.peers.iter().find(|p| p.name.as_str() == name)
    }
}

/// Where a peer connection stands. Only authenticated peers are listed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum PeerState {
    /// The handshake succeeded; frames are sealed with the session's keys.
    Authenticated,
}

/// One authenticated peer.
#[derive(Debug, Clone)]
#[non_exhaustive]
pub struct PeerInfo {
    /// The peer's logical name.
    pub name: NodeId,
    /// The peer's session (its run).
    pub session: SessionId,
    /// The connection's state.
    pub state: PeerState,
    /// The negotiated protocol version.
    pub version: u16,
    /// Who dialled.
    pub direction: PeerDirection,
    /// Time since the last authenticated frame from the peer.
    pub last_seen: Duration,
    /// Round-trip time of the latest answered heartbeat.
    pub rtt: Option<Duration>,
    /// Heartbeats the peer has answered on this connection.
    pub heartbeats_acked: u64,
}

/// Counters since the node started. Maps are keyed by a stable reason label.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct Counters {
    /// Handshakes that established a session.
    pub handshakes_established: u64,
    /// Failed handshakes by reason: `HandshakeError::label` (`wrong_proof`,
    /// `unexpected`, `downgrade`, `wrong_peer`, `timed_out`,
    /// `hello_timed_out` (an accepted link sent no Hello within
    /// `hello_timeout`), `incompatible_version`, `invalid_range`,
    /// `bad_name`, `self_connect`, `peer_refused`), `own_name` (a peer
    /// claimed this node's name), `link_closed` (the link ended first, e.g.
    /// an oversized frame closed it in the overlay), a codec label
    /// (`unknown_tag`, `truncated`, `malformed`, `trailing_bytes`),
    /// `preauth_budget_exceeded`, `nonce`, `peer_identity` (the peer
    /// claimed a name its transport identity, e.g. its TLS client
    /// certificate, does not carry). docs/operations.md explains each.
    pub handshake_failures: BTreeMap<&'static str, u64>,
    /// Established connections closed on a bad frame, by reason:
    /// `OpenError::label` (`bad_mac`, `out_of_sequence` = replay or
    /// reorder, `too_short`, `wrong_tag`, `seq_exhausted`, `closed`), a
    /// codec label, `handshake_after_auth`.
    pub frame_rejections: BTreeMap<&'static str, u64>,
    /// Frames before authentication over the budget (connection closed).
    pub preauth_budget_exceeded: u64,
    /// Sealed frames received before authentication (connection closed).
    pub preauth_sealed_frames: u64,
    /// Inbound connections closed because too many handshakes were pending.
    pub handshake_capacity_exceeded: u64,
    /// Established connections closed because the peer table was full.
    pub peer_table_full: u64,
    /// Sessions replaced by a new session of the same name (a restart).
    pub sessions_replaced: u64,
    /// Connections of the same session replaced or dropped as duplicates
    /// (reconnects, crossed dials).
    pub duplicate_connections: u64,
    /// Connections closed because the peer stayed silent for `node_ttl`.
    pub heartbeat_timeouts: u64,
    /// Goodbyes received (graceful closes by peers).
    pub goodbyes_received: u64,
    /// Data-plane requests refused because no registry is hosted yet.
    pub data_rejected_no_registry: u64,
    /// Messages and signals dropped without a connection error, by reason:
    /// `control_queue_full`, `data_queue_full`, `unacked_tell_rejected`,
    /// `unencodable`, `inflight_table_full`, `remote_monitor_table_full`,
    /// `unmatched_response`, `unmatched_down`, `request_abandoned`,
    /// `down_receiver_full`, `down_connection_closed`,
    /// `demonitor_connection_closed`, `remonitor_not_queued`,
    /// `remote_monitor_connection_ended`, and what a closing connection never
    /// sent: `tell_discarded_at_close`, `response_discarded_at_close`,
    /// `reply_discarded_at_close`, `down_discarded_at_close`,
    /// `control_discarded_at_close`. docs/operations.md explains each.
    pub dropped: BTreeMap<&'static str, u64>,
    /// Dials that failed in the overlay (before any handshake).
    pub dial_failures: u64,
    /// Data-plane requests from peers refused before execution, by reason
    /// (`not_owner`, `stale_epoch`, `wrong_shard`, `unknown_session`,
    /// `mailbox_full`, `actor_closed`, `unauthorized`, `bad_payload`,
    /// `overloaded`).
    pub requests_rejected: BTreeMap<&'static str, u64>,
    /// Lease events on this node, by kind (`acquired`, `released` (the
    /// store confirmed a release: after a handover or at graceful
    /// shutdown), `handed_over`, `fenced`, `shard_count_conflict`).
    pub leases: BTreeMap<&'static str, u64>,
    /// Dials of live members that failed authentication (wrong token, no
    /// common protocol version): see `ClusterInspect::membership`.
    pub member_auth_failures: u64,
    /// Inbound connections closed at once because their source address
    /// already had `max_pending_handshakes_per_source` handshakes pending.
    pub handshake_source_limit_exceeded: u64,
    /// Events of the node's event stream dropped because a subscriber's
    /// queue was full (one per event per subscriber that missed it; each
    /// subscriber also sees a `ClusterEvent::Lagged` in its stream).
    pub events_dropped: u64,
}

/// The live counters behind [`Counters`].
#[derive(Debug, Default)]
pub(crate) struct LiveCounters {
    pub(crate) handshakes_established: AtomicU64,
    pub(crate) preauth_budget_exceeded: AtomicU64,
    pub(crate) preauth_sealed_frames: AtomicU64,
    pub(crate) handshake_capacity_exceeded: AtomicU64,
    pub(crate) peer_table_full: AtomicU64,
    pub(crate) sessions_replaced: AtomicU64,
    pub(crate) duplicate_connections: AtomicU64,
    pub(crate) heartbeat_timeouts: AtomicU64,
    pub(crate) goodbyes_received: AtomicU64,
    pub(crate) data_rejected_no_registry: AtomicU64,
    pub(crate) dial_failures: AtomicU64,
    pub(crate) member_auth_failures: AtomicU64,
    handshake_failures: Mutex<BTreeMap<&'static str, u64>>,
    frame_rejections: Mutex<BTreeMap<&'static str, u64>>,
    dropped: Mutex<BTreeMap<&'static str, u64>>,
    requests_rejected: Mutex<BTreeMap<&'static str, u64>>,
    leases: Mutex<BTreeMap<&'static str, u64>>,
    pub(crate) handshake_source_limit_exceeded: AtomicU64,
    pub(crate) events_dropped: AtomicU64,
}

/// Adds one to `counter`.
pub(crate) fn bump(counter: &AtomicU64) {
    counter.fetch_add(1, Ordering::Relaxed);
}

fn bump_label(map: &Mutex<BTreeMap<&'static str, u64>>, label: &'static str) {
    *map.lock().entry(label).or_default() += 1;
}

impl LiveCounters {
    pub(crate) fn handshake_failed(&self, label: &'static str) {
        bump_label(&self.handshake_failures, label);
    }

    pub(crate) fn frame_rejected(&self, label: &'static str) {
        bump_label(&self.frame_rejections, label);
    }

    pub(crate) fn dropped(&self, label: &'static str) {
        bump_label(&self.dropped, label);
    }

    pub(crate) fn request_rejected(&self, label: &'static str) {
        bump_label(&self.requests_rejected, label);
    }

    pub(crate) fn lease_event(&self, label: &'static str) {
        bump_label(&self.leases, label);
    }

    pub(crate) fn snapshot(&self) -> Counters {
        let get = |a: &AtomicU64| a.load(Ordering::Relaxed);
        Counters {
            handshakes_established: get(&self.handshakes_established),
            handshake_failures: self.handshake_failures.lock().clone(),
            frame_rejections: self.frame_rejections.lock().clone(),
            preauth_budget_exceeded: get(&self.preauth_budget_exceeded),
            preauth_sealed_frames: get(&self.preauth_sealed_frames),
            handshake_capacity_exceeded: get(&self.handshake_capacity_exceeded),
            peer_table_full: get(&self.peer_table_full),
            sessions_replaced: get(&self.sessions_replaced),
            duplicate_connections: get(&self.duplicate_connections),
            heartbeat_timeouts: get(&self.heartbeat_timeouts),
            goodbyes_received: get(&self.goodbyes_received),
            data_rejected_no_registry: get(&self.data_rejected_no_registry),
            dropped: self.dropped.lock().clone(),
            dial_failures: get(&self.dial_failures),
            requests_rejected: self.requests_rejected.lock().clone(),
            leases: self.leases.lock().clone(),
            member_auth_failures: get(&self.member_auth_failures),
            handshake_source_limit_exceeded: get(&self.handshake_source_limit_exceeded),
            events_dropped: get(&self.events_dropped),
        }
    }
}

/// A stable label for a codec error (the error carries no peer text).
pub(crate) fn codec_label(err: &CodecError) -> &'static str {
    match err {
        CodecError::UnknownTag(_) => "unknown_tag",
        CodecError::Truncated => "truncated",
        CodecError::Postcard(_) => "malformed",
        CodecError::TrailingBytes => "trailing_bytes",
    }
}
