//! Several `strata build` processes on one `--root` at once: every step they share is
//! executed by exactly one of them (the others wait for it and reuse its result), all
//! of them succeed with the same image, and the store checks clean afterwards.
//!
//! Executions are counted twice, independently: from each process's progress (`started`
//! events, summed over the processes) and by the shared step itself, which appends a
//! line to a cache mount that a later build reads back.

mod common;
#[path = "../../registry/tests/common/mod.rs"]
mod harness;

use std::process::{Child, Stdio};

use common::*;

/// FROM, a COPY of the context, a RUN that counts its executions in a cache mount and
/// writes 2 MB, and a RUN on top.
const SHARED: &str = "FROM busybox\n\
    COPY data /data\n\
    RUN --mount=type=cache,target=/c,id=executions echo ran >> /c/count && head -c 2000000 /dev/urandom > /big && cat /data > /copy\n\
    RUN wc -c /big > /size\n";

fn spawn_build(s: &Strata, bc: &str, ctx: &std::path::Path) -> Child {
    s.cmd()
        .env("SOURCE_DATE_EPOCH", "0")
        .args(["build", "--progress", "json", "--build-context", bc])
        .arg(ctx)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap()
}

/// How many times the shared RUN wrote to its cache mount.
fn executions(s: &Strata, bc: &str) -> usize {
    let probe = context(&[(
        "Dockerfile",
        "FROM busybox\n\
         RUN --mount=type=cache,target=/c,id=executions cat /c/count > /count\n",
        0o644,
    )]);
    let out = tempfile::tempdir().unwrap();
    let dest = format!("type=local,dest={}", out.path().display());
    s.build(probe.path(), &["--build-context", bc, "-o", &dest]);
    std::fs::read_to_string(out.path().join("count"))
        .unwrap()
        .lines()
        .count()
}

fn builds_at_once(n: usize) {
    let Some((s, bc)) = run_store() else { return };
    let ctx = context(&[
        ("Dockerfile", SHARED, 0o644),
        ("data", "the shared input\n", 0o644),
    ]);
    // Every process is started before any is waited for.
    let children: Vec<Child> = (0..n).map(|_| spawn_build(&s, &bc, ctx.path())).collect();
    let builds: Vec<Build> = children
        .into_iter()
        .map(|c| Build::succeeded(c.wait_with_output().unwrap(), "a concurrent build"))
        .collect();

    let ids: Vec<&str> = builds.iter().map(|b| b.id.as_str()).collect();
    assert!(ids[0].starts_with("sha256:"), "{ids:?}");
    assert!(
        ids.iter().all(|id| *id == ids[0]),
        "different images: {ids:?}"
    );

    let steps = builds[0].steps();
    assert_eq!(steps.len(), 4, "{steps:?}");
    for step in &steps {
        let ran = builds
            .iter()
            .filter(|b| b.executed().contains(step))
            .count();
        assert_eq!(ran, 1, "{step} was executed by {ran} of {n} builds");
        for b in &builds {
            assert!(b.steps().contains(step), "a build skipped {step}");
        }
    }
    assert_eq!(executions(&s, &bc), 1, "the shared RUN's own count");

    let check = s.ok(&["system", "check"]);
    let text = String::from_utf8_lossy(&check.stdout);
    assert!(text.trim_end().ends_with(": ok"), "{text}");
    assert!(!text.contains("damaged"), "{text}");

    // The steps' lock files are nobody's now: --repair removes them.
    let locks = || std::fs::read_dir(s.root().join("locks")).unwrap().count();
    assert!(locks() > steps.len(), "one lock file per claimed key");
    s.ok(&["system", "check", "--repair"]);
    assert_eq!(locks(), 1, "only the tmp/ cleaner's lock stays");
}

#[test]
fn two_builds_at_once_execute_each_shared_step_once() {
    builds_at_once(2);
}

#[test]
fn four_builds_at_once_execute_each_shared_step_once() {
    builds_at_once(4);
}

/// The same shared step under different Dockerfiles: the second build's own steps run,
/// the shared prefix is executed once.
#[test]
fn different_dockerfiles_share_their_common_prefix() {
    let Some((s, bc)) = run_store() else { return };
    let a = context(&[
        (
            "Dockerfile",
            &format!("{SHARED}RUN echo a > /which\n"),
            0o644,
        ),
        ("data", "the shared input\n", 0o644),
    ]);
    let b = context(&[
        (
            "Dockerfile",
            &format!("{SHARED}RUN echo b > /which\n"),
            0o644,
        ),
        ("data", "the shared input\n", 0o644),
    ]);
    let children = [
        spawn_build(&s, &bc, a.path()),
        spawn_build(&s, &bc, b.path()),
    ];
    let builds: Vec<Build> = children
        .into_iter()
        .map(|c| Build::succeeded(c.wait_with_output().unwrap(), "a concurrent build"))
        .collect();
    assert_ne!(builds[0].id, builds[1].id);
    for b in &builds {
        let own = b
            .executed()
            .iter()
            .filter(|s| s.contains("RUN echo"))
            .count();
        assert_eq!(
            own,
            1,
            "each build runs its own last step: {:?}",
            b.executed()
        );
    }
    assert_eq!(executions(&s, &bc), 1);
}

/// Whether process `pid` has a thread named `name` (`/proc/PID/task/*/comm`).
fn has_thread(pid: u32, name: &str) -> bool {
    std::fs::read_dir(format!("/proc/{pid}/task"))
        .map(|tasks| {
            tasks.flatten().any(|t| {
                std::fs::read_to_string(t.path().join("comm")).is_ok_and(|c| c.trim() == name)
            })
        })
        .unwrap_or(false)
}

