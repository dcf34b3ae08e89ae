//! Applying layer tars: metadata kept, whiteouts and opaque markers converted
//! both ways, foreign tars normalized, digests checked.

mod common;

use std::os::unix::fs::{FileTypeExt, MetadataExt};

use common::*;
use strata_digest::sha256;
use strata_snapshot::{write_dir_tar, Error, TarOptions};

fn tar_of(dir: &std::path::Path) -> Vec<u8> {
    let mut out = Vec::new();
    write_dir_tar(dir, &mut out, &TarOptions::default()).unwrap();
    out
}

fn stored_and_tmp(s: &Store) -> (usize, usize) {
    let count = |d: &str| {
        std::fs::read_dir(s.dir.path().join("store").join(d))
            .unwrap()
            .count()
    };
    (count("layers"), count("tmp"))
}

#[test]
fn crafted_dir_round_trips_through_tar_and_apply() {
    let src = tempfile::tempdir().unwrap();
    craft(src.path());
    let tar = tar_of(src.path());
    let s = store();
    let applied = s.layers.apply(&tar[..], Some(&sha256(&tar))).unwrap();
    // Canonical input: our tar of the applied layer is the same bytes.
    assert_eq!(applied.diff_id, sha256(&tar));
    assert_eq!(applied.input_digest, applied.diff_id);
    assert_eq!(
        (applied.size, applied.input_size),
        (tar.len() as u64, tar.len() as u64)
    );
    assert!(!applied.empty);
    let layer = s.layers.path(&applied.diff_id);
    // setuid, owners, xattrs, hardlinks, symlink, fifo, device, long name, mtimes.
    assert_eq!(tree(&layer), tree(src.path()));
    let root = std::fs::metadata(&layer).unwrap();
    assert_eq!(
        (root.mode() & 0o7777, root.uid(), root.gid()),
        (0o755, 0, 0)
    );
}

#[test]
fn whiteouts_and_opaque_dirs_convert_both_ways() {
    let src = tempfile::tempdir().unwrap();
    let root = src.path();
    write(&root.join("d/kept"), "k");
    opaque(&root.join("d"));
    whiteout(&root.join("gone"));
    whiteout(&root.join("d/sub-gone"));
    mtime(&root.join("d"), 77);
    let tar = tar_of(root);
    let listing = tar_listing(&tar);
    assert!(listing.contains(&"file .wh.gone 0 0:0 t=0 \"\"".to_string()));
    assert!(listing.contains(&"file d/.wh..wh..opq 0 0:0 t=0 \"\"".to_string()));

    let s = store();
    let applied = s.layers.apply(&tar[..], None).unwrap();
    assert_eq!(applied.diff_id, sha256(&tar));
    let layer = s.layers.path(&applied.diff_id);
    for wh in ["gone", "d/sub-gone"] {
        let m = std::fs::symlink_metadata(layer.join(wh)).unwrap();
        assert!(
            m.file_type().is_char_device() && m.rdev() == 0,
            "{wh} is a whiteout"
        );
    }
    assert!(!layer.join(".wh.gone").exists());
    assert!(!layer.join("d/.wh..wh..opq").exists());
    assert_eq!(
        xattr::get(layer.join("d"), "trusted.overlay.opaque")
            .unwrap()
            .as_deref(),
        Some(&b"y"[..])
    );
    assert_eq!(
        std::fs::symlink_metadata(layer.join("d")).unwrap().mtime(),
        77
    );
    let mut again = Vec::new();
    s.layers
        .write_tar(&applied.diff_id, &mut again, &TarOptions::default())
        .unwrap();
    assert!(again == tar);
}

