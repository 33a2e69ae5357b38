//! The activations a node hosts for one registry, per owned shard.
//!
//! A [`Host`] is told by the lease driver when a shard is granted (with its
//! epoch and local deadline), extended, or revoked. It executes a message
//! only while it holds the message's shard at exactly the message's epoch
//! and before the deadline; activations are spawned on first use under the
//! shard's [`Fence`], passivated when idle, and stopped (then killed, if
//! they overrun) when the shard is revoked. Deliveries and revocations take
//! the same lock, so once a shard is revoked no message can be enqueued for
//! it, and the stop overtakes what is already queued.
//!
//! Each activation has a watcher task that fires its monitors once it has
//! stopped for good: a `DownEvent` always comes after the last execution.
//! Every activation has an id unique on this node's session (never reused),
//! kept in a table of live activations until its watcher has fired: a
//! watcher whose connection ended can place its monitor again on exactly
//! that activation, or learn that it has stopped. A peer's monitors are
//! removed when the connection that carried them ends.

use std::collections::BTreeMap;
use std::sync::{Arc, Weak};
use std::time::Duration;

use axactor::{Actor, ExitReason, Fence, LocalRef, SpawnConfig, System, TellError};
use parking_lot::Mutex;
use tokio::sync::mpsc;
use tokio::time::Instant;

use crate::env::Env;
use crate::fence::GrantGuard;
use crate::hosted::{
    AskOf, DownEvent, EncodedReply, HostedActor, HostedRegistry, MonitorSink, PendingOf, TellOf, TellsDelivered,
};
use crate::keyed::KeyedConfig;
use crate::lease::Epoch;
use crate::node::replies::ReplyRoom;
use crate::node::table::ConnId as ConnTag;
use crate::overlay::BoxFuture;
use crate::shard::fence_rule::{self, Grant};
use crate::wire::{DownReason, Rejection};

mod tells;

/// What a monitor learns from an exit reason.
pub(crate) fn down_reason(reason: &ExitReason) -> DownReason {
    match reason {
        ExitReason::LeaseLost => DownReason::LeaseLost,
        ExitReason::NodeDown => DownReason::NodeDown,
        _ => DownReason::Stopped,
    }
}

/// The name of an activation's actor (`ctx.name()`): `registry/key#id`,
/// `id` being the number its host gives it and names it by to monitors
/// (`Monitored`), never reused by that host.
pub(crate) fn activation_name(registry: &str, key: &str, id: u64) -> String {
    format!("{registry}/{key}#{id}")
}

/// The activation id in an actor name made by [`activation_name`].
#[cfg(any(test, feature = "sim"))]
pub(crate) fn activation_id(name: &str) -> Option<u64> {
    name.rsplit_once('#')?.1.parse().ok()
}

struct Monitors {
    sinks: Vec<MonitorSink>,
    /// The activation stopped (with this reason): new monitors fire at once.
    down: Option<DownReason>,
    /// The activation's id (see [`Host::live`]).
    id: u64,
}

/// A live activation's entry in [`Host::live`].
struct LiveEntry {
    key: Arc<str>,
    monitors: Arc<Mutex<Monitors>>,
}

struct Activation<A: HostedActor> {
    local: LocalRef<A::Msg>,
    last_used: Instant,
    monitors: Arc<Mutex<Monitors>>,
}

struct Slot<A: HostedActor> {
    epoch: Epoch,
    deadline: Instant,
    /// Checked by the activations before each message.
    guard: Arc<GrantGuard>,
    acts: BTreeMap<Arc<str>, Activation<A>>,
}

impl<A: HostedActor> Slot<A> {
    /// The grant deliveries are checked against.
    #[inline]
    fn grant(&self) -> Grant {
        Grant { epoch: self.epoch, deadline: self.deadline }
    }
}

