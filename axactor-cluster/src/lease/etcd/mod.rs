//! [`EtcdLeaseStore`]: leases and membership in an etcd cluster (feature
//! `etcd-lease`).
//!
//! # Data layout
//!
//! All keys of one store sit under its prefix `P`:
//!
//! | key | value | attached to |
//! |---|---|---|
//! | `P/lease/{name}` | `-\|{session}`, or `{tag}\|{len}:{group}\|{session}` when acquired in a group | the lease's etcd lease |
//! | `P/group/{len}:{group}/{tag:020}/{name}` | empty | the same etcd lease as `P/lease/{name}` |
//! | `P/member/{session}` | empty | an etcd lease of the member ttl |
//!
//! Sessions are written in their `Display` form `{node}#{boot:016x}.{counter}`
//! and parsed back strictly; anything else read from the server is a
//! [`LeaseStoreError::Protocol`] error. `{len}` is the group name's length
//! in bytes, so no group's key prefix is a prefix of another's.
//!
//! # Epochs
//!
//! A lease's epoch is the `create_revision` of its key: the revision of the
//! transaction that created the key. etcd revisions grow with every write to
//! the whole key space and are never reused, so a key that is released,
//! expires or is deleted by hand and is then created again always gets a
//! greater epoch; no counter is needed. Renewals and re-acquisitions by the
//! holder rewrite the key, which keeps its `create_revision`: same epoch.
//! (Restoring etcd from a snapshot rewinds revisions: restore with
//! `etcdutl snapshot restore --bump-revision` past every epoch in use, and
//! `--mark-compacted`.)
//!
//! # TTLs: one etcd lease per acquisition
//!
//! Every acquisition, renewal and re-acquisition grants a fresh etcd lease of
//! the requested ttl and moves the lease key (and its group key) onto it in
//! the same transaction; the previous etcd lease is then revoked (best
//! effort: if that fails it expires by itself, with nothing attached). So a
//! lease that is not renewed disappears when its last etcd lease runs out,
//! whatever happens to the process that holds it; a single keep-alive lease
//! per store would instead keep every lease of a hung node alive while its
//! client runs. etcd leases count whole seconds: the ttl is rounded up to
//! seconds, etcd raises it to its minimum (1.5 × the election timeout,
//! rounded up to seconds: 2 s with etcd's defaults) and checks expiry about
//! every 500 ms. A lease therefore never ends *earlier* than its ttl (which
//! is what fencing needs: the holder stops at its own deadline before the
//! store lets another session in) but may end up to about a second or two
//! later, which delays failover accordingly. A grant shorter than asked is
//! refused as a protocol error.
//!
//! # Operations
//!
//! - **acquire**: grant an etcd lease, then one transaction: if the lease
//!   key does not exist (and, in a group, no key of the group exists under
//!   another tag), put the lease key and its group key on the new etcd lease;
//!   the transaction's revision is the epoch. Otherwise the store reads the
//!   group's other tags (a live one is a `Conflict`) and the key: another
//!   holder is `Held`; the same session re-acquires by a compare-and-swap on
//!   the key's `mod_revision` that moves it to the new etcd lease (same
//!   epoch). A key that vanished meanwhile or a lost race is retried (at most
//!   [`ATTEMPTS`] times, then `Unavailable`).
//! - **renew** / **release**: read the key; unless it names the caller's
//!   session with the caller's epoch (`create_revision`), answer `false`.
//!   Then one transaction, compare-and-swap on the key's `mod_revision`:
//!   renew moves the key and its group key to a fresh etcd lease of the new
//!   ttl; release deletes both. The group comes from the stored value, so a
//!   plain renew of a grouped lease keeps its group live.
//! - **heartbeat** / **remove**: put / delete `P/member/{session}`,
//!   revoking the member's previous etcd lease. **members**: one range read
//!   of at most [`EtcdLeaseStore::MAX_MEMBERS`] keys (more is a protocol error, not a partial
//!   list).
//!
//! Every read is linearizable (etcd's default), every write a transaction
//! through the Raft leader, so a granted lease survives the loss of any
//! minority of etcd members and a failover never grants a lease twice.
//!
//! # Timeouts and failures
//!
//! Every operation, including [`EtcdLeaseStore::connect`], is bounded by
//! [`OP_TIMEOUT`] (2 s) over the whole call. A timeout, a refused connection
//! or an etcd without a quorum is [`LeaseStoreError::Unavailable`]; the gRPC
//! channel reconnects by itself for the next call. A reply this client does
//! not understand is [`LeaseStoreError::Protocol`]. Nothing from the server
//! is unwrapped.
//!
//! # Cancel safety
//!
//! A call that times out or is dropped may or may not have taken effect on
//! the server. Each operation is idempotent for the same arguments (an
//! acquire by the holder returns the lease it already holds), so the caller
//! retries or treats the lease as possibly lost. An etcd lease granted by a
//! dropped call expires by itself.

