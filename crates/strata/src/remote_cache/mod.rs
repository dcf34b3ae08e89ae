//! Sharing the build cache across machines: `--cache-to` exports the cache records a
//! build used (definition and content keys → results) with their layers as an OCI
//! artifact (a local OCI layout, a registry, or inline in the image); `--cache-from`
//! imports such artifacts, fetching a layer only when a step or the export needs it.

mod export;
mod format;
mod import;
mod mounts;
pub mod spec;
mod stream;

use std::collections::{BTreeMap, HashMap, HashSet};
use std::sync::Arc;
use std::time::Instant;

use anyhow::Result;
use clap::Args;
use strata_digest::Digest;
use strata_oci::ImageConfig;
use strata_ops::{CacheSharing, LayerFetcher};
use strata_snapshot::{Chain, Layers};
use strata_store::Store;

use self::format::{LayerEntry, INLINE_FIELD};
use self::import::Fetcher;
use self::spec::{CacheTo, ExportOptions, Mode};

/// The `strata build` flags of this module.
#[derive(Debug, Args, Clone, Default)]
pub struct CacheIoArgs {
    /// Export the build cache: `type=local,dest=DIR`, `type=registry,ref=REF` or
    /// `type=inline`, with `mode=min|max`, `compression=gzip|zstd`,
    /// `cache-mounts=true`, `cache-mounts-max=SIZE` (repeatable).
    #[arg(long = "cache-to", value_name = "SPEC")]
    pub cache_to: Vec<String>,
    /// Import a build cache: `type=local,src=DIR` or `type=registry,ref=REF` (a cache
    /// artifact or an image built with `--cache-to type=inline`; repeatable).
    #[arg(long = "cache-from", value_name = "SPEC")]
    pub cache_from: Vec<String>,
}

type Specs = (Vec<CacheTo>, Vec<spec::CacheFrom>);

fn parse(args: &CacheIoArgs) -> Result<Specs, crate::diagnostics::Usage> {
    let to = args.cache_to.iter().map(|s| spec::parse_to(s));
    let from = args.cache_from.iter().map(|s| spec::parse_from(s));
    Ok((
        to.collect::<Result<_, _>>()?,
        from.collect::<Result<_, _>>()?,
    ))
}

/// Checks the flags before any work, so a typo fails fast.
pub fn check(args: &CacheIoArgs) -> Result<(), crate::diagnostics::Usage> {
    parse(args).map(drop)
}

/// One build's cache import and export.
pub struct Session {
    to: Vec<CacheTo>,
    store: Store,
    layers: Arc<Layers>,
    fetcher: Option<Arc<Fetcher>>,
    sharing: Option<Arc<CacheSharing>>,
    /// The cache mounts the build uses: store name → id.
    mounts: BTreeMap<String, String>,
    quiet: bool,
}

/// `cache-mounts-max` when not given.
const DEFAULT_CACHE_MOUNTS_MAX: u64 = 1 << 30;

impl Session {
    /// Parses the flags (a typo fails before any work) and reads every `--cache-from`.
    /// `build` is the graph and target, for the cache mounts its steps use.
    pub fn start(
        args: &CacheIoArgs,
        (store, layers): (&Store, &Arc<Layers>),
        (graph, target): (&strata_graph::Graph, strata_graph::VertexId),
        quiet: bool,
    ) -> Result<Self> {
        let (to, from) = parse(args)?;
        let mut session = Session {
            to,
            store: store.clone(),
            layers: layers.clone(),
            fetcher: None,
            sharing: None,
            mounts: mounts::used(graph, target),
            quiet,
        };
        if session.to.is_empty() && from.is_empty() {
            return Ok(session);
        }
        let imported = Arc::new(import::load(&from, &crate::registry::client, quiet));
        let records: HashMap<Digest, strata_ops::SharedRecord> = imported.records.clone();
        let fetcher = Arc::new(Fetcher::new(store.clone(), layers.clone(), imported));
        session.sharing = Some(Arc::new(CacheSharing::new(
            records,
            Some(fetcher.clone() as Arc<dyn LayerFetcher>),
        )));
        match fetcher.restore_mounts(&session.mounts) {
            Ok(ids) if !ids.is_empty() && !quiet => {
                eprintln!("restored cache mounts: {}", ids.join(", "))
            }
            Ok(_) => {}
            Err(e) => eprintln!("warning: --cache-from: {e:#}"),
        }
        session.fetcher = Some(fetcher);
        Ok(session)
    }

