//! `cargo xtask bench buildkit`: strata beside BuildKit (Docker's builder, started here
//! with `dockerd --bridge=none --iptables=false`) on a generated context of 30,000
//! files of 1–8 KiB plus 4 × 256 MiB: cold build, no-op rebuild, one small file changed;
//! strata's peak RSS; then export compression throughput against `pigz -p2` and
//! `zstd -T2` on the same bytes, for that layer and for one of the small (text) files
//! alone. Prints figures and ratios; asserts nothing.

use std::io::Write;
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{bail, Result};

use crate::bench_util::{drop_caches, timed_rss, Dockerd};
use crate::system::{self, root};

const SMALL_FILES: usize = 30_000;
const BIG_FILES: usize = 4;
const BIG_SIZE: usize = 256 << 20;

pub fn run() -> Result<()> {
    system::ensure_packages(&["docker.io", "pigz", "zstd"])?;
    system::run("cargo", &["build", "--release", "-p", "strata"])?;
    let work = root().join("target/bench-buildkit");
    let ctx = work.join("ctx");
    if !ctx.join("big-3.bin").exists() {
        eprintln!("generating the context in {} …", ctx.display());
        generate(&ctx)?;
    }
    std::fs::write(ctx.join("Dockerfile"), "FROM scratch\nCOPY . /ctx/\n")?;
    // The export again on text alone (the small files): compressible bytes.
    std::fs::write(
        ctx.join("Dockerfile.text"),
        "FROM scratch\nCOPY src /ctx/src/\n",
    )?;

    // The previous run's stores go aside now and are deleted after the measurements:
    // ext4 without a journal (this VM's root) keeps a freed inode out of use for a while
    // and scans past each one on every create, so deleting 60,000 files right before a
    // cold build made its file creations crawl (perf: up to half of strata's cold CPU
    // in recently_deleted()); BuildKit's store, deleted when dockerd starts, likewise.
    let sroot = work.join("strata-root");
    let trash = work.join("trash");
    for (i, old) in [&sroot, &work.join("docker")].into_iter().enumerate() {
        if old.exists() {
            std::fs::create_dir_all(&trash)?;
            let aside = trash.join(format!("{}-{i}", std::process::id()));
            std::fs::rename(old, aside)?;
        }
    }
    let result = measure(&work, &ctx, &sroot);
    let _ = std::fs::remove_dir_all(&trash);
    result
}

fn measure(work: &Path, ctx: &Path, sroot: &Path) -> Result<()> {
    let small = ctx.join("src/d000/f00000.txt");
    let strata = root().join("target/release/strata");
    // strata
    let s_build = || -> Result<(Duration, u64)> {
        timed_rss(
            Command::new(&strata)
                .arg("--root")
                .arg(sroot)
                .args(["build", "--progress", "quiet", "-t", "bench:latest"])
                .arg(ctx),
        )
    };
    drop_caches();
    let (s_cold, rss_cold) = s_build()?;
    let (s_noop, rss_noop) = s_build()?;
    touch_content(&small, "strata")?;
    let (s_one, rss_one) = s_build()?;
    println!(
        "strata: cold {:.2}s, no-op {:.2}s, one file changed {:.2}s",
        s_cold.as_secs_f64(),
        s_noop.as_secs_f64(),
        s_one.as_secs_f64()
    );

    // BuildKit
    let docker = Dockerd::start(&work.join("docker"))?;
    let d_build = || -> Result<Duration> {
        let t = Instant::now();
        let st = docker
            .build()
            .args(["-t", "bench:latest"])
            .arg(ctx)
            .stdout(Stdio::null())
            .status()?;
        if !st.success() {
            bail!("docker build failed");
        }
        Ok(t.elapsed())
    };
    drop_caches();
    let b_cold = d_build()?;
    let b_noop = d_build()?;
    touch_content(&small, "buildkit")?;
    let b_one = d_build()?;
    drop(docker);

    println!("\nbuild of FROM scratch + COPY . /ctx/ ({SMALL_FILES} files of 1-8 KiB + {BIG_FILES} x 256 MiB)");
    println!(
        "{:<22} {:>10} {:>10} {:>8} {:>8}",
        "", "strata", "BuildKit", "ratio", "target"
    );
    for (name, s, b, target) in [
        ("cold", s_cold, b_cold, 0.25),
        ("no-op rebuild", s_noop, b_noop, 0.25),
        ("one file changed", s_one, b_one, 0.10),
    ] {
        println!(
            "{name:<22} {:>9.2}s {:>9.2}s {:>7.3}x {:>7.2}x",
            s.as_secs_f64(),
            b.as_secs_f64(),
            s.as_secs_f64() / b.as_secs_f64(),
            target
        );
    }
    println!(
        "strata peak RSS: cold {} MiB, no-op {} MiB, one file {} MiB (target <= 150 MiB)",
        rss_cold / 1024,
        rss_noop / 1024,
        rss_one / 1024
    );

    compression(&strata, sroot, ctx, work, "Dockerfile")?;
    compression(&strata, sroot, ctx, work, "Dockerfile.text")?;
    Ok(())
}