use std::fmt;
use std::future::Future;
use std::time::Duration;

use etcd_client::{
    Client, Compare, CompareOp, ConnectOptions, DeleteOptions, GetOptions, KeyValue, PutOptions, Txn, TxnOp,
};

use super::{Epoch, GroupGrant, Lease, LeaseGroup, LeaseStore, LeaseStoreError};
use crate::future::BoxFuture;
use crate::id::SessionId;

mod codec;

use codec::{Keys, StoredGroup};

/// The bound on every store operation, retries included. Short against
/// lease ttls of seconds, so a failed renewal is reported while the holder
/// can still self-fence in time.
const OP_TIMEOUT: Duration = Duration::from_secs(2);

/// Compare-and-swap attempts per operation before it gives up with
/// [`LeaseStoreError::Unavailable`] (each lost race means another writer
/// changed the key in between).
const ATTEMPTS: usize = 4;

/// [`EtcdLeaseStore::MAX_MEMBERS`].
const MAX_MEMBERS: usize = 4096;

/// Options of [`EtcdLeaseStore::connect_with`]. `Default` connects without
/// authentication.
#[derive(Clone, Default, PartialEq, Eq)]
pub struct EtcdStoreOptions {
    /// etcd user name and password (etcd's authentication), if enabled.
    pub user: Option<(String, String)>,
}

impl fmt::Debug for EtcdStoreOptions {
    // Never print the password.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("EtcdStoreOptions").field("user", &self.user.as_ref().map(|(u, _)| u)).finish()
    }
}

/// A [`LeaseStore`] in an etcd cluster, shared by all nodes of an axactor
/// cluster (each one connects with the same endpoints and prefix).
///
/// Each lease is a key `{prefix}/lease/{name}` attached to an etcd lease of
/// the lease's ttl; its epoch is the key's `create_revision`, which grows
/// across release, expiry and deletion because etcd revisions do. Acquire,
/// renew and release are compare-and-swap transactions; lease groups are
/// enforced inside the acquiring transaction; members are keys
/// `{prefix}/member/{session}` with etcd leases of the member ttl. Expiry is
/// judged by etcd (whole seconds, rounded up: see the module docs in
/// `lease/etcd`): a lease ends no earlier than its ttl, possibly a second or
/// two later. Every operation is bounded by a 2 s timeout and fails with
/// [`LeaseStoreError::Unavailable`] (unreachable, timed out, no quorum) or
/// [`LeaseStoreError::Protocol`] (a reply this client does not understand).
/// A call that timed out may still have taken effect; each operation is
/// idempotent, so retrying is safe. `docs/guarantees.md` says what etcd
/// gives over Redis and what it still assumes.
///
/// Cheap to clone: clones share one gRPC channel, which reconnects by
/// itself. Must be used inside a Tokio runtime with I/O and time enabled.
#[derive(Clone)]
pub struct EtcdLeaseStore {
    client: Client,
    keys: Keys,
}

impl fmt::Debug for EtcdLeaseStore {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("EtcdLeaseStore").field("prefix", &self.keys.prefix()).finish_non_exhaustive()
    }
}

/// What the first acquire transaction found when it did not grant.
enum Found {
    /// Another tag of the group is live.
    Conflict(u64),
    /// The key, as read.
    Key(KeyValue),
    /// Nothing: the key vanished between the transaction and the read.
    Nothing,
}

impl EtcdLeaseStore {
    /// The most members [`LeaseStore::members`] reads; more is a
    /// [`LeaseStoreError::Protocol`] error (a cluster that large, or a prefix
    /// shared with something else), never a truncated list.
    pub const MAX_MEMBERS: usize = MAX_MEMBERS;

