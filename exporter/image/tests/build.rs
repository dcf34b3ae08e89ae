//! build_image: one-pass diffIDs, compression, config and manifest, reproducibility.

mod common;

use std::collections::BTreeMap;
use std::io::{self, Write};
use std::sync::Arc;

use common::*;
use strata_digest::{sha256, Digest};
use strata_image::{
    build_image, BlobSink, Compression, ImageError, ImageOptions, LayerSource, MediaTypes,
    MemorySink, GENERATED_HISTORY_COMMENT,
};
use strata_oci::{media_types, ImageConfig, ImageManifest};

fn layers3() -> Vec<Arc<TestLayer>> {
    vec![
        TestLayer::new(&[
            ("etc/os-release", b"ID=test\n", 1_600_000_000),
            ("bin/sh", b"#!fake shell", 1_600_000_001),
        ]),
        TestLayer::generated(1, 256 << 10),
        TestLayer::new(&[("app/main", b"print('hi')", 1_800_000_000)]),
    ]
}

#[test]
fn diff_id_is_the_sha256_of_the_tar_and_the_blob_decompresses_to_it() {
    type Decompress = fn(&[u8]) -> Vec<u8>;
    let cases: [(Compression, &str, Decompress); 4] = [
        (Compression::default(), media_types::OCI_LAYER_GZIP, gunzip),
        (
            Compression::Gzip { level: 1 },
            media_types::OCI_LAYER_GZIP,
            gunzip,
        ),
        (
            Compression::Zstd { level: 3 },
            media_types::OCI_LAYER_ZSTD,
            unzstd,
        ),
        (Compression::Uncompressed, media_types::OCI_LAYER, |b| {
            b.to_vec()
        }),
    ];
    for (compression, media_type, decompress) in cases {
        let layers = layers3();
        let sink = MemorySink::new();
        let opts = ImageOptions {
            compression,
            ..ImageOptions::default()
        };
        let img = build_image(config(3), &as_sources(&layers), &opts, &sink).unwrap();
        assert_eq!(img.layers.len(), 3);
        for (layer, (desc, diff_id)) in layers.iter().zip(&img.layers) {
            let tar = layer.tar(None);
            assert_eq!(*diff_id, sha256(&tar), "{compression}");
            assert_eq!(*diff_id, layer.layer_id());
            assert_eq!(desc.media_type, media_type);
            let blob = sink.get(&desc.digest).expect("layer blob stored");
            assert_eq!(sha256(&blob), desc.digest);
            assert_eq!(blob.len() as u64, desc.size);
            assert_eq!(decompress(&blob), tar, "{compression}");
            assert_eq!(layer.writes(), 1, "each layer is streamed once");
        }
        if compression != Compression::Uncompressed {
            let big = &img.layers[1].0;
            assert!(big.size < (256 << 10), "{compression} did not compress");
        }
    }
}

#[test]
fn config_and_manifest_follow_layer_order() {
    let layers: Vec<_> = (0..8)
        .map(|i| TestLayer::generated(i, 1000 + i as usize))
        .collect();
    let sink = MemorySink::new();
    let img = build_image(
        config(8),
        &as_sources(&layers),
        &ImageOptions::default(),
        &sink,
    )
    .unwrap();

    let cfg: ImageConfig = serde_json::from_slice(&img.config_bytes).unwrap();
    let want: Vec<Digest> = layers.iter().map(|l| sha256(l.tar(None))).collect();
    assert_eq!(cfg.rootfs.diff_ids, want);
    assert_eq!(cfg.rootfs.kind, "layers");
    assert_eq!(
        cfg.to_bytes(),
        img.config_bytes,
        "config bytes are canonical"
    );
    assert_eq!(img.config.digest, sha256(&img.config_bytes));
    assert_eq!(img.config.size, img.config_bytes.len() as u64);
    assert_eq!(img.config.media_type, media_types::OCI_CONFIG);

    let m: ImageManifest = serde_json::from_slice(&img.manifest_bytes).unwrap();
    assert_eq!(m.schema_version, 2);
    assert_eq!(m.media_type.as_deref(), Some(media_types::OCI_MANIFEST));
    assert_eq!(m.config, img.config);
    let manifest_layers: Vec<_> = img.layers.iter().map(|(d, _)| d.clone()).collect();
    assert_eq!(m.layers, manifest_layers);
    assert_eq!(serde_json::to_vec(&m).unwrap(), img.manifest_bytes);
    assert_eq!(img.manifest.digest, sha256(&img.manifest_bytes));
    assert_eq!(img.manifest.media_type, media_types::OCI_MANIFEST);
    let p = img.manifest.platform.as_ref().unwrap();
    assert_eq!((p.os.as_str(), p.architecture.as_str()), ("linux", "amd64"));

    for d in [img.config.digest, img.manifest.digest] {
        assert!(sink.has(&d));
    }
    assert_eq!(
        &*sink.get(&img.manifest.digest).unwrap(),
        img.manifest_bytes.as_slice()
    );
    // 8 layers + config + manifest, nothing else.
    assert_eq!(sink.digests().len(), 10);
}

