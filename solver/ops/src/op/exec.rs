//! RUN: the process runs in a container (through [`strata_runtime::Executor`]) on a
//! writable overlay of input 0; the overlay's upper directory becomes the new layer.
//!
//! Output lines go to the progress as they come; a non-zero exit fails the step with
//! the command, the exit code and the last lines of output. Cancellation kills the
//! container (the executor does), then everything is unmounted and the unfinished
//! layer removed.

use std::collections::VecDeque;
use std::path::{Path, PathBuf};
use std::sync::{Arc, OnceLock};

use sha2::{Digest as _, Sha256};
use strata_digest::Digest;
use strata_graph::{Exec, NetworkMode, SecurityMode};
use strata_patternmatcher::PatternMatcher;
use strata_progress::Stream;
use strata_runtime::{Network, Process, RunRequest, RuntimeChoice, Security};
use strata_scheduler::{BoxFuture, Context, Op, OpError};
use strata_snapshot::{mount_rw, Chain, Layers, NewLayer};
use strata_store::Store;

use super::blocking;
use super::run_mount::{prepare, MountEnv};
use crate::content::{content_digest, StatCache};
use crate::run_env::{Runtimes, Secrets, SshAgents};
use crate::Output;

/// The container's hostname (BuildKit's is `buildkitsandbox`).
pub const HOSTNAME: &str = "strata";

/// How many lines of output a failure shows.
const TAIL_LINES: usize = 20;

pub struct ExecRunner {
    pub exec: Exec,
    pub store: Store,
    pub layers: Arc<Layers>,
    pub stat: Arc<StatCache>,
    /// The store's per-process tmp dir: mount points and scratch directories.
    pub tmp: PathBuf,
    pub runtimes: Arc<Runtimes>,
    pub runtime: RuntimeChoice,
    pub secrets: Secrets,
    pub ssh: SshAgents,
    /// `--allow security.insecure` was given.
    pub allow_insecure: bool,
    /// Where a failing run leaves its state for `strata debug shell`.
    pub keep_failed: Option<PathBuf>,
}

/// A RUN whose process exited non-zero.
#[derive(Debug, thiserror::Error)]
#[error(
    "process {command:?} did not complete successfully: {status}{}",
    fmt_tail(tail)
)]
pub struct ExecFailed {
    pub command: String,
    pub status: strata_runtime::ExitStatus,
    /// The last lines of output, oldest first.
    pub tail: Vec<String>,
}

fn fmt_tail(tail: &[String]) -> String {
    if tail.is_empty() {
        return String::new();
    }
    let mut s = format!("\nlast {} lines of output:", tail.len());
    for l in tail {
        s.push_str("\n  ");
        s.push_str(l);
    }
    s
}

impl Op<Output> for ExecRunner {
    /// Only when a mount reads a local directory (volatile): the definition, the
    /// chains of the other inputs and the content of what the local binds expose.
    fn content_key<'a>(
        &'a self,
        _cx: &'a Context,
        inputs: &'a [Output],
    ) -> BoxFuture<'a, Result<Option<Digest>, OpError>> {
        if !inputs.iter().any(|i| matches!(i, Output::Dir { .. })) {
            return Box::pin(async { Ok(None) });
        }
        let exec = self.exec.clone();
        let inputs = inputs.to_vec();
        let stat = self.stat.clone();
        Box::pin(blocking(move || {
            let mut h = Sha256::new();
            h.update(strata_digest::key::encode("strata/exec", &exec).as_bytes());
            for (i, input) in inputs.iter().enumerate() {
                h.update((i as u64).to_le_bytes());
                match input {
                    Output::Fs(chain) => {
                        for d in chain.layers() {
                            h.update(d.as_bytes());
                        }
                    }
                    Output::Dir { path, ignore } => {
                        let ignore =
                            if ignore.is_empty() {
                                None
                            } else {
                                Some(PatternMatcher::new(ignore).map_err(|e| {
                                    OpError::new(format!("invalid .dockerignore: {e}"))
                                })?)
                            };
                        for m in exec.mounts.iter().filter(|m| m.input == Some(i)) {
                            let selector = whole_tree(i, m.source.as_deref());
                            let d = content_digest(path, ignore.as_ref(), &selector, false, &stat)
                                .map_err(OpError::new)?;
                            h.update(d.as_bytes());
                        }
                    }
                }
            }
            Ok(Some(Digest::from_hasher(h)))
        }))
    }

    fn exec<'a>(
        &'a self,
        cx: &'a Context,
        inputs: &'a [Output],
    ) -> BoxFuture<'a, Result<Output, OpError>> {
        Box::pin(self.run(cx, inputs))
    }
}

