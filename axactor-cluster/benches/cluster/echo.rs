//! The benchmark actor: `echo` (the measured ask) and `node` (which node
//! runs the activation, for failover and handover).

use std::sync::Arc;

use axactor::actor;

/// Echoes its argument; knows the name of the node it runs on.
pub(crate) struct Echo {
    node: Arc<str>,
}

impl Echo {
    /// An activation on `node`.
    pub(crate) fn new(node: &str) -> Echo {
        Echo { node: Arc::from(node) }
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
}
