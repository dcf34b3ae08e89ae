//! Copies the merged view of a chain into a plain directory, without mounting:
//! the layers are replayed bottom to top with overlay's rules (a whiteout
//! removes, an opaque directory first empties its lower contents, a directory
//! takes the metadata of the topmost layer that has it, anything else replaces
//! what was there). Metadata is preserved: owner, mode, nanosecond mtimes,
//! extended attributes (never `trusted.overlay.*`), symlinks, devices, fifos,
//! and hardlinks within a layer.

use std::collections::{BTreeMap, HashMap};
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::{FileTypeExt, MetadataExt};
use std::path::{Path, PathBuf};

use rustix::fs::{AtFlags, FileType, Mode, Timespec, Timestamps, XattrFlags, CWD};

use crate::canonical::read_xattrs;
use crate::chain::Chain;
use crate::error::{sys, Error, Result};
use crate::layers::Layers;
use crate::whiteout::{is_opaque, is_whiteout};

/// Writes the merged view of `chain` into `dest`, which must be absent or an
/// empty directory.
pub fn materialize(layers: &Layers, chain: &Chain, dest: &Path) -> Result<()> {
    match fs_err::read_dir(dest) {
        Ok(mut entries) => {
            if entries.next().is_some() {
                return Err(Error::DestinationNotEmpty {
                    path: dest.to_path_buf(),
                });
            }
        }
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => fs_err::create_dir_all(dest)?,
        Err(e) => return Err(e.into()),
    }
    let dirs = chain
        .layers()
        .iter()
        .map(|d| layers.existing(d))
        .collect::<Result<Vec<_>>>()?;
    let mut copier = Copier {
        dir_times: BTreeMap::new(),
        links: HashMap::new(),
    };
    for dir in &dirs {
        copier.links.clear();
        copier.merge(dir, dest)?;
    }
    if let Some(top) = dirs.last() {
        let meta = fs_err::symlink_metadata(top)?;
        set_owner_mode(dest, &meta)?;
    }
    // Deepest first: setting a child's time would not change its parent's,
    // but creating children did, so parents come last.
    for (path, times) in copier.dir_times.iter().rev() {
        rustix::fs::utimensat(CWD, path, times, AtFlags::SYMLINK_NOFOLLOW)
            .map_err(sys("setting times of", path))?;
    }
    Ok(())
}

struct Copier {
    /// Directory times to set at the end (later layers add children).
    dir_times: BTreeMap<PathBuf, Timestamps>,
    /// (dev, ino) of multiply linked files of the current layer → copy.
    links: HashMap<(u64, u64), PathBuf>,
}

impl Copier {
    fn merge(&mut self, src_dir: &Path, dst_dir: &Path) -> Result<()> {
        let mut names: Vec<_> = fs_err::read_dir(src_dir)?
            .map(|e| e.map(|e| e.file_name()))
            .collect::<Result<_, _>>()?;
        names.sort();
        for name in names {
            let src = src_dir.join(&name);
            let dst = dst_dir.join(&name);
            let meta = fs_err::symlink_metadata(&src)?;
            let existing = std::fs::symlink_metadata(&dst).ok();
            if is_whiteout(&meta) {
                if let Some(existing) = existing {
                    self.remove(&dst, existing.is_dir())?;
                }
                continue;
            }
            if meta.is_dir() {
                match existing {
                    Some(e) if e.is_dir() => {
                        if is_opaque(&src)? {
                            for child in fs_err::read_dir(&dst)? {
                                let child = child?;
                                let is_dir = child.file_type()?.is_dir();
                                self.remove(&child.path(), is_dir)?;
                            }
                        }
                    }
                    Some(e) => {
                        self.remove(&dst, e.is_dir())?;
                        fs_err::create_dir(&dst)?;
                    }
                    None => fs_err::create_dir(&dst)?,
                }
                set_owner_mode(&dst, &meta)?;
                set_xattrs(&src, &dst, true)?;
                self.dir_times.insert(dst.clone(), times(&meta));
                self.merge(&src, &dst)?;
                continue;
            }
            if let Some(existing) = existing {
                self.remove(&dst, existing.is_dir())?;
            }
            self.copy_node(&src, &dst, &meta)?;
        }
        Ok(())
    }

