//! The local image store and base images through the real binary: `-t` and
//! `strata images`, `image inspect|history|rm|import|load`, and `FROM` an image from the
//! store, from an OCI layout (`--build-context NAME=oci-layout://DIR:TAG`, a busybox
//! made from Debian's busybox-static), from an imported tarball and from a loaded archive.

mod common;

use std::path::Path;
use std::process::Command;

use common::*;
use serde_json::Value;
use tempfile::TempDir;

fn arg(p: impl AsRef<Path>) -> String {
    p.as_ref().to_str().unwrap().to_string()
}

fn stdout(out: std::process::Output) -> String {
    String::from_utf8(out.stdout).unwrap()
}

/// A small image with a layer, an ENV and a LABEL, tagged `name` in `s`'s store.
fn tagged(s: &Strata, name: &str) -> (TempDir, Build) {
    let ctx = context(&[
        (
            "Dockerfile",
            "FROM scratch\nCOPY x /x\nCOPY y /y\nENV A=1\nLABEL org.example=yes\n",
            0o644,
        ),
        ("x", "x\n", 0o644),
        ("y", "y\n", 0o644),
    ]);
    let b = s.build(ctx.path(), &["-t", name]);
    (ctx, b)
}

#[test]
fn tagged_images_are_listed_and_inspected() {
    let s = Strata::new();
    let (_ctx, b) = tagged(&s, "shop/web:1.0");
    s.build(_ctx.path(), &["-t", "other"]);
    let list = stdout(s.ok(&["images"]));
    let mut lines = list.lines();
    let header: Vec<&str> = lines.next().unwrap().split_whitespace().collect();
    assert_eq!(
        header,
        ["REPOSITORY", "TAG", "IMAGE", "ID", "CREATED", "SIZE"]
    );
    let rows: Vec<Vec<&str>> = lines.map(|l| l.split_whitespace().collect()).collect();
    let short = &b.id["sha256:".len().."sha256:".len() + 12];
    let row = rows
        .iter()
        .find(|r| r[0] == "shop/web")
        .unwrap_or_else(|| panic!("shop/web not listed:\n{list}"));
    assert_eq!(row[1], "1.0");
    assert_eq!(row[2], short);
    assert!(
        rows.iter().any(|r| r[0] == "other" && r[1] == "latest"),
        "{list}"
    );
    assert_eq!(
        stdout(s.ok(&["image", "ls"])),
        list,
        "`image ls` is `images`"
    );

    let inspect: Value =
        serde_json::from_str(&stdout(s.ok(&["image", "inspect", "shop/web:1.0"]))).unwrap();
    assert_eq!(inspect["Id"], b.id);
    assert_eq!(inspect["Name"], "docker.io/shop/web:1.0");
    assert_eq!(inspect["Manifest"]["config"]["digest"], b.id);
    assert_eq!(
        inspect["Config"]["config"]["Env"],
        serde_json::json!(["A=1"])
    );
    assert_eq!(inspect["Config"]["config"]["Labels"]["org.example"], "yes");
    let digest = inspect["Digest"].as_str().unwrap();
    assert!(
        digest.starts_with("sha256:") && digest.len() == 71,
        "{digest}"
    );
}

#[test]
fn history_has_a_row_per_history_entry() {
    let s = Strata::new();
    let (_ctx, _) = tagged(&s, "hist");
    let inspect: Value =
        serde_json::from_str(&stdout(s.ok(&["image", "inspect", "hist"]))).unwrap();
    let history = inspect["Config"]["history"].as_array().unwrap();
    let layers = inspect["Manifest"]["layers"].as_array().unwrap();
    assert_eq!(history.len(), 4, "COPY, COPY, ENV, LABEL");

    let out = stdout(s.ok(&["image", "history", "--no-trunc", "hist"]));
    let mut lines = out.lines();
    assert!(lines.next().unwrap().starts_with("IMAGE"), "{out}");
    let rows: Vec<&str> = lines.collect();
    assert_eq!(rows.len(), history.len(), "{out}");
    // Newest first, as `docker history`; sizes of layer rows are the layer sizes.
    let mut layer_sizes = layers.iter().rev().map(|l| l["size"].as_u64().unwrap());
    for (row, h) in rows.iter().zip(history.iter().rev()) {
        let by = h["created_by"].as_str().unwrap();
        assert!(row.contains(by), "{row:?} should show {by:?}");
        if h["empty_layer"] == true {
            assert!(row.contains(" 0B "), "{row:?}");
        } else {
            let size = layer_sizes.next().unwrap();
            assert!(size > 0);
            assert!(!row.contains(" 0B "), "{row:?}");
        }
    }
    assert!(rows[0].starts_with(&inspect["Id"].as_str().unwrap()[7..19]));
    assert!(
        rows[1..].iter().all(|r| r.starts_with("<missing>")),
        "{out}"
    );
}

