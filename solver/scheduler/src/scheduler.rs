//! [`Scheduler::solve`]: runs a graph of [`Op`]s concurrently, once each, through the
//! cache, stopping everything on the first failure or on cancellation.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use futures::stream::{FuturesUnordered, StreamExt};
use strata_digest::Digest;
use strata_progress::{Event, Reporter, Stream, VertexRef};
use tokio::sync::Semaphore;
use tokio_util::sync::CancellationToken;

use crate::plan::Plan;
use crate::{
    keys, task, CacheMap, CachePolicy, CacheRecord, Claimed, Context, OpError, SolveError, Vertex,
};

/// How long a stopping solve waits, by default, for running ops to honour cancellation
/// before it drops (aborts) them.
pub const DEFAULT_CANCEL_GRACE: Duration = Duration::from_secs(5);

/// Runs graphs of [`Op`](crate::Op)s. The parallelism limit counts [`Op::exec`](crate::Op::exec)
/// calls only (cache lookups and [`Op::content_key`](crate::Op::content_key) run
/// unlimited) and is shared by every solve running on the same `Scheduler` or its
/// clones.
#[derive(Debug, Clone)]
pub struct Scheduler {
    parallelism: usize,
    permits: Arc<Semaphore>,
    cancel_grace: Duration,
}

impl Default for Scheduler {
    /// One exec per available CPU.
    fn default() -> Self {
        Scheduler::new(std::thread::available_parallelism().map_or(1, |n| n.get()))
    }
}

impl Scheduler {
    /// At most `parallelism` execs at once (0 counts as 1).
    pub fn new(parallelism: usize) -> Self {
        let parallelism = parallelism.max(1);
        Scheduler {
            parallelism,
            permits: Arc::new(Semaphore::new(parallelism)),
            cancel_grace: DEFAULT_CANCEL_GRACE,
        }
    }

    /// How long a stopping solve waits for running ops to return after cancelling them;
    /// past it they are aborted (their futures dropped) and the solve returns.
    pub fn with_cancel_grace(mut self, grace: Duration) -> Self {
        self.cancel_grace = grace;
        self
    }

    pub fn parallelism(&self) -> usize {
        self.parallelism
    }

    /// Solves `targets` (positions in `vertices`) and returns one result per target.
    ///
    /// Only vertices the targets reach run; vertices with equal ids run once. Each is
    /// looked up in `cache` by definition key, then (after [`Op::content_key`](crate::Op::content_key))
    /// by content key, and run on a miss; results are recorded under both keys. Events:
    /// `Cached` for a hit; `Started` then `Completed` or `Failed` for a run (`Failed`
    /// also when `content_key` fails; its error is `"cancelled"` for an op stopped by
    /// cancellation).
    ///
    /// The first failure cancels the rest — running ops see [`Context::cancelled`],
    /// vertices not yet started never start — and is returned once running ops have
    /// returned (or the cancel grace has passed). `cancel` firing returns
    /// [`SolveError::Cancelled`] the same way.
    pub async fn solve<T>(
        &self,
        vertices: Vec<Vertex<T>>,
        targets: &[usize],
        cache: &dyn CacheMap<T>,
        reporter: Arc<dyn Reporter>,
        cancel: CancellationToken,
    ) -> Result<Vec<T>, SolveError>
    where
        T: Clone + Send + Sync + 'static,
    {
        let plan = Plan::new(&vertices, targets)?;
        if cancel.is_cancelled() {
            return Err(SolveError::Cancelled);
        }
        let stop_token = cancel.child_token();
        let run = Run {
            vertices: &vertices,
            cache,
            reporter: &reporter,
            permits: &self.permits,
            cancel: &stop_token,
            failed: AtomicBool::new(false),
        };
        let run = &run;

        let n = vertices.len();
        let mut results: Vec<Option<(T, Option<Digest>)>> = (0..n).map(|_| None).collect();
        let mut pending = plan.pending.clone();
        let mut ready = plan.roots();
        let mut stopped: Option<SolveError> = None;
        let mut deadline: Option<tokio::time::Instant> = None;
        let mut running = FuturesUnordered::new();

        loop {
            if stopped.is_none() {
                for v in ready.drain(..) {
                    let (inputs, input_keys): (Vec<T>, Vec<Option<Digest>>) = plan.inputs[v]
                        .iter()
                        .map(|&i| results[i].clone().expect("inputs finish first"))
                        .unzip();
                    running.push(async move { (v, run.vertex(v, inputs, input_keys).await) });
                }
            }
            if running.is_empty() {
                break;
            }
            let grace_over = async {
                match deadline {
                    Some(at) => tokio::time::sleep_until(at).await,
                    None => std::future::pending().await,
                }
            };
            tokio::select! {
                biased;
                _ = cancel.cancelled(), if stopped.is_none() => {
                    stopped = Some(SolveError::Cancelled);
                }
                _ = grace_over => break,
                Some((v, outcome)) = running.next() => match outcome {
                    Ok(done) => {
                        if stopped.is_none() {
                            results[v] = Some(done);
                            for &d in &plan.dependents[v] {
                                pending[d] -= 1;
                                if pending[d] == 0 {
                                    ready.push(d);
                                }
                            }
                        }
                    }
                    Err(Stop::Failed(source)) => {
                        if stopped.is_none() {
                            stopped = Some(if cancel.is_cancelled() {
                                SolveError::Cancelled
                            } else {
                                SolveError::Failed {
                                    vertex: vertices[v].name.clone(),
                                    id: vertices[v].id,
                                    source,
                                }
                            });
                        }
                    }
                    Err(Stop::Cancelled) => {}
                },
            }
            if stopped.is_some() && deadline.is_none() {
                stop_token.cancel();
                deadline = Some(tokio::time::Instant::now() + self.cancel_grace);
            }
        }
        // Dropping what still runs aborts its tasks (grace over).
        drop(running);

        if let Some(error) = stopped {
            return Err(error);
        }
        Ok(targets
            .iter()
            .map(|&t| {
                let (value, _) = results[plan.canon[t]].as_ref().expect("targets are solved");
                value.clone()
            })
            .collect())
    }
}

