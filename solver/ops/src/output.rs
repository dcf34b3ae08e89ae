//! What a solved vertex yields, and how results are cached in the store.

use std::path::PathBuf;

use serde::{Deserialize, Serialize};
use strata_digest::{key, Digest};
use strata_scheduler::{BoxFuture, CacheMap, CacheRecord, Claimed, OpError};
use strata_snapshot::{Chain, Layers};
use strata_store::Store;

/// The result of a vertex.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum Output {
    /// A filesystem: stored layers, bottom to top.
    Fs(Chain),
    /// A directory on the client (a build context), with the paths it hides.
    Dir { path: PathBuf, ignore: Vec<String> },
}

impl Output {
    pub fn chain(&self) -> Option<&Chain> {
        match self {
            Output::Fs(c) => Some(c),
            Output::Dir { .. } => None,
        }
    }
}

/// The scheduler's cache, kept in the store's metadata database. A record whose layers
/// have gone (pruned) is a miss.
pub struct StoreCache {
    pub store: Store,
    pub layers: std::sync::Arc<Layers>,
}

#[derive(Serialize, Deserialize)]
struct Stored {
    output: Output,
    key: Digest,
}

fn now() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0)
}

impl StoreCache {
    /// [`CacheMap::get`], with the description the record was stored with.
    pub(crate) fn lookup(&self, k: &Digest) -> Option<(CacheRecord<Output>, String)> {
        let rec = self.store.cache_get(k).ok()??;
        let description = rec.description;
        let stored: Stored = serde_json::from_value(rec.value).ok()?;
        if let Output::Fs(chain) = &stored.output {
            // Pinned before the check: a concurrent collection keeps them, or has
            // already moved them away and this is a miss.
            crate::records::pin(&self.store, k, &crate::records::layers(chain.layers()));
            if !chain.0.iter().all(|d| self.layers.has(d)) {
                return None;
            }
        }
        let hit = CacheRecord {
            value: stored.output,
            key: stored.key,
        };
        Some((hit, description))
    }
}

impl CacheMap<Output> for StoreCache {
    fn get(&self, k: &Digest) -> Option<CacheRecord<Output>> {
        self.lookup(k).map(|(hit, _)| hit)
    }

    fn put(&self, k: &Digest, record: &CacheRecord<Output>, description: &str) {
        if matches!(record.value, Output::Dir { .. }) {
            return;
        }
        let value = serde_json::to_value(Stored {
            output: record.value.clone(),
            key: record.key,
        })
        .expect("outputs serialize");
        let t = now();
        let rec = strata_store::CacheRecord {
            value,
            created: t,
            last_used: t,
            use_count: 0,
            description: description.to_string(),
            size: 0,
        };
        if let Output::Fs(chain) = &record.value {
            crate::records::pin(&self.store, k, &crate::records::layers(chain.layers()));
        }
        // A failed record only costs a future rebuild; never fail the build for it.
        let _ = self.store.cache_put(k, &rec);
    }

    /// The store's file lock on the key (`locks/`), which the kernel releases when a
    /// holder dies, even by SIGKILL. Waiting blocks a thread of its own, not the
    /// runtime's blocking pool, so a cancelled build can exit while it waits.
    fn claim<'a>(&'a self, key: &'a Digest) -> BoxFuture<'a, Result<Claimed, OpError>> {
        let name = format!("vertex {key}");
        Box::pin(async move {
            if let Some(lock) = self.store.try_lock(&name).map_err(OpError::new)? {
                return Ok(Claimed::Free(Box::new(lock)));
            }
            let pending = self.store.pending_lock(&name);
            let (tx, rx) = tokio::sync::oneshot::channel();
            std::thread::Builder::new()
                .name("strata-claim".into())
                .spawn(move || drop(tx.send(pending.wait())))
                .map_err(OpError::new)?;
            let lock = rx
                .await
                .map_err(|_| OpError::new("the thread waiting for a cache key lock ended"))?
                .map_err(OpError::new)?;
            Ok(Claimed::Waited(Box::new(lock)))
        })
    }
}

/// Where the canonical layer for a blob (a compressed layer of a pulled or loaded
/// image) is remembered, so each blob is extracted once.
pub fn layer_of_blob_key(blob: &Digest) -> Digest {
    key::encode("strata/layer-of-blob", blob)
}
