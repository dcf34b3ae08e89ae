//! OCI layout, OCI archive and docker archive outputs.

mod common;

use std::collections::BTreeMap;
use std::fs;
use std::path::Path;

use common::*;
use serde_json::Value;
use strata_digest::{sha256, Digest};
use strata_image::outputs::{
    write_docker_archive, write_oci_archive, write_oci_archive_named, write_oci_layout,
    write_oci_layout_named, IMAGE_NAME_ANNOTATION, REF_NAME_ANNOTATION,
};
use strata_image::{
    build_image, BuiltImage, Compression, DirSink, ImageError, ImageOptions, MemorySink,
};
use strata_oci::{media_types, ImageConfig, ImageIndex, ImageManifest, Reference};

fn image(sink: &MemorySink, seed: u8, compression: Compression) -> BuiltImage {
    let layers = vec![
        TestLayer::new(&[("etc/hostname", b"strata\n", 1_600_000_000)]),
        TestLayer::generated(seed, 50_000),
    ];
    let opts = ImageOptions {
        compression,
        source_date_epoch: Some(0),
        ..ImageOptions::default()
    };
    build_image(config(2), &as_sources(&layers), &opts, sink).unwrap()
}

/// Every file under blobs/sha256 hashes to its name; returns name → size.
fn verified_blobs(dir: &Path) -> BTreeMap<Digest, u64> {
    let mut out = BTreeMap::new();
    for e in fs::read_dir(dir.join("blobs/sha256")).unwrap() {
        let e = e.unwrap();
        let name = e.file_name().into_string().unwrap();
        assert!(!name.starts_with('.'), "temporary file {name} left behind");
        let bytes = fs::read(e.path()).unwrap();
        let d: Digest = format!("sha256:{name}").parse().unwrap();
        assert_eq!(sha256(&bytes), d, "blob {name} does not hash to its name");
        out.insert(d, bytes.len() as u64);
    }
    out
}

/// Check a layout from index.json down: every descriptor points at a blob of the
/// right size and digest. Returns the index.
fn check_layout(dir: &Path) -> ImageIndex {
    let layout: Value = serde_json::from_slice(&fs::read(dir.join("oci-layout")).unwrap()).unwrap();
    assert_eq!(layout["imageLayoutVersion"], "1.0.0");
    let blobs = verified_blobs(dir);
    let index: ImageIndex =
        serde_json::from_slice(&fs::read(dir.join("index.json")).unwrap()).unwrap();
    assert_eq!(index.schema_version, 2);
    assert_eq!(index.media_type.as_deref(), Some(media_types::OCI_INDEX));
    for m in &index.manifests {
        assert_eq!(blobs.get(&m.digest), Some(&m.size), "manifest {}", m.digest);
        let manifest: ImageManifest = serde_json::from_slice(
            &fs::read(dir.join("blobs/sha256").join(m.digest.hex())).unwrap(),
        )
        .unwrap();
        assert_eq!(manifest.media_type.as_deref(), Some(m.media_type.as_str()));
        for d in std::iter::once(&manifest.config).chain(&manifest.layers) {
            assert_eq!(blobs.get(&d.digest), Some(&d.size), "blob {}", d.digest);
        }
        let config: ImageConfig = serde_json::from_slice(
            &fs::read(dir.join("blobs/sha256").join(manifest.config.digest.hex())).unwrap(),
        )
        .unwrap();
        assert_eq!(config.rootfs.diff_ids.len(), manifest.layers.len());
    }
    index
}

fn ref_names(index: &ImageIndex) -> Vec<(Option<String>, Digest)> {
    index
        .manifests
        .iter()
        .map(|d| (d.annotations.get(REF_NAME_ANNOTATION).cloned(), d.digest))
        .collect()
}

