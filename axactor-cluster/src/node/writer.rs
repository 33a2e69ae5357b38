//! The writer of an authenticated session: a task of its own. It takes
//! control messages first, then completed replies to the peer's asks and
//! the data queue in turn; the frames come encoded (by the caller for a
//! request, by the activation for a reply), so it only seals each in place
//! and hands it to the link, through the connection's one write path
//! (`node/write_path.rs`). While this task is idle, callers (their
//! requests and tells) and activations (their completed replies) take that
//! path themselves; what they cannot write at once comes through here.
//!
//! Write modes: in latency mode (for `CALM_FRAMES` frames in a row, at
//! most one of our requests in flight on this connection and none of the
//! peer's unanswered or executing here) frames are fed to the link's
//! write-through path (`LinkSender::feed`), and the writer flushes them once
//! none of its sources is ready: on TCP they are written to the socket from
//! this task, sparing the hand-off to the overlay's connection task.
//! Otherwise (pipelined requests, a flood) frames are queued on the link and
//! the connection task batches them. Both paths keep the frames in the
//! order sealed (`overlay/tcp_conn.rs`); the counts are hints only (a
//! response dropped when its queue is full leaves a count high: throughput
//! mode).

use std::future::{Future, poll_fn};
use std::sync::Arc;
use std::sync::atomic::Ordering;

use parking_lot::Mutex;
use tokio::sync::mpsc;

use super::in_flight::Response;
use super::outbound::{OutKind, Outbound};
use super::replies::Replies;
use super::shared::Shared;
use super::table::ConnId;
use super::write_path::{ConnShared, Written, saturating_decrement};
use crate::counter_reasons::DropReason;
use crate::overlay::LinkSender;
use crate::wire::{CodecError, ControlMsg, Envelope, OutFrame, Rejection};

/// Items the writer takes in a row without waiting (see `write_loop`).
const WRITE_BATCH: usize = 64;

/// What the writer takes its frames from.
pub(super) struct Queues {
    pub(super) control: mpsc::Receiver<ControlMsg>,
    pub(super) data: mpsc::Receiver<Outbound>,
    pub(super) shared: Arc<ConnShared>,
    /// Resolves when the reader has ended.
    pub(super) reader_done: tokio::sync::oneshot::Receiver<()>,
}

/// Sends control messages first; completed replies to the peer's asks and
/// the data queue take turns (as when replies went through the data queue,
/// neither starves the other).
pub(super) async fn write_loop(node: Arc<Shared>, conn: ConnId, tx: LinkSender, queues: Queues) {
    let Queues { control, data, shared, reader_done } = queues;
    let node = &*node;
    let mut frame = FrameWriter { node, shared: &shared, max_envelope: node.max_envelope() };
    let mut sources =
        Sources { control, data, replies: &shared.replies, reader_done, replies_first: true, in_a_row: 0 };
    // Whether frames were fed since the last flush.
    let mut fed = false;
    while let Some(item) = sources.next(&tx, &mut fed).await {
        // What to count if this item is lost with the connection, and how many times.
        let lost: Option<DropReason>;
        let mut messages = 1;
        let (out, kind, from_queue) = match item {
            Item::Control(ControlMsg::Goodbye) => {
                sources.say_goodbye(&mut frame, &tx).await;
                break;
            }
            Item::Control(msg) => {
                lost = control_loss(&msg);
                (OutFrame::envelope(&Envelope::Control(msg)), OutKind::Other, false)
            }
            Item::Data(out) => {
                lost = data_loss(out.kind);
                if let Some(batch) = &out.tells {
                    // Taken: it grows no more, and is encoded as it is now.
                    shared.end_batch(batch);
                }
                messages = out.messages();
                let kind = out.kind;
                (out.into_frame(), kind, true)
            }
            Item::Reply(out) => {
                lost = data_loss(out.kind);
                (Ok(out.frame), out.kind, false)
            }
        };
        match kind {
            OutKind::Request(_) => {
                shared.outstanding.fetch_add(1, Ordering::Relaxed);
            }
            OutKind::Response => saturating_decrement(&shared.owed_to_peer),
            OutKind::Other => {}
        }
        let lone = shared.lone(0);
        match frame.send(out, lone, from_queue).await {
            Written::Sent { through } => fed |= through,
            Written::Ended => {
                if let Some(reason) = lost {
                    node.counters.dropped_n(reason, messages);
                }
                break;
            }
        }
    }
    shared.close_direct();
    tx.flush();
    tx.close();
    sources.close(node, conn);
    node.counters.dropped_n(DropReason::ResponseDiscardedAtClose, shared.take_lost_replies());
}

