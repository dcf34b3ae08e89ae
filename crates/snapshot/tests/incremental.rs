//! `Layers::commit_incremental`: the layer a step makes again is named by
//! hashing only what follows the entries it shares with the layer it made last
//! time, and the name is always the full canonical tar's digest.

mod common;

use std::fs;
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};

use common::store;
use rustix::fs::{AtFlags, Timespec, Timestamps, CWD};
use strata_digest::Digest;
use strata_snapshot::{write_dir_tar, Committed, Layers, TarOptions};

/// Past the 8 MiB mark interval: a mark follows `big-0`.
const BIG: usize = 8 << 20;
const MID: usize = 1 << 20;

fn set_mtime(p: &Path, secs: i64) {
    let t = Timespec {
        tv_sec: secs,
        tv_nsec: 0,
    };
    let times = Timestamps {
        last_access: t,
        last_modification: t,
    };
    rustix::fs::utimensat(CWD, p, &times, AtFlags::SYMLINK_NOFOLLOW).unwrap();
}

fn noise(len: usize, mut x: u64) -> Vec<u8> {
    (0..len)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            x as u8
        })
        .collect()
}

/// A new inode at `p`; the directory keeps its mtime (as in a rebuilt layer
/// whose directory metadata did not change).
fn put(p: &Path, content: &[u8], mode: u32, mtime: i64) {
    let parent = p.parent().unwrap();
    let t = fs::metadata(parent).map(|m| m.mtime()).unwrap_or(0);
    let _ = fs::remove_file(p);
    fs::write(p, content).unwrap();
    fs::set_permissions(p, fs::Permissions::from_mode(mode)).unwrap();
    set_mtime(p, mtime);
    set_mtime(parent, t);
}

/// `app/` with a file past the 8 MiB mark interval, a smaller one, then 200 small ones.
fn fill(root: &Path) {
    let app = root.join("app");
    fs::create_dir_all(app.join("src")).unwrap();
    put(&app.join("big-0"), &noise(BIG, 1), 0o644, 10);
    put(&app.join("big-1"), &noise(MID, 2), 0o644, 11);
    for i in 0..200u64 {
        let len = 1000 + (i as usize * 37) % 3000;
        put(
            &app.join(format!("src/f{i:03}")),
            &noise(len, i + 3),
            0o644,
            20,
        );
    }
    set_mtime(&app.join("src"), 30);
    set_mtime(&app, 40);
}

/// Incremental COPY's result: directories recreated with the same metadata,
/// regular files hardlinked from the previous layer.
fn clone_linked(from: &Path, to: &Path) {
    let mut names: Vec<_> = fs::read_dir(from).unwrap().map(|e| e.unwrap()).collect();
    names.sort_by_key(|e| e.file_name());
    for e in names {
        let (src, dst) = (e.path(), to.join(e.file_name()));
        let meta = fs::symlink_metadata(&src).unwrap();
        if meta.is_dir() {
            fs::create_dir(&dst).unwrap();
            clone_linked(&src, &dst);
            fs::set_permissions(&dst, meta.permissions()).unwrap();
            set_mtime(&dst, meta.mtime());
        } else {
            fs::hard_link(&src, &dst).unwrap();
        }
    }
}

fn ckpt(layers_root: &Path, d: &Digest) -> PathBuf {
    layers_root.join(format!("layers/{}.ckpt", d.hex()))
}

/// Commits a clone of `prev` edited by `edit`; checks the name against a
/// full tar of the same directory.
fn again(layers: &Layers, prev: &Digest, edit: impl FnOnce(&Path)) -> Committed {
    let new = layers.begin().unwrap();
    clone_linked(&layers.path(prev), new.path());
    edit(new.path());
    let (expected, size) =
        write_dir_tar(new.path(), &mut std::io::sink(), &TarOptions::default()).unwrap();
    let c = layers.commit_incremental(new, Some(prev)).unwrap();
    assert_eq!((c.diff_id, c.size), (expected, size));
    assert!(layers.has(&c.diff_id));
    c
}