#[test]
fn same_inputs_give_the_same_manifest_digest() {
    let build = |epoch: Option<i64>, compression| {
        let layers = layers3();
        let sink = MemorySink::new();
        let opts = ImageOptions {
            compression,
            source_date_epoch: epoch,
            ..ImageOptions::default()
        };
        build_image(config(3), &as_sources(&layers), &opts, &sink).unwrap()
    };
    for compression in [
        Compression::default(),
        Compression::Zstd { level: 3 },
        Compression::Uncompressed,
    ] {
        let a = build(Some(1_700_000_000), compression);
        let b = build(Some(1_700_000_000), compression);
        assert_eq!(a.manifest.digest, b.manifest.digest, "{compression}");
        assert_eq!(a.manifest_bytes, b.manifest_bytes);
        assert_eq!(a.config_bytes, b.config_bytes);
        // A different epoch changes the image (clamped mtimes, created times).
        let c = build(Some(1_700_000_001), compression);
        assert_ne!(a.manifest.digest, c.manifest.digest);
    }
    // Without an epoch and a created time, too.
    assert_eq!(
        build(None, Compression::default()).manifest.digest,
        build(None, Compression::default()).manifest.digest
    );
}

#[test]
fn epoch_fixes_created_history_and_layer_mtimes() {
    let epoch = 1_700_000_000;
    let layers = layers3();
    let sink = MemorySink::new();
    let opts = ImageOptions {
        source_date_epoch: Some(epoch),
        created: Some("2031-01-01T00:00:00Z".into()),
        ..ImageOptions::default()
    };
    let img = build_image(config(3), &as_sources(&layers), &opts, &sink).unwrap();
    let cfg: ImageConfig = serde_json::from_slice(&img.config_bytes).unwrap();
    assert_eq!(cfg.created.as_deref(), Some("2023-11-14T22:13:20Z"));
    assert_eq!(cfg.history.len(), 4);
    for h in &cfg.history {
        assert_eq!(h.created.as_deref(), Some("2023-11-14T22:13:20Z"));
    }
    // Layer 2 has a file dated after the epoch: its exported tar is clamped, so its
    // diffID is that of the clamped tar, not the layer id.
    let clamped = layers[2].tar(Some(epoch));
    assert_eq!(img.layers[2].1, sha256(&clamped));
    assert_ne!(img.layers[2].1, layers[2].layer_id());
    let entries = tar_entries(&gunzip(&sink.get(&img.layers[2].0.digest).unwrap()));
    assert_eq!(entries[0].1, epoch as u64);
    // Layer 0's files predate the epoch: unchanged.
    assert_eq!(img.layers[0].1, layers[0].layer_id());
}

