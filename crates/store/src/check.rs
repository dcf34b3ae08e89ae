//! `strata system check`: verifying the store and repairing what can be repaired.
//!
//! [`Store::check`] reads everything: the database (`PRAGMA integrity_check` and
//! `foreign_key_check`), every blob (streamed through sha256 and compared with its
//! name), the names under `blobs/` and `layers/`, every image's manifest, config and
//! layers, every compression row's blob, every cache record's files (through the
//! caller's [`Interpret`], as garbage collection does), leases of dead processes, and
//! what opening the store found in `tmp/`. Layer *contents* are the snapshotter's: the
//! caller verifies them and passes the corrupt ones back to [`Store::repair`] as
//! [`Problem::CorruptLayer`].
//!
//! [`Store::repair`] removes what is broken so the next build rebuilds it: corrupt blobs
//! and layers and stray files first (moved into this session's `tmp/`, then deleted, so
//! a crash leaves nothing half-removed under a name), then — checked again against what
//! is left — cache records, image names and compression rows that point at missing
//! files, and dead leases. The database itself is never rewritten.

use std::io::{self, Read};
use std::path::{Path, PathBuf};

use serde::Serialize;
use strata_digest::Digest;

use crate::gc::{Interpret, Resource};
use crate::{Result, Store};

/// One finding.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "problem", rename_all = "snake_case")]
pub enum Problem {
    /// `PRAGMA integrity_check` or `foreign_key_check` reported this.
    Database { message: String },
    /// The blob's content hashes to something else.
    CorruptBlob { digest: Digest, actual: Digest },
    /// The layer directory's canonical tar hashes to something else (found by the
    /// caller, which owns layer contents).
    CorruptLayer { diff_id: Digest, actual: Digest },
    /// Something under `blobs/` or `layers/` that the store never writes there (a
    /// checkpoint file without its layer, a file that is not named by a digest).
    Stray { path: PathBuf },
    /// An image name whose manifest, config or a layer is missing.
    ImagePart {
        image: String,
        part: String,
        digest: Digest,
    },
    /// A compression row whose blob is missing.
    CompressedBlob { diff_id: Digest, blob: Digest },
    /// A cache record that references a missing file: the solver treats it as a miss.
    DanglingRecord {
        key: Digest,
        what: String,
        missing: String,
    },
    /// A lease of a process that is gone (expired; pruned when the next lease is taken).
    DeadLease { id: i64, holder: String, pid: i32 },
    /// A dead process's `tmp/` entry that opening the store could not remove.
    TmpLeftover { path: PathBuf, error: String },
}

impl Problem {
    /// Damage makes `system check` fail; the rest are expected after crashes and cost
    /// nothing but disk space or a cache miss.
    pub fn is_damage(&self) -> bool {
        !matches!(
            self,
            Problem::DanglingRecord { .. }
                | Problem::DeadLease { .. }
                | Problem::TmpLeftover { .. }
        )
    }
}

/// What [`Store::check`] found.
#[derive(Debug, Clone, Default, Serialize)]
pub struct CheckReport {
    pub problems: Vec<Problem>,
    /// Blobs read and hashed.
    pub blobs: usize,
    pub blob_bytes: u64,
    pub images: usize,
    pub records: usize,
    /// Dead processes' `tmp/` entries removed when the store was opened.
    pub tmp_removed: Vec<PathBuf>,
}

impl Store {
    /// Checks everything but layer contents (see the module docs).
    pub fn check(&self, interpret: Interpret<'_>) -> Result<CheckReport> {
        let mut report = CheckReport {
            tmp_removed: self.tmp_leftovers().removed.clone(),
            ..CheckReport::default()
        };
        for message in self.database_messages()? {
            report.problems.push(Problem::Database { message });
        }
        self.check_blobs(&mut report)?;
        self.check_strays(&mut report)?;
        self.check_references(interpret, &mut report)?;
        for (path, error) in &self.tmp_leftovers().failed {
            report.problems.push(Problem::TmpLeftover {
                path: path.clone(),
                error: error.clone(),
            });
        }
        Ok(report)
    }

