//! Sharing the build cache through the real binary: `--cache-to` / `--cache-from` with
//! a local OCI layout, a real registry (Debian's `docker-registry` on 127.0.0.1) and
//! inline in a pushed image; builds in fresh `--root`s hit the imported cache, fetch
//! only the layers they read, and export the same image.

mod common;
#[path = "../../registry/tests/common/mod.rs"]
mod harness;

use std::collections::BTreeSet;
use std::path::Path;

use common::*;
use serde_json::Value;
use tempfile::TempDir;

/// A builder stage with a step the final image does not use (`/junk`), and a final
/// stage taking one file from it.
const DOCKERFILE: &str = "FROM busybox AS builder\n\
RUN echo built > /out.txt\n\
RUN mkdir /junk && head -c 65536 /dev/urandom > /junk/big\n\
FROM busybox\n\
COPY --from=builder /out.txt /\n\
COPY hello.txt /\n\
RUN cat /out.txt /hello.txt > /copy.txt\n";

const JUNK: &str = "[builder 3/3] RUN mkdir /junk && head -c 65536 /dev/urandom > /junk/big";

fn arg(p: impl AsRef<Path>) -> String {
    p.as_ref().to_str().unwrap().to_string()
}

/// `type=local,src=DIR`.
fn local_src(dir: &Path) -> String {
    format!("type=local,src={}", arg(dir))
}

fn ctx() -> TempDir {
    context(&[
        ("Dockerfile", DOCKERFILE, 0o644),
        ("hello.txt", "hello\n", 0o644),
    ])
}

/// Builds with the busybox base and a fixed epoch (the image ID depends on content only).
fn build(s: &Strata, ctx: &TempDir, layout: &Path, extra: &[&str]) -> Build {
    let bb = busybox_context("busybox", layout);
    let mut args = vec!["--source-date-epoch", "1700000000", "--build-context", &bb];
    args.extend_from_slice(extra);
    s.build(ctx.path(), &args)
}

fn user_steps(b: &Build) -> BTreeSet<String> {
    b.steps()
        .into_iter()
        .filter(|s| !s.contains(" FROM "))
        .collect()
}

fn executed(b: &Build) -> BTreeSet<String> {
    b.executed()
        .into_iter()
        .filter(|s| !s.contains(" FROM "))
        .collect()
}

/// The diffIDs of the stored layers of a root.
fn stored_layers(s: &Strata) -> BTreeSet<String> {
    std::fs::read_dir(s.root().join("layers"))
        .map(|d| {
            d.filter_map(|e| e.ok()?.file_name().into_string().ok())
                .filter(|n| n.len() == 64)
                .collect()
        })
        .unwrap_or_default()
}

/// The cache config of an exported layout.
fn layout_cache(dir: &Path) -> Value {
    let index = read_json(&dir.join("index.json"));
    let m = &index["manifests"][0];
    assert_eq!(
        m["artifactType"], "application/vnd.strata.cache.v1+json",
        "{index}"
    );
    let manifest = layout_blob(dir, m["digest"].as_str().unwrap());
    assert_eq!(
        manifest["artifactType"],
        "application/vnd.strata.cache.v1+json"
    );
    layout_blob(dir, manifest["config"]["digest"].as_str().unwrap())
}

fn descriptions(cache: &Value) -> BTreeSet<String> {
    cache["records"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["description"].as_str().unwrap().to_string())
        .collect()
}

/// The diffID of the layer only `JUNK` made.
fn junk_layer(cache: &Value) -> String {
    top_layer(cache, JUNK)
}

/// The diffID of the layer the step `description` made (its record's top layer).
fn top_layer(cache: &Value, description: &str) -> String {
    let layers = cache["layers"].as_array().unwrap();
    let step = cache["records"]
        .as_array()
        .unwrap()
        .iter()
        .find(|r| r["description"] == description)
        .unwrap_or_else(|| panic!("{description} is recorded"));
    let top = step["layers"]
        .as_array()
        .unwrap()
        .last()
        .unwrap()
        .as_u64()
        .unwrap();
    let d = layers[top as usize]["diffID"].as_str().unwrap();
    d.strip_prefix("sha256:").unwrap().to_string()
}