fn first(layers: &Layers) -> Committed {
    let new = layers.begin().unwrap();
    fill(new.path());
    layers.commit(new).unwrap()
}

#[test]
fn commit_writes_checkpoints_beside_the_layer_and_remove_deletes_them() {
    let s = store();
    let c = first(&s.layers);
    assert_eq!(c.reused, 0);
    let path = ckpt(&s.dir.path().join("store"), &c.diff_id);
    let len = fs::metadata(&path).unwrap().len();
    // 205 entries: 33 bytes each, 16 more per file, a few marks.
    assert!(len < 20_000, "{len} bytes");
    assert!(
        !s.layers.path(&c.diff_id).join(".ckpt").exists()
            && fs::read_dir(s.layers.path(&c.diff_id)).unwrap().count() == 1,
        "the layer directory holds only the layer"
    );
    assert!(s.layers.remove(&c.diff_id).unwrap());
    assert!(!path.exists());
}

#[test]
fn unchanged_layer_reuses_all_but_the_end_marker() {
    let s = store();
    let c = first(&s.layers);
    let d = again(&s.layers, &c.diff_id, |_| {});
    assert_eq!(d.diff_id, c.diff_id);
    assert_eq!(d.reused, c.size - 1024);
}

#[test]
fn a_changed_small_file_after_the_big_one_hashes_only_from_the_last_mark() {
    let s = store();
    let c = first(&s.layers);
    for name in ["f000", "f100", "f199"] {
        let d = again(&s.layers, &c.diff_id, |root| {
            put(&root.join("app/src").join(name), b"changed\n", 0o644, 20);
        });
        assert_ne!(d.diff_id, c.diff_id);
        // Resumed at the mark after big-0 at least.
        assert!(d.reused >= BIG as u64, "{name}: reused {}", d.reused);
        assert!(d.reused < c.size, "{name}");
    }
}

#[test]
fn edits_anywhere_give_the_full_digest() {
    let s = store();
    let c = first(&s.layers);
    let mut prev = c.diff_id;
    type Edit = Box<dyn Fn(&Path)>;
    let edits: Vec<(&str, Edit, bool)> = vec![
        // (what, edit, whether the first big file is still reused)
        (
            "first entry's mtime",
            Box::new(|r| set_mtime(&r.join("app"), 41)),
            false,
        ),
        (
            "big file, same size and mtime, other bytes",
            Box::new(|r| put(&r.join("app/big-1"), &noise(MID, 99), 0o644, 11)),
            true,
        ),
        (
            "first big file",
            Box::new(|r| put(&r.join("app/big-0"), &noise(BIG, 98), 0o644, 10)),
            false,
        ),
        (
            "mode",
            Box::new(|r| {
                let p = r.join("app/src/f050");
                put(&p, &fs::read(&p).unwrap(), 0o755, 20)
            }),
            true,
        ),
        (
            "mtime",
            Box::new(|r| {
                let p = r.join("app/src/f051");
                put(&p, &fs::read(&p).unwrap(), 0o644, 21)
            }),
            true,
        ),
        (
            "added at the end",
            Box::new(|r| put(&r.join("app/src/zzz"), b"new", 0o644, 1)),
            true,
        ),
        (
            "removed at the end",
            Box::new(|r| {
                let t = fs::metadata(r.join("app/src")).unwrap().mtime();
                fs::remove_file(r.join("app/src/zzz")).unwrap();
                set_mtime(&r.join("app/src"), t);
            }),
            true,
        ),
        (
            "removed in the middle",
            Box::new(|r| {
                let t = fs::metadata(r.join("app/src")).unwrap().mtime();
                fs::remove_file(r.join("app/src/f120")).unwrap();
                set_mtime(&r.join("app/src"), t);
            }),
            true,
        ),
        (
            "symlink and empty directory added",
            Box::new(|r| {
                std::os::unix::fs::symlink("big-0", r.join("app/src/link")).unwrap();
                fs::create_dir(r.join("app/src/empty")).unwrap();
                set_mtime(&r.join("app/src"), 30);
            }),
            true,
        ),
        (
            "xattr on a small file",
            Box::new(|r| {
                let p = r.join("app/src/f010");
                put(&p, &fs::read(&p).unwrap(), 0o644, 20);
                xattr::set(&p, "user.k", b"v").unwrap();
            }),
            true,
        ),
        (
            "hardlink inside the layer",
            Box::new(|r| {
                fs::hard_link(r.join("app/src/f011"), r.join("app/src/f011-too")).unwrap();
                set_mtime(&r.join("app/src"), 30);
            }),
            true,
        ),
        (
            "everything removed",
            Box::new(|r| fs::remove_dir_all(r.join("app")).unwrap()),
            false,
        ),
        ("refilled", Box::new(fill), false),
    ];
    for (what, edit, reuses_big) in edits {
        let d = again(&s.layers, &prev, edit);
        assert_ne!(d.diff_id, prev, "{what}");
        if reuses_big {
            assert!(d.reused >= BIG as u64, "{what}: reused {}", d.reused);
        } else {
            assert_eq!(d.reused, 0, "{what}");
        }
        prev = d.diff_id;
    }
}

