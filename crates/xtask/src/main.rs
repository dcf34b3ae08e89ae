//! `cargo xtask`: the project's set-up, test, example and benchmark commands, so the
//! README's two commands work on a fresh machine and the top level stays clean.
//!
//! - `cargo xtask test`: installs the system packages the tests need (as root, with
//!   apt-get, idempotently), runs the whole test suite, then the fuzzers for a bounded time.
//! - `cargo xtask example`: builds strata and runs the bundled example.
//! - `cargo xtask bench`: prints benchmark figures and ratios against their targets.

#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

mod bench;
mod bench_buildkit;
mod bench_cache;
mod bench_registry;
mod bench_run;
mod bench_util;
mod example;
mod system;

use anyhow::{bail, Result};

fn main() -> Result<()> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    match args.first().map(String::as_str) {
        Some("test") => test(&args[1..]),
        Some("example") => example::run(),
        Some("bench") => bench::run(&args[1..]),
        _ => bail!("usage: cargo xtask <test|example|bench>\n  test     set up and run the whole test suite (add --no-fuzz to skip fuzzing)\n  example  build and run the bundled example\n  bench    print benchmark figures (bench [frontend|buildkit|run|registry|cache])"),
    }
}

fn test(args: &[String]) -> Result<()> {
    system::ensure_packages(system::TEST_PACKAGES)?;
    system::run("cargo", &["build", "--workspace", "--all-targets"])?;
    system::run("cargo", &["test", "--workspace", "--no-fail-fast"])?;
    // The runtime matrix: the suite above runs RUN steps with `--runtime auto`, which
    // is crun wherever crun works; the RUN test files again with runc.
    system::run_env(
        &[("STRATA_RUNTIME", "runc")],
        "cargo",
        &[
            "test",
            "-p",
            "strata",
            "--no-fail-fast",
            "--test",
            "run",
            "--test",
            "run_mount",
            "--test",
            "run_semantics",
        ],
    )?;
    if !args.iter().any(|a| a == "--no-fuzz") {
        let script = system::root().join("crates/fuzz/run.sh");
        if script.exists() {
            system::run("bash", &[script.to_str().unwrap()])?;
        }
    }
    Ok(())
}
