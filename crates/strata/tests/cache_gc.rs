//! Cache inspection and garbage collection through the real binary: `cache du` totals
//! against `du -sb` of the store, `cache ls`, `cache prune` (`--all`, `--keep-storage`,
//! `--filter`), `system df`/`prune`, a running build's pins, the ancestry rule, and the
//! collection after each build under the configuration file's `[gc]` policy.

mod common;

use std::collections::BTreeSet;
use std::io::Write as _;
use std::path::Path;
use std::process::Stdio;

use common::*;
use serde_json::Value;

/// A store with the busybox image as build context `busybox`, and a config file that
/// turns automatic collection off (tests that want it write their own).
struct Env {
    s: Strata,
    busybox: String,
    config: tempfile::NamedTempFile,
}

impl Env {
    fn new() -> Option<Env> {
        if !is_root() {
            skip("builds with RUN need root");
            return None;
        }
        let layout = busybox_layout()?;
        let mut config = tempfile::NamedTempFile::new().unwrap();
        writeln!(config, "[gc]\nenabled = false").unwrap();
        Some(Env {
            s: Strata::new(),
            busybox: busybox_context("busybox", &layout),
            config,
        })
    }

    fn config(&mut self, text: &str) {
        let mut f = tempfile::NamedTempFile::new().unwrap();
        f.write_all(text.as_bytes()).unwrap();
        self.config = f;
    }

    fn cmd(&self) -> std::process::Command {
        let mut c = self.s.cmd();
        c.env("STRATA_CONFIG", self.config.path());
        c
    }

    fn ok(&self, args: &[&str]) -> String {
        let out = self.cmd().args(args).output().unwrap();
        assert!(
            out.status.success(),
            "strata {args:?} failed:\n{}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8(out.stdout).unwrap()
    }

    fn build(&self, ctx: &Path, extra: &[&str]) -> Build {
        let mut args = vec![
            "build",
            "--progress",
            "json",
            "--build-context",
            self.busybox.as_str(),
        ];
        args.extend_from_slice(extra);
        let out = self.cmd().args(&args).arg(ctx).output().unwrap();
        let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
        assert!(out.status.success(), "build failed:\n{stderr}");
        Build::parse(&out.stdout, stderr)
    }

    /// Names the busybox base as an image, so its layer is no build cache.
    fn tag_base(&self) {
        let ctx = context(&[("Dockerfile", "FROM busybox\n", 0o644)]);
        self.build(ctx.path(), &["-t", "base"]);
    }

    fn du(&self) -> Value {
        serde_json::from_str(&self.ok(&["cache", "du", "--format", "json"])).unwrap()
    }

    /// Record descriptions, from `cache ls --format json`.
    fn records(&self) -> Vec<Value> {
        self.ok(&["cache", "ls", "--format", "json"])
            .lines()
            .map(|l| serde_json::from_str(l).unwrap())
            .collect()
    }

    fn descriptions(&self) -> BTreeSet<String> {
        self.records()
            .iter()
            .map(|r| r["description"].as_str().unwrap().to_string())
            .collect()
    }

    fn root(&self) -> &Path {
        self.s.root()
    }

    /// Makes every record whose description contains `needle` look last used `secs`
    /// seconds ago (a test cannot wait hours).
    fn age(&self, needle: &str, secs: u64) {
        let store = strata_store::Store::open(self.root()).unwrap();
        let now = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_secs();
        let mut n = 0;
        for (k, mut r) in store.cache_records().unwrap() {
            if r.description.contains(needle) {
                r.last_used = now - secs;
                r.created = now - secs;
                store.cache_put(&k, &r).unwrap();
                n += 1;
            }
        }
        assert!(n > 0, "no record matches {needle:?}");
    }
}

/// `du -sb DIR` (apparent sizes, every inode once: what the totals must match).
fn du_sb(dir: &Path) -> u64 {
    let out = run_ok(std::process::Command::new("du").arg("-sb").arg(dir));
    String::from_utf8(out)
        .unwrap()
        .split_whitespace()
        .next()
        .unwrap()
        .parse()
        .unwrap()
}

fn layer_dirs(root: &Path) -> BTreeSet<String> {
    std::fs::read_dir(root.join("layers"))
        .unwrap()
        .map(|e| e.unwrap().file_name().into_string().unwrap())
        .filter(|n| !n.ends_with(".ckpt"))
        .collect()
}

fn own_layer(r: &Value) -> Option<String> {
    let res = &r["resource"];
    (res["kind"] == "layer").then(|| {
        res["id"]
            .as_str()
            .unwrap()
            .trim_start_matches("sha256:")
            .to_string()
    })
}

fn find<'a>(records: &'a [Value], needle: &str) -> &'a Value {
    records
        .iter()
        .find(|r| r["description"].as_str().unwrap().contains(needle))
        .unwrap_or_else(|| panic!("no record {needle:?} in {records:#?}"))
}

