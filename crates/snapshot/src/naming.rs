//! Naming a layer directory by its diffID, resuming from the previous layer's
//! sidecar where possible.
//!
//! The diffID is the sha256 of the canonical tar ([`crate::write_dir_tar`]).
//! When a step runs again, the new layer usually starts like the layer it made
//! last time: incremental COPY hardlinks every unchanged file from it. The
//! walk compares each entry of the new directory with the same-numbered entry
//! recorded in the previous layer's [`Checkpoints`]:
//!
//! - the header bytes must hash the same (every field the tar has), and
//! - a regular file with data must be the very inode the previous layer holds
//!   at that path (checked against the sidecar *and* the live previous layer),
//!   so its bytes are the previous layer's bytes, which never change.
//!
//! While entries match, nothing is read or hashed; headers since the last
//! [`Mark`] passed are kept. At the first difference (or the end) the hash
//! resumes from that mark, replays the kept entries, and hashes the rest of
//! the stream. The bytes hashed are always the bytes `write_dir_tar` writes,
//! so the digest is the same; the sidecar only decides how much of the stream
//! can be skipped. Memory: the entry list, plus at most one mark interval of
//! kept headers.

use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};

use sha2::{Digest as _, Sha256};
use strata_digest::Digest;

use crate::canonical::{walk, Item, Sink, TarOptions};
use crate::checkpoint::{Checkpoints, EntryId, Mark};
use crate::error::{Error, Result};
use crate::hashpipe::HashPipe;
use crate::midstate::{Midstate, IV};
use crate::tarfmt::BLOCK;

/// Tar bytes between marks (at least; a mark goes at the first entry boundary
/// past it).
pub(crate) const MARK_INTERVAL: u64 = 8 << 20;

/// The previous layer: its directory and its sidecar.
#[derive(Clone, Copy)]
pub(crate) struct Prev<'a> {
    pub dir: &'a Path,
    pub ckpt: &'a Checkpoints,
}

pub(crate) struct Named {
    pub diff_id: Digest,
    /// Length of the tar.
    pub size: u64,
    /// Leading tar bytes taken from the previous layer's sidecar, not hashed.
    pub reused: u64,
    /// The sidecar of this layer.
    pub ckpt: Checkpoints,
}

/// The diffID of `dir` and its sidecar, resuming from `prev` where it matches.
pub(crate) fn name_dir(dir: &Path, prev: Option<Prev<'_>>, interval: u64) -> Result<Named> {
    if let Some(prev) = prev {
        let mut namer = Namer::new(dir, Some(prev), interval);
        // `resume` runs the replay, which may still find the sidecar wrong.
        match walk(dir, &TarOptions::default(), &mut namer).and_then(|()| namer.resume()) {
            Ok(()) => return namer.finish(),
            // The sidecar contradicted the tree it describes: hash everything.
            Err(_) if namer.distrust => {}
            Err(e) => return Err(e),
        }
    }
    let mut namer = Namer::new(dir, None, interval);
    walk(dir, &TarOptions::default(), &mut namer)?;
    namer.finish()
}

/// An entry seen while matching, after the last mark passed.
struct Kept {
    header: Vec<u8>,
    data: Option<(PathBuf, u64)>,
}

struct Matching<'a> {
    prev: Prev<'a>,
    /// Where hashing resumes: the last mark passed (the start before any).
    restore: Mark,
    /// Index in `prev.ckpt.marks` of the next mark to pass.
    next_mark: usize,
    /// Entries since `restore`.
    kept: Vec<Kept>,
    /// Tar bytes of the entries so far.
    offset: u64,
}

struct Namer<'a> {
    root: &'a Path,
    interval: u64,
    /// `Some` while every entry so far matched the previous layer.
    matching: Option<Matching<'a>>,
    /// The hash, once hashing started (after matching, or from the start).
    pipe: Option<HashPipe>,
    entries: Vec<EntryId>,
    marks: Vec<Mark>,
    /// Offset of the last mark, for the interval.
    last_mark: u64,
    reused: u64,
    /// Set when the sidecar proved wrong; the walk is then abandoned.
    distrust: bool,
    /// Sum of the entries' [`Item::usage`].
    usage: u64,
}

