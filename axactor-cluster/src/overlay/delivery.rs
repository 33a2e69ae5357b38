//! The in-memory overlay's delivery task: the driver of one direction of one
//! link. It takes frames from the sender's queues (control first), asks the
//! [`FaultTable`](super::faults::FaultTable) what happens to each, keeps
//! delayed frames in a [`Schedule`] and held frames in a bounded queue, and
//! hands due frames to the receiver's bounded queue. Whenever it has
//! nothing in hand (queues empty, nothing scheduled or held) it lets the
//! senders write through (`super::memory_direct`), which skips this task for
//! frames no fault touches; it ends that path when it ends.
//!
//! Bounds: a frame is delivered only with a slot in the receiver's queue
//! and room in its byte budget (else the task waits, as a TCP reader
//! would); at most `link_queue_frames` frames are scheduled at once (beyond
//! that the task stops taking frames, so the sender's queue fills and
//! `try_send` reports `Full`); at most `max_held_frames` are held.
//!
//! Shutdown: when the sender side drains (closed or dropped), the task moves
//! the link to `Closing`, discards held frames, delivers what is scheduled
//! and ends, which ends the receiver. When the link is `Dead` (the receiver
//! was dropped, or a frame exceeded the receiver's limit) it ends at once.
//! Discarded frames are counted in `dropped_closed`. Unlike TCP there is no
//! close deadline: a closing link waits for its receiver to make room (it
//! never loses a frame to a slow reader); dropping the receiver ends it.

use std::collections::VecDeque;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use tokio::time::Instant;

use super::counters::bump;
use super::faults::{Decision, DropReason, Schedule};
use super::inbound::InboundTx;
use super::link::{LinkState, Next, OutQueue, Phase, PhaseWatch};
use super::memory_direct::{Direct, Direction};
use super::memory_net::FrameFate;

/// How long a reordered frame waits for the next frame of its link before it
/// is delivered anyway (tokio time).
pub const REORDER_MAX_WAIT: Duration = Duration::from_millis(10);

/// Far enough in the future to never fire in a test or a simulation.
const NEVER: Duration = Duration::from_secs(100 * 365 * 24 * 3600);

struct Task {
    dir: Direction,
    inbound: InboundTx,
    state: Arc<LinkState>,
    dead: PhaseWatch,
    schedule: Schedule,
    held: VecDeque<Bytes>,
    max_held: usize,
}

/// Runs one direction until the link ends; `direct` is the direction's
/// write-through path, which the task turns idle whenever it has nothing to
/// do (`memory_direct`).
pub(crate) async fn run(
    dir: Direction,
    mut out: OutQueue,
    inbound: InboundTx,
    state: Arc<LinkState>,
    direct: Arc<Direct>,
) {
    let config = dir.net.config();
    let net = Arc::clone(&dir.net);
    let mut seen = net.version();
    let mut task = Task {
        dead: state.watch(),
        dir,
        inbound,
        state,
        schedule: Schedule::default(),
        held: VecDeque::new(),
        max_held: config.max_held_frames,
    };
    let mut draining = false;
    let alive = loop {
        if draining && task.schedule.is_empty() {
            break true;
        }
        if !draining && task.schedule.is_empty() && task.held.is_empty() {
            // Nothing in hand: senders may write through once the queues are empty.
            direct.settle(|| out.is_empty());
        }
        let due = task.schedule.next_due();
        let wake = due.unwrap_or_else(|| Instant::now() + NEVER);
        let can_take = !draining && task.schedule.len() < config.link_queue_frames;
        tokio::select! {
            biased;
            () = task.dead.reached(Phase::Dead) => break false,
            () = task.inbound.closed() => break false,
            () = net.changed(&mut seen) => {
                if !task.held.is_empty() && !task.is_held() && !task.flush_held().await {
                    break false;
                }
            }
            () = tokio::time::sleep_until(wake), if due.is_some() => {
                if !task.deliver_due().await {
                    break false;
                }
            }
            next = out.next(), if can_take => match next {
                Next::Frame(frame) => {
                    if !task.accept(frame).await {
                        break false;
                    }
                }
                Next::Drained => {
                    draining = true;
                    task.state.advance(Phase::Closing);
                    let n = task.held.len();
                    task.held.clear();
                    bump(&task.dir.net.counters.dropped_closed, n as u64);
                }
                Next::Dead => break false,
            },
        }
    };
    direct.end();
    if !alive {
        task.state.advance(Phase::Dead);
    }
    let discarded = task.schedule.len() + task.held.len();
    bump(&task.dir.net.counters.dropped_closed, discarded as u64);
    // Dropping `task.inbound` ends the receiver.
}

