//! `strata build -o …` through the real binary, each output read back by a real client:
//! OCI archives and layouts by skopeo and `umoci unpack`, docker archives by
//! `docker load` into a private dockerd, root filesystems by walking them and by
//! `tar -tvf`. Every output of one build must describe the same root filesystem as
//! `type=local` does, and `--iidfile`/`--metadata-file` must name what was written.

mod common;

use std::path::Path;
use std::process::Command;

use common::*;
use serde_json::Value;
use tempfile::TempDir;

const DOCKERFILE: &str = "FROM scratch\n\
COPY app /app/\n\
COPY --chown=1:2 --chmod=0640 secret /etc/secret\n\
WORKDIR /work\n\
ENV GREETING=hello\n\
CMD [\"/app/run\"]\n";

/// Files of several modes, an owner change, a symlink, nested and empty directories.
fn sample() -> TempDir {
    let ctx = context(&[
        ("Dockerfile", DOCKERFILE, 0o644),
        ("app/run", "#!/bin/sh\necho hi\n", 0o755),
        ("app/data/x.txt", "x\n", 0o600),
        ("app/data/", "", 0o750),
        ("app/empty/", "", 0o700),
        ("secret", "s3cr3t\n", 0o644),
    ]);
    symlink(ctx.path(), "app/link", "run");
    ctx
}

/// What `sample()` builds to, as `type=local` must show it.
fn expected() -> Tree {
    tree(&[
        ("app", "dir", 0o755, 0, 0),
        ("app/data", "dir", 0o750, 0, 0),
        ("app/data/x.txt", "file:x\n", 0o600, 0, 0),
        ("app/empty", "dir", 0o700, 0, 0),
        ("app/link", "link:run", 0o777, 0, 0),
        ("app/run", "file:#!/bin/sh\necho hi\n", 0o755, 0, 0),
        // BuildKit makes the parents a COPY creates with the --chown owner.
        ("etc", "dir", 0o755, 1, 2),
        ("etc/secret", "file:s3cr3t\n", 0o640, 1, 2),
        ("work", "dir", 0o755, 0, 0),
    ])
}

fn arg(s: impl AsRef<Path>) -> String {
    s.as_ref().to_str().unwrap().to_string()
}

fn assert_tree(name: &str, got: &Tree, want: &Tree) {
    let diff = tree_diff("got", got, "want", want);
    assert!(diff.is_empty(), "{name} differs:\n{diff}");
}

/// The config the image's manifest names, checked against what DOCKERFILE sets.
fn check_config(config: &Value) {
    assert_eq!(
        config["config"]["Env"],
        serde_json::json!(["GREETING=hello"])
    );
    assert_eq!(config["config"]["WorkingDir"], "/work");
    assert_eq!(config["config"]["Cmd"], serde_json::json!(["/app/run"]));
    assert_eq!(config["os"], "linux");
    // COPY app, COPY secret, WORKDIR: three layers; ENV and CMD only history.
    assert_eq!(config["rootfs"]["diff_ids"].as_array().unwrap().len(), 3);
    let history = config["history"].as_array().unwrap();
    let layers = history.iter().filter(|h| h["empty_layer"] != true).count();
    assert_eq!(layers, 3, "{history:?}");
}

#[test]
fn local_output_has_the_files_with_their_modes_and_owners() {
    let s = Strata::new();
    let ctx = sample();
    let out = tempfile::tempdir().unwrap();
    let dest = out.path().join("rootfs");
    let b = s.build(
        ctx.path(),
        &["-o", &format!("type=local,dest={}", arg(&dest))],
    );
    assert_eq!(b.id, "", "no image is assembled for a local output alone");
    assert_tree("type=local", &dir_tree(&dest), &expected());
    // `-o DIR` is the same output.
    let short = out.path().join("short");
    s.build(ctx.path(), &["-o", &arg(&short)]);
    assert_tree("-o DIR", &dir_tree(&short), &expected());
}

#[test]
fn tar_output_lists_the_files() {
    let Some(tar) = tool("tar", "tar") else {
        return;
    };
    let s = Strata::new();
    let ctx = sample();
    let out = tempfile::tempdir().unwrap();
    let file = out.path().join("rootfs.tar");
    s.build(
        ctx.path(),
        &["-o", &format!("type=tar,dest={}", arg(&file))],
    );
    let listing = String::from_utf8(run_ok(Command::new(tar).arg("-tvf").arg(&file))).unwrap();
    for want in [
        "drwxr-xr-x 0/0",
        "-rwxr-xr-x 0/0",
        "app/run",
        "app/link -> run",
        "-rw-r----- 1/2",
        "etc/secret",
        "work/",
    ] {
        assert!(listing.contains(want), "{want:?} not in:\n{listing}");
    }
    assert_tree("type=tar", &tar_file_tree(&file), &expected());
}

