//! RUN --mount=type=cache: persistent directories under `<store>/cache-mounts/`, never
//! part of a layer.
//!
//! A cache without `from=` is named by the sha256 of its id (the target when no id is
//! given) and made empty with `mode`/`uid`/`gid` on first use. With `from=STAGE` (or an
//! image or a context) and `source=PATH`, it is *seeded*, as in BuildKit: made on
//! first use as a copy of PATH in that input (owners, modes, times, links and extended
//! attributes kept; `mode`/`uid`/`gid` do not apply), and named by the id and what it
//! was seeded from, so a different seed starts a different cache and the same seed
//! finds the cache it filled before.
//!
//! `sharing=locked` holds the store lock `cache-mount:<name>` for the run; `private`
//! takes the first of `<name>`, `<name>-1`, ... that nobody holds.

use std::path::{Path, PathBuf};

use sha2::{Digest as _, Sha256};
use strata_graph::{CacheSharing, Mount};
use strata_patternmatcher::PatternMatcher;
use strata_scheduler::OpError;

use super::exec::whole_tree;
use super::run_mount::{context_view, Hold, MountEnv, Prepared};
use crate::copy::{copy, CopyEnv};
use crate::fsutil::{apply_attrs, rel_components, resolve_in_root, Attrs};
use crate::view::View;
use crate::Output;

fn err(msg: impl Into<String>) -> OpError {
    OpError::new(msg.into())
}

/// What a cache mount is made of; `(mode, uid, gid)` apply to an unseeded one.
pub(super) struct CacheSpec<'a> {
    pub id: &'a str,
    pub sharing: CacheSharing,
    pub owner: (u32, u32, u32),
}

/// The directory to bind for cache mount `m` (the `n`th mount of the step); locks and
/// views it needs go to `out`.
pub(super) fn cache_dir(
    env: &MountEnv<'_>,
    m: &Mount,
    n: usize,
    spec: &CacheSpec<'_>,
    out: &mut Prepared,
) -> Result<PathBuf, OpError> {
    let id = if spec.id.is_empty() {
        m.target.as_str()
    } else {
        spec.id
    };
    let seed = match m.input {
        Some(i) => Some(seed(env, m, i, n, out)?),
        None => None,
    };
    let key = match &seed {
        None => strata_digest::sha256(id).hex(),
        Some(s) => strata_digest::sha256(format!("{id}\0seed\0{}", s.key)).hex(),
    };
    let base = env.store.root().join("cache-mounts");
    fs_err::create_dir_all(&base).map_err(OpError::new)?;
    let name = claim(env, &key, spec.sharing, out)?;
    crate::records::use_cache_mount(env.store, &name, id, &m.target);
    let path = base.join(name);
    if path.is_dir() {
        return Ok(path);
    }
    match seed {
        None => make_empty(&path, spec.owner)?,
        Some(s) => make_seeded(env.store.tmp_dir(), &path, &s.root, s.from_context)?,
    }
    Ok(path)
}

/// The cache's name under the `sharing` rule, holding its lock in `out` when the rule
/// takes one.
fn claim(
    env: &MountEnv<'_>,
    key: &str,
    sharing: CacheSharing,
    out: &mut Prepared,
) -> Result<String, OpError> {
    let lock_name = |k: &str| format!("cache-mount:{k}");
    Ok(match sharing {
        CacheSharing::Shared => key.to_string(),
        CacheSharing::Locked => {
            let lock = env.store.lock(&lock_name(key)).map_err(OpError::new)?;
            out.holds.push(Hold::Lock(lock));
            key.to_string()
        }
        CacheSharing::Private => {
            let mut n = 0usize;
            loop {
                let k = if n == 0 {
                    key.to_string()
                } else {
                    format!("{key}-{n}")
                };
                if let Some(lock) = env.store.try_lock(&lock_name(&k)).map_err(OpError::new)? {
                    out.holds.push(Hold::Lock(lock));
                    break k;
                }
                n += 1;
            }
        }
    })
}

fn make_empty(path: &Path, (mode, uid, gid): (u32, u32, u32)) -> Result<(), OpError> {
    match std::fs::create_dir(path) {
        Ok(()) => std::os::unix::fs::chown(path, Some(uid), Some(gid))
            .and_then(|()| {
                use std::os::unix::fs::PermissionsExt;
                std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode))
            })
            .map_err(|e| err(format!("preparing cache mount {}: {e}", path.display()))),
        Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => Ok(()),
        Err(e) => Err(err(format!("creating {}: {e}", path.display()))),
    }
}