#[test]
fn a_removed_image_cannot_be_a_base() {
    let s = Strata::new();
    let (ctx, _) = tagged(&s, "gone:1");
    let untagged = stdout(s.ok(&["image", "rm", "gone:1"]));
    assert_eq!(untagged.trim(), "Untagged: gone:1");
    assert!(!stdout(s.ok(&["images"])).contains("gone"));

    std::fs::write(ctx.path().join("Dockerfile"), "FROM gone:1\nCOPY x /z\n").unwrap();
    let err = s.fails(&["build", "--progress", "quiet", &arg(ctx.path())]);
    assert!(err.contains("FROM gone:1"), "quotes the line:\n{err}");
    assert!(
        err.contains("docker.io/library/gone:1") && err.contains("not found"),
        "names the image and says it is missing:\n{err}"
    );
    assert!(!err.contains("panicked"), "{err}");

    let err = s.fails(&["image", "rm", "gone:1"]);
    assert!(err.contains("no such image: gone:1"), "{err}");
}

#[test]
fn from_an_image_in_the_store_by_name_and_digest() {
    let s = Strata::new();
    let (ctx, _) = tagged(&s, "base:1");
    let inspect: Value =
        serde_json::from_str(&stdout(s.ok(&["image", "inspect", "base:1"]))).unwrap();
    let digest = inspect["Digest"].as_str().unwrap();
    for from in ["base:1".to_string(), format!("base@{digest}")] {
        std::fs::write(
            ctx.path().join("Dockerfile"),
            format!("FROM {from}\nCOPY x /z\n"),
        )
        .unwrap();
        let out = tempfile::tempdir().unwrap();
        let b = s.build(
            ctx.path(),
            &["-o", &format!("type=local,dest={}", out.path().display())],
        );
        assert_eq!(
            dir_tree(out.path()),
            tree(&[
                ("x", "file:x\n", 0o644, 0, 0),
                ("y", "file:y\n", 0o644, 0, 0),
                ("z", "file:x\n", 0o644, 0, 0),
            ]),
            "FROM {from}\n{}",
            b.stderr
        );
    }
}

