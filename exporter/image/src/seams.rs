//! The two traits the exporter is driven through: where layers come from
//! ([`LayerSource`], implemented by the snapshotter) and where blobs go ([`BlobSink`],
//! implemented by the local store; [`crate::MemorySink`] and [`crate::DirSink`] for
//! tests and plain directories).

use std::io::{Read, Write};

use strata_digest::Digest;

use crate::Compression;

/// A layer the solver produced: its canonical diffID and a way to stream its
/// uncompressed tar again.
pub trait LayerSource: Send + Sync {
    /// The canonical diffID: the sha256 of the tar that `write_tar(w, None)` writes.
    /// [`crate::build_image`] checks this when it exports without an epoch.
    fn layer_id(&self) -> Digest;

    /// Write the uncompressed layer tar to `w` and return the sha256 of what was
    /// written: the exporter checks it against [`LayerSource::layer_id`] and uses it as
    /// the diffID, without hashing the tar again (a tar writer hashes as it writes for
    /// free; [`hash_written`] serves a source that does not). With
    /// `source_date_epoch`, entry mtimes later than the epoch are clamped to it. The
    /// same arguments must give the same bytes every time (the compression memo relies
    /// on it).
    fn write_tar(
        &self,
        w: &mut dyn Write,
        source_date_epoch: Option<i64>,
    ) -> std::io::Result<Digest>;
}

/// Runs `write` on a writer that hashes what passes through to `w`; returns the sha256.
pub fn hash_written(
    w: &mut dyn Write,
    write: impl FnOnce(&mut dyn Write) -> std::io::Result<()>,
) -> std::io::Result<Digest> {
    let mut hashing = strata_digest::HashingWriter::new(w);
    write(&mut hashing)?;
    Ok(hashing.finish().0)
}

/// Where blobs go: a content-addressed store.
pub trait BlobSink: Send + Sync {
    fn has(&self, d: &Digest) -> bool;

    /// Stream a blob in: `write` is called with a writer that receives the blob's
    /// bytes. Returns its digest and size; the sink hashes and stores atomically, and
    /// stores nothing if `write` fails.
    fn put(
        &self,
        write: &mut dyn FnMut(&mut dyn Write) -> std::io::Result<()>,
    ) -> std::io::Result<(Digest, u64)>;

    fn open(&self, d: &Digest) -> std::io::Result<Box<dyn Read + Send>>;

    /// The blob as a file, when the sink keeps it as one (`None` otherwise): outputs
    /// writing to files then copy it inside the kernel.
    fn open_file(&self, _d: &Digest) -> Option<std::io::Result<std::fs::File>> {
        None
    }

    /// Whether the sink hashed this blob itself, in this process, from the bytes it
    /// wrote to the file [`BlobSink::open_file`] opens: a copy of that file then only
    /// checks its size.
    fn hashed_here(&self, _d: &Digest) -> bool {
        false
    }

    /// Memo of earlier compressions, so that re-exports skip compressing. A hit is only
    /// used when [`BlobSink::has`] still finds the blob.
    fn lookup_compressed(&self, _key: &CompressedKey) -> Option<CompressedLayer> {
        None
    }

    /// Remember a compression [`BlobSink::lookup_compressed`] can answer later.
    fn record_compressed(&self, _key: &CompressedKey, _value: &CompressedLayer) {}
}

/// What a compressed layer blob depends on: the layer, the epoch its tar was written
/// with, and the algorithm and level.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct CompressedKey {
    pub layer: Digest,
    pub source_date_epoch: Option<i64>,
    pub compression: Compression,
}

/// The result of compressing one layer.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct CompressedLayer {
    /// sha256 of the uncompressed tar as exported (differs from the layer id when the
    /// epoch clamped mtimes).
    pub diff_id: Digest,
    /// sha256 and size of the compressed blob in the sink.
    pub blob: Digest,
    pub size: u64,
}
