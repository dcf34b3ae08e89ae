//! `strata cache du|ls|prune` and `strata system df|prune`: disk usage and garbage
//! collection of the store, through `strata_store::gc`.

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Context as _;
use clap::Args;
use serde::Serialize;
use strata_store::{GcState, PruneOptions, RecordEntry, RecordKind, Resource, Store};

use super::gc_auto::{parse_duration, parse_size, unix_now};
use crate::diagnostics::Usage;
use crate::progress::plain::human;
use crate::stdout::outln;

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

/// The store (must exist: these commands never create one) and its state.
fn state(root: Option<&PathBuf>) -> anyhow::Result<(Store, GcState)> {
    let store = crate::store::open(root)?;
    store.checkpoint();
    let state = store
        .gc_state(&strata_ops::record_info)
        .context("reading the store's disk usage")?;
    Ok((store, state))
}

/// A record as `du`, `ls` and `prune` show it.
#[derive(Debug, Serialize)]
struct Row<'a> {
    id: String,
    #[serde(rename = "type")]
    kind: RecordKind,
    /// Bytes of what the record itself made (its top layer, its cache mount).
    size: u64,
    /// Some of those bytes are also held by another record or an image.
    shared: bool,
    reclaimable: bool,
    in_use_by_image: bool,
    in_use_by_build: bool,
    created: u64,
    last_used: u64,
    use_count: u64,
    stage: Option<&'a str>,
    instruction: Option<&'a str>,
    description: &'a str,
    resource: Option<&'a Resource>,
}

fn rows(state: &GcState) -> Vec<Row<'_>> {
    let mut rows: Vec<Row<'_>> = state
        .records
        .iter()
        .map(|e| {
            let own = e.info.own();
            let usage = own.and_then(|r| state.usage.objects.get(r));
            let size = usage.map_or(0, |u| u.size());
            let shared = own.is_some_and(|r| {
                state.users(r) > 1
                    || state.image_refs.contains(r)
                    || usage.is_some_and(|u| u.shared > 0)
            });
            let (stage, instruction) = stage_and_instruction(&e.record.description);
            Row {
                id: e.key.to_string(),
                kind: e.info.kind,
                size,
                shared,
                reclaimable: !e.in_use && !e.leased,
                in_use_by_image: e.in_use,
                in_use_by_build: e.leased,
                created: e.record.created,
                last_used: e.record.last_used,
                use_count: e.record.use_count,
                stage,
                instruction,
                description: &e.info.what,
                resource: own,
            }
        })
        .collect();
    rows.sort_by(|a, b| b.last_used.cmp(&a.last_used).then(a.id.cmp(&b.id)));
    rows
}

/// `[build 2/4] RUN make` → (`build`, `RUN make`); `[2/4] …` has the default stage.
fn stage_and_instruction(d: &str) -> (Option<&str>, Option<&str>) {
    let Some(rest) = d.strip_prefix('[') else {
        return (None, None);
    };
    let Some((step, instruction)) = rest.split_once("] ") else {
        return (None, None);
    };
    (
        step.rsplit_once(' ').map(|(stage, _)| stage),
        Some(instruction),
    )
}

/// Totals of `du`: the store as `du -sb` sees it, split by what holds the bytes.
#[derive(Debug, Serialize)]
struct Totals {
    /// Every byte under the root, each inode once (`du -sb ROOT`).
    total: u64,
    images: u64,
    build_cache: u64,
    cache_mounts: u64,
    /// meta.db, statcache, locks, scratch space, directories.
    metadata: u64,
    /// Build cache bytes held by more than one record or also by an image.
    shared: u64,
    /// Build cache bytes held by exactly one record.
    private: u64,
    /// What removing everything not named by an image nor held by a running build frees.
    reclaimable: u64,
}

fn totals(state: &GcState) -> Totals {
    let u = &state.usage;
    let images = u.freed(&|r| state.image_refs.contains(r));
    let mounts = u.freed(&|r| matches!(r, Resource::CacheMount(_)));
    let cache =
        |r: &Resource| !state.image_refs.contains(r) && !matches!(r, Resource::CacheMount(_));
    let private = u.freed(&|r| cache(r) && state.users(r) == 1);
    let cache_bytes = u.total.saturating_sub(images + mounts + u.other);
    Totals {
        total: u.total,
        images,
        build_cache: cache_bytes,
        cache_mounts: mounts,
        metadata: u.other,
        shared: cache_bytes.saturating_sub(private),
        private,
        reclaimable: state.reclaimable(),
    }
}

