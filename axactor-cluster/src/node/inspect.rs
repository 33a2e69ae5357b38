//! [`ClusterInspect`]: a snapshot of a node for tests and operators, and the
//! live counters it is taken from.
//!
//! Every rejected or dropped input is counted here with its reason (the
//! "no silent drops" promise). Plain events are atomics; the labelled
//! counters are an array of atomics per reason enum (`counter_reasons.rs`),
//! indexed by the variant (no lock), that a snapshot turns into maps keyed
//! by the variants' stable labels.

use std::collections::BTreeMap;
use std::marker::PhantomData;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use crate::counter_reasons::{DropReason, FrameRejection, HandshakeFailure, LeaseEvent, Reason, RequestRejection};
use crate::id::{NodeId, SessionId};
use crate::shard::placement::MemberState;

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
    /// Time since the peer was last known alive: since the heartbeat tick
    /// that first saw its latest authenticated frames (frames are stamped
    /// by the next tick, so this lags their arrival by at most one
    /// `heartbeat_interval`), or since the connection was established.
    pub last_seen: Duration,
    /// Round-trip time of the latest answered heartbeat.
    pub rtt: Option<Duration>,
    /// Heartbeats the peer has answered on this connection.
    pub heartbeats_acked: u64,
}

/// Counters since the node started. Maps are keyed by a stable reason label
/// and hold only the labels counted at least once; [`Counters::labels`]
/// lists every label each map can hold.
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
    /// codec label (`unknown_tag`, `truncated`, `malformed`,
    /// `trailing_bytes`), `handshake_after_auth`.
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
    /// Batches of unacknowledged tells received (`Tells` frames, protocol
    /// version 3: a sender gathers the tells it queues while a connection
    /// is behind).
    pub tell_batches_received: u64,
    /// The tells those batches carried.
    pub batched_tells_received: u64,
    /// Times a connection's reader waited for room in an activation's full
    /// mailbox (after its yields brought none), reading nothing else on the
    /// connection meanwhile; bounded by its patience (at most 2 ms at once,
    /// 20 ms stored, refilled at a tenth of the time).
    pub mailbox_waits: u64,
    /// The time those waits took, in microseconds.
    pub mailbox_wait_micros: u64,
    /// Frames a connection's reader took from the sender's own task instead
    /// of its queue (in-memory links, while nothing was queued): handled
    /// without waking the reader task.
    pub frames_read_inline: u64,
    /// Data-plane requests refused because no registry is hosted yet.
    pub data_rejected_no_registry: u64,
    /// Messages and signals dropped without a connection error, by reason:
    /// `control_queue_full`, `data_queue_full`, `unacked_tell_rejected`,
    /// `unencodable`, `inflight_table_full`, `remote_monitor_table_full`,
    /// `unmatched_response`, `unmatched_down`, `request_abandoned`,
    /// `down_receiver_full`, `down_connection_closed`,
    /// `demonitor_connection_closed`, `remonitor_not_queued`,
    /// `remote_monitor_connection_ended`, `lease_notice_other_count`, and
    /// what a closing connection never sent: `tell_discarded_at_close`,
    /// `response_discarded_at_close`, `reply_discarded_at_close`,
    /// `down_discarded_at_close`, `control_discarded_at_close`.
    /// docs/operations.md explains each.
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

impl Counters {
    /// Every label each labelled counter can carry, as `(field, labels)`:
    /// `handshake_failures`, `frame_rejections`, `dropped`,
    /// `requests_rejected` and `leases`, in that order, each with its
    /// labels in a fixed order. A map of a snapshot holds only labels from
    /// its list (and only those counted at least once), so a dashboard or
    /// an exporter can know every series in advance. docs/operations.md
    /// explains each label.
    pub fn labels() -> &'static [(&'static str, &'static [&'static str])] {
        const LABELS: &[(&str, &[&str])] = &[
            ("handshake_failures", HandshakeFailure::LABELS),
            ("frame_rejections", FrameRejection::LABELS),
            ("dropped", DropReason::LABELS),
            ("requests_rejected", RequestRejection::LABELS),
            ("leases", LeaseEvent::LABELS),
        ];
        LABELS
    }
}

