//! COPY/ADD into a new layer directory, with Docker's semantics.
//!
//! The source is a directory tree (the build context, or the merged view of a stage or
//! image); the destination is described by the merged view of the base (read only, to
//! learn what exists) and the *diff* directory of the layer being made, which receives
//! only what the copy writes plus the parent directories it needs (with their existing
//! metadata, so a copy never changes a pre-existing parent).
//!
//! Rules (Docker's documentation and BuildKit's `fileop`): a directory source copies its
//! *contents*; a file goes to `DEST/NAME` when DEST ends in `/`, is an existing
//! directory, or several sources were given, and to DEST otherwise; missing parents are
//! created; files from the context become 0:0, files from stages and images keep their
//! owner, unless `--chown`; `--chmod` sets the mode; mtimes are kept; hardlinks within a
//! copied tree stay hardlinks; a literal source that does not exist is an error, a
//! wildcard that matches nothing is not; `--exclude` and `.dockerignore` hide paths;
//! `--parents` keeps the source path (after a `./` pivot when there is one).

use std::collections::HashMap;
use std::fs::Metadata;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};

use strata_graph::{Chmod, Copy};
use strata_patternmatcher::PatternMatcher;

use crate::fsutil::{
    apply_attrs, apply_attrs_fd, is_whiteout, rel_components, resolve_in_root, Attrs,
};
use crate::glob::{has_wildcard, match_path};
use crate::workers::{Job, Workers};

mod reuse;

#[derive(Debug, thiserror::Error)]
pub enum CopyError {
    #[error("{path:?}: not found")]
    NotFound { path: String },
    #[error("unknown {kind} {name:?}: not in the destination's {file}")]
    UnknownOwner {
        kind: &'static str,
        name: String,
        file: &'static str,
    },
    #[error("{path}: {source}")]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("invalid --exclude pattern: {0}")]
    Exclude(#[from] strata_patternmatcher::PatternError),
    #[error("cannot copy {src:?} to {dest:?}: {reason}")]
    Conflict {
        src: String,
        dest: String,
        reason: String,
    },
}

fn io(path: &Path) -> impl FnOnce(std::io::Error) -> CopyError + '_ {
    move |source| CopyError::Io {
        path: path.to_path_buf(),
        source,
    }
}

/// Where a copy reads and writes.
pub struct CopyEnv<'a> {
    /// The source tree's root.
    pub src_root: &'a Path,
    /// Paths the source hides (the context's `.dockerignore`).
    pub src_ignore: Option<&'a PatternMatcher>,
    /// The source is the build context: ownership resets to 0:0.
    pub from_context: bool,
    /// Merged view of the destination before this step (read only).
    pub base_root: &'a Path,
    /// The new layer directory.
    pub diff: &'a Path,
    /// Resolved `--chown`.
    pub owner: Option<(u32, u32)>,
    /// The layer an earlier run of the same step produced: unchanged files are
    /// hardlinked from it instead of copied (layers are immutable, so sharing inodes
    /// between them is safe).
    pub reuse: Option<Reuse<'a>>,
}

/// Incremental COPY: where to find the previous result and how to tell a source file
/// did not change since.
#[derive(Clone, Copy)]
pub struct Reuse<'a> {
    pub prev: &'a Path,
    pub stat: &'a crate::content::StatCache,
}

/// One source path a pattern selected, relative to the source root.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Match {
    pub rel: PathBuf,
    /// For `--parents`: the part of `rel` kept under the destination.
    pub keep: PathBuf,
}

