//! [`OciRuntime`]: an [`Executor`] that writes an OCI bundle and runs it with `runc`
//! or `crun` (`RUNTIME --root STATE run --bundle DIR ID`, no terminal; or attached to
//! the caller's terminal for `strata debug shell`), and [`RuntimeChoice`], how the user
//! picks one.

use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::str::FromStr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use tokio_util::sync::CancellationToken;

use crate::executor::{BoxFuture, Executor, ExitStatus, RunRequest, Stream};
use crate::proc::{wait_exited, Lines};
use crate::spec::{generate, own_destinations, SpecInput};
use crate::stubs::Stubs;
use crate::user::resolve_user;
use crate::{rootfs, Error, Result};

/// `--runtime`: which OCI runtime runs RUN steps.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub enum RuntimeChoice {
    /// crun if it works on this host, else runc.
    #[default]
    Auto,
    Runc,
    Crun,
    /// A runtime binary that takes runc's command line.
    Path(PathBuf),
}

impl FromStr for RuntimeChoice {
    type Err = std::convert::Infallible;

    /// `auto`, `runc`, `crun`, or a path (anything else).
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Ok(match s {
            "auto" | "" => RuntimeChoice::Auto,
            "runc" => RuntimeChoice::Runc,
            "crun" => RuntimeChoice::Crun,
            other => RuntimeChoice::Path(PathBuf::from(other)),
        })
    }
}

/// A runtime that was picked, and why another was not (to tell the user).
#[derive(Debug)]
pub struct Selected {
    pub runtime: OciRuntime,
    /// Set when `auto` passed over crun: what crun said.
    pub note: Option<String>,
}

impl Selected {
    /// Adds to the note when the runtime cannot apply seccomp filters.
    fn with_seccomp_note(mut self) -> Selected {
        if !self.runtime.seccomp {
            let why = format!(
                "{} was built without seccomp support: RUN steps run without a seccomp profile",
                self.runtime.name
            );
            self.note = Some(match self.note.take() {
                Some(n) => format!("{n}; {why}"),
                None => why,
            });
        }
        self
    }
}

/// `RUNTIME features` (runc 1.1+, crun 1.8+): `linux.seccomp.enabled`. A runtime that
/// cannot tell is assumed to have seccomp (Debian builds runc and crun with it).
fn seccomp_supported(binary: &Path) -> bool {
    let Ok(out) = std::process::Command::new(binary)
        .arg("features")
        .stdin(Stdio::null())
        .stderr(Stdio::null())
        .output()
    else {
        return true;
    };
    if !out.status.success() {
        return true;
    }
    serde_json::from_slice::<serde_json::Value>(&out.stdout)
        .ok()
        .and_then(|v| v["linux"]["seccomp"]["enabled"].as_bool())
        .unwrap_or(true)
}

/// Runs containers through a runc-compatible binary. State (`--root`) and bundles
/// live under `work`, which must belong to this process (the store's tmp dir).
#[derive(Debug)]
pub struct OciRuntime {
    binary: PathBuf,
    name: String,
    state: PathBuf,
    bundles: PathBuf,
    nofile: u64,
    grantable: u64,
    /// `RUNTIME features` says it can apply seccomp filters (assumed when it cannot
    /// answer, as runc before 1.1).
    seccomp: bool,
    /// Where each container's init pid (`--pid-file`) and the runtime's process group
    /// (`<id>.runtime`) are written while they run, so that whoever cleans up after a
    /// killed strata can kill an orphaned container and its runtime.
    pid_dir: Option<PathBuf>,
    /// cgroup2 mounts detached in a private mount namespace around every invocation
    /// (crun on a cgroup v1 hybrid host, see [`crate::hybrid`]).
    hide: Vec<std::ffi::CString>,
    /// crun: seccomp filters compiled once per profile ([`crate::bpf`]).
    filters: Option<crate::bpf::Filters>,
}

