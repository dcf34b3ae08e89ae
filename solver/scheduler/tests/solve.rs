//! Scheduling: once-only dedupe, reachability, concurrency and the parallelism limit.

mod common;

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

use common::*;
use strata_scheduler::{MemoryCache, NoCache, Scheduler, SolveError};
use tokio::sync::Barrier;

#[tokio::test]
async fn same_id_twice_runs_once() {
    let first = TestOp::new("a").build();
    let second = TestOp::new("a-again").build();
    let user = TestOp::new("user").build();
    let vertices = vec![
        vertex("a", &[], &first),
        vertex("a", &[], &second),
        vertex("user", &[1], &user),
    ];
    let solved = solve(&Scheduler::new(4), vertices, &[0, 1, 2], &NoCache).await;
    assert_eq!(solved.values(), ["a()", "a()", "user(a())"]);
    assert_eq!(first.execs(), 1);
    assert_eq!(second.execs(), 0);
    assert_eq!(solved.kinds("a"), ["started", "completed"]);
}

#[tokio::test]
async fn diamond_runs_the_shared_input_once() {
    let ops: Vec<_> = ["a", "b", "c", "d"].map(|l| TestOp::new(l).build()).into();
    let vertices = vec![
        vertex("a", &[], &ops[0]),
        vertex("b", &[0], &ops[1]),
        vertex("c", &[0], &ops[2]),
        vertex("d", &[1, 2], &ops[3]),
    ];
    let solved = solve(&Scheduler::new(4), vertices, &[3], &NoCache).await;
    assert_eq!(solved.values(), ["d(b(a()),c(a()))"]);
    for op in &ops {
        assert_eq!(op.execs(), 1);
    }
}

#[tokio::test]
async fn targets_come_back_in_the_order_asked() {
    let ops: Vec<_> = ["a", "b", "c"].map(|l| TestOp::new(l).build()).into();
    let vertices = vec![
        vertex("a", &[], &ops[0]),
        vertex("b", &[0], &ops[1]),
        vertex("c", &[], &ops[2]),
    ];
    let solved = solve(&Scheduler::new(2), vertices, &[2, 1, 2, 0], &NoCache).await;
    assert_eq!(solved.values(), ["c()", "b(a())", "c()", "a()"]);
    assert_eq!(ops[2].execs(), 1);
}

#[tokio::test]
async fn unreachable_vertices_never_run() {
    let a = TestOp::new("a").build();
    let b = TestOp::new("b").build();
    let stray = TestOp::new("stray").build();
    let stray_user = TestOp::new("stray-user").build();
    let vertices = vec![
        vertex("a", &[], &a),
        vertex("stray", &[0], &stray),
        vertex("b", &[0], &b),
        vertex("stray-user", &[1], &stray_user),
    ];
    let solved = solve(&Scheduler::new(4), vertices, &[2], &NoCache).await;
    assert_eq!(solved.values(), ["b(a())"]);
    assert_eq!((a.execs(), b.execs()), (1, 1));
    assert_eq!((stray.execs(), stray_user.execs()), (0, 0));
    assert!(solved.kinds("stray").is_empty());
}

/// Each op waits at a barrier for the other: solved one at a time, this deadlocks and
/// the hang guard fails the test.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn independent_vertices_run_concurrently() {
    let barrier = Arc::new(Barrier::new(2));
    let meet = |label: &'static str| {
        let barrier = barrier.clone();
        TestOp::new(label)
            .exec(move |_, _| {
                let barrier = barrier.clone();
                async move {
                    barrier.wait().await;
                    Ok(label.to_string())
                }
            })
            .build()
    };
    let (left, right) = (meet("left"), meet("right"));
    let join = TestOp::new("join").build();
    let vertices = vec![
        vertex("left", &[], &left),
        vertex("right", &[], &right),
        vertex("join", &[0, 1], &join),
    ];
    let solved = solve(&Scheduler::new(2), vertices, &[2], &NoCache).await;
    assert_eq!(solved.values(), ["join(left,right)"]);
}

