//! The lease driver: one task per node that owns every shard's
//! [`ShardLease`] state machine and acts on its decisions.
//!
//! The task never waits on the lease store itself: every store operation
//! runs in its own task and reports back over a channel, so a slow or
//! unreachable store can never delay a fence. The loop wakes for the next
//! due renewal or deadline, a store answer, a placement tick
//! (`renew_interval`) or a kick (membership changed, a lease was released
//! elsewhere, renewals paused or resumed).
//!
//! Placement pass (see [`crate::shard::placement`]):
//! - only a [`MemberState::Member`] takes free shards (the driver feeds
//!   [`standing`] the live members, the authenticated peers and the
//!   members this node failed to authenticate with);
//! - the candidates are this node, the connected peers hosting the
//!   registry and the pending members (live, not yet connected, within
//!   the join window: `handshake_timeout + heartbeat_interval`);
//! - a free shard preferred for this node is acquired at once;
//! - a free shard preferred for another node is acquired only once it has
//!   been seen free for a whole `renew_interval` (its preferred owner may be
//!   alive but cut off from the store);
//! - a held shard preferred for another connected node is handed over, paced by the
//!   settle window and the move cap: its activations are stopped first,
//!   then the lease is released and peers are told, so the next owner
//!   acquires at once.
//!
//! Fencing: when a lease's local deadline passes (renewal failed, paused,
//! or the store said it is gone), the shard is revoked at once: deliveries
//! stop, activations get a `LeaseLost` stop, and any still running half a
//! drift margin later are killed, still before the store can expire the
//! lease.
//!
//! Observability: every transition is a `NodeEvent` (`ShardAcquired`,
//! `ShardFenced`, `ShardHandedOver`, `ShardStopped`, `ShardReleased`,
//! `ShardCountConflict`) and runs in a span with `registry`, `shard` and
//! `epoch`: `lease_acquire`, `lease_handover`, `lease_release` and
//! `lease_fence` at DEBUG, `lease_renew` (one per renewal) at TRACE; store
//! operations carry their `outcome`.

use std::sync::Arc;
use std::time::Duration;

use axactor::ExitReason;
use tokio::sync::mpsc;
use tokio::time::{Instant, MissedTickBehavior};
use tracing::Instrument;

use crate::env::NodeEvent;
use crate::hosted::HostedRegistry;
use crate::lease::{Epoch, GroupGrant, LeaseGroup};
use crate::node::hosts::DriverCmd;
use crate::node::shared::Shared;
use crate::shard::lease_fsm::{Acquired, Action, LeaseTimes, Phase, ShardLease};
use crate::shard::lease_name;
use crate::shard::placement::{MemberState, MemberView, MovePacer, Standing, assign, standing};
use crate::wire::ControlMsg;

/// Store answers applied per pass of the driver's loop, at most.
const DONE_BATCH: usize = 256;

struct ShardState {
    host: Arc<dyn HostedRegistry>,
    shard: u32,
    name: String,
    fsm: ShardLease,
    /// A store operation (or a handover) is in flight.
    busy: bool,
    /// Activations of a fenced grant are still stopping: the shard stays out
    /// of placement until every one has ended.
    stopping: bool,
    /// When this node first saw the shard free while preferring another node.
    free_since: Option<Instant>,
}

enum Done {
    /// `conflict`: the store refused because the registry's leases are held
    /// under another shard count (that count).
    Acquired {
        idx: usize,
        result: Result<Option<Epoch>, ()>,
        conflict: Option<u64>,
    },
    Renewed {
        idx: usize,
        epoch: Epoch,
        result: Result<bool, ()>,
    },
    Released {
        idx: usize,
    },
    Probed {
        idx: usize,
        free: bool,
    },
    /// Every activation of a fenced grant has ended.
    Stopped {
        idx: usize,
    },
}

