//! `--cache-to`: the records a build used, with their layers compressed (reusing the
//! store's compressed blobs), written as an OCI layout or pushed to a registry.

use std::collections::{BTreeMap, BTreeSet, HashSet};
use std::path::Path;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};

use anyhow::{Context as _, Result};
use strata_digest::Digest;
use strata_image::{Compression, ImageOptions, LayerSource};
use strata_oci::{media_types, Descriptor, ImageIndex, Reference};
use strata_ops::SharedRecord;
use strata_registry::{Access, Client};
use strata_snapshot::{Chain, Layers};
use strata_store::Store;

use super::format::{
    ArtifactManifest, CacheConfig, LayerEntry, MountEntry, RecordEntry, ARTIFACT_TYPE,
    CONFIG_MEDIA_TYPE, LAYOUT_REF_NAME, VERSION,
};
use super::import::{layout_blob, Fetcher};
use super::spec::{Algorithm, Mode};
use crate::export::{is_empty_layer, SnapLayer, StoreSink};

/// The records to export: all the build used (`max`), or those whose result is a
/// prefix of the final image's layers (`min`).
pub fn select(
    used: BTreeMap<Digest, SharedRecord>,
    mode: Mode,
    image: &Chain,
) -> BTreeMap<Digest, SharedRecord> {
    used.into_iter()
        .filter(|(_, r)| mode == Mode::Max || image.0.starts_with(&r.chain.0))
        .collect()
}

/// The layer table and records of a cache config; `blob` decides each non-empty
/// layer's blob (None drops the records that use it).
pub fn config(
    records: &BTreeMap<Digest, SharedRecord>,
    compression: Option<(String, i32)>,
    mut entry: impl FnMut(&Digest) -> Result<Option<LayerEntry>>,
) -> Result<CacheConfig> {
    let ids: BTreeSet<Digest> = records
        .values()
        .flat_map(|r| r.chain.0.iter().copied())
        .collect();
    let mut layers = Vec::new();
    let mut index = BTreeMap::new();
    for id in ids {
        if let Some(e) = entry(&id)? {
            index.insert(id, layers.len());
            layers.push(e);
        }
    }
    let records = records
        .iter()
        .filter_map(|(key, r)| {
            let idx: Option<Vec<usize>> = r.chain.0.iter().map(|d| index.get(d).copied()).collect();
            Some(RecordEntry {
                key: *key,
                result: r.key,
                layers: idx?,
                description: r.description.clone(),
            })
        })
        .collect();
    Ok(CacheConfig {
        version: VERSION,
        compression,
        layers,
        records,
        mounts: Vec::new(),
    })
}

/// What an export reads layers from.
pub struct Sources<'a> {
    pub store: &'a Store,
    pub layers: &'a Arc<Layers>,
    pub fetcher: Option<&'a Fetcher>,
}

/// Compresses the records' layers into the store (or takes imported blobs) and writes
/// the config and manifest blobs there. `known` are blobs the destination has: an
/// imported layer among them is not fetched.
pub fn build(
    src: &Sources<'_>,
    records: &BTreeMap<Digest, SharedRecord>,
    algorithm: Algorithm,
    known: &HashSet<Digest>,
    mounts: Vec<MountEntry>,
) -> Result<(ArtifactManifest, Vec<u8>, Vec<Descriptor>)> {
    let compression = match algorithm {
        Algorithm::Gzip => Compression::from_options("gzip", None)?,
        Algorithm::Zstd => Compression::from_options("zstd", None)?,
    };
    let name_level = (
        compression.name().to_string(),
        compression.level().unwrap_or(0),
    );
    // Local, non-empty layers compress together (in parallel, memoised by the store).
    let ids: BTreeSet<Digest> = records
        .values()
        .flat_map(|r| r.chain.0.iter().copied())
        .collect();
    let local: Vec<Digest> = ids
        .iter()
        .filter(|d| src.layers.has(d) && !is_empty_layer(src.layers, d))
        .copied()
        .collect();
    let sources: Vec<Arc<dyn LayerSource>> = local
        .iter()
        .map(|id| {
            Arc::new(SnapLayer {
                layers: src.layers.clone(),
                id: *id,
            }) as Arc<dyn LayerSource>
        })
        .collect();
    let sink = StoreSink(src.store.clone(), src.layers.clone());
    let opts = ImageOptions {
        compression,
        ..Default::default()
    };
    let built = strata_image::build_image(Default::default(), &sources, &opts, &sink)?;
    let compressed: BTreeMap<Digest, Descriptor> =
        built.layers.into_iter().map(|(d, id)| (id, d)).collect();
    let config = config(records, Some(name_level), |id| {
        let (blob, empty) = if let Some(d) = compressed.get(id) {
            (Some(d.clone()), false)
        } else if src.layers.has(id) {
            (None, true)
        } else {
            let imported = src.fetcher.and_then(|f| f.imported.layers.get(id));
            match imported {
                Some(l) if l.entry.empty => (None, true),
                Some(l)
                    if l.entry
                        .blob
                        .as_ref()
                        .is_some_and(|b| known.contains(&b.digest)) =>
                {
                    (l.entry.blob.clone(), false)
                }
                Some(_) => (
                    src.fetcher.map(|f| f.blob_of(id)).transpose()?.flatten(),
                    false,
                ),
                None => (None, false),
            }
        };
        Ok((blob.is_some() || empty).then_some(LayerEntry {
            diff_id: *id,
            blob,
            empty,
        }))
    })?;
    let mut config = config;
    config.mounts = mounts;
    let config_bytes = config.to_bytes();
    let config_digest = src.store.put_bytes(&config_bytes)?;
    let blobs: Vec<Descriptor> = config
        .layers
        .iter()
        .filter_map(|l| l.blob.clone())
        .chain(config.mounts.iter().map(|m| m.blob.clone()))
        .collect();
    let manifest = ArtifactManifest {
        schema_version: 2,
        media_type: media_types::OCI_MANIFEST.into(),
        artifact_type: Some(ARTIFACT_TYPE.into()),
        config: Descriptor::new(CONFIG_MEDIA_TYPE, config_digest, config_bytes.len() as u64),
        layers: blobs.clone(),
    };
    Ok((manifest, config_bytes, blobs))
}

