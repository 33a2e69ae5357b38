//! The per-connection driver, second half: an authenticated session.
//!
//! ```text
//! reader (this task): link rx ─▶ decode_body ─▶ Opener ─▶ decode_envelope_ref ─▶ handle
//!                     heartbeat tick, node stop, close signal (replaced)
//! writer (its task, `node/writer.rs`): control queue first; completed replies and
//!                     the data queue in turn ─▶ Sealer ─▶ link tx (Priority::Data)
//! ```
//!
//! The reader does the I/O; what it does on each event (liveness,
//! heartbeats, how a frame is answered, why the connection ends) is decided
//! by `crate::conn_rules`. On in-memory links a frame written through while
//! nothing is queued is opened and dispatched by the sending task itself,
//! in order, without waking the reader task (`established/inline.rs`).
//!
//! Sequence numbers are strictly consecutive, so a frame is sealed and
//! handed to the link in one step, under the connection's one write path
//! (`node/write_path.rs`), with one priority: the overlay never reorders
//! them. The writer takes that path for what it dequeues; a caller's lone
//! request and an activation's completed reply take it themselves while it
//! is free, sparing the hand-off to the writer task. Both queues are bounded; a
//! message that does not fit is dropped and counted, except a response to
//! the peer's request (ack, rejection): it waits for room in a task, at most
//! [`OWED_RESPONSE_CAPACITY`] per connection, so a flood that outruns the
//! writer still gets its definite refusals instead of timeouts. The replies
//! to the peer's asks are not queued: the writer polls them itself as they
//! complete (`node/replies.rs`, bounded by `max_inflight_requests`).
//!
//! Only here may the peer table change: the established session is offered
//! to it ([`super::table::PeerTable::admit`]), a displaced connection is
//! signalled to close, and the entry is removed when this connection ends.
//!
//! Ends: any bad frame (MAC, sequence, codec) closes this connection at
//! once, counted by label; a peer silent for `node_ttl` is closed and
//! counted; on shutdown a `Goodbye` is queued, the writer flushes it and
//! closes the link, and the reader drains until the peer has closed too
//! (bounded by [`CLOSE_GRACE`]).

use std::future::Future;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::task::Poll;
use std::time::Duration;

use bytes::Bytes;
use tokio::sync::{Semaphore, mpsc, watch};
use tokio::time::MissedTickBehavior;
use tracing::{Instrument, Span};

use super::in_flight::Response;
use super::inline_scope::Quiet;
use super::inspect::bump;
use super::outbound::{OutKind, Outbound};
use super::peers::{PeerHandle, PeerStats};
use super::queues::PeerQueues;
use super::replies::Replies;
use super::shared::Shared;
use super::table::{Admit, ConnId, Entry, PeerDirection};
use super::wake_flags::WakeFlags;
use super::write_path::{ConnShared, saturating_decrement};
use super::writer::{Queues, write_loop};
use crate::conn_rules::{Accounting, Close, ConnRules, Control, Passes, PollOrder, Step, Wake, accounting};
use crate::counter_reasons::{DropReason, FrameRejection, HandshakeFailure, Reason};
use crate::env::NodeEvent;
use crate::handshake::Established;
use crate::hosted::MonitorSink;
use crate::id::{NodeId, SessionId};
use crate::overlay::{Link, LinkReceiver, LinkSender};
use crate::session::Opener;
use crate::wire::{
    Body, ControlMsg, DataMsg, DataRef, DownReason, Envelope, EnvelopeRef, OutFrame, decode_body, decode_envelope_ref,
};
use inline::{Access, InlineReader, ReaderCell};
use parking_lot::Mutex;
use patience::Patience;

/// Control messages queued per connection before new ones are dropped.
pub const CONTROL_QUEUE_CAPACITY: usize = 256;
/// Data messages queued per connection before new ones are dropped.
pub const DATA_QUEUE_CAPACITY: usize = 1024;
/// Responses (acks, rejections) per connection that may wait for room in a
/// full data queue; beyond this they are dropped and counted
/// (`data_queue_full`), and the peer's request times out.
pub const OWED_RESPONSE_CAPACITY: usize = 16_384;
mod inline;
mod patience;
mod requests;
mod room;

