//! The bank's external storage: account balances in a small fenced store
//! outside the actors, as a database would be.
//!
//! Every write carries the writer's [`Fence`] (from `ctx.fence()`). The
//! store keeps, per shard, the highest epoch it has seen and refuses a write
//! with a lower one: once a new owner has written under epoch `e'`, nothing
//! from an older owner (epoch `e < e'`) lands, however late it arrives.
//!
//! Writes are idempotent by operation id (one id per withdrawal or deposit),
//! so a client may retry a step whose outcome it does not know (a timeout,
//! a failover) without moving money twice.
//!
//! [`Ledger::hold`] models a write that is slow on the network: it is
//! applied only when the demo calls [`Ledger::release_held`], whether or not
//! the node that sent it is still alive.

use std::collections::{BTreeMap, HashMap};

use axactor::Fence;
use parking_lot::Mutex;
use serde::{Deserialize, Serialize};
use tokio::sync::oneshot;

/// What a write did.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) enum Outcome {
    /// The balance changed (or, for a replayed operation, had changed).
    Applied,
    /// A withdrawal larger than the balance: nothing changed.
    Insufficient,
}

/// Why the store refused a write.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, thiserror::Error)]
pub(crate) enum WriteError {
    /// The writer's epoch is older than one the store has seen for the shard.
    #[error("stale epoch {epoch}: the store has seen epoch {seen} for shard {shard}")]
    Stale {
        /// The shard written to.
        shard: u32,
        /// The writer's epoch.
        epoch: u64,
        /// The highest epoch the store has seen for the shard.
        seen: u64,
    },
    /// The writer is not a cluster activation (`ctx.fence()` was `None`).
    #[error("write without a fence")]
    Unfenced,
}

/// A write held back by [`Ledger::hold`].
#[derive(Debug)]
struct Held {
    fence: Fence,
    account: String,
    op: u64,
    delta: i64,
    reply: oneshot::Sender<Result<Outcome, WriteError>>,
}

#[derive(Debug, Default)]
struct Inner {
    balances: BTreeMap<String, i64>,
    /// Outcome of every applied operation, by (account, operation id).
    done: HashMap<(String, u64), Outcome>,
    /// Highest epoch seen, by (registry, shard).
    highest: HashMap<(String, u32), u64>,
    held: Vec<Held>,
}

/// The fenced balance store. Shared by every node of the demo (it stands
/// for a database all of them can reach).
#[derive(Debug, Default)]
pub(crate) struct Ledger {
    inner: Mutex<Inner>,
}

impl Ledger {
    /// A ledger where each of `accounts` holds `balance`.
    pub(crate) fn new(accounts: &[String], balance: i64) -> Ledger {
        let balances = accounts.iter().map(|a| (a.clone(), balance)).collect();
        Ledger { inner: Mutex::new(Inner { balances, ..Inner::default() }) }
    }

    /// Adds `delta` to `account` under operation id `op`, fenced by `fence`.
    ///
    /// # Errors
    /// [`WriteError::Stale`] when the store has seen a newer epoch for the
    /// shard, [`WriteError::Unfenced`] without a fence.
    pub(crate) fn apply(
        &self,
        fence: Option<&Fence>,
        account: &str,
        op: u64,
        delta: i64,
    ) -> Result<Outcome, WriteError> {
        let fence = fence.ok_or(WriteError::Unfenced)?;
        let mut inner = self.inner.lock();
        inner.apply(fence, account, op, delta)
    }

    /// Records `fence`'s epoch for its shard without changing any balance:
    /// the first write of a new owner.
    ///
    /// # Errors
    /// As [`Ledger::apply`].
    pub(crate) fn touch(&self, fence: Option<&Fence>) -> Result<(), WriteError> {
        let fence = fence.ok_or(WriteError::Unfenced)?;
        self.inner.lock().check(fence)
    }

    /// Accepts a write that is held "in the network" until
    /// [`Ledger::release_held`]; the answer goes to the returned receiver.
    pub(crate) fn hold(
        &self,
        fence: Option<&Fence>,
        account: &str,
        op: u64,
        delta: i64,
    ) -> oneshot::Receiver<Result<Outcome, WriteError>> {
        let (reply, rx) = oneshot::channel();
        match fence {
            Some(fence) => self.inner.lock().held.push(Held {
                fence: fence.clone(),
                account: account.to_string(),
                op,
                delta,
                reply,
            }),
            None => {
                let _ = reply.send(Err(WriteError::Unfenced));
            }
        }
        rx
    }

    /// How many writes are held.
    pub(crate) fn held(&self) -> usize {
        self.inner.lock().held.len()
    }

    /// Delivers the held writes now: each is applied or refused as if it
    /// had just arrived. Returns `(epoch it carried, result)` per write.
    pub(crate) fn release_held(&self) -> Vec<(u64, Result<Outcome, WriteError>)> {
        let mut inner = self.inner.lock();
        let held = std::mem::take(&mut inner.held);
        held.into_iter()
            .map(|h| {
                let result = inner.apply(&h.fence, &h.account, h.op, h.delta);
                // The sender may be gone (its node crashed): the write landed
                // or was refused all the same.
                let _ = h.reply.send(result);
                (h.fence.epoch, result)
            })
            .collect()
    }

    /// The sum of all balances.
    pub(crate) fn total(&self) -> i64 {
        self.inner.lock().balances.values().sum()
    }
}

impl Inner {
    fn check(&mut self, fence: &Fence) -> Result<(), WriteError> {
        let seen = self.highest.entry((fence.registry.clone(), fence.shard)).or_insert(0);
        if fence.epoch < *seen {
            return Err(WriteError::Stale { shard: fence.shard, epoch: fence.epoch, seen: *seen });
        }
        *seen = fence.epoch;
        Ok(())
    }

    fn apply(&mut self, fence: &Fence, account: &str, op: u64, delta: i64) -> Result<Outcome, WriteError> {
        self.check(fence)?;
        if let Some(outcome) = self.done.get(&(account.to_string(), op)) {
            return Ok(*outcome);
        }
        let balance = self.balances.entry(account.to_string()).or_insert(0);
        let outcome = if *balance + delta < 0 {
            Outcome::Insufficient
        } else {
            *balance += delta;
            Outcome::Applied
        };
        self.done.insert((account.to_string(), op), outcome);
        Ok(outcome)
    }
}
