//! `strata build --explain` and `strata cache explain` through the real binary: one
//! test per kind of change (never built, instruction text, context files changed /
//! added / removed, an input step that re-ran, base image digest, build-arg, ENV), the
//! same explanations for a past build by id and by image name, the build id in
//! `--metadata-file`, and a secret's bytes never reaching the store.

mod common;

use std::path::Path;
use std::process::Command;

use common::*;

/// The `explain` events of a build: (step name, reasons).
fn explained(b: &Build) -> Vec<(String, Vec<String>)> {
    b.events
        .iter()
        .filter(|e| e["event"] == "explain")
        .map(|e| {
            let reasons = e["reasons"]
                .as_array()
                .unwrap()
                .iter()
                .map(|r| r.as_str().unwrap().to_string())
                .collect();
            (e["vertex"]["name"].as_str().unwrap().to_string(), reasons)
        })
        .collect()
}

/// The reasons given for `step`.
fn why(b: &Build, step: &str) -> Vec<String> {
    explained(b)
        .into_iter()
        .find(|(n, _)| n == step)
        .unwrap_or_else(|| panic!("no explanation for {step}: {:?}", explained(b)))
        .1
}

fn explain_build(s: &Strata, ctx: &Path, extra: &[&str]) -> Build {
    let mut args = vec!["--explain"];
    args.extend_from_slice(extra);
    s.build(ctx, &args)
}

fn stdout(o: std::process::Output) -> String {
    String::from_utf8(o.stdout).unwrap()
}

const COPIES: &str = "FROM scratch\nCOPY src/ /src/\nCOPY a.txt /a\n";

fn copies_ctx() -> tempfile::TempDir {
    context(&[
        ("Dockerfile", COPIES, 0o644),
        ("src/main.c", "int main;\n", 0o644),
        ("src/util.c", "int util;\n", 0o644),
        ("a.txt", "a\n", 0o644),
    ])
}

#[test]
fn a_first_build_was_never_built_before_and_a_rebuild_explains_nothing() {
    let s = Strata::new();
    let ctx = copies_ctx();
    let b = explain_build(&s, ctx.path(), &[]);
    assert_eq!(why(&b, "[2/3] COPY src/ /src/"), ["never built before"]);
    assert_eq!(why(&b, "[3/3] COPY a.txt /a"), ["never built before"]);
    let again = explain_build(&s, ctx.path(), &[]);
    assert_eq!(explained(&again), vec![], "{}", again.stderr);
}

#[test]
fn changed_context_files_are_named() {
    let s = Strata::new();
    let ctx = copies_ctx();
    explain_build(&s, ctx.path(), &[]);
    write(ctx.path(), "src/main.c", "int main(void);\n");
    let b = explain_build(&s, ctx.path(), &[]);
    assert_eq!(
        why(&b, "[2/3] COPY src/ /src/"),
        ["context files changed: 1 changed (src/main.c), 0 added, 0 removed"]
    );
}

#[test]
fn added_context_files_are_named() {
    let s = Strata::new();
    let ctx = copies_ctx();
    explain_build(&s, ctx.path(), &[]);
    write(ctx.path(), "src/new.c", "int new;\n");
    let b = explain_build(&s, ctx.path(), &[]);
    assert_eq!(
        why(&b, "[2/3] COPY src/ /src/"),
        ["context files changed: 0 changed, 1 added (src/new.c), 0 removed"]
    );
}

#[test]
fn removed_context_files_are_named() {
    let s = Strata::new();
    let ctx = copies_ctx();
    explain_build(&s, ctx.path(), &[]);
    std::fs::remove_file(ctx.path().join("src/util.c")).unwrap();
    let b = explain_build(&s, ctx.path(), &[]);
    assert_eq!(
        why(&b, "[2/3] COPY src/ /src/"),
        ["context files changed: 0 changed, 0 added, 1 removed (src/util.c)"]
    );
}

