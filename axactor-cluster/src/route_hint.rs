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
//! A plain tell's fast path checks the hint's end on the node's fence
//! clock (`fence_clock.rs`: the OS coarse clock in production, read without
//! the time-stamp counter; Tokio's in the simulation), converted once when
//! the hint is stored and rounded down, so it never uses a hint longer than
//! a request reading the precise clock would.
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
    /// When the owner-cache entry it copies stops being used.
    until: Instant,
    /// `until` on the node's fence clock ([`Origin::limit`]: rounded down,
    /// so the hint ends there no later than at `until`).
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
    /// The route, if it was taken at `versions` and is still used at `now`.
    #[inline]
    pub(crate) fn get(&self, versions: Versions, now: Instant) -> Option<(L, SessionId, Epoch)> {
        let hint = self.0.try_lock()?;
        let h = hint.as_ref()?;
        (h.versions == versions && now < h.until).then(|| (h.link.clone(), h.holder.clone(), h.epoch))
    }

    /// `f` on the route's connection and epoch, borrowed, if the route was
    /// taken at `versions` and is still used now as read on `clock` (the
    /// fence clock the hint was [`put`](Self::put) with): the fast path of
    /// a plain tell, which reads no precise clock and clones nothing.
    #[inline]
    pub(crate) fn with_route<R>(
        &self,
        versions: Versions,
        clock: &Origin,
        f: impl FnOnce(&L, Epoch) -> R,
    ) -> Option<R> {
        let hint = self.0.try_lock()?;
        let h = hint.as_ref().filter(|h| h.versions == versions)?;
        (clock.now() < h.limit).then(|| f(&h.link, h.epoch))
    }

    /// Remembers a route found at `versions` (read before the lookup),
    /// used until `until` (on `clock` too, for [`with_route`](Self::with_route)).
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
            *hint = Some(Hint { versions, until, limit, link: link.clone(), holder: holder.clone(), epoch });
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

    #[tokio::test(start_paused = true)]
    async fn a_hint_is_used_only_at_its_versions_and_before_its_end() {
        let (link, holder) = route();
        let hint = RouteHint::<u64>::default();
        let clock = Origin::new(FenceClock::Tokio);
        let t0 = Instant::now();
        assert!(hint.get((0, 0), t0).is_none(), "empty");
        hint.put((4, 7), t0 + Duration::from_secs(1), &clock, &link, &holder, Epoch(9));
        let (got, who, epoch) = hint.get((4, 7), t0).expect("current");
        assert_eq!((got, who, epoch), (3, holder.clone(), Epoch(9)));
        assert!(hint.get((5, 7), t0).is_none(), "the owner cache changed");
        assert!(hint.get((4, 8), t0).is_none(), "the peer table changed");
        assert!(hint.get((4, 7), t0 + Duration::from_secs(1)).is_none(), "the copied entry is no longer used");
        assert!(hint.clone().get((4, 7), t0).is_none(), "a clone starts empty");
    }

    /// The tell's fast path sees the same route, at the same versions,
    /// until the same end, read on the fence clock (a paused one here).
    #[tokio::test(start_paused = true)]
    async fn the_fast_path_uses_a_hint_at_its_versions_and_before_its_end_on_the_fence_clock() {
        let (link, holder) = route();
        let hint = RouteHint::<u64>::default();
        let clock = Origin::new(FenceClock::Tokio);
        let route_of = |versions| hint.with_route(versions, &clock, |link, epoch| (*link, epoch));
        assert_eq!(route_of((4, 7)), None, "empty");
        hint.put((4, 7), Instant::now() + Duration::from_secs(1), &clock, &link, &holder, Epoch(9));
        assert_eq!(route_of((4, 7)), Some((3, Epoch(9))));
        assert_eq!(route_of((5, 7)), None, "the owner cache changed");
        assert_eq!(route_of((4, 8)), None, "the peer table changed");
        tokio::time::advance(Duration::from_millis(999)).await;
        assert_eq!(route_of((4, 7)), Some((3, Epoch(9))), "still used just before its end");
        tokio::time::advance(Duration::from_millis(1)).await;
        assert_eq!(route_of((4, 7)), None, "the copied entry is no longer used");
    }

    #[test]
    fn a_busy_hint_is_a_miss_and_is_not_overwritten() {
        let (link, holder) = route();
        let hint = RouteHint::<u64>::default();
        let clock = Origin::new(FenceClock::Tokio);
        let t0 = Instant::now();
        hint.put((1, 1), t0 + Duration::from_secs(1), &clock, &link, &holder, Epoch(1));
        let held = hint.0.lock();
        assert!(hint.get((1, 1), t0).is_none());
        hint.put((2, 2), t0 + Duration::from_secs(1), &clock, &link, &holder, Epoch(2));
        drop(held);
        assert_eq!(hint.get((1, 1), t0).map(|(_, _, e)| e), Some(Epoch(1)));
    }
}
