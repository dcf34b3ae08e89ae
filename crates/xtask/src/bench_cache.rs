//! `cargo xtask bench cache`: the registry build cache (`--cache-to/--cache-from
//! type=registry,mode=max`) on a loopback Debian `docker-registry`, for two workloads:
//!
//! - deep: busybox + 40 RUN steps, each hashing 2 MiB of random bytes into a file;
//! - bigctx: `FROM scratch`, `COPY . /ctx/` of 5,000 files of 1–8 KiB + 2 × 64 MiB.
//!
//! For each: a cold build in a fresh root (no cache flags), the same with
//! `--cache-to` (the first export), a fresh root with `--cache-from` (target ≥ 5×
//! faster than cold; no output, so the hits' layers are never downloaded), and a
//! no-change rebuild there with `--cache-from REF --cache-to REF` (its export time as
//! strata reports it: target < 1 s); then `--cache-from` with `-t` into another fresh
//! root, which keeps the image and so downloads and extracts its layers, and with
//! `--push` (the CI flow) into a third, which pushes from the cache's blobs.
//!
//! BuildKit beside it (Debian's docker.io 20.10, a private dockerd, busybox loaded from
//! strata's docker archive): its `docker` builder cannot export a registry cache
//! (`type=registry` needs a `docker-container` builder, whose image this machine cannot
//! pull), so it runs with its inline cache (`BUILDKIT_INLINE_CACHE=1`, mode=min, which
//! for these single-stage workloads holds every step): cold build, push, then
//! `docker builder prune -af` + `rmi` and a `--cache-from IMAGE` build.
//! Prints figures; asserts nothing. `STRATA_BIN=PATH` measures that binary.

use std::io::{BufWriter, Write};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use anyhow::{Context, Result};

use crate::bench_registry::{fresh, Registry};
use crate::bench_util::{timed, timed_stderr, Dockerd};
use crate::system::{self, root};

pub fn run() -> Result<()> {
    system::ensure_packages(&["docker-registry", "busybox-static", "docker.io"])?;
    let bin = match std::env::var_os("STRATA_BIN") {
        Some(b) => PathBuf::from(b),
        None => {
            system::run("cargo", &["build", "--release", "-p", "strata"])?;
            root().join("target/release/strata")
        }
    };
    let work = root().join("target/bench-cache");
    std::fs::create_dir_all(&work)?;
    // The previous run's roots go aside now and are deleted after the measurements,
    // never right before a timed build: ext4 without a journal (this VM's root) keeps
    // freed inodes out of use for a minute or more and scans past each on every create
    // (perf of a `--cache-from` bigctx build right after deleting a root: 30-40% of its
    // CPU in recently_deleted()).
    let trash = work.join("trash");
    for e in std::fs::read_dir(&work)? {
        let e = e?;
        if e.file_name().to_string_lossy().starts_with("root-") {
            std::fs::create_dir_all(&trash)?;
            let aside = format!("{}-{}", std::process::id(), e.file_name().to_string_lossy());
            std::fs::rename(e.path(), trash.join(aside))?;
        }
    }
    let result = measure(&bin, &work);
    let _ = std::fs::remove_dir_all(&trash);
    result
}

