//! [`Listener`]: where a listening node takes its accepted links from, and
//! [`ListenerHandle`], the overlay's end that offers them (a full backlog
//! or a dropped listener gives the link back: [`OfferError`]).

use std::any::Any;
use std::fmt;
use std::net::SocketAddr;

use tokio::sync::mpsc;

use super::link::Link;

/// Default number of accepted links a [`Listener`] holds before
/// [`Listener::accept`] takes them; further links are refused.
pub const DEFAULT_ACCEPT_BACKLOG: usize = 128;

/// Accepts inbound links for one node. Dropping it stops listening.
///
/// An overlay of your own makes one with [`Listener::channel`].
pub struct Listener {
    rx: mpsc::Receiver<Link>,
    local_addr: Option<SocketAddr>,
    // Unregisters the node (memory) when the listener is dropped.
    _guard: Option<Box<dyn Any + Send + Sync>>,
}

impl Listener {
    pub(crate) fn new(
        rx: mpsc::Receiver<Link>,
        local_addr: Option<SocketAddr>,
        guard: Option<Box<dyn Any + Send + Sync>>,
    ) -> Listener {
        Listener { rx, local_addr, _guard: guard }
    }

    /// A listener holding at most `backlog` accepted links (at least 1)
    /// that the node has not taken yet, and the handle the overlay offers
    /// accepted links through.
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() {
    /// use axactor_cluster::overlay::{LinkConfig, LinkSource, Listener, endpoint};
    ///
    /// let (handle, mut listener) = Listener::channel(8);
    /// let (link, _driver) = endpoint(LinkConfig::default(), "peer", LinkSource::Unknown);
    /// handle.offer(link).unwrap();
    /// assert_eq!(listener.accept().await.unwrap().remote, "peer");
    /// drop(listener);
    /// assert!(handle.is_closed(), "the node stopped listening");
    /// # }
    /// ```
    pub fn channel(backlog: usize) -> (ListenerHandle, Listener) {
        let (tx, rx) = mpsc::channel(backlog.max(1));
        (ListenerHandle { tx }, Listener::new(rx, None, None))
    }

    /// Sets the address [`local_addr`](Self::local_addr) reports.
    pub fn with_local_addr(mut self, addr: SocketAddr) -> Listener {
        self.local_addr = Some(addr);
        self
    }

    /// Keeps `guard` until the listener is dropped (e.g. to unregister the
    /// node's name from the overlay when it stops listening).
    pub fn with_drop_guard(mut self, guard: impl Any + Send + Sync) -> Listener {
        self._guard = Some(Box::new(guard));
        self
    }

    /// The next inbound link; `None` once the overlay stopped accepting.
    ///
    /// # Cancel safety
    /// Cancel safe: a link is never lost by dropping the future.
    pub async fn accept(&mut self) -> Option<Link> {
        self.rx.recv().await
    }

    /// The bound socket address (TCP; `None` in memory). Useful with port 0.
    pub fn local_addr(&self) -> Option<SocketAddr> {
        self.local_addr
    }
}

impl fmt::Debug for Listener {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Listener").field("local_addr", &self.local_addr).finish_non_exhaustive()
    }
}

/// The overlay's end of a [`Listener`]: hands it accepted links. Cheap to
/// clone.
#[derive(Debug, Clone)]
pub struct ListenerHandle {
    tx: mpsc::Sender<Link>,
}

/// Why [`ListenerHandle::offer`] did not take a link; the link is given
/// back so the overlay can close it (and should count it).
#[derive(Debug, thiserror::Error)]
pub enum OfferError {
    /// The listener's backlog is full: the node is not accepting fast
    /// enough.
    #[error("listener backlog full")]
    Full(Box<Link>),
    /// The listener was dropped: stop accepting.
    #[error("listener closed")]
    Closed(Box<Link>),
}

impl OfferError {
    /// The link that was not taken.
    pub fn into_link(self) -> Link {
        match self {
            OfferError::Full(link) | OfferError::Closed(link) => *link,
        }
    }
}

impl ListenerHandle {
    /// Hands an accepted link to the listener without waiting.
    ///
    /// # Errors
    /// [`OfferError::Full`] if the backlog is full, [`OfferError::Closed`]
    /// if the listener was dropped; either gives the link back.
    pub fn offer(&self, link: Link) -> Result<(), OfferError> {
        self.tx.try_send(link).map_err(|e| match e {
            mpsc::error::TrySendError::Full(link) => OfferError::Full(Box::new(link)),
            mpsc::error::TrySendError::Closed(link) => OfferError::Closed(Box::new(link)),
        })
    }

    /// Whether the listener was dropped.
    pub fn is_closed(&self) -> bool {
        self.tx.is_closed()
    }

    /// Completes once the listener was dropped.
    ///
    /// # Cancel safety
    /// Cancel safe.
    pub async fn closed(&self) {
        self.tx.closed().await;
    }
}
