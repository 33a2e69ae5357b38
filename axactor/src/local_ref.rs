//! [`LocalRef`]: the untyped-by-method handle to a local actor's mailbox, and
//! [`ReplyTo`], the reply half of an ask.
//!
//! Every generated `XRef` is a thin wrapper over `LocalRef<XMsg>`. A tell is
//! one lock and one queue push; an ask adds one allocation (the reply
//! channel). Neither reads the clock or boxes a future.

use std::fmt;
use std::sync::Arc;
use std::time::Duration;

use tokio::sync::oneshot;

use crate::cell::Cell;
use crate::cell_ops::CellOps;
use crate::meta::ExitWait;
use crate::{AskError, Pid, TellError};

/// A handle to a local actor whose messages are `M`.
///
/// `Clone + Send + Sync`; clones address the same actor, and stay valid
/// across restarts.
pub struct LocalRef<M> {
    cell: Arc<Cell<M>>,
}

impl<M> Clone for LocalRef<M> {
    fn clone(&self) -> Self {
        LocalRef { cell: self.cell.clone() }
    }
}

impl<M: Send + 'static> fmt::Debug for LocalRef<M> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("LocalRef").field("pid", &self.pid()).finish()
    }
}

/// The sending half of an ask's reply channel, carried inside the message.
pub struct ReplyTo<T> {
    tx: oneshot::Sender<T>,
}

impl<T> ReplyTo<T> {
    /// A reply channel: put the `ReplyTo` in a message and await the
    /// receiver (it errs if the `ReplyTo` is dropped without a reply).
    pub fn channel() -> (ReplyTo<T>, oneshot::Receiver<T>) {
        let (tx, rx) = oneshot::channel();
        (ReplyTo { tx }, rx)
    }

    /// Sends the reply. A reply to an asker that gave up (timed out or was
    /// dropped) is discarded.
    pub fn send(self, value: T) {
        let _ = self.tx.send(value);
    }

    /// `true` if the asker is no longer waiting.
    pub fn is_closed(&self) -> bool {
        self.tx.is_closed()
    }
}

impl<T> fmt::Debug for ReplyTo<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ReplyTo").field("closed", &self.tx.is_closed()).finish()
    }
}