#[test]
fn du_totals_match_du_sb_of_the_store() {
    let Some(e) = Env::new() else { return };
    let ctx = context(&[
        (
            "Dockerfile",
            "FROM busybox AS build\n\
             COPY ctx/ /ctx/\n\
             RUN head -c 1500000 /dev/urandom > /big && ln /big /big-link\n\
             RUN --mount=type=cache,id=dl,target=/var/cache/dl head -c 300000 /dev/urandom > /var/cache/dl/f\n\
             FROM busybox\n\
             COPY --from=build /big /big\n",
            0o644,
        ),
        ("ctx/one", &"1".repeat(200_000), 0o644),
        ("ctx/two", &"2".repeat(300_000), 0o644),
    ]);
    e.build(ctx.path(), &["-t", "app"]);
    // A second build after one file changed: its COPY layer hardlinks the unchanged
    // file to the first one's (shared bytes, counted once).
    write(ctx.path(), "ctx/one", &"x".repeat(200_000));
    e.build(ctx.path(), &[]);

    let du = e.du();
    let total = du["totals"]["total"].as_u64().unwrap();
    let on_disk = du_sb(e.root());
    let diff = total.abs_diff(on_disk);
    assert!(
        diff * 100 <= on_disk,
        "cache du says {total} bytes, du -sb says {on_disk}"
    );
    let t = &du["totals"];
    let parts: u64 = ["images", "build_cache", "cache_mounts", "metadata"]
        .iter()
        .map(|k| t[k].as_u64().unwrap())
        .sum();
    assert_eq!(parts, total, "{t}");
    assert!(t["cache_mounts"].as_u64().unwrap() >= 300_000, "{t}");
    assert!(t["images"].as_u64().unwrap() >= 1_500_000, "{t}");
    // The first build's RUN output is only cache now (the image holds its own /big).
    assert!(t["reclaimable"].as_u64().unwrap() >= 1_500_000, "{t}");

    let records = du["records"].as_array().unwrap();
    let run = find(records, "RUN head -c 1500000");
    assert_eq!(run["stage"], "build");
    assert_eq!(run["type"], "regular");
    assert!(run["instruction"].as_str().unwrap().starts_with("RUN head"));
    // The hardlink inside the layer is one inode: counted once.
    let size = run["size"].as_u64().unwrap();
    assert!((1_500_000..1_600_000).contains(&size), "{size}");
    let mount = find(records, "cache mount id=dl target=/var/cache/dl");
    assert_eq!(mount["type"], "exec.cachemount");
    assert!(mount["size"].as_u64().unwrap() >= 300_000);
    // Both COPY layers: the second shares the unchanged file with the first.
    let copies: Vec<&Value> = records
        .iter()
        .filter(|r| {
            r["description"]
                .as_str()
                .unwrap()
                .contains("COPY ctx/ /ctx/")
        })
        .collect();
    assert_eq!(copies.len(), 2, "{records:#?}");
    assert!(copies.iter().all(|r| r["shared"] == true), "{copies:#?}");

    // The table form says the same total.
    let table = e.ok(&["cache", "du", "--verbose"]);
    assert!(
        table.contains("Instruction:\tRUN head -c 1500000"),
        "{table}"
    );
    assert!(table.contains("Total:"), "{table}");
}

