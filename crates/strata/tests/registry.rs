//! Registries through the real binary, against a real Docker distribution registry
//! (Debian's `docker-registry`) on 127.0.0.1: `build --push`, `push`, `pull`, `FROM` a
//! registry image in a fresh store, and round trips with `skopeo`.

mod common;
#[path = "../../registry/tests/common/mod.rs"]
mod harness;

use std::path::Path;
use std::process::Command;

use common::*;
use serde_json::Value;

fn arg(p: impl AsRef<Path>) -> String {
    p.as_ref().to_str().unwrap().to_string()
}

fn uploads(reg: &harness::Registry) -> usize {
    reg.log().matches("blobs/uploads/").count()
}

/// The blobs whose `progress` events (`--progress json`) reached their size.
fn blobs_done(stderr: &[u8]) -> Vec<String> {
    String::from_utf8_lossy(stderr)
        .lines()
        .filter_map(|l| serde_json::from_str::<Value>(l).ok())
        .filter(|e| e["event"] == "progress" && e["current"] == e["total"])
        .map(|e| e["what"].as_str().unwrap().to_string())
        .collect()
}

#[test]
fn push_then_pull_into_a_fresh_root_and_build_from_it() {
    let Some(reg) = harness::Registry::start() else {
        return;
    };
    let s = Strata::new();
    let ctx = context(&[
        ("Dockerfile", "FROM scratch\nCOPY x /x\nENV A=1\n", 0o644),
        ("x", "from the registry\n", 0o644),
    ]);
    let name = format!("{}/team/app:v1", reg.addr);
    let meta = ctx.path().join("meta.json");
    let b = s.build(
        ctx.path(),
        &["--push", "-t", &name, "--metadata-file", &arg(&meta)],
    );
    assert!(b.stderr.contains("pushed"), "{}", b.stderr);
    let meta: Value = serde_json::from_slice(&std::fs::read(&meta).unwrap()).unwrap();
    let pushed = meta["image.pushed"][0].as_str().unwrap().to_string();
    let digest = pushed.rsplit('@').next().unwrap().to_string();
    assert!(digest.starts_with("sha256:"), "{meta}");

    // A real client sees it, with the digest we printed and gzip layers.
    if let Some(skopeo) = tool("skopeo", "skopeo") {
        let out = run_ok(Command::new(skopeo).args([
            "inspect",
            "--tls-verify=false",
            &format!("docker://{name}"),
        ]));
        let v: Value = serde_json::from_slice(&out).unwrap();
        assert_eq!(v["Digest"], digest.as_str(), "{v}");
        assert_eq!(v["Layers"].as_array().unwrap().len(), 1, "{v}");
    }

    // `strata push` of the stored image compresses its layers as `build --push` did:
    // the same manifest digest. A second push finds every blob and uploads nothing.
    let stored = format!("{}/team/app:stored", reg.addr);
    let first = String::from_utf8(s.ok(&["push", &name, &stored]).stdout).unwrap();
    let before = uploads(&reg);
    let again = String::from_utf8(s.ok(&["push", &name, &stored]).stdout).unwrap();
    assert_eq!(first, again);
    assert_eq!(first.trim(), format!("{}/team/app@{digest}", reg.addr));
    assert_eq!(uploads(&reg), before, "re-push uploaded something");
    // zstd on request: another manifest, zstd layers.
    let zstd = format!("{}/team/app:zstd", reg.addr);
    let out = String::from_utf8(
        s.ok(&["push", "--compression", "zstd", &name, &zstd])
            .stdout,
    )
    .unwrap();
    assert!(!out.contains(&digest), "{out}");
    if let Some(skopeo) = tool("skopeo", "skopeo") {
        let raw = run_ok(Command::new(skopeo).args([
            "inspect",
            "--raw",
            "--tls-verify=false",
            &format!("docker://{zstd}"),
        ]));
        let m: Value = serde_json::from_slice(&raw).unwrap();
        assert_eq!(
            m["layers"][0]["mediaType"], "application/vnd.oci.image.layer.v1.tar+zstd",
            "{m}"
        );
    }

    // A fresh store: FROM the registry image pulls it.
    let s2 = Strata::new();
    let ctx2 = context(&[
        ("Dockerfile", &format!("FROM {name}\nCOPY y /y\n"), 0o644),
        ("y", "y\n", 0o644),
    ]);
    let out = ctx2.path().join("out");
    let b2 = s2.build(
        ctx2.path(),
        &["-o", &format!("type=local,dest={}", arg(&out))],
    );
    assert_eq!(
        std::fs::read_to_string(out.join("x")).unwrap(),
        "from the registry\n"
    );
    // The pull is an [internal] step of the build, with each blob's progress.
    assert_eq!(blobs_done(b2.stderr.as_bytes()).len(), 2, "{}", b2.stderr);
    assert!(
        b2.names("completed")
            .contains(&format!("[internal] pull {name}")),
        "{}",
        b2.stderr
    );
    assert!(out.join("y").exists());
    let images = String::from_utf8(s2.ok(&["images"]).stdout).unwrap();
    assert!(
        images.contains(&format!("{}/team/app", reg.addr)),
        "{images}"
    );

    // `strata pull` into a third store, with each blob's progress (config and layer).
    let s3 = Strata::new();
    let done = blobs_done(&s3.ok(&["pull", "--progress", "json", &name]).stderr);
    assert_eq!(done.len(), 2, "{done:?}");
    let inspect: Value =
        serde_json::from_slice(&s3.ok(&["image", "inspect", &name]).stdout).unwrap();
    assert_eq!(inspect["Digest"], digest.as_str(), "{inspect}");
    // Pulling again downloads no blob.
    let out = s3.ok(&["pull", "--progress", "json", &name]);
    assert!(blobs_done(&out.stderr).is_empty());
    assert!(String::from_utf8_lossy(&out.stderr).contains("\"event\":\"completed\""));

    // An unknown tag: a clear error naming it.
    let err = s3.fails(&["pull", &format!("{}/team/app:nope", reg.addr)]);
    assert!(
        err.contains("team/app:nope") && err.contains("not found"),
        "{err}"
    );
}