/// One labelled counter: a count per variant of the reason `R`
/// (`N` is `R::ALL.len()`), indexed by the variant.
#[derive(Debug)]
struct Tally<R, const N: usize> {
    counts: [AtomicU64; N],
    reason: PhantomData<fn(R)>,
}

impl<R: Reason, const N: usize> Default for Tally<R, N> {
    fn default() -> Self {
        const { assert!(N == R::ALL.len(), "a tally has one count per variant") };
        Tally { counts: std::array::from_fn(|_| AtomicU64::new(0)), reason: PhantomData }
    }
}

impl<R: Reason, const N: usize> Tally<R, N> {
    #[inline]
    fn bump(&self, reason: R) {
        self.add(reason, 1);
    }

    #[inline]
    fn add(&self, reason: R, n: u64) {
        // Always `Some`: `index() < R::ALL.len() == N` (asserted in `default`).
        if let Some(count) = self.counts.get(reason.index()) {
            count.fetch_add(n, Ordering::Relaxed);
        }
    }

    /// The counts by label, only the non-zero ones.
    fn snapshot(&self) -> BTreeMap<&'static str, u64> {
        R::LABELS
            .iter()
            .zip(&self.counts)
            .filter_map(|(label, count)| {
                let n = count.load(Ordering::Relaxed);
                (n > 0).then_some((*label, n))
            })
            .collect()
    }
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
    pub(crate) tell_batches_received: AtomicU64,
    pub(crate) batched_tells_received: AtomicU64,
    pub(crate) mailbox_waits: AtomicU64,
    pub(crate) mailbox_wait_micros: AtomicU64,
    pub(crate) frames_read_inline: AtomicU64,
    pub(crate) data_rejected_no_registry: AtomicU64,
    pub(crate) dial_failures: AtomicU64,
    pub(crate) member_auth_failures: AtomicU64,
    handshake_failures: Tally<HandshakeFailure, { HandshakeFailure::ALL.len() }>,
    frame_rejections: Tally<FrameRejection, { FrameRejection::ALL.len() }>,
    dropped: Tally<DropReason, { DropReason::ALL.len() }>,
    requests_rejected: Tally<RequestRejection, { RequestRejection::ALL.len() }>,
    leases: Tally<LeaseEvent, { LeaseEvent::ALL.len() }>,
    pub(crate) handshake_source_limit_exceeded: AtomicU64,
    pub(crate) events_dropped: AtomicU64,
}

/// Adds one to `counter`.
pub(crate) fn bump(counter: &AtomicU64) {
    counter.fetch_add(1, Ordering::Relaxed);
}

impl LiveCounters {
    pub(crate) fn handshake_failed(&self, reason: HandshakeFailure) {
        self.handshake_failures.bump(reason);
    }

    pub(crate) fn frame_rejected(&self, reason: FrameRejection) {
        self.frame_rejections.bump(reason);
    }

    pub(crate) fn dropped(&self, reason: DropReason) {
        self.dropped.bump(reason);
    }

    /// `n` drops for `reason` at once (a batch of tells, the replies of a
    /// closed connection).
    pub(crate) fn dropped_n(&self, reason: DropReason, n: usize) {
        self.dropped.add(reason, n as u64);
    }

    pub(crate) fn request_rejected(&self, reason: RequestRejection) {
        self.requests_rejected.bump(reason);
    }

    pub(crate) fn lease_event(&self, event: LeaseEvent) {
        self.leases.bump(event);
    }

