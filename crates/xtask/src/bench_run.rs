//! `cargo xtask bench run`: RUN steps, strata beside BuildKit in the same run (Debian's
//! docker.io dockerd, started privately, with the same busybox image loaded into it):
//!
//! - (a) 30 `RUN echo N` + 30 `ENV` on busybox: cold (a fresh store; BuildKit after
//!   `docker builder prune -af`) and fully cached (daemon warm);
//! - (b) four independent stages of about 3 s of CPU work each (a busybox shell loop,
//!   calibrated here) and a final stage copying from all four, against the critical
//!   path on this machine's cores — from standalone measurements, and from the same
//!   run's own step times (what the scheduler makes of them, whatever the load);
//! - (c) the per-RUN overhead: a chain of `RUN true`, `(T(1 + N) - T(1)) / N` minus what
//!   `sh -c true` itself takes, for each runtime that works here (strata runs crun
//!   without the cgroup2 mount of a cgroup v1 hybrid host itself; should crun still be
//!   refused, it is tried in a private mount namespace without any cgroup2 mount).
//!
//! Prints figures, ratios and targets; asserts nothing. The machine is shared, so each
//! figure is the median of a few repetitions (best in brackets). `STRATA_BIN=PATH`
//! measures that binary instead of building target/release/strata.

use std::fmt::Write as _;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};

use crate::bench_util::{timed, timed_stderr, Dockerd, Samples};
use crate::example::busybox_layout;
use crate::system::{self, root};

/// Cold builds: a few (they are the expensive ones); cached builds: more.
const REPS_COLD: usize = 3;
const REPS_WARM: usize = 5;
/// (a): RUN and ENV steps.
const STEPS: usize = 30;
/// (b): seconds of CPU work per stage, and the number of stages.
const STAGE_SECONDS: f64 = 3.0;
const STAGES: usize = 4;
/// (c): the extra `RUN true` steps, and the repetitions of each pair of builds.
const CHAIN: usize = 20;
const REPS_CHAIN: usize = 5;

pub fn run() -> Result<()> {
    system::ensure_packages(&["busybox-static", "crun", "docker.io", "runc"])?;
    let bin = match std::env::var_os("STRATA_BIN") {
        Some(b) => PathBuf::from(b),
        None => {
            system::run("cargo", &["build", "--release", "-p", "strata"])?;
            root().join("target/release/strata")
        }
    };
    let work = root().join("target/bench-run");
    std::fs::create_dir_all(&work)?;
    let layout = work.join("busybox-layout");
    busybox_layout(&layout)?;
    let strata = Strata {
        bin,
        busybox: format!("busybox=oci-layout://{}:latest", layout.display()),
        root: work.join("strata-root"),
        hide_cgroup2: false,
    };
    let cores = std::thread::available_parallelism().map_or(1, |n| n.get());

    let docker = Dockerd::start(&work.join("docker"))?;
    load_busybox(&strata, &docker, &work)?;
    let buildkit = BuildKit(&docker);

    println!(
        "\nstrata {} beside BuildKit (dockerd {}), {}, {cores} cores, load average {} at start",
        strata.bin.display(),
        docker.version(),
        first_line("runc", &["--version"]),
        loadavg()
    );
    println!(
        "The machine is shared (others compile): each figure is the median of the \
         repetitions, best in brackets."
    );

    steps(&strata, &buildkit, &work)?;
    stages(&strata, &buildkit, &work, cores)?;
    overhead(&strata, &buildkit, &work)?;
    drop(docker);
    Ok(())
}

/// strata with its own store under the benchmark's directory.
#[derive(Clone)]
struct Strata {
    bin: PathBuf,
    /// `--build-context busybox=oci-layout://...`
    busybox: String,
    root: PathBuf,
    /// Run in a private mount namespace without the cgroup2 mounts (see [`overhead`]).
    hide_cgroup2: bool,
}

impl Strata {
    fn build(&self, dir: &Path, runtime: &str) -> Command {
        self.build_with(dir, runtime, "quiet")
    }

