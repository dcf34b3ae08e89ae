//! Sharing the build cache across machines: `--cache-to` exports the cache records a
//! build used (definition and content keys → results) with their layers as an OCI
//! artifact (a local OCI layout, a registry, or inline in the image); `--cache-from`
//! imports such artifacts, fetching a layer only when a step or the export needs it.

#[allow(dead_code)] // wired into `strata build` in the next commits
pub mod spec;

use clap::Args;

/// The `strata build` flags of this module.
#[derive(Debug, Args, Clone, Default)]
pub struct CacheIoArgs {
    /// Export the build cache: `type=local,dest=DIR`, `type=registry,ref=REF` or
    /// `type=inline`, with `mode=min|max`, `compression=gzip|zstd`,
    /// `cache-mounts=true`, `cache-mounts-max=SIZE` (repeatable).
    #[arg(long = "cache-to", value_name = "SPEC")]
    pub cache_to: Vec<String>,
    /// Import a build cache: `type=local,src=DIR` or `type=registry,ref=REF` (a cache
    /// artifact or an image built with `--cache-to type=inline`; repeatable).
    #[arg(long = "cache-from", value_name = "SPEC")]
    pub cache_from: Vec<String>,
}
