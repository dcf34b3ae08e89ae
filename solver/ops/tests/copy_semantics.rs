//! COPY/ADD semantics as a table: a source tree, a base, a Copy action → the exact
//! entries of the new layer (path, type, mode, owner). Expectations follow Docker's
//! documented behaviour (checked against BuildKit where the docs are silent).

use std::collections::BTreeMap;
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::Path;

use strata_graph::{Chmod, Chown, Copy, IdOrName};
use strata_ops::copy::{copy, CopyEnv, CopyError};
use strata_patternmatcher::PatternMatcher;

fn write(root: &Path, rel: &str, data: &str, mode: u32, uid: u32) {
    let p = root.join(rel);
    std::fs::create_dir_all(p.parent().unwrap()).unwrap();
    std::fs::write(&p, data).unwrap();
    std::fs::set_permissions(&p, std::fs::Permissions::from_mode(mode)).unwrap();
    std::os::unix::fs::lchown(&p, Some(uid), Some(uid)).unwrap();
}

fn source() -> tempfile::TempDir {
    let d = tempfile::tempdir().unwrap();
    let r = d.path();
    write(r, "file.txt", "hello", 0o644, 1000);
    write(r, "b.txt", "b", 0o600, 1000);
    write(r, "run.sh", "#!/bin/sh", 0o755, 0);
    write(r, "dir/a", "a", 0o644, 1000);
    write(r, "dir/sub/b", "b", 0o640, 1001);
    write(r, "dir/skip.tmp", "tmp", 0o644, 0);
    write(r, "x/one.go", "1", 0o644, 0);
    write(r, "x/y/two.go", "2", 0o644, 0);
    write(r, "x/y/readme", "r", 0o644, 0);
    write(r, "secret.key", "k", 0o600, 0);
    write(r, "keep/secret.key", "k2", 0o600, 0);
    std::fs::hard_link(r.join("dir/a"), r.join("dir/a-link")).unwrap();
    std::os::unix::fs::symlink("file.txt", r.join("link-to-file")).unwrap();
    std::os::unix::fs::symlink("a", r.join("dir/rel-link")).unwrap();
    // Archives for ADD.
    let tgz = std::fs::File::create(r.join("archive.tar.gz")).unwrap();
    let gz = flate2::write::GzEncoder::new(tgz, flate2::Compression::fast());
    let mut t = tar::Builder::new(gz);
    let mut h = tar::Header::new_gnu();
    h.set_size(3);
    h.set_mode(0o644);
    h.set_cksum();
    t.append_data(&mut h, "inside/a.txt", &b"abc"[..]).unwrap();
    t.into_inner().unwrap().finish().unwrap();
    // A hostile archive: an entry climbing out of the destination.
    let mut bytes = Vec::new();
    {
        let mut t = tar::Builder::new(&mut bytes);
        let mut h = tar::Header::new_gnu();
        h.set_size(1);
        h.set_mode(0o644);
        // Write the name bytes directly: the tar crate refuses `..` in set_path.
        h.as_old_mut().name[..10].copy_from_slice(b"../evil.tx");
        h.set_cksum();
        t.append(&h, &b"x"[..]).unwrap();
        t.finish().unwrap();
    }
    std::fs::write(r.join("evil.tar"), bytes).unwrap();
    d
}

fn base() -> tempfile::TempDir {
    let d = tempfile::tempdir().unwrap();
    let r = d.path();
    std::fs::create_dir_all(r.join("existing")).unwrap();
    std::fs::create_dir_all(r.join("opt/app")).unwrap();
    std::fs::set_permissions(r.join("opt"), std::fs::Permissions::from_mode(0o700)).unwrap();
    std::os::unix::fs::lchown(r.join("opt"), Some(5), Some(6)).unwrap();
    std::os::unix::fs::symlink("/opt/app", r.join("app")).unwrap();
    write(
        r,
        "etc/passwd",
        "root:x:0:0:root:/root:/bin/sh\napp:x:1234:2345::/home/app:/bin/sh\n",
        0o644,
        0,
    );
    write(r, "etc/group", "root:x:0:\nstaff:x:50:\n", 0o644, 0);
    d
}

