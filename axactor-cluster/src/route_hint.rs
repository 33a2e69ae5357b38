//! [`RouteHint`]: a routing handle's own copy of where its key's shard was
//! last routed (owner session, epoch, connection), so a request from the
//! same handle skips the node-wide owner cache and peer table, and their
//! locks, while neither has changed.
//!
//! A hint is a copy, never a source: it is filled only from an owner-cache
//! hit, tagged with the versions of the owner cache and the peer table read
//! *before* that lookup, and used only while both versions are unchanged
//! and the owner-cache entry it copies would still be used (one
//! `renew_interval` after it was cached). Any change to either table (a
//! lease notice, a forgotten owner, a connection up, replaced or down)
//! makes every hint of the node miss once. A hint that is current but
//! wrong is exactly as wrong as the owner cache was: the owner fences on
//! the epoch the frame carries, and the retry that follows a rejection
//! reads the owner afresh and never uses a hint. Routing decides nothing
//! about safety (see `docs/guarantees.md`).
//!
//! A hint's end is checked on the node's fence clock (`fence_clock.rs`:
//! the OS coarse clock in production, read without the time-stamp
//! counter; Tokio's in the simulation), converted once when the hint is
//! stored and rounded down, so a hint never outlives the entry it copies:
//! a plain tell's fast path reads no precise clock.
//!
//! Each clone of a handle starts with an empty hint, and a hint is taken
//! with `try_lock`: tasks sharing one handle by reference never wait on it
//! (a busy hint counts as a miss).

use parking_lot::Mutex;
use tokio::time::Instant;

use crate::fence_clock::Origin;
use crate::id::SessionId;
use crate::lease::Epoch;
use crate::node::queues::PeerLink;

/// The versions a hint was taken at: the owner cache's and the peer table's.
pub(crate) type Versions = (u64, u64);

/// See the module docs. `L` is the connection handle (a [`PeerLink`]; a
/// plain value in the unit tests).
#[derive(Debug)]
pub(crate) struct RouteHint<L = PeerLink>(Mutex<Option<Hint<L>>>);

#[derive(Debug)]
struct Hint<L> {
    versions: Versions,
    /// When the owner-cache entry it copies stops being used, on the
    /// node's fence clock ([`Origin::limit`]: rounded down, so the hint
    /// ends no later than the entry).
    limit: u64,
    link: L,
    holder: SessionId,
    epoch: Epoch,
}

impl<L> Default for RouteHint<L> {
    fn default() -> Self {
        RouteHint(Mutex::new(None))
    }
}

impl<L> Clone for RouteHint<L> {
    /// An empty hint: a clone routes its first request through the node.
    fn clone(&self) -> Self {
        RouteHint::default()
    }
}

impl<L: Clone> RouteHint<L> {
    /// The route, if it was taken at `versions` and is still used now as
    /// read on `clock` (the fence clock the hint was [`put`](Self::put)
    /// with).
    #[inline]
    pub(crate) fn get(&self, versions: Versions, clock: &Origin) -> Option<(L, SessionId, Epoch)> {
        self.with_route(versions, clock, |link, holder, epoch| (link.clone(), holder.clone(), epoch))
    }

    /// `f` on the route, borrowed, under the same condition as
    /// [`get`](Self::get): the fast path of a plain tell, which clones
    /// nothing.
    #[inline]
    pub(crate) fn with_route<R>(
        &self,
        versions: Versions,
        clock: &Origin,
        f: impl FnOnce(&L, &SessionId, Epoch) -> R,
    ) -> Option<R> {
        let hint = self.0.try_lock()?;
        let h = hint.as_ref().filter(|h| h.versions == versions)?;
        (clock.now() < h.limit).then(|| f(&h.link, &h.holder, h.epoch))
    }

    /// Remembers a route found at `versions` (read before the lookup),
    /// used until `until` (read on `clock` from then on).
    pub(crate) fn put(
        &self,
        versions: Versions,
        until: Instant,
        clock: &Origin,
        link: &L,
        holder: &SessionId,
        epoch: Epoch,
    ) {
        let limit = clock.limit(until);
        if let Some(mut hint) = self.0.try_lock() {
            *hint = Some(Hint { versions, limit, link: link.clone(), holder: holder.clone(), epoch });
        }
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;
    use crate::fence_clock::FenceClock;
    use crate::id::NodeId;

    /// A connection handle that is just its id.
    fn route() -> (u64, SessionId) {
        (3, SessionId { node: NodeId::new("b"), boot: 1, counter: 0 })
    }

    /// A hint is used only at its versions and before its end, read on the
    /// fence clock (a paused one here); the fast path sees the same route.
    #[tokio::test(start_paused = true)]
    async fn a_hint_is_used_only_at_its_versions_and_before_its_end() {
        let (link, holder) = route();
        let hint = RouteHint::<u64>::default();
        let clock = Origin::new(FenceClock::Tokio);
        assert!(hint.get((0, 0), &clock).is_none(), "empty");
        hint.put((4, 7), Instant::now() + Duration::from_secs(1), &clock, &link, &holder, Epoch(9));
        let (got, who, epoch) = hint.get((4, 7), &clock).expect("current");
        assert_eq!((got, who, epoch), (3, holder.clone(), Epoch(9)));
        let borrowed = hint.with_route((4, 7), &clock, |link, who, epoch| (*link, who.clone(), epoch));
        assert_eq!(borrowed, Some((3, holder.clone(), Epoch(9))), "the fast path sees the same route");
        assert!(hint.get((5, 7), &clock).is_none(), "the owner cache changed");
        assert!(hint.get((4, 8), &clock).is_none(), "the peer table changed");
        assert!(hint.clone().get((4, 7), &clock).is_none(), "a clone starts empty");
        tokio::time::advance(Duration::from_millis(999)).await;
        assert!(hint.get((4, 7), &clock).is_some(), "still used just before its end");
        tokio::time::advance(Duration::from_millis(1)).await;
        assert!(hint.get((4, 7), &clock).is_none(), "the copied entry is no longer used");
        assert!(hint.with_route((4, 7), &clock, |_, _, _| ()).is_none(), "nor by the fast path");
    }

    #[test]
    fn a_busy_hint_is_a_miss_and_is_not_overwritten() {
        let (link, holder) = route();
        let hint = RouteHint::<u64>::default();
        let clock = Origin::new(FenceClock::Tokio);
        let end = Instant::now() + Duration::from_secs(60);
        hint.put((1, 1), end, &clock, &link, &holder, Epoch(1));
        let held = hint.0.lock();
        assert!(hint.get((1, 1), &clock).is_none());
        hint.put((2, 2), end, &clock, &link, &holder, Epoch(2));
        drop(held);
        assert_eq!(hint.get((1, 1), &clock).map(|(_, _, e)| e), Some(Epoch(1)));
    }
}
