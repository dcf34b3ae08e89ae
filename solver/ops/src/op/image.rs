//! Base images: from the local store (by manifest digest) or an OCI layout directory.
//! Each compressed layer blob is extracted once into a canonical layer.

use std::io::Read;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use strata_digest::{sha256, Digest};
use strata_oci::{media_types, ImageIndex, ImageManifest, Platform};
use strata_scheduler::{BoxFuture, Context, Op, OpError};
use strata_snapshot::{Chain, Layers};
use strata_store::Store;

use super::blocking;
use crate::output::layer_of_blob_key;
use crate::Output;

/// An image already in the local store, pinned by manifest digest.
pub struct ImageRunner {
    pub store: Store,
    pub layers: Arc<Layers>,
    pub reference: String,
    pub digest: Option<Digest>,
    pub platform: Platform,
}

impl Op<Output> for ImageRunner {
    fn exec<'a>(
        &'a self,
        cx: &'a Context,
        _: &'a [Output],
    ) -> BoxFuture<'a, Result<Output, OpError>> {
        let store = self.store.clone();
        let layers = self.layers.clone();
        let reference = self.reference.clone();
        let digest = self.digest;
        let platform = self.platform.clone();
        let cx = cx.clone();
        Box::pin(blocking(move || {
            let manifest_digest = match digest {
                Some(d) => d,
                None => {
                    let rec = store
                        .image(&reference)
                        .map_err(OpError::new)?
                        .ok_or_else(|| OpError::new(format!("image {reference} is not in the local store (strata image load / import, or a registry once pulling lands)")))?;
                    rec.manifest
                }
            };
            let manifest = manifest_for(
                &|d| store.read_blob(d).map_err(OpError::new),
                &manifest_digest,
                &platform,
            )?;
            let mut chain = Chain::empty();
            let n = manifest.layers.len();
            for (i, l) in manifest.layers.iter().enumerate() {
                cx.progress(format!("layer {}/{n}", i + 1), i as u64, Some(n as u64));
                let open = || -> Result<Box<dyn Read + Send>, OpError> {
                    Ok(Box::new(store.open_blob(&l.digest).map_err(OpError::new)?))
                };
                chain.push(ensure_layer(
                    &store,
                    &layers,
                    &l.digest,
                    &l.media_type,
                    &open,
                )?);
            }
            Ok(Output::Fs(chain))
        }))
    }
}

/// An image in an OCI layout directory.
pub struct LayoutRunner {
    pub store: Store,
    pub layers: Arc<Layers>,
    pub path: PathBuf,
    pub digest: Digest,
    pub platform: Platform,
}

impl Op<Output> for LayoutRunner {
    fn exec<'a>(
        &'a self,
        _: &'a Context,
        _: &'a [Output],
    ) -> BoxFuture<'a, Result<Output, OpError>> {
        let store = self.store.clone();
        let layers = self.layers.clone();
        let dir = self.path.clone();
        let digest = self.digest;
        let platform = self.platform.clone();
        Box::pin(blocking(move || {
            let read = |d: &Digest| -> Result<Vec<u8>, OpError> {
                let p = blob_in_layout(&dir, d);
                let bytes =
                    std::fs::read(&p).map_err(|e| OpError::new(format!("{}: {e}", p.display())))?;
                if sha256(&bytes) != *d {
                    return Err(OpError::new(format!(
                        "{}: content does not match its digest",
                        p.display()
                    )));
                }
                Ok(bytes)
            };
            let manifest = manifest_for(&read, &digest, &platform)?;
            let mut chain = Chain::empty();
            for l in &manifest.layers {
                let p = blob_in_layout(&dir, &l.digest);
                let open = || -> Result<Box<dyn Read + Send>, OpError> {
                    Ok(Box::new(std::fs::File::open(&p).map_err(|e| {
                        OpError::new(format!("{}: {e}", p.display()))
                    })?))
                };
                chain.push(ensure_layer(
                    &store,
                    &layers,
                    &l.digest,
                    &l.media_type,
                    &open,
                )?);
            }
            Ok(Output::Fs(chain))
        }))
    }
}

fn blob_in_layout(dir: &Path, d: &Digest) -> PathBuf {
    dir.join("blobs/sha256").join(d.hex())
}

/// The manifest at `digest`, descending into an index for `platform`.
fn manifest_for(
    read: &dyn Fn(&Digest) -> Result<Vec<u8>, OpError>,
    digest: &Digest,
    platform: &Platform,
) -> Result<ImageManifest, OpError> {
    let bytes = read(digest)?;
    let probe: serde_json::Value = serde_json::from_slice(&bytes).map_err(OpError::new)?;
    let media = probe
        .get("mediaType")
        .and_then(|m| m.as_str())
        .unwrap_or("");
    if media_types::is_index(media) || probe.get("manifests").is_some() {
        let index: ImageIndex = serde_json::from_slice(&bytes).map_err(OpError::new)?;
        let d = index
            .select(platform)
            .or_else(|| (index.manifests.len() == 1).then(|| &index.manifests[0]))
            .ok_or_else(|| {
                OpError::new(format!("no manifest for platform {platform} in {digest}"))
            })?;
        return manifest_for(read, &d.digest, platform);
    }
    serde_json::from_slice(&bytes).map_err(OpError::new)
}

/// The canonical layer for a compressed layer blob, extracting it the first time.
pub fn ensure_layer(
    store: &Store,
    layers: &Layers,
    blob: &Digest,
    media_type: &str,
    open: &dyn Fn() -> Result<Box<dyn Read + Send>, OpError>,
) -> Result<Digest, OpError> {
    // A layer of an image this store built is named by its diffID and kept as is.
    if !media_type.ends_with("gzip") && !media_type.ends_with("zstd") && layers.has(blob) {
        return Ok(*blob);
    }
    let memo = layer_of_blob_key(blob);
    if let Ok(Some(rec)) = store.cache_get(&memo) {
        if let Some(d) = rec.value.as_str().and_then(|s| s.parse::<Digest>().ok()) {
            crate::records::pin(store, &memo, &[strata_store::Resource::Layer(d)]);
            if layers.has(&d) {
                return Ok(d);
            }
        }
    }
    let raw = std::io::BufReader::with_capacity(1 << 20, open()?);
    let reader: Box<dyn Read + Send> = if media_type.ends_with("gzip") {
        Box::new(flate2::read::MultiGzDecoder::new(raw))
    } else if media_type.ends_with("zstd") {
        Box::new(zstd::stream::read::Decoder::new(raw).map_err(OpError::new)?)
    } else {
        Box::new(raw)
    };
    let applied = layers.apply(reader, None).map_err(OpError::new)?;
    crate::records::pin_stored(store, layers, &applied.diff_id)?;
    let t = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0);
    let _ = store.cache_put(
        &memo,
        &strata_store::CacheRecord {
            value: serde_json::Value::String(applied.diff_id.to_string()),
            created: t,
            last_used: t,
            use_count: 0,
            description: format!("layer of blob {blob}"),
            size: 0,
        },
    );
    Ok(applied.diff_id)
}
