//! Parse errors: a kind (what went wrong, with what identifies it) plus the lines it concerns.

use crate::Span;

/// A Dockerfile the parser cannot accept.
///
/// `Display` prints the message only; the caller adds `file:line` from [`ParseError::line`]
/// or [`ParseError::span`] (a span of `0-0` means "no line known", e.g. from a helper that
/// only saw an instruction's arguments; use [`ParseError::with_span`] to attach one).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{kind}")]
pub struct ParseError {
    pub span: Span,
    pub kind: ParseErrorKind,
}

impl ParseError {
    pub fn new(kind: ParseErrorKind, span: Span) -> Self {
        ParseError { span, kind }
    }

    pub(crate) fn at(kind: ParseErrorKind, start: usize, end: usize) -> Self {
        ParseError {
            span: Span { start, end },
            kind,
        }
    }

    /// First line (1-based) the error concerns; 0 when unknown.
    pub fn line(&self) -> usize {
        self.span.start
    }

    pub fn span(&self) -> Span {
        self.span
    }

    pub fn kind(&self) -> &ParseErrorKind {
        &self.kind
    }

    /// The same error located at `span`.
    pub fn with_span(mut self, span: Span) -> Self {
        self.span = span;
        self
    }
}

/// What went wrong. Messages follow BuildKit's wording where BuildKit has one.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum ParseErrorKind {
    #[error("Dockerfile is not valid UTF-8 (invalid byte 0x{byte:02x} at column {column})")]
    InvalidUtf8 { byte: u8, column: usize },
    #[error("Dockerfile is UTF-16 encoded; only UTF-8 is supported")]
    Utf16,
    #[error("invalid escape token '{value}' does not match ` or \\")]
    InvalidEscape { value: String },
    #[error("only one {name} parser directive can be used")]
    DuplicateDirective { name: String },
    /// `# check=` could not be parsed; `reason` is BuildKit's wording.
    #[error("failed to parse check options: {reason}")]
    InvalidCheck { reason: String },
    #[error("file with no instructions")]
    NoInstructions,
    #[error("unterminated heredoc: no line matching the terminator {name:?}")]
    UnterminatedHeredoc { name: String },
    /// A heredoc marker (`<<WORD`) whose word cannot be lexed.
    #[error("invalid heredoc {word:?}: {reason}")]
    InvalidHeredoc { word: String, reason: String },
    #[error("when using JSON array syntax, arrays must be comprised of strings only")]
    JsonNotStrings,
    /// Legacy `ENV name value` form with a name only.
    #[error("{key} must have two arguments")]
    MustHaveTwoArguments { key: String },
    #[error("Syntax error - can't find = in {}. Must be of the form: name=value", go_quote(.word))]
    MissingEquals { word: String },
    #[error("{key} requires at least one argument")]
    RequiresArgument { key: String },
    #[error("{key} names can not be blank")]
    BlankName { key: String },
}

/// Quote like Go's `%q` (`strconv.Quote`), which BuildKit's messages use.
pub(crate) fn go_quote(s: &str) -> String {
    let mut out = String::with_capacity(s.len() + 2);
    out.push('"');
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\t' => out.push_str("\\t"),
            '\r' => out.push_str("\\r"),
            '\u{7}' => out.push_str("\\a"),
            '\u{8}' => out.push_str("\\b"),
            '\u{c}' => out.push_str("\\f"),
            '\u{b}' => out.push_str("\\v"),
            c if c.is_control() || c == '\u{feff}' => {
                let n = c as u32;
                if n < 0x80 {
                    out.push_str(&format!("\\x{n:02x}"));
                } else if n < 0x10000 {
                    out.push_str(&format!("\\u{n:04x}"));
                } else {
                    out.push_str(&format!("\\U{n:08x}"));
                }
            }
            c => out.push(c),
        }
    }
    out.push('"');
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn go_quote_escapes_like_go() {
        assert_eq!(go_quote(r#"a"b\c"#), r#""a\"b\\c""#);
        assert_eq!(go_quote("x\ty\u{1}"), r#""x\ty\x01""#);
        assert_eq!(go_quote("héllo ♥"), "\"héllo ♥\"");
    }

    #[test]
    fn display_is_the_message_only() {
        let e = ParseError::at(ParseErrorKind::NoInstructions, 3, 3);
        assert_eq!(e.to_string(), "file with no instructions");
        assert_eq!(e.line(), 3);
        let e = ParseError::at(ParseErrorKind::MissingEquals { word: "c".into() }, 1, 1);
        assert_eq!(
            e.to_string(),
            r#"Syntax error - can't find = in "c". Must be of the form: name=value"#
        );
    }
}
