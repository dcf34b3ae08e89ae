use std::io::{self, Read, Write};
use std::path::{Path, PathBuf};

use rustix::fs::{Mode, OFlags, RenameFlags, CWD};
use rustix::io::Errno;
use strata_digest::{Digest, HashingReader};

use crate::apply::apply_tar;
use crate::canonical::{write_dir_tar, TarOptions};
use crate::checkpoint::Checkpoints;
use crate::error::{sys, Error, Result};
use crate::mount::Writable;
use crate::naming::{name_dir, Prev, MARK_INTERVAL};

/// The layer directories of a store: `<root>/layers/<diffID hex>/`, each in
/// overlay upperdir format and immutable once there. New layers are filled
/// under `<root>/tmp/` and renamed into place by [`Layers::commit`]. Beside
/// each, `<diffID hex>.ckpt` records what lets the next layer of the same step
/// be named without hashing what it shares with this one
/// ([`Layers::commit_incremental`]); it is never needed for correctness.
#[derive(Clone, Debug)]
pub struct Layers {
    layers: PathBuf,
    tmp: PathBuf,
    empty: PathBuf,
}

/// A layer directory being filled (diff format), not yet in the store.
/// Dropping it removes it.
#[derive(Debug)]
pub struct NewLayer {
    diff: PathBuf,
    work: PathBuf,
    /// Holds `diff` and `work`; removed with whatever is left on drop.
    _dir: tempfile::TempDir,
}

/// What [`Layers::commit`] stored.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Committed {
    /// Digest of the canonical tar: the layer's name.
    pub diff_id: Digest,
    /// Length of the canonical tar in bytes.
    pub size: u64,
    /// The directory had no entries (the tar is just the end marker).
    pub empty: bool,
    /// Leading bytes of the tar that were not hashed because the previous
    /// layer's checkpoints vouched for them (0 for a full hash).
    pub reused: u64,
}

/// What [`Layers::apply`] stored.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Applied {
    /// Digest of our canonical tar of the applied directory: the layer's name.
    /// It differs from `input_digest` when the input was not canonical.
    pub diff_id: Digest,
    /// Length of the canonical tar.
    pub size: u64,
    pub empty: bool,
    /// Digest of the input stream, every byte of it (the blob's diffID).
    pub input_digest: Digest,
    pub input_size: u64,
}

impl NewLayer {
    /// The directory to fill, in overlay upperdir format.
    pub fn path(&self) -> &Path {
        &self.diff
    }

    /// This layer as the upper directory of a writable overlay mount, with an
    /// empty work directory beside it on the same file system.
    pub fn writable(&self) -> Writable<'_> {
        Writable {
            upper: &self.diff,
            work: &self.work,
        }
    }
}

impl Layers {
    /// Opens (creating if needed) the layer area of the store at `store_root`. New
    /// layers are prepared under `tmp`, which must be on the same file system and owned
    /// by this process for as long as it runs (the store's per-process session
    /// directory, `Store::tmp_dir`, which no other process cleans while we live).
    pub fn new(store_root: &Path, tmp: &Path) -> Result<Layers> {
        let layers = Layers {
            layers: store_root.join("layers"),
            tmp: tmp.to_path_buf(),
            empty: store_root.join("empty"),
        };
        fs_err::create_dir_all(&layers.layers)?;
        fs_err::create_dir_all(&layers.tmp)?;
        fs_err::create_dir_all(&layers.empty)?;
        Ok(layers)
    }

    /// Where the layer `diff_id` lives (whether or not it is there).
    pub fn path(&self, diff_id: &Digest) -> PathBuf {
        self.layers.join(diff_id.hex())
    }

    pub fn has(&self, diff_id: &Digest) -> bool {
        self.path(diff_id).is_dir()
    }

    /// An empty directory that stays empty (the lower of an empty chain).
    pub(crate) fn empty_dir(&self) -> &Path {
        &self.empty
    }

    /// The path of a stored layer, or [`Error::MissingLayer`].
    pub(crate) fn existing(&self, diff_id: &Digest) -> Result<PathBuf> {
        let path = self.path(diff_id);
        if path.is_dir() {
            Ok(path)
        } else {
            Err(Error::MissingLayer(*diff_id))
        }
    }