    fn build_with(&self, dir: &Path, runtime: &str, progress: &str) -> Command {
        let mut c = if self.hide_cgroup2 {
            let mut c = Command::new("unshare");
            c.args(["--mount", "--propagation", "private", "sh", "-c"])
                .arg(
                    "for m in $(awk '$3 == \"cgroup2\" {print $2}' /proc/mounts); do \
                     umount \"$m\" || exit 1; done; exec \"$@\"",
                )
                .arg("sh")
                .arg(&self.bin);
            c
        } else {
            Command::new(&self.bin)
        };
        c.arg("--root")
            .arg(&self.root)
            .args(["build", "--progress", progress, "--runtime", runtime])
            .arg("--build-context")
            .arg(&self.busybox)
            .arg(dir);
        c
    }

    /// A build into an empty store.
    fn cold(&self, dir: &Path, runtime: &str) -> Result<Duration> {
        self.wipe()?;
        timed(&mut self.build(dir, runtime))
    }

    fn warm(&self, dir: &Path, runtime: &str) -> Result<Duration> {
        timed(&mut self.build(dir, runtime))
    }

    /// Why a one-RUN build fails with `runtime` (its last line of output), if it does.
    fn refusal(&self, dir: &Path, runtime: &str) -> Result<Option<String>> {
        self.wipe()?;
        let out = self.build(dir, runtime).stdin(Stdio::null()).output()?;
        if out.status.success() {
            return Ok(None);
        }
        let err = String::from_utf8_lossy(&out.stderr);
        let why = err
            .lines()
            .rfind(|l| !l.trim().is_empty())
            .unwrap_or("no output")
            .trim()
            .to_string();
        Ok(Some(why))
    }

    fn wipe(&self) -> Result<()> {
        match std::fs::remove_dir_all(&self.root) {
            Err(e) if e.kind() != std::io::ErrorKind::NotFound => {
                Err(e).with_context(|| format!("removing {}", self.root.display()))
            }
            _ => Ok(()),
        }
    }
}

/// `docker build` on the private daemon.
struct BuildKit<'a>(&'a Dockerd);

impl BuildKit<'_> {
    /// After `docker builder prune -af` (the image store keeps busybox).
    fn cold(&self, dir: &Path) -> Result<Duration> {
        let st = self
            .0
            .cmd()
            .args(["builder", "prune", "-af"])
            .stdout(Stdio::null())
            .status()?;
        if !st.success() {
            bail!("docker builder prune failed");
        }
        self.warm(dir)
    }

    fn warm(&self, dir: &Path) -> Result<Duration> {
        timed(self.0.build().arg(dir))
    }
}

/// The same busybox image in dockerd, as `busybox:latest`: strata writes it as a docker
/// archive (`FROM busybox` over the OCI layout) and `docker load` reads it. BuildKit
/// then resolves `FROM busybox` from the daemon's images: there is no registry here,
/// so a pull would fail the build.
fn load_busybox(strata: &Strata, docker: &Dockerd, work: &Path) -> Result<()> {
    let dir = write_case(work, "busybox", "FROM busybox\n")?;
    let tar = work.join("busybox-docker.tar");
    strata.wipe()?;
    timed(strata.build(&dir, "auto").arg("-o").arg(format!(
        "type=docker,dest={},name=busybox:latest",
        tar.display()
    )))?;
    timed(docker.cmd().arg("load").arg("-i").arg(&tar))?;
    timed(docker.cmd().args(["image", "inspect", "busybox:latest"]))
        .context("busybox:latest is not in dockerd after docker load")?;
    Ok(())
}

/// `work/NAME/Dockerfile` with `text`; returns the directory (the build context).
fn write_case(work: &Path, name: &str, text: &str) -> Result<PathBuf> {
    let dir = work.join(name);
    std::fs::create_dir_all(&dir)?;
    std::fs::write(dir.join("Dockerfile"), text)?;
    Ok(dir)
}

