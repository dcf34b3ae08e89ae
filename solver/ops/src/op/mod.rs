//! One scheduler op per graph op.

mod file;
mod image;
mod simple;

pub use file::FileRunner;
pub use image::{ensure_layer, ImageRunner, LayoutRunner};
pub use simple::{LocalRunner, MergeRunner, ScratchRunner, Unsupported};

use strata_scheduler::OpError;

/// Runs blocking filesystem work off the async threads.
pub(crate) async fn blocking<T, F>(f: F) -> Result<T, OpError>
where
    F: FnOnce() -> Result<T, OpError> + Send + 'static,
    T: Send + 'static,
{
    tokio::task::spawn_blocking(f)
        .await
        .map_err(|e| OpError::new(format!("worker thread failed: {e}")))?
}
