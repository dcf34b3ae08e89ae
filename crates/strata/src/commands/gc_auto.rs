//! The garbage-collection policy of the configuration file (`[gc]`), the collection
//! that runs after each successful build, and the units its settings are written in.
//!
//! ```toml
//! [gc]
//! enabled = true            # default
//! keep-storage = "10GB"     # default; build cache beyond this goes, least recently used first
//! ```

use std::time::Duration;

use anyhow::{bail, Context as _, Result};
use serde::{Deserialize, Serialize};
use strata_store::{PruneOptions, Store};

/// `[gc]` in the configuration file.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
pub struct GcConfig {
    #[serde(default = "yes")]
    pub enabled: bool,
    /// The build cache kept after a build (`10GB`, `512MiB`, bytes).
    #[serde(default = "default_keep")]
    pub keep_storage: String,
}

fn yes() -> bool {
    true
}

fn default_keep() -> String {
    "10GB".into()
}

impl Default for GcConfig {
    fn default() -> Self {
        GcConfig {
            enabled: true,
            keep_storage: default_keep(),
        }
    }
}

/// After a successful build (its result named or written): drops the build's pins and
/// collects least recently used build cache beyond `keep-storage`. A failure is a
/// warning, never a failed build.
pub fn after_build(store: &Store) {
    let cfg = match crate::config::get() {
        Ok(c) => &c.gc,
        Err(e) => {
            eprintln!("warning: no garbage collection after the build: {e:#}");
            return;
        }
    };
    if !cfg.enabled || !grew(store) {
        return;
    }
    if let Err(e) = run(store, cfg) {
        eprintln!("warning: garbage collection after the build failed: {e:#}");
    }
}

/// The build cache's size as the last collection measured it, plus what was stored
/// since (the new layers' and blobs' sizes: an upper bound), in
/// `ROOT/gc-estimate.json`. A build whose estimate stays under `keep-storage` skips
/// the disk-usage scan, which walks every layer (with a 30,000-file context's layers in
/// the store that cost each build 0.2–0.6 s).
#[derive(Debug, Clone, Copy, Serialize, Deserialize)]
struct Estimate {
    /// Bytes of build cache.
    cache_bytes: u64,
    /// When a collection last measured it (Unix seconds).
    measured: u64,
    /// Records created from this time on (Unix seconds) are not counted yet.
    counted_until: u64,
}

/// An estimate older than this is measured again: it cannot see cache mounts that
/// grew without a build using them, nor a layer stored in the second it was counted.
const MEASURE_EVERY: Duration = Duration::from_secs(3600);

const ESTIMATE_FILE: &str = "gc-estimate.json";

fn read_estimate(store: &Store) -> Option<Estimate> {
    let bytes = std::fs::read(store.root().join(ESTIMATE_FILE)).ok()?;
    serde_json::from_slice(&bytes).ok()
}

/// Best effort (temp file in the process's session + rename): a lost estimate only
/// costs the next build a scan.
fn write_estimate(store: &Store, e: Estimate) {
    let tmp = store.tmp_dir().join(ESTIMATE_FILE);
    let ok = serde_json::to_vec(&e)
        .ok()
        .is_some_and(|b| std::fs::write(&tmp, b).is_ok());
    if ok {
        let _ = std::fs::rename(&tmp, store.root().join(ESTIMATE_FILE));
    }
}

/// Now, in Unix seconds.
pub fn unix_now() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}

/// An upper bound of the bytes stored since `t` (Unix seconds): the layers and blobs
/// whose inode changed since (a layer is renamed into place when committed), as
/// [`tree_size`] counts them. A new layer's size is the one its sidecar recorded when
/// it was stored (the walk that named it summed it); only one without a sidecar is
/// walked.
fn added_since(root: &std::path::Path, t: u64) -> std::io::Result<u64> {
    use std::os::unix::fs::MetadataExt;
    let new = |m: &std::fs::Metadata| m.ctime() >= t as i64;
    let mut total = 0;
    for dir in ["layers", "blobs/sha256"] {
        let entries = match std::fs::read_dir(root.join(dir)) {
            Ok(e) => e,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => continue,
            Err(e) => return Err(e),
        };
        for entry in entries {
            let entry = entry?;
            let m = entry.path().symlink_metadata()?;
            if !new(&m) {
                continue;
            }
            let recorded = m
                .is_dir()
                .then(|| strata_snapshot::layer_usage(&entry.path()))
                .flatten();
            total += match recorded {
                Some(below) => m.len() + below,
                None => tree_size(&entry.path(), &m)?,
            };
        }
    }
    Ok(total)
}

