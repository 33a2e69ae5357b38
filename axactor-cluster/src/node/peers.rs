//! [`Peers`]: the peers and sessions of one node. Only this file touches
//! them: the peer table (one authenticated connection per name, its rules
//! in `node/table.rs`), the re-dial schedule per name (capped exponential
//! backoff), the permits of inbound handshakes (node-wide and per source
//! address), the member book (`node/members.rs`) and the connection ids.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use axactor::Backoff;
use parking_lot::{Mutex, MutexGuard};
use tokio::sync::futures::Notified;
use tokio::sync::{Notify, OwnedSemaphorePermit, Semaphore, watch};
use tokio::time::Instant;

use super::inspect::{PeerInfo, PeerState};
use super::members::MemberBook;
use super::queues::{PeerLink, PeerQueues};
use super::sources::{SourceQuota, SourceSlot};
use super::table::{ConnId, PeerTable};
use crate::config::ClusterConfig;
use crate::id::{NodeId, SessionId};
use crate::overlay::LinkSource;
use crate::wire::ControlMsg;

/// What the node keeps per authenticated connection.
#[derive(Debug)]
pub(crate) struct PeerHandle {
    /// Set to `true` to close the connection (replaced, shutdown).
    pub(crate) close: watch::Sender<bool>,
    /// Liveness statistics, written by the connection's reader.
    pub(crate) stats: Arc<PeerStats>,
    /// The connection's queues (to its writer), shared with requests in flight.
    pub(crate) queues: Arc<PeerQueues>,
}

/// Liveness of one connection, in milliseconds of the node's clock.
#[derive(Debug)]
pub(crate) struct PeerStats {
    pub(crate) last_seen_ms: AtomicU64,
    /// Latest round-trip time in microseconds; `u64::MAX` until the first ack.
    pub(crate) rtt_us: AtomicU64,
    pub(crate) heartbeats_acked: AtomicU64,
    /// The registries the peer announced (`Hosting`), id → shard count.
    pub(crate) hosted: Mutex<BTreeMap<String, u32>>,
}

impl PeerStats {
    pub(crate) fn new(now_ms: u64) -> PeerStats {
        PeerStats {
            last_seen_ms: AtomicU64::new(now_ms),
            rtt_us: AtomicU64::new(u64::MAX),
            heartbeats_acked: AtomicU64::new(0),
            hosted: Mutex::new(BTreeMap::new()),
        }
    }
}

/// Re-dial schedule of one peer name: capped exponential backoff.
#[derive(Debug, Clone, Copy)]
struct DialState {
    in_progress: bool,
    failures: u32,
    not_before: Instant,
}

/// The delay before the next dial after `failures` consecutive failures:
/// the workspace's one exponential [`Backoff`] from `reconnect_min` to
/// `reconnect_max`, un-jittered (`min * 2^(failures - 1)`, capped), and
/// zero after no failure.
fn redial_delay(redial: &Backoff, failures: u32) -> Duration {
    match failures.checked_sub(1) {
        None => Duration::ZERO,
        Some(attempt) => redial.base(attempt),
    }
}

/// What an inbound handshake holds until it ends: a node-wide permit and
/// its source's slot (none for an unknown source).
#[derive(Debug)]
pub(crate) struct HandshakeSlot {
    _permit: OwnedSemaphorePermit,
    _source: Option<SourceSlot>,
}

/// Why an inbound handshake was refused a slot.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum SlotRefused {
    /// `max_pending_handshakes` are in progress.
    Capacity,
    /// Its source address has `max_pending_handshakes_per_source` in progress.
    Source,
}

/// See the module docs.
#[derive(Debug)]
pub(crate) struct Peers {
    table: Mutex<PeerTable<PeerHandle>>,
    dials: Mutex<BTreeMap<NodeId, DialState>>,
    /// `reconnect_min`, `reconnect_max`.
    redial: Backoff,
    /// Permits for inbound handshakes in progress.
    handshakes: Arc<Semaphore>,
    /// Inbound handshakes in progress per source address.
    handshake_sources: Arc<SourceQuota>,
    /// Live members, authentication failures with them, and the standing.
    members: MemberBook,
    /// Wakes the membership loop to dial members now.
    dial_kick: Notify,
    next_conn: AtomicU64,
    /// Bumped each time the table is taken for a change (see [`Peers::version`]).
    version: AtomicU64,
}

impl Peers {
    pub(crate) fn new(me: SessionId, cfg: &ClusterConfig) -> Peers {
        Peers {
            table: Mutex::new(PeerTable::new(me, cfg.max_peers)),
            dials: Mutex::new(BTreeMap::new()),
            redial: Backoff::new(cfg.reconnect_min, cfg.reconnect_max),
            handshakes: Arc::new(Semaphore::new(cfg.max_pending_handshakes)),
            handshake_sources: SourceQuota::new(cfg.max_pending_handshakes_per_source),
            members: MemberBook::new(cfg.max_peers),
            dial_kick: Notify::new(),
            version: AtomicU64::new(0),
            next_conn: AtomicU64::new(0),
        }
    }

