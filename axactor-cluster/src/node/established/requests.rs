//! The peer's requests on an established connection, as its reader hands
//! them to their activations: tells, asks and batches of tells (`Tells`),
//! each fenced and enqueued without waiting, answered or counted when
//! refused.

use super::{Reader, dispatch_span};
use crate::conn_rules::{TellAnswer, tell_answer};
use crate::counter_reasons::{DropReason, Reason, RequestRejection};
use crate::env::NodeEvent;
use crate::node::inspect::bump;
use crate::node::replies::ReplyRoom;
use crate::wire::{DataMsg, DataRef, Rejection};

/// The dispatch outcome of a request handed to its activation's mailbox
/// (a refused one records its rejection label).
const ACCEPTED: &str = "accepted";
/// `kind` of a dispatched tell.
const TELL: &str = "tell";
/// The outcome of a tell's dispatch that found its activation's mailbox
/// full and is tried again after a yield.
const WAITS: &str = "mailbox_full_yield";
/// `kind` of a dispatched ask.
const ASK: &str = "ask";
/// `kind` of a dispatched `Tells`.
const TELLS: &str = "tells";

impl Reader {
    /// Counts a rejection; returns its label.
    fn count_rejection(&self, reason: &Rejection) -> &'static str {
        let rejection = RequestRejection::from(reason);
        self.node.counters.request_rejected(rejection);
        let label = rejection.label();
        self.node.emit(|| NodeEvent::Rejected { reason: label });
        tracing::debug!(reason = label, "request rejected before execution");
        label
    }

    /// A tell, an ask or a `Tells` from the peer ([`Reader::on_tell`],
    /// [`Reader::on_ask`], [`Reader::on_tells`], the latter's tells from
    /// index `from` on); `Some(index)` if it waits for room in a full
    /// mailbox (only with `may_wait`), to go on from that tell of a
    /// `Tells` (0 for the others). Any other message: `None`, nothing done.
    pub(super) fn on_request(&self, msg: &DataRef<'_>, from: usize, may_wait: bool) -> Option<usize> {
        let done = match *msg {
            DataRef::Tell { registry, shard, epoch, key, payload, ack_id } => {
                self.on_tell(registry, shard, epoch, key, payload, ack_id, may_wait)
            }
            DataRef::Ask { request_id, registry, shard, epoch, key, payload } => {
                self.on_ask(request_id, registry, shard, epoch, key, payload, may_wait)
            }
            DataRef::Tells { registry, shard, epoch, key, ref payloads } => {
                let rest = payloads.get(from..).unwrap_or_default();
                return self.on_tells(registry, shard, epoch, key, rest, may_wait).map(|taken| from + taken);
            }
            _ => true,
        };
        if done { None } else { Some(0) }
    }

    /// The tells of a `Tells` from the peer (`payloads`, those not dealt
    /// with yet): delivered to their activation as one, in order. Each
    /// refused tell is counted as a refused unacknowledged [`Reader::on_tell`]
    /// would be. With `may_wait`, delivery stops at the first tell the
    /// activation's mailbox has no room for and `Some` says how many were
    /// dealt with before it: the reader yields and goes on from there
    /// ([`deliver_after_yields`](super::inline::ReaderCell::deliver_after_yields)); without, the rest are refused
    /// (`MailboxFull`). `None` once all are dealt with.
    fn on_tells(
        &self,
        registry: &str,
        shard: u32,
        epoch: u64,
        key: &str,
        payloads: &[&[u8]],
        may_wait: bool,
    ) -> Option<usize> {
        let node = &*self.node;
        let span = dispatch_span(TELLS, registry, key, shard, epoch, &self.peer);
        let _entered = span.enter();
        let refuse = |reason: &Rejection, n: usize| {
            for _ in 0..n {
                self.count_rejection(reason);
                node.counters.dropped(DropReason::UnackedTellRejected);
            }
        };
        let delivered = match node.hosts.get(registry) {
            Some(host) => host.deliver_tells(shard, epoch, key, payloads),
            None => {
                for _ in payloads {
                    bump(&node.counters.data_rejected_no_registry);
                }
                Err(Rejection::NotOwner { owner_hint: None })
            }
        };
        let delivered = match delivered {
            Ok(delivered) => delivered,
            Err(reason) => {
                refuse(&reason, payloads.len());
                span.record("outcome", RequestRejection::from(&reason).label());
                return None;
            }
        };
        for (_, reason) in &delivered.refused {
            refuse(reason, 1);
        }
        let rest = payloads.len() - delivered.taken;
        if rest == 0 {
            span.record("outcome", ACCEPTED);
            return None;
        }
        if may_wait {
            span.record("outcome", WAITS);
            return Some(delivered.taken);
        }
        refuse(&Rejection::MailboxFull, rest);
        span.record("outcome", RequestRejection::from(&Rejection::MailboxFull).label());
        None
    }

    /// A tell from the peer: delivered to its activation, answered (an ack
    /// or a rejection) if the peer asked for an answer, counted as dropped
    /// if refused without one. With `may_wait`, a tell refused only because
    /// the activation's mailbox is full is left unanswered and `false` is
    /// returned: the reader yields and tries again
    /// ([`deliver_after_yields`](super::inline::ReaderCell::deliver_after_yields)). `true` once it is dealt with.
    #[allow(clippy::too_many_arguments)]
    fn on_tell(
        &self,
        registry: &str,
        shard: u32,
        epoch: u64,
        key: &str,
        payload: &[u8],
        ack_id: Option<u64>,
        may_wait: bool,
    ) -> bool {
        let node = &*self.node;
        let span = dispatch_span(TELL, registry, key, shard, epoch, &self.peer);
        let _entered = span.enter();
        let outcome = match node.hosts.get(registry) {
            Some(host) => host.deliver_tell(shard, epoch, key, payload),
            None => Err(Rejection::NotOwner { owner_hint: None }).inspect_err(|_| {
                bump(&node.counters.data_rejected_no_registry);
            }),
        };
        if may_wait && outcome == Err(Rejection::MailboxFull) {
            span.record("outcome", WAITS);
            return false;
        }
        let label = match tell_answer(outcome, ack_id) {
            TellAnswer::Ack { ack_id } => {
                self.queue_data(DataMsg::Ack { ack_id });
                ACCEPTED
            }
            TellAnswer::Accepted => ACCEPTED,
            TellAnswer::Reject { request_id, reason } => {
                let label = self.count_rejection(&reason);
                self.queue_data(DataMsg::Rejected { request_id, reason });
                label
            }
            TellAnswer::DropUnacked { reason } => {
                let label = self.count_rejection(&reason);
                node.counters.dropped(DropReason::UnackedTellRejected);
                label
            }
        };
        span.record("outcome", label);
        true
    }

    /// An ask from the peer: fenced delivery; the reply is sent by the
    /// writer once it completes (see `node/replies.rs`). Asks executing at
    /// once are bounded by `max_inflight_requests`. With `may_wait`, an ask
    /// refused only because the activation's mailbox is full is left
    /// unanswered and `false` is returned, as for a tell
    /// ([`Reader::on_tell`]); `true` once it is dealt with.
    #[allow(clippy::too_many_arguments)]
    fn on_ask(
        &self,
        request_id: u64,
        registry: &str,
        shard: u32,
        epoch: u64,
        key: &str,
        payload: &[u8],
        may_wait: bool,
    ) -> bool {
        let node = &*self.node;
        let span = dispatch_span(ASK, registry, key, shard, epoch, &self.peer);
        let _entered = span.enter();
        let outcome = match node.hosts.get(registry) {
            None => {
                bump(&node.counters.data_rejected_no_registry);
                Err(Rejection::NotOwner { owner_hint: None })
            }
            Some(host) => match node.in_flight.try_execute() {
                None => Err(Rejection::Overloaded),
                Some(permit) => {
                    let room = ReplyRoom::new(&self.shared.replies, permit);
                    host.deliver_ask(request_id, shard, epoch, key, payload, room)
                }
            },
        };
        let label = match outcome {
            Ok(()) => ACCEPTED,
            Err(Rejection::MailboxFull) if may_wait => {
                span.record("outcome", WAITS);
                return false;
            }
            Err(reason) => {
                let label = self.count_rejection(&reason);
                self.queue_data(DataMsg::Rejected { request_id, reason });
                label
            }
        };
        span.record("outcome", label);
        true
    }
}
