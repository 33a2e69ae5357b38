//! The rules of an established connection, pure: liveness, heartbeats and
//! dispatch.
//!
//! Like quinn-proto's `Connection`, [`ConnRules`] does no I/O and reads no
//! clock: the connection's reader (`node/established.rs`) feeds it what woke
//! it, with `now` in milliseconds on the node's monotonic clock where a rule
//! needs it, and carries out what it returns (queue a control message,
//! dispatch to the node, close with a reason). The reader keeps the link,
//! the queues and the counters.
//!
//! ```text
//!  Passes::next_order()       ─▶ FramesFirst | EventsFirst   (one pass in EVENTS_FIRST_EVERY)
//!  on_frames()                ─▶ the peer is alive (stamped at the next tick)
//!  on_wake(Tick { now })      ─▶ Send(Heartbeat { sent_at_ms: now }) | Close(Silent)
//!  on_wake(Stop)              ─▶ Close(Shutdown)     (Goodbye queued, graceful)
//!  on_wake(Replaced | LinkEnded) ─▶ Close(..)        (abrupt)
//!  on_control(msg, || now)    ─▶ Send(HeartbeatAck) | Rtt | Close(PeerGoodbye) | Dispatch(msg)
//!  accounting(&data)          ─▶ AnswersOurs | OwedAnswer | OneWay
//!  tell_answer(outcome, ack)  ─▶ Ack | Accepted | Reject | DropUnacked
//! ```
//!
//! Liveness: a peer is alive while a frame arrived within `node_ttl`; the
//! check runs on each heartbeat tick, which also sends a heartbeat stamped
//! with `now` (the peer echoes it back: the round-trip time). Frames are
//! not stamped as they arrive (that would be a clock read per batch of
//! frames, on every request's path): a tick that finds frames arrived since
//! the tick before stamps them with its own `now`, which is at or after
//! their arrival. So a peer is never found silent before `node_ttl` has
//! passed since its last frame, and is found silent at most two heartbeat
//! intervals after that (one for the stamp, one for the check). A connection
//! ends gracefully on the node's stop (a `Goodbye` is queued first) or the
//! peer's `Goodbye`, and abruptly on a bad frame, a replacement, the link's
//! end or silence.
//!
//! Everything here runs per frame or per tick: plain fields, no allocation,
//! no lock.

use std::time::Duration;

use crate::counter_reasons::FrameRejection;
use crate::wire::hello::MONITOR_IDENTITY_VERSION;
use crate::wire::{ControlMsg, DataRef, Rejection};

/// One reader pass in this many polls the reader's other events (stop,
/// replacement, heartbeat) before its frames.
pub(crate) const EVENTS_FIRST_EVERY: u32 = 16;

/// What the reader polls first on its next pass.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum PollOrder {
    /// Frames first: when one is there, the other events are not polled
    /// (each poll of a waiting `watch` or timer takes a lock).
    FramesFirst,
    /// The other events first, so a flood of frames cannot starve a stop,
    /// a replacement or the heartbeat.
    EventsFirst,
}

/// What woke the reader, other than frames.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Wake {
    /// The link ended (no more frames).
    LinkEnded,
    /// The node is stopping.
    Stop,
    /// Another connection to the same peer replaced this one.
    Replaced,
    /// The heartbeat timer fired at `now_ms`.
    Tick { now_ms: u64 },
}

/// Why a connection ends.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Close {
    /// The node is stopping: queue a `Goodbye`, let queued frames go, wait
    /// for the peer's end.
    Shutdown,
    /// The peer said `Goodbye`: let queued frames go, wait for its end.
    PeerGoodbye,
    /// The link ended.
    LinkEnded,
    /// Another connection replaced this one.
    Replaced,
    /// Nothing arrived for `node_ttl`.
    Silent,
    /// A frame failed to open or decode (counted under this reason).
    BadFrame(FrameRejection),
}

impl Close {
    /// Whether queued frames still go and the peer's end is awaited;
    /// otherwise the link is dropped at once.
    pub(crate) fn is_graceful(self) -> bool {
        matches!(self, Close::Shutdown | Close::PeerGoodbye)
    }
}

/// What the reader must do after a wake-up.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Step {
    /// Queue this control message to the peer, and go on.
    Send(ControlMsg),
    /// End the connection.
    Close(Close),
}

/// What a control message from the peer asks of the reader.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Control {
    /// Queue this answer (a heartbeat's ack).
    Send(ControlMsg),
    /// A heartbeat came back: the round trip took `rtt_us`.
    Rtt { rtt_us: u64 },
    /// End the connection.
    Close(Close),
    /// For the node: monitors, lease notices, hosting announcements.
    Dispatch(ControlMsg),
}

