//! Registries and the local store: pull an image (manifest, config, layers) into the
//! store, push a stored or freshly built image. The wire protocol is
//! `strata-registry`'s; this module knows the store.

use std::io::Read;
use std::num::{NonZeroU32, NonZeroU64, NonZeroUsize};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};

use anyhow::{bail, Context as _, Result};
use strata_digest::Digest;
use strata_oci::{
    media_types, Descriptor, ImageConfig, ImageIndex, ImageManifest, Platform, Reference,
};
use strata_progress::Reporter;
use strata_registry::{Access, Client};
use strata_store::{ImageRecord, Store};

use crate::progress::transfer::{counted, Transfer};

/// Layers downloaded at once.
pub const PULL_PARALLELISM: usize = 4;
/// Blobs uploaded at once (the default).
pub const PUSH_PARALLELISM: usize = 4;

/// How the resolver reaches registries during a build.
#[derive(Clone)]
pub struct Remote {
    pub client: Client,
    /// `--pull`: check the registry even when the store has the tag.
    pub always: bool,
    /// The build's display: a pull shows as `[internal] pull REF` with each blob.
    pub reporter: Arc<dyn Reporter>,
}

/// The config file's `[transfer]` section.
#[derive(Debug, Default, Clone, serde::Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
pub struct TransferConfig {
    /// Blobs uploaded at once (`--push-parallelism` overrides it).
    pub push_parallelism: Option<NonZeroUsize>,
    /// Seconds without progress before a connection counts as stalled.
    pub timeout: Option<NonZeroU64>,
    /// Tries per request.
    pub attempts: Option<NonZeroU32>,
}

/// Blobs uploaded at once: the flag, else the config's, else [`PUSH_PARALLELISM`].
pub fn push_parallelism(flag: Option<usize>) -> Result<usize> {
    Ok(match flag {
        Some(n) => n.max(1),
        None => crate::config::get()?
            .transfer
            .push_parallelism
            .map_or(PUSH_PARALLELISM, NonZeroUsize::get),
    })
}

pub fn client() -> Result<Client> {
    let mut opts = crate::config::client_options()?;
    let t = &crate::config::get()?.transfer;
    if let Some(s) = t.timeout {
        opts.timeout = std::time::Duration::from_secs(s.get());
    }
    if let Some(n) = t.attempts {
        opts.attempts = n.get();
    }
    env_overrides(&mut opts)?;
    Ok(Client::new(opts)?)
}

/// `STRATA_REGISTRY_TIMEOUT` (seconds without progress before a connection counts as
/// stalled and is retried) and `STRATA_REGISTRY_ATTEMPTS` (tries per request), over
/// the config file's `[transfer]`.
fn env_overrides(opts: &mut strata_registry::ClientOptions) -> Result<()> {
    if let Some(v) = std::env::var_os("STRATA_REGISTRY_TIMEOUT") {
        let secs: f64 = v
            .to_str()
            .and_then(|s| s.parse().ok())
            .filter(|s: &f64| *s > 0.0 && s.is_finite())
            .with_context(|| format!("STRATA_REGISTRY_TIMEOUT={v:?}: expected seconds (> 0)"))?;
        opts.timeout = std::time::Duration::from_secs_f64(secs);
    }
    if let Some(v) = std::env::var_os("STRATA_REGISTRY_ATTEMPTS") {
        opts.attempts = v
            .to_str()
            .and_then(|s| s.parse().ok())
            .filter(|n| *n >= 1)
            .with_context(|| format!("STRATA_REGISTRY_ATTEMPTS={v:?}: expected a count (>= 1)"))?;
    }
    Ok(())
}

/// How a pull or push reports progress and how many blobs move at once.
#[derive(Clone)]
pub struct TransferOptions {
    pub reporter: Arc<dyn Reporter>,
    pub parallelism: usize,
    /// Upload blobs larger than this in chunks of this size (`PATCH`); `None`: one
    /// `PUT` each (chunks only when the registry refuses it).
    pub chunk: Option<u64>,
}

impl TransferOptions {
    pub fn new(reporter: Arc<dyn Reporter>, parallelism: usize) -> Self {
        TransferOptions {
            reporter,
            parallelism: parallelism.max(1),
            chunk: None,
        }
    }
}

