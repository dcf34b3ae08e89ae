//! `strata cache …`: the build cache as users see it.

use std::path::PathBuf;
use std::process::ExitCode;

use clap::Subcommand;

#[derive(Debug, Subcommand)]
pub enum CacheCommand {
    /// Explain why the steps of a past build missed the cache (IMAGE or build id).
    Explain(super::explain::ExplainArgs),
}

pub fn run(cmd: CacheCommand, root: Option<&PathBuf>) -> anyhow::Result<ExitCode> {
    match cmd {
        CacheCommand::Explain(args) => super::explain::past(args, root),
    }
}
