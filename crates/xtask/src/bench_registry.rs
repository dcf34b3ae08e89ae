//! `cargo xtask bench registry`: pushing and pulling a 1 GiB image (four layers: two of
//! incompressible bytes, two of compressible text) to and from a Docker distribution
//! registry (Debian's `docker-registry`) on 127.0.0.1, strata against `skopeo copy`:
//!
//! - push: `strata push` of the built image (its gzip blobs already made by an OCI
//!   export of the same build, as `build --push` would have) vs `skopeo copy` from that
//!   OCI layout; each into a fresh registry. Target ≤ 0.5× skopeo.
//! - re-push when the registry has every blob: target < 0.3 s.
//! - pull into a fresh store vs `skopeo copy docker://… oci:…` into a fresh layout.
//!   Target ≤ 0.7× skopeo.
//!
//! Prints figures, ratios and targets; asserts nothing. The machine is shared, so each
//! figure is the median of `BENCH_REPS` (default 3) repetitions, best in brackets.
//! `STRATA_BIN=PATH` measures that binary instead of building target/release/strata.

use std::io::{BufWriter, Write};
use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};

use crate::bench_util::{timed, timed_stderr, Samples};
use crate::system::{self, root};

const MIB: u64 = 1 << 20;
/// (file, MiB, incompressible?): 1 GiB in all.
const LAYERS: [(&str, u64, bool); 4] = [
    ("random-a", 384, true),
    ("text-a", 256, false),
    ("random-b", 256, true),
    ("text-b", 128, false),
];
const NAME: &str = "bench/registry:1";

