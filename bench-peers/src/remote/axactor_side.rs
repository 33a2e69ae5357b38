//! axactor-cluster: two nodes over `TcpOverlay` with a Redis lease store
//! shared by the two processes. The server registers the registry first
//! and owns every shard (the settle window outlasts the run, so nothing
//! moves to the client); the client asks one key through its `Keyed`.

use std::any::Any;
use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use axactor::actor;
use axactor_cluster::{ClusterConfig, ClusterNode, KeyedConfig, LeaseStore, NodeId, RedisLeaseStore, TcpOverlay};

use super::{Asker, PAYLOAD, SECRET};

const REGISTRY: &str = "echo";
const SHARDS: usize = 16;

/// The echo actor.
#[derive(Debug)]
pub struct Echo;

#[actor(remote)]
impl Echo {
    #[msg]
    fn echo(&mut self, data: Vec<u8>) -> Vec<u8> {
        data
    }
}

fn config() -> ClusterConfig {
    ClusterConfig {
        auth_token: Some(SECRET.into()),
        rebalance_settle: Duration::from_secs(3600),
        ..ClusterConfig::default()
    }
}

async fn start(me: &str, args: &[String]) -> ClusterNode {
    let port = |i: usize| -> SocketAddr { SocketAddr::from(([127, 0, 0, 1], args[i].parse::<u16>().expect("port"))) };
    let book = HashMap::from([("server".to_string(), port(0)), ("client".to_string(), port(1))]);
    let store: Arc<dyn LeaseStore> =
        Arc::new(RedisLeaseStore::connect(&args[2], &format!("peers-{}", args[0])).await.expect("redis"));
    ClusterNode::start(NodeId::new(me), store, TcpOverlay::new(book), config()).await.expect("node starts")
}

async fn until(what: &str, check: impl Fn() -> bool) {
    for _ in 0..2_000 {
        if check() {
            return;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    panic!("timed out waiting for {what}");
}

/// Server: a node owning every shard of the registry.
pub async fn serve(args: &[String]) -> Box<dyn Any> {
    let node = start("server", args).await;
    let keyed = node.keyed(REGISTRY, KeyedConfig::new(SHARDS), |_: &str| Echo).expect("registry");
    until("the server to own every shard", || node.inspect().owned_count(REGISTRY) == SHARDS).await;
    Box::new((node, keyed))
}

/// The client: a `Keyed` handle on a node that owns nothing.
#[derive(Clone)]
pub struct Client(EchoRemoteRef, #[allow(dead_code)] Arc<ClusterNode>);

/// Starts the client node and waits until the server is its peer.
pub async fn connect(args: &[String]) -> Client {
    let node = start("client", args).await;
    let keyed = node.keyed(REGISTRY, KeyedConfig::new(SHARDS), |_: &str| Echo).expect("registry");
    until("the server as a peer", || node.inspect().peers.iter().any(|p| p.name.as_str() == "server")).await;
    let r = keyed.get("bench-key");
    // The first ask finds the owner; retried while the route settles.
    for _ in 0..500 {
        if r.echo(vec![0; PAYLOAD]).await.is_ok() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    assert_eq!(node.inspect().owned_count(REGISTRY), 0, "the client must own nothing");
    Client(r, Arc::new(node))
}

impl Asker for Client {
    async fn call(&self) {
        let out = self.0.echo(vec![7; PAYLOAD]).await.expect("remote ask");
        std::hint::black_box(out);
    }
}
