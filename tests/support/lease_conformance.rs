//! The behaviour every [`LeaseStore`] must show, run against each store
//! (`tests/lease_store_memory.rs`, `tests/lease_store_redis.rs`,
//! `tests/lease_store_etcd.rs`).
//!
//! The checks use real, short ttls and `tokio::time::sleep`, so they run on
//! a real clock (Redis) and on a paused one (the in-memory store). A check
//! that expects a lease to stay held uses [`LONG`]; only checks about expiry
//! use [`SHORT`], so a slow machine cannot make a "still held" assertion fail.
//! Every name and member is under the caller's namespace, so runs against a
//! shared server do not collide; `members()` is filtered to the namespace.

use std::sync::Arc;
use std::time::Duration;

use axactor_cluster::{Epoch, GroupGrant, Lease, LeaseGroup, LeaseStore, LeaseStoreError, NodeId, SessionId};

/// A ttl that does not run out during a check.
pub const LONG: Duration = Duration::from_secs(30);

/// A ttl that a check waits out.
pub const SHORT: Duration = Duration::from_millis(250);

/// How long a check sleeps to be sure a [`SHORT`] ttl has run out.
pub const PAST_SHORT: Duration = Duration::from_millis(450);

/// The ttl the expiry checks use and how long they wait it out.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Timing {
    /// The ttl of leases and members a check lets expire.
    pub short: Duration,
    /// How long the check sleeps to be sure `short` has run out in the store.
    pub past_short: Duration,
}

impl Timing {
    /// [`SHORT`] and [`PAST_SHORT`]: for stores that expire at the ttl.
    pub const EXACT: Timing = Timing { short: SHORT, past_short: PAST_SHORT };

    /// For stores whose expiry is coarse, such as etcd: ttls count whole
    /// seconds (at least 1 s, 2 s at etcd's default timing) and expiry is
    /// checked every 500 ms, so a [`SHORT`] ttl lasts up to about 2.5 s.
    pub const COARSE: Timing = Timing { short: SHORT, past_short: Duration::from_millis(3500) };
}

/// Runs every check against `store`, with lease names and member sessions
/// under the namespace `ns` (unique per run).
///
/// # Panics
/// On the first check that fails, naming it.
pub async fn run_all(store: Arc<dyn LeaseStore>, ns: &str) {
    run_all_with(store, ns, Timing::EXACT).await;
}

/// [`run_all`] with the expiry checks' `timing`.
///
/// # Panics
/// On the first check that fails, naming it.
pub async fn run_all_with(store: Arc<dyn LeaseStore>, ns: &str, t: Timing) {
    let s = &*store;
    invalid_arguments_are_rejected(s, ns).await;
    the_holder_reacquires_at_its_epoch(s, ns).await;
    only_the_holder_at_its_epoch_renews_or_releases(s, ns).await;
    epochs_grow_across_release(s, ns).await;
    epochs_grow_across_expiry_and_the_old_holder_is_fenced(s, ns, t).await;
    renewal_and_reacquisition_extend_the_lease(s, ns, t).await;
    members_appear_expire_and_are_removed(s, ns, t).await;
    a_group_is_held_under_one_tag_at_a_time(s, ns, t).await;
}

/// A session of node `{ns}-{node}`.
fn session(ns: &str, node: &str, boot: u64, counter: u64) -> SessionId {
    SessionId { node: NodeId::new(format!("{ns}-{node}")), boot, counter }
}

fn name(ns: &str, check: &str) -> String {
    format!("{ns}/{check}")
}

async fn acquired(store: &dyn LeaseStore, name: &str, holder: &SessionId, ttl: Duration, what: &str) -> Lease {
    match store.acquire(name, holder, ttl).await {
        Ok(Some(lease)) => {
            assert_eq!((lease.name.as_str(), &lease.holder), (name, holder), "{what}: lease names the acquirer");
            lease
        }
        other => panic!("{what}: expected a lease on {name} for {holder}, got {other:?}"),
    }
}

fn invalid(r: Result<impl std::fmt::Debug, LeaseStoreError>, what: &str) {
    assert!(matches!(r, Err(LeaseStoreError::Invalid(_))), "invalid arguments: {what} gave {r:?}");
}

