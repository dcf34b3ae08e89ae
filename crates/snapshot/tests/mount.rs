//! Overlay views of chains, writable mounts for RUN, and materialize.
//! Needs root (CAP_SYS_ADMIN) and overlayfs, as the crate itself does.

mod common;

use std::os::unix::fs::MetadataExt;
use std::path::Path;

use common::*;
use strata_digest::Digest;
use strata_snapshot::{
    materialize, mount_chain, mount_rw, write_dir_tar, Chain, Error, Layers, TarOptions,
};

/// L1: a=1, b, d/{x,y}, keep/k, l1 (symlink), hard/{one,two} (one inode).
/// L2: a=2, b deleted, d opaque with z.  L3: c, keep/k2, a setuid.
fn three_layers(layers: &Layers) -> Vec<Digest> {
    let l1 = layer(layers, |root| {
        write(&root.join("a"), "1");
        write(&root.join("b"), "b1");
        write(&root.join("d/x"), "x");
        write(&root.join("d/y"), "y");
        write(&root.join("keep/k"), "k");
        std::os::unix::fs::symlink("a", root.join("l1")).unwrap();
        write(&root.join("hard/one"), "same");
        std::fs::hard_link(root.join("hard/one"), root.join("hard/two")).unwrap();
        rustix::fs::setxattr(
            root.join("keep"),
            "user.layer",
            b"1",
            rustix::fs::XattrFlags::empty(),
        )
        .unwrap();
        mtime(&root.join("d"), 1000);
    });
    let l2 = layer(layers, |root| {
        write(&root.join("a"), "2");
        whiteout(&root.join("b"));
        write(&root.join("d/z"), "z");
        opaque(&root.join("d"));
        mtime(&root.join("d"), 2000);
    });
    let l3 = layer(layers, |root| {
        write(&root.join("c"), "c");
        write(&root.join("keep/k2"), "k2");
        chmod(&root.join("keep"), 0o750);
        write(&root.join("a"), "3");
        chown(&root.join("a"), 7, 8);
        chmod(&root.join("a"), 0o4711);
    });
    vec![l1, l2, l3]
}

fn mountpoint(s: &Store, name: &str) -> std::path::PathBuf {
    let p = s.dir.path().join(name);
    std::fs::create_dir(&p).unwrap();
    p
}

fn is_mounted(p: &Path) -> bool {
    let mountinfo = std::fs::read_to_string("/proc/self/mountinfo").unwrap();
    let p = p.to_str().unwrap();
    mountinfo.lines().any(|l| l.split(' ').nth(4) == Some(p))
}

#[test]
fn three_layer_chain_merges_with_whiteouts_and_opaque_dirs() {
    let s = store();
    let chain = Chain(three_layers(&s.layers));
    let target = mountpoint(&s, "view");
    let guard = mount_chain(&s.layers, &chain, &target).unwrap();
    assert_eq!(guard.path(), target);
    assert!(is_mounted(&target));
    let view = tree(&target);
    let names: Vec<&str> = view.keys().map(String::as_str).collect();
    assert_eq!(
        names,
        ["a", "c", "d", "d/z", "hard", "hard/one", "hard/two", "keep", "keep/k", "keep/k2", "l1"]
    );
    assert!(
        view["a"].starts_with("file \"3\" 4711 7:8"),
        "{}",
        view["a"]
    );
    assert!(view["hard/one"].contains("links=hard/one,hard/two"));
    assert!(
        view["keep"].starts_with("dir 750"),
        "topmost layer's metadata: {}",
        view["keep"]
    );
    // The xattr of L1's keep/ is hidden by L3's keep/ (overlay takes the top dir's).
    assert!(view["keep"].ends_with("[]"), "{}", view["keep"]);
    assert!(view["d"].contains("t=2000."), "{}", view["d"]);
    // Read-only.
    let err = std::fs::write(target.join("new"), "x").unwrap_err();
    assert_eq!(
        err.raw_os_error(),
        Some(rustix::io::Errno::ROFS.raw_os_error())
    );

    guard.unmount().unwrap();
    assert!(!is_mounted(&target));
    assert_eq!(std::fs::read_dir(&target).unwrap().count(), 0);
}

#[test]
fn dropping_the_guard_unmounts() {
    let s = store();
    let chain = Chain(three_layers(&s.layers));
    let target = mountpoint(&s, "view");
    {
        let _guard = mount_chain(&s.layers, &chain, &target).unwrap();
        assert!(is_mounted(&target));
    }
    assert!(!is_mounted(&target));
}

#[test]
fn materialize_equals_the_mounted_view() {
    let s = store();
    let l = three_layers(&s.layers);
    // The plain chain, a prefix, and one that names layers twice (a merge).
    for layers in [
        l.clone(),
        l[..2].to_vec(),
        vec![l[0], l[1], l[0], l[2], l[1]],
    ] {
        let chain = Chain(layers);
        let target = s.dir.path().join("view");
        std::fs::create_dir_all(&target).unwrap();
        let guard = mount_chain(&s.layers, &chain, &target).unwrap();
        let mounted = tree(&target);
        let mut mounted_tar = Vec::new();
        write_dir_tar(&target, &mut mounted_tar, &TarOptions::default()).unwrap();
        guard.unmount().unwrap();

        let dest = s.dir.path().join("plain");
        materialize(&s.layers, &chain, &dest).unwrap();
        let plain = tree(&dest);
        assert_eq!(plain, mounted, "chain {chain:?}");
        // As a layer too: the same canonical tar from both.
        let mut plain_tar = Vec::new();
        write_dir_tar(&dest, &mut plain_tar, &TarOptions::default()).unwrap();
        assert!(plain_tar == mounted_tar);
        let root = std::fs::metadata(&dest).unwrap();
        assert_eq!((root.mode() & 0o7777, root.uid()), (0o755, 0));
        std::fs::remove_dir_all(&dest).unwrap();
    }
}

