//! Turning a solved filesystem and the frontend's image config into outputs: the
//! adapters between the store/snapshots and the image exporter, and the outputs
//! themselves (local image store, OCI layout/archive, docker archive, rootfs dir/tar).

use std::collections::HashMap;
use std::io::{Read, Write};
use std::path::Path;
use std::sync::Arc;

use anyhow::{Context as _, Result};
use strata_digest::Digest;
use strata_image::{
    BlobSink, BuiltImage, CompressedKey, CompressedLayer, Compression, ImageOptions, LayerSource,
    MediaTypes,
};
use strata_oci::{Descriptor, ImageConfig, Reference};
use strata_snapshot::{Chain, Layers, TarOptions};
use strata_store::{ImageRecord, Store};

/// The store as the exporter's blob sink. Stored layers double as uncompressed layer
/// blobs named by their diffID: the local image store references them without writing
/// them out again, and they are streamed from the layer directory when read.
pub struct StoreSink(pub Store, pub Arc<Layers>);

impl BlobSink for StoreSink {
    fn has(&self, d: &Digest) -> bool {
        self.0.has_blob(d).unwrap_or(false) || self.1.has(d)
    }

    fn put(
        &self,
        write: &mut dyn FnMut(&mut dyn Write) -> std::io::Result<()>,
    ) -> std::io::Result<(Digest, u64)> {
        let mut w = self.0.blob_writer().map_err(std::io::Error::other)?;
        write(&mut w)?;
        w.commit(None).map_err(std::io::Error::other)
    }

    fn open(&self, d: &Digest) -> std::io::Result<Box<dyn Read + Send>> {
        if !self.0.has_blob(d).unwrap_or(false) && self.1.has(d) {
            // Stream the layer's canonical tar through a pipe.
            let (reader, mut writer) = std::io::pipe()?;
            let layers = self.1.clone();
            let id = *d;
            std::thread::spawn(move || {
                let mut w = std::io::BufWriter::with_capacity(1 << 20, &mut writer);
                let _ = layers.write_tar(&id, &mut w, &TarOptions::default());
                let _ = w.flush();
            });
            return Ok(Box::new(reader));
        }
        Ok(Box::new(
            self.0.open_blob(d).map_err(std::io::Error::other)?,
        ))
    }

    fn open_file(&self, d: &Digest) -> Option<std::io::Result<std::fs::File>> {
        // Stored layers (directories) have no file: they stream through `open`.
        match std::fs::File::open(self.0.blob_path(d)) {
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => None,
            opened => Some(opened),
        }
    }

    fn hashed_here(&self, d: &Digest) -> bool {
        self.0.hashed_here(d)
    }

    fn lookup_compressed(&self, key: &CompressedKey) -> Option<CompressedLayer> {
        // Only epoch-free exports are memoised: then the export diffID is the layer id.
        if key.source_date_epoch.is_some() {
            return None;
        }
        let level = key.compression.level().unwrap_or(0);
        let (blob, size) = self
            .0
            .compressed(&key.layer, key.compression.name(), level)
            .ok()??;
        Some(CompressedLayer {
            diff_id: key.layer,
            blob,
            size,
        })
    }

    fn record_compressed(&self, key: &CompressedKey, value: &CompressedLayer) {
        if key.source_date_epoch.is_some() || value.diff_id != key.layer {
            return;
        }
        let level = key.compression.level().unwrap_or(0);
        let _ = self.0.record_compressed(
            &key.layer,
            key.compression.name(),
            level,
            &value.blob,
            value.size,
        );
    }
}

/// A stored layer as the exporter's layer source.
pub(crate) struct SnapLayer {
    pub(crate) layers: Arc<Layers>,
    pub(crate) id: Digest,
}

impl LayerSource for SnapLayer {
    fn layer_id(&self) -> Digest {
        self.id
    }

    fn write_tar(
        &self,
        w: &mut dyn Write,
        source_date_epoch: Option<i64>,
    ) -> std::io::Result<Digest> {
        self.layers
            .write_tar(&self.id, w, &TarOptions { source_date_epoch })
            .map(|(diff_id, _)| diff_id)
            .map_err(std::io::Error::other)
    }
}

