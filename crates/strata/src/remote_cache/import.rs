//! `--cache-from`: reading exported caches (an OCI layout, a registry artifact, or an
//! image's inline cache) into records, and fetching their layers when asked.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::io::Read;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use anyhow::{bail, Context as _, Result};
use strata_digest::Digest;
use strata_oci::{media_types, Descriptor, ImageConfig, ImageIndex, Platform, Reference};
use strata_ops::{LayerFetcher, SharedRecord};
use strata_registry::Client;
use strata_scheduler::OpError;
use strata_snapshot::{Chain, Layers};
use strata_store::Store;

use super::format::{
    ArtifactManifest, CacheConfig, LayerEntry, MountEntry, ARTIFACT_TYPE, CONFIG_MEDIA_TYPE,
    INLINE_FIELD,
};
use super::spec::CacheFrom;

/// Where an imported cache's blobs are.
pub enum Origin {
    Layout(PathBuf),
    Registry { client: Client, repo: Reference },
}

impl Origin {
    fn describe(&self) -> String {
        match self {
            Origin::Layout(p) => p.display().to_string(),
            Origin::Registry { repo, .. } => repo.to_string(),
        }
    }

    /// A small blob (manifest, config), checked against its digest.
    fn read(&self, d: &Digest) -> Result<Vec<u8>> {
        let bytes = match self {
            Origin::Layout(dir) => {
                let p = layout_blob(dir, d);
                fs_err::read(&p)?
            }
            Origin::Registry { client, repo } => {
                client.get_blob(repo, d, None, || Ok(Vec::new()))?
            }
        };
        if strata_digest::sha256(&bytes) != *d {
            bail!("{}: blob {d} does not match its digest", self.describe());
        }
        Ok(bytes)
    }

    /// Copies blob `desc` into the store (checked against its digest).
    fn blob_into_store(&self, store: &Store, desc: &Descriptor) -> Result<()> {
        if store.has_blob(&desc.digest)? {
            return Ok(());
        }
        match self {
            Origin::Layout(dir) => {
                let mut f = fs_err::File::open(layout_blob(dir, &desc.digest))?;
                let mut w = store.blob_writer()?;
                std::io::copy(&mut f, &mut w)?;
                w.commit(Some(&desc.digest))?;
            }
            Origin::Registry { client, repo } => {
                // The store's writer hashes and checks the digest when it commits.
                let w = client.get_blob_hashed_by_writer(repo, &desc.digest, desc.size, || {
                    store.blob_writer().map_err(std::io::Error::other)
                })?;
                w.commit(Some(&desc.digest))?;
                // A later push to another repository there mounts it instead.
                store.record_blob_origin(&desc.digest, &repo.registry, &repo.repository)?;
            }
        }
        Ok(())
    }

    /// The (registry, repository) a registry origin's blobs are in.
    pub fn repository(&self) -> Option<(String, String)> {
        match self {
            Origin::Registry { repo, .. } => Some((repo.registry.clone(), repo.repository.clone())),
            Origin::Layout(_) => None,
        }
    }
}

/// The layer tar inside a blob of media type `media_type` (zstd, gzip or plain).
pub(super) fn decompressed<'a>(
    raw: impl Read + 'a,
    media_type: &str,
) -> std::io::Result<Box<dyn Read + 'a>> {
    Ok(if media_type.ends_with("zstd") {
        Box::new(zstd::stream::read::Decoder::new(raw)?)
    } else if media_type.ends_with("gzip") {
        Box::new(flate2::read::MultiGzDecoder::new(raw))
    } else {
        Box::new(raw)
    })
}

pub fn layout_blob(dir: &Path, d: &Digest) -> PathBuf {
    dir.join("blobs/sha256").join(d.hex())
}

/// A layer an imported cache holds.
#[derive(Debug, Clone)]
pub struct ImportedLayer {
    pub origin: usize,
    pub entry: LayerEntry,
    /// `(algorithm, level)` of the blob, when the cache says.
    pub compression: Option<(String, i32)>,
}

