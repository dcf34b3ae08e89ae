//! `strata images` and `strata image …`: the local image store.

use std::io::Read;
use std::path::Path;
use std::process::ExitCode;
use std::sync::Arc;

use anyhow::{bail, Context as _};
use strata_digest::Digest;
use strata_image::ImageOptions;
use strata_oci::{History, ImageConfig, ImageIndex, ImageManifest, Platform, Reference};
use strata_store::Store;

use crate::cli::ImageCommand;
use crate::diagnostics::Usage;
use crate::progress::plain::human;
use crate::stdout::outln;
use crate::{export, store};

pub fn run(cmd: ImageCommand, root: Option<&std::path::PathBuf>) -> anyhow::Result<ExitCode> {
    let store = store::open(root)?;
    match cmd {
        ImageCommand::Ls => list(&store),
        ImageCommand::Rm { names } => {
            let mut failed = false;
            for n in names {
                let full = full_name(&n)?;
                if store.remove_image(&full)? {
                    outln!("Untagged: {n}");
                } else {
                    eprintln!("error: no such image: {n}");
                    failed = true;
                }
            }
            Ok(if failed {
                ExitCode::from(1)
            } else {
                ExitCode::SUCCESS
            })
        }
        ImageCommand::Inspect { name } => {
            let (full, manifest_digest, manifest, config) = load_image(&store, &name)?;
            let out = serde_json::json!({
                "Name": full,
                "Id": manifest.config.digest,
                "Digest": manifest_digest,
                "Manifest": manifest,
                "Config": config,
            });
            outln!("{}", serde_json::to_string_pretty(&out)?);
            Ok(ExitCode::SUCCESS)
        }
        ImageCommand::History { name, no_trunc } => history(&store, &name, no_trunc),
        ImageCommand::Import { tarball, name } => import(&store, &tarball, &name),
        ImageCommand::Load { input, tag } => load(&store, &input, tag.as_deref()),
    }
}

fn full_name(n: &str) -> anyhow::Result<String> {
    Ok(Reference::parse(n)
        .map_err(|e| Usage(format!("{n:?}: {e}")))?
        .to_string())
}

pub fn list(store: &Store) -> anyhow::Result<ExitCode> {
    outln!(
        "{:<40} {:<16} {:<14} {:<16} SIZE",
        "REPOSITORY",
        "TAG",
        "IMAGE ID",
        "CREATED"
    );
    for (name, rec) in store.images()? {
        let r = Reference::parse(&name).ok();
        let (repo, tag) = match &r {
            Some(r) => {
                let fam = Reference {
                    tag: None,
                    digest: None,
                    ..r.clone()
                }
                .familiar();
                (fam, r.tag.clone().unwrap_or_else(|| "<none>".into()))
            }
            None => (name.clone(), "<none>".into()),
        };
        let created = rec
            .created
            .as_deref()
            .map(ago)
            .unwrap_or_else(|| "N/A".into());
        outln!(
            "{:<40} {:<16} {:<14} {:<16} {}",
            repo,
            tag,
            rec.config.short(),
            created,
            human(rec.size)
        );
    }
    Ok(ExitCode::SUCCESS)
}

/// "5 minutes ago" from an RFC 3339 timestamp.
fn ago(rfc: &str) -> String {
    let Some(t) = parse_rfc3339(rfc) else {
        return rfc.to_string();
    };
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs() as i64)
        .unwrap_or(0);
    let s = (now - t).max(0);
    let (n, unit) = match s {
        0..=59 => (s, "second"),
        60..=3599 => (s / 60, "minute"),
        3600..=86_399 => (s / 3600, "hour"),
        86_400..=2_591_999 => (s / 86_400, "day"),
        2_592_000..=31_535_999 => (s / 2_592_000, "month"),
        _ => (s / 31_536_000, "year"),
    };
    format!("{n} {unit}{} ago", if n == 1 { "" } else { "s" })
}

fn parse_rfc3339(s: &str) -> Option<i64> {
    let b = s.as_bytes();
    if b.len() < 19 {
        return None;
    }
    let num = |r: std::ops::Range<usize>| s.get(r)?.parse::<i64>().ok();
    let (y, m, d) = (num(0..4)?, num(5..7)?, num(8..10)?);
    let (hh, mm, ss) = (num(11..13)?, num(14..16)?, num(17..19)?);
    let y2 = if m <= 2 { y - 1 } else { y };
    let era = y2.div_euclid(400);
    let yoe = y2 - era * 400;
    let mp = (m + 9) % 12;
    let doy = (153 * mp + 2) / 5 + d - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    let days = era * 146_097 + doe - 719_468;
    Some(days * 86_400 + hh * 3600 + mm * 60 + ss)
}