impl OciRuntime {
    /// Uses `binary` as is (no probe container; `RUNTIME features` is asked whether it
    /// has seccomp).
    pub fn new(binary: PathBuf, work: &Path) -> Result<OciRuntime> {
        let state = work.join("runtime-state");
        let bundles = work.join("bundles");
        fs_err::create_dir_all(&state)?;
        fs_err::create_dir_all(&bundles)?;
        let name = binary
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_else(|| binary.display().to_string());
        // crun refuses hybrid hosts whose cgroup2 mount has controllers; it works
        // when it does not see that mount. runc needs nothing of the sort.
        let hide = if name == "crun" {
            crate::hybrid::refused_cgroup2_mounts()
        } else {
            Vec::new()
        };
        Ok(OciRuntime {
            filters: (name == "crun").then(Default::default),
            hide,
            name,
            state,
            bundles,
            nofile: crate::spec::nofile_limit(),
            grantable: crate::spec::bounding_set(),
            seccomp: seccomp_supported(&binary),
            binary,
            pid_dir: None,
        })
    }

    /// Writes each running container's init pid to a file in `dir` (made if missing),
    /// removed when the container is gone (see `Store::procs_dir`).
    pub fn with_pid_dir(mut self, dir: &Path) -> Result<OciRuntime> {
        fs_err::create_dir_all(dir)?;
        self.pid_dir = Some(dir.to_path_buf());
        Ok(self)
    }

    /// Whether sandboxed steps get a seccomp profile ([`crate::seccomp`]).
    pub fn seccomp(&self) -> bool {
        self.seccomp
    }

    /// Picks the runtime for `choice`. `Auto` tries crun once with a probe container
    /// (whatever may stop crun, which `crun --version` does not tell; on cgroup v1
    /// hybrid hosts crun runs without the cgroup2 mount, see [`crate::hybrid`]) and
    /// falls back to runc, saying why in [`Selected::note`]. Blocking (it may run
    /// the probe). First removes the cgroups that containers of killed strata
    /// processes left behind.
    pub fn select(choice: &RuntimeChoice, work: &Path) -> Result<Selected> {
        crate::stale::remove_stale();
        let named = |name: &str| {
            find_in_path(name).ok_or_else(|| Error::RuntimeNotFound {
                name: name.to_string(),
            })
        };
        let binary = match choice {
            RuntimeChoice::Runc => named("runc")?,
            RuntimeChoice::Crun => named("crun")?,
            RuntimeChoice::Path(p) if p.components().count() > 1 => {
                if !p.is_file() {
                    return Err(Error::RuntimeNotFound {
                        name: p.display().to_string(),
                    });
                }
                p.clone()
            }
            RuntimeChoice::Path(p) => named(&p.to_string_lossy())?,
            RuntimeChoice::Auto => {
                let mut note = None;
                if let Some(crun) = find_in_path("crun") {
                    let rt = OciRuntime::new(crun, work)?;
                    match rt.probe() {
                        Ok(()) => return Ok(Selected { runtime: rt, note }.with_seccomp_note()),
                        Err(why) => note = Some(why),
                    }
                }
                let runc = find_in_path("runc").ok_or(Error::NoRuntime)?;
                let note =
                    note.map(|why| format!("crun does not work on this host ({why}); using runc"));
                return Ok(Selected {
                    runtime: OciRuntime::new(runc, work)?,
                    note,
                }
                .with_seccomp_note());
            }
        };
        Ok(Selected {
            runtime: OciRuntime::new(binary, work)?,
            note: None,
        }
        .with_seccomp_note())
    }

    pub fn binary(&self) -> &Path {
        &self.binary
    }

    /// Runs a container over an empty root whose process cannot exist: a runtime that
    /// gets as far as looking the program up works (namespaces, cgroups and mounts are
    /// set up by then). The error is the runtime's message otherwise.
    /// A runtime that compiles seccomp filters once ([`crate::bpf`]) is probed by
    /// compiling the sandbox's profile: its `create` sets up as much, and the filter is
    /// then ready for the first step.
    fn probe(&self) -> Result<(), String> {
        if self.filters.is_some() && self.seccomp {
            let profile =
                crate::spec::sandbox_profile(self.grantable).map_err(|e| e.to_string())?;
            return self.filter(&profile).map(drop);
        }
        let id = self.container_id();
        let bundle = self.bundles.join(&id);
        let rootfs = bundle.join("rootfs");
        let result = (|| -> Result<std::process::Output, String> {
            // crun opens the root's /dev before it looks the program up.
            fs_err::create_dir_all(rootfs.join("dev")).map_err(|e| e.to_string())?;
            let spec = serde_json::json!({
                "ociVersion": "1.0.2",
                "root": {"path": rootfs},
                "mounts": [],
                "process": {"args": ["/strata-probe"], "cwd": "/", "user": {"uid": 0, "gid": 0}},
                "linux": {"namespaces": [{"type": "pid"}, {"type": "mount"}]}
            });
            fs_err::write(bundle.join("config.json"), spec.to_string())
                .map_err(|e| e.to_string())?;
            self.command()
                .args(["run", "--bundle"])
                .arg(&bundle)
                .arg(&id)
                .stdin(Stdio::null())
                .output()
                .map_err(|e| format!("starting {}: {e}", self.binary.display()))
        })();
        self.force_delete(&id);
        let _ = std::fs::remove_dir_all(&bundle);
        let out = result?;
        let stderr = String::from_utf8_lossy(&out.stderr);
        if stderr.contains("strata-probe") {
            Ok(())
        } else {
            let last = stderr
                .lines()
                .rfind(|l| !l.trim().is_empty())
                .unwrap_or("no output");
            Err(last.trim().to_string())
        }
    }