    fn copy_node(&mut self, src: &Path, dst: &Path, meta: &std::fs::Metadata) -> Result<()> {
        let ft = meta.file_type();
        if ft.is_file() {
            if meta.nlink() > 1 {
                let key = (meta.dev(), meta.ino());
                if let Some(first) = self.links.get(&key) {
                    fs_err::hard_link(first, dst)?;
                    return Ok(());
                }
                self.links.insert(key, dst.to_path_buf());
            }
            let mut from = fs_err::File::open(src)?;
            let mut to = fs_err::File::create(dst)?;
            std::io::copy(&mut from, &mut to)?;
        } else if ft.is_symlink() {
            fs_err::os::unix::fs::symlink(fs_err::read_link(src)?, dst)?;
        } else if ft.is_char_device() || ft.is_block_device() || ft.is_fifo() {
            let file_type = FileType::from_raw_mode(meta.mode());
            rustix::fs::mknodat(CWD, dst, file_type, Mode::from_raw_mode(0o600), meta.rdev())
                .map_err(sys("creating node", dst))?;
        } else {
            // Sockets: not part of a file system's content.
            return Ok(());
        }
        if !ft.is_symlink() {
            set_owner_mode(dst, meta)?;
        } else {
            rustix::fs::chownat(
                CWD,
                dst,
                Some(rustix::fs::Uid::from_raw(meta.uid())),
                Some(rustix::fs::Gid::from_raw(meta.gid())),
                AtFlags::SYMLINK_NOFOLLOW,
            )
            .map_err(sys("chown", dst))?;
        }
        set_xattrs(src, dst, false)?;
        rustix::fs::utimensat(CWD, dst, &times(meta), AtFlags::SYMLINK_NOFOLLOW)
            .map_err(sys("setting times of", dst))?;
        Ok(())
    }

    fn remove(&mut self, path: &Path, is_dir: bool) -> Result<()> {
        if is_dir {
            fs_err::remove_dir_all(path)?;
            let prefix = path.as_os_str().as_bytes();
            self.dir_times.retain(|p, _| {
                let p = p.as_os_str().as_bytes();
                !(p.starts_with(prefix) && (p.len() == prefix.len() || p[prefix.len()] == b'/'))
            });
        } else {
            fs_err::remove_file(path)?;
        }
        Ok(())
    }
}

/// Owner first (it clears setuid bits), then the full mode.
fn set_owner_mode(path: &Path, meta: &std::fs::Metadata) -> Result<()> {
    rustix::fs::chownat(
        CWD,
        path,
        Some(rustix::fs::Uid::from_raw(meta.uid())),
        Some(rustix::fs::Gid::from_raw(meta.gid())),
        AtFlags::SYMLINK_NOFOLLOW,
    )
    .map_err(sys("chown", path))?;
    rustix::fs::chmod(path, Mode::from_raw_mode(meta.mode() & 0o7777))
        .map_err(sys("chmod", path))?;
    Ok(())
}

/// Makes `dst`'s extended attributes those of `src` (minus overlay's own).
/// A directory that already existed may carry a lower layer's: drop them.
fn set_xattrs(src: &Path, dst: &Path, replace: bool) -> Result<()> {
    let wanted = read_xattrs(src)?;
    if replace {
        for (name, _) in read_xattrs(dst)? {
            if !wanted.contains_key(&name) {
                rustix::fs::lremovexattr(dst, name.as_str())
                    .map_err(sys("removing extended attribute of", dst))?;
            }
        }
    }
    for (name, value) in &wanted {
        rustix::fs::lsetxattr(dst, name.as_str(), value, XattrFlags::empty())
            .map_err(sys("setting extended attribute on", dst))?;
    }
    Ok(())
}

fn times(meta: &std::fs::Metadata) -> Timestamps {
    Timestamps {
        last_access: Timespec {
            tv_sec: meta.atime(),
            tv_nsec: meta.atime_nsec() as _,
        },
        last_modification: Timespec {
            tv_sec: meta.mtime(),
            tv_nsec: meta.mtime_nsec() as _,
        },
    }
}
