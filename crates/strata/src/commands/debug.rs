//! `strata debug graph`.

use std::process::ExitCode;

use strata_graph::DumpFormat;

use crate::cli::{GraphArgs, GraphFormat};
use crate::context::Definition;
use crate::stdout::out;

pub fn graph(args: GraphArgs, root: Option<&std::path::PathBuf>) -> anyhow::Result<ExitCode> {
    let def = Definition::load(&args.def)?;
    let lowered = def.lower(true, crate::store::open_existing(root))?;
    let file = def.display_name();
    for w in &lowered.warnings {
        eprintln!(
            "warning: {file}:{}: {}: {}",
            w.span.start, w.rule.name, w.message
        );
    }
    let format = match args.format {
        GraphFormat::Text => DumpFormat::Text,
        GraphFormat::Json => DumpFormat::Json,
        GraphFormat::Dot => DumpFormat::Dot,
    };
    out!(
        "{}",
        lowered.graph.dump(Some(lowered.target.vertex), format)
    );
    Ok(ExitCode::SUCCESS)
}
