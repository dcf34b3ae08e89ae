//! `strata build --check` through the real binary: warnings, errors with a caret,
//! suggestions, exit codes.

use std::path::Path;

use assert_cmd::Command;
use predicates::prelude::*;

fn strata() -> Command {
    Command::cargo_bin("strata").unwrap()
}

fn context(dockerfile: &str) -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("Dockerfile"), dockerfile).unwrap();
    dir
}

#[test]
fn clean_dockerfile_exits_zero() {
    let ctx = context("FROM scratch\nCOPY a /a\nCMD [\"/a\"]\n");
    strata()
        .args(["build", "--check"])
        .arg(ctx.path())
        .assert()
        .success()
        .stdout("")
        .stderr(predicate::str::contains("no warnings found"));
}

#[test]
fn warnings_are_file_line_rule_message_and_exit_one() {
    let ctx = context("FROM scratch AS Build\nCMD echo hi\nMAINTAINER me\n");
    let df = ctx.path().join("Dockerfile");
    let df = df.display();
    strata()
        .args(["build", "--check"])
        .arg(ctx.path())
        .assert()
        .code(1)
        .stdout(format!(
            "{df}:1: StageNameCasing: Stage name 'Build' should be lowercase\n\
             {df}:2: JSONArgsRecommended: JSON arguments recommended for CMD to prevent unintended behavior related to OS signals\n\
             {df}:3: MaintainerDeprecated: Maintainer instruction is deprecated in favor of using label\n"
        ));
}

#[test]
fn check_directive_skips_rules() {
    let ctx = context("# check=skip=JSONArgsRecommended,MaintainerDeprecated\nFROM scratch\nCMD echo hi\nMAINTAINER me\n");
    strata()
        .args(["build", "--check"])
        .arg(ctx.path())
        .assert()
        .success();
}

#[test]
fn unknown_instruction_points_at_the_line_with_a_suggestion() {
    let ctx = context("FROM scratch\n\n  COPPY a b\n");
    strata()
        .args(["build", "--check", "-f"])
        .arg(ctx.path().join("Dockerfile"))
        .arg(ctx.path())
        .assert()
        .code(1)
        .stderr(predicate::str::contains(
            "Dockerfile:3: unknown instruction: COPPY (did you mean COPY?)",
        ))
        .stderr(predicate::str::contains(
            " 3 |   COPPY a b\n   |   ^^^^^^^^^\n",
        ));
}

#[test]
fn unknown_target_lists_the_stages() {
    let ctx = context("FROM scratch AS build\nFROM scratch AS test\n");
    strata()
        .args(["build", "--check", "--target", "prod"])
        .arg(ctx.path())
        .assert()
        .code(1)
        .stderr(predicate::str::contains(
            "target stage \"prod\" could not be found; stages: build, test",
        ))
        .stderr(predicate::str::contains(
            "hint: pass one of: --target build | --target test",
        ));
}

#[test]
fn usage_errors_exit_two() {
    strata()
        .args(["build", "--check", "--bogus", "."])
        .assert()
        .code(2);
    strata()
        .args(["build", "--check", "/definitely/not/here"])
        .assert()
        .code(2)
        .stderr(predicate::str::contains("is not a directory"));
    let ctx = context("FROM scratch\n");
    strata()
        .args(["build", "--check", "--platform", "linux"])
        .arg(ctx.path())
        .assert()
        .code(2);
    strata()
        .args(["build", "--check", "--build-context", "novalue"])
        .arg(ctx.path())
        .assert()
        .code(2);
}

#[test]
fn build_args_reach_from_lines() {
    // With the default an undefined image would fail; --build-arg switches it to scratch.
    let ctx = context("ARG BASE=busybox\nFROM $BASE\nCOPY a /a\n");
    strata()
        .args([
            "debug",
            "graph",
            "--format",
            "json",
            "--build-arg",
            "BASE=scratch",
        ])
        .arg(ctx.path())
        .assert()
        .success()
        .stdout(predicate::str::contains("\"kind\": \"scratch\""))
        .stdout(predicate::str::contains("busybox").not());
}

#[test]
fn dockerfile_specific_dockerignore_wins() {
    let ctx = context("# check=experimental=CopyIgnoredFile\nFROM scratch\nCOPY a.txt b.txt /\n");
    std::fs::write(ctx.path().join(".dockerignore"), "a.txt\n").unwrap();
    std::fs::write(ctx.path().join("Dockerfile.dockerignore"), "b.txt\n").unwrap();
    strata()
        .args(["build", "--check"])
        .arg(ctx.path())
        .assert()
        .code(1)
        .stdout(predicate::str::contains(
            "CopyIgnoredFile: Attempting to COPY file \"b.txt\"",
        ))
        .stdout(predicate::str::contains("a.txt").not());
}

#[test]
fn stdin_dockerfile() {
    let ctx = tempfile::tempdir().unwrap();
    strata()
        .args(["build", "--check", "-f", "-"])
        .arg(ctx.path())
        .write_stdin("FROM scratch\nENV A 1\n")
        .assert()
        .code(1)
        .stdout("Dockerfile:2: LegacyKeyValueFormat: \"ENV key=value\" should be used instead of legacy \"ENV key value\" format\n");
}

#[test]
fn bundled_example_is_clean() {
    let example = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../testdata/example");
    strata()
        .args(["build", "--check"])
        .arg(&example)
        .assert()
        .success();
}