#[test]
fn oci_layout_is_valid_and_complete() {
    let sink = MemorySink::new();
    let img = image(&sink, 1, Compression::default());
    let dir = tempfile::tempdir().unwrap();
    let layout = dir.path().join("out");
    write_oci_layout(&layout, &img, &sink, Some("latest")).unwrap();
    let index = check_layout(&layout);
    assert_eq!(
        ref_names(&index),
        [(Some("latest".into()), img.manifest.digest)]
    );
    let entry = &index.manifests[0];
    assert_eq!(entry.media_type, media_types::OCI_MANIFEST);
    assert_eq!(entry.size, img.manifest.size);
    assert_eq!(entry.platform, img.manifest.platform);
    // 2 layers + config + manifest.
    assert_eq!(verified_blobs(&layout).len(), 4);
}

#[test]
fn oci_layout_merges_into_an_existing_index() {
    let sink = MemorySink::new();
    let a = image(&sink, 1, Compression::default());
    let b = image(&sink, 2, Compression::default());
    let a2 = image(&sink, 3, Compression::Zstd { level: 3 });
    let dir = tempfile::tempdir().unwrap();
    let layout = dir.path();
    write_oci_layout(layout, &a, &sink, Some("a")).unwrap();
    write_oci_layout(layout, &b, &sink, Some("b")).unwrap();
    write_oci_layout(layout, &b, &sink, None).unwrap();
    write_oci_layout(layout, &b, &sink, None).unwrap();
    write_oci_layout(layout, &a2, &sink, Some("a")).unwrap();
    let index = check_layout(layout);
    assert_eq!(
        ref_names(&index),
        [
            (Some("b".into()), b.manifest.digest),
            (None, b.manifest.digest),
            (Some("a".into()), a2.manifest.digest),
        ]
    );
    // a's blobs stay (a layout writer does not collect garbage).
    assert!(layout
        .join("blobs/sha256")
        .join(a.manifest.digest.hex())
        .exists());
}

/// (ref.name, io.containerd.image.name, digest) of each index entry.
fn names(index: &ImageIndex) -> Vec<(Option<&str>, Option<&str>, Digest)> {
    index
        .manifests
        .iter()
        .map(|d| {
            (
                d.annotations.get(REF_NAME_ANNOTATION).map(String::as_str),
                d.annotations.get(IMAGE_NAME_ANNOTATION).map(String::as_str),
                d.digest,
            )
        })
        .collect()
}

#[test]
fn named_oci_outputs_annotate_as_buildkit_does() {
    // BuildKit's `type=oci,name=app:1`: the tag in ref.name (what `umoci --image DIR:1`
    // and `skopeo oci:DIR:1` look up), the full name for containerd and `docker load`.
    let sink = MemorySink::new();
    let a = image(&sink, 1, Compression::default());
    let b = image(&sink, 2, Compression::default());
    let app1 = Reference::parse("app:1").unwrap();
    let other1 = Reference::parse("registry.example:5000/team/other:1").unwrap();
    let dir = tempfile::tempdir().unwrap();
    let layout = dir.path();
    write_oci_layout_named(layout, &a, &sink, &[app1.clone(), other1.clone()]).unwrap();
    let index = check_layout(layout);
    assert_eq!(
        names(&index),
        [
            (
                Some("1"),
                Some("docker.io/library/app:1"),
                a.manifest.digest
            ),
            (
                Some("1"),
                Some("registry.example:5000/team/other:1"),
                a.manifest.digest
            ),
        ]
    );
    // The same tag of another name stays; the same name is replaced.
    write_oci_layout_named(layout, &b, &sink, std::slice::from_ref(&app1)).unwrap();
    let index = check_layout(layout);
    assert_eq!(
        names(&index),
        [
            (
                Some("1"),
                Some("registry.example:5000/team/other:1"),
                a.manifest.digest
            ),
            (
                Some("1"),
                Some("docker.io/library/app:1"),
                b.manifest.digest
            ),
        ]
    );

    let mut tar = Vec::new();
    write_oci_archive_named(&mut tar, &a, &sink, &[app1]).unwrap();
    let index_json = archive_files(&tar)
        .into_iter()
        .find(|(p, _, _)| p == "index.json")
        .unwrap()
        .2;
    let index: ImageIndex = serde_json::from_slice(&index_json).unwrap();
    assert_eq!(
        names(&index),
        [(
            Some("1"),
            Some("docker.io/library/app:1"),
            a.manifest.digest
        )]
    );
    let mut unnamed = Vec::new();
    write_oci_archive_named(&mut unnamed, &a, &sink, &[]).unwrap();
    let mut plain = Vec::new();
    write_oci_archive(&mut plain, &a, &sink, None).unwrap();
    assert_eq!(unnamed, plain);
}