/// Apparent sizes, a file with several links counted as size / links: an inode whose
/// every link is new is counted whole, one shared with an older layer (an incremental
/// COPY's unchanged file) only in part, though it adds nothing.
fn tree_size(path: &std::path::Path, m: &std::fs::Metadata) -> std::io::Result<u64> {
    use std::os::unix::fs::MetadataExt;
    let mut total = if m.is_dir() || m.nlink() <= 1 {
        m.len()
    } else {
        m.len() / m.nlink()
    };
    if m.is_dir() {
        for entry in std::fs::read_dir(path)? {
            let entry = entry?;
            total += tree_size(&entry.path(), &entry.metadata()?)?;
        }
    }
    Ok(total)
}

/// The estimate after this process's build, when it proves the cache is still within
/// `keep` without a scan.
fn still_within(store: &Store, keep: u64) -> Option<Estimate> {
    if strata_ops::records::cache_mount_used() {
        return None;
    }
    let now = unix_now();
    let old = read_estimate(store).or_else(|| first_estimate(store, now))?;
    if now.saturating_sub(old.measured) >= MEASURE_EVERY.as_secs() {
        return None;
    }
    let added = added_since(store.root(), old.counted_until).ok()?;
    let new = Estimate {
        cache_bytes: old.cache_bytes.saturating_add(added),
        measured: old.measured,
        counted_until: now,
    };
    (new.cache_bytes <= keep).then_some(new)
}

/// Where no estimate was written yet (a new store, or its file lost): nothing counted,
/// so that [`still_within`] counts every layer and blob from its recorded size, an
/// upper bound, instead of a first scan walking every file of every layer (a cold
/// 30,000-file build in a new root spent 0.3 s on it). Not with cache mounts in the
/// store, which only a scan measures.
fn first_estimate(store: &Store, now: u64) -> Option<Estimate> {
    let mounts = std::fs::read_dir(store.root().join("cache-mounts"));
    if mounts.is_ok_and(|mut m| m.next().is_some()) {
        return None;
    }
    Some(Estimate {
        cache_bytes: 0,
        measured: now,
        counted_until: 0,
    })
}

/// Whether this process may have added to the store: a layer or cache mount stored
/// since it started (the directories' times; `/proc/self`'s is the process's start),
/// a cache mount used, or more than 1 MiB of new blobs. A build that stored nothing
/// (all cached) skips the disk-usage scan: it cannot have grown the cache much.
fn grew(store: &Store) -> bool {
    let Ok(started) = std::fs::metadata("/proc/self").and_then(|m| m.modified()) else {
        return true;
    };
    if strata_ops::records::cache_mount_used() {
        return true;
    }
    let newer = |m: &std::fs::Metadata| m.modified().map_or(true, |t| t >= started);
    let dirs =
        ["layers", "cache-mounts"]
            .iter()
            .any(|d| match std::fs::metadata(store.root().join(d)) {
                Ok(m) => newer(&m),
                Err(e) => e.kind() != std::io::ErrorKind::NotFound,
            });
    // Every build writes its image's small manifest and config; only more counts.
    dirs || match std::fs::read_dir(store.root().join("blobs/sha256")) {
        Ok(entries) => {
            let new_bytes: u64 = entries
                .filter_map(|e| e.ok()?.metadata().ok())
                .filter(|m| newer(m))
                .map(|m| m.len())
                .sum();
            new_bytes >= 1 << 20
        }
        Err(_) => true,
    }
}

