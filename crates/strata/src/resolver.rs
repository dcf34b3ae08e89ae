//! The `ImageMetaResolver` the CLI gives the frontend: OCI layout directories (named
//! build contexts). The local image store and registries join when they exist; until
//! then a named image is "not found".
//!
//! This does I/O, so it lives outside the frontend (design §2).

use std::path::Path;

use strata_digest::{sha256, Digest};
use strata_dockerfile::{ImageMetaResolver, ImageSource, ResolveError, ResolvedImage};
use strata_oci::{media_types, Descriptor, ImageConfig, ImageIndex, ImageManifest, Platform};

pub struct LocalResolver;

impl ImageMetaResolver for LocalResolver {
    fn resolve(
        &self,
        source: &ImageSource,
        platform: &Platform,
    ) -> Result<ResolvedImage, ResolveError> {
        match source {
            ImageSource::Registry(_) => Err(ResolveError::NotFound),
            ImageSource::OciLayout { path, tag } => {
                resolve_layout(Path::new(path), tag.as_deref(), platform)
            }
        }
    }
}

const REF_NAME: &str = "org.opencontainers.image.ref.name";

fn resolve_layout(
    dir: &Path,
    tag: Option<&str>,
    platform: &Platform,
) -> Result<ResolvedImage, ResolveError> {
    let other = |m: String| ResolveError::Other(m);
    let index_bytes = fs_err::read(dir.join("index.json")).map_err(|e| other(e.to_string()))?;
    let index: ImageIndex = serde_json::from_slice(&index_bytes)
        .map_err(|e| other(format!("{}: invalid index.json: {e}", dir.display())))?;
    let candidates: Vec<&Descriptor> = match tag {
        Some(t) => index
            .manifests
            .iter()
            .filter(|d| {
                d.annotations
                    .get(REF_NAME)
                    .is_some_and(|n| n == t || n.rsplit(':').next() == Some(t))
            })
            .collect(),
        None => index.manifests.iter().collect(),
    };
    let desc = match candidates.as_slice() {
        [] => return Err(ResolveError::NotFound),
        [one] => (*one).clone(),
        many => {
            let sub = ImageIndex {
                schema_version: 2,
                media_type: None,
                manifests: many.iter().map(|d| (*d).clone()).collect(),
                annotations: Default::default(),
            };
            sub.select(platform)
                .cloned()
                .ok_or_else(|| ResolveError::Platform(platform.clone()))?
        }
    };
    let manifest_desc = if media_types::is_index(&desc.media_type) {
        let nested: ImageIndex = read_json(dir, &desc.digest)?;
        nested
            .select(platform)
            .cloned()
            .ok_or_else(|| ResolveError::Platform(platform.clone()))?
    } else {
        desc
    };
    let manifest: ImageManifest = read_json(dir, &manifest_desc.digest)?;
    let config: ImageConfig = read_json(dir, &manifest.config.digest)?;
    Ok(ResolvedImage {
        digest: Some(manifest_desc.digest),
        config,
    })
}

fn read_json<T: serde::de::DeserializeOwned>(
    dir: &Path,
    digest: &Digest,
) -> Result<T, ResolveError> {
    let path = dir.join("blobs/sha256").join(digest.hex());
    let bytes = fs_err::read(&path).map_err(|e| ResolveError::Other(e.to_string()))?;
    if sha256(&bytes) != *digest {
        return Err(ResolveError::Other(format!(
            "{}: content does not match its digest",
            path.display()
        )));
    }
    serde_json::from_slice(&bytes)
        .map_err(|e| ResolveError::Other(format!("{}: {e}", path.display())))
}
