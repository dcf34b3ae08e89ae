//! Op calls run on their own tokio tasks: on any worker thread, isolated from panics,
//! and aborted if the solve stops waiting for them.

use std::future::Future;

use tokio::task::JoinHandle;

use crate::OpError;

/// Aborts the task when dropped, so a solve that gives up (or is dropped itself) leaves
/// no op running behind it.
struct AbortOnDrop<R>(JoinHandle<R>);

impl<R> Drop for AbortOnDrop<R> {
    fn drop(&mut self) {
        self.0.abort();
    }
}

/// Runs `fut` on a new task; a panic becomes an [`OpError`].
pub(crate) async fn run<R, F>(fut: F) -> Result<R, OpError>
where
    R: Send + 'static,
    F: Future<Output = Result<R, OpError>> + Send + 'static,
{
    let mut task = AbortOnDrop(tokio::spawn(fut));
    match (&mut task.0).await {
        Ok(result) => result,
        Err(e) if e.is_panic() => Err(OpError::panicked(e.into_panic())),
        Err(e) => Err(OpError::new(format!("op task ended: {e}"))),
    }
}
