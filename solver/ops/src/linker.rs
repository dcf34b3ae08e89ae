//! Hardlinks of an incremental COPY made on a thread of their own: the copy's walk
//! checks the next unchanged files (stat of the source, of the previous copy, the stat
//! cache) while this thread links the ones before (linkat is about half of relinking a
//! 30,000-file context). Only into directories the copy itself just created, where no
//! name can exist yet; [`Linker::wait`] before anything else touches such a directory
//! (its mtime is set after its contents).

use std::ffi::OsString;
use std::path::PathBuf;
use std::sync::mpsc::{sync_channel, SyncSender};
use std::sync::Arc;
use std::thread::JoinHandle;

use rustix::fd::OwnedFd;

use crate::copy::CopyError;

enum Job {
    /// `name` in `prev` linked as `name` in `out`; `path` names it in errors.
    Link {
        prev: Arc<OwnedFd>,
        out: Arc<OwnedFd>,
        name: OsString,
        path: PathBuf,
    },
    /// Everything before is done: the first failure since the last wait, if any.
    Wait(SyncSender<Option<CopyError>>),
}

pub(crate) struct Linker {
    tx: Option<SyncSender<Job>>,
    thread: Option<JoinHandle<()>>,
}

impl Linker {
    pub(crate) fn start() -> std::io::Result<Linker> {
        let (tx, rx) = sync_channel::<Job>(1024);
        let thread = std::thread::Builder::new()
            .name("copy-link".into())
            .spawn(move || {
                let mut failed: Option<CopyError> = None;
                for job in rx {
                    match job {
                        Job::Link {
                            prev,
                            out,
                            name,
                            path,
                        } => {
                            if failed.is_some() {
                                continue;
                            }
                            let flags = rustix::fs::AtFlags::empty();
                            if let Err(e) = rustix::fs::linkat(&*prev, &name, &*out, &name, flags) {
                                failed = Some(CopyError::Io {
                                    path,
                                    source: e.into(),
                                });
                            }
                        }
                        Job::Wait(reply) => {
                            let _ = reply.send(failed.take());
                        }
                    }
                }
            })?;
        Ok(Linker {
            tx: Some(tx),
            thread: Some(thread),
        })
    }

    /// Links `name` of `prev` into `out` (a directory the copy just made), soon.
    pub(crate) fn link(
        &self,
        prev: &Arc<OwnedFd>,
        out: &Arc<OwnedFd>,
        name: OsString,
        path: PathBuf,
    ) {
        if let Some(tx) = &self.tx {
            let _ = tx.send(Job::Link {
                prev: prev.clone(),
                out: out.clone(),
                name,
                path,
            });
        }
    }

    /// Returns once every link asked for is made; the first that failed.
    pub(crate) fn wait(&self) -> Result<(), CopyError> {
        let (reply, answer) = sync_channel(1);
        let sent = self
            .tx
            .as_ref()
            .is_some_and(|tx| tx.send(Job::Wait(reply)).is_ok());
        match answer.recv() {
            Ok(None) if sent => Ok(()),
            Ok(Some(e)) => Err(e),
            _ => Err(CopyError::Io {
                path: PathBuf::new(),
                source: std::io::Error::other("the copy's link thread stopped"),
            }),
        }
    }
}

impl Drop for Linker {
    /// No link is made after the copy returns.
    fn drop(&mut self) {
        self.tx = None;
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}
