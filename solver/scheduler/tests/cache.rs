//! Caching: definition keys, content keys, effective keys, policies and ignore_cache.

mod common;

use std::sync::{Arc, Mutex};

use common::*;
use strata_digest::{sha256, Digest};
use strata_scheduler::{keys, CachePolicy, Context, MemoryCache, Scheduler};

/// The chain a → b → c with fresh counting ops.
fn chain() -> (Vec<Arc<TestOp>>, Vec<strata_scheduler::Vertex<String>>) {
    let ops: Vec<_> = ["a", "b", "c"].map(|l| TestOp::new(l).build()).into();
    let vertices = vec![
        vertex("a", &[], &ops[0]),
        vertex("b", &[0], &ops[1]),
        vertex("c", &[1], &ops[2]),
    ];
    (ops, vertices)
}

fn execs(ops: &[Arc<TestOp>]) -> Vec<usize> {
    ops.iter().map(|op| op.execs()).collect()
}

#[tokio::test]
async fn a_second_solve_hits_the_cache() {
    let cache = MemoryCache::new();
    let scheduler = Scheduler::new(2);
    let (ops, vertices) = chain();
    let first = solve(&scheduler, vertices, &[2], &cache).await;
    assert_eq!(first.values(), ["c(b(a()))"]);
    assert_eq!(execs(&ops), [1, 1, 1]);
    // Each vertex recorded under its definition key, described by its name.
    assert_eq!(cache.len(), 3);
    let a_key = keys::definition(&id("a"), &[]);
    assert_eq!(cache.description(&a_key).as_deref(), Some("a"));

    let (ops, vertices) = chain();
    let second = solve(&scheduler, vertices, &[2], &cache).await;
    assert_eq!(second.values(), first.values());
    assert_eq!(execs(&ops), [0, 0, 0]);
    for name in ["a", "b", "c"] {
        assert_eq!(second.kinds(name), ["cached"], "{name}");
    }
}

/// l1 → m, l2 → n, (m, n) → t; then l1's definition changes.
#[tokio::test]
async fn a_changed_leaf_reruns_only_its_dependents() {
    let cache = MemoryCache::new();
    let scheduler = Scheduler::new(4);
    let graph = |l1_id: &str| {
        let ops: Vec<_> = ["l1", "l2", "m", "n", "t"]
            .map(|l| TestOp::new(l).build())
            .into();
        let vertices = vec![
            vertex_with_id("l1", l1_id, &[], &ops[0]),
            vertex("l2", &[], &ops[1]),
            vertex("m", &[0], &ops[2]),
            vertex("n", &[1], &ops[3]),
            vertex("t", &[2, 3], &ops[4]),
        ];
        (ops, vertices)
    };
    let (ops, vertices) = graph("l1");
    solve(&scheduler, vertices, &[4], &cache).await.values();
    assert_eq!(execs(&ops), [1, 1, 1, 1, 1]);

    let (ops, vertices) = graph("l1 v2");
    let solved = solve(&scheduler, vertices, &[4], &cache).await;
    solved.values();
    // l1, m and t run again; l2 and n come from the cache.
    assert_eq!(execs(&ops), [1, 0, 1, 0, 1]);
    assert_eq!(solved.kinds("n"), ["cached"]);
    assert_eq!(solved.kinds("m"), ["started", "completed"]);
}

/// leaf → v → d, where v's content key hashes its input. The leaf's definition
/// changes but it produces the same bytes: v hits by content, d by definition.
#[tokio::test]
async fn a_content_key_hit_spares_the_vertex_and_its_dependents() {
    let cache = MemoryCache::new();
    let scheduler = Scheduler::new(2);
    let output = Arc::new(Mutex::new("bytes".to_string()));
    let graph = |leaf_id: &str| {
        let out = output.clone();
        let leaf = TestOp::new("leaf")
            .exec(move |_, _| {
                let out = out.lock().unwrap().clone();
                async move { Ok(out) }
            })
            .build();
        let v = TestOp::new("v")
            .content(|_, inputs| Some(sha256(inputs.join("\0").as_bytes())))
            .build();
        let d = TestOp::new("d").build();
        let vertices = vec![
            vertex_with_id("leaf", leaf_id, &[], &leaf),
            vertex("v", &[0], &v),
            vertex("d", &[1], &d),
        ];
        (vec![leaf, v, d], vertices)
    };

    let (ops, vertices) = graph("leaf");
    let first = solve(&scheduler, vertices, &[2], &cache).await;
    assert_eq!(first.values(), ["d(v(bytes))"]);
    assert_eq!(execs(&ops), [1, 1, 1]);

    let (ops, vertices) = graph("leaf v2");
    let second = solve(&scheduler, vertices, &[2], &cache).await;
    assert_eq!(second.values(), ["d(v(bytes))"]);
    assert_eq!(execs(&ops), [1, 0, 0]);
    assert_eq!(ops[1].content_calls(), 1, "v's definition key missed");
    assert_eq!(second.kinds("v"), ["cached"]);
    assert_eq!(second.kinds("d"), ["cached"]);

    // Same graph again: v now hits by definition without computing its content key,
    // and still hands d the content-derived key d was recorded under.
    let (ops, vertices) = graph("leaf v2");
    let third = solve(&scheduler, vertices, &[2], &cache).await;
    assert_eq!(third.values(), ["d(v(bytes))"]);
    assert_eq!(execs(&ops), [0, 0, 0]);
    assert_eq!(ops[1].content_calls(), 0);

    // Different bytes: v and d run.
    *output.lock().unwrap() = "other".into();
    let (ops, vertices) = graph("leaf v3");
    let fourth = solve(&scheduler, vertices, &[2], &cache).await;
    assert_eq!(fourth.values(), ["d(v(other))"]);
    assert_eq!(execs(&ops), [1, 1, 1]);
}

