//! `strata cache explain` and `strata build --explain`: why steps missed the cache.

use std::path::PathBuf;
use std::process::ExitCode;

use clap::Args;

#[derive(Debug, Args)]
pub struct ExplainArgs {
    /// An image name from the local store, or a build id printed by `strata build`.
    #[arg(value_name = "IMAGE_OR_BUILD")]
    pub target: String,
}

/// Explains a past build.
pub fn past(args: ExplainArgs, root: Option<&PathBuf>) -> anyhow::Result<ExitCode> {
    let _ = root;
    anyhow::bail!("strata cache explain {}: not implemented yet", args.target)
}