/// The typed host of one registry on one node.
pub(crate) struct Host<A: HostedActor> {
    me: Weak<Host<A>>,
    id: Arc<str>,
    shard_count: u32,
    cfg: KeyedConfig,
    factory: Arc<dyn Fn(&str) -> A + Send + Sync>,
    system: Arc<System>,
    /// Starts the watcher tasks (as tasks of the node).
    env: Env,
    /// The key activated as soon as its shard is granted (singletons).
    eager: Option<Arc<str>>,
    slots: Mutex<BTreeMap<u32, Slot<A>>>,
    /// Activations on this node (all shards), for the `max_activations` bound.
    active: Mutex<usize>,
    /// Monitors held on this node's activations, for the `max_monitors` bound.
    monitors: Mutex<usize>,
    /// Activations by id, from their spawn until their watcher has fired
    /// (also while stopping, after a revoke took them out of `slots`).
    /// Bounded by `max_activations`, as `active` is.
    live: Mutex<BTreeMap<u64, LiveEntry>>,
    /// The id of the next activation (never reused by this host; one
    /// whose spawn failed leaves a gap).
    next_activation: std::sync::atomic::AtomicU64,
    /// The other shard count the store holds this registry under (0: none).
    count_conflict: std::sync::atomic::AtomicU64,
}

impl<A: HostedActor> std::fmt::Debug for Host<A> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Host").field("registry", &self.id).field("shards", &self.shard_count).finish_non_exhaustive()
    }
}

/// The synchronous part of a local delivery ([`Host::try_local_ask`]).
pub(crate) enum Tried<T, R, A: HostedActor> {
    /// The shard is not owned here (or not usable now): route `T` elsewhere.
    NotHere(T),
    /// Refused before reaching an activation (e.g. `max_activations`).
    Rejected(Rejection),
    /// In the activation's mailbox; `R` waits for the outcome.
    Sent(R),
    /// The activation refused it for now (full, or stopping); boxed, as
    /// the rare case, to keep the common ones small.
    Refused(Box<Refused<A>>, R),
}

/// How a local delivery went.
pub(crate) enum Local<T, R> {
    /// The shard is not owned here (or not usable now): route `T` elsewhere.
    NotHere(T),
    /// Delivered (or refused by the activation, definitely not executed).
    Done(Result<R, Rejection>),
}

impl<A: HostedActor> Host<A> {
    pub(crate) fn new(
        id: &str,
        cfg: KeyedConfig,
        factory: Arc<dyn Fn(&str) -> A + Send + Sync>,
        system: Arc<System>,
        env: Env,
        eager: Option<&str>,
    ) -> Arc<Host<A>> {
        Arc::new_cyclic(|me| Host {
            me: me.clone(),
            id: Arc::from(id),
            shard_count: cfg.shard_count_u32(),
            cfg,
            factory,
            system,
            env,
            eager: eager.map(Arc::from),
            slots: Mutex::new(BTreeMap::new()),
            active: Mutex::new(0),
            monitors: Mutex::new(0),
            live: Mutex::new(BTreeMap::new()),
            next_activation: std::sync::atomic::AtomicU64::new(1),
            count_conflict: std::sync::atomic::AtomicU64::new(0),
        })
    }

    /// Runs `f` on the activation of `key` in the owned `shard` (spawned if
    /// needed), under the lock, after checking `epoch` (`None`: whatever
    /// epoch is held) and the local deadline.
    fn with_activation<R>(
        &self,
        shard: u32,
        epoch: Option<u64>,
        key: &str,
        f: impl FnOnce(&LocalRef<A::Msg>) -> R,
    ) -> Result<R, Rejection> {
        let now = Instant::now();
        let mut slots = self.slots.lock();
        let slot = slots.get_mut(&shard);
        fence_rule::admit(slot.as_deref().map(Slot::grant), epoch, now)?;
        // `admit` refuses a shard without a slot.
        let Some(slot) = slot else {
            return Err(Rejection::NotOwner { owner_hint: None });
        };
        self.activation_in(slot, shard, key, now, f)
    }

    /// The local fast path's one look at the table: `f(activation, value)`
    /// if this node holds `shard` and `now()` (read only then) is before
    /// its deadline, under one lock; `Err(value)` back when the shard is
    /// not usable here.
    fn local_activation<T, R>(
        &self,
        shard: u32,
        key: &str,
        now: impl FnOnce() -> Instant,
        value: T,
        f: impl FnOnce(&LocalRef<A::Msg>, T) -> R,
    ) -> Result<Result<R, Rejection>, T> {
        let mut slots = self.slots.lock();
        let Some(slot) = slots.get_mut(&shard) else { return Err(value) };
        let now = now();
        if fence_rule::admit(Some(slot.grant()), None, now).is_err() {
            return Err(value);
        }
        Ok(self.activation_in(slot, shard, key, now, |local| f(local, value)))
    }