/// The build running a shared step is killed while another waits for it: the waiter
/// gets the step's lock (the kernel drops a dead holder's), finds no result, runs the
/// step itself and succeeds.
#[test]
fn a_waiter_takes_over_when_the_running_build_is_killed() {
    use std::io::{BufRead, BufReader};

    let Some((s, bc)) = run_store() else { return };
    let ctx = context(&[(
        "Dockerfile",
        "FROM busybox\nRUN echo start && sleep 5 && echo done > /done\n",
        0o644,
    )]);
    let mut first = spawn_build(&s, &bc, ctx.path());
    let events = BufReader::new(first.stderr.take().unwrap());
    let mut lines = events.lines().map_while(Result::ok);
    assert!(
        lines.any(|l| l.contains("\"started\"") && l.contains("RUN echo start")),
        "the first build never started its RUN"
    );

    let second = spawn_build(&s, &bc, ctx.path());
    // The second waits for the step's lock on a thread of its own.
    while !has_thread(second.id(), "strata-claim") {
        assert!(
            std::fs::metadata(format!("/proc/{}", second.id())).is_ok(),
            "the second build ended without waiting"
        );
        std::thread::yield_now();
    }
    first.kill().unwrap();
    first.wait().unwrap();

    let b = Build::succeeded(second.wait_with_output().unwrap(), "the waiting build");
    assert!(
        b.executed().iter().any(|n| n.contains("RUN echo start")),
        "the waiter ran the step itself: {:?}",
        b.executed()
    );
    assert!(
        b.stderr.contains("for another build running this step"),
        "{}",
        b.stderr
    );
    let check = s.ok(&["system", "check"]);
    let text = String::from_utf8_lossy(&check.stdout);
    assert!(!text.contains("damaged"), "{text}");
}

/// The largest blob in the registry's storage (a layer), by hex digest.
fn largest_blob(reg: &harness::Registry) -> String {
    let root = reg.data().join("docker/registry/v2/blobs/sha256");
    let mut best = (0, String::new());
    for prefix in std::fs::read_dir(root).unwrap().flatten() {
        for blob in std::fs::read_dir(prefix.path()).unwrap().flatten() {
            let len = std::fs::metadata(blob.path().join("data")).map_or(0, |m| m.len());
            if len > best.0 {
                best = (len, blob.file_name().to_string_lossy().into_owned());
            }
        }
    }
    best.1
}

/// Pushes a base with a 4 MB incompressible layer to `reg`: its reference, and a count
/// of the registry's GETs of that layer so far.
fn pushed_base(reg: &harness::Registry) -> (String, impl Fn() -> usize + '_) {
    let noise = noise(4 << 20, 0x2545_f491_4f6c_dd1d);
    let base_ctx = context(&[("Dockerfile", "FROM scratch\nCOPY big /big\n", 0o644)]);
    std::fs::write(base_ctx.path().join("big"), &noise).unwrap();
    let base = format!("{}/shared/base:1", reg.addr);
    Strata::new().build(base_ctx.path(), &["--push", "-t", &base]);
    let layer = largest_blob(reg);
    let gets = move || {
        reg.log()
            .lines()
            // The access log's line (the application log has one more per request).
            .filter(|l| l.contains(&format!("\"GET /v2/shared/base/blobs/sha256:{layer} ")))
            .count()
    };
    (base, gets)
}

/// Three builds started together on a fresh store, `FROM` the same registry image:
/// one pulls it (each blob downloaded once), the others wait and find it in the store.
#[test]
fn builds_started_together_pull_their_shared_base_once() {
    let Some(reg) = harness::Registry::start() else {
        return;
    };
    let (base, gets) = pushed_base(&reg);
    let before = gets();

    let s = Strata::new();
    let ctx = context(&[
        ("Dockerfile", &format!("FROM {base}\nCOPY x /x\n"), 0o644),
        ("x", "x\n", 0o644),
    ]);
    let children: Vec<Child> = (0..3)
        .map(|_| {
            s.cmd()
                .env("SOURCE_DATE_EPOCH", "0")
                .args(["build", "--progress", "json"])
                .arg(ctx.path())
                .stdout(Stdio::piped())
                .stderr(Stdio::piped())
                .spawn()
                .unwrap()
        })
        .collect();
    let builds: Vec<Build> = children
        .into_iter()
        .map(|c| Build::succeeded(c.wait_with_output().unwrap(), "a concurrent build"))
        .collect();
    assert!(builds
        .iter()
        .all(|b| b.id == builds[0].id && !b.id.is_empty()));
    let pulled = builds
        .iter()
        .filter(|b| {
            b.names("completed")
                .contains(&format!("[internal] pull {base}"))
        })
        .count();
    assert_eq!(pulled, 1, "builds that pulled the base");
    assert_eq!(gets() - before, 1, "downloads of the layer blob");
}

/// Two `strata pull`s of the same image at once download its layer once.
#[test]
fn pulls_started_together_download_each_blob_once() {
    let Some(reg) = harness::Registry::start() else {
        return;
    };
    let (base, gets) = pushed_base(&reg);
    let before = gets();
    let s = Strata::new();
    let children: Vec<Child> = (0..2)
        .map(|_| {
            s.cmd()
                .args(["pull", &base])
                .stdout(Stdio::piped())
                .stderr(Stdio::piped())
                .spawn()
                .unwrap()
        })
        .collect();
    let digests: Vec<String> = children
        .into_iter()
        .map(|c| {
            let out = c.wait_with_output().unwrap();
            assert!(
                out.status.success(),
                "{}",
                String::from_utf8_lossy(&out.stderr)
            );
            String::from_utf8(out.stdout).unwrap()
        })
        .collect();
    assert_eq!(digests[0], digests[1]);
    assert_eq!(gets() - before, 1, "downloads of the layer blob");
}