/// (a) 30 RUN + 30 ENV, cold and fully cached.
fn steps(strata: &Strata, buildkit: &BuildKit<'_>, work: &Path) -> Result<()> {
    let mut text = String::from("FROM busybox\n");
    for i in 1..=STEPS {
        writeln!(text, "RUN echo {i}\nENV E{i}=v{i}").unwrap();
    }
    let dir = write_case(work, "a-steps", &text)?;
    let (mut s_cold, mut b_cold) = (Samples::default(), Samples::default());
    // Alternating, so a burst of load elsewhere hits both.
    for _ in 0..REPS_COLD {
        s_cold.push(strata.cold(&dir, "auto")?);
        b_cold.push(buildkit.cold(&dir)?);
    }
    let (mut s_warm, mut b_warm) = (Samples::default(), Samples::default());
    for _ in 0..REPS_WARM {
        s_warm.push(strata.warm(&dir, "auto")?);
        b_warm.push(buildkit.warm(&dir)?);
    }
    println!("\n(a) FROM busybox + {STEPS} x `RUN echo N` + {STEPS} x `ENV`");
    header();
    row("cold", &s_cold, &b_cold, 0.5);
    row("fully cached", &s_warm, &b_warm, 1.0);
    println!(
        "  cold: a fresh strata store; BuildKit after `docker builder prune -af` \
         ({REPS_COLD} each). Cached: {REPS_WARM} rebuilds each, daemon warm."
    );
    Ok(())
}

fn header() {
    println!(
        "  {:<16} {:>17} {:>17} {:>8} {:>8}",
        "", "strata", "BuildKit", "ratio", "target"
    );
}

fn row(name: &str, s: &Samples, b: &Samples, target: f64) {
    let ratio = s.median().as_secs_f64() / b.median().as_secs_f64();
    println!(
        "  {name:<16} {:>17} {:>17} {:>7.2}x {:>7.2}x  {}",
        fmt(s),
        fmt(b),
        ratio,
        target,
        verdict(ratio <= target)
    );
}

fn verdict(met: bool) -> &'static str {
    if met {
        "met"
    } else {
        "MISSED"
    }
}

/// `1.234s (1.200)`: median, best.
fn fmt(s: &Samples) -> String {
    format!(
        "{:.3}s ({:.3})",
        s.median().as_secs_f64(),
        s.best().as_secs_f64()
    )
}

/// A busybox shell loop of `n` iterations; `tag` makes each stage's command distinct
/// (identical steps would be built once).
fn busy_loop(n: u64, tag: usize) -> String {
    format!("i=0; while [ $i -lt {n} ]; do i=$((i+1)); done; echo {tag} $i > /out{tag}")
}

/// Iterations of [`busy_loop`] that take `STAGE_SECONDS` of CPU here (busybox on the
/// host, user + system time, the least of three).
fn calibrate() -> Result<u64> {
    const PROBE: u64 = 200_000;
    let mut best = f64::MAX;
    for _ in 0..3 {
        let out = Command::new("/usr/bin/time")
            .args(["-f", "%U %S", "busybox", "sh", "-c"])
            .arg(busy_loop(PROBE, 0).replace("> /out0", "> /dev/null"))
            .stdout(Stdio::null())
            .output()?;
        if !out.status.success() {
            bail!(
                "calibration loop failed: {}",
                String::from_utf8_lossy(&out.stderr)
            );
        }
        let err = String::from_utf8_lossy(&out.stderr);
        let cpu: f64 = err
            .lines()
            .last()
            .unwrap_or_default()
            .split_whitespace()
            .filter_map(|v| v.parse::<f64>().ok())
            .sum();
        best = best.min(cpu.max(0.01));
    }
    Ok((PROBE as f64 * STAGE_SECONDS / best) as u64)
}

/// Four stages of `n` loop iterations each, then a final stage copying from all four.
fn stages_file(n: u64) -> String {
    let mut text = String::new();
    for k in 1..=STAGES {
        writeln!(text, "FROM busybox AS s{k}\nRUN {}", busy_loop(n, k)).unwrap();
    }
    text.push_str("FROM busybox\n");
    for k in 1..=STAGES {
        writeln!(text, "COPY --from=s{k} /out{k} /").unwrap();
    }
    text
}

