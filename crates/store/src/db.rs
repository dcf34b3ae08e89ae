//! `meta.db`: connection settings, schema migrations, and the read/write helpers every
//! metadata module goes through.
//!
//! WAL lets readers run beside one writer across processes; `busy_timeout` makes a
//! writer wait for another process's transaction instead of failing; every write runs in
//! `BEGIN IMMEDIATE`, which takes the write lock up front (a deferred transaction that
//! reads first and upgrades later can fail with SQLITE_BUSY without waiting).
//! `synchronous=NORMAL` in WAL mode keeps the database consistent on any crash; a power
//! loss may lose the last commits, never corrupt earlier ones.

use std::path::Path;
use std::time::Duration;

use rusqlite::{Connection, Transaction, TransactionBehavior};

use crate::{Result, Store, StoreError};

const BUSY_TIMEOUT: Duration = Duration::from_secs(10);

/// Schema migrations, applied in order; entry `i` brings the schema to version `i + 1`.
/// Never edit a released entry: append a new one.
const MIGRATIONS: &[&str] = &[
    // 1: images, cache records, compression records, leases.
    "
    CREATE TABLE images (
        name       TEXT PRIMARY KEY,
        manifest   TEXT NOT NULL,
        config     TEXT NOT NULL,
        media_type TEXT NOT NULL,
        size       INTEGER NOT NULL,
        created    TEXT,
        platform   TEXT NOT NULL
    ) STRICT;
    CREATE TABLE cache_records (
        key         TEXT PRIMARY KEY,
        value       TEXT NOT NULL,
        created     INTEGER NOT NULL,
        last_used   INTEGER NOT NULL,
        use_count   INTEGER NOT NULL,
        description TEXT NOT NULL,
        size        INTEGER NOT NULL
    ) STRICT;
    CREATE TABLE compressed (
        diff_id   TEXT NOT NULL,
        algorithm TEXT NOT NULL,
        level     INTEGER NOT NULL,
        blob      TEXT NOT NULL,
        size      INTEGER NOT NULL,
        PRIMARY KEY (diff_id, algorithm, level)
    ) STRICT;
    CREATE TABLE leases (
        id         INTEGER PRIMARY KEY,
        holder     TEXT NOT NULL,
        pid        INTEGER NOT NULL,
        start_time INTEGER NOT NULL,
        created    INTEGER NOT NULL
    ) STRICT;
    CREATE TABLE lease_resources (
        lease INTEGER NOT NULL REFERENCES leases(id) ON DELETE CASCADE,
        kind  TEXT NOT NULL,
        id    TEXT NOT NULL,
        PRIMARY KEY (lease, kind, id)
    ) STRICT;
    CREATE INDEX lease_resources_by_resource ON lease_resources (kind, id);
    ",
    // 2: build history (`strata build --explain`, `strata cache explain`): one row per
    // build and per step, with the step's identity (project, stage, position,
    // instruction), its outcome, a fingerprint of what it depends on, the explainable
    // facts (JSON, bounded) and why it missed the cache (JSON list).
    "
    CREATE TABLE builds (
        id      TEXT PRIMARY KEY,
        created INTEGER NOT NULL,
        project TEXT NOT NULL,
        status  TEXT NOT NULL,
        image   TEXT,
        names   TEXT NOT NULL
    ) STRICT;
    CREATE INDEX builds_by_image ON builds (image);
    CREATE TABLE build_steps (
        build       TEXT NOT NULL REFERENCES builds(id) ON DELETE CASCADE,
        seq         INTEGER NOT NULL,
        stage       TEXT NOT NULL,
        position    INTEGER NOT NULL,
        instruction TEXT NOT NULL,
        name        TEXT NOT NULL,
        outcome     TEXT NOT NULL,
        fingerprint TEXT NOT NULL,
        facts       TEXT NOT NULL,
        explanation TEXT NOT NULL,
        PRIMARY KEY (build, seq)
    ) STRICT;
    CREATE INDEX build_steps_by_position ON build_steps (stage, position);
    CREATE INDEX build_steps_by_instruction ON build_steps (stage, instruction);
    ",
    // 3: blob origins: the registry repositories a blob was pulled from or pushed to,
    // so a push to another repository of the same registry can mount it.
    "
    CREATE TABLE blob_origins (
        digest     TEXT NOT NULL,
        registry   TEXT NOT NULL,
        repository TEXT NOT NULL,
        seen       INTEGER NOT NULL,
        PRIMARY KEY (digest, registry, repository)
    ) STRICT;
    ",
    // 4: the context files a step read (path → sha256, JSON), stored once per distinct
    // set and referenced from build_steps.files by the sha256 of that JSON, so a
    // rebuild of an unchanged context adds no copy.
    "
    CREATE TABLE build_file_sets (
        digest TEXT PRIMARY KEY,
        files  TEXT NOT NULL
    ) STRICT;
    ALTER TABLE build_steps ADD COLUMN files TEXT;
    CREATE INDEX build_steps_by_files ON build_steps (files);
    ",
];

