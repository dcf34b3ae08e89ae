//! Disk usage of the store, counted the way `du -sb ROOT` counts it: the apparent size
//! (`st_size`) of every entry under the root, directories and symlinks included, each
//! inode once however many hard links it has. Each byte is attributed to the store
//! object it belongs to ([`Resource`]: a blob, a layer directory with its checkpoint
//! file, a cache mount) or to the rest (metadata, locks, scratch space, the directories
//! that hold the objects). An inode linked from several objects (a COPY step hardlinks
//! the unchanged files of the layer it made last time) is *shared*: it is counted once
//! in the total and freed only when every object holding it goes. The walk stays on
//! the root's file system and out of `tmp/`, where running steps mount their root file
//! systems (an open directory there would make their unmount fail).

use std::collections::{BTreeMap, HashMap};
use std::io;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};

use crate::gc::Resource;

/// One object's bytes.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ObjectUsage {
    /// Bytes only this object holds.
    pub exclusive: u64,
    /// Bytes of inodes this object shares with other objects (or with the rest).
    pub shared: u64,
    /// Change time (Unix seconds) of the object's top entry: when it was stored.
    pub ctime: i64,
}

impl ObjectUsage {
    pub fn size(&self) -> u64 {
        self.exclusive + self.shared
    }
}

/// The store's disk usage at one moment.
#[derive(Debug, Clone, Default)]
pub struct DiskUsage {
    /// Every byte under the root, each inode once (what `du -sb` prints).
    pub total: u64,
    /// Bytes outside any object: `meta.db` and its journal, `statcache`, `locks/`,
    /// `tmp/`, and the directories holding the objects.
    pub other: u64,
    pub objects: BTreeMap<Resource, ObjectUsage>,
    /// Inodes held by more than one owner: size and the owners (`None`: the rest).
    shared: Vec<(u64, Vec<Option<Resource>>)>,
}

impl DiskUsage {
    /// Walks the store at `root`. Entries that vanish during the walk (a concurrent
    /// build's scratch files) are skipped.
    pub fn scan(root: &Path) -> io::Result<DiskUsage> {
        DiskUsage::scan_skipping(root, &[])
    }

    /// [`DiskUsage::scan`], leaving out the paths in `skip` (what exists only while
    /// the scanning process has the store open).
    pub fn scan_skipping(root: &Path, skip: &[PathBuf]) -> io::Result<DiskUsage> {
        let mut walk = Walk {
            skip: skip.to_vec(),
            dev: std::fs::metadata(root).ok().map(|m| m.dev()),
            ..Walk::default()
        };
        walk.entry(root, None)?;
        for (sub, kind) in [
            ("blobs/sha256", Area::Blobs),
            ("layers", Area::Layers),
            ("cache-mounts", Area::CacheMounts),
        ] {
            walk.area(root, sub, kind)?;
        }
        // Everything else at the top, and the directories leading to the areas.
        for entry in read_dir(root)? {
            let name = entry.file_name();
            let path = root.join(&name);
            match name.to_str() {
                Some("layers" | "cache-mounts") => {
                    walk.entry(&path, None)?;
                }
                Some("blobs") => {
                    walk.entry(&path, None)?;
                    for e in read_dir(&path)? {
                        if e.file_name() != "sha256" {
                            walk.tree(&e.path(), None)?;
                        } else {
                            walk.entry(&e.path(), None)?;
                        }
                    }
                }
                // Scratch space of running processes: their RUN steps' root file
                // systems are mounted there, and an open directory in one makes its
                // unmount fail (EBUSY). Only the directory itself counts; it is empty
                // when no strata process runs.
                Some("tmp") => {
                    walk.entry(&path, None)?;
                }
                _ => walk.tree(&path, None)?,
            }
        }
        Ok(walk.finish())
    }

    /// Inodes held by more than one owner: size and owners (`None`: the rest).
    pub(crate) fn shared_inodes(&self) -> &[(u64, Vec<Option<Resource>>)] {
        &self.shared
    }

    /// Bytes that removing every object in `dead` would free: their exclusive bytes and
    /// the shared inodes whose owners are all dead.
    pub fn freed(&self, dead: &dyn Fn(&Resource) -> bool) -> u64 {
        let own: u64 = self
            .objects
            .iter()
            .filter(|(r, _)| dead(r))
            .map(|(_, u)| u.exclusive)
            .sum();
        let shared: u64 = self
            .shared
            .iter()
            .filter(|(_, owners)| owners.iter().all(|o| o.as_ref().is_some_and(dead)))
            .map(|(size, _)| size)
            .sum();
        own + shared
    }
}

#[derive(Clone, Copy)]
enum Area {
    Blobs,
    Layers,
    CacheMounts,
}

/// An inode with several links: its size and the owners seen so far.
type Linked = (u64, Vec<Option<Resource>>);

#[derive(Default)]
struct Walk {
    total: u64,
    other: u64,
    objects: BTreeMap<Resource, ObjectUsage>,
    /// Inodes with more than one link: size and owners seen so far.
    links: HashMap<(u64, u64), Linked>,
    skip: Vec<PathBuf>,
    /// The store root's device.
    dev: Option<u64>,
}