#[test]
fn oci_archive_reads_with_skopeo_and_unpacks_with_umoci() {
    let Some(skopeo) = Skopeo::find() else { return };
    let Some(umoci) = Umoci::find() else { return };
    let s = Strata::new();
    let ctx = sample();
    let out = tempfile::tempdir().unwrap();
    let archive = out.path().join("image.tar");
    let meta = out.path().join("meta.json");
    let b = s.build(
        ctx.path(),
        &[
            "-t",
            "sample:v1",
            "-o",
            &format!("type=oci,dest={}", arg(&archive)),
            "--metadata-file",
            &arg(&meta),
        ],
    );
    let meta = read_json(&meta);
    let target = format!("oci-archive:{}", archive.display());
    let inspect = skopeo.inspect(&[], &target);
    assert_eq!(
        inspect["Digest"], meta["containerimage.digest"],
        "{inspect}"
    );
    assert_eq!(inspect["Layers"].as_array().unwrap().len(), 3, "{inspect}");
    assert_eq!(inspect["Os"], "linux");
    let config_bytes = run_ok(
        Command::new("skopeo")
            .args(["inspect", "--config", "--raw"])
            .arg(&target),
    );
    assert_eq!(
        sha256(&config_bytes),
        b.id,
        "the image ID is the config digest"
    );
    check_config(&serde_json::from_slice(&config_bytes).unwrap());
    assert_eq!(
        sha256(&skopeo.raw_manifest(&target)),
        meta["containerimage.digest"].as_str().unwrap()
    );

    // BuildKit names the manifest by its tag (`org.opencontainers.image.ref.name`), so
    // `umoci --image DIR:v1` finds it.
    let layout = untar(&archive);
    let bundle = umoci.unpack(layout.path(), "v1");
    assert_tree("umoci rootfs", &umoci_rootfs(&bundle), &expected());
}

#[test]
fn oci_layout_reads_with_skopeo_and_unpacks_with_umoci() {
    let Some(skopeo) = Skopeo::find() else { return };
    let Some(umoci) = Umoci::find() else { return };
    let s = Strata::new();
    let ctx = sample();
    let out = tempfile::tempdir().unwrap();
    let layout = out.path().join("layout");
    let iid = out.path().join("iid");
    let b = s.build(
        ctx.path(),
        &[
            "-o",
            &format!("type=oci,dest={},tar=false,name=sample:v2", arg(&layout)),
            "--iidfile",
            &arg(&iid),
        ],
    );
    assert_eq!(std::fs::read_to_string(&iid).unwrap(), b.id);
    let target = format!("oci:{}:v2", layout.display());
    let inspect = skopeo.inspect(&[], &target);
    assert_eq!(inspect["Layers"].as_array().unwrap().len(), 3, "{inspect}");
    check_config(&skopeo.inspect(&["--config"], &target));
    // A copy reads every blob back and checks its digest.
    let copy = tempfile::tempdir().unwrap();
    skopeo.copy(&target, &format!("dir:{}", copy.path().display()));

    let bundle = umoci.unpack(&layout, "v2");
    assert_tree("umoci rootfs", &umoci_rootfs(&bundle), &expected());
}

