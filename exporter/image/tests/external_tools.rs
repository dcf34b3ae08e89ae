//! Our outputs read by real clients: `skopeo` (OCI layout, OCI archive, docker archive)
//! and `umoci unpack` (which checks blob digests and diffIDs while applying layers).
//! Each test prints why it is skipped when its tool is not installed
//! (`apt-get install skopeo umoci`).
//!
//! Docker media types are checked through the docker archive only: skopeo 1.9's `oci:`
//! transport skips index entries that are not OCI manifests or indexes.

mod common;

use std::fs;
use std::path::{Path, PathBuf};
use std::process::Command;

use common::*;
use serde_json::Value;
use strata_image::outputs::{write_docker_archive, write_oci_archive, write_oci_layout};
use strata_image::{build_image, BuiltImage, Compression, ImageOptions, MediaTypes, MemorySink};

fn tool(name: &str) -> Option<PathBuf> {
    let found = std::env::var_os("PATH").and_then(|paths| {
        std::env::split_paths(&paths)
            .map(|p| p.join(name))
            .find(|p| p.is_file())
    });
    if found.is_none() {
        eprintln!("skipped: {name} is not installed (apt-get install {name})");
    }
    found
}

fn run(tool: &Path, args: &[&str]) -> Vec<u8> {
    let out = Command::new(tool).args(args).output().unwrap();
    assert!(
        out.status.success(),
        "{} {args:?} failed: {}",
        tool.display(),
        String::from_utf8_lossy(&out.stderr)
    );
    out.stdout
}

fn image(sink: &MemorySink, compression: Compression, media: MediaTypes) -> BuiltImage {
    let layers = vec![
        TestLayer::new(&[
            ("etc/hostname", b"strata\n", 1_600_000_000),
            ("usr/bin/hello", b"#!/bin/sh\necho hi\n", 1_600_000_000),
        ]),
        TestLayer::generated(7, 100_000),
        TestLayer::new(&[("etc/hostname", b"overwritten\n", 1_900_000_000)]),
    ];
    let opts = ImageOptions {
        compression,
        media,
        source_date_epoch: Some(1_700_000_000),
        ..ImageOptions::default()
    };
    build_image(config(3), &as_sources(&layers), &opts, sink).unwrap()
}

/// `skopeo inspect` output, checked against the image.
fn check_inspect(skopeo: &Path, target: &str, img: &BuiltImage) {
    let raw = run(skopeo, &["inspect", "--raw", target]);
    assert_eq!(raw, img.manifest_bytes, "skopeo reads our manifest bytes");
    let config = run(skopeo, &["inspect", "--config", "--raw", target]);
    assert_eq!(config, img.config_bytes);
    let v: Value = serde_json::from_slice(&run(skopeo, &["inspect", target])).unwrap();
    assert_eq!(v["Digest"], img.manifest.digest.to_string(), "{v}");
    assert_eq!(v["Architecture"], "amd64");
    assert_eq!(v["Os"], "linux");
    assert_eq!(v["Created"], "2023-11-14T22:13:20Z");
    let layers: Vec<String> = img
        .layers
        .iter()
        .map(|(d, _)| d.digest.to_string())
        .collect();
    assert_eq!(v["Layers"], serde_json::json!(layers));
}

/// `umoci unpack` the layout and check the top layer won.
fn check_unpack(umoci: &Path, layout: &Path, tag: &str) {
    let bundle = tempfile::tempdir().unwrap();
    let bundle = bundle.path().join("bundle");
    run(
        umoci,
        &[
            "unpack",
            "--rootless",
            "--image",
            &format!("{}:{tag}", layout.display()),
            bundle.to_str().unwrap(),
        ],
    );
    let rootfs = bundle.join("rootfs");
    assert_eq!(
        fs::read(rootfs.join("etc/hostname")).unwrap(),
        b"overwritten\n"
    );
    assert_eq!(
        fs::read(rootfs.join("usr/bin/hello")).unwrap(),
        b"#!/bin/sh\necho hi\n"
    );
    assert_eq!(fs::read(rootfs.join("data/file-7")).unwrap().len(), 100_000);
}

#[test]
fn skopeo_and_umoci_read_an_oci_layout() {
    let Some(skopeo) = tool("skopeo") else { return };
    let sink = MemorySink::new();
    let dir = tempfile::tempdir().unwrap();
    for (tag, compression) in [
        ("gzip", Compression::default()),
        ("zstd", Compression::Zstd { level: 3 }),
        ("plain", Compression::Uncompressed),
    ] {
        let img = image(&sink, compression, MediaTypes::Oci);
        write_oci_layout(dir.path(), &img, &sink, Some(tag)).unwrap();
        check_inspect(
            &skopeo,
            &format!("oci:{}:{tag}", dir.path().display()),
            &img,
        );
        // A copy re-reads every blob and checks its digest.
        let copy = tempfile::tempdir().unwrap();
        run(
            &skopeo,
            &[
                "copy",
                "--insecure-policy",
                &format!("oci:{}:{tag}", dir.path().display()),
                &format!("dir:{}", copy.path().display()),
            ],
        );
    }
    let Some(umoci) = tool("umoci") else { return };
    // umoci 0.4 knows gzip and uncompressed layers.
    check_unpack(&umoci, dir.path(), "gzip");
    check_unpack(&umoci, dir.path(), "plain");
}

