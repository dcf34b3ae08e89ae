//! A read-only view of a chain of layers, mounted for as long as it is held.

use std::path::{Path, PathBuf};

use strata_scheduler::OpError;
use strata_snapshot::{Chain, Layers, MountGuard};

pub struct View {
    path: PathBuf,
    _mount: Option<MountGuard>,
    _dir: Option<tempfile::TempDir>,
}

impl View {
    /// Mounts `chain` read-only under `tmp` (no mount at all for an empty chain).
    pub fn open(layers: &Layers, chain: &Chain, tmp: &Path) -> Result<View, OpError> {
        let dir = tempfile::Builder::new()
            .prefix("view-")
            .tempdir_in(tmp)
            .map_err(|e| OpError::new(format!("{}: {e}", tmp.display())))?;
        let target = dir.path().join("m");
        std::fs::create_dir(&target).map_err(OpError::new)?;
        let guard = strata_snapshot::mount_chain(layers, chain, &target).map_err(OpError::new)?;
        Ok(View {
            path: guard.path().to_path_buf(),
            _mount: Some(guard),
            _dir: Some(dir),
        })
    }

    pub fn path(&self) -> &Path {
        &self.path
    }
}
