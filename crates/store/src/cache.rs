//! Cache records: the solver's two-tier cache (definition keys and content keys) maps a
//! key to an opaque result.

use rusqlite::OptionalExtension;
use serde::{Deserialize, Serialize};
use strata_digest::Digest;

use crate::db::digest_column;
use crate::{Result, Store, StoreError};

/// One cached result.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct CacheRecord {
    /// The solver's result (e.g. a layer chain); the store does not interpret it.
    pub value: serde_json::Value,
    /// Unix seconds.
    pub created: u64,
    /// Unix seconds of the last [`Store::cache_get`] hit.
    pub last_used: u64,
    pub use_count: u64,
    /// What produced it, e.g. `[build 2/4] RUN make`.
    pub description: String,
    /// Bytes the result holds on disk, for garbage-collection decisions.
    pub size: u64,
}

const COLUMNS: &str = "value, created, last_used, use_count, description, size";

fn record(row: &rusqlite::Row<'_>, first: usize) -> rusqlite::Result<CacheRecord> {
    let text: String = row.get(first)?;
    let value = serde_json::from_str(&text).map_err(|e| {
        rusqlite::Error::FromSqlConversionFailure(first, rusqlite::types::Type::Text, Box::new(e))
    })?;
    Ok(CacheRecord {
        value,
        created: row.get(first + 1)?,
        last_used: row.get(first + 2)?,
        use_count: row.get(first + 3)?,
        description: row.get(first + 4)?,
        size: row.get(first + 5)?,
    })
}

impl Store {
    /// Looks a key up. A hit sets `last_used` to now (never backwards) and increments
    /// `use_count`; the returned record carries the updated values.
    pub fn cache_get(&self, key: &Digest) -> Result<Option<CacheRecord>> {
        let now = crate::now_unix();
        self.write(
            || format!("reading cache record {key}"),
            |tx| {
                tx.query_row(
                    &format!(
                        "UPDATE cache_records
                         SET last_used = MAX(last_used, ?1), use_count = use_count + 1
                         WHERE key = ?2
                         RETURNING {COLUMNS}"
                    ),
                    (now, key.to_string()),
                    |row| record(row, 0),
                )
                .optional()
            },
        )
    }

    /// Stores `rec` under `key`, replacing any record there.
    pub fn cache_put(&self, key: &Digest, rec: &CacheRecord) -> Result<()> {
        let value = serde_json::to_string(&rec.value)
            .map_err(|source| StoreError::EncodeCacheRecord { key: *key, source })?;
        self.write(
            || format!("writing cache record {key}"),
            |tx| {
                tx.execute(
                    "INSERT OR REPLACE INTO cache_records
                     (key, value, created, last_used, use_count, description, size)
                     VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)",
                    (
                        key.to_string(),
                        value,
                        rec.created,
                        rec.last_used,
                        rec.use_count,
                        &rec.description,
                        rec.size,
                    ),
                )
                .map(drop)
            },
        )
    }

    /// Every record, sorted by key; does not touch `last_used`.
    pub fn cache_records(&self) -> Result<Vec<(Digest, CacheRecord)>> {
        self.read(
            || "listing cache records".into(),
            |conn| {
                let mut stmt = conn.prepare(&format!(
                    "SELECT key, {COLUMNS} FROM cache_records ORDER BY key"
                ))?;
                let rows =
                    stmt.query_map([], |row| Ok((digest_column(row, 0)?, record(row, 1)?)))?;
                rows.collect()
            },
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rec() -> CacheRecord {
        CacheRecord {
            value: serde_json::json!({"layers": ["sha256:ab", "sha256:cd"], "n": 2}),
            created: 1_000,
            last_used: 1_000,
            use_count: 0,
            description: "[build 2/4] RUN make".into(),
            size: 4096,
        }
    }

    #[test]
    fn put_then_get_bumps_last_used_and_use_count() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(dir.path()).unwrap();
        let key = strata_digest::sha256(b"definition key");
        assert_eq!(store.cache_get(&key).unwrap(), None);
        store.cache_put(&key, &rec()).unwrap();

        let before = crate::now_unix();
        let hit = store.cache_get(&key).unwrap().unwrap();
        assert_eq!(hit.value, rec().value);
        assert_eq!(hit.description, rec().description);
        assert_eq!((hit.created, hit.size), (1_000, 4096));
        assert_eq!(hit.use_count, 1);
        assert!(hit.last_used >= before, "{} < {before}", hit.last_used);

        let again = store.cache_get(&key).unwrap().unwrap();
        assert_eq!(again.use_count, 2);
        assert!(again.last_used >= hit.last_used);

        // Listing sees the bumped values and does not bump them itself.
        let listed = store.cache_records().unwrap();
        assert_eq!(listed, vec![(key, again.clone())]);
        assert_eq!(store.cache_records().unwrap()[0].1.use_count, 2);
    }

    #[test]
    fn last_used_never_goes_backwards() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(dir.path()).unwrap();
        let key = strata_digest::sha256(b"k");
        let future = CacheRecord {
            last_used: u64::from(u32::MAX) * 2,
            ..rec()
        };
        store.cache_put(&key, &future).unwrap();
        assert_eq!(
            store.cache_get(&key).unwrap().unwrap().last_used,
            future.last_used
        );
    }

    #[test]
    fn put_replaces_and_records_are_listed_by_key() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(dir.path()).unwrap();
        let mut keys: Vec<Digest> = (0..5u8).map(|i| strata_digest::sha256([i])).collect();
        for (i, key) in keys.iter().enumerate() {
            let r = CacheRecord {
                size: i as u64,
                ..rec()
            };
            store.cache_put(key, &r).unwrap();
        }
        let replaced = CacheRecord {
            value: serde_json::json!(null),
            description: "replaced".into(),
            ..rec()
        };
        store.cache_put(&keys[3], &replaced).unwrap();
        let listed = store.cache_records().unwrap();
        let replaced_key = keys[3];
        keys.sort();
        assert_eq!(listed.iter().map(|(k, _)| *k).collect::<Vec<_>>(), keys);
        let got = &listed.iter().find(|(k, _)| *k == replaced_key).unwrap().1;
        assert_eq!(got, &replaced);
    }
}