    /// Connects to the etcd cluster at `endpoints` (e.g.
    /// `["http://10.0.0.1:2379", "http://10.0.0.2:2379"]`; a bare
    /// `host:port` means `http://`) and keeps every key under `prefix/`
    /// (e.g. `axactor/prod`). Nodes of one cluster must use the same prefix;
    /// different clusters may share an etcd with different prefixes (neither
    /// a prefix of the other followed by `/`).
    ///
    /// # Errors
    /// [`LeaseStoreError::Invalid`] for no endpoints, an unparsable
    /// endpoint or an empty prefix; [`LeaseStoreError::Unavailable`] if the
    /// cluster does not answer within 2 s.
    ///
    /// # Cancel safety
    /// Cancel safe: dropping the future drops the half-built channel.
    ///
    /// # Panics
    /// Outside a Tokio runtime with I/O and time enabled.
    pub async fn connect(endpoints: &[&str], prefix: &str) -> Result<EtcdLeaseStore, LeaseStoreError> {
        EtcdLeaseStore::connect_with(endpoints, prefix, EtcdStoreOptions::default()).await
    }

    /// [`EtcdLeaseStore::connect`] with `options`.
    ///
    /// # Errors
    /// As [`EtcdLeaseStore::connect`]; a rejected user or password is
    /// [`LeaseStoreError::Unavailable`].
    ///
    /// # Cancel safety
    /// As [`EtcdLeaseStore::connect`].
    ///
    /// # Panics
    /// As [`EtcdLeaseStore::connect`].
    pub async fn connect_with(
        endpoints: &[&str],
        prefix: &str,
        options: EtcdStoreOptions,
    ) -> Result<EtcdLeaseStore, LeaseStoreError> {
        let keys = Keys::new(prefix)?;
        if endpoints.is_empty() {
            return Err(LeaseStoreError::Invalid("no etcd endpoints"));
        }
        let mut connect = ConnectOptions::new().with_connect_timeout(OP_TIMEOUT).with_timeout(OP_TIMEOUT);
        if let Some((user, password)) = options.user {
            connect = connect.with_user(user, password);
        }
        whole(async move {
            let client = bounded(Client::connect(endpoints, Some(connect))).await?;
            let store = EtcdLeaseStore { client, keys };
            // The channel connects lazily: one read proves the cluster answers.
            let probe = store.keys.members();
            store.bounded_get(probe, Some(GetOptions::new().with_keys_only().with_limit(1))).await?;
            Ok(store)
        })
        .await
    }

    async fn bounded_get(&self, key: String, opts: Option<GetOptions>) -> Result<Vec<KeyValue>, LeaseStoreError> {
        let mut kv = self.client.kv_client();
        Ok(bounded(kv.get(key, opts)).await?.take_kvs())
    }

    /// The key's current value, if any.
    async fn read(&self, key: &str) -> Result<Option<KeyValue>, LeaseStoreError> {
        Ok(self.bounded_get(key.to_owned(), None).await?.into_iter().next())
    }

    /// A fresh etcd lease of at least `secs` seconds.
    async fn grant(&self, secs: i64) -> Result<i64, LeaseStoreError> {
        let granted = bounded(self.client.lease_client().grant(secs, None)).await?;
        if granted.ttl() < secs || granted.id() == 0 {
            self.revoke(granted.id()).await;
            return Err(LeaseStoreError::Protocol("etcd granted a shorter lease than asked"));
        }
        Ok(granted.id())
    }

    /// Revokes an etcd lease, best effort: one that is not revoked expires
    /// by itself.
    async fn revoke(&self, id: i64) {
        if id == 0 {
            return;
        }
        if let Err(e) = bounded(self.client.lease_client().revoke(id)).await {
            tracing::debug!(error = %e, lease = id, "etcd lease store: revoke failed (it expires by itself)");
        }
    }

    /// Runs `txn`; returns whether its compares held and its revision.
    async fn txn(&self, txn: Txn) -> Result<(bool, i64), LeaseStoreError> {
        let resp = bounded(self.client.kv_client().txn(txn)).await?;
        let revision = resp.header().map(|h| h.revision()).ok_or(LeaseStoreError::Protocol("no response header"))?;
        Ok((resp.succeeded(), revision))
    }

    /// The puts that place lease `name` (value `value`, group `group`) on
    /// etcd lease `id`.
    fn place(&self, name: &str, value: &str, group: Option<&StoredGroup>, id: i64) -> Vec<TxnOp> {
        let on = || Some(PutOptions::new().with_lease(id));
        let mut ops = vec![TxnOp::put(self.keys.lease(name), value, on())];
        if let Some(g) = group {
            ops.push(TxnOp::put(self.keys.group_member(g, name), "", on()));
        }
        ops
    }

