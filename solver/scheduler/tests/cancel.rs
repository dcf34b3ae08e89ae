//! Stopping: the first failure cancels the rest, the caller's token cancels everything,
//! panics are errors, and ops that ignore cancellation are aborted after the grace.

mod common;

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use common::*;
use strata_scheduler::{CancellationToken, NoCache, OpError, Scheduler, SolveError};
use tokio::sync::{oneshot, Notify};

/// An op that says when it started, then waits for cancellation and records seeing it.
fn waits_for_cancel(started: &Arc<Notify>, saw_cancel: &Arc<AtomicBool>) -> Arc<TestOp> {
    let (started, saw_cancel) = (started.clone(), saw_cancel.clone());
    TestOp::new("slow")
        .exec(move |cx, _| {
            let (started, saw_cancel) = (started.clone(), saw_cancel.clone());
            async move {
                started.notify_one();
                cx.cancelled().await;
                saw_cancel.store(true, Ordering::SeqCst);
                Err(OpError::cancelled())
            }
        })
        .build()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_first_failure_cancels_the_rest() {
    let slow_started = Arc::new(Notify::new());
    let saw_cancel = Arc::new(AtomicBool::new(false));
    let slow = waits_for_cancel(&slow_started, &saw_cancel);
    let bad = {
        let slow_started = slow_started.clone();
        TestOp::new("bad")
            .exec(move |_, _| {
                let slow_started = slow_started.clone();
                async move {
                    slow_started.notified().await;
                    Err(OpError::new("exit code: 1"))
                }
            })
            .build()
    };
    let after_bad = TestOp::new("after-bad").build();
    let after_slow = TestOp::new("after-slow").build();
    let join = TestOp::new("join").build();
    let vertices = vec![
        vertex("slow", &[], &slow),
        vertex("bad", &[], &bad),
        vertex("after-bad", &[1], &after_bad),
        vertex("after-slow", &[0], &after_slow),
        vertex("join", &[2, 3], &join),
    ];
    let solved = solve(&Scheduler::new(4), vertices, &[4], &NoCache).await;

    let Err(SolveError::Failed {
        vertex,
        id: failed_id,
        source,
    }) = &solved.result
    else {
        panic!("expected a failure, got {:?}", solved.result);
    };
    assert_eq!(vertex, "bad");
    assert_eq!(*failed_id, id("bad"));
    assert_eq!(source.to_string(), "exit code: 1");
    assert_eq!(
        solved.result.as_ref().unwrap_err().to_string(),
        "failed to solve bad"
    );
    assert!(
        saw_cancel.load(Ordering::SeqCst),
        "the running op saw the cancellation"
    );
    assert_eq!(
        (after_bad.execs(), after_slow.execs(), join.execs()),
        (0, 0, 0)
    );
    assert_eq!(solved.failure("bad").as_deref(), Some("exit code: 1"));
    assert_eq!(solved.failure("slow").as_deref(), Some("cancelled"));
    assert!(solved.kinds("after-slow").is_empty());
    assert!(solved.kinds("join").is_empty());
}

/// With one slot, `queued` waits for the slot `bad` holds; `bad` fails only once
/// `queued` is past its content key. The failure must cancel the solve before it frees
/// the slot, so `queued` never starts.
#[tokio::test]
async fn a_vertex_waiting_for_a_slot_never_starts_after_a_failure() {
    let bad_started = Arc::new(Notify::new());
    let queued_ready = Arc::new(Notify::new());
    let bad = {
        let (bad_started, queued_ready) = (bad_started.clone(), queued_ready.clone());
        TestOp::new("bad")
            .exec(move |_, _| {
                let (bad_started, queued_ready) = (bad_started.clone(), queued_ready.clone());
                async move {
                    bad_started.notify_one();
                    queued_ready.notified().await;
                    for _ in 0..20 {
                        tokio::task::yield_now().await;
                    }
                    Err(OpError::new("exit code: 2"))
                }
            })
            .build()
    };
    let queued = {
        let (bad_started, queued_ready) = (bad_started.clone(), queued_ready.clone());
        TestOp::new("queued")
            .content_async(move |_, _| {
                let (bad_started, queued_ready) = (bad_started.clone(), queued_ready.clone());
                async move {
                    bad_started.notified().await;
                    queued_ready.notify_one();
                    None
                }
            })
            .build()
    };
    let join = TestOp::new("join").build();
    let vertices = vec![
        vertex("bad", &[], &bad),
        vertex("queued", &[], &queued),
        vertex("join", &[0, 1], &join),
    ];
    let solved = solve(&Scheduler::new(1), vertices, &[2], &NoCache).await;
    assert!(
        matches!(&solved.result, Err(SolveError::Failed { vertex, .. }) if vertex == "bad"),
        "{:?}",
        solved.result
    );
    assert_eq!(queued.content_calls(), 1);
    assert_eq!(queued.execs(), 0);
    assert!(solved.kinds("queued").is_empty());
}

#[tokio::test]
async fn external_cancellation_returns_cancelled() {
    let started = Arc::new(Notify::new());
    let saw_cancel = Arc::new(AtomicBool::new(false));
    let slow = waits_for_cancel(&started, &saw_cancel);
    let after = TestOp::new("after").build();
    let vertices = vec![vertex("slow", &[], &slow), vertex("after", &[0], &after)];
    let cancel = CancellationToken::new();
    let scheduler = Scheduler::new(2);
    let (solved, ()) = tokio::join!(
        solve_with(&scheduler, vertices, &[1], &NoCache, cancel.clone()),
        async {
            started.notified().await;
            cancel.cancel();
        }
    );
    assert!(
        matches!(solved.result, Err(SolveError::Cancelled)),
        "{:?}",
        solved.result
    );
    assert!(saw_cancel.load(Ordering::SeqCst));
    assert_eq!(after.execs(), 0);
}

#[tokio::test]
async fn a_cancelled_token_runs_nothing() {
    let a = TestOp::new("a").build();
    let cancel = CancellationToken::new();
    cancel.cancel();
    let solved = solve_with(
        &Scheduler::new(1),
        vec![vertex("a", &[], &a)],
        &[0],
        &NoCache,
        cancel,
    )
    .await;
    assert!(matches!(solved.result, Err(SolveError::Cancelled)));
    assert_eq!(a.execs(), 0);
    assert!(solved.events.is_empty());
}

/// Drops send on the channel: proof the op's future went away.
struct DropSignal(Option<oneshot::Sender<()>>);

impl Drop for DropSignal {
    fn drop(&mut self) {
        if let Some(tx) = self.0.take() {
            let _ = tx.send(());
        }
    }
}

#[tokio::test]
async fn ops_that_ignore_cancellation_are_aborted_after_the_grace() {
    let started = Arc::new(Notify::new());
    let (dropped_tx, dropped_rx) = oneshot::channel();
    let dropped_tx = Arc::new(std::sync::Mutex::new(Some(dropped_tx)));
    let stubborn = {
        let started = started.clone();
        TestOp::new("stubborn")
            .exec(move |_, _| {
                let signal = DropSignal(dropped_tx.lock().unwrap().take());
                let started = started.clone();
                async move {
                    let _signal = signal;
                    started.notify_one();
                    std::future::pending::<()>().await;
                    Ok(String::new())
                }
            })
            .build()
    };
    let scheduler = Scheduler::new(1).with_cancel_grace(Duration::ZERO);
    let cancel = CancellationToken::new();
    let (solved, ()) = tokio::join!(
        solve_with(
            &scheduler,
            vec![vertex("stubborn", &[], &stubborn)],
            &[0],
            &NoCache,
            cancel.clone()
        ),
        async {
            started.notified().await;
            cancel.cancel();
        }
    );
    assert!(matches!(solved.result, Err(SolveError::Cancelled)));
    guard(dropped_rx)
        .await
        .expect("the op's future was dropped");

    // Its parallelism slot came back: the next solve on the same scheduler runs.
    let a = TestOp::new("a").build();
    let solved = solve(&scheduler, vec![vertex("a", &[], &a)], &[0], &NoCache).await;
    assert_eq!(solved.values(), ["a()"]);
}

#[tokio::test]
async fn a_panicking_op_is_an_error() {
    let boom = TestOp::new("boom")
        .exec(|_, _| async { panic!("kaboom") })
        .build();
    let after = TestOp::new("after").build();
    let vertices = vec![vertex("boom", &[], &boom), vertex("after", &[0], &after)];
    let solved = solve(&Scheduler::new(1), vertices, &[1], &NoCache).await;
    let Err(SolveError::Failed { vertex, source, .. }) = &solved.result else {
        panic!("expected a failure, got {:?}", solved.result);
    };
    assert_eq!(vertex, "boom");
    assert_eq!(source.to_string(), "op panicked: kaboom");
    assert_eq!(after.execs(), 0);
    assert_eq!(solved.kinds("boom"), ["started", "failed"]);
}

#[tokio::test]
async fn a_panicking_content_key_is_an_error() {
    let panics = TestOp::new("hash")
        .content(|_, _| panic!("bad hash"))
        .build();
    let solved = solve(
        &Scheduler::new(1),
        vec![vertex("hash", &[], &panics)],
        &[0],
        &NoCache,
    )
    .await;
    let Err(SolveError::Failed { vertex, source, .. }) = &solved.result else {
        panic!("expected a failure, got {:?}", solved.result);
    };
    assert_eq!(vertex, "hash");
    assert_eq!(source.to_string(), "op panicked: bad hash");
    assert_eq!(panics.execs(), 0);
    assert_eq!(solved.kinds("hash"), ["failed"]);
}
