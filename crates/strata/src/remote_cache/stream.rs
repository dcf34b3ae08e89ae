//! Fetching an imported layer in one pass: the compressed bytes go into the store's blob
//! writer (hashed, committed against the blob's digest) and, in 1 MiB chunks over a
//! bounded channel, to a thread that decompresses and applies them; the download, the
//! decompression and the extraction overlap instead of running one after the other.
//!
//! Any failure (a download that needs a retry, a damaged blob, a layer that comes out
//! with another diffID) gives `None`: the caller then takes the two-pass path, which
//! retries downloads and names exactly what is wrong.

use std::io::{self, Read, Write};
use std::sync::mpsc::{sync_channel, Receiver, SyncSender};

use strata_digest::Digest;
use strata_oci::Descriptor;
use strata_snapshot::{Applied, Layers};
use strata_store::{BlobWriter, Store};

use super::import::{decompressed, layout_blob, Origin};

/// Bytes per message to the applying thread.
const CHUNK: usize = 1 << 20;
/// Chunks in flight: the download runs at most this far ahead of the extraction.
const IN_FLIGHT: usize = 8;

/// Fetches `blob` from `origin` into the store and applies it as layer `diff_id`.
pub fn fetch_and_apply(
    store: &Store,
    layers: &Layers,
    origin: &Origin,
    blob: &Descriptor,
    diff_id: &Digest,
) -> Option<Applied> {
    let (tx, rx) = sync_channel::<Vec<u8>>(IN_FLIGHT);
    let compressed = blob.media_type.clone();
    std::thread::scope(|s| {
        let applier = s.spawn(move || {
            let raw = ChannelReader {
                rx,
                chunk: Vec::new(),
                pos: 0,
            };
            let reader = decompressed(raw, &compressed).ok()?;
            layers.apply(reader, Some(diff_id)).ok()
        });
        let downloaded = download(store, origin, blob, tx);
        // The applier sees the end of the stream once `tx` is dropped (by `download`).
        let applied = applier.join().ok().flatten();
        let committed = downloaded.and_then(|w| w.commit(Some(&blob.digest)).ok());
        // A layer whose diffID checked out is sound even if the blob was not (then the
        // two-pass path re-fetches and reports the blob).
        committed.and(applied)
    })
}

/// Streams the blob into a new store blob writer and the channel; the writer when every
/// byte arrived on the first attempt.
fn download(
    store: &Store,
    origin: &Origin,
    blob: &Descriptor,
    tx: SyncSender<Vec<u8>>,
) -> Option<BlobWriter> {
    let tee = Tee {
        blob: store.blob_writer().ok()?,
        tx,
        buf: Vec::with_capacity(CHUNK),
    };
    let tee = match origin {
        Origin::Layout(dir) => {
            let mut tee = tee;
            let mut f = std::fs::File::open(layout_blob(dir, &blob.digest)).ok()?;
            io::copy(&mut f, &mut tee).ok()?;
            tee
        }
        Origin::Registry { client, repo } => {
            // The factory runs again on a retry: bytes already sent cannot be taken
            // back, so a retry ends the one-pass attempt.
            let mut first = Some(tee);
            let tee = client
                .get_blob_hashed_by_writer(repo, &blob.digest, blob.size, || {
                    first
                        .take()
                        .ok_or_else(|| io::Error::other("retried: fetching in two passes"))
                })
                .ok()?;
            store
                .record_blob_origin(&blob.digest, &repo.registry, &repo.repository)
                .ok()?;
            tee
        }
    };
    tee.finish().ok()
}

/// Writes to the store's blob writer and, in chunks, to the applying thread.
struct Tee {
    blob: BlobWriter,
    tx: SyncSender<Vec<u8>>,
    buf: Vec<u8>,
}

impl Tee {
    fn send(&mut self) -> io::Result<()> {
        let full = std::mem::replace(&mut self.buf, Vec::with_capacity(CHUNK));
        self.tx
            .send(full)
            .map_err(|_| io::Error::other("the layer stopped reading"))
    }

    /// Sends what is buffered; the channel closes when `self.tx` drops.
    fn finish(mut self) -> io::Result<BlobWriter> {
        if !self.buf.is_empty() {
            self.send()?;
        }
        Ok(self.blob)
    }
}

