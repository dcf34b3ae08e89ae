//! Our own layer-tar applier (never `tar::Archive::unpack`): extracts an
//! uncompressed layer tar into an empty directory in overlay upperdir format.
//!
//! `.wh.NAME` becomes a whiteout (char device 0/0), `DIR/.wh..wh..opq` the
//! `trusted.overlay.opaque=y` attribute on DIR, other `.wh..wh.*` names (AUFS
//! bookkeeping) are skipped. Refused: absolute paths, `..`, writing through any
//! symlink, hardlinks to anything but an earlier non-directory entry of the
//! same tar. Kept: mode with setuid/setgid/sticky, uid/gid, mtime (seconds;
//! atime is set equal), extended attributes except `trusted.overlay.*`,
//! symlinks, hardlinks, devices, fifos, empty directories. Directories that
//! the tar implies but does not list get mode 0755, owner 0:0 and mtime 0, so
//! the same tar always gives the same directory.

use std::collections::{BTreeMap, HashSet};
use std::fs::File;
use std::io::{Read, Write};
use std::os::fd::{AsFd, OwnedFd};

use rustix::fs::{AtFlags, FileType, Gid, Mode, OFlags, Timespec, Timestamps, Uid, XattrFlags};
use rustix::io::Errno;

use crate::confine::{components, join, Confined};
use crate::error::{Error, Result};
use crate::whiteout::{OPAQUE_MARKER, OPAQUE_XATTR, OVERLAY_XATTR_PREFIX, WHITEOUT_PREFIX};

/// `.wh..wh.*`: AUFS metadata names, skipped with everything under them.
const AUFS_META_PREFIX: &[u8] = b".wh..wh.";

/// Extracts every entry of `tar` into `dir`, which must be empty.
pub(crate) fn apply_tar(dir: &std::path::Path, tar: impl Read) -> Result<()> {
    let mut applier = Applier {
        dir: Confined::open(dir)?,
        written: HashSet::new(),
        dir_times: BTreeMap::new(),
    };
    let mut archive = tar::Archive::new(tar);
    for entry in archive.entries().map_err(Error::Tar)? {
        let entry = entry.map_err(Error::Tar)?;
        applier.entry(entry)?;
    }
    applier.finish()
}

struct Applier {
    dir: Confined,
    /// Non-directory paths written so far: the only valid hardlink targets.
    written: HashSet<Vec<u8>>,
    /// Directory mtimes, set last (children change them) and deepest first.
    dir_times: BTreeMap<Vec<u8>, i64>,
}

/// The metadata of one entry, PAX records applied.
struct Meta {
    mode: u32,
    uid: Uid,
    gid: Gid,
    mtime: i64,
    xattrs: Vec<(String, Vec<u8>)>,
}

