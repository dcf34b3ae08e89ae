//! `strata system check [--repair]`: verifies the store — the database, every blob's
//! content against its digest, every layer directory's content against its diffID,
//! images, compression rows and cache records against the files they need, leftovers
//! of killed processes — and, with `--repair`, removes what is broken so the next build
//! rebuilds it. Exits 1 while damage remains.

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Context as _;
use clap::{Args, ValueEnum};
use strata_digest::Digest;
use strata_snapshot::{Layers, TarOptions};
use strata_store::{CheckReport, Problem, Store};

#[derive(Debug, Args)]
pub struct CheckArgs {
    /// Remove what is broken: corrupt blobs and layers, stray files, and the cache
    /// records, image names and compression records that point at missing data (and
    /// lock files nobody holds).
    #[arg(long)]
    pub repair: bool,
    /// Output format.
    #[arg(long, value_enum, default_value_t = CheckFormat::Text)]
    pub format: CheckFormat,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum CheckFormat {
    Text,
    Json,
}

pub fn check(args: CheckArgs, root: Option<&PathBuf>) -> anyhow::Result<ExitCode> {
    let store = crate::store::open(root)?;
    let mut report = store
        .check(&strata_ops::record_info)
        .context("checking the store")?;
    let layers = Layers::new(store.root(), store.tmp_dir()).context("opening the layers")?;
    let verified = verify_layers(&store, &layers, &mut report)?;
    let (repaired, locks_removed) = if args.repair {
        let repaired = store
            .repair(&strata_ops::record_info, &report.problems)
            .context("repairing the store")?;
        let locks = store.prune_locks().context("removing unused lock files")?;
        (repaired, locks)
    } else {
        (Vec::new(), 0)
    };
    let remaining: Vec<&Problem> = report
        .problems
        .iter()
        .filter(|p| p.is_damage() && !repaired.contains(p))
        .collect();
    match args.format {
        CheckFormat::Json => {
            let out = serde_json::json!({
                "problems": report.problems,
                "repaired": repaired,
                "damaged": !remaining.is_empty(),
                "blobs": report.blobs,
                "blob_bytes": report.blob_bytes,
                "layers": verified,
                "images": report.images,
                "records": report.records,
                "tmp_removed": report.tmp_removed,
                "locks_removed": locks_removed,
            });
            crate::stdout::outln!("{}", serde_json::to_string_pretty(&out)?);
        }
        CheckFormat::Text => {
            if locks_removed > 0 {
                crate::stdout::outln!("note: removed {locks_removed} unused lock file(s)");
            }
            print_text(&report, verified, &repaired, remaining.len())?
        }
    }
    Ok(if remaining.is_empty() {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(1)
    })
}

/// Re-hashes every layer directory (its canonical tar) against its name.
fn verify_layers(
    store: &Store,
    layers: &Layers,
    report: &mut CheckReport,
) -> anyhow::Result<usize> {
    let mut verified = 0;
    let dir = store.layers_dir();
    let mut names: Vec<String> = fs_err::read_dir(&dir)?
        .filter_map(|e| e.ok()?.file_name().into_string().ok())
        .collect();
    names.sort();
    for name in names {
        let Ok(diff_id) = format!("sha256:{name}").parse::<Digest>() else {
            continue; // checkpoint files and strays: the store's check
        };
        if !layers.has(&diff_id) {
            continue;
        }
        let (actual, _) =
            match layers.write_tar(&diff_id, &mut std::io::sink(), &TarOptions::default()) {
                Ok(done) => done,
                // Collected meanwhile.
                Err(_) if !layers.has(&diff_id) => continue,
                Err(e) => return Err(e).with_context(|| format!("reading layer {diff_id}")),
            };
        verified += 1;
        if actual != diff_id {
            report
                .problems
                .push(Problem::CorruptLayer { diff_id, actual });
        }
    }
    Ok(verified)
}

fn print_text(
    report: &CheckReport,
    layers: usize,
    repaired: &[Problem],
    remaining: usize,
) -> anyhow::Result<()> {
    let mut out = String::new();
    for p in &report.problems {
        let mark = if repaired.contains(p) {
            "repaired"
        } else if p.is_damage() {
            "damaged"
        } else {
            "note"
        };
        out.push_str(&format!("{mark}: {}\n", describe(p)));
    }
    // What pointed at what the repair removed.
    for p in repaired.iter().filter(|p| !report.problems.contains(p)) {
        out.push_str(&format!("repaired: {}\n", describe(p)));
    }
    if !report.tmp_removed.is_empty() {
        out.push_str(&format!(
            "note: removed {} leftover(s) of killed processes from tmp/\n",
            report.tmp_removed.len()
        ));
    }
    out.push_str(&format!(
        "checked {} blob(s) ({} bytes), {layers} layer(s), {} image(s), {} cache record(s): {}",
        report.blobs,
        report.blob_bytes,
        report.images,
        report.records,
        if remaining == 0 {
            "ok".to_string()
        } else {
            format!("{remaining} problem(s); `strata system check --repair` removes what is broken")
        }
    ));
    crate::stdout::outln!("{out}");
    Ok(())
}

fn describe(p: &Problem) -> String {
    match p {
        Problem::Database { message } => format!("database: {message}"),
        Problem::CorruptBlob { digest, actual } => {
            format!("blob {digest} is corrupt: its content hashes to {actual}")
        }
        Problem::CorruptLayer { diff_id, actual } => {
            format!("layer {diff_id} is corrupt: its content hashes to {actual}")
        }
        Problem::Stray { path } => format!("{} is not something the store writes", path.display()),
        Problem::ImagePart {
            image,
            part,
            digest,
        } => {
            format!("image {image}: its {part} {digest} is missing")
        }
        Problem::CompressedBlob { diff_id, blob } => {
            format!("the compressed blob {blob} of layer {diff_id} is missing")
        }
        Problem::DanglingRecord { key, what, missing } => {
            format!("cache record {key} ({what}) needs the missing {missing}")
        }
        Problem::DeadLease { id, holder, pid } => {
            format!("lease {id} ({holder}) belongs to process {pid}, which is gone")
        }
        Problem::TmpLeftover { path, error } => {
            format!(
                "{} was left by a killed process and could not be removed: {error}",
                path.display()
            )
        }
    }
}
