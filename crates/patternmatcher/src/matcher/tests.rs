use super::*;
use crate::read_ignore_file;

fn matcher<const N: usize>(patterns: [&str; N]) -> PatternMatcher {
    PatternMatcher::new(patterns).unwrap_or_else(|e| panic!("{patterns:?}: {e}"))
}

/// Evaluates `path` the way a walker does: every ancestor first, passing results down.
fn walk(pm: &PatternMatcher, path: &str) -> bool {
    let parent = dir(path);
    let mut info = MatchInfo::default();
    if parent != "." {
        for ancestor in ancestors(&parent) {
            info = pm.matches_using_parent(ancestor, info).1;
        }
    }
    pm.matches_using_parent(path, info).0
}

#[derive(Clone, Copy, PartialEq, Debug)]
enum Want {
    Fail,
    /// The pattern matches the path itself.
    Exact,
    /// The pattern matches only a parent of the path.
    Inexact,
}
use Want::*;

/// moby/patternmatcher `TestMatches` (single patterns), for every way of matching.
const SINGLE: &[(&str, &str, Want)] = &[
    ("**", "file", Exact),
    ("**", "file/", Exact),
    ("**/", "file", Exact), // weird one
    ("**/", "file/", Exact),
    ("**", "/", Exact),
    ("**/", "/", Exact),
    ("**", "dir/file", Exact),
    ("**/", "dir/file", Exact),
    ("**", "dir/file/", Exact),
    ("**/", "dir/file/", Exact),
    ("**/**", "dir/file", Exact),
    ("**/**", "dir/file/", Exact),
    ("dir/**", "dir/file", Exact),
    ("dir/**", "dir/file/", Exact),
    ("dir/**", "dir/dir2/file", Exact),
    ("dir/**", "dir/dir2/file/", Exact),
    ("**/dir", "dir", Exact),
    ("**/dir", "dir/file", Inexact),
    ("**/dir2/*", "dir/dir2/file", Exact),
    ("**/dir2/*", "dir/dir2/file/", Inexact),
    ("**/dir2/**", "dir/dir2/dir3/file", Exact),
    ("**/dir2/**", "dir/dir2/dir3/file/", Exact),
    ("**file", "file", Exact),
    ("**file", "dir/file", Exact),
    ("**/file", "dir/file", Exact),
    ("**file", "dir/dir/file", Exact),
    ("**/file", "dir/dir/file", Exact),
    ("**/file*", "dir/dir/file", Exact),
    ("**/file*", "dir/dir/file.txt", Exact),
    ("**/file*txt", "dir/dir/file.txt", Exact),
    ("**/file*.txt", "dir/dir/file.txt", Exact),
    ("**/file*.txt*", "dir/dir/file.txt", Exact),
    ("**/**/*.txt", "dir/dir/file.txt", Exact),
    ("**/**/*.txt2", "dir/dir/file.txt", Fail),
    ("**/*.txt", "file.txt", Exact),
    ("**/**/*.txt", "file.txt", Exact),
    ("a**/*.txt", "a/file.txt", Exact),
    ("a**/*.txt", "a/dir/file.txt", Exact),
    ("a**/*.txt", "a/dir/dir/file.txt", Exact),
    ("a/*.txt", "a/dir/file.txt", Fail),
    ("a/*.txt", "a/file.txt", Exact),
    ("a/*.txt**", "a/file.txt", Exact),
    ("a[b-d]e", "ae", Fail),
    ("a[b-d]e", "ace", Exact),
    ("a[b-d]e", "aae", Fail),
    ("a[^b-d]e", "aze", Exact),
    (".*", ".foo", Exact),
    (".*", "foo", Fail),
    ("abc.def", "abcdef", Fail),
    ("abc.def", "abc.def", Exact),
    ("abc.def", "abcZdef", Fail),
    ("abc?def", "abcZdef", Exact),
    ("abc?def", "abcdef", Fail),
    ("**/foo/bar", "foo/bar", Exact),
    ("**/foo/bar", "dir/foo/bar", Exact),
    ("**/foo/bar", "dir/dir2/foo/bar", Exact),
    ("abc/**", "abc", Fail),
    ("abc/**", "abc/def", Exact),
    ("abc/**", "abc/def/ghi", Exact),
    ("**/.foo", ".foo", Exact),
    ("**/.foo", "bar.foo", Fail),
    ("a(b)c/def", "a(b)c/def", Exact),
    ("a(b)c/def", "a(b)c/xyz", Fail),
    ("a.|)$(}+{bc", "a.|)$(}+{bc", Exact),
    (
        "dist/proxy.py-2.4.0rc3.dev36+g08acad9-py3-none-any.whl",
        "dist/proxy.py-2.4.0rc3.dev36+g08acad9-py3-none-any.whl",
        Exact,
    ),
    (
        "dist/*.whl",
        "dist/proxy.py-2.4.0rc3.dev36+g08acad9-py3-none-any.whl",
        Exact,
    ),
    // The non-Windows additions.
    ("a\\\\", "a\\", Exact),
    ("a\\*b", "a*b", Exact),
    // Ours: parent matching at every depth.
    ("docs", "docs/a/b/c.md", Inexact),
    ("*/temp*", "somedir/temporary.txt", Exact),
    ("*/temp*", "somedir/temp/x", Inexact),
    ("*/temp*", "temp", Fail),
    ("*/*/temp*", "somedir/subdir/temporary.txt", Exact),
    ("*/*/temp*", "somedir/temporary.txt", Fail),
    ("temp?", "tempa", Exact),
    ("temp?", "tempa/x", Inexact),
    ("temp?", "dir/tempa", Fail),
    // `new` cleans but keeps a leading `/` (read_ignore_file is what drops it).
    ("/abs/path", "abs/path", Fail),
    ("/abs/path", "/abs/path", Exact),
    ("./rel/", "rel/x", Inexact),
];