    /// `f` on the activation of `key` in `slot`, admitted at `now`; spawns
    /// it first if there is none.
    fn activation_in<R>(
        &self,
        slot: &mut Slot<A>,
        shard: u32,
        key: &str,
        now: Instant,
        f: impl FnOnce(&LocalRef<A::Msg>) -> R,
    ) -> Result<R, Rejection> {
        if let Some(act) = slot.acts.get_mut(key) {
            act.last_used = now;
            return Ok(f(&act.local));
        }
        let fence = Fence { registry: self.id.to_string(), shard, epoch: slot.epoch.0 };
        let act = self.spawn_activation(key, fence, Arc::clone(&slot.guard), now)?;
        let out = f(&act.local);
        slot.acts.insert(Arc::from(key), act);
        Ok(out)
    }

    fn spawn_activation(
        &self,
        key: &str,
        fence: Fence,
        guard: Arc<GrantGuard>,
        now: Instant,
    ) -> Result<Activation<A>, Rejection> {
        {
            let mut active = self.active.lock();
            if *active >= self.cfg.max_activations {
                return Err(Rejection::Overloaded);
            }
            *active += 1;
        }
        let factory = Arc::clone(&self.factory);
        let owned_key: Arc<str> = Arc::from(key);
        let make_key = Arc::clone(&owned_key);
        let shard = fence.shard;
        // Numbered before the spawn, so the actor's name carries it.
        let id = self.next_activation.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let spawn_cfg = SpawnConfig::new(activation_name(&self.id, key, id), self.cfg.mailbox_capacity)
            .with_fence(fence)
            .run_guard(guard);
        let handle = match self.system.spawn_with(move || factory(&make_key), spawn_cfg) {
            Ok(h) => h,
            Err(e) => {
                *self.active.lock() -= 1;
                tracing::warn!(registry = %self.id, error = %e, "activation could not be spawned");
                return Err(Rejection::ActorClosed);
            }
        };
        let local = A::local_ref(&handle.actor());
        let monitors = Arc::new(Mutex::new(Monitors { sinks: Vec::new(), down: None, id }));
        self.live.lock().insert(id, LiveEntry { key: Arc::clone(&owned_key), monitors: Arc::clone(&monitors) });
        let watcher = Watcher {
            host: self.me.clone(),
            shard,
            key: owned_key,
            local: local.clone(),
            monitors: Arc::clone(&monitors),
            id,
        };
        self.env.spawn(watcher.run());
        Ok(Activation { local, last_used: now, monitors })
    }

    /// After a try at an activation's mailbox: done, or, refused with
    /// `wait`, waits for space until that instant (a full mailbox) or
    /// tries a fresh activation once the refusing one has stopped.
    async fn settle(
        &self,
        shard: u32,
        epoch: Option<u64>,
        key: &str,
        first: Result<(), Refused<A>>,
        wait: Option<Instant>,
    ) -> Result<(), Rejection> {
        let mut attempt = first;
        loop {
            let (e, local, refused) = match attempt {
                Ok(()) => return Ok(()),
                Err(refused) => refused,
            };
            tracing::debug!(registry = %self.id, key, error = %e, "activation refused a message");
            let Some(deadline) = wait else { return Err(tell_rejection(e)) };
            match e {
                TellError::Full => {
                    return match tokio::time::timeout_at(deadline, local.send(refused)).await {
                        Ok(Ok(())) => Ok(()),
                        Ok(Err(e)) => Err(tell_rejection(e)),
                        Err(_) => Err(Rejection::MailboxFull),
                    };
                }
                // Stopping (passivated, or its grant ended): once it has
                // stopped, a fresh activation takes the message (never two
                // of one key at once on this node).
                TellError::Closed => {
                    if tokio::time::timeout_at(deadline, local.wait_stopped()).await.is_err() {
                        return Err(Rejection::ActorClosed);
                    }
                    self.forget_stopped(shard, key, &local);
                    attempt = self.with_activation(shard, epoch, key, |local| try_send::<A>(local, refused))?;
                }
            }
        }
    }

