//! The Solver end to end on a small graph (`FROM scratch` + `COPY . /ctx/`): caching by
//! what the copy reads, and incremental COPY (unchanged files hardlinked from the
//! previous layer, never rewritten). Needs root and overlayfs, like the solver.

use std::collections::BTreeMap;
use std::os::unix::fs::MetadataExt;
use std::sync::Arc;

use strata_graph::{Copy, FileAction, FileOp, Graph, Input, Op, Source, VertexMeta};
use strata_ops::{SolveOptions, Solver};
use strata_progress::{Collector, Event};
use strata_scheduler::CancellationToken;

fn graph() -> (Graph, Input) {
    let mut g = Graph::new();
    let scratch = g.add(Op::Source(Source::Scratch), vec![], VertexMeta::default());
    let ctx = g.add(
        Op::Source(Source::Local {
            name: "context".into(),
            include: vec![],
            exclude: vec![],
        }),
        vec![],
        VertexMeta::default(),
    );
    let copy = Copy {
        input: 1,
        sources: vec![".".into()],
        dest: "/ctx/".into(),
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
    };
    let file = g.add(
        Op::File(FileOp {
            base: Some(0),
            actions: vec![FileAction::Copy(copy)],
        }),
        vec![Input::root(scratch), Input::root(ctx)],
        VertexMeta {
            name: "[1/2] COPY . /ctx/".into(),
            ..Default::default()
        },
    );
    (g, Input::root(file))
}

fn solve(
    root: &std::path::Path,
    ctx: &std::path::Path,
) -> (
    strata_snapshot::Chain,
    Vec<Event>,
    Arc<strata_snapshot::Layers>,
) {
    let store = strata_store::Store::open(root).unwrap();
    let solver = Solver::new(store).unwrap();
    let (g, target) = graph();
    let mut dirs = BTreeMap::new();
    dirs.insert("context".to_string(), ctx.to_path_buf());
    let opts = SolveOptions {
        local_dirs: dirs,
        parallelism: Some(2),
        ..Default::default()
    };
    let events = Arc::new(Collector::default());
    let rt = tokio::runtime::Runtime::new().unwrap();
    let chain = rt
        .block_on(solver.solve(&g, target, &opts, events.clone(), CancellationToken::new()))
        .unwrap();
    (chain, events.events(), solver.layers().clone())
}

fn cached(events: &[Event], name: &str) -> bool {
    events
        .iter()
        .any(|e| matches!(e, Event::Cached { vertex } if vertex.name == name))
}

#[test]
fn caches_by_content_and_hardlinks_unchanged_files() {
    let root = tempfile::tempdir().unwrap();
    let ctx = tempfile::tempdir().unwrap();
    for i in 0..20 {
        std::fs::write(ctx.path().join(format!("f{i}")), format!("content {i}")).unwrap();
    }
    // A directory the copy makes: its unchanged files are linked on another thread.
    std::fs::create_dir(ctx.path().join("sub")).unwrap();
    for i in 0..5 {
        std::fs::write(ctx.path().join(format!("sub/g{i}")), format!("g {i}")).unwrap();
    }
    let (c1, e1, layers) = solve(root.path(), ctx.path());
    assert!(!cached(&e1, "[1/2] COPY . /ctx/"));
    let l1 = layers.path(c1.layers().last().unwrap());

    // Same content, new mtime: a cache hit, same chain.
    let f0 = std::fs::File::options()
        .write(true)
        .open(ctx.path().join("f0"))
        .unwrap();
    f0.set_modified(std::time::SystemTime::UNIX_EPOCH + std::time::Duration::from_secs(99))
        .unwrap();
    let (c2, e2, _) = solve(root.path(), ctx.path());
    assert!(
        cached(&e2, "[1/2] COPY . /ctx/"),
        "mtime-only change must hit the cache"
    );
    assert_eq!(c1, c2);

    // One file's content changes: the step re-runs, the other files are hardlinked.
    std::fs::write(ctx.path().join("f7"), "changed").unwrap();
    let (c3, e3, layers) = solve(root.path(), ctx.path());
    assert!(!cached(&e3, "[1/2] COPY . /ctx/"));
    assert_ne!(c3, c2);
    let l3 = layers.path(c3.layers().last().unwrap());
    assert_eq!(
        std::fs::read_to_string(l3.join("ctx/f7")).unwrap(),
        "changed"
    );
    let shared = |name: &str| {
        std::fs::metadata(l1.join("ctx").join(name)).unwrap().ino()
            == std::fs::metadata(l3.join("ctx").join(name)).unwrap().ino()
    };
    assert!(
        shared("f3") && shared("f19") && shared("sub/g0") && shared("sub/g4"),
        "unchanged files are hardlinked from the previous layer"
    );
    // Linking into sub/ did not change the mtime it was given (the source's).
    let when = |p: std::path::PathBuf| {
        let m = std::fs::metadata(p).unwrap();
        (m.mtime(), m.mtime_nsec())
    };
    assert_eq!(when(l3.join("ctx/sub")), when(ctx.path().join("sub")));
    assert!(!shared("f7"), "the changed file is a new copy");
    // The destination directory the step creates keeps the first run's mtime, so the
    // new layer's tar starts with the old one's bytes (its diffID resumes from them).
    let mtime = |l: &std::path::Path| {
        let m = std::fs::metadata(l.join("ctx")).unwrap();
        (m.mtime(), m.mtime_nsec())
    };
    assert_eq!(mtime(&l1), mtime(&l3));
    // f0's mtime changed (content did not): its copy carries the new mtime, so it is new.
    assert!(!shared("f0"));
    assert_eq!(
        std::fs::read_to_string(l1.join("ctx/f7")).unwrap(),
        "content 7",
        "the old layer is untouched"
    );

    // A mode change alone: that file is copied anew with its new mode, the rest linked.
    use std::os::unix::fs::PermissionsExt;
    let f5 = ctx.path().join("f5");
    std::fs::set_permissions(&f5, std::fs::Permissions::from_mode(0o600)).unwrap();
    let (c4, _, layers) = solve(root.path(), ctx.path());
    let l4 = layers.path(c4.layers().last().unwrap());
    let meta =
        |l: &std::path::Path, name: &str| std::fs::metadata(l.join("ctx").join(name)).unwrap();
    assert_ne!(meta(&l3, "f5").ino(), meta(&l4, "f5").ino());
    assert_eq!(meta(&l4, "f5").mode() & 0o7777, 0o600);
    assert_eq!(meta(&l3, "f3").ino(), meta(&l4, "f3").ino());
}