fn c(sources: &[&str], dest: &str) -> Copy {
    Copy {
        input: 1,
        sources: sources.iter().map(|s| s.to_string()).collect(),
        dest: dest.into(),
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

/// Every entry of the diff: `path type mode uid:gid` (dirs `d`, files `f`, links `l->`).
fn listing(root: &Path) -> BTreeMap<String, String> {
    let mut out = BTreeMap::new();
    fn walk(root: &Path, dir: &Path, out: &mut BTreeMap<String, String>) {
        let mut es: Vec<_> = std::fs::read_dir(dir)
            .unwrap()
            .map(|e| e.unwrap().path())
            .collect();
        es.sort();
        for p in es {
            let m = std::fs::symlink_metadata(&p).unwrap();
            let rel = p.strip_prefix(root).unwrap().display().to_string();
            let desc = if m.file_type().is_symlink() {
                format!(
                    "l->{} {}:{}",
                    std::fs::read_link(&p).unwrap().display(),
                    m.uid(),
                    m.gid()
                )
            } else if m.is_dir() {
                format!("d {:o} {}:{}", m.mode() & 0o7777, m.uid(), m.gid())
            } else {
                format!(
                    "f {:o} {}:{} {}",
                    m.mode() & 0o7777,
                    m.uid(),
                    m.gid(),
                    String::from_utf8_lossy(&std::fs::read(&p).unwrap())
                )
            };
            out.insert(rel, desc);
            if m.is_dir() {
                walk(root, &p, out);
            }
        }
    }
    walk(root, root, &mut out);
    out
}

struct Case {
    copy: Copy,
    from_context: bool,
    owner: Option<(u32, u32)>,
    ignore: &'static [&'static str],
}

fn case(copy: Copy) -> Case {
    Case {
        copy,
        from_context: true,
        owner: None,
        ignore: &[],
    }
}

fn run(case: Case) -> Result<BTreeMap<String, String>, CopyError> {
    let src = source();
    let base = base();
    let diff = tempfile::tempdir().unwrap();
    let ignore = (!case.ignore.is_empty()).then(|| PatternMatcher::new(case.ignore).unwrap());
    let env = CopyEnv {
        src_root: src.path(),
        src_ignore: ignore.as_ref(),
        from_context: case.from_context,
        base_root: base.path(),
        diff: diff.path(),
        owner: case.owner,
        reuse: None,
    };
    copy(&env, &case.copy)?;
    Ok(listing(diff.path()))
}

/// Copies `copy` from the context `src` over [`base`]; the new layer.
fn copy_from(src: &Path, owner: Option<(u32, u32)>, copy_: &Copy) -> tempfile::TempDir {
    let (base, diff) = (base(), tempfile::tempdir().unwrap());
    let env = CopyEnv {
        src_root: src,
        src_ignore: None,
        from_context: true,
        base_root: base.path(),
        diff: diff.path(),
        owner,
        reuse: None,
    };
    copy(&env, copy_).unwrap();
    diff
}

fn entries(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
    pairs
        .iter()
        .map(|(a, b)| (a.to_string(), b.to_string()))
        .collect()
}

#[test]
fn file_to_new_path_is_that_file() {
    let got = run(case(c(&["file.txt"], "/dest"))).unwrap();
    assert_eq!(got, entries(&[("dest", "f 644 0:0 hello")]));
}

#[test]
fn file_to_trailing_slash_goes_inside() {
    let got = run(case(c(&["file.txt"], "/dest/"))).unwrap();
    let dest_dir = got["dest"].clone();
    assert!(dest_dir.starts_with("d 755 0:0"), "{dest_dir}");
    assert_eq!(got["dest/file.txt"], "f 644 0:0 hello");
}

#[test]
fn file_to_existing_dir_goes_inside_and_keeps_the_dir() {
    let got = run(case(c(&["file.txt"], "/existing"))).unwrap();
    assert_eq!(got["existing/file.txt"], "f 644 0:0 hello");
}

#[test]
fn directory_copies_its_contents() {
    let got = run(case(c(&["dir"], "/dest"))).unwrap();
    assert!(got.contains_key("dest/a") && got.contains_key("dest/sub/b"));
    assert!(!got.keys().any(|k| k.starts_with("dest/dir")), "{got:?}");
    assert_eq!(got["dest/sub/b"], "f 640 0:0 b");
    assert_eq!(got["dest/rel-link"], "l->a 0:0");
}

#[test]
fn several_sources_and_wildcards() {
    let got = run(case(c(&["file.txt", "b.txt"], "/d/"))).unwrap();
    assert!(got.contains_key("d/file.txt") && got.contains_key("d/b.txt"));
    let got = run(case(c(&["*.txt"], "/w/"))).unwrap();
    assert_eq!(
        got.keys().filter(|k| k.starts_with("w/")).count(),
        2,
        "{got:?}"
    );
    let got = run(case(c(&["nomatch*"], "/n/"))).unwrap();
    assert!(got.is_empty(), "an empty wildcard copies nothing: {got:?}");
}

#[test]
fn missing_literal_source_is_an_error() {
    let e = run(case(c(&["missing.txt"], "/d/"))).unwrap_err();
    assert_eq!(e.to_string(), "\"missing.txt\": not found");
}

#[test]
fn parents_are_created_and_existing_parents_keep_their_metadata() {
    let got = run(case(c(&["file.txt"], "/a/b/c/f"))).unwrap();
    assert!(got["a"].starts_with("d 755 0:0") && got["a/b/c"].starts_with("d 755 0:0"));
    let got = run(case(c(&["file.txt"], "/opt/f"))).unwrap();
    assert!(got["opt"].starts_with("d 700 5:6"), "{}", got["opt"]);
}

#[test]
fn ownership_context_resets_stage_preserves_chown_overrides() {
    let got = run(case(c(&["file.txt"], "/f"))).unwrap();
    assert_eq!(got["f"], "f 644 0:0 hello");
    let got = run(Case {
        from_context: false,
        ..case(c(&["file.txt"], "/f"))
    })
    .unwrap();
    assert_eq!(got["f"], "f 644 1000:1000 hello");
    let got = run(Case {
        owner: Some((7, 8)),
        ..case(c(&["dir"], "/newdir"))
    })
    .unwrap();
    assert!(got["newdir"].ends_with("7:8"), "{}", got["newdir"]);
    assert_eq!(got["newdir/a"], "f 644 7:8 a");
}

#[test]
fn chown_names_resolve_in_the_destination() {
    let base = base();
    let chown = Chown {
        user: IdOrName::Name("app".into()),
        group: Some(IdOrName::Name("staff".into())),
    };
    assert_eq!(
        strata_ops::fileop::resolve_owner(Some(&chown), base.path()).unwrap(),
        (1234, 50)
    );
    let only_user = Chown {
        user: IdOrName::Name("app".into()),
        group: None,
    };
    assert_eq!(
        strata_ops::fileop::resolve_owner(Some(&only_user), base.path()).unwrap(),
        (1234, 2345)
    );
    let numeric = Chown {
        user: IdOrName::Id(42),
        group: None,
    };
    assert_eq!(
        strata_ops::fileop::resolve_owner(Some(&numeric), base.path()).unwrap(),
        (42, 42)
    );
    let missing = Chown {
        user: IdOrName::Name("nobody-here".into()),
        group: None,
    };
    assert!(strata_ops::fileop::resolve_owner(Some(&missing), base.path()).is_err());
}

#[test]
fn chmod_octal_and_symbolic() {
    let mut k = c(&["file.txt", "run.sh"], "/m/");
    k.chmod = Some(Chmod::Octal(0o600));
    let got = run(case(k)).unwrap();
    assert_eq!(got["m/file.txt"], "f 600 0:0 hello");
    let mut k = c(&["file.txt", "run.sh"], "/m/");
    k.chmod = Some(Chmod::Symbolic("u+x,go-r".into()));
    let got = run(case(k)).unwrap();
    assert_eq!(got["m/file.txt"], "f 700 0:0 hello");
    assert_eq!(got["m/run.sh"], "f 711 0:0 #!/bin/sh");
}

#[test]
fn hardlinks_stay_hardlinks_and_top_level_symlinks_are_followed() {
    let src = source();
    let base = base();
    let diff = tempfile::tempdir().unwrap();
    let env = CopyEnv {
        src_root: src.path(),
        src_ignore: None,
        from_context: true,
        base_root: base.path(),
        diff: diff.path(),
        owner: None,
        reuse: None,
    };
    copy(&env, &c(&["dir"], "/d")).unwrap();
    let a = std::fs::metadata(diff.path().join("d/a")).unwrap();
    let l = std::fs::metadata(diff.path().join("d/a-link")).unwrap();
    assert_eq!(a.ino(), l.ino());
    copy(&env, &c(&["link-to-file"], "/followed")).unwrap();
    let m = std::fs::symlink_metadata(diff.path().join("followed")).unwrap();
    assert!(m.is_file());
    // mtimes travel with the content.
    let src_m = std::fs::metadata(src.path().join("file.txt")).unwrap();
    assert_eq!(m.mtime(), src_m.mtime());
}

#[test]
fn exclude_and_dockerignore_hide_paths() {
    let mut k = c(&["dir"], "/d");
    k.exclude = vec!["*.tmp".into()];
    let got = run(case(k)).unwrap();
    assert!(!got.contains_key("d/skip.tmp") && got.contains_key("d/a"));
    let got = run(Case {
        ignore: &["*.key", "!keep"],
        ..case(c(&["."], "/all/"))
    })
    .unwrap();
    assert!(!got.contains_key("all/secret.key"), "{got:?}");
    assert!(got.contains_key("all/keep/secret.key"));
    let e = run(Case {
        ignore: &["secret.key"],
        ..case(c(&["secret.key"], "/s"))
    })
    .unwrap_err();
    assert!(matches!(e, CopyError::NotFound { .. }));
}

#[test]
fn parents_keep_source_paths() {
    let mut k = c(&["./x/**/*.go"], "/go/");
    k.parents = true;
    let got = run(case(k)).unwrap();
    assert!(
        got.contains_key("go/x/one.go") && got.contains_key("go/x/y/two.go"),
        "{got:?}"
    );
    assert!(!got.contains_key("go/x/y/readme"));
    let mut k = c(&["x/./y/two.go"], "/p/");
    k.parents = true;
    let got = run(case(k)).unwrap();
    assert!(
        got.contains_key("p/y/two.go"),
        "pivot keeps only what follows ./: {got:?}"
    );
}

#[test]
fn an_ignored_directory_appears_only_as_the_parent_of_a_reincluded_path() {
    // `!keep` makes the copy look inside ignored directories; one with nothing
    // re-included must not appear at all (BuildKit: not created).
    let got = run(Case {
        ignore: &["x", "dir/sub", "!keep"],
        ..case(c(&["."], "/all/"))
    })
    .unwrap();
    assert!(!got.contains_key("all/x"), "{got:?}");
    assert!(!got.contains_key("all/dir/sub"), "{got:?}");
    assert!(got.contains_key("all/dir/a"));
    let got = run(Case {
        ignore: &["x", "!x/y/readme"],
        ..case(c(&["."], "/all/"))
    })
    .unwrap();
    assert_eq!(got["all/x/y/readme"], "f 644 0:0 r");
    assert!(!got.contains_key("all/x/one.go"), "{got:?}");
}

#[test]
fn parents_of_kept_paths_have_the_source_directories_metadata() {
    let src = source();
    std::fs::set_permissions(
        src.path().join("dir/sub"),
        std::fs::Permissions::from_mode(0o750),
    )
    .unwrap();
    let base = base();
    let diff = tempfile::tempdir().unwrap();
    let env = CopyEnv {
        src_root: src.path(),
        src_ignore: None,
        from_context: true,
        base_root: base.path(),
        diff: diff.path(),
        owner: None,
        reuse: None,
    };
    let mut k = c(&["dir/sub/b"], "/p/");
    k.parents = true;
    copy(&env, &k).unwrap();
    let mut k = c(&["dir/sub"], "/q/");
    k.parents = true;
    copy(&env, &k).unwrap();
    let got = listing(diff.path());
    assert!(got["p"].starts_with("d 755 0:0"), "{}", got["p"]);
    assert!(
        got["p/dir/sub"].starts_with("d 750 0:0"),
        "{}",
        got["p/dir/sub"]
    );
    assert!(
        got["q/dir/sub"].starts_with("d 750 0:0"),
        "{}",
        got["q/dir/sub"]
    );
    assert_eq!(got["q/dir/sub/b"], "f 640 0:0 b");
}

#[test]
fn add_extracts_archives_and_refuses_hostile_ones() {
    let mut k = c(&["archive.tar.gz"], "/un/");
    k.unpack = true;
    let got = run(case(k)).unwrap();
    assert_eq!(got["un/inside/a.txt"], "f 644 0:0 abc");
    let mut k = c(&["evil.tar"], "/un/");
    k.unpack = true;
    let e = run(case(k)).unwrap_err();
    assert!(e.to_string().contains("escapes the destination"), "{e}");
    let mut k = c(&["archive.tar.gz"], "/raw/");
    k.unpack = false;
    let got = run(case(k)).unwrap();
    assert!(got.contains_key("raw/archive.tar.gz"));
}

#[test]
fn destination_symlinks_in_the_base_are_followed_inside_the_root() {
    let got = run(case(c(&["file.txt"], "/app/"))).unwrap();
    assert_eq!(got["opt/app/file.txt"], "f 644 0:0 hello");
    assert!(got["opt"].starts_with("d 700 5:6"));
}

#[test]
fn xattrs_mtime_and_setuid_travel_with_a_file_but_not_overlays_own_xattrs() {
    let src = tempfile::tempdir().unwrap();
    let f = src.path().join("tool");
    std::fs::write(&f, "bin").unwrap();
    std::fs::set_permissions(&f, std::fs::Permissions::from_mode(0o4755)).unwrap();
    xattr::set(&f, "user.note", b"kept").unwrap();
    xattr::set(&f, "trusted.overlay.opaque", b"y").unwrap();
    let when = std::time::SystemTime::UNIX_EPOCH + std::time::Duration::new(1_234_567, 89);
    std::fs::File::options()
        .write(true)
        .open(&f)
        .unwrap()
        .set_modified(when)
        .unwrap();
    let diff = copy_from(src.path(), Some((7, 8)), &c(&["tool"], "/bin/"));
    let out = diff.path().join("bin/tool");
    let m = std::fs::symlink_metadata(&out).unwrap();
    assert_eq!(
        (m.mode() & 0o7777, m.uid(), m.gid()),
        (0o4755, 7, 8),
        "setuid survives the chown"
    );
    assert_eq!(m.modified().unwrap(), when);
    assert_eq!(std::fs::read(&out).unwrap(), b"bin");
    assert_eq!(
        xattr::get(&out, "user.note").unwrap().as_deref(),
        Some(&b"kept"[..])
    );
    assert_eq!(xattr::get(&out, "trusted.overlay.opaque").unwrap(), None);
}

/// Files are copied on worker threads while the walk goes on: a directory still gets
/// its source's mtime and mode once every file inside it is written (also a read-only
/// one), and of two sources writing the same name the later one wins, as in Docker.
#[test]
fn directories_get_their_attributes_after_their_contents_and_later_sources_win() {
    let d = tempfile::tempdir().unwrap();
    let r = d.path();
    for i in 0..400 {
        write(r, &format!("tree/sub/f{i:03}"), &format!("{i}"), 0o644, 0);
    }
    write(r, "one/same.txt", "from one", 0o644, 0);
    write(r, "two/same.txt", "from two", 0o644, 0);
    let stamp = |p: &Path, secs: i64| {
        let t = rustix::fs::Timespec {
            tv_sec: secs,
            tv_nsec: 7,
        };
        let ts = rustix::fs::Timestamps {
            last_access: t,
            last_modification: t,
        };
        rustix::fs::utimensat(rustix::fs::CWD, p, &ts, rustix::fs::AtFlags::empty()).unwrap();
    };
    stamp(&r.join("tree/sub"), 1_500_000_000);
    stamp(&r.join("tree"), 1_400_000_000);
    std::fs::set_permissions(r.join("tree/sub"), std::fs::Permissions::from_mode(0o555)).unwrap();

    let diff = copy_from(
        r,
        None,
        &c(&["tree", "one/same.txt", "two/same.txt"], "/out/"),
    );
    let sub = std::fs::metadata(diff.path().join("out/sub")).unwrap();
    assert_eq!((sub.mtime(), sub.mtime_nsec()), (1_500_000_000, 7));
    assert_eq!(sub.mode() & 0o7777, 0o555);
    for i in 0..400 {
        let p = diff.path().join(format!("out/sub/f{i:03}"));
        assert_eq!(std::fs::read_to_string(p).unwrap(), format!("{i}"));
    }
    let same = std::fs::read_to_string(diff.path().join("out/same.txt")).unwrap();
    assert_eq!(same, "from two");

    // The same directory copied twice: the second copy overwrites every file.
    let diff = copy_from(r, None, &c(&["tree", "tree"], "/again/"));
    assert_eq!(
        std::fs::read_dir(diff.path().join("again/sub"))
            .unwrap()
            .count(),
        400
    );
    let sub = std::fs::metadata(diff.path().join("again/sub")).unwrap();
    assert_eq!((sub.mtime(), sub.mtime_nsec()), (1_500_000_000, 7));
}