impl Walk {
    fn area(&mut self, root: &Path, sub: &str, area: Area) -> io::Result<()> {
        let dir = root.join(sub);
        for entry in read_dir(&dir)? {
            let name = entry.file_name();
            let Some(name) = name.to_str() else {
                self.tree(&entry.path(), None)?;
                continue;
            };
            let owner = match area {
                Area::Blobs => format!("sha256:{name}").parse().ok().map(Resource::Blob),
                Area::Layers => {
                    let hex = name.strip_suffix(".ckpt").unwrap_or(name);
                    format!("sha256:{hex}").parse().ok().map(Resource::Layer)
                }
                Area::CacheMounts => {
                    (!name.starts_with('.')).then(|| Resource::CacheMount(name.to_string()))
                }
            };
            if let Some(r) = &owner {
                let top = !name.ends_with(".ckpt");
                if let Some(meta) = metadata(&entry.path())? {
                    let u = self.objects.entry(r.clone()).or_default();
                    if top {
                        u.ctime = meta.ctime();
                    }
                }
            }
            self.tree(&entry.path(), owner)?;
        }
        Ok(())
    }

    /// Counts `path` itself (not below it).
    fn entry(
        &mut self,
        path: &Path,
        owner: Option<Resource>,
    ) -> io::Result<Option<std::fs::Metadata>> {
        if self.skip.iter().any(|p| p == path) {
            return Ok(None);
        }
        let Some(meta) = metadata(path)? else {
            return Ok(None);
        };
        let size = meta.len();
        if !meta.is_dir() && meta.nlink() > 1 {
            let (_, owners) = self
                .links
                .entry((meta.dev(), meta.ino()))
                .or_insert_with(|| (size, Vec::new()));
            if !owners.contains(&owner) {
                owners.push(owner);
            }
        } else {
            self.total += size;
            match owner {
                Some(r) => self.objects.entry(r).or_default().exclusive += size,
                None => self.other += size,
            }
        }
        Ok(Some(meta))
    }

    /// Counts `path` and everything below it.
    fn tree(&mut self, path: &Path, owner: Option<Resource>) -> io::Result<()> {
        let Some(meta) = self.entry(path, owner.clone())? else {
            return Ok(());
        };
        // Never into another file system (a mount point), as `du -x`.
        if meta.is_dir() && self.dev.is_none_or(|d| d == meta.dev()) {
            for entry in read_dir(path)? {
                self.tree(&entry.path(), owner.clone())?;
            }
        }
        Ok(())
    }

    fn finish(mut self) -> DiskUsage {
        let mut shared = Vec::new();
        for (_, (size, owners)) in self.links.drain() {
            self.total += size;
            match owners.as_slice() {
                [Some(r)] => self.objects.entry(r.clone()).or_default().exclusive += size,
                [None] => self.other += size,
                _ => {
                    for r in owners.iter().flatten() {
                        self.objects.entry(r.clone()).or_default().shared += size;
                    }
                    shared.push((size, owners));
                }
            }
        }
        DiskUsage {
            total: self.total,
            other: self.other,
            objects: self.objects,
            shared,
        }
    }
}

fn metadata(path: &Path) -> io::Result<Option<std::fs::Metadata>> {
    match std::fs::symlink_metadata(path) {
        Ok(m) => Ok(Some(m)),
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(io::Error::new(e.kind(), format!("{}: {e}", path.display()))),
    }
}

fn read_dir(path: &Path) -> io::Result<Vec<std::fs::DirEntry>> {
    match std::fs::read_dir(path) {
        Ok(rd) => rd
            .filter(|e| !matches!(e, Err(e) if e.kind() == io::ErrorKind::NotFound))
            .collect::<io::Result<Vec<_>>>()
            .map_err(|e| io::Error::new(e.kind(), format!("{}: {e}", path.display()))),
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(Vec::new()),
        Err(e) => Err(io::Error::new(e.kind(), format!("{}: {e}", path.display()))),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_inode_once_and_shared_bytes_freed_with_the_last_owner() {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path();
        let (a, b) = (strata_digest::sha256("a"), strata_digest::sha256("b"));
        let la = root.join("layers").join(a.hex());
        let lb = root.join("layers").join(b.hex());
        for d in [
            &la,
            &lb,
            &root.join("blobs/sha256"),
            &root.join("cache-mounts/m1"),
        ] {
            std::fs::create_dir_all(d).unwrap();
        }
        std::fs::write(la.join("own"), vec![0u8; 1000]).unwrap();
        std::fs::write(la.join("both"), vec![0u8; 500]).unwrap();
        std::fs::hard_link(la.join("both"), lb.join("both")).unwrap();
        std::fs::write(
            root.join("layers").join(format!("{}.ckpt", a.hex())),
            [1u8; 7],
        )
        .unwrap();
        std::fs::write(root.join("blobs/sha256").join(b.hex()), [2u8; 30]).unwrap();
        std::fs::write(root.join("cache-mounts/m1/f"), [3u8; 40]).unwrap();
        std::fs::write(root.join("meta.db"), [4u8; 11]).unwrap();

        let u = DiskUsage::scan(root).unwrap();
        let dirs = |p: &Path| std::fs::metadata(p).unwrap().len();
        let layer_a = &u.objects[&Resource::Layer(a)];
        assert_eq!(layer_a.exclusive, 1000 + 7 + dirs(&la));
        assert_eq!(layer_a.shared, 500);
        assert_eq!(u.objects[&Resource::Layer(b)].exclusive, dirs(&lb));
        assert_eq!(u.objects[&Resource::Blob(b)].size(), 30);
        assert_eq!(
            u.objects[&Resource::CacheMount("m1".into())].size(),
            40 + dirs(&root.join("cache-mounts/m1"))
        );
        let objects: u64 = u.objects.values().map(|o| o.exclusive).sum();
        assert_eq!(u.total, objects + 500 + u.other, "the shared inode once");
        assert!(u.other >= 11);

        // The shared inode goes only with both layers.
        assert_eq!(u.freed(&|r| *r == Resource::Layer(a)), layer_a.exclusive);
        assert_eq!(
            u.freed(&|r| matches!(r, Resource::Layer(_))),
            layer_a.exclusive + 500 + dirs(&lb)
        );
    }
}
