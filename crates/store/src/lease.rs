//! Leases pin resources (blobs, snapshots, cache records) against garbage collection
//! while a build uses them. A lease row records its process (pid and kernel start time,
//! so a reused pid does not keep it alive); rows of processes that died — even by
//! SIGKILL, which runs no destructor — count as expired and are pruned when the next
//! lease is taken. Pids are those of the store's pid namespace: processes sharing a
//! store must see each other's `/proc`.

use std::io;
use std::path::PathBuf;

use crate::{Result, Store, StoreError};

/// The pid of a lease row that no process owns: a named hold that lives until it is
/// released by name ([`Store::keep`]). No process has pid 0.
pub(crate) const KEPT_PID: i32 = 0;

/// A held lease; dropping it deletes the row and unpins its resources.
#[derive(Debug)]
pub struct Lease {
    store: Store,
    id: i64,
    holder: String,
    active: bool,
}

impl Lease {
    pub fn id(&self) -> i64 {
        self.id
    }

    pub fn holder(&self) -> &str {
        &self.holder
    }

    /// Deletes the lease now, reporting failure (dropping does the same silently).
    pub fn release(mut self) -> Result<()> {
        self.active = false;
        self.store.delete_lease(self.id)
    }
}

impl Drop for Lease {
    fn drop(&mut self) {
        if self.active {
            // Nothing to report to; a row left behind expires with this process.
            let _ = self.store.delete_lease(self.id);
        }
    }
}

impl Store {
    /// Takes a lease for `holder` (a description such as `build 3f2a…`) and prunes the
    /// leases of dead processes.
    pub fn lease(&self, holder: &str) -> Result<Lease> {
        let id = self.lease_row(holder)?;
        Ok(Lease {
            store: self.clone(),
            id,
            holder: holder.to_string(),
            active: true,
        })
    }

    /// Inserts a lease row for this process (pruning those of dead processes) without
    /// a guard that deletes it: the caller does.
    pub(crate) fn lease_row(&self, holder: &str) -> Result<i64> {
        let me = own_identity()?;
        self.write(
            || format!("taking a lease for {holder}"),
            |tx| {
                let rows: Vec<(i64, i32, u64)> = {
                    let mut stmt = tx.prepare("SELECT id, pid, start_time FROM leases")?;
                    let rows = stmt.query_map([], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)))?;
                    rows.collect::<rusqlite::Result<_>>()?
                };
                for (id, pid, start_time) in rows {
                    if !alive(pid, start_time) {
                        tx.execute("DELETE FROM leases WHERE id = ?1", [id])?;
                    }
                }
                tx.execute(
                    "INSERT INTO leases (holder, pid, start_time, created) VALUES (?1, ?2, ?3, ?4)",
                    (holder, me.0, me.1, crate::now_unix()),
                )?;
                Ok(tx.last_insert_rowid())
            },
        )
    }

    /// Pins the resource `kind`/`id` (e.g. `blob`/`sha256:…`) while `lease` lives.
    pub fn lease_add(&self, lease: &Lease, kind: &str, id: &str) -> Result<()> {
        self.write(
            || {
                format!(
                    "adding {kind} {id} to lease {} ({})",
                    lease.id, lease.holder
                )
            },
            |tx| {
                tx.execute(
                    "INSERT OR IGNORE INTO lease_resources (lease, kind, id) VALUES (?1, ?2, ?3)",
                    (lease.id, kind, id),
                )
                .map(drop)
            },
        )
    }

    /// Whether a lease of a live process pins `kind`/`id`.
    pub fn leased(&self, kind: &str, id: &str) -> Result<bool> {
        let holders: Vec<(i32, u64)> = self.read(
            || format!("checking leases on {kind} {id}"),
            |conn| {
                let mut stmt = conn.prepare(
                    "SELECT l.pid, l.start_time FROM lease_resources r
                     JOIN leases l ON l.id = r.lease
                     WHERE r.kind = ?1 AND r.id = ?2",
                )?;
                let rows = stmt.query_map((kind, id), |r| Ok((r.get(0)?, r.get(1)?)))?;
                rows.collect()
            },
        )?;
        Ok(holders.into_iter().any(|(pid, start)| alive(pid, start)))
    }

    pub(crate) fn delete_lease(&self, id: i64) -> Result<()> {
        self.write(
            || format!("releasing lease {id}"),
            |tx| {
                tx.execute("DELETE FROM leases WHERE id = ?1", [id])
                    .map(drop)
            },
        )
    }
}