    /// Removes what `problems` (from [`Store::check`], plus the caller's corrupt
    /// layers) name as broken, then what points at files that are gone. Returns what
    /// it removed.
    pub fn repair(&self, interpret: Interpret<'_>, problems: &[Problem]) -> Result<Vec<Problem>> {
        let trash = tempfile::Builder::new()
            .prefix("repair-")
            .tempdir_in(self.tmp_dir())?;
        let mut done = Vec::new();
        for p in problems {
            let paths = match p {
                Problem::CorruptBlob { digest, .. } => Resource::Blob(*digest).paths(self.root()),
                Problem::CorruptLayer { diff_id, .. } => {
                    Resource::Layer(*diff_id).paths(self.root())
                }
                Problem::Stray { path } => vec![path.clone()],
                _ => continue,
            };
            for (i, path) in paths.into_iter().enumerate() {
                let dest = trash.path().join(format!("{}-{i}", done.len()));
                match fs_err::rename(&path, &dest) {
                    Ok(()) => {}
                    Err(e) if e.kind() == io::ErrorKind::NotFound => {}
                    Err(e) => return Err(e.into()),
                }
            }
            done.push(p.clone());
        }
        trash.close()?;
        // References, judged against what is left now.
        let mut after = CheckReport::default();
        self.check_references(interpret, &mut after)?;
        for p in after.problems {
            let removed = match &p {
                Problem::ImagePart { image, .. } => self.remove_image(image)?,
                Problem::CompressedBlob { diff_id, blob } => self.write(
                    || format!("deleting the compression row of {diff_id}"),
                    |tx| {
                        tx.execute(
                            "DELETE FROM compressed WHERE diff_id = ?1 AND blob = ?2",
                            (diff_id.to_string(), blob.to_string()),
                        )
                        .map(|n| n > 0)
                    },
                )?,
                Problem::DanglingRecord { key, .. } => self.write(
                    || format!("deleting cache record {key}"),
                    |tx| {
                        tx.execute(
                            "DELETE FROM cache_records WHERE key = ?1",
                            [key.to_string()],
                        )
                        .map(|n| n > 0)
                    },
                )?,
                Problem::DeadLease { id, .. } => self.write(
                    || format!("deleting lease {id}"),
                    |tx| {
                        tx.execute("DELETE FROM leases WHERE id = ?1", [id])
                            .map(|n| n > 0)
                    },
                )?,
                _ => false,
            };
            if removed {
                done.push(p);
            }
        }
        Ok(done)
    }

    fn database_messages(&self) -> Result<Vec<String>> {
        self.read(
            || "checking the database".into(),
            |conn| {
                let mut out: Vec<String> = {
                    let mut stmt = conn.prepare("PRAGMA integrity_check")?;
                    let rows = stmt.query_map([], |r| r.get::<_, String>(0))?;
                    rows.collect::<rusqlite::Result<_>>()?
                };
                out.retain(|m| m != "ok");
                let mut stmt = conn.prepare("PRAGMA foreign_key_check")?;
                let rows = stmt.query_map([], |r| {
                    Ok(format!(
                        "row {} of {} references a missing row of {}",
                        r.get::<_, i64>(1)?,
                        r.get::<_, String>(0)?,
                        r.get::<_, String>(2)?
                    ))
                })?;
                out.extend(rows.collect::<rusqlite::Result<Vec<_>>>()?);
                Ok(out)
            },
        )
    }

