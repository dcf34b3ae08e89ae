use std::io;
use std::path::PathBuf;

use strata_digest::Digest;

pub type Result<T, E = Error> = std::result::Result<T, E>;

/// Everything that can go wrong in this crate. Each variant names what failed
/// (a path, a digest, a tar entry); the cause, if any, is the `source`.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// A file-system call through `fs-err`, whose message already names the path.
    #[error(transparent)]
    Io(#[from] io::Error),

    /// A raw system call on `path` failed.
    #[error("{op} {}", path.display())]
    Sys {
        op: &'static str,
        path: PathBuf,
        #[source]
        source: io::Error,
    },

    #[error("layer {0} is not in the store")]
    MissingLayer(Digest),

    /// The layer tar could not be read (truncated, bad checksum, ...).
    #[error("reading layer tar")]
    Tar(#[source] io::Error),

    /// A tar entry that would write outside the layer, or that contradicts itself.
    #[error("layer tar entry {path:?} refused: {reason}")]
    UnsafeEntry { path: String, reason: &'static str },

    #[error("layer tar entry {path:?} has unsupported type {kind:?}")]
    UnsupportedEntry { path: String, kind: char },

    #[error("layer tar has digest {actual}, expected {expected}")]
    DigestMismatch { expected: Digest, actual: Digest },

    /// A file that is being archived changed under us (layers must be immutable).
    #[error("{} changed while it was archived", path.display())]
    Changed { path: PathBuf },

    #[error("extended attribute {name:?} on {} is not UTF-8", path.display())]
    XattrName { path: PathBuf, name: String },

    /// Mounting failed. `log` holds the kernel's messages when it gave any.
    #[error("mounting {what} at {}{}", target.display(), fmt_log(log))]
    Mount {
        what: &'static str,
        target: PathBuf,
        log: Vec<String>,
        #[source]
        source: io::Error,
    },

    #[error("unmounting {}", target.display())]
    Unmount {
        target: PathBuf,
        #[source]
        source: io::Error,
    },

    /// The lower-directory list does not fit the legacy mount(2) option page.
    #[error("a chain of {layers} layers is too long to mount with mount(2) on this kernel")]
    ChainTooLong { layers: usize },

    #[error("{} must be absent or an empty directory", path.display())]
    DestinationNotEmpty { path: PathBuf },
}

fn fmt_log(log: &[String]) -> String {
    if log.is_empty() {
        String::new()
    } else {
        format!(" (kernel: {})", log.join("; "))
    }
}

/// Attaches the operation and path to a raw errno.
pub(crate) fn sys(
    op: &'static str,
    path: impl Into<PathBuf>,
) -> impl FnOnce(rustix::io::Errno) -> Error {
    let path = path.into();
    move |errno| Error::Sys {
        op,
        path,
        source: errno.into(),
    }
}
