//! Copying a blob out of the sink while checking it is what the manifest says.

use std::io::{self, Read, Write};

use strata_digest::{Digest, HashingReader};

use crate::{BlobSink, ImageError};

/// A sink reader that fails (as `InvalidData`) when the blob turns out longer or
/// shorter than `size` or hashes to something other than `digest`, so that a corrupt
/// store never yields a corrupt output.
pub(crate) struct VerifyingReader {
    inner: Option<HashingReader<Box<dyn Read + Send>>>,
    digest: Digest,
    size: u64,
    read: u64,
    read_error: bool,
    mismatch: Option<(Digest, u64)>,
}

impl VerifyingReader {
    pub(crate) fn open(sink: &dyn BlobSink, digest: Digest, size: u64) -> Result<Self, ImageError> {
        let inner = sink
            .open(&digest)
            .map_err(|source| ImageError::ReadBlob { digest, source })?;
        Ok(VerifyingReader {
            inner: Some(HashingReader::new(inner)),
            digest,
            size,
            read: 0,
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

    /// Stop and remember what was read so far.
    fn fail(&mut self) -> io::Error {
        if let Some(r) = self.inner.take() {
            let (actual, n, _) = r.finish();
            self.mismatch = Some((actual, n));
        }
        io::Error::new(
            io::ErrorKind::InvalidData,
            format!("blob {} does not match its descriptor", self.digest),
        )
    }
}

impl Read for VerifyingReader {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let Some(inner) = self.inner.as_mut() else {
            return if self.mismatch.is_some() {
                Err(self.fail())
            } else {
                Ok(0)
            };
        };
        let n = inner.read(buf).inspect_err(|_| self.read_error = true)?;
        self.read += n as u64;
        if self.read > self.size {
            return Err(self.fail());
        }
        if n == 0 && !buf.is_empty() {
            let (actual, len, _) = self.inner.take().expect("checked above").finish();
            if actual != self.digest || len != self.size {
                self.mismatch = Some((actual, len));
                return Err(self.fail());
            }
        }
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
}