/// Six independent ops that each hold their slot across many yields; the maximum seen
/// running at once must be the limit. The unlimited run shows the probe detects overlap.
async fn max_concurrent(parallelism: usize) -> usize {
    let current = Arc::new(AtomicUsize::new(0));
    let max = Arc::new(AtomicUsize::new(0));
    let mut vertices = Vec::new();
    for i in 0..6 {
        let (current, max) = (current.clone(), max.clone());
        let op = TestOp::new("busy")
            .exec(move |_, _| {
                let (current, max) = (current.clone(), max.clone());
                async move {
                    let now = current.fetch_add(1, Ordering::SeqCst) + 1;
                    max.fetch_max(now, Ordering::SeqCst);
                    for _ in 0..50 {
                        tokio::task::yield_now().await;
                    }
                    current.fetch_sub(1, Ordering::SeqCst);
                    Ok(String::new())
                }
            })
            .build();
        vertices.push(vertex(&format!("busy {i}"), &[], &op));
    }
    let join = TestOp::new("join").build();
    vertices.push(vertex("join", &[0, 1, 2, 3, 4, 5], &join));
    let solved = solve(&Scheduler::new(parallelism), vertices, &[6], &NoCache).await;
    solved.values();
    max.load(Ordering::SeqCst)
}

#[tokio::test]
async fn parallelism_limit_is_respected() {
    assert_eq!(max_concurrent(2).await, 2);
    assert_eq!(max_concurrent(1).await, 1);
    assert_eq!(
        max_concurrent(6).await,
        6,
        "the probe must see unlimited overlap"
    );
}

#[tokio::test]
async fn zero_parallelism_still_runs() {
    let a = TestOp::new("a").build();
    let solved = solve(
        &Scheduler::new(0),
        vec![vertex("a", &[], &a)],
        &[0],
        &NoCache,
    )
    .await;
    assert_eq!(solved.values(), ["a()"]);
}

#[tokio::test]
async fn malformed_graphs_are_rejected_before_anything_runs() {
    let a = TestOp::new("a").build();
    let forward = vec![vertex("a", &[1], &a), vertex("b", &[], &a)];
    let cache = MemoryCache::new();
    let solved = solve(&Scheduler::new(1), forward, &[0], &cache).await;
    assert!(matches!(
        solved.result,
        Err(SolveError::InvalidInput { index: 0, ref vertex, input: 1 }) if vertex == "a"
    ));
    let self_loop = vec![vertex("a", &[0], &a)];
    let solved = solve(&Scheduler::new(1), self_loop, &[0], &cache).await;
    assert!(matches!(
        solved.result,
        Err(SolveError::InvalidInput { .. })
    ));
    let solved = solve(&Scheduler::new(1), vec![vertex("a", &[], &a)], &[1], &cache).await;
    assert!(matches!(
        solved.result,
        Err(SolveError::InvalidTarget { target: 1, len: 1 })
    ));
    assert_eq!(a.execs(), 0);
    assert!(solved.events.is_empty());
}

#[tokio::test]
async fn an_empty_target_list_runs_nothing() {
    let a = TestOp::new("a").build();
    let solved = solve(
        &Scheduler::new(1),
        vec![vertex("a", &[], &a)],
        &[],
        &NoCache,
    )
    .await;
    assert!(solved.values().is_empty());
    assert_eq!(a.execs(), 0);
}

#[tokio::test]
async fn ops_report_through_their_context() {
    let op = TestOp::new("log")
        .exec(|cx, _| async move {
            cx.log(strata_progress::Stream::Stdout, "hello");
            cx.progress("layer", 3, Some(9));
            assert!(!cx.is_cancelled());
            Ok(cx.vertex().name.clone())
        })
        .build();
    let solved = solve(
        &Scheduler::new(1),
        vec![vertex("step", &[], &op)],
        &[0],
        &NoCache,
    )
    .await;
    assert_eq!(solved.values(), ["step"]);
    let id = id("step").to_string();
    assert!(solved.events.iter().any(|e| matches!(e,
        strata_progress::Event::Log { vertex, text, .. } if vertex.id == id && text == "hello")));
    assert!(solved.events.iter().any(|e| matches!(
        e,
        strata_progress::Event::Progress {
            current: 3,
            total: Some(9),
            ..
        }
    )));
    assert_eq!(solved.kinds("step"), ["started", "completed"]);
}