pub fn du(args: DuArgs, root: Option<&PathBuf>) -> anyhow::Result<ExitCode> {
    let (_store, state) = state(root)?;
    let rows = rows(&state);
    let totals = totals(&state);
    if args.format == Format::Json {
        let v = serde_json::json!({ "records": rows, "totals": totals });
        outln!("{}", serde_json::to_string_pretty(&v)?);
        return Ok(ExitCode::SUCCESS);
    }
    let now = unix_now();
    if args.verbose {
        for r in &rows {
            outln!("ID:\t\t{}", r.id);
            outln!("Type:\t\t{}", r.kind.as_str());
            if let Some(s) = r.stage {
                outln!("Stage:\t\t{s}");
            }
            if let Some(i) = r.instruction {
                outln!("Instruction:\t{i}");
            }
            outln!("Description:\t{}", r.description);
            outln!("Size:\t\t{}", human(r.size));
            outln!("Shared:\t\t{}", r.shared);
            outln!("Reclaimable:\t{}", r.reclaimable);
            outln!("In use:\t\t{}", in_use(r));
            outln!("Created at:\t{}", ago(now, r.created));
            outln!("Last used:\t{}", ago(now, r.last_used));
            outln!("Usage count:\t{}", r.use_count);
            outln!("");
        }
    } else {
        outln!(
            "{:<14}{:<13}{:>10}  {:<16}{:>5}  {:<16}DESCRIPTION",
            "ID",
            "RECLAIMABLE",
            "SIZE",
            "LAST ACCESSED",
            "USES",
            "TYPE"
        );
        for r in &rows {
            outln!(
                "{:<14}{:<13}{:>10}  {:<16}{:>5}  {:<16}{}",
                short(&r.id),
                r.reclaimable,
                human(r.size) + if r.shared { "*" } else { "" },
                ago(now, r.last_used),
                r.use_count,
                r.kind.as_str(),
                r.description
            );
        }
        if !rows.is_empty() {
            outln!("(* shared with another record or an image)");
        }
    }
    outln!("Shared:\t\t{}", human(totals.shared));
    outln!("Private:\t{}", human(totals.private));
    outln!("Reclaimable:\t{}", human(totals.reclaimable));
    outln!(
        "Total:\t\t{} (images {}, build cache {}, cache mounts {}, metadata {})",
        human(totals.total),
        human(totals.images),
        human(totals.build_cache),
        human(totals.cache_mounts),
        human(totals.metadata)
    );
    Ok(ExitCode::SUCCESS)
}