    pub(crate) fn snapshot(&self) -> Counters {
        let get = |a: &AtomicU64| a.load(Ordering::Relaxed);
        Counters {
            handshakes_established: get(&self.handshakes_established),
            handshake_failures: self.handshake_failures.snapshot(),
            frame_rejections: self.frame_rejections.snapshot(),
            preauth_budget_exceeded: get(&self.preauth_budget_exceeded),
            preauth_sealed_frames: get(&self.preauth_sealed_frames),
            handshake_capacity_exceeded: get(&self.handshake_capacity_exceeded),
            peer_table_full: get(&self.peer_table_full),
            sessions_replaced: get(&self.sessions_replaced),
            duplicate_connections: get(&self.duplicate_connections),
            heartbeat_timeouts: get(&self.heartbeat_timeouts),
            goodbyes_received: get(&self.goodbyes_received),
            tell_batches_received: get(&self.tell_batches_received),
            batched_tells_received: get(&self.batched_tells_received),
            mailbox_waits: get(&self.mailbox_waits),
            mailbox_wait_micros: get(&self.mailbox_wait_micros),
            frames_read_inline: get(&self.frames_read_inline),
            data_rejected_no_registry: get(&self.data_rejected_no_registry),
            dropped: self.dropped.snapshot(),
            dial_failures: get(&self.dial_failures),
            requests_rejected: self.requests_rejected.snapshot(),
            leases: self.leases.snapshot(),
            member_auth_failures: get(&self.member_auth_failures),
            handshake_source_limit_exceeded: get(&self.handshake_source_limit_exceeded),
            events_dropped: get(&self.events_dropped),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The map of `counters` that `field` names in `Counters::labels`.
    fn map<'a>(counters: &'a Counters, field: &str) -> &'a BTreeMap<&'static str, u64> {
        match field {
            "handshake_failures" => &counters.handshake_failures,
            "frame_rejections" => &counters.frame_rejections,
            "dropped" => &counters.dropped,
            "requests_rejected" => &counters.requests_rejected,
            "leases" => &counters.leases,
            other => panic!("Counters has no labelled map `{other}`"),
        }
    }

    #[test]
    fn a_fresh_snapshot_has_empty_maps() {
        assert_eq!(LiveCounters::default().snapshot(), Counters::default());
    }

    #[test]
    fn each_reason_counts_under_its_label_in_its_own_map() {
        let live = LiveCounters::default();
        live.dropped(DropReason::RequestAbandoned);
        live.dropped(DropReason::RequestAbandoned);
        live.request_rejected(RequestRejection::StaleEpoch);
        live.handshake_failed(HandshakeFailure::OwnName);
        live.frame_rejected(FrameRejection::Truncated);
        live.lease_event(LeaseEvent::Fenced);
        let snap = live.snapshot();
        assert_eq!(snap.dropped, BTreeMap::from([("request_abandoned", 2)]));
        assert_eq!(snap.requests_rejected, BTreeMap::from([("stale_epoch", 1)]));
        assert_eq!(snap.handshake_failures, BTreeMap::from([("own_name", 1)]));
        assert_eq!(snap.frame_rejections, BTreeMap::from([("truncated", 1)]));
        assert_eq!(snap.leases, BTreeMap::from([("fenced", 1)]));
    }

    #[test]
    fn labels_lists_every_key_each_map_can_hold() {
        let live = LiveCounters::default();
        HandshakeFailure::ALL.iter().for_each(|&r| live.handshake_failed(r));
        FrameRejection::ALL.iter().for_each(|&r| live.frame_rejected(r));
        DropReason::ALL.iter().for_each(|&r| live.dropped(r));
        RequestRejection::ALL.iter().for_each(|&r| live.request_rejected(r));
        LeaseEvent::ALL.iter().for_each(|&r| live.lease_event(r));
        let snap = live.snapshot();
        let fields: Vec<_> = Counters::labels().iter().map(|(field, _)| *field).collect();
        assert_eq!(fields, ["handshake_failures", "frame_rejections", "dropped", "requests_rejected", "leases"]);
        for (field, labels) in Counters::labels() {
            let keys: Vec<_> = map(&snap, field).keys().copied().collect();
            let mut listed = labels.to_vec();
            listed.sort_unstable();
            assert_eq!(keys, listed, "{field}");
            assert!(map(&snap, field).values().all(|&n| n == 1), "{field}");
        }
    }
}
