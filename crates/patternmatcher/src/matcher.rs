//! A list of patterns and Docker's rules for combining them.

use crate::error::{PatternError, SyntaxProblem};
use crate::path::{ancestors, clean, dir};
use crate::pattern::Pattern;

/// The patterns of a `.dockerignore`, applied with Docker's rules: the last pattern that
/// matches a path decides (`!` re-includes), and a pattern matches a path when it matches
/// the path itself or one of its parent directories.
///
/// Paths are `/`-separated and relative to the context root, cleaned as a walker produces
/// them (`a/b`, not `./a/b` or `a/b/`); like Docker, they are not cleaned here.
#[derive(Clone, Debug, Default)]
pub struct PatternMatcher {
    patterns: Vec<Pattern>,
    exclusions: bool,
}

/// What a directory's evaluation learnt, handed to its children by
/// [`PatternMatcher::matches_using_parent`]. The default value means "nothing known",
/// which is right for entries at the context root.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct MatchInfo {
    /// For each pattern, whether it matched the directory or one of its ancestors.
    parent_matched: Vec<bool>,
}

impl PatternMatcher {
    /// Compiles patterns as Docker does (moby `patternmatcher.New`): each is trimmed,
    /// blank ones are skipped, the rest are cleaned (Go's `filepath.Clean`), then a leading
    /// `!` makes an exception. Patterns usually come from [`read_ignore_file`](crate::read_ignore_file).
    ///
    /// Docker checks only the glob syntax here and reports a regex it cannot build (like
    /// the reversed range of `[z-a]`) when that pattern is first evaluated; we refuse both
    /// here.
    pub fn new<I, S>(patterns: I) -> Result<Self, PatternError>
    where
        I: IntoIterator<Item = S>,
        S: AsRef<str>,
    {
        let mut matcher = PatternMatcher::default();
        for pattern in patterns {
            let trimmed = pattern.as_ref().trim();
            if trimmed.is_empty() {
                continue;
            }
            let cleaned = clean(trimmed);
            let (text, exclusion) = match cleaned.strip_prefix('!') {
                Some("") => return Err(PatternError::LoneExclamation),
                Some(rest) => (rest.to_owned(), true),
                None => (cleaned, false),
            };
            let syntax_error = |problem: SyntaxProblem| PatternError::Syntax {
                pattern: trimmed.to_owned(),
                problem,
            };
            matcher
                .patterns
                .push(Pattern::new(text, exclusion).map_err(syntax_error)?);
            matcher.exclusions |= exclusion;
        }
        Ok(matcher)
    }

    /// Whether `path` is matched: the last pattern matching it or one of its parent
    /// directories decides (moby `MatchesOrParentMatches`). For a `.dockerignore`, `true`
    /// means excluded from the context.
    pub fn matches(&self, path: &str) -> bool {
        let parent = dir(path);
        let mut matched = false;
        for pattern in &self.patterns {
            // Only an inclusion can change an unmatched path, only an exception a matched one.
            if pattern.is_exclusion() != matched {
                continue;
            }
            if pattern.matches(path) || parent_matches(pattern, &parent) {
                matched = !pattern.is_exclusion();
            }
        }
        matched
    }

    /// Like [`matches`](Self::matches) but without parent matching: only patterns that
    /// match `path` itself count (moby `MatchesExact`).
    pub fn matches_exact(&self, path: &str) -> bool {
        let mut matched = false;
        for pattern in &self.patterns {
            if pattern.is_exclusion() != matched {
                continue;
            }
            if pattern.matches(path) {
                matched = !pattern.is_exclusion();
            }
        }
        matched
    }

    /// For walkers: whether `path` is matched, given what its parent directory's call
    /// returned (pass [`MatchInfo::default()`] for entries at the root); the returned
    /// [`MatchInfo`] is for `path`'s own children. A pattern that matched the parent is not
    /// evaluated again (moby `MatchesUsingParentResults`, which BuildKit's context walker
    /// uses).
    ///
    /// This is Docker's walker semantics, which differ from [`matches`](Self::matches) in
    /// one corner: an exception skipped for a directory (because nothing had matched it
    /// yet) is later tried on the children alone, not on the directory again. With
    /// `a/b` then `!a`, `matches("a/b")` is false but a walk excludes `a/b`.
    ///
    /// A `MatchInfo` from a different matcher is treated as the default (no knowledge).
    pub fn matches_using_parent(&self, path: &str, parent: MatchInfo) -> (bool, MatchInfo) {
        let known =
            !parent.parent_matched.is_empty() && parent.parent_matched.len() == self.patterns.len();
        let mut info = if known {
            parent.parent_matched
        } else {
            vec![false; self.patterns.len()]
        };
        let mut parent_dir = None;
        let mut matched = false;
        for (pattern, pattern_matched) in self.patterns.iter().zip(info.iter_mut()) {
            let mut hit = known && *pattern_matched;
            if !hit {
                if pattern.is_exclusion() != matched {
                    *pattern_matched = false;
                    continue;
                }
                hit = pattern.matches(path)
                    || (!known
                        && parent_matches(pattern, parent_dir.get_or_insert_with(|| dir(path))));
            }
            *pattern_matched = hit;
            if hit {
                matched = !pattern.is_exclusion();
            }
        }
        (
            matched,
            MatchInfo {
                parent_matched: info,
            },
        )
    }

    /// Whether any pattern is an exception (`!`): then a walker cannot skip an excluded
    /// directory wholesale, since something below it may be re-included.
    pub fn has_exclusions(&self) -> bool {
        self.exclusions
    }

    /// The compiled patterns, in order.
    pub fn patterns(&self) -> &[Pattern] {
        &self.patterns
    }
}

/// Whether `pattern` matches one of the directories of `parent` (a `dir()` result).
fn parent_matches(pattern: &Pattern, parent: &str) -> bool {
    parent != "." && ancestors(parent).any(|ancestor| pattern.matches(ancestor))
}

#[cfg(test)]
mod tests;
