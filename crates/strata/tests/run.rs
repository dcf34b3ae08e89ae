//! RUN through the real binary and the real runc, on a busybox base image: the
//! process's writes become a layer, ENV/ARG/WORKDIR/USER semantics, failures, whiteouts,
//! the cache, `--network=none`, `--security=insecure` and Ctrl-C.

mod common;

use std::io::{BufRead, BufReader};
use std::process::Stdio;

use common::*;

/// How many of `steps` are RUN steps.
fn runs(steps: &[String]) -> usize {
    steps.iter().filter(|s| s.contains("] RUN ")).count()
}

#[test]
fn run_writes_end_up_in_the_rootfs_with_env_and_args() {
    let Some((s, bc)) = run_setup() else { return };
    let ctx = dockerfile(
        "FROM busybox\n\
         ARG COLOR=blue\n\
         ENV SHAPE=circle\n\
         RUN echo \"$COLOR $SHAPE\" > /result && env | sort > /env.txt\n\
         RUN echo second >> /result\n",
    );
    let oci = tempfile::tempdir().unwrap();
    let (b, out) = build_local(
        &s,
        &bc,
        ctx.path(),
        &[
            "-o",
            &format!("type=oci,dest={},tar=false", oci.path().display()),
        ],
    );
    assert_eq!(runs(&b.executed()), 2, "{:?}", b.executed());
    let t = dir_tree(out.path());
    assert_eq!(file(&t, "result"), "blue circle\nsecond\n");
    let env = file(&t, "env.txt");
    assert!(env.lines().any(|l| l == "COLOR=blue"), "{env}");
    assert!(env.lines().any(|l| l == "SHAPE=circle"), "{env}");
    // The executor's mount points do not reach the image.
    for gone in ["proc", "dev", "sys", "etc/hosts", "etc/resolv.conf"] {
        assert!(!t.contains_key(gone), "{gone} in the image");
    }
    // ARG is in RUN's environment, not in the image config; ENV is in both.
    let index = read_json(&oci.path().join("index.json"));
    let manifest = layout_blob(
        oci.path(),
        index["manifests"][0]["digest"].as_str().unwrap(),
    );
    let config = layout_blob(oci.path(), manifest["config"]["digest"].as_str().unwrap());
    let env: Vec<&str> = config["config"]["Env"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v.as_str().unwrap())
        .collect();
    assert!(env.contains(&"SHAPE=circle"), "{env:?}");
    assert!(!env.iter().any(|e| e.starts_with("COLOR=")), "{env:?}");
    assert_eq!(manifest["layers"].as_array().unwrap().len(), 3);
    let history = config["history"].as_array().unwrap();
    assert!(
        history.iter().any(|h| h["created_by"]
            .as_str()
            .unwrap_or("")
            .contains("COLOR=blue")),
        "{history:?}"
    );
}

#[test]
fn runs_that_change_nothing_add_no_layer() {
    let Some((s, bc)) = run_setup() else { return };
    // busybox has /etc but no /etc/hosts: the runtime's mount point there copies /etc
    // up, and that unchanged copy must not become a layer entry.
    let ctx = dockerfile("FROM busybox\nRUN true\nRUN echo hello\n");
    let oci = tempfile::tempdir().unwrap();
    let (b, _out) = build_local(
        &s,
        &bc,
        ctx.path(),
        &[
            "-o",
            &format!("type=oci,dest={},tar=false", oci.path().display()),
        ],
    );
    assert_eq!(runs(&b.executed()), 2, "{:?}", b.executed());
    let index = read_json(&oci.path().join("index.json"));
    let manifest = layout_blob(
        oci.path(),
        index["manifests"][0]["digest"].as_str().unwrap(),
    );
    assert_eq!(
        manifest["layers"].as_array().unwrap().len(),
        1,
        "{manifest}"
    );
    let config = layout_blob(oci.path(), manifest["config"]["digest"].as_str().unwrap());
    let history = config["history"].as_array().unwrap();
    let run_steps: Vec<_> = history
        .iter()
        .filter(|h| h["created_by"].as_str().unwrap_or("").starts_with("RUN "))
        .collect();
    assert_eq!(run_steps.len(), 2, "{history:?}");
    assert!(
        run_steps.iter().all(|h| h["empty_layer"] == true),
        "{history:?}"
    );
}

