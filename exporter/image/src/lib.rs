//! Image assembly for strata: solved layers become compressed blobs, an image config
//! and a manifest, all written to a [`BlobSink`]; [`outputs`] then writes the result as
//! an OCI layout, an OCI archive or a `docker load` archive.
//!
//! Each layer's tar is streamed exactly once: a hasher computes its diffID while the
//! encoder compresses it into the sink, which hashes the compressed bytes. Layers are
//! compressed in parallel, and each layer on every core: gzip as pigz does it (blocks
//! deflated apart, each primed with the 32 KiB before it, in one gzip member), zstd
//! with libzstd's workers. The output is reproducible: the compressed bytes never
//! depend on the number of threads, gzip headers carry no time or name, the config and manifest are our own byte-stable structs (`strata-oci`), and
//! with SOURCE_DATE_EPOCH every timestamp derives from the epoch, so the same layers and
//! config give the same manifest digest.
//!
//! Layers come in through [`LayerSource`] and blobs go out through [`BlobSink`]
//! (`seams.rs`); this crate never depends on the frontend, the solver, or the store and
//! snapshot crates that implement those traits.

mod build;
mod compression;
mod config;
mod error;
mod gzip_blocks;
mod layer;
pub mod outputs;
mod pipeline;
mod seams;
mod sinks;
mod time;

pub use build::{build_image, BuiltImage, ImageOptions, MediaTypes};
pub use compression::{Compression, DEFAULT_GZIP_LEVEL, DEFAULT_ZSTD_LEVEL, DOCKER_LAYER};
pub use config::GENERATED_HISTORY_COMMENT;
pub use error::ImageError;
pub use seams::{hash_written, BlobSink, CompressedKey, CompressedLayer, LayerSource};
pub use sinks::{DirSink, MemorySink};
