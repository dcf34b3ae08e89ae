//! Fake ops that count what the scheduler asks of them (BuildKit's scheduler_test.go
//! style), and a solve helper with a hang guard.
#![allow(dead_code)]

use std::future::Future;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use strata_digest::{sha256, Digest};
use strata_progress::{Collector, Event};
use strata_scheduler::{
    BoxFuture, CacheMap, CachePolicy, CancellationToken, Context, Op, OpError, Scheduler,
    SolveError, Vertex,
};

pub type ExecFn =
    Arc<dyn Fn(Context, Vec<String>) -> BoxFuture<'static, Result<String, OpError>> + Send + Sync>;
pub type ContentFn =
    Arc<dyn Fn(Context, Vec<String>) -> BoxFuture<'static, Option<Digest>> + Send + Sync>;

/// An op whose result is `label(input,input…)` unless given an exec closure.
pub struct TestOp {
    label: String,
    policy: CachePolicy,
    exec: Option<ExecFn>,
    content: Option<ContentFn>,
    execs: AtomicUsize,
    content_calls: AtomicUsize,
}

impl TestOp {
    pub fn new(label: &str) -> Self {
        TestOp {
            label: label.to_string(),
            policy: CachePolicy::Definition,
            exec: None,
            content: None,
            execs: AtomicUsize::new(0),
            content_calls: AtomicUsize::new(0),
        }
    }

    pub fn policy(mut self, policy: CachePolicy) -> Self {
        self.policy = policy;
        self
    }

    pub fn exec<F, Fut>(mut self, f: F) -> Self
    where
        F: Fn(Context, Vec<String>) -> Fut + Send + Sync + 'static,
        Fut: Future<Output = Result<String, OpError>> + Send + 'static,
    {
        self.exec = Some(Arc::new(move |cx, inputs| Box::pin(f(cx, inputs))));
        self
    }

    pub fn content(
        self,
        f: impl Fn(&Context, &[String]) -> Option<Digest> + Send + Sync + 'static,
    ) -> Self {
        self.content_async(move |cx, inputs| std::future::ready(f(&cx, &inputs)))
    }

    pub fn content_async<F, Fut>(mut self, f: F) -> Self
    where
        F: Fn(Context, Vec<String>) -> Fut + Send + Sync + 'static,
        Fut: Future<Output = Option<Digest>> + Send + 'static,
    {
        self.content = Some(Arc::new(move |cx, inputs| Box::pin(f(cx, inputs))));
        self
    }

    pub fn build(self) -> Arc<Self> {
        Arc::new(self)
    }

    pub fn execs(&self) -> usize {
        self.execs.load(Ordering::SeqCst)
    }

    pub fn content_calls(&self) -> usize {
        self.content_calls.load(Ordering::SeqCst)
    }
}

impl Op<String> for TestOp {
    fn cache_policy(&self) -> CachePolicy {
        self.policy
    }

    fn content_key<'a>(
        &'a self,
        cx: &'a Context,
        inputs: &'a [String],
    ) -> BoxFuture<'a, Result<Option<Digest>, OpError>> {
        self.content_calls.fetch_add(1, Ordering::SeqCst);
        let key = self
            .content
            .as_ref()
            .map(|f| f(cx.clone(), inputs.to_vec()));
        Box::pin(async move {
            match key {
                Some(key) => Ok(key.await),
                None => Ok(None),
            }
        })
    }

    fn exec<'a>(
        &'a self,
        cx: &'a Context,
        inputs: &'a [String],
    ) -> BoxFuture<'a, Result<String, OpError>> {
        self.execs.fetch_add(1, Ordering::SeqCst);
        match &self.exec {
            Some(f) => f(cx.clone(), inputs.to_vec()),
            None => {
                let out = format!("{}({})", self.label, inputs.join(","));
                Box::pin(async move { Ok(out) })
            }
        }
    }
}

/// The vertex id a test name stands for.
pub fn id(name: &str) -> Digest {
    sha256(name.as_bytes())
}

/// A vertex named `name` whose id is `id(name)`.
pub fn vertex(name: &str, inputs: &[usize], op: &Arc<TestOp>) -> Vertex<String> {
    vertex_with_id(name, name, inputs, op)
}

/// A vertex named `name` whose id is `id(id_seed)`: a changed definition under the same name.
pub fn vertex_with_id(
    name: &str,
    id_seed: &str,
    inputs: &[usize],
    op: &Arc<TestOp>,
) -> Vertex<String> {
    Vertex {
        id: id(id_seed),
        name: name.to_string(),
        inputs: inputs.to_vec(),
        op: op.clone(),
        ignore_cache: false,
    }
}

pub struct Solved {
    pub result: Result<Vec<String>, SolveError>,
    pub events: Vec<Event>,
}

impl Solved {
    pub fn values(&self) -> Vec<String> {
        match &self.result {
            Ok(v) => v.clone(),
            Err(e) => panic!("solve failed: {e:?}"),
        }
    }

    /// The event kinds reported for the vertex named `name`, in order.
    pub fn kinds(&self, name: &str) -> Vec<&'static str> {
        self.events
            .iter()
            .filter_map(|e| match e {
                Event::Started { vertex } if vertex.name == name => Some("started"),
                Event::Cached { vertex } if vertex.name == name => Some("cached"),
                Event::Completed { vertex, .. } if vertex.name == name => Some("completed"),
                Event::Failed { vertex, .. } if vertex.name == name => Some("failed"),
                _ => None,
            })
            .collect()
    }

    /// The error text of the `Failed` event for `name`.
    pub fn failure(&self, name: &str) -> Option<String> {
        self.events.iter().find_map(|e| match e {
            Event::Failed { vertex, error } if vertex.name == name => Some(error.clone()),
            _ => None,
        })
    }
}

/// Fails the test instead of hanging when the scheduler deadlocks.
pub async fn guard<F: Future>(f: F) -> F::Output {
    tokio::time::timeout(Duration::from_secs(20), f)
        .await
        .expect("hung: the scheduler never finished")
}

pub async fn solve_with(
    scheduler: &Scheduler,
    vertices: Vec<Vertex<String>>,
    targets: &[usize],
    cache: &dyn CacheMap<String>,
    cancel: CancellationToken,
) -> Solved {
    let collector = Arc::new(Collector::default());
    let result = guard(scheduler.solve(vertices, targets, cache, collector.clone(), cancel)).await;
    Solved {
        result,
        events: collector.events(),
    }
}

pub async fn solve(
    scheduler: &Scheduler,
    vertices: Vec<Vertex<String>>,
    targets: &[usize],
    cache: &dyn CacheMap<String>,
) -> Solved {
    solve_with(
        scheduler,
        vertices,
        targets,
        cache,
        CancellationToken::new(),
    )
    .await
}