/// Is the stored layer an empty diff (a step that changed nothing)?
pub(crate) fn is_empty_layer(layers: &Layers, id: &Digest) -> bool {
    std::fs::read_dir(layers.path(id))
        .map(|mut d| d.next().is_none())
        .unwrap_or(false)
}

/// A layer of the result that only an imported cache holds (`--cache-from`): its blob
/// there, compressed as `compression` (algorithm, level), or none for an empty layer.
/// An image of such layers can be pushed without fetching them: the registry mounts
/// the blob from the cache's repository.
#[derive(Debug, Clone)]
pub struct RemoteLayer {
    pub blob: Option<Descriptor>,
    pub compression: (String, i32),
}

/// Remote layers by diffID.
pub type RemoteLayers = HashMap<Digest, RemoteLayer>;

/// Builds the image: layers that changed nothing are dropped and their history entries
/// marked `empty_layer`, as BuildKit's exporter does.
pub fn build_image(
    store: &Store,
    layers: &Arc<Layers>,
    chain: &Chain,
    config: ImageConfig,
    opts: &ImageOptions,
) -> Result<BuiltImage> {
    build_image_with(store, layers, chain, config, opts, &RemoteLayers::new())
}

/// [`build_image`] where the layers in `remote` are not in the store: their imported
/// blobs stand for them (their compression must be `opts`').
pub fn build_image_with(
    store: &Store,
    layers: &Arc<Layers>,
    chain: &Chain,
    mut config: ImageConfig,
    opts: &ImageOptions,
    remote: &RemoteLayers,
) -> Result<BuiltImage> {
    let layer_entries: Vec<usize> = config
        .history
        .iter()
        .enumerate()
        .filter(|(_, h)| !h.empty_layer)
        .map(|(i, _)| i)
        .collect();
    let aligned = layer_entries.len() == chain.len();
    let mut sources: Vec<Arc<dyn LayerSource>> = Vec::new();
    for (k, id) in chain.layers().iter().enumerate() {
        let empty = match remote.get(id) {
            Some(r) => r.blob.is_none(),
            None => is_empty_layer(layers, id),
        };
        if empty {
            if aligned {
                config.history[layer_entries[k]].empty_layer = true;
            }
            continue;
        }
        if remote.contains_key(id) {
            sources.push(Arc::new(RemoteLayerSource(*id)));
            continue;
        }
        sources.push(Arc::new(SnapLayer {
            layers: layers.clone(),
            id: *id,
        }));
    }
    if !aligned {
        // The history does not describe the layers one to one (a base image without
        // history): keep the layer-producing entries only as far as they go.
        let mut remaining = sources.len();
        for h in config.history.iter_mut() {
            if !h.empty_layer {
                if remaining == 0 {
                    h.empty_layer = true;
                } else {
                    remaining -= 1;
                }
            }
        }
    }
    let sink = RemoteSink {
        store: StoreSink(store.clone(), layers.clone()),
        remote,
    };
    Ok(strata_image::build_image(config, &sources, opts, &sink)?)
}

/// The store's sink, where the compressed blobs of remote layers are the imported ones.
struct RemoteSink<'a> {
    store: StoreSink,
    remote: &'a RemoteLayers,
}

impl RemoteSink<'_> {
    fn remote_blob(&self, d: &Digest) -> bool {
        self.remote
            .values()
            .any(|r| r.blob.as_ref().is_some_and(|b| b.digest == *d))
    }
}