#[tokio::test]
async fn content_only_skips_the_definition_lookup() {
    let cache = MemoryCache::new();
    let scheduler = Scheduler::new(1);
    let etag = Arc::new(Mutex::new("etag-1".to_string()));
    let graph = || {
        let etag = etag.clone();
        let op = TestOp::new("http")
            .policy(CachePolicy::ContentOnly)
            .content(move |_, _| Some(sha256(etag.lock().unwrap().as_bytes())))
            .build();
        (op.clone(), vec![vertex("http", &[], &op)])
    };
    let (op, vertices) = graph();
    solve(&scheduler, vertices, &[0], &cache).await.values();
    assert_eq!((op.execs(), op.content_calls()), (1, 1));
    assert_eq!(cache.len(), 1, "recorded under the content key only");

    let (op, vertices) = graph();
    solve(&scheduler, vertices, &[0], &cache).await.values();
    assert_eq!((op.execs(), op.content_calls()), (0, 1));

    *etag.lock().unwrap() = "etag-2".into();
    let (op, vertices) = graph();
    solve(&scheduler, vertices, &[0], &cache).await.values();
    assert_eq!((op.execs(), op.content_calls()), (1, 1));
}

#[tokio::test]
async fn ignore_cache_forces_a_run_and_still_records() {
    let cache = MemoryCache::new();
    let scheduler = Scheduler::new(2);
    let (_, vertices) = chain();
    solve(&scheduler, vertices, &[2], &cache).await.values();

    let (ops, mut vertices) = chain();
    vertices[1].ignore_cache = true;
    let solved = solve(&scheduler, vertices, &[2], &cache).await;
    solved.values();
    // b runs; its key is unchanged, so c still hits.
    assert_eq!(execs(&ops), [0, 1, 0]);
    assert_eq!(solved.kinds("b"), ["started", "completed"]);

    let (ops, vertices) = chain();
    solve(&scheduler, vertices, &[2], &cache).await.values();
    assert_eq!(execs(&ops), [0, 0, 0]);
}

/// A local-context-like source (Never) feeding a copy whose content key hashes the
/// context it reads and folds in the key of the base it writes onto.
#[tokio::test]
async fn never_policy_always_runs_and_dependents_rely_on_content_keys() {
    let cache = MemoryCache::new();
    let scheduler = Scheduler::new(2);
    let files = Arc::new(Mutex::new("v1".to_string()));
    let copy_content = |cx: &Context, inputs: &[String]| -> Option<Digest> {
        let base = cx.input_keys()[0].expect("the base is cacheable");
        assert_eq!(cx.input_keys()[1], None, "the context is volatile");
        Some(strata_digest::key::encode("test/copy", &(base, &inputs[1])))
    };
    let graph = |with_content: bool| {
        let files = files.clone();
        let base = TestOp::new("base").build();
        let context = TestOp::new("context")
            .policy(CachePolicy::Never)
            .exec(move |_, _| {
                let files = files.lock().unwrap().clone();
                async move { Ok(files) }
            })
            .build();
        let mut copy = TestOp::new("copy");
        if with_content {
            copy = copy.content(copy_content);
        }
        let copy = copy.build();
        let vertices = vec![
            vertex("base", &[], &base),
            vertex("context", &[], &context),
            vertex("copy", &[0, 1], &copy),
        ];
        (vec![base, context, copy], vertices)
    };

    let (ops, vertices) = graph(true);
    assert_eq!(
        solve(&scheduler, vertices, &[2], &cache).await.values(),
        ["copy(base(),v1)"]
    );
    assert_eq!(execs(&ops), [1, 1, 1]);
    // base (definition) and copy (content); nothing for the context.
    assert_eq!(cache.len(), 2);

    let (ops, vertices) = graph(true);
    let solved = solve(&scheduler, vertices, &[2], &cache).await;
    assert_eq!(solved.values(), ["copy(base(),v1)"]);
    assert_eq!(execs(&ops), [0, 1, 0]);
    assert_eq!(solved.kinds("context"), ["started", "completed"]);
    assert_eq!(solved.kinds("copy"), ["cached"]);

    *files.lock().unwrap() = "v2".into();
    let (ops, vertices) = graph(true);
    assert_eq!(
        solve(&scheduler, vertices, &[2], &cache).await.values(),
        ["copy(base(),v2)"]
    );
    assert_eq!(execs(&ops), [0, 1, 1]);

    // Without a content key a vertex over a volatile input has no key at all: it runs
    // every time and records nothing.
    let before = cache.len();
    for _ in 0..2 {
        let (ops, vertices) = graph(false);
        solve(&scheduler, vertices, &[2], &cache).await.values();
        assert_eq!(execs(&ops), [0, 1, 1]);
    }
    assert_eq!(cache.len(), before);
}

