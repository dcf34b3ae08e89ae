//! The sha256 of a layer's tar stream, in three stages on threads of their own:
//! the walk (stat, xattrs, headers) hands over headers and the files to read; a
//! reader thread reads the files into batches of [`BATCH`] bytes (buffers go back
//! and forth, nothing is allocated per file); a hashing thread hashes them and
//! takes the hash state at the [`Mark`]s the walk asks for. Reading from the page
//! cache, hashing, and (for many small files) the walk cost about the same, so
//! naming a layer takes about the longest of them instead of their sum. Bounded:
//! at most [`IN_FLIGHT`] groups of jobs and batches of bytes wait.

use std::fs::File;
use std::io::Read;
use std::path::{Path, PathBuf};
use std::sync::mpsc::{channel, sync_channel, Receiver, SyncSender};
use std::thread::JoinHandle;

use crate::checkpoint::Mark;
use crate::error::{Error, Result};
use crate::midstate::Midstate;

const BATCH: usize = 256 * 1024;
const IN_FLIGHT: usize = 8;

/// What the walk hands over, in order.
enum Job {
    Bytes(Vec<u8>),
    /// Exactly `.1` bytes of the file at `.0`.
    File(PathBuf, u64),
    Mark(u64),
}

/// Jobs sent together.
const GROUP: usize = 256;

pub(crate) struct HashPipe {
    jobs: Vec<Job>,
    tx: Option<SyncSender<Vec<Job>>>,
    /// Length of the stream handed over so far (files counted as promised).
    len: u64,
    reader: Option<JoinHandle<Result<()>>>,
    hasher: Option<HashThread>,
}

/// The hashing thread: its hash and marks when it ends.
type HashThread = JoinHandle<(Midstate, Vec<Mark>)>;

impl HashPipe {
    /// Continues `hasher` on new threads.
    pub(crate) fn start(hasher: Midstate) -> Result<HashPipe> {
        let len = hasher.len();
        let (batches, hasher) = Batcher::start(hasher)?;
        let (tx, rx) = sync_channel::<Vec<Job>>(IN_FLIGHT);
        let reader = std::thread::Builder::new()
            .name("layer-read".into())
            .spawn(move || {
                let mut batches = batches;
                for group in rx {
                    for job in group {
                        match job {
                            Job::Bytes(b) => batches.update(&b),
                            Job::File(path, size) => batches.update_from_file(&path, size)?,
                            Job::Mark(entry) => batches.mark(entry),
                        }
                    }
                }
                batches.close();
                Ok(())
            })?;
        Ok(HashPipe {
            jobs: Vec::with_capacity(GROUP),
            tx: Some(tx),
            len,
            reader: Some(reader),
            hasher: Some(hasher),
        })
    }

    /// Length of the stream handed over so far.
    pub(crate) fn len(&self) -> u64 {
        self.len
    }

    pub(crate) fn update(&mut self, data: &[u8]) {
        self.len += data.len() as u64;
        match self.jobs.last_mut() {
            Some(Job::Bytes(b)) => b.extend_from_slice(data),
            _ => self.push(Job::Bytes(data.to_vec())),
        }
    }

    /// Exactly `size` bytes of the file at `path` (a shorter file is an error
    /// when the pipe finishes).
    pub(crate) fn file(&mut self, path: &Path, size: u64) {
        self.len += size;
        self.push(Job::File(path.to_path_buf(), size));
    }

    /// A mark before entry `entry`, here.
    pub(crate) fn mark(&mut self, entry: u64) {
        self.push(Job::Mark(entry));
    }

    /// The hash of everything handed over, and the marks taken; the first error
    /// reading a file.
    pub(crate) fn finish(mut self) -> Result<(Midstate, Vec<Mark>)> {
        self.send();
        self.tx = None;
        let read = join(self.reader.take().expect("finished once"));
        let hashed = join(self.hasher.take().expect("finished once"));
        read.map(|()| hashed)
    }

    fn push(&mut self, job: Job) {
        self.jobs.push(job);
        if self.jobs.len() >= GROUP {
            self.send();
        }
    }

    fn send(&mut self) {
        if self.jobs.is_empty() {
            return;
        }
        let group = std::mem::replace(&mut self.jobs, Vec::with_capacity(GROUP));
        if let Some(tx) = &self.tx {
            // Fails only when the reader stopped (on an error): `finish` says which.
            let _ = tx.send(group);
        }
    }
}

fn join<T>(thread: JoinHandle<T>) -> T {
    match thread.join() {
        Ok(done) => done,
        Err(panic) => std::panic::resume_unwind(panic),
    }
}

enum Msg {
    /// The first `.1` bytes of the buffer.
    Bytes(Vec<u8>, usize),
    /// A mark before entry `.0`, at the bytes sent so far.
    Mark(u64),
}