/// The beginning of every tar: nothing hashed yet.
const START: Mark = Mark {
    entry: 0,
    offset: 0,
    state: IV,
};

impl<'a> Namer<'a> {
    fn new(root: &'a Path, prev: Option<Prev<'a>>, interval: u64) -> Namer<'a> {
        Namer {
            root,
            interval,
            matching: prev.map(|prev| Matching {
                prev,
                restore: START,
                next_mark: 0,
                kept: Vec::new(),
                offset: 0,
            }),
            pipe: None,
            entries: Vec::new(),
            marks: Vec::new(),
            last_mark: 0,
            reused: 0,
            distrust: false,
            usage: 0,
        }
    }

    /// Whether entry `i` of the new tree is entry `i` of the previous layer.
    fn same(&self, m: &Matching<'_>, i: usize, id: &EntryId, item: &Item<'_>) -> bool {
        let Some(p) = m.prev.ckpt.entries.get(i) else {
            return false;
        };
        if p.header != id.header {
            return false;
        }
        match &item.data {
            // The header says it all (no data, or zero bytes of it).
            None => true,
            Some(d) if d.size == 0 => true,
            Some(d) => {
                if p.inode != Some((d.dev, d.ino)) {
                    return false;
                }
                // The previous layer still holds that inode at that path, so
                // the sidecar describes this very directory and the bytes are
                // the ones hashed when it was stored.
                let Ok(rel) = d.abs.strip_prefix(self.root) else {
                    return false;
                };
                std::fs::symlink_metadata(m.prev.dir.join(rel))
                    .is_ok_and(|meta| (meta.dev(), meta.ino()) == (d.dev, d.ino))
            }
        }
    }

    /// Stops matching: resumes the hash at the last mark passed and replays
    /// the entries kept since.
    fn resume(&mut self) -> Result<()> {
        let Some(m) = self.matching.take() else {
            return Ok(());
        };
        let hasher = Midstate::resume(m.restore.state, m.restore.offset)
            .expect("marks are checked to be block aligned");
        self.pipe = Some(HashPipe::start(hasher)?);
        self.reused = m.restore.offset;
        self.last_mark = m.restore.offset;
        let mut entry = m.restore.entry;
        for kept in m.kept {
            let data = kept.data.as_ref().map(|(p, size)| (p.as_path(), *size));
            self.hash_entry(&kept.header, data)?;
            entry += 1;
            self.boundary(entry);
        }
        if self.pipe.as_ref().map(HashPipe::len) != Some(m.offset) {
            self.distrust = true;
            return Err(distrusted(self.root));
        }
        Ok(())
    }

    fn hash_entry(&mut self, header: &[u8], data: Option<(&Path, u64)>) -> Result<()> {
        let pipe = match &mut self.pipe {
            Some(p) => p,
            None => self.pipe.insert(HashPipe::start(Midstate::new())?),
        };
        pipe.update(header);
        let Some((path, size)) = data else {
            return Ok(());
        };
        if size > 0 {
            pipe.file(path, size);
        }
        let rem = (size % BLOCK as u64) as usize;
        if rem != 0 {
            pipe.update(&[0u8; BLOCK][..BLOCK - rem]);
        }
        Ok(())
    }

    /// After an entry, when hashing: a mark if the interval has passed.
    fn boundary(&mut self, next_entry: u64) {
        let Some(pipe) = &mut self.pipe else {
            return;
        };
        let offset = pipe.len();
        if offset - self.last_mark >= self.interval {
            pipe.mark(next_entry);
            self.last_mark = offset;
        }
    }

    fn finish(mut self) -> Result<Named> {
        self.resume()?;
        let mut hasher = match self.pipe.take() {
            Some(pipe) => {
                let (hasher, marks) = pipe.finish()?;
                self.marks.extend(marks);
                hasher
            }
            None => Midstate::new(),
        };
        let n = self.entries.len() as u64;
        if self.marks.last().map(|m| m.entry) != Some(n) {
            self.marks.push(Mark {
                entry: n,
                offset: hasher.len(),
                state: hasher.state().expect("entries end on block boundaries"),
            });
        }
        hasher.update(&[0u8; 2 * BLOCK]);
        let size = hasher.len();
        let diff_id = Digest::from_bytes(hasher.finalize());
        Ok(Named {
            diff_id,
            size,
            reused: self.reused,
            ckpt: Checkpoints {
                entries: self.entries,
                marks: self.marks,
                tar_len: size,
                usage: self.usage,
            },
        })
    }
}

