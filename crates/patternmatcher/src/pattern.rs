//! One pattern: its syntax check and how it matches a single path.
//!
//! Docker checks a pattern with Go's `filepath.Match` grammar ([`glob`]), then classifies
//! it: without wildcards it is compared as a string, `literal**` as a string prefix and
//! `**literal` as a string suffix (so `**file` matches `myfile`). Anything else becomes a
//! Go regex, written character by character: `*` is `[^/]*`, `?` is `[^/]`, `**/` in
//! the middle is `(.*/)?` and `**` at the end `.*`, `.+()|{}$` are escaped, and
//! everything else — `[`, `]`, `^`, `\x` — is passed through. We build the same regex
//! text and give it Go's meaning ([`regex`], [`nfa`]), so that even the accidents agree:
//! `[*]` becomes `[[^/]*]`, `\d` a digit class, a stray `^` an anchor, and `.` in `**`
//! never matches a newline.

mod glob;
mod nfa;
mod regex;

use std::fmt;

use crate::error::SyntaxProblem;
use nfa::Inst;

/// One cleaned pattern of a [`PatternMatcher`](crate::PatternMatcher).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Pattern {
    text: String,
    exclusion: bool,
    kind: Kind,
}

/// How a pattern is evaluated: Docker's `exactMatch`, `prefixMatch`, `suffixMatch` and
/// `regexpMatch`.
#[derive(Clone, Debug, PartialEq, Eq)]
enum Kind {
    /// The path equals the pattern.
    Exact,
    /// The path starts with the pattern's first bytes (the text before `**`).
    Prefix(usize),
    /// The path ends with the pattern's bytes after `**`, or equals them without a `/`.
    Suffix,
    /// Docker's regex, compiled.
    Regex(Vec<Inst>),
}

impl Pattern {
    /// Checks and compiles a cleaned pattern (without its `!`).
    pub(crate) fn new(text: String, exclusion: bool) -> Result<Self, SyntaxProblem> {
        glob::check(&text)?;
        let kind = match classify(&text) {
            Detected::Exact => Kind::Exact,
            Detected::Prefix(len) => Kind::Prefix(len),
            Detected::Suffix => Kind::Suffix,
            Detected::Regex(regex) => Kind::Regex(regex::compile(&regex)?),
        };
        Ok(Pattern {
            text,
            exclusion,
            kind,
        })
    }

    /// The cleaned pattern, without the `!` of an exception.
    pub fn as_str(&self) -> &str {
        &self.text
    }

    /// Whether this is an exception (`!pattern`), which re-includes what it matches.
    pub fn is_exclusion(&self) -> bool {
        self.exclusion
    }

    /// Whether this pattern alone matches `path` itself (no parent matching; the `!` is
    /// ignored).
    pub fn matches(&self, path: &str) -> bool {
        match &self.kind {
            Kind::Exact => path == self.text,
            Kind::Prefix(len) => path.starts_with(&self.text[..*len]),
            Kind::Suffix => {
                // Raw bytes after the leading `**`, as Go slices them (a leading byte
                // order mark, which the regex scanner would skip, is not special here).
                let (path, suffix) = (path.as_bytes(), &self.text.as_bytes()[2..]);
                path.ends_with(suffix) || suffix.strip_prefix(b"/") == Some(path)
            }
            Kind::Regex(program) => nfa::matches(program, path),
        }
    }
}

/// Shows the pattern as written in a `.dockerignore`, with `!` for an exception.
impl fmt::Display for Pattern {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.exclusion {
            f.write_str("!")?;
        }
        f.write_str(&self.text)
    }
}

#[derive(Debug, PartialEq, Eq)]
enum Detected {
    Exact,
    Prefix(usize),
    Suffix,
    Regex(String),
}

/// Docker's `compile`: walks the pattern as Go's `text/scanner` does (a leading byte
/// order mark is skipped), writing the regex and deciding the kind. It starts exact;
/// `*`, `?`, `[`, `]` and an escape make it a regex; `**` at the end of a still-exact
/// pattern makes it a prefix; `**` first makes it a suffix until something later makes
/// it a regex.
fn classify(text: &str) -> Detected {
    #[derive(Clone, Copy, PartialEq)]
    enum State {
        Exact,
        Prefix(usize),
        Suffix,
        Regex,
    }
    let body = text.strip_prefix('\u{feff}').unwrap_or(text);
    let skipped = text.len() - body.len();
    let mut chars = body.char_indices().peekable();
    let mut regex = String::from("^");
    let mut state = State::Exact;
    let mut first = true;
    while let Some((offset, c)) = chars.next() {
        match c {
            '*' if chars.next_if(|&(_, c)| c == '*').is_some() => {
                // `**/` is `**`: the slash belongs to it.
                chars.next_if(|&(_, c)| c == '/');
                if chars.peek().is_none() {
                    if state == State::Exact {
                        state = State::Prefix(skipped + offset);
                    } else {
                        regex.push_str(".*");
                        state = State::Regex;
                    }
                } else {
                    regex.push_str("(.*/)?");
                    state = State::Regex;
                }
                if first {
                    state = State::Suffix;
                }
            }
            '*' => {
                regex.push_str("[^/]*");
                state = State::Regex;
            }
            '?' => {
                regex.push_str("[^/]");
                state = State::Regex;
            }
            '.' | '+' | '(' | ')' | '|' | '{' | '}' | '$' => {
                regex.push('\\');
                regex.push(c);
            }
            '\\' => {
                regex.push('\\');
                // A trailing `\` stays as it is (the syntax check refuses it anyway).
                if let Some((_, escaped)) = chars.next() {
                    regex.push(escaped);
                    state = State::Regex;
                }
            }
            '[' | ']' => {
                regex.push(c);
                state = State::Regex;
            }
            c => regex.push(c),
        }
        first = false;
    }
    regex.push('$');
    match state {
        State::Exact => Detected::Exact,
        State::Prefix(len) => Detected::Prefix(len),
        State::Suffix => Detected::Suffix,
        State::Regex => Detected::Regex(regex),
    }
}

#[cfg(test)]
mod tests;
