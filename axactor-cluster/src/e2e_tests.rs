//! End-to-end tests of routing and fencing inside the crate, with a
//! hand-written `RemoteActor` impl (what `#[actor(remote)]` generates).

use std::sync::Arc;
use std::time::Duration;

use axactor::{Context, ExitReason, LocalRef, RefContract, actor};
use serde::{Deserialize, Serialize};
use tokio::sync::mpsc;

use crate::remote::{PendingReply, RemoteActor, RemoteHandle};
use crate::{ClusterConfig, ClusterNode, InMemoryOverlay, KeyedConfig, MemoryLeaseStore, NodeId, RemoteError};

/// Events seen by the test actors: (node, key, what).
type Log = mpsc::UnboundedSender<(String, String, String)>;

pub(crate) struct Acct {
    node: String,
    key: String,
    balance: i64,
    log: Log,
}

#[actor]
impl Acct {
    #[msg]
    fn deposit(&mut self, amount: i64) {
        self.balance += amount;
    }
    #[msg]
    fn balance(&mut self) -> i64 {
        self.balance
    }
    async fn on_start(&mut self, ctx: &mut Context) {
        let fence = ctx.fence().map(|f| f.epoch).unwrap_or(0);
        let _ = self.log.send((self.node.clone(), self.key.clone(), format!("start e{fence}")));
    }
    async fn on_stop(&mut self, _ctx: &mut Context, reason: &ExitReason) {
        let _ = self.log.send((self.node.clone(), self.key.clone(), format!("stop {reason}")));
    }
}

#[derive(Debug, Serialize, Deserialize)]
pub(crate) enum AcctTell {
    Deposit { amount: i64 },
}
#[derive(Debug, Serialize, Deserialize)]
pub(crate) enum AcctAsk {
    Balance {},
}
#[derive(Debug, Serialize, Deserialize)]
pub(crate) enum AcctReply {
    Balance(i64),
}
pub(crate) struct AcctContract;
impl RefContract for AcctContract {
    type Tell = AcctTell;
    type Ask = AcctAsk;
    type Reply = AcctReply;
}

#[derive(Clone, Debug)]
pub(crate) struct AcctRemote(RemoteHandle<Acct>);

impl AcctRemote {
    async fn deposit_wait(&self, amount: i64) -> Result<(), RemoteError> {
        self.0.tell_wait(AcctTell::Deposit { amount }).await
    }
    async fn deposit(&self, amount: i64) -> Result<(), RemoteError> {
        self.0.tell(AcctTell::Deposit { amount }).await
    }
    async fn balance(&self) -> Result<i64, RemoteError> {
        match self.0.ask(AcctAsk::Balance {}, None).await? {
            AcctReply::Balance(v) => Ok(v),
        }
    }
}

impl RemoteActor for Acct {
    type Contract = AcctContract;
    type RemoteRef = AcctRemote;
    fn remote_ref(handle: RemoteHandle<Self>) -> AcctRemote {
        AcctRemote(handle)
    }
    fn local_ref(actor: &AcctRef) -> LocalRef<AcctMsg> {
        actor.as_local_ref()
    }
    fn tell_message(tell: AcctTell) -> AcctMsg {
        match tell {
            AcctTell::Deposit { amount } => AcctMsg::Deposit { amount },
        }
    }
    fn ask_message(ask: AcctAsk) -> (AcctMsg, PendingReply<AcctReply>) {
        match ask {
            AcctAsk::Balance {} => {
                let (tx, rx) = axactor::ReplyTo::channel();
                (AcctMsg::Balance { __reply: tx }, Box::pin(async move { rx.await.ok().map(AcctReply::Balance) }))
            }
        }
    }
}

fn cfg() -> ClusterConfig {
    ClusterConfig {
        auth_token: Some("t".into()),
        lease_ttl: Duration::from_millis(1000),
        renew_interval: Duration::from_millis(300),
        node_ttl: Duration::from_millis(1000),
        heartbeat_interval: Duration::from_millis(100),
        request_timeout: Duration::from_millis(2000),
        rebalance_settle: Duration::from_millis(500),
        ..ClusterConfig::default()
    }
}

fn factory(node: &str, log: &Log) -> impl Fn(&str) -> Acct + Send + Sync + 'static {
    let (node, log) = (node.to_string(), log.clone());
    move |key: &str| Acct { node: node.clone(), key: key.to_string(), balance: 0, log: log.clone() }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_nodes_route_to_one_activation() {
    let net = InMemoryOverlay::new();
    let store = Arc::new(MemoryLeaseStore::new());
    let (log, mut events) = mpsc::unbounded_channel();
    let a = ClusterNode::start(NodeId::new("a"), store.clone(), net.clone(), cfg()).await.expect("a");
    let b = ClusterNode::start(NodeId::new("b"), store.clone(), net.clone(), cfg()).await.expect("b");
    let ka = a.keyed("accounts", KeyedConfig::new(8), factory("a", &log)).expect("keyed a");
    let kb = b.keyed("accounts", KeyedConfig::new(8), factory("b", &log)).expect("keyed b");
    for i in 0..20 {
        ka.get(format!("k{i}")).deposit_wait(1).await.expect("deposit");
        ka.get(format!("k{i}")).deposit(1).await.expect("deposit unacked");
    }
    for i in 0..20 {
        assert_eq!(kb.get(format!("k{i}")).balance().await.expect("balance"), 2);
        assert_eq!(ka.get(format!("k{i}")).balance().await.expect("balance"), 2);
    }
    let (ia, ib) = (a.inspect(), b.inspect());
    assert_eq!(ia.owned_count("accounts") + ib.owned_count("accounts"), 8, "{:?} {:?}", ia.shards, ib.shards);
    a.shutdown().await;
    // After a's graceful shutdown, b serves every key (state is not carried over).
    for i in 0..20 {
        kb.get(format!("k{i}")).deposit_wait(1).await.expect("deposit after shutdown");
    }
    assert_eq!(b.inspect().owned_count("accounts"), 8);
    b.shutdown().await;
    drop(log);
    let mut starts = std::collections::BTreeMap::<String, i32>::new();
    while let Ok((_node, key, what)) = events.try_recv() {
        let n = starts.entry(key).or_default();
        if what.starts_with("start") {
            *n += 1;
            assert_eq!(*n, 1, "two activations at once");
        } else {
            *n -= 1;
        }
    }
}
