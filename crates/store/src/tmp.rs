//! `tmp/`: scratch space that survives no crash.
//!
//! Every [`Store`](crate::Store) makes one session directory `tmp/<pid>-<random>/` and
//! holds an exclusive `flock` on it for its lifetime; blob writers (and other crates,
//! through [`Store::tmp_dir`](crate::Store::tmp_dir)) put their temporary files inside.
//! The kernel drops the lock when the process dies, however it dies, so on open any
//! entry of `tmp/` whose lock can be taken belongs to nobody and is removed. Entries
//! that are neither directories nor regular files are left alone.
//!
//! Creating a session (mkdir, then lock) and cleaning (lock, then remove) both run under
//! `locks/tmp-cleaner.lock`, so a cleaner never sees a session between its mkdir and
//! its lock.
//!
//! A dead session may still have processes running (a container orphaned when its
//! runtime's parent was killed) and mounts (a RUN step's overlay): they are killed and
//! detached first (`reap.rs`). Cleaning is best effort: an entry that cannot be removed
//! now (say, an orphan still writing into it) is left for the next open and listed by
//! [`Store::tmp_leftovers`](crate::Store::tmp_leftovers); it never fails the open.

use std::io;
use std::path::{Path, PathBuf};

use tempfile::TempDir;

use crate::lock::{flock_exclusive, open_lock_file};
use crate::{Result, StoreError};

/// This store handle's own directory under `tmp/`. Dropping it removes the directory,
/// then releases the lock (field order).
#[derive(Debug)]
pub(crate) struct Session {
    dir: TempDir,
    _lock: fs_err::File,
    /// What opening found of dead sessions.
    cleaned: Cleaned,
}

impl Session {
    pub(crate) fn path(&self) -> &Path {
        self.dir.path()
    }

    pub(crate) fn cleaned(&self) -> &Cleaned {
        &self.cleaned
    }
}

/// Entries of `tmp/` that belonged to dead processes, found when the store was opened.
#[derive(Debug, Default, Clone)]
pub struct Cleaned {
    /// Removed.
    pub removed: Vec<PathBuf>,
    /// Could not be removed (the error); the next open tries again.
    pub failed: Vec<(PathBuf, String)>,
}

/// Removes stale entries of `tmp` and makes a locked session directory in it.
pub(crate) fn open_session(tmp: &Path, locks: &Path) -> Result<Session> {
    let guard_path = locks.join("tmp-cleaner.lock");
    let guard = open_lock_file(&guard_path)?;
    let lock_error = |source| StoreError::Lock {
        what: "the tmp/ cleaner".into(),
        path: guard_path.clone(),
        source,
    };
    flock_exclusive(guard.file(), true).map_err(lock_error)?;

    let cleaned = remove_stale(tmp)?;

    let pid = rustix::process::getpid().as_raw_nonzero().get();
    let dir = tempfile::Builder::new()
        .prefix(&format!("{pid}-"))
        .tempdir_in(tmp)?;
    let lock = fs_err::File::open(dir.path())?;
    let taken = flock_exclusive(lock.file(), false).map_err(|source| StoreError::Lock {
        what: "this process's tmp/ session".into(),
        path: dir.path().to_path_buf(),
        source,
    })?;
    if !taken {
        return Err(StoreError::Lock {
            what: "this process's tmp/ session".into(),
            path: dir.path().to_path_buf(),
            source: io::Error::new(io::ErrorKind::WouldBlock, "a fresh directory is locked"),
        });
    }
    drop(guard);
    Ok(Session {
        dir,
        _lock: lock,
        cleaned,
    })
}