/// Frames the reader handles in a row once one has arrived (those already
/// received), before it checks its other events again.
const READ_BATCH: usize = 64;
/// How long a gracefully closing connection waits for the peer's end.
pub const CLOSE_GRACE: Duration = Duration::from_secs(1);

enum End {
    /// Shutdown or the peer's Goodbye: let queued frames go, wait for the peer.
    Graceful,
    /// An error, a replacement, or the link ended: drop at once.
    Abrupt,
}

/// Runs an established connection until it ends.
pub(crate) async fn run(
    node: Arc<Shared>,
    link: Link,
    est: Established,
    direction: PeerDirection,
    dialled: Option<NodeId>,
) {
    let Link { tx, mut rx, .. } = link;
    rx.set_max_frame_bytes(node.cfg.max_frame_bytes);
    rx.set_max_queued_bytes(node.cfg.max_connection_queue_bytes);
    tx.set_max_queued_bytes(node.cfg.max_connection_queue_bytes);
    let (sealer, opener) = est.keys.into_parts();
    let (control_tx, control_rx) = mpsc::channel(CONTROL_QUEUE_CAPACITY);
    let (data_tx, data_rx) = mpsc::channel(DATA_QUEUE_CAPACITY);
    let (close_tx, close_rx) = watch::channel(false);
    let stats = Arc::new(PeerStats::new(node.now_ms()));
    let conn = node.next_conn();
    let peer = est.peer;
    let shared = ConnShared::new(Replies::new(node.max_envelope()), sealer, tx.clone());
    let queues = PeerQueues {
        data: data_tx.clone(),
        control: control_tx.clone(),
        version: est.version,
        shared: Arc::clone(&shared),
    };
    let handle = PeerHandle { close: close_tx, stats: Arc::clone(&stats), queues: Arc::new(queues) };
    let entry = Entry { conn, session: peer.clone(), direction, version: est.version, handle };
    let admitted = admit(&node, entry);
    if let Some(name) = &dialled {
        node.dial_done(name, admitted);
    }
    if !admitted {
        tx.close();
        return;
    }
    // Tell the peer what we host, then let placement consider it.
    let _ = control_tx.try_send(ControlMsg::Hosting { registries: node.hosting() });
    node.hosts.kick();
    // Queue senders may outlive the reader (clones held by requests and
    // monitors): the reader's end is what stops the writer.
    let (reader_done, reader_done_rx) = tokio::sync::oneshot::channel::<()>();
    let queues =
        Queues { control: control_rx, data: data_rx, shared: Arc::clone(&shared), reader_done: reader_done_rx };
    // The writer runs as a task of its own, so that sealing and sending
    // overlap with opening and dispatching on a multi-thread runtime.
    let writer = node.env.spawn(write_loop(Arc::clone(&node), conn, tx.clone(), queues).in_current_span());
    let reader = async {
        let owed = Arc::new(Semaphore::new(OWED_RESPONSE_CAPACITY));
        let rules = ConnRules::new(node.cfg.node_ttl, stats.last_seen_ms.load(Ordering::Relaxed), est.version);
        let reader = Reader {
            node: Arc::clone(&node),
            tx: tx.clone(),
            opener,
            control: control_tx,
            data: data_tx,
            owed,
            stats,
            conn,
            peer: peer.clone(),
            shared: Arc::clone(&shared),
            rules,
            weak: Arc::downgrade(&node),
            waits: None,
            patience: Patience::new(),
        };
        let cell = ReaderCell::new(reader);
        // Frames a link hands over while nothing is queued are handled from
        // the sender's task (`established/inline.rs`): the reader's state
        // is shared with the link. Elsewhere (streams) it is the task's own.
        let end = if rx.offers_inline() {
            let cell = Arc::new(Mutex::new(cell));
            rx.set_inline(Arc::new(InlineReader { cell: Arc::downgrade(&cell) }));
            let end = read(&mut &*cell, &node, &mut rx, close_rx).await;
            cell.lock().gone = true;
            end
        } else {
            let mut cell = cell;
            read(&mut cell, &node, &mut rx, close_rx).await
        };
        shared.replies.lock().close();
        // Drops this connection's handle (and its queue sender) if it is still ours.
        let removed = node.peers.table().remove(&peer.node, conn);
        if removed.is_some() {
            node.emit(|| NodeEvent::PeerDown { name: peer.node.clone(), session: peer.clone() });
        }
        drop(reader_done);
        end
    };
    let end = reader.await;
    close(&node, conn, end, &tx, &mut rx, writer).await;
}