    /// Hashes every blob, streaming.
    fn check_blobs(&self, report: &mut CheckReport) -> Result<()> {
        let mut buf = vec![0u8; 1 << 20];
        for (name, path) in entries(&self.root().join("blobs/sha256"))? {
            let digest = match format!("sha256:{name}").parse::<Digest>() {
                Ok(d) if path.is_file() => d,
                _ => {
                    report.problems.push(Problem::Stray { path });
                    continue;
                }
            };
            let mut file = match fs_err::File::open(&path) {
                Ok(f) => f,
                Err(e) if e.kind() == io::ErrorKind::NotFound => continue, // collected
                Err(e) => return Err(e.into()),
            };
            let mut hasher = strata_digest::HashingWriter::new(io::sink());
            loop {
                let n = file.read(&mut buf)?;
                if n == 0 {
                    break;
                }
                io::Write::write_all(&mut hasher, &buf[..n])?;
            }
            let (actual, size, _) = hasher.finish();
            report.blobs += 1;
            report.blob_bytes += size;
            if actual != digest {
                report
                    .problems
                    .push(Problem::CorruptBlob { digest, actual });
            }
        }
        Ok(())
    }

    /// Names under `layers/` that are neither a layer directory nor the checkpoint
    /// file of one.
    fn check_strays(&self, report: &mut CheckReport) -> Result<()> {
        let layers = self.layers_dir();
        for (name, path) in entries(&layers)? {
            let (hex, is_ckpt) = match name.strip_suffix(".ckpt") {
                Some(hex) => (hex, true),
                None => (name.as_str(), false),
            };
            let named = format!("sha256:{hex}").parse::<Digest>().is_ok();
            let ok = named
                && if is_ckpt {
                    path.is_file() && layers.join(hex).is_dir()
                } else {
                    path.is_dir()
                };
            if !ok {
                report.problems.push(Problem::Stray { path });
            }
        }
        Ok(())
    }

    /// Images, compression rows, cache records and leases against what is on disk.
    fn check_references(&self, interpret: Interpret<'_>, report: &mut CheckReport) -> Result<()> {
        let exists = |r: &Resource| match r {
            Resource::Blob(d) => self.blob_path(d).is_file(),
            Resource::Layer(d) => self.layers_dir().join(d.hex()).is_dir(),
            Resource::CacheMount(n) => self.root().join("cache-mounts").join(n).is_dir(),
        };
        for (name, image) in self.images()? {
            report.images += 1;
            let mut parts = vec![("manifest".to_string(), image.manifest)];
            parts.push(("config".to_string(), image.config));
            if let Ok(bytes) = self.read_blob(&image.manifest) {
                parts.extend(
                    manifest_layers(&bytes)
                        .into_iter()
                        .map(|d| ("layer".into(), d)),
                );
            }
            for (part, digest) in parts {
                // An image built here holds its layers uncompressed, by diffID.
                let present = exists(&Resource::Blob(digest))
                    || (part == "layer" && exists(&Resource::Layer(digest)));
                if !present {
                    report.problems.push(Problem::ImagePart {
                        image: name.clone(),
                        part,
                        digest,
                    });
                }
            }
        }
        for (diff_id, blob) in self.compressed_rows()? {
            // The uncompressed form of a layer built here is its layer directory.
            if !exists(&Resource::Blob(blob)) && !exists(&Resource::Layer(blob)) {
                report
                    .problems
                    .push(Problem::CompressedBlob { diff_id, blob });
            }
        }
        for (key, record) in self.cache_records()? {
            report.records += 1;
            let info = interpret(&key, &record);
            if let Some(r) = info.refs.iter().find(|r| !exists(r)) {
                report.problems.push(Problem::DanglingRecord {
                    key,
                    what: info.what.clone(),
                    missing: format!("{} {}", r.kind(), r.id()),
                });
            }
        }
        for (id, holder, pid) in self.dead_leases()? {
            report.problems.push(Problem::DeadLease { id, holder, pid });
        }
        Ok(())
    }

