//! Pulls and pushes through the real binary against a real registry behind a loopback
//! proxy that injects faults (500s, 429 with `Retry-After`, connection resets before
//! and during a response, stalls). Transient faults are retried and the transfer
//! completes; persistent ones fail with a message naming the blob, and a failed push
//! never leaves a manifest in the registry.

mod common;
#[path = "../../registry/tests/common/fault_proxy.rs"]
mod fault_proxy;
#[path = "../../registry/tests/common/mod.rs"]
mod harness;

use std::process::Output;
use std::time::Duration;

use common::*;
use fault_proxy::{Fault, FaultProxy};
use serde_json::Value;

/// Deterministic, poorly compressible text.
fn noise(seed: u64, len: usize) -> String {
    let mut x = seed.wrapping_mul(6364136223846793005).wrapping_add(1);
    let mut s = String::with_capacity(len);
    while s.len() < len {
        x = x
            .wrapping_mul(6364136223846793005)
            .wrapping_add(1442695040888963407);
        s.push_str(&format!("{:016x}", x >> 7));
    }
    s.truncate(len);
    s
}

/// A locally built image of three layers, named `local/app:1`.
fn built(s: &Strata) -> tempfile::TempDir {
    let a = noise(1, 300_000);
    let b = noise(2, 200_000);
    let ctx = context(&[
        (
            "Dockerfile",
            "FROM scratch\nCOPY a /a\nCOPY b /b\nCOPY c /c\n",
            0o644,
        ),
        ("a", &a, 0o644),
        ("b", &b, 0o644),
        ("c", "small\n", 0o644),
    ]);
    s.build(ctx.path(), &["-t", "local/app:1"]);
    ctx
}

/// Runs strata with a short stall timeout and `attempts` tries per request.
fn run(s: &Strata, attempts: u32, args: &[&str]) -> Output {
    s.cmd()
        .env("STRATA_REGISTRY_TIMEOUT", "1")
        .env("STRATA_REGISTRY_ATTEMPTS", attempts.to_string())
        .args(args)
        .output()
        .unwrap()
}

