//! [`RemoteMonitors`]: the monitors this node holds on remote activations
//! (bounded by `max_remote_monitors`), by request id. Each fires exactly
//! once. While its connection lives, the host's `Down` fires it. When its
//! connection ends, a monitor still waiting for the host's first answer is
//! dropped (its `monitor()` call places it again); the others stay in the
//! table, detached, until the node's reattach task (`node/shared.rs`)
//! resolves them: once the lease the target ran under is gone or held by
//! another session ([`target_ended`]; `NodeDown`: the target can no longer
//! execute), or, as
//! soon as a new connection to the same session is up, by placing them
//! again on exactly the activation they watched (`Remonitor`, protocol
//! version 2), which the host answers with `Down` at once if that
//! activation has stopped meanwhile.

use std::collections::HashMap;

use parking_lot::Mutex;
use tokio::sync::{mpsc, oneshot};

use super::inspect::LiveCounters;
use super::queues::PeerLink;
use super::table::ConnId;
use crate::counter_reasons::DropReason;
use crate::error::RemoteError;
use crate::hosted::DownEvent;
use crate::id::SessionId;
use crate::lease::{Epoch, Lease};
use crate::wire::hello::MONITOR_IDENTITY_VERSION;
use crate::wire::{ControlMsg, DownReason};

/// The host's first answer to a monitor being placed: the activation it
/// named (`Monitored`), or `None` for a `Down`.
pub(crate) type Answered = oneshot::Receiver<Option<u64>>;

/// A monitor this node holds on a remote activation.
#[derive(Debug)]
pub(crate) struct ClientMonitor {
    /// The connection that carries it; `None` while detached (its
    /// connection ended and it is not placed again yet).
    conn: Option<ConnId>,
    /// That connection's control queue (for `Demonitor`).
    control: mpsc::Sender<ControlMsg>,
    /// The watched activation, once the host named it (version 2 sessions).
    activation: Option<u64>,
    /// `monitor()` waiting for the host's first answer (version 2
    /// sessions): the activation it names, or `None` for a `Down`.
    placed: Option<oneshot::Sender<Option<u64>>>,
    registry: String,
    key: String,
    /// The lease the monitored activation runs under.
    lease: String,
    holder: SessionId,
    epoch: Epoch,
    tx: mpsc::Sender<DownEvent>,
}

impl ClientMonitor {
    /// Gives the monitor its one `DownEvent` (its receiver holds at most
    /// that one, so it never finds the channel full; a dropped receiver
    /// cancelled the monitor).
    pub(crate) fn fire(self, reason: DownReason, counters: &LiveCounters) {
        let event = DownEvent { registry: self.registry, key: self.key, reason };
        if let Err(mpsc::error::TrySendError::Full(_)) = self.tx.try_send(event) {
            counters.dropped(DropReason::DownReceiverFull);
        }
    }
}

/// What to place: the monitored activation's names, for [`RemoteMonitors::insert`].
#[derive(Debug)]
pub(crate) struct Watched {
    pub(crate) registry: String,
    pub(crate) key: String,
    /// The lease the activation runs under, its holder and epoch.
    pub(crate) lease: String,
    pub(crate) holder: SessionId,
    pub(crate) epoch: Epoch,
}

/// A detached monitor, as its reattach task sees it.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum Detached {
    /// Gone (fired, cancelled) or attached again: nothing left to do.
    Done,
    /// Still detached: the lease it watches and the watched activation.
    Waiting { lease: String, holder: SessionId, epoch: Epoch, activation: Option<u64> },
}

/// Whether the store's view of the watched lease, `current`, shows that a
/// detached monitor's target can no longer execute (then it fires
/// `NodeDown` on its own).
///
/// A lease gone or held by another session ends every activation its
/// holder ran under it. The epoch is compared only for a monitor whose
/// activation the host never named (a version 1 session): `epoch` is what
/// the watcher routed the `Monitor` by, possibly an older epoch of the
/// same holder than the one the activation runs under (a stale owner
/// cache), so on its own it cannot tell a re-acquired lease from a stale
/// view. A named activation's fate under the same holder is the host's to
/// tell, and `Remonitor` asks it (seed 83243: a monitor placed with a stale
/// epoch fired `NodeDown` while its activation ran on).
pub(crate) fn target_ended(current: Option<&Lease>, holder: &SessionId, epoch: Epoch, activation: Option<u64>) -> bool {
    match current {
        None => true,
        Some(lease) if lease.holder != *holder => true,
        Some(lease) => activation.is_none() && lease.epoch != epoch,
    }
}

/// See the module docs.
#[derive(Debug)]
pub(crate) struct RemoteMonitors {
    monitors: Mutex<HashMap<u64, ClientMonitor>>,
    /// `max_remote_monitors`.
    max: usize,
}