fn load_image(
    store: &Store,
    name: &str,
) -> anyhow::Result<(String, Digest, ImageManifest, ImageConfig)> {
    let full = full_name(name)?;
    let rec = store
        .image(&full)?
        .ok_or_else(|| anyhow::anyhow!("no such image: {name}"))?;
    let manifest: ImageManifest = serde_json::from_slice(&store.read_blob(&rec.manifest)?)?;
    let config: ImageConfig = serde_json::from_slice(&store.read_blob(&manifest.config.digest)?)?;
    Ok((full, rec.manifest, manifest, config))
}

fn history(store: &Store, name: &str, no_trunc: bool) -> anyhow::Result<ExitCode> {
    let (_, _, manifest, config) = load_image(store, name)?;
    outln!(
        "{:<14} {:<16} {:<50} {:>10}  COMMENT",
        "IMAGE",
        "CREATED",
        "CREATED BY",
        "SIZE"
    );
    let mut layers = manifest.layers.iter().rev();
    let id = config_id(store, &manifest);
    for (i, h) in config.history.iter().enumerate().rev() {
        let size = if h.empty_layer {
            0
        } else {
            layers.next().map(|l| l.size).unwrap_or(0)
        };
        let by = h.created_by.clone().unwrap_or_default();
        let by = if no_trunc || by.chars().count() <= 47 {
            by
        } else {
            format!("{}...", by.chars().take(44).collect::<String>())
        };
        let img = if i + 1 == config.history.len() {
            id.clone()
        } else {
            "<missing>".to_string()
        };
        let created = h
            .created
            .as_deref()
            .map(ago)
            .unwrap_or_else(|| "N/A".into());
        outln!(
            "{:<14} {:<16} {:<50} {:>10}  {}",
            img,
            created,
            by,
            human(size),
            h.comment.clone().unwrap_or_default()
        );
    }
    Ok(ExitCode::SUCCESS)
}

fn config_id(_store: &Store, manifest: &ImageManifest) -> String {
    manifest.config.digest.short()
}

/// `docker import`: one layer from a root filesystem tarball.
fn import(store: &Store, tarball: &Path, name: &str) -> anyhow::Result<ExitCode> {
    let full = full_name(name)?;
    let layers = Arc::new(strata_snapshot::Layers::new(store.root(), store.tmp_dir())?);
    // The process's lease before the layer exists: a concurrent collection leaves
    // files newer than it alone until the image is named.
    store.hold()?;
    let reader: Box<dyn Read + Send> = if tarball.as_os_str() == "-" {
        Box::new(std::io::stdin())
    } else {
        Box::new(
            std::fs::File::open(tarball)
                .with_context(|| format!("opening {}", tarball.display()))?,
        )
    };
    let reader = decompress(std::io::BufReader::with_capacity(1 << 20, reader))?;
    let applied = layers
        .apply(reader, None)
        .with_context(|| format!("reading {}", tarball.display()))?;
    let platform = Platform::host();
    let created = super::build::rfc3339(
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_secs() as i64)
            .unwrap_or(0),
    );
    let config = ImageConfig {
        architecture: platform.architecture.clone(),
        os: platform.os.clone(),
        variant: platform.variant.clone(),
        history: vec![History {
            created: Some(created.clone()),
            created_by: Some(format!("strata image import {}", tarball.display())),
            comment: Some("Imported from tarball".into()),
            ..Default::default()
        }],
        ..Default::default()
    };
    let chain = strata_snapshot::Chain(vec![applied.diff_id]);
    let opts = ImageOptions {
        created: Some(created),
        ..Default::default()
    };
    let image = export::build_image(store, &layers, &chain, config, &opts)?;
    export::tag(store, &full, &image)?;
    outln!("{}", image.config.digest);
    Ok(ExitCode::SUCCESS)
}

/// Sniffs gzip/zstd and returns a reader of the plain tar.
fn decompress<R: Read + Send + 'static>(
    mut r: std::io::BufReader<R>,
) -> anyhow::Result<Box<dyn Read + Send>> {
    use std::io::BufRead;
    let head = r.fill_buf()?.to_vec();
    Ok(if head.starts_with(&[0x1f, 0x8b]) {
        Box::new(flate2::read::MultiGzDecoder::new(r))
    } else if head.starts_with(&[0x28, 0xb5, 0x2f, 0xfd]) {
        Box::new(zstd::stream::read::Decoder::with_buffer(r)?)
    } else {
        Box::new(r)
    })
}