/// Resolves the copy's source patterns against the source tree (wildcards, ignore rules).
pub fn resolve_sources(
    src_root: &Path,
    ignore: Option<&PatternMatcher>,
    c: &Copy,
) -> Result<Vec<Match>, CopyError> {
    let mut out = Vec::new();
    for pattern in &c.sources {
        // A `./` inside the path marks where `--parents` starts keeping components.
        let (pivot_prefix, _) = match pattern.trim_start_matches("./").split_once("/./") {
            Some((a, b)) => (Some(rel_components(a)), b),
            None => (None, ""),
        };
        let rel = rel_components(pattern);
        let rel_str = rel.to_string_lossy().to_string();
        let mut found = Vec::new();
        if has_wildcard(&rel_str) {
            let parts: Vec<&str> = rel_str.split('/').filter(|s| !s.is_empty()).collect();
            glob_walk(src_root, Path::new(""), &parts, ignore, &mut found)?;
            found.sort();
        } else {
            let visible = ignore.is_none_or(|m| rel_str.is_empty() || !m.matches(&rel_str));
            if visible && std::fs::symlink_metadata(src_root.join(&rel)).is_ok() {
                found.push(rel.clone());
            } else {
                return Err(CopyError::NotFound {
                    path: pattern.clone(),
                });
            }
        }
        for f in found {
            let keep = match &pivot_prefix {
                Some(prefix) => f.strip_prefix(prefix).unwrap_or(&f).to_path_buf(),
                None => f.clone(),
            };
            out.push(Match { rel: f, keep });
        }
    }
    Ok(out)
}

fn glob_walk(
    root: &Path,
    at: &Path,
    parts: &[&str],
    ignore: Option<&PatternMatcher>,
    out: &mut Vec<PathBuf>,
) -> Result<(), CopyError> {
    // Walk directories, keeping paths whose components match the whole pattern.
    let dir = root.join(at);
    let Ok(rd) = std::fs::read_dir(&dir) else {
        return Ok(());
    };
    let mut names: Vec<_> = rd.filter_map(|e| e.ok()).map(|e| e.file_name()).collect();
    names.sort();
    for name in names {
        let rel = at.join(&name);
        let rel_s = rel.to_string_lossy().to_string();
        if ignore.is_some_and(|m| m.matches(&rel_s)) {
            continue;
        }
        let comps: Vec<&str> = rel_s.split('/').collect();
        if match_path(parts, &comps) {
            out.push(rel.clone());
        }
        let meta = std::fs::symlink_metadata(root.join(&rel)).map_err(io(&rel))?;
        if meta.is_dir() && could_match_below(parts, &comps) {
            glob_walk(root, &rel, parts, ignore, out)?;
        }
    }
    Ok(())
}

/// Can a descendant of `prefix` still match `parts`?
fn could_match_below(parts: &[&str], prefix: &[&str]) -> bool {
    if parts.contains(&"**") {
        let fixed = parts.iter().position(|p| *p == "**").unwrap();
        return prefix.len() <= fixed
            || parts[..fixed]
                .iter()
                .zip(prefix)
                .all(|(p, n)| crate::glob::match_component(p, n));
    }
    prefix.len() < parts.len()
        && parts
            .iter()
            .zip(prefix)
            .all(|(p, n)| crate::glob::match_component(p, n))
}

