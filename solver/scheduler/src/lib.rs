//! A generic concurrent DAG engine: the part of the solver that decides *when* and
//! *whether* work runs, not *what* it is.
//!
//! Callers hand [`Scheduler::solve`] a list of [`Vertex`]es — each an [`Op`] over the
//! results of earlier vertices — and the targets they want. Only what the targets reach
//! runs; a vertex starts as soon as its inputs are done, independent vertices run at once
//! on tokio tasks, and at most `parallelism` [`Op::exec`] calls run together. Vertices
//! with equal ids run once. Every vertex is looked up in a [`CacheMap`] under two tiers
//! of keys ([`keys`]): a definition key (its id and its inputs' keys, known before
//! anything runs) and a content key (its id and a digest the op computes from its
//! inputs, e.g. of the files a COPY reads). After a miss the key is claimed
//! ([`CacheMap::claim`]) and looked up again, so solves sharing a cache, in this process or
//! others, run a vertex once and the later ones reuse its result. The first failure cancels the rest; an
//! external [`CancellationToken`] stops the solve; a panicking op is an error, not a hang.
//! Progress goes out as [`strata_progress::Event`]s.
//!
//! It knows no Dockerfile, no graph crate, no runtime, no store: it depends only on
//! `strata-digest` and `strata-progress`, and must stay that way (the ops and the
//! store live in `solver/ops` and `crates/store`, which depend on this crate).

mod cache;
mod context;
mod error;
pub mod keys;
mod op;
mod plan;
mod scheduler;
mod task;

pub use cache::{CacheMap, CacheRecord, Claim, Claimed, MemoryCache, NoCache};
pub use context::Context;
pub use error::{OpError, SolveError};
pub use op::{BoxFuture, CachePolicy, Op, Vertex};
pub use scheduler::{Scheduler, DEFAULT_CANCEL_GRACE};
pub use tokio_util::sync::CancellationToken;