/// What a data frame means for the connection's request accounting.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Accounting {
    /// The peer answered one of our requests: one fewer outstanding.
    AnswersOurs,
    /// A request of the peer's that we owe an answer (an ask, an acked tell).
    OwedAnswer,
    /// A tell without ack: nothing owed either way.
    OneWay,
}

/// How a tell from the peer is answered, given how its delivery went.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum TellAnswer {
    /// Delivered; acknowledge it.
    Ack { ack_id: u64 },
    /// Delivered; no ack asked for.
    Accepted,
    /// Refused; tell the peer why (it asked for an ack).
    Reject { request_id: u64, reason: Rejection },
    /// Refused, and the peer asked for no answer: count it as dropped.
    DropUnacked { reason: Rejection },
}

/// The reader's passes so far (wrapping): what it polls first on each.
/// Kept by the reader task alone, apart from [`ConnRules`] (which frames
/// handled from a sender's task update too).
#[derive(Debug, Clone, Copy, Default)]
pub(crate) struct Passes(u32);

impl Passes {
    /// What to poll first on the next pass.
    #[inline]
    pub(crate) fn next_order(&mut self) -> PollOrder {
        self.0 = self.0.wrapping_add(1);
        if self.0.is_multiple_of(EVENTS_FIRST_EVERY) { PollOrder::EventsFirst } else { PollOrder::FramesFirst }
    }
}

/// The liveness and heartbeat state of one established connection.
#[derive(Debug, Clone)]
pub(crate) struct ConnRules {
    ttl_ms: u64,
    /// A time (ms) at or after the last frame's arrival, as of the last
    /// tick (or the connection's start).
    last_seen_ms: u64,
    /// Frames arrived since the last tick (not stamped yet).
    heard: bool,
    /// The protocol version the session negotiated.
    version: u16,
}

impl ConnRules {
    /// A connection established at `now_ms` with protocol `version`; the
    /// peer counts as silent once nothing arrived for `node_ttl`.
    pub(crate) fn new(node_ttl: Duration, now_ms: u64, version: u16) -> ConnRules {
        ConnRules {
            ttl_ms: u64::try_from(node_ttl.as_millis()).unwrap_or(u64::MAX),
            last_seen_ms: now_ms,
            heard: false,
            version,
        }
    }

    /// Frames arrived: the peer is alive (stamped by the next tick).
    #[inline]
    pub(crate) fn on_frames(&mut self) {
        self.heard = true;
    }

    /// When the peer was last known alive (ms): the tick that first saw
    /// its latest frames, or the connection's start.
    pub(crate) fn last_seen_ms(&self) -> u64 {
        self.last_seen_ms
    }

    /// A wake-up other than frames.
    pub(crate) fn on_wake(&mut self, wake: Wake) -> Step {
        match wake {
            Wake::LinkEnded => Step::Close(Close::LinkEnded),
            Wake::Stop => Step::Close(Close::Shutdown),
            Wake::Replaced => Step::Close(Close::Replaced),
            Wake::Tick { now_ms } => {
                if std::mem::take(&mut self.heard) {
                    // Never moves back (a clock read behind an earlier stamp).
                    self.last_seen_ms = self.last_seen_ms.max(now_ms);
                }
                if now_ms.saturating_sub(self.last_seen_ms) > self.ttl_ms {
                    Step::Close(Close::Silent)
                } else {
                    Step::Send(ControlMsg::Heartbeat { sent_at_ms: now_ms })
                }
            }
        }
    }

    /// A control message from the peer; `now_ms` is called (once) only for
    /// a heartbeat's echo, the one message that needs the clock.
    pub(crate) fn on_control(&self, msg: ControlMsg, now_ms: impl FnOnce() -> u64) -> Control {
        match msg {
            ControlMsg::Heartbeat { sent_at_ms } => Control::Send(ControlMsg::HeartbeatAck { echo_ms: sent_at_ms }),
            ControlMsg::HeartbeatAck { echo_ms } => {
                Control::Rtt { rtt_us: now_ms().saturating_sub(echo_ms).saturating_mul(1000) }
            }
            ControlMsg::Goodbye => Control::Close(Close::PeerGoodbye),
            other => Control::Dispatch(other),
        }
    }

    /// Whether a monitor placed for the peer is confirmed with `Monitored`
    /// (protocol version 2 on): older peers learn only the one `Down`.
    #[inline]
    pub(crate) fn confirms_monitors(&self) -> bool {
        self.version >= MONITOR_IDENTITY_VERSION
    }
}

