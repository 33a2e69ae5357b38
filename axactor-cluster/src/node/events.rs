//! The node's event stream: [`ClusterNode::subscribe_events`] hands out a
//! [`ClusterEvents`] receiver of the [`NodeEvent`]s an operator cares about
//! (shards acquired, fenced, handed over, released, stopped; peers up and
//! down; authentication failures; shard-count conflicts).
//!
//! One path: every event the node emits goes through `Shared::emit`, which
//! tells the [`Env`](crate::Env)'s observer (the simulation's trace) and
//! publishes it here. Per-request events (`Rejected`, `Retried`) go to the
//! observer only: a stream of them would crowd out the rare ones.
//!
//! Invariants:
//! - **The node never waits for a subscriber.** Each subscriber has a
//!   bounded queue; an event that does not fit is dropped for that
//!   subscriber, counted in its queue (the subscriber then receives
//!   [`ClusterEvent::Lagged`] where the events are missing) and in
//!   `inspect().counters.events_dropped`.
//! - **One order per node.** Events are published under one lock, so every
//!   subscriber receives them in the same order; the events of one shard
//!   come from the one lease driver in the order it made the transitions.
//! - With no subscriber and no observer, emitting costs one atomic load:
//!   the event is not even built.
//!
//! [`ClusterNode::subscribe_events`]: crate::ClusterNode::subscribe_events

use std::collections::VecDeque;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};

use parking_lot::Mutex;
use tokio::sync::Notify;

use crate::env::NodeEvent;

/// Events a subscriber's queue holds by default before new ones are
/// dropped (and counted): [`ClusterNode::subscribe_events`].
///
/// [`ClusterNode::subscribe_events`]: crate::ClusterNode::subscribe_events
pub const DEFAULT_EVENT_CAPACITY: usize = 1024;

/// The most a subscriber's queue may hold (larger requests are clamped).
pub const MAX_EVENT_CAPACITY: usize = 1 << 20;

/// One item of a [`ClusterEvents`] stream.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum ClusterEvent {
    /// Something happened on the node.
    Node(NodeEvent),
    /// This subscriber fell behind: this many events were dropped here,
    /// between the item before and the item after (also counted in
    /// `inspect().counters.events_dropped`).
    Lagged(u64),
}

/// Whether the stream carries `event` (per-request events do not).
fn streamed(event: &NodeEvent) -> bool {
    !matches!(event, NodeEvent::Rejected { .. } | NodeEvent::Retried { .. })
}

#[derive(Debug)]
struct Queue {
    /// Events, each gap marked by one `Lagged` before the event after it
    /// (so at most `cap` events and as many markers).
    items: VecDeque<ClusterEvent>,
    /// `Node` items in `items`.
    events: usize,
    /// Events dropped since the last item queued (not yet marked).
    missed: u64,
}

#[derive(Debug)]
struct Sub {
    id: u64,
    cap: usize,
    queue: Mutex<Queue>,
    ready: Notify,
    closed: AtomicBool,
}

impl Sub {
    /// Queues `event`; `false` if it was dropped (the queue is full).
    fn push(&self, event: &NodeEvent) -> bool {
        let mut q = self.queue.lock();
        let queued = q.events < self.cap;
        if queued {
            if q.missed > 0 {
                let missed = std::mem::take(&mut q.missed);
                q.items.push_back(ClusterEvent::Lagged(missed));
            }
            q.items.push_back(ClusterEvent::Node(event.clone()));
            q.events += 1;
        } else {
            q.missed += 1;
        }
        drop(q);
        if queued {
            self.ready.notify_one();
        }
        queued
    }

    fn pop(&self) -> Option<ClusterEvent> {
        let mut q = self.queue.lock();
        match q.items.pop_front() {
            Some(item) => {
                if matches!(item, ClusterEvent::Node(_)) {
                    q.events -= 1;
                }
                Some(item)
            }
            None if q.missed > 0 => Some(ClusterEvent::Lagged(std::mem::take(&mut q.missed))),
            None => None,
        }
    }
}

