//! `strata pull` and `strata push`.

use std::process::ExitCode;
use std::sync::Arc;

use anyhow::Context as _;
use strata_oci::{Platform, Reference};
use strata_store::Store;

use crate::cli::{PullArgs, PushArgs};
use crate::diagnostics::Usage;
use crate::export::StoreSink;
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
    let rec = registry::pull(&store, &client, &r, &platform, args.quiet)?;
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
    let store = crate::store::open(root)?;
    let rec = store
        .image(&src.to_string())?
        .with_context(|| format!("no such image in the local store: {}", args.name))?;
    let bytes = store.read_blob(&rec.manifest)?;
    let digest = push_stored(&store, &dest, &bytes, args.quiet)?;
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

/// Pushes a manifest whose blobs are in the store (or are stored layers, streamed as
/// uncompressed tars). Returns the pushed digest.
pub fn push_stored(
    store: &Store,
    dest: &Reference,
    manifest_bytes: &[u8],
    quiet: bool,
) -> anyhow::Result<strata_digest::Digest> {
    use strata_image::BlobSink as _;
    let layers = Arc::new(strata_snapshot::Layers::new(store.root(), store.tmp_dir())?);
    let sink = StoreSink(store.clone(), layers);
    let client = registry::client()?;
    let media_type = registry::manifest_media_type(manifest_bytes);
    let digest = registry::push(
        &client,
        dest,
        &media_type,
        manifest_bytes,
        &|d| sink.open(d),
        quiet,
    )?;
    Ok(digest)
}
