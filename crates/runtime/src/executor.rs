//! The seam between the solver and whatever runs a RUN step's process: [`Executor`]
//! and the plain data it takes ([`Process`], [`Mount`]) and gives back
//! ([`ExitStatus`], output lines).

use std::future::Future;
use std::path::{Path, PathBuf};
use std::pin::Pin;

use tokio_util::sync::CancellationToken;

use crate::Error;

/// A boxed, `Send` future: what [`Executor::run`] returns.
pub type BoxFuture<'a, T> = Pin<Box<dyn Future<Output = T> + Send + 'a>>;

/// Runs one process in a container over a prepared root file system.
///
/// The caller owns the root file system (for RUN, a writable overlay whose upper
/// directory becomes the layer) and every mount source. The executor may create
/// missing mount points and the working directory in `rootfs`; it removes the mount
/// points it created (when they are still empty) before it returns, so they never
/// reach a layer. The working directory stays, like Docker's.
pub trait Executor: Send + Sync {
    /// What runs the containers (`runc 1.1.5`), for messages.
    fn name(&self) -> &str;

    /// Runs `req` to completion and returns how the process ended. Each line the
    /// process writes goes to `output` as it comes (without its newline; a last line
    /// without one too). A non-zero exit is an `Ok` status, not an error. When
    /// `cancel` fires, the container is killed and removed and
    /// [`Error::Cancelled`] returned; dropping the future kills it too.
    fn run<'a>(
        &'a self,
        req: &'a RunRequest<'a>,
        output: &'a mut (dyn FnMut(Stream, &str) + Send),
        cancel: &'a CancellationToken,
    ) -> BoxFuture<'a, Result<ExitStatus, Error>>;
}

/// One process run: where, what and with which mounts.
#[derive(Debug, Clone, Copy)]
pub struct RunRequest<'a> {
    /// The container's root file system, already mounted (writable).
    pub rootfs: &'a Path,
    pub process: &'a Process,
    /// Mounted in this order, after the executor's own (`/proc`, `/dev`, ...).
    pub mounts: &'a [Mount],
}

/// The process to run and the sandbox around it.
#[derive(Clone, PartialEq, Eq)]
pub struct Process {
    /// `argv`; `args[0]` is looked up in the container's `PATH` by the runtime.
    pub args: Vec<String>,
    /// `KEY=value`, in order.
    pub env: Vec<String>,
    /// Absolute working directory in the container; created (0755, root) if missing.
    pub cwd: String,
    /// As Docker's `USER`: `""` (root), `name`, `uid`, `name:group`, `uid:gid`;
    /// resolved in the root file system's `/etc/passwd` and `/etc/group`.
    pub user: String,
    pub network: Network,
    pub security: Security,
    pub hostname: String,
}

impl std::fmt::Debug for Process {
    /// Leaves out the environment: it may hold secrets (`RUN --mount=type=secret,env=`).
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Process")
            .field("args", &self.args)
            .field("env", &format_args!("[{} variables]", self.env.len()))
            .field("cwd", &self.cwd)
            .field("user", &self.user)
            .field("network", &self.network)
            .field("security", &self.security)
            .field("hostname", &self.hostname)
            .finish()
    }
}

/// The container's network.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Network {
    /// The host's network namespace (Docker's `default` and `host` here: no bridges).
    #[default]
    Host,
    /// A network namespace of its own with only loopback.
    None,
}

/// How much the process may do.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Security {
    /// Docker's defaults: 14 capabilities, masked and read-only `/proc` paths, a
    /// device allow-list.
    #[default]
    Sandbox,
    /// `RUN --security=insecure`: every capability, no masks, the host's devices.
    /// Callers must only ask for it when the user allowed it.
    Insecure,
}

/// A mount into the container.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Mount {
    /// Absolute path in the container.
    pub destination: String,
    pub source: MountSource,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum MountSource {
    /// A host file or directory, bound (recursively).
    Bind { path: PathBuf, readonly: bool },
    /// A fresh tmpfs, `size` bytes at most (the kernel's default when `None`).
    Tmpfs { size: Option<u64> },
}

/// Which output stream a line came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Stream {
    Stdout,
    Stderr,
}

/// How the process ended: its exit code, or 128 + the signal that killed it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ExitStatus(pub i32);

impl ExitStatus {
    pub fn success(self) -> bool {
        self.0 == 0
    }

    pub fn code(self) -> i32 {
        self.0
    }
}

impl std::fmt::Display for ExitStatus {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self.0 {
            c @ 129..=159 => write!(f, "exit code {c} (killed by signal {})", c - 128),
            c => write!(f, "exit code {c}"),
        }
    }
}
