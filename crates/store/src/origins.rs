//! Blob origins: the registry repositories a blob is known to be in (pulled from or
//! pushed to), so a push to another repository of the same registry can ask for a
//! cross-repository mount instead of uploading the bytes again.

use strata_digest::Digest;

use crate::{Result, Store};

/// Origins kept per blob and registry (the most recently seen win).
const KEEP: i64 = 8;

impl Store {
    /// Remembers that `registry` holds `digest` in `repository`.
    pub fn record_blob_origin(
        &self,
        digest: &Digest,
        registry: &str,
        repository: &str,
    ) -> Result<()> {
        let now = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_secs() as i64);
        self.write(
            || format!("recording that {registry}/{repository} holds {digest}"),
            |tx| {
                tx.execute(
                    "INSERT OR REPLACE INTO blob_origins (digest, registry, repository, seen)
                     VALUES (?1, ?2, ?3, ?4)",
                    (digest.to_string(), registry, repository, now),
                )?;
                tx.execute(
                    "DELETE FROM blob_origins WHERE digest = ?1 AND registry = ?2
                     AND repository NOT IN (SELECT repository FROM blob_origins
                       WHERE digest = ?1 AND registry = ?2 ORDER BY seen DESC, repository
                       LIMIT ?3)",
                    (digest.to_string(), registry, KEEP),
                )
                .map(drop)
            },
        )
    }

    /// The repositories of `registry` known to hold `digest`, most recently seen first.
    pub fn blob_origins(&self, digest: &Digest, registry: &str) -> Result<Vec<String>> {
        self.read(
            || format!("reading where {registry} holds {digest}"),
            |conn| {
                let mut q = conn.prepare_cached(
                    "SELECT repository FROM blob_origins WHERE digest = ?1 AND registry = ?2
                     ORDER BY seen DESC, repository",
                )?;
                let rows = q.query_map((digest.to_string(), registry), |row| row.get(0))?;
                rows.collect()
            },
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn origins_are_per_registry_and_bounded() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(dir.path()).unwrap();
        let d = strata_digest::sha256(b"blob");
        assert!(store.blob_origins(&d, "r:5000").unwrap().is_empty());
        store.record_blob_origin(&d, "r:5000", "a/x").unwrap();
        store.record_blob_origin(&d, "r:5000", "a/x").unwrap();
        store.record_blob_origin(&d, "other", "b/y").unwrap();
        assert_eq!(store.blob_origins(&d, "r:5000").unwrap(), ["a/x"]);
        assert_eq!(store.blob_origins(&d, "other").unwrap(), ["b/y"]);
        for i in 0..20 {
            store
                .record_blob_origin(&d, "r:5000", &format!("n/{i:02}"))
                .unwrap();
        }
        assert_eq!(
            store.blob_origins(&d, "r:5000").unwrap().len(),
            KEEP as usize
        );
        let other = strata_digest::sha256(b"other");
        assert!(store.blob_origins(&other, "r:5000").unwrap().is_empty());
    }
}