/// Loads every image of an OCI archive or layout into the store.
fn load(store: &Store, input: &Path, tag: Option<&str>) -> anyhow::Result<ExitCode> {
    let index: ImageIndex = if input.is_dir() {
        let index: ImageIndex = serde_json::from_slice(&fs_err::read(input.join("index.json"))?)
            .with_context(|| format!("{}: invalid index.json", input.display()))?;
        copy_layout_blobs(store, input, &index)?;
        index
    } else {
        load_archive(store, input)?
    };
    if index.manifests.is_empty() {
        bail!("{}: the index lists no image", input.display());
    }
    let mut loaded = 0;
    for d in &index.manifests {
        let annotated = d
            .annotations
            .get("io.containerd.image.name")
            .or_else(|| {
                d.annotations
                    .get(strata_image::outputs::IMAGE_NAME_ANNOTATION)
            })
            .cloned()
            .or_else(|| {
                d.annotations
                    .get(strata_image::outputs::REF_NAME_ANNOTATION)
                    .filter(|n| n.contains('/') || n.contains(':'))
                    .cloned()
            });
        let Some(name) = annotated.or_else(|| tag.map(str::to_string)) else {
            eprintln!(
                "warning: image {} has no name; pass -t NAME to name it",
                d.digest
            );
            continue;
        };
        let full = full_name(&name)?;
        let manifest: ImageManifest = serde_json::from_slice(&store.read_blob(&d.digest)?)?;
        let config_bytes = store.read_blob(&manifest.config.digest)?;
        let cfg: ImageConfig = serde_json::from_slice(&config_bytes)?;
        let size = manifest.config.size + manifest.layers.iter().map(|l| l.size).sum::<u64>();
        store.put_image(
            &full,
            &strata_store::ImageRecord {
                manifest: d.digest,
                config: manifest.config.digest,
                media_type: d.media_type.clone(),
                size,
                created: cfg.created.clone(),
                platform: format!("{}/{}", cfg.os, cfg.architecture),
            },
        )?;
        // As `docker load` prints it: `app:1`, not `docker.io/library/app:1`.
        let shown = Reference::parse(&full)
            .map(|r| r.familiar())
            .unwrap_or(full);
        outln!("Loaded image: {shown}");
        loaded += 1;
    }
    if loaded == 0 {
        bail!("no image was loaded");
    }
    Ok(ExitCode::SUCCESS)
}

fn copy_layout_blobs(store: &Store, dir: &Path, index: &ImageIndex) -> anyhow::Result<()> {
    let mut todo: Vec<Digest> = index.manifests.iter().map(|d| d.digest).collect();
    while let Some(d) = todo.pop() {
        let path = dir.join("blobs/sha256").join(d.hex());
        let f = fs_err::File::open(&path)?;
        store
            .write_blob(f, Some(&d))
            .with_context(|| format!("copying {}", path.display()))?;
        let bytes = store.read_blob(&d).ok();
        if let Some(m) = bytes.and_then(|b| serde_json::from_slice::<ImageManifest>(&b).ok()) {
            todo.push(m.config.digest);
            todo.extend(m.layers.iter().map(|l| l.digest));
        }
    }
    Ok(())
}

/// Streams an OCI archive: every `blobs/sha256/<hex>` entry into the store (verified),
/// `index.json` kept.
fn load_archive(store: &Store, input: &Path) -> anyhow::Result<ImageIndex> {
    let f = fs_err::File::open(input)?;
    let mut archive = tar::Archive::new(decompress(std::io::BufReader::with_capacity(1 << 20, f))?);
    let mut index = None;
    // A `docker save` archive without index.json: its manifest.json and the files it names.
    let mut docker_manifest = None;
    let mut docker_files = std::collections::HashMap::new();
    for entry in archive
        .entries()
        .with_context(|| format!("reading {}", input.display()))?
    {
        let mut entry = entry?;
        // Directory entries (`blobs/`, `blobs/sha256/`) carry nothing to load.
        if !entry.header().entry_type().is_file() {
            continue;
        }
        let path = entry
            .path()?
            .to_string_lossy()
            .trim_start_matches("./")
            .to_string();
        if path == "index.json" {
            let mut buf = Vec::new();
            entry.read_to_end(&mut buf)?;
            index = Some(
                serde_json::from_slice::<ImageIndex>(&buf)
                    .with_context(|| format!("{}: invalid index.json", input.display()))?,
            );
        } else if let Some(hex) = path.strip_prefix("blobs/sha256/") {
            let d: Digest = format!("sha256:{hex}")
                .parse()
                .with_context(|| format!("{}: bad blob name {path}", input.display()))?;
            store
                .write_blob(&mut entry, Some(&d))
                .with_context(|| format!("{}: blob {d}", input.display()))?;
        } else if path == "manifest.json" {
            let mut buf = Vec::new();
            entry.read_to_end(&mut buf)?;
            docker_manifest = Some(buf);
        } else if super::docker_save::is_blob_file(&path) {
            let blob = store
                .write_blob(&mut entry, None)
                .with_context(|| format!("{}: {path}", input.display()))?;
            docker_files.insert(path, blob);
        }
    }
    match (index, docker_manifest) {
        (Some(index), _) => Ok(index),
        (None, Some(m)) => super::docker_save::index(store, &m, &docker_files)
            .with_context(|| format!("{}: a docker save archive", input.display())),
        (None, None) => bail!(
            "{}: neither an OCI archive (index.json) nor a docker save archive (manifest.json)",
            input.display()
        ),
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn rfc3339_round_trip() {
        for s in [0i64, 1_700_000_000, 951_782_400] {
            assert_eq!(
                super::parse_rfc3339(&super::super::build::rfc3339(s)),
                Some(s)
            );
        }
    }
}