struct Driver {
    node: Arc<Shared>,
    times: LeaseTimes,
    shards: Vec<ShardState>,
    registries: usize,
    pacer: MovePacer,
    done_tx: mpsc::UnboundedSender<Done>,
    /// Per registry: the other shard count the store last refused it for.
    conflicts: std::collections::BTreeMap<String, Option<u64>>,
    /// This node takes shards only after a read of the members at or after
    /// this instant (a heartbeat interval after start, and the newest
    /// registration; see `MemberView::members_fresh`).
    fresh_after: Instant,
    /// Whether the last placement pass found this node a member.
    member: bool,
}

/// Runs the driver until shutdown.
pub(crate) async fn run(node: Arc<Shared>, mut cmds: mpsc::Receiver<DriverCmd>) {
    let cfg = &node.cfg;
    let times = LeaseTimes::new(cfg.lease_ttl, cfg.renew_interval);
    let pacer = MovePacer::new(cfg.rebalance_settle, cfg.renew_interval, cfg.max_moves_per_interval, Instant::now());
    let (done_tx, mut done_rx) = mpsc::unbounded_channel();
    let mut tick = tokio::time::interval(cfg.renew_interval);
    tick.set_missed_tick_behavior(MissedTickBehavior::Delay);
    let mut d = Driver {
        node: Arc::clone(&node),
        times,
        shards: Vec::new(),
        registries: 0,
        pacer,
        done_tx,
        conflicts: std::collections::BTreeMap::new(),
        fresh_after: Instant::now().checked_add(cfg.heartbeat_interval).unwrap_or_else(Instant::now),
        member: false,
    };
    loop {
        d.sync_registries();
        let renew = !node.hosts.renewal_paused();
        let wake = d.shards.iter().filter_map(|s| s.fsm.next_wakeup(renew)).min();
        let far = Instant::now() + Duration::from_secs(3600);
        let mut place = false;
        let mut passivate = false;
        tokio::select! {
            biased;
            cmd = cmds.recv() => {
                let reply = cmd.map(|DriverCmd::Shutdown(reply)| reply);
                d.shutdown(&mut done_rx).await;
                if let Some(reply) = reply {
                    let _ = reply.send(());
                }
                return;
            }
            Some(done) = done_rx.recv() => {
                d.apply(done);
                // Answers that arrived together are applied together, then
                // the shards are polled once: a burst of answers (thousands
                // of shards acquired at start) costs one pass, not one per
                // answer, so deadlines are never checked late behind it.
                for _ in 1..DONE_BATCH {
                    let Ok(done) = done_rx.try_recv() else { break };
                    d.apply(done);
                }
            }
            _ = tokio::time::sleep_until(wake.unwrap_or(far)) => {}
            _ = node.hosts.kicked() => place = true,
            _ = tick.tick() => { place = true; passivate = true; }
        }
        d.poll_all(renew);
        if place && renew {
            d.place();
        }
        if passivate {
            let now = Instant::now();
            for h in node.hosts_snapshot() {
                h.passivate(now);
            }
        }
    }
}

impl Driver {
    /// Adds shard states for registries registered since the last look.
    fn sync_registries(&mut self) {
        let hosts = self.node.hosts_snapshot();
        if hosts.len() == self.registries {
            return;
        }
        for host in hosts {
            if self.shards.iter().any(|s| s.host.id() == host.id()) {
                continue;
            }
            for shard in 0..host.shard_count() {
                self.shards.push(ShardState {
                    host: Arc::clone(&host),
                    shard,
                    name: lease_name(host.id(), host.shard_count(), shard),
                    fsm: ShardLease::new(self.times),
                    busy: false,
                    stopping: false,
                    free_since: None,
                });
            }
            self.registries += 1;
            // Read the members afresh before placing the new shards.
            self.fresh_after = self.fresh_after.max(Instant::now());
            self.node.peers.kick_dials();
        }
    }

    fn spawn_op<F>(&self, fut: F)
    where
        F: std::future::Future<Output = Done> + Send + 'static,
    {
        let tx = self.done_tx.clone();
        self.node.spawn(async move {
            let _ = tx.send(fut.await);
        });
    }