impl BlobSink for RemoteSink<'_> {
    fn has(&self, d: &Digest) -> bool {
        self.store.has(d) || self.remote_blob(d)
    }

    fn put(
        &self,
        write: &mut dyn FnMut(&mut dyn Write) -> std::io::Result<()>,
    ) -> std::io::Result<(Digest, u64)> {
        self.store.put(write)
    }

    fn open(&self, d: &Digest) -> std::io::Result<Box<dyn Read + Send>> {
        self.store.open(d)
    }

    fn open_file(&self, d: &Digest) -> Option<std::io::Result<std::fs::File>> {
        self.store.open_file(d)
    }

    fn hashed_here(&self, d: &Digest) -> bool {
        self.store.hashed_here(d)
    }

    fn lookup_compressed(&self, key: &CompressedKey) -> Option<CompressedLayer> {
        let remote = self.remote.get(&key.layer).filter(|r| {
            key.source_date_epoch.is_none()
                && r.compression.0 == key.compression.name()
                && r.compression.1 == key.compression.level().unwrap_or(0)
        });
        match remote.and_then(|r| r.blob.as_ref()) {
            Some(blob) => Some(CompressedLayer {
                diff_id: key.layer,
                blob: blob.digest,
                size: blob.size,
            }),
            None => self.store.lookup_compressed(key),
        }
    }

    fn record_compressed(&self, key: &CompressedKey, value: &CompressedLayer) {
        if !self.remote.contains_key(&key.layer) {
            self.store.record_compressed(key, value)
        }
    }
}

/// A remote layer as a layer source: never read, since its imported blob is used.
struct RemoteLayerSource(Digest);

impl LayerSource for RemoteLayerSource {
    fn layer_id(&self) -> Digest {
        self.0
    }

    fn write_tar(&self, _: &mut dyn Write, _: Option<i64>) -> std::io::Result<Digest> {
        Err(std::io::Error::other(format!(
            "layer {} is only in the imported cache (not fetched)",
            self.0
        )))
    }
}

/// Records the image in the local store under `name`.
pub fn tag(store: &Store, name: &str, image: &BuiltImage) -> Result<()> {
    let size = image.config.size + image.layers.iter().map(|(d, _)| d.size).sum::<u64>();
    let cfg: ImageConfig = serde_json::from_slice(&image.config_bytes)?;
    let platform = match &cfg.variant {
        Some(v) => format!("{}/{}/{v}", cfg.os, cfg.architecture),
        None => format!("{}/{}", cfg.os, cfg.architecture),
    };
    let rec = ImageRecord {
        manifest: image.manifest.digest,
        config: image.config.digest,
        media_type: image.manifest.media_type.clone(),
        size,
        created: cfg.created.clone(),
        platform,
    };
    store
        .put_image(name, &rec)
        .with_context(|| format!("tagging {name}"))
}

/// `type=oci`: an OCI archive or layout naming the image as BuildKit does (the full
/// name in `io.containerd.image.name`, the tag in `org.opencontainers.image.ref.name`,
/// which `umoci --image DIR:TAG` and `skopeo oci:DIR:TAG` look up).
pub fn write_oci(
    dest: &Path,
    tar: bool,
    (store, layers): (&Store, &Arc<Layers>),
    image: &BuiltImage,
    names: &[Reference],
) -> Result<()> {
    let sink = StoreSink(store.clone(), layers.clone());
    if tar {
        let f = atomic_file(dest)?;
        strata_image::outputs::write_oci_archive_named(f.as_file(), image, &sink, names)?;
        f.persist(dest)
            .with_context(|| format!("writing {}", dest.display()))?;
    } else {
        strata_image::outputs::write_oci_layout_named(dest, image, &sink, names)?;
    }
    Ok(())
}

pub fn write_docker(
    dest: &Path,
    (store, layers): (&Store, &Arc<Layers>),
    image: &BuiltImage,
    tags: &[String],
) -> Result<()> {
    let sink = StoreSink(store.clone(), layers.clone());
    let f = atomic_file(dest)?;
    strata_image::outputs::write_docker_archive(f.as_file(), image, &sink, tags)?;
    f.persist(dest)
        .with_context(|| format!("writing {}", dest.display()))?;
    Ok(())
}

