//! Dockerfile AST → typed instructions grouped into stages, with flags validated per
//! instruction and the lint rules of BuildKit as data.
//!
//! Input is the parser's [`strata_parser::Dockerfile`]; output is a [`Dockerfile`] of
//! global `ARG`s and [`Stage`]s whose instructions are a closed enum ([`Command`]).
//! Words are kept as written (unexpanded): expansion needs the ARG/ENV scope, which is
//! the lowering's job (`strata-dockerfile`). What can be checked without a scope is
//! checked here: arity, flags (unknown, missing values, bad booleans), mount options,
//! HEALTHCHECK durations, stage names, ONBUILD triggers.
//!
//! Depends on the parser and the shell lexer only; never on graph, solver or I/O.

mod commands;
mod error;
mod flags;
pub mod lint;
mod mount;
mod parse;
mod stages;

pub use commands::*;
pub use error::{InstructionError, InstructionErrorKind};
pub use mount::{parse_mount, MountSpec, MountType, Sharing};
pub use parse::{is_secret_name, parse_instruction};
pub use stages::{parse_dockerfile, Dockerfile, Stage};
pub use strata_parser::Span;