    /// Whether `--cache-to type=inline` was asked for.
    pub fn inlines(&self) -> bool {
        self.to.contains(&CacheTo::Inline)
    }

    /// What the solver shares (None without cache flags).
    pub fn sharing(&self) -> Option<Arc<CacheSharing>> {
        self.sharing.clone()
    }

    /// Makes the final image's layers present (imported hits are fetched here), and
    /// records the imported hits whose layers are now all in the store.
    pub fn ensure(&self, chain: &Chain) -> Result<()> {
        match &self.sharing {
            Some(s) => {
                s.ensure(&self.layers, chain)?;
                s.record_fetched(&self.store, &self.layers);
                Ok(())
            }
            None => Ok(()),
        }
    }

    /// Whether some layer of `chain` is only in an imported cache (not fetched yet).
    pub fn is_remote(&self, chain: &Chain) -> bool {
        self.sharing.is_some() && !chain.0.iter().all(|d| self.layers.has(d))
    }

    /// The layers of `chain` that only an imported cache holds, when each of them has a
    /// blob there compressed as `compression` (an image of them can then be pushed
    /// without fetching them); None when one has not. Records which registry
    /// repository holds each such blob, so that the push mounts it from there.
    pub fn remote_layers(
        &self,
        chain: &Chain,
        compression: &strata_image::Compression,
    ) -> Result<Option<crate::export::RemoteLayers>> {
        let Some(fetcher) = &self.fetcher else {
            return Ok(None);
        };
        let want = (
            compression.name().to_string(),
            compression.level().unwrap_or(0),
        );
        let mut remote = crate::export::RemoteLayers::new();
        for id in chain.layers().iter().filter(|d| !self.layers.has(d)) {
            let Some(layer) = fetcher.imported.layers.get(id) else {
                return Ok(None);
            };
            let blob = match &layer.entry.blob {
                _ if layer.entry.empty => None,
                Some(b)
                    if layer.compression.as_ref() == Some(&want)
                        && b.media_type.ends_with(&format!("+{}", want.0)) =>
                {
                    Some(b.clone())
                }
                _ => return Ok(None),
            };
            if let (Some(b), Some((registry, repository))) =
                (&blob, fetcher.imported.origins[layer.origin].repository())
            {
                self.store
                    .record_blob_origin(&b.digest, &registry, &repository)?;
            }
            remote.insert(
                *id,
                crate::export::RemoteLayer {
                    blob,
                    compression: want.clone(),
                },
            );
        }
        Ok(Some(remote))
    }

    /// Copies the imported blob `d` into the store (without extracting it), when an
    /// imported cache lists it: for a push whose mount was refused.
    pub fn fetch_blob(&self, d: &Digest) -> Result<()> {
        let Some(fetcher) = &self.fetcher else {
            return Ok(());
        };
        let layer = fetcher
            .imported
            .layers
            .iter()
            .find(|(_, l)| l.entry.blob.as_ref().is_some_and(|b| b.digest == *d));
        if let Some((diff_id, _)) = layer {
            fetcher.blob_of(diff_id)?;
        }
        Ok(())
    }

