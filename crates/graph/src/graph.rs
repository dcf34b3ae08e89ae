use std::collections::HashMap;
use std::fmt;

use petgraph::graph::{DiGraph, NodeIndex};
use serde::{Deserialize, Serialize};
use strata_digest::{key, Digest};

use crate::Op;

/// A vertex's identity: the digest of its op and its inputs.
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(transparent)]
pub struct VertexId(pub Digest);

impl fmt::Display for VertexId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.0.fmt(f)
    }
}
impl fmt::Debug for VertexId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Debug::fmt(&self.0, f)
    }
}

/// One output of a vertex (exec ops may produce several: the root and writable mounts).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub struct Input {
    pub vertex: VertexId,
    pub output: u32,
}

impl Input {
    pub fn root(vertex: VertexId) -> Self {
        Input { vertex, output: 0 }
    }
}

impl fmt::Display for Input {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}:{}", self.vertex, self.output)
    }
}

/// What the user sees and what steers caching; not part of the digest.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct VertexMeta {
    /// BuildKit-style progress name: `[build 2/4] RUN make`.
    pub name: String,
    /// Stage the vertex was lowered for (first one when shared).
    pub stage: Option<String>,
    /// Never use a cached result (`--no-cache`, `--no-cache-filter`).
    pub ignore_cache: bool,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Vertex {
    pub id: VertexId,
    pub op: Op,
    pub inputs: Vec<Input>,
    pub meta: VertexMeta,
}

#[derive(Serialize)]
struct Keyed<'a> {
    op: &'a Op,
    inputs: &'a [Input],
}

impl Vertex {
    /// The id of `op` over `inputs`.
    pub fn digest(op: &Op, inputs: &[Input]) -> VertexId {
        VertexId(key::encode("strata/vertex", &Keyed { op, inputs }))
    }
}

/// A DAG of vertices; identical vertices (same id) are stored once.
#[derive(Debug, Clone, Default)]
pub struct Graph {
    dag: DiGraph<Vertex, u32>,
    index: HashMap<VertexId, NodeIndex>,
}

impl Graph {
    pub fn new() -> Self {
        Self::default()
    }

    /// Adds a vertex whose inputs are already in the graph, or returns the existing one
    /// with the same id (its metadata keeps the first name; `ignore_cache` is or-ed).
    ///
    /// # Panics
    /// If an input is not in the graph: the builder must add inputs first, which also
    /// makes cycles impossible.
    pub fn add(&mut self, op: Op, inputs: Vec<Input>, meta: VertexMeta) -> VertexId {
        let id = Vertex::digest(&op, &inputs);
        if let Some(&ix) = self.index.get(&id) {
            self.dag[ix].meta.ignore_cache |= meta.ignore_cache;
            return id;
        }
        let edges: Vec<NodeIndex> = inputs
            .iter()
            .map(|i| {
                *self
                    .index
                    .get(&i.vertex)
                    .expect("inputs are added before their users")
            })
            .collect();
        let ix = self.dag.add_node(Vertex {
            id,
            op,
            inputs,
            meta,
        });
        for (pos, from) in edges.into_iter().enumerate() {
            self.dag.add_edge(from, ix, pos as u32);
        }
        self.index.insert(id, ix);
        id
    }

    pub fn get(&self, id: &VertexId) -> Option<&Vertex> {
        self.index.get(id).map(|&ix| &self.dag[ix])
    }

    pub fn len(&self) -> usize {
        self.dag.node_count()
    }

    pub fn is_empty(&self) -> bool {
        self.dag.node_count() == 0
    }

    /// Vertices with every input before its users (insertion order, which the builder
    /// guarantees is topological).
    pub fn vertices(&self) -> impl Iterator<Item = &Vertex> {
        self.dag.node_weights()
    }

    /// The vertices `root` needs (itself included), inputs first.
    pub fn closure(&self, root: VertexId) -> Vec<&Vertex> {
        let Some(&start) = self.index.get(&root) else {
            return Vec::new();
        };
        let mut seen = vec![false; self.dag.node_count()];
        let mut stack = vec![start];
        while let Some(ix) = stack.pop() {
            if std::mem::replace(&mut seen[ix.index()], true) {
                continue;
            }
            stack.extend(
                self.dag
                    .neighbors_directed(ix, petgraph::Direction::Incoming),
            );
        }
        self.dag
            .node_indices()
            .filter(|ix| seen[ix.index()])
            .map(|ix| &self.dag[ix])
            .collect()
    }