impl Applier {
    fn entry<R: Read>(&mut self, mut entry: tar::Entry<'_, R>) -> Result<()> {
        let raw_path = entry.path_bytes().into_owned();
        let shown = String::from_utf8_lossy(&raw_path).into_owned();
        let refuse = |reason| Error::UnsafeEntry {
            path: shown.clone(),
            reason,
        };
        let comps = components(&raw_path).map_err(refuse)?;
        let header = entry.header();
        let mut kind = header.entry_type();
        if header.as_bytes()[156] == 0 && raw_path.ends_with(b"/") {
            // Pre-POSIX tars mark directories only by the trailing slash.
            kind = tar::EntryType::Directory;
        }
        if kind == tar::EntryType::XGlobalHeader {
            return Ok(());
        }
        let Some((name, parent)) = comps.split_last() else {
            if kind == tar::EntryType::Directory {
                // The layer root's metadata is fixed (0755, 0:0): ignore "./".
                return Ok(());
            }
            return Err(refuse("entry names the layer root"));
        };
        let rel = join(&comps);
        if parent.iter().any(|c| c.starts_with(AUFS_META_PREFIX)) {
            // Inside AUFS bookkeeping (`.wh..wh.plnk/...`): not content.
            return Ok(());
        }

        if let Some(target) = name.strip_prefix(WHITEOUT_PREFIX) {
            if *name == OPAQUE_MARKER {
                return self.opaque(parent, &shown);
            }
            if name.starts_with(AUFS_META_PREFIX) {
                return Ok(());
            }
            if target.is_empty() || target == b"." || target == b".." {
                return Err(refuse("whiteout of an invalid name"));
            }
            return self.whiteout(parent, target, &shown);
        }

        let meta = self.meta(&mut entry, &shown)?;
        let mut created = Vec::new();
        let parent_fd = self.dir.dir(parent, Some(&mut created), &shown)?;
        for dir in created {
            self.dir_times.insert(dir, 0);
        }
        let link = entry.link_name_bytes().map(|l| l.into_owned());

        match kind {
            tar::EntryType::Directory => {
                let existing = self.stat(&parent_fd, name, &rel)?;
                if existing.is_some() && existing != Some(FileType::Directory) {
                    self.remove(&parent_fd, name, &rel)?;
                }
                if existing != Some(FileType::Directory) {
                    rustix::fs::mkdirat(&parent_fd, *name, Mode::from_raw_mode(0o700))
                        .map_err(|e| self.dir.err("creating directory", &rel, e.into()))?;
                }
                let fd = self.dir.open_dir(&comps, &shown)?;
                self.set_fd_meta(&fd, &rel, &meta, false)?;
                self.dir_times.insert(rel, meta.mtime);
            }
            tar::EntryType::Regular | tar::EntryType::Continuous | tar::EntryType::GNUSparse => {
                self.replace(&parent_fd, name, &rel)?;
                let fd = rustix::fs::openat(
                    &parent_fd,
                    *name,
                    OFlags::WRONLY
                        | OFlags::CREATE
                        | OFlags::EXCL
                        | OFlags::NOFOLLOW
                        | OFlags::CLOEXEC,
                    Mode::from_raw_mode(0o600),
                )
                .map_err(|e| self.dir.err("creating", &rel, e.into()))?;
                let mut file = File::from(fd);
                self.copy(&mut entry, &mut file, &rel)?;
                self.set_fd_meta(file.as_fd(), &rel, &meta, true)?;
                self.written.insert(rel);
            }
            tar::EntryType::Symlink => {
                let target = link.ok_or_else(|| refuse("symlink without a target"))?;
                self.replace(&parent_fd, name, &rel)?;
                rustix::fs::symlinkat(&target[..], &parent_fd, *name)
                    .map_err(|e| self.dir.err("creating symlink", &rel, e.into()))?;
                self.set_at_meta(&parent_fd, name, &rel, &meta, false)?;
                self.written.insert(rel);
            }
            tar::EntryType::Link => {
                let target = link.ok_or_else(|| refuse("hardlink without a target"))?;
                let tcomps = components(&target).map_err(refuse)?;
                let trel = join(&tcomps);
                if !self.written.contains(&trel) {
                    return Err(refuse(
                        "hardlink target is not an earlier non-directory entry of this layer",
                    ));
                }
                if trel == rel {
                    return Ok(());
                }
                let (tname, tparent) = tcomps.split_last().expect("written paths are not empty");
                let tparent_fd = self.dir.dir(tparent, None, &shown)?;
                self.replace(&parent_fd, name, &rel)?;
                rustix::fs::linkat(&tparent_fd, *tname, &parent_fd, *name, AtFlags::empty())
                    .map_err(|e| self.dir.err("creating hardlink", &rel, e.into()))?;
                self.written.insert(rel);
            }
            tar::EntryType::Char | tar::EntryType::Block | tar::EntryType::Fifo => {
                let (file_type, dev) = match kind {
                    tar::EntryType::Fifo => (FileType::Fifo, 0),
                    _ => {
                        let header = entry.header();
                        let major = header.device_major().ok().flatten().unwrap_or(0);
                        let minor = header.device_minor().ok().flatten().unwrap_or(0);
                        let ft = if kind == tar::EntryType::Char {
                            FileType::CharacterDevice
                        } else {
                            FileType::BlockDevice
                        };
                        (ft, rustix::fs::makedev(major, minor))
                    }
                };
                self.replace(&parent_fd, name, &rel)?;
                rustix::fs::mknodat(
                    &parent_fd,
                    *name,
                    file_type,
                    Mode::from_raw_mode(0o600),
                    dev,
                )
                .map_err(|e| self.dir.err("creating node", &rel, e.into()))?;
                self.set_at_meta(&parent_fd, name, &rel, &meta, true)?;
                self.written.insert(rel);
            }
            other => {
                return Err(Error::UnsupportedEntry {
                    path: shown,
                    kind: other.as_byte() as char,
                })
            }
        }
        Ok(())
    }

