//! Garbage collection: mark and sweep from roots.
//!
//! Roots are image names (name → manifest → config and layers, by blob digest and, for
//! images this store built, by layer diffID), the cache records that are kept, and the
//! pins of live processes (`pin.rs`). What a record references is known to the code
//! that wrote it, not to the store, so callers pass an [`Interpret`] function (the
//! solver's `strata_ops::record_info`).
//!
//! Removing a record removes only what no kept record, image or pin references: a
//! recent record keeps the layers it shares with its ancestors, but an old record's
//! own layer goes with it, so one recent descendant never keeps a whole ancestry alive.
//!
//! Crash safety: records (and compression rows) are deleted in one transaction first;
//! then, in a second `BEGIN IMMEDIATE` transaction that re-reads records, images and
//! pins, each doomed file is renamed into this process's `tmp/` session and the
//! transaction commits; only then are the files deleted. A crash at any point leaves
//! either unreferenced files under their names (swept by the next collection, which
//! also sweeps leftovers of crashed builds) or files in a dead session's `tmp/`
//! directory (removed by the next `Store::open`). A leftover is only swept when it is
//! older than every live lease, so a running build's newly stored, not yet pinned
//! layers are safe.

use std::collections::{BTreeMap, BTreeSet};
use std::path::PathBuf;

use serde::Serialize;
use strata_digest::Digest;

use crate::usage::DiskUsage;
use crate::{CacheRecord, Result, Store};

/// A thing on disk that garbage collection may remove.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize)]
#[serde(tag = "kind", content = "id", rename_all = "kebab-case")]
pub enum Resource {
    /// `blobs/sha256/<hex>`.
    Blob(Digest),
    /// `layers/<hex>/` and `layers/<hex>.ckpt`.
    Layer(Digest),
    /// `cache-mounts/<name>/`.
    CacheMount(String),
}

impl Resource {
    /// The lease-resource kind.
    pub fn kind(&self) -> &'static str {
        match self {
            Resource::Blob(_) => "blob",
            Resource::Layer(_) => "layer",
            Resource::CacheMount(_) => "cache-mount",
        }
    }

    pub fn id(&self) -> String {
        match self {
            Resource::Blob(d) | Resource::Layer(d) => d.to_string(),
            Resource::CacheMount(n) => n.clone(),
        }
    }

    fn from_kind(kind: &str, id: &str) -> Option<Resource> {
        match kind {
            "blob" => id.parse().ok().map(Resource::Blob),
            "layer" => id.parse().ok().map(Resource::Layer),
            "cache-mount" => Some(Resource::CacheMount(id.to_string())),
            _ => None,
        }
    }

    /// The paths that make it up, under the store at `root`.
    pub(crate) fn paths(&self, root: &std::path::Path) -> Vec<PathBuf> {
        match self {
            Resource::Blob(d) => vec![root.join("blobs/sha256").join(d.hex())],
            Resource::Layer(d) => vec![
                root.join("layers").join(format!("{}.ckpt", d.hex())),
                root.join("layers").join(d.hex()),
            ],
            Resource::CacheMount(n) => vec![root.join("cache-mounts").join(n)],
        }
    }
}

/// The lease-resource kind that pins a cache record itself.
pub const RECORD_KIND: &str = "cache";

/// What kind of work a record holds (the `type=` of `docker builder prune --filter`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize)]
pub enum RecordKind {
    #[serde(rename = "regular")]
    Regular,
    #[serde(rename = "source.image")]
    SourceImage,
    #[serde(rename = "source.local")]
    SourceLocal,
    #[serde(rename = "source.http")]
    SourceHttp,
    #[serde(rename = "exec.cachemount")]
    ExecCacheMount,
    #[serde(rename = "internal")]
    Internal,
}

impl RecordKind {
    pub const ALL: [RecordKind; 6] = [
        RecordKind::Regular,
        RecordKind::SourceImage,
        RecordKind::SourceLocal,
        RecordKind::SourceHttp,
        RecordKind::ExecCacheMount,
        RecordKind::Internal,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            RecordKind::Regular => "regular",
            RecordKind::SourceImage => "source.image",
            RecordKind::SourceLocal => "source.local",
            RecordKind::SourceHttp => "source.http",
            RecordKind::ExecCacheMount => "exec.cachemount",
            RecordKind::Internal => "internal",
        }
    }

    pub fn parse(s: &str) -> Option<RecordKind> {
        RecordKind::ALL.into_iter().find(|k| k.as_str() == s)
    }
}

