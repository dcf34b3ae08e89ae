//! A [`Midstate`] hash on its own thread. The walker reads files straight into
//! fixed chunks and marks entry boundaries in them; the hashing thread
//! consumes the chunks and takes a [`Mark`] at the first boundary past each
//! interval. Reading (and the walk's system calls) overlap with hashing, which
//! is what bounds naming a large layer. Memory: at most `BUFFERS` chunks.

use std::io::{self, Read};
use std::sync::mpsc::{channel, sync_channel, Receiver, Sender, SyncSender};
use std::thread::JoinHandle;

use crate::checkpoint::Mark;
use crate::midstate::Midstate;

const CHUNK: usize = 256 * 1024;
const BUFFERS: usize = 8;

struct Chunk {
    bytes: Vec<u8>,
    filled: usize,
    /// Entry boundaries in this chunk: (end position, index of the next entry).
    ends: Vec<(usize, u64)>,
}

pub(crate) struct HashPipe {
    chunks: Option<SyncSender<Chunk>>,
    recycled: Receiver<Vec<u8>>,
    thread: Option<JoinHandle<(Midstate, Vec<Mark>)>>,
    cur: Chunk,
    allocated: usize,
    len: u64,
}

impl HashPipe {
    /// Continues `from`; the first mark comes `interval` bytes after it.
    pub(crate) fn start(from: Midstate, interval: u64) -> HashPipe {
        let (chunks, incoming) = sync_channel::<Chunk>(BUFFERS);
        let (give_back, recycled) = channel::<Vec<u8>>();
        let len = from.len();
        let thread = std::thread::Builder::new()
            .name("layer-hash".into())
            .spawn(move || hash(from, interval, incoming, give_back))
            .expect("spawning the layer hashing thread");
        HashPipe {
            chunks: Some(chunks),
            recycled,
            thread: Some(thread),
            cur: Chunk {
                bytes: vec![0; CHUNK],
                filled: 0,
                ends: Vec::new(),
            },
            allocated: 1,
            len,
        }
    }

    /// Bytes hashed or queued, from the start of the stream.
    pub(crate) fn len(&self) -> u64 {
        self.len
    }

    pub(crate) fn write(&mut self, mut data: &[u8]) {
        while !data.is_empty() {
            if self.cur.filled == CHUNK {
                self.flush();
            }
            let n = data.len().min(CHUNK - self.cur.filled);
            self.cur.bytes[self.cur.filled..self.cur.filled + n].copy_from_slice(&data[..n]);
            self.cur.filled += n;
            self.len += n as u64;
            data = &data[n..];
        }
    }

    /// Reads up to `size` bytes of `file` into the stream; returns how many
    /// there were (fewer only at end of file).
    pub(crate) fn read_from(&mut self, file: &mut impl Read, size: u64) -> io::Result<u64> {
        let mut left = size;
        while left > 0 {
            if self.cur.filled == CHUNK {
                self.flush();
            }
            let room = (CHUNK - self.cur.filled).min(usize::try_from(left).unwrap_or(usize::MAX));
            let at = self.cur.filled;
            let n = match file.read(&mut self.cur.bytes[at..at + room]) {
                Ok(0) => break,
                Ok(n) => n,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(e) => return Err(e),
            };
            self.cur.filled += n;
            self.len += n as u64;
            left -= n as u64;
        }
        Ok(size - left)
    }

    /// The stream is at an entry boundary; `next_entry` is the entry after it.
    pub(crate) fn boundary(&mut self, next_entry: u64) {
        self.cur.ends.push((self.cur.filled, next_entry));
    }

    fn flush(&mut self) {
        let bytes = match self.recycled.try_recv() {
            Ok(b) => b,
            Err(_) if self.allocated < BUFFERS => {
                self.allocated += 1;
                vec![0; CHUNK]
            }
            // All buffers in flight: wait for one (or for a dead thread,
            // which `finish` reports).
            Err(_) => self.recycled.recv().unwrap_or_else(|_| vec![0; CHUNK]),
        };
        let full = std::mem::replace(
            &mut self.cur,
            Chunk {
                bytes,
                filled: 0,
                ends: Vec::new(),
            },
        );
        if let Some(chunks) = &self.chunks {
            // A send fails only if the thread died; `finish` reports it.
            let _ = chunks.send(full);
        }
    }

    /// Waits for the hash of everything written; the marks taken on the way.
    pub(crate) fn finish(mut self) -> (Midstate, Vec<Mark>) {
        self.flush();
        drop(self.chunks.take());
        let thread = self.thread.take().expect("finish runs once");
        match thread.join() {
            Ok(done) => done,
            Err(panic) => std::panic::resume_unwind(panic),
        }
    }
}

fn hash(
    mut h: Midstate,
    interval: u64,
    incoming: Receiver<Chunk>,
    give_back: Sender<Vec<u8>>,
) -> (Midstate, Vec<Mark>) {
    let mut marks = Vec::new();
    let mut last_mark = h.len();
    for chunk in incoming {
        let mut at = 0;
        for &(end, next_entry) in &chunk.ends {
            h.update(&chunk.bytes[at..end]);
            at = end;
            if h.len() - last_mark >= interval {
                marks.push(Mark {
                    entry: next_entry,
                    offset: h.len(),
                    state: h.state().expect("entries end on block boundaries"),
                });
                last_mark = h.len();
            }
        }
        h.update(&chunk.bytes[at..chunk.filled]);
        let _ = give_back.send(chunk.bytes);
    }
    (h, marks)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hashes_like_one_midstate_and_marks_at_boundaries_past_the_interval() {
        let data: Vec<u8> = (0..3_000_000u32).map(|i| (i * 31 % 251) as u8).collect();
        // Entries of 512-byte multiples, some larger than a chunk.
        let sizes = [512usize, 1024, 300 * 1024, 512, 1_000_448, 4096, 512];
        let mut pipe = HashPipe::start(Midstate::new(), 100_000);
        let mut reference = Midstate::new();
        let mut at = 0;
        let mut expected = Vec::new();
        let mut last = 0u64;
        for (i, size) in sizes.iter().enumerate() {
            let piece = &data[at..at + size];
            if i % 2 == 0 {
                pipe.write(piece);
            } else {
                assert_eq!(
                    pipe.read_from(&mut &piece[..], *size as u64 + 5).unwrap(),
                    *size as u64
                );
            }
            reference.update(piece);
            at += size;
            pipe.boundary(i as u64 + 1);
            if reference.len() - last >= 100_000 {
                expected.push(Mark {
                    entry: i as u64 + 1,
                    offset: reference.len(),
                    state: reference.state().unwrap(),
                });
                last = reference.len();
            }
        }
        assert_eq!(pipe.len(), at as u64);
        let (h, marks) = pipe.finish();
        assert_eq!(marks, expected);
        assert!(marks.len() >= 2);
        assert_eq!(h.finalize(), reference.finalize());
    }
}