    fn meta<R: Read>(&self, entry: &mut tar::Entry<'_, R>, shown: &str) -> Result<Meta> {
        let refuse = |reason| Error::UnsafeEntry {
            path: shown.to_string(),
            reason,
        };
        let header = entry.header();
        let mode = header.mode().map_err(Error::Tar)? & 0o7777;
        let uid = header.uid().map_err(Error::Tar)?;
        let gid = header.gid().map_err(Error::Tar)?;
        let mut mtime = header.mtime().map_err(Error::Tar)? as i64;
        let id = |v: u64| u32::try_from(v).ok().filter(|&v| v != u32::MAX);
        let uid = Uid::from_raw(id(uid).ok_or_else(|| refuse("uid out of range"))?);
        let gid = Gid::from_raw(id(gid).ok_or_else(|| refuse("gid out of range"))?);
        let mut xattrs = Vec::new();
        if let Some(pax) = entry.pax_extensions().map_err(Error::Tar)? {
            for record in pax {
                let record = record.map_err(Error::Tar)?;
                let Ok(key) = record.key() else { continue };
                if key == "mtime" {
                    let value = String::from_utf8_lossy(record.value_bytes());
                    let secs = value.split('.').next().unwrap_or("");
                    mtime = secs.parse().map_err(|_| refuse("malformed PAX mtime"))?;
                } else if let Some(name) = key.strip_prefix("SCHILY.xattr.") {
                    if !name.starts_with(OVERLAY_XATTR_PREFIX) {
                        xattrs.push((name.to_string(), record.value_bytes().to_vec()));
                    }
                }
            }
        }
        Ok(Meta {
            mode,
            uid,
            gid,
            mtime,
            xattrs,
        })
    }

    fn copy<R: Read>(
        &self,
        entry: &mut tar::Entry<'_, R>,
        file: &mut File,
        rel: &[u8],
    ) -> Result<()> {
        let mut buf = vec![0u8; 128 * 1024];
        loop {
            let n = match entry.read(&mut buf) {
                Ok(0) => return Ok(()),
                Ok(n) => n,
                Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
                Err(e) => return Err(Error::Tar(e)),
            };
            file.write_all(&buf[..n])
                .map_err(|e| self.dir.err("writing", rel, e))?;
        }
    }

    /// Owner, mode, xattrs and times through an open file or directory.
    fn set_fd_meta(&self, fd: impl AsFd, rel: &[u8], meta: &Meta, times: bool) -> Result<()> {
        let fd = fd.as_fd();
        // chown clears setuid bits and file capabilities: it goes first.
        rustix::fs::fchown(fd, Some(meta.uid), Some(meta.gid))
            .map_err(|e| self.dir.err("chown", rel, e.into()))?;
        rustix::fs::fchmod(fd, Mode::from_raw_mode(meta.mode))
            .map_err(|e| self.dir.err("chmod", rel, e.into()))?;
        for (name, value) in &meta.xattrs {
            rustix::fs::fsetxattr(fd, name.as_str(), value, XattrFlags::empty())
                .map_err(|e| self.dir.err("setting extended attribute on", rel, e.into()))?;
        }
        if times {
            rustix::fs::futimens(fd, &timestamps(meta.mtime))
                .map_err(|e| self.dir.err("setting times of", rel, e.into()))?;
        }
        Ok(())
    }

    /// The same for symlinks and special files, by name in their parent.
    fn set_at_meta(
        &self,
        parent: &OwnedFd,
        name: &[u8],
        rel: &[u8],
        meta: &Meta,
        chmod: bool,
    ) -> Result<()> {
        rustix::fs::chownat(
            parent,
            name,
            Some(meta.uid),
            Some(meta.gid),
            AtFlags::SYMLINK_NOFOLLOW,
        )
        .map_err(|e| self.dir.err("chown", rel, e.into()))?;
        if chmod {
            // Not a symlink (we just made it), so following is harmless.
            rustix::fs::chmodat(
                parent,
                name,
                Mode::from_raw_mode(meta.mode),
                AtFlags::empty(),
            )
            .map_err(|e| self.dir.err("chmod", rel, e.into()))?;
        }
        if !meta.xattrs.is_empty() {
            // No fd for these; the parent was just opened confined and only
            // this process writes the directory.
            let host = self.dir.host_path(rel);
            for (name, value) in &meta.xattrs {
                rustix::fs::lsetxattr(&host, name.as_str(), value, XattrFlags::empty())
                    .map_err(|e| self.dir.err("setting extended attribute on", rel, e.into()))?;
            }
        }
        rustix::fs::utimensat(
            parent,
            name,
            &timestamps(meta.mtime),
            AtFlags::SYMLINK_NOFOLLOW,
        )
        .map_err(|e| self.dir.err("setting times of", rel, e.into()))?;
        Ok(())
    }