/// What a record references, as the code that wrote it understands it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct RecordInfo {
    pub kind: RecordKind,
    /// Bottom to top; the last one is what the record itself made.
    pub refs: Vec<Resource>,
    /// The blob this record's result was extracted from (a pulled layer): the record
    /// belongs to any image that holds that blob.
    pub derived_from: Option<Digest>,
    /// For people: the instruction and stage, or the cache mount's id and target.
    pub what: String,
}

impl RecordInfo {
    /// The resource the record made (its top layer, its cache mount), if any.
    pub fn own(&self) -> Option<&Resource> {
        self.refs.last()
    }
}

/// Interprets a record's value.
pub type Interpret<'a> = &'a dyn Fn(&Digest, &CacheRecord) -> RecordInfo;

/// One cache record with what the collector knows of it.
#[derive(Debug, Clone)]
pub struct RecordEntry {
    pub key: Digest,
    pub record: CacheRecord,
    pub info: RecordInfo,
    /// Everything it references is part of a named image.
    pub in_use: bool,
    /// A live process pins it.
    pub leased: bool,
}

/// A consistent-enough picture of the store for planning a collection.
#[derive(Debug, Clone)]
pub struct GcState {
    pub usage: DiskUsage,
    pub records: Vec<RecordEntry>,
    /// Resources of named images.
    pub image_refs: BTreeSet<Resource>,
    /// Resources pinned by live processes.
    pub pinned: BTreeSet<Resource>,
    /// Creation (Unix seconds) of the oldest live lease.
    pub oldest_lease: Option<u64>,
    /// (diffID, blob) compression rows.
    compressed: Vec<(Digest, Digest)>,
}

/// What to collect.
pub struct PruneOptions<'a> {
    /// Also records whose result is part of a named image.
    pub all: bool,
    /// Stop removing (least recently used first) once the build cache is this small.
    pub keep_storage: Option<u64>,
    /// Only records this accepts.
    pub filter: &'a dyn Fn(&RecordEntry) -> bool,
    /// Also remove leftover blobs no image, record or pin references (`system prune`).
    pub orphan_blobs: bool,
}

/// What a collection removed.
#[derive(Debug, Clone, Default, Serialize)]
pub struct PruneReport {
    /// The records removed, with what they were.
    pub records: Vec<(Digest, RecordInfo)>,
    /// Resources (files and directories) removed.
    pub resources: usize,
    /// Bytes freed (as counted by the disk-usage scan before removal).
    pub freed: u64,
    /// Bytes of build cache left (as [`GcState::cache_size`] counts them).
    pub cache_size: u64,
}

struct SweepPlan {
    /// Files to move out, layers and cache mounts first.
    doomed: Vec<Resource>,
    /// Layers (by diffID) whose compression rows go.
    dead_rows: BTreeSet<Digest>,
    /// Records when planned.
    records: usize,
}

struct Pins {
    resources: BTreeSet<Resource>,
    records: BTreeSet<Digest>,
    oldest: Option<u64>,
}

impl Store {
    /// Reads everything a collection plans with, and scans the disk.
    pub fn gc_state(&self, interpret: Interpret<'_>) -> Result<GcState> {
        // The write-ahead log and the shared-memory index are left out: the last
        // connection to close deletes both (see `checkpoint`). So is this process's
        // own scratch directory.
        let root = self.root();
        let transient = [
            root.join("meta.db-shm"),
            root.join("meta.db-wal"),
            self.tmp_dir().to_path_buf(),
        ];
        let usage = DiskUsage::scan_skipping(root, &transient)?;
        let pins = self.read_pins()?;
        let (image_refs, records) = self.marks(interpret)?;
        let compressed = self.compressed_rows()?;
        let records = records
            .into_iter()
            .map(|(key, record, info)| RecordEntry {
                in_use: !info.refs.is_empty() && info.refs.iter().all(|r| image_refs.contains(r)),
                leased: pins.records.contains(&key),
                key,
                record,
                info,
            })
            .collect();
        Ok(GcState {
            usage,
            records,
            image_refs,
            pinned: pins.resources,
            oldest_lease: pins.oldest,
            compressed,
        })
    }