/// The schema version this build writes.
pub const SCHEMA_VERSION: u32 = MIGRATIONS.len() as u32;

pub(crate) fn open(path: &Path) -> Result<Connection> {
    let db_error = |what: &str| {
        let what = what.to_string();
        move |source| StoreError::Db {
            what,
            path: path.to_path_buf(),
            source,
        }
    };
    let conn = Connection::open(path).map_err(db_error("opening"))?;
    conn.busy_timeout(BUSY_TIMEOUT)
        .map_err(db_error("setting busy_timeout"))?;
    let mode = wal(&conn).map_err(db_error("switching to WAL"))?;
    if !mode.eq_ignore_ascii_case("wal") {
        return Err(StoreError::NotWal {
            path: path.to_path_buf(),
            mode,
        });
    }
    conn.pragma_update(None, "synchronous", "NORMAL")
        .map_err(db_error("setting synchronous=NORMAL"))?;
    conn.pragma_update(None, "foreign_keys", "ON")
        .map_err(db_error("enabling foreign keys"))?;
    migrate(conn, path)
}

/// Switches to WAL (a no-op once the file is in WAL mode). Two processes opening a new
/// store at once can both try the switch, which needs an exclusive lock and fails with
/// SQLITE_BUSY without waiting on `busy_timeout`: retry it for as long.
fn wal(conn: &Connection) -> rusqlite::Result<String> {
    let start = std::time::Instant::now();
    loop {
        match conn.pragma_update_and_check(None, "journal_mode", "WAL", |row| row.get(0)) {
            Err(rusqlite::Error::SqliteFailure(e, _))
                if e.code == rusqlite::ErrorCode::DatabaseBusy
                    && start.elapsed() < BUSY_TIMEOUT =>
            {
                std::thread::sleep(Duration::from_millis(10));
            }
            other => return other,
        }
    }
}

fn migrate(mut conn: Connection, path: &Path) -> Result<Connection> {
    let db_error = |what: String| {
        move |source| StoreError::Db {
            what,
            path: path.to_path_buf(),
            source,
        }
    };
    let tx = conn
        .transaction_with_behavior(TransactionBehavior::Immediate)
        .map_err(db_error("starting the schema migration".into()))?;
    let found: u32 = tx
        .execute_batch(
            "CREATE TABLE IF NOT EXISTS schema_version (
                version INTEGER PRIMARY KEY,
                applied INTEGER NOT NULL
            ) STRICT",
        )
        .and_then(|()| {
            tx.query_row("SELECT MAX(version) FROM schema_version", [], |row| {
                row.get::<_, Option<u32>>(0)
            })
        })
        .map_err(db_error("reading the schema version".into()))?
        .unwrap_or(0);
    if found > SCHEMA_VERSION {
        return Err(StoreError::SchemaTooNew {
            path: path.to_path_buf(),
            found,
            supported: SCHEMA_VERSION,
        });
    }
    for (index, sql) in MIGRATIONS.iter().enumerate().skip(found as usize) {
        let version = index as u32 + 1;
        tx.execute_batch(sql)
            .and_then(|()| {
                tx.execute(
                    "INSERT INTO schema_version (version, applied) VALUES (?1, ?2)",
                    (version, crate::now_unix()),
                )
            })
            .map_err(db_error(format!(
                "migrating the schema to version {version}"
            )))?;
    }
    tx.commit()
        .map_err(db_error("committing the schema migration".into()))?;
    Ok(conn)
}

