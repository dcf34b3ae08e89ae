//! Copying a blob out of the sink while checking it is what the manifest says. A
//! thread reads and hashes ahead, a few pieces in front of the writer, so that
//! verifying costs no time when the writer is the slower side; from a file into a
//! file, the kernel copies while a thread hashes the source.

use std::fs::File;
use std::io::{self, BufWriter, Read, Write};
use std::sync::mpsc::{self, Receiver, SyncSender};

use strata_digest::{Digest, HashingReader, HashingWriter};

use crate::{BlobSink, ImageError};

/// Bytes per piece read ahead, and how many pieces may wait.
const PIECE: u64 = 1 << 20;
const AHEAD: usize = 4;

/// What the reading thread sends.
enum Piece {
    Bytes(Vec<u8>),
    /// End of the blob, or the first bytes past `size`: digest and length read.
    End(Digest, u64),
    Failed(io::Error),
}

/// A sink reader that fails (as `InvalidData`) when the blob turns out longer or
/// shorter than `size` or hashes to something other than `digest`, so that a corrupt
/// store never yields a corrupt output.
pub(crate) struct VerifyingReader {
    pieces: Receiver<Piece>,
    current: Vec<u8>,
    pos: usize,
    digest: Digest,
    size: u64,
    finished: bool,
    read_error: bool,
    mismatch: Option<(Digest, u64)>,
}

impl VerifyingReader {
    pub(crate) fn open(sink: &dyn BlobSink, digest: Digest, size: u64) -> Result<Self, ImageError> {
        let inner = sink
            .open(&digest)
            .map_err(|source| ImageError::ReadBlob { digest, source })?;
        let (tx, pieces) = mpsc::sync_channel(AHEAD);
        std::thread::Builder::new()
            .name("strata-blob-read".into())
            .spawn(move || read_ahead(inner, size, tx))
            .map_err(|source| ImageError::ReadBlob { digest, source })?;
        Ok(VerifyingReader {
            pieces,
            current: Vec::new(),
            pos: 0,
            digest,
            size,
            finished: false,
            read_error: false,
            mismatch: None,
        })
    }

    /// Turn an error from a copy that read from `self` into the error to report:
    /// a mismatch or a read failure is the blob's fault; anything else is the
    /// destination's, mapped by `write_error`.
    pub(crate) fn classify(
        &self,
        e: io::Error,
        write_error: impl FnOnce(io::Error) -> ImageError,
    ) -> ImageError {
        if let Some((actual, actual_size)) = self.mismatch {
            ImageError::BlobMismatch {
                digest: self.digest,
                size: self.size,
                actual,
                actual_size,
            }
        } else if self.read_error {
            ImageError::ReadBlob {
                digest: self.digest,
                source: e,
            }
        } else {
            write_error(e)
        }
    }

    fn mismatch_error(&self) -> io::Error {
        io::Error::new(
            io::ErrorKind::InvalidData,
            format!("blob {} does not match its descriptor", self.digest),
        )
    }
}

/// The reading thread: pieces of at most [`PIECE`] bytes, hashed, then the digest.
/// Stops after the first piece that goes past `size`, or when nobody listens.
fn read_ahead(inner: Box<dyn Read + Send>, size: u64, tx: SyncSender<Piece>) {
    let mut r = HashingReader::new(inner);
    let mut total = 0u64;
    loop {
        let mut buf = Vec::with_capacity(PIECE as usize);
        match (&mut r).take(PIECE).read_to_end(&mut buf) {
            Err(e) => {
                let _ = tx.send(Piece::Failed(e));
                return;
            }
            Ok(0) => break,
            Ok(n) if total + n as u64 > size => break,
            Ok(n) => {
                total += n as u64;
                if tx.send(Piece::Bytes(buf)).is_err() {
                    return;
                }
            }
        }
    }
    let (digest, len, _) = r.finish();
    let _ = tx.send(Piece::End(digest, len));
}

impl Read for VerifyingReader {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        if self.mismatch.is_some() {
            return Err(self.mismatch_error());
        }
        while self.pos == self.current.len() && !self.finished {
            match self.pieces.recv() {
                Ok(Piece::Bytes(b)) => (self.current, self.pos) = (b, 0),
                Ok(Piece::End(actual, len)) => {
                    if actual != self.digest || len != self.size {
                        self.mismatch = Some((actual, len));
                        return Err(self.mismatch_error());
                    }
                    self.finished = true;
                }
                Ok(Piece::Failed(e)) => {
                    self.read_error = true;
                    return Err(e);
                }
                Err(_) => {
                    self.read_error = true;
                    return Err(io::Error::other("the blob reading thread stopped"));
                }
            }
        }
        let n = buf.len().min(self.current.len() - self.pos);
        buf[..n].copy_from_slice(&self.current[self.pos..self.pos + n]);
        self.pos += n;
        Ok(n)
    }
}

