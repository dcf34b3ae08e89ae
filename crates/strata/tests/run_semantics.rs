//! RUN semantics through the binary and runc, checked in the layers we write and by
//! real clients (umoci, docker load + create + export): opaque directories, setuid
//! bits and hardlinks kept, SHELL, USER with groups, the seccomp sandbox.

mod common;

use std::path::Path;

use common::*;

/// Builds into an OCI layout (named `t`, so tagged `latest`) and returns it.
fn build_layout(s: &Strata, bc: &str, ctx: &Path, extra: &[&str]) -> tempfile::TempDir {
    let oci = tempfile::tempdir().unwrap();
    let dest = format!("type=oci,dest={},tar=false,name=t", oci.path().display());
    let mut args = vec!["--build-context", bc, "-o", &dest];
    args.extend_from_slice(extra);
    s.build(ctx, &args);
    oci
}

/// The entries of the layout's last layer, as a tar reader sees them: path → (entry
/// type, mode, link target).
fn top_layer(oci: &Path) -> Vec<(String, tar::EntryType, u32, Option<String>)> {
    let index = read_json(&oci.join("index.json"));
    let manifest = layout_blob(oci, index["manifests"][0]["digest"].as_str().unwrap());
    let top = manifest["layers"].as_array().unwrap().last().unwrap()["digest"]
        .as_str()
        .unwrap()
        .to_string();
    let blob = oci
        .join("blobs/sha256")
        .join(top.strip_prefix("sha256:").unwrap());
    let mut archive = tar::Archive::new(flate2::read::GzDecoder::new(
        std::fs::File::open(blob).unwrap(),
    ));
    archive
        .entries()
        .unwrap()
        .map(|e| {
            let e = e.unwrap();
            let path = e
                .path()
                .unwrap()
                .to_string_lossy()
                .trim_end_matches('/')
                .to_string();
            let link = e
                .link_name()
                .unwrap()
                .map(|l| l.to_string_lossy().into_owned());
            (
                path,
                e.header().entry_type(),
                e.header().mode().unwrap(),
                link,
            )
        })
        .collect()
}

#[test]
fn a_directory_emptied_and_remade_is_opaque_in_the_layer_and_for_real_clients() {
    let Some((s, bc)) = run_setup() else { return };
    let ctx = dockerfile(
        "FROM busybox\n\
         RUN mkdir -p /dir/sub && touch /dir/a /dir/b /dir/sub/c\n\
         RUN rm -rf /dir && mkdir /dir && touch /dir/new\n",
    );
    let oci = build_layout(&s, &bc, ctx.path(), &[]);
    let names: Vec<String> = top_layer(oci.path()).into_iter().map(|e| e.0).collect();
    assert_eq!(names, ["dir", "dir/.wh..wh..opq", "dir/new"], "{names:?}");

    // umoci applies the layers and sees only `new`.
    if let Some(umoci) = Umoci::find() {
        let bundle = umoci.unpack(oci.path(), "latest");
        let rootfs = umoci_rootfs(&bundle);
        let under: Vec<&str> = rootfs
            .keys()
            .filter(|k| k.starts_with("dir/"))
            .map(String::as_str)
            .collect();
        assert_eq!(under, ["dir/new"]);
    }

    // So does docker (load, create, export).
    let Some(dockerd) = Dockerd::start() else {
        return;
    };
    let archive = tempfile::tempdir().unwrap();
    let tar = archive.path().join("image.tar");
    s.build(
        ctx.path(),
        &[
            "--build-context",
            &bc,
            "-o",
            &format!("type=docker,dest={},name=opaque:test", tar.display()),
        ],
    );
    dockerd.ok(&["load", "-i", tar.to_str().unwrap()]);
    let exported = dockerd.exported_tree("opaque:test");
    let under: Vec<&str> = exported
        .keys()
        .filter(|k| k.starts_with("dir/"))
        .map(String::as_str)
        .collect();
    assert_eq!(under, ["dir/new"]);
    assert!(exported.contains_key("bin/sh"));
}