/// moby/patternmatcher `TestMatches` (pattern lists).
const MULTI: &[(&[&str], &str, bool)] = &[
    (&["**", "!util/docker/web"], "util/docker/web/foo", false),
    (
        &["**", "!util/docker/web", "util/docker/web/foo"],
        "util/docker/web/foo",
        true,
    ),
    (
        &[
            "**",
            "!dist/proxy.py-2.4.0rc3.dev36+g08acad9-py3-none-any.whl",
        ],
        "dist/proxy.py-2.4.0rc3.dev36+g08acad9-py3-none-any.whl",
        false,
    ),
    (
        &["**", "!dist/*.whl"],
        "dist/proxy.py-2.4.0rc3.dev36+g08acad9-py3-none-any.whl",
        false,
    ),
    // moby's single tests.
    (&["!fileutils.go", "*.go"], "fileutils.go", true),
    (&["*.go", "!fileutils.go"], "fileutils.go", false),
    (&["docs", "!docs/README.md"], "docs/README.md", false),
    (&["docs/", "!docs/README.md"], "docs/README.md", false),
    (&["docs/*", "!docs/README.md"], "docs/README.md", false),
    (&["*"], "fileutils.go", true),
    (&["*.go"], "fileutils.go", true),
    (&["*.go"], ".", false),
    (&[], "/any/path/there", false),
    // Docker's documentation.
    (&["*.md", "!README.md"], "README.md", false),
    (&["*.md", "!README.md"], "CHANGES.md", true),
    (
        &["*.md", "!README*.md", "README-secret.md"],
        "README-secret.md",
        true,
    ),
    (
        &["*.md", "!README*.md", "README-secret.md"],
        "README-public.md",
        false,
    ),
    (
        &["*.md", "README-secret.md", "!README*.md"],
        "README-secret.md",
        false,
    ),
    (&["*", "!src"], "src/main.rs", false),
    (&["*", "!src"], "Cargo.toml", true),
    (&["**/*.go"], "a/b/c.go", true),
    (&["**/*.go"], "c.go", true),
    // An exception re-includes below an excluded directory, and a later rule re-excludes.
    (
        &["node_modules", "!node_modules/keep"],
        "node_modules/keep/x.js",
        false,
    ),
    (
        &["node_modules", "!node_modules/keep"],
        "node_modules/other.js",
        true,
    ),
    (
        &["node_modules", "!node_modules/keep", "**/*.map"],
        "node_modules/keep/x.map",
        true,
    ),
    (&["a", "!a/b", "a/b/c"], "a/b/c/d", true),
    (&["a", "!a/b", "a/b/c"], "a/b/x", false),
];