/// Every imported cache, merged (the first `--cache-from` wins on conflicts).
#[derive(Default)]
pub struct Imported {
    pub records: HashMap<Digest, SharedRecord>,
    pub layers: HashMap<Digest, ImportedLayer>,
    pub origins: Vec<Origin>,
    /// Each origin's cache config blob (an inline cache has none of its own).
    configs: Vec<Option<Digest>>,
    /// Cache-mount contents, with their origin.
    pub mounts: Vec<(usize, MountEntry)>,
}

impl Imported {
    /// Blobs known to be in `(registry, repository)`: listed by a cache imported from it.
    pub fn blobs_in(&self, repository: &(String, String)) -> HashSet<Digest> {
        let here = |origin: usize| self.origins[origin].repository().as_ref() == Some(repository);
        let layers = self
            .layers
            .values()
            .filter(|l| here(l.origin))
            .filter_map(|l| l.entry.blob.as_ref().map(|b| b.digest));
        let configs = self
            .configs
            .iter()
            .enumerate()
            .filter(|(i, _)| here(*i))
            .filter_map(|(_, c)| *c);
        layers.chain(configs).collect()
    }
}

/// Reads every `--cache-from`. A cache that is missing or unreadable is a warning, as
/// in BuildKit: the build goes on without it (the first CI run has none).
pub fn load(specs: &[CacheFrom], client: &dyn Fn() -> Result<Client>, quiet: bool) -> Imported {
    let mut out = Imported::default();
    for spec in specs {
        let loaded = match spec {
            CacheFrom::Local { src } => {
                let origin = Origin::Layout(src.clone());
                read_layout(src).map(|(c, d)| (origin, c, d))
            }
            CacheFrom::Registry { reference } => client().and_then(|client| {
                let origin = Origin::Registry {
                    client: client.clone(),
                    repo: reference.clone(),
                };
                read_registry(&client, reference).map(|(c, d)| (origin, c, d))
            }),
        };
        let (origin, config, config_digest) = match loaded.and_then(|(o, c, d)| {
            c.validate().map_err(anyhow::Error::msg)?;
            Ok((o, c, d))
        }) {
            Ok(x) => x,
            Err(e) => {
                eprintln!("warning: --cache-from {}: {e:#}", describe(spec));
                continue;
            }
        };
        if !quiet {
            eprintln!(
                "importing cache from {}: {} records, {} layers",
                origin.describe(),
                config.records.len(),
                config.layers.len()
            );
        }
        let index = out.origins.len();
        out.origins.push(origin);
        out.configs.push(config_digest);
        out.mounts
            .extend(config.mounts.iter().map(|m| (index, m.clone())));
        for l in &config.layers {
            out.layers
                .entry(l.diff_id)
                .or_insert_with(|| ImportedLayer {
                    origin: index,
                    entry: l.clone(),
                    compression: config.compression.clone(),
                });
        }
        for r in &config.records {
            let chain = Chain(r.layers.iter().map(|&i| config.layers[i].diff_id).collect());
            out.records.entry(r.key).or_insert(SharedRecord {
                chain,
                key: r.result,
                description: r.description.clone(),
            });
        }
    }
    out
}

fn describe(spec: &CacheFrom) -> String {
    match spec {
        CacheFrom::Local { src } => format!("type=local,src={}", src.display()),
        CacheFrom::Registry { reference } => format!("type=registry,ref={reference}"),
    }
}

/// The cache config and its blob's digest.
type Loaded = (CacheConfig, Option<Digest>);

