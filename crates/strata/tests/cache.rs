//! The build cache through the real binary, observed in `--progress json` events: a
//! rebuild is all `cached`; a changed context file re-runs exactly the steps that read
//! it (and the steps built on them) while the steps that copy other files stay cached;
//! files no COPY selects, `.dockerignore`d files and mtimes are not part of any key;
//! `--no-cache` and `--no-cache-filter STAGE` force work.

mod common;

use std::collections::BTreeSet;

use common::*;
use tempfile::TempDir;

/// Three stages; the last links the other two in (`COPY --link`, so those steps do not
/// depend on each other) and finally copies every `.txt`.
const DOCKERFILE: &str = "FROM scratch AS one\n\
COPY a.txt /\n\
FROM scratch AS two\n\
COPY b.txt /\n\
FROM scratch\n\
COPY c.txt /\n\
COPY --link --from=one /a.txt /\n\
COPY --link --from=two /b.txt /\n\
COPY *.txt /all/\n";

const FROM: &str = "[stage-2 1/5] FROM scratch";
const ONE: &str = "[one 2/2] COPY a.txt /";
const TWO: &str = "[two 2/2] COPY b.txt /";
const C: &str = "[stage-2 2/5] COPY c.txt /";
const LINK_ONE: &str = "[stage-2 3/5] COPY --link --from=one /a.txt /";
const LINK_TWO: &str = "[stage-2 4/5] COPY --link --from=two /b.txt /";
const ALL: &str = "[stage-2 5/5] COPY *.txt /all/";

fn ctx() -> TempDir {
    context(&[
        ("Dockerfile", DOCKERFILE, 0o644),
        ("a.txt", "a\n", 0o644),
        ("b.txt", "b\n", 0o644),
        ("c.txt", "c\n", 0o644),
        ("notes.md", "not copied\n", 0o644),
    ])
}

/// Builds with a fixed SOURCE_DATE_EPOCH, so the image ID depends on the content only
/// (not on the second the build ran in) and rebuilds can be compared by ID.
fn build(s: &Strata, ctx: &TempDir, extra: &[&str]) -> Build {
    let mut args = vec!["--source-date-epoch", "1700000000"];
    args.extend_from_slice(extra);
    s.build(ctx.path(), &args)
}

fn set(names: &[&str]) -> BTreeSet<String> {
    names.iter().map(|s| s.to_string()).collect()
}

fn executed(b: &Build) -> BTreeSet<String> {
    b.executed().into_iter().collect()
}

fn cached(b: &Build) -> BTreeSet<String> {
    b.cached().into_iter().collect()
}

/// Builds once (everything runs), returning the store for rebuilds.
fn first_build(ctx: &TempDir) -> (Strata, Build) {
    let s = Strata::new();
    let b = build(&s, ctx, &[]);
    assert_eq!(
        executed(&b),
        set(&[FROM, ONE, TWO, C, LINK_ONE, LINK_TWO, ALL]),
        "a cold build runs every step\n{}",
        b.stderr
    );
    assert!(b.cached().is_empty(), "{:?}", b.cached());
    (s, b)
}

/// Every step of a rebuild came from the cache, and the image is the same.
fn assert_all_cached(first: &Build, again: &Build, why: &str) {
    assert!(
        again.executed().is_empty(),
        "{why}: these steps ran again: {:?}\n{}",
        again.executed(),
        again.stderr
    );
    assert_eq!(
        cached(again),
        set(&[FROM, ONE, TWO, C, LINK_ONE, LINK_TWO, ALL])
    );
    assert_eq!(again.id, first.id, "{why}: same image");
}

#[test]
fn rebuild_is_all_cached() {
    let ctx = ctx();
    let (s, first) = first_build(&ctx);
    let again = build(&s, &ctx, &[]);
    assert_all_cached(&first, &again, "unchanged context");
    // Plain progress says so too: every `#N [step]` has a `#N CACHED`.
    let plain = s.ok(&["build", "--progress", "plain", ctx.path().to_str().unwrap()]);
    let plain = String::from_utf8_lossy(&plain.stderr);
    let mut steps = BTreeSet::new();
    let mut cached = BTreeSet::new();
    for line in plain.lines() {
        let Some((n, rest)) = line.split_once(' ') else {
            continue;
        };
        if !n.starts_with('#') {
            continue;
        }
        if rest == "CACHED" {
            cached.insert(n.to_string());
        } else if rest.starts_with('[') && !rest.starts_with("[internal]") {
            steps.insert(n.to_string());
        }
    }
    assert_eq!(
        steps.len(),
        9,
        "seven steps, the two links in two vertices each\n{plain}"
    );
    assert_eq!(steps, cached, "{plain}");
}

