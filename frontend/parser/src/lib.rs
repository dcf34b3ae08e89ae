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

mod ast;
pub use ast::*;