/// Deterministic content: xorshift bytes (incompressible big files, text-ish small ones).
fn generate(ctx: &Path) -> Result<()> {
    let mut x: u64 = 0x9E37_79B9_7F4A_7C15;
    let mut next = || {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        x
    };
    for i in 0..SMALL_FILES {
        let dir = ctx.join(format!("src/d{:03}", i / 100));
        std::fs::create_dir_all(&dir)?;
        let len = 1024 + (next() % 7168) as usize;
        let mut s = String::with_capacity(len);
        while s.len() < len {
            s.push_str(&format!("{:016x} line of file {i}\n", next()));
        }
        s.truncate(len);
        std::fs::write(dir.join(format!("f{i:05}.txt")), s)?;
    }
    for b in 0..BIG_FILES {
        let mut f = std::io::BufWriter::with_capacity(
            1 << 20,
            std::fs::File::create(ctx.join(format!("big-{b}.bin")))?,
        );
        for _ in 0..BIG_SIZE / 8 {
            f.write_all(&next().to_le_bytes())?;
        }
        f.flush()?;
    }
    Ok(())
}

fn touch_content(p: &Path, tag: &str) -> Result<()> {
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)?
        .as_nanos();
    std::fs::write(p, format!("changed by {tag} at {nanos}\n"))?;
    Ok(())
}

/// Moves `path` (if it exists) into `work/trash`, which [`run`] deletes after every
/// measurement: deleting GBs and tens of thousands of files between timed steps slows
/// the next ones down on this VM's journal-less ext4 (see [`run`]).
fn aside(work: &Path, path: &Path) -> Result<()> {
    if path.exists() {
        let trash = work.join("trash");
        std::fs::create_dir_all(&trash)?;
        static N: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);
        let n = N.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let name = path.file_name().unwrap_or_default().to_string_lossy();
        std::fs::rename(
            path,
            trash.join(format!("{}-{n}-{name}", std::process::id())),
        )?;
    }
    Ok(())
}

