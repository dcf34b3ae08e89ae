//! The `ImageMetaResolver` the CLI gives the frontend: images in the local store (by
//! name or manifest digest) and OCI layout directories (named build contexts).
//! A `FROM` the store lacks (or any, with `--pull`) is pulled from its registry.
//!
//! This does I/O, so it lives outside the frontend (design §2).

use std::path::Path;

use strata_digest::{sha256, Digest};
use strata_dockerfile::{ImageMetaResolver, ImageSource, ResolveError, ResolvedImage};
use strata_oci::{media_types, Descriptor, ImageConfig, ImageIndex, ImageManifest, Platform};

pub struct LocalResolver {
    pub store: Option<strata_store::Store>,
    /// Pull what the store lacks (`None`: the store only).
    pub remote: Option<crate::registry::Remote>,
}

impl ImageMetaResolver for LocalResolver {
    fn resolve(
        &self,
        source: &ImageSource,
        platform: &Platform,
    ) -> Result<ResolvedImage, ResolveError> {
        match source {
            ImageSource::Registry(r) => {
                let Some(store) = &self.store else {
                    return Err(ResolveError::NotFound);
                };
                let Some(remote) = &self.remote else {
                    return resolve_store(store, r, platform);
                };
                if !remote.always {
                    match resolve_store(store, r, platform) {
                        Err(ResolveError::NotFound) => {}
                        other => return other,
                    }
                }
                // Builds started together pull a base they share once: the others wait
                // for the lock and find it in the store (the blobs, with --pull).
                let _pulling = store
                    .lock(&format!("pull {r}"))
                    .map_err(|e| ResolveError::Other(e.to_string()))?;
                if !remote.always {
                    match resolve_store(store, r, platform) {
                        Err(ResolveError::NotFound) => {}
                        other => return other,
                    }
                }
                crate::registry::pull_for_build(store, r, platform, remote).map_err(|e| {
                    match e.downcast_ref::<strata_registry::RegistryError>() {
                        Some(strata_registry::RegistryError::NotFound { .. }) => {
                            ResolveError::NotFound
                        }
                        _ if remote.always => ResolveError::Other(format!("{e:#}")),
                        _ => ResolveError::Other(format!(
                            "{r} not found in the local store, and pulling it failed: {e:#}"
                        )),
                    }
                })?;
                resolve_store(store, r, platform)
            }
            ImageSource::OciLayout { path, tag } => {
                resolve_layout(Path::new(path), tag.as_deref(), platform)
            }
        }
    }
}

fn resolve_store(
    store: &strata_store::Store,
    r: &strata_oci::Reference,
    platform: &Platform,
) -> Result<ResolvedImage, ResolveError> {
    let other = |e: strata_store::StoreError| ResolveError::Other(e.to_string());
    let json = |e: serde_json::Error| ResolveError::Other(e.to_string());
    let manifest_digest = match &r.digest {
        Some(d) => {
            if !store.has_blob(d).map_err(other)? {
                return Err(ResolveError::NotFound);
            }
            *d
        }
        None => {
            store
                .image(&r.to_string())
                .map_err(other)?
                .ok_or(ResolveError::NotFound)?
                .manifest
        }
    };
    let read = |d: &Digest| -> Result<Vec<u8>, ResolveError> { store.read_blob(d).map_err(other) };
    let bytes = read(&manifest_digest)?;
    let probe: serde_json::Value = serde_json::from_slice(&bytes).map_err(json)?;
    let (manifest_digest, bytes) = if probe.get("manifests").is_some() {
        let index: ImageIndex = serde_json::from_slice(&bytes).map_err(json)?;
        let d = index
            .select(platform)
            .ok_or_else(|| ResolveError::Platform(platform.clone()))?
            .digest;
        (d, read(&d)?)
    } else {
        (manifest_digest, bytes)
    };
    let manifest: ImageManifest = serde_json::from_slice(&bytes).map_err(json)?;
    let config: ImageConfig =
        serde_json::from_slice(&read(&manifest.config.digest)?).map_err(json)?;
    Ok(ResolvedImage {
        digest: Some(manifest_digest),
        config,
    })
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
