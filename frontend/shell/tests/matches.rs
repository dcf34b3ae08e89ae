//! The behaviours of BuildKit's `TestProcessWithMatches`,
//! `TestProcessWithMatchesPlatform`, `TestShellParserMandatoryEnvVars` and
//! `TestGetEnv` (lex_test.go), as table tests.

use std::collections::{BTreeMap, BTreeSet};

use strata_shell::{Env, Lexer, Processed, ShellError};

fn env(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
    pairs
        .iter()
        .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
        .collect()
}

fn set(names: &[&str]) -> BTreeSet<String> {
    names.iter().map(|n| (*n).to_owned()).collect()
}

struct Case {
    input: &'static str,
    env: &'static [(&'static str, &'static str)],
    /// `Err(text)`: fails with a message containing `text`.
    want: Result<&'static str, &'static str>,
    matched: &'static [&'static str],
    unmatched: &'static [&'static str],
}

const FOO_BAR: &[(&str, &str)] = &[("FOO", "xxx"), ("BAR", "")];

const fn ok(
    input: &'static str,
    env: &'static [(&'static str, &'static str)],
    value: &'static str,
    matched: &'static [&'static str],
    unmatched: &'static [&'static str],
) -> Case {
    Case {
        input,
        env,
        want: Ok(value),
        matched,
        unmatched,
    }
}

const fn err(
    input: &'static str,
    env: &'static [(&'static str, &'static str)],
    text: &'static str,
) -> Case {
    Case {
        input,
        env,
        want: Err(text),
        matched: &[],
        unmatched: &[],
    }
}

