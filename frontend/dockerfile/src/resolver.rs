//! The seam through which the frontend learns about base images.

use strata_digest::Digest;
use strata_oci::{ImageConfig, Platform, Reference};

/// Where a base image comes from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ImageSource {
    /// A named image: the local store, later a registry.
    Registry(Reference),
    /// An OCI layout directory (`--build-context NAME=oci-layout://PATH[:TAG]`).
    OciLayout { path: String, tag: Option<String> },
}

impl std::fmt::Display for ImageSource {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            ImageSource::Registry(r) => write!(f, "{r}"),
            ImageSource::OciLayout { path, tag: Some(t) } => write!(f, "oci-layout://{path}:{t}"),
            ImageSource::OciLayout { path, tag: None } => write!(f, "oci-layout://{path}"),
        }
    }
}

/// A base image's identity and config.
#[derive(Debug, Clone, PartialEq)]
pub struct ResolvedImage {
    /// Manifest digest, pinned into the graph so the solver uses exactly this image.
    pub digest: Option<Digest>,
    pub config: ImageConfig,
}

#[derive(Debug, thiserror::Error)]
pub enum ResolveError {
    #[error("image not found")]
    NotFound,
    #[error("no manifest for platform {0}")]
    Platform(Platform),
    #[error("{0}")]
    Other(String),
}

/// Answers "what is this image, for this platform?". Implemented by the solver side
/// (local store, OCI layouts, registries); the frontend only asks.
pub trait ImageMetaResolver {
    fn resolve(
        &self,
        source: &ImageSource,
        platform: &Platform,
    ) -> Result<ResolvedImage, ResolveError>;
}

/// A resolver that knows no images: every lookup is `NotFound`. For `scratch`-only
/// builds and tests.
#[derive(Debug, Default, Clone, Copy)]
pub struct NoImages;

impl ImageMetaResolver for NoImages {
    fn resolve(&self, _: &ImageSource, _: &Platform) -> Result<ResolvedImage, ResolveError> {
        Err(ResolveError::NotFound)
    }
}