#[test]
fn changing_one_file_reruns_only_the_steps_that_read_it() {
    let ctx = ctx();
    let (s, first) = first_build(&ctx);
    write(ctx.path(), "b.txt", "b changed\n");
    let b = build(&s, &ctx, &[]);
    assert_eq!(
        executed(&b),
        set(&[TWO, LINK_TWO, ALL]),
        "b.txt is read by stage two's COPY, the link of its result, and COPY *.txt\n{}",
        b.stderr
    );
    assert_eq!(cached(&b), set(&[FROM, ONE, C, LINK_ONE]));
    assert_ne!(b.id, first.id);

    // Changing it back finds the first result in the cache again.
    write(ctx.path(), "b.txt", "b\n");
    let back = build(&s, &ctx, &[]);
    assert_all_cached(&first, &back, "content restored");
}

#[test]
fn a_file_no_copy_selects_is_not_part_of_any_key() {
    let ctx = ctx();
    let (s, first) = first_build(&ctx);
    write(ctx.path(), "notes.md", "edited, but nothing copies it\n");
    write_entries(ctx.path(), &[("sub/new.md", "new\n", 0o644)]);
    let b = build(&s, &ctx, &[]);
    assert_all_cached(&first, &b, "notes.md and sub/ are not selected by any COPY");

    // A new file the wildcard does select invalidates exactly that COPY.
    write_entries(ctx.path(), &[("d.txt", "d\n", 0o644)]);
    let b = build(&s, &ctx, &[]);
    assert_eq!(executed(&b), set(&[ALL]), "{}", b.stderr);
}

#[test]
fn mtime_changes_stay_cached_but_mode_changes_do_not() {
    let ctx = ctx();
    let (s, first) = first_build(&ctx);
    set_mtimes(ctx.path(), 1_000_000_000);
    let b = build(&s, &ctx, &[]);
    assert_all_cached(&first, &b, "only mtimes changed");

    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(
        ctx.path().join("c.txt"),
        std::fs::Permissions::from_mode(0o755),
    )
    .unwrap();
    let b = build(&s, &ctx, &[]);
    assert_eq!(
        executed(&b),
        set(&[C, LINK_ONE, LINK_TWO, ALL]),
        "c.txt's mode is part of what COPY c.txt and COPY *.txt read; the links are \
         built on COPY c.txt\n{}",
        b.stderr
    );
}

#[test]
fn dockerignored_files_are_not_part_of_the_key() {
    let s = Strata::new();
    let ctx = context(&[
        ("Dockerfile", "FROM scratch\nCOPY . /ctx/\n", 0o644),
        (".dockerignore", "*.log\n!keep.log\nbuild/\n", 0o644),
        ("src/main.c", "int main;\n", 0o644),
        ("debug.log", "noise\n", 0o644),
        ("keep.log", "kept\n", 0o644),
        ("build/out.o", "obj\n", 0o644),
    ]);
    let copy = "[2/2] COPY . /ctx/";
    let first = build(&s, &ctx, &[]);
    assert_eq!(first.executed(), vec!["[1/2] FROM scratch", copy]);

    write(ctx.path(), "debug.log", "more noise\n");
    write(ctx.path(), "build/out.o", "rebuilt\n");
    write_entries(ctx.path(), &[("build/more.o", "x\n", 0o644)]);
    let b = build(&s, &ctx, &[]);
    assert!(
        b.executed().is_empty(),
        "ignored files changed:\n{}",
        b.stderr
    );
    assert_eq!(b.id, first.id);

    // keep.log is re-included by `!keep.log`: changing it re-runs the COPY.
    write(ctx.path(), "keep.log", "changed\n");
    let b = build(&s, &ctx, &[]);
    assert_eq!(b.executed(), vec![copy], "{}", b.stderr);
}

