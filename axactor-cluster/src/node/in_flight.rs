//! [`InFlight`]: requests in flight both ways. Ours: each request this node
//! sent and waits for an answer to, by id, with the connection it went on
//! and its reply slot (bounded by `max_inflight_requests`; a connection's
//! end fails them with `ConnectionLost`). The peers': permits for their
//! asks executing here (bounded likewise; `Rejected { Overloaded }`
//! beyond). Request ids come from one counter, shared with the monitors
//! this node places.
//!
//! A request in flight is owned by its caller's future through a
//! [`PendingGuard`]: a caller that gives up (drops the future) frees its
//! slot at once, and a late answer is counted (`unmatched_response`).
//!
//! Reply slots: each entry of the table is its request's reply slot (the
//! answer, or the waker of the caller waiting for it), so a request costs
//! no allocation of its own: the table's map keeps its capacity (at most
//! `max_inflight_requests` entries) from one request to the next. The
//! caller waits on [`PendingGuard::response`]; an answer (or the end of
//! the connection) fills the slot and wakes it, and the caller takes the
//! answer out, which frees the slot.

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::task::{Context, Poll, Waker};

use bytes::Bytes;
use parking_lot::Mutex;
use tokio::sync::{OwnedSemaphorePermit, Semaphore};

use super::inspect::LiveCounters;
use super::table::ConnId;
use crate::counter_reasons::DropReason;
use crate::error::RemoteError;
use crate::hash::FastMap;
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
    pending: Mutex<FastMap<u64, Entry>>,
    /// `max_inflight_requests`: the bound of both directions.
    max: usize,
    /// Permits for asks from peers being executed here.
    inbound_asks: Arc<Semaphore>,
}

/// One request in flight: the connection it went on, and its reply slot.
#[derive(Debug)]
struct Entry {
    conn: ConnId,
    slot: Slot,
}

/// A request's reply slot.
#[derive(Debug)]
enum Slot {
    /// No answer yet; the caller's waker once it has waited.
    Waiting(Option<Waker>),
    /// Answered, not yet taken by the caller.
    Answered(Response),
    /// Its connection ended first.
    Lost,
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

/// The answer of a request in flight, as [`PendingGuard::response`] waits
/// for it: `Err` if its connection ended first.
#[derive(Debug)]
pub(crate) struct ResponseWait<'g, 'a> {
    guard: &'g PendingGuard<'a>,
}

/// The request's connection ended before its answer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Lost;

impl PendingGuard<'_> {
    /// The request's id.
    #[inline]
    pub(crate) fn id(&self) -> u64 {
        self.id
    }

    /// Waits for the request's answer (taking it frees the slot; the
    /// guard is then to be [`disarm`](Self::disarm)ed).
    pub(crate) fn response(&self) -> ResponseWait<'_, '_> {
        ResponseWait { guard: self }
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

impl Future for ResponseWait<'_, '_> {
    type Output = Result<Response, Lost>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        self.guard.in_flight.poll_response(self.guard.id, cx)
    }
}

impl Drop for PendingGuard<'_> {
    fn drop(&mut self) {
        if !self.armed {
            return;
        }
        let removed = self.in_flight.pending.lock().remove(&self.id);
        // Only a request still unanswered was abandoned: an answer that
        // arrived but was not taken had reached its caller's slot.
        if let Some(Entry { slot: Slot::Waiting(_), .. }) = removed {
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
            pending: Mutex::new(FastMap::default()),
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
    ) -> Result<PendingGuard<'a>, RemoteError> {
        let id = self.next_id();
        let mut pending = self.pending.lock();
        if pending.len() >= self.max {
            counters.dropped(DropReason::InflightTableFull);
            return Err(RemoteError::Overloaded);
        }
        pending.insert(id, Entry { conn, slot: Slot::Waiting(None) });
        Ok(PendingGuard { in_flight: self, counters, id, armed: true })
    }

    /// Removes the request `id` (unanswered).
    pub(crate) fn forget(&self, id: u64) {
        self.pending.lock().remove(&id);
    }

    /// Takes the answer of request `id` (freeing its slot), or registers
    /// the caller's waker. A slot that is gone counts as lost (not
    /// expected: the guard's owner is the only one who removes it).
    fn poll_response(&self, id: u64, cx: &mut Context<'_>) -> Poll<Result<Response, Lost>> {
        let mut pending = self.pending.lock();
        let Some(entry) = pending.get_mut(&id) else { return Poll::Ready(Err(Lost)) };
        match &mut entry.slot {
            Slot::Waiting(waker) => {
                if !waker.as_ref().is_some_and(|w| w.will_wake(cx.waker())) {
                    *waker = Some(cx.waker().clone());
                }
                Poll::Pending
            }
            Slot::Answered(_) | Slot::Lost => match pending.remove(&id).map(|e| e.slot) {
                Some(Slot::Answered(response)) => Poll::Ready(Ok(response)),
                _ => Poll::Ready(Err(Lost)),
            },
        }
    }

    /// Completes the request `id` if it was sent on `conn` and is still
    /// waiting; otherwise the answer is counted (`unmatched_response`) and
    /// dropped.
    pub(crate) fn complete(&self, conn: ConnId, id: u64, response: Response, counters: &LiveCounters) {
        let mut pending = self.pending.lock();
        match pending.get_mut(&id) {
            Some(Entry { conn: c, slot }) if *c == conn && matches!(slot, Slot::Waiting(_)) => {
                let waiting = std::mem::replace(slot, Slot::Answered(response));
                drop(pending);
                if let Slot::Waiting(Some(waker)) = waiting {
                    waker.wake();
                }
            }
            _ => {
                drop(pending);
                counters.dropped(DropReason::UnmatchedResponse);
            }
        }
    }