/// Why a vertex produced no result.
enum Stop {
    /// The first failure of the solve.
    Failed(OpError),
    /// The solve stopped before the vertex began, or the vertex failed after it stopped.
    Cancelled,
}

/// What every vertex of one solve shares.
struct Run<'s, T> {
    vertices: &'s [Vertex<T>],
    cache: &'s dyn CacheMap<T>,
    reporter: &'s Arc<dyn Reporter>,
    permits: &'s Arc<Semaphore>,
    /// Fires on the first failure or the caller's cancellation.
    cancel: &'s CancellationToken,
    /// Set by the first failing vertex.
    failed: AtomicBool,
}

impl<T: Clone + Send + Sync + 'static> Run<'_, T> {
    /// Looks `v` up, computes its content key, runs it: its value and effective key.
    async fn vertex(
        &self,
        v: usize,
        inputs: Vec<T>,
        input_keys: Vec<Option<Digest>>,
    ) -> Result<(T, Option<Digest>), Stop> {
        let vertex = &self.vertices[v];
        let vref = VertexRef {
            id: vertex.id.to_string(),
            name: vertex.name.clone(),
        };
        let policy = vertex.op.cache_policy();
        let lookup = !vertex.ignore_cache && policy != CachePolicy::Never;

        // Tier 1: the definition key, when every input has a key.
        let definition_key = match policy {
            CachePolicy::Definition => input_keys
                .iter()
                .copied()
                .collect::<Option<Vec<Digest>>>()
                .map(|keys| keys::definition(&vertex.id, &keys)),
            CachePolicy::ContentOnly | CachePolicy::Never => None,
        };
        if let Some(hit) = definition_key
            .filter(|_| lookup)
            .and_then(|k| self.cache.get(&k))
        {
            self.report(Event::Cached { vertex: vref });
            return Ok((hit.value, Some(hit.key)));
        }
        if self.cancel.is_cancelled() {
            return Err(Stop::Cancelled);
        }

        // Tier 2: the content key.
        let cx = Arc::new(
            Context::new(
                vertex.id,
                vertex.name.clone(),
                Arc::clone(self.reporter),
                self.cancel.clone(),
            )
            .with_input_keys(input_keys),
        );
        let inputs = Arc::new(inputs);
        let content = task::run({
            let (op, cx, inputs) = (Arc::clone(&vertex.op), Arc::clone(&cx), Arc::clone(&inputs));
            async move { op.content_key(&cx, &inputs).await }
        })
        .await;
        let content_key = match content {
            Ok(digest) => digest.map(|d| keys::content(&vertex.id, &d)),
            Err(e) => return Err(self.fail(vref, e)),
        };
        if let Some(hit) = content_key
            .filter(|_| lookup)
            .and_then(|k| self.cache.get(&k))
        {
            // Link the definition key to the record, so the next solve hits without
            // computing the content key again.
            if let Some(k) = definition_key {
                self.cache.put(&k, &hit, &vertex.name);
            }
            self.report(Event::Cached { vertex: vref });
            return Ok((hit.value, Some(hit.key)));
        }
        let key = content_key.or(definition_key);

        let start_wait = Instant::now();
        // Claim the key, so solves sharing the cache (other processes too) run a vertex
        // once: whoever claims after another finished finds its result.
        let claim = match key.filter(|_| lookup && policy != CachePolicy::Never) {
            Some(k) => {
                let claimed = tokio::select! {
                    biased;
                    _ = self.cancel.cancelled() => return Err(Stop::Cancelled),
                    claimed = self.cache.claim(&k) => claimed,
                };
                let (claim, waited) = match claimed {
                    Ok(Claimed::Free(c)) => (c, None),
                    Ok(Claimed::Waited(c)) => (c, Some(start_wait.elapsed())),
                    Err(e) => return Err(self.fail(vref, e)),
                };
                if let Some(waited) = waited {
                    cx.log(
                        Stream::Stderr,
                        format!(
                            "waited {:.1}s for another build running this step",
                            waited.as_secs_f64()
                        ),
                    );
                }
                if let Some(hit) = self.cache.get(&k) {
                    if let Some(d) = definition_key.filter(|d| *d != k) {
                        self.cache.put(&d, &hit, &vertex.name);
                    }
                    self.report(Event::Cached { vertex: vref });
                    return Ok((hit.value, Some(hit.key)));
                }
                Some(claim)
            }
            None => None,
        };

        // Run, within the parallelism limit.
        let permit = tokio::select! {
            biased;
            _ = self.cancel.cancelled() => return Err(Stop::Cancelled),
            permit = Arc::clone(self.permits).acquire_owned() => permit.expect("the semaphore is never closed"),
        };
        if self.cancel.is_cancelled() {
            return Err(Stop::Cancelled);
        }
        self.report(Event::Started {
            vertex: vref.clone(),
        });
        let start = Instant::now();
        let result = task::run({
            let op = Arc::clone(&vertex.op);
            async move { op.exec(&cx, &inputs).await }
        })
        .await;
        let value = match result {
            Ok(value) => value,
            // The failure cancels the solve before the slot is freed, so nothing
            // waiting for the slot starts.
            Err(e) => return Err(self.fail(vref, e)),
        };
        drop(permit);
        self.report(Event::Completed {
            vertex: vref,
            duration: start.elapsed(),
        });
        let out = match key {
            Some(key) if policy != CachePolicy::Never => {
                let record = CacheRecord { value, key };
                for k in [definition_key, content_key].into_iter().flatten() {
                    self.cache.put(&k, &record, &vertex.name);
                }
                Ok((record.value, Some(key)))
            }
            _ => Ok((value, key)),
        };
        // Released once the result is recorded, so a waiter finds it.
        drop(claim);
        out
    }

    /// Reports `vertex`'s failure; the first one of the solve cancels the rest.
    fn fail(&self, vertex: VertexRef, error: OpError) -> Stop {
        let first = !self.cancel.is_cancelled() && !self.failed.swap(true, Ordering::SeqCst);
        if first {
            self.cancel.cancel();
        }
        self.report(Event::Failed {
            vertex,
            error: if first {
                error.to_string()
            } else {
                "cancelled".to_string()
            },
        });
        if first {
            Stop::Failed(error)
        } else {
            Stop::Cancelled
        }
    }

    fn report(&self, event: Event) {
        self.reporter.report(event);
    }
}