impl Sink for Namer<'_> {
    fn item(&mut self, item: &Item<'_>) -> Result<()> {
        self.usage += item.usage;
        let i = self.entries.len();
        let id = EntryId {
            header: Sha256::digest(item.header).into(),
            inode: item.data.as_ref().map(|d| (d.dev, d.ino)),
        };
        if let Some(m) = self.matching.take() {
            if self.same(&m, i, &id, item) {
                let mut m = m;
                let size = item.data.as_ref().map_or(0, |d| d.size);
                m.offset += item.header.len() as u64 + size.next_multiple_of(BLOCK as u64);
                self.entries.push(id);
                match m.prev.ckpt.marks.get(m.next_mark) {
                    Some(mark) if mark.entry == i as u64 + 1 => {
                        if mark.offset != m.offset {
                            self.distrust = true;
                            return Err(distrusted(self.root));
                        }
                        m.restore = *mark;
                        m.next_mark += 1;
                        m.kept.clear();
                        self.marks.push(*mark);
                    }
                    _ => m.kept.push(Kept {
                        header: item.header.to_vec(),
                        data: item.data.as_ref().map(|d| (d.abs.to_path_buf(), d.size)),
                    }),
                }
                self.matching = Some(m);
                return Ok(());
            }
            self.matching = Some(m);
            self.resume()?;
        }
        let data = item.data.as_ref().map(|d| (d.abs, d.size));
        self.hash_entry(item.header, data)?;
        self.entries.push(id);
        self.boundary(i as u64 + 1);
        Ok(())
    }
}

fn distrusted(root: &Path) -> Error {
    Error::Sys {
        op: "checkpoint contradicts its layer while naming",
        path: root.to_path_buf(),
        source: std::io::Error::other("inconsistent layer checkpoint"),
    }
}

#[cfg(test)]
mod tests {
    use std::fs;
    use std::os::unix::fs::{MetadataExt, PermissionsExt};
    use std::path::Path;

    use rustix::fs::{AtFlags, Timespec, Timestamps, CWD};

    use super::*;
    use crate::canonical::write_dir_tar;

    struct Rng(u64);
    impl Rng {
        fn next(&mut self) -> u64 {
            self.0 ^= self.0 << 13;
            self.0 ^= self.0 >> 7;
            self.0 ^= self.0 << 17;
            self.0
        }
        fn below(&mut self, n: u64) -> u64 {
            self.next() % n
        }
        fn bytes(&mut self, n: usize) -> Vec<u8> {
            (0..n).map(|_| self.next() as u8).collect()
        }
    }

    fn set_mtime(p: &Path, secs: i64) {
        let t = Timespec {
            tv_sec: secs,
            tv_nsec: 0,
        };
        rustix::fs::utimensat(
            CWD,
            p,
            &Timestamps {
                last_access: t,
                last_modification: t,
            },
            AtFlags::SYMLINK_NOFOLLOW,
        )
        .unwrap();
    }

    /// A new file (a new inode) at `p` with `content`, mode and mtime; the
    /// directory keeps its mtime.
    fn put(p: &Path, content: &[u8], mode: u32, mtime: i64) {
        let parent = p.parent().unwrap();
        let t = fs::metadata(parent).unwrap().mtime();
        let _ = fs::remove_file(p);
        fs::write(p, content).unwrap();
        fs::set_permissions(p, fs::Permissions::from_mode(mode)).unwrap();
        set_mtime(p, mtime);
        set_mtime(parent, t);
    }