/// A copy selector for everything under `source` of input `input` (for hashing, and
/// seeding cache mounts).
pub(super) fn whole_tree(input: usize, source: Option<&str>) -> strata_graph::Copy {
    strata_graph::Copy {
        input,
        sources: vec![source.filter(|s| !s.is_empty()).unwrap_or("/").to_string()],
        dest: "/".into(),
        chown: None,
        chmod: None,
        dir_contents_only: true,
        follow_symlinks: false,
        allow_wildcard: false,
        allow_empty_wildcard: false,
        create_dest_path: true,
        unpack: false,
        parents: false,
        exclude: Vec::new(),
    }
}

impl ExecRunner {
    async fn run(&self, cx: &Context, inputs: &[Output]) -> Result<Output, OpError> {
        let e = &self.exec;
        let command = e.args.join(" ");
        if e.security == SecurityMode::Insecure && !self.allow_insecure {
            return Err(OpError::new(format!(
                "RUN --security=insecure {command}: not allowed; pass `--allow security.insecure` to permit it"
            )));
        }
        let chain = inputs
            .first()
            .and_then(Output::chain)
            .cloned()
            .ok_or_else(|| OpError::new("the root of a RUN is not a file system"))?;
        let executor = self.runtimes.get(&self.runtime, cx).await?;

        // Mount the root and the RUN mounts (blocking work, off the async threads).
        let setup = {
            let (store, layers, tmp, inputs) = (
                self.store.clone(),
                self.layers.clone(),
                self.tmp.clone(),
                inputs.to_vec(),
            );
            let (mounts, secrets, ssh, chain) = (
                e.mounts.clone(),
                self.secrets.clone(),
                self.ssh.clone(),
                chain.clone(),
            );
            let rt = tokio::runtime::Handle::current();
            let stat = self.stat.clone();
            blocking(move || {
                let dir = tempfile::Builder::new()
                    .prefix("run-")
                    .tempdir_in(&tmp)
                    .map_err(|err| OpError::new(format!("{}: {err}", tmp.display())))?;
                let layer = layers.begin().map_err(OpError::new)?;
                let rootfs = dir.path().join("rootfs");
                fs_err::create_dir(&rootfs).map_err(OpError::new)?;
                let root =
                    mount_rw(&layers, &chain, layer.writable(), &rootfs).map_err(OpError::new)?;
                let prepared = prepare(
                    &MountEnv {
                        layers: &layers,
                        store: &store,
                        inputs: &inputs,
                        secrets: &secrets,
                        ssh: &ssh,
                        rt: &rt,
                        stat: &stat,
                        dir: dir.path(),
                    },
                    &mounts,
                )?;
                Ok(Setup {
                    prepared,
                    root,
                    layer,
                    rootfs,
                    dir,
                })
            })
            .await?
        };

        let process = process(e, e.args.clone(), &setup.prepared);
        let mut tail: VecDeque<String> = VecDeque::with_capacity(TAIL_LINES);
        let mut sink = |stream: strata_runtime::Stream, line: &str| {
            cx.log(
                match stream {
                    strata_runtime::Stream::Stdout => Stream::Stdout,
                    strata_runtime::Stream::Stderr => Stream::Stderr,
                },
                format!("{line}\n"),
            );
            if tail.len() == TAIL_LINES {
                tail.pop_front();
            }
            tail.push_back(line.to_string());
        };
        let req = RunRequest {
            rootfs: &setup.rootfs,
            process: &process,
            mounts: &setup.prepared.mounts,
        };
        let status = executor.run(&req, &mut sink, cx.cancellation_token()).await;
        drop(process);

        // Unmount everything, then store the layer (blocking again).
        let (layers, store) = (self.layers.clone(), self.store.clone());
        let keep = self.keep_failed.clone().map(|dir| {
            let step = super::debug_shell::FailedStep {
                name: cx.vertex().name.clone(),
                exec: e.clone(),
                chain: chain.clone(),
                inputs: inputs.to_vec(),
                exit_code: 0,
            };
            (dir, step)
        });
        let finished = blocking(move || {
            let Setup {
                prepared,
                root,
                layer,
                rootfs: _,
                dir,
            } = setup;
            prepared.release();
            if let Err(e) = root.unmount() {
                return Err(OpError::new(e));
            }
            let status = match status {
                Ok(s) => s,
                Err(strata_runtime::Error::Cancelled) => return Err(OpError::cancelled()),
                Err(e) => return Err(OpError::new(e)),
            };
            if !status.success() {
                if let Some((dir, mut step)) = keep {
                    step.exit_code = status.code();
                    // Best effort: a state that cannot be kept only costs the shell.
                    if step.save(&dir, layer.path()).is_ok() {
                        let holder = super::debug_shell::kept_holder(&dir);
                        let _ = store.keep(&holder, &step.layers());
                    }
                }
                return Ok(Err(status));
            }
            prune_unchanged_dirs(&layers, &chain, layer.path());
            // Off the critical path: the next step waits for the layer, not for this
            // directory to be gone.
            in_background(move || drop(dir));
            let diff_id = commit(&store, &layers, layer)?;
            Ok(Ok(chain.with(diff_id)))
        })
        .await?;
        match finished {
            Ok(chain) => Ok(Output::Fs(chain)),
            Err(status) => Err(OpError::new(ExecFailed {
                command,
                status,
                tail: tail.into(),
            })),
        }
    }
}

