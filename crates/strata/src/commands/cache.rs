//! `strata cache …`: the build cache as users see it.

use std::path::PathBuf;
use std::process::ExitCode;

use clap::Subcommand;

#[derive(Debug, Subcommand)]
pub enum CacheCommand {
    /// Explain why the steps of a past build missed the cache (IMAGE or build id).
    Explain(super::explain::ExplainArgs),
    /// Show the build cache's disk usage, record by record.
    Du(super::gc_cmd::DuArgs),
    /// List the build cache records, one a line.
    Ls(super::gc_cmd::LsArgs),
    /// Remove build cache (like `docker builder prune`).
    Prune(super::gc_cmd::PruneArgs),
}

pub fn run(cmd: CacheCommand, root: Option<&PathBuf>) -> anyhow::Result<ExitCode> {
    match cmd {
        CacheCommand::Explain(args) => super::explain::past(args, root),
        CacheCommand::Du(args) => super::gc_cmd::du(args, root),
        CacheCommand::Ls(args) => super::gc_cmd::ls(args, root),
        CacheCommand::Prune(args) => super::gc_cmd::prune(args, root),
    }
}