    /// Removes `local`, which has stopped, from `key`'s entry (as its watcher
    /// will, which may not have run yet), so the next delivery starts a
    /// fresh activation.
    fn forget_stopped(&self, shard: u32, key: &str, local: &LocalRef<A::Msg>) {
        let mut slots = self.slots.lock();
        if let Some(slot) = slots.get_mut(&shard)
            && slot.acts.get(key).is_some_and(|a| a.local.pid() == local.pid())
        {
            slot.acts.remove(key);
        }
    }

    /// Local fast path for a tell: no serialization. With `wait`, waits for
    /// mailbox space until that instant.
    pub(crate) async fn local_tell(
        &self,
        shard: u32,
        key: &str,
        tell: TellOf<A>,
        wait: Option<Instant>,
    ) -> Local<TellOf<A>, ()> {
        match self.try_local_tell(Instant::now, shard, key, tell) {
            Tried::NotHere(tell) => Local::NotHere(tell),
            Tried::Rejected(rejection) => Local::Done(Err(rejection)),
            Tried::Sent(()) => Local::Done(Ok(())),
            Tried::Refused(first, ()) => Local::Done(self.finish_refused(shard, key, first, wait).await),
        }
    }

    /// The synchronous part of a local tell, at `now()` (as
    /// [`Host::try_local_ask`]; the clock is read only if the shard is
    /// held here).
    pub(crate) fn try_local_tell(
        &self,
        now: impl FnOnce() -> Instant,
        shard: u32,
        key: &str,
        tell: TellOf<A>,
    ) -> Tried<TellOf<A>, (), A> {
        let send = |local: &LocalRef<A::Msg>, tell| try_send::<A>(local, A::tell_message(tell));
        match self.local_activation(shard, key, now, tell, send) {
            Err(tell) => Tried::NotHere(tell),
            Ok(Err(rejection)) => Tried::Rejected(rejection),
            Ok(Ok(Ok(()))) => Tried::Sent(()),
            Ok(Ok(Err(refused))) => Tried::Refused(Box::new(refused), ()),
        }
    }

    /// Local fast path for an ask: no serialization. Waits for mailbox
    /// space until `deadline`.
    pub(crate) async fn local_ask(
        &self,
        shard: u32,
        key: &str,
        ask: AskOf<A>,
        deadline: Instant,
    ) -> Local<AskOf<A>, PendingOf<A>> {
        match self.try_local_ask(Instant::now(), shard, key, ask) {
            Tried::NotHere(ask) => Local::NotHere(ask),
            Tried::Rejected(rejection) => Local::Done(Err(rejection)),
            Tried::Sent(pending) => Local::Done(Ok(pending)),
            Tried::Refused(first, pending) => {
                Local::Done(self.finish_refused(shard, key, first, Some(deadline)).await.map(|()| pending))
            }
        }
    }

    /// The synchronous part of a local ask, at `now`: the message is in the
    /// activation's mailbox (`Sent`), or refused by it and left to
    /// [`Host::finish_refused`], or the shard is not usable here. Not a
    /// future, so the common case (an activation with room) costs its
    /// caller no `await` but the reply's.
    pub(crate) fn try_local_ask(
        &self,
        now: Instant,
        shard: u32,
        key: &str,
        ask: AskOf<A>,
    ) -> Tried<AskOf<A>, PendingOf<A>, A> {
        let send = |local: &LocalRef<A::Msg>, ask| {
            let (msg, pending) = A::ask_message(ask);
            (try_send::<A>(local, msg), pending)
        };
        match self.local_activation(shard, key, || now, ask, send) {
            Err(ask) => Tried::NotHere(ask),
            Ok(Err(rejection)) => Tried::Rejected(rejection),
            Ok(Ok((Ok(()), pending))) => Tried::Sent(pending),
            Ok(Ok((Err(refused), pending))) => Tried::Refused(Box::new(refused), pending),
        }
    }