/// Ends a connection whose reader has ended with `end`: the writer stops
/// (at once if abrupt, after the queued frames if graceful), the requests
/// still in flight on it fail, and a graceful end waits up to
/// [`CLOSE_GRACE`] for the peer's end.
async fn close(
    node: &Arc<Shared>,
    conn: ConnId,
    end: End,
    tx: &LinkSender,
    rx: &mut LinkReceiver,
    writer: tokio::task::JoinHandle<()>,
) {
    if matches!(end, End::Abrupt) {
        // A writer waiting for room on the link must not keep this
        // connection alive: the link refuses new frames from now on.
        tx.close();
    }
    // The writer ends once the reader has (it only fails if it panicked).
    let _ = writer.await;
    // After the writer: requests it never sent were already failed as
    // definite; what remains was sent and is lost with the connection.
    node.connection_ended(conn);
    match end {
        End::Graceful => {
            let _ = tokio::time::timeout(CLOSE_GRACE, async { while rx.recv().await.is_some() {} }).await;
        }
        // Closed above, before waiting for the writer.
        End::Abrupt => {}
    }
    tracing::debug!("connection closed");
}

/// Offers the connection to the peer table; `true` if it was kept.
fn admit(node: &Shared, entry: Entry<PeerHandle>) -> bool {
    if node.is_stopping() {
        return false;
    }
    if entry.session.node == node.id {
        node.counters.handshake_failed(HandshakeFailure::OwnName);
        tracing::debug!("peer claims our own name; closing");
        return false;
    }
    let session = entry.session.clone();
    let up = || NodeEvent::PeerUp { name: session.node.clone(), session: session.clone() };
    let outcome = node.peers.table().admit(entry);
    match outcome {
        Admit::Inserted => {
            node.emit(up);
            true
        }
        Admit::Replaced { old, new_session } => {
            if new_session {
                bump(&node.counters.sessions_replaced);
                tracing::debug!(old = %old.session, "session replaced by a new run of the peer");
                let gone = old.session.clone();
                node.emit(|| NodeEvent::PeerDown { name: gone.node.clone(), session: gone });
                node.emit(up);
            } else {
                // The same session on another connection: still up.
                bump(&node.counters.duplicate_connections);
            }
            let _ = old.handle.close.send(true);
            true
        }
        Admit::Duplicate(_) => {
            bump(&node.counters.duplicate_connections);
            tracing::debug!("duplicate connection (crossed dials); closing this one");
            false
        }
        Admit::Full(_) => {
            bump(&node.counters.peer_table_full);
            tracing::debug!("peer table full; closing");
            false
        }
    }
}

struct Reader {
    node: Arc<Shared>,
    shared: Arc<ConnShared>,
    tx: LinkSender,
    opener: Opener,
    control: mpsc::Sender<ControlMsg>,
    data: mpsc::Sender<Outbound>,
    /// Permits for responses waiting for room in `data`.
    owed: Arc<Semaphore>,
    stats: Arc<PeerStats>,
    conn: ConnId,
    /// The peer's session (the `peer` field of dispatch spans).
    peer: SessionId,
    /// Liveness, heartbeats and dispatch rules (see `conn_rules`).
    rules: ConnRules,
    /// The node, for the monitors peers place here (see `MonitorSink`).
    weak: std::sync::Weak<Shared>,
    /// The frame just handled holds a request (a tell, an ask, or the tells
    /// of a `Tells` from this index on) its activation's mailbox had no room
    /// for: delivered again after a yield (see [`ReaderCell::deliver_after_yields`]).
    waits: Option<usize>,
    /// How long the reader may still wait for room (see `patience.rs`).
    patience: Patience,
}

/// The reader's rare wake sources, by their [`WakeFlags`] number.
const STOP: u32 = 0;
const REPLACED: u32 = 1;
const TICK: u32 = 2;