    /// `RUNTIME --root STATE`, in a mount namespace without the cgroup2 mounts crun
    /// would refuse the host for, if any.
    fn command(&self) -> std::process::Command {
        let mut cmd = std::process::Command::new(&self.binary);
        cmd.arg("--root").arg(&self.state);
        crate::hybrid::hide_mounts(&mut cmd, &self.hide);
        cmd
    }

    /// Whether invocations run in a mount namespace without the host's cgroup2 mount
    /// (crun on a cgroup v1 hybrid host whose cgroup2 mount has controllers).
    pub fn hides_cgroup2(&self) -> bool {
        !self.hide.is_empty()
    }

    /// crun's compiled filter for `profile` (base64), compiled on first use; `Err`
    /// for other runtimes, or with why crun could not compile it.
    fn filter(&self, profile: &oci_spec::runtime::LinuxSeccomp) -> Result<Arc<str>, String> {
        match &self.filters {
            Some(filters) => filters.get(profile, |p| self.compile_seccomp(p)),
            None => Err(format!("{} takes no compiled filter", self.name)),
        }
    }

    /// Has the runtime compile `profile` in a container it creates and deletes without
    /// starting it, and returns the filter it left in its state ([`crate::bpf`]).
    fn compile_seccomp(&self, profile: &serde_json::Value) -> Result<Vec<u8>, String> {
        let id = self.container_id();
        let bundle = Bundle {
            dir: self.bundles.join(&id),
        };
        let rootfs = bundle.dir.join("rootfs");
        crate::bpf::capture_root(&rootfs).map_err(|e| e.to_string())?;
        let config = crate::bpf::capture_spec(&rootfs, profile);
        fs_err::write(bundle.dir.join("config.json"), config).map_err(|e| e.to_string())?;
        // Recorded as a run's are, so that the container (its init waits for a start
        // that never comes) and the runtime die with a killed strata (`Store` reaps).
        let pid_file = self.pid_dir.as_ref().map(|d| PidFile(d.join(&id)));
        let log = bundle.dir.join("log.json");
        let mut cmd = self.command();
        cmd.arg("--log")
            .arg(&log)
            .args(["--log-format", "json", "create", "--bundle"])
            .arg(&bundle.dir);
        if let Some(f) = &pid_file {
            cmd.arg("--pid-file").arg(&f.0);
        }
        std::os::unix::process::CommandExt::process_group(cmd.arg(&id), 0);
        let group = |pid: u32| {
            let dir = self.pid_dir.as_ref()?;
            let file = PidFile(dir.join(format!("{id}.runtime")));
            std::fs::write(&file.0, format!("group {pid}")).ok()?;
            Some(file)
        };
        let bpf = crate::bpf::create(&mut cmd, &log, group).and_then(|()| {
            let file = self.state.join(&id).join("seccomp.bpf");
            match std::fs::read(&file) {
                Ok(b) if !b.is_empty() => Ok(b),
                Ok(_) => Err(format!("{} is empty", file.display())),
                Err(e) => Err(format!("reading {}: {e}", file.display())),
            }
        });
        self.force_delete(&id);
        drop(pid_file);
        bpf
    }