#[test]
fn foreign_tar_is_normalized_and_reaches_a_fixpoint() {
    let tar = RawTar::new()
        .file("./usr/bin/tool", "tool")
        .hardlink("usr/bin/tool2", "./usr/bin/tool")
        .entry(b'0', "usr/sbin/su", "", b"su", 0o4750)
        .file("etc/.wh.passwd", "")
        .dir("opt/")
        .file("opt/.wh..wh..opq", "")
        .file("opt/keep", "keep")
        .dir(".wh..wh.plnk/")
        .file(".wh..wh.plnk/1.2", "aufs")
        .file("x", "file first")
        .dir("x/")
        .file("x/y", "y")
        // Pre-POSIX directory: type NUL and a trailing slash.
        .entry(0, "old/", "", b"", 0o700)
        .entry(b'g', "global", "", b"10 a=bcd\n", 0o644)
        .finish();
    let s = store();
    let applied = s.layers.apply(&tar[..], None).unwrap();
    assert_eq!(applied.input_digest, sha256(&tar));
    assert_eq!(applied.input_size, tar.len() as u64);
    assert_ne!(applied.diff_id, applied.input_digest);
    let layer = s.layers.path(&applied.diff_id);
    let got = tree(&layer);
    let want: Vec<(&str, &str)> = vec![
        ("etc", "dir 755 0:0 t=0.000000000 []"),
        ("etc/passwd", "char 0:0 0 0:0 t=1234.000000000 []"),
        ("old", "dir 700 0:0 t=1234.000000000 []"),
        ("opt", "dir 755 0:0 t=1234.000000000 []"),
        ("opt/keep", "file \"keep\" 644 0:0 t=1234.000000000 []"),
        ("usr", "dir 755 0:0 t=0.000000000 []"),
        ("usr/bin", "dir 755 0:0 t=0.000000000 []"),
        (
            "usr/bin/tool",
            "file \"tool\" 644 0:0 t=1234.000000000 [] links=usr/bin/tool,usr/bin/tool2",
        ),
        (
            "usr/bin/tool2",
            "file \"tool\" 644 0:0 t=1234.000000000 [] links=usr/bin/tool,usr/bin/tool2",
        ),
        ("usr/sbin", "dir 755 0:0 t=0.000000000 []"),
        ("usr/sbin/su", "file \"su\" 4750 0:0 t=1234.000000000 []"),
        ("x", "dir 755 0:0 t=1234.000000000 []"),
        ("x/y", "file \"y\" 644 0:0 t=1234.000000000 []"),
    ];
    let mut got_cmp: Vec<(String, String)> = got.clone().into_iter().collect();
    // A whiteout's own mtime is whatever mknod gave it: not part of the layer.
    for (p, v) in &mut got_cmp {
        if p == "etc/passwd" {
            *v = v.replace(
                &v[v.find("t=").unwrap()..v.find(" [").unwrap()],
                "t=1234.000000000",
            );
        }
    }
    let want: Vec<(String, String)> = want
        .into_iter()
        .map(|(a, b)| (a.into(), b.into()))
        .collect();
    assert_eq!(got_cmp, want);
    assert_eq!(
        xattr::get(layer.join("opt"), "trusted.overlay.opaque")
            .unwrap()
            .as_deref(),
        Some(&b"y"[..])
    );

    // Our tar of it applies to the same layer, whose tar is the same again.
    let mut canonical = Vec::new();
    s.layers
        .write_tar(&applied.diff_id, &mut canonical, &TarOptions::default())
        .unwrap();
    let other = store();
    let again = other
        .layers
        .apply(&canonical[..], Some(&applied.diff_id))
        .unwrap();
    assert_eq!(again.diff_id, applied.diff_id);
    assert_eq!(again.input_digest, applied.diff_id);
    assert_eq!(tree(&other.layers.path(&again.diff_id)).len(), got.len());
}

#[test]
fn same_foreign_tar_twice_gives_the_same_layer() {
    let tar = RawTar::new()
        .file("a/b/c", "c")
        .file("a/.wh.x", "")
        .finish();
    let (s1, s2) = (store(), store());
    let one = s1.layers.apply(&tar[..], None).unwrap();
    let two = s2.layers.apply(&tar[..], None).unwrap();
    assert_eq!(one.diff_id, two.diff_id);
}

#[test]
fn digest_mismatch_stores_nothing() {
    let tar = RawTar::new().file("a", "a").finish();
    let s = store();
    let wrong = sha256("something else");
    let err = s.layers.apply(&tar[..], Some(&wrong)).unwrap_err();
    match err {
        Error::DigestMismatch { expected, actual } => {
            assert_eq!(expected, wrong);
            assert_eq!(actual, sha256(&tar));
        }
        other => panic!("unexpected {other}"),
    }
    assert_eq!(stored_and_tmp(&s), (0, 0));
}

#[test]
fn truncated_and_unsupported_tars_fail_and_store_nothing() {
    let s = store();
    let tar = RawTar::new().file("a", &"x".repeat(2000)).finish();
    let err = s.layers.apply(&tar[..1000], None).unwrap_err();
    assert!(matches!(err, Error::Tar(_)), "{err}");

    let tar = RawTar::new().entry(b'V', "volume", "", b"", 0o644).finish();
    let err = s.layers.apply(&tar[..], None).unwrap_err();
    assert!(
        matches!(&err, Error::UnsupportedEntry { path, kind: 'V' } if path == "volume"),
        "{err}"
    );
    assert_eq!(stored_and_tmp(&s), (0, 0));
}