/// The subscribers of one node.
#[derive(Debug, Default)]
pub(crate) struct EventHub {
    subs: Mutex<Vec<Arc<Sub>>>,
    /// Mirrors `subs.len()`, read without the lock on every emit.
    count: AtomicUsize,
    next_id: AtomicU64,
    closed: AtomicBool,
}

impl EventHub {
    /// Whether anyone listens (one atomic load).
    pub(crate) fn has_subscribers(&self) -> bool {
        self.count.load(Ordering::Acquire) > 0
    }

    /// A new subscriber with room for `capacity` events (at least one).
    pub(crate) fn subscribe(self: &Arc<Self>, capacity: usize) -> ClusterEvents {
        let sub = Arc::new(Sub {
            id: self.next_id.fetch_add(1, Ordering::Relaxed),
            cap: capacity.clamp(1, MAX_EVENT_CAPACITY),
            queue: Mutex::new(Queue { items: VecDeque::new(), events: 0, missed: 0 }),
            ready: Notify::new(),
            closed: AtomicBool::new(false),
        });
        let mut subs = self.subs.lock();
        // Checked under the lock `close` takes: a subscriber is either in
        // the list when the hub closes, or sees it closed here.
        if self.closed.load(Ordering::Acquire) {
            sub.closed.store(true, Ordering::Release);
        } else {
            subs.push(Arc::clone(&sub));
            self.count.store(subs.len(), Ordering::Release);
        }
        ClusterEvents { sub, hub: Arc::downgrade(self) }
    }

    /// Queues `event` for every subscriber (if it is a streamed kind);
    /// returns for how many it was dropped (their queues were full).
    pub(crate) fn publish(&self, event: &NodeEvent) -> u64 {
        if !streamed(event) {
            return 0;
        }
        let subs = self.subs.lock();
        subs.iter().map(|sub| u64::from(!sub.push(event))).sum()
    }

    /// Ends every stream (once their queues are drained): the node stopped.
    pub(crate) fn close(&self) {
        let mut subs = self.subs.lock();
        self.closed.store(true, Ordering::Release);
        for sub in subs.drain(..) {
            sub.closed.store(true, Ordering::Release);
            sub.ready.notify_one();
        }
        self.count.store(0, Ordering::Release);
    }

    fn unsubscribe(&self, id: u64) {
        let mut subs = self.subs.lock();
        subs.retain(|s| s.id != id);
        self.count.store(subs.len(), Ordering::Release);
    }
}

/// A subscription to one node's events, from
/// [`ClusterNode::subscribe_events`](crate::ClusterNode::subscribe_events).
///
/// Yields every [`NodeEvent`] the node emits from the moment of
/// subscription except the per-request ones (`Rejected`, `Retried`), in
/// the node's order, each wrapped in [`ClusterEvent::Node`]. The queue is
/// bounded: when the subscriber falls behind, newer events are dropped,
/// counted, and reported as one [`ClusterEvent::Lagged`] item in their
/// place; the node never waits. The stream ends (`recv` returns `None`)
/// once the node has shut down (or was killed) and the queue is drained.
/// Dropping it unsubscribes.
///
/// ```no_run
/// # async fn demo(node: axactor_cluster::ClusterNode) {
/// use axactor_cluster::{ClusterEvent, NodeEvent};
/// let mut events = node.subscribe_events();
/// while let Some(event) = events.recv().await {
///     match event {
///         ClusterEvent::Node(NodeEvent::ShardAcquired { registry, shard, epoch }) => {
///             println!("acquired {registry}/{shard} at epoch {epoch}")
///         }
///         ClusterEvent::Lagged(n) => println!("missed {n} events"),
///         other => println!("{other:?}"),
///     }
/// }
/// # }
/// ```
#[derive(Debug)]
pub struct ClusterEvents {
    sub: Arc<Sub>,
    hub: std::sync::Weak<EventHub>,
}