/// Where the writer takes its items from, in its order: control first,
/// then completed replies and the data queue in turn.
struct Sources<'a> {
    control: mpsc::Receiver<ControlMsg>,
    data: mpsc::Receiver<Outbound>,
    replies: &'a Mutex<Replies>,
    /// Resolves when the reader has ended.
    reader_done: tokio::sync::oneshot::Receiver<()>,
    /// Whether the replies' turn comes before the data queue's.
    replies_first: bool,
    /// Items taken in a row by the fast path of [`Sources::next`].
    in_a_row: usize,
}

impl Sources<'_> {
    /// The next item; `None` once the reader has ended (or every source
    /// has). Frames fed to the link (`fed`) are flushed before waiting.
    async fn next(&mut self, tx: &LinkSender, fed: &mut bool) -> Option<Item> {
        // Fast path: take what is ready without registering wake-ups, in the
        // order the select below would; every `WRITE_BATCH` items the select
        // runs anyway (its receives count against the task's budget, so a
        // busy writer still yields).
        self.in_a_row += 1;
        if self.in_a_row < WRITE_BATCH
            && let Some(item) = take_ready(&mut self.control, &mut self.data, self.replies, &mut self.replies_first)
        {
            return Some(item);
        }
        self.in_a_row = 0;
        let Sources { control, data, replies, reader_done, replies_first, .. } = self;
        let replies = *replies;
        // Exactly one of the two reply branches is enabled, so the replies
        // are polled (and their wake-ups registered) on every pass.
        let next = async {
            tokio::select! {
                biased;
                Some(msg) = control.recv() => Some(Item::Control(msg)),
                Some(out) = poll_fn(|cx| replies.lock().poll_next(cx)), if *replies_first => {
                    *replies_first = false;
                    Some(Item::Reply(out))
                }
                Some(out) = data.recv() => {
                    *replies_first = true;
                    Some(Item::Data(out))
                }
                Some(out) = poll_fn(|cx| replies.lock().poll_next(cx)), if !*replies_first => Some(Item::Reply(out)),
                _ = reader_done => None,
                else => None,
            }
        };
        let mut next = std::pin::pin!(next);
        // Frames written through are fed to the link (one batch on a TCP
        // link), flushed once nothing else is ready (the wake-ups of the
        // branches above are registered by then).
        poll_fn(|cx| {
            let polled = next.as_mut().poll(cx);
            if polled.is_pending() && std::mem::take(fed) {
                tx.flush();
            }
            polled
        })
        .await
    }

    /// Sends what is queued or completed for the peer (responses it waits
    /// for), then the `Goodbye`, and flushes: nothing follows a Goodbye.
    async fn say_goodbye(&mut self, frame: &mut FrameWriter<'_>, tx: &LinkSender) {
        loop {
            let (out, from_queue) = match ready_reply(self.replies).await {
                Some(out) => (out, false),
                None => match self.data.try_recv() {
                    Ok(out) => (out, true),
                    Err(_) => break,
                },
            };
            if let Some(batch) = &out.tells {
                frame.shared.end_batch(batch);
            }
            if frame.send(out.into_frame(), false, from_queue).await == Written::Ended {
                break;
            }
        }
        frame.shared.close_direct();
        let _ = frame.send(OutFrame::envelope(&Envelope::Control(ControlMsg::Goodbye)), false, false).await;
        tx.flush();
    }

    /// The connection is closed: our requests still queued were never
    /// sent, a definite failure, so the caller may retry them elsewhere (not
    /// `ConnectionLost`); what else never left is counted (tells,
    /// responses, replies, and control messages that carry a signal).
    fn close(mut self, node: &Shared, conn: ConnId) {
        self.data.close();
        while let Ok(out) = self.data.try_recv() {
            match out.kind {
                OutKind::Request(request_id) => {
                    node.complete(conn, request_id, Response::Rejected(Rejection::UnknownSession));
                }
                kind => {
                    if let Some(reason) = data_loss(kind) {
                        node.counters.dropped_n(reason, out.messages());
                    }
                }
            }
        }
        self.control.close();
        while let Ok(msg) = self.control.try_recv() {
            if let Some(reason) = control_loss(&msg) {
                node.counters.dropped(reason);
            }
        }
        let discarded = self.replies.lock().discard();
        node.counters.dropped_n(DropReason::ReplyDiscardedAtClose, discarded);
    }
}