    fn acquire(&mut self, idx: usize, now: Instant) {
        let s = &mut self.shards[idx];
        if !s.fsm.start_acquire(now) {
            return;
        }
        s.busy = true;
        let (node, name) = (Arc::clone(&self.node), s.name.clone());
        let (registry, count) = (s.host.id().to_string(), u64::from(s.host.shard_count()));
        let span = tracing::debug_span!(
            "lease_acquire",
            registry = %registry,
            shard = s.shard,
            epoch = tracing::field::Empty,
            outcome = tracing::field::Empty,
        );
        let recorded = span.clone();
        self.spawn_op(
            async move {
                let (store, session, ttl) = (&node.store, &node.session, node.cfg.lease_ttl);
                let group = LeaseGroup { name: &registry, tag: count };
                let name_ref = &name;
                let op = if mutant!(IgnoreShardCount) {
                    Box::pin(async move {
                        Ok(store.acquire(name_ref, session, ttl).await?.map_or(GroupGrant::Held, GroupGrant::Granted))
                    })
                } else {
                    store.acquire_in_group(name_ref, group, session, ttl)
                };
                let (result, conflict, outcome) = match tokio::time::timeout(node.cfg.lease_store_timeout, op).await {
                    Ok(Ok(GroupGrant::Granted(lease))) => {
                        recorded.record("epoch", lease.epoch.0);
                        (Ok(Some(lease.epoch)), None, "granted")
                    }
                    Ok(Ok(GroupGrant::Held)) => (Ok(None), None, "held_elsewhere"),
                    Ok(Ok(GroupGrant::Conflict { tag })) => (Ok(None), Some(tag), "shard_count_conflict"),
                    Ok(Err(e)) => {
                        tracing::debug!(lease = %name, error = %e, "acquire failed");
                        (Err(()), None, "store_error")
                    }
                    Err(_) => (Err(()), None, "timed_out"),
                };
                recorded.record("outcome", outcome);
                Done::Acquired { idx, result, conflict }
            }
            .instrument(span),
        );
    }

    fn renew(&mut self, idx: usize, epoch: Epoch, now: Instant) {
        let s = &mut self.shards[idx];
        let (node, name) = (Arc::clone(&self.node), s.name.clone());
        let (registry, count) = (s.host.id().to_string(), u64::from(s.host.shard_count()));
        // The renewal may not outlive the deadline it could extend.
        let bound = s.fsm.held().map_or(Duration::ZERO, |h| h.deadline.saturating_duration_since(now));
        let shard = s.shard;
        let span = tracing::trace_span!(
            "lease_renew",
            registry = %registry,
            shard,
            epoch = epoch.0,
            outcome = tracing::field::Empty,
        );
        let recorded = span.clone();
        self.spawn_op(
            async move {
                let group = LeaseGroup { name: &registry, tag: count };
                let op = node.store.renew_in_group(&name, group, &node.session, epoch, node.cfg.lease_ttl);
                let (result, outcome) = match tokio::time::timeout(bound.min(node.cfg.lease_store_timeout), op).await {
                    Ok(Ok(true)) => (Ok(true), "renewed"),
                    Ok(Ok(false)) => (Ok(false), "refused"),
                    Ok(Err(e)) => {
                        tracing::debug!(lease = %name, error = %e, "renewal failed");
                        (Err(()), "store_error")
                    }
                    Err(_) => (Err(()), "timed_out"),
                };
                recorded.record("outcome", outcome);
                if outcome != "renewed" {
                    // DEBUG, with the span's fields: the span itself is TRACE.
                    tracing::debug!(registry = %registry, shard, epoch = epoch.0, outcome, "renewal did not succeed");
                }
                Done::Renewed { idx, epoch, result }
            }
            .instrument(span),
        );
    }