#[test]
fn materialize_refuses_a_non_empty_destination() {
    let s = store();
    let dest = s.dir.path().join("dest");
    write(&dest.join("x"), "x");
    let err = materialize(&s.layers, &Chain::empty(), &dest).unwrap_err();
    assert!(matches!(err, Error::DestinationNotEmpty { .. }), "{err}");
    let err = materialize(
        &s.layers,
        &Chain(vec![strata_digest::sha256("x")]),
        &s.dir.path().join("d2"),
    )
    .unwrap_err();
    assert!(matches!(err, Error::MissingLayer(_)), "{err}");
}

#[test]
fn a_chain_of_150_layers_mounts() {
    let s = store();
    let mut chain = Chain::empty();
    for i in 0..150 {
        chain.push(layer(&s.layers, |root| {
            write(&root.join(format!("f{i}")), &i.to_string());
            write(&root.join("top"), &i.to_string());
        }));
    }
    let target = mountpoint(&s, "view");
    let guard = mount_chain(&s.layers, &chain, &target).unwrap();
    assert_eq!(std::fs::read_to_string(target.join("top")).unwrap(), "149");
    assert_eq!(std::fs::read_dir(&target).unwrap().count(), 151);
    assert_eq!(std::fs::read_to_string(target.join("f0")).unwrap(), "0");
    drop(guard);
}

#[test]
fn empty_and_single_layer_chains() {
    let s = store();
    let target = mountpoint(&s, "view");
    let guard = mount_chain(&s.layers, &Chain::empty(), &target).unwrap();
    assert!(is_mounted(&target));
    assert_eq!(std::fs::read_dir(&target).unwrap().count(), 0);
    assert!(std::fs::write(target.join("x"), "x").is_err());
    drop(guard);

    // A lone layer's whiteouts and opaque markers are hidden too.
    let only = layer(&s.layers, |root| {
        write(&root.join("f"), "f");
        whiteout(&root.join("gone"));
        std::fs::create_dir(root.join("d")).unwrap();
        opaque(&root.join("d"));
    });
    let guard = mount_chain(&s.layers, &Chain(vec![only]), &target).unwrap();
    let names: Vec<String> = tree(&target).into_keys().collect();
    assert_eq!(names, ["d", "f"]);
    drop(guard);

    let missing = strata_digest::sha256("missing");
    let err = mount_chain(&s.layers, &Chain(vec![only, missing]), &target).unwrap_err();
    assert!(
        matches!(err, Error::MissingLayer(d) if d == missing),
        "{err}"
    );
}

#[test]
fn writable_mount_records_changes_as_a_layer() {
    let s = store();
    let chain = Chain(three_layers(&s.layers));
    let target = mountpoint(&s, "rootfs");
    let new = s.layers.begin().unwrap();
    let guard = mount_rw(&s.layers, &chain, new.writable(), &target).unwrap();
    std::fs::remove_file(target.join("c")).unwrap();
    std::fs::write(target.join("a"), "changed").unwrap();
    std::fs::remove_dir_all(target.join("keep")).unwrap();
    write(&target.join("keep/fresh"), "f");
    write(&target.join("new"), "n");
    guard.unmount().unwrap();
    let committed = s.layers.commit(new).unwrap();

    let mut tar = Vec::new();
    s.layers
        .write_tar(&committed.diff_id, &mut tar, &TarOptions::default())
        .unwrap();
    let listing: Vec<String> = tar_listing(&tar)
        .into_iter()
        .map(|l| l.split(" t=").next().unwrap().to_string())
        .collect();
    assert_eq!(
        listing,
        [
            "file .wh.c 0 0:0",
            // Copied up: a keeps L3's owner and setuid bit.
            "file a 4711 7:8",
            "dir keep/ 755 0:0",
            "file keep/.wh..wh..opq 0 0:0",
            "file keep/fresh 644 0:0",
            "file new 644 0:0",
        ]
    );

    // The new layer on top of the chain is the state RUN left.
    let view = mountpoint(&s, "view");
    let guard = mount_chain(&s.layers, &chain.with(committed.diff_id), &view).unwrap();
    let names: Vec<String> = tree(&view).into_keys().collect();
    assert_eq!(
        names,
        [
            "a",
            "d",
            "d/z",
            "hard",
            "hard/one",
            "hard/two",
            "keep",
            "keep/fresh",
            "l1",
            "new"
        ]
    );
    assert_eq!(std::fs::read_to_string(view.join("a")).unwrap(), "changed");
    drop(guard);
}

#[test]
fn writable_mount_on_an_empty_chain() {
    let s = store();
    let target = mountpoint(&s, "rootfs");
    let new = s.layers.begin().unwrap();
    let guard = mount_rw(&s.layers, &Chain::empty(), new.writable(), &target).unwrap();
    write(&target.join("etc/hostname"), "h");
    drop(guard);
    let c = s.layers.commit(new).unwrap();
    let mut tar = Vec::new();
    s.layers
        .write_tar(&c.diff_id, &mut tar, &TarOptions::default())
        .unwrap();
    assert_eq!(tar_listing(&tar).len(), 2);
    // The shared empty lower stayed empty.
    assert_eq!(
        std::fs::read_dir(s.dir.path().join("store/empty"))
            .unwrap()
            .count(),
        0
    );
}