/// The process of `e` running `args`, with what its mounts add to the environment
/// (`type=secret,env=`, `SSH_AUTH_SOCK`).
pub(super) fn process(
    e: &Exec,
    args: Vec<String>,
    prepared: &super::run_mount::Prepared,
) -> Process {
    let mut env = e.env.clone();
    env.extend(prepared.env.iter().cloned());
    if let Some(sock) = &prepared.ssh_auth_sock {
        if !env.iter().any(|v| v.starts_with("SSH_AUTH_SOCK=")) {
            env.push(format!("SSH_AUTH_SOCK={sock}"));
        }
    }
    Process {
        args,
        env,
        cwd: if e.cwd.is_empty() {
            "/".into()
        } else {
            e.cwd.clone()
        },
        user: e.user.clone(),
        network: match e.network {
            NetworkMode::Default | NetworkMode::Host => Network::Host,
            NetworkMode::None => Network::None,
        },
        security: match e.security {
            SecurityMode::Sandbox => Security::Sandbox,
            SecurityMode::Insecure => Security::Insecure,
        },
        hostname: HOSTNAME.into(),
    }
}

/// Stores the layer a run made. Most RUN steps change nothing that a layer records
/// (`RUN echo`, a test): an empty upper directory is the empty layer, already known
/// once this process has stored one, so it is neither hashed nor moved, and its
/// scratch directory goes away off the critical path.
fn commit(store: &Store, layers: &Layers, layer: NewLayer) -> Result<Digest, OpError> {
    static EMPTY_LAYER: OnceLock<Digest> = OnceLock::new();
    let empty = std::fs::read_dir(layer.path()).is_ok_and(|mut d| d.next().is_none());
    if empty {
        if let Some(d) = EMPTY_LAYER.get().filter(|d| layers.has(d)) {
            in_background(move || drop(layer));
            return Ok(*d);
        }
    }
    let diff_id = super::commit_layer(store, layers, layer)?;
    if empty {
        let _ = EMPTY_LAYER.set(diff_id);
    }
    Ok(diff_id)
}

/// Runs `f` on the blocking pool without waiting for it (the runtime waits for it
/// before the process ends); inline outside a runtime.
fn in_background(f: impl FnOnce() + Send + 'static) {
    match tokio::runtime::Handle::try_current() {
        Ok(rt) => drop(rt.spawn_blocking(f)),
        Err(_) => f(),
    }
}

/// What a run keeps mounted; fields drop in order (mounts before their directory).
struct Setup {
    prepared: super::run_mount::Prepared,
    root: strata_snapshot::MountGuard,
    layer: NewLayer,
    rootfs: PathBuf,
    dir: tempfile::TempDir,
}