    /// Folds the write-ahead log into `meta.db` (best effort), so that a disk-usage
    /// scan counts the database at the size it keeps once every process closes it.
    /// It syncs the file system: for reports, not for the collection after a build.
    pub fn checkpoint(&self) {
        let _ = self.read(
            || "checkpointing the write-ahead log".into(),
            |conn| conn.query_row("PRAGMA wal_checkpoint(TRUNCATE)", [], |_| Ok(())),
        );
    }

    /// Removes cache records chosen by `opts`, then every file that nothing references
    /// any more.
    pub fn prune(&self, interpret: Interpret<'_>, opts: &PruneOptions<'_>) -> Result<PruneReport> {
        let state = self.gc_state(interpret)?;
        let doomed = state.choose(opts);
        let removed = self.delete_records(&doomed)?;
        let (resources, freed) = self.sweep(&state, interpret, opts.orphan_blobs)?;
        let cache_size = state.cache_size(&removed);
        let records = state
            .records
            .iter()
            .filter(|e| removed.contains(&e.key))
            .map(|e| (e.key, e.info.clone()))
            .collect();
        Ok(PruneReport {
            records,
            resources,
            freed,
            cache_size,
        })
    }

    /// Deletes the records (one transaction), skipping any a live process pinned
    /// meanwhile; returns those deleted.
    fn delete_records(&self, keys: &[Digest]) -> Result<BTreeSet<Digest>> {
        if keys.is_empty() {
            return Ok(BTreeSet::new());
        }
        self.write(
            || format!("deleting {} cache record(s)", keys.len()),
            |tx| {
                let pins = pins_in(tx)?;
                let mut deleted = BTreeSet::new();
                for k in keys {
                    if pins.records.contains(k) {
                        continue;
                    }
                    if tx.execute("DELETE FROM cache_records WHERE key = ?1", [k.to_string()])? > 0
                    {
                        deleted.insert(*k);
                    }
                }
                Ok(deleted)
            },
        )
    }

    /// Removes every resource on disk that no record, image or pin references now,
    /// and the compression rows of layers that go. Returns (resources, bytes).
    ///
    /// Three steps: plan from the records, images and pins as they are now; delete the
    /// compression rows of the layers that go (one transaction); then, holding the
    /// write lock (a transaction that writes nothing), check the pins again and move
    /// each doomed file out. A crash after a move leaves no row or record that names
    /// the file; a crash before it leaves an unreferenced file the next run sweeps.
    fn sweep(
        &self,
        before: &GcState,
        interpret: Interpret<'_>,
        orphan_blobs: bool,
    ) -> Result<(usize, u64)> {
        let plan = self.plan_sweep(before, interpret, orphan_blobs)?;
        if !plan.dead_rows.is_empty() {
            self.write(
                || format!("deleting {} compression record(s)", plan.dead_rows.len()),
                |tx| {
                    for diff in &plan.dead_rows {
                        tx.execute(
                            "DELETE FROM compressed WHERE diff_id = ?1",
                            [diff.to_string()],
                        )?;
                    }
                    Ok(())
                },
            )?;
        }
        if plan.doomed.is_empty() {
            return Ok((0, 0));
        }
        let root = self.root().to_path_buf();
        let trash = tempfile::Builder::new()
            .prefix("gc-")
            .tempdir_in(self.tmp_dir())?;
        let moved = self.write(
            || "sweeping unreferenced files".to_string(),
            |tx| {
                // Under the write lock: a build pins in a transaction of its own
                // before it uses a file, so a pin not seen here comes after the move
                // and finds the file gone.
                let pins = pins_in(tx)?;
                let new_records: i64 =
                    tx.query_row("SELECT COUNT(*) FROM cache_records", [], |r| r.get(0))?;
                let mut moved = Vec::new();
                for r in &plan.doomed {
                    if pins.resources.contains(r) {
                        continue;
                    }
                    // Records written since the plan (which pin first, but be exact):
                    // keep every layer and cache mount this time.
                    if new_records > plan.records as i64 && !matches!(r, Resource::Blob(_)) {
                        continue;
                    }
                    let dest = trash.path().join(moved.len().to_string());
                    std::fs::create_dir(&dest).map_err(io_err)?;
                    for (i, p) in r.paths(&root).into_iter().enumerate() {
                        match std::fs::rename(&p, dest.join(i.to_string())) {
                            Ok(()) => {}
                            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
                            Err(e) => return Err(io_err(e)),
                        }
                    }
                    moved.push(r.clone());
                }
                Ok(moved)
            },
        )?;
        let moved_set: BTreeSet<&Resource> = moved.iter().collect();
        let freed = before.usage.freed(&|r| moved_set.contains(r));
        // Deleting the moved files happens outside the transaction; a crash here
        // leaves them in this session's tmp/ directory, which the next open removes.
        trash.close()?;
        Ok((moved.len(), freed))
    }