impl Task {
    fn is_held(&self) -> bool {
        self.dir.net.with_faults(|t| t.is_held(&self.dir.from, &self.dir.to))
    }

    /// Applies the link's faults to a frame just taken from the sender.
    /// Returns `false` if the link died.
    async fn accept(&mut self, frame: Bytes) -> bool {
        let (net, from, to) = (&self.dir.net, &self.dir.from, &self.dir.to);
        let counters = &net.counters;
        match net.with_faults(|t| t.decide(from, to)) {
            Decision::Drop(DropReason::Partition) => {
                net.tap(from, to, &frame, FrameFate::DroppedPartition);
                bump(&counters.dropped_partition, 1);
            }
            Decision::Drop(DropReason::Random) => {
                net.tap(from, to, &frame, FrameFate::DroppedRandom);
                bump(&counters.dropped_random, 1);
            }
            Decision::Hold if self.held.len() < self.max_held => {
                net.tap(from, to, &frame, FrameFate::Held);
                self.held.push_back(frame);
                bump(&counters.held, 1);
            }
            Decision::Hold => {
                net.tap(from, to, &frame, FrameFate::DroppedHoldOverflow);
                bump(&counters.dropped_hold_overflow, 1);
            }
            Decision::Deliver(d) if d.is_plain() && self.schedule.is_empty() => return self.deliver(frame).await,
            Decision::Deliver(d) => {
                if d.duplicate {
                    bump(&counters.duplicated, 1);
                }
                if self.schedule.push(Instant::now(), frame, d, REORDER_MAX_WAIT) {
                    bump(&counters.reordered, 1);
                }
                return self.deliver_due().await;
            }
        }
        true
    }

    /// Sends held frames through the faults again, in order.
    async fn flush_held(&mut self) -> bool {
        while let Some(frame) = self.held.pop_front() {
            if !self.accept(frame).await {
                return false;
            }
        }
        true
    }

    async fn deliver_due(&mut self) -> bool {
        while let Some(frame) = self.schedule.pop_due(Instant::now()) {
            if !self.deliver(frame).await {
                return false;
            }
        }
        true
    }

    /// Hands one frame to the receiver, waiting for room.
    async fn deliver(&mut self, frame: Bytes) -> bool {
        if frame.len() > self.dir.limit.get() {
            tracing::debug!(from = %self.dir.from, to = %self.dir.to, len = frame.len(), "closing link: frame over the receiver's limit");
            bump(&self.dir.net.counters.dropped_closed, 1);
            return false;
        }
        let slot = tokio::select! {
            biased;
            () = self.dead.reached(Phase::Dead) => return false,
            r = self.inbound.reserve() => match r {
                Ok(slot) => slot,
                Err(_) => return false,
            },
        };
        // Then the bytes (cancel safe: taken only when it completes).
        if !self.dir.bytes.try_take(frame.len()) {
            tokio::select! {
                biased;
                () = self.dead.reached(Phase::Dead) => return false,
                () = self.dir.bytes.take(frame.len()) => {}
            }
        }
        self.dir.net.tap(&self.dir.from, &self.dir.to, &frame, FrameFate::Delivered);
        // Counted before the receiver can see it: a frame received is counted.
        bump(&self.dir.net.counters.delivered, 1);
        slot.send(frame);
        true
    }
}