#[test]
fn oci_layout_refuses_a_broken_index_or_layout_file() {
    let sink = MemorySink::new();
    let img = image(&sink, 1, Compression::default());
    let dir = tempfile::tempdir().unwrap();
    fs::write(dir.path().join("index.json"), b"{not json").unwrap();
    let err = write_oci_layout(dir.path(), &img, &sink, None).unwrap_err();
    assert!(matches!(err, ImageError::InvalidLayout { .. }), "{err}");
    assert!(err.to_string().contains("index.json"), "{err}");

    let dir = tempfile::tempdir().unwrap();
    fs::write(
        dir.path().join("oci-layout"),
        br#"{"imageLayoutVersion":"2.0.0"}"#,
    )
    .unwrap();
    let err = write_oci_layout(dir.path(), &img, &sink, None).unwrap_err();
    assert!(matches!(err, ImageError::InvalidLayout { .. }), "{err}");
}

#[test]
fn a_corrupt_blob_never_reaches_an_output() {
    let sink = MemorySink::new();
    let img = image(&sink, 1, Compression::default());
    let layer = img.layers[1].0.digest;
    let mut bytes = sink.get(&layer).unwrap().to_vec();
    bytes[100] ^= 1;
    sink.corrupt(&layer, bytes);

    let dir = tempfile::tempdir().unwrap();
    let err = write_oci_layout(dir.path(), &img, &sink, None).unwrap_err();
    assert!(
        matches!(err, ImageError::BlobMismatch { digest, .. } if digest == layer),
        "{err}"
    );
    assert!(!dir.path().join("blobs/sha256").join(layer.hex()).exists());
    assert!(!dir.path().join("index.json").exists());
    let err = write_oci_archive(Vec::new(), &img, &sink, None).unwrap_err();
    assert!(matches!(err, ImageError::BlobMismatch { .. }), "{err}");
    let err = write_docker_archive(Vec::new(), &img, &sink, &[]).unwrap_err();
    assert!(matches!(err, ImageError::BlobMismatch { .. }), "{err}");
}

#[test]
fn building_into_a_dir_sink_then_writing_the_layout_there() {
    let dir = tempfile::tempdir().unwrap();
    let sink = DirSink::new(dir.path().join("blobs"));
    let layers = vec![TestLayer::generated(4, 10_000)];
    let img = build_image(
        config(1),
        &as_sources(&layers),
        &ImageOptions::default(),
        &sink,
    )
    .unwrap();
    assert!(sink.path(&img.layers[0].0.digest).is_file());
    write_oci_layout(dir.path(), &img, &sink, Some("x")).unwrap();
    check_layout(dir.path());
    assert_eq!(verified_blobs(dir.path()).len(), 3);
}

fn archive_files(bytes: &[u8]) -> Vec<(String, u64, Vec<u8>)> {
    tar_entries(bytes)
}

#[test]
fn oci_archive_is_a_sorted_deterministic_layout_tar() {
    let sink = MemorySink::new();
    let img = image(&sink, 1, Compression::default());
    let mut a = Vec::new();
    write_oci_archive(&mut a, &img, &sink, Some("v1")).unwrap();
    let mut b = Vec::new();
    write_oci_archive(&mut b, &img, &sink, Some("v1")).unwrap();
    assert_eq!(a, b);

    let entries = archive_files(&a);
    let paths: Vec<&str> = entries.iter().map(|e| e.0.as_str()).collect();
    let mut sorted = paths.clone();
    sorted.sort();
    assert_eq!(paths, sorted);
    assert!(entries.iter().all(|e| e.1 == 0), "mtimes are fixed");
    assert_eq!(paths[..2], ["blobs/", "blobs/sha256/"]);
    assert_eq!(paths[paths.len() - 2..], ["index.json", "oci-layout"]);

    // Unpacked, it is the same layout the directory writer makes.
    let dir = tempfile::tempdir().unwrap();
    tar::Archive::new(a.as_slice()).unpack(dir.path()).unwrap();
    let index = check_layout(dir.path());
    assert_eq!(
        ref_names(&index),
        [(Some("v1".into()), img.manifest.digest)]
    );
    let layout = tempfile::tempdir().unwrap();
    write_oci_layout(layout.path(), &img, &sink, Some("v1")).unwrap();
    for (path, _, content) in &entries {
        if !path.ends_with('/') {
            assert_eq!(
                &fs::read(layout.path().join(path)).unwrap(),
                content,
                "{path}"
            );
        }
    }
}