#[test]
fn an_image_pushed_by_skopeo_is_a_base() {
    let Some(skopeo) = tool("skopeo", "skopeo") else {
        return;
    };
    let Some(reg) = harness::Registry::start() else {
        return;
    };
    let s = Strata::new();
    let ctx = context(&[
        ("Dockerfile", "FROM scratch\nCOPY x /x\n", 0o644),
        ("x", "via skopeo\n", 0o644),
    ]);
    let layout = ctx.path().join("layout");
    s.build(
        ctx.path(),
        &["-o", &format!("type=oci,dest={},tar=false", arg(&layout))],
    );
    let name = format!("{}/other/img:1", reg.addr);
    run_ok(Command::new(skopeo).args([
        "copy",
        "--dest-tls-verify=false",
        &format!("oci:{}", arg(&layout)),
        &format!("docker://{name}"),
    ]));
    let s2 = Strata::new();
    let ctx2 = context(&[("Dockerfile", &format!("FROM {name}\n"), 0o644)]);
    let out = ctx2.path().join("out");
    s2.build(
        ctx2.path(),
        &["-o", &format!("type=local,dest={}", arg(&out))],
    );
    assert_eq!(
        std::fs::read_to_string(out.join("x")).unwrap(),
        "via skopeo\n"
    );
}

#[test]
fn a_tampered_blob_fails_the_pull() {
    let Some(reg) = harness::Registry::start() else {
        return;
    };
    let s = Strata::new();
    let ctx = context(&[
        ("Dockerfile", "FROM scratch\nCOPY x /x\n", 0o644),
        ("x", "honest bytes\n", 0o644),
    ]);
    let name = format!("{}/t/x:1", reg.addr);
    s.build(ctx.path(), &["--push", "-t", &name]);
    // Corrupt every layer-sized blob in the registry's storage (same length).
    let root = reg.data().join("docker/registry/v2/blobs/sha256");
    let mut corrupted = 0;
    for prefix in std::fs::read_dir(&root).unwrap() {
        for blob in std::fs::read_dir(prefix.unwrap().path()).unwrap() {
            let data = blob.unwrap().path().join("data");
            let bytes = std::fs::read(&data).unwrap();
            // gzip magic: a layer.
            if bytes.starts_with(&[0x1f, 0x8b]) {
                let mut bad = bytes.clone();
                let last = bad.len() - 1;
                bad[last] ^= 0xff;
                std::fs::write(&data, bad).unwrap();
                corrupted += 1;
            }
        }
    }
    assert_eq!(corrupted, 1);
    let s2 = Strata::new();
    let err = s2.fails(&["pull", &name]);
    assert!(err.contains("does not match its digest"), "{err}");
    let images = String::from_utf8(s2.ok(&["images"]).stdout).unwrap();
    assert!(!images.contains("t/x"), "{images}");
}

