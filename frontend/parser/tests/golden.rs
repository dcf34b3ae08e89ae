//! Golden cases: `testdata/parser/ok/<case>/Dockerfile` must parse to the dump in
//! `expected.txt`; `testdata/parser/err/<case>/Dockerfile` must fail with the span and
//! message in `expected.txt` (`L<start>-<end>: <message>`).
//!
//! `UPDATE_GOLDEN=1 cargo test -p strata-parser --test golden` rewrites the expected
//! files; review the diff by hand before committing.

use std::fs;
use std::path::{Path, PathBuf};

fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../testdata/parser")
}

fn cases(kind: &str) -> Vec<PathBuf> {
    let dir = root().join(kind);
    let mut out: Vec<PathBuf> = fs::read_dir(&dir)
        .unwrap_or_else(|e| panic!("reading {}: {e}", dir.display()))
        .map(|e| e.expect("dir entry").path())
        .filter(|p| p.join("Dockerfile").is_file())
        .collect();
    out.sort();
    out
}

fn render_err(e: &strata_parser::ParseError) -> String {
    format!("L{}-{}: {}\n", e.span.start, e.span.end, e)
}

/// Compare (or, with UPDATE_GOLDEN, rewrite); returns a failure description.
fn check(case: &Path, actual: &str) -> Option<String> {
    let expected_path = case.join("expected.txt");
    if std::env::var_os("UPDATE_GOLDEN").is_some() {
        fs::write(&expected_path, actual).expect("write expected.txt");
        return None;
    }
    let expected = fs::read_to_string(&expected_path).unwrap_or_default();
    if expected == actual {
        return None;
    }
    let mut msg = format!("{}: output differs from expected.txt\n", case.display());
    let (e, a): (Vec<_>, Vec<_>) = (expected.lines().collect(), actual.lines().collect());
    for i in 0..e.len().max(a.len()) {
        let (el, al) = (e.get(i).copied(), a.get(i).copied());
        if el != al {
            msg += &format!(
                "  first difference at line {}:\n  - {:?}\n  + {:?}\n",
                i + 1,
                el,
                al
            );
            break;
        }
    }
    msg += &format!("--- actual ---\n{actual}");
    Some(msg)
}

#[test]
fn golden_ok() {
    let cases = cases("ok");
    assert!(
        cases.len() >= 40,
        "expected at least 40 ok cases, found {}",
        cases.len()
    );
    let mut failures = Vec::new();
    for case in &cases {
        let bytes = fs::read(case.join("Dockerfile")).expect("read Dockerfile");
        match strata_parser::parse_bytes(&bytes) {
            Ok(df) => failures.extend(check(case, &strata_parser::dump(&df))),
            Err(e) => failures.push(format!(
                "{}: unexpected error {}",
                case.display(),
                render_err(&e)
            )),
        }
    }
    assert!(
        failures.is_empty(),
        "{} golden failures:\n{}",
        failures.len(),
        failures.join("\n")
    );
}

#[test]
fn golden_err() {
    let cases = cases("err");
    assert!(
        cases.len() >= 10,
        "expected at least 10 err cases, found {}",
        cases.len()
    );
    let mut failures = Vec::new();
    for case in &cases {
        let bytes = fs::read(case.join("Dockerfile")).expect("read Dockerfile");
        match strata_parser::parse_bytes(&bytes) {
            Ok(df) => failures.push(format!(
                "{}: parsed but should fail:\n{}",
                case.display(),
                strata_parser::dump(&df)
            )),
            Err(e) => failures.extend(check(case, &render_err(&e))),
        }
    }
    assert!(
        failures.is_empty(),
        "{} golden failures:\n{}",
        failures.len(),
        failures.join("\n")
    );
}