#[test]
fn docker_archive_manifest_points_at_files_in_the_tar() {
    let sink = MemorySink::new();
    let img = image(&sink, 1, Compression::default());
    let tags = vec![
        "app".to_string(),
        "registry.local:5000/team/app:1.2".to_string(),
    ];
    let mut out = Vec::new();
    write_docker_archive(&mut out, &img, &sink, &tags).unwrap();
    let entries = archive_files(&out);
    let files: BTreeMap<&str, &[u8]> = entries
        .iter()
        .map(|(p, _, c)| (p.as_str(), c.as_slice()))
        .collect();

    let manifest: Value = serde_json::from_slice(files["manifest.json"]).unwrap();
    let items = manifest.as_array().unwrap();
    assert_eq!(items.len(), 1);
    let item = &items[0];
    assert_eq!(
        item["RepoTags"],
        serde_json::json!(["app:latest", "registry.local:5000/team/app:1.2"])
    );
    let config_path = item["Config"].as_str().unwrap();
    let config_bytes = files[config_path];
    assert_eq!(config_bytes, img.config_bytes.as_slice());
    let config: ImageConfig = serde_json::from_slice(config_bytes).unwrap();
    let layer_paths: Vec<&str> = item["Layers"]
        .as_array()
        .unwrap()
        .iter()
        .map(|l| l.as_str().unwrap())
        .collect();
    assert_eq!(layer_paths.len(), config.rootfs.diff_ids.len());
    // docker load decompresses each layer and checks it against rootfs.diff_ids.
    for (path, diff_id) in layer_paths.iter().zip(&config.rootfs.diff_ids) {
        let blob = files.get(path).unwrap_or_else(|| panic!("{path} missing"));
        assert_eq!(sha256(gunzip(blob)), *diff_id, "{path}");
    }

    // It is an OCI layout too, naming each tag.
    let index: ImageIndex = serde_json::from_slice(files["index.json"]).unwrap();
    let names: Vec<(&str, &str)> = index
        .manifests
        .iter()
        .map(|d| {
            (
                d.annotations[IMAGE_NAME_ANNOTATION].as_str(),
                d.annotations[REF_NAME_ANNOTATION].as_str(),
            )
        })
        .collect();
    assert_eq!(
        names,
        [
            ("docker.io/library/app:latest", "latest"),
            ("registry.local:5000/team/app:1.2", "1.2")
        ]
    );
    assert!(files.contains_key("oci-layout"));
    let mut again = Vec::new();
    write_docker_archive(&mut again, &img, &sink, &tags).unwrap();
    assert_eq!(out, again);
}

#[test]
fn docker_archive_refusals() {
    let sink = MemorySink::new();
    let zstd = image(&sink, 1, Compression::Zstd { level: 3 });
    let err = write_docker_archive(Vec::new(), &zstd, &sink, &[]).unwrap_err();
    assert!(
        matches!(err, ImageError::DockerArchiveLayer { .. }),
        "{err}"
    );

    let img = image(&sink, 1, Compression::Uncompressed);
    for bad in ["Upper/Case", "app@sha256:0123", ""] {
        let err = write_docker_archive(Vec::new(), &img, &sink, &[bad.to_string()]).unwrap_err();
        assert!(matches!(err, ImageError::InvalidTag { .. }), "{bad}: {err}");
    }
    let digest_ref = format!("app@{}", sha256(b"x"));
    let err = write_docker_archive(Vec::new(), &img, &sink, &[digest_ref]).unwrap_err();
    assert!(matches!(err, ImageError::InvalidTag { .. }), "{err}");

    // Untagged is fine.
    let mut out = Vec::new();
    write_docker_archive(&mut out, &img, &sink, &[]).unwrap();
    let entries = archive_files(&out);
    let manifest = &entries.iter().find(|e| e.0 == "manifest.json").unwrap().2;
    let v: Value = serde_json::from_slice(manifest).unwrap();
    assert_eq!(v[0]["RepoTags"], serde_json::json!([]));
}

