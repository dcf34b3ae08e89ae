//! `docker save` archives without an OCI index (Docker before 25, e.g. Debian 12's
//! 20.10): `manifest.json` names each image's config (`<hex>.json`) and its layers
//! (`<id>/layer.tar`, uncompressed). `strata image load` stores those files as blobs and
//! makes the Docker manifest the archive lacks, so the image is used like any other.

use std::collections::HashMap;

use anyhow::{bail, Context as _};
use serde::Deserialize;
use strata_digest::Digest;
use strata_oci::{media_types, Descriptor, ImageConfig, ImageIndex, ImageManifest, Platform};
use strata_store::Store;

/// Is `path` a file of a `docker save` archive that becomes a blob?
pub fn is_blob_file(path: &str) -> bool {
    path.ends_with("/layer.tar") || (!path.contains('/') && path.ends_with(".json"))
}

#[derive(Deserialize)]
#[serde(rename_all = "PascalCase")]
struct Entry {
    config: String,
    #[serde(default)]
    repo_tags: Option<Vec<String>>,
    layers: Vec<String>,
}

/// The index of the images `manifest.json` describes; `files` maps archive paths to the
/// blobs they were stored as.
pub fn index(
    store: &Store,
    manifest_json: &[u8],
    files: &HashMap<String, (Digest, u64)>,
) -> anyhow::Result<ImageIndex> {
    let entries: Vec<Entry> =
        serde_json::from_slice(manifest_json).context("invalid manifest.json")?;
    let blob = |p: &str| {
        files
            .get(p)
            .copied()
            .with_context(|| format!("manifest.json names {p}, which the archive lacks"))
    };
    let mut manifests = Vec::new();
    for e in entries {
        let (config_digest, config_size) = blob(&e.config)?;
        let config: ImageConfig = serde_json::from_slice(&store.read_blob(&config_digest)?)
            .with_context(|| format!("{}: invalid image config", e.config))?;
        if config.rootfs.diff_ids.len() != e.layers.len() {
            bail!(
                "{}: {} layers for {} diffIDs in the config",
                e.config,
                e.layers.len(),
                config.rootfs.diff_ids.len()
            );
        }
        let mut layers = Vec::new();
        for (path, diff_id) in e.layers.iter().zip(&config.rootfs.diff_ids) {
            let (digest, size) = blob(path)?;
            // Uncompressed: the layer's digest is its diffID.
            if digest != *diff_id {
                bail!("{path}: its digest {digest} is not the config's diffID {diff_id}");
            }
            layers.push(descriptor(strata_image::DOCKER_LAYER, digest, size));
        }
        let manifest = ImageManifest {
            schema_version: 2,
            media_type: Some(media_types::DOCKER_MANIFEST.into()),
            config: descriptor(media_types::DOCKER_CONFIG, config_digest, config_size),
            layers,
            annotations: Default::default(),
        };
        let bytes = serde_json::to_vec(&manifest)?;
        let (digest, size) = store.write_blob(bytes.as_slice(), None)?;
        let mut d = descriptor(media_types::DOCKER_MANIFEST, digest, size);
        d.platform = Some(Platform::new(
            &config.os,
            &config.architecture,
            config.variant.as_deref(),
        ));
        let tags = e.repo_tags.unwrap_or_default();
        if tags.is_empty() {
            manifests.push(d.clone());
        }
        for t in tags {
            let mut named = d.clone();
            let full = strata_oci::Reference::parse(&t)
                .with_context(|| format!("manifest.json: RepoTags {t:?}"))?
                .to_string();
            named
                .annotations
                .insert(strata_image::outputs::IMAGE_NAME_ANNOTATION.into(), full);
            manifests.push(named);
        }
    }
    Ok(ImageIndex {
        schema_version: 2,
        media_type: Some(media_types::OCI_INDEX.into()),
        manifests,
        annotations: Default::default(),
    })
}

fn descriptor(media_type: &str, digest: Digest, size: u64) -> Descriptor {
    Descriptor {
        media_type: media_type.into(),
        digest,
        size,
        platform: None,
        annotations: Default::default(),
        artifact_type: None,
        urls: Vec::new(),
    }
}
