//! The file work of a COPY, done on threads of their own while the copy's walk goes on:
//! whole-file copies (open, create, copy_file_range, attributes; mostly the kernel's
//! file creation, which one thread cannot hurry: a cold 30,000-file COPY kept one core
//! busy and left the other idle) and, for an incremental COPY, the hardlinks of
//! unchanged files (linkat is about half of relinking a 30,000-file context).
//!
//! Jobs only ever write a name the walk has checked is free, in a directory the walk
//! made or emptied of it; the walk [`Workers::wait`]s before anything else may touch
//! those names or directories: before a directory's attributes are set (its mtime
//! comes after its contents) and before the next source of the copy, which may write
//! the same names.

use std::ffi::OsString;
use std::path::PathBuf;
use std::sync::mpsc::{sync_channel, Receiver, SyncSender};
use std::sync::{Arc, Condvar, Mutex, MutexGuard};
use std::thread::JoinHandle;

use rustix::fd::OwnedFd;

use crate::copy::CopyError;
use crate::fsutil::Attrs;

pub(crate) enum Job {
    /// `name` in `prev` linked as `name` in `out`; `path` names it in errors.
    Link {
        prev: Arc<OwnedFd>,
        out: Arc<OwnedFd>,
        name: OsString,
        path: PathBuf,
    },
    /// The regular file `src` copied to the new file `out`, which gets `attrs`.
    Copy {
        src: PathBuf,
        out: PathBuf,
        attrs: Attrs,
    },
}

impl Job {
    pub(crate) fn run(self) -> Result<(), CopyError> {
        match self {
            Job::Link {
                prev,
                out,
                name,
                path,
            } => {
                let flags = rustix::fs::AtFlags::empty();
                rustix::fs::linkat(&*prev, &name, &*out, &name, flags).map_err(|e| CopyError::Io {
                    path,
                    source: e.into(),
                })
            }
            Job::Copy { src, out, attrs } => crate::copy::copy_file(&src, &out, &attrs),
        }
    }
}

#[derive(Default)]
struct State {
    /// Jobs sent and not yet finished.
    pending: usize,
    /// The first failure since the last wait; later jobs are skipped.
    failed: Option<CopyError>,
    /// The copy is being dropped (finished, failed or cancelled): skip what is queued.
    closing: bool,
}

struct Shared {
    state: Mutex<State>,
    idle: Condvar,
}

impl Shared {
    fn lock(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }
}

pub(crate) struct Workers {
    tx: Option<SyncSender<Job>>,
    shared: Arc<Shared>,
    threads: Vec<JoinHandle<()>>,
}

/// Counts a job as finished even when it panics, so that [`Workers::wait`] returns.
struct Finish<'a> {
    shared: &'a Shared,
    result: Option<Result<(), CopyError>>,
}

impl Drop for Finish<'_> {
    fn drop(&mut self) {
        let result = self.result.take().unwrap_or_else(|| {
            Err(CopyError::Io {
                path: PathBuf::new(),
                source: std::io::Error::other("a copy thread panicked"),
            })
        });
        let mut s = self.shared.lock();
        s.pending -= 1;
        if let Err(e) = result {
            s.failed.get_or_insert(e);
        }
        if s.pending == 0 {
            self.shared.idle.notify_all();
        }
    }
}

impl Workers {
    /// `threads` threads (at least one), with room for a few hundred queued jobs.
    pub(crate) fn start(threads: usize) -> std::io::Result<Workers> {
        let (tx, rx) = sync_channel::<Job>(1024);
        let rx = Arc::new(Mutex::new(rx));
        let shared = Arc::new(Shared {
            state: Mutex::new(State::default()),
            idle: Condvar::new(),
        });
        let mut w = Workers {
            tx: Some(tx),
            shared,
            threads: Vec::new(),
        };
        for i in 0..threads.max(1) {
            let (rx, shared) = (rx.clone(), w.shared.clone());
            let t = std::thread::Builder::new()
                .name(format!("copy-{i}"))
                .spawn(move || work(&rx, &shared))?;
            w.threads.push(t);
        }
        Ok(w)
    }

    /// Runs `job` soon, on one of the threads.
    pub(crate) fn submit(&self, job: Job) {
        let Some(tx) = &self.tx else { return };
        self.shared.lock().pending += 1;
        if let Err(e) = tx.send(job) {
            // Every thread is gone (they only stop when dropped): run it here.
            let mut finish = Finish {
                shared: &self.shared,
                result: None,
            };
            finish.result = Some(e.0.run());
        }
    }

    /// Returns once every job sent so far is finished: the first that failed.
    pub(crate) fn wait(&self) -> Result<(), CopyError> {
        let mut s = self.shared.lock();
        while s.pending > 0 {
            s = self.shared.idle.wait(s).unwrap_or_else(|p| p.into_inner());
        }
        match s.failed.take() {
            Some(e) => Err(e),
            None => Ok(()),
        }
    }
}

fn work(rx: &Mutex<Receiver<Job>>, shared: &Shared) {
    loop {
        let job = match rx.lock().unwrap_or_else(|p| p.into_inner()).recv() {
            Ok(job) => job,
            Err(_) => return,
        };
        let mut finish = Finish {
            shared,
            result: None,
        };
        let skip = {
            let s = shared.lock();
            s.failed.is_some() || s.closing
        };
        finish.result = Some(if skip { Ok(()) } else { job.run() });
    }
}

impl Drop for Workers {
    /// Nothing is written after the copy returns: what is still queued is skipped.
    fn drop(&mut self) {
        self.shared.lock().closing = true;
        self.tx = None;
        for t in self.threads.drain(..) {
            let _ = t.join();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn copy_job(dir: &std::path::Path, name: &str) -> Job {
        Job::Copy {
            src: dir.join("src"),
            out: dir.join(name),
            attrs: Attrs {
                uid: rustix::process::getuid().as_raw(),
                gid: rustix::process::getgid().as_raw(),
                mode: 0o640,
                mtime: (1_000_000, 5),
            },
        }
    }

    #[test]
    fn wait_returns_once_every_job_is_done() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("src"), b"contents").unwrap();
        let w = Workers::start(2).unwrap();
        for i in 0..200 {
            w.submit(copy_job(dir.path(), &format!("f{i}")));
        }
        w.wait().unwrap();
        for i in 0..200 {
            let p = dir.path().join(format!("f{i}"));
            assert_eq!(std::fs::read(&p).unwrap(), b"contents");
            use std::os::unix::fs::MetadataExt;
            let m = std::fs::metadata(&p).unwrap();
            assert_eq!((m.mode() & 0o7777, m.mtime()), (0o640, 1_000_000));
        }
    }

    #[test]
    fn the_first_failure_is_reported_and_later_jobs_skipped() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("src"), b"x").unwrap();
        std::fs::write(dir.path().join("taken"), b"already here").unwrap();
        let w = Workers::start(1).unwrap();
        w.submit(copy_job(dir.path(), "taken"));
        w.submit(copy_job(dir.path(), "after"));
        match w.wait() {
            Err(CopyError::Io { path, .. }) => assert!(path.ends_with("taken"), "{path:?}"),
            other => panic!("expected the failed copy, got {other:?}"),
        }
        assert!(!dir.path().join("after").exists());
        // The failure is reported once; the pool goes on.
        w.submit(copy_job(dir.path(), "later"));
        w.wait().unwrap();
        assert!(dir.path().join("later").exists());
    }
}
