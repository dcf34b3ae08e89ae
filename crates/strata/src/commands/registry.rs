//! `strata pull` and `strata push`.

use std::io::Write;
use std::process::ExitCode;
use std::sync::Arc;

use anyhow::Context as _;
use strata_digest::Digest;
use strata_image::{BlobSink as _, Compression, ImageOptions, LayerSource};
use strata_oci::{media_types, ImageConfig, ImageManifest, Platform, Reference};
use strata_store::Store;

use crate::cli::{PullArgs, PushArgs};
use crate::diagnostics::Usage;
use crate::export::StoreSink;
use crate::progress::{self, Display, ProgressMode};
use crate::registry;
use crate::stdout::outln;

pub fn pull(args: PullArgs, root: Option<&std::path::PathBuf>) -> anyhow::Result<ExitCode> {
    let r = Reference::parse(&args.reference)
        .map_err(|e| Usage(format!("{:?}: {e}", args.reference)))?;
    let platform = match &args.platform {
        Some(p) => p
            .parse::<Platform>()
            .map_err(|e| Usage(format!("--platform: {e}")))?,
        None => Platform::host(),
    };
    let store = crate::store::open(root)?;
    let client = registry::client()?;
    let display = args.transfer.display(args.quiet)?;
    let rec = registry::pull(&store, &client, &r, &platform, display.clone());
    display.finish(rec.is_ok());
    let rec = rec?;
    if !args.quiet {
        eprintln!("Digest: {}", rec.manifest);
        eprintln!("Status: downloaded image for {}", r.familiar());
    }
    outln!("{r}");
    Ok(ExitCode::SUCCESS)
}

pub fn push(args: PushArgs, root: Option<&std::path::PathBuf>) -> anyhow::Result<ExitCode> {
    let src = Reference::parse(&args.name).map_err(|e| Usage(format!("{:?}: {e}", args.name)))?;
    let dest = match &args.dest {
        Some(d) => Reference::parse(d).map_err(|e| Usage(format!("{d:?}: {e}")))?,
        None => src.clone(),
    };
    let level = args.transfer.compression_level.map(|l| l.to_string());
    let compression = Compression::from_options(&args.transfer.compression, level.as_deref())
        .map_err(|e| Usage(format!("--compression: {e}")))?;
    let store = crate::store::open(root)?;
    let rec = store
        .image(&src.to_string())?
        .with_context(|| format!("no such image in the local store: {}", args.name))?;
    let stored = store.read_blob(&rec.manifest)?;
    let bytes = compressed_manifest(&store, &stored, compression)?;
    let display = args.transfer.progress.display(args.quiet)?;
    let opts = registry::TransferOptions {
        chunk: args.transfer.chunk_size,
        ..registry::TransferOptions::new(
            display.clone(),
            registry::push_parallelism(args.transfer.push_parallelism)?,
        )
    };
    let digest = push_stored(&store, &dest, &bytes, &opts);
    display.finish(digest.is_ok());
    let digest = digest?;
    if let Some(f) = &args.metadata_file {
        let meta = serde_json::json!({
            "containerimage.digest": digest,
            "image.name": dest.to_string(),
        });
        fs_err::write(f, serde_json::to_vec_pretty(&meta)?)?;
    }
    outln!("{}@{digest}", dest.name());
    Ok(ExitCode::SUCCESS)
}

/// How `strata push` sends an image.
#[derive(Debug, Clone, clap::Args)]
pub struct PushOptions {
    /// Layer compression of a locally built image (the store keeps its layers
    /// uncompressed): gzip, zstd or uncompressed. Layers already compressed (a pulled
    /// image) are pushed as they are.
    #[arg(long, value_name = "ALGORITHM", default_value = "gzip")]
    pub compression: String,
    /// Compression level (gzip 0-9, zstd 1-22).
    #[arg(long, value_name = "LEVEL")]
    pub compression_level: Option<u32>,
    /// Blobs uploaded at once (default: the config's, else 4).
    #[arg(long, value_name = "N")]
    pub push_parallelism: Option<usize>,
    /// Upload blobs larger than SIZE in chunks of SIZE (`16M`, `64KiB`, `4096`)
    /// instead of one request each.
    #[arg(long, value_name = "SIZE", value_parser = parse_size)]
    pub chunk_size: Option<u64>,
    #[command(flatten)]
    pub progress: ProgressOptions,
}

/// How `strata pull` and `strata push` show the bytes of each blob.
#[derive(Debug, Clone, clap::Args)]
pub struct ProgressOptions {
    /// auto (tty on a terminal, else plain), tty, plain, json or quiet.
    #[arg(long, value_enum, default_value_t = ProgressMode::Auto)]
    pub progress: ProgressMode,
}