/// Copies `c` according to `env`. Returns the number of entries written.
pub fn copy(env: &CopyEnv<'_>, c: &Copy) -> Result<u64, CopyError> {
    let matches = resolve_sources(env.src_root, env.src_ignore, c)?;
    let exclude = if c.exclude.is_empty() {
        None
    } else {
        Some(PatternMatcher::new(&c.exclude)?)
    };
    let dest_rel = resolve_in_root(env.base_root, &rel_components(&c.dest), true)
        .map_err(io(Path::new(&c.dest)))?;
    let several = matches.len() > 1 || c.sources.len() > 1;
    let dest_is_dir = c.dest.ends_with('/')
        || several
        || env.base_root.join(&dest_rel).is_dir()
        || env.diff.join(&dest_rel).is_dir();
    let mut w = Writer {
        env,
        chmod: c.chmod.as_ref(),
        links: HashMap::new(),
        count: 0,
        exclude: exclude.as_ref(),
        fixups: Vec::new(),
        workers: None,
        late: Vec::new(),
        link_dirs: 0,
    };
    for m in &matches {
        let src_path = env.src_root.join(&m.rel);
        let mut meta = std::fs::symlink_metadata(&src_path).map_err(io(&src_path))?;
        let mut src_real = m.rel.clone();
        if meta.file_type().is_symlink() && c.follow_symlinks {
            src_real = resolve_in_root(env.src_root, &m.rel, true).map_err(io(&src_path))?;
            meta = std::fs::symlink_metadata(env.src_root.join(&src_real)).map_err(|_| {
                CopyError::NotFound {
                    path: m.rel.to_string_lossy().into(),
                }
            })?;
        }
        let base_target = if c.parents {
            dest_rel.join(&m.keep)
        } else {
            dest_rel.clone()
        };
        if c.parents {
            w.ensure_dir_chain(&dest_rel)?;
            w.ensure_kept_dirs(&dest_rel, m, meta.is_dir())?;
        }
        if meta.is_dir() {
            let target = base_target;
            w.ensure_dir_chain(&target)?;
            w.copy_children(&src_real, &target, &m.rel, false)?;
        } else {
            let name = m.rel.file_name().map(PathBuf::from).unwrap_or_default();
            let target = if c.parents {
                base_target
            } else if dest_is_dir {
                dest_rel.join(&name)
            } else {
                dest_rel.clone()
            };
            if let Some(parent) = target.parent() {
                w.ensure_dir_chain(parent)?;
            }
            if c.unpack && crate::unpack::is_archive(&env.src_root.join(&src_real)) {
                let into = if dest_is_dir || c.dest.ends_with('/') {
                    dest_rel.clone()
                } else {
                    target.clone()
                };
                w.ensure_dir_chain(&into)?;
                w.count += crate::unpack::extract(
                    &env.src_root.join(&src_real),
                    &env.diff.join(&into),
                    env.owner,
                )?;
                continue;
            }
            w.copy_entry(&src_real, &meta, &target)?;
        }
        // The next source may write the same names.
        w.settle()?;
    }
    // Directories made before their contents get their mtimes back.
    for (path, attrs) in w.fixups.iter().rev() {
        apply_attrs(path, attrs, false).map_err(io(path))?;
    }
    Ok(w.count)
}

struct Writer<'a> {
    env: &'a CopyEnv<'a>,
    chmod: Option<&'a Chmod>,
    /// (dev, ino) of multiply-linked source files → where the first copy went.
    links: HashMap<(u64, u64), PathBuf>,
    count: u64,
    exclude: Option<&'a PatternMatcher>,
    /// Directories created with their final attributes before their contents were
    /// written, re-applied at the end (writing into a directory changes its mtime).
    fixups: Vec<(PathBuf, Attrs)>,
    /// Copies files and links unchanged ones (incremental COPY) while the walk goes on;
    /// started at the first such file. `Err`: could not start, everything is inline.
    workers: Option<Result<Workers, ()>>,
    /// Directories whose attributes wait for the workers (see [`Writer::settle`]).
    late: Vec<(PathBuf, Attrs)>,
    /// Directories with links queued since the workers last finished everything.
    link_dirs: usize,
}

/// How many directories may have links queued at once (each holds two descriptors).
const LINK_DIRS_QUEUED: usize = 256;

