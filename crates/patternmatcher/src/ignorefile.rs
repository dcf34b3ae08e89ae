//! Reading a `.dockerignore` file into patterns (moby `ignorefile.ReadAll`).

use crate::path::clean;

/// Parses a `.dockerignore` file's content into patterns for [`PatternMatcher::new`]
/// (moby `ignorefile.ReadAll`):
///
/// - a UTF-8 byte order mark at the start is dropped; lines end at `\n` or `\r\n`;
/// - a line whose first character is `#` is a comment (`  #x` is a pattern, not a comment);
/// - each other line is trimmed, and skipped when blank;
/// - a leading `!` marks an exception; the rest is trimmed again, cleaned (Go's
///   `filepath.Clean`: `./a/` is `a`, `a/../b` is `b`) and loses a leading `/` (`/a` is
///   `a`, but `/` stays `/`).
///
/// A line that is only `!` is kept as `"!"`, which [`PatternMatcher::new`] refuses, as
/// Docker does. (Go's reader also fails on a line longer than 64 KiB; we do not.)
///
/// [`PatternMatcher::new`]: crate::PatternMatcher::new
pub fn read_ignore_file(content: &str) -> Vec<String> {
    let content = content.strip_prefix('\u{feff}').unwrap_or(content);
    let mut patterns = Vec::new();
    for line in content.lines() {
        if line.starts_with('#') {
            continue;
        }
        let mut pattern = line.trim();
        if pattern.is_empty() {
            continue;
        }
        let exception = pattern.starts_with('!');
        if exception {
            pattern = pattern[1..].trim();
        }
        let mut cleaned = String::new();
        if exception {
            cleaned.push('!');
        }
        if !pattern.is_empty() {
            let path = clean(pattern);
            match path.strip_prefix('/') {
                Some(relative) if !relative.is_empty() => cleaned.push_str(relative),
                _ => cleaned.push_str(&path),
            }
        }
        patterns.push(cleaned);
    }
    patterns
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{PatternError, PatternMatcher};

    /// moby/patternmatcher `ignorefile.TestReadAll`.
    #[test]
    fn read_all_like_moby() {
        assert!(read_ignore_file("").is_empty());
        let content = "test1\n/test2\n/a/file/here\n\nlastfile\n# this is a comment\n! /inverted/abs/path\n!\n! ";
        assert_eq!(
            read_ignore_file(content),
            [
                "test1",
                "test2",
                "a/file/here",
                "lastfile",
                "!inverted/abs/path",
                "!",
                "!",
            ]
        );
    }

    #[test]
    fn lines_are_read_like_go() {
        let cases: &[(&str, &[&str])] = &[
            // BOM only at the very start; CRLF line ends; no final newline needed.
            ("\u{feff}a\r\nb\r\n", &["a", "b"]),
            ("a\n\u{feff}b", &["a", "\u{feff}b"]),
            // `#` only in the first column makes a comment.
            ("#a\n  #b\n\t# c", &["#b", "# c"]),
            // Trimming, including Unicode spaces, and blank lines.
            ("  a  \n\u{a0}b\u{3000}\n \t \n\n", &["a", "b"]),
            // Cleaning and the leading slash, for patterns and exceptions alike.
            (
                "./a/\n/\n//x//y/\n!./z/../w\n! /abs\n/..\n.\n..",
                &["a", "/", "x/y", "!w", "!abs", "/", ".", ".."],
            ),
            ("**/\n/**/*.go\n!**/keep/", &["**", "**/*.go", "!**/keep"]),
            // Nothing is unescaped or interpreted beyond that.
            ("a\\ b\n\\#c\n[a-z]", &["a\\ b", "\\#c", "[a-z]"]),
        ];
        for &(content, want) in cases {
            assert_eq!(read_ignore_file(content), want, "{content:?}");
        }
    }

    /// Docker's documentation: `/foo/bar` and `foo/bar` both exclude `foo/bar`, and
    /// nothing else.
    #[test]
    fn leading_slash_means_context_root() {
        for content in ["/foo/bar", "foo/bar", "./foo/bar/"] {
            let pm = PatternMatcher::new(read_ignore_file(content)).unwrap();
            assert!(pm.matches("foo/bar"), "{content:?}");
            assert!(pm.matches("foo/bar/baz"), "{content:?}");
            assert!(!pm.matches("foo"), "{content:?}");
            assert!(!pm.matches("x/foo/bar"), "{content:?}");
        }
    }

    #[test]
    fn lone_exclamation_is_refused_by_the_matcher() {
        let patterns = read_ignore_file("a\n!  \n");
        assert_eq!(patterns, ["a", "!"]);
        assert_eq!(
            PatternMatcher::new(&patterns).unwrap_err(),
            PatternError::LoneExclamation
        );
    }
}