async fn invalid_arguments_are_rejected(store: &dyn LeaseStore, ns: &str) {
    let (n, a) = (name(ns, "invalid"), session(ns, "a", 1, 0));
    invalid(store.acquire("", &a, LONG).await, "acquire with an empty name");
    invalid(store.acquire(&n, &a, Duration::ZERO).await, "acquire with a zero ttl");
    invalid(store.renew("", &a, Epoch(1), LONG).await, "renew with an empty name");
    invalid(store.renew(&n, &a, Epoch(1), Duration::ZERO).await, "renew with a zero ttl");
    invalid(store.release("", &a, Epoch(1)).await, "release with an empty name");
    invalid(store.get("").await, "get with an empty name");
    invalid(store.heartbeat_member(&a, Duration::ZERO).await, "heartbeat with a zero ttl");
    // A ttl that would overflow `now + ttl` is an error, not a panic.
    invalid(store.acquire(&n, &a, Duration::MAX).await, "acquire with Duration::MAX");
    invalid(store.renew(&n, &a, Epoch(1), Duration::MAX).await, "renew with Duration::MAX");
    invalid(store.heartbeat_member(&a, Duration::MAX).await, "heartbeat with Duration::MAX");
    assert_eq!(store.get(&n).await, Ok(None), "invalid arguments: a rejected acquire grants nothing");
    let members = store.members().await.expect("invalid arguments: members");
    assert!(!members.contains(&a), "invalid arguments: a rejected heartbeat adds no member");
}

async fn the_holder_reacquires_at_its_epoch(store: &dyn LeaseStore, ns: &str) {
    const WHAT: &str = "re-acquire by the holder";
    let n = name(ns, "reacquire");
    let (a, b, a_restarted) = (session(ns, "a", 1, 0), session(ns, "b", 2, 0), session(ns, "a", 3, 0));
    assert_eq!(store.get(&n).await, Ok(None), "{WHAT}: a fresh name is free");
    let first = acquired(store, &n, &a, LONG, WHAT).await;
    let again = acquired(store, &n, &a, LONG, WHAT).await;
    assert_eq!(again.epoch, first.epoch, "{WHAT}: same epoch while held");
    assert_eq!(store.acquire(&n, &b, LONG).await, Ok(None), "{WHAT}: another session cannot acquire a held lease");
    assert_eq!(
        store.acquire(&n, &a_restarted, LONG).await,
        Ok(None),
        "{WHAT}: a restarted node (same name, new session) is another holder"
    );
    assert_eq!(store.get(&n).await, Ok(Some(first)), "{WHAT}: get returns the holder");
}

async fn only_the_holder_at_its_epoch_renews_or_releases(store: &dyn LeaseStore, ns: &str) {
    const WHAT: &str = "only the holder renews or releases";
    let n = name(ns, "holder-only");
    let (a, b, a_restarted) = (session(ns, "a", 1, 0), session(ns, "b", 2, 0), session(ns, "a", 3, 0));
    let l = acquired(store, &n, &a, LONG, WHAT).await;
    let (older, newer) = (Epoch(l.epoch.0.saturating_sub(1)), Epoch(l.epoch.0 + 1));
    for (who, epoch, case) in [
        (&b, l.epoch, "another session"),
        (&a_restarted, l.epoch, "a restarted node"),
        (&a, older, "an older epoch"),
        (&a, newer, "a newer epoch"),
    ] {
        assert_eq!(store.renew(&n, who, epoch, LONG).await, Ok(false), "{WHAT}: renew by {case}");
        assert_eq!(store.release(&n, who, epoch).await, Ok(false), "{WHAT}: release by {case}");
    }
    assert_eq!(store.get(&n).await, Ok(Some(l.clone())), "{WHAT}: refused calls change nothing");
    assert_eq!(store.renew(&n, &a, l.epoch, LONG).await, Ok(true), "{WHAT}: the holder renews");
    assert_eq!(store.release(&n, &a, l.epoch).await, Ok(true), "{WHAT}: the holder releases");
    assert_eq!(store.get(&n).await, Ok(None), "{WHAT}: released means free");
    assert_eq!(store.release(&n, &a, l.epoch).await, Ok(false), "{WHAT}: a second release does nothing");
    assert_eq!(store.renew(&n, &a, l.epoch, LONG).await, Ok(false), "{WHAT}: a released lease cannot be renewed");
}

