//! [`InFlight`]: requests in flight both ways. Ours: each request this node
//! sent and waits for an answer to, by id, with the connection it went on
//! (bounded by `max_inflight_requests`; a connection's end fails them with
//! `ConnectionLost`). The peers': permits for their asks executing here
//! (bounded likewise; `Rejected { Overloaded }` beyond). Request ids come
//! from one counter, shared with the monitors this node places.
//!
//! A request in flight is owned by its caller's future through a
//! [`PendingGuard`]: a caller that gives up (drops the future) frees its
//! slot at once, and a late answer is counted (`unmatched_response`).

use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use bytes::Bytes;
use parking_lot::Mutex;
use tokio::sync::{OwnedSemaphorePermit, Semaphore, oneshot};

use super::inspect::LiveCounters;
use super::table::ConnId;
use crate::counter_reasons::DropReason;
use crate::error::RemoteError;
use crate::wire::Rejection;

/// The answer to a request in flight.
#[derive(Debug)]
pub(crate) enum Response {
    /// The reply's payload (a slice of the frame it came in).
    Reply(Bytes),
    Ack,
    Rejected(Rejection),
    Canceled,
}

/// See the module docs.
#[derive(Debug)]
pub(crate) struct InFlight {
    next_id: AtomicU64,
    pending: Mutex<HashMap<u64, (ConnId, oneshot::Sender<Response>)>>,
    /// `max_inflight_requests`: the bound of both directions.
    max: usize,
    /// Permits for asks from peers being executed here.
    inbound_asks: Arc<Semaphore>,
}

/// Owns a request's entry in the in-flight table for its caller's future:
/// dropped while still armed (the caller gave up, e.g. a `timeout` around
/// the call, or an aborted task), it removes the entry, so the slot of
/// `max_inflight_requests` is free at once. Lives on the caller's stack: no
/// allocation.
#[derive(Debug)]
pub(crate) struct PendingGuard<'a> {
    in_flight: &'a InFlight,
    counters: &'a LiveCounters,
    id: u64,
    armed: bool,
}

impl PendingGuard<'_> {
    /// The request's id.
    #[inline]
    pub(crate) fn id(&self) -> u64 {
        self.id
    }

    /// The entry is gone already (answered, or failed with its connection).
    pub(crate) fn disarm(mut self) {
        self.armed = false;
    }

    /// Removes the entry (the request was not sent, or timed out).
    pub(crate) fn forget(mut self) {
        self.armed = false;
        self.in_flight.forget(self.id);
    }
}

impl Drop for PendingGuard<'_> {
    fn drop(&mut self) {
        if self.armed && self.in_flight.pending.lock().remove(&self.id).is_some() {
            self.counters.dropped(DropReason::RequestAbandoned);
            tracing::debug!(request_id = self.id, "caller gave up on a request in flight; its answer will be dropped");
        }
    }
}

impl InFlight {
    /// Both directions bounded by `max` (`max_inflight_requests`).
    pub(crate) fn new(max: usize) -> InFlight {
        InFlight {
            next_id: AtomicU64::new(0),
            pending: Mutex::new(HashMap::new()),
            max,
            inbound_asks: Arc::new(Semaphore::new(max)),
        }
    }

    /// A fresh request id (requests and monitors share the sequence).
    #[inline]
    pub(crate) fn next_id(&self) -> u64 {
        self.next_id.fetch_add(1, Ordering::Relaxed)
    }

