//! [`MemoryLeaseStore`]: an in-process lease store on Tokio time, so the
//! paused clock (and the simulation) drives expiry.
//!
//! Epochs come from one counter per lease name that survives release and
//! expiry, so they only grow. All state sits behind one mutex; the futures
//! complete without awaiting.

use std::collections::BTreeMap;
use std::time::Duration;

use parking_lot::Mutex;
use tokio::time::Instant;

use super::{Epoch, GroupGrant, Lease, LeaseGroup, LeaseStore, LeaseStoreError};
use crate::future::BoxFuture;
use crate::id::SessionId;

#[derive(Debug)]
struct Held {
    holder: SessionId,
    epoch: Epoch,
    expires: Instant,
    /// The group (name, tag) it was acquired in, if any.
    group: Option<(String, u64)>,
}

#[derive(Debug, Default)]
struct State {
    held: BTreeMap<String, Held>,
    /// Last epoch granted per name; never removed.
    last_epoch: BTreeMap<String, u64>,
    members: BTreeMap<SessionId, Instant>,
}

/// A lease store shared by the nodes of one process (tests, the
/// simulation, single-process deployments). Share it as `Arc`.
#[derive(Debug, Default)]
pub struct MemoryLeaseStore {
    state: Mutex<State>,
}

impl MemoryLeaseStore {
    /// An empty store.
    pub fn new() -> MemoryLeaseStore {
        MemoryLeaseStore::default()
    }

    fn check(name: &str, ttl: Option<Duration>) -> Result<(), LeaseStoreError> {
        if name.is_empty() {
            return Err(LeaseStoreError::Invalid("empty lease name"));
        }
        if ttl.is_some_and(|t| t.is_zero()) {
            return Err(LeaseStoreError::Invalid("zero ttl"));
        }
        // Expiries are `now + ttl`: a larger ttl could overflow the instant.
        if ttl.is_some_and(|t| t > crate::config::MAX_DURATION) {
            return Err(LeaseStoreError::Invalid("ttl too large (at most one day)"));
        }
        Ok(())
    }

    fn acquire_now(&self, name: &str, holder: &SessionId, ttl: Duration) -> Result<Option<Lease>, LeaseStoreError> {
        Self::check(name, Some(ttl))?;
        Ok(Self::acquire_locked(&mut self.state.lock(), name, holder, ttl, Instant::now()))
    }

    fn acquire_locked(st: &mut State, name: &str, holder: &SessionId, ttl: Duration, now: Instant) -> Option<Lease> {
        if let Some(h) = st.held.get_mut(name)
            && h.expires > now
        {
            if &h.holder != holder {
                return None;
            }
            h.expires = now + ttl;
            return Some(Lease { name: name.to_owned(), holder: holder.clone(), epoch: h.epoch });
        }
        let last = st.last_epoch.entry(name.to_owned()).or_insert(0);
        *last += 1;
        let epoch = Epoch(*last);
        st.held.insert(name.to_owned(), Held { holder: holder.clone(), epoch, expires: now + ttl, group: None });
        Some(Lease { name: name.to_owned(), holder: holder.clone(), epoch })
    }

    /// A group's live lease under another tag than `group.tag`, if any.
    fn conflict(st: &State, group: LeaseGroup<'_>, now: Instant) -> Option<u64> {
        st.held.values().find_map(|h| match &h.group {
            Some((g, tag)) if g == group.name && *tag != group.tag && h.expires > now => Some(*tag),
            _ => None,
        })
    }

    fn acquire_grouped_now(
        &self,
        name: &str,
        group: LeaseGroup<'_>,
        holder: &SessionId,
        ttl: Duration,
    ) -> Result<GroupGrant, LeaseStoreError> {
        Self::check(name, Some(ttl))?;
        let now = Instant::now();
        let mut st = self.state.lock();
        if let Some(tag) = Self::conflict(&st, group, now) {
            return Ok(GroupGrant::Conflict { tag });
        }
        let Some(lease) = Self::acquire_locked(&mut st, name, holder, ttl, now) else { return Ok(GroupGrant::Held) };
        if let Some(h) = st.held.get_mut(name) {
            h.group = Some((group.name.to_owned(), group.tag));
        }
        Ok(GroupGrant::Granted(lease))
    }