    /// What a sweep removes, decided from the metadata as it is now.
    fn plan_sweep(
        &self,
        before: &GcState,
        interpret: Interpret<'_>,
        orphan_blobs: bool,
    ) -> Result<SweepPlan> {
        // Everything the earlier picture referenced: what is not referenced now was
        // released by this collection; the rest on disk is a leftover.
        let mut known: BTreeSet<&Resource> = before.image_refs.iter().collect();
        known.extend(before.pinned.iter());
        for e in &before.records {
            known.extend(e.info.refs.iter());
        }
        let (image_refs, records) = self.marks(interpret)?;
        let pins = self.read_pins()?;
        let mut live: BTreeSet<Resource> = image_refs;
        live.extend(pins.resources.iter().cloned());
        for (_, _, info) in &records {
            live.extend(info.refs.iter().cloned());
        }
        let goes = |r: &Resource, ctime: i64, kept: &BTreeSet<Resource>| {
            if live.contains(r) || kept.contains(r) {
                return false;
            }
            if known.contains(r) {
                return true;
            }
            // A leftover: only once older than every live lease (a running build's
            // new files are younger than its lease), blobs only when asked.
            let young = pins.oldest.is_some_and(|oldest| ctime >= oldest as i64);
            !young && (orphan_blobs || !matches!(r, Resource::Blob(_)))
        };
        let mut doomed: Vec<Resource> = before
            .usage
            .objects
            .iter()
            .filter(|(r, u)| !matches!(r, Resource::Blob(_)) && goes(r, u.ctime, &BTreeSet::new()))
            .map(|(r, _)| r.clone())
            .collect();
        // Compressed forms of the layers that stay, stay; rows of layers that go (or
        // are gone and referenced by nothing), go.
        let on_disk = |r: &Resource| before.usage.objects.contains_key(r);
        let mut dead_rows = BTreeSet::new();
        let mut kept = BTreeSet::new();
        for (diff, blob) in &before.compressed {
            let layer = Resource::Layer(*diff);
            let stays = live.contains(&layer) || (on_disk(&layer) && !doomed.contains(&layer));
            if stays {
                kept.insert(Resource::Blob(*blob));
            } else {
                dead_rows.insert(*diff);
            }
        }
        doomed.extend(
            before
                .usage
                .objects
                .iter()
                .filter(|(r, u)| matches!(r, Resource::Blob(_)) && goes(r, u.ctime, &kept))
                .map(|(r, _)| r.clone()),
        );
        Ok(SweepPlan {
            doomed,
            dead_rows,
            records: records.len(),
        })
    }

    /// Resources of named images, and every record with its interpretation.
    #[allow(clippy::type_complexity)]
    fn marks(
        &self,
        interpret: Interpret<'_>,
    ) -> Result<(BTreeSet<Resource>, Vec<(Digest, CacheRecord, RecordInfo)>)> {
        let mut image_refs = BTreeSet::new();
        for (_, image) in self.images()? {
            self.mark_manifest(&image.manifest, &mut image_refs, 0);
            image_refs.insert(Resource::Blob(image.config));
        }
        let records: Vec<(Digest, CacheRecord, RecordInfo)> = self
            .cache_records()?
            .into_iter()
            .map(|(k, r)| {
                let info = interpret(&k, &r);
                (k, r, info)
            })
            .collect();
        // A layer extracted from an image's blob is part of that image.
        for (_, _, info) in &records {
            if let Some(b) = info.derived_from {
                if image_refs.contains(&Resource::Blob(b)) {
                    image_refs.extend(info.refs.iter().cloned());
                }
            }
        }
        Ok((image_refs, records))
    }