    /// Directories, files of many sizes (a few past the mark interval used
    /// here), symlinks, every mtime pinned.
    fn tree(root: &Path, rng: &mut Rng) {
        for d in 0..4 {
            let dir = root.join(format!("d{d}"));
            fs::create_dir(&dir).unwrap();
            for f in 0..12 {
                let size = match rng.below(10) {
                    0 => 0,
                    1 => 20_000 + rng.below(30_000) as usize,
                    _ => rng.below(3000) as usize,
                };
                put(
                    &dir.join(format!("f{f:02}")),
                    &rng.bytes(size),
                    0o644,
                    1000 + f,
                );
            }
            std::os::unix::fs::symlink("f00", dir.join("link")).unwrap();
            set_mtime(&dir.join("link"), 5);
            set_mtime(&dir, 100 + d);
        }
        put(&root.join("top"), b"top", 0o600, 7);
    }

    /// What incremental COPY leaves: the same tree, every regular file a
    /// hardlink of the previous layer's, directories and symlinks recreated.
    fn clone_linked(from: &Path, to: &Path) {
        fs::create_dir_all(to).unwrap();
        let mut names: Vec<_> = fs::read_dir(from).unwrap().map(|e| e.unwrap()).collect();
        names.sort_by_key(|e| e.file_name());
        for e in names {
            let (src, dst) = (e.path(), to.join(e.file_name()));
            let meta = fs::symlink_metadata(&src).unwrap();
            if meta.is_dir() {
                clone_linked(&src, &dst);
                fs::set_permissions(&dst, meta.permissions()).unwrap();
                set_mtime(&dst, meta.mtime());
            } else if meta.file_type().is_symlink() {
                std::os::unix::fs::symlink(fs::read_link(&src).unwrap(), &dst).unwrap();
                set_mtime(&dst, meta.mtime());
            } else {
                fs::hard_link(&src, &dst).unwrap();
            }
        }
    }

    fn full(dir: &Path) -> (Digest, u64) {
        write_dir_tar(dir, &mut std::io::sink(), &TarOptions::default()).unwrap()
    }

    /// Names `new` from `prev` and checks it against a full tar of `new`.
    fn check(prev: &Path, ckpt: &Checkpoints, new: &Path, interval: u64) -> Named {
        let named = name_dir(new, Some(Prev { dir: prev, ckpt }), interval).unwrap();
        let (digest, size) = full(new);
        assert_eq!(named.diff_id, digest);
        assert_eq!(named.size, size);
        assert_eq!(named.ckpt.tar_len, size);
        // The new sidecar is as good as one from a full walk: same entries,
        // and every mark resumes to the right digest.
        let fresh = name_dir(new, None, interval).unwrap();
        assert_eq!(named.ckpt.entries, fresh.ckpt.entries);
        assert_eq!(fresh.reused, 0);
        assert_eq!(named.ckpt.usage, usage(new));
        named
    }

    /// What the sidecar's usage stands for, by a walk: every entry below `dir`, a
    /// non-directory with several links as size / links, or nothing when its inode is
    /// older than `dir` (another layer's file, hardlinked).
    fn usage(dir: &Path) -> u64 {
        let born = fs::metadata(dir).unwrap().created().unwrap();
        usage_below(dir, born)
    }

    fn usage_below(dir: &Path, born: std::time::SystemTime) -> u64 {
        fs::read_dir(dir)
            .unwrap()
            .map(|e| {
                let e = e.unwrap();
                let m = e.metadata().unwrap();
                let own = if m.is_dir() || m.nlink() <= 1 {
                    m.len()
                } else if m.created().unwrap() < born {
                    0
                } else {
                    m.len() / m.nlink()
                };
                own + if m.is_dir() {
                    usage_below(&e.path(), born)
                } else {
                    0
                }
            })
            .sum()
    }

    /// The metadata of every directory and symlink below `dir` (what
    /// [`clone_linked`] makes anew).
    fn not_linked(dir: &Path) -> Vec<fs::Metadata> {
        let mut out = Vec::new();
        for e in fs::read_dir(dir).unwrap() {
            let p = e.unwrap().path();
            let m = fs::symlink_metadata(&p).unwrap();
            if m.is_dir() {
                out.extend(not_linked(&p));
            }
            if !m.is_file() {
                out.push(m);
            }
        }
        out
    }