    async fn acquire_lease(
        &self,
        name: &str,
        group: Option<LeaseGroup<'_>>,
        holder: &SessionId,
        ttl: Duration,
    ) -> Result<GroupGrant, LeaseStoreError> {
        codec::check_name(name)?;
        let secs = codec::ttl_secs(ttl)?;
        let stored = group.map(StoredGroup::from);
        let value = codec::encode_value(holder, stored.as_ref());
        let key = self.keys.lease(name);
        let guard = group.map(|g| codec::no_other_tag(&self.keys, g)).unwrap_or_default();
        let id = self.grant(secs).await?;
        let result = self.acquire_with(name, &key, group, holder, &value, stored.as_ref(), &guard, id).await;
        if !matches!(result, Ok(GroupGrant::Granted(_))) {
            self.revoke(id).await;
        }
        result
    }

    #[allow(clippy::too_many_arguments)]
    async fn acquire_with(
        &self,
        name: &str,
        key: &str,
        group: Option<LeaseGroup<'_>>,
        holder: &SessionId,
        value: &str,
        stored: Option<&StoredGroup>,
        guard: &[Compare],
        id: i64,
    ) -> Result<GroupGrant, LeaseStoreError> {
        let granted = |epoch: u64| {
            GroupGrant::Granted(Lease { name: name.to_owned(), holder: holder.clone(), epoch: Epoch(epoch) })
        };
        for _ in 0..ATTEMPTS {
            let mut when = guard.to_vec();
            when.push(Compare::create_revision(key, CompareOp::Equal, 0));
            let txn = Txn::new().when(when).and_then(self.place(name, value, stored, id));
            let (created, revision) = self.txn(txn).await?;
            if created {
                // The key was created by this transaction: its create_revision.
                return Ok(granted(codec::epoch_of(revision)?));
            }
            let kv = match self.found(key, group).await? {
                Found::Conflict(tag) => return Ok(GroupGrant::Conflict { tag }),
                Found::Nothing => continue,
                Found::Key(kv) => kv,
            };
            let current = codec::parse_value(kv.value())?;
            if &current.holder != holder {
                return Ok(GroupGrant::Held);
            }
            // The holder re-acquires: move the key to the new etcd lease,
            // keeping its create_revision (the epoch). A plain re-acquire
            // keeps the group the lease was acquired in (as renew does).
            let ops = match (group, current.group.as_ref()) {
                (None, Some(kept)) => self.place(name, &codec::encode_value(holder, Some(kept)), Some(kept), id),
                _ => self.place(name, value, stored, id),
            };
            let mut when = guard.to_vec();
            when.push(Compare::mod_revision(key, CompareOp::Equal, kv.mod_revision()));
            let txn = Txn::new().when(when).and_then(ops);
            if self.txn(txn).await?.0 {
                self.revoke(kv.lease()).await;
                return Ok(granted(codec::epoch_of(kv.create_revision())?));
            }
        }
        Err(LeaseStoreError::Unavailable("lease contended: compare-and-swap retries exhausted"))
    }

    /// Why an acquire did not create the key: a live other tag of the group
    /// first (as the memory store checks), then the key itself.
    async fn found(&self, key: &str, group: Option<LeaseGroup<'_>>) -> Result<Found, LeaseStoreError> {
        if let Some(g) = group {
            for (start, end) in self.keys.other_tags(g) {
                let opts = GetOptions::new().with_range(end).with_keys_only().with_limit(1);
                if let Some(kv) = self.bounded_get(start, Some(opts)).await?.first() {
                    return Ok(Found::Conflict(self.keys.tag_of(g.name, kv.key())?));
                }
            }
        }
        Ok(self.read(key).await?.map_or(Found::Nothing, Found::Key))
    }

    /// The key of `name` if `holder` holds it at `epoch`.
    async fn held(
        &self,
        name: &str,
        holder: &SessionId,
        epoch: Epoch,
    ) -> Result<Option<(KeyValue, codec::Value)>, LeaseStoreError> {
        let Ok(revision) = i64::try_from(epoch.0) else { return Ok(None) };
        let Some(kv) = self.read(&self.keys.lease(name)).await? else { return Ok(None) };
        let value = codec::parse_value(kv.value())?;
        Ok((&value.holder == holder && kv.create_revision() == revision).then_some((kv, value)))
    }

