//! One layer in one pass: the tar streams through a hasher (the diffID) into the
//! encoder, and the encoder into the blob sink (which hashes the compressed bytes).
//! Nothing is buffered beyond two fixed-size write buffers.

use std::io::{self, BufWriter, Write};

use strata_digest::{Digest, HashingWriter};

use crate::{BlobSink, CompressedKey, CompressedLayer, Compression, ImageError, LayerSource};

/// Size of the write buffers on each side of the encoder: layer sources write
/// 512-byte tar headers and small files, the encoder and the hasher want big slices.
pub(crate) const WRITE_BUFFER: usize = 1 << 20;

/// Compress layer `index`, or reuse the sink's memo of an earlier compression.
pub(crate) fn export_layer(
    index: usize,
    layer: &dyn LayerSource,
    compression: Compression,
    source_date_epoch: Option<i64>,
    sink: &dyn BlobSink,
) -> Result<CompressedLayer, ImageError> {
    let key = CompressedKey {
        layer: layer.layer_id(),
        source_date_epoch,
        compression,
    };
    if let Some(hit) = sink.lookup_compressed(&key) {
        if sink.has(&hit.blob) {
            return Ok(hit);
        }
    }

    let mut diff_id = None;
    let (blob, size) = sink
        .put(&mut |out| {
            diff_id = Some(stream(layer, compression, source_date_epoch, out)?);
            Ok(())
        })
        .map_err(|source| ImageError::Layer {
            index,
            layer: key.layer,
            source,
        })?;
    let diff_id = diff_id.ok_or_else(|| ImageError::Layer {
        index,
        layer: key.layer,
        source: io::Error::other("the blob sink never asked for the layer's bytes"),
    })?;
    if source_date_epoch.is_none() && diff_id != key.layer {
        return Err(ImageError::LayerIdMismatch {
            index,
            layer: key.layer,
            exported: diff_id,
        });
    }
    let value = CompressedLayer {
        diff_id,
        blob,
        size,
    };
    sink.record_compressed(&key, &value);
    Ok(value)
}

/// tar → 1 MiB buffer → sha256 (diffID) → encoder → 1 MiB buffer → `out`.
fn stream(
    layer: &dyn LayerSource,
    compression: Compression,
    source_date_epoch: Option<i64>,
    out: &mut dyn Write,
) -> io::Result<Digest> {
    let encoder = compression.encoder(BufWriter::with_capacity(WRITE_BUFFER, out))?;
    let mut tar = BufWriter::with_capacity(WRITE_BUFFER, HashingWriter::new(encoder));
    layer.write_tar(&mut tar, source_date_epoch)?;
    let hashing = tar.into_inner().map_err(io::IntoInnerError::into_error)?;
    let (diff_id, _len, encoder) = hashing.finish();
    let mut compressed = encoder.finish()?;
    compressed.flush()?;
    Ok(diff_id)
}