    fn files(dir: &Path) -> Vec<std::path::PathBuf> {
        let mut out = Vec::new();
        let mut names: Vec<_> = fs::read_dir(dir)
            .unwrap()
            .map(|e| e.unwrap().path())
            .collect();
        names.sort();
        for p in names {
            let m = fs::symlink_metadata(&p).unwrap();
            if m.is_dir() {
                out.extend(files(&p));
            } else if m.is_file() {
                out.push(p);
            }
        }
        out
    }

    const SMALL: u64 = 4096;

    #[test]
    fn full_walk_matches_write_dir_tar_and_marks_resume() {
        let tmp = tempfile::tempdir().unwrap();
        let a = tmp.path().join("a");
        fs::create_dir(&a).unwrap();
        tree(&a, &mut Rng(11));
        let named = name_dir(&a, None, SMALL).unwrap();
        assert_eq!((named.diff_id, named.size), full(&a));
        assert!(named.ckpt.marks.len() > 5, "{:?}", named.ckpt.marks.len());
        // Resuming from each mark over the real tar bytes gives the digest.
        let mut tar = Vec::new();
        write_dir_tar(&a, &mut tar, &TarOptions::default()).unwrap();
        for m in &named.ckpt.marks {
            let mut h = Midstate::resume(m.state, m.offset).unwrap();
            h.update(&tar[m.offset as usize..]);
            assert_eq!(Digest::from_bytes(h.finalize()), named.diff_id);
        }
    }

    #[test]
    fn unchanged_tree_reuses_everything_but_the_end_marker() {
        let tmp = tempfile::tempdir().unwrap();
        let (a, b) = (tmp.path().join("a"), tmp.path().join("b"));
        fs::create_dir(&a).unwrap();
        tree(&a, &mut Rng(12));
        let prev = name_dir(&a, None, SMALL).unwrap();
        // Birth times are as coarse as the kernel's clock tick: `b` is made in a later
        // one than the files of `a`, as a later layer is.
        std::thread::sleep(std::time::Duration::from_millis(20));
        clone_linked(&a, &b);
        let named = check(&a, &prev.ckpt, &b, SMALL);
        assert_eq!(named.diff_id, prev.diff_id);
        assert_eq!(named.reused, named.size - 1024);
        // Hardlinks share inodes: the new sidecar is the old one, but for the
        // usage: every file is the earlier layer's, so only the directories and
        // symlinks (made anew) count.
        assert_eq!(named.ckpt.entries, prev.ckpt.entries);
        assert_eq!(named.ckpt.marks, prev.ckpt.marks);
        let own: u64 = not_linked(&b).iter().map(|m| m.len()).sum();
        assert_eq!(named.ckpt.usage, own);
        assert!(named.ckpt.usage < prev.ckpt.usage);
    }

    #[test]
    fn a_change_resumes_from_the_last_mark_before_it() {
        let tmp = tempfile::tempdir().unwrap();
        let a = tmp.path().join("a");
        fs::create_dir(&a).unwrap();
        tree(&a, &mut Rng(13));
        let prev = name_dir(&a, None, SMALL).unwrap();
        let all: Vec<_> = files(&a)
            .into_iter()
            .filter(|p| fs::metadata(p).unwrap().len() > 0)
            .collect();
        for (n, which) in [0, all.len() / 2, all.len() - 1].into_iter().enumerate() {
            let b = tmp.path().join(format!("b{n}"));
            clone_linked(&a, &b);
            let target = b.join(all[which].strip_prefix(&a).unwrap());
            let meta = fs::metadata(&target).unwrap();
            // Same size, mode and mtime, other bytes: only the inode tells.
            let mut content = fs::read(&target).unwrap();
            content.iter_mut().for_each(|b| *b = !*b);
            put(&target, &content, meta.mode() & 0o7777, meta.mtime());
            let named = check(&a, &prev.ckpt, &b, SMALL);
            assert_ne!(named.diff_id, prev.diff_id);
            // Resumed from the last mark at or before the first different entry.
            let k = named
                .ckpt
                .entries
                .iter()
                .zip(&prev.ckpt.entries)
                .position(|(x, y)| x != y)
                .unwrap();
            let expected = prev
                .ckpt
                .marks
                .iter()
                .filter(|m| m.entry as usize <= k)
                .map(|m| m.offset)
                .max()
                .unwrap_or(0);
            assert_eq!(named.reused, expected, "changed file #{which}");
            if which > 0 {
                assert!(named.reused > 0, "changed file #{which}");
            }
        }
    }

