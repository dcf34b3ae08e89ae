//! Why a pattern was refused.

/// A pattern Docker would refuse.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PatternError {
    /// A line that is only `!`: an exception of nothing.
    #[error("illegal exclusion pattern: \"!\"")]
    LoneExclamation,
    /// A pattern that is not valid glob syntax.
    #[error("syntax error in pattern {pattern:?}")]
    Syntax {
        /// The pattern as given (trimmed).
        pattern: String,
        /// What is wrong with it.
        #[source]
        problem: SyntaxProblem,
    },
}

/// What is wrong with a pattern's syntax (Go's `filepath.ErrBadPattern` cases, plus a
/// reversed range, which Docker's regex translation rejects).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SyntaxProblem {
    /// A `\` at the end of the pattern escapes nothing.
    #[error("trailing `\\` escapes nothing")]
    TrailingBackslash,
    /// A `[` without its closing `]`.
    #[error("unterminated character class `[`")]
    UnterminatedClass,
    /// A `-` or `]` where a class member was expected: `[]`, `[-a]`, `[a-]`, `[a-b-c]`.
    #[error("expected a character in a class, found `{0}` (escape it with `\\`)")]
    MisplacedInClass(char),
    /// Docker turns the pattern into a Go regex, which Go's `regexp` refuses: a reversed
    /// range (`[z-a]`), an unknown escape (`\e`) or POSIX class (`[[:foo:]]`)...
    /// Docker reports it when the pattern is first evaluated; we refuse it up front.
    #[error("Docker's regex for it is invalid at `{fragment}`: {reason}")]
    Regex {
        /// The part of Docker's regex that Go rejects.
        fragment: String,
        /// Go's reason.
        reason: &'static str,
    },
    /// Docker's regex for the pattern uses what we do not implement: Unicode classes
    /// (`\pL`, `\PN`), which a pattern gets by writing `\p`.
    #[error("Docker's regex for it uses `{fragment}`, which is not supported")]
    Unsupported {
        /// The construct.
        fragment: String,
    },
}
