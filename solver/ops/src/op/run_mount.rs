//! RUN --mount: what each graph mount becomes for the executor, and what has to stay
//! mounted, locked or alive until the process is gone.
//!
//! - `bind`: an input's chain mounted read-only ([`View`]), or, with `rw`, writable
//!   over a throwaway upper directory (writes are discarded); a local context is bound
//!   as it is, or as an overlay that hides what `.dockerignore` excludes
//!   ([`build_mask`]; `rw`: with a throwaway upper).
//! - `cache`: a directory under `<store>/cache-mounts/`, never part of a layer, empty
//!   or seeded from `from=`/`source=` on first use ([`cache_dir`]).
//! - `tmpfs`: a fresh tmpfs of the given size.
//! - `secret`: the bytes from [`Secrets`] in a file on a private tmpfs, bound read-only
//!   (default target `/run/secrets/<id>`), and/or an environment variable (`env=`).
//! - `ssh`: a socket of the run's own forwarding to the agent from [`SshAgents`]
//!   ([`AgentProxy`]), bound read-only (default target `/run/buildkit/ssh_agent.<n>`,
//!   `n` counting the step's ssh mounts); the first one is `SSH_AUTH_SOCK` unless the
//!   step's environment sets it, as in BuildKit.

use std::path::{Path, PathBuf};

use rustix::mount::{MountFlags, UnmountFlags};
use strata_graph::{Mount, MountKind};
use strata_patternmatcher::PatternMatcher;
use strata_runtime::{Mount as RtMount, MountSource};
use strata_scheduler::OpError;
use strata_snapshot::{mount_rw, Layers, MountGuard, NewLayer};
use strata_store::{KeyLock, Store};

use super::cache_mount::{cache_dir, CacheSpec};
use super::ignore_mask::build_mask;
use super::ssh_agent::AgentProxy;
use crate::content::StatCache;
use crate::fsutil::{rel_components, resolve_in_root};
use crate::run_env::{Secrets, SshAgents};
use crate::view::View;
use crate::Output;

/// Everything mount preparation reads.
pub(super) struct MountEnv<'a> {
    pub layers: &'a Layers,
    pub store: &'a Store,
    /// The vertex inputs (0 is the root file system).
    pub inputs: &'a [Output],
    pub secrets: &'a Secrets,
    pub ssh: &'a SshAgents,
    /// For the content digest of a context that seeds a cache mount.
    pub stat: &'a StatCache,
    /// Where the SSH agent proxies run.
    pub rt: &'a tokio::runtime::Handle,
    /// A directory of this run's own (mount points, upper directories).
    pub dir: &'a Path,
}

/// The executor's mounts and environment additions, and what keeps them valid.
#[derive(Default)]
pub(super) struct Prepared {
    pub mounts: Vec<RtMount>,
    /// `KEY=value` from `type=secret,env=KEY`.
    pub env: Vec<String>,
    /// The target of the first `type=ssh` mount (given or not): `SSH_AUTH_SOCK`
    /// unless the step sets it.
    pub ssh_auth_sock: Option<String>,
    /// Dropped (unmounted, unlocked, removed) after the run.
    pub(super) holds: Vec<Hold>,
}

/// Held only to be dropped: the fields are never read.
#[allow(dead_code)]
pub(super) enum Hold {
    View(View),
    /// A writable mount over a throwaway layer; the guard drops (unmounts) first.
    Scratch(MountGuard, NewLayer),
    Mounted(Unmount),
    Lock(KeyLock),
    Agent(AgentProxy),
}

impl Prepared {
    /// Unmounts and unlocks what the run needed, last first.
    pub fn release(mut self) {
        while let Some(h) = self.holds.pop() {
            drop(h);
        }
    }
}

/// Unmounts (detaching) its path when dropped.
pub(super) struct Unmount(PathBuf);

impl Drop for Unmount {
    fn drop(&mut self) {
        let _ = rustix::mount::unmount(&self.0, UnmountFlags::DETACH);
    }
}

fn err(msg: impl Into<String>) -> OpError {
    OpError::new(msg.into())
}

