//! Content-addressed blobs: `blobs/sha256/<hex>`, written through a temp file in this
//! process's `tmp/` session, fsynced, checked, and renamed into place.

use std::io::{self, BufWriter, Read, Write};
use std::path::PathBuf;

use strata_digest::{Digest, HashingWriter};
use tempfile::NamedTempFile;

use crate::writeback::Writeback;
use crate::{Result, Store, StoreError};

/// `read_blob` refuses blobs larger than this: it is meant for manifests and configs.
pub const READ_BLOB_LIMIT: u64 = 64 << 20;

const WRITE_BUFFER: usize = 128 << 10;

impl Store {
    /// Where the blob lives (or would live).
    pub fn blob_path(&self, digest: &Digest) -> PathBuf {
        self.inner.blobs.join(digest.hex())
    }

    pub fn has_blob(&self, digest: &Digest) -> Result<bool> {
        match fs_err::metadata(self.blob_path(digest)) {
            Ok(meta) => Ok(meta.is_file()),
            Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(false),
            Err(e) => Err(e.into()),
        }
    }

    pub fn blob_size(&self, digest: &Digest) -> Result<u64> {
        match fs_err::metadata(self.blob_path(digest)) {
            Ok(meta) => Ok(meta.len()),
            Err(e) if e.kind() == io::ErrorKind::NotFound => {
                Err(StoreError::BlobNotFound { digest: *digest })
            }
            Err(e) => Err(e.into()),
        }
    }

    /// Whether this process wrote the blob through [`Store::blob_writer`], which hashed
    /// the bytes as they went into the file: a copy made by this process need not
    /// hash them again to know they are right.
    pub fn hashed_here(&self, digest: &Digest) -> bool {
        self.inner.hashed.lock().is_ok_and(|h| h.contains(digest))
    }

    /// Opens the blob for streaming reads.
    pub fn open_blob(&self, digest: &Digest) -> Result<fs_err::File> {
        match fs_err::File::open(self.blob_path(digest)) {
            Ok(file) => Ok(file),
            Err(e) if e.kind() == io::ErrorKind::NotFound => {
                Err(StoreError::BlobNotFound { digest: *digest })
            }
            Err(e) => Err(e.into()),
        }
    }

    /// Reads a small blob (a manifest, a config) whole and checks its digest. Refuses
    /// blobs over [`READ_BLOB_LIMIT`]; stream large ones with [`Store::open_blob`].
    pub fn read_blob(&self, digest: &Digest) -> Result<Vec<u8>> {
        let mut file = self.open_blob(digest)?;
        let size = file.metadata()?.len();
        if size > READ_BLOB_LIMIT {
            return Err(StoreError::BlobTooLarge {
                digest: *digest,
                size,
                limit: READ_BLOB_LIMIT,
            });
        }
        let mut data = Vec::with_capacity(size as usize);
        file.read_to_end(&mut data)?;
        let actual = strata_digest::sha256(&data);
        if actual != *digest {
            return Err(StoreError::CorruptBlob {
                digest: *digest,
                actual,
            });
        }
        Ok(data)
    }

    /// A writer for a new blob. Bytes are hashed as they pass; nothing is visible under
    /// `blobs/` until [`BlobWriter::commit`].
    pub fn blob_writer(&self) -> Result<BlobWriter> {
        // The process's lease: garbage collection leaves blobs newer than it alone
        // until an image or record references them (see `pin.rs`).
        self.hold()?;
        let file = tempfile::Builder::new()
            .prefix("blob-")
            .make_in(self.tmp_dir(), |path| fs_err::File::create_new(path))?;
        let early = file.as_file().file().try_clone().ok();
        let file = Writeback::new(file, early);
        Ok(BlobWriter {
            inner: HashingWriter::new(BufWriter::with_capacity(WRITE_BUFFER, file)),
            store: self.clone(),
        })
    }

    /// Streams `reader` into a new blob. If `expected` is given and that blob is
    /// already stored, returns at once without reading.
    pub fn write_blob(
        &self,
        mut reader: impl Read,
        expected: Option<&Digest>,
    ) -> Result<(Digest, u64)> {
        if let Some(digest) = expected {
            if self.has_blob(digest)? {
                return Ok((*digest, self.blob_size(digest)?));
            }
        }
        let mut writer = self.blob_writer()?;
        let mut buf = vec![0u8; WRITE_BUFFER];
        loop {
            let n = match reader.read(&mut buf) {
                Ok(0) => break,
                Ok(n) => n,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(source) => {
                    return Err(StoreError::ReadSource {
                        expected: expected.copied(),
                        source,
                    })
                }
            };
            writer.write_all(&buf[..n])?;
        }
        writer.commit(expected)
    }

