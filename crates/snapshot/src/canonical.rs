//! The canonical layer tar of a directory in overlay upperdir format (the
//! format is documented on [`write_dir_tar`]).

use std::collections::{BTreeMap, HashMap};
use std::ffi::OsString;
use std::fs::Metadata;
use std::io::{self, BufWriter, Read, Write};
use std::os::unix::ffi::{OsStrExt, OsStringExt};
use std::os::unix::fs::{FileTypeExt, MetadataExt};
use std::path::{Path, PathBuf};

use strata_digest::{Digest, HashingWriter};

use crate::error::{Error, Result};
use crate::tarfmt::{self, Kind};
use crate::whiteout::{
    is_opaque, is_whiteout, OPAQUE_MARKER, OVERLAY_XATTR_PREFIX, WHITEOUT_PREFIX,
};

/// How to write a layer tar. The default writes the canonical tar, whose
/// digest is the layer's diffID.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct TarOptions {
    /// Clamp every mtime later than this (seconds since the epoch) to it,
    /// for reproducible builds (`SOURCE_DATE_EPOCH`).
    pub source_date_epoch: Option<i64>,
}

/// Writes the canonical tar of `dir` (overlay upperdir format) to `w` and
/// returns the digest and length of the bytes written. With default options
/// the digest is the layer's diffID; the same tree always gives the same bytes.
///
/// Order: depth first, the entries of each directory sorted bytewise by their
/// name in the tar, so a parent always precedes its children; an opaque
/// directory's `.wh..wh..opq` marker comes right after the directory itself.
/// The root directory is not an entry. Every header is complete: mode with the
/// setuid/setgid/sticky bits, numeric uid/gid (uname/gname empty), mtime in
/// seconds (clamped by [`TarOptions::source_date_epoch`]), no atime/ctime, all
/// extended attributes except `trusted.overlay.*`. Regular files that share an
/// inode become hardlink entries pointing at the first path emitted. Whiteouts
/// (char device 0/0) become empty `.wh.NAME` files; sockets are skipped. The
/// whiteout and opaque markers carry mode 0, uid/gid 0 and mtime 0, so they
/// add no noise. No sparse entries, no padding past the end marker.
///
/// Entries are USTAR headers; a PAX header precedes one when a path or link
/// does not fit, an id, size or time is too large, or there are xattrs.
pub fn write_dir_tar(dir: &Path, w: &mut dyn Write, opts: &TarOptions) -> Result<(Digest, u64)> {
    let mut sink = TarSink {
        out: BufWriter::with_capacity(256 * 1024, HashingWriter::new(w)),
    };
    walk(dir, opts, &mut sink)?;
    tarfmt::write_end(&mut sink.out)?;
    let hashing = sink.out.into_inner().map_err(|e| e.into_error())?;
    let (digest, len, _) = hashing.finish();
    Ok((digest, len))
}

/// One entry of the canonical tar, as [`walk`] produces it.
pub(crate) struct Item<'a> {
    /// The header block, preceded by its PAX header when it has one.
    pub header: &'a [u8],
    /// For a regular file with data (not a hardlink entry): the file whose
    /// bytes follow the header, padded to a whole block.
    pub data: Option<FileData<'a>>,
    /// What the entry adds to the store: its length; a non-directory with several
    /// links counts length / links, or nothing when its inode is older than the walked
    /// directory (an earlier layer's file, which incremental COPY hardlinks).
    pub usage: u64,
}

pub(crate) struct FileData<'a> {
    pub abs: &'a Path,
    /// The size the header promises.
    pub size: u64,
    pub dev: u64,
    pub ino: u64,
}