/// Where a seeded cache comes from.
struct Seed {
    /// The source directory on the host (inside a view held by the run).
    root: PathBuf,
    /// What identifies the seed's content: the input's layers (or the context's
    /// content digest) and the source path.
    key: String,
    from_context: bool,
}

fn seed(
    env: &MountEnv<'_>,
    m: &Mount,
    input: usize,
    n: usize,
    out: &mut Prepared,
) -> Result<Seed, OpError> {
    let source = m.source.as_deref().unwrap_or("/");
    let what = || format!("RUN --mount=type=cache,target={},source={source}", m.target);
    let i = env
        .inputs
        .get(input)
        .ok_or_else(|| err(format!("{}: its input is missing", what())))?;
    let mut h = Sha256::new();
    h.update(source.as_bytes());
    let (root, from_context) = match i {
        Output::Fs(chain) => {
            for d in chain.layers() {
                h.update(d.as_bytes());
            }
            let view = View::open(env.layers, chain, env.dir)?;
            let root = view.path().to_path_buf();
            out.holds.push(Hold::View(view));
            (root, false)
        }
        Output::Dir { path, ignore } => {
            let matcher = if ignore.is_empty() {
                None
            } else {
                Some(
                    PatternMatcher::new(ignore)
                        .map_err(|e| err(format!("invalid .dockerignore: {e}")))?,
                )
            };
            let d = crate::content::content_digest(
                path,
                matcher.as_ref(),
                &whole_tree(input, Some(source)),
                false,
                env.stat,
            )
            .map_err(|e| err(format!("{}: {e}", what())))?;
            h.update(d.as_bytes());
            let root = context_view(env, path, ignore, &format!("cache-{n}"), false, out)?;
            (root, true)
        }
    };
    let rel = resolve_in_root(&root, &rel_components(source), true).map_err(OpError::new)?;
    let dir = root.join(rel);
    match std::fs::metadata(&dir) {
        Ok(meta) if meta.is_dir() => {}
        Ok(_) => return Err(err(format!("{}: not a directory", what()))),
        Err(_) => {
            return Err(err(format!(
                "{}: no such directory in the mount's source",
                what()
            )))
        }
    }
    Ok(Seed {
        root: dir,
        key: strata_digest::Digest::from_hasher(h).hex(),
        from_context,
    })
}

/// Copies `src` into a new directory in `scratch` (the store's tmp/ session, on the
/// same file system, which a killed process does not leave behind) and renames it into
/// place (unless another process got there first).
fn make_seeded(scratch: &Path, path: &Path, src: &Path, from_context: bool) -> Result<(), OpError> {
    let tmp = tempfile::Builder::new()
        .prefix("seed-")
        .tempdir_in(scratch)
        .map_err(|e| err(format!("{}: {e}", scratch.display())))?;
    let fill = tmp.path().join("dir");
    let empty = tmp.path().join("empty");
    for d in [&fill, &empty] {
        fs_err::create_dir(d).map_err(OpError::new)?;
    }
    let fail = |e: &dyn std::fmt::Display| {
        err(format!(
            "seeding cache mount {} from {}: {e}",
            path.display(),
            src.display()
        ))
    };
    copy(
        &CopyEnv {
            src_root: src,
            src_ignore: None,
            from_context,
            base_root: &empty,
            diff: &fill,
            owner: None,
            reuse: None,
        },
        &whole_tree(0, None),
    )
    .map_err(|e| fail(&e))?;
    let meta = std::fs::metadata(src).map_err(|e| fail(&e))?;
    let mut attrs = Attrs::of(&meta);
    if from_context {
        (attrs.uid, attrs.gid) = (0, 0);
    }
    apply_attrs(&fill, &attrs, false).map_err(|e| fail(&e))?;
    match rustix::fs::renameat_with(
        rustix::fs::CWD,
        &fill,
        rustix::fs::CWD,
        path,
        rustix::fs::RenameFlags::NOREPLACE,
    ) {
        Ok(()) => Ok(()),
        // Seeded by another process meanwhile: theirs is as good.
        Err(rustix::io::Errno::EXIST) if path.is_dir() => Ok(()),
        Err(e) => Err(fail(&e)),
    }
}
