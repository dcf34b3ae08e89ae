//! One module per subcommand.

pub mod build;
pub mod cache;
mod check;
mod debug;
pub mod debug_shell;
mod docker_save;
mod explain;
pub mod gc_auto;
mod gc_cmd;
mod image;
pub mod login;
pub mod registry;
pub mod system;

use std::process::ExitCode;

use crate::cli::{Cli, Command, DebugCommand};

pub fn run(cli: Cli) -> anyhow::Result<ExitCode> {
    let root = cli.root.as_ref();
    crate::config::set_registry_cas(cli.registry_ca.clone());
    match cli.command {
        Command::Build(args) => build::run(*args, root),
        Command::Images => image::list(&crate::store::open(root)?),
        Command::Image(cmd) => image::run(cmd, root),
        Command::Pull(args) => registry::pull(args, root),
        Command::Push(args) => registry::push(args, root),
        Command::Login(args) => login::login(args),
        Command::Logout(args) => login::logout(args),
        Command::Debug(DebugCommand::Graph(args)) => debug::graph(args, root),
        Command::Debug(DebugCommand::Shell(args)) => debug_shell::run(args, root),
        Command::Cache(cmd) => cache::run(cmd, root),
        Command::System(cmd) => system::run(cmd, root),
    }
}