    fn dead_leases(&self) -> Result<Vec<(i64, String, i32)>> {
        let rows: Vec<(i64, String, i32, u64)> = self.read(
            || "listing leases".into(),
            |conn| {
                let mut stmt = conn.prepare("SELECT id, holder, pid, start_time FROM leases")?;
                let rows =
                    stmt.query_map([], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?)))?;
                rows.collect()
            },
        )?;
        Ok(rows
            .into_iter()
            .filter(|(_, _, pid, start)| !crate::lease::alive(*pid, *start))
            .map(|(id, holder, pid, _)| (id, holder, pid))
            .collect())
    }
}

/// The layer digests of a manifest (none for an index or unparsable bytes).
fn manifest_layers(bytes: &[u8]) -> Vec<Digest> {
    let Ok(v) = serde_json::from_slice::<serde_json::Value>(bytes) else {
        return Vec::new();
    };
    v["layers"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|l| l["digest"].as_str()?.parse().ok())
        .collect()
}

/// (name, path) of each entry of `dir`, sorted; none if `dir` is missing.
fn entries(dir: &Path) -> Result<Vec<(String, PathBuf)>> {
    let read = match fs_err::read_dir(dir) {
        Ok(r) => r,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(e) => return Err(e.into()),
    };
    let mut out = Vec::new();
    for entry in read {
        let entry = entry?;
        out.push((
            entry.file_name().to_string_lossy().into_owned(),
            entry.path(),
        ));
    }
    out.sort();
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{CacheRecord, ImageRecord, RecordInfo, RecordKind};

    /// Records hold a layer digest string; they reference that layer.
    fn interpret(_: &Digest, rec: &CacheRecord) -> RecordInfo {
        RecordInfo {
            kind: RecordKind::Regular,
            refs: rec
                .value
                .as_str()
                .and_then(|s| s.parse().ok())
                .map(Resource::Layer)
                .into_iter()
                .collect(),
            derived_from: None,
            what: rec.description.clone(),
        }
    }

    fn record(layer: &Digest) -> CacheRecord {
        CacheRecord {
            value: serde_json::Value::String(layer.to_string()),
            created: 1,
            last_used: 1,
            use_count: 0,
            description: "[2/2] RUN make".into(),
            size: 0,
        }
    }

    /// A store with an image (manifest, config, one layer directory), a cache record
    /// of that layer and a compression row: all consistent.
    fn healthy() -> (tempfile::TempDir, Store, Digest, Digest) {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(dir.path()).unwrap();
        let layer = strata_digest::sha256(b"layer");
        std::fs::create_dir(store.layers_dir().join(layer.hex())).unwrap();
        let config = store.put_bytes(b"{\"config\":{}}").unwrap();
        let manifest = store
            .put_bytes(
                serde_json::json!({"config": {"digest": config.to_string()},
                    "layers": [{"digest": layer.to_string()}]})
                .to_string()
                .as_bytes(),
            )
            .unwrap();
        let image = ImageRecord {
            manifest,
            config,
            media_type: "application/vnd.oci.image.manifest.v1+json".into(),
            size: 1,
            created: None,
            platform: "linux/amd64".into(),
        };
        store.put_image("app:latest", &image).unwrap();
        let gz = store.put_bytes(b"gzip of the layer").unwrap();
        store.record_compressed(&layer, "gzip", 6, &gz, 17).unwrap();
        let key = strata_digest::sha256(b"key");
        store.cache_put(&key, &record(&layer)).unwrap();
        (dir, store, config, gz)
    }

    #[test]
    fn a_healthy_store_has_no_problems() {
        let (_dir, store, _, _) = healthy();
        let report = store.check(&interpret).unwrap();
        assert_eq!(report.problems, []);
        assert_eq!((report.blobs, report.images, report.records), (3, 1, 1));
    }

    #[test]
    fn a_corrupt_blob_is_found_and_repair_removes_it_and_what_needs_it() {
        let (_dir, store, config, _) = healthy();
        let path = store.blob_path(&config);
        let mut bytes = std::fs::read(&path).unwrap();
        bytes[0] ^= 0x20;
        std::fs::write(&path, &bytes).unwrap();
        let report = store.check(&interpret).unwrap();
        let corrupt = Problem::CorruptBlob {
            digest: config,
            actual: strata_digest::sha256(&bytes),
        };
        assert_eq!(report.problems, std::slice::from_ref(&corrupt));
        assert!(report.problems[0].is_damage());

        let done = store.repair(&interpret, &report.problems).unwrap();
        let missing = Problem::ImagePart {
            image: "app:latest".into(),
            part: "config".into(),
            digest: config,
        };
        assert_eq!(done, [corrupt, missing]);
        assert!(!path.exists());
        assert_eq!(store.image("app:latest").unwrap(), None);
        assert_eq!(store.check(&interpret).unwrap().problems, []);
    }

    #[test]
    fn repairing_a_corrupt_layer_removes_it_its_checkpoints_and_its_records() {
        let (_dir, store, _, _) = healthy();
        let layer = strata_digest::sha256(b"layer");
        let ckpt = store.layers_dir().join(format!("{}.ckpt", layer.hex()));
        std::fs::write(&ckpt, b"checkpoints").unwrap();
        let corrupt = Problem::CorruptLayer {
            diff_id: layer,
            actual: strata_digest::sha256(b"other"),
        };
        let done = store
            .repair(&interpret, std::slice::from_ref(&corrupt))
            .unwrap();
        assert_eq!(done.first(), Some(&corrupt));
        assert!(!store.layers_dir().join(layer.hex()).exists() && !ckpt.exists());
        assert!(store.cache_records().unwrap().is_empty());
        assert_eq!(store.image("app:latest").unwrap(), None);
        assert_eq!(store.check(&interpret).unwrap().problems, []);
    }

    #[test]
    fn missing_files_strays_and_dead_leases_are_found_and_repaired() {
        let (_dir, store, _, gz) = healthy();
        let layer = strata_digest::sha256(b"layer");
        std::fs::remove_dir(store.layers_dir().join(layer.hex())).unwrap();
        std::fs::remove_file(store.blob_path(&gz)).unwrap();
        let stray = store.layers_dir().join("half-written");
        std::fs::create_dir(&stray).unwrap();
        let orphan_ckpt = store.layers_dir().join(format!("{}.ckpt", gz.hex()));
        std::fs::write(&orphan_ckpt, b"x").unwrap();
        let mut child = std::process::Command::new("true").spawn().unwrap();
        let dead = child.id() as i32;
        child.wait().unwrap();
        store
            .write(
                || "test".into(),
                |tx| {
                    tx.execute(
                        "INSERT INTO leases (id, holder, pid, start_time, created)
                         VALUES (7, 'killed build', ?1, 1, 0)",
                        [dead],
                    )
                },
            )
            .unwrap();

        let report = store.check(&interpret).unwrap();
        let kinds: Vec<&str> = report
            .problems
            .iter()
            .map(|p| match p {
                Problem::Stray { .. } => "stray",
                Problem::ImagePart { .. } => "image",
                Problem::CompressedBlob { .. } => "compressed",
                Problem::DanglingRecord { .. } => "record",
                Problem::DeadLease { .. } => "lease",
                _ => "other",
            })
            .collect();
        assert_eq!(
            kinds,
            ["stray", "stray", "image", "compressed", "record", "lease"],
            "{:?}",
            report.problems
        );
        let damaged = report.problems.iter().filter(|p| p.is_damage()).count();
        assert_eq!(
            damaged, 4,
            "dangling records and dead leases are not damage"
        );

        let done = store.repair(&interpret, &report.problems).unwrap();
        assert_eq!(done.len(), 6, "{done:?}");
        assert!(!stray.exists() && !orphan_ckpt.exists());
        assert_eq!(store.check(&interpret).unwrap().problems, []);
        assert!(store.cache_records().unwrap().is_empty());
        assert_eq!(store.compressed(&layer, "gzip", 6).unwrap(), None);
    }
}