#[test]
fn single_patterns_like_moby() {
    for &(pattern, path, want) in SINGLE {
        let pm = matcher([pattern]);
        let desc = format!("pattern {pattern:?}, path {path:?}");
        assert_eq!(pm.matches_exact(path), want == Exact, "exact: {desc}");
        assert_eq!(pm.matches(path), want != Fail, "or-parent: {desc}");
        assert_eq!(walk(&pm, path), want != Fail, "walk: {desc}");
        let no_context = pm.matches_using_parent(path, MatchInfo::default()).0;
        assert_eq!(no_context, want != Fail, "no context: {desc}");
    }
}

#[test]
fn pattern_lists_like_moby() {
    for &(patterns, path, want) in MULTI {
        let pm = PatternMatcher::new(patterns).unwrap();
        let desc = format!("patterns {patterns:?}, path {path:?}");
        assert_eq!(pm.matches(path), want, "or-parent: {desc}");
        assert_eq!(walk(&pm, path), want, "walk: {desc}");
        let no_context = pm.matches_using_parent(path, MatchInfo::default()).0;
        assert_eq!(no_context, want, "no context: {desc}");
    }
}

/// moby `matchTests` (Go's `filepath.Match` tests), through the matcher: `None` is a
/// pattern the matcher refuses.
#[test]
fn filepath_match_cases_like_moby() {
    let cases: &[(&str, &str, Option<bool>)] = &[
        ("abc", "abc", Some(true)),
        ("*", "abc", Some(true)),
        ("*c", "abc", Some(true)),
        ("a*", "a", Some(true)),
        ("a*", "abc", Some(true)),
        ("a*", "ab/c", Some(true)),
        ("a*/b", "abc/b", Some(true)),
        ("a*/b", "a/c/b", Some(false)),
        ("a*b*c*d*e*/f", "axbxcxdxe/f", Some(true)),
        ("a*b*c*d*e*/f", "axbxcxdxexxx/f", Some(true)),
        ("a*b*c*d*e*/f", "axbxcxdxe/xxx/f", Some(false)),
        ("a*b*c*d*e*/f", "axbxcxdxexxx/fff", Some(false)),
        ("a*b?c*x", "abxbbxdbxebxczzx", Some(true)),
        ("a*b?c*x", "abxbbxdbxebxczzy", Some(false)),
        ("ab[c]", "abc", Some(true)),
        ("ab[b-d]", "abc", Some(true)),
        ("ab[e-g]", "abc", Some(false)),
        ("ab[^c]", "abc", Some(false)),
        ("ab[^b-d]", "abc", Some(false)),
        ("ab[^e-g]", "abc", Some(true)),
        ("a\\*b", "a*b", Some(true)),
        ("a\\*b", "ab", Some(false)),
        ("a?b", "a☺b", Some(true)),
        ("a[^a]b", "a☺b", Some(true)),
        ("a???b", "a☺b", Some(false)),
        ("a[^a][^a][^a]b", "a☺b", Some(false)),
        ("[a-ζ]*", "α", Some(true)),
        ("*[a-ζ]", "A", Some(false)),
        ("a?b", "a/b", Some(false)),
        ("a*b", "a/b", Some(false)),
        ("[\\]a]", "]", Some(true)),
        ("[\\-]", "-", Some(true)),
        ("[x\\-]", "x", Some(true)),
        ("[x\\-]", "-", Some(true)),
        ("[x\\-]", "z", Some(false)),
        ("[\\-x]", "x", Some(true)),
        ("[\\-x]", "-", Some(true)),
        ("[\\-x]", "a", Some(false)),
        ("[]a]", "]", None),
        ("[-]", "-", None),
        ("[x-]", "x", None),
        ("[x-]", "-", None),
        ("[x-]", "z", None),
        ("[-x]", "x", None),
        ("[-x]", "-", None),
        ("[-x]", "a", None),
        ("\\", "a", None),
        ("[a-b-c]", "a", None),
        ("[", "a", None),
        ("[^", "a", None),
        ("[^bc", "a", None),
        ("a[", "a", None),
        ("a[", "ab", None),
        ("*x", "xxx", Some(true)),
    ];
    for &(pattern, path, want) in cases {
        let got = PatternMatcher::new([pattern]).map(|pm| pm.matches(path));
        match want {
            Some(want) => assert_eq!(got, Ok(want), "{pattern:?} on {path:?}"),
            None => assert!(
                matches!(got, Err(PatternError::Syntax { .. })),
                "{pattern:?} on {path:?}: {got:?}"
            ),
        }
    }
}

