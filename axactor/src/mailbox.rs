//! The per-actor mailbox: a bounded user queue and a control queue behind one
//! lock, with one consumer (the actor's task).
//!
//! Invariants:
//! - the user queue never holds more than `capacity` messages;
//! - control messages are always taken before user messages, so stop, exit
//!   and down signals overtake a full user mailbox;
//! - handle-originated control messages (stop requests) are bounded by
//!   `control_capacity`; runtime signals (exit, down, restart) are always
//!   accepted, as their number is bounded by the actor's links and monitors;
//! - once the status leaves `Open`, no user message is accepted again.
//!
//! Concurrency: any number of senders, one receiver. The receiver parks its
//! waker only when both queues are empty; senders wake it after releasing the
//! lock. A sender waiting for space (`send`) parks in `senders` and is woken
//! by the receiver each time it takes a message. Nothing here allocates per
//! message once the queues have grown to their working size.

use std::collections::VecDeque;
use std::future::Future;
use std::pin::Pin;
use std::task::{Context as TaskCx, Poll, Waker};

use parking_lot::Mutex;

use crate::waiters::{WaitList, wake_all};
use crate::{ExitReason, MonitorId, Pid, TellError};

/// A message on the control path.
#[derive(Debug, Clone)]
pub(crate) enum Control {
    /// Stop the actor with `reason` after the current message.
    Stop { reason: ExitReason },
    /// A linked actor exited.
    Exit { from: Pid, reason: ExitReason },
    /// A monitored actor is down.
    Down { id: MonitorId, pid: Pid, reason: ExitReason },
    /// End the current incarnation and start a fresh one (supervisor).
    Restart,
}

/// What the receiver takes next.
#[derive(Debug)]
pub(crate) enum Next<M> {
    Control(Control),
    User(M),
    /// Draining and the user queue is empty: stop with this reason.
    Drained(ExitReason),
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum Status {
    Open,
    /// Closed to new user messages; the queue is being drained.
    Draining(ExitReason),
    Closed,
}

#[derive(Debug)]
struct State<M> {
    user: VecDeque<M>,
    control: VecDeque<Control>,
    /// A pending stop: taken before anything else. Stops coalesce into this
    /// slot (no queue allocation per stop); a runtime stop replaces the reason
    /// of a handle stop.
    stop: Option<ExitReason>,
    /// Stop requests from handles since the actor last took a stop; bounded
    /// by the control capacity.
    handle_control: usize,
    status: Status,
    rx_waker: Option<Waker>,
    senders: WaitList,
    control_senders: WaitList,
}

impl<M> State<M> {
    /// Takes the pending stop, if any, and lets waiting stop senders retry
    /// (their request is then answered by this stop).
    fn take_stop(&mut self) -> Option<ExitReason> {
        let reason = self.stop.take()?;
        self.handle_control = 0;
        wake_all(self.control_senders.take_all());
        Some(reason)
    }
}

/// The mailbox of one actor.
#[derive(Debug)]
pub(crate) struct Mailbox<M> {
    capacity: usize,
    control_capacity: usize,
    state: Mutex<State<M>>,
}

/// Result of a non-blocking push.
type Push<M> = Result<(), (TellError, M)>;

impl<M> Mailbox<M> {
    pub(crate) fn new(capacity: usize, control_capacity: usize) -> Self {
        Mailbox {
            capacity,
            control_capacity,
            state: Mutex::new(State {
                user: VecDeque::new(),
                control: VecDeque::new(),
                stop: None,
                handle_control: 0,
                status: Status::Open,
                rx_waker: None,
                senders: WaitList::default(),
                control_senders: WaitList::default(),
            }),
        }
    }

    /// Enqueues a user message without waiting.
    pub(crate) fn try_push(&self, msg: M) -> Push<M> {
        let mut st = self.state.lock();
        if st.status != Status::Open {
            return Err((TellError::Closed, msg));
        }
        if st.user.len() >= self.capacity {
            return Err((TellError::Full, msg));
        }
        st.user.push_back(msg);
        let rx = st.rx_waker.take();
        drop(st);
        if let Some(w) = rx {
            w.wake();
        }
        Ok(())
    }

    /// Moves user messages from the front of `msgs` to the mailbox, in
    /// order and under one lock, until `msgs` is empty or the mailbox full.
    pub(crate) fn try_push_from(&self, msgs: &mut VecDeque<M>) -> Result<(), TellError> {
        let mut st = self.state.lock();
        if st.status != Status::Open {
            return Err(TellError::Closed);
        }
        let room = self.capacity.saturating_sub(st.user.len());
        let n = room.min(msgs.len());
        st.user.extend(msgs.drain(..n));
        let rx = if n > 0 { st.rx_waker.take() } else { None };
        drop(st);
        if let Some(w) = rx {
            w.wake();
        }
        if msgs.is_empty() { Ok(()) } else { Err(TellError::Full) }
    }