#[test]
fn no_cache_runs_everything() {
    let ctx = ctx();
    let (s, first) = first_build(&ctx);
    let b = build(&s, &ctx, &["--no-cache"]);
    assert!(b.cached().is_empty(), "--no-cache used {:?}", b.cached());
    assert_eq!(
        executed(&b),
        set(&[FROM, ONE, TWO, C, LINK_ONE, LINK_TWO, ALL])
    );
    assert_eq!(b.id, first.id, "the same inputs build the same image");
}

#[test]
fn no_cache_filter_reruns_only_that_stage() {
    let ctx = ctx();
    let (s, _) = first_build(&ctx);
    let b = build(&s, &ctx, &["--no-cache-filter", "two"]);
    let ran = executed(&b);
    assert!(ran.contains(TWO), "{ran:?}");
    // `FROM scratch` is one vertex shared by every stage; nothing else may run: the
    // re-run stage produced the same content, so what uses it is still cached.
    let others: BTreeSet<String> = ran.difference(&set(&[TWO, FROM])).cloned().collect();
    assert!(others.is_empty(), "ran outside stage two: {others:?}");
    assert!(cached(&b).is_superset(&set(&[ONE, C, LINK_ONE, LINK_TWO, ALL])));

    let b = build(&s, &ctx, &["--no-cache-filter", "stage-2"]);
    let ran = executed(&b);
    assert!(
        ran.is_superset(&set(&[C, LINK_ONE, LINK_TWO, ALL])),
        "{ran:?}"
    );
    assert!(!ran.contains(ONE) && !ran.contains(TWO), "{ran:?}");
}

#[test]
fn several_processes_share_a_store() {
    // Six builds of two contexts at once on one store: all succeed, agree on the image,
    // and leave a cache the next build uses entirely. No ordering is assumed.
    let s = Strata::new();
    let (a, b) = (ctx(), ctx());
    write(b.path(), "c.txt", "c of b\n");
    let children: Vec<_> = [&a, &b, &a, &b, &a, &b]
        .iter()
        .map(|c| {
            s.cmd()
                .args(["build", "--progress", "quiet", "--source-date-epoch", "0"])
                .arg(c.path())
                .stdout(std::process::Stdio::piped())
                .stderr(std::process::Stdio::piped())
                .spawn()
                .unwrap()
        })
        .collect();
    let ids: Vec<String> = children
        .into_iter()
        .map(|c| {
            let out = c.wait_with_output().unwrap();
            assert!(
                out.status.success(),
                "{}",
                String::from_utf8_lossy(&out.stderr)
            );
            String::from_utf8(out.stdout).unwrap().trim().to_string()
        })
        .collect();
    assert!(ids[0] == ids[2] && ids[2] == ids[4], "{ids:?}");
    assert!(ids[1] == ids[3] && ids[3] == ids[5], "{ids:?}");
    assert_ne!(ids[0], ids[1]);
    let again = s.build(a.path(), &["--source-date-epoch", "0"]);
    assert!(again.executed().is_empty(), "{}", again.stderr);
    assert_eq!(again.id, ids[0]);
}

#[test]
fn parents_read_the_modes_of_the_kept_directories() {
    // `COPY --parents d/e/f` makes /p/d/e from the context's d/e, so its mode is part of
    // the key: a chmod of d/e must not leave a stale, cached /p/d/e.
    use std::os::unix::fs::PermissionsExt;
    let s = Strata::new();
    let c = context(&[
        (
            "Dockerfile",
            "FROM scratch\nCOPY --parents d/e/f /p/\n",
            0o644,
        ),
        ("d/e/f", "f\n", 0o644),
        ("d/e/", "", 0o750),
    ]);
    let out = tempfile::tempdir().unwrap();
    let dest = |n: &str| format!("type=local,dest={}", out.path().join(n).display());
    build(&s, &c, &["-o", &dest("one")]);
    std::fs::set_permissions(c.path().join("d/e"), std::fs::Permissions::from_mode(0o700)).unwrap();
    let b = build(&s, &c, &["-o", &dest("two")]);
    assert_eq!(
        b.executed(),
        vec!["[2/2] COPY --parents d/e/f /p/"],
        "{}",
        b.stderr
    );
    let mode = |n: &str| {
        std::fs::metadata(out.path().join(n).join("p/d/e"))
            .unwrap()
            .permissions()
            .mode()
            & 0o7777
    };
    assert_eq!((mode("one"), mode("two")), (0o750, 0o700));
}
