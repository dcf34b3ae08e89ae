//! The canonical layer tar: exact entries, determinism, SOURCE_DATE_EPOCH.

mod common;

use std::io::Read;
use std::path::Path;

use common::*;
use rustix::fs::{AtFlags, Timespec, Timestamps, XattrFlags, CWD};
use strata_digest::sha256;
use strata_snapshot::{write_dir_tar, TarOptions};

fn tar_of(dir: &Path, opts: &TarOptions) -> Vec<u8> {
    let mut out = Vec::new();
    let (digest, len) = write_dir_tar(dir, &mut out, opts).unwrap();
    assert_eq!(digest, sha256(&out));
    assert_eq!(len, out.len() as u64);
    out
}

#[test]
fn crafted_dir_gives_exactly_these_entries() {
    let tmp = tempfile::tempdir().unwrap();
    craft(tmp.path());
    let tar = tar_of(tmp.path(), &TarOptions::default());
    let long = "n".repeat(LONG);
    let expected = vec![
        "dir bin/ 755 0:0 t=10".to_string(),
        // The first path of the inode in tar order holds the data.
        "file bin/a-too 640 1000:1001 t=300 SCHILY.xattr.user.note=x \"hello\"".into(),
        "file bin/su 4755 0:0 t=200 \"su\"".into(),
        "dir data/ 2750 1000:1001 t=20".into(),
        "hardlink data/a 640 1000:1001 t=300 -> bin/a-too".into(),
        "hardlink data/b 640 1000:1001 t=300 -> bin/a-too".into(),
        "dir deep/ 755 0:0 t=30".into(),
        format!("file deep/{long} 644 0:0 t=400 \"long\""),
        "dir dev/ 755 0:0 t=40".into(),
        "char dev/null 666 0:0 t=700 dev=1:3".into(),
        "dir empty/ 1777 0:0 t=50".into(),
        "fifo fifo 620 0:0 t=600".into(),
        "symlink link 777 5:6 t=500 -> data/a".into(),
    ];
    assert_eq!(tar_listing(&tar), expected);
    // Headers are USTAR ("ustar\0" "00"), the long name is in a PAX record.
    assert_eq!(&tar[257..265], b"ustar\x0000");
    let needle = format!("path=deep/{long}\n");
    assert!(tar.windows(needle.len()).any(|w| w == needle.as_bytes()));
    assert_eq!(tar.len() % 512, 0);
    assert!(tar.ends_with(&[0u8; 1024]));
}

#[test]
fn same_dir_same_bytes_even_after_atime_and_ctime_change() {
    let tmp = tempfile::tempdir().unwrap();
    craft(tmp.path());
    let first = tar_of(tmp.path(), &TarOptions::default());

    // Read everything (atime), bump atimes explicitly, change ctime (chmod to
    // the same mode), and list directories again.
    let mut buf = Vec::new();
    std::fs::File::open(tmp.path().join("bin/su"))
        .unwrap()
        .read_to_end(&mut buf)
        .unwrap();
    let later = Timespec {
        tv_sec: 1_900_000_000,
        tv_nsec: 5,
    };
    for p in ["bin/su", "data/a", "link", "bin"] {
        rustix::fs::utimensat(
            CWD,
            tmp.path().join(p),
            &Timestamps {
                last_access: later,
                last_modification: Timespec {
                    tv_sec: 0,
                    tv_nsec: rustix::fs::UTIME_OMIT,
                },
            },
            AtFlags::SYMLINK_NOFOLLOW,
        )
        .unwrap();
    }
    chmod(&tmp.path().join("bin/su"), 0o4755);
    let second = tar_of(tmp.path(), &TarOptions::default());
    assert!(
        first == second,
        "tar bytes changed after atime/ctime changes"
    );

    // The same tree built again elsewhere gives the same bytes.
    let other = tempfile::tempdir().unwrap();
    craft(other.path());
    assert!(first == tar_of(other.path(), &TarOptions::default()));

    // Sub-second mtime differences are not in the tar.
    rustix::fs::utimensat(
        CWD,
        other.path().join("bin/su"),
        &Timestamps {
            last_access: Timespec {
                tv_sec: 200,
                tv_nsec: 0,
            },
            last_modification: Timespec {
                tv_sec: 200,
                tv_nsec: 999,
            },
        },
        AtFlags::empty(),
    )
    .unwrap();
    assert!(first == tar_of(other.path(), &TarOptions::default()));

    // But content, mode and whole seconds are.
    mtime(&other.path().join("bin/su"), 201);
    assert!(first != tar_of(other.path(), &TarOptions::default()));
}

