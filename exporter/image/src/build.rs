//! `build_image`: layers → blobs, then the config, then the manifest.

use std::collections::BTreeMap;
use std::num::NonZeroUsize;
use std::sync::Arc;

use rayon::prelude::*;
use strata_digest::Digest;
use strata_oci::{media_types, Descriptor, ImageConfig, ImageManifest, Platform};

use crate::config::finish_config;
use crate::layer::{export_layer, LayerExport};
use crate::pipeline::Workers;
use crate::{BlobSink, CompressedLayer, Compression, ImageError, LayerSource};

/// Which family of media types the config, manifest and layers are labelled with.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash)]
pub enum MediaTypes {
    /// `application/vnd.oci.image.*` (buildx `oci-mediatypes=true`).
    #[default]
    Oci,
    /// Docker's distribution manifest v2, schema 2.
    Docker,
}

impl MediaTypes {
    pub fn manifest(self) -> &'static str {
        match self {
            MediaTypes::Oci => media_types::OCI_MANIFEST,
            MediaTypes::Docker => media_types::DOCKER_MANIFEST,
        }
    }

    pub fn config(self) -> &'static str {
        match self {
            MediaTypes::Oci => media_types::OCI_CONFIG,
            MediaTypes::Docker => media_types::DOCKER_CONFIG,
        }
    }
}

/// How to assemble the image.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ImageOptions {
    pub compression: Compression,
    /// SOURCE_DATE_EPOCH: passed to the layer sources (they clamp mtimes) and used as
    /// the image's `created`.
    pub source_date_epoch: Option<i64>,
    /// RFC 3339 build time, used as `created` when there is no epoch.
    pub created: Option<String>,
    pub media: MediaTypes,
    /// Manifest annotations (OCI media types only).
    pub annotations: BTreeMap<String, String>,
    /// Threads compressing each layer (gzip blocks, zstd workers); `None`: the
    /// machine's available parallelism. The blobs are the same bytes whatever it is.
    pub compression_threads: Option<NonZeroUsize>,
}

/// An image whose blobs (layers, config, manifest) are all in the sink.
#[derive(Debug, Clone, PartialEq)]
pub struct BuiltImage {
    /// The manifest's descriptor, with the config's platform.
    pub manifest: Descriptor,
    pub manifest_bytes: Vec<u8>,
    pub config: Descriptor,
    pub config_bytes: Vec<u8>,
    /// Layer blob descriptors with the diffID of each, bottom layer first.
    pub layers: Vec<(Descriptor, Digest)>,
}

/// Compress the layers (in parallel, each in one streaming pass on several threads),
/// then write the config and the manifest. All blobs go to `sink`; the returned
/// descriptors and bytes are what the outputs write.
pub fn build_image(
    config: ImageConfig,
    layers: &[Arc<dyn LayerSource>],
    opts: &ImageOptions,
    sink: &dyn BlobSink,
) -> Result<BuiltImage, ImageError> {
    // Check the media type combinations before the expensive part.
    let layer_media_type = opts.compression.layer_media_type(opts.media)?;
    if opts.media == MediaTypes::Docker && !opts.annotations.is_empty() {
        return Err(ImageError::AnnotationsWithDockerMedia);
    }

    // A layer that appears twice (same id) is compressed once.
    let ids: Vec<Digest> = layers.iter().map(|l| l.layer_id()).collect();
    let mut first: BTreeMap<Digest, usize> = BTreeMap::new();
    for (i, id) in ids.iter().enumerate() {
        first.entry(*id).or_insert(i);
    }
    // Layers compress in parallel, and each layer's blocks on the shared workers.
    let workers = Workers::new(opts.compression_threads, opts.compression);
    let how = LayerExport {
        compression: opts.compression,
        source_date_epoch: opts.source_date_epoch,
        workers: &workers,
    };
    let unique: BTreeMap<Digest, CompressedLayer> = first
        .into_par_iter()
        .map(|(id, i)| export_layer(i, layers[i].as_ref(), &how, sink).map(|c| (id, c)))
        .collect::<Result<_, _>>()?;
    let exported: Vec<CompressedLayer> = ids.iter().map(|id| unique[id]).collect();

    let config = finish_config(config, exported.iter().map(|l| l.diff_id).collect(), opts)?;
    let platform = (!config.os.is_empty() && !config.architecture.is_empty()).then(|| Platform {
        os: config.os.clone(),
        architecture: config.architecture.clone(),
        variant: config.variant.clone(),
    });
    let config_bytes = config.to_bytes();
    let config_desc = put_bytes(sink, "config", opts.media.config(), &config_bytes)?;

    let layers: Vec<(Descriptor, Digest)> = exported
        .iter()
        .map(|l| (descriptor(layer_media_type, l.blob, l.size), l.diff_id))
        .collect();
    let manifest = ImageManifest {
        schema_version: 2,
        media_type: Some(opts.media.manifest().into()),
        config: config_desc.clone(),
        layers: layers.iter().map(|(d, _)| d.clone()).collect(),
        annotations: opts.annotations.clone(),
    };
    let manifest_bytes = serde_json::to_vec(&manifest).expect("manifest serializes");
    let mut manifest_desc = put_bytes(sink, "manifest", opts.media.manifest(), &manifest_bytes)?;
    manifest_desc.platform = platform;

    Ok(BuiltImage {
        manifest: manifest_desc,
        manifest_bytes,
        config: config_desc,
        config_bytes,
        layers,
    })
}

pub(crate) fn descriptor(media_type: &str, digest: Digest, size: u64) -> Descriptor {
    Descriptor {
        media_type: media_type.into(),
        digest,
        size,
        platform: None,
        annotations: BTreeMap::new(),
        artifact_type: None,
        urls: Vec::new(),
    }
}

fn put_bytes(
    sink: &dyn BlobSink,
    what: &'static str,
    media_type: &str,
    bytes: &[u8],
) -> Result<Descriptor, ImageError> {
    let digest = strata_digest::sha256(bytes);
    if !sink.has(&digest) {
        let (stored, _) = sink
            .put(&mut |w| w.write_all(bytes))
            .map_err(|source| ImageError::PutBlob { what, source })?;
        if stored != digest {
            return Err(ImageError::PutBlob {
                what,
                source: std::io::Error::other(format!(
                    "the blob sink stored {stored} for bytes hashing to {digest}"
                )),
            });
        }
    }
    Ok(descriptor(media_type, digest, bytes.len() as u64))
}