    fn fence(&mut self, idx: usize, epoch: Epoch, now: Instant) {
        let s = &self.shards[idx];
        let span = tracing::debug_span!("lease_fence", registry = %s.host.id(), shard = s.shard, epoch = epoch.0);
        let _entered = span.enter();
        tracing::warn!(lease = %s.name, %epoch, "lease lost or unrenewable: fencing the shard");
        self.node.counters.lease_event("fenced");
        self.observe(idx, epoch, |registry, shard, epoch| NodeEvent::ShardFenced { registry, shard, epoch });
        let kill_at = now + self.times.margin / 2;
        let stopping = s.host.revoke(s.shard, ExitReason::LeaseLost, kill_at);
        self.node.forget_owner(s.host.id(), s.shard);
        let stopped = self.stopped_event(idx, epoch);
        if mutant!(ReacquireWhileStopping) {
            self.node.spawn(async move {
                stopping.await;
                stopped();
            });
            return;
        }
        // Out of placement until they have all ended: a new grant's
        // activations must never overlap the fenced ones on this node.
        self.shards[idx].stopping = true;
        self.spawn_op(async move {
            stopping.await;
            stopped();
            Done::Stopped { idx }
        });
    }

    /// Reports (once per change, per registry) that the store refuses the
    /// registry's shards because they are held under another shard count.
    fn note_conflict(&mut self, idx: usize, conflict: Option<u64>) {
        let s = &self.shards[idx];
        let (registry, ours) = (s.host.id().to_string(), s.host.shard_count());
        let known = self.conflicts.entry(registry.clone()).or_insert(None);
        if *known == conflict {
            return;
        }
        *known = conflict;
        s.host.set_count_conflict(conflict);
        let Some(theirs) = conflict else { return };
        self.node.counters.lease_event("shard_count_conflict");
        tracing::warn!(
            registry = %registry, ours, theirs,
            "the registry's shards are held with another shard count elsewhere; this node takes none of them \
             until every node with the other count has left (every node must use one count)"
        );
        self.node.emit(|| NodeEvent::ShardCountConflict { registry, ours, theirs });
    }

    /// Tells the node's observer about shard `idx`.
    fn observe(&self, idx: usize, epoch: Epoch, event: impl FnOnce(String, u32, u64) -> NodeEvent) {
        let s = &self.shards[idx];
        self.node.emit(|| event(s.host.id().to_string(), s.shard, epoch.0));
    }

