//! Per-key exclusive locks (`flock` on `locks/<sha256(key)>`), so two processes never
//! build the same vertex at once. The lock files stay: deleting a lock file while
//! another process waits on it would let a third process lock a fresh inode.

use std::io;
use std::path::{Path, PathBuf};

use rustix::fs::FlockOperation;
use rustix::io::Errno;

use crate::{Result, Store, StoreError};

/// An exclusive lock on a key, held until dropped (closing the file releases it; the
/// kernel also releases it when the process dies, even by SIGKILL).
#[derive(Debug)]
pub struct KeyLock {
    key: String,
    _file: fs_err::File,
}

impl KeyLock {
    pub fn key(&self) -> &str {
        &self.key
    }
}

impl Store {
    /// Blocks until this process holds the exclusive lock on `key`. Each call opens its
    /// own file description, so two threads of one process exclude each other too.
    /// Blocking: call it from a blocking thread in async code.
    pub fn lock(&self, key: &str) -> Result<KeyLock> {
        self.key_lock(key, true)
            .map(|lock| lock.expect("a blocking lock is always taken"))
    }

    /// Takes the lock on `key` if nobody holds it; `None` if someone does.
    pub fn try_lock(&self, key: &str) -> Result<Option<KeyLock>> {
        self.key_lock(key, false)
    }

    /// What [`Store::lock`] would wait for, detached from this handle: a thread can
    /// block on it without keeping the store (and its tmp/ session) alive.
    pub fn pending_lock(&self, key: &str) -> PendingLock {
        PendingLock {
            key: key.to_string(),
            path: self.lock_path(key),
        }
    }

    fn key_lock(&self, key: &str, blocking: bool) -> Result<Option<KeyLock>> {
        PendingLock {
            key: key.to_string(),
            path: self.lock_path(key),
        }
        .take(blocking)
    }

    fn lock_path(&self, key: &str) -> PathBuf {
        self.inner
            .root
            .join("locks")
            .join(strata_digest::sha256(key).hex())
    }
}

/// A key lock not yet taken (see [`Store::pending_lock`]).
#[derive(Debug, Clone)]
pub struct PendingLock {
    key: String,
    path: PathBuf,
}

impl PendingLock {
    /// Blocks until the lock is this caller's.
    pub fn wait(self) -> Result<KeyLock> {
        self.take(true)
            .map(|lock| lock.expect("a blocking lock is always taken"))
    }

    fn take(self, blocking: bool) -> Result<Option<KeyLock>> {
        let PendingLock { key, path } = self;
        loop {
            let file = open_lock_file(&path)?;
            let taken =
                flock_exclusive(file.file(), blocking).map_err(|source| StoreError::Lock {
                    what: format!("key {key:?}"),
                    path: path.clone(),
                    source,
                })?;
            if !taken {
                return Ok(None);
            }
            // Unused lock files are removed by their lock's holder (`prune_locks`): if
            // ours went while we waited, we hold a lock nobody else will look at.
            if same_file(file.file(), &path)? {
                return Ok(Some(KeyLock { key, _file: file }));
            }
        }
    }
}

/// Whether `path` still names the file open as `file`.
fn same_file(file: &std::fs::File, path: &Path) -> Result<bool> {
    use std::os::unix::fs::MetadataExt;
    let open = file.metadata()?;
    match fs_err::metadata(path) {
        Ok(named) => Ok(named.dev() == open.dev() && named.ino() == open.ino()),
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(false),
        Err(e) => Err(e.into()),
    }
}

impl Store {
    /// Removes the lock files of keys nobody holds or waits for; returns how many went.
    /// Safe beside running builds: a file is removed while its lock is held, and a
    /// process that was waiting on the removed file notices and locks the new one.
    pub fn prune_locks(&self) -> Result<usize> {
        let mut removed = 0;
        for entry in fs_err::read_dir(self.inner.root.join("locks"))? {
            let path = entry?.path();
            let named = path
                .file_name()
                .and_then(|n| n.to_str())
                .is_some_and(|n| n.len() == 64 && n.bytes().all(|b| b.is_ascii_hexdigit()));
            if !named {
                continue; // the tmp/ cleaner's lock
            }
            let file = match fs_err::File::open(&path) {
                Ok(f) => f,
                Err(e) if e.kind() == io::ErrorKind::NotFound => continue,
                Err(e) => return Err(e.into()),
            };
            let free = flock_exclusive(file.file(), false).map_err(|source| StoreError::Lock {
                what: "an unused key lock".into(),
                path: path.clone(),
                source,
            })?;
            if free && same_file(file.file(), &path)? {
                match fs_err::remove_file(&path) {
                    Ok(()) => removed += 1,
                    Err(e) if e.kind() == io::ErrorKind::NotFound => {}
                    Err(e) => return Err(e.into()),
                }
            }
        }
        Ok(removed)
    }
}

pub(crate) fn open_lock_file(path: &Path) -> Result<fs_err::File> {
    Ok(fs_err::OpenOptions::new()
        .read(true)
        .write(true)
        .create(true)
        .truncate(false)
        .open(path)?)
}

/// `flock(LOCK_EX)`, retried on EINTR. Returns false when `blocking` is off and
/// another open file description holds the lock.
pub(crate) fn flock_exclusive(file: &std::fs::File, blocking: bool) -> io::Result<bool> {
    let op = if blocking {
        FlockOperation::LockExclusive
    } else {
        FlockOperation::NonBlockingLockExclusive
    };
    loop {
        match rustix::fs::flock(file, op) {
            Ok(()) => return Ok(true),
            Err(Errno::INTR) => continue,
            Err(Errno::WOULDBLOCK) if !blocking => return Ok(false),
            Err(e) => return Err(e.into()),
        }
    }
}