    /// A message the activation refused at first: with `wait`, waits for
    /// mailbox space, or for a stopping activation to stop and tries a fresh
    /// one, until that instant; without, the refusal (see [`Host::settle`]).
    pub(crate) async fn finish_refused(
        &self,
        shard: u32,
        key: &str,
        first: Box<Refused<A>>,
        wait: Option<Instant>,
    ) -> Result<(), Rejection> {
        self.settle(shard, None, key, Err(*first), wait).await
    }

    /// A peer's request names `key` in `shard`: the key must hash there with
    /// this node's shard count (a sender with another count means another
    /// key range by the same shard number).
    fn check_shard(&self, shard: u32, key: &str) -> Result<(), Rejection> {
        if crate::shard::shard_of(key, self.shard_count) == shard || mutant!(IgnoreShardCount) {
            Ok(())
        } else {
            Err(Rejection::WrongShard { shard_count: self.shard_count })
        }
    }

    /// Whether `shard` is held here and before its deadline.
    pub(crate) fn usable(&self, shard: u32) -> bool {
        let grant = self.slots.lock().get(&shard).map(Slot::grant);
        // No clock read for a shard not held here (most remote requests).
        grant.is_some() && fence_rule::admit(grant, None, Instant::now()).is_ok()
    }

    /// Whether the lease store refused this node the registry because it
    /// is held under another shard count.
    pub(crate) fn count_conflict(&self) -> bool {
        self.count_conflict.load(std::sync::atomic::Ordering::Relaxed) != 0
    }

    pub(crate) fn registry(&self) -> &Arc<str> {
        &self.id
    }

    /// Adds `sink` to an activation's monitors, within `max_monitors`;
    /// returns the activation's id.
    fn add_sink(&self, monitors: &Mutex<Monitors>, sink: MonitorSink) -> Result<u64, (MonitorSink, DownReason)> {
        let mut count = self.monitors.lock();
        if *count >= self.cfg.max_monitors {
            return Err((sink, DownReason::Other));
        }
        let mut m = monitors.lock();
        if let Some(reason) = m.down {
            return Err((sink, reason));
        }
        *count += 1;
        m.sinks.push(sink);
        Ok(m.id)
    }

    /// Cancels the local monitor on `key` that feeds `tx` (its receiver was
    /// dropped), so it no longer counts against `max_monitors`.
    pub(crate) fn demonitor_local(&self, key: &str, tx: &mpsc::Sender<DownEvent>) {
        let slots = self.slots.lock();
        let Some(act) = slots.values().find_map(|s| s.acts.get(key)) else { return };
        let mut m = act.monitors.lock();
        let before = m.sinks.len();
        m.sinks.retain(|s| !matches!(s, MonitorSink::Local { tx: t } if t.same_channel(tx)));
        let removed = before - m.sinks.len();
        drop(m);
        *self.monitors.lock() -= removed;
    }
}

impl<A: HostedActor> HostedRegistry for Host<A> {
    fn id(&self) -> &str {
        &self.id
    }

    fn shard_count(&self) -> u32 {
        self.shard_count
    }

    fn grant(&self, shard: u32, epoch: Epoch, deadline: Instant) {
        {
            let mut slots = self.slots.lock();
            let guard = Arc::new(GrantGuard::new(deadline, self.env.fence_clock()));
            slots.insert(shard, Slot { epoch, deadline, guard, acts: BTreeMap::new() });
        }
        if let Some(key) = &self.eager
            && let Err(r) = self.with_activation(shard, Some(epoch.0), key, |_| ())
        {
            tracing::warn!(registry = %self.id, reason = ?r, "eager activation failed");
        }
    }

    fn extend(&self, shard: u32, epoch: Epoch, deadline: Instant) {
        if let Some(slot) = self.slots.lock().get_mut(&shard)
            && slot.epoch == epoch
        {
            slot.deadline = slot.deadline.max(deadline);
            slot.guard.extend(deadline);
        }
    }