fn remove_stale(tmp: &Path) -> Result<Cleaned> {
    let mut cleaned = Cleaned::default();
    for entry in fs_err::read_dir(tmp)? {
        let entry = entry?;
        let path = entry.path();
        let file_type = entry.file_type()?;
        if !file_type.is_dir() && !file_type.is_file() {
            continue;
        }
        let file = match fs_err::File::open(&path) {
            Ok(file) => file,
            Err(e) if e.kind() == io::ErrorKind::NotFound => continue,
            Err(e) => return Err(e.into()),
        };
        let free = flock_exclusive(file.file(), false).map_err(|source| StoreError::Lock {
            what: "a tmp/ entry".into(),
            path: path.clone(),
            source,
        })?;
        if !free {
            continue; // a live process holds it
        }
        let remove = || {
            if file_type.is_dir() {
                crate::reap::reap(&path);
                fs_err::remove_dir_all(&path)
            } else {
                fs_err::remove_file(&path)
            }
        };
        // Twice: a killed orphan's runtime may still be deleting its own state in there.
        match remove().or_else(|_| remove()) {
            Ok(()) => cleaned.removed.push(path),
            Err(e) if e.kind() == io::ErrorKind::NotFound => cleaned.removed.push(path),
            Err(e) => cleaned.failed.push((path, e.to_string())),
        }
    }
    Ok(cleaned)
}

#[cfg(test)]
mod tests {
    use crate::lock::flock_exclusive;
    use crate::Store;

    fn entries(dir: &std::path::Path) -> Vec<String> {
        let mut names: Vec<String> = std::fs::read_dir(dir)
            .unwrap()
            .map(|e| e.unwrap().file_name().into_string().unwrap())
            .collect();
        names.sort();
        names
    }

    #[test]
    fn open_removes_unlocked_entries_and_keeps_locked_ones() {
        let dir = tempfile::tempdir().unwrap();
        let tmp = dir.path().join("tmp");
        std::fs::create_dir_all(tmp.join("crashed-session/nested")).unwrap();
        std::fs::write(tmp.join("crashed-session/nested/partial"), b"x").unwrap();
        std::fs::write(tmp.join("crashed-file"), b"x").unwrap();
        std::fs::create_dir(tmp.join("live-session")).unwrap();
        std::fs::write(tmp.join("live-session/partial"), b"x").unwrap();
        let live = std::fs::File::open(tmp.join("live-session")).unwrap();
        assert!(flock_exclusive(&live, false).unwrap());

        let store = Store::open(dir.path()).unwrap();
        let own = store
            .tmp_dir()
            .file_name()
            .unwrap()
            .to_str()
            .unwrap()
            .to_string();
        let mut expected = vec!["live-session".to_string(), own];
        expected.sort();
        assert_eq!(entries(&tmp), expected);
        assert!(tmp.join("live-session/partial").is_file());

        // Once its holder lets go, the next open cleans it.
        drop(live);
        let _second = Store::open(dir.path()).unwrap();
        assert!(!tmp.join("live-session").exists());
    }

    #[test]
    fn a_dead_sessions_mounts_are_detached_and_it_is_removed() {
        if !rustix::process::geteuid().is_root() {
            eprintln!("skipped: mounting a tmpfs needs root");
            return;
        }
        let dir = tempfile::tempdir().unwrap();
        let mnt = dir.path().join("tmp/dead-session/run-1/rootfs");
        std::fs::create_dir_all(&mnt).unwrap();
        rustix::mount::mount(
            "tmpfs",
            &mnt,
            "tmpfs",
            rustix::mount::MountFlags::empty(),
            None,
        )
        .unwrap();
        std::fs::write(mnt.join("inside"), b"x").unwrap();
        assert_eq!(
            crate::reap::mounts_under(&dir.path().join("tmp")),
            std::slice::from_ref(&mnt)
        );

        let store = Store::open(dir.path()).unwrap();
        assert!(crate::reap::mounts_under(dir.path()).is_empty());
        assert!(!dir.path().join("tmp/dead-session").exists());
        let cleaned = store.tmp_leftovers();
        assert_eq!(cleaned.removed, [dir.path().join("tmp/dead-session")]);
        assert!(cleaned.failed.is_empty(), "{:?}", cleaned.failed);
    }

    #[test]
    fn a_second_store_keeps_the_first_ones_session_and_drop_removes_it() {
        let dir = tempfile::tempdir().unwrap();
        let first = Store::open(dir.path()).unwrap();
        std::fs::write(first.tmp_dir().join("scratch"), b"x").unwrap();
        let second = Store::open(dir.path()).unwrap();
        assert_ne!(first.tmp_dir(), second.tmp_dir());
        assert!(first.tmp_dir().join("scratch").is_file());
        let first_dir = first.tmp_dir().to_path_buf();
        drop(first);
        assert!(!first_dir.exists());
        assert!(second.tmp_dir().is_dir());
    }
}