    /// Direct users of a vertex.
    pub fn dependents(&self, id: &VertexId) -> Vec<VertexId> {
        let Some(&ix) = self.index.get(id) else {
            return Vec::new();
        };
        let mut out: Vec<VertexId> = self
            .dag
            .neighbors_directed(ix, petgraph::Direction::Outgoing)
            .map(|n| self.dag[n].id)
            .collect();
        out.sort();
        out.dedup();
        out
    }

    pub(crate) fn dag(&self) -> &DiGraph<Vertex, u32> {
        &self.dag
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{FileAction, FileOp, Source};

    fn mkdir(path: &str) -> Op {
        Op::File(FileOp {
            base: Some(0),
            actions: vec![FileAction::Mkdir {
                path: path.into(),
                mode: 0o755,
                make_parents: true,
                owner: None,
            }],
        })
    }

    fn meta(name: &str) -> VertexMeta {
        VertexMeta {
            name: name.into(),
            ..Default::default()
        }
    }

    #[test]
    fn identical_vertices_are_stored_once() {
        let mut g = Graph::new();
        let s = g.add(Op::Source(Source::Scratch), vec![], meta("scratch"));
        let a = g.add(
            mkdir("/a"),
            vec![Input::root(s)],
            meta("[a 1/1] WORKDIR /a"),
        );
        let b = g.add(
            mkdir("/a"),
            vec![Input::root(s)],
            VertexMeta {
                ignore_cache: true,
                ..meta("[b 1/1] WORKDIR /a")
            },
        );
        assert_eq!(a, b);
        assert_eq!(g.len(), 2);
        let v = g.get(&a).unwrap();
        assert_eq!(v.meta.name, "[a 1/1] WORKDIR /a");
        assert!(v.meta.ignore_cache);
        let c = g.add(mkdir("/c"), vec![Input::root(s)], meta("c"));
        assert_ne!(a, c);
        assert_eq!(g.dependents(&s), {
            let mut v = vec![a, c];
            v.sort();
            v
        });
    }

    #[test]
    fn digest_depends_on_inputs_and_op_not_name() {
        let mut g = Graph::new();
        let s = g.add(Op::Source(Source::Scratch), vec![], meta("x"));
        let s2 = g.add(
            Op::Source(Source::Local {
                name: "context".into(),
                include: vec![],
                exclude: vec![],
            }),
            vec![],
            meta("y"),
        );
        let on_s = Vertex::digest(&mkdir("/a"), &[Input::root(s)]);
        let on_s2 = Vertex::digest(&mkdir("/a"), &[Input::root(s2)]);
        assert_ne!(on_s, on_s2);
        assert_ne!(
            on_s,
            Vertex::digest(
                &mkdir("/a"),
                &[Input {
                    vertex: s,
                    output: 1
                }]
            )
        );
    }

    /// Pins the digest of a small vertex: if this changes, cache keys change; bump
    /// `strata_digest::key::KEY_VERSION` deliberately.
    #[test]
    fn golden_vertex_digest() {
        let id = Vertex::digest(&Op::Source(Source::Scratch), &[]);
        assert_eq!(
            id.to_string(),
            "sha256:4a033a25e3f4f63237e41a8370f58e627275fbeab5151f7d273afe8ee0c1d381"
        );
    }

    #[test]
    fn closure_is_inputs_first_and_excludes_unrelated() {
        let mut g = Graph::new();
        let s = g.add(Op::Source(Source::Scratch), vec![], meta("s"));
        let a = g.add(mkdir("/a"), vec![Input::root(s)], meta("a"));
        let _b = g.add(mkdir("/b"), vec![Input::root(s)], meta("b"));
        let ids: Vec<VertexId> = g.closure(a).iter().map(|v| v.id).collect();
        assert_eq!(ids, vec![s, a]);
    }
}
