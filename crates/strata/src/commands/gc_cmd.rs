//! `strata cache du|ls|prune` and `strata system df|prune`: disk usage and garbage
//! collection of the store, through `strata_store::gc`.

use std::path::PathBuf;
use std::process::ExitCode;

use clap::Args;

#[derive(Debug, Args)]
pub struct DuArgs {
    /// One block per record with every detail.
    #[arg(long)]
    pub verbose: bool,
    /// Output format.
    #[arg(long, value_enum, default_value_t = Format::Table)]
    pub format: Format,
}

#[derive(Debug, Args)]
pub struct LsArgs {
    /// Output format.
    #[arg(long, value_enum, default_value_t = Format::Table)]
    pub format: Format,
}

#[derive(Debug, Args)]
pub struct PruneArgs {
    /// Remove every record not held by a running build, not only those no image uses.
    #[arg(short = 'a', long)]
    pub all: bool,
    /// Keep this much build cache (e.g. `10GB`, `512MiB`), least recently used goes first.
    #[arg(long, value_name = "SIZE")]
    pub keep_storage: Option<String>,
    /// `until=DURATION` (e.g. `24h`), `type=TYPE`, `id=PREFIX`; repeatable (all must match).
    #[arg(long = "filter", value_name = "FILTER")]
    pub filters: Vec<String>,
    /// Do not ask for confirmation.
    #[arg(short = 'f', long)]
    pub force: bool,
}

#[derive(Debug, Args)]
pub struct DfArgs {
    /// Output format.
    #[arg(long, value_enum, default_value_t = Format::Table)]
    pub format: Format,
}

#[derive(Debug, Args)]
pub struct SystemPruneArgs {
    /// Also remove every build cache record, not only those no image uses.
    #[arg(short = 'a', long)]
    pub all: bool,
    /// Do not ask for confirmation.
    #[arg(short = 'f', long)]
    pub force: bool,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Format {
    Table,
    Json,
}

pub fn du(_args: DuArgs, _root: Option<&PathBuf>) -> anyhow::Result<ExitCode> {
    anyhow::bail!("strata cache du: not implemented yet")
}

pub fn ls(_args: LsArgs, _root: Option<&PathBuf>) -> anyhow::Result<ExitCode> {
    anyhow::bail!("strata cache ls: not implemented yet")
}

pub fn prune(_args: PruneArgs, _root: Option<&PathBuf>) -> anyhow::Result<ExitCode> {
    anyhow::bail!("strata cache prune: not implemented yet")
}

pub fn df(_args: DfArgs, _root: Option<&PathBuf>) -> anyhow::Result<ExitCode> {
    anyhow::bail!("strata system df: not implemented yet")
}

pub fn system_prune(_args: SystemPruneArgs, _root: Option<&PathBuf>) -> anyhow::Result<ExitCode> {
    anyhow::bail!("strata system prune: not implemented yet")
}