    /// The connection `conn` ended: its requests still waiting fail (their
    /// callers see `ConnectionLost`), woken in id order.
    pub(crate) fn connection_ended(&self, conn: ConnId) {
        // In id order, not the hash map's: which waiter wakes first must not
        // depend on hashing (the simulation replays runs from a seed).
        let mut woken: Vec<(u64, Waker)> = {
            let mut pending = self.pending.lock();
            pending
                .iter_mut()
                // An answer not yet taken stays its caller's.
                .filter(|(_, e)| e.conn == conn && matches!(e.slot, Slot::Waiting(_)))
                .filter_map(|(id, e)| match std::mem::replace(&mut e.slot, Slot::Lost) {
                    Slot::Waiting(waker) => waker.map(|w| (*id, w)),
                    Slot::Answered(_) | Slot::Lost => None,
                })
                .collect()
        };
        woken.sort_unstable_by_key(|(id, _)| *id);
        for (_, waker) in woken {
            waker.wake();
        }
    }

    /// Our requests in flight now (answers not yet taken included).
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
    use std::sync::atomic::AtomicUsize;
    use std::task::Wake;

    use super::*;

    /// A waker that counts its wakes.
    #[derive(Default)]
    struct Count(AtomicUsize);

    impl Wake for Count {
        fn wake(self: Arc<Self>) {
            self.0.fetch_add(1, Ordering::Relaxed);
        }
    }

    fn poll(guard: &PendingGuard<'_>, waker: &Waker) -> Poll<Result<Response, Lost>> {
        let mut wait = guard.response();
        Pin::new(&mut wait).poll(&mut Context::from_waker(waker))
    }

    #[test]
    fn a_full_table_refuses_and_a_dropped_guard_frees_its_slot() {
        let (table, counters) = (InFlight::new(1), LiveCounters::default());
        let guard = table.register(ConnId(1), &counters).expect("fits in this test");
        assert!(matches!(table.register(ConnId(1), &counters), Err(RemoteError::Overloaded)));
        drop(guard);
        assert_eq!(table.len(), 0);
        assert_eq!(counters.snapshot().dropped.get("request_abandoned"), Some(&1));
        assert!(table.register(ConnId(1), &counters).is_ok());
    }

    #[test]
    fn answers_complete_only_on_their_connection() {
        let (table, counters) = (InFlight::new(4), LiveCounters::default());
        let guard = table.register(ConnId(1), &counters).expect("fits in this test");
        table.complete(ConnId(2), guard.id(), Response::Ack, &counters);
        assert_eq!(counters.snapshot().dropped.get("unmatched_response"), Some(&1));
        table.complete(ConnId(1), guard.id(), Response::Ack, &counters);
        assert!(matches!(poll(&guard, Waker::noop()), Poll::Ready(Ok(Response::Ack))));
        guard.disarm();
        assert_eq!(table.len(), 0);
    }

    #[test]
    fn an_answer_wakes_its_waiting_caller_once_and_a_second_answer_is_unmatched() {
        let (table, counters) = (InFlight::new(4), LiveCounters::default());
        let guard = table.register(ConnId(1), &counters).expect("fits in this test");
        let count = Arc::new(Count::default());
        let waker = Waker::from(Arc::clone(&count));
        assert!(poll(&guard, &waker).is_pending());
        assert!(poll(&guard, &waker).is_pending(), "polled again: still waiting, one waker kept");
        table.complete(ConnId(1), guard.id(), Response::Canceled, &counters);
        table.complete(ConnId(1), guard.id(), Response::Ack, &counters);
        assert_eq!(count.0.load(Ordering::Relaxed), 1);
        assert_eq!(counters.snapshot().dropped.get("unmatched_response"), Some(&1));
        assert!(matches!(poll(&guard, &waker), Poll::Ready(Ok(Response::Canceled))));
        assert_eq!(table.len(), 0, "taking the answer frees the slot");
        guard.disarm();
    }

    #[test]
    fn an_answered_request_dropped_before_taking_it_is_not_abandoned() {
        let (table, counters) = (InFlight::new(1), LiveCounters::default());
        let guard = table.register(ConnId(1), &counters).expect("fits in this test");
        table.complete(ConnId(1), guard.id(), Response::Ack, &counters);
        drop(guard);
        assert_eq!(table.len(), 0);
        assert_eq!(counters.snapshot().dropped.get("request_abandoned"), None);
    }

    #[test]
    fn a_connection_end_fails_only_its_requests_and_wakes_them() {
        let (table, counters) = (InFlight::new(4), LiveCounters::default());
        let a = table.register(ConnId(1), &counters).expect("fits in this test");
        let b = table.register(ConnId(2), &counters).expect("fits in this test");
        let answered = table.register(ConnId(1), &counters).expect("fits in this test");
        let count = Arc::new(Count::default());
        let waker = Waker::from(Arc::clone(&count));
        assert!(poll(&a, &waker).is_pending());
        table.complete(ConnId(1), answered.id(), Response::Ack, &counters);
        table.connection_ended(ConnId(1));
        assert_eq!(count.0.load(Ordering::Relaxed), 1);
        assert!(matches!(poll(&a, &waker), Poll::Ready(Err(Lost))));
        assert!(poll(&b, &waker).is_pending());
        assert!(matches!(poll(&answered, &waker), Poll::Ready(Ok(Response::Ack))), "an answer taken late stays");
        a.disarm();
        answered.disarm();
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