#[test]
fn docker_archive_loads_into_dockerd() {
    let Some(dockerd) = Dockerd::start() else {
        return;
    };
    let s = Strata::new();
    let ctx = sample();
    let out = tempfile::tempdir().unwrap();
    let archive = out.path().join("docker.tar");
    let iid = out.path().join("iid");
    s.build(
        ctx.path(),
        &[
            "-o",
            &format!("type=docker,dest={},name=sample:v3", arg(&archive)),
            "--iidfile",
            &arg(&iid),
        ],
    );
    let loaded = String::from_utf8(dockerd.ok(&["load", "-i", &arg(&archive)])).unwrap();
    assert!(loaded.contains("Loaded image: sample:v3"), "{loaded}");

    // Our config, as the archive holds it.
    let unpacked = untar(&archive);
    let manifest = read_json(&unpacked.path().join("manifest.json"));
    let config_path = manifest[0]["Config"].as_str().unwrap();
    let config_bytes = std::fs::read(unpacked.path().join(config_path)).unwrap();
    let config: Value = serde_json::from_slice(&config_bytes).unwrap();
    check_config(&config);

    let inspect: Value =
        serde_json::from_slice(&dockerd.ok(&["image", "inspect", "sample:v3"])).unwrap();
    let inspect = &inspect[0];
    assert_eq!(
        inspect["Id"],
        sha256(&config_bytes),
        "docker's ID is our config digest"
    );
    assert_eq!(
        inspect["Id"],
        std::fs::read_to_string(&iid).unwrap(),
        "--iidfile names the image docker loaded"
    );
    assert_eq!(inspect["RootFS"]["Layers"], config["rootfs"]["diff_ids"]);
    assert_eq!(inspect["RepoTags"], serde_json::json!(["sample:v3"]));
    assert_eq!(inspect["Config"]["WorkingDir"], "/work");

    let history = String::from_utf8(dockerd.ok(&[
        "history",
        "--no-trunc",
        "--format",
        "{{.CreatedBy}}",
        "sample:v3",
    ]))
    .unwrap();
    let ours: Vec<&str> = config["history"]
        .as_array()
        .unwrap()
        .iter()
        .rev()
        .map(|h| h["created_by"].as_str().unwrap())
        .collect();
    assert_eq!(history.lines().collect::<Vec<_>>(), ours);

    assert_tree(
        "docker export",
        &dockerd.exported_tree("sample:v3"),
        &expected(),
    );

    // And back: `docker save` (20.10 writes the legacy format, no index.json) loads into
    // a fresh store as the same image, usable as a base.
    let saved = out.path().join("saved.tar");
    dockerd.ok(&["save", "-o", &arg(&saved), "sample:v3"]);
    let back = Strata::new();
    let loaded = String::from_utf8(back.ok(&["image", "load", "-i", &arg(&saved)]).stdout).unwrap();
    assert_eq!(loaded.trim(), "Loaded image: sample:v3");
    let again: Value =
        serde_json::from_slice(&back.ok(&["image", "inspect", "sample:v3"]).stdout).unwrap();
    assert_eq!(again["Id"], inspect["Id"]);
    let ctx2 = context(&[("Dockerfile", "FROM sample:v3\nENV MORE=1\n", 0o644)]);
    let rootfs = out.path().join("from-saved");
    back.build(
        ctx2.path(),
        &["-o", &format!("type=local,dest={}", arg(&rootfs))],
    );
    assert_tree(
        "FROM a docker save archive",
        &dir_tree(&rootfs),
        &expected(),
    );
}

#[test]
fn several_outputs_in_one_build_agree() {
    let s = Strata::new();
    let ctx = sample();
    let out = tempfile::tempdir().unwrap();
    let p = |n: &str| arg(out.path().join(n));
    let b = s.build(
        ctx.path(),
        &[
            "-t",
            "multi:1",
            "-o",
            &format!("type=oci,dest={}", p("oci.tar")),
            "-o",
            &format!("type=oci,dest={},tar=false", p("layout")),
            "-o",
            &format!("type=docker,dest={}", p("docker.tar")),
            "-o",
            &format!("type=local,dest={}", p("rootfs")),
            "-o",
            &format!("type=tar,dest={}", p("rootfs.tar")),
            "--iidfile",
            &p("iid"),
            "--metadata-file",
            &p("meta.json"),
        ],
    );
    let meta = read_json(out.path().join("meta.json").as_path());
    let digest = meta["containerimage.digest"].as_str().unwrap();

    assert_tree(
        "type=local",
        &dir_tree(&out.path().join("rootfs")),
        &expected(),
    );
    assert_tree(
        "type=tar",
        &tar_file_tree(&out.path().join("rootfs.tar")),
        &expected(),
    );
    let layout_index = read_json(&out.path().join("layout/index.json"));
    assert_eq!(layout_index["manifests"][0]["digest"], digest);
    let archive = untar(&out.path().join("oci.tar"));
    let archive_index = read_json(&archive.path().join("index.json"));
    assert_eq!(archive_index["manifests"][0]["digest"], digest);
    let docker = untar(&out.path().join("docker.tar"));
    let docker_manifest = read_json(&docker.path().join("manifest.json"));
    assert_eq!(
        docker_manifest[0]["Config"],
        format!("blobs/sha256/{}", b.id.trim_start_matches("sha256:")),
        "the docker archive holds the same config"
    );
    assert_eq!(
        docker_manifest[0]["RepoTags"],
        serde_json::json!(["multi:1"])
    );
    let images = String::from_utf8(s.ok(&["images"]).stdout).unwrap();
    assert!(images.lines().any(|l| l.starts_with("multi ")), "{images}");
}