impl RemoteMonitors {
    pub(crate) fn new(max: usize) -> RemoteMonitors {
        RemoteMonitors { monitors: Mutex::new(HashMap::new()), max }
    }

    /// Registers the monitor `id` placed on `link`, sending its event to
    /// `tx`; on a version 2 session, returns the receiver of the host's
    /// first answer (`Monitored` with the watched activation, or `None`
    /// for a `Down`; dropped unanswered if the connection ends). `Overloaded` (counted `remote_monitor_table_full`)
    /// when the table is full.
    pub(crate) fn insert(
        &self,
        id: u64,
        link: &PeerLink,
        watched: Watched,
        tx: mpsc::Sender<DownEvent>,
        counters: &LiveCounters,
    ) -> Result<Option<Answered>, RemoteError> {
        let (placed, answered) = if link.version >= MONITOR_IDENTITY_VERSION {
            let (placed, answered) = oneshot::channel();
            (Some(placed), Some(answered))
        } else {
            (None, None)
        };
        let mut monitors = self.monitors.lock();
        if monitors.len() >= self.max {
            counters.dropped(DropReason::RemoteMonitorTableFull);
            return Err(RemoteError::Overloaded);
        }
        let Watched { registry, key, lease, holder, epoch } = watched;
        let m = ClientMonitor {
            conn: Some(link.conn),
            control: link.control.clone(),
            activation: None,
            placed,
            registry,
            key,
            lease,
            holder,
            epoch,
            tx,
        };
        monitors.insert(id, m);
        Ok(answered)
    }

    /// Removes the monitor `id`; returns it.
    pub(crate) fn remove(&self, id: u64) -> Option<ClientMonitor> {
        self.monitors.lock().remove(&id)
    }

    /// Removes the monitor `id` and, if it is placed on a connection, tells
    /// the host (waiting for room in a full control queue: one such wait per
    /// monitor at most). A `Demonitor` that cannot be sent is counted; the
    /// host removes the monitor anyway when that connection ends.
    ///
    /// # Cancel safety
    /// The monitor is removed at the first poll; dropping the future later
    /// only skips the `Demonitor`.
    pub(crate) async fn cancel(&self, id: u64, counters: &LiveCounters) {
        let Some(m) = self.remove(id) else { return };
        if m.conn.is_some() && m.control.send(ControlMsg::Demonitor { request_id: id }).await.is_err() {
            counters.dropped(DropReason::DemonitorConnectionClosed);
            tracing::debug!(request_id = id, "a Demonitor found its connection closed");
        }
    }

    /// The connection `conn` ended: monitors still waiting for their first
    /// answer are removed (dropped here, their `monitor()` calls see the
    /// connection lost and try again); the others are detached. Returns the
    /// detached ids, in order.
    pub(crate) fn connection_ended(&self, conn: ConnId) -> Vec<u64> {
        let (detached, unplaced) = {
            let mut monitors = self.monitors.lock();
            let mut ids: Vec<u64> = monitors.iter().filter(|(_, m)| m.conn == Some(conn)).map(|(id, _)| *id).collect();
            ids.sort_unstable();
            let mut detached = Vec::new();
            let mut unplaced = Vec::new();
            for id in ids {
                let Some(m) = monitors.get_mut(&id) else { continue };
                if m.placed.is_some() {
                    unplaced.extend(monitors.remove(&id));
                } else {
                    m.conn = None;
                    detached.push(id);
                }
            }
            (detached, unplaced)
        };
        drop(unplaced);
        detached
    }

    /// The detached monitor `id` as its reattach task sees it; one whose
    /// receiver was dropped (cancelled) is removed.
    pub(crate) fn detached(&self, id: u64) -> Detached {
        let mut monitors = self.monitors.lock();
        // Gone: cancelled (its receiver dropped). Attached: by another run
        // of the reattach task (the connection ended again).
        let Some(m) = monitors.get(&id).filter(|m| m.conn.is_none()) else { return Detached::Done };
        if m.tx.is_closed() {
            monitors.remove(&id);
            return Detached::Done;
        }
        Detached::Waiting { lease: m.lease.clone(), holder: m.holder.clone(), epoch: m.epoch, activation: m.activation }
    }

    /// Removes the monitor `id` if it is still detached (then nobody else
    /// will fire it).
    pub(crate) fn take_detached(&self, id: u64) -> Option<ClientMonitor> {
        let mut monitors = self.monitors.lock();
        match monitors.get(&id) {
            Some(m) if m.conn.is_none() => monitors.remove(&id),
            _ => None,
        }
    }