    /// Unique on the host, not just in our state directory: runtimes name the
    /// container's cgroups after it.
    fn container_id(&self) -> String {
        static NEXT: AtomicU64 = AtomicU64::new(0);
        let nanos = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.subsec_nanos())
            .unwrap_or(0);
        format!(
            "strata-{}-{}-{nanos:08x}",
            std::process::id(),
            NEXT.fetch_add(1, Ordering::Relaxed)
        )
    }

    /// `RUNTIME delete --force ID`, ignoring failure (it may be gone already).
    fn force_delete(&self, id: &str) {
        let _ = self
            .command()
            .args(["delete", "--force", id])
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status();
    }

    /// Writes the bundle of `req` (with a terminal for the process when `terminal`)
    /// and records the mount points the runtime will create.
    fn bundle(&self, req: &RunRequest<'_>, terminal: bool) -> Result<Prepared> {
        let p = req.process;
        let user = resolve_user(req.rootfs, &p.user)?;
        rootfs::mkdir_all(req.rootfs, &p.cwd).map_err(|source| Error::BadPath {
            what: "creating the working directory",
            path: p.cwd.clone(),
            source,
        })?;
        let id = self.container_id();
        let bundle = Bundle {
            dir: self.bundles.join(&id),
        };
        fs_err::create_dir_all(&bundle.dir)?;
        let hosts = bundle.dir.join("hosts");
        let resolv = bundle.dir.join("resolv.conf");
        fs_err::write(
            &hosts,
            format!(
                "127.0.0.1\tlocalhost {h}\n::1\tlocalhost ip6-localhost ip6-loopback {h}\n",
                h = p.hostname
            ),
        )?;
        fs_err::write(
            &resolv,
            std::fs::read("/etc/resolv.conf").unwrap_or_default(),
        )?;
        let mut spec = generate(&SpecInput {
            rootfs: req.rootfs,
            process: p,
            user: &user,
            mounts: req.mounts,
            hosts: &hosts,
            resolv_conf: &resolv,
            nofile: self.nofile,
            grantable: self.grantable,
            seccomp: self.seccomp,
        })?;
        if let Some(process) = spec.process_mut() {
            process.set_terminal(Some(terminal));
        }
        let profile = spec.linux().as_ref().and_then(|l| l.seccomp().as_ref());
        if let Some(Ok(bpf)) = profile.map(|p| self.filter(p)) {
            spec.annotations_mut()
                .get_or_insert_with(Default::default)
                .insert(crate::bpf::ANNOTATION.to_string(), bpf.to_string());
        }
        let config = bundle.dir.join("config.json");
        fs_err::write(
            &config,
            serde_json::to_vec(&spec).map_err(|e| Error::Io(e.into()))?,
        )?;
        let stubs = Stubs::record(
            req.rootfs,
            own_destinations()
                .into_iter()
                .chain(req.mounts.iter().map(|m| m.destination.as_str())),
        );
        let log = bundle.dir.join("log.json");
        Ok(Prepared {
            id,
            bundle,
            stubs,
            log,
        })
    }

    /// Runs `req` on this process's stdin, stdout and stderr (`strata debug shell`):
    /// with `terminal`, the runtime gives the process a pseudo-terminal on them. Waits
    /// for the process to end, then removes the container.
    pub async fn run_attached(&self, req: &RunRequest<'_>, terminal: bool) -> Result<ExitStatus> {
        let Prepared {
            id,
            bundle,
            stubs,
            log,
        } = self.bundle(req, terminal)?;
        let status = tokio::process::Command::from(self.command())
            .arg("--log")
            .arg(&log)
            .args(["--log-format", "json", "run", "--bundle"])
            .arg(&bundle.dir)
            .arg(&id)
            .status()
            .await
            .map_err(|source| Error::Spawn {
                runtime: self.binary.clone(),
                source,
            });
        self.force_delete(&id);
        stubs.clean();
        self.exit_status(status?, &log)
    }

    /// The process's exit code (128 + signal), or the runtime's own error when it
    /// failed before the process ran.
    fn exit_status(&self, status: std::process::ExitStatus, log: &Path) -> Result<ExitStatus> {
        let code = match (
            status.code(),
            std::os::unix::process::ExitStatusExt::signal(&status),
        ) {
            (Some(c), _) => c,
            (None, Some(sig)) => 128 + sig,
            (None, None) => 255,
        };
        if code != 0 {
            if let Some(message) = runtime_error(log) {
                return Err(Error::Start {
                    runtime: self.name.clone(),
                    message,
                });
            }
        }
        Ok(ExitStatus(code))
    }

    async fn run_inner(
        &self,
        req: &RunRequest<'_>,
        output: &mut (dyn FnMut(Stream, &str) + Send),
        cancel: &CancellationToken,
    ) -> Result<ExitStatus> {
        let Prepared {
            id,
            bundle,
            stubs,
            log,
        } = self.bundle(req, false)?;
        let mut cmd = tokio::process::Command::from(self.command());
        cmd.arg("--log")
            .arg(&log)
            .args(["--log-format", "json", "run", "--bundle"])
            .arg(&bundle.dir);
        let pid_file = self.pid_dir.as_ref().map(|d| PidFile(d.join(&id)));
        if let Some(f) = &pid_file {
            cmd.arg("--pid-file").arg(&f.0);
        }
        cmd.arg(&id)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            // Our own process group: the terminal's Ctrl-C reaches strata, which
            // cancels and kills the container itself.
            .process_group(0)
            .kill_on_drop(true);
        let mut child = cmd.spawn().map_err(|source| Error::Spawn {
            runtime: self.binary.clone(),
            source,
        })?;
        // The runtime and what it forked before the container has a pid of its own
        // (`runc init` waiting to start): a process group led by the runtime.
        let _group_file = match (&self.pid_dir, child.id()) {
            (Some(dir), Some(pid)) => {
                let file = PidFile(dir.join(format!("{id}.runtime")));
                fs_err::write(&file.0, format!("group {pid}"))?;
                Some(file)
            }
            _ => None,
        };
        // From here on, dropping this future (an aborted solve) removes the container.
        let mut guard = Running {
            runtime: self,
            id: &id,
            armed: true,
        };
        let mut out = Lines::new(child.stdout.take().expect("piped"));
        let mut err = Lines::new(child.stderr.take().expect("piped"));
        let (mut out_done, mut err_done) = (false, false);
        let mut status = None;
        loop {
            tokio::select! {
                line = out.next(), if !out_done => match line {
                    Some(l) => output(Stream::Stdout, &l),
                    None => out_done = true,
                },
                line = err.next(), if !err_done => match line {
                    Some(l) => output(Stream::Stderr, &l),
                    None => err_done = true,
                },
                s = child.wait(), if status.is_none() => {
                    status = Some(s.map_err(|source| Error::Spawn { runtime: self.binary.clone(), source })?);
                }
                _ = cancel.cancelled() => {
                    self.kill(&id, &mut child).await;
                    guard.armed = false;
                    stubs.clean();
                    return Err(Error::Cancelled);
                }
            }
            if out_done && err_done && status.is_some() {
                break;
            }
        }
        guard.armed = false;
        stubs.clean();
        let status = status.expect("the loop ends once the runtime exited");
        self.exit_status(status, &log)
    }

    /// Kills the container and waits for the runtime to exit, then removes what is
    /// left of the container.
    async fn kill(&self, id: &str, child: &mut tokio::process::Child) {
        let init = self.init_pid(id);
        let killed = tokio::process::Command::from(self.command())
            .args(["kill", id, "KILL"])
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status()
            .await
            .is_ok_and(|s| s.success());
        if !killed {
            // Not created yet (or already gone): stop the runtime itself.
            let _ = child.start_kill();
        }
        let _ = child.wait().await;
        self.force_delete(id);
        // When the runtime itself had to be stopped, the container outlives it until the
        // forced delete's SIGKILL lands: return only once it has.
        if let Some(pid) = init {
            tokio::task::spawn_blocking(move || wait_exited(pid, Duration::from_secs(2)))
                .await
                .ok();
        }
    }

    /// The container's init pid, from the pid file the runtime wrote.
    fn init_pid(&self, id: &str) -> Option<i32> {
        let text = std::fs::read_to_string(self.pid_dir.as_ref()?.join(id)).ok()?;
        text.trim().parse().ok()
    }
}