/// Equal ids under different names share one cache record; the record's description
/// is the name that ran.
#[tokio::test]
async fn records_are_keyed_by_id_not_name() {
    let cache = MemoryCache::new();
    let scheduler = Scheduler::new(1);
    let a = TestOp::new("a").build();
    solve(
        &scheduler,
        vec![vertex_with_id("[stage-1 1/2] RUN x", "same", &[], &a)],
        &[0],
        &cache,
    )
    .await
    .values();
    let b = TestOp::new("b").build();
    let solved = solve(
        &scheduler,
        vec![vertex_with_id("[stage-2 1/2] RUN x", "same", &[], &b)],
        &[0],
        &cache,
    )
    .await;
    assert_eq!(solved.values(), ["a()"]);
    assert_eq!(b.execs(), 0);
    assert_eq!(
        cache
            .description(&keys::definition(&id("same"), &[]))
            .as_deref(),
        Some("[stage-1 1/2] RUN x")
    );
}

/// A [`MemoryCache`] that counts [`CacheMap::claim`] calls, so a test knows when a second
/// solve is waiting for the key.
struct CountingClaims {
    inner: MemoryCache<String>,
    claims: tokio::sync::watch::Sender<usize>,
}

impl strata_scheduler::CacheMap<String> for CountingClaims {
    fn get(&self, key: &Digest) -> Option<strata_scheduler::CacheRecord<String>> {
        self.inner.get(key)
    }
    fn put(&self, key: &Digest, record: &strata_scheduler::CacheRecord<String>, d: &str) {
        self.inner.put(key, record, d)
    }
    fn claim<'a>(
        &'a self,
        key: &'a Digest,
    ) -> strata_scheduler::BoxFuture<'a, Result<strata_scheduler::Claimed, strata_scheduler::OpError>>
    {
        self.claims.send_modify(|n| *n += 1);
        self.inner.claim(key)
    }
}

#[tokio::test]
async fn two_solves_sharing_a_cache_run_a_vertex_once_and_the_second_reuses_it() {
    let (claims, mut claimed) = tokio::sync::watch::channel(0);
    let cache = CountingClaims {
        inner: MemoryCache::new(),
        claims,
    };
    let ran = Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let release = Arc::new(tokio::sync::Semaphore::new(0));
    let op = || {
        let (ran, release) = (ran.clone(), release.clone());
        TestOp::new("slow")
            .exec(move |_, _| {
                let (ran, release) = (ran.clone(), release.clone());
                async move {
                    ran.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
                    let _ = release.acquire().await;
                    Ok("made once".to_string())
                }
            })
            .build()
    };
    let (op1, op2) = (op(), op());
    let scheduler = Scheduler::new(4);
    let control = async {
        // Both solves missed and claimed the key; one of them runs, the other waits.
        claimed.wait_for(|n| *n >= 2).await.unwrap();
        release.add_permits(10);
    };
    let (first, second, ()) = tokio::join!(
        solve(&scheduler, vec![vertex("v", &[], &op1)], &[0], &cache),
        solve(&scheduler, vec![vertex("v", &[], &op2)], &[0], &cache),
        guard(control),
    );
    assert_eq!(first.values(), ["made once"]);
    assert_eq!(second.values(), ["made once"]);
    assert_eq!(ran.load(std::sync::atomic::Ordering::SeqCst), 1);
    assert_eq!(op1.execs() + op2.execs(), 1);
    let mut kinds = [first.kinds("v"), second.kinds("v")];
    kinds.sort();
    assert_eq!(kinds, [vec!["cached"], vec!["started", "completed"]]);
    let waiter = if first.kinds("v") == ["cached"] {
        &first
    } else {
        &second
    };
    assert!(
        waiter.events.iter().any(|e| matches!(e,
            strata_progress::Event::Log { text, .. } if text.contains("for another build running this step"))),
        "{:?}",
        waiter.events
    );
}