    /// The peer table, to change it (its rules are its own:
    /// `node/table.rs`). Bumps [`Peers::version`] under the table's lock,
    /// so a lookup that read the old version cannot see the changed table
    /// and pass for current.
    pub(crate) fn table(&self) -> MutexGuard<'_, PeerTable<PeerHandle>> {
        let table = self.table.lock();
        self.version.fetch_add(1, Ordering::AcqRel);
        table
    }

    /// The peer table's version: it changes whenever the table may have
    /// changed, so a connection looked up at one version (a handle's
    /// [`RouteHint`](crate::route_hint::RouteHint)) is current while the
    /// version is the same.
    #[inline]
    pub(crate) fn version(&self) -> u64 {
        self.version.load(Ordering::Acquire)
    }

    /// The names of the authenticated peers now.
    pub(crate) fn names<C: FromIterator<NodeId>>(&self) -> C {
        self.table.lock().iter().map(|e| e.session.node.clone()).collect()
    }

    /// The member book.
    pub(crate) fn members(&self) -> &MemberBook {
        &self.members
    }

    /// A fresh connection id.
    pub(crate) fn next_conn(&self) -> ConnId {
        ConnId(self.next_conn.fetch_add(1, Ordering::Relaxed))
    }

    /// The connection to exactly `session`, if there is one.
    #[inline]
    pub(crate) fn connection(&self, session: &SessionId) -> Option<PeerLink> {
        let table = self.table.lock();
        let e = table.get(&session.node)?;
        (e.session == *session).then(|| PeerLink::new(e.conn, Arc::clone(&e.handle.queues)))
    }

    /// Authenticated peers now.
    pub(crate) fn len(&self) -> usize {
        self.table.lock().iter().count()
    }

    /// The authenticated peers, sorted by name, as `inspect()` shows them
    /// (`now_ms` on the node's clock).
    pub(crate) fn infos(&self, now_ms: u64) -> Vec<PeerInfo> {
        self.table
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
                    last_seen: Duration::from_millis(now_ms.saturating_sub(last)),
                    rtt: (rtt != u64::MAX).then(|| Duration::from_micros(rtt)),
                    heartbeats_acked: stats.heartbeats_acked.load(Ordering::Relaxed),
                }
            })
            .collect()
    }

    /// A connected peer that announced `registry` with another shard count
    /// than `shards`, and its count.
    pub(crate) fn other_shard_count(&self, registry: &str, shards: u32) -> Option<(String, u32)> {
        self.table.lock().iter().find_map(|e| {
            let n = *e.handle.stats.hosted.lock().get(registry)?;
            (n != shards).then(|| (e.session.node.to_string(), n))
        })
    }

    /// Connected peers that announced `registry` with another shard count
    /// than `shards` (never placement candidates for it).
    pub(crate) fn hosting_other_count(&self, registry: &str, shards: u32) -> BTreeSet<NodeId> {
        let table = self.table.lock();
        table
            .iter()
            .filter(|e| e.handle.stats.hosted.lock().get(registry).is_some_and(|n| *n != shards))
            .map(|e| e.session.node.clone())
            .collect()
    }

    /// Adds to `out` the connected peers that announced `registry` with
    /// `shards` shards (a peer with another count is logged and left out).
    pub(crate) fn add_candidates(&self, registry: &str, shards: u32, out: &mut BTreeSet<NodeId>) {
        for e in self.table.lock().iter() {
            let hosted = e.handle.stats.hosted.lock();
            match hosted.get(registry) {
                Some(n) if *n == shards => {
                    out.insert(e.session.node.clone());
                }
                Some(n) => {
                    tracing::warn!(peer = %e.session, registry, ours = shards, theirs = *n,
                        "peer hosts the registry with another shard count; ignoring it for placement");
                }
                None => {}
            }
        }
    }

    /// Queues `msg` on every connection's control queue; returns on how
    /// many it did not fit.
    pub(crate) fn broadcast_control(&self, msg: &ControlMsg) -> usize {
        let mut full = 0;
        for e in self.table.lock().iter() {
            if e.handle.queues.control.try_send(msg.clone()).is_err() {
                full += 1;
            }
        }
        full
    }

    /// A slot for one more inbound handshake from `source`: a node-wide
    /// permit first, then (with it) the source's.
    pub(crate) fn try_handshake(&self, source: &LinkSource) -> Result<HandshakeSlot, SlotRefused> {
        let Ok(permit) = Arc::clone(&self.handshakes).try_acquire_owned() else {
            return Err(SlotRefused::Capacity);
        };
        // Taken with a node-wide permit only: the per-source table never
        // holds more entries than there are permits.
        let Some(source) = self.handshake_sources.try_enter(source) else {
            return Err(SlotRefused::Source);
        };
        Ok(HandshakeSlot { _permit: permit, _source: source })
    }

    /// Source addresses with an inbound handshake pending now.
    pub(crate) fn handshake_sources(&self) -> usize {
        self.handshake_sources.sources()
    }

    /// Asks the membership loop to look for new peers now.
    pub(crate) fn kick_dials(&self) {
        self.dial_kick.notify_one();
    }

    /// Completes at the next [`Peers::kick_dials`] (or at once for one that
    /// came while nobody waited).
    pub(crate) fn dial_kicked(&self) -> Notified<'_> {
        self.dial_kick.notified()
    }

    /// The member names to dial now (marked in progress): not `me`, no
    /// session in the table, no dial in progress, backoff elapsed. Names
    /// that left the membership are forgotten.
    pub(crate) fn dial_targets(&self, me: &NodeId, members: &[SessionId], now: Instant) -> Vec<NodeId> {
        let names: BTreeSet<&NodeId> = members.iter().map(|s| &s.node).filter(|n| *n != me).collect();
        let table = self.table.lock();
        let mut dials = self.dials.lock();
        // Forget the schedule of names that left the membership.
        dials.retain(|name, st| st.in_progress || names.contains(name));
        let mut targets = Vec::new();
        for name in names {
            if table.get(name).is_some() {
                continue;
            }
            let st =
                dials.entry(name.clone()).or_insert(DialState { in_progress: false, failures: 0, not_before: now });
            if st.in_progress || now < st.not_before {
                continue;
            }
            st.in_progress = true;
            targets.push(name.clone());
        }
        targets
    }

    /// Records the end of a dial's handshake at `now`: success resets the
    /// backoff, failure doubles it (capped at `reconnect_max`).
    pub(crate) fn dial_done(&self, peer: &NodeId, ok: bool, now: Instant) {
        let mut dials = self.dials.lock();
        let st = dials.entry(peer.clone()).or_insert(DialState { in_progress: false, failures: 0, not_before: now });
        st.in_progress = false;
        st.failures = if ok { 0 } else { st.failures.saturating_add(1) };
        st.not_before = now + redial_delay(&self.redial, st.failures);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn redial_delay_doubles_and_caps() {
        let (min, max) = (Duration::from_millis(50), Duration::from_secs(1));
        let b = Backoff::new(min, max);
        assert_eq!(redial_delay(&b, 0), Duration::ZERO);
        assert_eq!(redial_delay(&b, 1), min);
        assert_eq!(redial_delay(&b, 2), Duration::from_millis(100));
        assert_eq!(redial_delay(&b, 6), max);
        assert_eq!(redial_delay(&b, u32::MAX), max);
    }

    fn session(name: &str) -> SessionId {
        SessionId { node: NodeId::new(name), boot: 1, counter: 0 }
    }

    #[test]
    fn dial_targets_skip_me_dials_in_progress_and_backoff() {
        let cfg = ClusterConfig::default();
        let peers = Peers::new(session("me"), &cfg);
        let members = [session("me"), session("a"), session("b")];
        let now = Instant::now();
        let me = NodeId::new("me");
        assert_eq!(peers.dial_targets(&me, &members, now), vec![NodeId::new("a"), NodeId::new("b")]);
        assert!(peers.dial_targets(&me, &members, now).is_empty(), "in progress");
        peers.dial_done(&NodeId::new("a"), false, now);
        peers.dial_done(&NodeId::new("b"), true, now);
        assert_eq!(peers.dial_targets(&me, &members, now), vec![NodeId::new("b")], "a backs off");
        let later = now + cfg.reconnect_min;
        peers.dial_done(&NodeId::new("b"), true, now);
        assert_eq!(peers.dial_targets(&me, &members, later), vec![NodeId::new("a"), NodeId::new("b")]);
    }

    #[test]
    fn handshake_slots_are_bounded_node_wide_and_per_source() {
        let cfg =
            ClusterConfig { max_pending_handshakes: 2, max_pending_handshakes_per_source: 1, ..Default::default() };
        let peers = Peers::new(session("me"), &cfg);
        let here = LinkSource::Ip("10.0.0.1".parse().expect("fits in this test"));
        let there = LinkSource::Ip("10.0.0.2".parse().expect("fits in this test"));
        let first = peers.try_handshake(&here).expect("fits in this test");
        assert_eq!(peers.try_handshake(&here).err(), Some(SlotRefused::Source));
        let _second = peers.try_handshake(&there).expect("fits in this test");
        assert_eq!(peers.try_handshake(&LinkSource::Unknown).err(), Some(SlotRefused::Capacity));
        assert_eq!(peers.handshake_sources(), 2);
        drop(first);
        assert!(peers.try_handshake(&LinkSource::Unknown).is_ok());
    }
}
