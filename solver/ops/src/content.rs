//! Content keys: the digest of exactly what a COPY/ADD reads from its source — names,
//! types, modes, sizes, contents, link targets (and owners when they are kept), never
//! mtimes — so a step re-runs only when what it copies changed.
//!
//! A [`StatCache`] remembers file hashes by (device, inode, size, mtime, ctime), so an
//! unchanged context costs one `lstat` per selected file and no reads.

use std::collections::HashMap;
use std::ffi::OsString;
use std::fs::Metadata;
use std::io::{Read, Write};
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::sync::Mutex;

use sha2::{Digest as _, Sha256};
use strata_digest::Digest;
use strata_graph::Copy;
use strata_patternmatcher::PatternMatcher;

use crate::copy::{resolve_sources, CopyError};
use crate::fsutil::{is_whiteout, resolve_in_root};

/// What identifies a file's content without reading it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Stamp {
    dev: u64,
    ino: u64,
    size: u64,
    mtime: i64,
    mtime_ns: i64,
    ctime: i64,
    ctime_ns: i64,
}

impl Stamp {
    fn of(m: &Metadata) -> Self {
        Stamp {
            dev: m.dev(),
            ino: m.ino(),
            size: m.size(),
            mtime: m.mtime(),
            mtime_ns: m.mtime_nsec(),
            ctime: m.ctime(),
            ctime_ns: m.ctime_nsec(),
        }
    }
}

/// Paths as bytes with a fast hash: a no-op rebuild looks up every file of the context,
/// and `Path`'s component-wise hashing and comparison under SipHash had been a fifth of
/// its CPU (30,000 files).
type PathHasher = foldhash::fast::RandomState;

/// File content hashes (BLAKE3: internal ids, never an OCI digest) keyed by stat data,
/// persisted between builds.
#[derive(Debug, Default)]
pub struct StatCache {
    file: Option<PathBuf>,
    entries: Mutex<HashMap<OsString, (Stamp, [u8; 32]), PathHasher>>,
    /// The stamps as loaded, before this build hashed anything.
    loaded: HashMap<OsString, Stamp, PathHasher>,
    dirty: std::sync::atomic::AtomicBool,
    /// Where [`StatCache::save`] writes before renaming (see [`StatCache::with_tmp_dir`]).
    tmp_dir: Option<PathBuf>,
}

/// v2: BLAKE3 content hashes (v1 held sha256; a v1 file is ignored, not misread).
const MAGIC: &[u8; 8] = b"strstat2";

impl StatCache {
    /// Loads `file` if it exists and is readable; a damaged file is simply ignored.
    pub fn load(file: &Path) -> Self {
        let mut entries = HashMap::default();
        if let Ok(bytes) = std::fs::read(file) {
            if bytes.starts_with(MAGIC) {
                let mut r = &bytes[8..];
                while let Some(e) = read_entry(&mut r) {
                    entries.insert(e.0.into_os_string(), (e.1, e.2));
                }
            }
        }
        let loaded = entries.iter().map(|(p, (s, _))| (p.clone(), *s)).collect();
        StatCache {
            file: Some(file.to_path_buf()),
            entries: Mutex::new(entries),
            loaded,
            dirty: Default::default(),
            tmp_dir: None,
        }
    }

    /// Saves through a temporary file in `dir` (the store's per-process tmp/ session,
    /// which outlives no crash) instead of one beside the cache file, which a process
    /// killed mid-save would leave behind for good.
    pub fn with_tmp_dir(mut self, dir: &Path) -> Self {
        self.tmp_dir = Some(dir.to_path_buf());
        self
    }

