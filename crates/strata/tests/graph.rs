//! `strata debug graph` through the real binary.

use assert_cmd::Command;
use serde_json::Value;

fn context(dockerfile: &str) -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("Dockerfile"), dockerfile).unwrap();
    dir
}

fn graph_json(dir: &std::path::Path, extra: &[&str]) -> Vec<Value> {
    let out = Command::cargo_bin("strata")
        .unwrap()
        .args(["debug", "graph", "--format", "json"])
        .args(extra)
        .arg(dir)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let v: Value = serde_json::from_slice(&out.stdout).unwrap();
    v.as_array().unwrap().clone()
}

const MULTI: &str = "FROM scratch AS a\nCOPY x /x\n\nFROM scratch AS b\nCOPY y /y\n\nFROM scratch AS c\nCOPY --from=a /x /x\n";

#[test]
fn json_has_digest_name_op_inputs_and_only_reachable_stages() {
    let ctx = context(MULTI);
    let vs = graph_json(ctx.path(), &[]);
    for v in &vs {
        assert!(v["digest"].as_str().unwrap().starts_with("sha256:"));
        assert!(v["name"].is_string() && v["op"].is_object() && v["inputs"].is_array());
    }
    let names: Vec<&str> = vs.iter().map(|v| v["name"].as_str().unwrap()).collect();
    assert!(
        names.iter().any(|n| n.starts_with("[a 2/2] COPY x /x")),
        "{names:?}"
    );
    assert!(
        !names.iter().any(|n| n.starts_with("[b ")),
        "stage b is not reachable: {names:?}"
    );
    // Inputs always refer to vertices listed before.
    let mut seen = std::collections::HashSet::new();
    for v in &vs {
        for i in v["inputs"].as_array().unwrap() {
            let d = i.as_str().unwrap().rsplit_once(':').unwrap().0;
            assert!(seen.contains(d), "input {d} not listed before its user");
        }
        seen.insert(v["digest"].as_str().unwrap().to_string());
    }
}

#[test]
fn target_changes_the_graph_and_digests_are_stable() {
    let ctx = context(MULTI);
    let c1 = graph_json(ctx.path(), &[]);
    let c2 = graph_json(ctx.path(), &[]);
    assert_eq!(c1, c2);
    let b = graph_json(ctx.path(), &["--target", "b"]);
    assert!(b
        .iter()
        .any(|v| v["name"].as_str().unwrap().starts_with("[b 2/2]")));
    assert!(!b
        .iter()
        .any(|v| v["name"].as_str().unwrap().starts_with("[a ")));
}

#[test]
fn text_and_dot_formats() {
    let ctx = context(MULTI);
    let text = Command::cargo_bin("strata")
        .unwrap()
        .args(["debug", "graph"])
        .arg(ctx.path())
        .output()
        .unwrap();
    let text = String::from_utf8(text.stdout).unwrap();
    assert!(text.contains("[c 2/2] COPY --from=a /x /x"), "{text}");
    let dot = Command::cargo_bin("strata")
        .unwrap()
        .args(["debug", "graph", "--format", "dot"])
        .arg(ctx.path())
        .output()
        .unwrap();
    let dot = String::from_utf8(dot.stdout).unwrap();
    assert!(
        dot.starts_with("digraph strata {") && dot.contains("->"),
        "{dot}"
    );
}

#[test]
fn oci_layout_build_context_resolves_the_base_config() {
    // A minimal OCI layout with one config, written by hand.
    let layout = tempfile::tempdir().unwrap();
    let blobs = layout.path().join("blobs/sha256");
    std::fs::create_dir_all(&blobs).unwrap();
    let put = |bytes: &[u8]| {
        let d = strata_digest::sha256(bytes);
        std::fs::write(blobs.join(d.hex()), bytes).unwrap();
        (d, bytes.len())
    };
    let (cfg, cfg_len) = put(br#"{"architecture":"amd64","os":"linux","config":{"Env":["FROM_LAYOUT=yes"],"WorkingDir":"/work"},"rootfs":{"type":"layers","diff_ids":[]}}"#);
    let manifest = format!(
        r#"{{"schemaVersion":2,"mediaType":"application/vnd.oci.image.manifest.v1+json","config":{{"mediaType":"application/vnd.oci.image.config.v1+json","digest":"{cfg}","size":{cfg_len}}},"layers":[]}}"#
    );
    let (m, m_len) = put(manifest.as_bytes());
    let index = format!(
        r#"{{"schemaVersion":2,"manifests":[{{"mediaType":"application/vnd.oci.image.manifest.v1+json","digest":"{m}","size":{m_len},"annotations":{{"org.opencontainers.image.ref.name":"v1"}}}}]}}"#
    );
    std::fs::write(layout.path().join("index.json"), index).unwrap();

    let ctx = context("FROM base\nRUN echo $FROM_LAYOUT\n");
    let bc = format!("base=oci-layout://{}:v1", layout.path().display());
    let vs = graph_json(ctx.path(), &["--build-context", &bc]);
    let src = vs
        .iter()
        .find(|v| v["op"]["kind"] == "oci_layout")
        .expect("layout source");
    assert_eq!(src["op"]["digest"], m.to_string());
    let run = vs.iter().find(|v| v["op"]["type"] == "exec").unwrap();
    assert_eq!(run["op"]["cwd"], "/work");
    assert!(run["op"]["env"]
        .as_array()
        .unwrap()
        .iter()
        .any(|e| e == "FROM_LAYOUT=yes"));
}