/// A first build in a fresh root exporting its cache to a new directory with `opts`:
/// (the temporary directory, the cache directory in it, the root, the build).
fn export_local(
    ctx: &TempDir,
    layout: &Path,
    opts: &str,
) -> (TempDir, std::path::PathBuf, Strata, Build) {
    let out = tempfile::tempdir().unwrap();
    let cache_dir = out.path().join("cache");
    let a = Strata::new();
    let to = format!("type=local,dest={},{opts}", arg(&cache_dir));
    let first = build(&a, ctx, layout, &["--cache-to", &to]);
    (out, cache_dir, a, first)
}

#[test]
fn local_cache_mode_max_round_trip_into_a_fresh_root_is_all_cached_and_lazy() {
    let Some(layout) = busybox_layout() else {
        return;
    };
    let ctx = ctx();
    let (_out, cache_dir, a, first) = export_local(&ctx, &layout, "mode=max");
    assert!(first.cached().is_empty(), "{}", first.stderr);
    assert!(
        first.stderr.contains("exported cache to"),
        "{}",
        first.stderr
    );
    let cache = layout_cache(&cache_dir);
    assert!(descriptions(&cache).contains(JUNK), "{cache}");
    // Every blob the manifest names is in the layout, and nothing else.
    let blobs: BTreeSet<String> = std::fs::read_dir(cache_dir.join("blobs/sha256"))
        .unwrap()
        .map(|e| e.unwrap().file_name().into_string().unwrap())
        .collect();
    for l in cache["layers"].as_array().unwrap() {
        if let Some(d) = l["blob"]["digest"].as_str() {
            assert!(blobs.contains(d.strip_prefix("sha256:").unwrap()), "{l}");
        }
    }

    // With no output, an all-cached result downloads nothing: every step CACHED, no
    // image, a note, and a store with no record it cannot serve.
    let lazy = Strata::new();
    let from = local_src(&cache_dir);
    let nothing = build(&lazy, &ctx, &layout, &["--cache-from", &from]);
    assert!(executed(&nothing).is_empty(), "{}", nothing.stderr);
    assert_eq!(user_steps(&nothing), user_steps(&first));
    assert_eq!(nothing.id, "", "no image was stored");
    assert!(
        nothing
            .stderr
            .contains("nothing was downloaded and no image was stored"),
        "{}",
        nothing.stderr
    );
    let last = "[stage-1 4/4] RUN cat /out.txt /hello.txt > /copy.txt";
    let lazy_layers = stored_layers(&lazy);
    assert!(
        !lazy_layers.contains(&top_layer(&cache, last)),
        "{lazy_layers:?}"
    );
    let check = lazy.ok(&["system", "check"]);
    let report = String::from_utf8_lossy(&check.stdout);
    assert!(report.ends_with(": ok\n"), "{report}");
    assert!(!report.contains("note:"), "{report}");

    // Kept (-t): the image's layers are fetched, and it is the same image.
    let b = Strata::new();
    let again = build(&b, &ctx, &layout, &["--cache-from", &from, "-t", "kept"]);
    assert!(
        executed(&again).is_empty(),
        "ran: {:?}\n{}",
        executed(&again),
        again.stderr
    );
    assert_eq!(user_steps(&again), user_steps(&first));
    assert_eq!(again.id, first.id, "the same image from the imported cache");
    // The junk layer is needed by no later step and not by the image: never fetched.
    let stored = stored_layers(&b);
    assert!(stored.contains(&top_layer(&cache, last)), "{stored:?}");
    assert!(!stored.contains(&junk_layer(&cache)), "{stored:?}");
    assert!(stored_layers(&a).contains(&junk_layer(&cache)));

    // The records landed in the fresh root: a plain rebuild there hits every step whose
    // layers were fetched; the junk step, never fetched, runs again.
    let third = build(&b, &ctx, &layout, &[]);
    assert_eq!(
        executed(&third),
        BTreeSet::from([JUNK.to_string()]),
        "{}",
        third.stderr
    );
    assert_eq!(third.id, first.id);
}

