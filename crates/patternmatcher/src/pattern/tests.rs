use super::*;

fn compiled(text: &str) -> Pattern {
    Pattern::new(text.to_owned(), false).unwrap_or_else(|e| panic!("{text:?}: {e}"))
}

#[derive(Clone, Copy, Debug, PartialEq)]
enum K {
    Exact,
    Prefix,
    Suffix,
    Regexp(&'static str),
}

/// moby/patternmatcher `TestCompile`: the match kind, and for regexes the regex.
#[test]
fn compile_classifies_like_moby() {
    let cases = [
        ("*", K::Regexp(r"^[^/]*$")),
        ("file*", K::Regexp(r"^file[^/]*$")),
        ("*file", K::Regexp(r"^[^/]*file$")),
        ("a*/b", K::Regexp(r"^a[^/]*/b$")),
        ("**", K::Suffix),
        ("**/**", K::Regexp(r"^(.*/)?.*$")),
        ("dir/**", K::Prefix),
        ("**/dir", K::Suffix),
        ("**/dir2/*", K::Regexp(r"^(.*/)?dir2/[^/]*$")),
        ("**/dir2/**", K::Regexp(r"^(.*/)?dir2/.*$")),
        ("**file", K::Suffix),
        ("**/file*txt", K::Regexp(r"^(.*/)?file[^/]*txt$")),
        ("**/**/*.txt", K::Regexp(r"^(.*/)?(.*/)?[^/]*\.txt$")),
        ("a[b-d]e", K::Regexp(r"^a[b-d]e$")),
        (".*", K::Regexp(r"^\.[^/]*$")),
        ("abc.def", K::Exact),
        ("abc?def", K::Regexp(r"^abc[^/]def$")),
        ("**/foo/bar", K::Suffix),
        ("a(b)c/def", K::Exact),
        ("a.|)$(}+{bc", K::Exact),
        (
            "dist/proxy.py-2.4.0rc3.dev36+g08acad9-py3-none-any.whl",
            K::Exact,
        ),
        // Beyond moby's table.
        ("a**b", K::Regexp(r"^a(.*/)?b$")),
        ("a]b", K::Regexp(r"^a]b$")),
        (r"a\*b", K::Regexp(r"^a\*b$")),
        ("**]", K::Regexp(r"^(.*/)?]$")),
        ("[*?]", K::Regexp(r"^[[^/]*[^/]]$")),
        (r"\d\Qx", K::Regexp(r"^\d\Qx$")),
        ("\u{feff}**/x*", K::Regexp(r"^(.*/)?x[^/]*$")),
        ("a^b*", K::Regexp(r"^a^b[^/]*$")),
        ("a^b", K::Exact),
        ("abc**", K::Prefix),
        ("x/**/y/**", K::Regexp(r"^x/(.*/)?y/.*$")),
    ];
    for (text, want) in cases {
        let got = classify(text);
        let same = match (&got, want) {
            (Detected::Exact, K::Exact)
            | (Detected::Prefix(_), K::Prefix)
            | (Detected::Suffix, K::Suffix) => true,
            (Detected::Regex(regex), K::Regexp(want)) => regex == want,
            _ => false,
        };
        assert!(same, "{text:?}: got {got:?}, want {want:?}");
        compiled(text);
    }
}

/// The bad patterns of moby's `matchTests` (from Go's `filepath.Match` tests), plus a
/// reversed range, which Go's regexp refuses (moby `TestMatchesOrParentMatches
/// MalformedPatternDoesNotPanicOnRepeatedCall` uses `[Local-Only]`).
#[test]
fn bad_syntax_is_refused() {
    use SyntaxProblem::*;
    let cases = [
        ("[]a]", MisplacedInClass(']')),
        ("[-]", MisplacedInClass('-')),
        ("[x-]", MisplacedInClass(']')),
        ("[-x]", MisplacedInClass('-')),
        ("\\", TrailingBackslash),
        ("a\\", TrailingBackslash),
        ("[a-b-c]", MisplacedInClass('-')),
        ("[", UnterminatedClass),
        ("[^", UnterminatedClass),
        ("[^bc", UnterminatedClass),
        ("a[", UnterminatedClass),
        ("[a", UnterminatedClass),
        ("[\\", UnterminatedClass),
        ("[a\\", UnterminatedClass),
        ("[^]", MisplacedInClass(']')),
        ("[]", MisplacedInClass(']')),
        ("**/x[", UnterminatedClass),
    ];
    for (text, want) in cases {
        assert_eq!(Pattern::new(text.to_owned(), false), Err(want), "{text:?}");
    }
}

/// Patterns whose regex Go refuses, and the one construct we do not implement.
#[test]
fn bad_regex_is_refused() {
    let regex = |fragment: &str, reason| SyntaxProblem::Regex {
        fragment: fragment.to_owned(),
        reason,
    };
    let cases = [
        ("[z-a]", regex("z-a", "invalid character class range")),
        (
            "[Local-Only]",
            regex("l-O", "invalid character class range"),
        ),
        (
            "x[[:foo:]]",
            regex("[:foo:]", "invalid character class range"),
        ),
        (r"a\e", regex(r"\e", "invalid escape sequence")),
        (r"a\C", regex(r"\C", "invalid escape sequence")),
        (r"\1x", regex(r"\1", "invalid escape sequence")),
        (r"\8", regex(r"\8", "invalid escape sequence")),
        (r"\xZZ", regex(r"\xZZ", "invalid escape sequence")),
        (r"\é", regex(r"\é", "invalid escape sequence")),
        (r"[\q]", regex(r"\q", "invalid escape sequence")),
        (
            r"\pL",
            SyntaxProblem::Unsupported {
                fragment: r"\pL".into(),
            },
        ),
    ];
    for (text, want) in cases {
        assert_eq!(
            Pattern::new(text.to_owned(), false).map(|_| ()),
            Err(want),
            "{text:?}"
        );
    }
}

/// What Docker's regex translation makes of brackets and escapes that `filepath.Match`
/// would read differently; checked against moby/patternmatcher built with Go.
#[test]
fn regex_accidents_match_docker() {
    let cases: &[(&str, &str, bool)] = &[
        // `*` and `?` inside brackets are rewritten first: `[*]` is `[[^/]*]`.
        ("[*]", "]", true),
        ("[*]", "[^]", true),
        ("[*]", "*", false),
        ("[?]", "[]", true),
        ("[?]", "?", false),
        ("[a**]", "(", true),
        // Escaped letters are Go regex escapes.
        (r"\d", "5", true),
        (r"\d", "d", false),
        (r"[\w.]x", "_x", true),
        (r"[\D]", "5", false),
        (r"a\tb", "a\tb", true),
        (r"a\tb", "atb", false),
        (r"\x41", "A", true),
        (r"\101", "A", true),
        (r"a\_", "a_", true),
        // POSIX classes work inside brackets.
        ("[[:alpha:]]", "a", true),
        ("[[:alpha:]]", "[", false),
        ("[[:^digit:]]", "x", true),
        ("[[:^digit:]]", "1", false),
        // Word boundaries and text anchors.
        (r"\bfoo", "foo", true),
        (r"a\bb", "ab", false),
        (r"a\Bb", "ab", true),
        (r"\Aab*", "abc", true),
        (r"ab\z*", "ab", true),
        (r"ab\z*", "abc", false),
        // `\Q` quotes the rest, the final `$` too: a prefix match on literal text.
        (r"\Qa.b", r"a\.b$", true),
        (r"\Qa.b", r"a\.b$/x", true),
        (r"\Qa.b", "a.b", false),
        (r"\Qa\E*", "abc", true),
    ];
    for &(text, path, want) in cases {
        assert_eq!(compiled(text).matches(path), want, "{text:?} on {path:?}");
    }
}

/// Single-pattern matches (no parent matching), including Docker's quirks, which we keep
/// because a `.dockerignore` must select the same files here as under `docker build`.
#[test]
fn single_pattern_matches() {
    let cases: &[(&str, &str, bool)] = &[
        // `[!...]` is not a negation in Go: `!` is a member.
        ("[!a]", "!", true),
        ("[!a]", "a", true),
        ("[!a]", "b", false),
        ("[^a]", "b", true),
        ("[^a]", "a", false),
        // Classes may match `/` (Go's filepath.Match and Docker's regex agree).
        ("a[/]b", "a/b", true),
        ("a[^x]b", "a/b", true),
        (r"[\]a]", "]", true),
        (r"[\-]", "-", true),
        (r"[x\-]", "x", true),
        (r"[x\-]", "z", false),
        ("[a-ζ]*", "α", true),
        ("*[a-ζ]", "A", false),
        // A bare `]` is a literal.
        ("a]b", "a]b", true),
        // Escapes.
        (r"a\*b", "a*b", true),
        (r"a\*b", "axb", false),
        (r"a\\", r"a\", true),
        (r"a\/b", "a/b", true),
        // `**` as a suffix compares raw text: `**file` matches `myfile`.
        ("**file", "myfile", true),
        ("**file", "dir/myfile", true),
        ("**/file", "myfile", false),
        ("**/file", "file", true),
        ("**", "", true),
        // `**` inside a name is `(.*/)?`: it matches directories, not characters.
        ("a**b", "ab", true),
        ("a**b", "a/x/b", true),
        ("a**b", "axb", false),
        // `literal**` is a prefix: `abc**` matches `abcdef` and `abc` itself.
        ("abc**", "abc", true),
        ("abc**", "abcdef/x", true),
        ("dir/**", "dir", false),
        // `.` in Docker's regex does not match a newline, so neither does a regex `**`…
        ("**/*.txt", "a\nb/c.txt", false),
        ("**/*.txt", "ab/c.txt", true),
        ("x/**/y", "x/a\nb/y", false),
        ("x/**/y", "x/ab/y", true),
        ("x/*/**", "x/a/b\nc", false),
        // …but `*`, `?` and classes do, and prefix/suffix patterns compare raw text.
        ("*.txt", "a\nb.txt", true),
        ("a?b", "a\nb", true),
        ("x/**", "x/a\nb", true),
        ("**/y", "a\nb/y", true),
        // Docker leaves `^` unescaped in its regex, where it anchors at the start…
        ("a^b*", "a^bc", false),
        ("^ab*", "abc", true),
        ("^ab*", "^abc", false),
        // …but a pattern without wildcards compares text, so there `^` is literal.
        ("a^b", "a^b", true),
        ("[a^]", "^", true),
        // Characters special to regexes are literals.
        ("a.c*", "abcd", false),
        ("a.c*", "a.cd", true),
        ("a+(b)|{c}$*", "a+(b)|{c}$x", true),
        // Unicode is matched by character.
        ("a?b", "a☺b", true),
        ("a???b", "a☺b", false),
        ("é*", "été", true),
    ];
    for &(text, path, want) in cases {
        assert_eq!(compiled(text).matches(path), want, "{text:?} on {path:?}");
    }
}

#[test]
fn display_and_accessors() {
    let p = Pattern::new("docs/*.md".to_owned(), true).unwrap();
    assert_eq!(p.as_str(), "docs/*.md");
    assert!(p.is_exclusion());
    assert_eq!(p.to_string(), "!docs/*.md");
    assert_eq!(compiled("x").to_string(), "x");
}

/// Many `*` and `**` on a long path: the NFA stays linear where a backtracker would not.
#[test]
fn pathological_pattern_is_fast_and_correct() {
    let pattern = compiled(&"*a".repeat(30));
    let path = "a".repeat(10_000) + "b";
    assert!(!pattern.matches(&path));
    assert!(pattern.matches(&"a".repeat(60)));
    let many = compiled(&("**/".repeat(5_000) + "z"));
    assert!(matches!(many.kind, Kind::Regex(_)));
    assert!(many.matches("z"));
    assert!(many.matches("a/b/z"));
    assert!(!many.matches("q"));
}
