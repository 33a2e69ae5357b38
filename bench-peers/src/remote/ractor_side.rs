//! ractor_cluster: two `NodeServer`s (cookie authentication, no
//! encryption). The server's echo actor joins the process group `echo`;
//! the client connects, waits until the group shows the remote actor, and
//! `call`s it.

use std::any::Any;
use std::net::{IpAddr, Ipv4Addr};
use std::time::Duration;

use ractor::{Actor, ActorProcessingErr, ActorRef, RpcReplyPort};
use ractor_cluster::{NodeServer, RactorClusterMessage};

use super::{Asker, PAYLOAD, SECRET};

const GROUP: &str = "echo";

/// The echo actor's messages (serialisable: sent over the network).
#[derive(RactorClusterMessage)]
pub enum EchoMsg {
    /// Replies with its payload.
    #[rpc]
    Echo(Vec<u8>, RpcReplyPort<Vec<u8>>),
}

/// The echo actor.
#[derive(Debug)]
pub struct EchoActor;

impl Actor for EchoActor {
    type Msg = EchoMsg;
    type State = ();
    type Arguments = ();

    async fn pre_start(&self, _me: ActorRef<EchoMsg>, _: ()) -> Result<(), ActorProcessingErr> {
        Ok(())
    }

    async fn handle(&self, _me: ActorRef<EchoMsg>, msg: EchoMsg, _: &mut ()) -> Result<(), ActorProcessingErr> {
        match msg {
            EchoMsg::Echo(data, reply) => {
                let _ = reply.send(data);
            }
        }
        Ok(())
    }
}

async fn node(name: &str, port: u16) -> ActorRef<ractor_cluster::NodeServerMessage> {
    let server = NodeServer::new(port, SECRET.to_string(), name.to_string(), "localhost".to_string(), None, None)
        .with_listen_addr(IpAddr::V4(Ipv4Addr::LOCALHOST));
    let (r, _join) = Actor::spawn(None, server, ()).await.expect("node server");
    r
}

/// Server: a node with the echo actor in the group.
pub async fn serve(args: &[String]) -> Box<dyn Any> {
    let server = node("server", args[0].parse().expect("port")).await;
    let (echo, _join) = Actor::spawn(None, EchoActor, ()).await.expect("echo actor");
    ractor::pg::join(GROUP.to_string(), vec![echo.get_cell()]);
    Box::new((server, echo))
}

/// The client: the remote echo actor's ref.
#[derive(Clone)]
pub struct Client(ActorRef<EchoMsg>);

/// Starts the client node, connects and finds the remote actor.
pub async fn connect(args: &[String]) -> Client {
    let me = node("client", args[1].parse().expect("port")).await;
    let addr = format!("127.0.0.1:{}", args[0]);
    for _ in 0..200 {
        if ractor_cluster::client_connect(&me, addr.as_str()).await.is_ok() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    for _ in 0..1_000 {
        let remote = ractor::pg::get_members(&GROUP.to_string()).into_iter().find(|c| !c.get_id().is_local());
        if let Some(cell) = remote {
            std::mem::forget(me);
            return Client(ActorRef::from(cell));
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    panic!("the remote echo actor never appeared in the process group");
}

impl Asker for Client {
    async fn call(&self) {
        let out = self.0.call(|reply| EchoMsg::Echo(vec![7; PAYLOAD], reply), None).await.expect("remote call");
        std::hint::black_box(out);
    }
}