/// Removes directories from `upper` that overlayfs copied up but that hold nothing
/// new: empty in the upper, not opaque, and with the same mode, owner, times and
/// extended attributes as in `chain`. Mount points the runtime made (`/etc` for
/// `/etc/hosts` in an image without one) leave such directories behind; they must not
/// turn into layer entries.
fn prune_unchanged_dirs(layers: &Layers, chain: &Chain, upper: &Path) {
    let mut candidates = Vec::new();
    collect_empty_dirs(upper, Path::new(""), &mut candidates);
    // Deepest first: removing a child can empty its parent.
    candidates.sort_by_key(|p| std::cmp::Reverse(p.components().count()));
    for rel in candidates {
        let up = upper.join(&rel);
        let is_empty = std::fs::read_dir(&up).is_ok_and(|mut d| d.next().is_none());
        if is_empty && lower_dir(layers, chain, &rel).is_some_and(|lower| same_dir(&up, &lower)) {
            let _ = std::fs::remove_dir(&up);
        }
    }
}

/// The directory of a stored layer that the merged view of `chain` shows at `rel`
/// (its metadata is the view's), found as overlayfs finds it, without mounting: the
/// topmost layer that has `rel`, unless a layer above hides it — a whiteout or a
/// non-directory at `rel` or at a parent, or a parent directory marked opaque in a
/// layer without `rel`. `None` when the view has no directory there.
fn lower_dir(layers: &Layers, chain: &Chain, rel: &Path) -> Option<PathBuf> {
    use std::os::unix::fs::{FileTypeExt, MetadataExt};
    let names: Vec<_> = rel.iter().collect();
    for diff_id in chain.layers().iter().rev() {
        let mut path = layers.path(diff_id);
        // A parent marked opaque in this layer hides the layers below it.
        let mut opaque = false;
        for (depth, name) in names.iter().enumerate() {
            path.push(name);
            let Ok(meta) = std::fs::symlink_metadata(&path) else {
                if opaque {
                    return None;
                }
                break; // not in this layer: the layers below decide
            };
            let whiteout = meta.file_type().is_char_device() && meta.rdev() == 0;
            if whiteout || !meta.is_dir() {
                return None;
            }
            if depth + 1 == names.len() {
                return Some(path);
            }
            opaque |= is_opaque(&path);
        }
    }
    None
}

fn is_opaque(dir: &Path) -> bool {
    xattr::get(dir, "trusted.overlay.opaque")
        .ok()
        .flatten()
        .is_some_and(|v| v == b"y")
}

/// Directories under `dir` (relative paths) that have no entries, or only such
/// directories below them.
fn collect_empty_dirs(root: &Path, rel: &Path, out: &mut Vec<PathBuf>) -> bool {
    let Ok(entries) = std::fs::read_dir(root.join(rel)) else {
        return false;
    };
    let mut only_empty_dirs = true;
    for e in entries.flatten() {
        let child = rel.join(e.file_name());
        let is_dir = e.file_type().is_ok_and(|t| t.is_dir());
        if !(is_dir && collect_empty_dirs(root, &child, out)) {
            only_empty_dirs = false;
        }
    }
    if only_empty_dirs && !rel.as_os_str().is_empty() {
        out.push(rel.to_path_buf());
    }
    only_empty_dirs
}

fn same_dir(upper: &Path, lower: &Path) -> bool {
    use std::os::unix::fs::MetadataExt;
    let (Ok(u), Ok(l)) = (
        std::fs::symlink_metadata(upper),
        std::fs::symlink_metadata(lower),
    ) else {
        return false;
    };
    if !l.is_dir()
        || (u.mode(), u.uid(), u.gid(), u.mtime(), u.mtime_nsec())
            != (l.mode(), l.uid(), l.gid(), l.mtime(), l.mtime_nsec())
    {
        return false;
    }
    if xattr::get(upper, "trusted.overlay.opaque")
        .ok()
        .flatten()
        .is_some()
    {
        return false;
    }
    xattrs(upper) == xattrs(lower)
}