/// The reader's side of the hashing thread.
struct Batcher {
    tx: Option<SyncSender<Msg>>,
    /// Buffers the hashing thread is done with.
    free: Receiver<Vec<u8>>,
    batch: Vec<u8>,
    /// Bytes of `batch` filled.
    filled: usize,
}

impl Batcher {
    /// Continues `hasher` on a new thread.
    fn start(hasher: Midstate) -> Result<(Batcher, HashThread)> {
        let (tx, rx) = sync_channel::<Msg>(IN_FLIGHT);
        let (free_tx, free) = channel::<Vec<u8>>();
        let thread = std::thread::Builder::new()
            .name("layer-hash".into())
            .spawn(move || {
                let mut hasher = hasher;
                let mut marks = Vec::new();
                for msg in rx {
                    match msg {
                        Msg::Bytes(buf, n) => {
                            hasher.update(&buf[..n]);
                            let _ = free_tx.send(buf);
                        }
                        Msg::Mark(entry) => marks.push(Mark {
                            entry,
                            offset: hasher.len(),
                            state: hasher.state().expect("entries end on block boundaries"),
                        }),
                    }
                }
                (hasher, marks)
            })?;
        let batcher = Batcher {
            tx: Some(tx),
            free,
            batch: vec![0; BATCH],
            filled: 0,
        };
        Ok((batcher, thread))
    }

    fn update(&mut self, mut data: &[u8]) {
        while !data.is_empty() {
            let n = (BATCH - self.filled).min(data.len());
            self.batch[self.filled..self.filled + n].copy_from_slice(&data[..n]);
            self.filled += n;
            data = &data[n..];
            if self.filled == BATCH {
                self.send();
            }
        }
    }

    /// Appends exactly `size` bytes of the file at `path`.
    fn update_from_file(&mut self, path: &Path, size: u64) -> Result<()> {
        let mut file = File::open(path).map_err(|e| Error::Io(with_path(e, path)))?;
        let mut left = size;
        while left > 0 {
            if self.filled == BATCH {
                self.send();
            }
            let want = ((BATCH - self.filled) as u64).min(left) as usize;
            let got = file
                .read(&mut self.batch[self.filled..self.filled + want])
                .map_err(|e| Error::Io(with_path(e, path)))?;
            if got == 0 {
                return Err(Error::Changed {
                    path: path.to_path_buf(),
                });
            }
            self.filled += got;
            left -= got as u64;
        }
        Ok(())
    }

    /// A mark before entry `entry`, here.
    fn mark(&mut self, entry: u64) {
        self.send();
        if let Some(tx) = &self.tx {
            let _ = tx.send(Msg::Mark(entry));
        }
    }

    /// Hands over the last batch and lets the hashing thread end.
    fn close(mut self) {
        self.send();
        self.tx = None;
    }

    fn send(&mut self) {
        if self.filled == 0 {
            return;
        }
        let next = self.free.try_recv().unwrap_or_else(|_| vec![0; BATCH]);
        let full = std::mem::replace(&mut self.batch, next);
        let n = std::mem::take(&mut self.filled);
        if let Some(tx) = &self.tx {
            // Fails only when the thread is gone (it panicked): `finish` says so.
            let _ = tx.send(Msg::Bytes(full, n));
        }
    }
}

fn with_path(e: std::io::Error, path: &Path) -> std::io::Error {
    std::io::Error::new(e.kind(), format!("{}: {e}", path.display()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hashes_pieces_and_files_across_batches_and_marks_where_asked() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("f");
        let data: Vec<u8> = (0..(BATCH * 2 + 3 * 512) as u32)
            .map(|i| (i.wrapping_mul(2_654_435_761) >> 13) as u8)
            .collect();
        std::fs::write(&file, &data).unwrap();
        let header = vec![7u8; 512];

        let mut pipe = HashPipe::start(Midstate::new()).unwrap();
        let mut direct = Midstate::new();
        let mut want_marks = Vec::new();
        for entry in 0..3u64 {
            pipe.update(&header);
            direct.update(&header);
            pipe.file(&file, data.len() as u64);
            pipe.update(&[]);
            direct.update(&data);
            pipe.mark(entry + 1);
            want_marks.push(Mark {
                entry: entry + 1,
                offset: direct.len(),
                state: direct.state().unwrap(),
            });
        }
        assert_eq!(pipe.len(), direct.len());
        let (hasher, marks) = pipe.finish().unwrap();
        assert_eq!(marks, want_marks);
        assert_eq!(hasher.finalize(), direct.finalize());

        // A file shorter than promised is an error, not a short hash.
        let mut pipe = HashPipe::start(Midstate::new()).unwrap();
        pipe.file(&file, data.len() as u64 + 1);
        let err = pipe.finish().unwrap_err();
        assert!(matches!(err, Error::Changed { .. }), "{err}");
    }
}
