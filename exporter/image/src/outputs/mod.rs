//! Writing a [`BuiltImage`](crate::BuiltImage) out: an OCI image layout directory
//! (merged into an existing one), the same layout as a tar (`type=oci,dest=FILE.tar`),
//! and the `docker save` format that `docker load` reads.
//!
//! Blobs are streamed from the sink and verified against their descriptors on the way.
//! Tars are deterministic: entries sorted by path, mtime 0, uid/gid 0, fixed modes.

mod archive;
mod blob;
mod layout;

use std::collections::BTreeMap;

use strata_digest::Digest;
use strata_oci::{media_types, Descriptor, ImageIndex, Reference};

use crate::BuiltImage;

pub use archive::{write_docker_archive, write_oci_archive, write_oci_archive_named, ArchiveWrite};
pub use layout::{write_oci_layout, write_oci_layout_named};

/// The annotation naming a manifest in an OCI layout's `index.json` (what
/// `skopeo … oci:DIR:REF` and `umoci --image DIR:REF` look up).
pub const REF_NAME_ANNOTATION: &str = "org.opencontainers.image.ref.name";
/// The annotation containerd and `docker load` read for the full image name.
pub const IMAGE_NAME_ANNOTATION: &str = "io.containerd.image.name";

/// Size of the buffer between the outputs and their files.
const WRITE_BUFFER: usize = 1 << 20;

const OCI_LAYOUT_FILE: &str = "oci-layout";
const OCI_LAYOUT_BYTES: &[u8] = br#"{"imageLayoutVersion":"1.0.0"}"#;

/// Every blob of the image once, sorted by digest: layers, config, manifest.
fn image_blobs(image: &BuiltImage) -> BTreeMap<Digest, u64> {
    let mut blobs: BTreeMap<Digest, u64> = image
        .layers
        .iter()
        .map(|(d, _)| (d.digest, d.size))
        .collect();
    blobs.insert(image.config.digest, image.config.size);
    blobs.insert(image.manifest.digest, image.manifest.size);
    blobs
}

/// How BuildKit (and containerd's archive exporter) name an image in an OCI index: the
/// full reference in `io.containerd.image.name`, and in
/// `org.opencontainers.image.ref.name` only its tag (or digest), as the OCI spec defines
/// it, so `umoci --image DIR:TAG` and `skopeo … oci:DIR:TAG` find it.
fn name_annotations(r: &Reference) -> Vec<(&'static str, String)> {
    vec![
        (IMAGE_NAME_ANNOTATION, r.to_string()),
        (REF_NAME_ANNOTATION, r.reference_str()),
    ]
}

/// The manifest descriptor with `annotations` added.
fn manifest_entry(image: &BuiltImage, annotations: &[(&str, &str)]) -> Descriptor {
    let mut d = image.manifest.clone();
    for (k, v) in annotations {
        d.annotations.insert((*k).into(), (*v).into());
    }
    d
}

fn new_index(manifests: Vec<Descriptor>) -> ImageIndex {
    ImageIndex {
        schema_version: 2,
        media_type: Some(media_types::OCI_INDEX.into()),
        manifests,
        annotations: BTreeMap::new(),
    }
}

fn blob_path(d: &Digest) -> String {
    format!("blobs/sha256/{}", d.hex())
}
