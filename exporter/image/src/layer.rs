//! One layer in one pass: the tar (hashed by its writer: the diffID) streams into the
//! encoder, and the encoder into the blob sink (which hashes the compressed bytes);
//! `pipeline.rs` runs those stages on separate threads, a few blocks apart.

use std::io;

use crate::pipeline::{compress_stream, Workers};
use crate::{BlobSink, CompressedKey, CompressedLayer, Compression, ImageError, LayerSource};

/// How every layer of one image is exported.
pub(crate) struct LayerExport<'a> {
    pub(crate) compression: Compression,
    pub(crate) source_date_epoch: Option<i64>,
    pub(crate) workers: &'a Workers,
}

/// Compress layer `index`, or reuse the sink's memo of an earlier compression.
pub(crate) fn export_layer(
    index: usize,
    layer: &dyn LayerSource,
    how: &LayerExport<'_>,
    sink: &dyn BlobSink,
) -> Result<CompressedLayer, ImageError> {
    let &LayerExport {
        compression,
        source_date_epoch,
        workers,
    } = how;
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
            let produce = |w: &mut dyn io::Write| layer.write_tar(w, source_date_epoch);
            diff_id = Some(compress_stream(compression, workers, produce, out)?);
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
