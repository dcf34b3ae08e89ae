//! Debugging a failed RUN through the real binary and runc: the failed step's file
//! system (its own writes included), env, user, workdir and mounts in
//! `strata debug shell BUILD_ID -- CMD`, the hint a non-interactive build prints,
//! `--on-error=shell` on a terminal (through `script`), secrets left out.

mod common;

use std::process::{Command, Stdio};

use common::*;

const FAILING: &str = "FROM busybox\n\
ENV GREETING=hello\n\
WORKDIR /app\n\
USER app\n\
RUN --mount=type=bind,source=data,target=/data --mount=type=tmpfs,target=/scratch \
echo kept > /tmp/out.txt && exit 1\n";

fn failing_ctx() -> tempfile::TempDir {
    context(&[
        ("Dockerfile", FAILING, 0o644),
        ("data/input.txt", "from the context\n", 0o644),
    ])
}

/// Runs a build that must fail; returns its build id and stderr.
fn failed_build(s: &Strata, ctx: &std::path::Path, extra: &[&str]) -> (String, String) {
    let mut args = vec!["build", "--progress", "plain"];
    args.extend_from_slice(extra);
    args.push(ctx.to_str().unwrap());
    let err = s.fails(&args);
    let id = err
        .lines()
        .find_map(|l| l.strip_prefix("build id: "))
        .unwrap_or_else(|| panic!("no build id in:\n{err}"))
        .to_string();
    (id, err)
}

fn shell(s: &Strata, id: &str, cmd: &[&str]) -> std::process::Output {
    let mut args = vec!["debug", "shell", id, "--"];
    args.extend_from_slice(cmd);
    s.run(&args)
}

#[test]
fn the_failed_step_is_kept_with_its_files_env_user_workdir_and_mounts() {
    let Some((s, bc)) = run_setup() else { return };
    let ctx = failing_ctx();
    let (id, err) = failed_build(&s, ctx.path(), &["--build-context", &bc]);
    assert!(
        err.contains(&format!("`strata debug shell {id}` opens a shell in it")),
        "{err}"
    );

    let out = shell(&s, &id, &["cat", "/tmp/out.txt"]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(String::from_utf8_lossy(&out.stdout), "kept\n");

    let script = "pwd; id -u; id -g; echo $GREETING; cat /data/input.txt; \
                  grep -c ' /scratch tmpfs ' /proc/mounts";
    let out = shell(&s, &id, &["sh", "-c", script]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(
        String::from_utf8_lossy(&out.stdout),
        "/app\n1000\n1001\nhello\nfrom the context\n1\n"
    );

    // Garbage collection leaves the layers under a kept step alone (they are
    // cache records only: the base came from a build context, WORKDIR made a layer).
    s.ok(&["cache", "prune", "--all", "--force"]);
    let out = shell(&s, &id, &["cat", "/tmp/out.txt"]);
    assert!(
        out.status.success(),
        "after cache prune --all: {}",
        String::from_utf8_lossy(&out.stderr)
    );

    // The command's exit code is the shell's.
    assert_eq!(
        shell(&s, &id, &["sh", "-c", "exit 7"]).status.code(),
        Some(7)
    );
    let err = String::from_utf8_lossy(&shell(&s, "0000ffff0000", &["true"]).stderr).into_owned();
    assert!(
        err.contains("build 0000ffff0000 kept no failed RUN step"),
        "{err}"
    );
}

#[test]
fn on_error_shell_opens_a_shell_on_a_terminal() {
    let Some((s, bc)) = run_setup() else { return };
    let Some(script) = tool("script", "bsdutils") else {
        return;
    };
    let ctx = failing_ctx();
    let cmd = format!(
        "{} --root {} build --progress plain --on-error=shell --build-context {bc} {}",
        env!("CARGO_BIN_EXE_strata"),
        s.root().display(),
        ctx.path().display()
    );
    // `script` gives the build a terminal; what it reads is typed into the shell.
    let mut child = Command::new(script)
        .args(["-qec", &cmd, "/dev/null"])
        .env("NO_COLOR", "1")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    std::io::Write::write_all(
        child.stdin.as_mut().unwrap(),
        b"echo \"got $(cat /tmp/out.txt) as $(id -u) in $(pwd)\"; exit 3\n",
    )
    .unwrap();
    let out = child.wait_with_output().unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        text.contains("failed (exit code 1): opening /bin/sh in its file system"),
        "{text}"
    );
    assert!(text.contains("got kept as 1000 in /app"), "{text}");
    // The build still fails, with the step's error.
    assert_eq!(out.status.code(), Some(1), "{text}");
    assert!(
        text.contains("did not complete successfully: exit code 1"),
        "{text}"
    );
}

#[test]
fn secrets_are_left_out_of_the_kept_state_and_the_shell() {
    let Some((s, bc)) = run_setup() else { return };
    let secret = "debug-s3cr3t-51c2e8";
    let ctx = context(&[(
        "Dockerfile",
        "FROM busybox\nRUN --mount=type=secret,id=tok test -s /run/secrets/tok && exit 1\n",
        0o644,
    )]);
    let mut c = s.cmd();
    c.args([
        "build",
        "--progress",
        "plain",
        "--build-context",
        &bc,
        "--secret",
        "id=tok,env=STRATA_TEST_DEBUG_TOK",
    ])
    .arg(ctx.path())
    .env("STRATA_TEST_DEBUG_TOK", secret);
    let out = c.output().unwrap();
    let err = String::from_utf8_lossy(&out.stderr).into_owned();
    assert_eq!(out.status.code(), Some(1), "{err}");
    let id = err
        .lines()
        .find_map(|l| l.strip_prefix("build id: "))
        .unwrap();
    let state = std::fs::read(s.root().join("debug").join(id).join("state.json")).unwrap();
    let needle = secret.as_bytes();
    assert!(!state.windows(needle.len()).any(|w| w == needle));

    let out = shell(
        &s,
        id,
        &["sh", "-c", "test -e /run/secrets/tok || echo absent"],
    );
    assert_eq!(String::from_utf8_lossy(&out.stdout), "absent\n");
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("secret and ssh mounts are not available here: /run/secrets/tok"),
        "{err}"
    );
}