/// What handling a frame left to the reader task.
enum After {
    /// Nothing: on to the next frame.
    Next,
    /// A request waits for room in a full mailbox ([`ReaderCell::deliver_after_yields`]).
    Waits,
    /// The connection ends.
    Ends(End),
}

impl ReaderCell {
    /// Handles `frame` (taken from the queue by the reader task); no frame
    /// is claimed inline meanwhile.
    fn handle_queued(&mut self, frame: &Bytes) -> After {
        let _quiet = Quiet::enter();
        match self.reader.handle(frame) {
            Some(end) => {
                // Decided under the lock: nothing more is taken inline.
                self.gone = true;
                After::Ends(end)
            }
            None if self.reader.waits.is_some() => After::Waits,
            None => After::Next,
        }
    }
}

/// What woke the reader.
enum Event {
    /// A frame taken from the queue and handled (its connection's end, if
    /// it ended with it), or the queue's end.
    Frame(Option<(Bytes, After)>),
    /// A frame handled inline waits for room (`inline.rs`).
    Deferred(Bytes),
    /// The connection ended with a frame handled inline.
    Ended(End),
    Stop,
    Replaced,
    Tick,
}

/// The reader task: waits for frames and its rare events, and handles
/// what the sender's task did not handle inline (`inline.rs`; `inline`:
/// the link hands frames over that way).
async fn read<A: Access>(cell: &mut A, node: &Shared, rx: &mut LinkReceiver, mut close: watch::Receiver<bool>) -> End {
    let mut heartbeat = tokio::time::interval(node.cfg.heartbeat_interval);
    heartbeat.set_missed_tick_behavior(MissedTickBehavior::Delay);
    // Created once, not per frame: each creation registers and removes a waiter.
    let stopped = node.tasks.stopped();
    let replaced = close.changed();
    tokio::pin!(stopped, replaced);
    // The three rare sources are polled only once they fired (`wake_flags.rs`).
    let flags = WakeFlags::new(3);
    let mut passes = Passes::default();
    loop {
        // Frames first on most passes; the other events first on some,
        // so a flood of frames cannot starve them (see `PollOrder`).
        let frames_first = passes.next_order() == PollOrder::FramesFirst;
        let event = std::future::poll_fn(|cx| {
            flags.register(cx.waker());
            if frames_first && let Poll::Ready(event) = poll_frames(cell, rx, cx) {
                return Poll::Ready(event);
            }
            if flags.take(STOP) && stopped.as_mut().poll(&mut flags.context(STOP)).is_ready() {
                return Poll::Ready(Event::Stop);
            }
            if flags.take(REPLACED) && replaced.as_mut().poll(&mut flags.context(REPLACED)).is_ready() {
                return Poll::Ready(Event::Replaced);
            }
            if flags.take(TICK) && heartbeat.poll_tick(&mut flags.context(TICK)).is_ready() {
                // Polled again next time, to wait for the tick after.
                flags.set(TICK);
                return Poll::Ready(Event::Tick);
            }
            if !frames_first {
                return poll_frames(cell, rx, cx);
            }
            Poll::Pending
        })
        .await;
        let wake = match event {
            Event::Frame(Some((first, after))) => {
                let end = on_frames(cell, node, first, after, rx).await;
                if A::SHARED {
                    cell.with(|c| c.in_hand = false);
                }
                if let Some(end) = end {
                    return end;
                }
                continue;
            }
            Event::Deferred(frame) => {
                ReaderCell::deliver_after_yields(cell, node, &frame).await;
                cell.with(|c| c.in_hand = false);
                continue;
            }
            Event::Ended(end) => return end,
            Event::Frame(None) => Wake::LinkEnded,
            Event::Stop => Wake::Stop,
            // A send of `true` or the handle being dropped: replaced.
            Event::Replaced => Wake::Replaced,
            Event::Tick => Wake::Tick { now_ms: node.now_ms() },
        };
        let closed = cell.with(|c| {
            let reader = &mut c.reader;
            let step = reader.rules.on_wake(wake);
            reader.stats.last_seen_ms.store(reader.rules.last_seen_ms(), Ordering::Relaxed);
            match step {
                Step::Send(msg) => {
                    reader.queue_control(msg);
                    None
                }
                Step::Close(close) => {
                    c.gone = true;
                    Some(c.reader.closing(close))
                }
            }
        });
        if let Some(end) = closed {
            return end;
        }
    }
}