#[test]
fn a_change_past_the_listed_files_is_still_explained() {
    let s = Strata::new();
    let ctx = context(&[("Dockerfile", "FROM scratch\nCOPY src/ /src/\n", 0o644)]);
    // More files than a step's record lists (2,000).
    for i in 0..2100 {
        write_entries(ctx.path(), &[(&format!("src/f{i:04}.c"), "x\n", 0o644)]);
    }
    explain_build(&s, ctx.path(), &[]);
    // Files are read in name order: the last 100 are not listed.
    write(ctx.path(), "src/f2099.c", "changed\n");
    let b = explain_build(&s, ctx.path(), &[]);
    assert_eq!(
        why(&b, "[2/2] COPY src/ /src/"),
        ["context files changed among the 100 not listed (of 2100 read)"]
    );
    write(ctx.path(), "src/f0001.c", "changed\n");
    let b = explain_build(&s, ctx.path(), &[]);
    assert_eq!(
        why(&b, "[2/2] COPY src/ /src/"),
        ["context files changed: 1 changed (src/f0001.c), 0 added, 0 removed"]
    );
}

#[test]
fn a_step_after_one_that_re_ran_says_so() {
    let s = Strata::new();
    let ctx = copies_ctx();
    explain_build(&s, ctx.path(), &[]);
    write(ctx.path(), "src/util.c", "long util;\n");
    let b = explain_build(&s, ctx.path(), &[]);
    assert_eq!(
        why(&b, "[3/3] COPY a.txt /a"),
        ["input step [2/3] COPY src/ /src/ re-ran"]
    );
}

#[test]
fn a_changed_instruction_shows_old_and_new_text() {
    let s = Strata::new();
    let ctx = copies_ctx();
    explain_build(&s, ctx.path(), &[]);
    write(
        ctx.path(),
        "Dockerfile",
        "FROM scratch\nCOPY src/ /src/\nCOPY a.txt /b\n",
    );
    let b = explain_build(&s, ctx.path(), &[]);
    assert_eq!(
        why(&b, "[3/3] COPY a.txt /b"),
        ["instruction changed: COPY a.txt /a → COPY a.txt /b"]
    );
    // The step before it is unchanged and cached: nothing to explain.
    assert!(b.cached().contains(&"[2/3] COPY src/ /src/".to_string()));
    assert_eq!(explained(&b).len(), 1, "{:?}", explained(&b));
}

/// `strata image import` of a one-file root filesystem as `name`.
fn import(s: &Strata, name: &str, content: &str) {
    let dir = tempfile::tempdir().unwrap();
    let rootfs = dir.path().join("rootfs");
    std::fs::create_dir(&rootfs).unwrap();
    std::fs::write(rootfs.join("version"), content).unwrap();
    let tar = dir.path().join("rootfs.tar");
    run_ok(
        Command::new("tar")
            .arg("-C")
            .arg(&rootfs)
            .arg("-cf")
            .arg(&tar)
            .arg("."),
    );
    s.ok(&["image", "import", tar.to_str().unwrap(), name]);
}

fn manifest_of(s: &Strata, name: &str) -> String {
    let v: serde_json::Value =
        serde_json::from_str(&stdout(s.ok(&["image", "inspect", name]))).unwrap();
    v["Digest"].as_str().unwrap().to_string()
}

#[test]
fn a_new_base_image_digest_shows_old_and_new() {
    let s = Strata::new();
    import(&s, "base:latest", "1\n");
    let old = manifest_of(&s, "base:latest");
    let ctx = context(&[
        ("Dockerfile", "FROM base\nCOPY a.txt /\n", 0o644),
        ("a.txt", "a\n", 0o644),
    ]);
    explain_build(&s, ctx.path(), &[]);
    import(&s, "base:latest", "2\n");
    let new = manifest_of(&s, "base:latest");
    assert_ne!(old, new);
    let b = explain_build(&s, ctx.path(), &[]);
    assert_eq!(
        why(&b, "[2/2] COPY a.txt /"),
        [format!(
            "base image docker.io/library/base:latest changed: {old} → {new}"
        )]
    );
}