    /// Writes the cache back (temp file + rename) when it changed.
    pub fn save(&self) -> std::io::Result<()> {
        let Some(file) = &self.file else {
            return Ok(());
        };
        if !self.dirty.load(std::sync::atomic::Ordering::Relaxed) {
            return Ok(());
        }
        let entries = self.entries.lock().expect("stat cache lock");
        let tmp = match &self.tmp_dir {
            Some(dir) => dir.join("statcache"),
            None => file.with_extension(format!("tmp.{}", std::process::id())),
        };
        let mut w = std::io::BufWriter::new(std::fs::File::create(&tmp)?);
        w.write_all(MAGIC)?;
        for (p, (s, h)) in entries.iter() {
            let pb = p.as_os_str().as_encoded_bytes();
            w.write_all(&(pb.len() as u32).to_le_bytes())?;
            w.write_all(pb)?;
            for v in [s.dev, s.ino, s.size] {
                w.write_all(&v.to_le_bytes())?;
            }
            for v in [s.mtime, s.mtime_ns, s.ctime, s.ctime_ns] {
                w.write_all(&v.to_le_bytes())?;
            }
            w.write_all(h)?;
        }
        w.into_inner().map_err(|e| e.into_error())?.sync_all()?;
        std::fs::rename(&tmp, file)
    }

    /// Was the file at `path` already hashed, with the same stamp, by an earlier build?
    pub fn unchanged(&self, path: &Path, meta: &Metadata) -> bool {
        self.loaded.get(path.as_os_str()) == Some(&Stamp::of(meta))
    }

    /// Whether [`StatCache::file_hash`] of `path` would come from the cache.
    pub fn knows(&self, path: &Path, meta: &Metadata) -> bool {
        let stamp = Stamp::of(meta);
        let entries = self.entries.lock().expect("stat cache lock");
        entries
            .get(path.as_os_str())
            .is_some_and(|(s, _)| *s == stamp)
    }

    /// BLAKE3 of the file at `path` (whose metadata is `meta`), from the cache when the
    /// stamp matches.
    pub fn file_hash(&self, path: &Path, meta: &Metadata) -> std::io::Result<[u8; 32]> {
        let stamp = Stamp::of(meta);
        let cached = self
            .entries
            .lock()
            .expect("stat cache lock")
            .get(path.as_os_str())
            .copied();
        if let Some((s, h)) = cached {
            if s == stamp {
                return Ok(h);
            }
        }
        let mut f = std::fs::File::open(path)?;
        let mut hasher = blake3::Hasher::new();
        // Sized to the file (one read past the end finds EOF): a small file's buffer
        // comes from the allocator's recycled small blocks, where a fresh zeroed 64 KiB
        // per file had cost a 5,000-file context hit a quarter of its CPU in the kernel
        // zeroing pages.
        let mut buf = vec![0u8; (meta.len() as usize).saturating_add(1).min(1 << 16)];
        loop {
            let n = f.read(&mut buf)?;
            if n == 0 {
                break;
            }
            hasher.update(&buf[..n]);
        }
        let h: [u8; 32] = hasher.finalize().into();
        self.entries
            .lock()
            .expect("stat cache lock")
            .insert(path.as_os_str().to_owned(), (stamp, h));
        self.dirty.store(true, std::sync::atomic::Ordering::Relaxed);
        Ok(h)
    }
}

fn read_entry(r: &mut &[u8]) -> Option<(PathBuf, Stamp, [u8; 32])> {
    fn take<'a>(r: &mut &'a [u8], n: usize) -> Option<&'a [u8]> {
        if r.len() < n {
            return None;
        }
        let (a, b) = r.split_at(n);
        *r = b;
        Some(a)
    }
    let len = u32::from_le_bytes(take(r, 4)?.try_into().ok()?) as usize;
    let p = take(r, len)?;
    let path = PathBuf::from(<std::ffi::OsStr as std::os::unix::ffi::OsStrExt>::from_bytes(p));
    let u =
        |r: &mut &[u8]| -> Option<u64> { Some(u64::from_le_bytes(take(r, 8)?.try_into().ok()?)) };
    let dev = u(r)?;
    let ino = u(r)?;
    let size = u(r)?;
    let i =
        |r: &mut &[u8]| -> Option<i64> { Some(i64::from_le_bytes(take(r, 8)?.try_into().ok()?)) };
    let (mtime, mtime_ns, ctime, ctime_ns) = (i(r)?, i(r)?, i(r)?, i(r)?);
    let h: [u8; 32] = take(r, 32)?.try_into().ok()?;
    Some((
        path,
        Stamp {
            dev,
            ino,
            size,
            mtime,
            mtime_ns,
            ctime,
            ctime_ns,
        },
        h,
    ))
}

