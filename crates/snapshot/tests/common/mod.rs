//! Helpers shared by the integration tests: a store in a temp dir, building
//! layer directories by hand, listing trees and tars as comparable text.
#![allow(dead_code)]

use std::collections::BTreeMap;
use std::io::Read;
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::{FileTypeExt, MetadataExt, PermissionsExt};
use std::path::Path;

use rustix::fs::{AtFlags, FileType, Mode, Timespec, Timestamps, XattrFlags, CWD};
use strata_digest::Digest;
use strata_snapshot::{Layers, NewLayer};

pub const LONG: usize = 150;

/// setuid file, hardlinks, symlink, empty dir, user xattr, a 150-byte name,
/// fifo, char device; every mtime pinned.
pub fn craft(root: &Path) {
    write(&root.join("bin/su"), "su");
    chmod(&root.join("bin/su"), 0o4755);
    mtime(&root.join("bin/su"), 200);

    write(&root.join("data/a"), "hello");
    chmod(&root.join("data/a"), 0o640);
    chown(&root.join("data/a"), 1000, 1001);
    rustix::fs::setxattr(root.join("data/a"), "user.note", b"x", XattrFlags::empty()).unwrap();
    std::fs::hard_link(root.join("data/a"), root.join("data/b")).unwrap();
    std::fs::hard_link(root.join("data/a"), root.join("bin/a-too")).unwrap();
    mtime(&root.join("data/a"), 300);
    chmod(&root.join("data"), 0o2750);
    chown(&root.join("data"), 1000, 1001);

    let long = "n".repeat(LONG);
    write(&root.join("deep").join(&long), "long");
    mtime(&root.join("deep").join(&long), 400);

    std::fs::create_dir(root.join("empty")).unwrap();
    chmod(&root.join("empty"), 0o1777);

    std::os::unix::fs::symlink("data/a", root.join("link")).unwrap();
    chown(&root.join("link"), 5, 6);
    mtime(&root.join("link"), 500);

    rustix::fs::mknodat(
        CWD,
        root.join("fifo"),
        FileType::Fifo,
        Mode::from_raw_mode(0o620),
        0,
    )
    .unwrap();
    chmod(&root.join("fifo"), 0o620);
    mtime(&root.join("fifo"), 600);
    std::fs::create_dir(root.join("dev")).unwrap();
    rustix::fs::mknodat(
        CWD,
        root.join("dev/null"),
        FileType::CharacterDevice,
        Mode::from_raw_mode(0o666),
        rustix::fs::makedev(1, 3),
    )
    .unwrap();
    chmod(&root.join("dev/null"), 0o666);
    mtime(&root.join("dev/null"), 700);

    for (dir, t) in [
        ("bin", 10),
        ("data", 20),
        ("deep", 30),
        ("dev", 40),
        ("empty", 50),
    ] {
        mtime(&root.join(dir), t);
    }
}

pub struct Store {
    pub dir: tempfile::TempDir,
    pub layers: Layers,
}

pub fn store() -> Store {
    let dir = tempfile::tempdir().unwrap();
    let layers = Layers::new(&dir.path().join("store"), &dir.path().join("store/tmp")).unwrap();
    Store { dir, layers }
}

/// Fills a new layer with `fill` and commits it.
pub fn layer(layers: &Layers, fill: impl FnOnce(&Path)) -> Digest {
    let new: NewLayer = layers.begin().unwrap();
    fill(new.path());
    layers.commit(new).unwrap().diff_id
}

pub fn write(path: &Path, content: &str) {
    if let Some(parent) = path.parent() {
        std::fs::create_dir_all(parent).unwrap();
    }
    std::fs::write(path, content).unwrap();
}

pub fn chmod(path: &Path, mode: u32) {
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode)).unwrap();
}

pub fn chown(path: &Path, uid: u32, gid: u32) {
    std::os::unix::fs::lchown(path, Some(uid), Some(gid)).unwrap();
}