#[test]
fn a_past_build_is_explained_by_id_and_by_image_name() {
    let s = Strata::new();
    let ctx = copies_ctx();
    explain_build(&s, ctx.path(), &["-t", "app:1"]);
    write(ctx.path(), "a.txt", "b\n");
    let meta = ctx.path().join("meta.json");
    let b = s.build(
        ctx.path(),
        &["-t", "app:2", "--metadata-file", meta.to_str().unwrap()],
    );
    // Without --explain nothing is reported, but the explanation is recorded.
    assert_eq!(explained(&b), vec![]);
    let id = read_json(&meta)["strata.build-id"]
        .as_str()
        .unwrap()
        .to_string();
    assert!(
        b.stderr.contains(&format!("build id: {id}")),
        "{}",
        b.stderr
    );

    let by_id = stdout(s.ok(&["cache", "explain", &id]));
    assert!(by_id.starts_with(&format!("build {id} (")), "{by_id}");
    assert!(
        by_id.contains("succeeded): 1 step(s) ran, 2 cached"),
        "{by_id}"
    );
    assert!(
        by_id.contains(
            "[3/3] COPY a.txt /a\n  context files changed: 1 changed (a.txt), 0 added, 0 removed\n"
        ),
        "{by_id}"
    );
    assert_eq!(stdout(s.ok(&["cache", "explain", "app:2"])), by_id);
    let json: serde_json::Value = serde_json::from_str(&stdout(
        s.ok(&["cache", "explain", "--format", "json", &id]),
    ))
    .unwrap();
    assert_eq!(json["id"], id.as_str());
    assert_eq!(json["status"], "succeeded");
    assert_eq!(json["names"][0], "docker.io/library/app:2");
    let copy_a = json["steps"]
        .as_array()
        .unwrap()
        .iter()
        .find(|s| s["name"] == "[3/3] COPY a.txt /a")
        .unwrap();
    assert_eq!(copy_a["outcome"], "ran");
    assert_eq!(
        copy_a["reasons"][0],
        "context files changed: 1 changed (a.txt), 0 added, 0 removed"
    );
    let first = stdout(s.ok(&["cache", "explain", "app:1"]));
    assert!(
        first.contains("[2/3] COPY src/ /src/\n  never built before\n"),
        "{first}"
    );

    let err = s.fails(&["cache", "explain", "nothing-here"]);
    assert!(err.contains("nothing-here: no build with this id"), "{err}");
}

// ---------------------------------------------------------------------------------------
// RUN: build-args, ENV, secrets (root, runc and busybox)

#[test]
fn a_changed_build_arg_shows_old_and_new_values() {
    let Some((s, bc)) = run_setup() else { return };
    let ctx = context(&[(
        "Dockerfile",
        "FROM busybox\nARG VERSION=0.9\nRUN echo $VERSION > /v\n",
        0o644,
    )]);
    explain_build(
        &s,
        ctx.path(),
        &["--build-context", &bc, "--build-arg", "VERSION=1.0"],
    );
    let b = explain_build(
        &s,
        ctx.path(),
        &["--build-context", &bc, "--build-arg", "VERSION=1.1"],
    );
    assert_eq!(
        why(&b, "[3/3] RUN echo $VERSION > /v"),
        ["build-arg VERSION changed: 1.0 → 1.1"]
    );
}

#[test]
fn a_changed_env_shows_old_and_new_values() {
    let Some((s, bc)) = run_setup() else { return };
    let df = |mode: &str| format!("FROM busybox\nENV MODE={mode}\nRUN echo $MODE > /m\n");
    let ctx = context(&[("Dockerfile", &df("fast"), 0o644)]);
    explain_build(&s, ctx.path(), &["--build-context", &bc]);
    write(ctx.path(), "Dockerfile", &df("slow"));
    let b = explain_build(&s, ctx.path(), &["--build-context", &bc]);
    assert_eq!(
        explained(&b),
        [(
            "[3/3] RUN echo $MODE > /m".to_string(),
            vec!["ENV MODE changed: fast → slow".to_string()]
        )]
    );
}

/// Every file under `dir`, as bytes, with its path.
fn all_files(dir: &Path, out: &mut Vec<(std::path::PathBuf, Vec<u8>)>) {
    for e in std::fs::read_dir(dir).unwrap() {
        let e = e.unwrap();
        let t = e.file_type().unwrap();
        if t.is_dir() {
            all_files(&e.path(), out);
        } else if t.is_file() {
            out.push((e.path(), std::fs::read(e.path()).unwrap()));
        }
    }
}