    /// Marks a manifest or index blob and what it references (best effort: a missing
    /// or unreadable blob marks only its own name; `strata system check` reports it).
    fn mark_manifest(&self, digest: &Digest, marks: &mut BTreeSet<Resource>, depth: usize) {
        marks.insert(Resource::Blob(*digest));
        let Ok(bytes) = self.read_blob(digest) else {
            return;
        };
        let Ok(v) = serde_json::from_slice::<serde_json::Value>(&bytes) else {
            return;
        };
        let digest_of = |d: &serde_json::Value| d["digest"].as_str().and_then(|s| s.parse().ok());
        if let Some(c) = digest_of(&v["config"]) {
            marks.insert(Resource::Blob(c));
        }
        for l in v["layers"].as_array().into_iter().flatten() {
            if let Some(d) = digest_of(l) {
                // Layers of images built here are stored uncompressed, as layer
                // directories named by the same digest.
                marks.insert(Resource::Blob(d));
                marks.insert(Resource::Layer(d));
            }
        }
        if depth < 4 {
            for m in v["manifests"].as_array().into_iter().flatten() {
                if let Some(d) = digest_of(m) {
                    self.mark_manifest(&d, marks, depth + 1);
                }
            }
        }
    }

    fn read_pins(&self) -> Result<Pins> {
        self.read(|| "reading leases".into(), pins_in)
    }

    pub(crate) fn compressed_rows(&self) -> Result<Vec<(Digest, Digest)>> {
        self.read(
            || "listing compression records".into(),
            |conn| {
                let mut stmt = conn.prepare("SELECT diff_id, blob FROM compressed")?;
                let rows = stmt.query_map([], |r| {
                    Ok((
                        crate::db::digest_column(r, 0)?,
                        crate::db::digest_column(r, 1)?,
                    ))
                })?;
                rows.collect()
            },
        )
    }
}

/// The pins of live processes.
fn pins_in(conn: &rusqlite::Connection) -> rusqlite::Result<Pins> {
    type Row = (i32, u64, u64, Option<String>, Option<String>);
    let rows: Vec<Row> = {
        let mut stmt = conn.prepare(
            "SELECT l.pid, l.start_time, l.created, r.kind, r.id FROM leases l
             LEFT JOIN lease_resources r ON r.lease = l.id",
        )?;
        let rows = stmt.query_map([], |r| {
            Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?, r.get(4)?))
        })?;
        rows.collect::<rusqlite::Result<_>>()?
    };
    let mut alive = BTreeMap::new();
    let mut pins = Pins {
        resources: BTreeSet::new(),
        records: BTreeSet::new(),
        oldest: None,
    };
    for (pid, start, created, kind, id) in rows {
        let live = *alive
            .entry((pid, start))
            .or_insert_with(|| crate::lease::alive(pid, start));
        if !live {
            continue;
        }
        // A named hold runs nothing that could be writing files now.
        if pid != crate::lease::KEPT_PID {
            pins.oldest = Some(pins.oldest.map_or(created, |o: u64| o.min(created)));
        }
        let (Some(kind), Some(id)) = (kind, id) else {
            continue;
        };
        if kind == RECORD_KIND {
            if let Ok(k) = id.parse() {
                pins.records.insert(k);
            }
        } else if let Some(r) = Resource::from_kind(&kind, &id) {
            pins.resources.insert(r);
        }
    }
    Ok(pins)
}

fn io_err(e: std::io::Error) -> rusqlite::Error {
    rusqlite::Error::ToSqlConversionFailure(Box::new(e))
}

