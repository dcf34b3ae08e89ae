//! Sharing the cache across machines, the solver's half: records imported from an
//! exported cache answer lookups the local store misses, every record a solve uses is
//! remembered for export, and layers of imported records are fetched only when an op
//! reads them (a hit whose layers nothing reads is never downloaded).
//!
//! Where imported layers come from (an OCI layout, a registry) is the caller's
//! [`LayerFetcher`]; this module never knows the format.

use std::collections::{BTreeMap, HashMap};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};

use strata_digest::Digest;
use strata_scheduler::{
    BoxFuture, CacheMap, CachePolicy, CacheRecord, Claimed, Context, Op, OpError,
};
use strata_snapshot::{Chain, Layers};

use crate::output::StoreCache;
use crate::Output;

/// Imported layers fetched at once.
pub const FETCH_PARALLELISM: usize = 4;

/// Makes imported layers present in the store. Called from blocking threads, possibly
/// for the same layer at once (the fetcher serialises per layer).
pub trait LayerFetcher: Send + Sync {
    fn fetch(&self, diff_id: &Digest) -> Result<(), OpError>;
}

/// A cache record as exported and imported: the result's layers and its effective key.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SharedRecord {
    pub chain: Chain,
    pub key: Digest,
    pub description: String,
}

/// What a solve shares: imported records (by cache key) with their fetcher, and the
/// records the solve used (for `--cache-to`).
pub struct CacheSharing {
    imported: HashMap<Digest, SharedRecord>,
    fetcher: Option<Arc<dyn LayerFetcher>>,
    used: Mutex<BTreeMap<Digest, SharedRecord>>,
    /// Imported hits whose layers were not all in the store: recorded in the store's
    /// cache once they are ([`CacheSharing::record_fetched`]), so the store never holds
    /// a record whose layers were never fetched.
    pending: Mutex<Vec<(Digest, SharedRecord)>>,
}

impl std::fmt::Debug for CacheSharing {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CacheSharing")
            .field("imported", &self.imported.len())
            .field("used", &self.lock().len())
            .finish_non_exhaustive()
    }
}

impl CacheSharing {
    /// `imported` records answer misses; their layers come from `fetcher` when read.
    pub fn new(
        imported: HashMap<Digest, SharedRecord>,
        fetcher: Option<Arc<dyn LayerFetcher>>,
    ) -> Self {
        CacheSharing {
            imported,
            fetcher,
            used: Mutex::new(BTreeMap::new()),
            pending: Mutex::new(Vec::new()),
        }
    }

    /// Every record the solve looked up with a hit or recorded, by key.
    pub fn used(&self) -> BTreeMap<Digest, SharedRecord> {
        self.lock().clone()
    }

    /// Makes every layer of `chain` present, fetching the missing ones
    /// [`FETCH_PARALLELISM`] at a time (blocking).
    pub fn ensure(&self, layers: &Layers, chain: &Chain) -> Result<(), OpError> {
        let mut missing: Vec<Digest> = chain.0.iter().filter(|d| !layers.has(d)).copied().collect();
        missing.sort();
        missing.dedup();
        if missing.is_empty() {
            return Ok(());
        }
        let Some(fetcher) = &self.fetcher else {
            return Err(OpError::new(format!(
                "layer {} is not in the store",
                missing[0]
            )));
        };
        let next = AtomicUsize::new(0);
        let failed: Mutex<Option<OpError>> = Mutex::new(None);
        std::thread::scope(|s| {
            for _ in 0..FETCH_PARALLELISM.min(missing.len()) {
                s.spawn(|| {
                    while let Some(d) = missing.get(next.fetch_add(1, Ordering::Relaxed)) {
                        if let Err(e) = fetcher.fetch(d) {
                            failed
                                .lock()
                                .unwrap_or_else(|e| e.into_inner())
                                .get_or_insert(e);
                            return;
                        }
                    }
                });
            }
        });
        match failed.into_inner().unwrap_or_else(|e| e.into_inner()) {
            Some(e) => Err(e),
            None => Ok(()),
        }
    }

    /// Records in the store's cache the imported hits whose layers are all present by
    /// now (fetched for a step or an output); the others stay imported-only.
    pub fn record_fetched(&self, store: &strata_store::Store, layers: &Arc<Layers>) {
        let local = StoreCache {
            store: store.clone(),
            layers: layers.clone(),
        };
        let mut pending = self.pending.lock().unwrap_or_else(|e| e.into_inner());
        pending.retain(|(key, rec)| {
            if !rec.chain.0.iter().all(|d| layers.has(d)) {
                return true;
            }
            local.put(key, &imported_hit(rec), &rec.description);
            false
        });
    }

