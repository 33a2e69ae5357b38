//! [`BoxFuture`]: the boxed future the crate's object-safe async traits
//! return (`overlay::Overlay`, `lease::LeaseStore`). A plain type alias,
//! so the overlay and the lease stores share it without knowing each other.

/// A boxed, sendable future, as returned by the methods of the
/// `Overlay` and `LeaseStore` traits.
pub type BoxFuture<'a, T> = std::pin::Pin<Box<dyn std::future::Future<Output = T> + Send + 'a>>;