#[test]
fn workdir_and_user_are_respected() {
    let Some((s, bc)) = run_setup() else { return };
    let ctx = dockerfile(
        "FROM busybox\n\
         WORKDIR /srv/app\n\
         RUN pwd > /pwd\n\
         USER app\n\
         RUN id -u > /tmp/uid && id -un > /tmp/name && id -G > /tmp/groups && touch /tmp/owned\n\
         USER 1234:50\n\
         RUN id -u > /tmp/uid2 && id -g > /tmp/gid2\n",
    );
    let (_, out) = build_local(&s, &bc, ctx.path(), &[]);
    let t = dir_tree(out.path());
    assert_eq!(file(&t, "pwd"), "/srv/app\n");
    assert_eq!(file(&t, "tmp/uid"), "1000\n");
    assert_eq!(file(&t, "tmp/name"), "app\n");
    assert_eq!(file(&t, "tmp/groups"), "1001\n");
    let owned = &t["tmp/owned"];
    assert_eq!((owned.uid, owned.gid), (1000, 1001));
    assert_eq!(file(&t, "tmp/uid2"), "1234\n");
    assert_eq!(file(&t, "tmp/gid2"), "50\n");
}

#[test]
fn a_failing_run_names_the_command_the_exit_code_and_the_last_lines() {
    let Some((s, bc)) = run_setup() else { return };
    let ctx = dockerfile(
        "FROM busybox\n\
         RUN echo fine > /fine\n\
         RUN echo early >&2; for i in $(seq 1 30); do echo line $i; done; exit 3\n",
    );
    let out = s
        .cmd()
        .args(["build", "--progress", "plain", "--build-context", &bc])
        .arg(ctx.path())
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    let err = String::from_utf8_lossy(&out.stderr);
    let last = err.lines().rev().take(22).collect::<Vec<_>>();
    assert!(
        err.contains("[3/3] RUN echo early >&2; for i in $(seq 1 30)"),
        "the step is named:\n{err}"
    );
    assert!(
        err.contains("process \"/bin/sh -c echo early >&2; for i in $(seq 1 30); do echo line $i; done; exit 3\" did not complete successfully: exit code 3"),
        "{err}"
    );
    assert!(err.contains("last 20 lines of output:"), "{err}");
    assert!(last.iter().any(|l| l.trim() == "line 30"), "{err}");
    // stdout and stderr are separate pipes, so "early" may come anywhere; stdout's own
    // order holds.
    assert!(
        !last.iter().any(|l| l.trim() == "line 5"),
        "only the tail: {err}"
    );
    // The step before stays cached.
    let again = s
        .cmd()
        .args(["build", "--progress", "json", "--build-context", &bc])
        .arg(ctx.path())
        .output()
        .unwrap();
    let b = Build::parse(&again.stdout, String::from_utf8_lossy(&again.stderr).into());
    assert!(
        b.cached().iter().any(|n| n.contains("echo fine")),
        "{:?}",
        b.cached()
    );
}