/// Receives the entries of a canonical tar in order.
pub(crate) trait Sink {
    fn item(&mut self, item: &Item<'_>) -> Result<()>;
}

/// Walks `dir` in canonical order (see [`write_dir_tar`]) and hands every
/// entry to `sink`; the end marker is the caller's.
pub(crate) fn walk(dir: &Path, opts: &TarOptions, sink: &mut impl Sink) -> Result<()> {
    let mut walker = Walker {
        opts,
        sink,
        header: Vec::with_capacity(tarfmt::BLOCK),
        inodes: HashMap::new(),
        usage: 0,
        born: std::fs::metadata(dir).and_then(|m| m.created()).ok(),
    };
    walker.dir(dir, b"")
}

/// Writes entries as tar bytes.
struct TarSink<W: Write> {
    out: W,
}

impl<W: Write> Sink for TarSink<W> {
    fn item(&mut self, item: &Item<'_>) -> Result<()> {
        self.out.write_all(item.header)?;
        if let Some(data) = &item.data {
            let file = fs_err::File::open(data.abs)?;
            let copied = io::copy(&mut file.take(data.size), &mut self.out)?;
            if copied != data.size {
                return Err(Error::Changed {
                    path: data.abs.to_path_buf(),
                });
            }
            tarfmt::write_padding(&mut self.out, data.size)?;
        }
        Ok(())
    }
}

struct Walker<'a, S: Sink> {
    opts: &'a TarOptions,
    sink: &'a mut S,
    /// The encoded header of the current entry.
    header: Vec<u8>,
    /// (dev, ino) of regular files with several links → first path emitted.
    inodes: HashMap<(u64, u64), Vec<u8>>,
    /// [`Item::usage`] of the entry being emitted (0 for an opaque marker).
    usage: u64,
    /// The walked directory's birth time, where the file system records one.
    born: Option<std::time::SystemTime>,
}

static NO_XATTRS: BTreeMap<String, Vec<u8>> = BTreeMap::new();

struct Child {
    /// The name as it appears in the tar (`.wh.NAME` for a whiteout).
    tar_name: Vec<u8>,
    fs_name: OsString,
    meta: Metadata,
}

impl<S: Sink> Walker<'_, S> {
    fn dir(&mut self, dir: &Path, rel: &[u8]) -> Result<()> {
        let mut children = Vec::new();
        for entry in fs_err::read_dir(dir)? {
            let entry = entry?;
            let fs_name = entry.file_name();
            // Relative to the open directory: no walk of the whole path.
            let meta = entry.metadata()?;
            let tar_name = if is_whiteout(&meta) {
                [WHITEOUT_PREFIX, fs_name.as_bytes()].concat()
            } else {
                fs_name.as_bytes().to_vec()
            };
            children.push(Child {
                tar_name,
                fs_name,
                meta,
            });
        }
        // A real `.wh.x` file next to a whiteout of `x` sorts after it.
        children.sort_by(|a, b| {
            a.tar_name
                .cmp(&b.tar_name)
                .then_with(|| is_whiteout(&b.meta).cmp(&is_whiteout(&a.meta)))
        });
        for child in children {
            let abs = dir.join(&child.fs_name);
            let path = [rel, &child.tar_name].concat();
            self.entry(&abs, &path, &child.meta)?;
        }
        Ok(())
    }

    fn entry(&mut self, abs: &Path, path: &[u8], meta: &Metadata) -> Result<()> {
        let ft = meta.file_type();
        let inherited = || {
            self.born
                .is_some_and(|born| meta.created().is_ok_and(|c| c < born))
        };
        self.usage = if ft.is_dir() || meta.nlink() <= 1 {
            meta.len()
        } else if inherited() {
            0
        } else {
            meta.len() / meta.nlink()
        };
        let mtime = self.mtime(meta.mtime());
        let mut e = tarfmt::Entry {
            path,
            kind: Kind::File,
            mode: meta.mode(),
            uid: u64::from(meta.uid()),
            gid: u64::from(meta.gid()),
            mtime,
            size: 0,
            link: b"",
            dev: (0, 0),
            xattrs: &NO_XATTRS,
        };
        if is_whiteout(meta) {
            e.mode = 0;
            e.uid = 0;
            e.gid = 0;
            e.mtime = 0;
            return self.emit(&e, None);
        }
        let xattrs = read_xattrs(abs)?;
        e.xattrs = &xattrs;
        if ft.is_dir() {
            let dir_path = [path, b"/"].concat();
            e.path = &dir_path;
            e.kind = Kind::Dir;
            self.emit(&e, None)?;
            if is_opaque(abs)? {
                let marker = [&dir_path[..], OPAQUE_MARKER].concat();
                self.marker(&marker)?;
            }
            return self.dir(abs, &dir_path);
        }
        if ft.is_file() {
            if meta.nlink() > 1 {
                let key = (meta.dev(), meta.ino());
                if let Some(first) = self.inodes.get(&key) {
                    let first = first.clone();
                    e.kind = Kind::HardLink;
                    e.link = &first;
                    e.xattrs = &NO_XATTRS;
                    return self.emit(&e, None);
                }
                self.inodes.insert(key, path.to_vec());
            }
            e.size = meta.len();
            let data = FileData {
                abs,
                size: e.size,
                dev: meta.dev(),
                ino: meta.ino(),
            };
            return self.emit(&e, Some(data));
        }
        let target;
        if ft.is_symlink() {
            target = fs_err::read_link(abs)?.into_os_string().into_vec();
            e.kind = Kind::Symlink;
            e.link = &target;
        } else if ft.is_char_device() || ft.is_block_device() {
            e.kind = if ft.is_char_device() {
                Kind::Char
            } else {
                Kind::Block
            };
            let rdev = meta.rdev();
            e.dev = (rustix::fs::major(rdev), rustix::fs::minor(rdev));
        } else if ft.is_fifo() {
            e.kind = Kind::Fifo;
        } else {
            // Sockets have no tar representation; Docker skips them too.
            return Ok(());
        }
        self.emit(&e, None)
    }

    /// Encodes the header of `e` and hands the entry to the sink.
    fn emit(&mut self, e: &tarfmt::Entry<'_>, data: Option<FileData<'_>>) -> Result<()> {
        self.header.clear();
        tarfmt::write_header(&mut self.header, e)?;
        self.sink.item(&Item {
            header: &self.header,
            data,
            usage: std::mem::take(&mut self.usage),
        })
    }

    /// An empty `.wh.*` regular file with neutral metadata.
    fn marker(&mut self, path: &[u8]) -> Result<()> {
        let e = tarfmt::Entry {
            path,
            kind: Kind::File,
            mode: 0,
            uid: 0,
            gid: 0,
            mtime: 0,
            size: 0,
            link: b"",
            dev: (0, 0),
            xattrs: &NO_XATTRS,
        };
        self.emit(&e, None)
    }

    fn mtime(&self, mtime: i64) -> i64 {
        match self.opts.source_date_epoch {
            Some(epoch) if mtime > epoch => epoch,
            _ => mtime,
        }
    }
}