fn read_layout(dir: &Path) -> Result<Loaded> {
    let index_path = dir.join("index.json");
    let index: ImageIndex =
        serde_json::from_slice(&fs_err::read(&index_path).context("no exported cache there")?)
            .with_context(|| format!("{}: invalid index", index_path.display()))?;
    let desc = index
        .manifests
        .iter()
        .find(|m| m.artifact_type.as_deref() == Some(ARTIFACT_TYPE))
        .with_context(|| format!("{}: no strata cache in this layout", dir.display()))?;
    let origin = Origin::Layout(dir.to_path_buf());
    let manifest: ArtifactManifest = serde_json::from_slice(&origin.read(&desc.digest)?)?;
    cache_config(&origin, &manifest)
}

fn cache_config(origin: &Origin, manifest: &ArtifactManifest) -> Result<Loaded> {
    if manifest.config.media_type != CONFIG_MEDIA_TYPE {
        bail!("not a strata cache (config {})", manifest.config.media_type);
    }
    let bytes = origin.read(&manifest.config.digest)?;
    let config = serde_json::from_slice(&bytes).context("invalid cache config")?;
    Ok((config, Some(manifest.config.digest)))
}

/// A cache artifact, or an image carrying an inline cache.
fn read_registry(client: &Client, r: &Reference) -> Result<Loaded> {
    let top = client.get_manifest(r)?;
    let origin = Origin::Registry {
        client: client.clone(),
        repo: r.clone(),
    };
    let bytes = if media_types::is_index(&top.media_type) {
        let index: ImageIndex = serde_json::from_slice(&top.bytes)?;
        let desc = index
            .manifests
            .iter()
            .find(|m| m.artifact_type.as_deref() == Some(ARTIFACT_TYPE))
            .or_else(|| index.select(&Platform::host()))
            .context("no cache and no image for this platform")?;
        let pinned = Reference {
            digest: Some(desc.digest),
            ..r.clone()
        };
        client.get_manifest(&pinned)?.bytes
    } else {
        top.bytes
    };
    let manifest: ArtifactManifest = serde_json::from_slice(&bytes).context("invalid manifest")?;
    if manifest.config.media_type == CONFIG_MEDIA_TYPE {
        return cache_config(&origin, &manifest);
    }
    // An image: its config may carry an inline cache, whose layers are the image's.
    let config: ImageConfig = serde_json::from_slice(&origin.read(&manifest.config.digest)?)?;
    let inline = config
        .extra
        .get(INLINE_FIELD)
        .context("the image has no inline cache (build it with --cache-to type=inline)")?;
    let mut cache: CacheConfig =
        serde_json::from_value(inline.clone()).context("invalid inline cache")?;
    let blobs: HashMap<Digest, &Descriptor> = config
        .rootfs
        .diff_ids
        .iter()
        .copied()
        .zip(&manifest.layers)
        .collect();
    cache.compression = None;
    for l in cache.layers.iter_mut().filter(|l| !l.empty) {
        l.blob = blobs.get(&l.diff_id).map(|d| (*d).clone());
    }
    cache.drop_unresolved();
    Ok((cache, None))
}

/// Fetches imported layers into the store, once each.
pub struct Fetcher {
    pub store: Store,
    pub layers: Arc<Layers>,
    pub imported: Arc<Imported>,
    locks: Mutex<HashMap<Digest, Arc<Mutex<()>>>>,
}

impl Fetcher {
    pub fn new(store: Store, layers: Arc<Layers>, imported: Arc<Imported>) -> Self {
        Fetcher {
            store,
            layers,
            imported,
            locks: Mutex::new(HashMap::new()),
        }
    }