/// Prepares `mounts` in order of their targets' depth (a parent before what is
/// mounted inside it).
pub(super) fn prepare(env: &MountEnv<'_>, mounts: &[Mount]) -> Result<Prepared, OpError> {
    let mut out = Prepared::default();
    // ssh mounts without a target are numbered in the order they were written.
    let mut ssh_count = 0usize;
    let mounts: Vec<Mount> = mounts
        .iter()
        .map(|m| {
            let mut m = m.clone();
            if matches!(m.kind, MountKind::Ssh { .. }) {
                if m.target.is_empty() {
                    m.target = format!("/run/buildkit/ssh_agent.{ssh_count}");
                }
                if ssh_count == 0 {
                    out.ssh_auth_sock = Some(m.target.clone());
                }
                ssh_count += 1;
            }
            m
        })
        .collect();
    let mut order: Vec<&Mount> = mounts.iter().collect();
    order.sort_by_key(|m| rel_components(&m.target).components().count());
    let mut secret_dir: Option<PathBuf> = None;
    for (n, m) in order.into_iter().enumerate() {
        match &m.kind {
            MountKind::Bind { readonly } => {
                // `rw` writes land in a throwaway upper directory.
                let path = bind_source(env, m, n, !*readonly, &mut out)?;
                out.mounts.push(RtMount {
                    destination: m.target.clone(),
                    source: MountSource::Bind {
                        path,
                        readonly: *readonly,
                    },
                });
            }
            MountKind::Cache {
                id,
                sharing,
                mode,
                uid,
                gid,
                readonly,
            } => {
                let spec = CacheSpec {
                    id,
                    sharing: *sharing,
                    owner: (*mode, *uid, *gid),
                };
                let path = cache_dir(env, m, n, &spec, &mut out)?;
                out.mounts.push(RtMount {
                    destination: m.target.clone(),
                    source: MountSource::Bind {
                        path,
                        readonly: *readonly,
                    },
                });
            }
            MountKind::Tmpfs { size } => out.mounts.push(RtMount {
                destination: m.target.clone(),
                source: MountSource::Tmpfs { size: *size },
            }),
            MountKind::Secret {
                id,
                env: var,
                required,
                mode,
                uid,
                gid,
            } => {
                let Some(bytes) = env.secrets.get(id) else {
                    if *required {
                        return Err(err(format!(
                            "secret {id:?} is required but was not given (pass --secret id={id},src=PATH)"
                        )));
                    }
                    continue;
                };
                if let Some(var) = var {
                    out.env
                        .push(format!("{var}={}", String::from_utf8_lossy(bytes)));
                }
                let target = match (m.target.as_str(), var) {
                    ("", Some(_)) => continue,
                    ("", None) => format!("/run/secrets/{id}"),
                    (t, _) => t.to_string(),
                };
                let dir = match &secret_dir {
                    Some(d) => d.clone(),
                    None => {
                        let d = env.dir.join("secrets");
                        mount_secret_tmpfs(&d)?;
                        out.holds.push(Hold::Mounted(Unmount(d.clone())));
                        secret_dir = Some(d.clone());
                        d
                    }
                };
                let file = dir.join(format!("secret-{n}"));
                write_secret(&file, bytes, *mode, *uid, *gid)?;
                out.mounts.push(RtMount {
                    destination: target,
                    source: MountSource::Bind {
                        path: file,
                        readonly: true,
                    },
                });
            }
            MountKind::Ssh {
                id,
                required,
                mode,
                uid,
                gid,
            } => {
                let Some(agent) = env.ssh.get(id) else {
                    if *required {
                        return Err(err(format!(
                            "RUN --mount=type=ssh,id={id}: no SSH agent was given for {id:?} and the mount is required (pass --ssh {})",
                            if id == "default" { "default".to_string() } else { format!("{id}=SOCKET") }
                        )));
                    }
                    continue;
                };
                let sock = env.dir.join(format!("ssh-{n}.sock"));
                let proxy =
                    AgentProxy::start(env.rt, &sock, agent.to_path_buf(), (*mode, *uid, *gid))
                        .map_err(|e| {
                            err(format!(
                                "RUN --mount=type=ssh,id={id}: forwarding the agent at {}: {e}",
                                agent.display()
                            ))
                        })?;
                out.holds.push(Hold::Agent(proxy));
                out.mounts.push(RtMount {
                    destination: m.target.clone(),
                    source: MountSource::Bind {
                        path: sock,
                        readonly: true,
                    },
                });
            }
        }
    }
    Ok(out)
}

/// The host path to bind for a `type=bind` mount: its input (a chain or a local
/// directory) made available, then `source=` resolved inside it.
fn bind_source(
    env: &MountEnv<'_>,
    m: &Mount,
    n: usize,
    writable: bool,
    out: &mut Prepared,
) -> Result<PathBuf, OpError> {
    let input = m.input.and_then(|i| env.inputs.get(i)).ok_or_else(|| {
        err(format!(
            "RUN --mount target {}: its input is missing",
            m.target
        ))
    })?;
    let root: PathBuf = match (input, writable) {
        (Output::Fs(chain), false) => {
            let view = View::open(env.layers, chain, env.dir)?;
            let p = view.path().to_path_buf();
            out.holds.push(Hold::View(view));
            p
        }
        (Output::Fs(chain), true) => {
            let layer = env.layers.begin().map_err(OpError::new)?;
            let target = env.dir.join(format!("bind-{n}"));
            fs_err::create_dir(&target).map_err(OpError::new)?;
            let guard =
                mount_rw(env.layers, chain, layer.writable(), &target).map_err(OpError::new)?;
            out.holds.push(Hold::Scratch(guard, layer));
            target
        }
        (Output::Dir { path, ignore }, writable) => {
            context_view(env, path, ignore, &format!("bind-{n}"), writable, out)?
        }
    };
    let Some(source) = m.source.as_deref().filter(|s| !s.is_empty() && *s != "/") else {
        return Ok(root);
    };
    let rel = resolve_in_root(&root, &rel_components(source), true).map_err(OpError::new)?;
    let path = root.join(rel);
    if std::fs::symlink_metadata(&path).is_err() {
        return Err(err(format!(
            "RUN --mount=type=bind,source={source}: no such file or directory in the mount's source"
        )));
    }
    Ok(path)
}

