//! A directory that tar entries are written beneath. Every lookup goes through
//! `openat2` with `RESOLVE_BENEATH | RESOLVE_NO_SYMLINKS`: a path that climbs
//! out, crosses a symlink (even one pointing inside) or a mount is refused by
//! the kernel, so nothing is ever written through a link. A layer in overlay
//! format never needs a symlink in the parent path of one of its own entries.

use std::os::fd::OwnedFd;
use std::path::{Path, PathBuf};

use rustix::fs::{openat2, Mode, OFlags, ResolveFlags, CWD};
use rustix::io::Errno;

use crate::error::{sys, Error, Result};

const RESOLVE: ResolveFlags = ResolveFlags::BENEATH
    .union(ResolveFlags::NO_SYMLINKS)
    .union(ResolveFlags::NO_MAGICLINKS)
    .union(ResolveFlags::NO_XDEV);

pub(crate) struct Confined {
    root_path: PathBuf,
    root: OwnedFd,
    /// The directory most recently opened: consecutive entries share parents.
    last: Option<(Vec<u8>, OwnedFd)>,
}

/// Splits a tar path into its components, refusing absolute paths and `..`;
/// empty and `.` components are dropped. Returns a reason on refusal.
pub(crate) fn components(path: &[u8]) -> Result<Vec<&[u8]>, &'static str> {
    if path.first() == Some(&b'/') {
        return Err("absolute path");
    }
    let mut out = Vec::new();
    for comp in path.split(|&b| b == b'/') {
        match comp {
            b"" | b"." => {}
            b".." => return Err("path has a `..` component"),
            _ if comp.contains(&0) => return Err("path contains a NUL byte"),
            _ => out.push(comp),
        }
    }
    Ok(out)
}

pub(crate) fn join(comps: &[&[u8]]) -> Vec<u8> {
    comps.join(&b'/')
}

impl Confined {
    pub(crate) fn open(root: &Path) -> Result<Self> {
        let fd = openat2(
            CWD,
            root,
            OFlags::PATH | OFlags::DIRECTORY | OFlags::CLOEXEC,
            Mode::empty(),
            ResolveFlags::empty(),
        )
        .map_err(sys("opening", root))?;
        Ok(Confined {
            root_path: root.to_path_buf(),
            root: fd,
            last: None,
        })
    }

    /// The host path of a relative path (for messages and for calls that have
    /// no `*at` form, made only after the parent was opened confined).
    pub(crate) fn host_path(&self, rel: &[u8]) -> PathBuf {
        use std::os::unix::ffi::OsStrExt;
        self.root_path.join(std::ffi::OsStr::from_bytes(rel))
    }

    /// Forgets the cached directory (after anything was removed).
    pub(crate) fn forget(&mut self) {
        self.last = None;
    }

    /// Opens the directory `comps` (`O_PATH`). With `created` given, missing
    /// directories are made (mode 0755, owner 0:0) and their paths pushed to it;
    /// otherwise a missing directory is an error. `entry` names the tar entry
    /// for errors.
    pub(crate) fn dir(
        &mut self,
        comps: &[&[u8]],
        mut created: Option<&mut Vec<Vec<u8>>>,
        entry: &str,
    ) -> Result<OwnedFd> {
        let rel = join(comps);
        if let Some((cached, fd)) = &self.last {
            if *cached == rel {
                return fd.try_clone().map_err(|e| self.err("opening", &rel, e));
            }
        }
        if comps.is_empty() {
            return self
                .root
                .try_clone()
                .map_err(|e| self.err("opening", b"", e));
        }
        let flags = OFlags::PATH | OFlags::DIRECTORY | OFlags::CLOEXEC;
        let fd = match openat2(&self.root, &rel, flags, Mode::empty(), RESOLVE) {
            Ok(fd) => fd,
            Err(Errno::NOENT) if created.is_some() => {
                // Walk down, making what is missing.
                let mut cur = self
                    .root
                    .try_clone()
                    .map_err(|e| self.err("opening", b"", e))?;
                for (i, comp) in comps.iter().enumerate() {
                    let sub = join(&comps[..=i]);
                    cur = match openat2(&cur, *comp, flags, Mode::empty(), RESOLVE) {
                        Ok(fd) => fd,
                        Err(Errno::NOENT) => {
                            rustix::fs::mkdirat(&cur, *comp, Mode::from_raw_mode(0o755))
                                .map_err(|e| self.err("creating directory", &sub, e.into()))?;
                            rustix::fs::chmodat(
                                &cur,
                                *comp,
                                Mode::from_raw_mode(0o755),
                                rustix::fs::AtFlags::empty(),
                            )
                            .map_err(|e| self.err("chmod", &sub, e.into()))?;
                            if let Some(created) = created.as_deref_mut() {
                                created.push(sub.clone());
                            }
                            openat2(&cur, *comp, flags, Mode::empty(), RESOLVE)
                                .map_err(|e| self.lookup_err(&sub, entry, e))?
                        }
                        Err(e) => return Err(self.lookup_err(&sub, entry, e)),
                    };
                }
                cur
            }
            Err(e) => return Err(self.lookup_err(&rel, entry, e)),
        };
        let out = fd.try_clone().map_err(|e| self.err("opening", &rel, e))?;
        self.last = Some((rel, fd));
        Ok(out)
    }

    /// Opens `comps` itself as a readable directory (to set its attributes).
    pub(crate) fn open_dir(&mut self, comps: &[&[u8]], entry: &str) -> Result<OwnedFd> {
        let fd = self.dir(comps, None, entry)?;
        openat2(
            &fd,
            ".",
            OFlags::RDONLY | OFlags::DIRECTORY | OFlags::CLOEXEC,
            Mode::empty(),
            RESOLVE,
        )
        .map_err(|e| self.err("opening", &join(comps), e.into()))
    }

    fn lookup_err(&self, rel: &[u8], entry: &str, e: Errno) -> Error {
        let reason = match e {
            Errno::LOOP => "a parent directory is a symlink",
            Errno::XDEV => "path escapes the layer",
            Errno::NOTDIR => "a parent is not a directory",
            Errno::NOENT => "a parent directory does not exist",
            _ => return self.err("opening", rel, e.into()),
        };
        Error::UnsafeEntry {
            path: entry.to_string(),
            reason,
        }
    }

    pub(crate) fn err(&self, op: &'static str, rel: &[u8], source: std::io::Error) -> Error {
        Error::Sys {
            op,
            path: self.host_path(rel),
            source,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn components_refuse_escapes_and_drop_dots() {
        assert_eq!(
            components(b"./a//b/./c/").unwrap(),
            vec![&b"a"[..], b"b", b"c"]
        );
        assert!(components(b"./").unwrap().is_empty());
        assert_eq!(components(b"/etc/x"), Err("absolute path"));
        assert_eq!(components(b"a/../../x"), Err("path has a `..` component"));
        assert_eq!(components(b"a/.."), Err("path has a `..` component"));
        assert_eq!(components(b"..."), Ok(vec![&b"..."[..]]));
    }
}