impl Write for Tee {
    fn write(&mut self, data: &[u8]) -> io::Result<usize> {
        self.blob.write_all(data)?;
        let mut rest = data;
        while !rest.is_empty() {
            let n = rest.len().min(CHUNK - self.buf.len());
            self.buf.extend_from_slice(&rest[..n]);
            rest = &rest[n..];
            if self.buf.len() == CHUNK {
                self.send()?;
            }
        }
        Ok(data.len())
    }

    fn flush(&mut self) -> io::Result<()> {
        self.blob.flush()
    }
}

/// The chunks from the channel as one stream; it ends when the sender is dropped.
struct ChannelReader {
    rx: Receiver<Vec<u8>>,
    chunk: Vec<u8>,
    pos: usize,
}

impl Read for ChannelReader {
    fn read(&mut self, out: &mut [u8]) -> io::Result<usize> {
        while self.pos == self.chunk.len() {
            match self.rx.recv() {
                Ok(next) => (self.chunk, self.pos) = (next, 0),
                Err(_) => return Ok(0),
            }
        }
        let n = out.len().min(self.chunk.len() - self.pos);
        out[..n].copy_from_slice(&self.chunk[self.pos..self.pos + n]);
        self.pos += n;
        Ok(n)
    }
}

#[cfg(test)]
mod tests {
    use std::io::Write as _;
    use std::path::Path;

    use super::*;

    /// A gzip blob of a one-file tar in an OCI layout: its descriptor and the tar's sha256.
    fn layout_with_layer(dir: &Path) -> (Descriptor, Digest) {
        let mut tar = tar::Builder::new(Vec::new());
        let mut h = tar::Header::new_gnu();
        h.set_size(5);
        h.set_mode(0o644);
        h.set_uid(0);
        h.set_gid(0);
        h.set_mtime(0);
        h.set_entry_type(tar::EntryType::Regular);
        tar.append_data(&mut h, "hello.txt", &b"hello"[..]).unwrap();
        let tar = tar.into_inner().unwrap();
        let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
        gz.write_all(&tar).unwrap();
        let gz = gz.finish().unwrap();
        let digest = strata_digest::sha256(&gz);
        let path = layout_blob(dir, &digest);
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        std::fs::write(&path, &gz).unwrap();
        let media_type = "application/vnd.oci.image.layer.v1.tar+gzip";
        let desc = Descriptor::new(media_type, digest, gz.len() as u64);
        (desc, strata_digest::sha256(&tar))
    }

    #[test]
    fn one_pass_stores_the_blob_and_applies_the_layer() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(&dir.path().join("root")).unwrap();
        let layers = Layers::new(store.root(), store.tmp_dir()).unwrap();
        let layout = dir.path().join("cache");
        let (blob, tar_digest) = layout_with_layer(&layout);
        let origin = Origin::Layout(layout.clone());
        let applied = fetch_and_apply(&store, &layers, &origin, &blob, &tar_digest)
            .expect("fetched in one pass");
        assert_eq!(applied.input_digest, tar_digest);
        assert!(layers.has(&applied.diff_id));
        assert!(store.has_blob(&blob.digest).unwrap());

        // A damaged blob: no layer, no blob; the caller's two-pass path reports it.
        let other = tempfile::tempdir().unwrap();
        let store = Store::open(other.path()).unwrap();
        let layers = Layers::new(store.root(), store.tmp_dir()).unwrap();
        let path = layout_blob(&layout, &blob.digest);
        let mut bytes = std::fs::read(&path).unwrap();
        let last = bytes.len() - 9;
        bytes[last] ^= 0xff;
        std::fs::write(&path, bytes).unwrap();
        assert!(fetch_and_apply(&store, &layers, &origin, &blob, &tar_digest).is_none());
        assert!(!store.has_blob(&blob.digest).unwrap());
        assert!(!layers.has(&applied.diff_id));
    }

    #[test]
    fn the_channel_reader_yields_every_chunk_in_order_then_ends() {
        let (tx, rx) = sync_channel(2);
        let sender = std::thread::spawn(move || {
            for i in 0..5u8 {
                tx.send(vec![i; 3 + i as usize]).unwrap();
            }
        });
        let mut r = ChannelReader {
            rx,
            chunk: Vec::new(),
            pos: 0,
        };
        let mut all = Vec::new();
        r.read_to_end(&mut all).unwrap();
        sender.join().unwrap();
        let expected: Vec<u8> = (0..5u8).flat_map(|i| vec![i; 3 + i as usize]).collect();
        assert_eq!(all, expected);
    }
}
