//! `strata`: the command-line interface. The only crate that sees the frontend, the
//! solver and the exporters; it parses arguments into types, runs the pipeline, prints
//! data on stdout and everything else on stderr, and turns library errors into
//! messages a person can act on, with exit codes (1: the build or its input failed,
//! 2: the command line was wrong).

mod cli;
mod commands;
mod config;
mod context;
mod diagnostics;
mod explain;
mod export;
mod outputs;
mod progress;
mod registry;
mod remote_cache;
mod resolver;
mod stdout;
mod store;

use std::process::ExitCode;

use clap::Parser;

#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn main() -> ExitCode {
    let cli = cli::Cli::parse();
    match commands::run(cli) {
        Ok(code) => code,
        Err(e) => {
            diagnostics::print_error(&e);
            ExitCode::from(diagnostics::exit_code(&e))
        }
    }
}
