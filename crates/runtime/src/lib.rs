//! Running RUN steps' processes in containers.
//!
//! [`Executor`] (in `executor.rs`, the seam) runs one process over a prepared root
//! file system with a list of mounts and streams its output; [`OciRuntime`] implements
//! it with a real OCI runtime (`runc` or `crun`, picked by [`RuntimeChoice`]) and a
//! bundle whose `config.json` is generated with `oci-spec`'s runtime types
//! ([`spec::generate`]: Docker's sandbox). `USER` is resolved in the image's own
//! `/etc/passwd` and `/etc/group` ([`resolve_user`]); mount points the runtime has to
//! create are removed again so they never reach a layer.
//!
//! This crate knows nothing of Dockerfiles, the build graph, snapshots or the store:
//! it must never depend on the frontend, solver or exporter crates.

mod bpf;
mod error;
mod executor;
mod hybrid;
mod oci;
mod proc;
mod rootfs;
pub mod seccomp;
pub mod spec;
mod stale;
mod stubs;
mod user;

pub use error::{Error, Result};
pub use executor::{
    BoxFuture, Executor, ExitStatus, Mount, MountSource, Network, Process, RunRequest, Security,
    Stream,
};
pub use oci::{OciRuntime, RuntimeChoice, Selected};

pub use tokio_util::sync::CancellationToken;
pub use user::{resolve_user, User};
