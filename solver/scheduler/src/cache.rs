//! The cache seam: where results are looked up and recorded by key.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use strata_digest::Digest;

use crate::{BoxFuture, OpError};

/// Held while one caller computes the result of a key (see [`CacheMap::claim`]); dropping
/// it lets the next claimant in.
pub type Claim = Box<dyn Send + Sync>;

/// How [`CacheMap::claim`] went.
pub enum Claimed {
    /// Nobody else was computing the key.
    Free(Claim),
    /// Someone was; this caller waited until they finished. The waiter looks the key up
    /// again before running anything itself.
    Waited(Claim),
}

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

    /// Waits until this caller alone may compute `key` among everyone sharing the cache
    /// (other solves, other processes), so a vertex two builds need runs once: the
    /// scheduler claims the key after a cache miss, looks it up again, and runs the op
    /// only if it still misses. Dropping the [`Claimed`] claim releases it. The default
    /// excludes nobody (a cache no one else shares).
    fn claim<'a>(&'a self, key: &'a Digest) -> BoxFuture<'a, Result<Claimed, OpError>> {
        let _ = key;
        Box::pin(futures::future::ready(Ok(Claimed::Free(Box::new(())))))
    }
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
    /// One async mutex per claimed key (see [`CacheMap::claim`]).
    claims: Mutex<HashMap<Digest, Arc<tokio::sync::Mutex<()>>>>,
}

impl<T> Default for MemoryCache<T> {
    fn default() -> Self {
        MemoryCache {
            entries: Mutex::new(HashMap::new()),
            claims: Mutex::new(HashMap::new()),
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

    /// Solves sharing this cache run a key once.
    fn claim<'a>(&'a self, key: &'a Digest) -> BoxFuture<'a, Result<Claimed, OpError>> {
        let mutex = {
            let mut claims = self.claims.lock().unwrap_or_else(|e| e.into_inner());
            Arc::clone(claims.entry(*key).or_default())
        };
        Box::pin(async move {
            Ok(match Arc::clone(&mutex).try_lock_owned() {
                Ok(guard) => Claimed::Free(Box::new(guard)),
                Err(_) => Claimed::Waited(Box::new(mutex.lock_owned().await)),
            })
        })
    }
}