#[test]
fn prune_all_empties_the_cache_and_keeps_tagged_images_buildable_and_exportable() {
    let Some(e) = Env::new() else { return };
    let ctx = context(&[(
        "Dockerfile",
        "FROM busybox\nRUN head -c 500000 /dev/urandom > /data\nRUN echo done > /done\n",
        0o644,
    )]);
    e.build(ctx.path(), &["-t", "app"]);
    let other = context(&[(
        "Dockerfile",
        "FROM busybox\nRUN head -c 700000 /dev/urandom > /scratch\n",
        0o644,
    )]);
    e.build(other.path(), &[]);
    assert!(e.records().len() >= 3);

    // Without --all: only what no image uses (the untagged build's RUN).
    let out = e.ok(&["cache", "prune", "-f"]);
    assert!(out.contains("RUN head -c 700000"), "{out}");
    assert!(!out.contains("RUN echo done"), "{out}");
    assert!(out.contains("Total reclaimed space: 7"), "{out}");
    let left = e.descriptions();
    assert!(left.iter().any(|d| d.contains("RUN echo done")), "{left:?}");

    let out = e.ok(&["cache", "prune", "--all", "-f"]);
    assert!(out.contains("RUN echo done"), "{out}");
    assert!(e.records().is_empty(), "{:?}", e.descriptions());
    // Left: the untagged build's manifest and config blobs (`system prune` takes those).
    let du = e.du();
    assert!(
        du["totals"]["build_cache"].as_u64().unwrap() < 10_000,
        "{}",
        du["totals"]
    );

    // The tagged image is still whole: a build on it runs and exports it.
    let on_app = context(&[("Dockerfile", "FROM app\nRUN cat /done\n", 0o644)]);
    let dest = tempfile::tempdir().unwrap();
    let tar = dest.path().join("app.tar");
    let b = e.build(
        on_app.path(),
        &["-o", &format!("type=oci,dest={}", tar.display())],
    );
    assert!(b.executed().iter().any(|s| s.contains("RUN cat /done")));
    let tree = tar_file_tree(&tar);
    assert!(!tree.is_empty());
    // And the original Dockerfile rebuilds (from scratch: its cache is gone).
    let again = e.build(ctx.path(), &["-t", "app"]);
    assert!(again.executed().iter().any(|s| s.contains("RUN echo done")));
}

#[test]
fn keep_storage_keeps_the_most_recently_used() {
    let Some(e) = Env::new() else { return };
    e.tag_base();
    for (i, age) in [(1, 3_000), (2, 2_000), (3, 1_000)] {
        let ctx = context(&[(
            "Dockerfile",
            &format!("FROM busybox\nRUN head -c 1000000 /dev/urandom > /f{i}\n"),
            0o644,
        )]);
        e.build(ctx.path(), &[]);
        e.age(&format!("> /f{i}"), age);
    }
    let before = layer_dirs(e.root());
    let records = e.records();
    let newest = own_layer(find(&records, "> /f3")).unwrap();
    let oldest = own_layer(find(&records, "> /f1")).unwrap();
    // Room for one 1 MB layer (and the base), not two.
    let out = e.ok(&["cache", "prune", "--keep-storage", "1.5MB", "-f"]);
    assert!(out.contains("> /f1") && out.contains("> /f2"), "{out}");
    assert!(!out.contains("> /f3"), "{out}");
    let after = layer_dirs(e.root());
    assert!(after.contains(&newest), "the most recent stays");
    assert!(before.contains(&oldest) && !after.contains(&oldest));
    let du = e.du();
    assert!(du["totals"]["build_cache"].as_u64().unwrap() <= 1_500_000);
}

