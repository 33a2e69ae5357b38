//! The keyed bank actor: one activation per account, cluster-wide. It holds
//! no balance itself (an activation's state is lost when its shard moves):
//! every handler writes to the [`Ledger`] under the fence it runs with.

use std::sync::Arc;

use axactor::{Context, actor};
use serde::{Deserialize, Serialize};

use crate::ledger::{Ledger, Outcome, WriteError};

/// The registry id of the bank.
pub(crate) const REGISTRY: &str = "bank";

/// What an account handler answers: who served it, under which epoch, and
/// what the store did.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub(crate) struct Reply {
    /// The node that ran the handler.
    pub node: String,
    /// The lease epoch it ran under (0 outside the cluster).
    pub epoch: u64,
    /// The store's answer.
    pub result: Result<Outcome, WriteError>,
}

/// One account's activation.
#[derive(Debug)]
pub(crate) struct Account {
    key: String,
    node: String,
    ledger: Arc<Ledger>,
}

impl Account {
    /// The activation of `key` on `node`.
    pub(crate) fn new(key: &str, node: &str, ledger: Arc<Ledger>) -> Account {
        Account { key: key.to_string(), node: node.to_string(), ledger }
    }

    fn reply(&self, ctx: &Context, result: Result<Outcome, WriteError>) -> Reply {
        Reply { node: self.node.clone(), epoch: ctx.fence().map_or(0, |f| f.epoch), result }
    }
}

#[actor(remote)]
impl Account {
    /// Takes `amount` out (operation `op`; a replay returns the first outcome).
    #[msg]
    fn withdraw(&mut self, ctx: &mut Context, op: u64, amount: i64) -> Reply {
        let result = self.ledger.apply(ctx.fence().as_ref(), &self.key, op, -amount);
        self.reply(ctx, result)
    }

    /// Puts `amount` in (operation `op`).
    #[msg]
    fn deposit(&mut self, ctx: &mut Context, op: u64, amount: i64) -> Reply {
        let result = self.ledger.apply(ctx.fence().as_ref(), &self.key, op, amount);
        self.reply(ctx, result)
    }

    /// Writes nothing but this owner's epoch (a new owner's first write).
    #[msg]
    fn touch(&mut self, ctx: &mut Context) -> Reply {
        let result = self.ledger.touch(ctx.fence().as_ref()).map(|()| Outcome::Applied);
        self.reply(ctx, result)
    }

    /// A withdrawal whose write is slow on the network: it reaches the
    /// store only when the demo releases it, possibly after this node died.
    #[msg]
    async fn withdraw_slowly(&mut self, ctx: &mut Context, op: u64, amount: i64) -> Reply {
        let pending = self.ledger.hold(ctx.fence().as_ref(), &self.key, op, -amount);
        let result = pending.await.unwrap_or(Err(WriteError::Unfenced));
        self.reply(ctx, result)
    }
}
