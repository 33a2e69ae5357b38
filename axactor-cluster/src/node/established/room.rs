//! A request from the peer whose activation's mailbox is full: the reader
//! yields and tries again, then waits for room within its patience
//! (`patience.rs`), before the request is refused, handling nothing else on
//! the connection meanwhile.

use bytes::Bytes;

use super::inline::{Access, ReaderCell};
use crate::node::inspect::bump;
use crate::node::shared::Shared;
use crate::wire::{Body, DataRef, EnvelopeRef, decode_body, decode_envelope_ref};
use std::sync::atomic::Ordering;

use crate::node::inline_scope::Quiet;

/// Times the reader yields, each followed by another try, before it waits
/// for room for a request (a tell or an ask) whose activation's mailbox is
/// full (see [`ReaderCell::deliver_after_yields`]).
const FULL_MAILBOX_YIELDS: usize = 4;
/// Waits for room in a row that bring none the request can take (another
/// sender took it first) before the request is refused.
const FULL_MAILBOX_WAITS: usize = 4;

impl ReaderCell {
    /// If `frame` (just handled) holds a request (a tell or an ask) its
    /// activation's mailbox had no room for, yields and tries again, up to
    /// [`FULL_MAILBOX_YIELDS`] times in a row without progress; then waits
    /// for room, as the reader's patience allows (`patience.rs`), and tries
    /// again; refuses the rest (`mailbox_full`) once no room comes in time.
    /// A reader that outruns the activation it feeds (its frames arrive in
    /// bursts: up to [`READ_BATCH`](super::READ_BATCH) per pass) thus gives it the worker, and
    /// waits for an activation that is not running right now (queued behind
    /// another task, on a worker the OS has descheduled), instead of
    /// dropping the sender's tells (or sending its asks back to retry after
    /// a pause); an activation that stays full (a handler that does not
    /// return) costs the connection at most the patience's bound. Nothing
    /// else on the connection is handled in between (the cell stays `in_hand`,
    /// so no frame is handled inline either), so one sender's messages keep
    /// their order.
    pub(in crate::node::established) async fn deliver_after_yields<A: Access>(
        cell: &mut A,
        node: &Shared,
        frame: &Bytes,
    ) {
        let Some(mut from) = cell.with(|c| c.reader.waits.take()) else { return };
        // Opened and decoded once already, so it decodes again, once for
        // all the tries (the `else` arms cannot run: decoding the same
        // bytes is deterministic).
        let Ok(Body::Sealed { payload, .. }) = decode_body(frame) else { return };
        let Ok(EnvelopeRef::Data(msg)) = decode_envelope_ref(payload) else { return };
        // Tries in a row without progress: the tells of a `Tells` that the
        // activation takes meanwhile start the count again, so each tell
        // gets as many tries as a tell of its own would.
        let mut attempt = 0;
        loop {
            let may_wait = if attempt < FULL_MAILBOX_YIELDS {
                tokio::task::yield_now().await;
                true
            } else {
                attempt < FULL_MAILBOX_YIELDS + FULL_MAILBOX_WAITS && Self::wait_for_room(cell, node, &msg).await
            };
            attempt += 1;
            let next = cell.with(|c| {
                let _quiet = Quiet::enter();
                c.reader.on_request(&msg, from, may_wait)
            });
            match next {
                Some(next) => {
                    if next > from {
                        attempt = 0;
                    }
                    from = next;
                }
                None => return,
            }
        }
    }

    /// Waits until the activation `msg` is for has room in its mailbox, at
    /// most as long as the reader's patience allows; whether room came.
    async fn wait_for_room<A: Access>(cell: &mut A, node: &Shared, msg: &DataRef<'_>) -> bool {
        let (registry, shard, key) = match *msg {
            DataRef::Tell { registry, shard, key, .. }
            | DataRef::Ask { registry, shard, key, .. }
            | DataRef::Tells { registry, shard, key, .. } => (registry, shard, key),
            _ => return false,
        };
        let Some(room) = node.hosts.get(registry).and_then(|h| h.room(shard, key)) else { return false };
        let started = tokio::time::Instant::now();
        let allowed = cell.with(|c| c.reader.patience.allowance(started));
        if allowed.is_zero() {
            return false;
        }
        let came = tokio::time::timeout(allowed, room).await.is_ok();
        let waited = started.elapsed();
        cell.with(|c| c.reader.patience.spend(waited));
        bump(&node.counters.mailbox_waits);
        let micros = u64::try_from(waited.as_micros()).unwrap_or(u64::MAX);
        node.counters.mailbox_wait_micros.fetch_add(micros, Ordering::Relaxed);
        came
    }
}