pub fn run() -> Result<()> {
    system::ensure_packages(&["docker-registry", "skopeo"])?;
    let bin = match std::env::var_os("STRATA_BIN") {
        Some(b) => PathBuf::from(b),
        None => {
            system::run("cargo", &["build", "--release", "-p", "strata"])?;
            root().join("target/release/strata")
        }
    };
    let reps: usize = std::env::var("BENCH_REPS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(3)
        .max(1);
    let work = root().join("target/bench-registry");
    std::fs::create_dir_all(&work)?;
    let ctx = work.join("context");
    generate_context(&ctx)?;
    let strata = |root: &Path| {
        let mut c = Command::new(&bin);
        c.arg("--root").arg(root).env("NO_COLOR", "1");
        c
    };

    // The image, built once; the OCI export compresses its layers (gzip, recorded in
    // the store, so `strata push` reuses the same blobs) and is skopeo's source.
    let store = fresh(&work.join("root-push"))?;
    let layout = fresh(&work.join("layout"))?;
    let t = Instant::now();
    timed(
        strata(&store)
            .args(["build", "--progress", "quiet", "-t", NAME])
            .arg(&ctx),
    )?;
    timed(
        strata(&store)
            .args(["build", "--progress", "quiet", "-t", NAME, "-o"])
            .arg(format!("type=oci,dest={},tar=false", layout.display()))
            .arg(&ctx),
    )?;
    let size = dir_size(&layout.join("blobs"))?;
    println!(
        "\nregistry push/pull: strata {} vs {}; image of {} layers, {} MiB uncompressed, {} MiB \
         as gzip blobs (built and exported in {:.1?})",
        bin.display(),
        crate::bench_run::first_line("skopeo", &["--version"]),
        LAYERS.len(),
        LAYERS.iter().map(|l| l.1).sum::<u64>(),
        size / MIB,
        t.elapsed()
    );
    println!(
        "{} cores, load average {} at start; median of {reps}, best in brackets",
        std::thread::available_parallelism().map_or(1, |n| n.get()),
        crate::bench_run::loadavg()
    );
    // The layout names the image by its tag (`org.opencontainers.image.ref.name`).
    let tag = NAME.rsplit(':').next().unwrap_or(NAME);
    let oci_src = format!("oci:{}:{tag}", layout.display());

    let [mut s_push, mut k_push, mut s_repush, mut k_repush, mut s_pull, mut k_pull] =
        std::array::from_fn::<Measured, 6, _>(|_| Measured::default());
    for _ in 0..reps {
        let reg = Registry::start(&work.join("registry"))?;
        let dest = format!("{}/s/img:1", reg.addr);
        push_into(
            &mut s_push,
            strata(&store).args(["push", "-q", NAME, &dest]),
        )?;
        push_into(
            &mut s_repush,
            strata(&store).args(["push", "-q", NAME, &dest]),
        )?;
        let pulled = fresh(&work.join("root-pull"))?;
        push_into(&mut s_pull, strata(&pulled).args(["pull", "-q", &dest]))?;
        let out = fresh(&work.join("skopeo-pulled"))?;
        push_into(
            &mut k_pull,
            Command::new("skopeo").args([
                "copy",
                "--src-tls-verify=false",
                &format!("docker://{dest}"),
                &format!("oci:{}:img", out.display()),
            ]),
        )?;
        drop(reg);

        let reg = Registry::start(&work.join("registry"))?;
        let dest = format!("docker://{}/k/img:1", reg.addr);
        let skopeo_push = || {
            let mut c = Command::new("skopeo");
            c.args(["copy", "--dest-tls-verify=false", &oci_src, &dest]);
            c
        };
        push_into(&mut k_push, &mut skopeo_push())?;
        push_into(&mut k_repush, &mut skopeo_push())?;
    }
    report("push (fresh registry)", &s_push, &k_push, 0.5);
    report("re-push (every blob there)", &s_repush, &k_repush, f64::NAN);
    println!(
        "  re-push target < 0.3 s: strata {:.3} s",
        s_repush.wall.median().as_secs_f64()
    );
    report("pull (fresh store / layout)", &s_pull, &k_pull, 0.7);
    println!("load average {} at the end", crate::bench_run::loadavg());
    Ok(())
}

/// Wall times, and the CPU time (user + system) the command itself used: the
/// registry's share and other processes' load are not in it.
#[derive(Default)]
struct Measured {
    wall: Samples,
    cpu: Samples,
}

fn push_into(m: &mut Measured, cmd: &mut Command) -> Result<()> {
    let mut timed_cmd = Command::new("/usr/bin/time");
    timed_cmd
        .arg("-f")
        .arg("CPU %U %S")
        .arg(cmd.get_program())
        .args(cmd.get_args());
    for (k, v) in cmd.get_envs() {
        match v {
            Some(v) => timed_cmd.env(k, v),
            None => timed_cmd.env_remove(k),
        };
    }
    let (wall, stderr) = timed_stderr(&mut timed_cmd)?;
    let cpu: f64 = stderr
        .lines()
        .rev()
        .find_map(|l| l.strip_prefix("CPU "))
        .map(|t| {
            t.split_whitespace()
                .filter_map(|x| x.parse::<f64>().ok())
                .sum()
        })
        .unwrap_or(0.0);
    m.wall.push(wall);
    m.cpu.push(Duration::from_secs_f64(cpu));
    Ok(())
}

fn report(what: &str, strata: &Measured, skopeo: &Measured, target: f64) {
    let ratio = strata.wall.median().as_secs_f64() / skopeo.wall.median().as_secs_f64();
    let goal = if target.is_nan() {
        String::new()
    } else {
        format!("  (target ≤ {target}×)")
    };
    println!(
        "  {what:<28} strata {:>7.2?} [{:>7.2?}]  skopeo {:>7.2?} [{:>7.2?}]  ratio {ratio:.2}×{goal}",
        strata.wall.median(),
        strata.wall.best(),
        skopeo.wall.median(),
        skopeo.wall.best()
    );
    println!(
        "  {:<28} CPU: strata {:>7.2?}, skopeo {:>7.2?} (medians; the registry's not counted)",
        "",
        strata.cpu.median(),
        skopeo.cpu.median()
    );
}

/// An empty directory at `p`.
pub(crate) fn fresh(p: &Path) -> Result<PathBuf> {
    if p.exists() {
        std::fs::remove_dir_all(p).with_context(|| format!("removing {}", p.display()))?;
    }
    std::fs::create_dir_all(p)?;
    Ok(p.to_path_buf())
}

fn dir_size(p: &Path) -> Result<u64> {
    let mut n = 0;
    for e in std::fs::read_dir(p)? {
        let e = e?;
        let m = e.metadata()?;
        n += if m.is_dir() {
            dir_size(&e.path())?
        } else {
            m.len()
        };
    }
    Ok(n)
}

/// The build context (kept between runs when complete): a Dockerfile copying each
/// file of [`LAYERS`] in its own layer.
fn generate_context(ctx: &Path) -> Result<()> {
    std::fs::create_dir_all(ctx)?;
    let mut dockerfile = String::from("FROM scratch\n");
    for (i, (name, mib, random)) in LAYERS.iter().enumerate() {
        dockerfile.push_str(&format!("COPY {name} /{name}\n"));
        let path = ctx.join(name);
        if std::fs::metadata(&path).is_ok_and(|m| m.len() == mib * MIB) {
            continue;
        }
        let mut w = BufWriter::with_capacity(1 << 20, std::fs::File::create(&path)?);
        let mut x: u64 = 0x9E37_79B9_7F4A_7C15 ^ (i as u64 + 1);
        let mut left = mib * MIB;
        let mut buf = vec![0u8; 1 << 16];
        let mut line = 0u64;
        while left > 0 {
            if *random {
                for chunk in buf.chunks_mut(8) {
                    // xorshift64*
                    x ^= x >> 12;
                    x ^= x << 25;
                    x ^= x >> 27;
                    let v = x.wrapping_mul(0x2545_F491_4F6C_DD1D).to_le_bytes();
                    chunk.copy_from_slice(&v[..chunk.len()]);
                }
            } else {
                let mut s = String::with_capacity(buf.len() + 128);
                while s.len() < buf.len() {
                    line += 1;
                    s.push_str(&format!(
                        "{line:>10} the quick brown fox jumps over the lazy dog {}\n",
                        line % 977
                    ));
                }
                let n = buf.len();
                buf.copy_from_slice(&s.as_bytes()[..n]);
            }
            let n = left.min(buf.len() as u64) as usize;
            w.write_all(&buf[..n])?;
            left -= n as u64;
        }
        w.flush()?;
    }
    std::fs::write(ctx.join("Dockerfile"), dockerfile)?;
    Ok(())
}

/// docker-registry on 127.0.0.1 (free port), storage under `dir` (emptied first);
/// stopped by PID on drop.
pub(crate) struct Registry {
    pub(crate) addr: String,
    child: Child,
}

impl Registry {
    pub(crate) fn start(dir: &Path) -> Result<Registry> {
        let dir = fresh(dir)?;
        let port = TcpListener::bind("127.0.0.1:0")?.local_addr()?.port();
        let addr = format!("127.0.0.1:{port}");
        let config = dir.join("config.yml");
        std::fs::write(
            &config,
            format!(
                "version: 0.1\nlog:\n  level: error\n  accesslog:\n    disabled: true\nstorage:\n  filesystem:\n    rootdirectory: {}\nhttp:\n  addr: {addr}\n",
                dir.join("data").display()
            ),
        )?;
        let log = std::fs::File::create(dir.join("registry.log"))?;
        let child = Command::new("docker-registry")
            .arg("serve")
            .arg(&config)
            .stdin(Stdio::null())
            .stdout(log.try_clone()?)
            .stderr(log)
            .spawn()
            .context("starting docker-registry")?;
        let reg = Registry { addr, child };
        let deadline = Instant::now() + Duration::from_secs(20);
        while std::net::TcpStream::connect(&reg.addr).is_err() {
            if Instant::now() > deadline {
                bail!("docker-registry did not listen on {} within 20 s", reg.addr);
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        Ok(reg)
    }
}

impl Drop for Registry {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