/// moby `TestCleanPatterns*`, `TestSingleExclamationError`, `TestMatchesWithMalformedPatterns`.
#[test]
fn new_cleans_and_validates_like_moby() {
    assert_eq!(matcher(["docs", "config"]).patterns().len(), 2);
    assert_eq!(matcher(["docs", "config", ""]).patterns().len(), 2);
    assert_eq!(matcher(["docs", "  ", "\t"]).patterns().len(), 1);
    assert!(matcher(["docs", "!docs/README.md"]).has_exclusions());
    assert!(matcher(["docs", "  !docs/README.md"]).has_exclusions());
    assert!(matcher(["docs", "!docs/README.md  "]).has_exclusions());
    assert!(!matcher(["docs", "README.md"]).has_exclusions());
    assert!(!PatternMatcher::default().has_exclusions());
    assert_eq!(
        PatternMatcher::new(["!"]).unwrap_err(),
        PatternError::LoneExclamation
    );
    assert_eq!(
        PatternMatcher::new(["ok", "  [ "]).unwrap_err(),
        PatternError::Syntax {
            pattern: "[".into(),
            problem: SyntaxProblem::UnterminatedClass
        }
    );
    // Docker accepts `[Local-Only]` here and fails every match; we refuse it up front.
    assert!(matches!(
        PatternMatcher::new(["[Local-Only]/"]),
        Err(PatternError::Syntax {
            problem: SyntaxProblem::Regex { .. },
            ..
        })
    ));

    let pm = matcher(["./a/b/", "!/c/../d", "x//y", "!!z"]);
    let shown: Vec<(&str, bool)> = pm
        .patterns()
        .iter()
        .map(|p| (p.as_str(), p.is_exclusion()))
        .collect();
    // `New` cleans the whole line, `!` included: `!/c/../d` is the exception `/d`
    // (which matches no relative path); read_ignore_file would have made it `!d`.
    assert_eq!(
        shown,
        [("a/b", false), ("/d", true), ("x/y", false), ("!z", true)]
    );
}

#[test]
fn error_messages() {
    let err = PatternMatcher::new(["a/[b"]).unwrap_err();
    assert_eq!(err.to_string(), "syntax error in pattern \"a/[b\"");
    let source = std::error::Error::source(&err).map(|s| s.to_string());
    assert_eq!(source.as_deref(), Some("unterminated character class `[`"));
    assert_eq!(
        PatternMatcher::new(["!"]).unwrap_err().to_string(),
        "illegal exclusion pattern: \"!\""
    );
}

/// Docker's two evaluations disagree when an exception follows a pattern that only
/// matches below the exception's directory; we keep both, as BuildKit's walker and
/// `MatchesOrParentMatches` behave.
#[test]
fn walker_differs_from_or_parent_like_docker() {
    let pm = matcher(["a/b", "!a"]);
    assert!(!pm.matches("a/b"));
    assert!(walk(&pm, "a/b"));
    // Without any knowledge of the parent, the walker evaluation equals `matches`.
    assert!(!pm.matches_using_parent("a/b", MatchInfo::default()).0);
}

