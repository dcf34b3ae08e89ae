//! `strata system …`: the store as a whole. `df` and `prune` live in `gc_cmd.rs` beside
//! the cache commands, `check` in `check.rs`.

use std::path::PathBuf;
use std::process::ExitCode;

use clap::Subcommand;

use super::gc_cmd::{DfArgs, SystemPruneArgs};

#[derive(Debug, Subcommand)]
pub enum SystemCommand {
    /// Show disk usage of images, build cache and cache mounts (like `docker system df`).
    Df(DfArgs),
    /// Remove untagged images' unreferenced blobs and the build cache.
    Prune(SystemPruneArgs),
    /// Verify the store (blob and layer contents, images, cache records, leftovers of
    /// killed processes); `--repair` removes what is broken. Exits 1 while damaged.
    Check(super::check::CheckArgs),
}

pub fn run(cmd: SystemCommand, root: Option<&PathBuf>) -> anyhow::Result<ExitCode> {
    match cmd {
        SystemCommand::Df(args) => super::gc_cmd::df(args, root),
        SystemCommand::Prune(args) => super::gc_cmd::system_prune(args, root),
        SystemCommand::Check(args) => super::check::check(args, root),
    }
}