/// `type=local`: the final root filesystem as a directory. Into an existing directory
/// the output is merged as BuildKit's local exporter does: what the build outputs
/// replaces same-named entries, directories merge, other files stay.
pub fn write_local(dest: &Path, layers: &Layers, chain: &Chain) -> Result<()> {
    std::fs::create_dir_all(dest).with_context(|| format!("creating {}", dest.display()))?;
    let empty = fs_err::read_dir(dest)?.next().is_none();
    if empty {
        strata_snapshot::materialize(layers, chain, dest)
            .with_context(|| format!("writing the root filesystem to {}", dest.display()))?;
        return Ok(());
    }
    // Beside `dest`, so entries move into it by rename.
    let parent = dest
        .parent()
        .filter(|p| !p.as_os_str().is_empty())
        .unwrap_or(Path::new("."));
    let staged = tempfile::Builder::new()
        .prefix(".strata-local-")
        .tempdir_in(parent)
        .with_context(|| format!("creating a directory in {}", parent.display()))?;
    let rootfs = staged.path().join("rootfs");
    strata_snapshot::materialize(layers, chain, &rootfs)
        .with_context(|| format!("writing the root filesystem to {}", rootfs.display()))?;
    merge_into(&rootfs, dest)
        .with_context(|| format!("writing the root filesystem to {}", dest.display()))
}

/// Moves every entry of `from` into `to`: directories present in both are merged (and
/// take the new one's metadata), anything else replaces what is there.
fn merge_into(from: &Path, to: &Path) -> std::io::Result<()> {
    use std::os::unix::fs::MetadataExt;
    for entry in fs_err::read_dir(from)? {
        let entry = entry?;
        let src = entry.path();
        let dst = to.join(entry.file_name());
        let new_is_dir = entry.file_type()?.is_dir();
        match std::fs::symlink_metadata(&dst) {
            Ok(old) if old.is_dir() && new_is_dir => {
                merge_into(&src, &dst)?;
                let meta = fs_err::symlink_metadata(&src)?;
                std::fs::set_permissions(&dst, meta.permissions())?;
                std::os::unix::fs::lchown(&dst, Some(meta.uid()), Some(meta.gid()))?;
                fs_err::File::open(&dst)?.set_modified(meta.modified()?)?;
                continue;
            }
            Ok(old) if old.is_dir() => fs_err::remove_dir_all(&dst)?,
            Ok(_) if new_is_dir => fs_err::remove_file(&dst)?,
            // A file or symlink is replaced by the rename itself.
            Ok(_) | Err(_) => {}
        }
        fs_err::rename(&src, &dst)?;
    }
    Ok(())
}

/// `type=tar`: the final root filesystem as one tar.
pub fn write_rootfs_tar(dest: &Path, layers: &Layers, chain: &Chain, tmp: &Path) -> Result<()> {
    let dir = tempfile::Builder::new().prefix("rootfs-").tempdir_in(tmp)?;
    strata_snapshot::materialize(layers, chain, dir.path())?;
    let f = atomic_file(dest)?;
    let mut w = std::io::BufWriter::new(f.as_file());
    strata_snapshot::write_dir_tar(
        dir.path(),
        &mut w,
        &TarOptions {
            source_date_epoch: None,
        },
    )?;
    w.flush()?;
    drop(w);
    f.persist(dest)
        .with_context(|| format!("writing {}", dest.display()))?;
    Ok(())
}

/// A temp file beside `dest`, renamed over it when complete.
fn atomic_file(dest: &Path) -> Result<tempfile::NamedTempFile> {
    let dir = dest
        .parent()
        .filter(|p| !p.as_os_str().is_empty())
        .unwrap_or(Path::new("."));
    std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
    tempfile::Builder::new()
        .prefix(".strata-")
        .tempfile_in(dir)
        .with_context(|| format!("creating a file in {}", dir.display()))
}

pub fn compression(spec: &crate::outputs::CompressionSpec) -> Result<Compression> {
    let kind = spec.algorithm.as_deref().unwrap_or("gzip");
    let level = spec.level.map(|l| l.to_string());
    Ok(Compression::from_options(kind, level.as_deref())?)
}

pub fn media(docker: bool) -> MediaTypes {
    if docker {
        MediaTypes::Docker
    } else {
        MediaTypes::Oci
    }
}
