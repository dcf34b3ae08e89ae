//! Reproducible images through the real binary: with SOURCE_DATE_EPOCH (or
//! `--source-date-epoch`) two clean builds — fresh stores, contexts written at different
//! times — give byte-identical images; without it the image records the build time in
//! `created` and the files' own mtimes in the layers, as BuildKit does.

mod common;

use std::path::Path;

use common::*;
use serde_json::Value;
use tempfile::TempDir;

const DOCKERFILE: &str = "FROM scratch AS base\n\
COPY lib/ /usr/lib/app/\n\
FROM base\n\
COPY --chmod=0755 bin/tool /usr/bin/tool\n\
COPY --link etc/app.conf /etc/app.conf\n\
WORKDIR /srv\n\
LABEL org.example.v=1\n";

/// The same files, every mtime set to `mtime`.
fn ctx(mtime: u64) -> TempDir {
    let c = context(&[
        ("Dockerfile", DOCKERFILE, 0o644),
        ("lib/a.so", "a\n", 0o644),
        ("lib/sub/b.so", "b\n", 0o644),
        ("bin/tool", "#!/bin/sh\n", 0o644),
        ("etc/app.conf", "k=v\n", 0o600),
    ]);
    set_mtimes(c.path(), mtime);
    c
}

struct Built {
    meta: Value,
    archive: Vec<u8>,
    config: Value,
    /// The build kept alive with its output dir.
    _out: TempDir,
}

/// A clean build (fresh store) to an OCI archive.
fn clean_build(ctx: &Path, extra: &[&str], env: &[(&str, &str)]) -> Built {
    let s = Strata::new();
    let out = tempfile::tempdir().unwrap();
    let archive = out.path().join("image.tar");
    let layout = out.path().join("layout");
    let meta = out.path().join("meta.json");
    let mut args = vec![
        "-o".to_string(),
        format!("type=oci,dest={}", archive.display()),
        "-o".to_string(),
        format!("type=oci,dest={},tar=false", layout.display()),
        "--metadata-file".to_string(),
        meta.display().to_string(),
    ];
    args.extend(extra.iter().map(|s| s.to_string()));
    s.build_env(ctx, &args, env);
    let meta = read_json(&meta);
    let config = layout_blob(
        &layout,
        meta["containerimage.config.digest"].as_str().unwrap(),
    );
    Built {
        meta,
        archive: std::fs::read(&archive).unwrap(),
        config,
        _out: out,
    }
}

fn manifest_digest(r: &Built) -> &str {
    r.meta["containerimage.digest"].as_str().unwrap()
}

#[test]
fn source_date_epoch_gives_identical_digests() {
    let (c1, c2) = (ctx(1_000_000_000), ctx(1_600_000_000));
    let a = clean_build(c1.path(), &[], &[("SOURCE_DATE_EPOCH", "0")]);
    let b = clean_build(c2.path(), &[], &[("SOURCE_DATE_EPOCH", "0")]);
    assert_eq!(manifest_digest(&a), manifest_digest(&b));
    assert!(
        a.archive == b.archive,
        "the OCI archives differ byte for byte"
    );
    assert_eq!(a.config["created"], "1970-01-01T00:00:00Z");
    for h in a.config["history"].as_array().unwrap() {
        assert_eq!(h["created"], "1970-01-01T00:00:00Z", "{h}");
    }
    // The flag is the same as the variable.
    let f = clean_build(c2.path(), &["--source-date-epoch", "0"], &[]);
    assert_eq!(manifest_digest(&f), manifest_digest(&a));
}

#[test]
fn without_source_date_epoch_the_build_time_and_file_mtimes_are_recorded() {
    let (c1, c2) = (ctx(1_000_000_000), ctx(1_600_000_000));
    let before = now();
    let a = clean_build(c1.path(), &[], &[]);
    let b = clean_build(c2.path(), &[], &[]);
    let after = now();
    // The file mtimes are in the layers, so the images differ whatever the clock says.
    assert_ne!(manifest_digest(&a), manifest_digest(&b));
    assert_ne!(a.config["rootfs"], b.config["rootfs"]);
    for r in [&a, &b] {
        let created = r.config["created"].as_str().unwrap();
        let t = parse_rfc3339(created);
        assert!(
            (before..=after).contains(&t),
            "created {created} is not the build time ({before}..={after})"
        );
    }
}

#[test]
fn source_date_epoch_clamps_layer_mtimes() {
    let c = ctx(1_600_000_000);
    let r = clean_build(c.path(), &[], &[("SOURCE_DATE_EPOCH", "1500000000")]);
    assert_eq!(r.config["created"], "2017-07-14T02:40:00Z");
    let archive = tempfile::NamedTempFile::new().unwrap();
    std::fs::write(archive.path(), &r.archive).unwrap();
    let unpacked = untar(archive.path());
    let index = read_json(&unpacked.path().join("index.json"));
    let manifest = layout_blob(
        unpacked.path(),
        index["manifests"][0]["digest"].as_str().unwrap(),
    );
    for layer in manifest["layers"].as_array().unwrap() {
        let digest = layer["digest"].as_str().unwrap();
        let blob = unpacked
            .path()
            .join("blobs/sha256")
            .join(digest.trim_start_matches("sha256:"));
        let gz = flate2::read::GzDecoder::new(std::fs::File::open(blob).unwrap());
        for e in tar::Archive::new(gz).entries().unwrap() {
            let e = e.unwrap();
            let mtime = e.header().mtime().unwrap();
            assert!(
                mtime <= 1_500_000_000,
                "{} has mtime {mtime}, after SOURCE_DATE_EPOCH",
                e.path().unwrap().display()
            );
        }
    }
}

fn now() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs() as i64
}

/// `YYYY-MM-DDTHH:MM:SSZ` (optionally with fractional seconds) to Unix seconds.
fn parse_rfc3339(s: &str) -> i64 {
    let n = |r: std::ops::Range<usize>| s[r].parse::<i64>().unwrap();
    let (y, m, d) = (n(0..4), n(5..7), n(8..10));
    let (hh, mm, ss) = (n(11..13), n(14..16), n(17..19));
    let y2 = if m <= 2 { y - 1 } else { y };
    let era = y2.div_euclid(400);
    let yoe = y2 - era * 400;
    let doy = (153 * ((m + 9) % 12) + 2) / 5 + d - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    (era * 146_097 + doe - 719_468) * 86_400 + hh * 3600 + mm * 60 + ss
}