    fn renew_now(&self, name: &str, holder: &SessionId, epoch: Epoch, ttl: Duration) -> Result<bool, LeaseStoreError> {
        Self::check(name, Some(ttl))?;
        let now = Instant::now();
        let mut st = self.state.lock();
        match st.held.get_mut(name) {
            Some(h) if &h.holder == holder && h.epoch == epoch && h.expires > now => {
                h.expires = now + ttl;
                Ok(true)
            }
            _ => Ok(false),
        }
    }

    fn release_now(&self, name: &str, holder: &SessionId, epoch: Epoch) -> Result<bool, LeaseStoreError> {
        Self::check(name, None)?;
        let now = Instant::now();
        let mut st = self.state.lock();
        match st.held.get(name) {
            // An expired lease is no longer held, so there is nothing to release.
            Some(h) if &h.holder == holder && h.epoch == epoch && h.expires > now => {
                st.held.remove(name);
                Ok(true)
            }
            _ => Ok(false),
        }
    }

    fn get_now(&self, name: &str) -> Result<Option<Lease>, LeaseStoreError> {
        Self::check(name, None)?;
        let now = Instant::now();
        let st = self.state.lock();
        Ok(st.held.get(name).filter(|h| h.expires > now).map(|h| Lease {
            name: name.to_owned(),
            holder: h.holder.clone(),
            epoch: h.epoch,
        }))
    }
}

impl LeaseStore for MemoryLeaseStore {
    fn enforces_groups(&self) -> bool {
        true
    }

