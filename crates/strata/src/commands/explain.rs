//! `strata cache explain IMAGE_OR_BUILD`: why the steps of a past build missed the
//! cache, as `strata build --explain` said it then.

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Context as _;
use clap::Args;

use crate::diagnostics::Usage;
use crate::stdout::out;

#[derive(Debug, Args)]
pub struct ExplainArgs {
    /// A build id (printed by `strata build`, `strata.build-id` in its metadata file),
    /// an image name from the local store, or an image ID.
    #[arg(value_name = "IMAGE_OR_BUILD")]
    pub target: String,
    /// `text`, or `json`: the build and every step with its outcome and reasons.
    #[arg(long, value_enum, default_value_t = Format::Text)]
    pub format: Format,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Format {
    Text,
    Json,
}

/// Explains a past build.
pub fn past(args: ExplainArgs, root: Option<&PathBuf>) -> anyhow::Result<ExitCode> {
    let store = crate::store::open(root)?;
    let t = args.target.as_str();
    let build = match store.history_build(t)? {
        Some(b) => Some(b),
        None if t.starts_with("sha256:") => store.history_build_of_image(t)?,
        None => match strata_oci::Reference::parse(t) {
            Ok(r) => match store.image(&r.to_string())? {
                Some(image) => store.history_build_of_image(&image.config.to_string())?,
                None => None,
            },
            Err(_) => None,
        },
    };
    let build = build.ok_or_else(|| {
        Usage(format!(
            "{t}: no build with this id, and no image of that name made by a recorded build \
             (the store keeps the last {} builds)",
            strata_store::KEEP_BUILDS
        ))
    })?;
    let steps = store
        .history_steps(&build.id)
        .with_context(|| format!("reading build {}", build.id))?;
    match args.format {
        Format::Text => out!("{}", crate::explain::render(&build, &steps)),
        Format::Json => {
            let steps: Vec<_> = steps
                .iter()
                .map(|s| {
                    serde_json::json!({
                        "name": s.name,
                        "outcome": s.outcome,
                        "reasons": s.explanation,
                    })
                })
                .collect();
            let doc = serde_json::json!({
                "id": build.id,
                "created": build.created,
                "status": build.status,
                "image": build.image,
                "names": build.names,
                "steps": steps,
            });
            crate::stdout::outln!("{}", serde_json::to_string_pretty(&doc)?);
        }
    }
    Ok(ExitCode::SUCCESS)
}
