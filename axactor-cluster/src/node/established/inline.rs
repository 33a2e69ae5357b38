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
//!    sink try-locks the cell and keeps the lock if the reader has nothing
//!    in hand (no frame taken from the queue and not yet handled, no frame
//!    waiting for room, not ended) and its node is not paused. The claim and
//!    the frame wait in a thread-local slot. Later frames on the link find
//!    the cell locked and are queued; the reader task, woken for them,
//!    waits for the lock, so they are handled after the claimed one.
//! 2. *Handle*, when the outermost [`Scope`] on this thread ends: after the
//!    sender's own locks (its write path, its reply table) are released,
//!    the frame is opened, checked and dispatched as the reader task would,
//!    in the connection's span, and the claim is released.
//!
//! A claim is taken only inside a [`Scope`] (the write path of a caller's
//! request and of an activation's completed reply), never while the thread
//! handles frames for a reader ([`Quiet`]), and at most one at a time per
//! thread: nothing nests, and a claim never waits for a lock a claimant
//! holds (every other claimant only try-locks; the reader task locks the
//! cell holding nothing else).
//!
//! What the reader task would do after a frame that the sender's task
//! cannot do is left to it: a request whose mailbox is full (it yields and
//! waits for room) and the connection's end. The cell records either and
//! wakes the reader task, which takes it before any other frame.
//!
//! Determinism: no clock, no randomness; under the simulation's
//! current-thread runtime a claimed frame is handled before the sender's
//! task yields, so the reader task never waits for the lock there.

use std::cell::{Cell, RefCell};
use std::marker::PhantomData;
use std::sync::Weak;
use std::task::Waker;

use bytes::Bytes;
use parking_lot::{ArcMutexGuard, Mutex, RawMutex};
use tracing::Span;

use super::{End, Reader};
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
            span: Span::current(),
        }
    }

    /// Whether a frame may be handled inline now.
    fn takes_inline(&self) -> bool {
        !self.in_hand
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
    /// can do.
    fn handle_inline(&mut self, frame: Bytes) {
        let _entered = self.span.enter();
        bump(&self.reader.node.counters.frames_read_inline);
        self.reader.rules.on_frames();
        match self.reader.handle(&frame) {
            Some(end) => self.ended = Some(end),
            None if self.reader.waits.is_some() => self.deferred = Some(frame),
            None => return,
        }
        if let Some(waker) = self.waker.take() {
            waker.wake();
        }
    }
}

/// A claimed cell: locked, its `Arc` kept.
type Claim = ArcMutexGuard<RawMutex, ReaderCell>;

/// This thread's scopes: read on every frame sent and handled, so kept
/// apart from the claim (nothing to drop: no lazy registration on access).
struct Scopes {
    /// [`Scope`]s entered and not yet left.
    depth: Cell<u32>,
    /// [`Quiet`]s entered and not yet left.
    quiet: Cell<u32>,
    /// `PENDING` holds a claim.
    claimed: Cell<bool>,
}

thread_local! {
    static SCOPES: Scopes = const { Scopes { depth: Cell::new(0), quiet: Cell::new(0), claimed: Cell::new(false) } };
    /// The claimed cell and its frame, handled when the outermost scope ends.
    static PENDING: RefCell<Option<(Claim, Bytes)>> = const { RefCell::new(None) };
}

/// A stretch of a sender's work in which a reader may take its frame
/// inline; the frame is handled when the outermost scope ends. Enter it
/// before taking the locks the frame is sent under (it is dropped after
/// them), and never hold it across an await.
#[must_use = "a scope handles its claimed frame when dropped"]
pub(crate) struct Scope {
    /// Thread-bound.
    _local: PhantomData<*const ()>,
}

impl Scope {
    /// Enters a scope on this thread.
    pub(crate) fn enter() -> Scope {
        SCOPES.with(|s| s.depth.set(s.depth.get() + 1));
        Scope { _local: PhantomData }
    }
}

impl Drop for Scope {
    fn drop(&mut self) {
        let claimed = SCOPES.with(|s| {
            let depth = s.depth.get().saturating_sub(1);
            s.depth.set(depth);
            depth == 0 && s.claimed.replace(false)
        });
        if claimed && let Some((mut claim, frame)) = PENDING.with(|p| p.borrow_mut().take()) {
            // Unwinding: the claim is let go unhandled (the connection then
            // ends at the next frame's sequence check) rather than running
            // the node's code inside a panic.
            if std::thread::panicking() {
                return;
            }
            let _quiet = Quiet::enter();
            claim.handle_inline(frame);
        }
    }
}

/// A stretch in which this thread handles frames for a reader: no frame is
/// claimed inline meanwhile.
pub(super) struct Quiet {
    /// Thread-bound.
    _local: PhantomData<*const ()>,
}

impl Quiet {
    /// Enters a quiet stretch on this thread.
    pub(super) fn enter() -> Quiet {
        SCOPES.with(|s| s.quiet.set(s.quiet.get() + 1));
        Quiet { _local: PhantomData }
    }
}

impl Drop for Quiet {
    fn drop(&mut self) {
        SCOPES.with(|s| s.quiet.set(s.quiet.get().saturating_sub(1)));
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
        let free = SCOPES.with(|s| s.depth.get() != 0 && s.quiet.get() == 0 && !s.claimed.get());
        if !free {
            return Err(frame);
        }
        let Some(cell) = self.cell.upgrade() else { return Err(frame) };
        let Some(claim) = cell.try_lock_arc() else { return Err(frame) };
        if !claim.takes_inline() {
            return Err(frame);
        }
        taken(&frame);
        PENDING.with(|p| *p.borrow_mut() = Some((claim, frame)));
        SCOPES.with(|s| s.claimed.set(true));
        Ok(())
    }
}
