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
}