/// Writes the artifact as an OCI layout at `dir`: new blobs are copied in, the index
/// names the cache, blobs no longer referenced are removed.
pub fn write_layout(store: &Store, dir: &Path, manifest: &ArtifactManifest) -> Result<usize> {
    // Never prune someone's image layout: only an empty directory or an exported cache.
    if let Ok(bytes) = fs_err::read(dir.join("index.json")) {
        let index: ImageIndex = serde_json::from_slice(&bytes)
            .with_context(|| format!("{}: invalid index.json", dir.display()))?;
        if index
            .manifests
            .iter()
            .any(|m| m.artifact_type.as_deref() != Some(ARTIFACT_TYPE))
        {
            anyhow::bail!(
                "{} is an OCI layout holding more than a strata cache; give type=local an empty or cache-only directory",
                dir.display()
            );
        }
    }
    let blobs_dir = dir.join("blobs/sha256");
    fs_err::create_dir_all(&blobs_dir)?;
    let bytes = serde_json::to_vec(manifest)?;
    let manifest_digest = store.put_bytes(&bytes)?;
    let mut keep: HashSet<Digest> = manifest.layers.iter().map(|d| d.digest).collect();
    keep.insert(manifest.config.digest);
    keep.insert(manifest_digest);
    let mut copied = 0;
    for d in &keep {
        let dest = layout_blob(dir, d);
        if dest.exists() {
            continue;
        }
        let tmp = tempfile::NamedTempFile::new_in(&blobs_dir)?;
        let mut from = store.open_blob(d)?;
        std::io::copy(&mut from, &mut tmp.as_file())?;
        tmp.as_file().sync_all()?;
        tmp.persist(&dest)
            .with_context(|| format!("writing {}", dest.display()))?;
        copied += 1;
    }
    let mut desc = Descriptor::new(
        media_types::OCI_MANIFEST,
        manifest_digest,
        bytes.len() as u64,
    );
    desc.artifact_type = Some(ARTIFACT_TYPE.into());
    desc.annotations.insert(
        "org.opencontainers.image.ref.name".into(),
        LAYOUT_REF_NAME.into(),
    );
    let index = ImageIndex {
        schema_version: 2,
        media_type: Some(media_types::OCI_INDEX.into()),
        manifests: vec![desc],
        annotations: Default::default(),
    };
    write_atomic(dir, "oci-layout", br#"{"imageLayoutVersion":"1.0.0"}"#)?;
    write_atomic(dir, "index.json", &serde_json::to_vec(&index)?)?;
    for entry in fs_err::read_dir(&blobs_dir)? {
        let entry = entry?;
        let name = entry.file_name();
        let stale = name
            .to_str()
            .and_then(|n| format!("sha256:{n}").parse::<Digest>().ok())
            .is_some_and(|d| !keep.contains(&d));
        if stale {
            fs_err::remove_file(entry.path())?;
        }
    }
    Ok(copied)
}

fn write_atomic(dir: &Path, name: &str, bytes: &[u8]) -> Result<()> {
    let tmp = tempfile::NamedTempFile::new_in(dir)?;
    std::io::Write::write_all(&mut tmp.as_file(), bytes)?;
    tmp.as_file().sync_all()?;
    tmp.persist(dir.join(name))
        .with_context(|| format!("writing {}", dir.join(name).display()))?;
    Ok(())
}

/// Pushes the artifact under `r`'s tag: blobs in `known` (imported from this
/// repository or pushed in this run) are neither checked nor uploaded; the others are
/// checked with HEAD, mounted from another repository of the registry known to hold
/// them, or uploaded, `crate::registry::PUSH_PARALLELISM` at a time; every blob is
/// then recorded as held there, for later mounts.
/// Returns how many blobs were uploaded; `known` gains what the registry now has.
pub fn push(
    client: &Client,
    store: &Store,
    r: &Reference,
    manifest: &ArtifactManifest,
    known: &mut HashSet<Digest>,
) -> Result<usize> {
    let mut todo: Vec<&Descriptor> = manifest
        .layers
        .iter()
        .chain([&manifest.config])
        .filter(|d| !known.contains(&d.digest))
        .collect();
    todo.dedup_by_key(|d| d.digest);
    let next = AtomicUsize::new(0);
    let uploaded = AtomicUsize::new(0);
    let failed: Mutex<Option<anyhow::Error>> = Mutex::new(None);
    std::thread::scope(|s| {
        for _ in 0..crate::registry::PUSH_PARALLELISM.min(todo.len()) {
            s.spawn(|| loop {
                let Some(d) = todo.get(next.fetch_add(1, Ordering::Relaxed)) else {
                    return;
                };
                let result = (|| -> Result<()> {
                    if client.head_blob(r, &d.digest, Access::Push)?.is_some() {
                        return Ok(());
                    }
                    // Another repository of the registry has it (an image pushed or
                    // pulled): a cross-repository mount moves no bytes.
                    let origins = store.blob_origins(&d.digest, &r.registry)?;
                    for from in origins.iter().filter(|f| **f != r.repository) {
                        if client.mount_blob(r, &d.digest, from)? {
                            return Ok(());
                        }
                    }
                    let open = || -> std::io::Result<Box<dyn std::io::Read + Send>> {
                        Ok(Box::new(
                            store.open_blob(&d.digest).map_err(std::io::Error::other)?,
                        ))
                    };
                    client.push_blob(r, &d.digest, d.size, &open)?;
                    uploaded.fetch_add(1, Ordering::Relaxed);
                    Ok(())
                })();
                if let Err(e) = result {
                    failed
                        .lock()
                        .unwrap_or_else(|e| e.into_inner())
                        .get_or_insert(e);
                    return;
                }
            });
        }
    });
    if let Some(e) = failed.into_inner().unwrap_or_else(|e| e.into_inner()) {
        return Err(e);
    }
    known.extend(todo.iter().map(|d| d.digest));
    for d in manifest.layers.iter().chain([&manifest.config]) {
        store.record_blob_origin(&d.digest, &r.registry, &r.repository)?;
    }
    let tag = r.tag.clone().unwrap_or_else(|| "latest".into());
    client.put_manifest(
        r,
        &tag,
        media_types::OCI_MANIFEST,
        &serde_json::to_vec(manifest)?,
    )?;
    Ok(uploaded.into_inner())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn d(s: &str) -> Digest {
        strata_digest::sha256(s)
    }

    fn rec(layers: &[&str]) -> SharedRecord {
        SharedRecord {
            chain: Chain(layers.iter().map(|l| d(l)).collect()),
            key: d(&layers.join("+")),
            description: layers.join(" "),
        }
    }

    #[test]
    fn min_keeps_prefixes_of_the_image_and_max_keeps_everything() {
        let used = BTreeMap::from([
            (d("base"), rec(&["a"])),
            (d("run"), rec(&["a", "b"])),
            (d("builder"), rec(&["a", "x"])),
            (d("final"), rec(&["a", "b", "c"])),
        ]);
        let image = Chain(vec![d("a"), d("b"), d("c")]);
        let min = select(used.clone(), Mode::Min, &image);
        assert_eq!(
            min.keys().copied().collect::<BTreeSet<_>>(),
            BTreeSet::from([d("base"), d("run"), d("final")])
        );
        assert_eq!(select(used.clone(), Mode::Max, &image).len(), 4);
    }

    #[test]
    fn layers_are_listed_once_and_records_without_a_layer_entry_are_dropped() {
        let records = BTreeMap::from([
            (d("k1"), rec(&["a", "b"])),
            (d("k2"), rec(&["a", "b", "gone"])),
        ]);
        let config = config(&records, None, |id| {
            Ok((*id != d("gone")).then_some(LayerEntry {
                diff_id: *id,
                blob: None,
                empty: true,
            }))
        })
        .unwrap();
        assert_eq!(config.layers.len(), 2);
        assert_eq!(config.records.len(), 1);
        let r = &config.records[0];
        assert_eq!((r.key, r.result), (d("k1"), d("a+b")));
        let chain: Vec<Digest> = r.layers.iter().map(|&i| config.layers[i].diff_id).collect();
        assert_eq!(chain, vec![d("a"), d("b")]);
        config.validate().unwrap();
    }
}