/// Export throughput: strata writing an OCI archive of the cached image (gzip, then
/// zstd) against pigz -p2 / zstd -T2 compressing the same layer tar; the image is
/// `dockerfile`'s (in `ctx`; its layer tar comes from `sroot`), exported from fresh roots.
fn compression(
    strata: &Path,
    sroot: &Path,
    ctx: &Path,
    work: &Path,
    dockerfile: &str,
) -> Result<()> {
    let tar = work.join("layer.tar");
    aside(work, &tar)?;
    let file = ctx.join(dockerfile);
    let st = Command::new(strata)
        .arg("--root")
        .arg(sroot)
        .args(["build", "--progress", "quiet", "-f"])
        .arg(&file)
        .arg("-o")
        .arg(format!("type=tar,dest={}", tar.display()))
        .arg(ctx)
        .stdout(Stdio::null())
        .status()?;
    if !st.success() {
        bail!("strata -o type=tar failed");
    }
    let bytes = std::fs::metadata(&tar)?.len() as f64;
    let mb = |d: Duration| bytes / d.as_secs_f64() / 1e6;
    let shell = |c: &str| -> Result<Duration> {
        let t = Instant::now();
        let s = Command::new("sh").arg("-c").arg(c).status()?;
        if !s.success() {
            bail!("{c} failed");
        }
        Ok(t.elapsed())
    };
    let pigz = shell(&format!("pigz -p2 -6 -c {} > /dev/null", tar.display()))?;
    let zstd = shell(&format!("zstd -q -T2 -3 -c {} > /dev/null", tar.display()))?;
    // Like for like: what any exporter must do with the compressed bytes, hash them
    // (the blob's digest) and write them to a file.
    let keep = |tool: &str| {
        let kept = work.join("kept.blob");
        aside(work, &kept)?;
        shell(&format!(
            "{tool} -c {} | tee {} | sha256sum > /dev/null",
            tar.display(),
            kept.display()
        ))
    };
    let pigz_kept = keep("pigz -p2 -6")?;
    let zstd_kept = keep("zstd -q -T2 -3")?;
    let export = |compression: &str| -> Result<Duration> {
        // A fresh root each time, so the compression memo cannot help; the previous
        // run's root and archive go aside before the warm-up, not deleted.
        let r = work.join(format!("export-root-{compression}"));
        let out = work.join(format!("out-{compression}.tar"));
        aside(work, &r)?;
        aside(work, &out)?;
        let s = Command::new(strata)
            .arg("--root")
            .arg(&r)
            .args(["build", "--progress", "quiet", "-f"])
            .arg(&file)
            .arg(ctx)
            .stdout(Stdio::null())
            .status()?;
        if !s.success() {
            bail!("warm-up build failed");
        }
        // The warm-up's 1.2 GB reach the disk before the timed export, which would
        // otherwise wait behind their writeback (the tools compress a tar whose pages
        // are all clean).
        Command::new("sync").status()?;
        let t = Instant::now();
        let s = Command::new(strata)
            .arg("--root")
            .arg(&r)
            .args(["build", "--progress", "quiet", "-f"])
            .arg(&file)
            .arg("-o")
            .arg(format!(
                "type=oci,dest={},compression={compression}",
                out.display()
            ))
            .arg(ctx)
            .stdout(Stdio::null())
            .status()?;
        if !s.success() {
            bail!("export failed");
        }
        Ok(t.elapsed())
    };
    let s_gzip = export("gzip")?;
    let s_zstd = export("zstd")?;
    // Measured: the GBs this made are deleted with the trash, after the run.
    for c in ["gzip", "zstd"] {
        aside(work, &work.join(format!("export-root-{c}")))?;
        aside(work, &work.join(format!("out-{c}.tar")))?;
    }
    aside(work, &work.join("kept.blob"))?;
    aside(work, &tar)?;
    println!(
        "\nexport of the {:.0} MB layer of {dockerfile} to an OCI tar (cache warm, nothing memoised)",
        bytes / 1e6
    );
    println!(
        "  gzip: strata {:.0} MB/s, pigz -p2 {:.0} MB/s, ratio {:.2}x (target >= 0.75x)",
        mb(s_gzip),
        mb(pigz),
        pigz.as_secs_f64() / s_gzip.as_secs_f64()
    );
    println!(
        "  zstd: strata {:.0} MB/s, zstd -T2 {:.0} MB/s, ratio {:.2}x (target >= 0.80x)",
        mb(s_zstd),
        mb(zstd),
        zstd.as_secs_f64() / s_zstd.as_secs_f64()
    );
    println!(
        "  against the tools also hashing and writing their output (`| tee FILE | sha256sum`): \
         gzip {:.0} MB/s, ratio {:.2}x; zstd {:.0} MB/s, ratio {:.2}x",
        mb(pigz_kept),
        pigz_kept.as_secs_f64() / s_gzip.as_secs_f64(),
        mb(zstd_kept),
        zstd_kept.as_secs_f64() / s_zstd.as_secs_f64()
    );
    Ok(())
}
