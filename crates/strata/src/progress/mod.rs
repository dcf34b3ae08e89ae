//! Rendering progress events: `--progress auto|tty|plain|json|quiet`.
//!
//! Libraries emit [`strata_progress::Event`]s; these reporters draw them on stderr.
//! `auto` picks `tty` when stderr is a terminal and `CI` is unset, `plain` otherwise.

mod json;
pub mod plain;
pub mod transfer;
mod tty;

use std::io::IsTerminal;
use std::sync::Arc;

use strata_progress::{NullReporter, Reporter};

#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum ProgressMode {
    Auto,
    Tty,
    Plain,
    Json,
    Quiet,
}

/// A reporter that can also print a closing summary.
pub trait Display: Reporter {
    fn finish(&self, ok: bool);
}

impl Display for NullReporter {
    fn finish(&self, _ok: bool) {}
}

/// The reporter for `mode`. `tty` asked for explicitly on a stderr that is not a
/// terminal is an error, as in buildx (which fails rather than draw nowhere or fall
/// back silently): `plain` is the mode for logs.
pub fn reporter(mode: ProgressMode) -> anyhow::Result<Arc<dyn Display>> {
    if mode == ProgressMode::Tty && !std::io::stderr().is_terminal() {
        return Err(crate::diagnostics::Usage(
            "--progress tty needs a terminal, and stderr is not one: use --progress plain (or auto)"
                .into(),
        )
        .into());
    }
    let mode = match mode {
        ProgressMode::Auto
            if std::io::stderr().is_terminal() && std::env::var_os("CI").is_none() =>
        {
            ProgressMode::Tty
        }
        ProgressMode::Auto => ProgressMode::Plain,
        m => m,
    };
    Ok(match mode {
        ProgressMode::Tty => Arc::new(tty::Tty::new()),
        ProgressMode::Plain => Arc::new(plain::Plain::new(std::io::stderr())),
        ProgressMode::Json => Arc::new(json::Json::new(std::io::stderr())),
        _ => Arc::new(NullReporter),
    })
}