#[test]
fn skopeo_reads_an_oci_archive() {
    let Some(skopeo) = tool("skopeo") else { return };
    let sink = MemorySink::new();
    let img = image(&sink, Compression::default(), MediaTypes::Oci);
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("image.tar");
    write_oci_archive(fs::File::create(&path).unwrap(), &img, &sink, Some("v1")).unwrap();
    check_inspect(&skopeo, &format!("oci-archive:{}:v1", path.display()), &img);
}

#[test]
fn skopeo_reads_a_docker_archive_and_umoci_unpacks_its_copy() {
    let Some(skopeo) = tool("skopeo") else { return };
    let sink = MemorySink::new();
    for media in [MediaTypes::Docker, MediaTypes::Oci] {
        let img = image(&sink, Compression::default(), media);
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("image.tar");
        let tags = ["strata/test:1".to_string()];
        write_docker_archive(fs::File::create(&path).unwrap(), &img, &sink, &tags).unwrap();

        let target = format!("docker-archive:{}", path.display());
        let v: Value = serde_json::from_slice(&run(&skopeo, &["inspect", &target])).unwrap();
        assert_eq!(v["RepoTags"], serde_json::json!([]), "{v}"); // skopeo lists registry tags only
        assert_eq!(v["Created"], "2023-11-14T22:13:20Z");
        let config = run(&skopeo, &["inspect", "--config", "--raw", &target]);
        assert_eq!(config, img.config_bytes);
        let tagged = format!("docker-archive:{}:strata/test:1", path.display());
        run(&skopeo, &["inspect", &tagged]);

        // Copying out recomputes and checks diffIDs against the config.
        let layout = tempfile::tempdir().unwrap();
        run(
            &skopeo,
            &[
                "copy",
                "--insecure-policy",
                &target,
                &format!("oci:{}:copied", layout.path().display()),
            ],
        );
        if let Some(umoci) = tool("umoci") {
            check_unpack(&umoci, layout.path(), "copied");
        }
    }
}

/// `docker load` against a daemon named by `STRATA_TEST_DOCKER_HOST` (e.g.
/// `unix:///tmp/d/docker.sock` of a `dockerd --bridge=none --iptables=false`); the test
/// never starts or touches a daemon on its own.
#[test]
fn docker_loads_a_docker_archive() {
    let Some(host) = std::env::var_os("STRATA_TEST_DOCKER_HOST") else {
        eprintln!("skipped: STRATA_TEST_DOCKER_HOST is not set (point it at a running dockerd)");
        return;
    };
    let Some(docker) = tool("docker") else { return };
    let docker_cmd = |args: &[&str]| {
        let out = Command::new(&docker)
            .env("DOCKER_HOST", &host)
            .args(args)
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "docker {args:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8(out.stdout).unwrap()
    };
    let sink = MemorySink::new();
    for (media, compression) in [
        (MediaTypes::Docker, Compression::default()),
        (MediaTypes::Oci, Compression::Uncompressed),
    ] {
        let img = image(&sink, compression, media);
        let tag = format!(
            "strata-image-test/{}:{}",
            std::process::id(),
            img.manifest.digest.short()
        );
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("image.tar");
        write_docker_archive(
            fs::File::create(&path).unwrap(),
            &img,
            &sink,
            std::slice::from_ref(&tag),
        )
        .unwrap();
        let loaded = docker_cmd(&["load", "-i", path.to_str().unwrap()]);
        assert!(loaded.contains(&format!("Loaded image: {tag}")), "{loaded}");
        let inspect: Value =
            serde_json::from_str(&docker_cmd(&["image", "inspect", &tag])).unwrap();
        let rm = docker_cmd(&["image", "rm", &tag]);
        assert!(!rm.is_empty());
        assert_eq!(inspect[0]["Id"], img.config.digest.to_string(), "{inspect}");
        let diff_ids: Vec<String> = img.layers.iter().map(|(_, d)| d.to_string()).collect();
        assert_eq!(inspect[0]["RootFS"]["Layers"], serde_json::json!(diff_ids));
        assert_eq!(inspect[0]["Created"], "2023-11-14T22:13:20Z");
    }
}