    /// A call that tells the observer the shard's activations of `epoch`
    /// have all ended (made now, called once they have).
    fn stopped_event(&self, idx: usize, epoch: Epoch) -> impl FnOnce() + Send + 'static {
        let s = &self.shards[idx];
        let (node, registry, shard) = (Arc::clone(&self.node), s.host.id().to_string(), s.shard);
        move || {
            node.emit(|| NodeEvent::ShardStopped { registry, shard, epoch: epoch.0 });
        }
    }

    fn poll_all(&mut self, renew: bool) {
        let now = Instant::now();
        for idx in 0..self.shards.len() {
            match self.shards[idx].fsm.poll(now, renew) {
                Some(Action::Renew { epoch }) => self.renew(idx, epoch, now),
                Some(Action::Fence { epoch }) => self.fence(idx, epoch, now),
                None => {}
            }
        }
    }

    fn apply(&mut self, done: Done) {
        let now = Instant::now();
        match done {
            Done::Acquired { idx, result, conflict } => {
                self.note_conflict(idx, conflict);
                let s = &mut self.shards[idx];
                s.busy = false;
                s.free_since = None;
                match s.fsm.on_acquired(result, now, mutant!(ReacquireWhileStopping)) {
                    Acquired::Held(held) => {
                        tracing::debug!(
                            registry = %s.host.id(), shard = s.shard, epoch = held.epoch.0, "lease acquired"
                        );
                        self.node.counters.lease_event("acquired");
                        let (registry, shard) = (s.host.id().to_string(), s.shard);
                        self.node.emit(|| NodeEvent::ShardAcquired { registry, shard, epoch: held.epoch.0 });
                        s.host.grant(s.shard, held.epoch, held.deadline);
                        self.node.cache_owner(s.host.id(), s.shard, self.node.session.clone(), held.epoch);
                        self.node.broadcast_control(&ControlMsg::LeaseNotice {
                            registry: s.host.id().to_string(),
                            shard: s.shard,
                            epoch: held.epoch.0,
                            owner: Some(self.node.session.clone()),
                        });
                    }
                    // Granted too late, or at an epoch this node saw before:
                    // give it back (see `lease_fsm`).
                    Acquired::Release(epoch) => self.release_quietly(idx, epoch),
                    Acquired::Nothing => {}
                }
            }
            Done::Stopped { idx } => self.shards[idx].stopping = false,
            Done::Renewed { idx, epoch, result } => {
                let s = &mut self.shards[idx];
                match s.fsm.on_renewed(epoch, result, now) {
                    Some(Action::Fence { epoch }) => self.fence(idx, epoch, now),
                    Some(Action::Renew { .. }) => {}
                    None => {
                        if let Some(held) = s.fsm.held() {
                            s.host.extend(s.shard, held.epoch, held.deadline);
                        }
                    }
                }
            }
            Done::Released { idx } => {
                let s = &mut self.shards[idx];
                s.busy = false;
                s.fsm.on_released();
                self.node.forget_owner(s.host.id(), s.shard);
            }
            Done::Probed { idx, free } => {
                let s = &mut self.shards[idx];
                s.busy = false;
                if !free {
                    s.free_since = None;
                    return;
                }
                let since = *s.free_since.get_or_insert(now);
                let waited = now.saturating_duration_since(since) >= self.times.renew_interval;
                if self.member && s.fsm.phase() == Phase::Free && waited {
                    tracing::debug!(lease = %s.name, "orphaned shard: acquiring");
                    self.acquire(idx, now);
                }
            }
        }
    }

    fn release_quietly(&self, idx: usize, epoch: Epoch) {
        let s = &self.shards[idx];
        let (node, name) = (Arc::clone(&self.node), s.name.clone());
        self.node.spawn(async move {
            let _ = tokio::time::timeout(node.cfg.lease_store_timeout, node.store.release(&name, &node.session, epoch))
                .await;
        });
    }

    /// One placement pass.
    fn place(&mut self) {
        if self.node.is_stopping() {
            return;
        }
        let now = Instant::now();
        let me = self.node.id.clone();
        let standing = self.standing(now);
        self.note_standing(&standing);
        let mut view = std::collections::BTreeSet::new();
        let mut candidates = std::collections::BTreeMap::new();
        for s in &self.shards {
            if !candidates.contains_key(s.host.id()) {
                let connected = self.node.candidates(s.host.id(), s.host.shard_count());
                let other_count = self.node.hosting_other_count(s.host.id(), s.host.shard_count());
                let pending = standing.pending.iter().filter(|n| !other_count.contains(*n));
                let all = connected.iter().chain(pending).cloned().collect();
                view.extend(connected.iter().cloned());
                let owners = assign(s.host.id(), s.host.shard_count(), &all);
                candidates.insert(s.host.id().to_string(), (owners, connected));
            }
        }
        self.pacer.observe(&view, now);
        for idx in 0..self.shards.len() {
            let s = &self.shards[idx];
            if s.busy || s.stopping {
                continue;
            }
            let Some((owners, connected)) = candidates.get(s.host.id()) else { continue };
            let pref = owners.get(s.shard as usize).cloned();
            // Handovers go to connected candidates only: a pending member
            // may never show up.
            let target = pref.as_ref().filter(|p| **p != me && connected.contains(*p));
            match s.fsm.phase() {
                Phase::Free if !self.member => {}
                Phase::Free if pref.as_ref() == Some(&me) => self.acquire(idx, now),
                Phase::Free => self.probe(idx),
                Phase::Held(_) if target.is_some() && self.pacer.try_move(now) => self.hand_over(idx, now),
                _ => {}
            }
        }
    }

    /// This node's standing (see [`standing`]), from what the node knows now.
    fn standing(&self, now: Instant) -> Standing {
        let snap = self.node.peers.members().snapshot();
        let authenticated = self.node.peers.table().iter().map(|e| e.session.node.clone()).collect();
        let holding = self.shards.iter().any(|s| !matches!(s.fsm.phase(), Phase::Free | Phase::Acquiring { .. }));
        let cfg = &self.node.cfg;
        let members_fresh = snap.last_read.is_some_and(|at| at >= self.fresh_after);
        if !members_fresh {
            self.node.peers.members().await_read();
        }
        standing(&MemberView {
            members_fresh,
            waiting_since: self.fresh_after,
            members: &snap.members,
            authenticated: &authenticated,
            auth_failed: &snap.failed,
            holding,
            join_window: cfg.handshake_timeout.saturating_add(cfg.heartbeat_interval),
            now,
        })
    }

    /// Records the standing for `inspect()`; logs a change to or from
    /// [`MemberState::Excluded`].
    fn note_standing(&mut self, standing: &Standing) {
        self.member = standing.state == MemberState::Member;
        let before = self.node.peers.members().set_state(standing.state);
        if before == standing.state {
            return;
        }
        let excluded: Vec<&str> = standing.excluded.iter().map(|n| n.as_str()).collect();
        if standing.state == MemberState::Excluded {
            tracing::warn!(
                node = %self.node.id, ?excluded,
                "this node takes no shard: it cannot authenticate with the running cluster's members \
                 (see inspect().membership for each member and why; every node needs the same auth_token)"
            );
        } else if before == MemberState::Excluded {
            tracing::info!(node = %self.node.id, state = ?standing.state, "this node may take shards again");
        }
    }

    fn probe(&mut self, idx: usize) {
        let s = &mut self.shards[idx];
        s.busy = true;
        let (node, name) = (Arc::clone(&self.node), s.name.clone());
        self.spawn_op(async move {
            let free =
                matches!(tokio::time::timeout(node.cfg.lease_store_timeout, node.store.get(&name)).await, Ok(Ok(None)));
            Done::Probed { idx, free }
        });
    }

    /// Stops the shard's activations, then releases the lease and tells
    /// the peers.
    fn hand_over(&mut self, idx: usize, now: Instant) {
        let s = &mut self.shards[idx];
        let kill_at = s.stop_deadline(now);
        let Some(epoch) = s.fsm.start_release() else { return };
        s.busy = true;
        tracing::debug!(lease = %s.name, %epoch, "handing the shard over");
        self.node.counters.lease_event("handed_over");
        let stopping = s.host.revoke(s.shard, ExitReason::Shutdown, kill_at);
        let (node, name, registry, shard) = (Arc::clone(&self.node), s.name.clone(), s.host.id().to_string(), s.shard);
        let span = tracing::debug_span!("lease_handover", registry = %registry, shard, epoch = epoch.0);
        self.observe(idx, epoch, |registry, shard, epoch| NodeEvent::ShardHandedOver { registry, shard, epoch });
        let stopped = self.stopped_event(idx, epoch);
        self.spawn_op(
            async move {
                if mutant!(ReleaseBeforeStop) {
                    release_and_notify(&node, &name, registry, shard, epoch).await;
                    stopping.await;
                    stopped();
                    return Done::Released { idx };
                }
                stopping.await;
                stopped();
                release_and_notify(&node, &name, registry, shard, epoch).await;
                Done::Released { idx }
            }
            .instrument(span),
        );
    }

    /// Graceful shutdown: stop every held shard's activations, release the
    /// leases, tell the peers; then wait (bounded) for acquisitions in
    /// flight and give back any that succeed.
    async fn shutdown(&mut self, done_rx: &mut mpsc::UnboundedReceiver<Done>) {
        let now = Instant::now();
        let mut stopping = Vec::new();
        let mut releases = Vec::new();
        for s in &mut self.shards {
            let kill_at = s.stop_deadline(now);
            if let Some(epoch) = s.fsm.start_release() {
                stopping.push((
                    s.host.revoke(s.shard, ExitReason::Shutdown, kill_at),
                    s.host.id().to_string(),
                    s.shard,
                    epoch,
                ));
                releases.push((s.name.clone(), s.host.id().to_string(), s.shard, epoch));
            }
        }
        if mutant!(ReleaseBeforeStop) {
            for (name, registry, shard, epoch) in releases.drain(..) {
                release_and_notify(&self.node, &name, registry, shard, epoch).await;
            }
        }
        for (stop, registry, shard, epoch) in stopping {
            stop.await;
            self.node.emit(|| NodeEvent::ShardStopped { registry, shard, epoch: epoch.0 });
        }
        for (name, registry, shard, epoch) in releases {
            release_and_notify(&self.node, &name, registry, shard, epoch).await;
        }
        // Acquisitions and handovers in flight: give back what they win.
        let bound = Instant::now() + self.node.cfg.lease_store_timeout;
        while self.shards.iter().any(|s| s.busy && s.fsm.phase() != Phase::Free) {
            match tokio::time::timeout_at(bound, done_rx.recv()).await {
                Ok(Some(Done::Acquired { idx, result, .. })) => {
                    let s = &mut self.shards[idx];
                    s.busy = false;
                    s.fsm.abandon();
                    if let Acquired::Release(epoch) = s.fsm.on_acquired(result, Instant::now(), false) {
                        let name = s.name.clone();
                        let release = self.node.store.release(&name, &self.node.session, epoch);
                        let _ = tokio::time::timeout(self.node.cfg.lease_store_timeout, release).await;
                    }
                }
                Ok(Some(Done::Released { idx })) => {
                    let s = &mut self.shards[idx];
                    s.busy = false;
                    s.fsm.on_released();
                }
                Ok(Some(Done::Probed { idx, .. })) => self.shards[idx].busy = false,
                Ok(Some(Done::Stopped { idx })) => self.shards[idx].stopping = false,
                Ok(Some(Done::Renewed { .. })) => {}
                Ok(None) | Err(_) => break,
            }
        }
    }
}