/// What a data frame means for the request accounting (see [`Accounting`]).
#[inline]
pub(crate) fn accounting(msg: &DataRef<'_>) -> Accounting {
    match msg {
        DataRef::Reply { .. } | DataRef::Ack { .. } | DataRef::Rejected { .. } | DataRef::Canceled { .. } => {
            Accounting::AnswersOurs
        }
        DataRef::Ask { .. } | DataRef::Tell { ack_id: Some(_), .. } => Accounting::OwedAnswer,
        DataRef::Tell { ack_id: None, .. } | DataRef::Tells { .. } => Accounting::OneWay,
    }
}

/// How a tell from the peer is answered: `outcome` is its delivery,
/// `ack_id` the ack it asked for.
#[inline]
pub(crate) fn tell_answer(outcome: Result<(), Rejection>, ack_id: Option<u64>) -> TellAnswer {
    match (outcome, ack_id) {
        (Ok(()), Some(ack_id)) => TellAnswer::Ack { ack_id },
        (Ok(()), None) => TellAnswer::Accepted,
        (Err(reason), Some(request_id)) => TellAnswer::Reject { request_id, reason },
        (Err(reason), None) => TellAnswer::DropUnacked { reason },
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::wire::DownReason;

    const TTL: Duration = Duration::from_millis(3000);

    /// The clock of a control message that must not read it.
    fn no_clock() -> u64 {
        unreachable!("only a heartbeat's echo reads the clock")
    }

    fn rules(now_ms: u64) -> ConnRules {
        ConnRules::new(TTL, now_ms, MONITOR_IDENTITY_VERSION)
    }

    #[test]
    fn a_tick_sends_a_heartbeat_stamped_now() {
        let mut r = rules(1000);
        assert_eq!(r.on_wake(Wake::Tick { now_ms: 1500 }), Step::Send(ControlMsg::Heartbeat { sent_at_ms: 1500 }));
    }

    #[test]
    fn a_peer_silent_for_longer_than_the_ttl_is_closed() {
        let mut r = rules(1000);
        assert_eq!(r.on_wake(Wake::Tick { now_ms: 4000 }), Step::Send(ControlMsg::Heartbeat { sent_at_ms: 4000 }));
        assert_eq!(r.on_wake(Wake::Tick { now_ms: 4001 }), Step::Close(Close::Silent));
    }

    #[test]
    fn frames_keep_the_peer_alive_from_the_tick_that_saw_them() {
        let mut r = rules(1000);
        r.on_frames();
        // The tick at 3500 stamps the frames that arrived before it.
        assert_eq!(r.on_wake(Wake::Tick { now_ms: 3500 }), Step::Send(ControlMsg::Heartbeat { sent_at_ms: 3500 }));
        assert_eq!(r.last_seen_ms(), 3500);
        assert_eq!(r.on_wake(Wake::Tick { now_ms: 6500 }), Step::Send(ControlMsg::Heartbeat { sent_at_ms: 6500 }));
        assert_eq!(r.last_seen_ms(), 3500, "no frames since: not stamped again");
        assert_eq!(r.on_wake(Wake::Tick { now_ms: 6501 }), Step::Close(Close::Silent));
    }

    #[test]
    fn frames_seen_at_the_silence_check_keep_the_peer() {
        let mut r = rules(1000);
        r.on_frames();
        // Frames arrived since the last tick, however late the tick: alive.
        assert_eq!(r.on_wake(Wake::Tick { now_ms: 9000 }), Step::Send(ControlMsg::Heartbeat { sent_at_ms: 9000 }));
    }

    #[test]
    fn a_clock_behind_the_last_stamp_is_not_silence() {
        let mut r = rules(5000);
        r.on_frames();
        assert_eq!(r.on_wake(Wake::Tick { now_ms: 10 }), Step::Send(ControlMsg::Heartbeat { sent_at_ms: 10 }));
        assert_eq!(r.last_seen_ms(), 5000, "a stamp never moves back");
    }

    #[test]
    fn a_huge_ttl_never_overflows() {
        let mut r = ConnRules::new(Duration::MAX, 0, 1);
        assert_eq!(
            r.on_wake(Wake::Tick { now_ms: u64::MAX }),
            Step::Send(ControlMsg::Heartbeat { sent_at_ms: u64::MAX })
        );
    }

    #[test]
    fn stop_is_graceful_and_the_other_ends_are_abrupt() {
        let mut r = rules(0);
        assert_eq!(r.on_wake(Wake::Stop), Step::Close(Close::Shutdown));
        assert_eq!(r.on_wake(Wake::Replaced), Step::Close(Close::Replaced));
        assert_eq!(r.on_wake(Wake::LinkEnded), Step::Close(Close::LinkEnded));
        assert!(Close::Shutdown.is_graceful());
        assert!(Close::PeerGoodbye.is_graceful());
        for abrupt in [Close::LinkEnded, Close::Replaced, Close::Silent, Close::BadFrame(FrameRejection::BadMac)] {
            assert!(!abrupt.is_graceful(), "{abrupt:?}");
        }
    }

    #[test]
    fn one_pass_in_sixteen_polls_events_first() {
        let mut r = Passes::default();
        let orders: Vec<PollOrder> = (0..EVENTS_FIRST_EVERY * 2).map(|_| r.next_order()).collect();
        let first: Vec<usize> =
            orders.iter().enumerate().filter(|(_, o)| **o == PollOrder::EventsFirst).map(|(i, _)| i + 1).collect();
        assert_eq!(first, vec![16, 32]);
    }

    #[test]
    fn the_pass_counter_wraps() {
        let mut r = Passes(u32::MAX - 1);
        assert_eq!(r.next_order(), PollOrder::FramesFirst, "pass u32::MAX");
        assert_eq!(r.next_order(), PollOrder::EventsFirst, "pass 0, after wrapping");
    }

    #[test]
    fn heartbeats_are_acked_with_their_own_stamp() {
        let r = rules(0);
        assert_eq!(
            r.on_control(ControlMsg::Heartbeat { sent_at_ms: 42 }, no_clock),
            Control::Send(ControlMsg::HeartbeatAck { echo_ms: 42 })
        );
    }

    #[test]
    fn an_ack_gives_the_round_trip_in_microseconds() {
        let r = rules(0);
        assert_eq!(r.on_control(ControlMsg::HeartbeatAck { echo_ms: 1000 }, || 1250), Control::Rtt { rtt_us: 250_000 });
        assert_eq!(
            r.on_control(ControlMsg::HeartbeatAck { echo_ms: 2000 }, || 1000),
            Control::Rtt { rtt_us: 0 },
            "echo from the future"
        );
        assert_eq!(
            r.on_control(ControlMsg::HeartbeatAck { echo_ms: 0 }, || u64::MAX),
            Control::Rtt { rtt_us: u64::MAX }
        );
    }

    #[test]
    fn goodbye_closes_gracefully_and_the_rest_goes_to_the_node() {
        let r = rules(0);
        assert_eq!(r.on_control(ControlMsg::Goodbye, no_clock), Control::Close(Close::PeerGoodbye));
        let down = ControlMsg::Down { request_id: 3, reason: DownReason::Stopped };
        assert_eq!(r.on_control(down.clone(), no_clock), Control::Dispatch(down));
        let hosting = ControlMsg::Hosting { registries: vec![("r".into(), 4)] };
        assert_eq!(r.on_control(hosting.clone(), no_clock), Control::Dispatch(hosting));
    }

    #[test]
    fn monitors_are_confirmed_from_version_two() {
        assert!(ConnRules::new(TTL, 0, MONITOR_IDENTITY_VERSION).confirms_monitors());
        assert!(!ConnRules::new(TTL, 0, MONITOR_IDENTITY_VERSION - 1).confirms_monitors());
    }

    #[test]
    fn answers_and_owed_requests_are_told_apart() {
        let p: &[u8] = b"x";
        assert_eq!(accounting(&DataRef::Reply { request_id: 1, payload: p }), Accounting::AnswersOurs);
        assert_eq!(accounting(&DataRef::Ack { ack_id: 1 }), Accounting::AnswersOurs);
        assert_eq!(
            accounting(&DataRef::Rejected { request_id: 1, reason: Rejection::Overloaded }),
            Accounting::AnswersOurs
        );
        assert_eq!(accounting(&DataRef::Canceled { request_id: 1 }), Accounting::AnswersOurs);
        let ask = DataRef::Ask { request_id: 1, registry: "r", shard: 0, epoch: 1, key: "k", payload: p };
        assert_eq!(accounting(&ask), Accounting::OwedAnswer);
        let tell = |ack_id| DataRef::Tell { registry: "r", shard: 0, epoch: 1, key: "k", payload: p, ack_id };
        assert_eq!(accounting(&tell(Some(5))), Accounting::OwedAnswer);
        assert_eq!(accounting(&tell(None)), Accounting::OneWay);
    }

    #[test]
    fn tells_are_answered_only_when_the_peer_asked() {
        assert_eq!(tell_answer(Ok(()), Some(5)), TellAnswer::Ack { ack_id: 5 });
        assert_eq!(tell_answer(Ok(()), None), TellAnswer::Accepted);
        assert_eq!(
            tell_answer(Err(Rejection::MailboxFull), Some(5)),
            TellAnswer::Reject { request_id: 5, reason: Rejection::MailboxFull }
        );
        assert_eq!(
            tell_answer(Err(Rejection::MailboxFull), None),
            TellAnswer::DropUnacked { reason: Rejection::MailboxFull }
        );
    }
}