const CASES: &[Case] = &[
    ok("x", &[("DUMMY", "dummy")], "x", &[], &[]),
    ok("x ${UNUSED}", &[("DUMMY", "dummy")], "x ", &[], &["UNUSED"]),
    ok("x ${FOO}", &[("FOO", "y")], "x y", &["FOO"], &[]),
    ok(
        "${FOO-aaa} ${BAR-bbb} ${BAZ-ccc}",
        FOO_BAR,
        "xxx  ccc",
        &["FOO", "BAR"],
        &["BAZ"],
    ),
    ok(
        "${FOO:-aaa} ${BAR:-bbb} ${BAZ:-ccc}",
        FOO_BAR,
        "xxx bbb ccc",
        &["FOO", "BAR"],
        &["BAZ"],
    ),
    ok("${FOO:-}", FOO_BAR, "xxx", &["FOO"], &[]),
    ok("${FOO:-}", &[], "", &[], &["FOO"]),
    ok(
        "${FOO+aaa} ${BAR+bbb} ${BAZ+ccc}",
        FOO_BAR,
        "aaa bbb ",
        &["FOO", "BAR"],
        &["BAZ"],
    ),
    ok(
        "${FOO:+aaa} ${BAR:+bbb} ${BAZ:+ccc}",
        FOO_BAR,
        "aaa  ",
        &["FOO", "BAR"],
        &["BAZ"],
    ),
    ok("${FOO?aaa}", FOO_BAR, "xxx", &["FOO"], &[]),
    ok("${BAR?bbb}", FOO_BAR, "", &["BAR"], &[]),
    err("${BAZ?ccc}", FOO_BAR, "BAZ: ccc"),
    ok("${FOO:?aaa}", FOO_BAR, "xxx", &["FOO"], &[]),
    err("${BAR:?bbb}", FOO_BAR, "BAR: bbb"),
    err("${BAZ:?ccc}", FOO_BAR, "BAZ: ccc"),
    err("${BAZ:?}", FOO_BAR, "BAZ: is not allowed to be unset"),
    err(
        "${FOO=aaa}",
        FOO_BAR,
        "unsupported modifier (=) in substitution",
    ),
    err(
        "${FOO=:aaa}",
        FOO_BAR,
        "unsupported modifier (=) in substitution",
    ),
    err("${FOO=}", &[], "unsupported modifier (=) in substitution"),
    // special characters of regular expressions are literal; `}` needs an escape
    ok(
        "${FOO#()[]{\\}^$.\\*\\?|\\\\}",
        &[("FOO", "()[]{}^$.*?|\\x")],
        "x",
        &["FOO"],
        &[],
    ),
    ok("${FOO%%\\**}", &[("FOO", "xx**")], "xx", &["FOO"], &[]),
    ok("${FOO#*x*y}", &[("FOO", "xxyy")], "y", &["FOO"], &[]),
    ok("${FOO#*}", &[("FOO", "xxyy")], "xxyy", &["FOO"], &[]),
    ok(
        "${FOO#$BAR}",
        &[("FOO", "xxyy"), ("BAR", "x")],
        "xyy",
        &["FOO", "BAR"],
        &[],
    ),
    ok(
        "${FOO#$BAR}",
        &[("FOO", "xxyy"), ("BAR", "")],
        "xxyy",
        &["FOO", "BAR"],
        &[],
    ),
    ok("${FOO#}", &[("FOO", "xxyy")], "xxyy", &["FOO"], &[]),
    ok("${FOO##*x}", &[("FOO", "xxyy")], "yy", &["FOO"], &[]),
    ok("${FOO##}", &[("FOO", "xxyy")], "xxyy", &["FOO"], &[]),
    ok("${FOO#?\\?}", &[("FOO", "???y")], "?y", &["FOO"], &[]),
    ok(
        "${ABC:-.}${FOO%x}${ABC:-.}",
        &[("FOO", "xxyy")],
        ".xxyy.",
        &["FOO"],
        &["ABC"],
    ),
    ok("${FOO%%\\**\\*}", &[("FOO", "a***yy*")], "a", &["FOO"], &[]),
    ok("${FOO%}", &[("FOO", "xxyy")], "xxyy", &["FOO"], &[]),
    ok(
        "${FOO%%$BAR}",
        &[("FOO", "xxyy"), ("BAR", "")],
        "xxyy",
        &["FOO", "BAR"],
        &[],
    ),
    // wildcards in a variable's value are wildcards
    ok(
        "${FOO/$NEEDLE/.} - ${FOO//$NEEDLE/.}",
        &[("FOO", "/foo*/*/*.txt"), ("NEEDLE", "\\*/")],
        "/foo.*/*.txt - /foo..*.txt",
        &["FOO", "NEEDLE"],
        &[],
    ),
    // a `/` that comes out of a variable does not end the pattern
    ok(
        "${FOO/$NEEDLE/} - ${FOO//$NEEDLE/}",
        &[("FOO", "/tmp/tmp/bar.txt"), ("NEEDLE", "/tmp")],
        "/tmp/bar.txt - /bar.txt",
        &["FOO", "NEEDLE"],
        &[],
    ),
    ok(
        "${FOO/$NEEDLE/$REPLACEMENT} - ${FOO//$NEEDLE/$REPLACEMENT}",
        &[
            ("FOO", "/a/foo/b/c.txt"),
            ("NEEDLE", "/?/"),
            ("REPLACEMENT", "/"),
        ],
        "/foo/b/c.txt - /foo/c.txt",
        &["FOO", "NEEDLE", "REPLACEMENT"],
        &[],
    ),
    ok(
        "${FOO/$NEEDLE/$REPLACEMENT}",
        &[
            ("FOO", "http://google.de"),
            ("NEEDLE", "http://"),
            ("REPLACEMENT", "https://"),
        ],
        "https://google.de",
        &["FOO", "NEEDLE", "REPLACEMENT"],
        &[],
    ),
    // escaped separators: the pattern loses its escape, the replacement keeps it
    ok(
        "${FOO//\\//\\/}",
        &[("FOO", "/tmp/foo.txt")],
        "\\/tmp\\/foo.txt",
        &["FOO"],
        &[],
    ),
    // BuildKit calls these "not guaranteed", but they must not crash
    ok(
        "${FOO/$BAR/ww}",
        &[("FOO", "xxyy"), ("BAR", "")],
        "wwxxyy",
        &["FOO", "BAR"],
        &[],
    ),
    err(
        "${FOO//ww}",
        &[("FOO", "xxyy")],
        "syntax error: missing '/' in ${}",
    ),
    err(
        "${FOO//}",
        &[("FOO", "xxyy")],
        "syntax error: missing '/' in ${}",
    ),
    ok("${FOO///}", &[("FOO", "xxyy")], "xxyy", &["FOO"], &[]),
    ok("${FOO///}", &[], "", &[], &["FOO"]),
];