    /// `--cache-to type=inline`: the mode=min records into the image config, their
    /// layers named by diffID (an importer finds the blobs in the image itself). Not
    /// with SOURCE_DATE_EPOCH: the image then holds layers with rewritten mtimes, not
    /// the cached ones.
    pub fn inline(
        &self,
        config: &mut ImageConfig,
        chain: &Chain,
        source_date_epoch: Option<i64>,
    ) -> Result<()> {
        let Some(sharing) = self
            .sharing
            .as_ref()
            .filter(|_| self.to.contains(&CacheTo::Inline))
        else {
            return Ok(());
        };
        if source_date_epoch.is_some() {
            eprintln!(
                "warning: --cache-to type=inline is ignored with SOURCE_DATE_EPOCH (the image's layers have rewritten timestamps); use type=registry"
            );
            return Ok(());
        }
        let records = export::select(sharing.used(), Mode::Min, chain);
        let cache = export::config(&records, None, |id| {
            Ok(Some(LayerEntry {
                diff_id: *id,
                blob: None,
                empty: crate::export::is_empty_layer(&self.layers, id),
            }))
        })?;
        config
            .extra
            .insert(INLINE_FIELD.into(), serde_json::to_value(&cache)?);
        Ok(())
    }

    /// Every `--cache-to` but inline (done by [`Session::inline`]). A failed export
    /// fails the build, unless its spec says `ignore-error=true` (then a warning).
    pub fn export(&self, chain: &Chain) -> Result<()> {
        let mut pushed: HashMap<(String, String), HashSet<Digest>> = HashMap::new();
        for to in &self.to {
            let (opts, what) = match to {
                CacheTo::Inline => continue,
                CacheTo::Local { dest, opts } => (opts, dest.display().to_string()),
                CacheTo::Registry { reference, opts } => (opts, reference.to_string()),
            };
            match self.export_to(to, opts, chain, &mut pushed) {
                Ok(()) => {}
                Err(e) if opts.ignore_error => {
                    eprintln!("warning: exporting the cache to {what}: {e:#}")
                }
                Err(e) => return Err(e.context(format!("exporting the cache to {what}"))),
            }
        }
        Ok(())
    }

    /// One export; `pushed` has the blobs each registry repository is known to hold.
    fn export_to(
        &self,
        to: &CacheTo,
        opts: &ExportOptions,
        chain: &Chain,
        pushed: &mut HashMap<(String, String), HashSet<Digest>>,
    ) -> Result<()> {
        let (Some(sharing), Some(fetcher)) = (&self.sharing, &self.fetcher) else {
            return Ok(());
        };
        let start = Instant::now();
        let mounts = if opts.cache_mounts {
            let max = opts.cache_mounts_max.unwrap_or(DEFAULT_CACHE_MOUNTS_MAX);
            mounts::export(&self.store, &self.mounts, max, self.quiet)?
        } else {
            Vec::new()
        };
        let records = export::select(sharing.used(), opts.mode, chain);
        let repo = match to {
            CacheTo::Registry { reference, .. } => {
                Some((reference.registry.clone(), reference.repository.clone()))
            }
            _ => None,
        };
        let known = pushed
            .entry(repo.clone().unwrap_or_default())
            .or_insert_with(|| {
                repo.as_ref()
                    .map(|r| fetcher.imported.blobs_in(r))
                    .unwrap_or_default()
            });
        let sources = export::Sources {
            store: &self.store,
            layers: &self.layers,
            fetcher: Some(fetcher),
        };
        let (manifest, _, blobs) =
            export::build(&sources, &records, opts.compression, known, mounts)?;
        let (moved, what) = match to {
            CacheTo::Local { dest, .. } => (
                export::write_layout(&self.store, dest, &manifest)?,
                dest.display().to_string(),
            ),
            CacheTo::Registry { reference, .. } => {
                let client = crate::registry::client()?;
                let n = export::push(&client, &self.store, reference, &manifest, known)?;
                (n, reference.to_string())
            }
            CacheTo::Inline => return Ok(()),
        };
        if !self.quiet {
            eprintln!(
                "exported cache to {what}: {} records, {} blobs ({moved} written) in {:.3}s",
                records.len(),
                blobs.len(),
                start.elapsed().as_secs_f64()
            );
        }
        Ok(())
    }
}