    fn revoke(&self, shard: u32, reason: ExitReason, kill_at: Instant) -> BoxFuture<'static, ()> {
        let acts: Vec<LocalRef<A::Msg>> = match self.slots.lock().remove(&shard) {
            Some(slot) => {
                slot.guard.revoke();
                slot.acts.into_values().map(|a| a.local).collect()
            }
            None => Vec::new(),
        };
        for local in &acts {
            let _ = local.stop_with(reason.clone());
        }
        Box::pin(async move {
            for local in acts {
                if tokio::time::timeout_at(kill_at, local.wait_stopped()).await.is_err() {
                    tracing::warn!(pid = %local.pid(), %reason, "activation overran its stop deadline; killed");
                    local.kill(reason.clone());
                }
            }
        })
    }

    fn kill_shard(&self, shard: u32, reason: ExitReason) {
        let slot = self.slots.lock().remove(&shard);
        if let Some(slot) = &slot {
            slot.guard.revoke();
        }
        for act in slot.into_iter().flat_map(|s| s.acts.into_values()) {
            act.local.kill(reason.clone());
        }
    }

    fn deliver_tell(&self, shard: u32, epoch: u64, key: &str, payload: &[u8]) -> Result<(), Rejection> {
        self.check_shard(shard, key)?;
        let tell: TellOf<A> = postcard::from_bytes(payload).map_err(|_| Rejection::BadPayload)?;
        let msg = A::tell_message(tell);
        self.with_activation(shard, Some(epoch), key, |local| local.try_send(msg))?.map_err(tell_rejection)
    }

    fn deliver_tells(
        &self,
        shard: u32,
        epoch: u64,
        key: &str,
        payloads: &[&[u8]],
    ) -> Result<TellsDelivered, Rejection> {
        self.check_shard(shard, key)?;
        // The fence and the activation under the host's lock, once; the
        // tells decoded and enqueued outside it, under one mailbox lock.
        let local = self.with_activation(shard, Some(epoch), key, LocalRef::clone)?;
        Ok(tells::deliver::<A>(&local, payloads))
    }

    fn deliver_ask(
        &self,
        request_id: u64,
        shard: u32,
        epoch: u64,
        key: &str,
        payload: &[u8],
        room: ReplyRoom<'_>,
    ) -> Result<(), Rejection> {
        self.check_shard(shard, key)?;
        let ask: AskOf<A> = postcard::from_bytes(payload).map_err(|_| Rejection::BadPayload)?;
        let (msg, pending) = A::ask_message(ask);
        self.with_activation(shard, Some(epoch), key, |local| local.try_send(msg))?.map_err(tell_rejection)?;
        room.put(request_id, EncodedReply::new(request_id, pending));
        Ok(())
    }

    fn room(&self, shard: u32, key: &str) -> Option<BoxFuture<'static, ()>> {
        let local = self.slots.lock().get(&shard)?.acts.get(key)?.local.clone();
        Some(Box::pin(async move {
            // `Closed`: stopping, so a retry finds no room to wait for.
            let _ = local.wait_for_room().await;
        }))
    }

    fn monitor(&self, key: &str, sink: MonitorSink) -> Result<u64, (MonitorSink, DownReason)> {
        let slots = self.slots.lock();
        let Some(act) = slots.values().find_map(|s| s.acts.get(key)) else {
            return Err((sink, DownReason::NoSuchActor));
        };
        self.add_sink(&act.monitors, sink)
    }

    fn remonitor(&self, key: &str, activation: u64, sink: MonitorSink) -> Result<(), (MonitorSink, DownReason)> {
        let monitors = match self.live.lock().get(&activation) {
            Some(e) if *e.key == *key => Arc::clone(&e.monitors),
            // Its watcher has fired: it has stopped for good.
            _ => return Err((sink, DownReason::Stopped)),
        };
        self.add_sink(&monitors, sink).map(|_| ())
    }

    fn drop_conn_monitors(&self, conn: ConnTag) -> usize {
        let all: Vec<Arc<Mutex<Monitors>>> = self.live.lock().values().map(|e| Arc::clone(&e.monitors)).collect();
        let mut removed = 0;
        for monitors in all {
            let mut m = monitors.lock();
            let before = m.sinks.len();
            m.sinks.retain(|s| !matches!(s, MonitorSink::Remote { conn: c, .. } if *c == conn));
            removed += before - m.sinks.len();
        }
        if removed > 0 {
            let mut count = self.monitors.lock();
            *count = count.saturating_sub(removed);
        }
        removed
    }

    fn demonitor(&self, conn: ConnTag, request_id: u64) {
        let all: Vec<Arc<Mutex<Monitors>>> = self.live.lock().values().map(|e| Arc::clone(&e.monitors)).collect();
        for monitors in all {
            let mut m = monitors.lock();
            let before = m.sinks.len();
            m.sinks.retain(
                |s| !matches!(s, MonitorSink::Remote { conn: c, request_id: r, .. } if *c == conn && *r == request_id),
            );
            let removed = before - m.sinks.len();
            // Not under the activation's lock: `add_sink` takes the count first.
            drop(m);
            if removed > 0 {
                *self.monitors.lock() -= removed;
                return;
            }
        }
    }

    fn stop_timeout(&self) -> Duration {
        self.cfg.stop_timeout
    }

    fn set_count_conflict(&self, theirs: Option<u64>) {
        self.count_conflict.store(theirs.unwrap_or(0), std::sync::atomic::Ordering::Relaxed);
    }

    fn table_use(&self) -> ((usize, usize), (usize, usize)) {
        ((*self.active.lock(), self.cfg.max_activations), (*self.monitors.lock(), self.cfg.max_monitors))
    }

    fn owned(&self) -> Vec<(u32, Epoch)> {
        let mut v: Vec<(u32, Epoch)> = self.slots.lock().iter().map(|(s, slot)| (*s, slot.epoch)).collect();
        v.sort();
        v
    }

    fn passivate(&self, now: Instant) {
        let Some(idle) = self.cfg.idle_timeout else {
            return;
        };
        let slots = self.slots.lock();
        for act in slots.values().flat_map(|s| s.acts.values()) {
            let is_eager = self.eager.is_some();
            if !is_eager && now.saturating_duration_since(act.last_used) >= idle && act.local.mailbox_len() == 0 {
                // Closes the mailbox at once: a later delivery sees
                // `ActorClosed` (and is retried), never a silent drop.
                let _ = act.local.drain(ExitReason::Normal);
            }
        }
    }
}