    #[test]
    fn same_header_but_not_the_same_inode_is_hashed() {
        // A fresh copy with identical metadata and identical bytes: correct to
        // reuse, but not provable from the sidecar, so it is hashed.
        let tmp = tempfile::tempdir().unwrap();
        let (a, b) = (tmp.path().join("a"), tmp.path().join("b"));
        fs::create_dir(&a).unwrap();
        tree(&a, &mut Rng(14));
        let prev = name_dir(&a, None, SMALL).unwrap();
        clone_linked(&a, &b);
        let first = files(&b)
            .into_iter()
            .find(|p| fs::metadata(p).unwrap().len() > 0)
            .unwrap();
        let meta = fs::metadata(&first).unwrap();
        put(
            &first,
            &fs::read(&first).unwrap(),
            meta.mode() & 0o7777,
            meta.mtime(),
        );
        let named = check(&a, &prev.ckpt, &b, SMALL);
        assert_eq!(named.diff_id, prev.diff_id);
        assert!(named.reused < named.size - 1024);
    }

    #[test]
    fn a_sidecar_whose_inodes_are_gone_from_the_previous_layer_is_not_trusted() {
        // The sidecar names b's inodes (b was cloned from a), but the directory
        // it is paired with (c, a plain copy) no longer holds them.
        let tmp = tempfile::tempdir().unwrap();
        let (a, b, c) = (
            tmp.path().join("a"),
            tmp.path().join("b"),
            tmp.path().join("c"),
        );
        fs::create_dir(&a).unwrap();
        tree(&a, &mut Rng(15));
        let prev = name_dir(&a, None, SMALL).unwrap();
        clone_linked(&a, &b);
        let status = std::process::Command::new("cp")
            .args(["-a"])
            .arg(&a)
            .arg(&c)
            .status()
            .unwrap();
        assert!(status.success());
        let named = check(&c, &prev.ckpt, &b, SMALL);
        assert_eq!(named.diff_id, prev.diff_id);
        // Paired with a, the same sidecar vouches for everything.
        assert_eq!(check(&a, &prev.ckpt, &b, SMALL).reused, named.size - 1024);
        assert!(named.reused < named.size - 1024);
    }

    #[test]
    fn a_sidecar_that_contradicts_the_tree_falls_back_to_a_full_hash() {
        let tmp = tempfile::tempdir().unwrap();
        let (a, b) = (tmp.path().join("a"), tmp.path().join("b"));
        fs::create_dir(&a).unwrap();
        tree(&a, &mut Rng(16));
        let prev = name_dir(&a, None, SMALL).unwrap();
        clone_linked(&a, &b);
        let mut lying = prev.ckpt.clone();
        lying.marks[1].offset += 512;
        let named = check(&a, &lying, &b, SMALL);
        assert_eq!(named.reused, 0);
        assert_eq!(named.diff_id, prev.diff_id);
    }

