//! A failed RUN, kept for `strata debug shell`: the step's upper directory (its file
//! system as the command left it when it failed) and what it takes to run another
//! process there the way the step ran (the exec definition — env, user, workdir,
//! network, security, mounts —, the root's layer chain and the inputs its mounts read).
//!
//! Nothing secret is kept: secrets and SSH agents reach a RUN through mounts the
//! definition names by id only, and the shell runs without them.

use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};
use strata_graph::{Exec, MountKind};
use strata_runtime::{ExitStatus, OciRuntime, RunRequest, RuntimeChoice};
use strata_snapshot::{mount_rw, Chain, Layers, Writable};
use strata_store::Store;

use super::run_mount::{prepare, MountEnv};
use crate::content::StatCache;
use crate::run_env::{Secrets, SshAgents};
use crate::Output;

/// The state file in a kept directory.
pub const STATE_FILE: &str = "state.json";

/// What a failed RUN leaves behind.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct FailedStep {
    /// `[build 3/4] RUN make`.
    pub name: String,
    pub exec: Exec,
    /// The root file system under the step's changes.
    pub chain: Chain,
    /// The step's inputs (what its mounts read).
    pub inputs: Vec<Output>,
    pub exit_code: i32,
}

#[derive(Debug, thiserror::Error)]
pub enum DebugError {
    #[error("no failed step is kept in {path}")]
    NotKept {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("the kept state in {path} is damaged")]
    Damaged {
        path: PathBuf,
        #[source]
        source: serde_json::Error,
    },
    #[error("mounting the failed step's file system")]
    Mount(#[source] strata_snapshot::Error),
    #[error("preparing the step's mounts: {0}")]
    Mounts(String),
    #[error(transparent)]
    Runtime(#[from] strata_runtime::Error),
    #[error(transparent)]
    Io(#[from] std::io::Error),
}

impl FailedStep {
    /// Moves `upper` (the step's changes) to `dir/upper` and writes the state beside
    /// it (temp file + rename). `dir` must be on the file system of `upper`.
    pub(crate) fn save(&self, dir: &Path, upper: &Path) -> std::io::Result<()> {
        fs_err::create_dir_all(dir)?;
        fs_err::rename(upper, dir.join("upper"))?;
        let tmp = dir.join(format!("{STATE_FILE}.tmp"));
        fs_err::write(&tmp, serde_json::to_vec_pretty(self)?)?;
        fs_err::rename(&tmp, dir.join(STATE_FILE))
    }

    /// The layers the kept state needs: its file system's and its inputs'.
    pub fn layers(&self) -> Vec<strata_store::Resource> {
        let chains =
            std::iter::once(&self.chain).chain(self.inputs.iter().filter_map(|i| i.chain()));
        let mut out: Vec<_> = chains
            .flat_map(|c| c.layers().iter().copied())
            .map(strata_store::Resource::Layer)
            .collect();
        out.sort();
        out.dedup();
        out
    }

    /// The state kept in `dir`.
    pub fn load(dir: &Path) -> Result<FailedStep, DebugError> {
        let path = dir.join(STATE_FILE);
        let bytes = std::fs::read(&path).map_err(|source| DebugError::NotKept {
            path: dir.to_path_buf(),
            source,
        })?;
        serde_json::from_slice(&bytes).map_err(|source| DebugError::Damaged { path, source })
    }

    /// Mounts the step leaves out of a debug shell (secrets, SSH agents), by target.
    pub fn left_out(&self) -> Vec<String> {
        self.exec
            .mounts
            .iter()
            .filter(|m| matches!(m.kind, MountKind::Secret { .. } | MountKind::Ssh { .. }))
            .map(|m| m.target.clone())
            .collect()
    }
}

/// The name of the store hold ([`Store::keep`]) that keeps the layers under the
/// failed step kept in `dir` from garbage collection.
pub fn kept_holder(dir: &Path) -> String {
    let build = dir.file_name().unwrap_or_default().to_string_lossy();
    format!("debug {build}")
}

/// A process to run in a kept step.
pub struct ShellRequest<'a> {
    pub store: &'a Store,
    /// The kept directory (holds [`STATE_FILE`] and `upper/`).
    pub dir: &'a Path,
    pub runtime: &'a RuntimeChoice,
    pub args: Vec<String>,
    /// Give the process a terminal (stdin is one).
    pub terminal: bool,
}

/// Runs `req.args` in the failed step's file system (its changes included; what the
/// process changes stays in the kept state), with the step's env, user, workdir,
/// network, security and mounts, attached to this process's stdio.
pub async fn shell(req: ShellRequest<'_>) -> Result<ExitStatus, DebugError> {
    let step = FailedStep::load(req.dir)?;
    let tmp = req.store.tmp_dir().to_path_buf();
    let layers = Layers::new(req.store.root(), &tmp).map_err(DebugError::Mount)?;
    let work = req.dir.join("work");
    let _ = std::fs::remove_dir_all(&work);
    fs_err::create_dir(&work)?;
    let scratch = tempfile::Builder::new().prefix("debug-").tempdir_in(&tmp)?;
    let rootfs = scratch.path().join("rootfs");
    fs_err::create_dir(&rootfs)?;
    let upper = req.dir.join("upper");
    let root = mount_rw(
        &layers,
        &step.chain,
        Writable {
            upper: &upper,
            work: &work,
        },
        &rootfs,
    )
    .map_err(DebugError::Mount)?;
    let mounts: Vec<_> = step
        .exec
        .mounts
        .iter()
        .filter(|m| !matches!(m.kind, MountKind::Secret { .. } | MountKind::Ssh { .. }))
        .cloned()
        .collect();
    let (secrets, ssh, stat) = (
        Secrets::default(),
        SshAgents::default(),
        StatCache::default(),
    );
    let rt = tokio::runtime::Handle::current();
    let prepared = prepare(
        &MountEnv {
            layers: &layers,
            store: req.store,
            inputs: &step.inputs,
            secrets: &secrets,
            ssh: &ssh,
            rt: &rt,
            stat: &stat,
            dir: scratch.path(),
        },
        &mounts,
    )
    .map_err(|e| DebugError::Mounts(e.to_string()))?;
    let process = super::exec::process(&step.exec, req.args, &prepared);
    let selected = OciRuntime::select(req.runtime, &tmp.join("runtime"))?;
    let status = selected
        .runtime
        .run_attached(
            &RunRequest {
                rootfs: &rootfs,
                process: &process,
                mounts: &prepared.mounts,
            },
            req.terminal,
        )
        .await;
    prepared.release();
    drop(root);
    let _ = std::fs::remove_dir_all(&work);
    Ok(status?)
}
