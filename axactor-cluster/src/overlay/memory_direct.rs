//! The in-memory overlay's write-through path ([`Direct`], one per directed
//! link, the link's [`WriteThrough`]): a frame fed (`LinkSender::feed`)
//! while the directed link's delivery task is idle and no fault could touch
//! it is handed to the receiver's inbound queue from the sender's own task,
//! sparing the delivery task's wake-up.
//!
//! One gate (a `parking_lot` mutex, never held across an await) orders the
//! two paths:
//! - `busy`: the delivery task has, or may have, work: a frame queued,
//!   scheduled, held or in its hands. A sender sets it under the gate
//!   before it queues a frame (`queue_busy`, or `feed` falling back); only
//!   the delivery task clears it, under the gate, at the top of its loop,
//!   with nothing scheduled, held or in hand, and with both of the sender's
//!   queues seen empty under the gate ([`Direct::settle`]). A frame is
//!   written through only under the gate with `busy` clear, and sits in the
//!   inbound queue before the gate is released. So a frame written through
//!   never overtakes one queued, scheduled or held before it (the gate was
//!   busy until that one was delivered or dropped), and a frame queued
//!   after it never overtakes it.
//! - Faults: the path is taken only while [`FaultTable::is_clean`] holds for
//!   the directed link (no partition, hold, drop, delay, duplicate or
//!   reorder, so the task would deliver at once without an RNG draw). It is
//!   read under the network's lock and cached per fault version; the
//!   version is read before the table and bumped after every change, before
//!   the setter returns, so a fault set before a feed began always sends
//!   that frame (and every later one) through the delivery task.
//! - Bounds, as the task's `deliver`: a frame over the receiver's frame
//!   limit, a full inbound queue or byte budget, or a link not `Open` takes
//!   the queue instead (the task then closes the link, waits for room, or
//!   drains, as for any frame). A frame written through takes a slot and
//!   its bytes first, is tapped as [`FrameFate::Delivered`] and counted as
//!   delivered, in the task's order.
//! - End: when the delivery task ends it makes the path busy for good and
//!   drops the path's inbound sender, so the receiver still ends with the
//!   task.
//!
//! Determinism: no clock, no randomness, no RNG draw; under the
//! simulation's current-thread runtime a frame written through is delivered
//! (and tapped) within the sender's poll.
//!
//! [`FaultTable::is_clean`]: super::faults::FaultTable::is_clean

use std::sync::Arc;

use bytes::Bytes;
use parking_lot::Mutex;

use super::counters::bump;
use super::inbound::InboundTx;
use super::link::{ByteBudget, Fed, FrameLimit, LinkState, Phase, WriteThrough};
use super::memory_net::{FrameFate, Net};

/// Which way a directed link carries frames: what its delivery task and its
/// write-through path share.
#[derive(Debug, Clone)]
pub(crate) struct Direction {
    pub(crate) net: Arc<Net>,
    pub(crate) from: String,
    pub(crate) to: String,
    /// The receiving endpoint's frame limit.
    pub(crate) limit: FrameLimit,
    /// The receiving endpoint's inbound byte budget.
    pub(crate) bytes: Arc<ByteBudget>,
}

/// The write-through path of one directed in-memory link, shared by the
/// sending endpoint's senders and the direction's delivery task (see the
/// module docs).
#[derive(Debug)]
pub(crate) struct Direct {
    gate: Mutex<Gate>,
    dir: Direction,
    state: Arc<LinkState>,
}

/// What the gate guards.
#[derive(Debug)]
struct Gate {
    /// The delivery task has, or may have, work (or has ended).
    busy: bool,
    /// The receiver's inbound queue; `None` once the delivery task ended.
    inbound: Option<InboundTx>,
    /// The fault version last read and whether the link was clean at it.
    faults_seen: Option<(u64, bool)>,
}

impl Direct {
    /// An idle path carrying `dir` into `inbound`, for the link `state`.
    pub(crate) fn new(dir: Direction, inbound: InboundTx, state: Arc<LinkState>) -> Arc<Direct> {
        let gate = Gate { busy: false, inbound: Some(inbound), faults_seen: None };
        Arc::new(Direct { gate: Mutex::new(gate), dir, state })
    }

    /// The delivery task, at the top of its loop with nothing scheduled or
    /// held and no frame in hand: turns the path idle if `queues_empty`
    /// (the sender's queues, looked at under the gate) says so.
    pub(crate) fn settle(&self, queues_empty: impl FnOnce() -> bool) {
        let mut gate = self.gate.lock();
        if gate.busy && gate.inbound.is_some() && queues_empty() {
            gate.busy = false;
        }
    }

    /// The delivery task has ended: no frame is written through any more.
    pub(crate) fn end(&self) {
        let mut gate = self.gate.lock();
        gate.busy = true;
        gate.inbound = None;
    }

    /// Whether no fault could touch a frame on this directed link now.
    fn clean(&self, gate: &mut Gate) -> bool {
        // The version first: a change after this read bumps it again.
        let version = self.dir.net.version();
        if let Some((seen, clean)) = gate.faults_seen
            && seen == version
        {
            return clean;
        }
        let clean = self.dir.net.with_faults(|t| t.is_clean(&self.dir.from, &self.dir.to));
        gate.faults_seen = Some((version, clean));
        clean
    }

    /// Hands `frame` to the receiver if the path is idle and nothing could
    /// delay, drop or refuse it; gives it back otherwise.
    fn try_deliver(&self, gate: &mut Gate, frame: Bytes) -> Result<(), Bytes> {
        if gate.busy || self.state.phase() != Phase::Open || frame.len() > self.dir.limit.get() || !self.clean(gate) {
            return Err(frame);
        }
        let Some(inbound) = &gate.inbound else { return Err(frame) };
        // Nothing queued: the receiver may take it from this task.
        if let Err(frame) = inbound.try_inline(frame, &mut |frame| self.delivered(frame)) {
            return self.queue(inbound, frame);
        }
        Ok(())
    }

    /// Queues `frame` for the receiver if there is room; gives it back
    /// otherwise.
    fn queue(&self, inbound: &InboundTx, frame: Bytes) -> Result<(), Bytes> {
        let Ok(slot) = inbound.try_reserve() else { return Err(frame) };
        if !self.dir.bytes.try_take(frame.len()) {
            return Err(frame);
        }
        self.delivered(&frame);
        slot.send(frame);
        Ok(())
    }

    /// Taps and counts a frame written through, before the receiver can
    /// see it (a frame received is counted).
    fn delivered(&self, frame: &Bytes) {
        let Direction { net, from, to, .. } = &self.dir;
        net.tap(from, to, frame, FrameFate::Delivered);
        bump(&net.counters.delivered, 1);
    }
}

impl WriteThrough for Direct {
    fn queue_busy(&self, queue: &mut dyn FnMut()) {
        let mut gate = self.gate.lock();
        gate.busy = true;
        queue();
    }

    fn feed(&self, frame: Bytes, queue: &mut dyn FnMut(Bytes) -> Fed) -> Fed {
        let mut gate = self.gate.lock();
        match self.try_deliver(&mut gate, frame) {
            Ok(()) => Fed::Done,
            Err(frame) => {
                // The task takes it from here: it is queued behind a busy path.
                gate.busy = true;
                queue(frame)
            }
        }
    }

    /// Nothing is buffered: a frame written through is delivered by `feed`.
    fn flush(&self) {}
}