/// (b) four independent CPU-bound stages against the critical path.
fn stages(strata: &Strata, buildkit: &BuildKit<'_>, work: &Path, cores: usize) -> Result<()> {
    let n = calibrate()?;
    let single = write_case(
        work,
        "b-one",
        &format!("FROM busybox\nRUN {}\n", busy_loop(n, 1)),
    )?;
    let single0 = write_case(
        work,
        "b-one-0",
        &format!("FROM busybox\nRUN {}\n", busy_loop(0, 1)),
    )?;
    let fixed = write_case(work, "b-stages-0", &stages_file(0))?;
    let full = write_case(work, "b-stages", &stages_file(n))?;

    // One stage's work as strata runs it: the stage with the loop minus without.
    let mut work_one = Samples::default();
    let mut fixed_t = Samples::default();
    let mut s_full = Samples::default();
    let mut b_full = Samples::default();
    // strata's solve against the critical path of its own step times in that run.
    let (mut solve, mut own_path) = (Samples::default(), Samples::default());
    for _ in 0..REPS_COLD {
        let with = strata.cold(&single, "auto")?;
        let without = strata.cold(&single0, "auto")?;
        work_one.push(with.saturating_sub(without));
        fixed_t.push(strata.cold(&fixed, "auto")?);
        strata.wipe()?;
        let (wall, json) = timed_stderr(&mut strata.build_with(&full, "auto", "json"))?;
        s_full.push(wall);
        let (finished, path) = own_critical_path(&json, cores);
        solve.push(finished);
        own_path.push(path);
        b_full.push(buildkit.cold(&full)?);
    }
    let path = |work: Duration, fixed: Duration| {
        let w = work.as_secs_f64();
        fixed.as_secs_f64() + w.max(w * STAGES as f64 / cores as f64)
    };
    let critical = path(work_one.median(), fixed_t.median());
    let critical_best = path(work_one.best(), fixed_t.best());

    println!(
        "\n(b) {STAGES} independent stages of ~{STAGE_SECONDS:.0} s CPU each (busybox loop of {n} \
         iterations) + a final stage copying from all four, {cores} cores"
    );
    println!(
        "  one stage's work in strata (stage with the loop - without)  {:>17}",
        fmt(&work_one)
    );
    println!(
        "  fixed part (the same file, loops of 0 iterations)           {:>17}",
        fmt(&fixed_t)
    );
    println!(
        "  critical path = fixed + max(one stage, {STAGES} stages / {cores} cores) {:>9.3}s ({:.3})",
        critical, critical_best
    );
    let ratio = |s: &Samples| s.median().as_secs_f64() / critical;
    let ratio_best = |s: &Samples| s.best().as_secs_f64() / critical_best;
    println!(
        "  strata wall                                                 {:>17}  {:.3}x of the critical path ({:.3}x best/best), target <= 1.05x {}",
        fmt(&s_full),
        ratio(&s_full),
        ratio_best(&s_full),
        verdict(ratio(&s_full) <= 1.05)
    );
    println!(
        "  BuildKit wall                                               {:>17}  {:.3}x of the critical path ({:.3}x best/best); strata/BuildKit {:.2}x",
        fmt(&b_full),
        ratio(&b_full),
        ratio_best(&b_full),
        s_full.median().as_secs_f64() / b_full.median().as_secs_f64()
    );
    let own = |s: &Samples, p: &Samples| s.median().as_secs_f64() / p.median().as_secs_f64();
    println!(
        "  strata's solve vs the critical path of its own steps' times in the same run \
         (FROM + {STAGES} RUNs packed on {cores} cores + the COPYs): {} vs {}, {:.3}x",
        fmt(&solve),
        fmt(&own_path),
        own(&solve, &own_path)
    );
    println!(
        "  (that ratio is the scheduler's share; the rest is the machine: stages run \
         slower side by side while others use the cores). Load average after (b): {}",
        loadavg()
    );
    Ok(())
}