impl ShardState {
    /// When activations still running after a stop request are killed: the
    /// registry's stop timeout, but never past the lease's local deadline
    /// (renewals stop while a shard is being released).
    fn stop_deadline(&self, now: Instant) -> Instant {
        let by_timeout = now + self.host.stop_timeout();
        self.fsm.held().map_or(by_timeout, |h| by_timeout.min(h.deadline))
    }
}

/// Releases the lease, then tells the peers (a handover, or shutdown).
/// Counted as `released` and emitted as `ShardReleased` when the store
/// confirms it.
async fn release_and_notify(node: &Shared, name: &str, registry: String, shard: u32, epoch: Epoch) {
    let span = tracing::debug_span!(
        "lease_release",
        registry = %registry,
        shard,
        epoch = epoch.0,
        outcome = tracing::field::Empty,
    );
    let op = node.store.release(name, &node.session, epoch).instrument(span.clone());
    let outcome = match tokio::time::timeout(node.cfg.lease_store_timeout, op).await {
        Ok(Ok(true)) => {
            node.counters.lease_event("released");
            let registry = registry.clone();
            node.emit(|| NodeEvent::ShardReleased { registry, shard, epoch: epoch.0 });
            "released"
        }
        Ok(Ok(false)) => "not_held",
        Ok(Err(e)) => {
            tracing::warn!(parent: &span, lease = %name, error = %e, "release failed; the lease will expire");
            "store_error"
        }
        Err(_) => {
            tracing::warn!(parent: &span, lease = %name, "release timed out; the lease will expire");
            "timed_out"
        }
    };
    span.record("outcome", outcome);
    node.forget_owner(&registry, shard);
    node.broadcast_control(&ControlMsg::LeaseNotice { registry, shard, epoch: epoch.0, owner: None });
}