    /// Stores `data` as a blob and returns its digest.
    pub fn put_bytes(&self, data: &[u8]) -> Result<Digest> {
        let digest = strata_digest::sha256(data);
        self.write_blob(data, Some(&digest)).map(|(d, _)| d)
    }
}

/// A blob being written. [`commit`](BlobWriter::commit) moves it into `blobs/`;
/// dropping it instead removes the temp file.
pub struct BlobWriter {
    inner: HashingWriter<BufWriter<Writeback<NamedTempFile<fs_err::File>>>>,
    store: Store,
}

impl std::fmt::Debug for BlobWriter {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("BlobWriter")
            .field("root", &self.store.root())
            .finish_non_exhaustive()
    }
}

impl Write for BlobWriter {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        self.inner.write(buf)
    }

    fn flush(&mut self) -> io::Result<()> {
        self.inner.flush()
    }
}

impl BlobWriter {
    /// Flushes and fsyncs the content, checks it against `expected` (on mismatch the
    /// temp file is removed and the error names both digests), renames it to
    /// `blobs/sha256/<hex>` (if another writer got there first, the temp file is
    /// dropped: the content is the same) and fsyncs the directory.
    pub fn commit(self, expected: Option<&Digest>) -> Result<(Digest, u64)> {
        let (digest, size, buffered) = self.inner.finish();
        let temp = buffered
            .into_inner()
            .map_err(|e| e.into_error())?
            .into_inner();
        if let Some(expected) = expected {
            if *expected != digest {
                return Err(StoreError::DigestMismatch {
                    expected: *expected,
                    actual: digest,
                    size,
                });
            }
        }
        let dest = self.store.blob_path(&digest);
        if self.store.has_blob(&digest)? {
            return Ok((digest, size));
        }
        temp.as_file().sync_all()?;
        match temp.persist_noclobber(&dest) {
            Ok(_) => {}
            // Lost a race with another writer of the same content.
            Err(e) if e.error.kind() == io::ErrorKind::AlreadyExists => {}
            Err(e) => return Err(e.error.into()),
        }
        fs_err::File::open(&self.store.inner.blobs)?.sync_all()?;
        if let Ok(mut hashed) = self.store.inner.hashed.lock() {
            hashed.insert(digest);
        }
        Ok((digest, size))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tmp_entries(store: &Store) -> Vec<PathBuf> {
        std::fs::read_dir(store.tmp_dir())
            .unwrap()
            .map(|e| e.unwrap().path())
            .collect()
    }

    fn pattern(len: usize, seed: u8) -> Vec<u8> {
        (0..len)
            .map(|i| (i as u8).wrapping_mul(31).wrapping_add(seed))
            .collect()
    }

    #[test]
    fn write_then_read_back_in_every_way() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(dir.path()).unwrap();
        let data = pattern(1_000_000, 7);
        let mut writer = store.blob_writer().unwrap();
        for chunk in data.chunks(4093) {
            writer.write_all(chunk).unwrap();
        }
        let (digest, size) = writer.commit(None).unwrap();
        assert_eq!(digest, strata_digest::sha256(&data));
        assert_eq!(size, data.len() as u64);
        assert!(store.has_blob(&digest).unwrap());
        assert_eq!(store.blob_size(&digest).unwrap(), size);
        assert_eq!(
            store.blob_path(&digest),
            dir.path().join("blobs/sha256").join(digest.hex())
        );
        let mut streamed = Vec::new();
        store
            .open_blob(&digest)
            .unwrap()
            .read_to_end(&mut streamed)
            .unwrap();
        assert_eq!(streamed, data);
        assert_eq!(store.read_blob(&digest).unwrap(), data);
        assert!(tmp_entries(&store).is_empty());
    }