#[test]
fn created_without_epoch() {
    let sink = MemorySink::new();
    let opts = ImageOptions {
        created: Some("2025-01-02T03:04:05.123Z".into()),
        ..ImageOptions::default()
    };
    let img = build_image(
        config(1),
        &as_sources(&[TestLayer::generated(1, 10)]),
        &opts,
        &sink,
    )
    .unwrap();
    let cfg: ImageConfig = serde_json::from_slice(&img.config_bytes).unwrap();
    assert_eq!(cfg.created.as_deref(), Some("2025-01-02T03:04:05.123Z"));
    assert!(cfg
        .history
        .iter()
        .all(|h| h.created.as_deref() == Some("2025-01-02T03:04:05.123Z")));
}

#[test]
fn history_is_fixed_up_to_match_the_layers() {
    let layers = layers3();
    let sink = MemorySink::new();
    // One RUN entry and one ENV entry for three layers: two entries are added.
    let img = build_image(
        config(1),
        &as_sources(&layers),
        &ImageOptions::default(),
        &sink,
    )
    .unwrap();
    let cfg: ImageConfig = serde_json::from_slice(&img.config_bytes).unwrap();
    let non_empty: Vec<_> = cfg.history.iter().filter(|h| !h.empty_layer).collect();
    assert_eq!(non_empty.len(), 3);
    assert_eq!(cfg.history.len(), 4);
    assert_eq!(cfg.history[0].created_by.as_deref(), Some("RUN step 0"));
    assert!(cfg.history[1].empty_layer);
    assert_eq!(
        cfg.history[3].comment.as_deref(),
        Some(GENERATED_HISTORY_COMMENT)
    );

    // Four layer-producing entries for three layers cannot be fixed.
    let err = build_image(
        config(4),
        &as_sources(&layers),
        &ImageOptions::default(),
        &sink,
    )
    .unwrap_err();
    assert!(
        matches!(
            err,
            ImageError::HistoryMismatch {
                layers: 3,
                non_empty: 4
            }
        ),
        "{err}"
    );
}

#[test]
fn an_empty_layer_is_still_a_layer() {
    let empty = TestLayer::new(&[]);
    assert_eq!(
        empty.tar(None).len(),
        1024,
        "just the end-of-archive blocks"
    );
    let sink = MemorySink::new();
    let img = build_image(
        config(2),
        &as_sources(&[TestLayer::generated(1, 10), empty.clone()]),
        &ImageOptions::default(),
        &sink,
    )
    .unwrap();
    assert_eq!(img.layers.len(), 2);
    assert_eq!(img.layers[1].1, sha256(empty.tar(None)));
    assert_eq!(
        gunzip(&sink.get(&img.layers[1].0.digest).unwrap()),
        empty.tar(None)
    );
}

#[test]
fn docker_media_types() {
    let layers = layers3();
    let sink = MemorySink::new();
    let opts = ImageOptions {
        media: MediaTypes::Docker,
        ..ImageOptions::default()
    };
    let img = build_image(config(3), &as_sources(&layers), &opts, &sink).unwrap();
    assert_eq!(img.manifest.media_type, media_types::DOCKER_MANIFEST);
    assert_eq!(img.config.media_type, media_types::DOCKER_CONFIG);
    let m: ImageManifest = serde_json::from_slice(&img.manifest_bytes).unwrap();
    assert_eq!(m.media_type.as_deref(), Some(media_types::DOCKER_MANIFEST));
    assert!(m
        .layers
        .iter()
        .all(|l| l.media_type == media_types::DOCKER_LAYER_GZIP));

    let uncompressed = ImageOptions {
        media: MediaTypes::Docker,
        compression: Compression::Uncompressed,
        ..ImageOptions::default()
    };
    let img = build_image(config(3), &as_sources(&layers), &uncompressed, &sink).unwrap();
    assert_eq!(
        img.layers[0].0.media_type,
        "application/vnd.docker.image.rootfs.diff.tar"
    );
}

#[test]
fn zstd_with_docker_media_is_refused_before_any_work() {
    let layers = layers3();
    let sink = MemorySink::new();
    let opts = ImageOptions {
        media: MediaTypes::Docker,
        compression: Compression::Zstd { level: 3 },
        ..ImageOptions::default()
    };
    let err = build_image(config(3), &as_sources(&layers), &opts, &sink).unwrap_err();
    assert!(matches!(err, ImageError::ZstdWithDockerMedia), "{err}");
    assert!(layers.iter().all(|l| l.writes() == 0));
    assert!(sink.digests().is_empty());
}

