use std::io;
use std::path::PathBuf;

pub type Result<T, E = Error> = std::result::Result<T, E>;

/// Everything that can go wrong running a container. Each variant names what failed;
/// the cause, if any, is the `source`.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// A file-system call through `fs-err`, whose message already names the path.
    #[error(transparent)]
    Io(#[from] io::Error),

    /// Neither crun nor runc is installed.
    #[error("no OCI runtime found (looked for crun and runc in $PATH): install one, e.g. `apt-get install runc`")]
    NoRuntime,

    /// `--runtime PATH` (or `runc`/`crun`) names nothing we can run.
    #[error("OCI runtime {name:?} not found{}", if name.contains('/') { "" } else { " in $PATH" })]
    RuntimeNotFound { name: String },

    /// The runtime could not be started.
    #[error("starting {}", runtime.display())]
    Spawn {
        runtime: PathBuf,
        #[source]
        source: io::Error,
    },

    /// The runtime failed to create or start the container (as opposed to the
    /// process exiting non-zero): its own error message.
    #[error("{runtime} failed: {message}")]
    Start { runtime: String, message: String },

    /// `USER` names a user that the image's `/etc/passwd` does not have.
    #[error("unable to find user {user}: no matching entries in passwd file")]
    UnknownUser { user: String },

    /// `USER x:group` names a group that the image's `/etc/group` does not have.
    #[error("unable to find group {group}: no matching entries in group file")]
    UnknownGroup { group: String },

    /// A path in the container that cannot be used (outside the root, not a directory).
    #[error("{what} {path:?}")]
    BadPath {
        what: &'static str,
        path: String,
        #[source]
        source: io::Error,
    },

    /// oci-spec refused the configuration.
    #[error("generating the runtime configuration")]
    Spec(#[source] oci_spec::OciSpecError),

    #[error("cancelled")]
    Cancelled,
}