#[cfg(test)]
mod tests {
    use std::sync::mpsc;

    use super::*;

    #[test]
    fn try_lock_fails_while_another_holder_exists_and_succeeds_after_drop() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(dir.path()).unwrap();
        let held = store.lock("vertex-a").unwrap();
        assert_eq!(held.key(), "vertex-a");
        // Same process, same thread: still excluded (separate open file descriptions).
        assert!(store.try_lock("vertex-a").unwrap().is_none());
        // A different key is independent.
        assert!(store.try_lock("vertex-b").unwrap().is_some());
        drop(held);
        assert!(store.try_lock("vertex-a").unwrap().is_some());
    }

    #[test]
    fn lock_blocks_another_thread_until_released() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(dir.path()).unwrap();
        let held = store.lock("k").unwrap();
        let (tx, rx) = mpsc::channel();
        let waiter = {
            let store = store.clone();
            std::thread::spawn(move || {
                tx.send("waiting").unwrap();
                let lock = store.lock("k").unwrap();
                tx.send("acquired").unwrap();
                drop(lock);
            })
        };
        assert_eq!(rx.recv().unwrap(), "waiting");
        // While we hold the lock the other thread cannot have it: prove it by checking
        // that the lock is still ours (try_lock from a third description fails) and
        // the waiter has not reported.
        assert!(store.try_lock("k").unwrap().is_none());
        assert!(rx.try_recv().is_err());
        drop(held);
        assert_eq!(rx.recv().unwrap(), "acquired");
        waiter.join().unwrap();
    }

    #[test]
    fn lock_excludes_threads_from_the_critical_section() {
        use std::sync::atomic::{AtomicBool, AtomicU32, Ordering};
        use std::sync::Arc;

        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(dir.path()).unwrap();
        let inside = Arc::new(AtomicBool::new(false));
        let entries = Arc::new(AtomicU32::new(0));
        let threads: Vec<_> = (0..4)
            .map(|_| {
                let (store, inside, entries) = (store.clone(), inside.clone(), entries.clone());
                std::thread::spawn(move || {
                    for _ in 0..50 {
                        let lock = store.lock("shared").unwrap();
                        assert!(!inside.swap(true, Ordering::SeqCst), "two holders at once");
                        entries.fetch_add(1, Ordering::SeqCst);
                        std::thread::yield_now();
                        inside.store(false, Ordering::SeqCst);
                        drop(lock);
                    }
                })
            })
            .collect();
        for t in threads {
            t.join().unwrap();
        }
        assert_eq!(entries.load(Ordering::SeqCst), 200);
    }

    #[test]
    fn a_pending_lock_waits_without_the_store_handle() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(dir.path()).unwrap();
        let held = store.lock("k").unwrap();
        let pending = store.pending_lock("k");
        drop(store);
        let (tx, rx) = mpsc::channel();
        let waiter = std::thread::spawn(move || {
            let lock = pending.wait().unwrap();
            tx.send(lock.key().to_string()).unwrap();
        });
        assert!(rx.try_recv().is_err());
        drop(held);
        assert_eq!(rx.recv().unwrap(), "k");
        waiter.join().unwrap();
    }

    #[test]
    fn unused_lock_files_are_pruned_and_held_ones_kept() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(dir.path()).unwrap();
        drop(store.lock("unused").unwrap());
        let held = store.lock("held").unwrap();
        assert_eq!(store.prune_locks().unwrap(), 1);
        assert!(!store.lock_path("unused").exists());
        assert!(store.lock_path("held").exists());
        assert!(store.try_lock("held").unwrap().is_none());
        drop(held);
        assert_eq!(store.prune_locks().unwrap(), 1);
        assert!(dir.path().join("locks/tmp-cleaner.lock").is_file());
    }

    /// How many of this process's descriptors are open on `path`.
    fn open_on(path: &Path) -> usize {
        std::fs::read_dir("/proc/self/fd")
            .unwrap()
            .flatten()
            .filter(|fd| std::fs::read_link(fd.path()).is_ok_and(|t| t == path))
            .count()
    }

    #[test]
    fn a_waiter_whose_file_was_pruned_locks_the_new_one() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(dir.path()).unwrap();
        let path = store.lock_path("k");
        let held = store.lock("k").unwrap();
        let pending = store.pending_lock("k");
        let waiter = std::thread::spawn(move || pending.wait().unwrap());
        while open_on(&path) < 2 {
            std::thread::yield_now(); // until the waiter has the file open
        }
        // The file is unlinked while the waiter waits on it (as a pruner holding the
        // lock would), and a newcomer locks a fresh file at the path.
        std::fs::remove_file(&path).unwrap();
        let newcomer = store.try_lock("k").unwrap().expect("a fresh file is free");
        // The waiter gets the old file's lock, sees the path names another file, and
        // waits for the newcomer's.
        drop(held);
        drop(newcomer);
        let theirs = waiter.join().unwrap();
        assert!(
            store.try_lock("k").unwrap().is_none(),
            "the waiter holds the lock the path names, not an orphan"
        );
        drop(theirs);
    }

    #[test]
    fn lock_files_are_named_by_the_key_hash() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(dir.path()).unwrap();
        let _lock = store.lock("some key").unwrap();
        let expected = dir
            .path()
            .join("locks")
            .join(strata_digest::sha256("some key").hex());
        assert!(expected.is_file());
    }
}
