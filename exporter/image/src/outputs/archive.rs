//! Tar outputs: an OCI layout as a tar, and `docker save`'s format (an OCI layout plus
//! `manifest.json`, as Docker 25 and later write it; older `docker load` reads the
//! paths in `manifest.json` and ignores the rest).

use std::fs::File;
use std::io::{self, BufWriter, Write};

use serde::Serialize;
use strata_digest::Digest;
use strata_oci::{media_types, Reference, ReferenceError};

use super::blob::{copy_blob_to_file, VerifyingReader};
use super::{
    blob_path, image_blobs, manifest_entry, name_annotations, new_index, IMAGE_NAME_ANNOTATION,
    OCI_LAYOUT_BYTES, OCI_LAYOUT_FILE, REF_NAME_ANNOTATION, WRITE_BUFFER,
};
use crate::compression::DOCKER_LAYER;
use crate::{BlobSink, BuiltImage, ImageError};

/// The mtime of every archive entry.
pub const ARCHIVE_MTIME: u64 = 0;

/// Where an archive goes: any writer; into a file, blobs the sink keeps as files are
/// copied inside the kernel ([`BlobSink::open_file`]) instead of through a buffer.
pub trait ArchiveWrite: Write {
    fn as_file(&self) -> Option<&File> {
        None
    }
}

impl ArchiveWrite for File {
    fn as_file(&self) -> Option<&File> {
        Some(self)
    }
}

impl ArchiveWrite for &File {
    fn as_file(&self) -> Option<&File> {
        Some(self)
    }
}

impl ArchiveWrite for Vec<u8> {}

impl ArchiveWrite for &mut Vec<u8> {}

/// Write the OCI layout of `image` as a tar (buildx `type=oci,dest=FILE.tar`);
/// `ref_name` becomes the manifest's `org.opencontainers.image.ref.name`.
pub fn write_oci_archive(
    w: impl ArchiveWrite,
    image: &BuiltImage,
    sink: &dyn BlobSink,
    ref_name: Option<&str>,
) -> Result<(), ImageError> {
    let annotations: Vec<(&str, &str)> = ref_name
        .map(|n| (REF_NAME_ANNOTATION, n))
        .into_iter()
        .collect();
    write_oci_index_archive(w, image, sink, vec![manifest_entry(image, &annotations)])
}

/// [`write_oci_archive`] naming the image as BuildKit's `type=oci,name=…` does: one
/// index entry per name, with the full reference in `io.containerd.image.name` and its
/// tag in `org.opencontainers.image.ref.name`; without names, one unnamed entry.
pub fn write_oci_archive_named(
    w: impl ArchiveWrite,
    image: &BuiltImage,
    sink: &dyn BlobSink,
    names: &[Reference],
) -> Result<(), ImageError> {
    let entries = if names.is_empty() {
        vec![manifest_entry(image, &[])]
    } else {
        names
            .iter()
            .map(|r| {
                let a = name_annotations(r);
                let a: Vec<(&str, &str)> = a.iter().map(|(k, v)| (*k, v.as_str())).collect();
                manifest_entry(image, &a)
            })
            .collect()
    };
    write_oci_index_archive(w, image, sink, entries)
}

fn write_oci_index_archive(
    w: impl ArchiveWrite,
    image: &BuiltImage,
    sink: &dyn BlobSink,
    entries: Vec<strata_oci::Descriptor>,
) -> Result<(), ImageError> {
    let index = new_index(entries);
    let index_bytes = serde_json::to_vec(&index).expect("index serializes");
    write_archive(
        w,
        image,
        sink,
        vec![
            ("index.json".into(), index_bytes),
            (OCI_LAYOUT_FILE.into(), OCI_LAYOUT_BYTES.to_vec()),
        ],
    )
}

/// One image in `manifest.json`.
#[derive(Serialize)]
#[serde(rename_all = "PascalCase")]
struct DockerManifestEntry {
    config: String,
    repo_tags: Vec<String>,
    layers: Vec<String>,
}

