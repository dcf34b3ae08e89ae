//! The house rules of design §1, checked against `cargo metadata`: dependencies point
//! one way (frontend → graph ← solver, exporter; only the binary sees all three), the
//! frontend does no I/O, and the top level stays as the user asked.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::Command;

use serde_json::Value;

struct Package {
    dir: String,
    deps: Vec<String>,
}

fn workspace() -> (PathBuf, BTreeMap<String, Package>) {
    let out = Command::new(env!("CARGO"))
        .args([
            "metadata",
            "--format-version",
            "1",
            "--no-deps",
            "--offline",
        ])
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .output()
        .expect("cargo metadata runs");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let meta: Value = serde_json::from_slice(&out.stdout).unwrap();
    let root = PathBuf::from(meta["workspace_root"].as_str().unwrap());
    let mut pkgs = BTreeMap::new();
    for p in meta["packages"].as_array().unwrap() {
        let manifest = Path::new(p["manifest_path"].as_str().unwrap());
        let dir = manifest
            .parent()
            .unwrap()
            .strip_prefix(&root)
            .unwrap()
            .to_string_lossy()
            .to_string();
        let deps = p["dependencies"]
            .as_array()
            .unwrap()
            .iter()
            .filter(|d| d["kind"].is_null()) // normal deps; dev/build deps may reach further
            .map(|d| d["name"].as_str().unwrap().to_string())
            .collect();
        pkgs.insert(
            p["name"].as_str().unwrap().to_string(),
            Package { dir, deps },
        );
    }
    (root, pkgs)
}

/// Which top-level folder a workspace package lives in.
fn layer(dir: &str) -> &str {
    dir.split('/').next().unwrap()
}

/// Crates that do I/O or run things; the frontend must never depend on them.
const IO_CRATES: &[&str] = &[
    "tokio",
    "reqwest",
    "rusqlite",
    "nix",
    "rustix",
    "tar",
    "flate2",
    "zstd",
    "fs-err",
    "hyper",
    "indicatif",
    "rayon",
];

/// Violations of the dependency rules (pure, so the rules themselves can be tested).
fn violations(pkgs: &BTreeMap<String, Package>) -> Vec<String> {
    let mut bad = Vec::new();
    for (name, p) in pkgs {
        let from = layer(&p.dir);
        for dep in &p.deps {
            if let Some(d) = pkgs.get(dep) {
                let to = layer(&d.dir);
                let forbidden = match from {
                    "frontend" => matches!(to, "solver" | "exporter"),
                    "solver" => matches!(to, "frontend" | "exporter"),
                    "exporter" => matches!(to, "frontend" | "solver"),
                    // Library crates under crates/ are shared foundations: they may not
                    // reach into any pipeline stage. Only the binary and dev tooling may.
                    "crates" => !matches!(name.as_str(), "strata" | "xtask") && to != "crates",
                    _ => false,
                };
                if forbidden {
                    bad.push(format!("{name} ({}) depends on {dep} ({})", p.dir, d.dir));
                }
            } else if from == "frontend" && IO_CRATES.contains(&dep.as_str()) {
                bad.push(format!("{name} ({}) depends on the I/O crate {dep}", p.dir));
            }
        }
    }
    for leaf in [
        "strata-parser",
        "strata-shell",
        "strata-patternmatcher",
        "strata-digest",
    ] {
        if let Some(p) = pkgs.get(leaf) {
            for dep in p.deps.iter().filter(|d| pkgs.contains_key(*d)) {
                bad.push(format!(
                    "{leaf} must not depend on another workspace crate, but uses {dep}"
                ));
            }
        }
    }
    bad
}

#[test]
fn dependencies_point_one_way() {
    let (_, pkgs) = workspace();
    assert!(pkgs.contains_key("strata-dockerfile") && pkgs.contains_key("strata-graph"));
    let bad = violations(&pkgs);
    assert!(
        bad.is_empty(),
        "forbidden dependency edges:\n{}",
        bad.join("\n")
    );
}

#[test]
fn the_rules_catch_a_forbidden_edge() {
    let mut pkgs = BTreeMap::new();
    pkgs.insert(
        "strata-dockerfile".into(),
        Package {
            dir: "frontend/dockerfile".into(),
            deps: vec!["strata-ops".into(), "tokio".into()],
        },
    );
    pkgs.insert(
        "strata-ops".into(),
        Package {
            dir: "solver/ops".into(),
            deps: vec!["strata-image".into()],
        },
    );
    pkgs.insert(
        "strata-image".into(),
        Package {
            dir: "exporter/image".into(),
            deps: vec![],
        },
    );
    pkgs.insert(
        "strata-parser".into(),
        Package {
            dir: "frontend/parser".into(),
            deps: vec!["strata-image".into()],
        },
    );
    let bad = violations(&pkgs);
    assert_eq!(bad.len(), 5, "{bad:#?}");
}

#[test]
fn top_level_is_as_the_user_asked() {
    let (root, _) = workspace();
    let allowed = [
        "Cargo.toml",
        "Cargo.lock",
        "crates",
        "frontend",
        "solver",
        "exporter",
        "testdata",
        "README.md",
        "target",
    ];
    let out = Command::new("git")
        .args(["ls-files"])
        .current_dir(&root)
        .output()
        .expect("git runs");
    let mut tops: Vec<String> = String::from_utf8_lossy(&out.stdout)
        .lines()
        .map(|l| l.split('/').next().unwrap().to_string())
        .collect();
    tops.sort();
    tops.dedup();
    let extra: Vec<&String> = tops
        .iter()
        .filter(|t| !t.starts_with('.') && !allowed.contains(&t.as_str()))
        .collect();
    assert!(extra.is_empty(), "unexpected top-level entries: {extra:?}");
}