/// From strata's `--progress json`: when the solve finished, and the critical path of
/// the steps' own durations — the slowest FROM, the RUN steps packed on `cores`
/// (longest first, each on the least loaded core), then the final stage's COPY steps
/// one after the other.
fn own_critical_path(json: &str, cores: usize) -> (Duration, Duration) {
    let (mut from, mut runs, mut copies, mut finished) = (0f64, Vec::new(), 0f64, 0f64);
    for line in json.lines() {
        if line.contains("\"event\":\"finished\"") {
            finished = json_number(line, "time").unwrap_or(0.0);
        }
        if !line.contains("\"event\":\"completed\"") {
            continue;
        }
        let d = json_number(line, "duration").unwrap_or(0.0);
        if line.contains("] FROM ") {
            from = from.max(d);
        } else if line.contains("] RUN ") {
            runs.push(d);
        } else if line.contains("] COPY ") {
            copies += d;
        }
    }
    runs.sort_by(|a, b| b.total_cmp(a));
    let mut load = vec![0f64; cores.max(1)];
    for d in runs {
        let least = load
            .iter_mut()
            .min_by(|a, b| a.total_cmp(b))
            .expect("at least one core");
        *least += d;
    }
    let packed = load.into_iter().fold(0f64, f64::max);
    (
        Duration::from_secs_f64(finished),
        Duration::from_secs_f64(from + packed + copies),
    )
}

/// The number after `"key":` in a line of JSON.
fn json_number(line: &str, key: &str) -> Option<f64> {
    let rest = &line[line.find(&format!("\"{key}\":"))? + key.len() + 3..];
    let end = rest
        .find(|c: char| !(c.is_ascii_digit() || c == '.' || c == '-' || c == 'e'))
        .unwrap_or(rest.len());
    rest[..end].parse().ok()
}

/// (c) per-RUN overhead of each runtime that works here, and BuildKit's. strata runs
/// crun on cgroup v1 hybrid hosts itself (`crates/runtime/src/hybrid.rs`); where crun
/// is refused all the same, it is also measured, with runc beside it, inside a private
/// mount namespace that unmounts every cgroup2 hierarchy: a benchmark-only view.
fn overhead(strata: &Strata, buildkit: &BuildKit<'_>, work: &Path) -> Result<()> {
    let chain = |k: usize| "FROM busybox\n".to_string() + &"RUN true\n".repeat(k);
    let base = write_case(work, "c-base", &chain(1))?;
    let long = write_case(work, "c-chain", &chain(1 + CHAIN))?;
    let own = own_time()?;
    println!(
        "\n(c) per-RUN overhead: (T(FROM + {}) - T(FROM + 1)) / {CHAIN} of `RUN true`, cold, minus \
         `sh -c true` itself ({:.2} ms on the host)",
        1 + CHAIN,
        own.as_secs_f64() * 1e3
    );
    let per_run = |strata: &Strata, runtime: &str| -> Result<Samples> {
        let mut s = Samples::default();
        for _ in 0..REPS_CHAIN {
            let b = strata.cold(&base, runtime)?;
            let l = strata.cold(&long, runtime)?;
            s.push((l.saturating_sub(b) / CHAIN as u32).saturating_sub(own));
        }
        Ok(s)
    };
    let report = |label: &str, runtime: &str, s: &Samples| {
        let target = if runtime == "crun" {
            format!(
                "target <= 25 ms {}",
                verdict(s.median() <= Duration::from_millis(25))
            )
        } else {
            "(the 25 ms target is for crun)".to_string()
        };
        println!(
            "  {label:<36} {:>6.1} ms ({:.1})  {target}",
            s.median().as_secs_f64() * 1e3,
            s.best().as_secs_f64() * 1e3,
        );
    };
    let runc = per_run(strata, "runc")?;
    report("strata + runc", "runc", &runc);
    match strata.refusal(&base, "crun")? {
        None => report("strata + crun", "crun", &per_run(strata, "crun")?),
        Some(why) => {
            println!("  strata + crun: not usable on this host: {why}");
            println!(
                "    (crun 1.8 refuses cgroup v1 hybrid hosts like this one, where a cgroup2 \
                 hierarchy is mounted beside the v1 controllers)"
            );
            let hidden = Strata {
                hide_cgroup2: true,
                ..strata.clone()
            };
            match hidden.refusal(&base, "crun")? {
                Some(why) => println!("    nor with the cgroup2 mount hidden: {why}"),
                None => {
                    println!(
                        "    with the cgroup2 mount hidden (a private mount namespace; benchmark \
                         only), both runtimes:"
                    );
                    report(
                        "strata + runc, cgroup2 hidden",
                        "runc",
                        &per_run(&hidden, "runc")?,
                    );
                    report(
                        "strata + crun, cgroup2 hidden",
                        "crun",
                        &per_run(&hidden, "crun")?,
                    );
                }
            }
        }
    }
    let mut b = Samples::default();
    for _ in 0..REPS_COLD {
        let t0 = buildkit.cold(&base)?;
        let t1 = buildkit.cold(&long)?;
        b.push((t1.saturating_sub(t0) / CHAIN as u32).saturating_sub(own));
    }
    println!(
        "  {:<36} {:>6.1} ms ({:.1})",
        "BuildKit (runc)",
        b.median().as_secs_f64() * 1e3,
        b.best().as_secs_f64() * 1e3
    );
    Ok(())
}