#[test]
fn layers_shared_between_images_are_written_once() {
    let sink = MemorySink::new();
    let shared = TestLayer::generated(9, 1000);
    let img = build_image(
        config(2),
        &as_sources(&[shared.clone(), shared.clone()]),
        &ImageOptions::default(),
        &sink,
    )
    .unwrap();
    assert_eq!(img.layers[0], img.layers[1]);
    assert_eq!(shared.writes(), 1, "an identical layer is compressed once");
    let mut out = Vec::new();
    write_oci_archive(&mut out, &img, &sink, None).unwrap();
    let entries = archive_files(&out);
    let blob = format!("blobs/sha256/{}", img.layers[0].0.digest.hex());
    assert_eq!(entries.iter().filter(|e| e.0 == blob).count(), 1);
}

/// An image whose blobs are files in a [`DirSink`], as in the store.
fn dir_image(sink: &DirSink, compression: Compression) -> BuiltImage {
    let layers = vec![
        TestLayer::new(&[("etc/hostname", b"strata\n", 1_600_000_000)]),
        // Several MiB: the kernel copy and the hashing thread take many pieces.
        TestLayer::generated(9, 3_000_000),
    ];
    let opts = ImageOptions {
        compression,
        source_date_epoch: Some(0),
        ..ImageOptions::default()
    };
    build_image(config(2), &as_sources(&layers), &opts, sink).unwrap()
}

#[test]
fn archives_written_to_files_copy_blobs_in_the_kernel_with_the_same_bytes() {
    let dir = tempfile::tempdir().unwrap();
    let sink = DirSink::new(dir.path().join("store"));
    let img = dir_image(&sink, Compression::default());
    // Through a buffer (a Vec has no file) and into files (copy_file_range).
    let mut buffered = Vec::new();
    write_oci_archive(&mut buffered, &img, &sink, Some("v1")).unwrap();
    let path = dir.path().join("out.tar");
    write_oci_archive(fs::File::create(&path).unwrap(), &img, &sink, Some("v1")).unwrap();
    assert!(fs::read(&path).unwrap() == buffered);

    let mut buffered = Vec::new();
    let tags = ["app:1".to_string()];
    write_docker_archive(&mut buffered, &img, &sink, &tags).unwrap();
    let file = fs::File::create(&path).unwrap();
    write_docker_archive(&file, &img, &sink, &tags).unwrap();
    assert!(fs::read(&path).unwrap() == buffered);
}

#[test]
fn a_corrupt_blob_file_fails_the_kernel_copy() {
    let dir = tempfile::tempdir().unwrap();
    let sink = DirSink::new(dir.path().join("store"));
    let img = dir_image(&sink, Compression::Uncompressed);
    let (layer, _) = &img.layers[1];
    let good = fs::read(sink.path(&layer.digest)).unwrap();
    let mut flipped = good.clone();
    flipped[good.len() / 2] ^= 1;
    let short = good[..good.len() - 1].to_vec();
    let mut long = good.clone();
    long.push(0);
    for (bad, size) in [
        (flipped, good.len()),
        (short, good.len() - 1),
        (long, good.len() + 1),
    ] {
        fs::write(sink.path(&layer.digest), &bad).unwrap();
        let path = dir.path().join("out.tar");
        let err =
            write_oci_archive(fs::File::create(&path).unwrap(), &img, &sink, None).unwrap_err();
        assert!(
            matches!(err, ImageError::BlobMismatch { digest, actual_size, .. }
                if digest == layer.digest && actual_size == size as u64),
            "{err}"
        );
        let err = write_oci_layout(&dir.path().join("layout"), &img, &sink, None).unwrap_err();
        assert!(matches!(err, ImageError::BlobMismatch { .. }), "{err}");
    }
}
