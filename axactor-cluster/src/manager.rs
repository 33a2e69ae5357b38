//! The lease driver: one task per node that owns every shard's
//! [`ShardLease`] state machine and acts on its decisions.
//!
//! The decisions (what to do on a poll, a placement pass or a store answer)
//! are `crate::shard::lease_plan`'s; this driver reads the clock once per
//! pass, does the store I/O and the timers, and carries out the returned
//! steps.
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
use tokio::sync::{mpsc, oneshot};
use tokio::time::{Instant, MissedTickBehavior};
use tracing::Instrument;

use crate::counter_reasons::LeaseEvent;
use crate::env::NodeEvent;
use crate::hosted::HostedRegistry;
use crate::lease::{Epoch, GroupGrant, LeaseGroup};
use crate::node::hosts::DriverCmd;
use crate::node::shared::Shared;
use crate::overlay::BoxFuture;
use crate::shard::lease_fsm::LeaseTimes;
use crate::shard::lease_name;
use crate::shard::lease_plan::{LeasePlan, Preference, ShardPlan, Step, registry_candidates};
use crate::shard::placement::{MemberState, MemberView, Standing, assign, standing};
use crate::wire::ControlMsg;

/// Store answers applied per pass of the driver's loop, at most.
const DONE_BATCH: usize = 256;

struct ShardState {
    host: Arc<dyn HostedRegistry>,
    shard: u32,
    name: String,
    /// The shard's lease and what the driver decides by (see `lease_plan`).
    plan: ShardPlan,
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
    /// The decisions (see `lease_plan`): this driver only does the I/O.
    plan: LeasePlan,
    shards: Vec<ShardState>,
    registries: usize,
    done_tx: mpsc::UnboundedSender<Done>,
}

/// What woke the driver's loop.
enum Wake {
    Shutdown(Option<oneshot::Sender<()>>),
    Done(Done),
    Timer,
    Kick,
    Tick,
}

/// Runs the driver until shutdown.
pub(crate) async fn run(node: Arc<Shared>, mut cmds: mpsc::Receiver<DriverCmd>) {
    let cfg = &node.cfg;
    let times = LeaseTimes::new(cfg.lease_ttl, cfg.renew_interval);
    // The clock is read once here and once per pass of the loop.
    let mut now = Instant::now();
    let plan = LeasePlan::new(times, cfg.rebalance_settle, cfg.max_moves_per_interval, cfg.heartbeat_interval, now);
    let (done_tx, mut done_rx) = mpsc::unbounded_channel();
    let mut tick = tokio::time::interval(cfg.renew_interval);
    tick.set_missed_tick_behavior(MissedTickBehavior::Delay);
    let mut d = Driver { node: Arc::clone(&node), plan, shards: Vec::new(), registries: 0, done_tx };
    loop {
        d.sync_registries(now);
        let renew = !node.hosts.renewal_paused();
        let wake = d.shards.iter().filter_map(|s| s.plan.next_wakeup(renew)).min();
        // Never reached: the placement tick comes first.
        let far = now + Duration::from_secs(3600);
        let woke = tokio::select! {
            biased;
            cmd = cmds.recv() => Wake::Shutdown(cmd.map(|DriverCmd::Shutdown(reply)| reply)),
            Some(done) = done_rx.recv() => Wake::Done(done),
            _ = tokio::time::sleep_until(wake.unwrap_or(far)) => Wake::Timer,
            _ = node.hosts.kicked() => Wake::Kick,
            _ = tick.tick() => Wake::Tick,
        };
        now = Instant::now();
        let place = matches!(woke, Wake::Kick | Wake::Tick);
        let passivate = matches!(woke, Wake::Tick);
        match woke {
            Wake::Shutdown(reply) => {
                d.shutdown(&mut done_rx, now).await;
                if let Some(reply) = reply {
                    let _ = reply.send(());
                }
                return;
            }
            Wake::Done(done) => {
                d.apply(done, now);
                // Answers that arrived together are applied together, then
                // the shards are polled once: a burst of answers (thousands
                // of shards acquired at start) costs one pass, not one per
                // answer, so deadlines are never checked late behind it.
                for _ in 1..DONE_BATCH {
                    let Ok(done) = done_rx.try_recv() else { break };
                    d.apply(done, now);
                }
            }
            Wake::Timer | Wake::Kick | Wake::Tick => {}
        }
        d.poll_all(renew, now);
        if place && renew {
            d.place(now);
        }
        if passivate {
            for h in node.hosts_snapshot() {
                h.passivate(now);
            }
        }
    }
}