impl Writer<'_> {
    /// Ensures every component of `rel` exists as a directory in the diff; components
    /// that exist in the base keep their metadata, new ones are 0755 and owned by the
    /// `--chown` user (or root).
    fn ensure_dir_chain(&mut self, rel: &Path) -> Result<(), CopyError> {
        let mut cur = PathBuf::new();
        for comp in rel.components() {
            cur.push(comp);
            let in_diff = self.env.diff.join(&cur);
            if let Ok(m) = std::fs::symlink_metadata(&in_diff) {
                if m.is_dir() {
                    continue;
                }
                return Err(CopyError::Conflict {
                    src: String::new(),
                    dest: format!("/{}", cur.display()),
                    reason: "a parent path is not a directory".into(),
                });
            }
            let attrs = match std::fs::metadata(self.env.base_root.join(&cur)) {
                Ok(m) if m.is_dir() => Attrs::of(&m),
                Ok(_) => {
                    return Err(CopyError::Conflict {
                        src: String::new(),
                        dest: format!("/{}", cur.display()),
                        reason: "a parent path exists and is not a directory".into(),
                    })
                }
                Err(_) => {
                    let (uid, gid) = self.env.owner.unwrap_or((0, 0));
                    let mut attrs = Attrs {
                        uid,
                        gid,
                        mode: 0o755,
                        mtime: now(),
                    };
                    if let Some(mtime) = self.previous_dir_mtime(&cur, &attrs) {
                        attrs.mtime = mtime;
                    }
                    // Keeps its creation time once its contents are written.
                    self.fixups.push((in_diff.clone(), attrs));
                    attrs
                }
            };
            std::fs::create_dir(&in_diff).map_err(io(&in_diff))?;
            apply_attrs(&in_diff, &attrs, false).map_err(io(&in_diff))?;
        }
        Ok(())
    }

    /// `--parents`: the directories of the kept path (`a/b` of `a/b/file`, all of `a/b`
    /// when the match is a directory) are made from the source's, with their mode and
    /// owner (and `--chown`/`--chmod`), as fsutil makes an included path and its parents;
    /// directories that already exist stay as they are.
    fn ensure_kept_dirs(
        &mut self,
        dest_rel: &Path,
        m: &Match,
        match_is_dir: bool,
    ) -> Result<(), CopyError> {
        let kept_dirs = if match_is_dir {
            m.keep.as_path()
        } else {
            match m.keep.parent() {
                Some(p) => p,
                None => return Ok(()),
            }
        };
        let skip = m.rel.components().count() - m.keep.components().count();
        let prefix: PathBuf = m.rel.components().take(skip).collect();
        let mut cur = PathBuf::new();
        for comp in kept_dirs.components() {
            cur.push(comp);
            let target = dest_rel.join(&cur);
            let in_diff = self.env.diff.join(&target);
            if std::fs::symlink_metadata(&in_diff).is_ok()
                || self.env.base_root.join(&target).exists()
            {
                self.ensure_dir_chain(&target)?;
                continue;
            }
            let src = self.env.src_root.join(prefix.join(&cur));
            let meta = std::fs::metadata(&src).map_err(io(&src))?;
            let (uid, gid) = self.owner_for(&meta);
            let attrs = Attrs {
                uid,
                gid,
                mode: self.mode_for(&meta),
                mtime: (meta.mtime(), meta.mtime_nsec()),
            };
            std::fs::create_dir(&in_diff).map_err(io(&in_diff))?;
            apply_attrs(&in_diff, &attrs, false).map_err(io(&in_diff))?;
            self.fixups.push((in_diff, attrs));
        }
        Ok(())
    }

    fn owner_for(&self, meta: &Metadata) -> (u32, u32) {
        match self.env.owner {
            Some(o) => o,
            None if self.env.from_context => (0, 0),
            None => (meta.uid(), meta.gid()),
        }
    }

    fn mode_for(&self, meta: &Metadata) -> u32 {
        let mode = meta.mode() & 0o7777;
        match self.chmod {
            None => mode,
            Some(Chmod::Octal(m)) => *m,
            Some(Chmod::Symbolic(s)) => crate::chmod::apply_symbolic(s, mode, meta.is_dir()),
        }
    }

    fn excluded(&self, rel_in_src: &Path, rel_in_match: &Path) -> bool {
        let Some(m) = self.exclude else { return false };
        let a = rel_in_src.to_string_lossy();
        let b = rel_in_match.to_string_lossy();
        m.matches(&a) || (!b.is_empty() && m.matches(&b))
    }

    /// Copies the children of source dir `src` (relative to the source root) into `dest`
    /// (`fresh`: a directory this copy just made, still empty).
    fn copy_children(
        &mut self,
        src: &Path,
        dest: &Path,
        match_root: &Path,
        fresh: bool,
    ) -> Result<(), CopyError> {
        let dir = self.env.src_root.join(src);
        let mut entries: Vec<_> = std::fs::read_dir(&dir)
            .map_err(io(&dir))?
            .filter_map(|e| e.ok())
            .collect();
        entries.sort_by_key(|e| e.file_name());
        let here = self.reuse_dirs(dest);
        let mut linked = false;
        for e in entries {
            let rel = src.join(e.file_name());
            let rel_s = rel.to_string_lossy();
            let ignored = self.env.src_ignore.is_some_and(|m| m.matches(&rel_s));
            let in_match = rel.strip_prefix(match_root).unwrap_or(&rel).to_path_buf();
            if self.excluded(&rel, &in_match) {
                continue;
            }
            // Relative to the open directory: no walk of the whole path.
            let meta = e.metadata().map_err(io(&rel))?;
            if is_whiteout(&meta) {
                continue;
            }
            let target = dest.join(e.file_name());
            if ignored {
                // An ignored directory may still hold re-included (`!`) paths; it appears
                // only as their parent, as in BuildKit (fsutil makes such parents lazily).
                let reincludes = self.env.src_ignore.is_some_and(|m| m.has_exclusions());
                if meta.is_dir() && reincludes {
                    let out = self.env.diff.join(&target);
                    let existed = std::fs::symlink_metadata(&out).is_ok();
                    let before = self.count;
                    self.copy_dir(&rel, &meta, &target, match_root)?;
                    if !existed && self.count == before + 1 {
                        std::fs::remove_dir(&out).map_err(io(&out))?;
                        self.count = before;
                        if self.late.last().is_some_and(|(p, _)| *p == out) {
                            self.late.pop();
                        }
                    }
                }
                continue;
            }
            if let Some(here) = &here {
                if self.unchanged_in_prev(here, &e.file_name(), &rel, &meta) {
                    let name = e.file_name();
                    if fresh {
                        // No name can exist yet in a directory this copy just made.
                        let path = self.env.diff.join(&target);
                        self.defer(Job::Link {
                            prev: here.prev.clone(),
                            out: here.out.clone(),
                            name,
                            path,
                        })?;
                        linked = true;
                        self.count += 1;
                        continue;
                    }
                    if self.link_now(here, &name, &target)? {
                        self.count += 1;
                        continue;
                    }
                }
            }
            self.copy_entry_in(&rel, &meta, &target, match_root)?;
        }
        if linked {
            // Queued links hold their two directories open: a bounded number of them
            // (under a soft RLIMIT_NOFILE of 1024), whatever the tree's shape.
            self.link_dirs += 1;
            if self.link_dirs >= LINK_DIRS_QUEUED {
                self.wait_workers()?;
            }
        }
        Ok(())
    }

    fn copy_dir(
        &mut self,
        rel: &Path,
        meta: &Metadata,
        target: &Path,
        match_root: &Path,
    ) -> Result<(), CopyError> {
        let out = self.env.diff.join(target);
        let fresh = match std::fs::symlink_metadata(&out) {
            Ok(m) if m.is_dir() => false,
            Ok(_) => {
                std::fs::remove_file(&out).map_err(io(&out))?;
                std::fs::create_dir(&out).map_err(io(&out))?;
                true
            }
            Err(_) => {
                std::fs::create_dir(&out).map_err(io(&out))?;
                true
            }
        };
        self.copy_children(rel, target, match_root, fresh)?;
        let (uid, gid) = self.owner_for(meta);
        let attrs = Attrs {
            uid,
            gid,
            mode: self.mode_for(meta),
            mtime: (meta.mtime(), meta.mtime_nsec()),
        };
        if self.workers.is_some() {
            // Jobs may still be writing into it.
            self.late.push((out, attrs));
        } else {
            apply_attrs(&out, &attrs, false).map_err(io(&out))?;
        }
        self.count += 1;
        Ok(())
    }

    /// Hands `job` to the workers (started now if need be), or runs it here when they
    /// could not start.
    fn defer(&mut self, job: Job) -> Result<(), CopyError> {
        let workers = self.workers.get_or_insert_with(|| {
            let n = std::thread::available_parallelism().map_or(2, |n| n.get().min(4));
            Workers::start(n).map_err(|_| ())
        });
        match workers {
            Ok(w) => {
                w.submit(job);
                Ok(())
            }
            Err(()) => job.run(),
        }
    }

    /// Returns once every job handed to the workers is done (none queued any more).
    fn wait_workers(&mut self) -> Result<(), CopyError> {
        self.link_dirs = 0;
        match &self.workers {
            Some(Ok(w)) => w.wait(),
            _ => Ok(()),
        }
    }

    /// Waits for the workers, then gives the directories they wrote into their
    /// attributes, deepest first.
    fn settle(&mut self) -> Result<(), CopyError> {
        self.wait_workers()?;
        for (path, attrs) in self.late.drain(..) {
            apply_attrs(&path, &attrs, false).map_err(io(&path))?;
        }
        Ok(())
    }

    fn copy_entry(&mut self, rel: &Path, meta: &Metadata, target: &Path) -> Result<(), CopyError> {
        let root = rel.parent().unwrap_or(Path::new("")).to_path_buf();
        self.copy_entry_in(rel, meta, target, &root)
    }

    fn copy_entry_in(
        &mut self,
        rel: &Path,
        meta: &Metadata,
        target: &Path,
        match_root: &Path,
    ) -> Result<(), CopyError> {
        let src = self.env.src_root.join(rel);
        let out = self.env.diff.join(target);
        let ft = meta.file_type();
        if ft.is_dir() {
            return self.copy_dir(rel, meta, target, match_root);
        }
        if let Ok(existing) = std::fs::symlink_metadata(&out) {
            if existing.is_dir() {
                std::fs::remove_dir_all(&out).map_err(io(&out))?;
            } else {
                std::fs::remove_file(&out).map_err(io(&out))?;
            }
        }
        let (uid, gid) = self.owner_for(meta);
        let attrs = Attrs {
            uid,
            gid,
            mode: self.mode_for(meta),
            mtime: (meta.mtime(), meta.mtime_nsec()),
        };
        if ft.is_symlink() {
            let t = std::fs::read_link(&src).map_err(io(&src))?;
            std::os::unix::fs::symlink(&t, &out).map_err(io(&out))?;
            apply_attrs(&out, &attrs, true).map_err(io(&out))?;
        } else if ft.is_file() {
            if meta.nlink() > 1 {
                let key = (meta.dev(), meta.ino());
                if let Some(first) = self.links.get(&key) {
                    std::fs::hard_link(first, &out).map_err(io(&out))?;
                    self.count += 1;
                    return Ok(());
                }
                self.links.insert(key, out.clone());
            }
            if self.reuse_previous(&src, meta, &attrs, target, &out)? {
                self.count += 1;
                return Ok(());
            }
            if meta.nlink() > 1 {
                // Later links to it are made from the copy: it must exist by then.
                copy_file(&src, &out, &attrs)?;
            } else {
                self.defer(Job::Copy { src, out, attrs })?;
            }
        } else {
            // fifo, sockets, devices: recreate the node.
            use std::os::unix::fs::FileTypeExt;
            let kind = if ft.is_fifo() {
                rustix::fs::FileType::Fifo
            } else if ft.is_char_device() {
                rustix::fs::FileType::CharacterDevice
            } else if ft.is_block_device() {
                rustix::fs::FileType::BlockDevice
            } else {
                return Ok(()); // sockets are not copied
            };
            rustix::fs::mknodat(
                rustix::fs::CWD,
                &out,
                kind,
                rustix::fs::Mode::from_raw_mode(attrs.mode),
                meta.rdev(),
            )
            .map_err(|e| CopyError::Io {
                path: out.clone(),
                source: e.into(),
            })?;
            apply_attrs(&out, &attrs, false).map_err(io(&out))?;
        }
        self.count += 1;
        Ok(())
    }
}