/// Copy a whole blob into `dst`, verified; `write_error` maps failures of `dst`.
pub(crate) fn copy_blob(
    sink: &dyn BlobSink,
    digest: Digest,
    size: u64,
    dst: &mut dyn Write,
    write_error: impl FnOnce(io::Error) -> ImageError,
) -> Result<(), ImageError> {
    let mut r = VerifyingReader::open(sink, digest, size)?;
    match io::copy(&mut r, dst) {
        Ok(_) => Ok(()),
        Err(e) => Err(r.classify(e, write_error)),
    }
}

/// [`copy_blob`] into a file at its current position, inside the kernel when the sink
/// keeps the blob as a file ([`BlobSink::open_file`]): `copy_file_range` moves the
/// bytes without a trip through user space while a second thread reads and hashes the
/// source, so the copy is verified as [`copy_blob`]'s is (a mismatch fails it with the
/// same error); a blob the sink hashed itself in this process
/// ([`BlobSink::hashed_here`]) is only checked for its size. Falls back to
/// [`copy_blob`] when the sink has no file.
pub(crate) fn copy_blob_to_file(
    sink: &dyn BlobSink,
    digest: Digest,
    size: u64,
    dst: &File,
    write_error: impl Fn(io::Error) -> ImageError,
) -> Result<(), ImageError> {
    let src = match sink.open_file(&digest) {
        None => {
            let mut w = BufWriter::with_capacity(PIECE as usize, dst);
            copy_blob(sink, digest, size, &mut w, &write_error)?;
            return w.flush().map_err(write_error);
        }
        Some(Err(source)) => return Err(ImageError::ReadBlob { digest, source }),
        Some(Ok(f)) => f,
    };
    let trusted = sink.hashed_here(&digest);
    let (copied, hashed) = std::thread::scope(|s| {
        let hasher = s.spawn(|| match trusted {
            // Hashed as it was written, by this process: its size tells it is whole.
            true => src.metadata().map(|m| (digest, m.len())),
            false => hash_file(&src),
        });
        // std's io::copy between files is copy_file_range (with its own fallbacks).
        let copied = io::copy(&mut (&src).take(size), &mut &*dst);
        let hashed = hasher
            .join()
            .unwrap_or_else(|_| Err(io::Error::other("the blob hashing thread panicked")));
        (copied, hashed)
    });
    let (actual, actual_size) = hashed.map_err(|source| ImageError::ReadBlob { digest, source })?;
    if actual != digest || actual_size != size {
        return Err(ImageError::BlobMismatch {
            digest,
            size,
            actual,
            actual_size,
        });
    }
    match copied {
        Ok(n) if n == size => Ok(()),
        Ok(n) => Err(write_error(io::Error::new(
            io::ErrorKind::UnexpectedEof,
            format!("copied {n} of {size} bytes of blob {digest}"),
        ))),
        Err(e) => Err(write_error(e)),
    }
}