/// Threads hashing files that are not in the stat cache (mostly waiting on the disk).
const IO_READERS: usize = 16;

/// A regular file read for a content digest: its path relative to the source root and
/// its BLAKE3 hash.
pub type FileHash = (PathBuf, [u8; 32]);

/// The content digest of what `c` selects in `src_root`.
pub fn content_digest(
    src_root: &Path,
    ignore: Option<&PatternMatcher>,
    c: &Copy,
    keep_owner: bool,
    cache: &StatCache,
) -> Result<Digest, CopyError> {
    content_digest_reads(src_root, ignore, c, keep_owner, cache).map(|(d, _)| d)
}

/// [`content_digest`], and the BLAKE3 of each regular file it read, by path relative
/// to `src_root` (for explaining cache misses).
pub fn content_digest_reads(
    src_root: &Path,
    ignore: Option<&PatternMatcher>,
    c: &Copy,
    keep_owner: bool,
    cache: &StatCache,
) -> Result<(Digest, Vec<FileHash>), CopyError> {
    let exclude = if c.exclude.is_empty() {
        None
    } else {
        Some(PatternMatcher::new(&c.exclude)?)
    };
    let mut h = Sha256::new();
    let mut hasher = TreeHasher {
        root: src_root,
        ignore,
        exclude: exclude.as_ref(),
        keep_owner,
        cache,
        pieces: Vec::new(),
        files: Vec::new(),
    };
    for m in resolve_sources(src_root, ignore, c)? {
        hasher.put(b"match\0");
        hasher.put(m.rel.as_os_str().as_encoded_bytes());
        hasher.put([0]);
        if c.parents {
            hasher.kept_dirs(&m)?;
        }
        let mut rel = m.rel.clone();
        let mut meta = std::fs::symlink_metadata(src_root.join(&rel)).map_err(|e| io(&rel, e))?;
        if meta.file_type().is_symlink() && c.follow_symlinks {
            rel = resolve_in_root(src_root, &m.rel, true).map_err(|e| io(&m.rel, e))?;
            meta = std::fs::symlink_metadata(src_root.join(&rel)).map_err(|_| {
                CopyError::NotFound {
                    path: m.rel.to_string_lossy().into(),
                }
            })?;
        }
        hasher.entry(&rel, &meta, &m.rel)?;
    }
    let reads = hasher.finish(&mut h)?;
    Ok((Digest::from_hasher(h), reads))
}

fn io(p: &Path, source: std::io::Error) -> CopyError {
    CopyError::Io {
        path: p.to_path_buf(),
        source,
    }
}

struct TreeHasher<'a> {
    root: &'a Path,
    ignore: Option<&'a PatternMatcher>,
    exclude: Option<&'a PatternMatcher>,
    keep_owner: bool,
    cache: &'a StatCache,
    pieces: Vec<Piece>,
    /// Files whose contents are hashed later: (absolute path, relative path, metadata).
    files: Vec<(PathBuf, PathBuf, Metadata)>,
}

/// The hashed stream: literal bytes, or the content hash of `files[i]`.
enum Piece {
    Bytes(Vec<u8>),
    File(usize),
}