#[test]
fn local_cache_mode_min_holds_only_the_final_image_steps() {
    let Some(layout) = busybox_layout() else {
        return;
    };
    let ctx = ctx();
    let (_out, cache_dir, _a, first) = export_local(&ctx, &layout, "compression=zstd");
    let cache = layout_cache(&cache_dir);
    let recorded = descriptions(&cache);
    assert!(!recorded.contains(JUNK), "{recorded:?}");
    assert!(
        recorded.contains("[stage-1 4/4] RUN cat /out.txt /hello.txt > /copy.txt"),
        "{recorded:?}"
    );
    assert!(
        cache["layers"]
            .as_array()
            .unwrap()
            .iter()
            .filter_map(|l| l["blob"]["mediaType"].as_str())
            .all(|m| m.ends_with("+zstd")),
        "{cache}"
    );

    // A fresh root re-runs the builder's unexported step; the rest hits.
    let b = Strata::new();
    let from = local_src(&cache_dir);
    let again = build(&b, &ctx, &layout, &["--cache-from", &from, "-t", "kept"]);
    assert_eq!(
        executed(&again),
        BTreeSet::from([JUNK.to_string()]),
        "{}",
        again.stderr
    );
    assert_eq!(again.id, first.id);

    // Several --cache-from merge: a mode=max cache (another root, listed second)
    // supplies the step the first lacks.
    let (_out, max_dir, _root, _) = export_local(&ctx, &layout, "mode=max");
    let c = Strata::new();
    let both = build(
        &c,
        &ctx,
        &layout,
        &[
            "--cache-from",
            &local_src(&cache_dir),
            "--cache-from",
            &local_src(&max_dir),
            "-t",
            "kept",
        ],
    );
    assert!(executed(&both).is_empty(), "{}", both.stderr);
    assert_eq!(both.id, first.id);
}

#[test]
fn a_missing_cache_is_a_warning_and_bad_specs_are_usage_errors() {
    let Some(layout) = busybox_layout() else {
        return;
    };
    let ctx = ctx();
    let s = Strata::new();
    let b = build(
        &s,
        &ctx,
        &layout,
        &["--cache-from", "type=local,src=/no/such/cache"],
    );
    assert!(
        b.stderr
            .contains("warning: --cache-from type=local,src=/no/such/cache"),
        "{}",
        b.stderr
    );
    let bb = busybox_context("busybox", &layout);
    let c = arg(ctx.path());
    // Before any work: no base image is resolved (FROM busybox would fail without it).
    let e = s.fails(&["build", "--cache-to", "type=local", &c]);
    assert!(e.contains("type=local needs dest=DIR"), "{e}");
    let e = s.fails(&[
        "build",
        "--build-context",
        &bb,
        "--cache-from",
        "type=s3,src=x",
        &c,
    ]);
    assert!(e.contains("unknown type \"s3\""), "{e}");

    // A damaged cache blob fails the build when the layer is needed, saying what to do.
    let (_out, damaged, _a, _) = export_local(&ctx, &layout, "mode=max");
    let blobs = damaged.join("blobs/sha256");
    let biggest = std::fs::read_dir(&blobs)
        .unwrap()
        .map(|e| e.unwrap().path())
        .max_by_key(|p| p.metadata().unwrap().len())
        .unwrap();
    std::fs::write(&biggest, "damaged").unwrap();
    let fresh = Strata::new();
    let from = local_src(&damaged);
    let e = fresh.fails(&[
        "build",
        "--build-context",
        &bb,
        "--cache-from",
        &from,
        "-t",
        "kept",
        &c,
    ]);
    assert!(e.contains("blob digest mismatch"), "{e}");
    assert!(e.contains("hint: the imported cache is damaged"), "{e}");

    // A failed export fails the build, unless ignore-error=true.
    let e = s.fails(&[
        "build",
        "--build-context",
        &bb,
        "--cache-to",
        "type=local,dest=/proc/no",
        &c,
    ]);
    assert!(e.contains("exporting the cache to /proc/no"), "{e}");
    let b = build(
        &s,
        &ctx,
        &layout,
        &["--cache-to", "type=local,dest=/proc/no,ignore-error=true"],
    );
    assert!(
        b.stderr
            .contains("warning: exporting the cache to /proc/no"),
        "{}",
        b.stderr
    );

    // An image layout is never pruned into a cache.
    let image = tempfile::tempdir().unwrap();
    let oci = format!("type=oci,dest={},tar=false", arg(image.path()));
    build(&s, &ctx, &layout, &["-o", &oci]);
    let into = format!("type=local,dest={}", arg(image.path()));
    let e = s.fails(&["build", "--build-context", &bb, "--cache-to", &into, &c]);
    assert!(e.contains("holding more than a strata cache"), "{e}");
    let index = read_json(&image.path().join("index.json"));
    assert!(index["manifests"][0]["artifactType"].is_null(), "{index}");
}