#[test]
fn annotations_go_into_oci_manifests_only() {
    let layers = layers3();
    let sink = MemorySink::new();
    let annotations: BTreeMap<String, String> = [
        ("org.opencontainers.image.title", "t"),
        ("org.opencontainers.image.description", "d"),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_string(), v.to_string()))
    .collect();
    let opts = ImageOptions {
        annotations: annotations.clone(),
        ..ImageOptions::default()
    };
    let img = build_image(config(3), &as_sources(&layers), &opts, &sink).unwrap();
    let m: ImageManifest = serde_json::from_slice(&img.manifest_bytes).unwrap();
    assert_eq!(m.annotations, annotations);

    let docker = ImageOptions {
        media: MediaTypes::Docker,
        ..opts
    };
    let err = build_image(config(3), &as_sources(&layers), &docker, &sink).unwrap_err();
    assert!(
        matches!(err, ImageError::AnnotationsWithDockerMedia),
        "{err}"
    );
}

#[test]
fn the_sink_memo_skips_recompression_until_the_blob_is_gone() {
    let layers = layers3();
    let sink = MemorySink::new();
    let opts = ImageOptions::default();
    let a = build_image(config(3), &as_sources(&layers), &opts, &sink).unwrap();
    let b = build_image(config(3), &as_sources(&layers), &opts, &sink).unwrap();
    assert_eq!(a, b);
    assert!(
        layers.iter().all(|l| l.writes() == 1),
        "memo hit streams nothing"
    );

    // A different level is a different key.
    let level1 = ImageOptions {
        compression: Compression::Gzip { level: 1 },
        ..ImageOptions::default()
    };
    build_image(config(3), &as_sources(&layers), &level1, &sink).unwrap();
    assert!(layers.iter().all(|l| l.writes() == 2));

    // A memo entry whose blob was collected is not trusted.
    assert!(sink.remove(&a.layers[1].0.digest));
    let c = build_image(config(3), &as_sources(&layers), &opts, &sink).unwrap();
    assert_eq!(c, a);
    assert_eq!(layers[1].writes(), 3);
    assert_eq!(layers[0].writes(), 2);
}

struct Lying(Arc<TestLayer>);

impl LayerSource for Lying {
    fn layer_id(&self) -> Digest {
        sha256(b"something else")
    }
    fn write_tar(&self, w: &mut dyn Write, epoch: Option<i64>) -> io::Result<Digest> {
        self.0.write_tar(w, epoch)
    }
}

struct Failing;

impl LayerSource for Failing {
    fn layer_id(&self) -> Digest {
        sha256(b"failing")
    }
    fn write_tar(&self, w: &mut dyn Write, _: Option<i64>) -> io::Result<Digest> {
        w.write_all(&[0u8; 4096])?;
        Err(io::Error::other("disk on fire"))
    }
}

#[test]
fn layer_source_errors_name_the_layer() {
    let sink = MemorySink::new();
    let good: Arc<dyn LayerSource> = TestLayer::generated(1, 10);
    let lying: Arc<dyn LayerSource> = Arc::new(Lying(TestLayer::generated(2, 10)));
    let err = build_image(
        config(2),
        &[good.clone(), lying],
        &ImageOptions::default(),
        &sink,
    )
    .unwrap_err();
    assert!(
        matches!(err, ImageError::LayerIdMismatch { index: 1, layer, .. } if layer == sha256(b"something else")),
        "{err}"
    );

    let failing: Arc<dyn LayerSource> = Arc::new(Failing);
    let err =
        build_image(config(2), &[good, failing], &ImageOptions::default(), &sink).unwrap_err();
    match &err {
        ImageError::Layer {
            index,
            layer,
            source,
        } => {
            assert_eq!((*index, *layer), (1, sha256(b"failing")));
            assert_eq!(source.to_string(), "disk on fire");
        }
        other => panic!("unexpected {other}"),
    }
}