#[test]
fn filters_select_by_age_type_and_id() {
    let Some(e) = Env::new() else { return };
    let ctx = context(&[(
        "Dockerfile",
        "FROM busybox\n\
         RUN --mount=type=cache,id=pkgs,target=/pkgs echo x > /pkgs/x\n\
         RUN echo old > /old\n\
         RUN echo new > /new\n",
        0o644,
    )]);
    e.build(ctx.path(), &[]);
    let mounts = e.root().join("cache-mounts");
    assert_eq!(std::fs::read_dir(&mounts).unwrap().count(), 1);

    let out = e.ok(&["cache", "prune", "-f", "--filter", "type=exec.cachemount"]);
    assert!(out.contains("cache mount id=pkgs target=/pkgs"), "{out}");
    assert_eq!(
        std::fs::read_dir(&mounts).unwrap().count(),
        0,
        "its directory went"
    );
    assert!(e.descriptions().iter().any(|d| d.contains("echo old")));

    e.age("echo old", 7_200);
    let out = e.ok(&["cache", "prune", "-f", "--filter", "until=1h"]);
    assert!(out.contains("echo old"), "{out}");
    assert!(!out.contains("echo new"), "{out}");

    let records = e.records();
    let id = find(&records, "echo new")["id"]
        .as_str()
        .unwrap()
        .to_string();
    let prefix = &id["sha256:".len().."sha256:".len() + 10];
    let out = e.ok(&["cache", "prune", "-f", "--filter", &format!("id={prefix}")]);
    assert!(out.contains("echo new"), "{out}");
    assert!(!e.descriptions().iter().any(|d| d.contains("echo new")));

    let err =
        e.s.fails(&["cache", "prune", "-f", "--filter", "type=bogus"]);
    assert!(err.contains("unknown type"), "{err}");
    // Without -f and without a "y" on stdin, nothing goes.
    let out = e.cmd().args(["cache", "prune", "--all"]).output().unwrap();
    assert!(!out.status.success());
    assert!(!e.records().is_empty());
}

#[test]
fn a_running_build_keeps_what_it_holds() {
    let Some(e) = Env::new() else { return };
    let old = context(&[(
        "Dockerfile",
        "FROM busybox\nRUN head -c 400000 /dev/urandom > /unrelated\n",
        0o644,
    )]);
    e.build(old.path(), &[]);

    // A build whose RUN waits on a loopback connection the test controls.
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    let ctx = context(&[
        (
            "Dockerfile",
            &format!("FROM busybox\nCOPY payload /payload\nRUN nc 127.0.0.1 {port} > /got\n"),
            0o644,
        ),
        ("payload", &"p".repeat(300_000), 0o644),
    ]);
    let child = e
        .cmd()
        .args([
            "build",
            "--progress",
            "plain",
            "--build-context",
            &e.busybox,
            "-t",
            "held",
        ])
        .arg(ctx.path())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let (tx, rx) = std::sync::mpsc::channel();
    let accept_tx = tx.clone();
    std::thread::spawn(move || {
        let conn = listener.accept().map(|(c, _)| c);
        let _ = accept_tx.send(Some(conn));
    });
    let mut conn = match rx
        .recv_timeout(std::time::Duration::from_secs(120))
        .unwrap()
    {
        Some(c) => c.unwrap(),
        None => unreachable!(),
    };
    drop(tx);

    // The build is inside its RUN: its COPY layer and record are pinned.
    let copy_layer = own_layer(find(&e.records(), "COPY payload /payload")).unwrap();
    let out = e.ok(&["cache", "prune", "--all", "-f"]);
    assert!(out.contains("/unrelated"), "{out}");
    assert!(!out.contains("COPY payload"), "{out}");
    assert!(layer_dirs(e.root()).contains(&copy_layer));
    let held = find(&e.records(), "COPY payload /payload").clone();
    assert_eq!(held["in_use_by_build"], true);

    conn.write_all(b"from the test\n").unwrap();
    drop(conn);
    let out = child.wait_with_output().unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    // Once the build is over, nothing pins its steps.
    let out = e.ok(&["cache", "prune", "--all", "-f"]);
    assert!(out.contains("COPY payload"), "{out}");
    let dest = tempfile::tempdir().unwrap();
    let check = context(&[(
        "Dockerfile",
        "FROM held\nRUN grep -q 'from the test' /got && test -s /payload\n",
        0o644,
    )]);
    e.build(
        check.path(),
        &["-o", &format!("type=local,dest={}", dest.path().display())],
    );
}

