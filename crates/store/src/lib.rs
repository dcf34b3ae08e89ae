//! The local store of strata: content-addressed blobs (`blobs/sha256/<hex>`), image
//! names, the solver's cache records, layer compression records, leases that pin
//! resources against garbage collection, and per-key file locks. It lives under one
//! root directory (`--root`, default `/var/lib/strata`) and is shared by every `strata`
//! process on the machine without a daemon. It depends only on `strata-digest` and
//! `strata-oci`; it must never depend on the frontend, the solver or an exporter.
//!
//! Layout of the root:
//!
//! ```text
//! blobs/sha256/<hex>   content, written to tmp/ then fsynced and renamed in
//! meta.db              SQLite: images, cache records, compression records, leases
//! tmp/<pid>-<rand>/    one locked session per open Store; stale ones reaped (their
//!                      procs/ pid files and holders killed, mounts detached) and
//!                      removed on open
//! locks/<hex>          flock files for Store::lock (hex = sha256 of the key); the
//!                      solver claims a cache key here before running its vertex
//!                      (Store::prune_locks removes unheld ones)
//! layers/              owned by strata-snapshot; only created here (and removed by GC)
//! cache-mounts/        RUN --mount=type=cache directories (removed by GC)
//! ```
//!
//! [`Store::check`] verifies all of it (and [`Store::repair`] removes what is broken):
//! `strata system check`.
//!
//! # Why SQLite
//!
//! Several `strata` processes may build at once, and any of them may be killed with
//! SIGKILL at any instruction. SQLite in WAL mode lets all of them read and write the
//! same database file (a `busy_timeout` makes a writer wait rather than fail, `BEGIN
//! IMMEDIATE` takes the write lock up front), and its journal makes every transaction
//! all-or-nothing across crashes. Two processes writing at once and kill -9 in the
//! middle of writes were tested clean (see `tests/multiprocess.rs`). Embedded Rust
//! stores such as redb and sled lock their file to a single process, which would force a
//! daemon. Blobs stay outside the database: they are large, streamed, and made durable
//! by temp file + fsync + rename.

mod blob;
mod cache;
mod check;
mod compressed;
mod db;
mod error;
pub mod gc;
mod history;
mod images;
mod lease;
mod lock;
mod origins;
mod pin;
mod reap;
mod tmp;
mod usage;
mod writeback;

use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

pub use blob::{BlobWriter, READ_BLOB_LIMIT};
pub use cache::CacheRecord;
pub use check::{CheckReport, Problem};
pub use db::SCHEMA_VERSION;
pub use error::{Result, StoreError};
pub use gc::{GcState, PruneOptions, PruneReport, RecordEntry, RecordInfo, RecordKind, Resource};
pub use history::{BuildRecord, StepRecord, KEEP_BUILDS};
pub use images::ImageRecord;
pub use lease::Lease;
pub use lock::{KeyLock, PendingLock};
pub use tmp::Cleaned;
pub use usage::{DiskUsage, ObjectUsage};

/// A handle on the store. Cloning is cheap and shares one database connection and one
/// `tmp/` session; `Store` is `Send + Sync`.
#[derive(Clone)]
pub struct Store {
    inner: Arc<Inner>,
}

struct Inner {
    root: PathBuf,
    blobs: PathBuf,
    conn: Mutex<rusqlite::Connection>,
    session: tmp::Session,
    /// This process's pin lease (`pin.rs`), taken on first use.
    pins: Mutex<Option<i64>>,
    /// Blobs this process wrote (and so hashed from the very bytes written): see
    /// [`Store::hashed_here`].
    hashed: Mutex<std::collections::HashSet<strata_digest::Digest>>,
}

impl Drop for Inner {
    fn drop(&mut self) {
        if let Some(id) = self.pins.get_mut().ok().and_then(|p| p.take()) {
            // Best effort: a row left behind expires with this process.
            if let Ok(conn) = self.conn.get_mut() {
                let _ = conn.execute("DELETE FROM leases WHERE id = ?1", [id]);
            }
        }
    }
}

impl std::fmt::Debug for Store {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Store")
            .field("root", &self.inner.root)
            .field("tmp", &self.inner.session.path())
            .finish_non_exhaustive()
    }
}

impl Store {
    /// Opens (creating if needed) the store at `root`: makes the directories, opens and
    /// migrates `meta.db`, and removes `tmp/` entries left by dead processes.
    /// A relative `root` is made absolute first: paths under it end up in places
    /// read from other directories (a runtime's bundle, a cache mount's source).
    pub fn open(root: &Path) -> Result<Store> {
        let root = std::path::absolute(root)?;
        let blobs = root.join("blobs").join("sha256");
        for dir in [
            &blobs,
            &root.join("tmp"),
            &root.join("locks"),
            &root.join("layers"),
        ] {
            fs_err::create_dir_all(dir)?;
        }
        let session = tmp::open_session(&root.join("tmp"), &root.join("locks"))?;
        let conn = db::open(&root.join("meta.db"))?;
        Ok(Store {
            inner: Arc::new(Inner {
                root,
                blobs,
                conn: Mutex::new(conn),
                session,
                pins: Mutex::new(None),
                hashed: Mutex::default(),
            }),
        })
    }

    pub fn root(&self) -> &Path {
        &self.inner.root
    }

    /// `layers/`, for the snapshotter.
    pub fn layers_dir(&self) -> PathBuf {
        self.inner.root.join("layers")
    }

    /// This handle's private scratch directory under `tmp/`. Anything inside is removed
    /// when the last clone of this `Store` drops, or by the next `Store::open` after
    /// this process dies.
    pub fn tmp_dir(&self) -> &Path {
        self.inner.session.path()
    }

    /// Where this process records pid files (`PID`, or `group PID` for a process
    /// group, as text; any file name) of processes it starts that must not outlive
    /// it: if it dies without stopping them, the next `Store::open` kills them before
    /// removing its session. Not created here: the first writer makes it.
    pub fn procs_dir(&self) -> PathBuf {
        self.inner.session.path().join(reap::PROCS)
    }

    /// What opening this store found left in `tmp/` by dead processes.
    pub fn tmp_leftovers(&self) -> &Cleaned {
        self.inner.session.cleaned()
    }
}

/// Seconds since the Unix epoch (0 if the clock is before it).
pub(crate) fn now_unix() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn store_is_send_and_sync() {
        fn check<T: Send + Sync>() {}
        check::<Store>();
        check::<BlobWriter>();
        check::<Lease>();
        check::<KeyLock>();
    }

    #[test]
    fn open_creates_the_layout() {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path().join("nested/root");
        let store = Store::open(&root).unwrap();
        for sub in ["blobs/sha256", "tmp", "locks", "layers"] {
            assert!(root.join(sub).is_dir(), "{sub}");
        }
        assert!(root.join("meta.db").is_file());
        assert_eq!(store.root(), root);
        assert_eq!(store.layers_dir(), root.join("layers"));
        assert!(store.tmp_dir().starts_with(root.join("tmp")));
    }
}
