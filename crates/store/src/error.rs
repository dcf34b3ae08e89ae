use std::io;
use std::path::PathBuf;

use strata_digest::Digest;

/// Everything the store can fail with. Each variant names the object it concerns; the
/// cause is in `source()`, not repeated in the message.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// A file-system operation failed. The cause comes from `fs-err`, so its message
    /// names the path and the operation.
    #[error(transparent)]
    Io(#[from] io::Error),

    #[error("blob {digest} is not in the store")]
    BlobNotFound { digest: Digest },

    #[error("blob digest mismatch: expected {expected}, got {actual} ({size} bytes)")]
    DigestMismatch {
        expected: Digest,
        actual: Digest,
        size: u64,
    },

    #[error("blob {digest} is corrupt: its content hashes to {actual}")]
    CorruptBlob { digest: Digest, actual: Digest },

    #[error("blob {digest} is {size} bytes, more than read_blob's limit of {limit} bytes")]
    BlobTooLarge {
        digest: Digest,
        size: u64,
        limit: u64,
    },

    /// Reading the caller's source stream failed while writing a blob.
    #[error("reading the content of blob {}", expected.map_or_else(|| "(digest not yet known)".to_string(), |d| d.to_string()))]
    ReadSource {
        expected: Option<Digest>,
        #[source]
        source: io::Error,
    },

    #[error("{what} in {path}")]
    Db {
        /// The operation and the object, e.g. `writing image docker.io/library/app:latest`.
        what: String,
        path: PathBuf,
        #[source]
        source: rusqlite::Error,
    },

    #[error("{path} stayed in journal_mode {mode:?}; the store needs WAL")]
    NotWal { path: PathBuf, mode: String },

    #[error("{path} has schema version {found}; this strata understands up to {supported}")]
    SchemaTooNew {
        path: PathBuf,
        found: u32,
        supported: u32,
    },

    #[error("encoding cache record {key}")]
    EncodeCacheRecord {
        key: Digest,
        #[source]
        source: serde_json::Error,
    },

    #[error("encoding the history of build {build}")]
    EncodeHistory {
        build: String,
        #[source]
        source: serde_json::Error,
    },

    #[error("locking {what} ({path})")]
    Lock {
        /// What the lock protects, e.g. `key "vertex…"` or `the tmp/ cleaner`.
        what: String,
        path: PathBuf,
        #[source]
        source: io::Error,
    },

    #[error("reading the identity of process {pid} ({path})")]
    ProcessIdentity {
        pid: i32,
        path: PathBuf,
        #[source]
        source: io::Error,
    },
}

pub type Result<T, E = StoreError> = std::result::Result<T, E>;
