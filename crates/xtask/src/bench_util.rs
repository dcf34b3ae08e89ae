//! What the benchmarks that run beside BuildKit share: a private `dockerd`, timing of
//! commands, and medians of repeated measurements.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};

/// Cold means cold: page cache dropped (root only; ignored otherwise).
pub fn drop_caches() {
    let _ = Command::new("sync").status();
    let _ = std::fs::write("/proc/sys/vm/drop_caches", "3");
}

/// Wall time of a command that must succeed; its stdout is discarded, its stderr shown
/// only when it fails.
pub fn timed(cmd: &mut Command) -> Result<Duration> {
    timed_stderr(cmd).map(|(d, _)| d)
}

/// [`timed`], also returning what the command wrote to stderr.
pub fn timed_stderr(cmd: &mut Command) -> Result<(Duration, String)> {
    cmd.stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped());
    let t = Instant::now();
    let out = cmd
        .output()
        .with_context(|| format!("starting {:?}", cmd.get_program()))?;
    let elapsed = t.elapsed();
    let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
    if !out.status.success() {
        bail!("{:?} failed ({}):\n{stderr}", cmd.get_program(), out.status,);
    }
    Ok((elapsed, stderr))
}

/// Wall time and peak RSS (KiB) of a command, through GNU time.
pub fn timed_rss(cmd: &mut Command) -> Result<(Duration, u64)> {
    let prog = cmd.get_program().to_owned();
    let args: Vec<_> = cmd.get_args().map(|a| a.to_owned()).collect();
    let t = Instant::now();
    let out = Command::new("/usr/bin/time")
        .arg("-f")
        .arg("RSS %M")
        .arg(prog)
        .args(args)
        .stdout(Stdio::null())
        .output()?;
    let elapsed = t.elapsed();
    let err = String::from_utf8_lossy(&out.stderr);
    if !out.status.success() {
        bail!("strata failed: {err}");
    }
    let rss = err
        .lines()
        .rev()
        .find_map(|l| l.strip_prefix("RSS "))
        .and_then(|v| v.trim().parse().ok())
        .unwrap_or(0);
    Ok((elapsed, rss))
}

/// Repeated measurements of one thing.
#[derive(Debug, Clone, Default)]
pub struct Samples(pub Vec<Duration>);

impl Samples {
    pub fn push(&mut self, d: Duration) {
        self.0.push(d);
    }

    fn sorted(&self) -> Vec<Duration> {
        let mut v = self.0.clone();
        v.sort();
        v
    }

    /// The middle sample (the lower of the two middle ones for an even count).
    pub fn median(&self) -> Duration {
        let v = self.sorted();
        v.get(v.len().saturating_sub(1) / 2)
            .copied()
            .unwrap_or_default()
    }

    pub fn best(&self) -> Duration {
        self.sorted().first().copied().unwrap_or_default()
    }
}

/// A throwaway dockerd on a private socket, with its own data, exec root, client
/// configuration and containerd namespaces; stopped (by PID) when dropped.
pub struct Dockerd {
    child: Child,
    sock: PathBuf,
    dir: PathBuf,
}

impl Dockerd {
    pub fn start(dir: &Path) -> Result<Dockerd> {
        let _ = std::fs::remove_dir_all(dir);
        std::fs::create_dir_all(dir.join("config"))?;
        let sock = dir.join("docker.sock");
        // Our own containerd namespaces, in case dockerd finds a system containerd
        // that another dockerd shares.
        let ns = format!("strata-bench-{}", std::process::id());
        let child = Command::new("dockerd")
            .arg(format!("--containerd-namespace={ns}"))
            .arg(format!("--containerd-plugins-namespace={ns}-plugins"))
            .args([
                "--bridge=none",
                "--iptables=false",
                "--ip6tables=false",
                "--storage-driver=overlay2",
            ])
            .arg("--data-root")
            .arg(dir.join("data"))
            .arg("--exec-root")
            .arg(dir.join("exec"))
            .arg("--pidfile")
            .arg(dir.join("docker.pid"))
            .arg("-H")
            .arg(format!("unix://{}", sock.display()))
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(std::fs::File::create(dir.join("dockerd.log"))?)
            .spawn()
            .context("starting dockerd")?;
        let mut d = Dockerd {
            child,
            sock,
            dir: dir.to_path_buf(),
        };
        for _ in 0..300 {
            if let Some(status) = d.child.try_wait()? {
                bail!(
                    "dockerd exited ({status}); see {}",
                    dir.join("dockerd.log").display()
                );
            }
            if d.cmd()
                .arg("info")
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .status()
                .map(|s| s.success())
                .unwrap_or(false)
            {
                return Ok(d);
            }
            std::thread::sleep(Duration::from_millis(100));
        }
        bail!(
            "dockerd did not start; see {}",
            dir.join("dockerd.log").display()
        )
    }

    /// The `docker` client for this daemon.
    pub fn cmd(&self) -> Command {
        // Debian's docker.io client (20.10) has BuildKit built in; a newer client on the
        // PATH may insist on the buildx plugin.
        let client = if Path::new("/usr/bin/docker").exists() {
            "/usr/bin/docker"
        } else {
            "docker"
        };
        let mut c = Command::new(client);
        c.arg("-H")
            .arg(format!("unix://{}", self.sock.display()))
            .env("DOCKER_CONFIG", self.dir.join("config"))
            .env_remove("DOCKER_CONTEXT")
            .env_remove("DOCKER_HOST");
        c
    }

    /// `docker build` through BuildKit with host networking (no bridges here); the
    /// caller adds the rest (`-f`, context).
    pub fn build(&self) -> Command {
        let mut c = self.cmd();
        c.env("DOCKER_BUILDKIT", "1")
            .args(["build", "--network=host", "-q"]);
        c
    }

    /// `docker version`'s server version, for the report.
    pub fn version(&self) -> String {
        self.cmd()
            .args(["version", "--format", "{{.Server.Version}}"])
            .output()
            .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_string())
            .unwrap_or_default()
    }
}

impl Drop for Dockerd {
    fn drop(&mut self) {
        let _ = Command::new("kill")
            .arg(self.child.id().to_string())
            .status();
        let _ = self.child.wait();
        let _ = Command::new("sh")
            .arg("-c")
            .arg(format!(
                "grep -o ' {}[^ ]*' /proc/mounts | sort -r | xargs -r -n1 umount -l",
                self.dir.display()
            ))
            .status();
    }
}