    fn fetch_layer(&self, diff_id: &Digest) -> Result<()> {
        let lock = self
            .locks
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .entry(*diff_id)
            .or_default()
            .clone();
        let _held = lock.lock().unwrap_or_else(|e| e.into_inner());
        if self.layers.has(diff_id) {
            return Ok(());
        }
        let layer = self
            .imported
            .layers
            .get(diff_id)
            .with_context(|| format!("layer {diff_id} is in no imported cache"))?;
        let applied = match &layer.entry.blob {
            _ if layer.entry.empty => {
                // An empty layer's tar is the end-of-archive blocks.
                self.layers.apply(std::io::repeat(0).take(1024), None)?
            }
            None => bail!("the imported cache has no blob for layer {diff_id}"),
            Some(blob) => {
                let origin = &self.imported.origins[layer.origin];
                let streamed = (!self.store.has_blob(&blob.digest)?)
                    .then(|| {
                        super::stream::fetch_and_apply(
                            &self.store,
                            &self.layers,
                            origin,
                            blob,
                            diff_id,
                        )
                    })
                    .flatten();
                let applied = match streamed {
                    Some(applied) => applied,
                    None => self.fetch_then_apply(layer, blob, diff_id)?,
                };
                // Only when the blob is what the cache says (a re-export may keep
                // blobs of another algorithm from an earlier cache).
                let matching = |(algorithm, _): &&(String, i32)| {
                    blob.media_type.ends_with(&format!("+{algorithm}"))
                };
                if let Some((algorithm, level)) = layer.compression.as_ref().filter(matching) {
                    self.store.record_compressed(
                        diff_id,
                        algorithm,
                        *level,
                        &blob.digest,
                        blob.size,
                    )?;
                }
                applied
            }
        };
        if applied.diff_id != *diff_id {
            bail!("layer {diff_id} came out as {}", applied.diff_id);
        }
        Ok(())
    }

    /// The two-pass fetch: the blob into the store, then applied from there.
    fn fetch_then_apply(
        &self,
        layer: &ImportedLayer,
        blob: &Descriptor,
        diff_id: &Digest,
    ) -> Result<strata_snapshot::Applied> {
        self.fetch_blob(layer, blob)?;
        let raw = std::io::BufReader::with_capacity(1 << 20, self.store.open_blob(&blob.digest)?);
        let reader = decompressed(raw, &blob.media_type)?;
        Ok(self.layers.apply(reader, Some(diff_id))?)
    }

    fn fetch_blob(&self, layer: &ImportedLayer, blob: &Descriptor) -> Result<()> {
        let origin = &self.imported.origins[layer.origin];
        origin
            .blob_into_store(&self.store, blob)
            .with_context(|| format!("fetching {} from {}", blob.digest, origin.describe()))
    }

    /// Restores the imported cache mounts among `used` that the store lacks; returns
    /// the ids restored.
    pub fn restore_mounts(&self, used: &BTreeMap<String, String>) -> Result<Vec<String>> {
        let mut restored = Vec::new();
        for (origin, m) in &self.imported.mounts {
            if !used.contains_key(&m.name) || restored.contains(&m.id) {
                continue;
            }
            let origin = &self.imported.origins[*origin];
            origin
                .blob_into_store(&self.store, &m.blob)
                .with_context(|| {
                    format!("fetching cache mount {:?} from {}", m.id, origin.describe())
                })?;
            if super::mounts::restore(&self.store, &self.layers, m)
                .with_context(|| format!("restoring cache mount {:?}", m.id))?
            {
                restored.push(m.id.clone());
            }
        }
        Ok(restored)
    }

    /// The imported blob of a layer not in the store, copied into the store's blobs
    /// (without extracting it): for exporting a layer this build never read.
    pub fn blob_of(&self, diff_id: &Digest) -> Result<Option<Descriptor>> {
        let Some(layer) = self.imported.layers.get(diff_id) else {
            return Ok(None);
        };
        match &layer.entry.blob {
            Some(blob) => {
                self.fetch_blob(layer, blob)?;
                Ok(Some(blob.clone()))
            }
            None => Ok(None),
        }
    }
}

impl LayerFetcher for Fetcher {
    fn fetch(&self, diff_id: &Digest) -> Result<(), OpError> {
        self.fetch_layer(diff_id).map_err(|e| {
            OpError::new(format!(
                "importing cached layer {diff_id}: {e:#}\nhint: the imported cache is damaged or incomplete: build without that --cache-from, or export it again"
            ))
        })
    }
}
