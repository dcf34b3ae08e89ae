use std::path::PathBuf;

use strata_digest::Digest;

/// Everything that can go wrong building or writing an image.
#[derive(Debug, thiserror::Error)]
pub enum ImageError {
    #[error("unsupported compression {value:?} (expected uncompressed, gzip or zstd)")]
    UnknownCompression { value: String },

    #[error("compression level {level:?} is out of range for {compression} (expected {range})")]
    CompressionLevel {
        compression: &'static str,
        level: String,
        range: String,
    },

    #[error("zstd layers need OCI media types: Docker's schema 2 has no zstd layer type (use oci-mediatypes=true or compression=gzip)")]
    ZstdWithDockerMedia,

    #[error(
        "manifest annotations need OCI media types: Docker's schema 2 manifest has no annotations"
    )]
    AnnotationsWithDockerMedia,

    #[error("SOURCE_DATE_EPOCH {epoch} is outside the years 0000-9999")]
    InvalidEpoch { epoch: i64 },

    #[error("created time {value:?} is not an RFC 3339 timestamp")]
    InvalidCreated { value: String },

    #[error("layer {index} ({layer}): streaming its tar into the blob store failed")]
    Layer {
        index: usize,
        layer: Digest,
        #[source]
        source: std::io::Error,
    },

    #[error("layer {index}: its source claims diffID {layer} but its tar hashes to {exported}; the layer source is not deterministic")]
    LayerIdMismatch {
        index: usize,
        layer: Digest,
        exported: Digest,
    },

    #[error("image history has {non_empty} entries that are not empty_layer but the image has {layers} layers")]
    HistoryMismatch { layers: usize, non_empty: usize },

    #[error("storing the image {what} failed")]
    PutBlob {
        what: &'static str,
        #[source]
        source: std::io::Error,
    },

    #[error("reading blob {digest} from the blob store failed")]
    ReadBlob {
        digest: Digest,
        #[source]
        source: std::io::Error,
    },

    #[error("blob {digest} is corrupt in the blob store: expected {size} bytes, read {actual_size} bytes hashing to {actual}")]
    BlobMismatch {
        digest: Digest,
        size: u64,
        actual: Digest,
        actual_size: u64,
    },

    #[error("{action} {path}")]
    Io {
        action: &'static str,
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },

    #[error("{path} is not a valid OCI layout: {reason}")]
    InvalidLayout { path: PathBuf, reason: String },

    #[error("writing the archive failed")]
    Archive {
        #[source]
        source: std::io::Error,
    },

    #[error("invalid image tag {tag:?}")]
    InvalidTag {
        tag: String,
        #[source]
        source: strata_oci::ReferenceError,
    },

    #[error("layer {digest} has media type {media_type}: docker load takes only uncompressed or gzip layers (use compression=gzip)")]
    DockerArchiveLayer { digest: Digest, media_type: String },
}

impl ImageError {
    pub(crate) fn io(
        action: &'static str,
        path: impl Into<PathBuf>,
    ) -> impl Fn(std::io::Error) -> ImageError {
        let path = path.into();
        move |source| ImageError::Io {
            action,
            path: path.clone(),
            source,
        }
    }
}