    async fn renew_lease(
        &self,
        name: &str,
        holder: &SessionId,
        epoch: Epoch,
        ttl: Duration,
    ) -> Result<bool, LeaseStoreError> {
        codec::check_name(name)?;
        let secs = codec::ttl_secs(ttl)?;
        if self.held(name, holder, epoch).await?.is_none() {
            return Ok(false);
        }
        let id = self.grant(secs).await?;
        let renewed = self.renew_with(name, holder, epoch, id).await;
        if !matches!(renewed, Ok(true)) {
            self.revoke(id).await;
        }
        renewed
    }

    async fn renew_with(&self, name: &str, holder: &SessionId, epoch: Epoch, id: i64) -> Result<bool, LeaseStoreError> {
        let key = self.keys.lease(name);
        for _ in 0..ATTEMPTS {
            let Some((kv, value)) = self.held(name, holder, epoch).await? else { return Ok(false) };
            let when = [Compare::mod_revision(key.as_str(), CompareOp::Equal, kv.mod_revision())];
            // The stored bytes are put back as they are.
            let stored =
                std::str::from_utf8(kv.value()).map_err(|_| LeaseStoreError::Protocol("malformed lease value"))?;
            let txn = Txn::new().when(when).and_then(self.place(name, stored, value.group.as_ref(), id));
            if self.txn(txn).await?.0 {
                self.revoke(kv.lease()).await;
                return Ok(true);
            }
        }
        Err(LeaseStoreError::Unavailable("lease contended: compare-and-swap retries exhausted"))
    }

    async fn release_lease(&self, name: &str, holder: &SessionId, epoch: Epoch) -> Result<bool, LeaseStoreError> {
        codec::check_name(name)?;
        let key = self.keys.lease(name);
        for _ in 0..ATTEMPTS {
            let Some((kv, value)) = self.held(name, holder, epoch).await? else { return Ok(false) };
            let mut ops = vec![TxnOp::delete(key.as_str(), None)];
            if let Some(g) = &value.group {
                ops.push(TxnOp::delete(self.keys.group_member(g, name), None));
            }
            let when = [Compare::mod_revision(key.as_str(), CompareOp::Equal, kv.mod_revision())];
            if self.txn(Txn::new().when(when).and_then(ops)).await?.0 {
                self.revoke(kv.lease()).await;
                return Ok(true);
            }
        }
        Err(LeaseStoreError::Unavailable("lease contended: compare-and-swap retries exhausted"))
    }

    async fn get_lease(&self, name: &str) -> Result<Option<Lease>, LeaseStoreError> {
        codec::check_name(name)?;
        let Some(kv) = self.read(&self.keys.lease(name)).await? else { return Ok(None) };
        let value = codec::parse_value(kv.value())?;
        let epoch = Epoch(codec::epoch_of(kv.create_revision())?);
        Ok(Some(Lease { name: name.to_owned(), holder: value.holder, epoch }))
    }

    async fn heartbeat(&self, session: &SessionId, ttl: Duration) -> Result<(), LeaseStoreError> {
        let secs = codec::ttl_secs(ttl)?;
        let id = self.grant(secs).await?;
        let opts = PutOptions::new().with_lease(id).with_prev_key();
        let put = bounded(self.client.kv_client().put(self.keys.member(session), "", Some(opts))).await;
        match put {
            Ok(mut resp) => {
                if let Some(prev) = resp.take_prev_key()
                    && prev.lease() != id
                {
                    self.revoke(prev.lease()).await;
                }
                Ok(())
            }
            Err(e) => {
                self.revoke(id).await;
                Err(e)
            }
        }
    }

    async fn remove(&self, session: &SessionId) -> Result<(), LeaseStoreError> {
        let opts = DeleteOptions::new().with_prev_key();
        let mut resp = bounded(self.client.kv_client().delete(self.keys.member(session), Some(opts))).await?;
        for prev in resp.take_prev_kvs() {
            self.revoke(prev.lease()).await;
        }
        Ok(())
    }