impl Executor for OciRuntime {
    fn name(&self) -> &str {
        &self.name
    }

    fn run<'a>(
        &'a self,
        req: &'a RunRequest<'a>,
        output: &'a mut (dyn FnMut(Stream, &str) + Send),
        cancel: &'a CancellationToken,
    ) -> BoxFuture<'a, Result<ExitStatus>> {
        Box::pin(self.run_inner(req, output, cancel))
    }
}

/// A written bundle, ready to run.
struct Prepared {
    id: String,
    bundle: Bundle,
    stubs: Stubs,
    log: PathBuf,
}

/// The bundle directory; removed when dropped (it may hold secrets in `config.json`).
struct Bundle {
    dir: PathBuf,
}

impl Drop for Bundle {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// A container's pid file; removed when dropped (after the runtime has exited).
struct PidFile(PathBuf);

impl Drop for PidFile {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.0);
    }
}

/// A started container: removed (`delete --force`) if the run is dropped midway.
struct Running<'a> {
    runtime: &'a OciRuntime,
    id: &'a str,
    armed: bool,
}

impl Drop for Running<'_> {
    fn drop(&mut self) {
        if self.armed {
            let init = self.runtime.init_pid(self.id);
            self.runtime.force_delete(self.id);
            if let Some(pid) = init {
                wait_exited(pid, Duration::from_secs(2));
            }
        }
    }
}

