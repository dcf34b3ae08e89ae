//! The cache seam: where results are looked up and recorded by key.

use std::collections::HashMap;
use std::sync::Mutex;

use strata_digest::Digest;

/// A result as recorded: the value and the vertex's effective key (see [`crate::keys`]),
/// which dependents compose into their own definition keys.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CacheRecord<T> {
    pub value: T,
    pub key: Digest,
}

/// Where the scheduler looks results up and records them. The scheduler calls it from
/// async code, so implementations must not block for long. The store implements it on
/// disk; [`MemoryCache`] keeps records in memory.
pub trait CacheMap<T>: Send + Sync {
    fn get(&self, key: &Digest) -> Option<CacheRecord<T>>;
    /// Records `record` under `key`; `description` names the vertex for humans
    /// (cache listings, pruning).
    fn put(&self, key: &Digest, record: &CacheRecord<T>, description: &str);
}

/// Never hits, records nothing (`--no-cache` without a store).
#[derive(Debug, Default, Clone, Copy)]
pub struct NoCache;

impl<T> CacheMap<T> for NoCache {
    fn get(&self, _: &Digest) -> Option<CacheRecord<T>> {
        None
    }
    fn put(&self, _: &Digest, _: &CacheRecord<T>, _: &str) {}
}

/// An in-memory [`CacheMap`], for tests and single-process reuse.
#[derive(Debug)]
pub struct MemoryCache<T> {
    entries: Mutex<HashMap<Digest, (CacheRecord<T>, String)>>,
}

impl<T> Default for MemoryCache<T> {
    fn default() -> Self {
        MemoryCache {
            entries: Mutex::new(HashMap::new()),
        }
    }
}

impl<T: Clone> MemoryCache<T> {
    pub fn new() -> Self {
        Self::default()
    }

    pub fn len(&self) -> usize {
        self.lock().len()
    }

    pub fn is_empty(&self) -> bool {
        self.lock().is_empty()
    }

    /// Every key, sorted.
    pub fn keys(&self) -> Vec<Digest> {
        let mut keys: Vec<Digest> = self.lock().keys().copied().collect();
        keys.sort();
        keys
    }

    /// The description recorded with `key`.
    pub fn description(&self, key: &Digest) -> Option<String> {
        self.lock().get(key).map(|(_, d)| d.clone())
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<Digest, (CacheRecord<T>, String)>> {
        // A panic while holding this lock cannot leave a half-written entry.
        self.entries.lock().unwrap_or_else(|e| e.into_inner())
    }
}

impl<T: Clone + Send + Sync> CacheMap<T> for MemoryCache<T> {
    fn get(&self, key: &Digest) -> Option<CacheRecord<T>> {
        self.lock().get(key).map(|(r, _)| r.clone())
    }

    fn put(&self, key: &Digest, record: &CacheRecord<T>, description: &str) {
        self.lock()
            .insert(*key, (record.clone(), description.to_string()));
    }
}
