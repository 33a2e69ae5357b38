//! A presence and chat service on keyed actors: one `Room` activation per
//! room name, cluster-wide, whichever node a user is connected to.
//!
//! Run with `cargo run -p axactor-cluster --example presence` (about a
//! second, exits 0). Two nodes in one process over the in-memory overlay.
//!
//! Users on node `a` and node `b` join the same room, see each other in
//! its member list, post messages and read the history from either side:
//! every call for the room goes to its single activation, on the node that
//! holds the room's shard. The room's state lives in the activation, so it
//! is kept across calls from any node but starts empty if its shard moves
//! (persist it, fenced, if it must survive; see `fenced_storage`).

use std::collections::BTreeSet;
use std::sync::Arc;
use std::time::Duration;

use axactor::{Context, actor};
use axactor_cluster::{
    ClusterConfig, ClusterNode, InMemoryOverlay, Keyed, KeyedConfig, LeaseStore, MemoryLeaseStore, NodeId,
};

/// Longest history a room keeps (everything an actor holds is bounded).
const HISTORY: usize = 100;

/// One chat room: who is in it, and the last messages.
#[derive(Debug)]
pub struct Room {
    node: String,
    members: BTreeSet<String>,
    history: Vec<(u64, String, String)>,
    next: u64,
}

#[actor(remote)]
impl Room {
    /// `user` enters; returns who is present now.
    #[msg]
    fn join(&mut self, user: String) -> Vec<String> {
        self.members.insert(user);
        self.members.iter().cloned().collect()
    }

    /// `user` leaves.
    #[msg]
    fn leave(&mut self, user: String) {
        self.members.remove(&user);
    }

    /// `user` posts `text`; returns its sequence number (0 if not a member).
    #[msg]
    fn say(&mut self, user: String, text: String) -> u64 {
        if !self.members.contains(&user) {
            return 0;
        }
        self.next += 1;
        self.history.push((self.next, user, text));
        if self.history.len() > HISTORY {
            self.history.remove(0);
        }
        self.next
    }

    /// Messages after `since`.
    #[msg]
    fn history(&mut self, since: u64) -> Vec<(u64, String, String)> {
        self.history.iter().filter(|(n, _, _)| *n > since).cloned().collect()
    }

    /// Who is present, and which node hosts the room (for the example's output).
    #[msg]
    fn who(&mut self, ctx: &mut Context) -> (Vec<String>, String, u64) {
        let epoch = ctx.fence().map_or(0, |f| f.epoch);
        (self.members.iter().cloned().collect(), self.node.clone(), epoch)
    }
}

fn rooms(node: &ClusterNode, name: &'static str) -> Result<Keyed<Room>, axactor_cluster::ClusterError> {
    node.keyed("rooms", KeyedConfig::new(16), move |_room: &str| Room {
        node: name.to_string(),
        members: BTreeSet::new(),
        history: Vec::new(),
        next: 0,
    })
}

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let net = InMemoryOverlay::new();
    let store: Arc<dyn LeaseStore> = Arc::new(MemoryLeaseStore::new());
    let cfg = ClusterConfig {
        auth_token: Some("presence example: a shared secret, 32+ characters".into()),
        // Hand shards to a newly joined node soon (the default waits 5 s).
        rebalance_settle: Duration::from_millis(300),
        ..ClusterConfig::default()
    };
    let a = ClusterNode::start(NodeId::new("a"), Arc::clone(&store), net.clone(), cfg.clone()).await?;
    let b = ClusterNode::start(NodeId::new("b"), Arc::clone(&store), net.clone(), cfg).await?;
    let (rooms_a, rooms_b) = (rooms(&a, "a")?, rooms(&b, "b")?);
    // Until both nodes hold some of the rooms' shards (bounded).
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    while (a.inspect().owned_count("rooms") == 0 || b.inspect().owned_count("rooms") == 0)
        && tokio::time::Instant::now() < deadline
    {
        tokio::time::sleep(Duration::from_millis(50)).await;
    }

    println!("1. ada (on node a) and bo (on node b) join #rust");
    println!("  ada sees {:?}", rooms_a.get("rust").join("ada".into()).await?);
    println!("  bo sees  {:?}", rooms_b.get("rust").join("bo".into()).await?);
    let (members, host, epoch) = rooms_b.get("rust").who().await?;
    println!("  #rust is hosted on node {host} (epoch {epoch}); present: {members:?}");

    println!("2. they talk; each reads the history through their own node");
    rooms_a.get("rust").say("ada".into(), "hello from a".into()).await?;
    rooms_b.get("rust").say("bo".into(), "hi ada, this is b".into()).await?;
    println!(
        "  stranger posts: seq {} (refused: not a member)",
        rooms_a.get("rust").say("eve".into(), "spam".into()).await?
    );
    for (user, via) in [("ada", &rooms_a), ("bo", &rooms_b)] {
        for (n, from, text) in via.get("rust").history(0).await? {
            println!("  {user} reads #{n} <{from}> {text}");
        }
    }

    println!("3. other rooms are other activations, possibly on the other node");
    for room in ["go", "zig", "ocaml", "haskell", "c"] {
        rooms_a.get(room).join("ada".into()).await?;
        let (_, host, _) = rooms_a.get(room).who().await?;
        println!("  #{room} on node {host}");
    }

    println!("4. bo leaves #rust");
    rooms_b.get("rust").leave_wait("bo".into()).await?;
    println!("  present: {:?}", rooms_a.get("rust").who().await?.0);

    a.shutdown().await;
    b.shutdown().await;
    println!("done");
    Ok(())
}