    /// A fresh, empty layer directory (mode 0755, owner 0:0) to fill.
    pub fn begin(&self) -> Result<NewLayer> {
        let dir = tempfile::Builder::new()
            .prefix("layer-")
            .tempdir_in(&self.tmp)
            .map_err(|e| Error::Sys {
                op: "creating a temporary directory in",
                path: self.tmp.clone(),
                source: e,
            })?;
        let diff = dir.path().join("diff");
        let work = dir.path().join("work");
        fs_err::create_dir(&diff)?;
        fs_err::create_dir(&work)?;
        normalize_root(&diff)?;
        Ok(NewLayer {
            diff,
            work,
            _dir: dir,
        })
    }

    /// Names the filled directory by the digest of its canonical tar (which
    /// is hashed, not stored) and moves it into the store. When the store
    /// already has that layer, ours is discarded.
    pub fn commit(&self, layer: NewLayer) -> Result<Committed> {
        self.commit_incremental(layer, None)
    }

    /// [`Layers::commit`], resuming the hash from `prev`, the layer the same
    /// step made last time: the leading entries the new directory shares with
    /// it (same header bytes; regular files hardlinked from it) are not read
    /// or hashed again, only the rest of the tar. The diffID is exactly the one
    /// a full hash gives; without a usable `prev` (absent, or no intact
    /// checkpoint file) it is a full hash.
    pub fn commit_incremental(&self, layer: NewLayer, prev: Option<&Digest>) -> Result<Committed> {
        normalize_root(&layer.diff)?;
        let empty = fs_err::read_dir(&layer.diff)?.next().is_none();
        let prev = prev.and_then(|d| {
            let dir = self.path(d);
            let ckpt = Checkpoints::load(&self.ckpt_path(d), d)?;
            dir.is_dir().then_some((dir, ckpt))
        });
        let named = name_dir(
            &layer.diff,
            prev.as_ref().map(|(dir, ckpt)| Prev { dir, ckpt }),
            MARK_INTERVAL,
        )?;
        let diff_id = named.diff_id;
        let target = self.path(&diff_id);
        if !target.exists() {
            // No syncfs here: the rename is atomic, so a killed process never leaves a
            // half-written layer under its name, and the page cache survives process
            // death. Only a power loss could lose file data behind a stored name, the
            // same trade-off containerd's overlay snapshotter makes; syncing the whole
            // file system for every layer cost 1–2.5 s per 1.2 GB layer here (`cargo
            // xtask bench buildkit`). Blobs and metadata are still fsynced.
            let ours = match rustix::fs::renameat_with(
                CWD,
                &layer.diff,
                CWD,
                &target,
                RenameFlags::NOREPLACE,
            ) {
                Ok(()) => true,
                // Someone else stored the same layer first.
                Err(Errno::EXIST | Errno::NOTEMPTY) => false,
                Err(Errno::INVAL) => match fs_err::rename(&layer.diff, &target) {
                    Ok(()) => true,
                    Err(_) if target.is_dir() => false,
                    Err(e) => return Err(e.into()),
                },
                Err(e) => return Err(sys("renaming into the store", &target)(e)),
            };
            let dir = rustix::fs::open(
                &self.layers,
                OFlags::RDONLY | OFlags::DIRECTORY | OFlags::CLOEXEC,
                Mode::empty(),
            )
            .map_err(sys("opening", &self.layers))?;
            rustix::fs::fsync(&dir).map_err(sys("syncing", &self.layers))?;
            // The checkpoints name our inodes: only valid for the directory we stored.
            // Best effort: without them the next commit hashes in full.
            if ours {
                let _ = named
                    .ckpt
                    .store(&diff_id, &self.tmp, &self.ckpt_path(&diff_id));
            }
        }
        drop(layer);
        Ok(Committed {
            diff_id,
            size: named.size,
            empty,
            reused: named.reused,
        })
    }

    /// The checkpoint file beside a layer (see [`Layers::commit_incremental`]).
    fn ckpt_path(&self, diff_id: &Digest) -> PathBuf {
        self.layers.join(format!("{}.ckpt", diff_id.hex()))
    }