    /// Attaches the detached monitor `id` to `link`; returns the
    /// `Remonitor` to send on it (for the watched `activation`), or `None`
    /// if it is no longer detached.
    pub(crate) fn attach(&self, id: u64, link: &PeerLink, activation: u64) -> Option<ControlMsg> {
        let mut monitors = self.monitors.lock();
        let m = monitors.get_mut(&id).filter(|m| m.conn.is_none())?;
        m.conn = Some(link.conn);
        m.control = link.control.clone();
        Some(ControlMsg::Remonitor { request_id: id, registry: m.registry.clone(), key: m.key.clone(), activation })
    }

    /// Detaches the monitor `id` again if it is attached to `conn` (its
    /// `Remonitor` could not be queued); `false` if something else took it
    /// over meanwhile.
    pub(crate) fn detach(&self, id: u64, conn: ConnId) -> bool {
        match self.monitors.lock().get_mut(&id) {
            Some(m) if m.conn == Some(conn) => {
                m.conn = None;
                true
            }
            _ => false,
        }
    }

    /// The host's answer to `Monitor`/`Remonitor`: the monitor is placed on
    /// the activation `activation`.
    pub(crate) fn placed(&self, conn: ConnId, id: u64, activation: u64) {
        let mut monitors = self.monitors.lock();
        if let Some(m) = monitors.get_mut(&id).filter(|m| m.conn == Some(conn)) {
            m.activation.get_or_insert(activation);
            if let Some(placed) = m.placed.take() {
                let _ = placed.send(Some(activation));
            }
        }
        // Else answered by its `Down` already, or cancelled: nothing to do.
    }

    /// A `Down` from a peer for one of our monitors: fired, or counted
    /// (`unmatched_down`) if it is not held on `conn`.
    pub(crate) fn down(&self, conn: ConnId, id: u64, reason: DownReason, counters: &LiveCounters) {
        let mut monitors = self.monitors.lock();
        if monitors.get(&id).is_some_and(|m| m.conn == Some(conn))
            && let Some(mut m) = monitors.remove(&id)
        {
            drop(monitors);
            if let Some(placed) = m.placed.take() {
                let _ = placed.send(None);
            }
            m.fire(reason, counters);
        } else {
            drop(monitors);
            counters.dropped(DropReason::UnmatchedDown);
        }
    }

    /// Monitors held now.
    pub(crate) fn len(&self) -> usize {
        self.monitors.lock().len()
    }