    #[test]
    fn missing_blobs_are_reported_as_such() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(dir.path()).unwrap();
        let d = strata_digest::sha256(b"absent");
        assert!(!store.has_blob(&d).unwrap());
        assert!(
            matches!(store.blob_size(&d), Err(StoreError::BlobNotFound { digest }) if digest == d)
        );
        assert!(matches!(
            store.open_blob(&d),
            Err(StoreError::BlobNotFound { .. })
        ));
        assert!(matches!(
            store.read_blob(&d),
            Err(StoreError::BlobNotFound { .. })
        ));
    }

    #[test]
    fn a_digest_mismatch_is_rejected_and_leaves_nothing_behind() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(dir.path()).unwrap();
        let claimed = strata_digest::sha256(b"what the registry promised");
        let err = store
            .write_blob(&b"what it sent"[..], Some(&claimed))
            .unwrap_err();
        let actual = strata_digest::sha256(b"what it sent");
        match &err {
            StoreError::DigestMismatch {
                expected,
                actual: got,
                size,
            } => {
                assert_eq!((*expected, *got, *size), (claimed, actual, 12));
            }
            other => panic!("unexpected {other:?}"),
        }
        let message = err.to_string();
        assert!(message.contains(&claimed.to_string()) && message.contains(&actual.to_string()));
        assert!(tmp_entries(&store).is_empty());
        assert!(!store.has_blob(&claimed).unwrap());
        assert!(!store.has_blob(&actual).unwrap());
    }

    #[test]
    fn dropping_an_uncommitted_writer_removes_its_temp_file() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(dir.path()).unwrap();
        let mut writer = store.blob_writer().unwrap();
        writer.write_all(&pattern(300_000, 1)).unwrap();
        assert_eq!(tmp_entries(&store).len(), 1);
        drop(writer);
        assert!(tmp_entries(&store).is_empty());
        assert_eq!(
            std::fs::read_dir(dir.path().join("blobs/sha256"))
                .unwrap()
                .count(),
            0
        );
    }

    #[test]
    fn writing_an_existing_blob_again_keeps_one_copy() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(dir.path()).unwrap();
        let d1 = store.put_bytes(b"{\"a\":1}").unwrap();
        let mut w = store.blob_writer().unwrap();
        w.write_all(b"{\"a\":1}").unwrap();
        assert_eq!(w.commit(Some(&d1)).unwrap(), (d1, 7));
        assert_eq!(store.write_blob(&b"{\"a\":1}"[..], None).unwrap(), (d1, 7));
        assert_eq!(
            std::fs::read_dir(dir.path().join("blobs/sha256"))
                .unwrap()
                .count(),
            1
        );
        assert!(tmp_entries(&store).is_empty());
    }

    #[test]
    fn only_blobs_this_process_wrote_count_as_hashed_here() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(dir.path()).unwrap();
        let d = store.put_bytes(b"written here").unwrap();
        assert!(store.hashed_here(&d));
        // A clone shares what it knows; a store opened afresh (another build) does not.
        assert!(store.clone().hashed_here(&d));
        let other = Store::open(dir.path()).unwrap();
        assert!(!other.hashed_here(&d));
        // Found already stored: not hashed by this writer.
        let mut w = other.blob_writer().unwrap();
        w.write_all(b"written here").unwrap();
        w.commit(Some(&d)).unwrap();
        assert!(!other.hashed_here(&d));
    }

    #[test]
    fn write_blob_reports_a_failing_source() {
        struct Failing;
        impl Read for Failing {
            fn read(&mut self, _: &mut [u8]) -> io::Result<usize> {
                Err(io::Error::new(
                    io::ErrorKind::ConnectionReset,
                    "peer went away",
                ))
            }
        }
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(dir.path()).unwrap();
        let err = store.write_blob(Failing, None).unwrap_err();
        assert!(
            matches!(err, StoreError::ReadSource { expected: None, .. }),
            "{err:?}"
        );
        assert!(tmp_entries(&store).is_empty());
    }

    #[test]
    fn read_blob_detects_corruption() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(dir.path()).unwrap();
        let d = store.put_bytes(b"{}").unwrap();
        std::fs::write(store.blob_path(&d), b"{ }").unwrap();
        assert!(matches!(
            store.read_blob(&d),
            Err(StoreError::CorruptBlob { digest, actual }) if digest == d && actual == strata_digest::sha256(b"{ }")
        ));
    }

    #[test]
    fn concurrent_writers_of_the_same_blob_all_succeed() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(dir.path()).unwrap();
        let data = std::sync::Arc::new(pattern(2_000_000, 3));
        let expected = strata_digest::sha256(&data[..]);
        let barrier = std::sync::Arc::new(std::sync::Barrier::new(6));
        let threads: Vec<_> = (0..6)
            .map(|i| {
                let (store, data, barrier) = (store.clone(), data.clone(), barrier.clone());
                std::thread::spawn(move || {
                    let mut w = store.blob_writer().unwrap();
                    barrier.wait();
                    for chunk in data.chunks(10_000 + i * 1000) {
                        w.write_all(chunk).unwrap();
                    }
                    w.commit(Some(&expected)).unwrap()
                })
            })
            .collect();
        for t in threads {
            assert_eq!(t.join().unwrap(), (expected, data.len() as u64));
        }
        assert_eq!(store.read_blob(&expected).unwrap(), *data);
        assert!(tmp_entries(&store).is_empty());
        assert_eq!(
            std::fs::read_dir(dir.path().join("blobs/sha256"))
                .unwrap()
                .count(),
            1
        );
    }
}