    async fn live_members(&self) -> Result<Vec<SessionId>, LeaseStoreError> {
        // One more than the bound, to tell "exactly MAX_MEMBERS" from "more".
        let limit = i64::try_from(MAX_MEMBERS + 1).map_err(|_| LeaseStoreError::Invalid("member bound"))?;
        let opts = GetOptions::new().with_prefix().with_keys_only().with_limit(limit);
        let kvs = self.bounded_get(self.keys.members(), Some(opts)).await?;
        if kvs.len() > MAX_MEMBERS {
            return Err(LeaseStoreError::Protocol("more members than MAX_MEMBERS"));
        }
        let mut members = kvs.iter().map(|kv| self.keys.member_of(kv.key())).collect::<Result<Vec<_>, _>>()?;
        members.sort();
        members.dedup();
        Ok(members)
    }
}

/// Awaits `fut` for at most [`OP_TIMEOUT`], mapping failures to
/// [`LeaseStoreError`].
async fn bounded<T>(fut: impl Future<Output = Result<T, etcd_client::Error>>) -> Result<T, LeaseStoreError> {
    match tokio::time::timeout(OP_TIMEOUT, fut).await {
        Err(_) => Err(LeaseStoreError::Unavailable("timed out")),
        Ok(Ok(v)) => Ok(v),
        Ok(Err(e)) => {
            tracing::debug!(error = %e, "etcd lease store: request failed");
            Err(codec::map_error(&e))
        }
    }
}

/// Bounds a whole operation (its requests, retries and best-effort revokes)
/// by [`OP_TIMEOUT`]. An etcd lease left granted by a cut-off call expires
/// by itself.
async fn whole<T>(fut: impl Future<Output = Result<T, LeaseStoreError>>) -> Result<T, LeaseStoreError> {
    tokio::time::timeout(OP_TIMEOUT, fut).await.unwrap_or(Err(LeaseStoreError::Unavailable("timed out")))
}

impl LeaseStore for EtcdLeaseStore {
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
        Box::pin(whole(self.acquire_lease(name, Some(group), holder, ttl)))
    }

    fn renew_in_group<'a>(
        &'a self,
        name: &'a str,
        group: LeaseGroup<'a>,
        holder: &'a SessionId,
        epoch: Epoch,
        ttl: Duration,
    ) -> BoxFuture<'a, Result<bool, LeaseStoreError>> {
        // The group the lease was acquired in is stored with it.
        let _ = group;
        Box::pin(whole(self.renew_lease(name, holder, epoch, ttl)))
    }

    fn acquire<'a>(
        &'a self,
        name: &'a str,
        holder: &'a SessionId,
        ttl: Duration,
    ) -> BoxFuture<'a, Result<Option<Lease>, LeaseStoreError>> {
        Box::pin(whole(async move {
            match self.acquire_lease(name, None, holder, ttl).await? {
                GroupGrant::Granted(lease) => Ok(Some(lease)),
                GroupGrant::Held => Ok(None),
                GroupGrant::Conflict { .. } => Err(LeaseStoreError::Protocol("group conflict without a group")),
            }
        }))
    }

    fn renew<'a>(
        &'a self,
        name: &'a str,
        holder: &'a SessionId,
        epoch: Epoch,
        ttl: Duration,
    ) -> BoxFuture<'a, Result<bool, LeaseStoreError>> {
        Box::pin(whole(self.renew_lease(name, holder, epoch, ttl)))
    }

    fn release<'a>(
        &'a self,
        name: &'a str,
        holder: &'a SessionId,
        epoch: Epoch,
    ) -> BoxFuture<'a, Result<bool, LeaseStoreError>> {
        Box::pin(whole(self.release_lease(name, holder, epoch)))
    }

    fn get<'a>(&'a self, name: &'a str) -> BoxFuture<'a, Result<Option<Lease>, LeaseStoreError>> {
        Box::pin(whole(self.get_lease(name)))
    }

    fn heartbeat_member<'a>(
        &'a self,
        session: &'a SessionId,
        ttl: Duration,
    ) -> BoxFuture<'a, Result<(), LeaseStoreError>> {
        Box::pin(whole(self.heartbeat(session, ttl)))
    }

    fn remove_member<'a>(&'a self, session: &'a SessionId) -> BoxFuture<'a, Result<(), LeaseStoreError>> {
        Box::pin(whole(self.remove(session)))
    }

    fn members(&self) -> BoxFuture<'_, Result<Vec<SessionId>, LeaseStoreError>> {
        Box::pin(whole(self.live_members()))
    }
}