#[test]
fn iidfile_and_metadata_file_name_the_written_image() {
    let s = Strata::new();
    let ctx = sample();
    let out = tempfile::tempdir().unwrap();
    let layout = out.path().join("layout");
    let b = s.build(
        ctx.path(),
        &[
            "-o",
            &format!("type=oci,dest={},tar=false", arg(&layout)),
            "--iidfile",
            &arg(out.path().join("iid")),
            "--metadata-file",
            &arg(out.path().join("meta.json")),
        ],
    );
    let index = read_json(&layout.join("index.json"));
    let manifests = index["manifests"].as_array().unwrap();
    assert_eq!(manifests.len(), 1, "{index}");
    let manifest_digest = manifests[0]["digest"].as_str().unwrap();
    let manifest = layout_blob(&layout, manifest_digest);
    let config_digest = manifest["config"]["digest"].as_str().unwrap();
    check_config(&layout_blob(&layout, config_digest));

    let iid = std::fs::read_to_string(out.path().join("iid")).unwrap();
    assert_eq!(iid, config_digest);
    assert_eq!(b.id, config_digest, "stdout carries the image ID");
    let meta = read_json(&out.path().join("meta.json"));
    assert_eq!(meta["containerimage.digest"], manifest_digest);
    assert_eq!(meta["containerimage.config.digest"], config_digest);
    assert_eq!(meta["containerimage.descriptor"]["digest"], manifest_digest);
    let manifest_len = std::fs::metadata(
        layout
            .join("blobs/sha256")
            .join(manifest_digest.trim_start_matches("sha256:")),
    )
    .unwrap()
    .len();
    assert_eq!(meta["containerimage.descriptor"]["size"], manifest_len);
    assert_eq!(
        meta["containerimage.descriptor"]["mediaType"],
        "application/vnd.oci.image.manifest.v1+json"
    );
}

#[test]
fn local_output_into_an_existing_directory_merges_as_buildkit_does() {
    // BuildKit's local exporter writes into an existing directory: files it outputs
    // replace same-named ones, others stay (`docker build -o DIR` twice works).
    let s = Strata::new();
    let ctx = sample();
    let out = tempfile::tempdir().unwrap();
    let dest = out.path().join("rootfs");
    write_entries(
        &dest,
        &[("keep.txt", "mine\n", 0o644), ("app/run", "old\n", 0o644)],
    );
    s.build(
        ctx.path(),
        &["-o", &format!("type=local,dest={}", arg(&dest))],
    );
    let mut want = expected();
    want.extend(tree(&[("keep.txt", "file:mine\n", 0o644, 0, 0)]));
    assert_tree("merged type=local", &dir_tree(&dest), &want);
    // And again, over its own output.
    s.build(
        ctx.path(),
        &["-o", &format!("type=local,dest={}", arg(&dest))],
    );
    assert_tree("type=local twice", &dir_tree(&dest), &want);
}

#[test]
fn bad_output_names_fail_before_building() {
    let s = Strata::new();
    let ctx = sample();
    let out = tempfile::tempdir().unwrap();
    for spec in [
        format!(
            "type=oci,dest={},name=Bad Name",
            arg(out.path().join("a.tar"))
        ),
        format!(
            "type=docker,dest={},name=UPPER:1",
            arg(out.path().join("b.tar"))
        ),
    ] {
        let r = s.run(&[
            "build",
            "--progress",
            "quiet",
            "-o",
            &spec,
            &arg(ctx.path()),
        ]);
        assert_eq!(r.status.code(), Some(2), "{spec}: a usage error");
        let err = String::from_utf8_lossy(&r.stderr);
        assert!(err.contains("name="), "{err}");
    }
    assert!(
        std::fs::read_dir(out.path()).unwrap().next().is_none(),
        "nothing was written"
    );
}