    /// Enqueues a user message, waiting for space.
    pub(crate) fn push_wait(&self, msg: M) -> PushWait<'_, M> {
        PushWait { mailbox: self, msg: Some(msg), ticket: None }
    }

    /// Enqueues a control message. `from_handle` messages count against the
    /// control capacity and are refused once the actor is closing.
    pub(crate) fn push_control(&self, c: Control, from_handle: bool) -> Result<(), TellError> {
        let mut st = self.state.lock();
        match st.status {
            Status::Closed => return Err(TellError::Closed),
            Status::Draining(_) if from_handle => return Err(TellError::Closed),
            _ => {}
        }
        if from_handle {
            if st.handle_control >= self.control_capacity {
                return Err(TellError::Full);
            }
            st.handle_control += 1;
        }
        match c {
            Control::Stop { reason } if from_handle => {
                st.stop.get_or_insert(reason);
            }
            // A stop from the runtime (supervisor, registry) sets the reason.
            Control::Stop { reason } => st.stop = Some(reason),
            other => st.control.push_back(other),
        }
        let rx = st.rx_waker.take();
        drop(st);
        if let Some(w) = rx {
            w.wake();
        }
        Ok(())
    }

    /// Waits until the user queue has room for one message, or the mailbox
    /// no longer takes user messages (`Closed`); enqueues nothing. The
    /// waiter parks among the senders waiting for space: a wake-up for a
    /// free slot that it receives is passed on to the next sender when it
    /// returns, so no sender loses its turn to it.
    pub(crate) async fn wait_room(&self) -> Result<(), TellError> {
        let mut guard = TicketGuard { mailbox: self, ticket: None, control: false };
        std::future::poll_fn(|cx| {
            let mut st = self.state.lock();
            if st.status != Status::Open {
                return Poll::Ready(Err(TellError::Closed));
            }
            if st.user.len() < self.capacity {
                return Poll::Ready(Ok(()));
            }
            st.senders.park(&mut guard.ticket, cx.waker());
            Poll::Pending
        })
        .await
        // `guard` drops here: a ticket still parked is removed, one woken
        // is handed on (`cancel_ticket`).
    }

    /// Waits for control space, then enqueues a handle-originated control
    /// message built by `make`.
    pub(crate) async fn push_control_wait(&self, make: impl Fn() -> Control) -> Result<(), TellError> {
        let mut guard = TicketGuard { mailbox: self, ticket: None, control: true };
        std::future::poll_fn(|cx| match self.push_control(make(), true) {
            Err(TellError::Full) => {
                let mut st = self.state.lock();
                if st.handle_control < self.control_capacity {
                    // Space appeared between the two locks: try again.
                    cx.waker().wake_by_ref();
                } else {
                    st.control_senders.park(&mut guard.ticket, cx.waker());
                }
                Poll::Pending
            }
            other => {
                if let Some(t) = guard.ticket.take() {
                    self.state.lock().control_senders.cancel(t);
                }
                Poll::Ready(other)
            }
        })
        .await
    }

    /// Receiver side: the next control or user message.
    pub(crate) fn poll_next(&self, cx: &mut TaskCx<'_>) -> Poll<Next<M>> {
        let mut st = self.state.lock();
        if let Some(reason) = st.take_stop() {
            return Poll::Ready(Next::Control(Control::Stop { reason }));
        }
        if let Some(c) = st.control.pop_front() {
            return Poll::Ready(Next::Control(c));
        }
        if let Some(m) = st.user.pop_front() {
            let woken = st.senders.pop();
            drop(st);
            if let Some(w) = woken {
                w.wake();
            }
            return Poll::Ready(Next::User(m));
        }
        if let Status::Draining(reason) = &st.status {
            return Poll::Ready(Next::Drained(reason.clone()));
        }
        match &st.rx_waker {
            Some(w) if w.will_wake(cx.waker()) => {}
            _ => st.rx_waker = Some(cx.waker().clone()),
        }
        Poll::Pending
    }

    /// Receiver side during a restart backoff: only control messages.
    pub(crate) fn poll_control(&self, cx: &mut TaskCx<'_>) -> Poll<Control> {
        let mut st = self.state.lock();
        if let Some(reason) = st.take_stop() {
            return Poll::Ready(Control::Stop { reason });
        }
        if let Some(c) = st.control.pop_front() {
            return Poll::Ready(c);
        }
        // Draining during a backoff: nothing will be handled until the
        // backoff ends, so end now instead of waiting it out.
        if let Status::Draining(reason) = &st.status {
            return Poll::Ready(Control::Stop { reason: reason.clone() });
        }
        match &st.rx_waker {
            Some(w) if w.will_wake(cx.waker()) => {}
            _ => st.rx_waker = Some(cx.waker().clone()),
        }
        Poll::Pending
    }

