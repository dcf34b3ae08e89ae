//! One module per subcommand.

mod build;
mod debug;

use std::process::ExitCode;

use crate::cli::{Cli, Command, DebugCommand};

pub fn run(cli: Cli) -> anyhow::Result<ExitCode> {
    match cli.command {
        Command::Build(args) => build::run(args),
        Command::Debug(DebugCommand::Graph(args)) => debug::graph(args),
    }
}