/// sha256 and length of a whole file, read with `pread` (the file position is the
/// copy's).
fn hash_file(f: &File) -> io::Result<(Digest, u64)> {
    use std::os::unix::fs::FileExt;
    let mut h = HashingWriter::new(io::sink());
    let mut buf = vec![0u8; PIECE as usize];
    let mut offset = 0u64;
    loop {
        let n = match f.read_at(&mut buf, offset) {
            Ok(0) => break,
            Ok(n) => n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(e) => return Err(e),
        };
        h.write_all(&buf[..n])?;
        offset += n as u64;
    }
    let (digest, len, _) = h.finish();
    Ok((digest, len))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::MemorySink;

    fn put(sink: &MemorySink, bytes: &[u8]) -> Digest {
        sink.put(&mut |w| w.write_all(bytes)).unwrap().0
    }

    #[test]
    fn copies_a_good_blob() {
        let sink = MemorySink::new();
        let d = put(&sink, b"hello");
        let mut out = Vec::new();
        copy_blob(&sink, d, 5, &mut out, |_| unreachable!()).unwrap();
        assert_eq!(out, b"hello");
    }

    #[test]
    fn rejects_wrong_bytes_and_sizes() {
        let sink = MemorySink::new();
        let d = put(&sink, b"hello");
        for (bytes, size) in [
            (&b"hellx"[..], 5),
            (b"hell", 5),
            (b"hello!", 5),
            (b"hello", 4),
        ] {
            sink.corrupt(&d, bytes.to_vec());
            let err = copy_blob(&sink, d, size, &mut Vec::new(), |_| unreachable!()).unwrap_err();
            assert!(
                matches!(err, ImageError::BlobMismatch { digest, .. } if digest == d),
                "{bytes:?}/{size}: {err}"
            );
        }
        sink.remove(&d);
        let err = copy_blob(&sink, d, 5, &mut Vec::new(), |_| unreachable!()).unwrap_err();
        assert!(matches!(err, ImageError::ReadBlob { .. }), "{err}");
    }

    #[test]
    fn copies_and_checks_blobs_of_many_pieces() {
        let sink = MemorySink::new();
        let len = (AHEAD as u64 + 3) * PIECE + 17;
        let bytes: Vec<u8> = (0..len).map(|i| (i * 131 % 251) as u8).collect();
        let d = put(&sink, &bytes);
        let mut out = Vec::new();
        copy_blob(&sink, d, len, &mut out, |_| unreachable!()).unwrap();
        assert!(out == bytes);
        // One byte off at the very end, and one byte too many.
        let mut bad = bytes.clone();
        *bad.last_mut().unwrap() ^= 1;
        sink.corrupt(&d, bad);
        let err = copy_blob(&sink, d, len, &mut Vec::new(), |_| unreachable!()).unwrap_err();
        assert!(
            matches!(err, ImageError::BlobMismatch { actual_size, .. } if actual_size == len),
            "{err}"
        );
        let mut long = bytes.clone();
        long.push(0);
        sink.corrupt(&d, long);
        let err = copy_blob(&sink, d, len, &mut Vec::new(), |_| unreachable!()).unwrap_err();
        assert!(
            matches!(err, ImageError::BlobMismatch { actual_size, .. } if actual_size == len + 1),
            "{err}"
        );
    }
}

#[cfg(test)]
mod file_tests {
    use super::*;
    use crate::DirSink;

    /// A [`DirSink`] that says it hashed every blob itself.
    struct Trusting(DirSink);

    impl BlobSink for Trusting {
        fn has(&self, d: &Digest) -> bool {
            self.0.has(d)
        }
        fn put(
            &self,
            write: &mut dyn FnMut(&mut dyn Write) -> io::Result<()>,
        ) -> io::Result<(Digest, u64)> {
            self.0.put(write)
        }
        fn open(&self, d: &Digest) -> io::Result<Box<dyn Read + Send>> {
            self.0.open(d)
        }
        fn open_file(&self, d: &Digest) -> Option<io::Result<File>> {
            self.0.open_file(d)
        }
        fn hashed_here(&self, _: &Digest) -> bool {
            true
        }
    }

    fn copy(
        sink: &dyn BlobSink,
        d: Digest,
        size: u64,
        dir: &std::path::Path,
    ) -> Result<Vec<u8>, ImageError> {
        let path = dir.join("out");
        let out = File::create(&path).unwrap();
        copy_blob_to_file(sink, d, size, &out, |e| ImageError::Archive { source: e })?;
        Ok(std::fs::read(&path).unwrap())
    }

    #[test]
    fn blobs_hashed_here_are_only_checked_for_size() {
        let dir = tempfile::tempdir().unwrap();
        let bytes: Vec<u8> = (0..3 * PIECE + 5).map(|i| (i % 253) as u8).collect();
        for trusted in [false, true] {
            let plain = DirSink::new(dir.path().join(format!("s{trusted}")));
            let (d, size) = plain.put(&mut |w| w.write_all(&bytes)).unwrap();
            let sink: &dyn BlobSink = match trusted {
                true => &Trusting(plain),
                false => &plain,
            };
            let path = match trusted {
                true => dir.path().join("strue/sha256").join(d.hex()),
                false => dir.path().join("sfalse/sha256").join(d.hex()),
            };
            assert!(copy(sink, d, size, dir.path()).unwrap() == bytes);
            // Same size, one byte changed: only a hashing copy notices.
            let mut flipped = bytes.clone();
            flipped[7] ^= 1;
            std::fs::write(&path, &flipped).unwrap();
            match copy(sink, d, size, dir.path()) {
                Ok(out) => assert!(trusted && out == flipped),
                Err(e) => assert!(!trusted && matches!(e, ImageError::BlobMismatch { .. })),
            }
            // A different size: both notice.
            std::fs::write(&path, &bytes[1..]).unwrap();
            let err = copy(sink, d, size, dir.path()).unwrap_err();
            assert!(matches!(err, ImageError::BlobMismatch { .. }), "{err}");
        }
    }
}