/// What a frame handled inline left to the reader task, else the next
/// queued frame, handled; all in one step (under the cell's lock where the
/// link shares it), so no frame handled inline can overtake one taken from
/// the queue.
fn poll_frames<A: Access>(cell: &mut A, rx: &mut LinkReceiver, cx: &mut std::task::Context<'_>) -> Poll<Event> {
    cell.with(|cell| poll_frames_in(cell, rx, cx))
}

fn poll_frames_in(cell: &mut ReaderCell, rx: &mut LinkReceiver, cx: &mut std::task::Context<'_>) -> Poll<Event> {
    if let Some(end) = cell.ended.take() {
        cell.gone = true;
        return Poll::Ready(Event::Ended(end));
    }
    if let Some(frame) = cell.deferred.take() {
        cell.in_hand = true;
        return Poll::Ready(Event::Deferred(frame));
    }
    cell.set_waker(cx.waker());
    if cell.claimed {
        // A sender's task handles its frame first; it wakes us after.
        cell.waits_for_claim = true;
        return Poll::Pending;
    }
    match std::pin::pin!(rx.recv()).poll(cx) {
        Poll::Ready(Some(frame)) => {
            cell.in_hand = true;
            // No clock read here: the next heartbeat tick stamps these frames.
            cell.reader.rules.on_frames();
            let after = cell.handle_queued(&frame);
            Poll::Ready(Event::Frame(Some((frame, after))))
        }
        Poll::Ready(None) => Poll::Ready(Event::Frame(None)),
        Poll::Pending => Poll::Pending,
    }
}

/// After `first` (taken and handled), delivers it if it waits for room,
/// then handles the frames already received after it (at most
/// `READ_BATCH` in all, without waiting for new ones); `Some` if the
/// connection ends.
///
/// Every frame handled spends one unit of the task's cooperative
/// budget (Tokio's, the one channel and socket operations spend), so a
/// peer that keeps the link full makes the reader yield after a bounded
/// number of frames: the lease driver, activations and other readers
/// on the same worker run in between, however fast frames arrive.
async fn on_frames<A: Access>(
    cell: &mut A,
    node: &Shared,
    first: Bytes,
    mut after: After,
    rx: &mut LinkReceiver,
) -> Option<End> {
    let mut frame = first;
    for _ in 1..READ_BATCH {
        match after {
            After::Next => {}
            After::Waits => ReaderCell::deliver_after_yields(cell, node, &frame).await,
            After::Ends(end) => return Some(end),
        }
        tokio::task::coop::consume_budget().await;
        frame = rx.try_recv()?;
        after = cell.with(|c| c.handle_queued(&frame));
    }
    match after {
        After::Next => None,
        After::Waits => {
            ReaderCell::deliver_after_yields(cell, node, &frame).await;
            None
        }
        After::Ends(end) => Some(end),
    }
}

impl Reader {
    /// Counts and logs why the connection ends; returns how it ends.
    fn closing(&self, close: Close) -> End {
        let node = &self.node;
        match close {
            Close::Shutdown => self.queue_control(ControlMsg::Goodbye),
            Close::PeerGoodbye => {
                bump(&node.counters.goodbyes_received);
                tracing::debug!("peer said goodbye");
            }
            Close::LinkEnded => tracing::debug!("link ended"),
            Close::Replaced => tracing::debug!("connection replaced; closing"),
            Close::Silent => {
                bump(&node.counters.heartbeat_timeouts);
                tracing::debug!("peer silent for node_ttl; closing");
            }
            Close::BadFrame(reason) => {
                node.counters.frame_rejected(reason);
                tracing::debug!(reason = reason.label(), "bad frame; closing");
                self.tx.close();
            }
        }
        if close.is_graceful() { End::Graceful } else { End::Abrupt }
    }
    /// Handles one frame; `Some` if the connection ends with it.
    fn handle(&mut self, frame: &Bytes) -> Option<End> {
        let close = match self.on_frame(frame) {
            Ok(close) => close?,
            Err(reason) => Close::BadFrame(reason),
        };
        Some(self.closing(close))
    }

