//! The extension point: the [`Overlay`] trait a transport implements, and
//! [`ClusterOverlay`], the shared, type-erased overlay a node runs on (the
//! shipped overlays convert into it where they are defined).

use std::fmt;
use std::sync::Arc;

use super::error::OverlayError;
use super::link::Link;
use super::listener::Listener;
use crate::future::BoxFuture;
use crate::id::NodeId;

/// A transport. Object safe; the node holds it as a [`ClusterOverlay`].
pub trait Overlay: Send + Sync + fmt::Debug + 'static {
    /// Starts listening as `me`. Links dialled to `me` are then handed out by
    /// the returned [`Listener`]; dropping it stops listening (links already
    /// accepted live on).
    ///
    /// # Errors
    /// [`OverlayError::Bind`] if `me` cannot listen (no address, address in
    /// use, already listening in memory), [`OverlayError::Config`] if the
    /// overlay's configuration is invalid.
    fn listen(&self, me: &NodeId) -> BoxFuture<'_, Result<Listener, OverlayError>>;

    /// Opens a link from `me` to `peer`.
    ///
    /// # Errors
    /// [`OverlayError::UnknownPeer`], [`OverlayError::Refused`],
    /// [`OverlayError::Unreachable`], [`OverlayError::ConnectTimeout`],
    /// [`OverlayError::Config`] or [`OverlayError::Io`].
    fn dial(&self, me: &NodeId, peer: &NodeId) -> BoxFuture<'_, Result<Link, OverlayError>>;

    /// Largest frame this overlay carries (TCP: the configured `max_frame_bytes`).
    fn max_frame_bytes(&self) -> usize;
}

/// What `ClusterNode::start` takes (`impl Into<ClusterOverlay>`): a shared,
/// type-erased [`Overlay`].
#[derive(Debug, Clone)]
pub struct ClusterOverlay(Arc<dyn Overlay>);

impl ClusterOverlay {
    /// Wraps any overlay.
    pub fn new(overlay: impl Overlay) -> Self {
        ClusterOverlay(Arc::new(overlay))
    }

    /// The overlay.
    pub fn inner(&self) -> &Arc<dyn Overlay> {
        &self.0
    }
}