/// `PUT …/blobs/uploads/…` requests (blob bodies) the registry logged for `repo`.
fn blob_puts(reg: &harness::Registry, repo: &str) -> usize {
    reg.log()
        .lines()
        .filter(|l| l.contains(&format!("\"PUT /v2/{repo}/blobs/uploads/")))
        .count()
}

#[test]
fn pushing_to_two_repositories_uploads_each_blob_once() {
    let Some(reg) = harness::Registry::start() else {
        return;
    };
    let s = Strata::new();
    let ctx = context(&[
        ("Dockerfile", "FROM scratch\nCOPY x /x\nCOPY y /y\n", 0o644),
        ("x", "x\n", 0o644),
        ("y", "y\n", 0o644),
    ]);
    let a = format!("{}/team/a:1", reg.addr);
    let b = format!("{}/team/b:1", reg.addr);
    let a2 = format!("{}/team/a:2", reg.addr);
    let args = [
        "--push",
        "--push-parallelism",
        "1",
        "-t",
        &a,
        "-t",
        &b,
        "-t",
        &a2,
    ];
    let out = s.build(ctx.path(), &args);
    // Two layers and the config: uploaded to team/a, mounted into team/b, found by
    // HEAD for the second tag of team/a.
    assert_eq!(blob_puts(&reg, "team/a"), 3, "{}", reg.log());
    assert_eq!(blob_puts(&reg, "team/b"), 0, "{}", reg.log());
    let mounted = reg
        .log()
        .lines()
        .filter(|l| l.contains("\"POST /v2/team/b/blobs/uploads/?mount=") && l.contains("\" 201 "))
        .count();
    assert_eq!(mounted, 3, "{}", reg.log());
    assert!(out.stderr.contains("mounted from team/a"), "{}", out.stderr);

    // A fresh store that pulled team/b mounts from it when pushing to team/c.
    let s2 = Strata::new();
    s2.ok(&["pull", "-q", &b]);
    let c = format!("{}/team/c:1", reg.addr);
    s2.ok(&["push", &b, &c]);
    assert_eq!(blob_puts(&reg, "team/c"), 0, "{}", reg.log());
    let s3 = Strata::new();
    s3.ok(&["pull", "-q", &c]);
}

#[test]
fn docker_pulls_what_strata_pushed() {
    let Some(reg) = harness::Registry::start() else {
        return;
    };
    let Some(dockerd) = Dockerd::start() else {
        return;
    };
    let s = Strata::new();
    let ctx = context(&[
        ("Dockerfile", "FROM scratch\nCOPY x /x\nCOPY y /y\n", 0o644),
        ("x", "for docker\n", 0o644),
        ("y", "y\n", 0o644),
    ]);
    let meta = ctx.path().join("meta.json");
    let name = format!("{}/dk/app:1", reg.addr);
    let b = s.build(
        ctx.path(),
        &["--push", "-t", &name, "--metadata-file", &arg(&meta)],
    );
    let meta: Value = serde_json::from_slice(&std::fs::read(&meta).unwrap()).unwrap();
    let pushed = meta["image.pushed"][0].as_str().unwrap();
    let digest = pushed.rsplit('@').next().unwrap();
    // Docker treats 127.0.0.0/8 registries as insecure (plain HTTP) by default.
    dockerd.ok(&["pull", &name]);
    let out = dockerd.ok(&[
        "image",
        "inspect",
        "--format",
        "{{.Id}} {{index .RepoDigests 0}}",
        &name,
    ]);
    let out = String::from_utf8(out).unwrap();
    assert_eq!(out.trim(), format!("{} {}/dk/app@{digest}", b.id, reg.addr));
    let tree = dockerd.exported_tree(&name);
    assert_eq!(
        tree["x"].kind,
        Kind::File(b"for docker\n".to_vec()),
        "{tree:?}"
    );
}

/// `sha256:…` of `path`'s bytes (coreutils' sha256sum).
fn sha256_file(path: &Path) -> String {
    let out = run_ok(Command::new("sha256sum").arg(path));
    let hex = String::from_utf8(out).unwrap();
    format!("sha256:{}", hex.split_whitespace().next().unwrap())
}

