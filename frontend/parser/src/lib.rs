//! Dockerfile parser: bytes → [`Dockerfile`] AST with line spans.
//!
//! Owns what BuildKit's `frontend/dockerfile/parser` owns: the UTF-8 BOM, CRLF, parser
//! directives (`syntax`, `escape`, `check`), comments, logical lines joined by the escape
//! character (with comment and empty lines inside continuations), instruction keywords,
//! leading `--flags`, heredocs (`<<EOF`, `<<-EOF`, quoted delimiters, several per line),
//! the `ONBUILD` sub-instruction, and the argument-splitting helpers of `line_parsers.go`
//! (JSON arrays, quote-aware words, `key=value` pairs).
//!
//! It knows nothing of instruction semantics (that is `strata-instructions`) and never
//! expands variables (that is `strata-shell`). It must never depend on another workspace
//! crate.
//!
//! Like BuildKit's parser it accepts unknown keywords and instructions without arguments
//! (the instructions crate reports those); it rejects only what BuildKit's parser rejects:
//! bad or repeated directives, an unterminated heredoc, a JSON array with non-string
//! elements (exec-form instructions), malformed `ENV`/`LABEL` pairs, a file without
//! instructions, and (our addition) text that is not UTF-8.

mod ast;
mod directives;
mod dump;
mod error;
mod heredoc;
mod line_parsers;
mod parser;

pub use ast::*;
pub use dump::dump;
pub use error::{ParseError, ParseErrorKind};
pub use line_parsers::{
    parse_json_array, parse_name_or_name_val, parse_name_val, split_whitespace_words, split_words,
    NameVals,
};

/// Parse a Dockerfile. A leading BOM (`U+FEFF`) is ignored.
pub fn parse(src: &str) -> Result<Dockerfile, ParseError> {
    parser::parse_str(src)
}

/// Parse a Dockerfile from raw bytes: a UTF-8 BOM is ignored; UTF-16 and invalid UTF-8
/// are errors located at the offending line.
pub fn parse_bytes(bytes: &[u8]) -> Result<Dockerfile, ParseError> {
    let bytes = bytes.strip_prefix(b"\xef\xbb\xbf").unwrap_or(bytes);
    if bytes.starts_with(b"\xff\xfe") || bytes.starts_with(b"\xfe\xff") {
        return Err(ParseError::new(
            ParseErrorKind::Utf16,
            Span { start: 1, end: 1 },
        ));
    }
    match std::str::from_utf8(bytes) {
        Ok(src) => parse(src),
        Err(e) => {
            let valid = &bytes[..e.valid_up_to()];
            let line = valid.iter().filter(|&&b| b == b'\n').count() + 1;
            let line_start = valid.iter().rposition(|&b| b == b'\n').map_or(0, |i| i + 1);
            let column =
                std::str::from_utf8(&valid[line_start..]).map_or(1, |s| s.chars().count() + 1);
            Err(ParseError::new(
                ParseErrorKind::InvalidUtf8 {
                    byte: bytes[e.valid_up_to()],
                    column,
                },
                Span {
                    start: line,
                    end: line,
                },
            ))
        }
    }
}
