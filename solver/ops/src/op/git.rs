//! `ADD <git url>#<ref>:<subdir>`: a checkout of a git repository in a new layer, made
//! by the system `git` (run directly, never through a shell, with prompts off).
//!
//! The ref (branch, tag or full commit sha; the remote's HEAD when absent) is resolved
//! with `git ls-remote` on every build, as BuildKit does, and the vertex is keyed by the
//! commit it names (plus the sub-directory and `--keep-git-dir`): an unchanged ref is a
//! cache hit without a clone, a moved one re-runs. On a miss the commit is fetched with
//! `--depth 1` where the server allows it and checked out; `.git` is dropped unless
//! `--keep-git-dir` (and no sub-directory) asks for it. Entries get owner 0:0, modes
//! 0644/0755 (git records only the executable bit) and the commit time as mtime, so the
//! same commit always gives the same layer.

use std::io;
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::sync::{Arc, Mutex};

use strata_digest::{key, Digest};
use strata_progress::Stream;
use strata_scheduler::{BoxFuture, CachePolicy, Context, Op, OpError};
use strata_snapshot::{Chain, Layers};
use strata_store::Store;

use super::{blocking, commit_layer};
use crate::fsutil::{apply_attrs, rel_components, resolve_in_root, Attrs};
use crate::Output;

/// How many trailing lines of git's stderr an error shows.
const STDERR_LINES: usize = 8;

#[derive(Debug, thiserror::Error)]
pub enum GitError {
    #[error("{remote}#{reference}: git {command} failed ({status}){stderr}")]
    Command {
        remote: String,
        reference: String,
        command: String,
        status: String,
        /// The last lines of git's stderr, each on a line of its own.
        stderr: String,
    },
    #[error("{remote}#{reference}: running git {command}")]
    Spawn {
        remote: String,
        reference: String,
        command: String,
        #[source]
        source: io::Error,
    },
    #[error("{remote}: no ref {reference:?} (looked for it as given, as a tag and as a branch)")]
    NoSuchRef { remote: String, reference: String },
    #[error(
        "{remote}#{reference}: the ref moved from {expected} to {actual} during the build; \
         build again"
    )]
    Moved {
        remote: String,
        reference: String,
        expected: String,
        actual: String,
    },
    #[error("{remote}#{reference}: no directory {subdir:?} in the repository")]
    NoSubdir {
        remote: String,
        reference: String,
        subdir: String,
    },
    #[error("{remote}: invalid {what} {value:?}")]
    Invalid {
        remote: String,
        what: &'static str,
        value: String,
    },
    #[error("{path}")]
    Io {
        path: PathBuf,
        #[source]
        source: io::Error,
    },
}

/// What `ADD <git url>` checks out (the graph's `Source::Git`).
#[derive(Debug, Clone)]
pub struct GitSpec {
    pub remote: String,
    /// Branch, tag, full ref name or full commit sha; the remote's HEAD when absent.
    pub reference: Option<String>,
    pub subdir: Option<String>,
    pub keep_git_dir: bool,
}

pub struct GitRunner {
    inner: Arc<Inner>,
}

struct Inner {
    store: Store,
    layers: Arc<Layers>,
    /// Scratch space on the layers' file system (the store's session directory).
    tmp: PathBuf,
    spec: GitSpec,
    /// Left by `content_key` for `exec`.
    resolved: Mutex<Option<Resolved>>,
}

#[derive(Debug, Clone)]
struct Resolved {
    /// The commit sha the ref names.
    commit: String,
    /// The full ref name to fetch (`refs/tags/v1`, `HEAD`); `None`: fetch the sha.
    fetch: Option<String>,
}

impl GitRunner {
    pub fn new(store: Store, layers: Arc<Layers>, tmp: PathBuf, spec: GitSpec) -> Self {
        GitRunner {
            inner: Arc::new(Inner {
                store,
                layers,
                tmp,
                spec,
                resolved: Mutex::new(None),
            }),
        }
    }
}