#[test]
fn a_secret_never_reaches_the_store() {
    let Some((s, bc)) = run_setup() else { return };
    let secret = "s3cr3t-0d1f9a7c-explain";
    let ctx = context(&[(
        "Dockerfile",
        "FROM busybox\nRUN --mount=type=secret,id=tok test -s /run/secrets/tok\n",
        0o644,
    )]);
    let b = s.build_env(
        ctx.path(),
        &[
            "--explain",
            "--build-context",
            &bc,
            "--secret",
            "id=tok,env=STRATA_TEST_TOK",
        ],
        &[("STRATA_TEST_TOK", secret)],
    );
    assert_eq!(
        why(
            &b,
            "[2/2] RUN --mount=type=secret,id=tok test -s /run/secrets/tok"
        ),
        ["never built before"]
    );
    let mut files = Vec::new();
    all_files(s.root(), &mut files);
    assert!(files.iter().any(|(p, _)| p.ends_with("meta.db")));
    let needle = secret.as_bytes();
    for (p, bytes) in &files {
        let in_db = bytes.windows(needle.len()).any(|w| w == needle);
        assert!(!in_db, "the secret is in {}", p.display());
    }
}

#[test]
fn build_args_named_like_secrets_are_hidden() {
    let Some((s, bc)) = run_setup() else { return };
    let ctx = context(&[(
        "Dockerfile",
        "FROM busybox\nARG API_TOKEN\nRUN test -n \"$API_TOKEN\"\n",
        0o644,
    )]);
    let build = |v: &str| {
        let arg = format!("API_TOKEN={v}");
        explain_build(
            &s,
            ctx.path(),
            &["--build-context", &bc, "--build-arg", &arg],
        )
    };
    build("tok-4f1e9a0b");
    let b = build("tok-77c3d2e5");
    assert_eq!(
        why(&b, "[3/3] RUN test -n \"$API_TOKEN\""),
        ["build-arg API_TOKEN changed: (hidden) → (hidden)"]
    );
    // The history (in meta.db) holds neither value.
    for name in ["meta.db", "meta.db-wal"] {
        let bytes = std::fs::read(s.root().join(name)).unwrap_or_default();
        for v in ["tok-4f1e9a0b", "tok-77c3d2e5"] {
            let found = bytes.windows(v.len()).any(|w| w == v.as_bytes());
            assert!(!found, "{v} is in {name}");
        }
    }
}

#[test]
fn a_failed_step_is_explained_and_recorded_as_failed() {
    let Some((s, bc)) = run_setup() else { return };
    let df = |code: u8| format!("FROM busybox\nENV CODE={code}\nRUN exit $CODE\n");
    let ctx = context(&[("Dockerfile", &df(0), 0o644)]);
    explain_build(&s, ctx.path(), &["--build-context", &bc]);
    write(ctx.path(), "Dockerfile", &df(1));
    let mut c = s.cmd();
    c.args([
        "build",
        "--progress",
        "json",
        "--explain",
        "--build-context",
        &bc,
    ])
    .arg(ctx.path());
    let out = c.output().unwrap();
    let b = Build::parse(
        &out.stdout,
        String::from_utf8_lossy(&out.stderr).into_owned(),
    );
    assert_eq!(out.status.code(), Some(1), "{}", b.stderr);
    assert_eq!(why(&b, "[3/3] RUN exit $CODE"), ["ENV CODE changed: 0 → 1"]);
    let id = b
        .stderr
        .lines()
        .find_map(|l| l.strip_prefix("build id: "))
        .unwrap();
    let text = stdout(s.ok(&["cache", "explain", id]));
    assert!(
        text.contains("failed): 1 step(s) ran, 1 cached, 1 failed"),
        "{text}"
    );
    assert!(
        text.contains("[3/3] RUN exit $CODE (failed)\n  ENV CODE changed: 0 → 1\n"),
        "{text}"
    );
}