fn in_use(r: &Row<'_>) -> &'static str {
    match (r.in_use_by_image, r.in_use_by_build) {
        (_, true) => "by a running build",
        (true, false) => "by an image",
        (false, false) => "no",
    }
}

pub fn ls(args: LsArgs, root: Option<&PathBuf>) -> anyhow::Result<ExitCode> {
    let (_store, state) = state(root)?;
    let rows = rows(&state);
    if args.format == Format::Json {
        for r in &rows {
            outln!("{}", serde_json::to_string(r)?);
        }
        return Ok(ExitCode::SUCCESS);
    }
    let now = unix_now();
    for r in &rows {
        outln!(
            "{}  {:<15}  {:>9}  {:<15}  {}",
            short(&r.id),
            r.kind.as_str(),
            human(r.size),
            ago(now, r.last_used),
            r.description
        );
    }
    Ok(ExitCode::SUCCESS)
}

/// `--filter` values, parsed: the same key repeated means any of them, different keys
/// must all match.
#[derive(Debug, Default)]
struct Filters {
    until: Option<u64>,
    kinds: Vec<RecordKind>,
    ids: Vec<String>,
}

impl Filters {
    fn parse(specs: &[String], now: u64) -> anyhow::Result<Filters> {
        let mut f = Filters::default();
        for spec in specs {
            let (k, v) = spec
                .split_once('=')
                .ok_or_else(|| Usage(format!("--filter {spec:?}: expected KEY=VALUE")))?;
            match k {
                "until" => {
                    let d =
                        parse_duration(v).map_err(|e| Usage(format!("--filter {spec}: {e}")))?;
                    f.until = Some(now.saturating_sub(d.as_secs()));
                }
                "type" => f.kinds.push(RecordKind::parse(v).ok_or_else(|| {
                    let all: Vec<&str> = RecordKind::ALL.iter().map(|k| k.as_str()).collect();
                    Usage(format!(
                        "--filter {spec}: unknown type (one of {})",
                        all.join(", ")
                    ))
                })?),
                "id" => f
                    .ids
                    .push(v.strip_prefix("sha256:").unwrap_or(v).to_string()),
                _ => {
                    return Err(Usage(format!(
                        "--filter {spec:?}: unknown filter (until=DURATION, type=TYPE, id=PREFIX)"
                    ))
                    .into())
                }
            }
        }
        Ok(f)
    }

    fn accepts(&self, e: &RecordEntry) -> bool {
        self.until.is_none_or(|t| e.record.last_used < t)
            && (self.kinds.is_empty() || self.kinds.contains(&e.info.kind))
            && (self.ids.is_empty() || self.ids.iter().any(|p| e.key.hex().starts_with(p.as_str())))
    }
}

pub fn prune(args: PruneArgs, root: Option<&PathBuf>) -> anyhow::Result<ExitCode> {
    let filters = Filters::parse(&args.filters, unix_now())?;
    let keep = args
        .keep_storage
        .as_deref()
        .map(parse_size)
        .transpose()
        .map_err(|e| Usage(format!("--keep-storage: {e}")))?;
    let what = if args.all {
        "all build cache not held by a running build"
    } else {
        "all build cache no image uses"
    };
    let opts = PruneOptions {
        all: args.all,
        keep_storage: keep,
        filter: &|e| filters.accepts(e),
        orphan_blobs: false,
    };
    confirm_and_prune(root, args.force, what, &opts)
}

/// Asks (unless `force`), prunes and prints what went.
fn confirm_and_prune(
    root: Option<&PathBuf>,
    force: bool,
    what: &str,
    opts: &PruneOptions<'_>,
) -> anyhow::Result<ExitCode> {
    if !confirmed(force, what)? {
        return Ok(ExitCode::from(1));
    }
    let store = crate::store::open(root)?;
    let report = store.prune(&strata_ops::record_info, opts)?;
    print_report(&report);
    if opts.orphan_blobs {
        // `system prune`: also the lock files of steps nobody is building.
        let locks = store.prune_locks()?;
        if locks > 0 {
            eprintln!("removed {locks} unused lock file(s)");
        }
    }
    Ok(ExitCode::SUCCESS)
}

fn print_report(report: &strata_store::PruneReport) {
    if !report.records.is_empty() {
        outln!("Deleted build cache objects:");
        for (k, info) in &report.records {
            outln!("{}  {}", short(&k.to_string()), info.what);
        }
        outln!("");
    }
    outln!("Total reclaimed space: {}", human(report.freed));
}

/// Asks on stderr, reads the answer from stdin (docker's prompt); `-f` skips it.
fn confirmed(force: bool, what: &str) -> anyhow::Result<bool> {
    if force {
        return Ok(true);
    }
    eprint!("WARNING! This will remove {what}.\nAre you sure you want to continue? [y/N] ");
    let mut answer = String::new();
    std::io::stdin().read_line(&mut answer)?;
    let yes = matches!(answer.trim().to_ascii_lowercase().as_str(), "y" | "yes");
    if !yes {
        eprintln!("not confirmed: nothing removed (-f skips this question)");
    }
    Ok(yes)
}

pub fn df(args: DfArgs, root: Option<&PathBuf>) -> anyhow::Result<ExitCode> {
    let (store, state) = state(root)?;
    let u = &state.usage;
    let images = store.images()?;
    let manifests: std::collections::BTreeSet<_> = images.iter().map(|(_, i)| i.manifest).collect();
    let image_size = u.freed(&|r| state.image_refs.contains(r));
    // Untagged images: blobs nothing references (what `system prune` removes).
    let referenced: std::collections::BTreeSet<&Resource> = state
        .records
        .iter()
        .flat_map(|e| e.info.refs.iter())
        .chain(state.image_refs.iter())
        .chain(state.pinned.iter())
        .collect();
    let unreferenced_blobs =
        u.freed(&|r| matches!(r, Resource::Blob(_)) && !referenced.contains(r));
    let mounts: Vec<&RecordEntry> = state
        .records
        .iter()
        .filter(|e| e.info.kind == RecordKind::ExecCacheMount)
        .collect();
    let is_mount = |r: &Resource| matches!(r, Resource::CacheMount(_));
    let mount_size = u.freed(&is_mount);
    let mount_free = u.freed(&|r| is_mount(r) && !state.pinned.contains(r));
    let cache: Vec<&RecordEntry> = state
        .records
        .iter()
        .filter(|e| e.info.kind != RecordKind::ExecCacheMount)
        .collect();
    let t = totals(&state);
    let cache_size = t.build_cache;
    let cache_free = t
        .reclaimable
        .saturating_sub(mount_free + unreferenced_blobs);
    let lines = [
        (
            "Images",
            images.len(),
            manifests.len(),
            image_size + unreferenced_blobs,
            unreferenced_blobs,
        ),
        (
            "Build Cache",
            cache.len(),
            cache.iter().filter(|e| e.leased).count(),
            cache_size - unreferenced_blobs.min(cache_size),
            cache_free,
        ),
        (
            "Cache Mounts",
            mounts.len(),
            mounts.iter().filter(|e| e.leased).count(),
            mount_size,
            mount_free,
        ),
    ];
    if args.format == Format::Json {
        for (kind, total, active, size, reclaimable) in lines {
            let v = serde_json::json!({
                "Type": kind, "TotalCount": total, "Active": active,
                "Size": size, "Reclaimable": reclaimable,
            });
            outln!("{}", serde_json::to_string(&v)?);
        }
        let v = serde_json::json!({"Type": "Metadata", "Size": u.other, "Total": u.total});
        outln!("{}", serde_json::to_string(&v)?);
        return Ok(ExitCode::SUCCESS);
    }
    outln!(
        "{:<14}{:>7}{:>8}{:>12}  RECLAIMABLE",
        "TYPE",
        "TOTAL",
        "ACTIVE",
        "SIZE"
    );
    for (kind, total, active, size, reclaimable) in lines {
        let pct = (reclaimable * 100).checked_div(size).unwrap_or(0);
        outln!(
            "{kind:<14}{total:>7}{active:>8}{:>12}  {} ({pct}%)",
            human(size),
            human(reclaimable)
        );
    }
    outln!("{:<14}{:>7}{:>8}{:>12}", "Metadata", "", "", human(u.other));
    outln!("{:<14}{:>7}{:>8}{:>12}", "Total", "", "", human(u.total));
    Ok(ExitCode::SUCCESS)
}

pub fn system_prune(args: SystemPruneArgs, root: Option<&PathBuf>) -> anyhow::Result<ExitCode> {
    let what = if args.all {
        "untagged images' blobs and all build cache not held by a running build"
    } else {
        "untagged images' blobs and all build cache no image uses"
    };
    let opts = PruneOptions {
        all: args.all,
        keep_storage: None,
        filter: &|_| true,
        orphan_blobs: true,
    };
    confirm_and_prune(root, args.force, what, &opts)
}

fn short(id: &str) -> String {
    id.strip_prefix("sha256:")
        .unwrap_or(id)
        .chars()
        .take(12)
        .collect()
}

/// `5 minutes ago`.
fn ago(now: u64, t: u64) -> String {
    let s = now.saturating_sub(t);
    let (n, unit) = match s {
        0..=59 => return "just now".into(),
        60..=3_599 => (s / 60, "minute"),
        3_600..=86_399 => (s / 3_600, "hour"),
        _ => (s / 86_400, "day"),
    };
    format!("{n} {unit}{} ago", if n == 1 { "" } else { "s" })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stages_and_instructions_from_descriptions() {
        assert_eq!(
            stage_and_instruction("[build 2/4] RUN make"),
            (Some("build"), Some("RUN make"))
        );
        assert_eq!(
            stage_and_instruction("[2/4] COPY . /"),
            (None, Some("COPY . /"))
        );
        assert_eq!(stage_and_instruction("layer of blob x"), (None, None));
    }

    #[test]
    fn filters() {
        let e = Filters::parse(&["type=nope".into()], 0)
            .unwrap_err()
            .to_string();
        assert!(e.contains("exec.cachemount"), "{e}");
        assert!(Filters::parse(&["color=red".into()], 0).is_err());
        let f = Filters::parse(&["until=1h".into(), "id=sha256:ab".into()], 10_000).unwrap();
        assert_eq!(f.until, Some(6_400));
        assert_eq!(f.ids, ["ab"]);
    }

    #[test]
    fn ages() {
        assert_eq!(ago(100, 90), "just now");
        assert_eq!(ago(4_000, 100), "1 hour ago");
        assert_eq!(ago(200_000, 0), "2 days ago");
    }
}
