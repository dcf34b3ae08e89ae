//! A bind of the build context shows what a `COPY . DEST` of it would read: the paths
//! `.dockerignore` excludes are hidden. The context is never touched (no hardlinks,
//! which would change the ctimes the stat cache keys on): instead a *mask* directory
//! holds an overlay whiteout for every ignored entry, and the mount is an overlay of
//! the mask over the context (`lowerdir=MASK:CONTEXT`).
//!
//! The walk follows COPY's rules: an ignored entry is hidden, except that an ignored
//! directory stays visible as the parent of re-included (`!pattern`) paths when the
//! patterns have any, and is hidden when nothing below it is re-included. Directories
//! of the mask carry their context directory's owner, mode and times (the upper layer
//! of an overlay decides a merged directory's attributes).

use std::io;
use std::path::Path;

use strata_patternmatcher::PatternMatcher;

use crate::fsutil::{apply_attrs, whiteout, Attrs};

/// Fills `mask` (an empty directory) with whiteouts for what `ignore` hides in `ctx`.
/// Returns whether anything is hidden (without it, the context can be bound as is).
pub(super) fn build_mask(ctx: &Path, ignore: &PatternMatcher, mask: &Path) -> io::Result<bool> {
    let mut w = Masker {
        ctx,
        mask,
        ignore,
        reincludes: ignore.has_exclusions(),
        hidden: false,
    };
    w.dir(Path::new(""))?;
    Ok(w.hidden)
}

struct Masker<'a> {
    ctx: &'a Path,
    mask: &'a Path,
    ignore: &'a PatternMatcher,
    reincludes: bool,
    hidden: bool,
}

impl Masker<'_> {
    /// Masks what is ignored under `rel` (a directory of the context). Returns how many
    /// of its entries stay visible.
    fn dir(&mut self, rel: &Path) -> io::Result<usize> {
        let dir = self.ctx.join(rel);
        let mut entries: Vec<_> = std::fs::read_dir(&dir)?.collect::<Result<_, _>>()?;
        entries.sort_by_key(|e| e.file_name());
        let mut visible = 0;
        for e in entries {
            let child = rel.join(e.file_name());
            let is_dir = e.file_type()?.is_dir();
            let ignored = self.ignore.matches(&child.to_string_lossy());
            if ignored && !(is_dir && self.reincludes) {
                self.hide(&child)?;
                continue;
            }
            if is_dir {
                let shown = self.dir(&child)?;
                if ignored && shown == 0 {
                    // Nothing below was re-included: the directory goes too.
                    let m = self.mask.join(&child);
                    if m.exists() {
                        std::fs::remove_dir_all(&m)?;
                    }
                    self.hide(&child)?;
                    continue;
                }
            }
            visible += 1;
        }
        // The mask's copy of this directory (if it needed one) gets its attributes
        // last, once its entries are written.
        let m = self.mask.join(rel);
        if m.is_dir() && !rel.as_os_str().is_empty() {
            let meta = std::fs::symlink_metadata(&dir)?;
            apply_attrs(&m, &Attrs::of(&meta), false)?;
        }
        Ok(visible)
    }

    /// A whiteout for `rel`, and the mask directories on its way.
    fn hide(&mut self, rel: &Path) -> io::Result<()> {
        if let Some(parent) = rel.parent() {
            let mut cur = std::path::PathBuf::new();
            for c in parent.components() {
                cur.push(c);
                let m = self.mask.join(&cur);
                if !m.is_dir() {
                    std::fs::create_dir(&m)?;
                }
            }
        }
        whiteout(&self.mask.join(rel))?;
        self.hidden = true;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::{FileTypeExt, MetadataExt, PermissionsExt};

    fn tree(root: &Path) -> Vec<String> {
        let mut out = Vec::new();
        let mut todo = vec![root.to_path_buf()];
        while let Some(d) = todo.pop() {
            for e in std::fs::read_dir(&d).unwrap() {
                let e = e.unwrap();
                let meta = e.metadata().unwrap();
                let rel = e.path().strip_prefix(root).unwrap().display().to_string();
                if meta.is_dir() {
                    todo.push(e.path());
                    out.push(format!("{rel}/"));
                } else if meta.file_type().is_char_device() && meta.rdev() == 0 {
                    out.push(format!("{rel} (whiteout)"));
                } else {
                    out.push(rel);
                }
            }
        }
        out.sort();
        out
    }

    #[test]
    fn ignored_paths_become_whiteouts_and_reincluded_paths_keep_their_parents() {
        if !rustix::process::geteuid().is_root() {
            eprintln!("skipped: whiteouts (mknod) need root");
            return;
        }
        let tmp = tempfile::tempdir().unwrap();
        let (ctx, mask) = (tmp.path().join("ctx"), tmp.path().join("mask"));
        for d in ["src/gen", "logs", "build/keep", "build/drop", "docs"] {
            std::fs::create_dir_all(ctx.join(d)).unwrap();
        }
        for f in [
            "src/main.c",
            "src/gen/out.o",
            "src/x.o",
            "logs/a.log",
            "build/keep/yes",
            "build/drop/no",
            "docs/readme",
            "secret.env",
        ] {
            std::fs::write(ctx.join(f), f).unwrap();
        }
        std::fs::set_permissions(ctx.join("src"), std::fs::Permissions::from_mode(0o700)).unwrap();
        std::fs::create_dir(&mask).unwrap();
        let m = PatternMatcher::new(["**/*.o", "logs", "build", "!build/keep", "*.env"]).unwrap();
        assert!(build_mask(&ctx, &m, &mask).unwrap());
        assert_eq!(
            tree(&mask),
            [
                "build/",
                "build/drop (whiteout)",
                "logs (whiteout)",
                "secret.env (whiteout)",
                "src/",
                "src/gen/",
                "src/gen/out.o (whiteout)",
                "src/x.o (whiteout)",
            ]
        );
        // A mask directory has its context directory's mode.
        let mode = std::fs::metadata(mask.join("src")).unwrap().mode() & 0o7777;
        assert_eq!(mode, 0o700);

        // Nothing ignored: nothing to mask.
        let empty = tmp.path().join("empty");
        std::fs::create_dir(&empty).unwrap();
        let none = PatternMatcher::new(["nothing-matches"]).unwrap();
        assert!(!build_mask(&ctx, &none, &empty).unwrap());
        assert!(tree(&empty).is_empty());
    }
}
