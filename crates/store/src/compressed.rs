//! Compression records: which blob holds a layer (by diffID) compressed with a given
//! algorithm and level, so an export reuses it instead of compressing again.

use rusqlite::OptionalExtension;
use strata_digest::Digest;

use crate::db::digest_column;
use crate::{Result, Store};

impl Store {
    /// The compressed blob and its size for `diff_id` under `algorithm` (e.g. `gzip`,
    /// `zstd`) at `level`.
    pub fn compressed(
        &self,
        diff_id: &Digest,
        algorithm: &str,
        level: i32,
    ) -> Result<Option<(Digest, u64)>> {
        self.read(
            || format!("reading the {algorithm} level {level} blob of layer {diff_id}"),
            |conn| {
                conn.query_row(
                    "SELECT blob, size FROM compressed
                     WHERE diff_id = ?1 AND algorithm = ?2 AND level = ?3",
                    (diff_id.to_string(), algorithm, level),
                    |row| Ok((digest_column(row, 0)?, row.get(1)?)),
                )
                .optional()
            },
        )
    }

    /// Records (or replaces) the compressed form of `diff_id`.
    pub fn record_compressed(
        &self,
        diff_id: &Digest,
        algorithm: &str,
        level: i32,
        blob: &Digest,
        size: u64,
    ) -> Result<()> {
        self.write(
            || format!("recording the {algorithm} level {level} blob of layer {diff_id}"),
            |tx| {
                tx.execute(
                    "INSERT OR REPLACE INTO compressed (diff_id, algorithm, level, blob, size)
                     VALUES (?1, ?2, ?3, ?4, ?5)",
                    (
                        diff_id.to_string(),
                        algorithm,
                        level,
                        blob.to_string(),
                        size,
                    ),
                )
                .map(drop)
            },
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn records_are_keyed_by_diff_id_algorithm_and_level() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(dir.path()).unwrap();
        let diff = strata_digest::sha256(b"layer tar");
        let gz6 = strata_digest::sha256(b"gzip 6");
        let gz9 = strata_digest::sha256(b"gzip 9");
        let zst = strata_digest::sha256(b"zstd 3");
        assert_eq!(store.compressed(&diff, "gzip", 6).unwrap(), None);
        store
            .record_compressed(&diff, "gzip", 6, &gz6, 100)
            .unwrap();
        store.record_compressed(&diff, "gzip", 9, &gz9, 90).unwrap();
        store.record_compressed(&diff, "zstd", 3, &zst, 80).unwrap();
        assert_eq!(
            store.compressed(&diff, "gzip", 6).unwrap(),
            Some((gz6, 100))
        );
        assert_eq!(store.compressed(&diff, "gzip", 9).unwrap(), Some((gz9, 90)));
        assert_eq!(store.compressed(&diff, "zstd", 3).unwrap(), Some((zst, 80)));
        assert_eq!(store.compressed(&diff, "zstd", 6).unwrap(), None);
        let other = strata_digest::sha256(b"other layer");
        assert_eq!(store.compressed(&other, "gzip", 6).unwrap(), None);

        store.record_compressed(&diff, "gzip", 6, &gz9, 91).unwrap();
        assert_eq!(store.compressed(&diff, "gzip", 6).unwrap(), Some((gz9, 91)));
    }
}