/// Request lines of the registry's access log (`HEAD /v2/…/blobs/…`), digests elided.
fn requests(reg: &harness::Registry, method: &str, what: &str) -> usize {
    reg.log()
        .lines()
        .filter(|l| l.contains(&format!("\"{method} /v2/")) && l.contains(what))
        .count()
}

fn digest_of(meta: &Path) -> String {
    let v = read_json(meta);
    v["containerimage.digest"].as_str().unwrap().to_string()
}

/// The busybox base, a registry and the context; None (skipped) without either tool.
fn registry_setup() -> Option<(std::path::PathBuf, harness::Registry, TempDir)> {
    Some((busybox_layout()?, harness::Registry::start()?, ctx()))
}

#[test]
fn registry_cache_round_trip_into_a_fresh_root_is_all_cached_with_the_same_image() {
    let Some((layout, reg, ctx)) = registry_setup() else {
        return;
    };
    let cache = format!("{}/team/app:buildcache", reg.addr);
    let to = format!("type=registry,ref={cache},mode=max");
    let out = tempfile::tempdir().unwrap();
    let (meta1, meta2) = (out.path().join("1.json"), out.path().join("2.json"));
    let a = Strata::new();
    let local_cache = out.path().join("cache");
    let to_local = format!("type=local,dest={},mode=max", arg(&local_cache));
    let first = build(
        &a,
        &ctx,
        &layout,
        &[
            "--cache-to",
            &to,
            "--cache-to",
            &to_local,
            "--metadata-file",
            &arg(&meta1),
        ],
    );
    assert!(
        first.stderr.contains(&format!("exported cache to {cache}")),
        "{}",
        first.stderr
    );
    let uploads_first = requests(&reg, "PUT", "/blobs/uploads/");
    assert!(
        uploads_first >= 5,
        "layers and config uploaded:\n{}",
        reg.log()
    );

    // A fresh root imports it (the plain reference form), hits every step, builds the
    // same image, and exports again without checking or uploading a single layer.
    let b = Strata::new();
    let heads_before = requests(&reg, "HEAD", "/blobs/");
    let again = build(
        &b,
        &ctx,
        &layout,
        &[
            "--cache-from",
            &cache,
            "--cache-to",
            &to,
            "--metadata-file",
            &arg(&meta2),
        ],
    );
    assert!(
        executed(&again).is_empty(),
        "ran: {:?}\n{}",
        executed(&again),
        again.stderr
    );
    assert_eq!(user_steps(&again), user_steps(&first));
    assert_eq!(again.id, first.id);
    assert_eq!(
        digest_of(&meta2),
        digest_of(&meta1),
        "the same image manifest"
    );
    assert_eq!(
        requests(&reg, "HEAD", "/blobs/"),
        heads_before,
        "{}",
        reg.log()
    );
    assert_eq!(requests(&reg, "PUT", "/blobs/uploads/"), uploads_first);
    assert!(again.stderr.contains("(0 written)"), "{}", again.stderr);

    // Pushing the all-cached image to another repository from a fresh root fetches
    // nothing: the registry mounts every layer from the cache repository, only the
    // config is uploaded, and no layer lands in the root (no local copy was asked for).
    let app = format!("{}/team/image:v1", reg.addr);
    let c = Strata::new();
    let uploads = requests(&reg, "POST", "/blobs/uploads/ ");
    let bb = busybox_context("busybox", &layout);
    let pushed = c.build(
        ctx.path(),
        &[
            "--build-context",
            &bb,
            "--cache-from",
            &cache,
            "--push",
            "-t",
            &app,
        ],
    );
    let only_the_push = |b: &Build| executed(b).iter().all(|s| s.starts_with("[push] "));
    assert!(only_the_push(&pushed), "{}", pushed.stderr);
    assert!(
        pushed
            .stderr
            .contains("the image was pushed from its blobs"),
        "{}",
        pushed.stderr
    );
    assert!(stored_layers(&c).is_empty(), "{:?}", stored_layers(&c));
    let mounts = requests(&reg, "POST", "/blobs/uploads/?mount=");
    assert!(mounts >= 4, "{mounts} mounts\n{}", reg.log());
    assert_eq!(
        requests(&reg, "POST", "/blobs/uploads/ "),
        uploads + 1,
        "{}",
        reg.log()
    );
    // A real client pulls it whole (every blob checked against its digest), and so does
    // strata (every layer also against its diffID).
    if let Some(skopeo) = Skopeo::find() {
        let copied = tempfile::tempdir().unwrap();
        let dest = format!("oci:{}:v1", arg(copied.path()));
        skopeo.copy_from_plain_http(&format!("docker://{app}"), &dest);
    }
    Strata::new().ok(&["pull", &app]);

    // From a cache no registry can mount from (a local layout), the blobs are copied
    // into the store (not extracted) and uploaded.
    let other = format!("{}/team/other:v1", reg.addr);
    let d = Strata::new();
    let uploads = requests(&reg, "POST", "/blobs/uploads/ ");
    let from_local = local_src(&local_cache);
    let pushed = d.build(
        ctx.path(),
        &[
            "--build-context",
            &bb,
            "--cache-from",
            &from_local,
            "--push",
            "-t",
            &other,
        ],
    );
    assert!(only_the_push(&pushed), "{}", pushed.stderr);
    assert!(stored_layers(&d).is_empty(), "{:?}", stored_layers(&d));
    assert!(
        requests(&reg, "POST", "/blobs/uploads/ ") > uploads + 1,
        "layers uploaded:\n{}",
        reg.log()
    );
    Strata::new().ok(&["pull", &other]);
}