#[test]
fn rm_in_run_is_a_whiteout_in_the_layer() {
    let Some((s, bc)) = run_setup() else { return };
    let Some(umoci) = Umoci::find() else { return };
    let ctx = dockerfile("FROM busybox\nRUN rm /bin/vi && mkdir -p /data && rm -r /tmp\n");
    let oci = tempfile::tempdir().unwrap();
    let (_, out) = build_local(
        &s,
        &bc,
        ctx.path(),
        &[
            "-o",
            &format!("type=oci,dest={},tar=false,name=run", oci.path().display()),
        ],
    );
    let t = dir_tree(out.path());
    assert!(!t.contains_key("bin/vi"));
    assert!(t.contains_key("bin/sh"));
    assert!(!t.contains_key("tmp"));
    // The layer holds whiteouts for what was removed.
    let index = read_json(&oci.path().join("index.json"));
    let manifest = layout_blob(
        oci.path(),
        index["manifests"][0]["digest"].as_str().unwrap(),
    );
    let top = manifest["layers"].as_array().unwrap().last().unwrap()["digest"]
        .as_str()
        .unwrap()
        .to_string();
    let blob = oci
        .path()
        .join("blobs/sha256")
        .join(top.strip_prefix("sha256:").unwrap());
    let layer = tar_tree(flate2::read::GzDecoder::new(
        std::fs::File::open(blob).unwrap(),
    ));
    let names: std::collections::BTreeSet<&str> = layer.keys().map(String::as_str).collect();
    // What the command changed, and the parent of what it deleted; no mount points.
    assert_eq!(
        names,
        [".wh.tmp", "bin", "bin/.wh.vi", "data"]
            .into_iter()
            .collect(),
    );
    // A real client agrees.
    let bundle = umoci.unpack(oci.path(), "latest");
    let rootfs = umoci_rootfs(&bundle);
    assert!(!rootfs.contains_key("bin/vi"));
    assert!(!rootfs.contains_key("tmp"));
    assert!(rootfs.contains_key("data"));
}

#[test]
fn an_identical_build_is_cached_and_does_not_run_again() {
    let Some((s, bc)) = run_setup() else { return };
    // Each run of the step appends to a cache mount, which outlives builds: a step
    // that ran twice would leave two lines.
    let ctx = dockerfile(
        "FROM busybox\n\
         RUN --mount=type=cache,target=/c,id=runs echo ran >> /c/log && date +%s%N > /stamp\n",
    );
    let (b1, out1) = build_local(&s, &bc, ctx.path(), &[]);
    assert_eq!(runs(&b1.executed()), 1, "{:?}", b1.executed());
    let (b2, out2) = build_local(&s, &bc, ctx.path(), &[]);
    assert_eq!(runs(&b2.executed()), 0, "ran again: {:?}", b2.executed());
    assert!(
        b2.cached().iter().any(|n| n.contains("echo ran")),
        "{:?}",
        b2.cached()
    );
    let (t1, t2) = (dir_tree(out1.path()), dir_tree(out2.path()));
    assert_eq!(file(&t1, "stamp"), file(&t2, "stamp"));
    // A different step reads the cache mount: one line, so the first step ran once.
    let check = dockerfile(
        "FROM busybox\nRUN --mount=type=cache,target=/seen,id=runs cat /seen/log > /log\n",
    );
    let (_, out3) = build_local(&s, &bc, check.path(), &[]);
    let t3 = dir_tree(out3.path());
    assert_eq!(file(&t3, "log"), "ran\n");
    assert!(!t3.contains_key("seen") && !t1.contains_key("c"));
}

#[test]
fn network_none_has_only_loopback() {
    let Some((s, bc)) = run_setup() else { return };
    let ctx = dockerfile(
        "FROM busybox\n\
         RUN --network=none tail -n +3 /proc/net/dev | cut -d: -f1 | tr -d ' ' > /none\n\
         RUN tail -n +3 /proc/net/dev | cut -d: -f1 | tr -d ' ' > /host\n",
    );
    let (_, out) = build_local(&s, &bc, ctx.path(), &[]);
    let t = dir_tree(out.path());
    assert_eq!(file(&t, "none"), "lo\n");
    // The default is the host's network, which has more than loopback here.
    let host = std::fs::read_to_string("/proc/net/dev").unwrap();
    assert_eq!(file(&t, "host").lines().count(), host.lines().count() - 2);
}