#[test]
fn a_recent_descendant_keeps_shared_layers_but_not_an_old_siblings_own() {
    let Some(e) = Env::new() else { return };
    e.tag_base();
    let v1 = "FROM busybox\nRUN head -c 600000 /dev/urandom > /base\nRUN head -c 800000 /dev/urandom > /old\n";
    let v2 = "FROM busybox\nRUN head -c 600000 /dev/urandom > /base\nRUN head -c 900000 /dev/urandom > /new\n";
    let c1 = context(&[("Dockerfile", v1, 0o644)]);
    let c2 = context(&[("Dockerfile", v2, 0o644)]);
    e.build(c1.path(), &[]);
    e.build(c2.path(), &[]);
    let records = e.records();
    let base = own_layer(find(&records, "> /base")).unwrap();
    let old = own_layer(find(&records, "> /old")).unwrap();
    let new = own_layer(find(&records, "> /new")).unwrap();
    // The ancestor and the old sibling are old; only the descendant is recent.
    e.age("> /base", 5_000);
    e.age("> /old", 4_000);
    e.age("FROM", 6_000);

    // Room for base + new, not old: the old records go (oldest first) until it fits.
    let out = e.ok(&["cache", "prune", "--keep-storage", "1.7MB", "-f"]);
    assert!(out.contains("> /old"), "{out}");
    let dirs = layer_dirs(e.root());
    assert!(!dirs.contains(&old), "the old sibling's own layer goes");
    assert!(dirs.contains(&base), "shared with the recent descendant");
    assert!(dirs.contains(&new));
    assert!(e.descriptions().iter().any(|d| d.contains("> /new")));
    // The descendant still hits the cache; v1's last step runs again.
    let again = e.build(c2.path(), &[]);
    assert!(
        !again.executed().iter().any(|s| s.contains("> /new")),
        "{:?}",
        again.executed()
    );
    let v1_again = e.build(c1.path(), &[]);
    assert!(v1_again.executed().iter().any(|s| s.contains("> /old")));
}

#[test]
fn builds_collect_under_the_configured_policy() {
    let Some(mut e) = Env::new() else { return };
    let ctx = context(&[(
        "Dockerfile",
        "FROM busybox\nRUN head -c 500000 /dev/urandom > /a\n",
        0o644,
    )]);
    e.build(ctx.path(), &[]);
    assert!(
        e.descriptions().iter().any(|d| d.contains("> /a")),
        "disabled: kept"
    );

    e.config("[gc]\nkeep-storage = \"100kB\"\n");
    let other = context(&[(
        "Dockerfile",
        "FROM busybox\nRUN head -c 300000 /dev/urandom > /b\n",
        0o644,
    )]);
    let b = e.build(other.path(), &["-t", "kept"]);
    assert!(b.stderr.contains("gc: removed"), "{}", b.stderr);
    let left = e.descriptions();
    assert!(!left.iter().any(|d| d.contains("> /a")), "{left:?}");
    // The tagged result's records stay: removing them frees nothing.
    assert!(left.iter().any(|d| d.contains("> /b")), "{left:?}");
    assert!(e.du()["totals"]["build_cache"].as_u64().unwrap() <= 100_000);

    e.config("[gc]\nkeep_storage = \"1GB\"\n");
    let out = e
        .cmd()
        .args(["build", "--build-context", &e.busybox])
        .arg(other.path())
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("keep_storage"), "{err}");
}

/// The collection's estimate file (see `gc_auto.rs`): measured = when a scan measured
/// the cache.
fn estimate(e: &Env) -> Value {
    serde_json::from_slice(&std::fs::read(e.root().join("gc-estimate.json")).unwrap()).unwrap()
}

