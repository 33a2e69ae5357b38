//! One authenticated connection's queues as the rest of the node sees
//! them: [`PeerQueues`] (the data and control senders, the negotiated
//! version, and the connection's write path) and [`PeerLink`], the handle a
//! request takes of a connection. Plain types: no state of their own.

use std::sync::Arc;

use tokio::sync::mpsc;

use super::outbound::Outbound;
use super::table::ConnId;
use super::write_path::ConnShared;
use crate::wire::ControlMsg;

/// The queues of one authenticated connection (to its writer).
#[derive(Debug)]
pub(crate) struct PeerQueues {
    pub(crate) data: mpsc::Sender<Outbound>,
    pub(crate) control: mpsc::Sender<ControlMsg>,
    /// The protocol version the session negotiated.
    pub(crate) version: u16,
    /// The connection's write path, which a sender may take itself.
    pub(crate) shared: Arc<ConnShared>,
}

/// One authenticated connection, as a request uses it: its id and its
/// queues (one shared handle: cloning two senders per request made every
/// request touch four shared counters).
#[derive(Debug, Clone)]
pub(crate) struct PeerLink {
    pub(crate) conn: ConnId,
    queues: Arc<PeerQueues>,
}

impl PeerLink {
    /// The link of connection `conn` over `queues`.
    #[inline]
    pub(crate) fn new(conn: ConnId, queues: Arc<PeerQueues>) -> PeerLink {
        PeerLink { conn, queues }
    }
}

impl std::ops::Deref for PeerLink {
    type Target = PeerQueues;

    fn deref(&self) -> &PeerQueues {
        &self.queues
    }
}