    fn whiteout(&mut self, parent: &[&[u8]], target: &[u8], shown: &str) -> Result<()> {
        let mut created = Vec::new();
        let parent_fd = self.dir.dir(parent, Some(&mut created), shown)?;
        for dir in created {
            self.dir_times.insert(dir, 0);
        }
        let rel = join(&[parent, &[target]].concat());
        self.replace(&parent_fd, target, &rel)?;
        rustix::fs::mknodat(
            &parent_fd,
            target,
            FileType::CharacterDevice,
            Mode::empty(),
            rustix::fs::makedev(0, 0),
        )
        .map_err(|e| self.dir.err("creating whiteout", &rel, e.into()))?;
        Ok(())
    }

    fn opaque(&mut self, dir: &[&[u8]], shown: &str) -> Result<()> {
        if dir.is_empty() {
            // The root of a layer cannot be opaque in overlayfs.
            return Ok(());
        }
        let mut created = Vec::new();
        self.dir.dir(dir, Some(&mut created), shown)?;
        for d in created {
            self.dir_times.insert(d, 0);
        }
        let fd = self.dir.open_dir(dir, shown)?;
        rustix::fs::fsetxattr(&fd, OPAQUE_XATTR, b"y", XattrFlags::empty())
            .map_err(|e| self.dir.err("marking opaque", &join(dir), e.into()))?;
        Ok(())
    }

    fn stat(&self, parent: &OwnedFd, name: &[u8], rel: &[u8]) -> Result<Option<FileType>> {
        match rustix::fs::statat(parent, name, AtFlags::SYMLINK_NOFOLLOW) {
            Ok(st) => Ok(Some(FileType::from_raw_mode(st.st_mode))),
            Err(Errno::NOENT) => Ok(None),
            Err(e) => Err(self.dir.err("stat", rel, e.into())),
        }
    }

    /// Removes whatever is at `name` so a new entry can take its place.
    fn replace(&mut self, parent: &OwnedFd, name: &[u8], rel: &[u8]) -> Result<()> {
        if self.stat(parent, name, rel)?.is_some() {
            self.remove(parent, name, rel)?;
        }
        Ok(())
    }

    /// Removes an existing entry (a directory with its contents).
    fn remove(&mut self, parent: &OwnedFd, name: &[u8], rel: &[u8]) -> Result<()> {
        if self.stat(parent, name, rel)? == Some(FileType::Directory) {
            // The parent was opened confined and nothing else writes here.
            fs_err::remove_dir_all(self.dir.host_path(rel))?;
            self.dir.forget();
            let under =
                |p: &Vec<u8>| p == rel || (p.starts_with(rel) && p.get(rel.len()) == Some(&b'/'));
            self.dir_times.retain(|p, _| !under(p));
            self.written.retain(|p| !under(p));
        } else {
            rustix::fs::unlinkat(parent, name, AtFlags::empty())
                .map_err(|e| self.dir.err("removing", rel, e.into()))?;
            self.written.remove(rel);
        }
        Ok(())
    }

    fn finish(mut self) -> Result<()> {
        let times = std::mem::take(&mut self.dir_times);
        // Reverse order visits children before their parents.
        for (rel, mtime) in times.iter().rev() {
            let comps: Vec<&[u8]> = rel.split(|&b| b == b'/').collect();
            let (name, parent) = comps.split_last().expect("non-empty");
            let shown = String::from_utf8_lossy(rel).into_owned();
            let parent_fd = self.dir.dir(parent, None, &shown)?;
            rustix::fs::utimensat(
                &parent_fd,
                *name,
                &timestamps(*mtime),
                AtFlags::SYMLINK_NOFOLLOW,
            )
            .map_err(|e| self.dir.err("setting times of", rel, e.into()))?;
        }
        Ok(())
    }
}

fn timestamps(mtime: i64) -> Timestamps {
    let t = Timespec {
        tv_sec: mtime,
        tv_nsec: 0,
    };
    Timestamps {
        last_access: t,
        last_modification: t,
    }
}