    fn note(&self, key: &Digest, rec: SharedRecord) {
        self.lock().insert(*key, rec);
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, BTreeMap<Digest, SharedRecord>> {
        self.used.lock().unwrap_or_else(|e| e.into_inner())
    }
}

/// The store's cache, then the imported records; remembers what the solve used.
pub(crate) struct SharingCache {
    pub local: StoreCache,
    pub sharing: Arc<CacheSharing>,
}

impl CacheMap<Output> for SharingCache {
    fn get(&self, key: &Digest) -> Option<CacheRecord<Output>> {
        if let Some((hit, description)) = self.local.lookup(key) {
            if let Output::Fs(chain) = &hit.value {
                self.sharing.note(
                    key,
                    SharedRecord {
                        chain: chain.clone(),
                        key: hit.key,
                        description,
                    },
                );
            }
            return Some(hit);
        }
        let rec = self.sharing.imported.get(key)?.clone();
        let hit = imported_hit(&rec);
        // Recorded locally too, once its layers are here: it then hits without
        // `--cache-from`.
        if rec.chain.0.iter().all(|d| self.local.layers.has(d)) {
            self.local.put(key, &hit, &rec.description);
        } else {
            let mut pending = self
                .sharing
                .pending
                .lock()
                .unwrap_or_else(|e| e.into_inner());
            pending.push((*key, rec.clone()));
        }
        self.sharing.note(key, rec);
        Some(hit)
    }

    /// The store's claim: builds with and without `--cache-from` exclude each other.
    fn claim<'a>(&'a self, key: &'a Digest) -> BoxFuture<'a, Result<Claimed, OpError>> {
        self.local.claim(key)
    }

    fn put(&self, key: &Digest, record: &CacheRecord<Output>, description: &str) {
        self.local.put(key, record, description);
        if let Output::Fs(chain) = &record.value {
            self.sharing.note(
                key,
                SharedRecord {
                    chain: chain.clone(),
                    key: record.key,
                    description: description.to_string(),
                },
            );
        }
    }
}

fn imported_hit(rec: &SharedRecord) -> CacheRecord<Output> {
    CacheRecord {
        value: Output::Fs(rec.chain.clone()),
        key: rec.key,
    }
}

/// Runs `inner` once the layers of its inputs are present (before `exec`): an imported hit's layers are
/// fetched when (and only when) a step reads them.
pub(crate) struct FetchInputs {
    pub inner: Arc<dyn Op<Output>>,
    pub store: strata_store::Store,
    pub layers: Arc<Layers>,
    pub sharing: Arc<CacheSharing>,
}

impl FetchInputs {
    async fn ready(&self, cx: &Context, inputs: &[Output]) -> Result<(), OpError> {
        let missing: Vec<Chain> = inputs
            .iter()
            .filter_map(Output::chain)
            .filter(|c| !c.0.iter().all(|d| self.layers.has(d)))
            .cloned()
            .collect();
        if missing.is_empty() {
            return Ok(());
        }
        let what = "importing cached layers";
        let n = missing
            .iter()
            .flat_map(|c| c.0.iter())
            .filter(|d| !self.layers.has(d))
            .count() as u64;
        cx.progress(what, 0, Some(n));
        let (layers, sharing) = (self.layers.clone(), self.sharing.clone());
        let store = self.store.clone();
        // All inputs' layers at once, so they download in parallel.
        let all = Chain(missing.into_iter().flat_map(|c| c.0).collect());
        crate::op::blocking(move || {
            sharing.ensure(&layers, &all)?;
            sharing.record_fetched(&store, &layers);
            Ok(())
        })
        .await?;
        cx.progress(what, n, Some(n));
        Ok(())
    }
}

impl Op<Output> for FetchInputs {
    fn cache_policy(&self) -> CachePolicy {
        self.inner.cache_policy()
    }

    fn content_key<'a>(
        &'a self,
        cx: &'a Context,
        inputs: &'a [Output],
    ) -> BoxFuture<'a, Result<Option<Digest>, OpError>> {
        // Content keys read local directories and the layer lists of filesystem inputs,
        // never their files: no fetch here.
        self.inner.content_key(cx, inputs)
    }

    fn exec<'a>(
        &'a self,
        cx: &'a Context,
        inputs: &'a [Output],
    ) -> BoxFuture<'a, Result<Output, OpError>> {
        Box::pin(async move {
            self.ready(cx, inputs).await?;
            self.inner.exec(cx, inputs).await
        })
    }
}

#[cfg(test)]
mod tests {
    use std::collections::HashMap;
    use std::io::Read;
    use std::sync::atomic::AtomicBool;

    use strata_progress::NullReporter;
    use strata_scheduler::CancellationToken;
    use strata_store::Store;

    use super::*;

