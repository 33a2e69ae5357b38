//! The benchmark actor: `echo` (the measured ask), `node` (which node runs
//! the activation, for failover and handover), and `absorb` / `absorbed`
//! (the measured one-way tell and the count that closes a stream of them).

use std::sync::Arc;

use axactor::actor;

/// Echoes its argument; knows the name of the node it runs on.
pub(crate) struct Echo {
    node: Arc<str>,
    absorbed: u64,
}

impl Echo {
    /// An activation on `node`.
    pub(crate) fn new(node: &str) -> Echo {
        Echo { node: Arc::from(node), absorbed: 0 }
    }
}

#[actor(remote)]
impl Echo {
    /// Replies with `data`.
    #[msg]
    fn echo(&mut self, data: Vec<u8>) -> Vec<u8> {
        data
    }

    /// The name of the node running this activation.
    #[msg]
    fn node(&mut self) -> String {
        self.node.to_string()
    }

    /// Counts a tell (its payload the size of `echo`'s).
    #[msg]
    fn absorb(&mut self, data: Vec<u8>) {
        self.absorbed += data.len().min(1) as u64;
    }

    /// Tells counted so far.
    #[msg]
    fn absorbed(&mut self) -> u64 {
        self.absorbed
    }
}