    /// `max_remote_monitors`.
    pub(crate) fn max(&self) -> usize {
        self.max
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use super::*;
    use crate::id::NodeId;
    use crate::node::queues::PeerQueues;

    fn link(conn: u64, version: u16) -> (PeerLink, mpsc::Receiver<ControlMsg>) {
        let (data, _) = mpsc::channel(1);
        let (control, control_rx) = mpsc::channel(4);
        let shared = crate::node::write_path::ConnShared::detached();
        (PeerLink::new(ConnId(conn), Arc::new(PeerQueues { data, control, version, shared })), control_rx)
    }

    fn watched() -> Watched {
        let holder = SessionId { node: NodeId::new("b"), boot: 1, counter: 0 };
        Watched { registry: "r".into(), key: "k".into(), lease: "r/1/0".into(), holder, epoch: Epoch(3) }
    }

    #[test]
    fn only_a_lease_gone_or_moved_ends_a_named_target_on_its_own() {
        let w = watched();
        let other = SessionId { node: NodeId::new("c"), boot: 1, counter: 0 };
        let lease =
            |holder: &SessionId, epoch| Lease { name: w.lease.clone(), holder: holder.clone(), epoch: Epoch(epoch) };
        let ended = |current: Option<&Lease>, named| target_ended(current, &w.holder, w.epoch, named);
        for named in [Some(7), None] {
            assert!(ended(None, named), "a lease gone ends it");
            assert!(ended(Some(&lease(&other, 3)), named), "another session's lease ends it");
            assert!(ended(Some(&lease(&other, 4)), named));
            assert!(!ended(Some(&lease(&w.holder, 3)), named), "the watched lease itself does not");
        }
        // The same holder at another epoch than the watcher routed by: the
        // watcher's view may have been stale, so a named activation waits
        // for the host's answer to `Remonitor`; an unnamed one (version 1)
        // keeps the epoch rule.
        assert!(!ended(Some(&lease(&w.holder, 4)), Some(7)));
        assert!(ended(Some(&lease(&w.holder, 4)), None));
    }

    #[test]
    fn the_table_is_bounded() {
        let (table, counters) = (RemoteMonitors::new(1), LiveCounters::default());
        let (l, _c) = link(1, MONITOR_IDENTITY_VERSION);
        let (tx, _rx) = mpsc::channel(1);
        assert!(table.insert(1, &l, watched(), tx.clone(), &counters).expect("fits in this test").is_some());
        assert!(matches!(table.insert(2, &l, watched(), tx, &counters), Err(RemoteError::Overloaded)));
        assert_eq!((table.len(), table.max()), (1, 1));
    }

    #[test]
    fn a_connection_end_drops_unanswered_and_detaches_placed_monitors() {
        let (table, counters) = (RemoteMonitors::new(8), LiveCounters::default());
        let (l, _c) = link(1, MONITOR_IDENTITY_VERSION);
        let (tx, _rx) = mpsc::channel(1);
        let mut unanswered =
            table.insert(1, &l, watched(), tx.clone(), &counters).expect("fits").expect("version 2: awaits an answer");
        let _answered = table.insert(2, &l, watched(), tx, &counters).expect("fits in this test");
        table.placed(ConnId(1), 2, 77);
        assert_eq!(table.connection_ended(ConnId(1)), vec![2]);
        assert!(unanswered.try_recv().is_err(), "its monitor() call sees the connection lost");
        assert_eq!(table.len(), 1);
        let waiting = Detached::Waiting {
            lease: "r/1/0".into(),
            holder: watched().holder,
            epoch: Epoch(3),
            activation: Some(77),
        };
        assert_eq!(table.detached(2), waiting);
    }

    #[test]
    fn the_first_answer_names_the_watched_activation_or_none_for_a_down() {
        let (table, counters) = (RemoteMonitors::new(8), LiveCounters::default());
        let (l, _c) = link(1, MONITOR_IDENTITY_VERSION);
        let (tx, _rx) = mpsc::channel(1);
        let mut first = table.insert(1, &l, watched(), tx.clone(), &counters).expect("fits").expect("version 2");
        let mut second = table.insert(2, &l, watched(), tx, &counters).expect("fits").expect("version 2");
        table.placed(ConnId(1), 1, 41);
        table.placed(ConnId(1), 1, 42); // a later answer does not rename it
        table.down(ConnId(1), 2, DownReason::Stopped, &counters);
        assert_eq!(first.try_recv().ok(), Some(Some(41)));
        assert_eq!(second.try_recv().ok(), Some(None));
    }

    #[test]
    fn a_detached_monitor_attaches_once_and_can_detach_again() {
        let (table, counters) = (RemoteMonitors::new(8), LiveCounters::default());
        let (old, _c) = link(1, MONITOR_IDENTITY_VERSION);
        let (tx, _rx) = mpsc::channel(1);
        let _ = table.insert(5, &old, watched(), tx, &counters).expect("fits in this test");
        table.placed(ConnId(1), 5, 9);
        table.connection_ended(ConnId(1));
        let (new, _c2) = link(2, MONITOR_IDENTITY_VERSION);
        let msg = table.attach(5, &new, 9);
        assert!(matches!(msg, Some(ControlMsg::Remonitor { request_id: 5, activation: 9, .. })));
        assert!(table.attach(5, &new, 9).is_none(), "attached already");
        assert_eq!(table.detached(5), Detached::Done);
        assert!(!table.detach(5, ConnId(1)));
        assert!(table.detach(5, ConnId(2)));
        assert!(table.take_detached(5).is_some());
        assert!(table.take_detached(5).is_none());
    }

    #[test]
    fn a_down_fires_once_and_only_from_its_connection() {
        let (table, counters) = (RemoteMonitors::new(8), LiveCounters::default());
        let (l, _c) = link(1, 1);
        let (tx, mut rx) = mpsc::channel(1);
        assert!(
            table.insert(3, &l, watched(), tx, &counters).expect("fits in this test").is_none(),
            "version 1: no answer awaited"
        );
        table.down(ConnId(2), 3, DownReason::Stopped, &counters);
        assert!(rx.try_recv().is_err());
        table.down(ConnId(1), 3, DownReason::Stopped, &counters);
        assert_eq!(rx.try_recv().map(|e| e.reason), Ok(DownReason::Stopped));
        table.down(ConnId(1), 3, DownReason::Stopped, &counters);
        assert_eq!(counters.snapshot().dropped.get("unmatched_down"), Some(&2));
    }

    #[test]
    fn a_cancelled_monitor_is_removed_by_its_reattach_check() {
        let (table, counters) = (RemoteMonitors::new(8), LiveCounters::default());
        let (l, _c) = link(1, 1);
        let (tx, rx) = mpsc::channel(1);
        let _ = table.insert(4, &l, watched(), tx, &counters).expect("fits in this test");
        table.connection_ended(ConnId(1));
        drop(rx);
        assert_eq!(table.detached(4), Detached::Done);
        assert_eq!(table.len(), 0);
    }
}