/// The extended attributes of `path` (not following symlinks), without the
/// overlay's own `trusted.overlay.*`, sorted by name.
pub(crate) fn read_xattrs(path: &Path) -> Result<BTreeMap<String, Vec<u8>>> {
    let mut out = BTreeMap::new();
    // Most files have none: one llistxattr into a small buffer tells, where
    // xattr::list asks for the size and then the names (two calls and a Vec).
    let mut names = [std::mem::MaybeUninit::<u8>::uninit(); 256];
    match rustix::fs::llistxattr(path, &mut names[..]) {
        Ok(([], _)) => return Ok(out),
        Err(rustix::io::Errno::OPNOTSUPP) => return Ok(out),
        _ => {}
    }
    let names = match xattr::list(path) {
        Ok(names) => names,
        Err(e) if is_unsupported(&e) => return Ok(out),
        Err(e) => return Err(xattr_err(path, e)),
    };
    for name in names {
        let name = name.into_string().map_err(|name| Error::XattrName {
            path: path.to_path_buf(),
            name: name.to_string_lossy().into_owned(),
        })?;
        if name.starts_with(OVERLAY_XATTR_PREFIX) {
            continue;
        }
        match xattr::get(path, &name) {
            Ok(Some(value)) => {
                out.insert(name, value);
            }
            // Removed between list and get: not there.
            Ok(None) => {}
            Err(e) => return Err(xattr_err(path, e)),
        }
    }
    Ok(out)
}

fn is_unsupported(e: &io::Error) -> bool {
    e.raw_os_error() == Some(rustix::io::Errno::OPNOTSUPP.raw_os_error())
}

fn xattr_err(path: &Path, e: io::Error) -> Error {
    Error::Sys {
        op: "reading extended attributes of",
        path: PathBuf::from(path),
        source: e,
    }
}
