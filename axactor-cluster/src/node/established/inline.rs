//! A reader that takes frames from the sender's own task: the hop to the
//! reader task is spared on links that offer it (in-memory links, whose
//! write-through hands a frame over while nothing is queued:
//! `overlay/memory_direct.rs`).
//!
//! The reader's state lives in a [`ReaderCell`] behind one mutex, shared by
//! the reader task and the link's [`InlineReader`] sink. A frame is taken
//! inline in two steps:
//!
//! 1. *Claim*, under the link's producers' lock, with the queue empty: the
//!    sink try-locks the cell and marks it `claimed` if the reader has
//!    nothing in hand (no frame taken from the queue and not yet handled,
//!    no frame waiting for room, no claim, not ended) and its node is not
//!    paused. The claim and the frame wait in this thread's slot
//!    (`node/inline_scope.rs`). Later frames on the link are queued; the
//!    reader task, woken for them, takes nothing from the queue while the
//!    cell is claimed, and is woken again when the claim ends, so they are
//!    handled after the claimed one.
//! 2. *Handle*, when the outermost `Scope` on this thread ends: after the
//!    sender's own locks (its write path, its reply table) are released,
//!    the frame is opened, checked and dispatched under the cell's lock as
//!    the reader task would, in the connection's span, and the claim ends.
//!
//! A claim is taken only inside a `Scope` (the write path of a caller's
//! request and of an activation's completed reply), never while the thread
//! handles frames for a reader (`Quiet`), and at most one at a time per
//! thread: nothing nests, and nobody waits on a claim while holding a lock
//! (claimants only try-lock the cell, and it is never locked across a
//! claim).
//!
//! What the reader task would do after a frame that the sender's task
//! cannot do is left to it: a request whose mailbox is full (it yields and
//! waits for room) and the connection's end. The cell records either and
//! wakes the reader task, which takes it before any other frame.
//!
//! Determinism: no clock, no randomness; under the simulation's
//! current-thread runtime a claimed frame is handled before the sender's
//! task yields, so the reader task never finds the cell claimed there.

use std::sync::{Arc, Weak};
use std::task::Waker;

use bytes::Bytes;
use parking_lot::Mutex;
use tracing::Span;

use super::{End, Reader};
use crate::node::inline_scope::{self, Claimed};
use crate::node::inspect::bump;
use crate::overlay::InlineSink;

/// The reader's state and what the reader task and the sink share.
pub(super) struct ReaderCell {
    pub(super) reader: Reader,
    /// The reader task took frames from the queue that it has not finished
    /// handling (or is delivering `deferred`).
    pub(super) in_hand: bool,
    /// A frame handled inline whose request waits for room in a full
    /// mailbox: the reader task delivers it after yields.
    pub(super) deferred: Option<Bytes>,
    /// The connection ended with a frame handled inline.
    pub(super) ended: Option<End>,
    /// The reader task, woken when `deferred` or `ended` is set.
    pub(super) waker: Option<Waker>,
    /// The reader task has ended: nothing more is taken inline.
    pub(super) gone: bool,
    /// A sender's task claimed a frame and has not handled it yet: the
    /// reader task takes nothing from the queue meanwhile.
    pub(super) claimed: bool,
    /// The reader task found the cell claimed: woken when the claim ends.
    pub(super) waits_for_claim: bool,
    /// The connection's span, entered while a frame is handled inline.
    pub(super) span: Span,
}

/// How the reader task reaches its state: its own ([`ReaderCell`], on
/// links that hand nothing over inline) or shared with the link's sink
/// (`&Mutex<ReaderCell>`, locked for each step).
pub(super) trait Access: Send {
    /// The state is shared with an [`InlineReader`].
    const SHARED: bool;

    /// Runs `f` on the reader's state.
    fn with<R>(&mut self, f: impl FnOnce(&mut ReaderCell) -> R) -> R;
}

impl Access for ReaderCell {
    const SHARED: bool = false;

    fn with<R>(&mut self, f: impl FnOnce(&mut ReaderCell) -> R) -> R {
        f(self)
    }
}

impl Access for &Mutex<ReaderCell> {
    const SHARED: bool = true;

    fn with<R>(&mut self, f: impl FnOnce(&mut ReaderCell) -> R) -> R {
        f(&mut self.lock())
    }
}

impl ReaderCell {
    /// A cell for `reader`, in the current span.
    pub(super) fn new(reader: Reader) -> ReaderCell {
        ReaderCell {
            reader,
            in_hand: false,
            deferred: None,
            ended: None,
            waker: None,
            gone: false,
            claimed: false,
            waits_for_claim: false,
            span: Span::current(),
        }
    }

    /// Whether a frame may be handled inline now.
    fn takes_inline(&self) -> bool {
        !self.in_hand
            && !self.claimed
            && self.deferred.is_none()
            && self.ended.is_none()
            && !self.gone
            && !self.reader.node.env.is_paused()
    }

    /// Keeps `waker` as the reader task's.
    pub(super) fn set_waker(&mut self, waker: &Waker) {
        if !self.waker.as_ref().is_some_and(|w| w.will_wake(waker)) {
            self.waker = Some(waker.clone());
        }
    }

    /// Handles `frame` as the reader task would, leaving to it what only it
    /// can do; `true` if the reader task must be woken for that.
    fn handle_inline(&mut self, frame: Bytes) -> bool {
        let _entered = self.span.enter();
        bump(&self.reader.node.counters.frames_read_inline);
        self.reader.rules.on_frames();
        match self.reader.handle(&frame) {
            Some(end) => self.ended = Some(end),
            None if self.reader.waits.is_some() => self.deferred = Some(frame),
            None => return false,
        }
        true
    }

    /// Ends a claim; wakes the reader task if `wake` or if it waits for the
    /// claim to end.
    fn end_claim(&mut self, wake: bool) {
        self.claimed = false;
        if (std::mem::take(&mut self.waits_for_claim) || wake)
            && let Some(waker) = self.waker.take()
        {
            waker.wake();
        }
    }
}

impl Claimed for Mutex<ReaderCell> {
    fn handle_claimed(&self, frame: Bytes) {
        let mut cell = self.lock();
        let wake = cell.handle_inline(frame);
        cell.end_claim(wake);
    }

    fn release(&self) {
        self.lock().end_claim(false);
    }
}

/// The link's [`InlineSink`] for one reader.
pub(super) struct InlineReader {
    /// Weak: the link must not keep the reader's state (and its node) alive.
    pub(super) cell: Weak<Mutex<ReaderCell>>,
}

impl std::fmt::Debug for InlineReader {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("InlineReader").finish_non_exhaustive()
    }
}

impl InlineSink for InlineReader {
    fn try_take(&self, frame: Bytes, taken: &mut dyn FnMut(&Bytes)) -> Result<(), Bytes> {
        if !inline_scope::may_claim() {
            return Err(frame);
        }
        let Some(cell) = self.cell.upgrade() else { return Err(frame) };
        {
            let Some(mut state) = cell.try_lock() else { return Err(frame) };
            if !state.takes_inline() {
                return Err(frame);
            }
            state.claimed = true;
        }
        taken(&frame);
        let claimed: Arc<dyn Claimed> = cell;
        inline_scope::hold(claimed, frame);
        Ok(())
    }
}