fn set_estimate(e: &Env, cache_bytes: u64, age_secs: u64) -> u64 {
    let then = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs()
        - age_secs;
    let v =
        serde_json::json!({"cache_bytes": cache_bytes, "measured": then, "counted_until": then});
    std::fs::write(e.root().join("gc-estimate.json"), v.to_string()).unwrap();
    then
}

#[test]
fn builds_under_the_estimate_skip_the_scan_and_builds_past_it_collect() {
    let Some(mut e) = Env::new() else { return };
    let build = |e: &Env, name: &str| {
        let ctx = context(&[(
            "Dockerfile",
            &format!("FROM busybox\nRUN head -c 300000 /dev/urandom > /{name}\n"),
            0o644,
        )]);
        e.build(ctx.path(), &[])
    };
    e.config("[gc]\nkeep-storage = \"1GB\"\n");
    build(&e, "x");
    // What the collection after the build measured (the build cache as keep-storage
    // counts it: what only records reference).
    let first = estimate(&e);
    assert_eq!(first["measured"], first["counted_until"], "{first}");
    let cache = first["cache_bytes"].as_u64().unwrap();
    assert!(cache >= 300_000, "{first}");

    // Far under keep-storage and measured 10 s ago: the build adds its records' sizes
    // to the estimate instead of scanning.
    let then = set_estimate(&e, cache, 10);
    build(&e, "y");
    let est = estimate(&e);
    assert_eq!(est["measured"], then, "{est}");
    let added = est["cache_bytes"].as_u64().unwrap() - cache;
    assert!(added >= 300_000, "the new layer is counted: {est}");

    // An estimate an hour old is measured again.
    let then = set_estimate(&e, cache, 3700);
    build(&e, "z");
    assert!(estimate(&e)["measured"].as_u64().unwrap() > then);

    // A build whose records take the estimate past keep-storage collects.
    let keep = estimate(&e)["cache_bytes"].as_u64().unwrap() + 100_000;
    e.config(&format!("[gc]\nkeep-storage = \"{keep}\"\n"));
    set_estimate(&e, keep - 50_000, 10);
    let b = build(&e, "w");
    assert!(b.stderr.contains("gc: removed"), "{}", b.stderr);
    assert!(estimate(&e)["cache_bytes"].as_u64().unwrap() <= keep);
}

#[test]
fn system_df_and_prune() {
    let Some(e) = Env::new() else { return };
    let ctx = context(&[(
        "Dockerfile",
        "FROM busybox\nRUN --mount=type=cache,target=/c echo > /c/x\nRUN head -c 400000 /dev/urandom > /r\n",
        0o644,
    )]);
    e.build(ctx.path(), &["-t", "one"]);
    e.build(ctx.path(), &["-t", "two"]);
    let df = e.ok(&["system", "df"]);
    for row in ["Images", "Build Cache", "Cache Mounts", "Total"] {
        assert!(df.contains(row), "{df}");
    }
    let rows: Vec<Value> = e
        .ok(&["system", "df", "--format", "json"])
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(rows[0]["Type"], "Images");
    assert_eq!(rows[0]["TotalCount"], 2);
    assert_eq!(rows[2]["TotalCount"], 1, "one cache mount");
    let total = rows[3]["Total"].as_u64().unwrap();
    assert!(total.abs_diff(du_sb(e.root())) * 100 <= total);

    // Untagging leaves the manifest and config blobs unreferenced (the layers are
    // the other image's too); system prune removes them.
    e.ok(&["image", "rm", "one", "two"]);
    let blobs = |root: &Path| -> usize {
        std::fs::read_dir(root.join("blobs/sha256"))
            .unwrap()
            .count()
    };
    let before = blobs(e.root());
    let locks = |root: &Path| std::fs::read_dir(root.join("locks")).unwrap().count();
    assert!(locks(e.root()) > 2, "one lock file per step built");
    let out = e.ok(&["system", "prune", "--all", "-f"]);
    assert!(out.contains("Total reclaimed space"), "{out}");
    assert!(blobs(e.root()) < before);
    assert!(
        locks(e.root()) <= 1,
        "nobody holds them (but the prune's own session)"
    );
    assert!(e.records().is_empty());
    assert!(
        layer_dirs(e.root()).is_empty(),
        "{:?}",
        layer_dirs(e.root())
    );
}