    fn queue_control(&self, msg: ControlMsg) {
        if self.control.try_send(msg).is_err() {
            self.node.counters.dropped(DropReason::ControlQueueFull);
        }
    }

    /// Queues a response to the peer's request. The reader never waits (a
    /// reader blocked on its own writer could deadlock with the peer's), so
    /// a response that does not fit waits in a task, within `owed`.
    fn queue_data(&self, msg: DataMsg) {
        let Ok(frame) = OutFrame::envelope(&Envelope::Data(msg)) else {
            self.node.counters.dropped(DropReason::Unencodable);
            return;
        };
        let msg = match self.shared.try_queue(&self.data, Outbound::new(frame, OutKind::Response)) {
            Ok(()) => return,
            Err(mpsc::error::TrySendError::Full(msg)) => msg,
            Err(mpsc::error::TrySendError::Closed(_)) => {
                self.node.counters.dropped(DropReason::DataQueueFull);
                return;
            }
        };
        let Ok(permit) = Arc::clone(&self.owed).try_acquire_owned() else {
            self.node.counters.dropped(DropReason::DataQueueFull);
            return;
        };
        let data = self.data.clone();
        let shared = Arc::clone(&self.shared);
        let node = self.weak.clone();
        self.node.env.spawn(async move {
            // Fails only once the connection has ended.
            if shared.queue(&data, msg).await.is_err()
                && let Some(node) = node.upgrade()
            {
                node.counters.dropped(DropReason::ResponseDiscardedAtClose);
            }
            drop(permit);
        });
    }

    /// Where a monitor the peer places through this connection fires.
    fn monitor_sink(&self, request_id: u64) -> MonitorSink {
        MonitorSink::Remote { tx: self.control.clone(), request_id, conn: self.conn, node: self.weak.clone() }
    }

    /// Answers `Monitor`/`Remonitor`: `Monitored` (version 2 sessions) once
    /// placed, else the one `Down` at once.
    fn answer_monitor(
        &self,
        request_id: u64,
        registry: &str,
        key: &str,
        placed: Result<u64, (MonitorSink, DownReason)>,
    ) {
        match placed {
            Ok(activation) if self.rules.confirms_monitors() => {
                self.queue_control(ControlMsg::Monitored { request_id, activation });
            }
            Ok(_) => {}
            Err((sink, reason)) => sink.fire(registry, key, reason),
        }
    }

    /// Opens, decodes and dispatches one frame; `Ok(Some)` if the
    /// connection ends with it, `Err` with its reason if it is bad.
    fn on_frame(&mut self, frame: &Bytes) -> Result<Option<Close>, FrameRejection> {
        let (kind, seq, payload, mac) = match decode_body(frame).map_err(|e| FrameRejection::from(&e))? {
            Body::Sealed { kind, seq, payload, mac } => (kind, seq, payload, mac),
            _ => return Err(FrameRejection::HandshakeAfterAuth),
        };
        self.opener.open_parts(kind, seq, payload, mac).map_err(|e| FrameRejection::from(&e))?;
        let env = decode_envelope_ref(payload).map_err(|e| FrameRejection::from(&e))?;
        match env {
            EnvelopeRef::Control(msg) => Ok(self.on_control(msg)),
            EnvelopeRef::Data(msg) => {
                self.on_data(msg, frame);
                Ok(None)
            }
        }
    }

    /// A control message; `Some` if the connection ends with it.
    fn on_control(&mut self, msg: ControlMsg) -> Option<Close> {
        let node = &*self.node;
        match self.rules.on_control(msg, || node.now_ms()) {
            Control::Send(answer) => self.queue_control(answer),
            Control::Rtt { rtt_us } => {
                self.stats.rtt_us.store(rtt_us, Ordering::Relaxed);
                self.stats.heartbeats_acked.fetch_add(1, Ordering::Relaxed);
            }
            Control::Close(close) => return Some(close),
            Control::Dispatch(msg) => self.dispatch_control(msg),
        }
        None
    }