fn run(store: &Store, cfg: &GcConfig) -> Result<()> {
    let keep = parse_size(&cfg.keep_storage).context("[gc] keep-storage")?;
    if let Some(e) = still_within(store, keep) {
        write_estimate(store, e);
        return Ok(());
    }
    let measured = unix_now();
    store.release_pins()?;
    let report = store.prune(
        &strata_ops::record_info,
        &PruneOptions {
            all: true,
            keep_storage: Some(keep),
            filter: &|_| true,
            orphan_blobs: false,
        },
    )?;
    write_estimate(
        store,
        Estimate {
            cache_bytes: report.cache_size,
            measured,
            counted_until: measured,
        },
    );
    if !report.records.is_empty() {
        eprintln!(
            "gc: removed {} build cache record(s), {} reclaimed (keep-storage {})",
            report.records.len(),
            crate::progress::plain::human(report.freed),
            cfg.keep_storage
        );
    }
    Ok(())
}

/// `10GB`, `1.5G`, `512MiB`, `100kB`, `4096`: decimal units (kB, MB, GB, TB = 1000ⁿ),
/// binary ones (KiB… and the bare K, M, G, T = 1024ⁿ, as Docker reads them).
pub fn parse_size(s: &str) -> Result<u64> {
    let t = s.trim();
    let split = t
        .find(|c: char| !(c.is_ascii_digit() || c == '.'))
        .unwrap_or(t.len());
    let (num, unit) = t.split_at(split);
    let n: f64 = num
        .parse()
        .with_context(|| format!("{s:?} is not a size (e.g. 10GB, 512MiB, 4096)"))?;
    let mult: u64 = match unit.trim().to_ascii_lowercase().as_str() {
        "" | "b" => 1,
        "kb" => 1000,
        "mb" => 1000_u64.pow(2),
        "gb" => 1000_u64.pow(3),
        "tb" => 1000_u64.pow(4),
        "k" | "kib" => 1 << 10,
        "m" | "mib" => 1 << 20,
        "g" | "gib" => 1 << 30,
        "t" | "tib" => 1 << 40,
        other => {
            bail!("{s:?}: unknown size unit {other:?} (B, kB, MB, GB, TB, KiB, MiB, GiB, TiB)")
        }
    };
    Ok((n * mult as f64) as u64)
}

/// `24h`, `90m`, `1h30m`, `45s`, `7d` (Go-style durations, plus days).
pub fn parse_duration(s: &str) -> Result<Duration> {
    let mut total = 0u64;
    let mut num = String::new();
    let bad = || anyhow::anyhow!("{s:?} is not a duration (e.g. 24h, 90m, 1h30m, 7d)");
    for c in s.trim().chars() {
        if c.is_ascii_digit() {
            num.push(c);
            continue;
        }
        let n: u64 = num.parse().map_err(|_| bad())?;
        num.clear();
        total += n * match c {
            's' => 1,
            'm' => 60,
            'h' => 3600,
            'd' => 86_400,
            _ => return Err(bad()),
        };
    }
    if !num.is_empty() {
        return Err(bad());
    }
    if s.trim().is_empty() {
        return Err(bad());
    }
    Ok(Duration::from_secs(total))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sizes() {
        assert_eq!(parse_size("4096").unwrap(), 4096);
        assert_eq!(parse_size("10GB").unwrap(), 10_000_000_000);
        assert_eq!(parse_size("512MiB").unwrap(), 512 << 20);
        assert_eq!(parse_size("1.5g").unwrap(), 3 << 29);
        assert_eq!(parse_size("100kB").unwrap(), 100_000);
        assert!(parse_size("ten").is_err());
        let e = parse_size("3XB").unwrap_err().to_string();
        assert!(e.contains("unknown size unit"), "{e}");
    }

    #[test]
    fn durations() {
        assert_eq!(parse_duration("24h").unwrap().as_secs(), 86_400);
        assert_eq!(parse_duration("1h30m").unwrap().as_secs(), 5_400);
        assert_eq!(parse_duration("45s").unwrap().as_secs(), 45);
        assert_eq!(parse_duration("7d").unwrap().as_secs(), 604_800);
        for bad in ["", "10", "h", "5w"] {
            assert!(parse_duration(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn config_defaults_and_keys() {
        let c: GcConfig = toml::from_str("").unwrap();
        assert!(c.enabled);
        assert_eq!(c.keep_storage, "10GB");
        let c: GcConfig = toml::from_str("enabled = false\nkeep-storage = \"1GB\"").unwrap();
        assert!(!c.enabled);
        assert_eq!(c.keep_storage, "1GB");
        assert!(toml::from_str::<GcConfig>("keep_storage = \"1GB\"").is_err());
    }
}