/// The median time of `busybox sh -c true` on the host: the command's own share of a
/// `RUN true`.
fn own_time() -> Result<Duration> {
    let mut s = Samples::default();
    for _ in 0..31 {
        let t = Instant::now();
        let st = Command::new("busybox")
            .args(["sh", "-c", "true"])
            .status()?;
        if !st.success() {
            bail!("busybox sh -c true failed");
        }
        s.push(t.elapsed());
    }
    Ok(s.median())
}

/// The 1, 5 and 15 minute load averages.
pub(crate) fn loadavg() -> String {
    std::fs::read_to_string("/proc/loadavg")
        .unwrap_or_default()
        .split_whitespace()
        .take(3)
        .collect::<Vec<_>>()
        .join(" ")
}

pub(crate) fn first_line(cmd: &str, args: &[&str]) -> String {
    Command::new(cmd)
        .args(args)
        .output()
        .ok()
        .and_then(|o| {
            String::from_utf8_lossy(&o.stdout)
                .lines()
                .next()
                .map(str::to_string)
        })
        .unwrap_or_else(|| format!("{cmd}: unknown version"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_own_critical_path_packs_the_runs_on_the_cores() {
        let json = r#"{"event":"completed","vertex":{"id":"a","name":"[s 1/2] FROM x"},"duration":0.5,"time":0.5}
{"event":"completed","vertex":{"id":"b","name":"[s1 2/2] RUN a"},"duration":3,"time":3.5}
{"event":"completed","vertex":{"id":"c","name":"[s2 2/2] RUN b"},"duration":2,"time":2.5}
{"event":"completed","vertex":{"id":"d","name":"[s3 2/2] RUN c"},"duration":2,"time":4.5}
{"event":"completed","vertex":{"id":"e","name":"[f 2/3] COPY --from=s1 /a /"},"duration":0.25,"time":4.75}
{"event":"completed","vertex":{"id":"f","name":"[f 3/3] COPY --from=s2 /b /"},"duration":0.25,"time":5}
{"event":"finished","ok":true,"time":5.125}"#;
        let (finished, path) = own_critical_path(json, 2);
        assert_eq!(finished, Duration::from_secs_f64(5.125));
        // 0.5 + max(3, 2 + 2) + 0.25 + 0.25
        assert_eq!(path, Duration::from_secs_f64(5.0));
        let (_, one_core) = own_critical_path(json, 1);
        assert_eq!(one_core, Duration::from_secs_f64(8.0));
    }
}