fn ok(out: Output) -> Output {
    assert!(
        out.status.success(),
        "failed:\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    out
}

/// The time between the request that met `fault` and the next request.
fn waited_after(proxy: &FaultProxy, fault: Fault) -> Duration {
    let seen = proxy.seen();
    let i = seen
        .iter()
        .position(|r| r.fault == Some(fault))
        .expect("the fault was injected");
    seen[i + 1].at - seen[i].at
}

fn failed(out: Output) -> String {
    assert!(!out.status.success(), "succeeded but should have failed");
    String::from_utf8_lossy(&out.stderr).into_owned()
}

/// The repository's tags as the registry stores them.
fn tags(reg: &harness::Registry, repo: &str) -> Vec<String> {
    let dir = reg
        .data()
        .join("docker/registry/v2/repositories")
        .join(repo)
        .join("_manifests/tags");
    match std::fs::read_dir(dir) {
        Ok(d) => d
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .collect(),
        Err(_) => Vec::new(),
    }
}

/// Every blob of the manifest `digest` is in the registry's storage, with its size.
fn assert_blobs_present(reg: &harness::Registry, manifest: &str) {
    let hex = manifest.strip_prefix("sha256:").unwrap();
    let m: Value = serde_json::from_slice(&std::fs::read(reg.blob_file(hex)).unwrap()).unwrap();
    let mut descs = vec![m["config"].clone()];
    descs.extend(m["layers"].as_array().unwrap().iter().cloned());
    for d in descs {
        let hex = d["digest"]
            .as_str()
            .unwrap()
            .strip_prefix("sha256:")
            .unwrap();
        let meta = std::fs::metadata(reg.blob_file(hex))
            .unwrap_or_else(|e| panic!("blob {hex} of the pushed manifest is missing: {e}"));
        assert_eq!(meta.len(), d["size"].as_u64().unwrap(), "{d}");
    }
}

/// A registry holding the image of [`built`] as `f/app:1`, and its digest.
fn in_registry() -> Option<(harness::Registry, String)> {
    let reg = harness::Registry::start()?;
    let s = Strata::new();
    let _ctx = built(&s);
    let direct = format!("{}/f/app:1", reg.addr);
    let digest = pushed_digest(&s.ok(&["push", "-q", "local/app:1", &direct]));
    Some((reg, digest))
}

fn pushed_digest(out: &Output) -> String {
    let line = String::from_utf8_lossy(&out.stdout).trim().to_string();
    line.rsplit('@').next().unwrap().to_string()
}

#[test]
fn a_pull_survives_500s_resets_429_and_a_stall() {
    let Some((reg, digest)) = in_registry() else {
        return;
    };
    let proxy = FaultProxy::start(&reg.addr);
    proxy.inject("GET", "/manifests/", Fault::Status(429, Some(1)), 1);
    proxy.inject("GET", "/manifests/", Fault::Reset, 1);
    // Blob GETs meet one fault each, in this order.
    proxy.inject("GET", "/blobs/", Fault::Status(500, None), 1);
    proxy.inject("GET", "/blobs/", Fault::Reset, 1);
    proxy.inject("GET", "/blobs/", Fault::ResetAfter(2000), 1);
    proxy.inject("GET", "/blobs/", Fault::StallAfter(2000), 1);
    let via = format!("{}/f/app:1", proxy.addr);
    let s2 = Strata::new();
    ok(run(&s2, 5, &["pull", &via]));
    let inspect: Value =
        serde_json::from_slice(&s2.ok(&["image", "inspect", &via]).stdout).unwrap();
    assert_eq!(inspect["Digest"], digest.as_str(), "{inspect}");
    let injected = proxy.injected();
    assert_eq!(injected.len(), 6, "{injected:#?}");
    // Retry-After was honoured: the next request came at least a second later.
    let waited = waited_after(&proxy, Fault::Status(429, Some(1)));
    assert!(waited >= Duration::from_millis(950), "{waited:?}");
}

#[test]
fn a_pull_that_keeps_stalling_fails_naming_the_blob() {
    let Some((reg, _)) = in_registry() else {
        return;
    };
    let proxy = FaultProxy::start(&reg.addr);
    proxy.inject("GET", "/blobs/", Fault::StallAfter(0), 1000);
    let via = format!("{}/f/app:1", proxy.addr);
    let s2 = Strata::new();
    // The timeout and the attempts from the config file's [transfer] this time.
    let config = s2.root().join("config.toml");
    std::fs::write(&config, "[transfer]\ntimeout = 1\nattempts = 2\n").unwrap();
    let pull = || {
        let mut c = s2.cmd();
        failed(
            c.env("STRATA_CONFIG", &config)
                .args(["pull", &via])
                .output()
                .unwrap(),
        )
    };
    let err = pull();
    assert!(err.contains("stalled"), "{err}");
    assert!(err.contains("nothing sent or received for 1 s"), "{err}");
    assert!(err.contains("f/app@sha256:"), "{err}");
    // Two tries for each of the (at most four) blobs started.
    let gets = proxy
        .seen()
        .iter()
        .filter(|r| r.path.contains("/blobs/"))
        .count();
    assert!((2..=8).contains(&gets), "{gets}");
    let images = String::from_utf8(s2.ok(&["images"]).stdout).unwrap();
    assert!(!images.contains("f/app"), "{images}");

    // A value out of range is an error naming the file and line.
    std::fs::write(&config, "[transfer]\npush-parallelism = 0\n").unwrap();
    let err = pull();
    assert!(err.contains("config.toml:2:"), "{err}");
}

#[test]
fn a_push_survives_500s_resets_429_and_a_stall() {
    let Some(reg) = harness::Registry::start() else {
        return;
    };
    let s = Strata::new();
    let _ctx = built(&s);
    let proxy = FaultProxy::start(&reg.addr);
    proxy.inject("HEAD", "/blobs/", Fault::Status(429, Some(1)), 1);
    proxy.inject("POST", "/blobs/uploads/", Fault::Status(500, None), 1);
    proxy.inject("PUT", "/blobs/uploads/", Fault::Reset, 1);
    proxy.inject("PUT", "/blobs/uploads/", Fault::StallAfter(0), 1);
    proxy.inject("PUT", "/manifests/", Fault::Status(503, None), 1);
    let dest = format!("{}/p/app:1", proxy.addr);
    let out = ok(run(&s, 5, &["push", "local/app:1", &dest]));
    let digest = pushed_digest(&out);
    assert_eq!(proxy.injected().len(), 5, "{:#?}", proxy.injected());
    assert_eq!(tags(&reg, "p/app"), ["1"]);
    assert_blobs_present(&reg, &digest);
    // A fresh store pulls it (digests checked) straight from the registry.
    let s2 = Strata::new();
    s2.ok(&["pull", "-q", &format!("{}/p/app:1", reg.addr)]);
}

#[test]
fn an_upload_answered_429_waits_for_its_retry_after() {
    let Some(reg) = harness::Registry::start() else {
        return;
    };
    let s = Strata::new();
    let _ctx = built(&s);
    let proxy = FaultProxy::start(&reg.addr);
    // The upload's PUT (its session is spent) is retried on a new session by the
    // push, not by the request's own retries: the wait must still be the registry's.
    proxy.inject("PUT", "/blobs/uploads/", Fault::Status(429, Some(2)), 1);
    let dest = format!("{}/p/app:1", proxy.addr);
    // One blob at a time, so the next request is this blob's retry.
    ok(run(
        &s,
        5,
        &["push", "--push-parallelism", "1", "local/app:1", &dest],
    ));
    let waited = waited_after(&proxy, Fault::Status(429, Some(2)));
    assert!(waited >= Duration::from_millis(1950), "{waited:?}");
    assert_eq!(tags(&reg, "p/app"), ["1"]);
}

#[test]
fn a_failed_push_leaves_no_manifest() {
    let Some(reg) = harness::Registry::start() else {
        return;
    };
    let s = Strata::new();
    let _ctx = built(&s);
    let proxy = FaultProxy::start(&reg.addr);

    // Every upload answers 500.
    proxy.inject("PUT", "/blobs/uploads/", Fault::Status(500, None), 1000);
    let dest = format!("{}/p/app:1", proxy.addr);
    let err = failed(run(&s, 2, &["push", "local/app:1", &dest]));
    assert!(err.contains("HTTP 500"), "{err}");
    assert!(err.contains("p/app@sha256:"), "{err}");
    assert!(err.contains("the manifest was not pushed"), "{err}");
    assert!(tags(&reg, "p/app").is_empty());
    assert!(
        !proxy.seen().iter().any(|r| r.path.contains("/manifests/")),
        "{:#?}",
        proxy.seen()
    );

    // Every upload stalls (the registry never sees its body).
    proxy.clear();
    proxy.inject("PUT", "/blobs/uploads/", Fault::Stall, 1000);
    let err = failed(run(&s, 2, &["push", "local/app:1", &dest]));
    assert!(err.contains("stalled"), "{err}");
    assert!(err.contains("p/app@sha256:"), "{err}");
    assert!(tags(&reg, "p/app").is_empty());
    assert!(!proxy.seen().iter().any(|r| r.path.contains("/manifests/")));
}

/// The registry-stored manifest's blobs: (digest, size).
fn manifest_blobs(reg: &harness::Registry, manifest: &str) -> Vec<(String, u64)> {
    let hex = manifest.strip_prefix("sha256:").unwrap();
    let m: Value = serde_json::from_slice(&std::fs::read(reg.blob_file(hex)).unwrap()).unwrap();
    let mut descs = vec![m["config"].clone()];
    descs.extend(m["layers"].as_array().unwrap().iter().cloned());
    descs
        .iter()
        .map(|d| {
            (
                d["digest"].as_str().unwrap().to_string(),
                d["size"].as_u64().unwrap(),
            )
        })
        .collect()
}

#[test]
fn chunked_uploads_and_the_fallback_when_a_put_is_refused() {
    let Some(reg) = harness::Registry::start() else {
        return;
    };
    let s = Strata::new();
    let _ctx = built(&s);
    let proxy = FaultProxy::start(&reg.addr);
    let patches = |p: &FaultProxy| p.seen().iter().filter(|r| r.method == "PATCH").count();

    // 64 KiB chunks; one chunk is reset (that upload starts over).
    proxy.inject("PATCH", "/blobs/uploads/", Fault::Reset, 1);
    let dest = format!("{}/c/app:1", proxy.addr);
    let out = ok(run(
        &s,
        5,
        &["push", "--chunk-size", "64K", "local/app:1", &dest],
    ));
    let digest = pushed_digest(&out);
    assert_blobs_present(&reg, &digest);
    let chunks: usize = manifest_blobs(&reg, &digest)
        .iter()
        .filter(|(_, size)| *size > 65536)
        .map(|(_, size)| size.div_ceil(65536) as usize)
        .sum();
    assert!(chunks >= 4, "{chunks}");
    // Every chunk once, plus the reset one and what its upload had sent before it.
    let sent = patches(&proxy);
    assert!(
        sent > chunks && sent <= 2 * chunks,
        "{sent} PATCHes for {chunks} chunks"
    );
    let s2 = Strata::new();
    s2.ok(&["pull", "-q", &format!("{}/c/app:1", reg.addr)]);

    // A registry that refuses a monolithic upload (413) gets that blob in chunks. (A
    // fresh store, which knows of no repository to mount the blobs from.)
    let s3 = Strata::new();
    let _ctx3 = built(&s3);
    let before = patches(&proxy);
    proxy.inject("PUT", "/blobs/uploads/", Fault::Status(413, None), 1);
    let dest = format!("{}/d/app:1", proxy.addr);
    let args = ["push", "--push-parallelism", "1", "local/app:1", &dest];
    let out = ok(run(&s3, 5, &args));
    assert_blobs_present(&reg, &pushed_digest(&out));
    assert_eq!(proxy.injected().len(), 2, "{:#?}", proxy.injected());
    assert!(patches(&proxy) > before, "{:#?}", proxy.seen());
}
