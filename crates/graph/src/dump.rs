//! Text, JSON and DOT views of a graph, for `strata debug graph` and snapshot tests.

use std::fmt::Write as _;

use serde_json::json;

use crate::{Graph, VertexId};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DumpFormat {
    Text,
    Json,
    Dot,
}

impl Graph {
    /// Dumps the vertices `root` needs (or all when `None`), inputs first.
    pub fn dump(&self, root: Option<VertexId>, format: DumpFormat) -> String {
        let vertices = match root {
            Some(r) => self.closure(r),
            None => self.vertices().collect(),
        };
        match format {
            DumpFormat::Text => {
                let mut out = String::new();
                for v in vertices {
                    let _ = writeln!(out, "{} {}", &v.id.0.hex()[..12], v.meta.name);
                    let _ = writeln!(out, "    {}", v.op.summary());
                    for i in &v.inputs {
                        let _ = writeln!(out, "    <- {}:{}", &i.vertex.0.hex()[..12], i.output);
                    }
                }
                out
            }
            DumpFormat::Json => {
                let items: Vec<_> = vertices
                    .iter()
                    .map(|v| {
                        json!({
                            "digest": v.id,
                            "name": v.meta.name,
                            "op": v.op,
                            "inputs": v.inputs.iter().map(|i| i.to_string()).collect::<Vec<_>>(),
                            "stage": v.meta.stage,
                            "ignore_cache": v.meta.ignore_cache,
                        })
                    })
                    .collect();
                serde_json::to_string_pretty(&items).expect("graph serializes") + "\n"
            }
            DumpFormat::Dot => {
                let keep: std::collections::HashSet<VertexId> =
                    vertices.iter().map(|v| v.id).collect();
                let mut out = String::from(
                    "digraph strata {\n  rankdir=BT;\n  node [shape=box, fontname=monospace];\n",
                );
                for v in &vertices {
                    let _ = writeln!(
                        out,
                        "  \"{}\" [label=\"{}\"];",
                        v.id.0.short(),
                        escape_dot(&v.meta.name)
                    );
                }
                let dag = self.dag();
                for e in dag.raw_edges() {
                    let (from, to) = (&dag[e.source()], &dag[e.target()]);
                    if keep.contains(&from.id) && keep.contains(&to.id) {
                        let _ = writeln!(
                            out,
                            "  \"{}\" -> \"{}\";",
                            from.id.0.short(),
                            to.id.0.short()
                        );
                    }
                }
                out.push_str("}\n");
                out
            }
        }
    }
}

fn escape_dot(s: &str) -> String {
    s.replace('\\', "\\\\")
        .replace('"', "\\\"")
        .replace('\n', "\\n")
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{Input, Op, Source, VertexMeta};

    #[test]
    fn json_has_one_object_per_vertex_with_required_fields() {
        let mut g = Graph::new();
        let s = g.add(
            Op::Source(Source::Scratch),
            vec![],
            VertexMeta {
                name: "scratch \"x\"".into(),
                ..Default::default()
            },
        );
        let l = g.add(
            Op::Source(Source::Local {
                name: "context".into(),
                include: vec!["a".into()],
                exclude: vec![],
            }),
            vec![],
            VertexMeta::default(),
        );
        let m = g.add(
            Op::Merge(crate::Merge {}),
            vec![Input::root(s), Input::root(l)],
            VertexMeta::default(),
        );
        let v: serde_json::Value =
            serde_json::from_str(&g.dump(Some(m), DumpFormat::Json)).unwrap();
        let arr = v.as_array().unwrap();
        assert_eq!(arr.len(), 3);
        assert_eq!(arr[2]["digest"], m.to_string());
        assert_eq!(arr[2]["op"]["type"], "merge");
        assert_eq!(arr[2]["inputs"][1], format!("{l}:0"));
        assert_eq!(arr[1]["op"]["kind"], "local");
        let dot = g.dump(None, DumpFormat::Dot);
        assert!(dot.contains("scratch \\\"x\\\""), "{dot}");
        assert_eq!(dot.matches("->").count(), 2);
        let text = g.dump(Some(s), DumpFormat::Text);
        assert_eq!(text.lines().count(), 2);
    }
}