async fn epochs_grow_across_release(store: &dyn LeaseStore, ns: &str) {
    const WHAT: &str = "epochs grow across release";
    let n = name(ns, "release-epochs");
    let (a, b) = (session(ns, "a", 1, 0), session(ns, "b", 2, 0));
    let mut last = None::<Epoch>;
    for holder in [&a, &a, &b, &a] {
        let l = acquired(store, &n, holder, LONG, WHAT).await;
        if let Some(prev) = last {
            assert!(l.epoch > prev, "{WHAT}: {} after {prev}", l.epoch);
        }
        assert_eq!(store.release(&n, holder, l.epoch).await, Ok(true), "{WHAT}: release");
        last = Some(l.epoch);
    }
}

async fn epochs_grow_across_expiry_and_the_old_holder_is_fenced(store: &dyn LeaseStore, ns: &str, t: Timing) {
    const WHAT: &str = "expiry";
    let (n, own) = (name(ns, "expiry"), name(ns, "expiry-own"));
    let (a, b) = (session(ns, "a", 1, 0), session(ns, "b", 2, 0));
    let la = acquired(store, &n, &a, t.short, WHAT).await;
    let own_first = acquired(store, &own, &a, t.short, WHAT).await;
    tokio::time::sleep(t.past_short).await;
    assert_eq!(store.get(&n).await, Ok(None), "{WHAT}: an expired lease is not returned");
    assert_eq!(store.renew(&n, &a, la.epoch, LONG).await, Ok(false), "{WHAT}: an expired lease cannot be renewed");
    assert_eq!(store.release(&n, &a, la.epoch).await, Ok(false), "{WHAT}: an expired lease is not released");
    let lb = acquired(store, &n, &b, LONG, WHAT).await;
    assert!(lb.epoch > la.epoch, "{WHAT}: new holder's {} must exceed {}", lb.epoch, la.epoch);
    assert_eq!(store.renew(&n, &a, la.epoch, LONG).await, Ok(false), "{WHAT}: the old holder's renew fails");
    assert_eq!(store.acquire(&n, &a, LONG).await, Ok(None), "{WHAT}: the old holder cannot take it back");
    assert_eq!(store.get(&n).await, Ok(Some(lb)), "{WHAT}: get returns the new holder");
    let own_again = acquired(store, &own, &a, LONG, WHAT).await;
    assert!(own_again.epoch > own_first.epoch, "{WHAT}: re-acquiring one's own expired lease is a new epoch");
}

async fn renewal_and_reacquisition_extend_the_lease(store: &dyn LeaseStore, ns: &str, t: Timing) {
    const WHAT: &str = "extension";
    let (renewed, reacquired) = (name(ns, "renewed"), name(ns, "reacquired"));
    let (a, b) = (session(ns, "a", 1, 0), session(ns, "b", 2, 0));
    let l = acquired(store, &renewed, &a, t.short, WHAT).await;
    assert_eq!(store.renew(&renewed, &a, l.epoch, LONG).await, Ok(true), "{WHAT}: renew");
    let m = acquired(store, &reacquired, &a, t.short, WHAT).await;
    assert_eq!(acquired(store, &reacquired, &a, LONG, WHAT).await.epoch, m.epoch, "{WHAT}: re-acquire");
    tokio::time::sleep(t.past_short).await;
    assert_eq!(store.get(&renewed).await, Ok(Some(l)), "{WHAT}: a renewed lease outlives its first ttl");
    assert_eq!(store.get(&reacquired).await, Ok(Some(m)), "{WHAT}: a re-acquired lease outlives its first ttl");
    assert_eq!(store.acquire(&renewed, &b, LONG).await, Ok(None), "{WHAT}: still held");
}