    #[test]
    fn random_edits_always_give_the_full_digest() {
        let tmp = tempfile::tempdir().unwrap();
        let mut rng = Rng(0x9e37_79b9_7f4a_7c15);
        let mut prev_dir = tmp.path().join("r0");
        fs::create_dir(&prev_dir).unwrap();
        tree(&prev_dir, &mut rng);
        let mut prev = name_dir(&prev_dir, None, SMALL).unwrap();
        let mut reused_any = false;
        for round in 1..40 {
            let dir = tmp.path().join(format!("r{round}"));
            clone_linked(&prev_dir, &dir);
            for _ in 0..rng.below(3) + 1 {
                let all = files(&dir);
                let dirs: Vec<_> = (0..4).map(|d| dir.join(format!("d{d}"))).collect();
                match rng.below(9) {
                    // new content, same metadata
                    0 if !all.is_empty() => {
                        let p = &all[rng.below(all.len() as u64) as usize];
                        let m = fs::metadata(p).unwrap();
                        let len = m.len() as usize;
                        put(p, &rng.bytes(len), m.mode() & 0o7777, m.mtime());
                    }
                    // new size
                    1 if !all.is_empty() => {
                        let p = &all[rng.below(all.len() as u64) as usize];
                        let len = rng.below(40_000) as usize;
                        put(p, &rng.bytes(len), 0o644, 2000);
                    }
                    // mode change (on a new inode, as COPY does)
                    2 if !all.is_empty() => {
                        let p = &all[rng.below(all.len() as u64) as usize];
                        let m = fs::metadata(p).unwrap();
                        put(p, &fs::read(p).unwrap(), 0o755, m.mtime());
                    }
                    // mtime change
                    3 if !all.is_empty() => {
                        let p = &all[rng.below(all.len() as u64) as usize];
                        let m = fs::metadata(p).unwrap();
                        put(p, &fs::read(p).unwrap(), m.mode() & 0o7777, m.mtime() + 1);
                    }
                    // remove a file, keeping the directory's mtime
                    4 if !all.is_empty() => {
                        let p = &all[rng.below(all.len() as u64) as usize];
                        let parent = p.parent().unwrap();
                        let t = fs::metadata(parent).unwrap().mtime();
                        fs::remove_file(p).unwrap();
                        set_mtime(parent, t);
                    }
                    // add a file, keeping the directory's mtime
                    5 => {
                        let d = &dirs[rng.below(4) as usize];
                        let t = fs::metadata(d).unwrap().mtime();
                        let size = rng.below(20_000) as usize;
                        put(
                            &d.join(format!("n{}", rng.next() % 1000)),
                            &rng.bytes(size),
                            0o644,
                            3,
                        );
                        set_mtime(d, t);
                    }
                    // a directory's mtime
                    6 => {
                        let d = &dirs[rng.below(4) as usize];
                        set_mtime(d, rng.below(1000) as i64);
                    }
                    // a hardlink inside the layer
                    7 if all.len() > 1 => {
                        let p = &all[rng.below(all.len() as u64) as usize];
                        let q = p.with_file_name(format!("h{}", rng.next() % 1000));
                        let t = fs::metadata(p.parent().unwrap()).unwrap().mtime();
                        if fs::hard_link(p, &q).is_ok() {
                            set_mtime(p.parent().unwrap(), t);
                        }
                    }
                    _ => {}
                }
            }
            let named = check(&prev_dir, &prev.ckpt, &dir, SMALL);
            reused_any |= named.reused > 0;
            prev_dir = dir;
            prev = named;
        }
        assert!(reused_any, "some round must have resumed from a mark");
        let _ = prev;
    }

    #[test]
    fn empty_trees() {
        let tmp = tempfile::tempdir().unwrap();
        let (a, b, c) = (
            tmp.path().join("a"),
            tmp.path().join("b"),
            tmp.path().join("c"),
        );
        for d in [&a, &b, &c] {
            fs::create_dir(d).unwrap();
        }
        let empty = name_dir(&a, None, SMALL).unwrap();
        assert_eq!(
            empty.diff_id.to_string(),
            "sha256:5f70bf18a086007016e948b04aed3b82103a36bea41755b6cddfaf10ace3c6ef"
        );
        // Empty after empty, full after empty, empty after full.
        assert_eq!(check(&a, &empty.ckpt, &b, SMALL).diff_id, empty.diff_id);
        tree(&c, &mut Rng(17));
        let full_c = check(&a, &empty.ckpt, &c, SMALL);
        assert_eq!(full_c.reused, 0);
        assert_eq!(check(&c, &full_c.ckpt, &b, SMALL).diff_id, empty.diff_id);
    }
}