pub fn mtime(path: &Path, secs: i64) {
    let t = Timespec {
        tv_sec: secs,
        tv_nsec: 0,
    };
    rustix::fs::utimensat(
        CWD,
        path,
        &Timestamps {
            last_access: t,
            last_modification: t,
        },
        AtFlags::SYMLINK_NOFOLLOW,
    )
    .unwrap();
}

pub fn whiteout(path: &Path) {
    rustix::fs::mknodat(CWD, path, FileType::CharacterDevice, Mode::empty(), 0).unwrap();
}

pub fn opaque(dir: &Path) {
    rustix::fs::setxattr(dir, "trusted.overlay.opaque", b"y", XattrFlags::empty()).unwrap();
}

/// One line per entry of a tar: type, path, mode, owner, mtime, size, link,
/// device, PAX records other than path/linkpath, content.
pub fn tar_listing(tar: &[u8]) -> Vec<String> {
    let mut archive = tar::Archive::new(tar);
    let mut out = Vec::new();
    for entry in archive.entries().unwrap() {
        let mut e = entry.unwrap();
        let h = e.header().clone();
        assert_eq!(h.username_bytes(), Some(&b""[..]), "uname is empty");
        assert_eq!(h.groupname_bytes(), Some(&b""[..]), "gname is empty");
        let kind = match h.entry_type() {
            tar::EntryType::Regular => "file",
            tar::EntryType::Link => "hardlink",
            tar::EntryType::Symlink => "symlink",
            tar::EntryType::Directory => "dir",
            tar::EntryType::Char => "char",
            tar::EntryType::Block => "block",
            tar::EntryType::Fifo => "fifo",
            other => panic!("unexpected entry type {other:?}"),
        };
        let mut line = format!(
            "{kind} {} {:o} {}:{} t={}",
            String::from_utf8_lossy(&e.path_bytes()),
            h.mode().unwrap(),
            h.uid().unwrap(),
            h.gid().unwrap(),
            h.mtime().unwrap()
        );
        if let Some(link) = e.link_name_bytes() {
            if !link.is_empty() {
                line += &format!(" -> {}", String::from_utf8_lossy(&link));
            }
        }
        if matches!(kind, "char" | "block") {
            line += &format!(
                " dev={}:{}",
                h.device_major().unwrap().unwrap(),
                h.device_minor().unwrap().unwrap()
            );
        }
        if let Some(pax) = e.pax_extensions().unwrap() {
            for r in pax {
                let r = r.unwrap();
                let key = r.key().unwrap();
                if key != "path" && key != "linkpath" {
                    line += &format!(" {key}={}", String::from_utf8_lossy(r.value_bytes()));
                }
            }
        }
        let mut data = Vec::new();
        e.read_to_end(&mut data).unwrap();
        if kind == "file" {
            line += &format!(" {:?}", String::from_utf8_lossy(&data));
        }
        out.push(line);
    }
    out
}

/// A tree as text, keyed by relative path: type, mode, owner, mtime (with
/// nanoseconds), content or link or device, xattrs (not `trusted.overlay.*`),
/// and for files with several links the other paths of the same inode.
pub fn tree(root: &Path) -> BTreeMap<String, String> {
    let mut out = BTreeMap::new();
    let mut inodes: BTreeMap<(u64, u64), Vec<String>> = BTreeMap::new();
    walk(root, root, &mut out, &mut inodes);
    for paths in inodes.values_mut().filter(|p| p.len() > 1) {
        paths.sort();
        for p in paths.iter() {
            *out.get_mut(p).unwrap() += &format!(" links={}", paths.join(","));
        }
    }
    out
}