fn measure(bin: &Path, work: &Path) -> Result<()> {
    let layout = work.join("busybox-layout");
    crate::example::busybox_layout(&layout)?;
    let reg = Registry::start(&work.join("registry"))?;
    let bb = format!("busybox=oci-layout://{}:latest", layout.display());

    let deep = work.join("deep");
    fresh(&deep)?;
    let mut df = String::from("FROM busybox\n");
    for i in 0..40 {
        df.push_str(&format!(
            "RUN head -c 2097152 /dev/urandom > /tmp/r && sha256sum /tmp/r > /step{i} && rm /tmp/r\n"
        ));
    }
    std::fs::write(deep.join("Dockerfile"), df)?;
    let bigctx = work.join("bigctx");
    generate_bigctx(&bigctx)?;

    println!("\nregistry build cache (mode=max) on {}", reg.addr);
    println!(
        "{:<8} {:>9} {:>14} {:>12} {:>8} {:>16} {:>12} {:>7} {:>10} {:>8} {:>10}",
        "",
        "cold",
        "cold+cache-to",
        "cache-from",
        "speedup",
        "no-change export",
        "(whole run)",
        "CACHED",
        "with -t",
        "speedup",
        "--push"
    );
    for (name, ctx) in [("deep", &deep), ("bigctx", &bigctx)] {
        let r = format!("{}/bench/{name}:cache", reg.addr);
        let to = format!("type=registry,ref={r},mode=max");
        let build = |root: &Path, extra: &[&str]| -> Result<(Duration, String)> {
            timed_stderr(
                Command::new(bin)
                    .arg("--root")
                    .arg(root)
                    .args(["build", "--progress", "plain", "--build-context", &bb])
                    .args(extra)
                    .arg(ctx)
                    .env("NO_COLOR", "1"),
            )
        };
        let (cold, _) = build(&fresh(&work.join(format!("root-{name}-cold")))?, &[])?;
        let (first, _) = build(
            &fresh(&work.join(format!("root-{name}-export")))?,
            &["--cache-to", &to],
        )?;
        let importer = fresh(&work.join(format!("root-{name}-import")))?;
        let (imported, log) = build(&importer, &["--cache-from", &r])?;
        let hits = cached(&log);
        // The same into another fresh root with `-t`: the image is kept in the store, so
        // its layers are downloaded and extracted.
        let (kept, _) = build(
            &fresh(&work.join(format!("root-{name}-kept")))?,
            &["--cache-from", &r, "-t", "kept"],
        )?;
        // And the CI flow: `--cache-from` + `--push` from a fresh root (the image is
        // pushed from the cache's blobs, mounted by the registry; nothing is fetched).
        let app = format!("{}/bench/{name}:pushed", reg.addr);
        let (pushed, _) = build(
            &fresh(&work.join(format!("root-{name}-push")))?,
            &["--cache-from", &r, "--push", "-t", &app],
        )?;
        let (again, log) = build(&importer, &["--cache-from", &r, "--cache-to", &to])?;
        let export = exported_in(&log).context("no export line")?;
        println!(
            "{name:<8} {:>8.2}s {:>13.2}s {:>11.2}s {:>7.1}x {:>15.3}s {:>11.2}s {hits:>7} {:>9.2}s {:>7.1}x {:>9.2}s",
            cold.as_secs_f64(),
            first.as_secs_f64(),
            imported.as_secs_f64(),
            cold.as_secs_f64() / imported.as_secs_f64(),
            export,
            again.as_secs_f64(),
            kept.as_secs_f64(),
            cold.as_secs_f64() / kept.as_secs_f64(),
            pushed.as_secs_f64(),
        );
    }
    println!("targets: --cache-from rebuild >= 5x faster than cold; no-change export < 1 s");
    println!(
        "cache-from: no output, the result stays in the cache (layers never downloaded); \
         with -t: the image is kept, its layers downloaded and extracted; \
         --push: pushed from the cache's blobs (mounted), nothing fetched"
    );

    let docker = Dockerd::start(&work.join("docker"))?;
    load_busybox(bin, &bb, &docker, work)?;
    println!(
        "\nBuildKit (dockerd {}), inline cache through the same registry",
        docker.version()
    );
    println!(
        "{:<8} {:>9} {:>12} {:>8} {:>7}",
        "", "cold", "cache-from", "speedup", "CACHED"
    );
    for (name, ctx) in [("deep", &deep), ("bigctx", &bigctx)] {
        let image = format!("{}/bench/buildkit-{name}:v1", reg.addr);
        docker_ok(&docker, &["builder", "prune", "-af"])?;
        let cold = timed(
            docker
                .build()
                .args(["-t", &image, "--build-arg", "BUILDKIT_INLINE_CACHE=1"])
                .arg(ctx),
        )?;
        docker_ok(&docker, &["push", &image])?;
        docker_ok(&docker, &["builder", "prune", "-af"])?;
        docker_ok(&docker, &["rmi", &image])?;
        let (imported, log) = timed_stderr(
            docker
                .cmd()
                .env("DOCKER_BUILDKIT", "1")
                .args(["build", "--network=host", "--progress", "plain"])
                .args(["--cache-from", &image])
                .arg(ctx),
        )?;
        println!(
            "{name:<8} {:>8.2}s {:>11.2}s {:>7.1}x {:>7}",
            cold.as_secs_f64(),
            imported.as_secs_f64(),
            cold.as_secs_f64() / imported.as_secs_f64(),
            cached(&log)
        );
    }
    Ok(())
}