/// A message an activation's mailbox refused, with the activation (to wait
/// on it outside the table's lock).
pub(crate) type Refused<A> = (TellError, LocalRef<<A as Actor>::Msg>, <A as Actor>::Msg);

/// `msg` into `local`'s mailbox without waiting.
fn try_send<A: HostedActor>(local: &LocalRef<A::Msg>, msg: A::Msg) -> Result<(), Refused<A>> {
    local.try_send_or_return(msg).map_err(|(e, msg)| (e, local.clone(), msg))
}

/// A rejection for a local mailbox refusal.
fn tell_rejection(e: TellError) -> Rejection {
    match e {
        TellError::Full => Rejection::MailboxFull,
        TellError::Closed => Rejection::ActorClosed,
    }
}

struct Watcher<A: HostedActor> {
    host: Weak<Host<A>>,
    shard: u32,
    key: Arc<str>,
    local: LocalRef<A::Msg>,
    monitors: Arc<Mutex<Monitors>>,
    id: u64,
}

impl<A: HostedActor> Watcher<A> {
    async fn run(self) {
        let reason = self.local.wait_stopped().await;
        let down = down_reason(&reason);
        let Some(host) = self.host.upgrade() else {
            return;
        };
        {
            let mut slots = host.slots.lock();
            if let Some(slot) = slots.get_mut(&self.shard)
                && slot.acts.get(&self.key).is_some_and(|a| a.local.pid() == self.local.pid())
            {
                slot.acts.remove(&self.key);
            }
        }
        *host.active.lock() -= 1;
        let sinks = {
            let mut m = self.monitors.lock();
            m.down = Some(down);
            std::mem::take(&mut m.sinks)
        };
        *host.monitors.lock() -= sinks.len();
        host.live.lock().remove(&self.id);
        for sink in sinks {
            sink.fire(&host.id, &self.key, down);
        }
    }
}
