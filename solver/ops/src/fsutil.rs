//! Small filesystem helpers the file operations share: metadata copying without
//! following symlinks, whiteouts, and resolving a path inside a root the way a container
//! would (symlinks followed, never escaping the root).

use std::fs::Metadata;
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::{Component, Path, PathBuf};

use rustix::fs::{AtFlags, Mode, Timespec, Timestamps, CWD};

/// Owner, mode and mtime to give a new entry.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Attrs {
    pub uid: u32,
    pub gid: u32,
    /// Permission bits incl. setuid/setgid/sticky (no file type bits).
    pub mode: u32,
    pub mtime: (i64, i64),
}

impl Attrs {
    pub fn of(meta: &Metadata) -> Self {
        Attrs {
            uid: meta.uid(),
            gid: meta.gid(),
            mode: meta.mode() & 0o7777,
            mtime: (meta.mtime(), meta.mtime_nsec()),
        }
    }
}

/// Sets owner, mode (unless a symlink) and mtime of `path`, never following a final symlink.
pub fn apply_attrs(path: &Path, attrs: &Attrs, is_symlink: bool) -> std::io::Result<()> {
    rustix::fs::chownat(
        CWD,
        path,
        Some(rustix::fs::Uid::from_raw(attrs.uid)),
        Some(rustix::fs::Gid::from_raw(attrs.gid)),
        AtFlags::SYMLINK_NOFOLLOW,
    )?;
    if !is_symlink {
        // chown clears setuid/setgid, so the mode goes after it.
        std::fs::set_permissions(path, std::fs::Permissions::from_mode(attrs.mode))?;
    }
    let ts = Timespec {
        tv_sec: attrs.mtime.0,
        tv_nsec: attrs.mtime.1,
    };
    rustix::fs::utimensat(
        CWD,
        path,
        &Timestamps {
            last_access: ts,
            last_modification: ts,
        },
        AtFlags::SYMLINK_NOFOLLOW,
    )?;
    Ok(())
}

/// [`apply_attrs`] on an open regular file.
pub fn apply_attrs_fd(file: &std::fs::File, attrs: &Attrs) -> std::io::Result<()> {
    rustix::fs::fchown(
        file,
        Some(rustix::fs::Uid::from_raw(attrs.uid)),
        Some(rustix::fs::Gid::from_raw(attrs.gid)),
    )?;
    // chown clears setuid/setgid, so the mode goes after it.
    rustix::fs::fchmod(file, Mode::from_raw_mode(attrs.mode))?;
    let ts = Timespec {
        tv_sec: attrs.mtime.0,
        tv_nsec: attrs.mtime.1,
    };
    rustix::fs::futimens(
        file,
        &Timestamps {
            last_access: ts,
            last_modification: ts,
        },
    )?;
    Ok(())
}

/// An overlay whiteout (char device 0/0) at `path`: "deleted in this layer".
pub fn whiteout(path: &Path) -> std::io::Result<()> {
    rustix::fs::mknodat(
        CWD,
        path,
        rustix::fs::FileType::CharacterDevice,
        Mode::empty(),
        0,
    )?;
    Ok(())
}

pub fn is_whiteout(meta: &Metadata) -> bool {
    use std::os::unix::fs::FileTypeExt;
    meta.file_type().is_char_device() && meta.rdev() == 0
}

/// Lexically normalises a container path to components relative to the root
/// (`/a/./b/../c` → `a/c`); `..` never climbs above the root.
pub fn rel_components(p: &str) -> PathBuf {
    let mut out = PathBuf::new();
    for c in Path::new(p).components() {
        match c {
            Component::Normal(s) => out.push(s),
            Component::ParentDir => {
                out.pop();
            }
            _ => {}
        }
    }
    out
}

/// Resolves `rel` inside `root` as the container would see it: symlinks (absolute ones
/// relative to `root`) are followed, `..` stops at the root, at most 255 links. The
/// result is relative to `root` and contains no symlink except possibly the last
/// component when `follow_last` is false. Missing components are kept as written.
pub fn resolve_in_root(root: &Path, rel: &Path, follow_last: bool) -> std::io::Result<PathBuf> {
    let mut todo: Vec<std::ffi::OsString> = rel
        .components()
        .rev()
        .filter_map(|c| match c {
            Component::Normal(s) => Some(s.to_os_string()),
            Component::ParentDir => Some("..".into()),
            _ => None,
        })
        .collect();
    let mut out = PathBuf::new();
    let mut links = 0;
    while let Some(c) = todo.pop() {
        if c == ".." {
            out.pop();
            continue;
        }
        let candidate = out.join(&c);
        let last = todo.is_empty();
        match std::fs::symlink_metadata(root.join(&candidate)) {
            Ok(m) if m.file_type().is_symlink() && (follow_last || !last) => {
                links += 1;
                if links > 255 {
                    return Err(std::io::Error::other(format!(
                        "too many levels of symbolic links resolving {}",
                        rel.display()
                    )));
                }
                let target = std::fs::read_link(root.join(&candidate))?;
                if target.is_absolute() {
                    out = PathBuf::new();
                }
                for t in target.components().rev() {
                    match t {
                        Component::Normal(s) => todo.push(s.to_os_string()),
                        Component::ParentDir => todo.push("..".into()),
                        _ => {}
                    }
                }
            }
            _ => out = candidate,
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn resolves_symlinks_without_escaping() {
        let root = tempfile::tempdir().unwrap();
        let r = root.path();
        std::fs::create_dir_all(r.join("opt/app")).unwrap();
        std::os::unix::fs::symlink("/opt/app", r.join("app")).unwrap();
        std::os::unix::fs::symlink("../../../../etc", r.join("opt/escape")).unwrap();
        std::os::unix::fs::symlink("loop2", r.join("loop1")).unwrap();
        std::os::unix::fs::symlink("loop1", r.join("loop2")).unwrap();
        assert_eq!(
            resolve_in_root(r, Path::new("app/x"), true).unwrap(),
            PathBuf::from("opt/app/x")
        );
        assert_eq!(
            resolve_in_root(r, Path::new("app"), false).unwrap(),
            PathBuf::from("app")
        );
        assert_eq!(
            resolve_in_root(r, Path::new("opt/escape/passwd"), true).unwrap(),
            PathBuf::from("etc/passwd")
        );
        assert!(resolve_in_root(r, Path::new("loop1/x"), true).is_err());
        assert_eq!(rel_components("/a/./b/../c/"), PathBuf::from("a/c"));
        assert_eq!(rel_components("../../x"), PathBuf::from("x"));
    }
}