    /// Makes the requested layer by applying an empty tar (the only layer it can make).
    struct EmptyFetcher {
        layers: Arc<Layers>,
        fetched: Mutex<Vec<Digest>>,
    }

    impl LayerFetcher for EmptyFetcher {
        fn fetch(&self, diff_id: &Digest) -> Result<(), OpError> {
            self.fetched.lock().unwrap().push(*diff_id);
            let applied = self
                .layers
                .apply(std::io::repeat(0).take(1024), None)
                .map_err(OpError::new)?;
            assert_eq!(applied.diff_id, *diff_id);
            Ok(())
        }
    }

    /// Fails unless its input's layers are present when it runs.
    struct NeedsLayers(Arc<Layers>, AtomicBool);

    impl Op<Output> for NeedsLayers {
        fn exec<'a>(
            &'a self,
            _: &'a Context,
            inputs: &'a [Output],
        ) -> BoxFuture<'a, Result<Output, OpError>> {
            let ok = inputs[0].chain().unwrap().0.iter().all(|d| self.0.has(d));
            self.1.store(ok, Ordering::SeqCst);
            Box::pin(async move { Ok(inputs[0].clone()) })
        }
    }

    #[test]
    fn imported_hits_are_recorded_and_their_layers_fetched_only_for_exec() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(dir.path()).unwrap();
        let layers = Arc::new(Layers::new(store.root(), store.tmp_dir()).unwrap());
        // The empty layer's diffID, from a scratch store.
        let other = tempfile::tempdir().unwrap();
        let scratch = Store::open(other.path()).unwrap();
        let empty = Layers::new(scratch.root(), scratch.tmp_dir())
            .unwrap()
            .apply(std::io::repeat(0).take(1024), None)
            .unwrap()
            .diff_id;
        assert!(!layers.has(&empty));

        let key = strata_digest::sha256(b"definition key");
        let result = strata_digest::sha256(b"effective key");
        let chain = Chain(vec![empty]);
        let imported = HashMap::from([(
            key,
            SharedRecord {
                chain: chain.clone(),
                key: result,
                description: "[1/2] RUN x".into(),
            },
        )]);
        let fetcher = Arc::new(EmptyFetcher {
            layers: layers.clone(),
            fetched: Mutex::new(Vec::new()),
        });
        let sharing = Arc::new(CacheSharing::new(imported, Some(fetcher.clone())));
        let cache = SharingCache {
            local: StoreCache {
                store: store.clone(),
                layers: layers.clone(),
            },
            sharing: sharing.clone(),
        };

        // A miss everywhere is a miss; the imported key hits without fetching.
        assert!(cache.get(&strata_digest::sha256(b"other")).is_none());
        let hit = cache.get(&key).expect("imported hit");
        assert_eq!(
            (hit.value.clone(), hit.key),
            (Output::Fs(chain.clone()), result)
        );
        assert!(fetcher.fetched.lock().unwrap().is_empty());
        assert_eq!(sharing.used()[&key].description, "[1/2] RUN x");
        // Not recorded locally while its layers are not here: the store never holds a
        // record it cannot serve.
        let recorded = |store: &Store| {
            store
                .cache_records()
                .unwrap()
                .iter()
                .any(|(k, _)| *k == key)
        };
        assert!(!recorded(&store));

        // A step reading it fetches the layer before it runs, once.
        let needs = Arc::new(NeedsLayers(layers.clone(), AtomicBool::new(false)));
        let op = FetchInputs {
            inner: needs.clone(),
            store: store.clone(),
            layers: layers.clone(),
            sharing: sharing.clone(),
        };
        let cx = Context::new(
            result,
            "step",
            Arc::new(NullReporter),
            CancellationToken::new(),
        );
        let rt = tokio::runtime::Runtime::new().unwrap();
        let inputs = [hit.value.clone()];
        assert_eq!(rt.block_on(op.content_key(&cx, &inputs)).unwrap(), None);
        assert!(
            fetcher.fetched.lock().unwrap().is_empty(),
            "content keys fetch nothing"
        );
        rt.block_on(op.exec(&cx, &inputs)).unwrap();
        assert!(
            needs.1.load(Ordering::SeqCst),
            "the layers were there for exec"
        );
        assert_eq!(*fetcher.fetched.lock().unwrap(), vec![empty]);
        rt.block_on(op.exec(&cx, &inputs)).unwrap();
        assert_eq!(fetcher.fetched.lock().unwrap().len(), 1, "fetched once");

        // Now it is recorded and the local store answers; a solve's put is remembered
        // too.
        assert!(recorded(&store));
        assert!(cache.local.get(&key).is_some());
        let put_key = strata_digest::sha256(b"put");
        cache.put(&put_key, &hit, "[2/2] COPY y");
        assert_eq!(sharing.used()[&put_key].description, "[2/2] COPY y");
    }
}
