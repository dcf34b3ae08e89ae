//! Hostile layer tars are refused with a clear error, and nothing is written
//! outside the layer (nor is anything stored).
//!
//! Every escape aims at a directory inside the test's own temp dir (never at
//! the host's /etc), so a broken applier could only damage the test sandbox.

mod common;

use std::path::Path;

use common::*;
use strata_snapshot::Error;

struct Sandbox {
    store: Store,
    /// Absolute path of the escape target, without the leading slash.
    outside_rel: String,
}

impl Sandbox {
    fn new() -> Self {
        let store = store();
        let outside = store.dir.path().join("outside");
        std::fs::create_dir(&outside).unwrap();
        write(&outside.join("secret"), "secret");
        let outside_rel = outside
            .to_str()
            .unwrap()
            .trim_start_matches('/')
            .to_string();
        Sandbox { store, outside_rel }
    }

    fn outside(&self) -> std::path::PathBuf {
        self.store.dir.path().join("outside")
    }

    /// Applies `tar`, expects an `UnsafeEntry` for `entry` whose reason
    /// contains `reason`, and checks that nothing changed outside the store.
    fn refuse(&self, tar: Vec<u8>, entry: &str, reason: &str) {
        let before = paths(self.store.dir.path());
        let err = self.store.layers.apply(&tar[..], None).unwrap_err();
        match &err {
            Error::UnsafeEntry { path, reason: r } => {
                assert_eq!(path, entry, "{err}");
                assert!(r.contains(reason), "reason {r:?} should mention {reason:?}");
            }
            other => panic!("expected UnsafeEntry for {entry}, got {other}"),
        }
        let message = err.to_string();
        assert!(
            message.contains(entry) && message.contains("refused"),
            "{message}"
        );
        assert_eq!(paths(self.store.dir.path()), before, "the sandbox changed");
        assert_eq!(
            std::fs::read_to_string(self.outside().join("secret")).unwrap(),
            "secret"
        );
        let store = self.store.dir.path().join("store");
        for d in ["layers", "tmp"] {
            assert_eq!(
                std::fs::read_dir(store.join(d)).unwrap().count(),
                0,
                "{d} is empty"
            );
        }
    }
}

fn assert_absent(p: &Path) {
    assert!(
        std::fs::symlink_metadata(p).is_err(),
        "{} exists",
        p.display()
    );
}

#[test]
fn dot_dot_entries() {
    let sb = Sandbox::new();
    let tar = RawTar::new().file("../../../../../x", "x").finish();
    sb.refuse(tar, "../../../../../x", "..");
    let tar = RawTar::new().dir("a/").file("a/../../pwned", "x").finish();
    sb.refuse(tar, "a/../../pwned", "..");
    assert_absent(&sb.store.dir.path().join("x"));
}

#[test]
fn absolute_entries() {
    let sb = Sandbox::new();
    let name = format!("/{}/abs", sb.outside_rel);
    let tar = RawTar::new().file(&name, "x").finish();
    sb.refuse(tar, &name, "absolute");
    assert_absent(&sb.outside().join("abs"));
}

#[test]
fn writing_through_a_symlink_to_root() {
    let sb = Sandbox::new();
    // `a -> /`, then `a/<sandbox>/outside/pwned` (the `a -> /`, `a/etc/passwd`
    // attack, aimed at the sandbox).
    let name = format!("a/{}/pwned", sb.outside_rel);
    let tar = RawTar::new().symlink("a", "/").file(&name, "x").finish();
    sb.refuse(tar, &name, "symlink");
    assert_absent(&sb.outside().join("pwned"));
}

#[test]
fn writing_through_a_symlink_chain() {
    let sb = Sandbox::new();
    let outside = format!("/{}", sb.outside_rel);
    let tar = RawTar::new()
        .symlink("l1", "l2")
        .symlink("l2", "l3")
        .symlink("l3", &outside)
        .file("l1/pwned", "x")
        .finish();
    sb.refuse(tar, "l1/pwned", "symlink");
    // Relative chain climbing out of the layer.
    let tar = RawTar::new()
        .dir("d/")
        .symlink("d/up", "../../../../../../../../..")
        .symlink("hop", "d/up")
        .file(&format!("hop/{}/pwned", sb.outside_rel), "x")
        .finish();
    sb.refuse(tar, &format!("hop/{}/pwned", sb.outside_rel), "symlink");
    // Even a symlink that stays inside is not written through.
    let tar = RawTar::new()
        .dir("real/")
        .symlink("alias", "real")
        .file("alias/f", "x")
        .finish();
    sb.refuse(tar, "alias/f", "symlink");
    assert_absent(&sb.outside().join("pwned"));
}

#[test]
fn hardlinks_out_of_the_layer() {
    let sb = Sandbox::new();
    let tar = RawTar::new().hardlink("h", "../../x").finish();
    sb.refuse(tar, "h", "..");
    let secret = format!("/{}/secret", sb.outside_rel);
    let tar = RawTar::new().hardlink("h", &secret).finish();
    sb.refuse(tar, "h", "absolute");
    // Through a symlink to the outside: not an entry of this tar.
    let tar = RawTar::new()
        .symlink("s", &format!("/{}", sb.outside_rel))
        .hardlink("h", "s/secret")
        .finish();
    sb.refuse(tar, "h", "hardlink target");
    // To a path of a lower layer (not in this tar).
    let tar = RawTar::new().hardlink("h", "etc/shadow").finish();
    sb.refuse(tar, "h", "hardlink target");
    // To a directory.
    let tar = RawTar::new().dir("d/").hardlink("h", "d").finish();
    sb.refuse(tar, "h", "hardlink target");
    let meta = std::fs::metadata(sb.outside().join("secret")).unwrap();
    assert_eq!(std::os::unix::fs::MetadataExt::nlink(&meta), 1);
}

#[test]
fn contradictory_entries() {
    let sb = Sandbox::new();
    let tar = RawTar::new().file("f", "x").file("f/x", "y").finish();
    sb.refuse(tar, "f/x", "not a directory");
    let tar = RawTar::new().file("./", "x").finish();
    sb.refuse(tar, "./", "root");
    let tar = RawTar::new().file("d/.wh..", "").finish();
    sb.refuse(tar, "d/.wh..", "whiteout");
}