impl TreeHasher<'_> {
    fn put(&mut self, bytes: impl AsRef<[u8]>) {
        match self.pieces.last_mut() {
            Some(Piece::Bytes(b)) => b.extend_from_slice(bytes.as_ref()),
            _ => self.pieces.push(Piece::Bytes(bytes.as_ref().to_vec())),
        }
    }

    /// Hashes the recorded files (in parallel, through the stat cache) and feeds
    /// everything, in traversal order, to `h`; returns each file's relative path and hash.
    fn finish(self, h: &mut Sha256) -> Result<Vec<FileHash>, CopyError> {
        use rayon::prelude::*;
        let cache = self.cache;
        let hash = |i: usize| {
            let (abs, rel, meta) = &self.files[i];
            cache.file_hash(abs, meta).map_err(|e| io(rel, e))
        };
        // Files the stat cache does not know are read from disk: small files cost a
        // seek each, so many reads in flight go faster than one per core (30,000 files
        // of 1-8 KiB after drop_caches: 1.1 s with 16 readers, 2.6 s with 2).
        let to_read = self.files.iter().filter(|(abs, _, m)| !cache.knows(abs, m));
        let pool = (to_read.take(IO_READERS).count() == IO_READERS)
            .then(|| {
                rayon::ThreadPoolBuilder::new()
                    .num_threads(IO_READERS)
                    .thread_name(|i| format!("ctx-read-{i}"))
                    .build()
                    .ok()
            })
            .flatten();
        let hashes: Vec<Result<[u8; 32], CopyError>> = match pool {
            // One task per file, largest first: a few big files start at once on all
            // threads instead of queueing behind each other on one.
            Some(pool) => {
                let mut order: Vec<usize> = (0..self.files.len()).collect();
                order.sort_by_key(|&i| std::cmp::Reverse(self.files[i].2.len()));
                let mut by_size: Vec<_> = pool.install(|| {
                    order
                        .par_iter()
                        .with_max_len(1)
                        .map(|&i| (i, hash(i)))
                        .collect()
                });
                by_size.sort_unstable_by_key(|(i, _)| *i);
                by_size.into_iter().map(|(_, h)| h).collect()
            }
            // (Almost) all from the stat cache: no reads to spread.
            None => (0..self.files.len()).into_par_iter().map(hash).collect(),
        };
        for p in self.pieces {
            match p {
                Piece::Bytes(b) => h.update(&b),
                Piece::File(i) => h.update(hashes[i].as_ref().map_err(|e| CopyError::Io {
                    path: self.files[i].1.clone(),
                    source: std::io::Error::other(e.to_string()),
                })?),
            }
        }
        Ok(self
            .files
            .into_iter()
            .zip(hashes)
            .filter_map(|((_, rel, _), hash)| Some((rel, hash.ok()?)))
            .collect())
    }

    /// `--parents` makes the directories above a match (within the kept path) from the
    /// source's, so their mode (and owner) are part of what the copy reads.
    fn kept_dirs(&mut self, m: &crate::copy::Match) -> Result<(), CopyError> {
        let Some(kept) = m.keep.parent() else {
            return Ok(());
        };
        let skip = m.rel.components().count() - m.keep.components().count();
        let prefix: PathBuf = m.rel.components().take(skip).collect();
        for dir in kept.ancestors().filter(|a| !a.as_os_str().is_empty()) {
            let rel = prefix.join(dir);
            let meta = std::fs::metadata(self.root.join(&rel)).map_err(|e| io(&rel, e))?;
            self.put(b"p");
            self.put(dir.as_os_str().as_encoded_bytes());
            self.put([0]);
            self.put(meta.mode().to_le_bytes());
            if self.keep_owner {
                self.put(meta.uid().to_le_bytes());
                self.put(meta.gid().to_le_bytes());
            }
        }
        Ok(())
    }

    fn entry(&mut self, rel: &Path, meta: &Metadata, match_root: &Path) -> Result<(), CopyError> {
        let name = rel.strip_prefix(match_root).unwrap_or(rel);
        self.put(name.as_os_str().as_encoded_bytes());
        self.put([0]);
        self.put((meta.mode()).to_le_bytes());
        if self.keep_owner {
            self.put(meta.uid().to_le_bytes());
            self.put(meta.gid().to_le_bytes());
        }
        let ft = meta.file_type();
        if ft.is_symlink() {
            let t = std::fs::read_link(self.root.join(rel)).map_err(|e| io(rel, e))?;
            self.put(b"l");
            self.put(t.as_os_str().as_encoded_bytes());
        } else if ft.is_file() {
            self.put(b"f");
            self.put(meta.size().to_le_bytes());
            // Contents are hashed afterwards, in parallel; their place is kept here.
            self.files
                .push((self.root.join(rel), rel.to_path_buf(), meta.clone()));
            self.pieces.push(Piece::File(self.files.len() - 1));
        } else if ft.is_dir() {
            self.put(b"d");
            let dir = self.root.join(rel);
            let mut children: Vec<_> = std::fs::read_dir(&dir)
                .map_err(|e| io(rel, e))?
                .filter_map(|e| e.ok())
                .map(|e| (e.file_name(), e))
                .collect();
            children.sort_by(|a, b| a.0.cmp(&b.0));
            for (n, e) in children {
                let child = rel.join(&n);
                let child_s = child.to_string_lossy();
                let in_match = child.strip_prefix(match_root).unwrap_or(&child);
                if let Some(x) = self.exclude {
                    if x.matches(&child_s) || x.matches(&in_match.to_string_lossy()) {
                        continue;
                    }
                }
                // Relative to the open directory: no walk of the whole path.
                let m = e.metadata().map_err(|e| io(&child, e))?;
                if is_whiteout(&m) {
                    continue;
                }
                if self.ignore.is_some_and(|i| i.matches(&child_s)) {
                    if m.is_dir() && self.ignore.is_some_and(|i| i.has_exclusions()) {
                        self.entry(&child, &m, match_root)?;
                    }
                    continue;
                }
                self.entry(&child, &m, match_root)?;
            }
            self.put(b"/d");
        } else {
            self.put(b"s");
            self.put(meta.rdev().to_le_bytes());
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn copy_of(src: &[&str]) -> Copy {
        Copy {
            input: 1,
            sources: src.iter().map(|s| s.to_string()).collect(),
            dest: "/d/".into(),
            chown: None,
            chmod: None,
            dir_contents_only: true,
            follow_symlinks: true,
            allow_wildcard: true,
            allow_empty_wildcard: true,
            create_dest_path: true,
            unpack: false,
            parents: false,
            exclude: vec![],
        }
    }

    #[test]
    fn content_digest_reads_names_each_selected_file() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::create_dir(dir.path().join("src")).unwrap();
        std::fs::write(dir.path().join("src/a.c"), "a").unwrap();
        std::fs::write(dir.path().join("other"), "x").unwrap();
        let c = copy_of(&["src"]);
        let cache = StatCache::default();
        let (d, read) = content_digest_reads(dir.path(), None, &c, false, &cache).unwrap();
        assert_eq!(
            d,
            content_digest(dir.path(), None, &c, false, &cache).unwrap()
        );
        assert_eq!(
            read,
            vec![(PathBuf::from("src/a.c"), *blake3::hash(b"a").as_bytes())]
        );
    }

    #[test]
    fn many_unread_files_are_hashed_in_parallel_each_to_its_own_place() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::create_dir(dir.path().join("src")).unwrap();
        // More files than IO_READERS, of different sizes (the big ones are hashed first).
        let content = |i: usize| format!("{i}:").repeat(1 + (i * 7919) % 5000);
        for i in 0..3 * IO_READERS {
            std::fs::write(dir.path().join(format!("src/f{i:03}")), content(i)).unwrap();
        }
        let c = copy_of(&["src"]);
        let cache = StatCache::default();
        let (d, read) = content_digest_reads(dir.path(), None, &c, false, &cache).unwrap();
        assert_eq!(read.len(), 3 * IO_READERS);
        for (i, (rel, h)) in read.iter().enumerate() {
            assert_eq!(rel, &PathBuf::from(format!("src/f{i:03}")));
            assert_eq!(h, blake3::hash(content(i).as_bytes()).as_bytes());
        }
        // Now every file is in the stat cache: the same digest without reading.
        assert!(read.iter().all(|(rel, _)| {
            let p = dir.path().join(rel);
            cache.knows(&p, &std::fs::symlink_metadata(&p).unwrap())
        }));
        assert_eq!(
            content_digest(dir.path(), None, &c, false, &cache).unwrap(),
            d
        );
    }

    #[test]
    fn parents_digest_reads_the_kept_directories() {
        use std::os::unix::fs::PermissionsExt;
        let d = tempfile::tempdir().unwrap();
        let r = d.path();
        std::fs::create_dir_all(r.join("a/b")).unwrap();
        std::fs::write(r.join("a/b/f"), "1").unwrap();
        let cache = StatCache::default();
        let mut c = copy_of(&["a/b/f"]);
        c.parents = true;
        let d1 = content_digest(r, None, &c, false, &cache).unwrap();
        std::fs::set_permissions(r.join("a/b"), std::fs::Permissions::from_mode(0o700)).unwrap();
        assert_ne!(
            content_digest(r, None, &c, false, &cache).unwrap(),
            d1,
            "--parents makes a/b from the source's a/b"
        );
        c.parents = false;
        let plain = content_digest(r, None, &c, false, &cache).unwrap();
        std::fs::set_permissions(r.join("a/b"), std::fs::Permissions::from_mode(0o755)).unwrap();
        assert_eq!(
            content_digest(r, None, &c, false, &cache).unwrap(),
            plain,
            "without --parents the directory is not read"
        );
    }

    #[test]
    fn digest_changes_with_content_not_with_unselected_files_or_mtime() {
        let d = tempfile::tempdir().unwrap();
        let r = d.path();
        std::fs::create_dir(r.join("src")).unwrap();
        std::fs::write(r.join("src/a"), "1").unwrap();
        std::fs::write(r.join("other"), "x").unwrap();
        let cache = StatCache::default();
        let c = copy_of(&["src"]);
        let d1 = content_digest(r, None, &c, false, &cache).unwrap();
        std::fs::write(r.join("other"), "changed").unwrap();
        assert_eq!(
            content_digest(r, None, &c, false, &cache).unwrap(),
            d1,
            "unselected file"
        );
        let f = std::fs::File::options()
            .write(true)
            .open(r.join("src/a"))
            .unwrap();
        f.set_modified(std::time::SystemTime::UNIX_EPOCH + std::time::Duration::from_secs(12345))
            .unwrap();
        assert_eq!(
            content_digest(r, None, &c, false, &cache).unwrap(),
            d1,
            "mtime only"
        );
        std::fs::write(r.join("src/a"), "2").unwrap();
        assert_ne!(
            content_digest(r, None, &c, false, &cache).unwrap(),
            d1,
            "content"
        );
        std::fs::write(r.join("src/a"), "1").unwrap();
        assert_eq!(
            content_digest(r, None, &c, false, &cache).unwrap(),
            d1,
            "back to the same content"
        );
        std::fs::write(r.join("src/new"), "").unwrap();
        assert_ne!(
            content_digest(r, None, &c, false, &cache).unwrap(),
            d1,
            "new file"
        );
    }

    #[test]
    fn stat_cache_round_trips_and_skips_reads() {
        let d = tempfile::tempdir().unwrap();
        let f = d.path().join("f");
        std::fs::write(&f, "abc").unwrap();
        let file = d.path().join("stat.cache");
        let c = StatCache::load(&file);
        let m = std::fs::symlink_metadata(&f).unwrap();
        let h = c.file_hash(&f, &m).unwrap();
        c.save().unwrap();
        let c2 = StatCache::load(&file);
        let entries = c2.entries.lock().unwrap();
        assert_eq!(entries.get(f.as_os_str()).map(|e| e.1), Some(h));
    }

    #[test]
    fn stat_cache_saves_through_the_tmp_dir() {
        let d = tempfile::tempdir().unwrap();
        let tmp = tempfile::tempdir_in(d.path()).unwrap();
        let f = d.path().join("f");
        std::fs::write(&f, "abc").unwrap();
        let file = d.path().join("stat.cache");
        let c = StatCache::load(&file).with_tmp_dir(tmp.path());
        let m = std::fs::symlink_metadata(&f).unwrap();
        let h = c.file_hash(&f, &m).unwrap();
        c.save().unwrap();
        let mut names: Vec<String> = std::fs::read_dir(d.path())
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .filter(|n| !n.starts_with(".tmp"))
            .collect();
        names.sort();
        assert_eq!(names, ["f", "stat.cache"]);
        assert_eq!(std::fs::read_dir(tmp.path()).unwrap().count(), 0);
        let again = StatCache::load(&file);
        let entries = again.entries.lock().unwrap();
        assert_eq!(entries.get(f.as_os_str()).map(|e| e.1), Some(h));
    }
}