#[test]
fn match_info_is_passed_down() {
    let pm = matcher(["docs", "!docs/README.md", "**/*.tmp"]);
    let (docs, info) = pm.matches_using_parent("docs", MatchInfo::default());
    assert!(docs);
    let (readme, _) = pm.matches_using_parent("docs/README.md", info.clone());
    assert!(!readme);
    let (other, _) = pm.matches_using_parent("docs/guide.md", info.clone());
    assert!(other);
    // The parent's result is trusted: a pattern that matched `docs` is not re-checked.
    let (renamed, _) = pm.matches_using_parent("elsewhere/x", info);
    assert!(renamed);
    // A MatchInfo of another matcher counts as no knowledge.
    let foreign = matcher(["zzz"])
        .matches_using_parent("zzz", MatchInfo::default())
        .1;
    assert!(!pm.matches_using_parent("src/x", foreign.clone()).0);
    assert!(pm.matches_using_parent("docs/x", foreign).0);
}

/// xorshift64*: deterministic pseudo-random numbers without a dependency.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }

    fn below(&mut self, n: usize) -> usize {
        (self.next() % n as u64) as usize
    }

    fn string(&mut self, alphabet: &[&str], max_len: usize) -> String {
        let len = self.below(max_len + 1);
        (0..len)
            .map(|_| alphabet[self.below(alphabet.len())])
            .collect()
    }
}

/// No input panics, `matches` is deterministic and agrees with the walker's evaluation
/// whenever Docker's two evaluations must agree.
#[test]
fn random_patterns_and_paths_never_panic() {
    // Tokens separated by `|` (which itself needs no testing: Docker escapes it).
    let pattern_alphabet: Vec<&str> =
        "a|b|/|*|**|?|[|]|^|!|-|\\|.|..| |\n|é|☺|{|$|#|\r|\\d|\\b|\\Q|\\E|\\x4|\\0|[[:|:]|[:^digit:]]|\u{feff}"
            .split('|')
            .collect();
    let segment_alphabet: Vec<&str> = "a|b|*|[|]|-|\n|é|!|.|\\| |5|_|$".split('|').collect();
    let mut rng = Rng(0x9e37_79b9_7f4a_7c15);
    let mut compiled = 0;
    for _ in 0..4000 {
        let count = rng.below(4);
        let patterns: Vec<String> = (0..count)
            .map(|_| rng.string(&pattern_alphabet, 10))
            .collect();
        // Reading them as a file must not panic either.
        let _ = PatternMatcher::new(read_ignore_file(&patterns.join("\n")));
        let Ok(pm) = PatternMatcher::new(&patterns) else {
            continue;
        };
        compiled += 1;
        let clone = pm.clone();
        for _ in 0..4 {
            let depth = 1 + rng.below(4);
            let segments: Vec<String> = (0..depth)
                .map(|_| loop {
                    let segment = rng.string(&segment_alphabet, 4);
                    if !matches!(segment.as_str(), "" | "." | "..") {
                        break segment;
                    }
                })
                .collect();
            let path = segments.join("/");
            let result = pm.matches(&path);
            assert_eq!(result, pm.matches(&path), "{patterns:?} {path:?}");
            assert_eq!(result, clone.matches(&path), "{patterns:?} {path:?}");
            let no_context = pm.matches_using_parent(&path, MatchInfo::default()).0;
            assert_eq!(result, no_context, "{patterns:?} {path:?}");
            if !pm.has_exclusions() {
                assert_eq!(result, walk(&pm, &path), "{patterns:?} {path:?}");
            }
            let _ = pm.matches_exact(&path);
            // Odd path shapes are fine too.
            for odd in ["", "/", "//", &format!("/{path}/"), &format!("./{path}")] {
                assert_eq!(pm.matches(odd), clone.matches(odd));
            }
        }
    }
    // The generator must exercise the matcher, not only the error paths.
    assert!(compiled > 1000, "only {compiled} pattern lists compiled");
}