#[test]
fn process_with_matches_table() {
    let lexer = Lexer::new('\\');
    let mut failures = Vec::new();
    for case in CASES {
        let env = env(case.env);
        let got = lexer.process_word_with_matches(case.input, &env);
        let outcome = match (&got, case.want) {
            (Ok(p), Ok(value)) => {
                let want = Processed {
                    value: value.to_owned(),
                    matched: set(case.matched),
                    unmatched: set(case.unmatched),
                };
                (*p == want)
                    .then_some(())
                    .ok_or(format!("got {p:?}, want {want:?}"))
            }
            (Err(e), Err(text)) => e
                .to_string()
                .contains(text)
                .then_some(())
                .ok_or(format!("error {e} lacks {text:?}")),
            (got, want) => Err(format!("got {got:?}, want {want:?}")),
        };
        if let Err(why) = outcome {
            failures.push(format!("{:?}: {why}", case.input));
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

#[test]
fn release_file_names_per_platform() {
    let release =
        "something-${VERSION}.${TARGETOS}-${TARGETARCH}${TARGETVARIANT:+-${TARGETVARIANT}}.tar.gz";
    let lexer = Lexer::default();
    let mut vars = env(&[
        ("VERSION", "v1.2.3"),
        ("TARGETOS", "linux"),
        ("TARGETARCH", "arm"),
        ("TARGETVARIANT", "v7"),
    ]);
    let p = lexer.process_word_with_matches(release, &vars).unwrap();
    assert_eq!(p.value, "something-v1.2.3.linux-arm-v7.tar.gz");

    vars.insert("TARGETARCH".into(), "arm64".into());
    vars.insert("TARGETVARIANT".into(), String::new());
    let p = lexer.process_word_with_matches(release, &vars).unwrap();
    assert_eq!(p.value, "something-v1.2.3.linux-arm64.tar.gz");

    vars.remove("TARGETVARIANT");
    let p = lexer.process_word_with_matches(release, &vars).unwrap();
    assert_eq!(p.value, "something-v1.2.3.linux-arm64.tar.gz");
    assert_eq!(p.unmatched, set(&["TARGETVARIANT"]));
}

#[test]
fn mandatory_variables() {
    let lexer = Lexer::default();
    let set_envs = [("VAR", "plain"), ("ARG", "x")];
    let empty_envs = [("VAR", ""), ("ARG", "x")];
    let unset_envs = [("ARG", "x")];
    let no_empty = "${VAR:?message here$ARG}";
    let no_unset = "${VAR?message here$ARG}";

    assert_eq!(lexer.process_word(no_empty, &set_envs).unwrap(), "plain");
    let e = lexer.process_word(no_empty, &empty_envs).unwrap_err();
    assert!(
        matches!(&e, ShellError::Required { name, message, .. } if name == "VAR" && message == "message herex")
    );
    let e = lexer.process_word(no_empty, &unset_envs).unwrap_err();
    assert_eq!(
        e.to_string(),
        "failed to process \"${VAR:?message here$ARG}\": VAR: message herex"
    );

    assert_eq!(lexer.process_word(no_unset, &set_envs).unwrap(), "plain");
    assert_eq!(lexer.process_word(no_unset, &empty_envs).unwrap(), "");
    let e = lexer.process_word(no_unset, &unset_envs).unwrap_err();
    assert!(e.to_string().ends_with("VAR: message herex"), "{e}");
}

#[test]
fn list_environments_last_wins() {
    // BuildKit's TestGetEnv: a name given twice takes its last value.
    let lexer = Lexer::default();
    let none: [(&str, &str); 0] = [];
    assert_eq!(lexer.process_word("$foo", &none).unwrap(), "");
    assert_eq!(lexer.process_word("$foo", &[("foo", "")]).unwrap(), "");
    assert_eq!(
        lexer.process_word("${foo-unset}", &[("foo", "")]).unwrap(),
        ""
    );
    assert_eq!(
        lexer.process_word("$foo", &[("foo", "bar")]).unwrap(),
        "bar"
    );
    let two = [("foo", "bar"), ("car", "hat")];
    assert_eq!(lexer.process_word("$foo $car", &two).unwrap(), "bar hat");
    let three = vec![("foo", "bar"), ("car", "hat"), ("car", "bike")];
    assert_eq!(lexer.process_word("$car", &three).unwrap(), "bike");
    assert_eq!(three.lookup("car").as_deref(), Some("bike"));
}