impl ProgressOptions {
    /// The renderer (`-q` silences it).
    pub fn display(&self, quiet: bool) -> anyhow::Result<Arc<dyn Display>> {
        progress::reporter(if quiet {
            ProgressMode::Quiet
        } else {
            self.progress
        })
    }
}

/// The manifest to push for a stored image: its uncompressed layers compressed as
/// `build --push` does (the same blobs, recorded in the store so the next push
/// reuses them, hence the same digest), or the stored manifest when its layers are
/// compressed already.
pub fn compressed_manifest(
    store: &Store,
    manifest_bytes: &[u8],
    compression: Compression,
) -> anyhow::Result<Vec<u8>> {
    let manifest: ImageManifest =
        serde_json::from_slice(manifest_bytes).context("the stored manifest is invalid")?;
    let uncompressed = |m: &str| m.ends_with(".tar");
    if compression == Compression::Uncompressed
        || !manifest.layers.iter().all(|l| uncompressed(&l.media_type))
    {
        return Ok(manifest_bytes.to_vec());
    }
    let config: ImageConfig = serde_json::from_slice(&store.read_blob(&manifest.config.digest)?)
        .context("the stored image config is invalid")?;
    let layers = Arc::new(strata_snapshot::Layers::new(store.root(), store.tmp_dir())?);
    let sink = Arc::new(StoreSink(store.clone(), layers));
    let sources: Vec<Arc<dyn LayerSource>> = manifest
        .layers
        .iter()
        .map(|l| {
            Arc::new(StoredTar {
                sink: sink.clone(),
                id: l.digest,
            }) as Arc<dyn LayerSource>
        })
        .collect();
    let docker = manifest.media_type.as_deref() == Some(media_types::DOCKER_MANIFEST);
    let opts = ImageOptions {
        compression,
        media: crate::export::media(docker),
        annotations: manifest.annotations.clone(),
        ..ImageOptions::default()
    };
    let image = strata_image::build_image(config, &sources, &opts, sink.as_ref())?;
    Ok(image.manifest_bytes)
}

/// A stored uncompressed layer (a layer directory or a tar blob), whose digest is its
/// diffID.
struct StoredTar {
    sink: Arc<StoreSink>,
    id: Digest,
}

impl LayerSource for StoredTar {
    fn layer_id(&self) -> Digest {
        self.id
    }

    fn write_tar(&self, w: &mut dyn Write, _epoch: Option<i64>) -> std::io::Result<Digest> {
        let mut tar = self.sink.open(&self.id)?;
        strata_image::hash_written(w, |w| std::io::copy(&mut tar, w).map(|_| ()))
    }
}

/// Pushes a manifest whose blobs are in the store (or are stored layers, streamed as
/// uncompressed tars). Returns the pushed digest.
pub fn push_stored(
    store: &Store,
    dest: &Reference,
    manifest_bytes: &[u8],
    opts: &registry::TransferOptions,
) -> anyhow::Result<Digest> {
    push_stored_with(store, dest, manifest_bytes, opts, &|_| Ok(()))
}

/// [`push_stored`], where `fetch` brings a blob the store lacks into it before it is
/// uploaded (an imported cache's blob whose mount the registry refused).
pub fn push_stored_with(
    store: &Store,
    dest: &Reference,
    manifest_bytes: &[u8],
    opts: &registry::TransferOptions,
    fetch: &(dyn Fn(&Digest) -> anyhow::Result<()> + Sync),
) -> anyhow::Result<Digest> {
    let layers = Arc::new(strata_snapshot::Layers::new(store.root(), store.tmp_dir())?);
    let sink = StoreSink(store.clone(), layers);
    let client = registry::client()?;
    let media_type = registry::manifest_media_type(manifest_bytes);
    let open = |d: &Digest| {
        if !sink.has(d) {
            fetch(d).map_err(|e| std::io::Error::other(format!("{e:#}")))?;
        }
        sink.open(d)
    };
    let digest = registry::push(
        &client,
        store,
        dest,
        &media_type,
        manifest_bytes,
        &open,
        opts,
    )?;
    Ok(digest)
}

/// A chunk size as `gc` reads sizes (`16M`, `64KiB`, `1MB`, `4096`), above zero.
fn parse_size(s: &str) -> Result<u64, String> {
    match super::gc_auto::parse_size(s) {
        Ok(0) => Err(format!("{s:?}: a chunk holds at least one byte")),
        Ok(n) => Ok(n),
        Err(e) => Err(format!("{e:#}")),
    }
}
