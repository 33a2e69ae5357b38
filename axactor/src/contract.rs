//! Traits the cluster layer builds on: what may cross the wire.
//!
//! `#[actor(remote)]` (provided with the cluster layer) implements
//! [`RefContract`] for a generated `XContract` type. They live here, in the
//! local runtime, so the macro can name them with a path that every user of
//! `#[actor]` already depends on.

use serde::Serialize;
use serde::de::DeserializeOwned;

/// A value that can be sent to another node: serializable, deserializable
/// into an owned value, and sendable across tasks. Implemented for every
/// such type.
pub trait RemoteSafe: Serialize + DeserializeOwned + Send + 'static {}

impl<T: Serialize + DeserializeOwned + Send + 'static> RemoteSafe for T {}

/// The wire contract of a remote actor: one enum of its tells, one of its
/// asks, and one of the replies to those asks.
pub trait RefContract {
    /// The tells (methods without a return value) with their arguments.
    type Tell: RemoteSafe;
    /// The asks (methods with a return value) with their arguments.
    type Ask: RemoteSafe;
    /// The replies to the asks, one variant per ask.
    type Reply: RemoteSafe;
}
