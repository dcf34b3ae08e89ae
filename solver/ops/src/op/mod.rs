//! One scheduler op per graph op.

mod cache_mount;
mod debug_shell;
mod exec;
mod file;
mod git;
mod http;
mod ignore_mask;
mod image;
mod run_mount;
mod simple;
mod ssh_agent;

pub use debug_shell::{kept_holder, shell, DebugError, FailedStep, ShellRequest, STATE_FILE};
pub use exec::{ExecFailed, ExecRunner};
pub use file::FileRunner;
pub use git::{GitError, GitRunner, GitSpec};
pub use http::{HttpError, HttpRunner, HttpSpec};
pub use image::{ensure_layer, ImageRunner, LayoutRunner};
pub use simple::{LocalRunner, MergeRunner, ScratchRunner, Unsupported};

use strata_scheduler::OpError;

/// Stores a filled layer and remembers its uncompressed tar size, so the layer can
/// serve as an uncompressed blob (the local image store's layers) without being
/// written out again.
pub fn commit_layer(
    store: &strata_store::Store,
    layers: &strata_snapshot::Layers,
    new: strata_snapshot::NewLayer,
) -> Result<strata_digest::Digest, OpError> {
    commit_layer_after(store, layers, new, None)
}

/// [`commit_layer`] for a layer that may begin like `prev`, the layer the same step
/// made last time (incremental COPY hardlinks unchanged files from it): the shared
/// leading part of its tar is not hashed again.
pub(crate) fn commit_layer_after(
    store: &strata_store::Store,
    layers: &strata_snapshot::Layers,
    new: strata_snapshot::NewLayer,
    prev: Option<&strata_digest::Digest>,
) -> Result<strata_digest::Digest, OpError> {
    let c = layers.commit_incremental(new, prev).map_err(OpError::new)?;
    crate::records::pin_stored(store, layers, &c.diff_id)?;
    let _ = store.record_compressed(&c.diff_id, UNCOMPRESSED, 0, &c.diff_id, c.size);
    Ok(c.diff_id)
}

/// The compression-record name of an uncompressed layer.
pub const UNCOMPRESSED: &str = "uncompressed";

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
