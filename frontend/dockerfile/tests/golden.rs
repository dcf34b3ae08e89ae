//! Lowering snapshots: `testdata/lower/ok/<case>/Dockerfile` (+ optional `options`)
//! lowers to `expected.txt` — the graph dump, the image config, the lint warnings and
//! the images the resolver was asked for; `testdata/lower/err/<case>` gives the error.
//! `UPDATE_GOLDEN=1 cargo test -p strata-dockerfile --test golden` rewrites the
//! expected files (review the diff before committing).

use std::cell::RefCell;
use std::fmt::Write as _;
use std::path::{Path, PathBuf};

use strata_digest::sha256;
use strata_dockerfile::{
    lower, ImageMetaResolver, ImageSource, LowerOptions, NamedContext, ResolveError, ResolvedImage,
};
use strata_graph::DumpFormat;
use strata_oci::{ImageConfig, Platform};

/// Knows a few made-up images and records every lookup.
#[derive(Default)]
struct FakeImages {
    asked: RefCell<Vec<String>>,
}

impl ImageMetaResolver for FakeImages {
    fn resolve(
        &self,
        source: &ImageSource,
        platform: &Platform,
    ) -> Result<ResolvedImage, ResolveError> {
        self.asked.borrow_mut().push(format!("{source} {platform}"));
        let name = source.to_string();
        let json = if name.contains("/busybox:") {
            r#"{"architecture":"amd64","os":"linux","config":{"Env":["PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"],"Cmd":["sh"]},"rootfs":{"type":"layers","diff_ids":[]},"history":[{"created_by":"base layer"}]}"#
        } else if name.contains("/onbuild-base:") {
            r#"{"architecture":"amd64","os":"linux","config":{"Env":["PATH=/bin","APP=/srv"],"WorkingDir":"/srv","OnBuild":["COPY . $APP/src","RUN make -C $APP/src"],"Cmd":["serve"]},"rootfs":{"type":"layers","diff_ids":[]}}"#
        } else if name.contains("/app-base:") {
            r#"{"architecture":"amd64","os":"linux","config":{"Entrypoint":["/init"],"Cmd":["--help"],"User":"app","Labels":{"base":"yes"}},"rootfs":{"type":"layers","diff_ids":[]}}"#
        } else if name.starts_with("oci-layout://") {
            r#"{"architecture":"amd64","os":"linux","config":{"Env":["FROM_LAYOUT=1"]},"rootfs":{"type":"layers","diff_ids":[]}}"#
        } else {
            return Err(ResolveError::NotFound);
        };
        let config: ImageConfig = serde_json::from_str(json).unwrap();
        Ok(ResolvedImage {
            digest: Some(sha256(name.as_bytes())),
            config,
        })
    }
}

fn options(dir: &Path) -> LowerOptions {
    let mut o = LowerOptions {
        target_platform: "linux/amd64".parse().unwrap(),
        build_platform: "linux/amd64".parse().unwrap(),
        ..Default::default()
    };
    let Ok(text) = std::fs::read_to_string(dir.join("options")) else {
        return o;
    };
    for line in text
        .lines()
        .map(str::trim)
        .filter(|l| !l.is_empty() && !l.starts_with('#'))
    {
        let (k, v) = line.split_once(' ').unwrap_or((line, ""));
        match k {
            "target" => o.target = Some(v.into()),
            "build-arg" => {
                let (a, b) = v.split_once('=').unwrap();
                o.build_args.insert(a.into(), b.into());
            }
            "platform" => o.target_platform = v.parse().unwrap(),
            "no-cache" => o.no_cache = true,
            "no-cache-filter" => o.no_cache_filter.push(v.into()),
            "context" => {
                let (n, val) = v.split_once('=').unwrap();
                o.named_contexts
                    .insert(n.into(), NamedContext::parse(val).unwrap());
            }
            "dockerignore" => o.dockerignore.push(v.into()),
            "allow-unresolved" => o.allow_unresolved = true,
            other => panic!("unknown option {other} in {}", dir.display()),
        }
    }
    o
}

fn render_ok(dir: &Path) -> String {
    let src = std::fs::read(dir.join("Dockerfile")).unwrap();
    let resolver = FakeImages::default();
    let l = match lower(&src, &options(dir), &resolver) {
        Ok(l) => l,
        Err(e) => panic!("{}: {e} (line {:?})", dir.display(), e.span),
    };
    let mut out = String::new();
    writeln!(
        out,
        "# target stage: {} (lowered: {})",
        l.target_stage,
        l.stages_lowered.join(", ")
    )
    .unwrap();
    writeln!(out, "# target: {}", l.target).unwrap();
    out.push_str("--- graph ---\n");
    out.push_str(&l.graph.dump(Some(l.target.vertex), DumpFormat::Json));
    out.push_str("--- image ---\n");
    out.push_str(&serde_json::to_string_pretty(&l.image).unwrap());
    out.push_str("\n--- warnings ---\n");
    for w in &l.warnings {
        writeln!(out, "{}: {}: {}", w.span.start, w.rule.name, w.message).unwrap();
    }
    if !l.unused_build_args.is_empty() {
        writeln!(out, "unused build args: {:?}", l.unused_build_args).unwrap();
    }
    out.push_str("--- resolved ---\n");
    for a in resolver.asked.borrow().iter() {
        writeln!(out, "{a}").unwrap();
    }
    out
}

fn render_err(dir: &Path) -> String {
    let src = std::fs::read(dir.join("Dockerfile")).unwrap();
    match lower(&src, &options(dir), &FakeImages::default()) {
        Ok(_) => panic!(
            "{}: lowering succeeded but an error was expected",
            dir.display()
        ),
        Err(e) => format!("{:?}: {e}\n", e.span.map(|s| s.start)),
    }
}

fn cases(kind: &str) -> Vec<PathBuf> {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../../testdata/lower")
        .join(kind);
    let mut v: Vec<PathBuf> = std::fs::read_dir(&root)
        .unwrap()
        .map(|e| e.unwrap().path())
        .collect();
    v.sort();
    v
}

fn check(kind: &str, render: fn(&Path) -> String) {
    let update = std::env::var_os("UPDATE_GOLDEN").is_some();
    let mut failures = Vec::new();
    let all = cases(kind);
    assert!(!all.is_empty());
    for dir in all {
        let got = render(&dir);
        let path = dir.join("expected.txt");
        if update {
            std::fs::write(&path, &got).unwrap();
            continue;
        }
        let want = std::fs::read_to_string(&path).unwrap_or_default();
        if want != got {
            failures.push(format!("{}:\n{}", dir.display(), first_diff(&want, &got)));
        }
    }
    assert!(
        failures.is_empty(),
        "golden mismatches (UPDATE_GOLDEN=1 to rewrite):\n{}",
        failures.join("\n")
    );
}

fn first_diff(want: &str, got: &str) -> String {
    for (i, (w, g)) in want.lines().zip(got.lines()).enumerate() {
        if w != g {
            return format!("  line {}:\n  - {w}\n  + {g}", i + 1);
        }
    }
    format!(
        "  lengths differ: {} vs {} lines",
        want.lines().count(),
        got.lines().count()
    )
}

#[test]
fn lowering_snapshots() {
    check("ok", render_ok);
}

#[test]
fn lowering_errors() {
    check("err", render_err);
}

/// Lowering twice gives the same digests (no HashMap order, no time, no randomness).
#[test]
fn lowering_is_deterministic() {
    for dir in cases("ok") {
        assert_eq!(render_ok(&dir), render_ok(&dir), "{}", dir.display());
    }
}
