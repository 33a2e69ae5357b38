//! Panic containment: runs user code (handlers, hooks, factories) so that a
//! panic becomes a value instead of unwinding through the runtime.

use std::any::Any;
use std::future::{Future, poll_fn};
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::task::Poll;

/// A caught panic payload.
pub(crate) type Panic = Box<dyn Any + Send>;

/// Builds a future with `make` and drives it, catching panics raised while
/// building it or in any of its polls. No allocation on the happy path.
pub(crate) async fn catch_async<F, Fut>(make: F) -> Result<Fut::Output, Panic>
where
    F: FnOnce() -> Fut,
    Fut: Future,
{
    let fut = catch_unwind(AssertUnwindSafe(make))?;
    let mut fut = std::pin::pin!(fut);
    poll_fn(move |cx| match catch_unwind(AssertUnwindSafe(|| fut.as_mut().poll(cx))) {
        Ok(Poll::Ready(v)) => Poll::Ready(Ok(v)),
        Ok(Poll::Pending) => Poll::Pending,
        Err(p) => Poll::Ready(Err(p)),
    })
    .await
}

/// Runs `f`, catching a panic.
pub(crate) fn catch_sync<T>(f: impl FnOnce() -> T) -> Result<T, Panic> {
    catch_unwind(AssertUnwindSafe(f))
}

/// The message of a panic payload, for logs.
pub(crate) fn panic_message(p: &Panic) -> &str {
    if let Some(s) = p.downcast_ref::<&'static str>() {
        s
    } else if let Some(s) = p.downcast_ref::<String>() {
        s.as_str()
    } else {
        "<non-string panic payload>"
    }
}