#[test]
fn insecure_runs_need_the_entitlement() {
    let Some((s, bc)) = run_setup() else { return };
    let ctx =
        dockerfile("FROM busybox\nRUN --security=insecure grep CapEff /proc/self/status > /caps\n");
    let err = s.fails(&[
        "build",
        "--build-context",
        &bc,
        ctx.path().to_str().unwrap(),
    ]);
    assert!(
        err.contains("RUN --security=insecure is not allowed without `--allow security.insecure`"),
        "{err}"
    );
    let (_, out) = build_local(&s, &bc, ctx.path(), &["--allow", "security.insecure"]);
    let caps = file(&dir_tree(out.path()), "caps");
    // More than Docker's 14 default capabilities (a80425fb).
    assert_ne!(caps.trim(), "CapEff:\t00000000a80425fb");
}

#[test]
fn ctrl_c_kills_the_container() {
    let Some((s, bc)) = run_setup() else { return };
    let ctx = dockerfile("FROM busybox\nRUN echo started && sleep 300 && echo never\n");
    let mut child = s
        .cmd()
        .args(["build", "--progress", "plain", "--build-context", &bc])
        .arg(ctx.path())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut lines = BufReader::new(child.stderr.take().unwrap()).lines();
    for line in lines.by_ref() {
        if line.unwrap().ends_with(" started") {
            break;
        }
    }
    rustix::process::kill_process(
        rustix::process::Pid::from_child(&child),
        rustix::process::Signal::INT,
    )
    .unwrap();
    let rest: Vec<String> = lines.map_while(Result::ok).collect();
    let status = child.wait().unwrap();
    assert_eq!(status.code(), Some(1), "{rest:?}");
    assert!(
        rest.iter().any(|l| l.contains("build cancelled")),
        "{rest:?}"
    );
    let ps = std::process::Command::new("ps")
        .args(["-eo", "args"])
        .output()
        .unwrap();
    assert!(
        !String::from_utf8_lossy(&ps.stdout)
            .lines()
            .any(|l| l == "sleep 300"),
        "the container's process survived Ctrl-C"
    );
}

#[test]
fn runtimes_can_be_chosen_and_crun_runs_where_it_works() {
    let Some((s, bc)) = run_setup() else { return };
    let ctx = dockerfile("FROM busybox\nRUN echo ran > /ran\n");
    let (_, out) = build_local(&s, &bc, ctx.path(), &["--runtime", "runc", "--no-cache"]);
    assert_eq!(file(&dir_tree(out.path()), "ran"), "ran\n");
    let err = s.fails(&[
        "build",
        "--runtime",
        "/no/such/runtime",
        "--no-cache",
        "--build-context",
        &bc,
        ctx.path().to_str().unwrap(),
    ]);
    assert!(
        err.contains("OCI runtime \"/no/such/runtime\" not found"),
        "{err}"
    );
    // crun: the other half of the matrix. On cgroup v1 hybrid hosts (crun 1.8 refuses
    // them when their cgroup2 mount has controllers) strata runs crun in a mount
    // namespace without that mount, so crun must work wherever runc does; where it
    // still does not, auto must say why it took runc (and CI fails).
    if tool("crun", "crun").is_none() {
        return;
    }
    let out = s
        .cmd()
        .args([
            "build",
            "--progress",
            "plain",
            "--no-cache",
            "--runtime",
            "crun",
        ])
        .args(["--build-context", &bc])
        .arg(ctx.path())
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    if !out.status.success() {
        assert!(stderr.contains("crun failed: "), "{stderr}");
        let reason = stderr
            .lines()
            .find(|l| l.contains("crun failed: "))
            .unwrap();
        let b = s.build(ctx.path(), &["--no-cache", "--build-context", &bc]);
        assert!(
            b.stderr.contains("crun does not work on this host (")
                && b.stderr.contains("); using runc"),
            "{}",
            b.stderr
        );
        skip(&format!("crun does not work on this host ({reason})"));
        return;
    }
    let (_, out) = build_local(&s, &bc, ctx.path(), &["--runtime", "crun", "--no-cache"]);
    assert_eq!(file(&dir_tree(out.path()), "ran"), "ran\n");
    let b = s.build(ctx.path(), &["--no-cache", "--build-context", &bc]);
    assert!(!b.stderr.contains("crun does not work"), "{}", b.stderr);
}
