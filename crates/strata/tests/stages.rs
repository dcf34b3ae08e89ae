//! Multi-stage builds through the real binary: independent stages both run and are
//! independent in the graph the scheduler runs (so nothing orders them); a step that is
//! identical in two stages runs once; the final stage sees both results.
//!
//! That independent vertices actually overlap in time is asserted where it can be made
//! deterministic, by the scheduler's own tests with fake ops that block until released
//! (`solver/scheduler`). Through the binary, COPY steps finish in microseconds, so "both
//! started before either completed" would be a timing assertion; it is deliberately not
//! made here.

mod common;

use std::collections::{BTreeMap, BTreeSet};

use common::*;
use serde_json::Value;

const DOCKERFILE: &str = "FROM scratch AS left\n\
COPY left.txt /\n\
FROM scratch AS right\n\
COPY right.txt /\n\
FROM scratch AS again\n\
COPY left.txt /\n\
FROM scratch\n\
COPY --from=left /left.txt /l\n\
COPY --from=right /right.txt /r\n\
COPY --from=again /left.txt /again\n";

const LEFT: &str = "[left 2/2] COPY left.txt /";
const RIGHT: &str = "[right 2/2] COPY right.txt /";

fn ctx() -> tempfile::TempDir {
    context(&[
        ("Dockerfile", DOCKERFILE, 0o644),
        ("left.txt", "L\n", 0o644),
        ("right.txt", "R\n", 0o644),
    ])
}

/// Vertex names by digest, and each vertex's inputs, from `strata debug graph`.
fn graph(s: &Strata, ctx: &std::path::Path) -> (BTreeMap<String, String>, Vec<(String, String)>) {
    let out = s.ok(&["debug", "graph", "--format", "json", ctx.to_str().unwrap()]);
    let vertices: Vec<Value> = serde_json::from_slice(&out.stdout).unwrap();
    let mut names = BTreeMap::new();
    let mut edges = Vec::new();
    for v in &vertices {
        let d = v["digest"].as_str().unwrap().to_string();
        names.insert(d.clone(), v["name"].as_str().unwrap().to_string());
        for i in v["inputs"].as_array().unwrap() {
            let (input, _output) = i.as_str().unwrap().rsplit_once(':').unwrap();
            edges.push((d.clone(), input.to_string()));
        }
    }
    (names, edges)
}

fn ancestors(of: &str, edges: &[(String, String)]) -> BTreeSet<String> {
    let mut seen = BTreeSet::new();
    let mut todo = vec![of.to_string()];
    while let Some(v) = todo.pop() {
        for (user, input) in edges {
            if *user == v && seen.insert(input.clone()) {
                todo.push(input.clone());
            }
        }
    }
    seen
}

#[test]
fn independent_stages_both_run_and_do_not_depend_on_each_other() {
    let s = Strata::new();
    let ctx = ctx();
    let out = tempfile::tempdir().unwrap();
    let dest = format!("type=local,dest={}", out.path().display());
    let b = s.build(ctx.path(), &["-o", &dest]);
    let started = b.names("started");
    let completed = b.names("completed");
    for step in [LEFT, RIGHT] {
        assert!(
            started.iter().any(|n| n == step),
            "{step} did not start\n{}",
            b.stderr
        );
        assert!(
            completed.iter().any(|n| n == step),
            "{step} did not complete"
        );
    }

    let (names, edges) = graph(&s, ctx.path());
    let digest = |name: &str| {
        names
            .iter()
            .find(|(_, n)| n.as_str() == name)
            .unwrap_or_else(|| panic!("{name} not in the graph: {names:?}"))
            .0
            .clone()
    };
    let (left, right) = (digest(LEFT), digest(RIGHT));
    assert!(
        !ancestors(&left, &edges).contains(&right),
        "left waits for right"
    );
    assert!(
        !ancestors(&right, &edges).contains(&left),
        "right waits for left"
    );

    assert_eq!(
        dir_tree(out.path()),
        tree(&[
            ("again", "file:L\n", 0o644, 0, 0),
            ("l", "file:L\n", 0o644, 0, 0),
            ("r", "file:R\n", 0o644, 0, 0),
        ])
    );
}

#[test]
fn a_step_identical_in_two_stages_runs_once() {
    let s = Strata::new();
    let ctx = ctx();
    let b = s.build(ctx.path(), &[] as &[&str]);
    // Stage `again` repeats stage `left`'s COPY: the same vertex, executed once.
    let (names, _) = graph(&s, ctx.path());
    let copies_of_left = names
        .values()
        .filter(|n| n.ends_with("COPY left.txt /"))
        .count();
    assert_eq!(copies_of_left, 1, "{names:?}");
    let mut ids: Vec<&str> = b
        .events
        .iter()
        .filter(|e| e["event"] == "started")
        .map(|e| e["vertex"]["id"].as_str().unwrap())
        .collect();
    let n = ids.len();
    ids.sort();
    ids.dedup();
    assert_eq!(ids.len(), n, "a vertex started twice:\n{}", b.stderr);
    assert_eq!(
        b.names("started")
            .iter()
            .filter(|n| n.ends_with("COPY left.txt /"))
            .count(),
        1
    );
}