#[test]
fn an_imported_tarball_is_a_base() {
    let s = Strata::new();
    let rootfs = context(&[
        ("etc/motd", "welcome\n", 0o644),
        ("bin/tool", "#!/bin/sh\n", 0o755),
        ("var/empty/", "", 0o700),
    ]);
    let work = tempfile::tempdir().unwrap();
    let tgz = work.path().join("rootfs.tar.gz");
    run_ok(
        Command::new("tar")
            .arg("-C")
            .arg(rootfs.path())
            .arg("-czf")
            .arg(&tgz)
            .arg("."),
    );
    let id = stdout(s.ok(&["image", "import", &arg(&tgz), "imported:1"]));
    assert!(id.trim().starts_with("sha256:"), "{id}");
    let inspect: Value =
        serde_json::from_str(&stdout(s.ok(&["image", "inspect", "imported:1"]))).unwrap();
    assert_eq!(inspect["Id"], id.trim());
    assert_eq!(inspect["Manifest"]["layers"].as_array().unwrap().len(), 1);

    // From stdin too.
    let plain = work.path().join("rootfs.tar");
    run_ok(
        Command::new("tar")
            .arg("-C")
            .arg(rootfs.path())
            .arg("-cf")
            .arg(&plain)
            .arg("."),
    );
    let out = s
        .cmd()
        .args(["image", "import", "-", "imported:stdin"])
        .stdin(std::fs::File::open(&plain).unwrap())
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );

    let ctx = context(&[
        (
            "Dockerfile",
            "FROM imported:1\nCOPY add /etc/added\n",
            0o644,
        ),
        ("add", "added\n", 0o644),
    ]);
    let out = tempfile::tempdir().unwrap();
    s.build(
        ctx.path(),
        &["-o", &format!("type=local,dest={}", out.path().display())],
    );
    let want = tree(&[
        ("bin", "dir", 0o755, 0, 0),
        ("bin/tool", "file:#!/bin/sh\n", 0o755, 0, 0),
        ("etc", "dir", 0o755, 0, 0),
        ("etc/added", "file:added\n", 0o644, 0, 0),
        ("etc/motd", "file:welcome\n", 0o644, 0, 0),
        ("var", "dir", 0o755, 0, 0),
        ("var/empty", "dir", 0o700, 0, 0),
    ]);
    let got = dir_tree(out.path());
    let diff = tree_diff("got", &got, "want", &want);
    assert!(diff.is_empty(), "{diff}");
}

#[test]
fn a_loaded_oci_archive_is_a_base() {
    let builder = Strata::new();
    let (ctx, b) = tagged(&builder, "unused");
    let work = tempfile::tempdir().unwrap();
    let archive = work.path().join("image.tar");
    builder.build(
        ctx.path(),
        &[
            "-o",
            &format!("type=oci,dest={},name=shipped:7", arg(&archive)),
        ],
    );
    let unnamed = work.path().join("unnamed.tar");
    builder.build(
        ctx.path(),
        &["-o", &format!("type=oci,dest={}", arg(&unnamed))],
    );

    // Another store, as on another machine.
    let s = Strata::new();
    let loaded = stdout(s.ok(&["image", "load", "-i", &arg(&archive)]));
    assert!(loaded.contains("Loaded image: "), "{loaded}");
    let inspect: Value =
        serde_json::from_str(&stdout(s.ok(&["image", "inspect", "shipped:7"]))).unwrap();
    assert_eq!(inspect["Id"], b.id, "the same image");

    std::fs::write(ctx.path().join("Dockerfile"), "FROM shipped:7\nCOPY x /w\n").unwrap();
    let out = tempfile::tempdir().unwrap();
    s.build(
        ctx.path(),
        &["-o", &format!("type=local,dest={}", out.path().display())],
    );
    assert_eq!(
        dir_tree(out.path()),
        tree(&[
            ("w", "file:x\n", 0o644, 0, 0),
            ("x", "file:x\n", 0o644, 0, 0),
            ("y", "file:y\n", 0o644, 0, 0),
        ])
    );

    // An archive without a name loads with -t; without either it says what to do.
    let err = s.fails(&["image", "load", "-i", &arg(&unnamed)]);
    assert!(err.contains("-t"), "{err}");
    s.ok(&["image", "load", "-i", &arg(&unnamed), "-t", "named:now"]);
    assert!(stdout(s.ok(&["images"])).contains("named "));
}

