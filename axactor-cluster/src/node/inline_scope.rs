//! This thread's part in reading frames from the sender's task
//! (`established/inline.rs`): where a reader may claim a frame ([`Scope`]),
//! where it may not ([`Quiet`]), and the one claim a thread holds until its
//! outermost scope ends.
//!
//! A sender enters a [`Scope`] before it takes the locks a frame is sent
//! under (its write path, its reply table), so the scope ends after them: a
//! reader that claimed the frame ([`hold`]) handles it then, with none of
//! the sender's locks held. A thread that handles frames for a reader (its
//! task, or a claim being handled) is [`Quiet`]: nothing is claimed there,
//! so claims never nest. At most one claim per thread.
//!
//! Nothing here knows a reader: a claim is a [`Claimed`], so this module
//! depends on no other of the node's.

use std::cell::{Cell, RefCell};
use std::marker::PhantomData;
use std::sync::Arc;

use bytes::Bytes;

/// A reader that claimed a frame on this thread (see the module docs).
pub(crate) trait Claimed: Send + Sync {
    /// Handles `frame` as the reader would, and ends the claim.
    fn handle_claimed(&self, frame: Bytes);

    /// Ends the claim with `frame` unhandled (the thread is unwinding).
    fn release(&self);
}

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
    /// The claim and its frame, handled when the outermost scope ends.
    static PENDING: RefCell<Option<(Arc<dyn Claimed>, Bytes)>> = const { RefCell::new(None) };
}

/// Whether a reader may claim a frame on this thread now: inside a
/// [`Scope`], not [`Quiet`], no claim held yet.
pub(crate) fn may_claim() -> bool {
    SCOPES.with(|s| s.depth.get() != 0 && s.quiet.get() == 0 && !s.claimed.get())
}

/// Keeps `claimed` and its frame until the outermost [`Scope`] ends. Only
/// after [`may_claim`] said yes.
pub(crate) fn hold(claimed: Arc<dyn Claimed>, frame: Bytes) {
    PENDING.with(|p| *p.borrow_mut() = Some((claimed, frame)));
    SCOPES.with(|s| s.claimed.set(true));
}

/// A stretch of a sender's work in which a reader may claim its frame; the
/// frame is handled when the outermost scope ends. Enter it before taking
/// the locks the frame is sent under (it is dropped after them), and never
/// hold it across an await.
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
        if claimed && let Some((claim, frame)) = PENDING.with(|p| p.borrow_mut().take()) {
            // Unwinding: the claim ends unhandled (the connection then ends
            // at the next frame's sequence check) rather than running the
            // node's code inside a panic.
            if std::thread::panicking() {
                claim.release();
                return;
            }
            let _quiet = Quiet::enter();
            claim.handle_claimed(frame);
        }
    }
}

/// A stretch in which this thread handles frames for a reader: no frame is
/// claimed meanwhile.
pub(crate) struct Quiet {
    /// Thread-bound.
    _local: PhantomData<*const ()>,
}

impl Quiet {
    /// Enters a quiet stretch on this thread.
    pub(crate) fn enter() -> Quiet {
        SCOPES.with(|s| s.quiet.set(s.quiet.get() + 1));
        Quiet { _local: PhantomData }
    }
}

impl Drop for Quiet {
    fn drop(&mut self) {
        SCOPES.with(|s| s.quiet.set(s.quiet.get().saturating_sub(1)));
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use parking_lot::Mutex;

    /// Records what became of its claims.
    #[derive(Default)]
    struct Log(Mutex<Vec<String>>);

    impl Claimed for Log {
        fn handle_claimed(&self, frame: Bytes) {
            let nested = may_claim();
            self.0.lock().push(format!("handled {} (may claim: {nested})", String::from_utf8_lossy(&frame)));
        }

        fn release(&self) {
            self.0.lock().push("released".into());
        }
    }

    #[test]
    fn a_claim_is_handled_when_the_outermost_scope_ends_and_never_nests() {
        let log = Arc::new(Log::default());
        assert!(!may_claim(), "outside a scope");
        {
            let _outer = Scope::enter();
            {
                let _inner = Scope::enter();
                assert!(may_claim());
                hold(log.clone(), Bytes::from_static(b"a"));
                assert!(!may_claim(), "one claim per thread");
            }
            assert!(log.0.lock().is_empty(), "not before the outermost scope ends");
            let _quiet = Quiet::enter();
            assert!(!may_claim(), "quiet");
        }
        assert_eq!(*log.0.lock(), ["handled a (may claim: false)"], "handled quietly, once");
        let _scope = Scope::enter();
        assert!(may_claim(), "free again");
    }

    #[test]
    fn a_claim_held_while_the_thread_unwinds_is_released_unhandled() {
        let log = Arc::new(Log::default());
        let held = log.clone();
        let unwound = std::panic::catch_unwind(std::panic::AssertUnwindSafe(move || {
            let _scope = Scope::enter();
            hold(held, Bytes::from_static(b"b"));
            panic!("a handler panicked");
        }));
        assert!(unwound.is_err());
        assert_eq!(*log.0.lock(), ["released"]);
        let _scope = Scope::enter();
        assert!(may_claim(), "nothing left claimed or entered");
    }
}
