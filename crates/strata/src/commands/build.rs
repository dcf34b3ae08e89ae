//! `strata build`.

use std::process::ExitCode;

use anyhow::bail;

use crate::cli::BuildArgs;
use crate::context::Definition;
use crate::diagnostics;

pub fn run(args: BuildArgs) -> anyhow::Result<ExitCode> {
    let def = Definition::load(&args.def)?;
    if !args.check {
        bail!(diagnostics::Usage(
            "running builds arrives with the solver; for now `strata build --check` parses, lowers and lints, and `strata debug graph` prints the graph".into()
        ));
    }
    let lowered = def.lower(true)?;
    let file = def.display_name();
    for w in &lowered.warnings {
        println!("{file}:{}: {}: {}", w.span.start, w.rule.name, w.message);
    }
    for a in &lowered.unused_build_args {
        eprintln!("warning: build-arg {a:?} was not consumed by any stage");
    }
    let n = lowered.warnings.len();
    if n == 0 {
        eprintln!(
            "check complete, no warnings found (target stage: {})",
            lowered.target_stage
        );
        Ok(ExitCode::SUCCESS)
    } else {
        eprintln!(
            "check complete, {n} warning{} found",
            if n == 1 { "" } else { "s" }
        );
        Ok(ExitCode::from(1))
    }
}