    /// A control message for the node (monitors, lease notices, hosting).
    fn dispatch_control(&self, msg: ControlMsg) {
        let node = &*self.node;
        match msg {
            // Answered by the connection's rules.
            ControlMsg::Heartbeat { .. } | ControlMsg::HeartbeatAck { .. } | ControlMsg::Goodbye => {}
            ControlMsg::Monitor { request_id, registry, key } => {
                let sink = self.monitor_sink(request_id);
                let host = node.hosts.get(&registry);
                let placed = match host {
                    Some(host) => host.monitor(&key, sink),
                    None => Err((sink, DownReason::NoSuchActor)),
                };
                self.answer_monitor(request_id, &registry, &key, placed);
            }
            ControlMsg::Remonitor { request_id, registry, key, activation } => {
                let sink = self.monitor_sink(request_id);
                let host = node.hosts.get(&registry);
                let placed = match host {
                    Some(host) => host.remonitor(&key, activation, sink).map(|()| activation),
                    None => Err((sink, DownReason::Stopped)),
                };
                self.answer_monitor(request_id, &registry, &key, placed);
            }
            ControlMsg::Monitored { request_id, activation } => node.monitor_placed(self.conn, request_id, activation),
            ControlMsg::Demonitor { request_id } => {
                for host in node.hosts_snapshot() {
                    host.demonitor(self.conn, request_id);
                }
            }
            ControlMsg::Down { request_id, reason } => node.monitor_down(self.conn, request_id, reason),
            ControlMsg::LeaseNotice { registry, shard, epoch, owner } => {
                let peer_count = self.stats.hosted.lock().get(&registry).copied();
                node.lease_notice(&registry, shard, epoch, owner, peer_count);
            }
            // The decoder refused a list over `MAX_HOSTED_REGISTRIES` already.
            ControlMsg::Hosting { registries } => node.peer_hosting(&self.stats, registries),
        }
    }

    /// A data-plane message; `frame` is the frame `msg` borrows from.
    fn on_data(&mut self, msg: DataRef<'_>, frame: &Bytes) {
        let node = &*self.node;
        match accounting(&msg) {
            Accounting::AnswersOurs => saturating_decrement(&self.shared.outstanding),
            Accounting::OwedAnswer => {
                self.shared.owed_to_peer.fetch_add(1, Ordering::Relaxed);
            }
            Accounting::OneWay => {}
        }
        match msg {
            DataRef::Tell { .. } | DataRef::Ask { .. } | DataRef::Tells { .. } => {
                if let DataRef::Tells { payloads, .. } = &msg {
                    bump(&node.counters.tell_batches_received);
                    node.counters.batched_tells_received.fetch_add(payloads.len() as u64, Ordering::Relaxed);
                }
                self.waits = self.on_request(&msg, 0, true);
            }
            DataRef::Reply { request_id, payload } => {
                node.complete(self.conn, request_id, Response::Reply(slice_of(frame, payload)));
            }
            DataRef::Ack { ack_id } => node.complete(self.conn, ack_id, Response::Ack),
            DataRef::Rejected { request_id, reason } => {
                node.complete(self.conn, request_id, Response::Rejected(reason));
            }
            DataRef::Canceled { request_id } => node.complete(self.conn, request_id, Response::Canceled),
        }
    }
}

/// The span of one request from a peer, dispatched here: TRACE level (one
/// per data frame), so it costs a level check unless a subscriber asks for
/// `axactor_cluster::node::established=trace`. Its parent is the
/// connection's `conn` span.
fn dispatch_span(kind: &'static str, registry: &str, key: &str, shard: u32, epoch: u64, peer: &SessionId) -> Span {
    tracing::trace_span!(
        "dispatch",
        kind,
        registry,
        key,
        shard,
        epoch,
        peer = %peer,
        outcome = tracing::field::Empty,
    )
}

/// `part` as a `Bytes` sharing `whole`'s buffer when it lies within it (as
/// borrowed decoding guarantees), else a copy.
fn slice_of(whole: &Bytes, part: &[u8]) -> Bytes {
    let (start, end) = (whole.as_ptr() as usize, whole.as_ptr() as usize + whole.len());
    let at = part.as_ptr() as usize;
    if at >= start && at + part.len() <= end {
        whole.slice(at - start..at - start + part.len())
    } else {
        Bytes::copy_from_slice(part)
    }
}