impl<M: Send + 'static> LocalRef<M> {
    pub(crate) fn from_cell(cell: Arc<Cell<M>>) -> Self {
        LocalRef { cell }
    }

    /// The actor's pid.
    pub fn pid(&self) -> Pid {
        self.cell.pid()
    }

    /// Enqueues `msg` without waiting.
    ///
    /// # Errors
    /// [`TellError::Full`] if the mailbox is at capacity,
    /// [`TellError::Closed`] if the actor has stopped or is stopping.
    pub fn try_send(&self, msg: M) -> Result<(), TellError> {
        self.cell.mailbox.try_push(msg).map_err(|(e, _)| e)
    }

    /// Enqueues messages from the front of `msgs`, in order, without
    /// waiting and under one lock of the mailbox (one wake-up of the actor
    /// for all of them), until `msgs` is empty or the mailbox is full; what
    /// was not enqueued stays in `msgs`.
    ///
    /// # Errors
    /// [`TellError::Full`] if the mailbox filled up before `msgs` was empty
    /// (those left were not enqueued), [`TellError::Closed`] if the actor
    /// has stopped or is stopping (none was enqueued).
    ///
    /// ```
    /// # use std::collections::VecDeque;
    /// # use axactor::{actor, SpawnConfig, System, TellError};
    /// # struct Counter(u64);
    /// # #[actor]
    /// # impl Counter {
    /// #     #[msg]
    /// #     fn add(&mut self, n: u64) { self.0 += n; }
    /// # }
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() {
    /// let system = System::new();
    /// let counter = system.spawn_with(|| Counter(0), SpawnConfig::new("counter", 2)).expect("spawned").actor();
    /// let mut batch: VecDeque<_> = (1..=3).map(|n| CounterMsg::Add { n }).collect();
    /// // Room for two (the actor has not run yet): the third stays in `batch`.
    /// assert_eq!(counter.as_local_ref().try_send_from(&mut batch), Err(TellError::Full));
    /// assert_eq!(batch.len(), 1);
    /// # }
    /// ```
    pub fn try_send_from(&self, msgs: &mut std::collections::VecDeque<M>) -> Result<(), TellError> {
        self.cell.mailbox.try_push_from(msgs)
    }

    /// Like [`LocalRef::try_send`], but hands `msg` back when it was not
    /// enqueued, so the caller can wait for space or route it elsewhere.
    ///
    /// # Errors
    /// As [`LocalRef::try_send`], with the message.
    pub fn try_send_or_return(&self, msg: M) -> Result<(), (TellError, M)> {
        self.cell.mailbox.try_push(msg)
    }

    /// Enqueues `msg`, waiting for mailbox space.
    ///
    /// # Errors
    /// [`TellError::Closed`] if the actor has stopped or is stopping.
    ///
    /// # Cancel safety
    /// Cancel safe: if the future is dropped before completing, `msg` was not
    /// enqueued (and is dropped).
    pub async fn send(&self, msg: M) -> Result<(), TellError> {
        self.cell.mailbox.push_wait(msg).await
    }

    /// Waits until the user mailbox has room for a message, without sending
    /// one: for a sender that must not hold its message in a waiting
    /// future (it decodes it only once there is room, say, or gives up
    /// after a time of its own). The room is not reserved: another sender
    /// may take it first, so follow with [`LocalRef::try_send`] and expect
    /// `Full` now and then. Waiting senders keep their order: a waiter
    /// woken for a free slot passes the wake-up on when it returns.
    ///
    /// # Errors
    /// [`TellError::Closed`] if the actor has stopped or is stopping.
    ///
    /// # Cancel safety
    /// Cancel safe: nothing is enqueued either way.
    ///
    /// ```
    /// # use axactor::{actor, SpawnConfig, System, TellError};
    /// # struct Counter(u64);
    /// # #[actor]
    /// # impl Counter {
    /// #     #[msg]
    /// #     fn add(&mut self, n: u64) { self.0 += n; }
    /// #     #[msg]
    /// #     fn get(&mut self) -> u64 { self.0 }
    /// # }
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() {
    /// let system = System::new();
    /// let counter = system.spawn_with(|| Counter(0), SpawnConfig::new("counter", 1)).expect("spawned").actor();
    /// let local = counter.as_local_ref();
    /// local.try_send(CounterMsg::Add { n: 1 }).expect("room for one");
    /// assert_eq!(local.try_send(CounterMsg::Add { n: 2 }), Err(TellError::Full));
    /// // The actor takes the first message: room again.
    /// local.wait_for_room().await.expect("running");
    /// local.try_send(CounterMsg::Add { n: 2 }).expect("room");
    /// assert_eq!(counter.get_wait().await, Ok(3));
    /// # }
    /// ```
    pub async fn wait_for_room(&self) -> Result<(), TellError> {
        self.cell.mailbox.wait_room().await
    }

    /// Asks without waiting for space: the message is built by `make` around
    /// the reply channel.
    ///
    /// # Errors
    /// `Full`/`Closed` if not enqueued; `Canceled` if the actor dropped the
    /// request (handler panic, stop) before replying.
    ///
    /// # Cancel safety
    /// Dropping the future gives up on the reply only: a request already
    /// enqueued still runs, and its reply is discarded.
    pub async fn ask<T, F>(&self, make: F) -> Result<T, AskError>
    where
        F: FnOnce(ReplyTo<T>) -> M,
    {
        let (tx, rx) = ReplyTo::channel();
        self.try_send(make(tx))?;
        rx.await.map_err(|_| AskError::Canceled)
    }

    /// Like [`LocalRef::ask`], but waits for mailbox space.
    ///
    /// # Errors
    /// As [`LocalRef::ask`], except never `Full`.
    ///
    /// # Cancel safety
    /// Dropping the future gives up on the reply only: a request already
    /// enqueued still runs, and its reply is discarded.
    /// Dropped while it waits for space, nothing was enqueued.
    pub async fn ask_wait<T, F>(&self, make: F) -> Result<T, AskError>
    where
        F: FnOnce(ReplyTo<T>) -> M,
    {
        let (tx, rx) = ReplyTo::channel();
        self.send(make(tx)).await?;
        rx.await.map_err(|_| AskError::Canceled)
    }

    /// Like [`LocalRef::ask`], failing with `Timeout` if no reply arrives
    /// within `timeout` (the request may still run).
    ///
    /// # Errors
    /// As [`LocalRef::ask`], plus [`AskError::Timeout`].
    ///
    /// # Cancel safety
    /// Dropping the future gives up on the reply only: a request already
    /// enqueued still runs, and its reply is discarded.
    pub async fn ask_timeout<T, F>(&self, make: F, timeout: Duration) -> Result<T, AskError>
    where
        F: FnOnce(ReplyTo<T>) -> M,
    {
        let (tx, rx) = ReplyTo::channel();
        self.try_send(make(tx))?;
        match tokio::time::timeout(timeout, rx).await {
            Ok(r) => r.map_err(|_| AskError::Canceled),
            Err(_) => Err(AskError::Timeout),
        }
    }

    /// Like [`LocalRef::ask_wait`]; `timeout` covers both the wait for space
    /// and the wait for the reply.
    ///
    /// # Errors
    /// As [`LocalRef::ask_wait`], plus [`AskError::Timeout`].
    ///
    /// # Cancel safety
    /// Dropping the future gives up on the reply only: a request already
    /// enqueued still runs, and its reply is discarded.
    pub async fn ask_wait_timeout<T, F>(&self, make: F, timeout: Duration) -> Result<T, AskError>
    where
        F: FnOnce(ReplyTo<T>) -> M,
    {
        match tokio::time::timeout(timeout, self.ask_wait(make)).await {
            Ok(r) => r,
            Err(_) => Err(AskError::Timeout),
        }
    }

    /// Asks the actor to stop, through the control mailbox (it overtakes
    /// queued user messages). With `SpawnConfig::shutdown_graceful`, the
    /// actor first handles what is queued, up to the configured deadline.
    ///
    /// # Errors
    /// [`TellError::Closed`] if the actor is already stopped or stopping,
    /// [`TellError::Full`] if the control mailbox is full.
    pub fn stop(&self) -> Result<(), TellError> {
        self.cell.request_stop()
    }

    /// Like [`LocalRef::stop`], but waits for control-mailbox space and then
    /// until the actor has stopped for good.
    ///
    /// Do not await this from the actor's own handler: the actor cannot stop
    /// while its handler waits for it (use `ctx.stop()` there).
    ///
    /// # Errors
    /// [`TellError::Closed`] if the actor was already stopped or stopping.
    ///
    /// # Cancel safety
    /// Dropping the future stops the waiting only: once the stop request is
    /// in the control mailbox, the actor stops anyway.
    pub async fn stop_wait(&self) -> Result<(), TellError> {
        self.cell.request_stop_wait().await?;
        ExitWait::new(&self.cell.meta).await;
        Ok(())
    }

    /// Stops the actor with `reason` ahead of queued user messages: the
    /// actor finishes the handler it is running, then runs `on_stop(reason)`.
    /// A runtime stop (not bounded by the control capacity); runtimes built
    /// on axactor use it, e.g. the cluster layer with
    /// [`ExitReason::LeaseLost`](crate::ExitReason::LeaseLost).
    ///
    /// # Errors
    /// [`TellError::Closed`] if the actor has already stopped.
    pub fn stop_with(&self, reason: crate::ExitReason) -> Result<(), TellError> {
        self.cell.mailbox.push_control(crate::mailbox::Control::Stop { reason }, false)
    }

    /// Closes the mailbox to new messages at once; the actor handles what is
    /// already queued, then stops with `reason`. Used by the cluster layer to
    /// passivate idle activations (a later send sees `Closed`, never a
    /// silently dropped message).
    ///
    /// # Errors
    /// [`TellError::Closed`] if the actor is already stopped or stopping.
    pub fn drain(&self, reason: crate::ExitReason) -> Result<(), TellError> {
        CellOps::drain(&*self.cell, reason)
    }

    /// Ends the actor at once with `reason`, without `on_stop`: its task is
    /// aborted (a running handler is dropped at its next await point) and
    /// links, monitors and waiters see `reason`. A no-op on a stopped actor.
    pub fn kill(&self, reason: crate::ExitReason) {
        CellOps::kill(&*self.cell, reason);
    }

    /// Messages currently queued in the user mailbox.
    pub fn mailbox_len(&self) -> usize {
        self.cell.mailbox.len()
    }

    /// The user mailbox capacity.
    pub fn capacity(&self) -> usize {
        self.cell.mailbox.capacity()
    }

    /// `true` once the actor stopped or began stopping (no more messages are
    /// accepted).
    pub fn is_closed(&self) -> bool {
        self.cell.mailbox.is_closed()
    }

    /// Waits until the actor has stopped for good and returns why.
    pub async fn wait_stopped(&self) -> crate::ExitReason {
        ExitWait::new(&self.cell.meta).await
    }

    pub(crate) fn cell_ops(&self) -> Arc<dyn CellOps> {
        self.cell.clone()
    }
}