    /// Writes the tar of a stored layer to `w`; returns the digest and length
    /// of what was written. With default options that is the diffID.
    pub fn write_tar(
        &self,
        diff_id: &Digest,
        w: &mut dyn Write,
        opts: &TarOptions,
    ) -> Result<(Digest, u64)> {
        write_dir_tar(&self.existing(diff_id)?, w, opts)
    }

    /// Extracts an uncompressed layer tar into a new layer and commits it.
    /// `expected` is checked against the digest of the whole input stream
    /// before anything is stored; the layer is named by *our* canonical tar
    /// of the result ([`Applied::diff_id`]), which equals the input digest
    /// only when the input was canonical.
    ///
    /// Our own applier, never `tar::Archive::unpack`: `.wh.NAME` becomes a
    /// whiteout, `DIR/.wh..wh..opq` the opaque attribute on DIR, `.wh..wh.*`
    /// (AUFS bookkeeping) is skipped with everything under it. Refused with
    /// [`Error::UnsafeEntry`]: absolute paths, `..` components, any path
    /// through a symlink (every lookup is `openat2` with `RESOLVE_BENEATH |
    /// RESOLVE_NO_SYMLINKS`), hardlinks to anything but an earlier
    /// non-directory entry of the same tar, ids that do not fit. Kept: modes
    /// with setuid/setgid/sticky, uid/gid, mtimes (seconds), xattrs except
    /// `trusted.overlay.*`, symlinks, hardlinks, devices, fifos, empty
    /// directories. Directories the tar implies but does not list get mode
    /// 0755, owner 0:0 and mtime 0; a `./` entry is ignored (layer roots are
    /// always 0755 0:0).
    pub fn apply(&self, tar: impl Read, expected: Option<&Digest>) -> Result<Applied> {
        let layer = self.begin()?;
        let mut input = HashingReader::new(tar);
        apply_tar(layer.path(), &mut input)?;
        // The tar reader stops at the end marker; hash the padding after it too.
        io::copy(&mut input, &mut io::sink()).map_err(Error::Tar)?;
        let (input_digest, input_size, _) = input.finish();
        if let Some(expected) = expected {
            if *expected != input_digest {
                return Err(Error::DigestMismatch {
                    expected: *expected,
                    actual: input_digest,
                });
            }
        }
        let committed = self.commit(layer)?;
        Ok(Applied {
            diff_id: committed.diff_id,
            size: committed.size,
            empty: committed.empty,
            input_digest,
            input_size,
        })
    }

    /// Deletes a stored layer; returns whether it was there. The caller makes
    /// sure no mounted chain uses it.
    pub fn remove(&self, diff_id: &Digest) -> Result<bool> {
        let path = self.path(diff_id);
        // The checkpoints first: they must never outlive the directory they describe.
        match fs_err::remove_file(self.ckpt_path(diff_id)) {
            Ok(()) => {}
            Err(e) if e.kind() == io::ErrorKind::NotFound => {}
            Err(e) => return Err(e.into()),
        }
        let doomed = self
            .tmp
            .join(format!("removing-{}-{}", diff_id.hex(), std::process::id()));
        match fs_err::rename(&path, &doomed) {
            Ok(()) => {}
            Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(false),
            Err(e) => return Err(e.into()),
        }
        fs_err::remove_dir_all(&doomed)?;
        Ok(true)
    }
}

/// The apparent size of the stored layer directory `dir` (`<store>/layers/<diffID
/// hex>`) below its root, a file with several links counted as size / links, as its
/// sidecar recorded it when the layer was stored: what a walk of the directory would
/// sum then, without the walk. `None` without an intact sidecar.
pub fn layer_usage(dir: &Path) -> Option<u64> {
    let hex = dir.file_name()?.to_str()?;
    let diff_id: Digest = format!("sha256:{hex}").parse().ok()?;
    Checkpoints::load(&dir.with_file_name(format!("{hex}.ckpt")), &diff_id).map(|c| c.usage)
}

/// Layer roots are not in the tar, so they all look alike: 0755, owned by 0:0.
fn normalize_root(dir: &Path) -> Result<()> {
    std::os::unix::fs::chown(dir, Some(0), Some(0)).map_err(|e| Error::Sys {
        op: "chown",
        path: dir.to_path_buf(),
        source: e,
    })?;
    rustix::fs::chmod(dir, Mode::from_raw_mode(0o755)).map_err(sys("chmod", dir))?;
    Ok(())
}
