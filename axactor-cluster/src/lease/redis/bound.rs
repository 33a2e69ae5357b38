//! The time bound of the Redis store: [`OP_TIMEOUT`] on every operation,
//! and the wrappers that apply it to a call ([`bounded`],
//! [`bounded_redis`]), turning a timeout into
//! [`LeaseStoreError::Unavailable`].

use std::future::Future;
use std::time::Duration;

use redis::RedisResult;

use super::codec;
use crate::lease::LeaseStoreError;

/// The bound on every store operation (and each connection attempt and
/// reply inside it). Short against lease ttls of seconds, so a failed
/// renewal is reported while the holder can still self-fence in time.
pub(super) const OP_TIMEOUT: Duration = Duration::from_secs(2);

/// Awaits `fut` for at most [`OP_TIMEOUT`], mapping failures to
/// [`LeaseStoreError`].
pub(super) async fn bounded<T>(fut: impl Future<Output = RedisResult<T>>) -> Result<T, LeaseStoreError> {
    match bounded_redis(fut).await? {
        Ok(v) => Ok(v),
        Err(e) => {
            tracing::debug!(error = %e, "redis lease store: command failed");
            Err(codec::map_error(&e))
        }
    }
}

/// Awaits `fut` for at most [`OP_TIMEOUT`], leaving the Redis error to the
/// caller.
pub(super) async fn bounded_redis<T>(
    fut: impl Future<Output = RedisResult<T>>,
) -> Result<RedisResult<T>, LeaseStoreError> {
    tokio::time::timeout(OP_TIMEOUT, fut).await.map_err(|_| LeaseStoreError::Unavailable("timed out"))
}