/// The `dropped` reason of a data-plane frame never sent because its
/// connection closed (our requests fail instead, and are not counted).
fn data_loss(kind: OutKind) -> Option<DropReason> {
    match kind {
        OutKind::Request(_) => None,
        OutKind::Response => Some(DropReason::ResponseDiscardedAtClose),
        OutKind::Other => Some(DropReason::TellDiscardedAtClose),
    }
}

/// The `dropped` reason of a control message never sent because its
/// connection closed (liveness messages are not counted: they mean nothing
/// once it has).
fn control_loss(msg: &ControlMsg) -> Option<DropReason> {
    match msg {
        ControlMsg::Heartbeat { .. } | ControlMsg::HeartbeatAck { .. } | ControlMsg::Goodbye => None,
        ControlMsg::Down { .. } => Some(DropReason::DownDiscardedAtClose),
        _ => Some(DropReason::ControlDiscardedAtClose),
    }
}

/// What the writer takes next.
enum Item {
    Control(ControlMsg),
    /// From the data queue (counted in its `queued` until sealed).
    Data(Outbound),
    /// A completed reply to one of the peer's asks.
    Reply(Outbound),
}

/// What the writer's select would take now, in its order, without waiting
/// or registering wake-ups.
fn take_ready(
    control: &mut mpsc::Receiver<ControlMsg>,
    data: &mut mpsc::Receiver<Outbound>,
    replies: &Mutex<Replies>,
    replies_first: &mut bool,
) -> Option<Item> {
    if let Ok(msg) = control.try_recv() {
        return Some(Item::Control(msg));
    }
    if *replies_first && let Some(out) = replies.lock().try_next() {
        *replies_first = false;
        return Some(Item::Reply(out));
    }
    if let Ok(out) = data.try_recv() {
        *replies_first = true;
        return Some(Item::Data(out));
    }
    replies.lock().try_next().map(Item::Reply)
}

/// A reply that has completed already, without waiting for one.
async fn ready_reply(replies: &Mutex<Replies>) -> Option<Outbound> {
    poll_fn(|cx| match replies.lock().poll_next(cx) {
        std::task::Poll::Ready(msg) => std::task::Poll::Ready(msg),
        std::task::Poll::Pending => std::task::Poll::Ready(None),
    })
    .await
}

/// Seals encoded frames and hands them to the link, in order.
struct FrameWriter<'a> {
    node: &'a Shared,
    shared: &'a ConnShared,
    max_envelope: usize,
}

impl FrameWriter<'_> {
    /// Seals `frame` and hands it to the link (see [`ConnShared::write`]);
    /// a frame that cannot be encoded or is too large is dropped and counted.
    async fn send(&mut self, frame: Result<OutFrame, CodecError>, lone: bool, from_queue: bool) -> Written {
        match frame.ok().filter(|f| f.envelope_bytes().len() <= self.max_envelope) {
            Some(frame) => self.shared.write(frame, lone, from_queue).await,
            None => {
                if from_queue {
                    self.shared.unqueue();
                }
                self.node.counters.dropped(DropReason::Unencodable);
                Written::Sent { through: false }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn losses_at_close_are_labelled_except_requests_and_liveness() {
        assert_eq!(data_loss(OutKind::Request(7)), None, "our requests fail instead");
        assert_eq!(data_loss(OutKind::Response), Some(DropReason::ResponseDiscardedAtClose));
        assert_eq!(data_loss(OutKind::Other), Some(DropReason::TellDiscardedAtClose));
        assert_eq!(control_loss(&ControlMsg::Heartbeat { sent_at_ms: 1 }), None);
        assert_eq!(control_loss(&ControlMsg::Goodbye), None);
        let down = ControlMsg::Down { request_id: 1, reason: crate::wire::DownReason::Stopped };
        assert_eq!(control_loss(&down), Some(DropReason::DownDiscardedAtClose));
        assert_eq!(control_loss(&ControlMsg::Demonitor { request_id: 1 }), Some(DropReason::ControlDiscardedAtClose));
    }
}
