//! The command line, as clap types. Strings become types here, at the edge.

use std::path::PathBuf;

use clap::{Args, Parser, Subcommand, ValueEnum};

#[derive(Debug, Parser)]
#[command(
    name = "strata",
    version,
    about = "A daemonless Dockerfile build engine",
    propagate_version = true
)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Build an image from a Dockerfile and a context.
    Build(BuildArgs),
    /// Inspect what strata would do.
    #[command(subcommand)]
    Debug(DebugCommand),
}

#[derive(Debug, Subcommand)]
pub enum DebugCommand {
    /// Print the build graph the Dockerfile lowers to, without running it.
    Graph(GraphArgs),
}

/// Options shared by everything that reads a Dockerfile.
#[derive(Debug, Args, Clone)]
pub struct DefinitionArgs {
    /// Name of the Dockerfile (default: CONTEXT/Dockerfile; `-` reads stdin).
    #[arg(short = 'f', long = "file", value_name = "FILE")]
    pub file: Option<PathBuf>,
    /// Build this stage (default: the last one).
    #[arg(long, value_name = "STAGE")]
    pub target: Option<String>,
    /// Set a build-time variable (`KEY=VALUE`, or `KEY` to take it from the environment).
    #[arg(long = "build-arg", value_name = "KEY[=VALUE]")]
    pub build_args: Vec<String>,
    /// Target platform (`os/arch[/variant]`; default: this machine's).
    #[arg(long, value_name = "PLATFORM")]
    pub platform: Option<String>,
    /// Additional build context (`NAME=PATH`, `NAME=docker-image://REF`,
    /// `NAME=oci-layout:///PATH[:TAG]`).
    #[arg(long = "build-context", value_name = "NAME=VALUE")]
    pub build_contexts: Vec<String>,
    /// Do not use the cache.
    #[arg(long)]
    pub no_cache: bool,
    /// Do not use the cache for these stages.
    #[arg(long = "no-cache-filter", value_name = "STAGE")]
    pub no_cache_filter: Vec<String>,
    /// The build context directory.
    #[arg(value_name = "CONTEXT")]
    pub context: PathBuf,
}

#[derive(Debug, Args)]
pub struct BuildArgs {
    #[command(flatten)]
    pub def: DefinitionArgs,
    /// Parse, lower and lint without building; exit 1 if any rule fires.
    #[arg(long)]
    pub check: bool,
}

#[derive(Debug, Args)]
pub struct GraphArgs {
    #[command(flatten)]
    pub def: DefinitionArgs,
    /// Output format.
    #[arg(long, value_enum, default_value_t = GraphFormat::Text)]
    pub format: GraphFormat,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum GraphFormat {
    Text,
    Json,
    Dot,
}