/// Runs `f` on every item, `n` at a time; the first error stops the rest (the items
/// already started finish) and is returned.
fn each_parallel<T: Sync>(
    items: &[T],
    n: usize,
    f: impl Fn(&T) -> Result<()> + Sync,
) -> Result<()> {
    let next = AtomicUsize::new(0);
    let first_error: Mutex<Option<anyhow::Error>> = Mutex::new(None);
    std::thread::scope(|s| {
        for _ in 0..n.min(items.len()) {
            s.spawn(|| loop {
                let Some(item) = items.get(next.fetch_add(1, Ordering::Relaxed)) else {
                    return;
                };
                if first_error.lock().expect("lock").is_some() {
                    return;
                }
                if let Err(e) = f(item) {
                    first_error.lock().expect("lock").get_or_insert(e);
                    return;
                }
            });
        }
    });
    match first_error.into_inner().expect("lock") {
        Some(e) => Err(e),
        None => Ok(()),
    }
}

/// Pulls `r` for `platform` into the store and names it `r`. Blobs already stored are
/// not downloaded again; layers come `PULL_PARALLELISM` at a time, each with its
/// progress. The repository is recorded as an origin of every blob (for mounts).
pub fn pull(
    store: &Store,
    client: &Client,
    r: &Reference,
    platform: &Platform,
    reporter: Arc<dyn Reporter>,
) -> Result<ImageRecord> {
    // The lock a build's `FROM` pull takes too: one download of each blob at a time,
    // the waiter then fetching only the manifests (its blobs are stored by then).
    let _pulling = store.lock(&format!("pull {r}"))?;
    let t = Transfer::start(reporter, "pull", &r.to_string());
    t.finish(pull_image(store, client, r, platform, &t))
}

/// [`pull`] for a build's `FROM`: shown as the `[internal] pull REF` step.
pub fn pull_for_build(
    store: &Store,
    r: &Reference,
    platform: &Platform,
    remote: &Remote,
) -> Result<ImageRecord> {
    let t = Transfer::start(remote.reporter.clone(), "internal", &format!("pull {r}"));
    t.finish(pull_image(store, &remote.client, r, platform, &t))
}

fn pull_image(
    store: &Store,
    client: &Client,
    r: &Reference,
    platform: &Platform,
    t: &Transfer,
) -> Result<ImageRecord> {
    let top = client.get_manifest(r)?;
    store.put_bytes(&top.bytes)?;
    let (manifest_digest, media_type, bytes) = if media_types::is_index(&top.media_type) {
        let index: ImageIndex = serde_json::from_slice(&top.bytes)
            .with_context(|| format!("{r}: invalid image index"))?;
        let desc = index.select(platform).with_context(|| {
            format!("{r}: the image has no manifest for the platform {platform}")
        })?;
        let pinned = Reference {
            digest: Some(desc.digest),
            ..r.clone()
        };
        let m = client.get_manifest(&pinned)?;
        store.put_bytes(&m.bytes)?;
        (m.digest, m.media_type, m.bytes)
    } else {
        (top.digest, top.media_type, top.bytes)
    };
    if !media_types::is_manifest(&media_type) {
        bail!("{r}: unsupported manifest type {media_type:?}");
    }
    let manifest: ImageManifest =
        serde_json::from_slice(&bytes).with_context(|| format!("{r}: invalid image manifest"))?;
    let mut blobs: Vec<&Descriptor> = vec![&manifest.config];
    for l in &manifest.layers {
        if !blobs.iter().any(|b| b.digest == l.digest) {
            blobs.push(l);
        }
    }
    let mut missing = Vec::new();
    for b in &blobs {
        if !store.has_blob(&b.digest)? {
            missing.push(*b);
        }
    }
    each_parallel(&missing, PULL_PARALLELISM, |d| {
        let meter = t.blob(&d.digest, d.size);
        // The store's writer hashes what it writes and its commit checks the digest.
        let w = client.get_blob_hashed_by_writer(r, &d.digest, d.size, || {
            Ok(counted(
                &meter,
                store.blob_writer().map_err(std::io::Error::other)?,
            ))
        })?;
        w.inner.commit(Some(&d.digest)).map_err(|e| match e {
            strata_store::StoreError::DigestMismatch { .. } => {
                anyhow::Error::from(e).context(format!(
                    "{}@{}: content does not match its digest",
                    r.name(),
                    d.digest
                ))
            }
            e => e.into(),
        })?;
        Ok(())
    })?;
    for b in &blobs {
        store.record_blob_origin(&b.digest, &r.registry, &r.repository)?;
    }
    let config: ImageConfig = serde_json::from_slice(&store.read_blob(&manifest.config.digest)?)
        .with_context(|| format!("{r}: invalid image config"))?;
    let rec = ImageRecord {
        manifest: manifest_digest,
        config: manifest.config.digest,
        media_type,
        size: manifest.config.size + manifest.layers.iter().map(|l| l.size).sum::<u64>(),
        created: config.created.clone(),
        platform: Platform::new(&config.os, &config.architecture, config.variant.as_deref())
            .to_string(),
    };
    store.put_image(&r.to_string(), &rec)?;
    Ok(rec)
}

