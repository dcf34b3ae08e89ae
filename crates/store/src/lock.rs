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
        let file = open_lock_file(&path)?;
        let taken = flock_exclusive(file.file(), blocking).map_err(|source| StoreError::Lock {
            what: format!("key {key:?}"),
            path: path.clone(),
            source,
        })?;
        Ok(taken.then_some(KeyLock { key, _file: file }))
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