#[test]
fn source_date_epoch_clamps_later_mtimes_only() {
    let tmp = tempfile::tempdir().unwrap();
    craft(tmp.path());
    let clamped = tar_of(
        tmp.path(),
        &TarOptions {
            source_date_epoch: Some(250),
        },
    );
    let listing = tar_listing(&clamped);
    assert!(listing.contains(&"dir bin/ 755 0:0 t=10".to_string()));
    assert!(listing.contains(&"file bin/su 4755 0:0 t=200 \"su\"".to_string()));
    assert!(listing.contains(&"symlink link 777 5:6 t=250 -> data/a".to_string()));
    assert!(listing.contains(&"char dev/null 666 0:0 t=250 dev=1:3".to_string()));
    assert!(clamped != tar_of(tmp.path(), &TarOptions::default()));
}

#[test]
fn whiteouts_and_opaque_dirs_become_wh_files() {
    let tmp = tempfile::tempdir().unwrap();
    let root = tmp.path();
    write(&root.join("d/kept"), "k");
    opaque(&root.join("d"));
    whiteout(&root.join("gone"));
    whiteout(&root.join("d/-x"));
    // Overlay shares one whiteout inode between many paths: not a hardlink.
    std::fs::hard_link(root.join("gone"), root.join("also-gone")).unwrap();
    rustix::fs::setxattr(
        root.join("d"),
        "trusted.overlay.origin",
        b"junk",
        XattrFlags::empty(),
    )
    .unwrap();
    mtime(&root.join("d/kept"), 9);
    mtime(&root.join("d"), 8);
    let tar = tar_of(root, &TarOptions::default());
    assert_eq!(
        tar_listing(&tar),
        vec![
            "file .wh.also-gone 0 0:0 t=0 \"\"",
            "file .wh.gone 0 0:0 t=0 \"\"",
            "dir d/ 755 0:0 t=8",
            "file d/.wh..wh..opq 0 0:0 t=0 \"\"",
            "file d/.wh.-x 0 0:0 t=0 \"\"",
            "file d/kept 644 0:0 t=9 \"k\"",
        ]
    );
}

#[test]
fn empty_layer_has_the_well_known_diff_id() {
    let s = store();
    let new = s.layers.begin().unwrap();
    let c = s.layers.commit(new).unwrap();
    assert!(c.empty);
    assert_eq!(c.size, 1024);
    assert_eq!(
        c.diff_id.to_string(),
        "sha256:5f70bf18a086007016e948b04aed3b82103a36bea41755b6cddfaf10ace3c6ef"
    );
    assert!(s.layers.has(&c.diff_id));
}

#[test]
fn commit_names_the_layer_by_its_tar_and_write_tar_reproduces_it() {
    let s = store();
    let new = s.layers.begin().unwrap();
    craft(new.path());
    let expected = tar_of(new.path(), &TarOptions::default());
    let c = s.layers.commit(new).unwrap();
    assert_eq!(c.diff_id, sha256(&expected));
    assert_eq!(c.size, expected.len() as u64);
    assert!(!c.empty);
    let mut out = Vec::new();
    let (d, n) = s
        .layers
        .write_tar(&c.diff_id, &mut out, &TarOptions::default())
        .unwrap();
    assert_eq!((d, n), (c.diff_id, c.size));
    assert!(out == expected);

    // Committing the same content again keeps the stored one.
    let again = s.layers.begin().unwrap();
    craft(again.path());
    assert_eq!(s.layers.commit(again).unwrap().diff_id, c.diff_id);
    assert_eq!(
        std::fs::read_dir(s.dir.path().join("store/tmp"))
            .unwrap()
            .count(),
        0
    );

    let missing = sha256("nope");
    let err = s
        .layers
        .write_tar(&missing, &mut Vec::new(), &TarOptions::default())
        .unwrap_err();
    assert!(matches!(err, strata_snapshot::Error::MissingLayer(d) if d == missing));
}