/// A new regular file at `out` with the contents (copy_file_range) and extended
/// attributes of `src`, then `attrs`; everything after the two opens goes through
/// the file descriptors (no more walks of the whole paths).
pub(crate) fn copy_file(src: &Path, out: &Path, attrs: &Attrs) -> Result<(), CopyError> {
    use std::os::unix::fs::OpenOptionsExt;
    let mut from = std::fs::File::open(src).map_err(io(src))?;
    let mut to = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(out)
        .map_err(io(out))?;
    std::io::copy(&mut from, &mut to).map_err(io(src))?;
    copy_xattrs(&from, &to);
    apply_attrs_fd(&to, attrs).map_err(io(out))
}

/// Extended attributes other than overlay's own travel with a copy (best effort: a
/// filesystem without xattrs simply has none).
fn copy_xattrs(src: &std::fs::File, dst: &std::fs::File) {
    use xattr::FileExt;
    let Ok(names) = src.list_xattr() else { return };
    for name in names {
        let n = name.to_string_lossy();
        if n.starts_with("trusted.overlay.") {
            continue;
        }
        if let Ok(Some(v)) = src.get_xattr(&name) {
            let _ = dst.set_xattr(&name, &v);
        }
    }
}

pub(crate) fn now() -> (i64, i64) {
    let d = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap_or_default();
    (d.as_secs() as i64, d.subsec_nanos() as i64)
}