impl Op<Output> for GitRunner {
    fn cache_policy(&self) -> CachePolicy {
        CachePolicy::ContentOnly
    }

    fn content_key<'a>(
        &'a self,
        cx: &'a Context,
        _: &'a [Output],
    ) -> BoxFuture<'a, Result<Option<Digest>, OpError>> {
        Box::pin(async move {
            let inner = &self.inner;
            let r = inner.resolve(cx).await?;
            let key = key::encode(
                "strata/git-content",
                &(&r.commit, inner.subdir(), inner.spec.keep_git_dir),
            );
            *inner.resolved.lock().unwrap() = Some(r);
            Ok(Some(key))
        })
    }

    fn exec<'a>(
        &'a self,
        cx: &'a Context,
        _: &'a [Output],
    ) -> BoxFuture<'a, Result<Output, OpError>> {
        Box::pin(async move {
            let inner = self.inner.clone();
            let stashed = inner.resolved.lock().unwrap().clone();
            let r = match stashed {
                Some(r) => r,
                None => inner.resolve(cx).await?,
            };
            let work = tempfile::Builder::new()
                .prefix("git-")
                .tempdir_in(&inner.tmp)
                .map_err(|source| inner.io(&inner.tmp, source))?;
            let repo = work.path().join("repo");
            let time = inner.checkout(cx, &r, &repo).await?;
            let diff_id = blocking({
                let inner = inner.clone();
                move || inner.assemble(&repo, time)
            })
            .await?;
            drop(work);
            Ok(Output::Fs(Chain::empty().with(diff_id)))
        })
    }
}

impl Inner {
    fn reference(&self) -> String {
        self.spec
            .reference
            .clone()
            .unwrap_or_else(|| "HEAD".to_string())
    }

    /// The sub-directory as a clean relative path; empty for the root.
    fn subdir(&self) -> String {
        let s = self.spec.subdir.as_deref().unwrap_or("");
        rel_components(s).to_string_lossy().into_owned()
    }

    fn io(&self, path: &Path, source: io::Error) -> OpError {
        OpError::new(GitError::Io {
            path: path.to_path_buf(),
            source,
        })
    }

    /// Runs `git <args>` (in `dir` when given) and returns its stdout. Killed when the
    /// build is cancelled.
    async fn git(
        &self,
        cx: &Context,
        dir: Option<&Path>,
        args: &[&str],
    ) -> Result<String, OpError> {
        let mut cmd = tokio::process::Command::new("git");
        if let Some(d) = dir {
            cmd.arg("-C").arg(d);
        }
        cmd.args(args)
            .env("GIT_TERMINAL_PROMPT", "0")
            .env("LC_ALL", "C")
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .kill_on_drop(true);
        if std::env::var_os("GIT_SSH_COMMAND").is_none() && std::env::var_os("GIT_SSH").is_none() {
            // ssh asks on the terminal (host keys, passphrases) unless told not to.
            cmd.env("GIT_SSH_COMMAND", "ssh -o BatchMode=yes");
        }
        let command = subcommand(args);
        let out = tokio::select! {
            biased;
            _ = cx.cancelled() => return Err(OpError::cancelled()),
            out = cmd.output() => out.map_err(|source| OpError::new(GitError::Spawn {
                remote: self.spec.remote.clone(),
                reference: self.reference(),
                command: command.clone(),
                source,
            }))?,
        };
        if !out.status.success() {
            let stderr = String::from_utf8_lossy(&out.stderr);
            let lines: Vec<&str> = stderr.lines().filter(|l| !l.trim().is_empty()).collect();
            let tail = lines[lines.len().saturating_sub(STDERR_LINES)..]
                .iter()
                .map(|l| format!("\n  {l}"))
                .collect::<String>();
            return Err(OpError::new(GitError::Command {
                remote: self.spec.remote.clone(),
                reference: self.reference(),
                command,
                status: out.status.to_string(),
                stderr: tail,
            }));
        }
        Ok(String::from_utf8_lossy(&out.stdout).into_owned())
    }