impl Driver {
    /// Adds shard states for registries registered since the last look.
    fn sync_registries(&mut self, now: Instant) {
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
                    plan: self.plan.new_shard(),
                });
            }
            self.registries += 1;
            // Read the members afresh before placing the new shards.
            self.plan.registry_added(now);
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

    /// Sends the acquire request `Step::Acquire` asked for.
    fn acquire(&self, idx: usize) {
        let s = &self.shards[idx];
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

    /// Sends a renewal, given up after `bound` (or `lease_store_timeout`).
    fn renew(&self, idx: usize, epoch: Epoch, bound: Duration) {
        let s = &self.shards[idx];
        let (node, name) = (Arc::clone(&self.node), s.name.clone());
        let (registry, count) = (s.host.id().to_string(), u64::from(s.host.shard_count()));
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

    /// Revokes the shard's activations (`Step::Fence`).
    fn fence(&mut self, idx: usize, epoch: Epoch, kill_at: Instant) {
        let s = &self.shards[idx];
        let span = tracing::debug_span!("lease_fence", registry = %s.host.id(), shard = s.shard, epoch = epoch.0);
        let _entered = span.enter();
        tracing::warn!(lease = %s.name, %epoch, "lease lost or unrenewable: fencing the shard");
        self.node.counters.lease_event(LeaseEvent::Fenced);
        self.observe(idx, epoch, |registry, shard, epoch| NodeEvent::ShardFenced { registry, shard, epoch });
        let stopping = s.host.revoke(s.shard, ExitReason::LeaseLost, kill_at);
        self.node.forget_owner(s.host.id(), s.shard);
        let stopped = self.stopped_event(idx, epoch);
        if mutant!(ReacquireWhileStopping) {
            // The deliberate bug: back in placement before they have ended.
            self.shards[idx].plan.on_stopped();
            self.node.spawn(async move {
                stopping.await;
                stopped();
            });
            return;
        }
        // The plan keeps the shard out of placement until they have all ended.
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
        if !self.plan.conflict_changed(s.host.id(), conflict) {
            return;
        }
        let (registry, ours) = (s.host.id().to_string(), s.host.shard_count());
        s.host.set_count_conflict(conflict);
        let Some(theirs) = conflict else { return };
        self.node.counters.lease_event(LeaseEvent::ShardCountConflict);
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

    fn poll_all(&mut self, renew: bool, now: Instant) {
        for idx in 0..self.shards.len() {
            let step = self.plan.poll(&mut self.shards[idx].plan, now, renew);
            self.carry_out(idx, step);
        }
    }

    /// Carries out what the plan decided for shard `idx`.
    fn carry_out(&mut self, idx: usize, step: Option<Step>) {
        let Some(step) = step else { return };
        match step {
            Step::Acquire => self.acquire(idx),
            Step::Probe => self.probe(idx),
            Step::Renew { epoch, bound } => self.renew(idx, epoch, bound),
            Step::Fence { epoch, kill_at } => self.fence(idx, epoch, kill_at),
            Step::HandOver { epoch, kill_at } => self.hand_over(idx, epoch, kill_at),
            Step::Grant(held) => self.grant(idx, held.epoch, held.deadline),
            Step::Extend(held) => {
                let s = &self.shards[idx];
                s.host.extend(s.shard, held.epoch, held.deadline);
            }
            Step::Release(epoch) => self.release_quietly(idx, epoch),
        }
    }

    /// The lease is ours at `epoch` until `deadline`: grant it to the host,
    /// cache this node as the owner and tell the peers.
    fn grant(&self, idx: usize, epoch: Epoch, deadline: Instant) {
        let s = &self.shards[idx];
        tracing::debug!(registry = %s.host.id(), shard = s.shard, epoch = epoch.0, "lease acquired");
        self.node.counters.lease_event(LeaseEvent::Acquired);
        let (registry, shard) = (s.host.id().to_string(), s.shard);
        self.node.emit(|| NodeEvent::ShardAcquired { registry, shard, epoch: epoch.0 });
        s.host.grant(s.shard, epoch, deadline);
        self.node.cache_owner(s.host.id(), s.shard, self.node.session.clone(), epoch);
        self.node.broadcast_control(&ControlMsg::LeaseNotice {
            registry: s.host.id().to_string(),
            shard: s.shard,
            epoch: epoch.0,
            owner: Some(self.node.session.clone()),
        });
    }

    fn apply(&mut self, done: Done, now: Instant) {
        match done {
            Done::Acquired { idx, result, conflict } => {
                self.note_conflict(idx, conflict);
                let step =
                    self.plan.on_acquired(&mut self.shards[idx].plan, result, now, mutant!(ReacquireWhileStopping));
                self.carry_out(idx, step);
            }
            Done::Stopped { idx } => self.shards[idx].plan.on_stopped(),
            Done::Renewed { idx, epoch, result } => {
                let step = self.plan.on_renewed(&mut self.shards[idx].plan, epoch, result, now);
                self.carry_out(idx, step);
            }
            Done::Released { idx } => {
                let s = &mut self.shards[idx];
                s.plan.on_released();
                self.node.forget_owner(s.host.id(), s.shard);
            }
            Done::Probed { idx, free } => {
                let step = self.plan.on_probed(&mut self.shards[idx].plan, free, now);
                if step.is_some() {
                    tracing::debug!(lease = %self.shards[idx].name, "orphaned shard: acquiring");
                }
                self.carry_out(idx, step);
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
    fn place(&mut self, now: Instant) {
        if self.node.is_stopping() {
            return;
        }
        let me = self.node.id.clone();
        let standing = self.standing(now);
        self.note_standing(&standing);
        let mut view = std::collections::BTreeSet::new();
        let mut candidates = std::collections::BTreeMap::new();
        for s in &self.shards {
            if !candidates.contains_key(s.host.id()) {
                let connected = self.node.candidates(s.host.id(), s.host.shard_count());
                let other_count = self.node.hosting_other_count(s.host.id(), s.host.shard_count());
                let all = registry_candidates(&connected, &standing.pending, &other_count);
                view.extend(connected.iter().cloned());
                let owners = assign(s.host.id(), s.host.shard_count(), &all);
                candidates.insert(s.host.id().to_string(), (owners, connected));
            }
        }
        self.plan.observe_candidates(&view, now);
        for idx in 0..self.shards.len() {
            let s = &mut self.shards[idx];
            let Some((owners, connected)) = candidates.get(s.host.id()) else { continue };
            let pref = Preference {
                me: &me,
                preferred: owners.get(s.shard as usize),
                connected,
                stop_timeout: s.host.stop_timeout(),
            };
            let step = self.plan.place_shard(&mut s.plan, &pref, now);
            self.carry_out(idx, step);
        }
    }

    /// This node's standing (see [`standing`]), from what the node knows now.
    fn standing(&self, now: Instant) -> Standing {
        let snap = self.node.peers.members().snapshot();
        let authenticated = self.node.peers.names();
        let holding = self.shards.iter().any(|s| s.plan.holding());
        let cfg = &self.node.cfg;
        let members_fresh = self.plan.members_fresh(snap.last_read);
        if !members_fresh {
            self.node.peers.members().await_read();
        }
        standing(&MemberView {
            members_fresh,
            waiting_since: self.plan.waiting_since(),
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
        self.plan.set_standing(standing.state);
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

    /// Reads the lease (`Step::Probe`).
    fn probe(&self, idx: usize) {
        let s = &self.shards[idx];
        let (node, name) = (Arc::clone(&self.node), s.name.clone());
        self.spawn_op(async move {
            let free =
                matches!(tokio::time::timeout(node.cfg.lease_store_timeout, node.store.get(&name)).await, Ok(Ok(None)));
            Done::Probed { idx, free }
        });
    }

    /// Stops the shard's activations, then releases the lease and tells
    /// the peers (`Step::HandOver`).
    fn hand_over(&self, idx: usize, epoch: Epoch, kill_at: Instant) {
        let s = &self.shards[idx];
        tracing::debug!(lease = %s.name, %epoch, "handing the shard over");
        self.node.counters.lease_event(LeaseEvent::HandedOver);
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
    async fn shutdown(&mut self, done_rx: &mut mpsc::UnboundedReceiver<Done>, now: Instant) {
        let mut stopping = Vec::new();
        let mut releases = Vec::new();
        for s in &mut self.shards {
            if let Some((epoch, kill_at)) = s.plan.start_shutdown(now, s.host.stop_timeout()) {
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
        // All at once: each stop kills what overruns its own deadline only
        // while it is polled, and a shard whose lease ends first must not
        // wait behind another's slow stop.
        let (stops, stopped): (Vec<_>, Vec<_>) =
            stopping.into_iter().map(|(stop, registry, shard, epoch)| (stop, (registry, shard, epoch))).unzip();
        join_all(stops).await;
        for (registry, shard, epoch) in stopped {
            self.node.emit(|| NodeEvent::ShardStopped { registry, shard, epoch: epoch.0 });
        }
        for (name, registry, shard, epoch) in releases {
            release_and_notify(&self.node, &name, registry, shard, epoch).await;
        }
        // Acquisitions and handovers in flight: give back what they win.
        let bound = Instant::now() + self.node.cfg.lease_store_timeout;
        while self.shards.iter().any(|s| s.plan.in_flight()) {
            match tokio::time::timeout_at(bound, done_rx.recv()).await {
                Ok(Some(Done::Acquired { idx, result, .. })) => {
                    let s = &mut self.shards[idx];
                    if let Some(epoch) = s.plan.on_acquired_at_shutdown(result, Instant::now()) {
                        let name = s.name.clone();
                        let release = self.node.store.release(&name, &self.node.session, epoch);
                        let _ = tokio::time::timeout(self.node.cfg.lease_store_timeout, release).await;
                    }
                }
                Ok(Some(Done::Released { idx })) => self.shards[idx].plan.on_released(),
                Ok(Some(Done::Probed { idx, .. })) => self.shards[idx].plan.on_probe_ended(),
                Ok(Some(Done::Stopped { idx })) => self.shards[idx].plan.on_stopped(),
                Ok(Some(Done::Renewed { .. })) => {}
                Ok(None) | Err(_) => break,
            }
        }
    }
}

/// Polls every future of `futs` until all have completed.
async fn join_all(mut futs: Vec<BoxFuture<'static, ()>>) {
    std::future::poll_fn(|cx| {
        futs.retain_mut(|f| f.as_mut().poll(cx).is_pending());
        if futs.is_empty() { std::task::Poll::Ready(()) } else { std::task::Poll::Pending }
    })
    .await
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
            node.counters.lease_event(LeaseEvent::Released);
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

#[cfg(test)]
mod tests {
    use std::sync::Mutex;

    use super::*;

    /// A shutdown's stops run at once: one whose kill deadline comes first
    /// ends at it, not after a slower one before it in the list (simulation
    /// seed 39161: an activation outlived its grant while the shutdown
    /// awaited another shard's stop).
    #[tokio::test(start_paused = true)]
    async fn every_stop_is_polled_at_once() {
        let t0 = Instant::now();
        let ended = Arc::new(Mutex::new(Vec::new()));
        let stop = |name: &'static str, took: Duration| -> BoxFuture<'static, ()> {
            let ended = Arc::clone(&ended);
            Box::pin(async move {
                tokio::time::sleep(took).await;
                ended.lock().expect("not poisoned").push((name, t0.elapsed()));
            })
        };
        join_all(vec![stop("slow", Duration::from_secs(5)), stop("due first", Duration::from_millis(100))]).await;
        let ended = ended.lock().expect("not poisoned").clone();
        assert_eq!(ended, vec![("due first", Duration::from_millis(100)), ("slow", Duration::from_secs(5))]);
    }
}