#[test]
fn busybox_from_an_oci_layout_context_with_named_owners() {
    let Some(layout) = busybox_layout() else {
        return;
    };
    let s = Strata::new();
    let ctx = context(&[
        (
            "Dockerfile",
            "FROM busybox\n\
             COPY --chown=app:staff conf /etc/app/conf\n\
             COPY --chown=nobody script /home/app/\n\
             WORKDIR /home/app\n",
            0o644,
        ),
        ("conf", "k=v\n", 0o644),
        ("script", "echo hi\n", 0o755),
    ]);
    let out = tempfile::tempdir().unwrap();
    s.build(
        ctx.path(),
        &[
            "--build-context",
            &busybox_context("busybox", &layout),
            "-t",
            "mybox",
            "-o",
            &format!("type=local,dest={}", out.path().display()),
        ],
    );
    let t = dir_tree(out.path());
    let busybox = t.get("bin/busybox").expect("the base image's files");
    assert_eq!(busybox.mode, 0o755);
    assert_eq!(t["bin/sh"].kind, Kind::Symlink("busybox".into()));
    // Names resolve through the stage's /etc/passwd and /etc/group: app is 1000 (primary
    // group 1001), staff is group 50, nobody is 65534 with its primary group.
    let conf = &t["etc/app/conf"];
    assert_eq!((conf.uid, conf.gid), (1000, 50), "{conf:?}");
    let script = &t["home/app/script"];
    assert_eq!((script.uid, script.gid, script.mode), (65534, 65534, 0o755));
    assert_eq!(t["tmp"].mode, 0o1777);

    // The tagged result is a base in its own right, with the busybox layer under ours.
    let inspect: Value =
        serde_json::from_str(&stdout(s.ok(&["image", "inspect", "mybox"]))).unwrap();
    // busybox, two COPYs; WORKDIR of an existing directory changes nothing.
    assert_eq!(inspect["Manifest"]["layers"].as_array().unwrap().len(), 3);
    assert_eq!(
        inspect["Config"]["config"]["Cmd"],
        serde_json::json!(["sh"])
    );
    assert_eq!(inspect["Config"]["config"]["WorkingDir"], "/home/app");
}

#[test]
fn a_closed_stdout_ends_quietly() {
    // `strata image inspect NAME | head -c1`: the reader is gone before strata writes.
    let s = Strata::new();
    let (_ctx, _) = tagged(&s, "piped");
    let (reader, writer) = std::io::pipe().unwrap();
    drop(reader);
    let out = s
        .cmd()
        .args(["image", "inspect", "piped"])
        .stdout(writer)
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(!err.contains("panicked"), "{err}");
    assert_eq!(
        out.status.code(),
        Some(141),
        "the status SIGPIPE gives\n{err}"
    );
}

#[test]
fn tty_progress_needs_a_terminal_and_draws_on_one() {
    let s = Strata::new();
    let ctx = context(&[
        ("Dockerfile", "FROM scratch\nCOPY x /x\n", 0o644),
        ("x", "x\n", 0o644),
    ]);
    // stderr is a pipe here: asked for explicitly, tty is a usage error (as in buildx).
    let out = s.run(&["build", "--progress", "tty", ctx.path().to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(2));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("--progress tty needs a terminal"), "{err}");
    assert!(err.contains("--progress plain"), "{err}");

    // On a terminal (`script` gives the build a pty) it draws.
    let Some(script) = tool("script", "bsdutils") else {
        return;
    };
    let command = format!(
        "{} --root {} build --progress tty {}",
        env!("CARGO_BIN_EXE_strata"),
        s.root().display(),
        ctx.path().display()
    );
    let out = std::process::Command::new(script)
        .args(["-qec", &command, "/dev/null"])
        .env_remove("CI")
        .stdin(std::process::Stdio::null())
        .output()
        .unwrap();
    assert!(out.status.success(), "{out:?}");
    let drawn = String::from_utf8_lossy(&out.stdout);
    assert!(drawn.contains("\x1b[2K"), "no line redraws: {drawn}");
    assert!(
        drawn.contains("DONE") && drawn.contains("COPY x /x"),
        "{drawn}"
    );
}

#[test]
fn quiet_progress_prints_only_the_image_id() {
    let s = Strata::new();
    let ctx = context(&[
        ("Dockerfile", "FROM scratch\nCOPY x /x\n", 0o644),
        ("x", "x\n", 0o644),
    ]);
    for flags in [&["--progress", "quiet"][..], &["-q"][..]] {
        let mut args = vec!["build", "-t", "quiet:latest"];
        args.extend_from_slice(flags);
        args.push(ctx.path().to_str().unwrap());
        let out = s.run(&args);
        assert!(out.status.success(), "{flags:?}");
        assert_eq!(String::from_utf8_lossy(&out.stderr), "", "{flags:?}");
        let id = stdout(out);
        assert!(id.trim().starts_with("sha256:"), "{flags:?}: {id}");
    }
}