    fn check_args(&self) -> Result<(), OpError> {
        let invalid = |what, value: &str| {
            Err(OpError::new(GitError::Invalid {
                remote: self.spec.remote.clone(),
                what,
                value: value.to_string(),
            }))
        };
        if self.spec.remote.is_empty() || self.spec.remote.starts_with('-') {
            return invalid("remote", &self.spec.remote);
        }
        if let Some(r) = &self.spec.reference {
            if r.starts_with('-') || r.contains([' ', '\t', '\n', ':', '^', '~', '\\']) {
                return invalid("ref", r);
            }
        }
        Ok(())
    }

    /// The commit the ref names now: `git ls-remote`, unless the ref is a commit sha.
    async fn resolve(&self, cx: &Context) -> Result<Resolved, OpError> {
        self.check_args()?;
        let reference = self.reference();
        if is_commit_sha(&reference) {
            return Ok(Resolved {
                commit: reference,
                fetch: None,
            });
        }
        // Patterns match name tails; an annotated tag's peeled line needs its own.
        let peeled = format!("{reference}^{{}}");
        let out = self
            .git(
                cx,
                None,
                &["ls-remote", "--", &self.spec.remote, &reference, &peeled],
            )
            .await?;
        let r = pick_ref(&out, &reference).ok_or_else(|| {
            OpError::new(GitError::NoSuchRef {
                remote: self.spec.remote.clone(),
                reference: reference.clone(),
            })
        })?;
        cx.log(
            Stream::Stderr,
            format!("{}#{reference} is {}\n", self.spec.remote, r.commit),
        );
        Ok(r)
    }

    /// Fetches and checks out `r` into a new repository at `repo`; returns the commit
    /// time.
    async fn checkout(&self, cx: &Context, r: &Resolved, repo: &Path) -> Result<i64, OpError> {
        let remote = self.spec.remote.as_str();
        let repo_s = repo
            .to_str()
            .ok_or_else(|| self.io(repo, io::Error::other("not UTF-8")))?;
        self.git(
            cx,
            None,
            &[
                "-c",
                "init.defaultBranch=master",
                "init",
                "-q",
                "--",
                repo_s,
            ],
        )
        .await?;
        let at = Some(repo);
        self.git(cx, at, &["remote", "add", "--", "origin", remote])
            .await?;
        match &r.fetch {
            Some(name) => {
                self.fetch_shallow_or_full(cx, repo, name).await?;
                let got = self
                    .git(
                        cx,
                        at,
                        &["rev-parse", "--verify", "-q", "FETCH_HEAD^{commit}"],
                    )
                    .await?;
                let got = got.trim();
                if got != r.commit {
                    return Err(OpError::new(GitError::Moved {
                        remote: remote.to_string(),
                        reference: self.reference(),
                        expected: r.commit.clone(),
                        actual: got.to_string(),
                    }));
                }
                if self.spec.keep_git_dir
                    && (name.starts_with("refs/heads/") || name.starts_with("refs/tags/"))
                {
                    // The kept repository knows the branch or tag by name.
                    self.git(cx, at, &["update-ref", name, "FETCH_HEAD"])
                        .await?;
                }
            }
            None => {
                // Servers may refuse an unadvertised sha; then fetch the branches and
                // tags in full and look for it there.
                let by_sha = self.fetch_shallow_or_full(cx, repo, &r.commit).await;
                if by_sha.is_err() {
                    self.git(
                        cx,
                        at,
                        &[
                            "fetch",
                            "-q",
                            "--no-tags",
                            "origin",
                            "+refs/heads/*:refs/remotes/origin/*",
                            "+refs/tags/*:refs/tags/*",
                        ],
                    )
                    .await?;
                }
                let want = format!("{}^{{commit}}", r.commit);
                self.git(cx, at, &["cat-file", "-e", &want]).await?;
            }
        }
        self.git(
            cx,
            at,
            &[
                "-c",
                "advice.detachedHead=false",
                "checkout",
                "-q",
                "--detach",
                &r.commit,
            ],
        )
        .await?;
        let _ = std::fs::remove_file(repo.join(".git/FETCH_HEAD"));
        if repo.join(".gitmodules").exists() {
            self.git(
                cx,
                at,
                &[
                    "-c",
                    "protocol.file.allow=user",
                    "submodule",
                    "update",
                    "-q",
                    "--init",
                    "--recursive",
                    "--depth=1",
                ],
            )
            .await?;
        }
        let time = self
            .git(cx, at, &["show", "-s", "--format=%ct", &r.commit])
            .await?;
        Ok(time.trim().parse::<i64>().unwrap_or(0).max(0))
    }

