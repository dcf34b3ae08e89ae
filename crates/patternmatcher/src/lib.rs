//! `.dockerignore` patterns with Docker's semantics (moby/patternmatcher), which are not
//! gitignore's: patterns are anchored at the context root, `**` matches any number of
//! path segments, `!` re-includes, the last matching pattern wins, and a path is excluded
//! when it or one of its parents matches.
//!
//! [`read_ignore_file`] turns a file into patterns (comments, trimming, cleaning, leading
//! `/` removal) and [`PatternMatcher`] applies them to `/`-separated paths relative to the
//! context root. The glob is Go's `filepath.Match` (`*` and `?` stop at `/`, `[...]`
//! classes negated by `^` — not `!`, which is a member — and `\` escapes) plus `**`.
//!
//! Docker does not run that glob, though: it compares simple patterns as strings and
//! rewrites the rest into Go regexes, with accidents: `**file` also matches `myfile`,
//! `**` never crosses a newline, `[*]` means `[[^/]*]`, `\d` is a digit and a stray `^`
//! an anchor. We classify patterns the same way, build the same regex text and give it
//! Go's meaning, because a context must hold the same files here as under
//! `docker build` (a differential run against moby/patternmatcher, built with Go, agreed
//! on half a million random pattern lists). What we do differently: a pattern whose regex
//! Go rejects (`[z-a]`, `\e`) is refused by [`PatternMatcher::new`], where Docker fails
//! only once that pattern is evaluated, and Unicode classes (`\pL`) are refused, not
//! supported.
//!
//! Shared by the frontend (lint rule CopyIgnoredFile, local source selectors) and the
//! solver (context transfer). Depends on no other workspace crate.

mod error;
mod ignorefile;
mod matcher;
mod path;
mod pattern;

pub use error::{PatternError, SyntaxProblem};
pub use ignorefile::read_ignore_file;
pub use matcher::{MatchInfo, PatternMatcher};
pub use pattern::Pattern;
