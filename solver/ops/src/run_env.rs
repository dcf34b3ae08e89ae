//! What RUN steps share across a solve: the secrets and SSH agents the user passed
//! and the OCI runtime, picked once, on the first RUN that needs it (a build without
//! RUN never looks for runc).

use std::collections::BTreeMap;
use std::fmt;
use std::path::PathBuf;
use std::sync::Arc;

use strata_progress::Event;
use strata_runtime::{Executor, OciRuntime, RuntimeChoice};
use strata_scheduler::{Context, OpError};

/// Build secrets by id (`--secret id=ID,src=PATH|env=VAR`). Their bytes never reach a
/// layer, a cache key, the image history or a log; `Debug` shows only the ids.
#[derive(Clone, Default)]
pub struct Secrets(Arc<BTreeMap<String, Vec<u8>>>);

impl Secrets {
    pub fn new(secrets: BTreeMap<String, Vec<u8>>) -> Self {
        Secrets(Arc::new(secrets))
    }

    pub fn get(&self, id: &str) -> Option<&[u8]> {
        self.0.get(id).map(Vec::as_slice)
    }

    pub fn ids(&self) -> impl Iterator<Item = &str> {
        self.0.keys().map(String::as_str)
    }
}

impl fmt::Debug for Secrets {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_set().entries(self.ids()).finish()
    }
}

/// SSH agent sockets by id (`--ssh default|ID=SOCKET`), for `RUN --mount=type=ssh`.
#[derive(Debug, Clone, Default)]
pub struct SshAgents(Arc<BTreeMap<String, PathBuf>>);

impl SshAgents {
    pub fn new(agents: BTreeMap<String, PathBuf>) -> Self {
        SshAgents(Arc::new(agents))
    }

    /// The agent's socket on the host.
    pub fn get(&self, id: &str) -> Option<&std::path::Path> {
        self.0.get(id).map(PathBuf::as_path)
    }

    pub fn ids(&self) -> impl Iterator<Item = &str> {
        self.0.keys().map(String::as_str)
    }
}

/// The runtimes picked so far, one per [`RuntimeChoice`] (a solver serves solves
/// with different options).
pub struct Runtimes {
    work: PathBuf,
    /// See [`Runtimes::with_pid_dir`].
    pid_dir: Option<PathBuf>,
    picked: tokio::sync::Mutex<Vec<(RuntimeChoice, Arc<OciRuntime>)>>,
}

impl Runtimes {
    /// Runtime state and bundles go under `work` (in the store's per-process tmp dir).
    pub fn new(work: PathBuf) -> Self {
        Runtimes {
            work,
            pid_dir: None,
            picked: tokio::sync::Mutex::new(Vec::new()),
        }
    }

    /// Containers record their init pid in `dir` while they run (the store's
    /// `procs_dir`), so a killed build's orphaned container is killed by the next
    /// process that opens the store.
    pub fn with_pid_dir(mut self, dir: PathBuf) -> Self {
        self.pid_dir = Some(dir);
        self
    }

    /// The runtime for `choice`, picking it on first use; why crun was passed over
    /// goes to the progress as a warning.
    pub async fn get(
        &self,
        choice: &RuntimeChoice,
        cx: &Context,
    ) -> Result<Arc<dyn Executor>, OpError> {
        let mut picked = self.picked.lock().await;
        if let Some((_, rt)) = picked.iter().find(|(c, _)| c == choice) {
            return Ok(rt.clone());
        }
        let (c, work, pids) = (choice.clone(), self.work.clone(), self.pid_dir.clone());
        let (runtime, note) = super::op::blocking(move || {
            let selected = OciRuntime::select(&c, &work).map_err(OpError::new)?;
            let runtime = match &pids {
                Some(dir) => selected.runtime.with_pid_dir(dir).map_err(OpError::new)?,
                None => selected.runtime,
            };
            Ok((runtime, selected.note))
        })
        .await?;
        if let Some(note) = note {
            cx.report(Event::Warning { message: note });
        }
        let rt = Arc::new(runtime);
        picked.push((choice.clone(), rt.clone()));
        Ok(rt)
    }
}