    /// Puts control messages deferred during a backoff back in front.
    pub(crate) fn requeue_control(&self, deferred: Vec<Control>) {
        let mut st = self.state.lock();
        for c in deferred.into_iter().rev() {
            st.control.push_front(c);
        }
    }

    /// Closes to new user messages; the actor handles what is queued, then
    /// stops with `reason` (`Next::Drained`).
    ///
    /// # Errors
    /// [`TellError::Closed`] if the mailbox was already draining or closed.
    pub(crate) fn begin_drain(&self, reason: ExitReason) -> Result<(), TellError> {
        let mut st = self.state.lock();
        if st.status != Status::Open {
            return Err(TellError::Closed);
        }
        st.status = Status::Draining(reason);
        let senders = st.senders.take_all();
        let control = st.control_senders.take_all();
        let rx = st.rx_waker.take();
        drop(st);
        wake_all(senders);
        wake_all(control);
        if let Some(w) = rx {
            w.wake();
        }
        Ok(())
    }

    /// Drops every queued user message (restart with drain-and-drop).
    pub(crate) fn clear_user(&self) {
        let dropped = {
            let mut st = self.state.lock();
            std::mem::take(&mut st.user)
        };
        // Dropped outside the lock: reply senders inside may wake askers.
        drop(dropped);
    }

    /// Closes for good and drops everything queued (pending asks see
    /// `Canceled`, waiting senders see `Closed`).
    pub(crate) fn close(&self) {
        let (user, control, senders, control_senders, rx) = {
            let mut st = self.state.lock();
            st.status = Status::Closed;
            st.stop = None;
            st.handle_control = 0;
            (
                std::mem::take(&mut st.user),
                std::mem::take(&mut st.control),
                st.senders.take_all(),
                st.control_senders.take_all(),
                st.rx_waker.take(),
            )
        };
        drop((user, control, rx));
        wake_all(senders);
        wake_all(control_senders);
    }

    pub(crate) fn len(&self) -> usize {
        self.state.lock().user.len()
    }

    pub(crate) fn is_closed(&self) -> bool {
        self.state.lock().status != Status::Open
    }

    pub(crate) fn capacity(&self) -> usize {
        self.capacity
    }
}

/// Removes a parked ticket when a waiting future is dropped, and passes a
/// wake-up it received but did not use on to the next waiter.
struct TicketGuard<'a, M> {
    mailbox: &'a Mailbox<M>,
    ticket: Option<u64>,
    control: bool,
}

impl<M> Drop for TicketGuard<'_, M> {
    fn drop(&mut self) {
        if let Some(t) = self.ticket.take() {
            cancel_ticket(self.mailbox, t, self.control);
        }
    }
}

fn cancel_ticket<M>(mailbox: &Mailbox<M>, ticket: u64, control: bool) {
    let mut st = mailbox.state.lock();
    let list = if control { &mut st.control_senders } else { &mut st.senders };
    if !list.cancel(ticket) {
        // We were woken for a free slot we will not use: hand it on.
        let next = list.pop();
        drop(st);
        if let Some(w) = next {
            w.wake();
        }
    }
}

/// Future of [`Mailbox::push_wait`].
pub(crate) struct PushWait<'a, M> {
    mailbox: &'a Mailbox<M>,
    msg: Option<M>,
    ticket: Option<u64>,
}

// The message is moved, never pinned in place.
impl<M> Unpin for PushWait<'_, M> {}

impl<M> Future for PushWait<'_, M> {
    type Output = Result<(), TellError>;

    fn poll(mut self: Pin<&mut Self>, cx: &mut TaskCx<'_>) -> Poll<Self::Output> {
        let this = &mut *self;
        let Some(msg) = this.msg.take() else {
            return Poll::Ready(Err(TellError::Closed));
        };
        let mut st = this.mailbox.state.lock();
        if st.status != Status::Open {
            drop(st);
            drop(msg);
            return Poll::Ready(Err(TellError::Closed));
        }
        if st.user.len() < this.mailbox.capacity {
            if let Some(t) = this.ticket.take() {
                st.senders.cancel(t);
            }
            st.user.push_back(msg);
            let rx = st.rx_waker.take();
            drop(st);
            if let Some(w) = rx {
                w.wake();
            }
            return Poll::Ready(Ok(()));
        }
        st.senders.park(&mut this.ticket, cx.waker());
        drop(st);
        this.msg = Some(msg);
        Poll::Pending
    }
}

impl<M> Drop for PushWait<'_, M> {
    fn drop(&mut self) {
        if let Some(t) = self.ticket.take() {
            cancel_ticket(self.mailbox, t, false);
        }
    }
}

impl<M> std::fmt::Debug for PushWait<'_, M> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PushWait").field("pending", &self.msg.is_some()).finish()
    }
}