async fn members_appear_expire_and_are_removed(store: &dyn LeaseStore, ns: &str, t: Timing) {
    const WHAT: &str = "members";
    // Counter 9 sorts before 10 as a session but after it as a string.
    let (x, y) = (session(ns, "m", 1, 10), session(ns, "m", 1, 9));
    let (z, w) = (session(ns, "n", 0xff, 0), session(ns, "m", 0xa, 0));
    let prefix = format!("{ns}-");
    let mine = async || {
        let all = store.members().await.expect("members");
        assert!(all.windows(2).all(|p| p[0] < p[1]), "{WHAT}: sorted without duplicates: {all:?}");
        all.into_iter().filter(|s| s.node.as_str().starts_with(&prefix)).collect::<Vec<_>>()
    };
    assert_eq!(mine().await, vec![], "{WHAT}: none at first");
    for s in [&z, &x, &w, &y] {
        store.heartbeat_member(s, LONG).await.expect("heartbeat");
    }
    assert_eq!(mine().await, vec![y.clone(), x.clone(), w.clone(), z.clone()], "{WHAT}: all appear, sorted");
    store.heartbeat_member(&x, t.short).await.expect("heartbeat");
    store.heartbeat_member(&z, t.short).await.expect("heartbeat");
    store.heartbeat_member(&y, LONG).await.expect("heartbeat");
    tokio::time::sleep(t.past_short).await;
    assert_eq!(mine().await, vec![y.clone(), w.clone()], "{WHAT}: members whose ttl ran out are gone");
    store.remove_member(&w).await.expect("remove");
    assert_eq!(mine().await, vec![y.clone()], "{WHAT}: a removed member is gone");
    store.remove_member(&w).await.expect("removing twice is fine");
    store.remove_member(&x).await.expect("removing an expired member is fine");
    store.heartbeat_member(&x, LONG).await.expect("heartbeat");
    assert_eq!(mine().await, vec![y.clone(), x.clone()], "{WHAT}: an expired member can come back");
    store.remove_member(&x).await.expect("remove");
    store.remove_member(&y).await.expect("remove");
    assert_eq!(mine().await, vec![], "{WHAT}: all removed");
}

/// Lease groups (stores that enforce them): while a lease of a group is
/// live under one tag (a registry's shard count), no lease of the group is
/// granted under another, to anyone; the same tag is granted freely; once
/// the other tag's leases have expired, the new tag is granted.
async fn a_group_is_held_under_one_tag_at_a_time(store: &dyn LeaseStore, ns: &str, t: Timing) {
    const WHAT: &str = "lease groups";
    if !store.enforces_groups() {
        return;
    }
    let group_name = name(ns, "registry");
    let (g16, g32) = (LeaseGroup { name: &group_name, tag: 16 }, LeaseGroup { name: &group_name, tag: 32 });
    let (a, b) = (session(ns, "a", 1, 0), session(ns, "b", 2, 0));
    let (n16a, n16b, n32) = (name(ns, "registry/16/1"), name(ns, "registry/16/2"), name(ns, "registry/32/5"));
    let first = match store.acquire_in_group(&n16a, g16, &a, t.short).await {
        Ok(GroupGrant::Granted(l)) => l,
        other => panic!("{WHAT}: a free group grants: {other:?}"),
    };
    assert!(
        matches!(store.acquire_in_group(&n16b, g16, &b, t.short).await, Ok(GroupGrant::Granted(_))),
        "{WHAT}: same tag, other lease"
    );
    assert_eq!(
        store.acquire_in_group(&n16a, g16, &b, LONG).await,
        Ok(GroupGrant::Held),
        "{WHAT}: same lease, other holder"
    );
    for who in [&a, &b] {
        assert_eq!(
            store.acquire_in_group(&n32, g32, who, LONG).await,
            Ok(GroupGrant::Conflict { tag: 16 }),
            "{WHAT}: another tag while the group is live"
        );
    }
    assert_eq!(store.get(&n32).await, Ok(None), "{WHAT}: a conflict grants nothing");
    assert_eq!(store.renew_in_group(&n16a, g16, &a, first.epoch, t.short).await, Ok(true), "{WHAT}: the holder renews");
    tokio::time::sleep(t.past_short).await;
    match store.acquire_in_group(&n32, g32, &b, LONG).await {
        Ok(GroupGrant::Granted(l)) => assert_eq!(l.holder, b, "{WHAT}: the new tag's lease names its holder"),
        other => panic!("{WHAT}: once the old tag's leases expired, the new tag is granted: {other:?}"),
    }
    assert_eq!(
        store.acquire_in_group(&n16a, g16, &a, LONG).await,
        Ok(GroupGrant::Conflict { tag: 32 }),
        "{WHAT}: and now the old tag conflicts"
    );
}