/// Where a blob to push comes from.
pub type OpenBlob<'a> = dyn Fn(&Digest) -> std::io::Result<Box<dyn Read + Send>> + Sync + 'a;

/// Pushes an image (its manifest's bytes, config and layers) to `dest`: for each blob
/// (`opts.parallelism` at once) HEAD it, else mount it from another repository of the
/// same registry that the store knows holds it, else upload it; the manifest last, so
/// the registry never holds it without its blobs. Returns the manifest digest.
pub fn push(
    client: &Client,
    store: &Store,
    dest: &Reference,
    manifest_media_type: &str,
    manifest_bytes: &[u8],
    open: &OpenBlob<'_>,
    opts: &TransferOptions,
) -> Result<Digest> {
    let t = Transfer::start(opts.reporter.clone(), "push", &dest.to_string());
    let pushed = (|| {
        let manifest: ImageManifest = serde_json::from_slice(manifest_bytes)
            .with_context(|| format!("{dest}: invalid image manifest"))?;
        let mut blobs: Vec<&Descriptor> = Vec::new();
        for d in manifest.layers.iter().chain([&manifest.config]) {
            if !blobs.iter().any(|b| b.digest == d.digest) {
                blobs.push(d);
            }
        }
        each_parallel(&blobs, opts.parallelism, |d| {
            push_blob(client, store, dest, d, open, &t, opts.chunk)?;
            store.record_blob_origin(&d.digest, &dest.registry, &dest.repository)?;
            Ok(())
        })
        .map_err(|e| e.context(format!("pushing {dest}: the manifest was not pushed")))?;
        let reference = dest.tag.clone().unwrap_or_else(|| dest.reference_str());
        Ok(client.put_manifest(dest, &reference, manifest_media_type, manifest_bytes)?)
    })();
    t.finish(pushed)
}

/// One blob of a push: exists, mounted, or uploaded.
fn push_blob(
    client: &Client,
    store: &Store,
    dest: &Reference,
    d: &Descriptor,
    open: &OpenBlob<'_>,
    t: &Transfer,
    chunk: Option<u64>,
) -> Result<()> {
    if client.head_blob(dest, &d.digest, Access::Push)?.is_some() {
        t.note(&d.digest, "exists");
        return Ok(());
    }
    for from in store.blob_origins(&d.digest, &dest.registry)? {
        if from == dest.repository {
            continue;
        }
        // A refusal (or an error: no pull access there) falls back to the next, then
        // to an upload.
        if client.mount_blob(dest, &d.digest, &from).unwrap_or(false) {
            t.note(&d.digest, &format!("mounted from {from}"));
            return Ok(());
        }
    }
    let meter = t.blob(&d.digest, d.size);
    let digest = d.digest;
    let reopen = move || -> std::io::Result<Box<dyn Read + Send>> {
        Ok(Box::new(counted(&meter, open(&digest)?)))
    };
    match chunk {
        Some(c) if d.size > c => client.push_blob_chunked(dest, &d.digest, d.size, &reopen, c)?,
        _ => client.push_blob(dest, &d.digest, d.size, &reopen)?,
    }
    Ok(())
}

/// The media type a stored manifest declares (or OCI's).
pub fn manifest_media_type(bytes: &[u8]) -> String {
    #[derive(serde::Deserialize)]
    #[serde(rename_all = "camelCase")]
    struct Probe {
        media_type: Option<String>,
    }
    serde_json::from_slice::<Probe>(bytes)
        .ok()
        .and_then(|p| p.media_type)
        .unwrap_or_else(|| media_types::OCI_MANIFEST.to_string())
}