    /// `git fetch --depth=1 origin <what>`, again without `--depth` when the server
    /// cannot make a shallow pack (dumb HTTP, old servers).
    async fn fetch_shallow_or_full(
        &self,
        cx: &Context,
        repo: &Path,
        what: &str,
    ) -> Result<(), OpError> {
        let at = Some(repo);
        match self
            .git(
                cx,
                at,
                &["fetch", "-q", "--depth=1", "--no-tags", "origin", what],
            )
            .await
        {
            Ok(_) => Ok(()),
            Err(e) if e.to_string().contains("shallow") || e.to_string().contains("depth") => self
                .git(cx, at, &["fetch", "-q", "--no-tags", "origin", what])
                .await
                .map(|_| ()),
            Err(e) => Err(e),
        }
    }

    /// Moves the checkout (or its sub-directory) into a new layer with normalised
    /// owners, modes and mtimes, and commits it.
    fn assemble(&self, repo: &Path, time: i64) -> Result<Digest, OpError> {
        let subdir = self.subdir();
        let keep_git = self.spec.keep_git_dir && subdir.is_empty();
        if !keep_git {
            let git_dir = repo.join(".git");
            std::fs::remove_dir_all(&git_dir).map_err(|e| self.io(&git_dir, e))?;
        }
        let src = if subdir.is_empty() {
            repo.to_path_buf()
        } else {
            let rel = resolve_in_root(repo, Path::new(&subdir), true)
                .map_err(|e| self.io(&repo.join(&subdir), e))?;
            let p = repo.join(rel);
            if !p.is_dir() {
                return Err(OpError::new(GitError::NoSubdir {
                    remote: self.spec.remote.clone(),
                    reference: self.reference(),
                    subdir,
                }));
            }
            p
        };
        let new = self.layers.begin().map_err(OpError::new)?;
        let dest = new.path().to_path_buf();
        for entry in std::fs::read_dir(&src).map_err(|e| self.io(&src, e))? {
            let entry = entry.map_err(|e| self.io(&src, e))?;
            let to = dest.join(entry.file_name());
            std::fs::rename(entry.path(), &to).map_err(|e| self.io(&to, e))?;
        }
        normalize(&dest, time, false).map_err(|(p, e)| self.io(&p, e))?;
        commit_layer(&self.store, &self.layers, new)
    }
}

/// Gives every entry under `dir` owner 0:0 and mtime `time`; outside `.git`, modes
/// become 0755 for directories and executables, 0644 for other files (what git
/// records). Children first, so nothing touches a directory after its mtime is set.
fn normalize(dir: &Path, time: i64, in_git: bool) -> Result<(), (PathBuf, io::Error)> {
    let entries = std::fs::read_dir(dir).map_err(|e| (dir.to_path_buf(), e))?;
    for entry in entries {
        let entry = entry.map_err(|e| (dir.to_path_buf(), e))?;
        let path = entry.path();
        let meta = std::fs::symlink_metadata(&path).map_err(|e| (path.clone(), e))?;
        let ft = meta.file_type();
        let git = in_git || (entry.file_name() == ".git");
        if ft.is_dir() {
            normalize(&path, time, git)?;
        }
        let mode = if git || ft.is_symlink() {
            meta.mode() & 0o7777
        } else if ft.is_dir() || meta.permissions().mode() & 0o111 != 0 {
            0o755
        } else {
            0o644
        };
        let attrs = Attrs {
            uid: 0,
            gid: 0,
            mode,
            mtime: (time, 0),
        };
        apply_attrs(&path, &attrs, ft.is_symlink()).map_err(|e| (path.clone(), e))?;
    }
    Ok(())
}

