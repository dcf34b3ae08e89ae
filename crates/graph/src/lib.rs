//! The build graph: the contract between the frontend and the solver.
//!
//! A [`Graph`] is a DAG of [`Vertex`]es, each an [`Op`] — a source (image, scratch,
//! local context, http, git), an exec, a chain of file actions, or a merge — over the
//! outputs of other vertices. Every vertex is named by a [`VertexId`]: the digest of the
//! versioned key encoding of its op and its inputs' ids (`strata_digest::key`), so
//! identical work reached from two stages is one vertex. Names (`[build 2/4] RUN make`)
//! and cache flags are metadata outside the digest.
//!
//! The graph dumps as text, JSON or Graphviz DOT (`strata debug graph`). It knows no
//! Dockerfile and runs nothing; it must not depend on the frontend, solver or exporter.

mod dump;
mod graph;
mod op;

pub use dump::DumpFormat;
pub use graph::{Graph, Input, Vertex, VertexId, VertexMeta};
pub use op::*;