fn walk(
    root: &Path,
    dir: &Path,
    out: &mut BTreeMap<String, String>,
    inodes: &mut BTreeMap<(u64, u64), Vec<String>>,
) {
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        let rel = path
            .strip_prefix(root)
            .unwrap()
            .to_string_lossy()
            .into_owned();
        let m = std::fs::symlink_metadata(&path).unwrap();
        let ft = m.file_type();
        let what = if ft.is_dir() {
            "dir".to_string()
        } else if ft.is_file() {
            inodes
                .entry((m.dev(), m.ino()))
                .or_default()
                .push(rel.clone());
            format!("file {:?}", std::fs::read_to_string(&path).unwrap())
        } else if ft.is_symlink() {
            format!(
                "symlink -> {}",
                std::fs::read_link(&path).unwrap().display()
            )
        } else if ft.is_char_device() {
            format!(
                "char {}:{}",
                rustix::fs::major(m.rdev()),
                rustix::fs::minor(m.rdev())
            )
        } else if ft.is_block_device() {
            format!(
                "block {}:{}",
                rustix::fs::major(m.rdev()),
                rustix::fs::minor(m.rdev())
            )
        } else if ft.is_fifo() {
            "fifo".to_string()
        } else {
            "other".to_string()
        };
        let mut xattrs = Vec::new();
        for name in xattr::list(&path).unwrap() {
            if name.as_bytes().starts_with(b"trusted.overlay.") {
                continue;
            }
            let value = xattr::get(&path, &name).unwrap().unwrap_or_default();
            xattrs.push(format!(
                "{}={}",
                name.to_string_lossy(),
                String::from_utf8_lossy(&value)
            ));
        }
        xattrs.sort();
        out.insert(
            rel,
            format!(
                "{what} {:o} {}:{} t={}.{:09} [{}]",
                m.mode() & 0o7777,
                m.uid(),
                m.gid(),
                m.mtime(),
                m.mtime_nsec(),
                xattrs.join(" ")
            ),
        );
        if ft.is_dir() {
            walk(root, &path, out, inodes);
        }
    }
}

/// Every path under `root`, relative (to check that nothing appeared).
pub fn paths(root: &Path) -> Vec<String> {
    tree(root).into_keys().collect()
}

/// A tar written header by header, with any names (hostile ones included).
#[derive(Default)]
pub struct RawTar(Vec<u8>);

impl RawTar {
    pub fn new() -> Self {
        Self::default()
    }

    /// Adds one entry: `kind` is the type flag, `name` and `link` go into
    /// the header as given (at most 100 bytes each).
    pub fn entry(mut self, kind: u8, name: &str, link: &str, data: &[u8], mode: u32) -> Self {
        let mut h = tar::Header::new_gnu();
        h.as_old_mut().name[..name.len()].copy_from_slice(name.as_bytes());
        h.as_old_mut().linkname[..link.len()].copy_from_slice(link.as_bytes());
        h.set_mode(mode);
        h.set_size(data.len() as u64);
        h.set_mtime(1234);
        h.set_uid(0);
        h.set_gid(0);
        // The raw byte: `EntryType` would turn NUL into '0'.
        h.as_old_mut().linkflag = [kind];
        h.set_cksum();
        self.0.extend_from_slice(h.as_bytes());
        self.0.extend_from_slice(data);
        let pad = (512 - data.len() % 512) % 512;
        self.0.extend(std::iter::repeat_n(0u8, pad));
        self
    }

    pub fn file(self, name: &str, data: &str) -> Self {
        self.entry(b'0', name, "", data.as_bytes(), 0o644)
    }

    pub fn dir(self, name: &str) -> Self {
        self.entry(b'5', name, "", b"", 0o755)
    }

    pub fn symlink(self, name: &str, target: &str) -> Self {
        self.entry(b'2', name, target, b"", 0o777)
    }

    pub fn hardlink(self, name: &str, target: &str) -> Self {
        self.entry(b'1', name, target, b"", 0o644)
    }

    /// End marker, then zeros up to a 10240-byte record like GNU tar.
    pub fn finish(mut self) -> Vec<u8> {
        self.0.extend_from_slice(&[0u8; 1024]);
        let pad = (10240 - self.0.len() % 10240) % 10240;
        self.0.extend(std::iter::repeat_n(0u8, pad));
        self.0
    }
}
