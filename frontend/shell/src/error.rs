//! Why a word could not be expanded.

use std::fmt;

use crate::pattern::PatternError;

/// Which quote was left open.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Quote {
    /// `'`
    Single,
    /// `"`
    Double,
}

impl fmt::Display for Quote {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Quote::Single => "single-quote",
            Quote::Double => "double-quote",
        })
    }
}

/// A word that cannot be expanded. Every variant carries the whole `word`
/// given to the lexer; the messages are BuildKit's (`failed to process "…": …`).
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum ShellError {
    /// A quote with no closing quote.
    #[error("failed to process {word:?}: unexpected end of statement while looking for matching {quote}")]
    UnterminatedQuote {
        /// The word being expanded.
        word: String,
        /// The quote left open.
        quote: Quote,
    },
    /// `${` with no closing `}`.
    #[error("failed to process {word:?}: syntax error: missing '}}'")]
    MissingBrace {
        /// The word being expanded.
        word: String,
    },
    /// `${V/pattern` with no `/` after the pattern.
    #[error("failed to process {word:?}: syntax error: missing '/' in ${{}}")]
    MissingSlash {
        /// The word being expanded.
        word: String,
    },
    /// `${}`, `${{…}`, `${:…}`.
    #[error("failed to process {word:?}: syntax error: bad substitution")]
    BadSubstitution {
        /// The word being expanded.
        word: String,
    },
    /// `${V=x}`, `${V:=x}`, `${V:#x}`, `${Vx}` and other modifiers BuildKit
    /// does not know.
    #[error("failed to process {word:?}: unsupported modifier ({modifier}) in substitution")]
    UnsupportedModifier {
        /// The word being expanded.
        word: String,
        /// The modifier as written, e.g. `:=`.
        modifier: String,
    },
    /// `${V?message}` with `V` unset, or `${V:?message}` with `V` unset or empty.
    #[error("failed to process {word:?}: {name}: {message}")]
    Required {
        /// The word being expanded.
        word: String,
        /// The variable.
        name: String,
        /// The expanded message, or BuildKit's default
        /// (`is not allowed to be unset` / `is not allowed to be empty`).
        message: String,
    },
    /// A `#`, `%` or `/` pattern with a bad escape.
    #[error("failed to process {word:?}: invalid pattern ({pattern}) in substitution")]
    InvalidPattern {
        /// The word being expanded.
        word: String,
        /// The pattern as BuildKit compiles it (reversed for `%` and `%%`).
        pattern: String,
        /// What is wrong with it.
        #[source]
        source: PatternError,
    },
    /// Expansions nested deeper than [`MAX_NESTING`](crate::MAX_NESTING).
    /// BuildKit has no such limit; ours keeps the stack bounded.
    #[error("failed to process {word:?}: expansions nested deeper than {limit} levels")]
    TooDeep {
        /// The word being expanded.
        word: String,
        /// The limit that was passed.
        limit: usize,
    },
}

impl ShellError {
    /// The word that failed to expand.
    pub fn word(&self) -> &str {
        match self {
            ShellError::UnterminatedQuote { word, .. }
            | ShellError::MissingBrace { word }
            | ShellError::MissingSlash { word }
            | ShellError::BadSubstitution { word }
            | ShellError::UnsupportedModifier { word, .. }
            | ShellError::Required { word, .. }
            | ShellError::InvalidPattern { word, .. }
            | ShellError::TooDeep { word, .. } => word,
        }
    }
}

/// A failure before it knows its word; the lexer's internal error.
#[derive(Debug)]
pub(crate) enum Fault {
    UnterminatedQuote(Quote),
    MissingBrace,
    MissingSlash,
    BadSubstitution,
    UnsupportedModifier(String),
    Required {
        name: String,
        message: String,
    },
    InvalidPattern {
        pattern: String,
        source: PatternError,
    },
    TooDeep,
}

impl Fault {
    pub(crate) fn in_word(self, word: &str) -> ShellError {
        let word = word.to_owned();
        match self {
            Fault::UnterminatedQuote(quote) => ShellError::UnterminatedQuote { word, quote },
            Fault::MissingBrace => ShellError::MissingBrace { word },
            Fault::MissingSlash => ShellError::MissingSlash { word },
            Fault::BadSubstitution => ShellError::BadSubstitution { word },
            Fault::UnsupportedModifier(modifier) => {
                ShellError::UnsupportedModifier { word, modifier }
            }
            Fault::Required { name, message } => ShellError::Required {
                word,
                name,
                message,
            },
            Fault::InvalidPattern { pattern, source } => ShellError::InvalidPattern {
                word,
                pattern,
                source,
            },
            Fault::TooDeep => ShellError::TooDeep {
                word,
                limit: crate::MAX_NESTING,
            },
        }
    }
}