#[test]
fn inline_cache_in_a_pushed_image_serves_a_fresh_root() {
    let Some((layout, reg, ctx)) = registry_setup() else {
        return;
    };
    let image = format!("{}/team/app:v1", reg.addr);
    let bb = busybox_context("busybox", &layout);
    let a = Strata::new();
    // No epoch: with one the image's layers are rewritten and inline is refused. A
    // registry cache exported beside it mounts the image's layers, pushed just before.
    let min_cache = format!("type=registry,ref={}/team/cache:min", reg.addr);
    let first = a.build(
        ctx.path(),
        &[
            "--build-context",
            &bb,
            "--cache-to",
            "type=inline",
            "--cache-to",
            &min_cache,
            "--push",
            "-t",
            &image,
        ],
    );
    assert!(first.cached().is_empty(), "{}", first.stderr);
    let mounts = requests(&reg, "POST", "/v2/team/cache/blobs/uploads/?mount=");
    assert!(mounts >= 4, "{mounts} mounts\n{}", reg.log());

    let b = Strata::new();
    let again = b.build(
        ctx.path(),
        &["--build-context", &bb, "--cache-from", &image],
    );
    // mode=min: the builder's step the image does not hold runs again; the rest hits.
    assert_eq!(
        executed(&again),
        BTreeSet::from([JUNK.to_string()]),
        "{}",
        again.stderr
    );
    assert!(
        again
            .cached()
            .iter()
            .any(|s| s.contains("RUN cat /out.txt")),
        "{}",
        again.stderr
    );

    let refused = a.build(
        ctx.path(),
        &[
            "--build-context",
            &bb,
            "--cache-to",
            "type=inline",
            "--source-date-epoch",
            "1",
        ],
    );
    assert!(
        refused
            .stderr
            .contains("type=inline is ignored with SOURCE_DATE_EPOCH"),
        "{}",
        refused.stderr
    );
}

