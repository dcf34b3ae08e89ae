//! Two plain [`BlobSink`]s: in memory (tests) and a directory of `sha256/<hex>` files
//! (an OCI layout's `blobs/`, so that an image can be built straight into a layout).

use std::collections::{BTreeMap, HashMap};
use std::fs;
use std::io::{self, Cursor, Read, Write};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError};

use strata_digest::{Digest, HashingWriter};

use crate::{BlobSink, CompressedKey, CompressedLayer};

/// Blobs and the compression memo in memory.
#[derive(Debug, Default)]
pub struct MemorySink {
    blobs: Mutex<BTreeMap<Digest, Arc<[u8]>>>,
    memo: Mutex<HashMap<CompressedKey, CompressedLayer>>,
}

impl MemorySink {
    pub fn new() -> Self {
        Self::default()
    }

    /// A stored blob's bytes.
    pub fn get(&self, d: &Digest) -> Option<Arc<[u8]>> {
        lock(&self.blobs).get(d).cloned()
    }

    /// Digests of every stored blob, sorted.
    pub fn digests(&self) -> Vec<Digest> {
        lock(&self.blobs).keys().copied().collect()
    }

    /// Forget a blob (tests use it to simulate garbage collection).
    pub fn remove(&self, d: &Digest) -> bool {
        lock(&self.blobs).remove(d).is_some()
    }

    /// Replace a blob's bytes without rehashing (tests use it to simulate corruption).
    pub fn corrupt(&self, d: &Digest, bytes: Vec<u8>) {
        lock(&self.blobs).insert(*d, bytes.into());
    }
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(PoisonError::into_inner)
}

impl BlobSink for MemorySink {
    fn has(&self, d: &Digest) -> bool {
        lock(&self.blobs).contains_key(d)
    }

    fn put(
        &self,
        write: &mut dyn FnMut(&mut dyn Write) -> io::Result<()>,
    ) -> io::Result<(Digest, u64)> {
        let mut w = HashingWriter::new(Vec::new());
        write(&mut w)?;
        let (d, n, bytes) = w.finish();
        lock(&self.blobs).entry(d).or_insert_with(|| bytes.into());
        Ok((d, n))
    }

    fn open(&self, d: &Digest) -> io::Result<Box<dyn Read + Send>> {
        match self.get(d) {
            Some(b) => Ok(Box::new(Cursor::new(b))),
            None => Err(io::Error::new(
                io::ErrorKind::NotFound,
                format!("blob {d} not found"),
            )),
        }
    }

    fn lookup_compressed(&self, key: &CompressedKey) -> Option<CompressedLayer> {
        lock(&self.memo).get(key).copied()
    }

    fn record_compressed(&self, key: &CompressedKey, value: &CompressedLayer) {
        lock(&self.memo).insert(*key, *value);
    }
}

/// Blobs as `<root>/sha256/<hex>` files, written to a temporary name, synced and
/// renamed into place. Keeps no compression memo.
#[derive(Debug)]
pub struct DirSink {
    root: PathBuf,
    counter: AtomicU64,
}

impl DirSink {
    /// Blobs go under `root/sha256/` (created on first write).
    pub fn new(root: impl Into<PathBuf>) -> Self {
        DirSink {
            root: root.into(),
            counter: AtomicU64::new(0),
        }
    }

    pub fn path(&self, d: &Digest) -> PathBuf {
        self.root.join("sha256").join(d.hex())
    }

    pub fn root(&self) -> &Path {
        &self.root
    }
}

impl BlobSink for DirSink {
    fn has(&self, d: &Digest) -> bool {
        self.path(d).is_file()
    }

    fn put(
        &self,
        write: &mut dyn FnMut(&mut dyn Write) -> io::Result<()>,
    ) -> io::Result<(Digest, u64)> {
        let dir = self.root.join("sha256");
        fs::create_dir_all(&dir)?;
        let n = self.counter.fetch_add(1, Ordering::Relaxed);
        let tmp = dir.join(format!(".tmp-{}-{n}", std::process::id()));
        let result = (|| {
            let mut w = HashingWriter::new(fs::File::create(&tmp)?);
            write(&mut w)?;
            let (d, len, file) = w.finish();
            file.sync_all()?;
            fs::rename(&tmp, self.path(&d))?;
            Ok((d, len))
        })();
        if result.is_err() {
            let _ = fs::remove_file(&tmp);
        }
        result
    }

    fn open(&self, d: &Digest) -> io::Result<Box<dyn Read + Send>> {
        Ok(Box::new(fs::File::open(self.path(d))?))
    }

    fn open_file(&self, d: &Digest) -> Option<io::Result<fs::File>> {
        Some(fs::File::open(self.path(d)))
    }
}