/// The build context at `path` as a mount shows it: without what `.dockerignore`
/// (`ignore`) hides (an overlay of an [`ignore_mask`](super::ignore_mask) over it),
/// and, when `writable`, over a throwaway upper directory. Bound as it is when nothing
/// is hidden and nothing may be written. `name` names the run's scratch directories.
pub(super) fn context_view(
    env: &MountEnv<'_>,
    path: &Path,
    ignore: &[String],
    name: &str,
    writable: bool,
    out: &mut Prepared,
) -> Result<PathBuf, OpError> {
    let mut lowers = Vec::new();
    if !ignore.is_empty() {
        let matcher =
            PatternMatcher::new(ignore).map_err(|e| err(format!("invalid .dockerignore: {e}")))?;
        let mask = env.dir.join(format!("{name}-mask"));
        fs_err::create_dir(&mask).map_err(OpError::new)?;
        let hidden = build_mask(path, &matcher, &mask).map_err(|e| {
            err(format!(
                "hiding the .dockerignore'd files of {}: {e}",
                path.display()
            ))
        })?;
        if hidden {
            lowers.push(mask);
        }
    }
    if lowers.is_empty() && !writable {
        return Ok(path.to_path_buf());
    }
    lowers.push(path.to_path_buf());
    let target = env.dir.join(name);
    fs_err::create_dir(&target).map_err(OpError::new)?;
    let upper = if writable {
        let (upper, work) = (
            env.dir.join(format!("{name}-upper")),
            env.dir.join(format!("{name}-work")),
        );
        for d in [&upper, &work] {
            fs_err::create_dir(d).map_err(OpError::new)?;
        }
        Some((upper, work))
    } else {
        None
    };
    mount_overlay(&lowers, upper.as_ref(), &target)
        .map_err(|e| err(format!("mounting the context {}: {e}", path.display())))?;
    out.holds.push(Hold::Mounted(Unmount(target.clone())));
    Ok(target)
}

/// Mounts an overlay of `lowers` (topmost first) at `target`, writable when `upper`
/// (upper and work directories) is given, read-only otherwise.
fn mount_overlay(
    lowers: &[PathBuf],
    upper: Option<&(PathBuf, PathBuf)>,
    target: &Path,
) -> Result<(), String> {
    let check = |p: &Path| {
        if p.as_os_str()
            .as_encoded_bytes()
            .iter()
            .any(|b| matches!(b, b',' | b':'))
        {
            Err(format!(
                "the directory {} has a ',' or ':' in its path",
                p.display()
            ))
        } else {
            Ok(p.as_os_str().to_owned())
        }
    };
    let mut data = std::ffi::OsString::from("lowerdir=");
    for (i, l) in lowers.iter().enumerate() {
        if i > 0 {
            data.push(":");
        }
        data.push(check(l)?);
    }
    if let Some((u, w)) = upper {
        data.push(",upperdir=");
        data.push(check(u)?);
        data.push(",workdir=");
        data.push(check(w)?);
    }
    data.push(",redirect_dir=off,index=off,metacopy=off");
    let data = std::ffi::CString::new(data.into_encoded_bytes())
        .map_err(|_| "a NUL byte in a path".to_string())?;
    let flags = if upper.is_some() {
        MountFlags::empty()
    } else {
        MountFlags::RDONLY
    };
    rustix::mount::mount("overlay", target, "overlay", flags, data.as_c_str())
        .map_err(|e| e.to_string())
}

/// A private tmpfs for secret files: they never touch the disk.
fn mount_secret_tmpfs(dir: &Path) -> Result<(), OpError> {
    fs_err::create_dir(dir).map_err(OpError::new)?;
    rustix::mount::mount(
        "strata-secrets",
        dir,
        "tmpfs",
        MountFlags::NOSUID | MountFlags::NODEV | MountFlags::NOEXEC,
        c"mode=700,size=16m",
    )
    .map_err(|e| {
        err(format!(
            "mounting a tmpfs for secrets at {}: {e}",
            dir.display()
        ))
    })
}

fn write_secret(file: &Path, bytes: &[u8], mode: u32, uid: u32, gid: u32) -> Result<(), OpError> {
    use std::os::unix::fs::PermissionsExt;
    let fail = |e: std::io::Error| err(format!("writing a secret file: {e}"));
    std::fs::write(file, bytes).map_err(fail)?;
    std::os::unix::fs::chown(file, Some(uid), Some(gid)).map_err(fail)?;
    std::fs::set_permissions(file, std::fs::Permissions::from_mode(mode)).map_err(fail)?;
    Ok(())
}