    /// Registers a request in flight on `conn`; the guard removes it if
    /// the caller gives up. `Overloaded` (counted `inflight_table_full`)
    /// when the table is full.
    pub(crate) fn register<'a>(
        &'a self,
        conn: ConnId,
        counters: &'a LiveCounters,
    ) -> Result<(PendingGuard<'a>, oneshot::Receiver<Response>), RemoteError> {
        let id = self.next_id();
        let (tx, rx) = oneshot::channel();
        let mut pending = self.pending.lock();
        if pending.len() >= self.max {
            counters.dropped(DropReason::InflightTableFull);
            return Err(RemoteError::Overloaded);
        }
        pending.insert(id, (conn, tx));
        Ok((PendingGuard { in_flight: self, counters, id, armed: true }, rx))
    }

    /// Removes the request `id` (unanswered).
    pub(crate) fn forget(&self, id: u64) {
        self.pending.lock().remove(&id);
    }

    /// Completes the request `id` if it was sent on `conn`; otherwise the
    /// answer is counted (`unmatched_response`) and dropped.
    pub(crate) fn complete(&self, conn: ConnId, id: u64, response: Response, counters: &LiveCounters) {
        let mut pending = self.pending.lock();
        match pending.get(&id) {
            Some((c, _)) if *c == conn => {
                if let Some((_, tx)) = pending.remove(&id) {
                    let _ = tx.send(response);
                }
            }
            _ => {
                drop(pending);
                counters.dropped(DropReason::UnmatchedResponse);
            }
        }
    }

    /// The connection `conn` ended: its requests fail (their callers see
    /// the answer channel closed: `ConnectionLost`), in id order.
    pub(crate) fn connection_ended(&self, conn: ConnId) {
        // In id order, not the hash map's: which waiter wakes first must not
        // depend on hashing (the simulation replays runs from a seed).
        let failed: Vec<oneshot::Sender<Response>> = {
            let mut pending = self.pending.lock();
            let mut ids: Vec<u64> = pending.iter().filter(|(_, (c, _))| *c == conn).map(|(id, _)| *id).collect();
            ids.sort_unstable();
            ids.into_iter().filter_map(|id| pending.remove(&id)).map(|(_, tx)| tx).collect()
        };
        drop(failed);
    }

    /// Our requests in flight now.
    pub(crate) fn len(&self) -> usize {
        self.pending.lock().len()
    }

    /// A permit to execute one of a peer's asks, if one is free.
    pub(crate) fn try_execute(&self) -> Option<OwnedSemaphorePermit> {
        Arc::clone(&self.inbound_asks).try_acquire_owned().ok()
    }

    /// The peers' asks executing here now.
    pub(crate) fn executing(&self) -> usize {
        self.max.saturating_sub(self.inbound_asks.available_permits())
    }

    /// The bound of both directions.
    pub(crate) fn max(&self) -> usize {
        self.max
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_full_table_refuses_and_a_dropped_guard_frees_its_slot() {
        let (table, counters) = (InFlight::new(1), LiveCounters::default());
        let (guard, _rx) = table.register(ConnId(1), &counters).expect("fits in this test");
        assert!(matches!(table.register(ConnId(1), &counters), Err(RemoteError::Overloaded)));
        drop(guard);
        assert_eq!(table.len(), 0);
        assert_eq!(counters.snapshot().dropped.get("request_abandoned"), Some(&1));
        assert!(table.register(ConnId(1), &counters).is_ok());
    }

    #[test]
    fn answers_complete_only_on_their_connection() {
        let (table, counters) = (InFlight::new(4), LiveCounters::default());
        let (guard, mut rx) = table.register(ConnId(1), &counters).expect("fits in this test");
        table.complete(ConnId(2), guard.id(), Response::Ack, &counters);
        assert_eq!(counters.snapshot().dropped.get("unmatched_response"), Some(&1));
        table.complete(ConnId(1), guard.id(), Response::Ack, &counters);
        assert!(matches!(rx.try_recv(), Ok(Response::Ack)));
        guard.disarm();
        assert_eq!(table.len(), 0);
    }

    #[test]
    fn a_connection_end_fails_only_its_requests() {
        let (table, counters) = (InFlight::new(4), LiveCounters::default());
        let (a, mut rx_a) = table.register(ConnId(1), &counters).expect("fits in this test");
        let (b, mut rx_b) = table.register(ConnId(2), &counters).expect("fits in this test");
        table.connection_ended(ConnId(1));
        assert!(matches!(rx_a.try_recv(), Err(oneshot::error::TryRecvError::Closed)));
        assert!(matches!(rx_b.try_recv(), Err(oneshot::error::TryRecvError::Empty)));
        a.disarm();
        b.forget();
        assert_eq!(table.len(), 0);
    }

    #[test]
    fn inbound_asks_are_bounded() {
        let table = InFlight::new(1);
        let permit = table.try_execute();
        assert!(permit.is_some());
        assert!(table.try_execute().is_none());
        assert_eq!(table.executing(), 1);
        drop(permit);
        assert_eq!(table.executing(), 0);
    }
}