#[test]
fn cache_mounts_are_exported_within_the_cap_and_restored_into_a_fresh_root() {
    let Some(layout) = busybox_layout() else {
        return;
    };
    let ctx = context(&[(
        "Dockerfile",
        "FROM busybox\n\
         ARG N=1\n\
         RUN --mount=type=cache,target=/var/cache/app sh -c 'ls /var/cache/app > /seen.txt; cat /var/cache/app/log >> /seen.txt; echo run-$N >> /var/cache/app/log'\n\
         RUN --mount=type=cache,id=big,target=/big sh -c 'ls /big > /big-seen.txt; head -c 300000 /dev/urandom > /big/data'\n",
        0o644,
    )]);
    let (out, cache_dir, a, first) =
        export_local(&ctx, &layout, "cache-mounts=true,cache-mounts-max=100k");
    assert!(
        first
            .stderr
            .contains("cache mount \"big\" (300000 bytes) left out"),
        "{}",
        first.stderr
    );
    let cache = layout_cache(&cache_dir);
    let ids: Vec<&str> = cache["mounts"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| m["id"].as_str().unwrap())
        .collect();
    assert_eq!(ids, ["/var/cache/app"], "{cache}");

    // A fresh root whose step must run again (another N) finds the mount filled.
    let b = Strata::new();
    let rootfs = out.path().join("rootfs");
    let again = build(
        &b,
        &ctx,
        &layout,
        &[
            "--build-arg",
            "N=2",
            "--cache-from",
            &local_src(&cache_dir),
            "-o",
            &format!("type=local,dest={}", arg(&rootfs)),
        ],
    );
    assert!(
        again
            .stderr
            .contains("restored cache mounts: /var/cache/app"),
        "{}",
        again.stderr
    );
    let seen = std::fs::read_to_string(rootfs.join("seen.txt")).unwrap();
    assert_eq!(seen, "log\nrun-1\n", "the RUN saw the exported cache");
    let big = std::fs::read_to_string(rootfs.join("big-seen.txt")).unwrap();
    assert_eq!(big, "", "the capped-out mount starts empty");

    // Without cache-mounts=true no mount is exported.
    let plain = out.path().join("plain");
    build(
        &a,
        &ctx,
        &layout,
        &["--cache-to", &format!("type=local,dest={}", arg(&plain))],
    );
    assert!(layout_cache(&plain).get("mounts").is_none());
}

/// A cache re-exported with another compression keeps the earlier blobs of layers the
/// re-export never fetched; importing it must not take those as blobs of the new
/// compression (an image export would label a zstd blob gzip).
#[test]
fn mixed_compression_caches_never_mislabel_blobs() {
    let Some(layout) = busybox_layout() else {
        return;
    };
    let ctx = ctx();
    let (out, zstd_dir, _a, _) = export_local(&ctx, &layout, "mode=max,compression=zstd");
    let gzip_dir = out.path().join("gzip");
    let b = Strata::new();
    build(
        &b,
        &ctx,
        &layout,
        &[
            "--cache-from",
            &local_src(&zstd_dir),
            "--cache-to",
            &format!("type=local,dest={},mode=max", arg(&gzip_dir)),
        ],
    );
    let cache = layout_cache(&gzip_dir);
    let junk = junk_layer(&cache);
    let entry = cache["layers"]
        .as_array()
        .unwrap()
        .iter()
        .find(|l| l["diffID"].as_str().unwrap().ends_with(&junk))
        .unwrap()
        .clone();
    assert!(
        entry["blob"]["mediaType"]
            .as_str()
            .unwrap()
            .ends_with("+zstd"),
        "the unfetched layer keeps its zstd blob: {entry}"
    );

    // The builder stage's image holds that layer: every blob of its gzip export is gzip
    // (no epoch: then exports reuse the compressed blobs the store has recorded).
    let c = Strata::new();
    let image = out.path().join("image");
    c.build(
        ctx.path(),
        &[
            "--build-context",
            &busybox_context("busybox", &layout),
            "--target",
            "builder",
            "--cache-from",
            &local_src(&gzip_dir),
            "-o",
            &format!("type=oci,dest={},tar=false", arg(&image)),
        ],
    );
    let index = read_json(&image.join("index.json"));
    let manifest = layout_blob(&image, index["manifests"][0]["digest"].as_str().unwrap());
    for l in manifest["layers"].as_array().unwrap() {
        assert!(l["mediaType"].as_str().unwrap().ends_with("+gzip"), "{l}");
        let hex = l["digest"]
            .as_str()
            .unwrap()
            .strip_prefix("sha256:")
            .unwrap();
        let bytes = std::fs::read(image.join("blobs/sha256").join(hex)).unwrap();
        assert_eq!(&bytes[..2], &[0x1f, 0x8b], "{l} is not gzip");
    }
}