impl ClusterEvents {
    /// The next event; `None` once the node has stopped and every queued
    /// event has been received.
    ///
    /// # Cancel safety
    /// Cancel safe: an event is removed from the queue only when this
    /// returns it, so `recv` can be a branch of `tokio::select!`.
    pub async fn recv(&mut self) -> Option<ClusterEvent> {
        loop {
            // Registered before the check, so a push in between still wakes us.
            let ready = self.sub.ready.notified();
            if let Some(item) = self.sub.pop() {
                return Some(item);
            }
            if self.sub.closed.load(Ordering::Acquire) {
                // A push may have raced the close: look once more.
                return self.sub.pop();
            }
            ready.await;
        }
    }

    /// The next event if one is queued now, without waiting.
    pub fn try_recv(&mut self) -> Option<ClusterEvent> {
        self.sub.pop()
    }

    /// Whether the node has stopped (queued events may remain).
    pub fn is_closed(&self) -> bool {
        self.sub.closed.load(Ordering::Acquire)
    }
}

impl Drop for ClusterEvents {
    fn drop(&mut self) {
        if let Some(hub) = self.hub.upgrade() {
            hub.unsubscribe(self.sub.id);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn acquired(shard: u32) -> NodeEvent {
        NodeEvent::ShardAcquired { registry: "r".into(), shard, epoch: 1 }
    }

    #[test]
    fn a_full_queue_drops_new_events_and_marks_the_gap() {
        let hub = Arc::new(EventHub::default());
        let mut events = hub.subscribe(2);
        let dropped: u64 = (0..5).map(|shard| hub.publish(&acquired(shard))).sum();
        assert_eq!(dropped, 3);
        assert_eq!(events.try_recv(), Some(ClusterEvent::Node(acquired(0))));
        // Room again: the marker goes first, then the event.
        hub.publish(&acquired(5));
        assert_eq!(events.try_recv(), Some(ClusterEvent::Node(acquired(1))));
        assert_eq!(events.try_recv(), Some(ClusterEvent::Lagged(3)));
        assert_eq!(events.try_recv(), Some(ClusterEvent::Node(acquired(5))));
        assert_eq!(events.try_recv(), None);
        // A gap at the end is reported when the queue runs dry.
        let dropped: u64 = (7..10).map(|shard| hub.publish(&acquired(shard))).sum();
        assert_eq!(dropped, 1);
        assert_eq!(events.try_recv(), Some(ClusterEvent::Node(acquired(7))));
        assert_eq!(events.try_recv(), Some(ClusterEvent::Node(acquired(8))));
        assert_eq!(events.try_recv(), Some(ClusterEvent::Lagged(1)));
        assert_eq!(events.try_recv(), None);
    }

    #[test]
    fn per_request_events_are_not_streamed() {
        let hub = Arc::new(EventHub::default());
        let mut events = hub.subscribe(4);
        assert_eq!(hub.publish(&NodeEvent::Rejected { reason: "not_owner" }), 0);
        assert_eq!(events.try_recv(), None);
    }

    #[tokio::test]
    async fn close_ends_the_stream_after_the_queue() {
        let hub = Arc::new(EventHub::default());
        let mut events = hub.subscribe(4);
        hub.publish(&acquired(0));
        hub.close();
        assert_eq!(events.recv().await, Some(ClusterEvent::Node(acquired(0))));
        assert_eq!(events.recv().await, None);
        assert!(!hub.has_subscribers());
        let mut late = hub.subscribe(4);
        assert!(late.is_closed());
        assert_eq!(late.recv().await, None);
    }

    #[test]
    fn dropping_a_subscription_unsubscribes() {
        let hub = Arc::new(EventHub::default());
        let events = hub.subscribe(4);
        assert!(hub.has_subscribers());
        drop(events);
        assert!(!hub.has_subscribers());
    }
}
