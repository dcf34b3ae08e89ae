//! The seam between the scheduler and the work it runs: [`Op`], [`Vertex`] and
//! [`CachePolicy`].

use std::sync::Arc;

use strata_digest::Digest;

use crate::{Context, OpError};

/// A boxed, `Send` future: what [`Op`] methods return.
pub type BoxFuture<'a, T> = futures::future::BoxFuture<'a, T>;

/// How the scheduler caches a vertex.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum CachePolicy {
    /// Look up the definition key (the vertex id and its inputs' keys), then the content
    /// key if the op computes one; record under both.
    #[default]
    Definition,
    /// The definition does not determine the result: skip the definition lookup, always
    /// compute the content key, look it up and record under it. An op that returns no
    /// content key then behaves like [`CachePolicy::Never`].
    ContentOnly,
    /// Always run, never look up, never record (e.g. the local build context). Unless
    /// the op returns a content key, dependents see the vertex as *volatile*: they skip
    /// their own definition lookup and rely on their content keys.
    Never,
}

/// One unit of work. `T` is the solver's result type (a snapshot reference, …);
/// inputs arrive in the order of [`Vertex::inputs`].
pub trait Op<T>: Send + Sync {
    fn cache_policy(&self) -> CachePolicy {
        CachePolicy::Definition
    }

    /// Called once the inputs are ready and the definition lookup missed or was
    /// skipped: an optional digest of what the op will actually read (e.g. the files a
    /// COPY takes), which replaces the input keys in the second-tier key
    /// `keys::content(id, digest)`.
    ///
    /// The digest must cover every input the result depends on: hash what you read
    /// from an input, and fold in its key from [`Context::input_keys`] for any input
    /// you do not hash (a key of `None` means that input is volatile and must be hashed).
    /// Runs outside the [`Scheduler`](crate::Scheduler)'s parallelism limit.
    fn content_key<'a>(
        &'a self,
        cx: &'a Context,
        inputs: &'a [T],
    ) -> BoxFuture<'a, Result<Option<Digest>, OpError>> {
        let _ = (cx, inputs);
        Box::pin(futures::future::ready(Ok(None)))
    }

    /// Does the work. Should return promptly with an error (e.g.
    /// [`OpError::cancelled`]) once [`Context::cancelled`] fires.
    fn exec<'a>(&'a self, cx: &'a Context, inputs: &'a [T]) -> BoxFuture<'a, Result<T, OpError>>;
}

/// A node of the graph handed to [`Scheduler::solve`](crate::Scheduler::solve).
pub struct Vertex<T> {
    /// The vertex definition digest. Vertices with equal ids are the same work and run
    /// once; the first one in the list is the one that runs.
    pub id: Digest,
    /// What the user sees in progress and errors (`[build 2/4] RUN make`).
    pub name: String,
    /// Indexes of earlier vertices in the same list.
    pub inputs: Vec<usize>,
    pub op: Arc<dyn Op<T>>,
    /// Skip cache lookups (but still record the result).
    pub ignore_cache: bool,
}

impl<T> Clone for Vertex<T> {
    fn clone(&self) -> Self {
        Vertex {
            id: self.id,
            name: self.name.clone(),
            inputs: self.inputs.clone(),
            op: Arc::clone(&self.op),
            ignore_cache: self.ignore_cache,
        }
    }
}

impl<T> std::fmt::Debug for Vertex<T> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Vertex")
            .field("id", &self.id)
            .field("name", &self.name)
            .field("inputs", &self.inputs)
            .field("ignore_cache", &self.ignore_cache)
            .finish_non_exhaustive()
    }
}
