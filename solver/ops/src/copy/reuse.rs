//! Incremental COPY: reusing what an earlier run of the same step wrote. Unchanged
//! files are hardlinked from the previous layer instead of copied (layers are
//! immutable, so sharing inodes between them is safe), and directories the step
//! creates keep the previous run's mtime.

use std::fs::Metadata;
use std::os::unix::fs::MetadataExt;
use std::path::Path;

use super::{io, CopyError, Writer};
use crate::fsutil::Attrs;

impl Writer<'_> {
    /// A directory this step creates (it is not in the base) keeps the mtime it got
    /// when an earlier run of the same step created it, if that run made it with the
    /// same owner and mode: "now" either way, and a re-run's layer then starts with the
    /// same bytes as the previous one, so its diffID resumes from the previous layer's
    /// checkpoints instead of hashing everything again.
    pub(super) fn previous_dir_mtime(&self, rel: &Path, attrs: &Attrs) -> Option<(i64, i64)> {
        let r = self.env.reuse?;
        let p = std::fs::symlink_metadata(r.prev.join(rel)).ok()?;
        let same = p.is_dir()
            && p.mode() & 0o7777 == attrs.mode
            && (p.uid(), p.gid()) == (attrs.uid, attrs.gid);
        same.then(|| (p.mtime(), p.mtime_nsec()))
    }

    /// Hardlinks `target` from the previous layer when the source file is unchanged
    /// (same stamp as when an earlier build hashed it) and the previous copy has exactly
    /// the size, mtime, mode and owner this copy would give it.
    pub(super) fn reuse_previous(
        &self,
        src: &Path,
        meta: &Metadata,
        attrs: &Attrs,
        target: &Path,
        out: &Path,
    ) -> Result<bool, CopyError> {
        let Some(r) = self.env.reuse else {
            return Ok(false);
        };
        if !self.env.from_context {
            return Ok(false);
        }
        let prev = r.prev.join(target);
        let Ok(p) = std::fs::symlink_metadata(&prev) else {
            return Ok(false);
        };
        let same = p.is_file()
            && p.len() == meta.len()
            && (p.mtime(), p.mtime_nsec()) == attrs.mtime
            && p.mode() & 0o7777 == attrs.mode
            && (p.uid(), p.gid()) == (attrs.uid, attrs.gid)
            && r.stat.unchanged(src, meta);
        if !same {
            return Ok(false);
        }
        std::fs::hard_link(&prev, out).map_err(io(out))?;
        Ok(true)
    }
}

/// A destination directory of an incremental copy, open in the previous layer and in
/// the new one, so unchanged files are checked and linked by name within them instead
/// of by whole paths (three walks of ~10 components per file).
pub(super) struct ReuseDirs {
    pub(super) prev: std::sync::Arc<rustix::fd::OwnedFd>,
    pub(super) out: std::sync::Arc<rustix::fd::OwnedFd>,
}

impl Writer<'_> {
    /// [`ReuseDirs`] of `dest` (relative to the layer), when this copy may reuse files
    /// and the previous layer has that directory.
    pub(super) fn reuse_dirs(&self, dest: &Path) -> Option<ReuseDirs> {
        use rustix::fs::{Mode, OFlags};
        let r = self.env.reuse.filter(|_| self.env.from_context)?;
        let flags = OFlags::RDONLY | OFlags::DIRECTORY | OFlags::CLOEXEC;
        let prev = rustix::fs::open(r.prev.join(dest), flags, Mode::empty()).ok()?;
        // Made (or checked to be a directory) by this copy: never a symlink.
        let out = self.env.diff.join(dest);
        let out = rustix::fs::open(out, flags | OFlags::NOFOLLOW, Mode::empty()).ok()?;
        Some(ReuseDirs {
            prev: prev.into(),
            out: out.into(),
        })
    }

    /// [`Writer::reuse_previous`]'s test for a child `name` of a [`ReuseDirs`]
    /// directory: the source is an unchanged, singly linked regular file and the
    /// previous copy has exactly the attributes this one would get.
    pub(super) fn unchanged_in_prev(
        &self,
        here: &ReuseDirs,
        name: &std::ffi::OsStr,
        rel: &Path,
        meta: &Metadata,
    ) -> bool {
        use rustix::fs::{AtFlags, FileType};
        let Some(r) = self.env.reuse else {
            return false;
        };
        if !meta.is_file() || meta.nlink() > 1 {
            return false;
        }
        let Ok(p) = rustix::fs::statat(&*here.prev, name, AtFlags::SYMLINK_NOFOLLOW) else {
            return false;
        };
        let (uid, gid) = self.owner_for(meta);
        FileType::from_raw_mode(p.st_mode) == FileType::RegularFile
            && p.st_size as u64 == meta.len()
            && (p.st_mtime, p.st_mtime_nsec as i64) == (meta.mtime(), meta.mtime_nsec())
            && p.st_mode & 0o7777 == self.mode_for(meta)
            && (p.st_uid, p.st_gid) == (uid, gid)
            && r.stat.unchanged(&self.env.src_root.join(rel), meta)
    }

    /// Links `name` of the previous layer into the new one; false (nothing done) when
    /// the name exists there already.
    pub(super) fn link_now(
        &self,
        here: &ReuseDirs,
        name: &std::ffi::OsStr,
        target: &Path,
    ) -> Result<bool, CopyError> {
        use rustix::fs::AtFlags;
        match rustix::fs::linkat(&*here.prev, name, &*here.out, name, AtFlags::empty()) {
            Ok(()) => Ok(true),
            Err(rustix::io::Errno::EXIST) => Ok(false),
            Err(e) => Err(CopyError::Io {
                path: self.env.diff.join(target),
                source: e.into(),
            }),
        }
    }
}