/// Extended attributes except overlayfs's own.
fn xattrs(p: &Path) -> Vec<(std::ffi::OsString, Option<Vec<u8>>)> {
    let mut out: Vec<_> = xattr::list(p)
        .map(|names| {
            names
                .filter(|n| !n.to_string_lossy().starts_with("trusted.overlay."))
                .map(|n| {
                    let v = xattr::get(p, &n).ok().flatten();
                    (n, v)
                })
                .collect()
        })
        .unwrap_or_default();
    out.sort();
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn failures_show_command_code_and_the_last_lines() {
        let e = ExecFailed {
            command: "/bin/sh -c make".into(),
            status: strata_runtime::ExitStatus(2),
            tail: vec!["cc -c a.c".into(), "a.c:1: error".into()],
        };
        assert_eq!(
            e.to_string(),
            "process \"/bin/sh -c make\" did not complete successfully: exit code 2\n\
             last 2 lines of output:\n  cc -c a.c\n  a.c:1: error"
        );
    }

    /// A chain of layers, each filled by its `make` (bottom first).
    fn layers_of(tmp: &Path, make: &[&dyn Fn(&Path)]) -> (Layers, Chain) {
        let layers = Layers::new(&tmp.join("store"), &tmp.join("tmp")).unwrap();
        let mut chain = Chain::empty();
        for (i, f) in make.iter().enumerate() {
            let d = strata_digest::sha256([i as u8]);
            std::fs::create_dir_all(layers.path(&d)).unwrap();
            f(&layers.path(&d));
            chain.push(d);
        }
        (layers, chain)
    }

    fn whiteout(p: &Path) {
        rustix::fs::mknodat(
            rustix::fs::CWD,
            p,
            rustix::fs::FileType::CharacterDevice,
            rustix::fs::Mode::empty(),
            0,
        )
        .unwrap();
    }

    fn opaque(p: &Path) {
        xattr::set(p, "trusted.overlay.opaque", b"y").unwrap();
    }

    #[test]
    fn lower_dirs_are_found_as_overlayfs_finds_them() {
        if !rustix::process::geteuid().is_root() {
            eprintln!("skipped: whiteouts and trusted.* attributes need root");
            return;
        }
        let tmp = tempfile::tempdir().unwrap();
        let mkdirs = |root: &Path, dirs: &[&str]| {
            for d in dirs {
                std::fs::create_dir_all(root.join(d)).unwrap();
            }
        };
        let (layers, chain) = layers_of(
            tmp.path(),
            &[
                // bottom
                &|l| mkdirs(l, &["etc", "a/b/c", "o/x", "w/x", "f/x", "deep/y/z"]),
                &|l| {
                    mkdirs(l, &["a/b", "o", "w", "deep/y"]);
                    opaque(&l.join("o"));
                    whiteout(&l.join("w/x"));
                    std::fs::write(l.join("f"), "a file over the directory").unwrap();
                    opaque(&l.join("deep"));
                },
                // top
                &|l| mkdirs(l, &["etc"]),
            ],
        );
        let layer = |i: usize| layers.path(&chain.layers()[i]);
        let found = |rel: &str| lower_dir(&layers, &chain, Path::new(rel));
        assert_eq!(found("etc"), Some(layer(2).join("etc")), "the topmost");
        assert_eq!(found("a/b"), Some(layer(1).join("a/b")));
        assert_eq!(
            found("a/b/c"),
            Some(layer(0).join("a/b/c")),
            "through merged parents"
        );
        assert_eq!(found("o/x"), None, "under an opaque directory");
        assert_eq!(found("w/x"), None, "whited out");
        assert_eq!(found("f/x"), None, "under a file");
        assert_eq!(found("deep/y/z"), None, "under an opaque grandparent");
        assert_eq!(found("nowhere"), None);
        assert_eq!(lower_dir(&layers, &Chain::empty(), Path::new("etc")), None);
        // The kernel agrees.
        let view = tmp.path().join("view");
        std::fs::create_dir(&view).unwrap();
        let _mounted = strata_snapshot::mount_chain(&layers, &chain, &view).unwrap();
        for rel in [
            "etc", "a/b", "a/b/c", "o/x", "w/x", "f/x", "deep/y/z", "deep/y",
        ] {
            assert_eq!(found(rel).is_some(), view.join(rel).is_dir(), "{rel}");
        }
    }

    #[test]
    fn empty_directory_trees_are_collected_bottom_up() {
        let tmp = tempfile::tempdir().unwrap();
        let r = tmp.path();
        std::fs::create_dir_all(r.join("etc")).unwrap();
        std::fs::create_dir_all(r.join("a/b/c")).unwrap();
        std::fs::create_dir_all(r.join("d/e")).unwrap();
        std::fs::write(r.join("d/file"), "x").unwrap();
        let mut out = Vec::new();
        collect_empty_dirs(r, Path::new(""), &mut out);
        out.sort();
        let expected: Vec<PathBuf> = ["a", "a/b", "a/b/c", "d/e", "etc"]
            .iter()
            .map(PathBuf::from)
            .collect();
        assert_eq!(out, expected);
    }
}