#[test]
fn setuid_bits_and_hardlinks_made_by_run_are_kept() {
    let Some((s, bc)) = run_setup() else { return };
    let ctx = dockerfile(
        "FROM busybox\n\
         RUN mkdir -p /opt/tools /shared && echo tool > /opt/tools/su-tool \
         && chmod 4755 /opt/tools/su-tool && ln /opt/tools/su-tool /opt/tools/again \
         && chmod 2775 /shared && chmod +t /shared && echo g > /opt/tools/sg \
         && chmod 2711 /opt/tools/sg\n",
    );
    let oci = build_layout(&s, &bc, ctx.path(), &[]);
    let layer = top_layer(oci.path());
    let entry = |p: &str| {
        layer
            .iter()
            .find(|e| e.0 == p)
            .unwrap_or_else(|| panic!("{p} not in {layer:?}"))
            .clone()
    };
    assert_eq!(entry("opt/tools/sg").2 & 0o7777, 0o2711);
    assert_eq!(entry("shared").2 & 0o7777, 0o3775);
    // One of the two names is the file, the other a hard link to it.
    let (a, b) = (entry("opt/tools/su-tool"), entry("opt/tools/again"));
    let (file_e, link_e) = if a.1 == tar::EntryType::Link {
        (b, a)
    } else {
        (a, b)
    };
    assert_eq!(file_e.1, tar::EntryType::Regular);
    assert_eq!(file_e.2 & 0o7777, 0o4755);
    assert_eq!(link_e.1, tar::EntryType::Link);
    assert_eq!(link_e.3.as_deref(), Some(file_e.0.as_str()));

    // umoci's unpack agrees: one inode, setuid.
    if let Some(umoci) = Umoci::find() {
        use std::os::unix::fs::MetadataExt;
        let bundle = umoci.unpack(oci.path(), "latest");
        let root = bundle.path().join("bundle/rootfs");
        let m1 = std::fs::metadata(root.join("opt/tools/su-tool")).unwrap();
        let m2 = std::fs::metadata(root.join("opt/tools/again")).unwrap();
        assert_eq!(m1.ino(), m2.ino());
        assert_eq!(m1.mode() & 0o7777, 0o4755);
        assert_eq!(
            std::fs::metadata(root.join("shared")).unwrap().mode() & 0o7777,
            0o3775
        );
    }
}

#[test]
fn shell_sets_how_shell_form_runs() {
    let Some((s, bc)) = run_setup() else { return };
    // /bin/sh -c: a failing command in a list does not stop it.
    let plain = dockerfile("FROM busybox\nRUN false; echo continued > /x\n");
    let (_, out) = build_local(&s, &bc, plain.path(), &[]);
    assert_eq!(file(&dir_tree(out.path()), "x"), "continued\n");
    // SHELL ["/bin/sh", "-e", "-c"]: it does, and the error shows the shell used.
    let strict = dockerfile(
        "FROM busybox\n\
         SHELL [\"/bin/sh\", \"-e\", \"-c\"]\n\
         RUN false; echo continued > /x\n",
    );
    let err = s.fails(&[
        "build",
        "--build-context",
        &bc,
        strict.path().to_str().unwrap(),
    ]);
    assert!(
        err.contains(
            "process \"/bin/sh -e -c false; echo continued > /x\" did not complete successfully: exit code 1"
        ),
        "{err}"
    );
    // The shell runs with the options: `$-` has `e`.
    let ok = dockerfile(
        "FROM busybox\n\
         SHELL [\"/bin/sh\", \"-e\", \"-c\"]\n\
         RUN echo \"$-\" > /opts\n",
    );
    let (_, out) = build_local(&s, &bc, ok.path(), &[]);
    let opts = file(&dir_tree(out.path()), "opts");
    assert!(opts.contains('e'), "{opts}");
}

#[test]
fn user_with_a_group_and_supplementary_groups() {
    let Some((s, bc)) = run_setup() else { return };
    let ctx = dockerfile(
        "FROM busybox\n\
         RUN echo 'audio:x:29:app' >> /etc/group && echo 'video:x:44:nobody,app' >> /etc/group\n\
         USER app\n\
         RUN id > /tmp/by-name\n\
         USER app:staff\n\
         RUN id > /tmp/with-group\n\
         USER 1000:44\n\
         RUN id > /tmp/numeric\n",
    );
    let (_, out) = build_local(&s, &bc, ctx.path(), &[]);
    let t = dir_tree(out.path());
    // A name alone: its primary group and the groups that list it (as Docker).
    assert_eq!(
        file(&t, "tmp/by-name"),
        "uid=1000(app) gid=1001(app) groups=29(audio),44(video)\n"
    );
    // An explicit group replaces the primary group, and no supplementary groups.
    assert_eq!(file(&t, "tmp/with-group"), "uid=1000(app) gid=50(staff)\n");
    assert_eq!(file(&t, "tmp/numeric"), "uid=1000(app) gid=44(video)\n");
}

#[test]
fn sandboxed_runs_are_under_seccomp_and_insecure_ones_are_not() {
    let Some((s, bc)) = run_setup() else { return };
    let ctx = dockerfile(
        "FROM busybox\n\
         RUN grep '^Seccomp:' /proc/self/status > /sandbox; (unshare -U true 2>&1 || true) >> /sandbox\n\
         RUN --security=insecure grep '^Seccomp:' /proc/self/status > /insecure\n",
    );
    let (_, out) = build_local(&s, &bc, ctx.path(), &["--allow", "security.insecure"]);
    let t = dir_tree(out.path());
    let sandbox = file(&t, "sandbox");
    let features = run_ok(std::process::Command::new("runc").arg("features"));
    let features: serde_json::Value = serde_json::from_slice(&features).unwrap();
    if features["linux"]["seccomp"]["enabled"] == false {
        skip("runc was built without seccomp (`runc features`)");
        return;
    }
    let mut lines = sandbox.lines();
    assert_eq!(lines.next(), Some("Seccomp:\t2"));
    assert!(
        lines
            .next()
            .is_some_and(|l| l.contains("Operation not permitted")),
        "{sandbox}"
    );
    assert_eq!(file(&t, "insecure"), "Seccomp:\t0\n");
}
