//! `--cache-to …,cache-mounts=true`: the directories of `RUN --mount=type=cache` the
//! build uses (`<store>/cache-mounts/<name>`) exported as gzip layer blobs, and
//! restored on import where the store has none, so ephemeral CI runners stop starting
//! cold. Seeded cache mounts (`from=`) are named by their seed and are left out.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use anyhow::{Context as _, Result};
use strata_graph::{Graph, MountKind, Op, VertexId};
use strata_oci::{media_types, Descriptor};
use strata_snapshot::{Chain, Layers, TarOptions};
use strata_store::Store;

use super::format::MountEntry;

/// The cache mounts (unseeded) the build's RUN steps use: store name → id.
pub fn used(graph: &Graph, target: VertexId) -> BTreeMap<String, String> {
    let mut out = BTreeMap::new();
    for v in graph.closure(target) {
        let Op::Exec(e) = &v.op else { continue };
        for m in e.mounts.iter().filter(|m| m.input.is_none()) {
            if let MountKind::Cache { id, .. } = &m.kind {
                let id = if id.is_empty() { &m.target } else { id };
                out.insert(strata_digest::sha256(id).hex(), id.clone());
            }
        }
    }
    out
}

fn dir(store: &Store, name: &str) -> PathBuf {
    store.root().join("cache-mounts").join(name)
}

/// Bytes of the regular files under `path` (symlinks not followed).
fn size(path: &Path) -> u64 {
    let Ok(entries) = std::fs::read_dir(path) else {
        return 0;
    };
    entries
        .filter_map(|e| e.ok())
        .map(|e| match e.file_type() {
            Ok(t) if t.is_dir() => size(&e.path()),
            Ok(t) if t.is_file() => e.metadata().map(|m| m.len()).unwrap_or(0),
            _ => 0,
        })
        .sum()
}

/// Tars and compresses each used, non-empty cache mount into the store, smallest
/// first while the total stays within `max` bytes; the ones left out are named.
pub fn export(
    store: &Store,
    used: &BTreeMap<String, String>,
    max: u64,
    quiet: bool,
) -> Result<Vec<MountEntry>> {
    let mut sized: Vec<(u64, &String, &String)> = used
        .iter()
        .filter(|(name, _)| dir(store, name).is_dir())
        .map(|(name, id)| (size(&dir(store, name)), name, id))
        .filter(|(s, _, _)| *s > 0)
        .collect();
    sized.sort();
    let mut total = 0u64;
    let mut out = Vec::new();
    for (bytes, name, id) in sized {
        if total + bytes > max {
            if !quiet {
                eprintln!(
                    "warning: cache mount {id:?} ({bytes} bytes) left out: over cache-mounts-max ({max} bytes)"
                );
            }
            continue;
        }
        total += bytes;
        let path = dir(store, name);
        let mut w = store.blob_writer()?;
        let mut gz = flate2::write::GzEncoder::new(&mut w, flate2::Compression::new(6));
        let (diff_id, _) =
            strata_snapshot::write_dir_tar(&path, &mut gz, &TarOptions::default())
                .with_context(|| format!("archiving cache mount {id:?} ({})", path.display()))?;
        gz.finish()?;
        let (blob, size) = w.commit(None)?;
        out.push(MountEntry {
            name: name.clone(),
            id: id.clone(),
            diff_id,
            blob: Descriptor::new(media_types::OCI_LAYER_GZIP, blob, size),
        });
    }
    Ok(out)
}

/// Restores `entry` (its blob already in the store) unless the store has the mount.
pub fn restore(store: &Store, layers: &Layers, entry: &MountEntry) -> Result<bool> {
    let target = dir(store, &entry.name);
    if target.exists() || !is_name(&entry.name) {
        return Ok(false);
    }
    let existed = layers.has(&entry.diff_id);
    if !existed {
        let raw = std::io::BufReader::new(store.open_blob(&entry.blob.digest)?);
        layers.apply(flate2::read::MultiGzDecoder::new(raw), Some(&entry.diff_id))?;
    }
    let base = store.root().join("cache-mounts");
    fs_err::create_dir_all(&base)?;
    // Staged in this process's tmp/ session (same file system), which a killed
    // process does not leave behind, unlike a directory beside the cache mounts.
    let staged = tempfile::Builder::new()
        .prefix("restoring-")
        .tempdir_in(store.tmp_dir())?;
    let content = staged.path().join("content");
    strata_snapshot::materialize(layers, &Chain(vec![entry.diff_id]), &content)?;
    let restored = fs_err::rename(&content, &target);
    if !existed {
        layers.remove(&entry.diff_id)?;
    }
    match restored {
        Ok(()) => Ok(true),
        // Someone made it meanwhile: theirs wins.
        Err(_) if target.exists() => Ok(false),
        Err(e) => Err(e.into()),
    }
}

/// A store name: 64 hex digits (never a path).
fn is_name(name: &str) -> bool {
    name.len() == 64 && name.bytes().all(|b| b.is_ascii_hexdigit())
}