/// The content of `/x` in a build `FROM image` (with `--platform` when given).
fn x_from(s: &Strata, image: &str, flags: &[&str]) -> String {
    let ctx = context(&[("Dockerfile", &format!("FROM {image}\n"), 0o644)]);
    let out = ctx.path().join("out");
    let mut args = vec!["-o".to_string(), format!("type=local,dest={}", arg(&out))];
    args.extend(flags.iter().map(|f| f.to_string()));
    s.build(ctx.path(), &args);
    std::fs::read_to_string(out.join("x")).unwrap()
}

#[test]
fn an_index_resolves_to_the_platform_and_zstd_layers_are_read() {
    let Some(reg) = harness::Registry::start() else {
        return;
    };
    let Some(skopeo) = tool("skopeo", "skopeo") else {
        return;
    };
    // One image per platform in one OCI layout (arm64's layer zstd), then an index of
    // both, copied to the registry by skopeo as a multi-platform image.
    let s = Strata::new();
    let layout = tempfile::tempdir().unwrap();
    for (arch, compression) in [("amd64", "gzip"), ("arm64", "zstd")] {
        let ctx = context(&[
            ("Dockerfile", "FROM scratch\nCOPY x /x\n", 0o644),
            ("x", arch, 0o644),
        ]);
        let dest = format!(
            "type=oci,dest={},tar=false,name=multi:{arch},compression={compression}",
            arg(layout.path())
        );
        s.build(
            ctx.path(),
            &["--platform", &format!("linux/{arch}"), "-o", &dest],
        );
    }
    let top = read_json(&layout.path().join("index.json"));
    let mut manifests: Vec<Value> = top["manifests"].as_array().unwrap().clone();
    assert_eq!(manifests.len(), 2, "{top}");
    for m in &mut manifests {
        m.as_object_mut().unwrap().remove("annotations");
    }
    let index = serde_json::json!({
        "schemaVersion": 2,
        "mediaType": "application/vnd.oci.image.index.v1+json",
        "manifests": manifests,
    });
    let tmp = layout.path().join("index.tmp");
    std::fs::write(&tmp, serde_json::to_vec(&index).unwrap()).unwrap();
    let digest = sha256_file(&tmp);
    let size = std::fs::metadata(&tmp).unwrap().len();
    std::fs::rename(&tmp, layout.path().join("blobs/sha256").join(&digest[7..])).unwrap();
    let top = serde_json::json!({
        "schemaVersion": 2,
        "manifests": [{
            "mediaType": "application/vnd.oci.image.index.v1+json",
            "digest": digest,
            "size": size,
            "annotations": {"org.opencontainers.image.ref.name": "latest"},
        }],
    });
    std::fs::write(layout.path().join("index.json"), top.to_string()).unwrap();
    let name = format!("{}/team/multi:latest", reg.addr);
    run_ok(Command::new(skopeo).args([
        "copy",
        "--all",
        "--dest-tls-verify=false",
        &format!("oci:{}:latest", arg(layout.path())),
        &format!("docker://{name}"),
    ]));

    // The build platform's manifest by default, another with --platform; zstd read.
    let s2 = Strata::new();
    assert_eq!(x_from(&s2, &name, &[]), "amd64");
    let s3 = Strata::new();
    s3.ok(&["pull", "-q", "--platform", "linux/arm64", &name]);
    let inspect: Value =
        serde_json::from_slice(&s3.ok(&["image", "inspect", &name]).stdout).unwrap();
    assert_eq!(inspect["Config"]["architecture"], "arm64", "{inspect}");
    assert_eq!(x_from(&s3, &name, &["--platform", "linux/arm64"]), "arm64");
}

#[test]
fn a_tag_resolved_earlier_is_used_until_pull_asks_the_registry() {
    let Some(reg) = harness::Registry::start() else {
        return;
    };
    let name = format!("{}/team/moving:latest", reg.addr);
    let push = |content: &str| {
        let s = Strata::new();
        let ctx = context(&[
            ("Dockerfile", "FROM scratch\nCOPY x /x\n", 0o644),
            ("x", content, 0o644),
        ]);
        s.build(ctx.path(), &["--push", "-t", &name]);
    };
    push("one");
    let s = Strata::new();
    assert_eq!(x_from(&s, &name, &[]), "one");
    push("two");
    // Default: the tag as resolved earlier, without asking the registry.
    assert_eq!(x_from(&s, &name, &[]), "one");
    // --pull: the registry's current image.
    assert_eq!(x_from(&s, &name, &["--pull"]), "two");
    assert_eq!(x_from(&s, &name, &[]), "two");
}