#[test]
fn leftovers_of_a_crash_are_swept_by_the_next_collection() {
    let Some(e) = Env::new() else { return };
    let ctx = context(&[("Dockerfile", "FROM busybox\nRUN echo kept > /kept\n", 0o644)]);
    e.build(ctx.path(), &["-t", "app"]);
    let before = layer_dirs(e.root());
    // What a collection (or a build) killed between its metadata transaction and its
    // file deletions leaves: a layer and a cache mount that nothing references.
    let ghost = sha256(b"a layer whose record is gone");
    let ghost = ghost.trim_start_matches("sha256:");
    let dir = e.root().join("layers").join(ghost);
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::write(dir.join("f"), vec![1u8; 250_000]).unwrap();
    std::fs::write(e.root().join("layers").join(format!("{ghost}.ckpt")), b"x").unwrap();
    let mount = e.root().join("cache-mounts/0123abcd");
    std::fs::create_dir_all(&mount).unwrap();
    std::fs::write(mount.join("f"), vec![2u8; 50_000]).unwrap();

    let du = e.du();
    assert!(
        du["totals"]["reclaimable"].as_u64().unwrap() >= 300_000,
        "{}",
        du["totals"]
    );
    let out = e.ok(&["cache", "prune", "-f"]);
    assert!(out.contains("Total reclaimed space: 30"), "{out}");
    assert_eq!(layer_dirs(e.root()), before);
    assert!(!e
        .root()
        .join("layers")
        .join(format!("{ghost}.ckpt"))
        .exists());
    assert!(!mount.exists());
    assert!(e.descriptions().iter().any(|d| d.contains("echo kept")));
}

#[test]
fn a_prune_killed_at_any_point_leaves_a_consistent_store() {
    let Some(e) = Env::new() else { return };
    e.tag_base();
    // Many small files, so a prune takes long enough to be killed in every phase: the
    // scan, the record transaction, the moves under the write lock, the deletions.
    let steps: String = (0..12)
        .map(|i| format!("RUN mkdir /d{i} && cd /d{i} && seq 1500 | xargs touch\n"))
        .collect();
    let ctx = context(&[("Dockerfile", &format!("FROM busybox\n{steps}"), 0o644)]);
    e.build(ctx.path(), &[]);
    let mut phases = BTreeSet::new();
    for round in 0..10u64 {
        let before = e.records().len();
        let mut child = e
            .cmd()
            .args(["cache", "prune", "--all", "-f"])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        // Not a timing assumption: whatever the kill interrupts, the store must check
        // clean; the delay only spreads the kills over the prune's phases.
        std::thread::sleep(std::time::Duration::from_millis(round * 30));
        let _ = child.kill();
        let status = child.wait().unwrap();
        let after = e.records().len();
        phases.insert((status.success(), before == after));
        let out = e.cmd().args(["system", "check"]).output().unwrap();
        assert!(
            out.status.success(),
            "round {round}: system check after a killed prune:\n{}\n{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        if e.records().iter().all(|r| r["in_use_by_image"] == true) {
            // What survived is usable: the build reruns what went and hits the rest.
            e.build(ctx.path(), &[]);
        }
    }
    eprintln!("(finished, records untouched) seen: {phases:?}");
    let out = e.ok(&["cache", "prune", "--all", "-f"]);
    assert!(out.contains("Total reclaimed space"), "{out}");
    assert!(
        layer_dirs(e.root()).len() <= 2,
        "{:?}",
        layer_dirs(e.root())
    );
    let total = e.du()["totals"]["total"].as_u64().unwrap();
    assert!(total.abs_diff(du_sb(e.root())) * 100 <= total);
}