/// The runtime's own error messages (`level: error`) from its JSON log.
pub(crate) fn runtime_error(log: &Path) -> Option<String> {
    let text = std::fs::read_to_string(log).ok()?;
    let messages: Vec<String> = text
        .lines()
        .filter_map(|l| serde_json::from_str::<serde_json::Value>(l).ok())
        .filter(|v| matches!(v["level"].as_str(), Some("error" | "fatal")))
        .filter_map(|v| v["msg"].as_str().map(String::from))
        .collect();
    (!messages.is_empty()).then(|| messages.join("; "))
}

/// `name` in `$PATH`, then in the sbin directories a non-root `$PATH` lacks.
fn find_in_path(name: &str) -> Option<PathBuf> {
    let path = std::env::var_os("PATH").unwrap_or_default();
    std::env::split_paths(&path)
        .chain(
            [
                "/usr/local/sbin",
                "/usr/local/bin",
                "/usr/sbin",
                "/usr/bin",
                "/sbin",
                "/bin",
            ]
            .map(PathBuf::from),
        )
        .map(|d| d.join(name))
        .find(|p| {
            use std::os::unix::fs::PermissionsExt;
            p.metadata()
                .is_ok_and(|m| m.is_file() && m.permissions().mode() & 0o111 != 0)
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn runtime_choice_parses_names_and_paths() {
        assert_eq!(
            "auto".parse::<RuntimeChoice>().unwrap(),
            RuntimeChoice::Auto
        );
        assert_eq!(
            "runc".parse::<RuntimeChoice>().unwrap(),
            RuntimeChoice::Runc
        );
        assert_eq!(
            "crun".parse::<RuntimeChoice>().unwrap(),
            RuntimeChoice::Crun
        );
        assert_eq!(
            "/opt/bin/youki".parse::<RuntimeChoice>().unwrap(),
            RuntimeChoice::Path("/opt/bin/youki".into())
        );
    }

    #[test]
    fn a_missing_runtime_path_is_named() {
        let tmp = tempfile::tempdir().unwrap();
        let err = OciRuntime::select(&RuntimeChoice::Path("/no/such/runtime".into()), tmp.path())
            .unwrap_err();
        assert_eq!(
            err.to_string(),
            "OCI runtime \"/no/such/runtime\" not found"
        );
        let err = OciRuntime::select(&RuntimeChoice::Path("no-such-runtime".into()), tmp.path())
            .unwrap_err();
        assert_eq!(
            err.to_string(),
            "OCI runtime \"no-such-runtime\" not found in $PATH"
        );
    }

    #[test]
    fn runtime_errors_come_from_the_json_log() {
        let tmp = tempfile::tempdir().unwrap();
        let log = tmp.path().join("log.json");
        std::fs::write(
            &log,
            "{\"level\":\"warning\",\"msg\":\"meh\"}\n{\"level\":\"error\",\"msg\":\"runc run failed: exec: \\\"x\\\": not found\"}\n",
        )
        .unwrap();
        assert_eq!(
            runtime_error(&log).unwrap(),
            "runc run failed: exec: \"x\": not found"
        );
        assert_eq!(runtime_error(&tmp.path().join("none")), None);
    }
}
