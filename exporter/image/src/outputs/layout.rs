//! An OCI image layout directory: `oci-layout`, `index.json`, `blobs/sha256/<hex>`.

use std::fs;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};

use strata_oci::{ImageIndex, Reference};

use super::blob::copy_blob_to_file;
use super::{
    image_blobs, manifest_entry, name_annotations, new_index, IMAGE_NAME_ANNOTATION,
    OCI_LAYOUT_BYTES, OCI_LAYOUT_FILE, REF_NAME_ANNOTATION,
};
use crate::{BlobSink, BuiltImage, ImageError};

/// Write `image` into the OCI layout at `dir`, creating it if needed.
///
/// Blobs already present with the right size are kept. An existing `index.json` is
/// merged into, not replaced: an entry with the same `ref_name` (and no full name) is
/// replaced, other images stay; without `ref_name`, an unnamed entry for the same
/// manifest is not duplicated. `index.json` is written last and renamed into place, so a reader never
/// sees an index pointing at missing blobs.
pub fn write_oci_layout(
    dir: &Path,
    image: &BuiltImage,
    sink: &dyn BlobSink,
    ref_name: Option<&str>,
) -> Result<(), ImageError> {
    let names: Vec<Vec<(&str, String)>> = ref_name
        .map(|n| vec![(REF_NAME_ANNOTATION, n.to_string())])
        .into_iter()
        .collect();
    write_layout(dir, image, sink, &names)
}

/// [`write_oci_layout`] naming the image as BuildKit's `type=oci,tar=false,name=…`
/// does: one index entry per name, with the full reference in `io.containerd.image.name`
/// and its tag in `org.opencontainers.image.ref.name`. An existing entry with the same
/// pair is replaced; without names, as [`write_oci_layout`] without a `ref_name`.
pub fn write_oci_layout_named(
    dir: &Path,
    image: &BuiltImage,
    sink: &dyn BlobSink,
    names: &[Reference],
) -> Result<(), ImageError> {
    let names: Vec<Vec<(&str, String)>> = names.iter().map(name_annotations).collect();
    write_layout(dir, image, sink, &names)
}

/// Blobs, then `index.json` with an entry per annotation set (one unnamed entry when
/// there are none).
fn write_layout(
    dir: &Path,
    image: &BuiltImage,
    sink: &dyn BlobSink,
    names: &[Vec<(&str, String)>],
) -> Result<(), ImageError> {
    let blobs_dir = dir.join("blobs").join("sha256");
    fs::create_dir_all(&blobs_dir).map_err(ImageError::io("creating", &blobs_dir))?;
    check_or_write_layout_file(dir)?;

    for (digest, size) in image_blobs(image) {
        let path = blobs_dir.join(digest.hex());
        if fs::metadata(&path).is_ok_and(|m| m.is_file() && m.len() == size) {
            continue;
        }
        let tmp = tmp_path(&path);
        let result = (|| {
            let mut file = fs::File::create(&tmp).map_err(ImageError::io("creating", &tmp))?;
            if digest == image.config.digest {
                file.write_all(&image.config_bytes)
                    .map_err(ImageError::io("writing", &tmp))?;
            } else if digest == image.manifest.digest {
                file.write_all(&image.manifest_bytes)
                    .map_err(ImageError::io("writing", &tmp))?;
            } else {
                copy_blob_to_file(sink, digest, size, &file, ImageError::io("writing", &tmp))?;
            }
            file.sync_all().map_err(ImageError::io("syncing", &tmp))?;
            fs::rename(&tmp, &path).map_err(ImageError::io("renaming into place", &path))
        })();
        if result.is_err() {
            let _ = fs::remove_file(&tmp);
        }
        result?;
    }

    let index_path = dir.join("index.json");
    let mut index = match fs::read(&index_path) {
        Ok(bytes) => {
            serde_json::from_slice::<ImageIndex>(&bytes).map_err(|e| ImageError::InvalidLayout {
                path: index_path.clone(),
                reason: format!("index.json does not parse: {e}"),
            })?
        }
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => new_index(Vec::new()),
        Err(e) => return Err(ImageError::io("reading", &index_path)(e)),
    };
    if names.is_empty() {
        index.manifests.retain(|d| {
            d.digest != image.manifest.digest || d.annotations.contains_key(REF_NAME_ANNOTATION)
        });
        index.manifests.push(manifest_entry(image, &[]));
    }
    for annotations in names {
        let get = |k: &str| {
            annotations
                .iter()
                .find(|(key, _)| *key == k)
                .map(|(_, v)| v.as_str())
        };
        let (ref_name, image_name) = (get(REF_NAME_ANNOTATION), get(IMAGE_NAME_ANNOTATION));
        // As BuildKit: the entry with the same tag and the same full name is replaced.
        index.manifests.retain(|d| {
            d.annotations.get(REF_NAME_ANNOTATION).map(String::as_str) != ref_name
                || d.annotations.get(IMAGE_NAME_ANNOTATION).map(String::as_str) != image_name
        });
        let a: Vec<(&str, &str)> = annotations.iter().map(|(k, v)| (*k, v.as_str())).collect();
        index.manifests.push(manifest_entry(image, &a));
    }
    let bytes = serde_json::to_vec(&index).expect("index serializes");
    write_atomically(&index_path, &bytes)
}

/// Validate an existing `oci-layout` file, or write one.
fn check_or_write_layout_file(dir: &Path) -> Result<(), ImageError> {
    let path = dir.join(OCI_LAYOUT_FILE);
    match fs::read(&path) {
        Ok(bytes) => {
            let v: serde_json::Value =
                serde_json::from_slice(&bytes).map_err(|e| ImageError::InvalidLayout {
                    path: path.clone(),
                    reason: format!("oci-layout does not parse: {e}"),
                })?;
            match v.get("imageLayoutVersion").and_then(|v| v.as_str()) {
                Some(version) if version.starts_with("1.") => Ok(()),
                other => Err(ImageError::InvalidLayout {
                    path,
                    reason: format!("unsupported imageLayoutVersion {other:?}"),
                }),
            }
        }
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            write_atomically(&path, OCI_LAYOUT_BYTES)
        }
        Err(e) => Err(ImageError::io("reading", &path)(e)),
    }
}

/// A sibling name unique to this process and call.
fn tmp_path(path: &Path) -> PathBuf {
    static COUNTER: AtomicU64 = AtomicU64::new(0);
    let n = COUNTER.fetch_add(1, Ordering::Relaxed);
    let name = path.file_name().and_then(|n| n.to_str()).unwrap_or("blob");
    path.with_file_name(format!(".{name}.tmp-{}-{n}", std::process::id()))
}

fn write_atomically(path: &Path, bytes: &[u8]) -> Result<(), ImageError> {
    let tmp = tmp_path(path);
    let result = (|| {
        let mut f = fs::File::create(&tmp).map_err(ImageError::io("creating", &tmp))?;
        f.write_all(bytes)
            .map_err(ImageError::io("writing", &tmp))?;
        f.sync_all().map_err(ImageError::io("syncing", &tmp))?;
        fs::rename(&tmp, path).map_err(ImageError::io("renaming into place", path))
    })();
    if result.is_err() {
        let _ = fs::remove_file(&tmp);
    }
    result
}