    fn acquire_in_group<'a>(
        &'a self,
        name: &'a str,
        group: LeaseGroup<'a>,
        holder: &'a SessionId,
        ttl: Duration,
    ) -> BoxFuture<'a, Result<GroupGrant, LeaseStoreError>> {
        let r = self.acquire_grouped_now(name, group, holder, ttl);
        Box::pin(async move { r })
    }

    fn acquire<'a>(
        &'a self,
        name: &'a str,
        holder: &'a SessionId,
        ttl: Duration,
    ) -> BoxFuture<'a, Result<Option<Lease>, LeaseStoreError>> {
        let r = self.acquire_now(name, holder, ttl);
        Box::pin(async move { r })
    }

    fn renew<'a>(
        &'a self,
        name: &'a str,
        holder: &'a SessionId,
        epoch: Epoch,
        ttl: Duration,
    ) -> BoxFuture<'a, Result<bool, LeaseStoreError>> {
        let r = self.renew_now(name, holder, epoch, ttl);
        Box::pin(async move { r })
    }

    fn release<'a>(
        &'a self,
        name: &'a str,
        holder: &'a SessionId,
        epoch: Epoch,
    ) -> BoxFuture<'a, Result<bool, LeaseStoreError>> {
        let r = self.release_now(name, holder, epoch);
        Box::pin(async move { r })
    }

    fn get<'a>(&'a self, name: &'a str) -> BoxFuture<'a, Result<Option<Lease>, LeaseStoreError>> {
        let r = self.get_now(name);
        Box::pin(async move { r })
    }

    fn heartbeat_member<'a>(
        &'a self,
        session: &'a SessionId,
        ttl: Duration,
    ) -> BoxFuture<'a, Result<(), LeaseStoreError>> {
        let r = if let Err(e) = Self::check("member", Some(ttl)) {
            Err(e)
        } else {
            self.state.lock().members.insert(session.clone(), Instant::now() + ttl);
            Ok(())
        };
        Box::pin(async move { r })
    }

    fn remove_member<'a>(&'a self, session: &'a SessionId) -> BoxFuture<'a, Result<(), LeaseStoreError>> {
        self.state.lock().members.remove(session);
        Box::pin(async move { Ok(()) })
    }

    fn members(&self) -> BoxFuture<'_, Result<Vec<SessionId>, LeaseStoreError>> {
        let now = Instant::now();
        let mut st = self.state.lock();
        st.members.retain(|_, expires| *expires > now);
        let v: Vec<SessionId> = st.members.keys().cloned().collect();
        Box::pin(async move { Ok(v) })
    }
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    use super::*;
    use crate::id::NodeId;

    fn session(name: &str, boot: u64) -> SessionId {
        SessionId { node: NodeId::new(name), boot, counter: 0 }
    }

    const TTL: Duration = Duration::from_secs(10);

    #[tokio::test(start_paused = true)]
    async fn only_one_holder_and_epochs_grow_across_release_and_expiry() {
        let store = MemoryLeaseStore::new();
        let (a, b) = (session("a", 1), session("b", 2));
        let la = store.acquire("s/1", &a, TTL).await.expect("store").expect("free");
        assert_eq!(la.epoch, Epoch(1));
        assert_eq!(store.acquire("s/1", &b, TTL).await, Ok(None), "held by a");
        assert_eq!(store.acquire("s/1", &a, TTL).await.expect("store").map(|l| l.epoch), Some(Epoch(1)));
        assert_eq!(store.renew("s/1", &b, Epoch(1), TTL).await, Ok(false), "only the holder renews");
        assert_eq!(store.release("s/1", &b, Epoch(1)).await, Ok(false), "only the holder releases");
        assert_eq!(store.release("s/1", &a, Epoch(1)).await, Ok(true));
        let lb = store.acquire("s/1", &b, TTL).await.expect("store").expect("free after release");
        assert_eq!(lb.epoch, Epoch(2));
        tokio::time::sleep(TTL + Duration::from_millis(1)).await;
        assert_eq!(store.get("s/1").await, Ok(None), "expired");
        assert_eq!(store.renew("s/1", &b, Epoch(2), TTL).await, Ok(false), "an expired lease cannot be renewed");
        let la2 = store.acquire("s/1", &a, TTL).await.expect("store").expect("free after expiry");
        assert_eq!(la2.epoch, Epoch(3));
        assert_eq!(store.renew("s/1", &a, Epoch(2), TTL).await, Ok(false), "stale epoch");
        assert_eq!(store.renew("s/1", &a, Epoch(3), TTL).await, Ok(true));
    }

    #[tokio::test(start_paused = true)]
    async fn a_restarted_node_is_a_different_holder() {
        let store = MemoryLeaseStore::new();
        let (old, new) = (session("a", 1), session("a", 2));
        let l = store.acquire("s/1", &old, TTL).await.expect("store").expect("free");
        assert_eq!(store.acquire("s/1", &new, TTL).await, Ok(None));
        assert_eq!(store.renew("s/1", &new, l.epoch, TTL).await, Ok(false));
    }

    #[tokio::test(start_paused = true)]
    async fn members_expire() {
        let store = MemoryLeaseStore::new();
        let (a, b) = (session("a", 1), session("b", 2));
        store.heartbeat_member(&a, TTL).await.expect("store");
        store.heartbeat_member(&b, Duration::from_secs(1)).await.expect("store");
        assert_eq!(store.members().await, Ok(vec![a.clone(), b.clone()]));
        tokio::time::sleep(Duration::from_secs(2)).await;
        assert_eq!(store.members().await, Ok(vec![a.clone()]));
        store.remove_member(&a).await.expect("store");
        assert_eq!(store.members().await, Ok(vec![]));
    }

    /// One step of a random schedule over three sessions and two names.
    #[derive(Debug, Clone)]
    enum Op {
        Acquire { who: usize, name: usize, ttl_ms: u64 },
        Renew { who: usize, name: usize, ttl_ms: u64 },
        Release { who: usize, name: usize },
        Advance { ms: u64 },
    }

    fn op() -> impl Strategy<Value = Op> {
        prop_oneof![
            (0..3usize, 0..2usize, 1..40u64).prop_map(|(who, name, ttl_ms)| Op::Acquire { who, name, ttl_ms }),
            (0..3usize, 0..2usize, 1..40u64).prop_map(|(who, name, ttl_ms)| Op::Renew { who, name, ttl_ms }),
            (0..3usize, 0..2usize).prop_map(|(who, name)| Op::Release { who, name }),
            (0..50u64).prop_map(|ms| Op::Advance { ms }),
        ]
    }

    /// The reference model: who holds each name until when, the greatest
    /// epoch granted per name, and the epoch each session last got per name
    /// (which it later renews and releases with, possibly stale).
    #[derive(Default)]
    struct Model {
        held: BTreeMap<usize, (usize, Epoch, Instant)>,
        max_epoch: BTreeMap<usize, Epoch>,
        last_got: BTreeMap<(usize, usize), Epoch>,
    }

    impl Model {
        fn holder(&self, name: usize, now: Instant) -> Option<(usize, Epoch)> {
            self.held.get(&name).filter(|h| h.2 > now).map(|h| (h.0, h.1))
        }
    }

    /// Runs `ops` against a store and the model; panics on any divergence.
    async fn run_schedule(ops: &[Op]) {
        let store = MemoryLeaseStore::new();
        let sessions = [session("a", 1), session("b", 2), session("a", 3)];
        let names = ["s/0", "s/1"];
        let mut model = Model::default();
        for op in ops {
            let now = Instant::now();
            match *op {
                Op::Acquire { who, name, ttl_ms } => {
                    let ttl = Duration::from_millis(ttl_ms);
                    let got = store.acquire_now(names[name], &sessions[who], ttl).expect("valid args");
                    match model.holder(name, now) {
                        Some((h, e)) if h == who => {
                            assert_eq!(got.map(|l| l.epoch), Some(e), "{op:?}: the holder re-acquires at its epoch");
                            model.held.insert(name, (who, e, now + ttl));
                        }
                        Some(_) => assert_eq!(got, None, "{op:?}: another session holds it"),
                        None => {
                            let l = got.expect("free or expired: granted");
                            assert_eq!(l.holder, sessions[who]);
                            let prev = model.max_epoch.get(&name).copied().unwrap_or(Epoch(0));
                            assert!(l.epoch > prev, "{op:?}: epoch {} not above {prev}", l.epoch);
                            model.max_epoch.insert(name, l.epoch);
                            model.last_got.insert((who, name), l.epoch);
                            model.held.insert(name, (who, l.epoch, now + ttl));
                        }
                    }
                }
                Op::Renew { who, name, ttl_ms } => {
                    let ttl = Duration::from_millis(ttl_ms);
                    let epoch = model.last_got.get(&(who, name)).copied().unwrap_or(Epoch(0));
                    let ok = store.renew_now(names[name], &sessions[who], epoch, ttl).expect("valid args");
                    let expected = model.holder(name, now) == Some((who, epoch));
                    assert_eq!(ok, expected, "{op:?} at {epoch}");
                    if ok {
                        model.held.insert(name, (who, epoch, now + ttl));
                    }
                }
                Op::Release { who, name } => {
                    let epoch = model.last_got.get(&(who, name)).copied().unwrap_or(Epoch(0));
                    let ok = store.release_now(names[name], &sessions[who], epoch).expect("valid args");
                    assert_eq!(ok, model.holder(name, now) == Some((who, epoch)), "{op:?} at {epoch}");
                    if ok {
                        model.held.remove(&name);
                    }
                }
                Op::Advance { ms } => tokio::time::advance(Duration::from_millis(ms)).await,
            }
            let now = Instant::now();
            for (i, n) in names.iter().enumerate() {
                let seen = store.get_now(n).expect("valid name").map(|l| (l.holder, l.epoch));
                let want = model.holder(i, now).map(|(h, e)| (sessions[h].clone(), e));
                assert_eq!(seen, want, "get({n}) after {op:?}");
            }
        }
    }

    proptest! {
        #[test]
        fn random_schedules_keep_one_holder_and_growing_epochs(ops in proptest::collection::vec(op(), 1..120)) {
            let rt = tokio::runtime::Builder::new_current_thread()
                .enable_time()
                .start_paused(true)
                .build()
                .expect("runtime");
            rt.block_on(run_schedule(&ops));
        }
    }

    #[tokio::test]
    async fn bad_arguments_are_errors() {
        let store = MemoryLeaseStore::new();
        let a = session("a", 1);
        assert!(matches!(store.acquire("", &a, TTL).await, Err(LeaseStoreError::Invalid(_))));
        assert!(matches!(store.acquire("x", &a, Duration::ZERO).await, Err(LeaseStoreError::Invalid(_))));
    }
}