#[test]
fn each_output_has_its_own_compression() {
    let s = Strata::new();
    let ctx = sample();
    let out = tempfile::tempdir().unwrap();
    let p = |n: &str| arg(out.path().join(n));
    s.build(
        ctx.path(),
        &[
            "-o",
            &format!("type=oci,dest={},compression=zstd", p("zstd.tar")),
            "-o",
            &format!("type=oci,dest={},tar=false", p("gzip")),
            "-o",
            &format!(
                "type=docker,dest={},compression=uncompressed",
                p("docker.tar")
            ),
        ],
    );
    let zstd = untar(&out.path().join("zstd.tar"));
    let docker = untar(&out.path().join("docker.tar"));
    let gzip = out.path().join("gzip");
    let layouts = [
        (zstd.path(), "application/vnd.oci.image.layer.v1.tar+zstd"),
        (
            gzip.as_path(),
            "application/vnd.oci.image.layer.v1.tar+gzip",
        ),
        (
            docker.path(),
            "application/vnd.docker.image.rootfs.diff.tar",
        ),
    ];
    let mut configs = Vec::new();
    for (layout, media_type) in layouts {
        let index = read_json(&layout.join("index.json"));
        let manifest = layout_blob(layout, index["manifests"][0]["digest"].as_str().unwrap());
        for l in manifest["layers"].as_array().unwrap() {
            assert_eq!(l["mediaType"], media_type, "{}", layout.display());
        }
        configs.push(manifest["config"]["digest"].clone());
    }
    assert!(
        configs.windows(2).all(|w| w[0] == w[1]),
        "compression changes layers, not the image config: {configs:?}"
    );
    if let Some(skopeo) = Skopeo::find() {
        // Reads every zstd blob back against its digest.
        let copy = tempfile::tempdir().unwrap();
        skopeo.copy(
            &format!("oci-archive:{}", p("zstd.tar")),
            &format!("dir:{}", copy.path().display()),
        );
    }

    // docker load cannot read zstd: refused before anything is built.
    let r = s.run(&[
        "build",
        "--progress",
        "quiet",
        "-o",
        &format!("type=docker,dest={},compression=zstd", p("z-docker.tar")),
        &arg(ctx.path()),
    ]);
    assert_eq!(r.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&r.stderr).contains("zstd"));
    assert!(!out.path().join("z-docker.tar").exists());
}

/// A layer of random bytes (gzip stores such blocks instead of deflating them) beside
/// text: GNU gzip inflates every blob to its diffID, and umoci unpacks the files.
#[test]
fn incompressible_layers_are_stored_and_read_back_by_gzip_and_umoci() {
    let Some(umoci) = Umoci::find() else { return };
    let s = Strata::new();
    let random = noise(3 << 19, 0x2545_f491_4f6c_dd1d);
    let text = "a line of text that deflate shrinks well\n".repeat(20_000);
    let ctx = context(&[
        (
            "Dockerfile",
            "FROM scratch\nCOPY random.bin /r/\nCOPY text.txt /t/\n",
            0o644,
        ),
        ("text.txt", &text, 0o644),
    ]);
    std::fs::write(ctx.path().join("random.bin"), &random).unwrap();
    let out = tempfile::tempdir().unwrap();
    let archive = out.path().join("image.tar");
    s.build(
        ctx.path(),
        &[
            "-t",
            "noise:v1",
            "-o",
            &format!("type=oci,dest={}", arg(&archive)),
        ],
    );
    let layout = untar(&archive);
    let index = read_json(&layout.path().join("index.json"));
    let manifest = layout_blob(
        layout.path(),
        index["manifests"][0]["digest"].as_str().unwrap(),
    );
    let config = layout_blob(
        layout.path(),
        manifest["config"]["digest"].as_str().unwrap(),
    );
    let layers = manifest["layers"].as_array().unwrap();
    let sizes: Vec<u64> = layers.iter().map(|l| l["size"].as_u64().unwrap()).collect();
    // Stored: about the file's size (deflate cannot shrink it); the text shrinks.
    assert!(
        sizes[0] > random.len() as u64 && sizes[0] < random.len() as u64 + 4096,
        "{sizes:?}"
    );
    assert!(sizes[1] < text.len() as u64 / 20, "{sizes:?}");
    for (l, diff_id) in layers
        .iter()
        .zip(config["rootfs"]["diff_ids"].as_array().unwrap())
    {
        let hex = l["digest"].as_str().unwrap().trim_start_matches("sha256:");
        let blob = layout.path().join("blobs/sha256").join(hex);
        let tar = run_ok(Command::new("gzip").arg("-dc").arg(&blob));
        assert_eq!(&sha256(&tar), diff_id, "layer {hex}");
    }
    let bundle = umoci.unpack(layout.path(), "v1");
    let rootfs = bundle.path().join("bundle/rootfs");
    assert!(std::fs::read(rootfs.join("r/random.bin")).unwrap() == random);
    assert_eq!(
        std::fs::read_to_string(rootfs.join("t/text.txt")).unwrap(),
        text
    );
}