impl Store {
    /// Runs `f` in a `BEGIN IMMEDIATE` transaction and commits. `what` names the
    /// operation and object for the error.
    pub(crate) fn write<T>(
        &self,
        what: impl FnOnce() -> String,
        f: impl FnOnce(&Transaction<'_>) -> rusqlite::Result<T>,
    ) -> Result<T> {
        let mut conn = self.conn();
        let result = conn
            .transaction_with_behavior(TransactionBehavior::Immediate)
            .and_then(|tx| {
                let value = f(&tx)?;
                tx.commit()?;
                Ok(value)
            });
        result.map_err(|source| self.db_error(what(), source))
    }

    /// Runs `f` on the connection, outside any explicit transaction.
    pub(crate) fn read<T>(
        &self,
        what: impl FnOnce() -> String,
        f: impl FnOnce(&Connection) -> rusqlite::Result<T>,
    ) -> Result<T> {
        let conn = self.conn();
        f(&conn).map_err(|source| self.db_error(what(), source))
    }

    fn conn(&self) -> std::sync::MutexGuard<'_, Connection> {
        // A panic while holding the lock leaves the connection usable: an open
        // transaction rolled back when it was dropped.
        self.inner
            .conn
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    fn db_error(&self, what: String, source: rusqlite::Error) -> StoreError {
        StoreError::Db {
            what,
            path: self.inner.root.join("meta.db"),
            source,
        }
    }
}

/// Reads a `sha256:…` TEXT column.
pub(crate) fn digest_column(
    row: &rusqlite::Row<'_>,
    index: usize,
) -> rusqlite::Result<strata_digest::Digest> {
    let text: String = row.get(index)?;
    text.parse().map_err(|e| {
        rusqlite::Error::FromSqlConversionFailure(index, rusqlite::types::Type::Text, Box::new(e))
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_fresh_store_is_at_the_latest_version_in_wal_mode() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(dir.path()).unwrap();
        let (version, mode): (u32, String) = store
            .read(
                || "test".into(),
                |c| {
                    let v =
                        c.query_row("SELECT MAX(version) FROM schema_version", [], |r| r.get(0))?;
                    let m = c.query_row("PRAGMA journal_mode", [], |r| r.get(0))?;
                    Ok((v, m))
                },
            )
            .unwrap();
        assert_eq!(version, SCHEMA_VERSION);
        assert_eq!(mode, "wal");
        drop(store);
        // Reopening applies nothing and keeps one row per version.
        let store = Store::open(dir.path()).unwrap();
        let rows: u32 = store
            .read(
                || "test".into(),
                |c| c.query_row("SELECT COUNT(*) FROM schema_version", [], |r| r.get(0)),
            )
            .unwrap();
        assert_eq!(rows, SCHEMA_VERSION);
    }

    #[test]
    fn a_newer_schema_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        drop(Store::open(dir.path()).unwrap());
        let conn = Connection::open(dir.path().join("meta.db")).unwrap();
        conn.execute(
            "INSERT INTO schema_version (version, applied) VALUES (?1, 0)",
            [SCHEMA_VERSION + 1],
        )
        .unwrap();
        drop(conn);
        let err = Store::open(dir.path()).unwrap_err();
        assert!(
            matches!(err, StoreError::SchemaTooNew { found, supported, .. }
                if found == SCHEMA_VERSION + 1 && supported == SCHEMA_VERSION),
            "{err:?}"
        );
    }
}