#[test]
fn missing_or_damaged_checkpoints_mean_a_full_hash() {
    let s = store();
    let root = s.dir.path().join("store");
    let c = first(&s.layers);
    let path = ckpt(&root, &c.diff_id);
    let good = fs::read(&path).unwrap();
    let change = |r: &Path| put(&r.join("app/src/f150"), b"x", 0o644, 20);

    let mut bad = good.clone();
    let n = bad.len();
    bad[n / 2] ^= 1;
    for (what, bytes) in [
        ("flipped bit", Some(bad)),
        ("truncated", Some(good[..good.len() - 7].to_vec())),
        ("empty", Some(Vec::new())),
        ("missing", None),
    ] {
        match &bytes {
            Some(b) => fs::write(&path, b).unwrap(),
            None => fs::remove_file(&path).unwrap(),
        }
        let d = again(&s.layers, &c.diff_id, change);
        assert_eq!(d.reused, 0, "{what}");
        // The same edit with intact checkpoints does resume.
        fs::write(&path, &good).unwrap();
        let e = again(&s.layers, &c.diff_id, change);
        assert_eq!(e.diff_id, d.diff_id, "{what}");
        assert!(e.reused > 0, "{what}");
    }

    // Another layer's checkpoints under this name are refused.
    let other = {
        let new = s.layers.begin().unwrap();
        put(&new.path().join("x"), b"x", 0o644, 1);
        s.layers.commit(new).unwrap().diff_id
    };
    fs::copy(ckpt(&root, &other), &path).unwrap();
    assert_eq!(again(&s.layers, &c.diff_id, change).reused, 0);
}

#[test]
fn previous_layer_missing_or_empty() {
    let s = store();
    // Not stored: a full hash.
    let nowhere = strata_digest::sha256("nowhere");
    let new = s.layers.begin().unwrap();
    fill(new.path());
    let c = s.layers.commit_incremental(new, Some(&nowhere)).unwrap();
    assert_eq!(c.reused, 0);
    // Empty previous layer, then empty after full.
    let empty = s.layers.commit(s.layers.begin().unwrap()).unwrap();
    let d = again(&s.layers, &empty.diff_id, fill);
    assert_eq!(d.diff_id, c.diff_id);
    assert_eq!(d.reused, 0);
    let e = again(&s.layers, &c.diff_id, |r| {
        fs::remove_dir_all(r.join("app")).unwrap()
    });
    assert_eq!(e.diff_id, empty.diff_id);
}