/// Write `image` in the format `docker save` writes and `docker load` reads:
/// `manifest.json` (`Config`, `RepoTags`, `Layers` pointing at `blobs/sha256/<hex>`)
/// next to a complete OCI layout whose index names each tag. `repo_tags` are image
/// references (`app`, `registry:5000/team/app:1.2`); without any, the image loads
/// untagged. Layers must be uncompressed or gzip.
pub fn write_docker_archive(
    w: impl ArchiveWrite,
    image: &BuiltImage,
    sink: &dyn BlobSink,
    repo_tags: &[String],
) -> Result<(), ImageError> {
    for (d, _) in &image.layers {
        let accepted = [
            media_types::OCI_LAYER,
            media_types::OCI_LAYER_GZIP,
            DOCKER_LAYER,
            media_types::DOCKER_LAYER_GZIP,
        ];
        if !accepted.contains(&d.media_type.as_str()) {
            return Err(ImageError::DockerArchiveLayer {
                digest: d.digest,
                media_type: d.media_type.clone(),
            });
        }
    }
    let refs = repo_tags
        .iter()
        .map(|t| parse_tag(t))
        .collect::<Result<Vec<_>, _>>()?;

    let manifest_json = vec![DockerManifestEntry {
        config: blob_path(&image.config.digest),
        repo_tags: refs.iter().map(Reference::familiar).collect(),
        layers: image
            .layers
            .iter()
            .map(|(d, _)| blob_path(&d.digest))
            .collect(),
    }];
    let index = new_index(if refs.is_empty() {
        vec![manifest_entry(image, &[])]
    } else {
        refs.iter()
            .map(|r| {
                let full = r.to_string();
                let tag = r.tag.as_deref().unwrap_or("latest");
                manifest_entry(
                    image,
                    &[(IMAGE_NAME_ANNOTATION, &full), (REF_NAME_ANNOTATION, tag)],
                )
            })
            .collect()
    });
    write_archive(
        w,
        image,
        sink,
        vec![
            (
                "index.json".into(),
                serde_json::to_vec(&index).expect("index serializes"),
            ),
            (
                "manifest.json".into(),
                serde_json::to_vec(&manifest_json).expect("manifest.json serializes"),
            ),
            (OCI_LAYOUT_FILE.into(), OCI_LAYOUT_BYTES.to_vec()),
        ],
    )
}

/// A tag for `RepoTags`: a reference with a tag (`:latest` added), no digest.
fn parse_tag(t: &str) -> Result<Reference, ImageError> {
    let r = Reference::parse(t).map_err(|source| ImageError::InvalidTag {
        tag: t.to_string(),
        source,
    })?;
    if r.digest.is_some() {
        return Err(ImageError::InvalidTag {
            tag: t.to_string(),
            source: ReferenceError::Tag(t.to_string()),
        });
    }
    Ok(r)
}

enum Entry {
    Dir,
    Bytes(Vec<u8>),
    Blob(Digest, u64),
}

/// The blobs plus `files`, every entry sorted by path.
fn write_archive(
    w: impl ArchiveWrite,
    image: &BuiltImage,
    sink: &dyn BlobSink,
    files: Vec<(String, Vec<u8>)>,
) -> Result<(), ImageError> {
    let mut entries: Vec<(String, Entry)> = vec![
        ("blobs/".into(), Entry::Dir),
        ("blobs/sha256/".into(), Entry::Dir),
    ];
    for (digest, size) in image_blobs(image) {
        let entry = if digest == image.config.digest {
            Entry::Bytes(image.config_bytes.clone())
        } else if digest == image.manifest.digest {
            Entry::Bytes(image.manifest_bytes.clone())
        } else {
            Entry::Blob(digest, size)
        };
        entries.push((blob_path(&digest), entry));
    }
    entries.extend(files.into_iter().map(|(p, b)| (p, Entry::Bytes(b))));
    entries.sort_by(|a, b| a.0.cmp(&b.0));

    let archive_err = |source| ImageError::Archive { source };
    let mut tar = tar::Builder::new(BufWriter::with_capacity(WRITE_BUFFER, w));
    for (path, entry) in entries {
        let mut h = tar::Header::new_ustar();
        h.set_path(&path).map_err(archive_err)?;
        h.set_mtime(ARCHIVE_MTIME);
        h.set_uid(0);
        h.set_gid(0);
        match entry {
            Entry::Dir => {
                h.set_entry_type(tar::EntryType::Directory);
                h.set_mode(0o755);
                h.set_size(0);
                h.set_cksum();
                tar.append(&h, io::empty()).map_err(archive_err)?;
            }
            Entry::Bytes(bytes) => {
                file_header(&mut h, bytes.len() as u64);
                tar.append(&h, bytes.as_slice()).map_err(archive_err)?;
            }
            Entry::Blob(digest, size) => {
                file_header(&mut h, size);
                let out = tar.get_mut();
                if out.get_ref().as_file().is_some() {
                    // Header, then the blob straight into the file, then the padding
                    // (what `append` writes, minus the trip through the buffer).
                    out.write_all(h.as_bytes()).map_err(archive_err)?;
                    out.flush().map_err(archive_err)?;
                    let file = out.get_ref().as_file().expect("checked above");
                    copy_blob_to_file(sink, digest, size, file, archive_err)?;
                    let pad = (512 - size % 512) % 512;
                    out.write_all(&[0u8; 512][..pad as usize])
                        .map_err(archive_err)?;
                } else {
                    let mut r = VerifyingReader::open(sink, digest, size)?;
                    tar.append(&h, &mut r)
                        .map_err(|e| r.classify(e, archive_err))?;
                }
            }
        }
    }
    let mut out = tar.into_inner().map_err(archive_err)?;
    out.flush().map_err(archive_err)
}

fn file_header(h: &mut tar::Header, size: u64) {
    h.set_entry_type(tar::EntryType::Regular);
    h.set_mode(0o644);
    h.set_size(size);
    h.set_cksum();
}