fn docker_ok(docker: &Dockerd, args: &[&str]) -> Result<()> {
    timed(docker.cmd().args(args)).map(drop)
}

/// `busybox:latest` in dockerd, from strata's docker archive of the same layout.
fn load_busybox(bin: &Path, bb: &str, docker: &Dockerd, work: &Path) -> Result<()> {
    let ctx = fresh(&work.join("busybox-ctx"))?;
    std::fs::write(ctx.join("Dockerfile"), "FROM busybox\n")?;
    let tar = work.join("busybox-docker.tar");
    timed(
        Command::new(bin)
            .arg("--root")
            .arg(fresh(&work.join("root-busybox"))?)
            .args(["build", "--progress", "quiet", "--build-context", bb, "-o"])
            .arg(format!(
                "type=docker,dest={},name=busybox:latest",
                tar.display()
            ))
            .arg(&ctx),
    )?;
    timed(docker.cmd().arg("load").arg("-i").arg(&tar)).map(drop)
}

/// Steps a `--progress plain` log shows as `CACHED` (strata's and BuildKit's alike).
fn cached(log: &str) -> usize {
    log.lines().filter(|l| l.ends_with(" CACHED")).count()
}

/// The seconds of strata's `exported cache to …: … in 0.02s` line.
fn exported_in(stderr: &str) -> Option<f64> {
    let line = stderr
        .lines()
        .find(|l| l.starts_with("exported cache to"))?;
    line.rsplit(" in ")
        .next()?
        .trim_end_matches('s')
        .parse()
        .ok()
}

/// 5,000 text files of 1–8 KiB and 2 × 64 MiB of random bytes (kept between runs).
fn generate_bigctx(ctx: &Path) -> Result<()> {
    std::fs::create_dir_all(ctx)?;
    std::fs::write(ctx.join("Dockerfile"), "FROM scratch\nCOPY . /ctx/\n")?;
    let mut x: u64 = 0x9E37_79B9_7F4A_7C15;
    let mut next = move || {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        x
    };
    if !ctx.join("src/d049/f04999.txt").exists() {
        for i in 0..5_000 {
            let dir = ctx.join(format!("src/d{:03}", i / 100));
            std::fs::create_dir_all(&dir)?;
            let len = 1024 + (next() % 7168) as usize;
            let mut s = String::with_capacity(len + 64);
            while s.len() < len {
                s.push_str(&format!("{:016x} line of file {i}\n", next()));
            }
            s.truncate(len);
            std::fs::write(dir.join(format!("f{i:05}.txt")), s)?;
        }
    }
    for b in 0..2 {
        let path = ctx.join(format!("big-{b}.bin"));
        if std::fs::metadata(&path).is_ok_and(|m| m.len() == 64 << 20) {
            continue;
        }
        let mut f = BufWriter::with_capacity(1 << 20, std::fs::File::create(&path)?);
        for _ in 0..(64 << 20) / 8 {
            f.write_all(&next().to_le_bytes())?;
        }
        f.flush()?;
    }
    Ok(())
}
