//! Pins: the resources a running build uses, held in one lease per process so garbage
//! collection in any process leaves them alone. The lease is taken on first use and
//! lives until [`Store::release_pins`] or the process's death (a lease of a dead
//! process counts as expired, see `lease.rs`).
//!
//! Ordering is what makes this safe without a global lock: a build pins a resource in
//! a committed transaction *before* it checks that the resource exists and uses it;
//! garbage collection checks the pins and moves a doomed file away inside one
//! `BEGIN IMMEDIATE` transaction. Either the pin commits first (the collector sees it
//! and keeps the file) or the move does (the build finds the file gone: a cache miss).

use strata_digest::Digest;

use crate::gc::{Resource, RECORD_KIND};
use crate::lease::KEPT_PID;
use crate::{Result, Store};

impl Store {
    /// Takes this process's pin lease if it has none yet, so files it is about to
    /// create (newer than the lease) are not swept as leftovers meanwhile.
    pub fn hold(&self) -> Result<i64> {
        let mut pins = self
            .inner
            .pins
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        if let Some(id) = *pins {
            return Ok(id);
        }
        // The row is deleted by `release_pins`, when the last handle drops, or (after
        // a crash) as the lease of a dead process. A `Lease` guard would keep the
        // handle alive through itself, so only the id is kept.
        let id = self.lease_row(&format!("process {}", std::process::id()))?;
        *pins = Some(id);
        Ok(id)
    }

    /// Pins `resources` (one transaction) for as long as this process holds its lease.
    pub fn pin(&self, resources: &[Resource]) -> Result<()> {
        self.pin_in_one(None, resources)
    }

    /// Pins the cache record `key` and `resources` (what it references) at once.
    pub fn pin_record(&self, key: &Digest, resources: &[Resource]) -> Result<()> {
        self.pin_in_one(Some(key), resources)
    }

    fn pin_in_one(&self, record: Option<&Digest>, resources: &[Resource]) -> Result<()> {
        let lease = self.hold()?;
        self.write(
            || format!("pinning {} resource(s) for lease {lease}", resources.len()),
            |tx| {
                let mut stmt = tx.prepare_cached(
                    "INSERT OR IGNORE INTO lease_resources (lease, kind, id) VALUES (?1, ?2, ?3)",
                )?;
                if let Some(k) = record {
                    stmt.execute((lease, RECORD_KIND, k.to_string()))?;
                }
                for r in resources {
                    stmt.execute((lease, r.kind(), r.id()))?;
                }
                Ok(())
            },
        )
    }

    /// Drops this process's pins (e.g. before its own garbage collection, once the
    /// build's result is named).
    pub fn release_pins(&self) -> Result<()> {
        let lease = self
            .inner
            .pins
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .take();
        match lease {
            Some(id) => self.delete_lease(id),
            None => Ok(()),
        }
    }
}

impl Store {
    /// Holds `resources` under the name `holder` until [`Store::unkeep`], whatever
    /// process runs then (e.g. the layers under a failed step kept for
    /// `strata debug shell`). Replaces an earlier hold of that name; one transaction.
    pub fn keep(&self, holder: &str, resources: &[Resource]) -> Result<()> {
        self.write(
            || format!("keeping {} resource(s) for {holder}", resources.len()),
            |tx| {
                delete_kept(tx, holder)?;
                tx.execute(
                    "INSERT INTO leases (holder, pid, start_time, created) VALUES (?1, ?2, 0, ?3)",
                    (holder, KEPT_PID, crate::now_unix()),
                )?;
                let lease = tx.last_insert_rowid();
                let mut stmt = tx.prepare_cached(
                    "INSERT OR IGNORE INTO lease_resources (lease, kind, id) VALUES (?1, ?2, ?3)",
                )?;
                for r in resources {
                    stmt.execute((lease, r.kind(), r.id()))?;
                }
                Ok(())
            },
        )
    }

    /// Releases the hold named `holder` (nothing if there is none).
    pub fn unkeep(&self, holder: &str) -> Result<()> {
        self.write(
            || format!("releasing {holder}"),
            |tx| delete_kept(tx, holder),
        )
    }

    /// The names of the holds [`Store::keep`] made.
    pub fn kept(&self) -> Result<Vec<String>> {
        self.read(
            || "listing kept holds".into(),
            |conn| {
                let mut stmt =
                    conn.prepare("SELECT holder FROM leases WHERE pid = ?1 ORDER BY holder")?;
                let rows = stmt.query_map([KEPT_PID], |r| r.get(0))?;
                rows.collect()
            },
        )
    }
}

fn delete_kept(tx: &rusqlite::Transaction<'_>, holder: &str) -> rusqlite::Result<()> {
    tx.execute(
        "DELETE FROM leases WHERE holder = ?1 AND pid = ?2",
        (holder, KEPT_PID),
    )
    .map(drop)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pins_hold_until_released() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(dir.path()).unwrap();
        let layer = Resource::Layer(strata_digest::sha256("l"));
        assert!(!store.leased(layer.kind(), &layer.id()).unwrap());
        let id = store.hold().unwrap();
        store.pin(std::slice::from_ref(&layer)).unwrap();
        store.pin(std::slice::from_ref(&layer)).unwrap();
        assert_eq!(store.hold().unwrap(), id, "one lease per handle");
        assert!(store.leased(layer.kind(), &layer.id()).unwrap());
        store.release_pins().unwrap();
        assert!(!store.leased(layer.kind(), &layer.id()).unwrap());
    }

    #[test]
    fn named_holds_outlive_the_process_until_released() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(dir.path()).unwrap();
        let a = Resource::Layer(strata_digest::sha256("a"));
        let b = Resource::Layer(strata_digest::sha256("b"));
        store.keep("debug one", &[a.clone(), b.clone()]).unwrap();
        // A new lease prunes dead processes' rows; the hold has no process and stays.
        drop(store.lease("another").unwrap());
        let again = Store::open(dir.path()).unwrap();
        assert!(again.leased(a.kind(), &a.id()).unwrap());
        assert_eq!(again.kept().unwrap(), ["debug one"]);
        // Keeping again under the same name replaces the set.
        again.keep("debug one", std::slice::from_ref(&b)).unwrap();
        assert!(!again.leased(a.kind(), &a.id()).unwrap());
        assert!(again.leased(b.kind(), &b.id()).unwrap());
        again.unkeep("debug one").unwrap();
        assert!(!again.leased(b.kind(), &b.id()).unwrap());
        assert!(again.kept().unwrap().is_empty());
    }
}