/// The git command in `args` (what follows the `-c key=value` pairs).
fn subcommand(args: &[&str]) -> String {
    let mut it = args.iter();
    while let Some(a) = it.next() {
        if *a == "-c" {
            it.next();
            continue;
        }
        return a.to_string();
    }
    String::new()
}

fn is_commit_sha(s: &str) -> bool {
    (s.len() == 40 || s.len() == 64) && s.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f'))
}

/// Picks `reference` from `git ls-remote` output the way git resolves a short name:
/// as given (`HEAD`, `refs/…`), then as a tag, then as a branch. An annotated tag
/// resolves to the commit it points at (its `^{}` line).
fn pick_ref(ls_remote: &str, reference: &str) -> Option<Resolved> {
    let refs: Vec<(&str, &str)> = ls_remote
        .lines()
        .filter_map(|l| l.split_once('\t'))
        .map(|(sha, name)| (sha.trim(), name.trim()))
        .collect();
    let lookup = |name: &str| refs.iter().find(|(_, n)| *n == name).map(|(s, _)| *s);
    let candidates = [
        reference.to_string(),
        format!("refs/tags/{reference}"),
        format!("refs/heads/{reference}"),
    ];
    for name in candidates {
        let peeled = lookup(&format!("{name}^{{}}"));
        if let Some(sha) = peeled.or_else(|| lookup(&name)) {
            if is_commit_sha(sha) {
                return Some(Resolved {
                    commit: sha.to_string(),
                    fetch: Some(name),
                });
            }
        }
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    const LS: &str = "\
1111111111111111111111111111111111111111\tHEAD
1111111111111111111111111111111111111111\trefs/heads/main
2222222222222222222222222222222222222222\trefs/heads/v1
3333333333333333333333333333333333333333\trefs/tags/v1
4444444444444444444444444444444444444444\trefs/tags/v1^{}
5555555555555555555555555555555555555555\trefs/tags/light
6666666666666666666666666666666666666666\trefs/remotes/x/main
";

    #[test]
    fn refs_resolve_like_git() {
        let r = pick_ref(LS, "HEAD").unwrap();
        assert_eq!(r.commit, "1".repeat(40));
        assert_eq!(r.fetch.as_deref(), Some("HEAD"));
        let r = pick_ref(LS, "main").unwrap();
        assert_eq!(r.commit, "1".repeat(40));
        assert_eq!(r.fetch.as_deref(), Some("refs/heads/main"));
        // A tag wins over a branch of the same name, and is peeled.
        let r = pick_ref(LS, "v1").unwrap();
        assert_eq!(r.commit, "4".repeat(40));
        assert_eq!(r.fetch.as_deref(), Some("refs/tags/v1"));
        assert_eq!(pick_ref(LS, "light").unwrap().commit, "5".repeat(40));
        assert_eq!(
            pick_ref(LS, "refs/heads/v1").unwrap().commit,
            "2".repeat(40)
        );
        assert!(pick_ref(LS, "x/main").is_none());
        assert!(pick_ref(LS, "nope").is_none());
    }

    #[test]
    fn commit_shas() {
        assert!(is_commit_sha(&"a".repeat(40)));
        assert!(!is_commit_sha(&"A".repeat(40)));
        assert!(!is_commit_sha("abc123"));
    }
}