/// State letter and start time (clock ticks after boot) from `/proc/<pid>/stat`.
pub(crate) fn stat(pid: i32) -> io::Result<(u8, u64)> {
    let text = std::fs::read_to_string(format!("/proc/{pid}/stat"))?;
    // `pid (comm) state ...`: comm may hold spaces and parentheses, so split after the
    // last `)`. Start time is field 22; the state is field 3.
    let after = text
        .rfind(')')
        .map(|i| &text[i + 1..])
        .ok_or_else(|| io::Error::new(io::ErrorKind::InvalidData, "no `)` in stat"))?;
    let fields: Vec<&str> = after.split_whitespace().collect();
    let state = fields.first().and_then(|s| s.bytes().next());
    let start = fields.get(19).and_then(|s| s.parse().ok());
    match (state, start) {
        (Some(state), Some(start)) => Ok((state, start)),
        _ => Err(io::Error::new(
            io::ErrorKind::InvalidData,
            "short stat line",
        )),
    }
}

fn own_identity() -> Result<(i32, u64)> {
    let pid = rustix::process::getpid().as_raw_nonzero().get();
    let (_, start) = stat(pid).map_err(|source| StoreError::ProcessIdentity {
        pid,
        path: PathBuf::from(format!("/proc/{pid}/stat")),
        source,
    })?;
    Ok((pid, start))
}

/// Whether the process that took a lease still runs. Zombies are dead; when `/proc`
/// cannot tell (an unexpected error), assume alive: keeping a pin is the safe side.
pub(crate) fn alive(pid: i32, start_time: u64) -> bool {
    if pid == KEPT_PID {
        // A named hold (see `pin.rs`): alive until released by name.
        return true;
    }
    match stat(pid) {
        Ok((state, start)) => start == start_time && state != b'Z' && state != b'X',
        Err(e) if e.kind() == io::ErrorKind::NotFound => false,
        Err(e) if e.raw_os_error() == Some(rustix::io::Errno::SRCH.raw_os_error()) => false,
        Err(_) => true,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_lease_pins_until_dropped_or_released() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(dir.path()).unwrap();
        assert!(!store.leased("blob", "sha256:aa").unwrap());
        let lease = store.lease("build one").unwrap();
        assert_eq!(lease.holder(), "build one");
        store.lease_add(&lease, "blob", "sha256:aa").unwrap();
        store.lease_add(&lease, "blob", "sha256:aa").unwrap(); // idempotent
        store.lease_add(&lease, "snapshot", "s1").unwrap();
        assert!(store.leased("blob", "sha256:aa").unwrap());
        assert!(store.leased("snapshot", "s1").unwrap());
        assert!(!store.leased("snapshot", "sha256:aa").unwrap());

        let other = store.lease("build two").unwrap();
        store.lease_add(&other, "snapshot", "s1").unwrap();
        drop(lease);
        assert!(!store.leased("blob", "sha256:aa").unwrap());
        assert!(
            store.leased("snapshot", "s1").unwrap(),
            "still pinned by the other lease"
        );
        other.release().unwrap();
        assert!(!store.leased("snapshot", "s1").unwrap());
        let rows: u32 = store
            .read(|| "test".into(), |c| {
                c.query_row("SELECT (SELECT COUNT(*) FROM leases) + (SELECT COUNT(*) FROM lease_resources)", [], |r| r.get(0))
            })
            .unwrap();
        assert_eq!(rows, 0);
    }

    #[test]
    fn leases_of_dead_or_reused_pids_are_expired_and_pruned() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(dir.path()).unwrap();
        let (me, my_start) = own_identity().unwrap();
        let mut child = std::process::Command::new("true").spawn().unwrap();
        let dead_pid = child.id() as i32;
        child.wait().unwrap();
        store
            .write(
                || "test".into(),
                |tx| {
                    // A reaped process, and this pid with another start time (pid reuse).
                    tx.execute(
                        "INSERT INTO leases (id, holder, pid, start_time, created) VALUES
                     (100, 'dead', ?1, 1, 0), (101, 'reused', ?2, ?3, 0), (102, 'live', ?2, ?4, 0)",
                        (dead_pid, me, my_start + 1, my_start),
                    )?;
                    tx.execute(
                        "INSERT INTO lease_resources (lease, kind, id) VALUES
                     (100, 'blob', 'a'), (101, 'blob', 'b'), (102, 'blob', 'c')",
                        [],
                    )
                },
            )
            .unwrap();
        assert!(!store.leased("blob", "a").unwrap());
        assert!(!store.leased("blob", "b").unwrap());
        assert!(store.leased("blob", "c").unwrap());

        let _fresh = store.lease("fresh").unwrap();
        let ids: Vec<i64> = store
            .read(
                || "test".into(),
                |c| {
                    let mut s = c.prepare("SELECT lease FROM lease_resources ORDER BY lease")?;
                    let rows = s.query_map([], |r| r.get(0))?;
                    rows.collect()
                },
            )
            .unwrap();
        assert_eq!(ids, vec![102], "dead leases pruned with their resources");
    }

    #[test]
    fn stat_parses_this_process() {
        let (me, start) = own_identity().unwrap();
        assert!(alive(me, start));
        assert!(!alive(me, start.wrapping_add(1)));
    }
}