impl GcState {
    /// The records a collection with `opts` removes: those the filter accepts, not
    /// pinned, not part of an image unless `all`; with `keep_storage`, least recently
    /// used first and only until the build cache fits.
    pub fn choose(&self, opts: &PruneOptions<'_>) -> Vec<Digest> {
        let mut candidates: Vec<&RecordEntry> = self
            .records
            .iter()
            .filter(|e| !e.leased && (opts.all || !e.in_use) && (opts.filter)(e))
            .collect();
        let Some(keep) = opts.keep_storage else {
            return candidates.iter().map(|e| e.key).collect();
        };
        // A record whose every reference is part of an image frees nothing: keep it.
        candidates.retain(|e| !e.in_use);
        candidates.sort_by_key(|e| (e.record.last_used, e.record.created, e.key));
        let mut shrink = Shrink::new(self);
        let size = self.cache_size(&BTreeSet::new());
        let mut chosen = Vec::new();
        for e in candidates {
            if size - shrink.freed <= keep {
                break;
            }
            shrink.remove(e);
            chosen.push(e.key);
        }
        chosen
    }

    /// Bytes of the build cache (what only records reference, pinned or not) once the
    /// records in `removed` are gone.
    pub fn cache_size(&self, removed: &BTreeSet<Digest>) -> u64 {
        let mut kept: BTreeSet<&Resource> = BTreeSet::new();
        for e in &self.records {
            if !removed.contains(&e.key) {
                kept.extend(e.info.refs.iter());
            }
        }
        let cache: BTreeSet<&Resource> = self
            .records
            .iter()
            .flat_map(|e| e.info.refs.iter())
            .filter(|r| !self.image_refs.contains(*r))
            .collect();
        self.usage.freed(&|r| cache.contains(r))
            - self
                .usage
                .freed(&|r| cache.contains(r) && !kept.contains(r))
    }

    /// Bytes that removing every unpinned, unnamed thing would free.
    pub fn reclaimable(&self) -> u64 {
        let pinned_records: BTreeSet<&Resource> = self
            .records
            .iter()
            .filter(|e| e.leased)
            .flat_map(|e| e.info.refs.iter())
            .collect();
        self.usage.freed(&|r| {
            !self.image_refs.contains(r) && !self.pinned.contains(r) && !pinned_records.contains(r)
        })
    }

    /// Records referencing `r`.
    pub fn users(&self, r: &Resource) -> usize {
        self.records
            .iter()
            .filter(|e| e.info.refs.contains(r))
            .count()
    }
}

/// What removing records one by one frees, kept up to date as they go (reference
/// counts of resources and of the owners of shared inodes), so least-recently-used
/// selection is linear in the records rather than quadratic.
struct Shrink<'a> {
    state: &'a GcState,
    /// Records referencing each resource, among those not removed yet.
    users: BTreeMap<&'a Resource, usize>,
    /// Live owners of each shared inode (`DiskUsage::shared`).
    owners: Vec<usize>,
    /// Shared inodes of each object.
    inodes: BTreeMap<&'a Resource, Vec<usize>>,
    freed: u64,
}

impl<'a> Shrink<'a> {
    fn new(state: &'a GcState) -> Shrink<'a> {
        let mut users: BTreeMap<&Resource, usize> = BTreeMap::new();
        for e in &state.records {
            for r in distinct(&e.info.refs) {
                *users.entry(r).or_default() += 1;
            }
        }
        let mut inodes: BTreeMap<&Resource, Vec<usize>> = BTreeMap::new();
        let mut owners = Vec::new();
        for (i, (_, os)) in state.usage.shared_inodes().iter().enumerate() {
            owners.push(os.len());
            for r in os.iter().flatten() {
                inodes.entry(r).or_default().push(i);
            }
        }
        Shrink {
            state,
            users,
            owners,
            inodes,
            freed: 0,
        }
    }

    fn remove(&mut self, e: &'a RecordEntry) {
        for r in distinct(&e.info.refs) {
            let n = self.users.get_mut(r).expect("counted in new");
            *n -= 1;
            if *n > 0 || self.state.image_refs.contains(r) {
                continue;
            }
            let Some(u) = self.state.usage.objects.get(r) else {
                continue;
            };
            self.freed += u.exclusive;
            for &i in self.inodes.get(r).map_or(&[][..], |v| v.as_slice()) {
                self.owners[i] -= 1;
                if self.owners[i] == 0 {
                    self.freed += self.state.usage.shared_inodes()[i].0;
                }
            }
        }
    }
}

/// `refs` without repeats (a merged chain may hold a layer twice).
fn distinct(refs: &[Resource]) -> BTreeSet<&Resource> {
    refs.iter().collect()
}
