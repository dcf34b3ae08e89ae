//! `strata build`.

use std::io::Write as _;
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;

use anyhow::{bail, Context as _};
use strata_image::ImageOptions;
use strata_ops::{SolveOptions, Solver};
use strata_scheduler::CancellationToken;

use crate::cli::{BuildArgs, Entitlement};
use crate::context::Definition;
use crate::diagnostics::{self, Usage};
use crate::outputs::{self, OutputSpec};
use crate::stdout::outln;
use crate::{export, progress, store};

pub fn run(mut args: BuildArgs, root: Option<&PathBuf>) -> anyhow::Result<ExitCode> {
    // `-q` and `--progress quiet` are one thing, as in `docker build`: only the image
    // ID (and errors).
    args.quiet |= args.progress == crate::progress::ProgressMode::Quiet;
    if args.quiet {
        args.progress = crate::progress::ProgressMode::Quiet;
    }
    let def = Definition::load(&args.def)?;
    if args.check {
        return check(&def, root);
    }
    // Outputs are parsed before any work, so a typo fails fast.
    crate::remote_cache::check(&args.cache_io)?;
    let mut outs = Vec::new();
    for o in &args.outputs {
        let out = outputs::parse(o)?;
        if let OutputSpec::Oci {
            name, compression, ..
        }
        | OutputSpec::Docker {
            name, compression, ..
        } = &out
        {
            if let Some(n) = name {
                strata_oci::Reference::parse(n).map_err(|e| Usage(format!("name={n:?}: {e}")))?;
            }
            export::compression(compression).map_err(|e| Usage(format!("{o:?}: {e}")))?;
        }
        outs.push(out);
    }
    let explicit_image = outs.iter().any(|o| matches!(o, OutputSpec::Image { .. }));
    let mut names = Vec::new();
    for t in &args.tags {
        let r = strata_oci::Reference::parse(t).map_err(|e| Usage(format!("-t {t:?}: {e}")))?;
        names.push(r.to_string());
    }
    if args.push {
        if names.is_empty() {
            return Err(Usage("--push needs at least one -t NAME".into()).into());
        }
        outs.push(OutputSpec::Registry {
            names: names.clone(),
            compression: Default::default(),
        });
    }
    for o in &outs {
        if let OutputSpec::Registry {
            names: n,
            compression,
        } = o
        {
            if n.is_empty() {
                return Err(Usage("type=registry needs name=REF".into()).into());
            }
            for extra in n {
                strata_oci::Reference::parse(extra)
                    .map_err(|e| Usage(format!("name={extra:?}: {e}")))?;
            }
            export::compression(compression).map_err(|e| Usage(format!("type=registry: {e}")))?;
        }
    }
    if !names.is_empty() && !outs.iter().any(|o| matches!(o, OutputSpec::Image { .. })) {
        outs.push(OutputSpec::Image { names: Vec::new() });
    }
    for o in outs.iter_mut() {
        if let OutputSpec::Image { names: n } = o {
            for extra in n.iter() {
                let r = strata_oci::Reference::parse(extra)
                    .map_err(|e| Usage(format!("name={extra:?}: {e}")))?;
                names.push(r.to_string());
            }
            n.clear();
        }
    }

    let store = store::open(root)?;
    let display = progress::reporter(args.progress)?;
    let remote = crate::registry::Remote {
        client: crate::registry::client()?,
        always: args.pull,
        reporter: display.clone(),
    };
    let lowered = def.lower_with(false, Some(store.clone()), Some(remote))?;
    let file = def.display_name();
    for w in &lowered.warnings {
        eprintln!(
            "warning: {file}:{}: {}: {}",
            w.span.start, w.rule.name, w.message
        );
    }
    if lowered.lint_error && !lowered.warnings.is_empty() {
        bail!(
            "{file}: {} lint warning(s) and `# check=error=true`",
            lowered.warnings.len()
        );
    }
    for a in &lowered.unused_build_args {
        eprintln!("warning: build-arg {a:?} was not consumed by any stage");
    }

    let reporter: Arc<dyn strata_progress::Reporter> = display.clone();
    let history = crate::explain::History::for_build(&store, &def);
    crate::commands::debug_shell::prune(&store);
    let tracker = Arc::new(crate::explain::Tracker::new(reporter));
    let reporter: Arc<dyn strata_progress::Reporter> = tracker.clone();
    let solver = Solver::new(store.clone())?;
    if args.explain {
        tracker.explain_live(&history, &lowered.graph, solver.reads());
    }
    let cache_io = crate::remote_cache::Session::start(
        &args.cache_io,
        (&store, solver.layers()),
        (&lowered.graph, lowered.target.vertex),
        args.quiet,
    )?;
    let allow_insecure = args.allow.contains(&Entitlement::SecurityInsecure);
    if !allow_insecure {
        let insecure = lowered.graph.closure(lowered.target.vertex).into_iter().find(|v| {
            matches!(&v.op, strata_graph::Op::Exec(e) if e.security == strata_graph::SecurityMode::Insecure)
        });
        if let Some(v) = insecure {
            bail!(
                "{}: RUN --security=insecure is not allowed without `--allow security.insecure`",
                v.meta.name
            );
        }
    }
    let opts = SolveOptions {
        local_dirs: def.local_dirs(),
        parallelism: None,
        runtime: args.runtime.clone(),
        secrets: secrets(&args.secrets)?,
        ssh: ssh_agents(&args.ssh, std::env::var_os("SSH_AUTH_SOCK"))?,
        allow_insecure,
        sharing: cache_io.sharing(),
        keep_failed: Some(crate::commands::debug_shell::kept_dir(&store, &history.id)),
    };
    let runtime = tokio::runtime::Runtime::new().context("starting the async runtime")?;
    let cancel = CancellationToken::new();
    let on_signal = cancel.clone();
    let chain = runtime.block_on(async {
        tokio::spawn(async move {
            if tokio::signal::ctrl_c().await.is_ok() {
                eprintln!("\ninterrupted: cancelling the build");
                on_signal.cancel();
            }
        });
        solver
            .solve(&lowered.graph, lowered.target, &opts, reporter, cancel)
            .await
    });
    let chain = match chain {
        Ok(c) => c,
        Err(e) => {
            let end = crate::explain::Ending {
                ok: false,
                image: None,
                names: &names,
            };
            let solved = (&lowered.graph, lowered.target.vertex, solver.reads());
            history.finish(solved, &tracker, end, args.explain);
            display.finish(false);
            eprintln!("build id: {}", history.id);
            let (on_error, program) = (args.on_error, &args.shell);
            crate::commands::debug_shell::after_failure(
                &store,
                &history.id,
                on_error,
                &args.runtime,
                program,
            );
            return Err(diagnostics::SolveFailed(e).into());
        }
    };

    // With no output asked for, the result is kept as an untagged image, as `docker
    // build` does; unless its layers are only in an imported cache: then nothing is
    // downloaded for an image nobody asked for (BuildKit's lazy refs; its
    // docker-container driver keeps no image at all without an output).
    let asked = !outs.is_empty() || args.iidfile.is_some() || args.metadata_file.is_some();
    // Likewise a push of such a result: the image is pushed from the imported blobs
    // (the registry mounts them from the cache's repository), and the local store keeps
    // no copy unless `-o type=image` asks for one, as with BuildKit's docker-container
    // driver.
    let remote = lazy_push(&cache_io, &chain, &outs, explicit_image, &args)?;
    let keep = (asked && remote.is_none()) || !cache_io.is_remote(&chain);
    if keep {
        cache_io.ensure(&chain)?;
    }
    let remote = remote.unwrap_or_default();
    let mut image_config = lowered.image.clone();
    cache_io.inline(&mut image_config, &chain, args.source_date_epoch)?;
    let created = humantime_now();
    let image_opts = ImageOptions {
        source_date_epoch: args.source_date_epoch,
        created: Some(created),
        ..Default::default()
    };
    let layers = solver.layers();
    let build = |opts: &ImageOptions| {
        export::build_image_with(&store, layers, &chain, image_config.clone(), opts, &remote)
    };
    // The local store keeps layers uncompressed: they are the layer directories already
    // stored, so tagging costs no compression and no copy. Files get what was asked.
    let store_opts = ImageOptions {
        compression: strata_image::Compression::Uncompressed,
        ..image_opts.clone()
    };
    let mut reported = None;
    let mut pushed = Vec::new();
    let store_image = outs.iter().any(|o| matches!(o, OutputSpec::Image { .. }));
    if keep && (outs.is_empty() || store_image) {
        let image = build(&store_opts)?;
        for n in &names {
            export::tag(&store, n, &image)?;
        }
        reported = Some(image);
    }
    for o in &outs {
        match o {
            OutputSpec::Image { .. } => {}
            OutputSpec::Oci {
                dest,
                tar,
                name,
                compression,
            } => {
                let image = build(&ImageOptions {
                    compression: export::compression(compression)?,
                    ..image_opts.clone()
                })?;
                // As buildx: the output's `name=`, else every `-t`.
                let refs = match name {
                    Some(n) => vec![strata_oci::Reference::parse(n)?],
                    None => names
                        .iter()
                        .map(|n| strata_oci::Reference::parse(n))
                        .collect::<Result<_, _>>()?,
                };
                export::write_oci(dest, *tar, (&store, layers), &image, &refs)?;
                reported = Some(image);
            }
            OutputSpec::Docker {
                dest,
                name,
                compression,
            } => {
                let docker_opts = ImageOptions {
                    media: export::media(true),
                    compression: export::compression(compression)?,
                    ..image_opts.clone()
                };
                let image = build(&docker_opts)?;
                let mut tags: Vec<String> = name.iter().cloned().collect();
                tags.extend(names.iter().cloned());
                export::write_docker(dest, (&store, layers), &image, &tags)?;
                reported.get_or_insert(image);
            }
            OutputSpec::Registry {
                names: dests,
                compression,
            } => {
                // As `type=oci`: compressed layers (gzip by default) into the store.
                let image = build(&ImageOptions {
                    compression: export::compression(compression)?,
                    ..image_opts.clone()
                })?;
                for d in dests {
                    let dest = strata_oci::Reference::parse(d)?;
                    let digest = crate::commands::registry::push_stored_with(
                        &store,
                        &dest,
                        &image.manifest_bytes,
                        &crate::registry::TransferOptions::new(
                            display.clone(),
                            crate::registry::push_parallelism(args.push_parallelism)?,
                        ),
                        &|d| cache_io.fetch_blob(d),
                    )?;
                    if !args.quiet {
                        eprintln!("pushed {}@{digest}", dest.name());
                    }
                    pushed.push(format!("{dest}@{digest}"));
                }
                reported = Some(image);
            }
            OutputSpec::Local { dest } => export::write_local(dest, layers, &chain)?,
            OutputSpec::Tar { dest } => {
                export::write_rootfs_tar(dest, layers, &chain, store.tmp_dir())?
            }
        }
    }
    if reported.is_none() && (args.iidfile.is_some() || args.metadata_file.is_some()) {
        reported = Some(build(&store_opts)?);
    }
    let image = reported;
    let end = crate::explain::Ending {
        ok: true,
        image: image.as_ref().map(|i| i.config.digest.to_string()),
        names: &names,
    };
    let solved = (&lowered.graph, lowered.target.vertex, solver.reads());
    history.finish(solved, &tracker, end, args.explain);
    display.finish(true);
    cache_io.export(&chain)?;
    if let Some(image) = &image {
        let id = image.config.digest.to_string();
        if let Some(f) = &args.iidfile {
            fs_err::write(f, &id)?;
        }
        if let Some(f) = &args.metadata_file {
            let meta = serde_json::json!({
                "containerimage.digest": image.manifest.digest,
                "containerimage.config.digest": image.config.digest,
                "containerimage.descriptor": image.manifest,
                "image.name": names.join(","),
                "strata.build-id": history.id,
            });
            let mut meta = meta;
            if !pushed.is_empty() {
                meta["image.pushed"] = serde_json::json!(pushed);
            }
            fs_err::write(f, serde_json::to_vec_pretty(&meta)?)?;
        }
        let mut out = std::io::stdout();
        let _ = writeln!(out, "{id}");
        if !args.quiet && keep {
            for n in &names {
                eprintln!("naming to {n}");
            }
        }
    }
    if !keep && !args.quiet {
        if asked {
            eprintln!(
                "note: the result's layers are only in the imported cache: the image was \
                 pushed from its blobs (mounted by the registry where it could), its layers \
                 were not extracted here and it was not stored locally (-o type=image keeps \
                 a local copy)"
            );
        } else {
            eprintln!(
                "note: no output was asked for and the result's layers are in the imported \
                 cache: nothing was downloaded and no image was stored (-t NAME, -o or \
                 --push keeps it)"
            );
        }
    }
    if !args.quiet {
        eprintln!("build id: {}", history.id);
    }
    // Last: everything this build made is named or written out by now.
    super::gc_auto::after_build(&store);
    Ok(ExitCode::SUCCESS)
}

/// The remote layers (see [`export::RemoteLayer`]) an image of `chain` can be pushed
/// from without fetching them: when the outputs are registry pushes (and the store
/// image `-t` implies) of one compression that the imported blobs have, with no
/// SOURCE_DATE_EPOCH (whose layers are rewritten) and no inline cache (which reads the
/// layers). None otherwise, or when the result's layers are all local.
fn lazy_push(
    cache_io: &crate::remote_cache::Session,
    chain: &strata_snapshot::Chain,
    outs: &[OutputSpec],
    explicit_image: bool,
    args: &BuildArgs,
) -> anyhow::Result<Option<export::RemoteLayers>> {
    if explicit_image
        || args.source_date_epoch.is_some()
        || cache_io.inlines()
        || !cache_io.is_remote(chain)
    {
        return Ok(None);
    }
    let mut compression = None;
    for o in outs {
        match o {
            OutputSpec::Image { .. } => {}
            OutputSpec::Registry { compression: c, .. } => {
                let c = export::compression(c)?;
                if compression.is_some_and(|p| p != c) {
                    return Ok(None);
                }
                compression = Some(c);
            }
            _ => return Ok(None),
        }
    }
    match compression {
        Some(c) => cache_io.remote_layers(chain, &c),
        None => Ok(None),
    }
}

fn check(def: &Definition, root: Option<&PathBuf>) -> anyhow::Result<ExitCode> {
    let lowered = def.lower(true, store::open_existing(root))?;
    let file = def.display_name();
    for w in &lowered.warnings {
        outln!("{file}:{}: {}: {}", w.span.start, w.rule.name, w.message);
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

/// `--secret id=ID,src=PATH|env=VAR` (buildx's syntax; `source=` for `src=`, `type=`
/// is implied) into the secrets map. `id=ID` alone reads the variable `ID`.
fn secrets(specs: &[String]) -> anyhow::Result<strata_ops::Secrets> {
    let mut out = std::collections::BTreeMap::new();
    for spec in specs {
        let (id, bytes) = secret(spec)?;
        out.insert(id, bytes);
    }
    Ok(strata_ops::Secrets::new(out))
}

fn secret(spec: &str) -> anyhow::Result<(String, Vec<u8>)> {
    let usage = |why: &str| Usage(format!("--secret {spec:?}: {why}"));
    let (mut id, mut src, mut env) = (None, None, None);
    for field in spec.split(',') {
        match field.split_once('=') {
            Some(("id", v)) => id = Some(v.to_string()),
            Some(("src" | "source", v)) => src = Some(PathBuf::from(v)),
            Some(("env", v)) => env = Some(v.to_string()),
            Some(("type", "file" | "env")) => {}
            _ => return Err(usage("expected id=ID,src=PATH or id=ID,env=VAR").into()),
        }
    }
    let id = id
        .filter(|i| !i.is_empty())
        .ok_or_else(|| usage("id= is missing"))?;
    let bytes = match (src, env) {
        (Some(_), Some(_)) => return Err(usage("give src= or env=, not both").into()),
        (Some(path), None) => fs_err::read(&path).with_context(|| format!("--secret id={id}"))?,
        (None, var) => {
            let var = var.unwrap_or_else(|| id.clone());
            std::env::var_os(&var)
                .ok_or_else(|| usage(&format!("the environment variable {var} is not set")))?
                .into_encoded_bytes()
        }
    };
    Ok((id, bytes))
}

/// `--ssh default|ID[=SOCKET]` (buildx's syntax) into the agents map: without a
/// socket, `$SSH_AUTH_SOCK` (`auth_sock`). Each must be a socket; key files, which
/// buildx also takes, are refused with a hint to load them into an agent.
fn ssh_agents(
    specs: &[String],
    auth_sock: Option<std::ffi::OsString>,
) -> anyhow::Result<strata_ops::SshAgents> {
    use std::os::unix::fs::FileTypeExt;
    let mut out = std::collections::BTreeMap::new();
    for spec in specs {
        let usage = |why: &str| Usage(format!("--ssh {spec:?}: {why}"));
        let (id, path) = match spec.split_once('=') {
            Some((id, paths)) => {
                if paths.contains(',') {
                    return Err(usage(
                        "one agent socket per id (key files are not supported: load them with `ssh-add` into an agent and pass its socket)",
                    )
                    .into());
                }
                (id, PathBuf::from(paths))
            }
            None => match &auth_sock {
                Some(sock) if !sock.is_empty() => (spec.as_str(), PathBuf::from(sock)),
                _ => {
                    return Err(usage(
                        "SSH_AUTH_SOCK is not set (start an agent with `eval $(ssh-agent)`, or pass ID=SOCKET)",
                    )
                    .into())
                }
            },
        };
        if id.is_empty() || path.as_os_str().is_empty() {
            return Err(usage("expected default, ID or ID=SOCKET").into());
        }
        let meta = fs_err::metadata(&path).with_context(|| format!("--ssh {id}"))?;
        if !meta.file_type().is_socket() {
            return Err(usage(&format!(
                "{} is not a socket (key files are not supported: load them with `ssh-add` into an agent and pass its socket)",
                path.display()
            ))
            .into());
        }
        out.insert(id.to_string(), path);
    }
    Ok(strata_ops::SshAgents::new(out))
}

/// The build time as RFC 3339 UTC (`2026-11-25T14:00:00Z`).
fn humantime_now() -> String {
    let secs = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs() as i64)
        .unwrap_or(0);
    rfc3339(secs)
}

pub fn rfc3339(secs: i64) -> String {
    let days = secs.div_euclid(86_400);
    let rem = secs.rem_euclid(86_400);
    // Civil-from-days (Howard Hinnant's algorithm).
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let y = yoe + era * 400;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    let y = if m <= 2 { y + 1 } else { y };
    format!(
        "{y:04}-{m:02}-{d:02}T{:02}:{:02}:{:02}Z",
        rem / 3600,
        rem % 3600 / 60,
        rem % 60
    )
}

#[cfg(test)]
mod tests {
    #[test]
    fn secrets_come_from_files_and_variables() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("token");
        std::fs::write(&file, b"s3cr3t").unwrap();
        let (id, bytes) = super::secret(&format!("id=tok,src={}", file.display())).unwrap();
        assert_eq!((id.as_str(), bytes.as_slice()), ("tok", &b"s3cr3t"[..]));
        std::env::set_var("STRATA_TEST_SECRET_VAR", "from-env");
        let (id, bytes) = super::secret("id=v,env=STRATA_TEST_SECRET_VAR").unwrap();
        assert_eq!((id.as_str(), bytes.as_slice()), ("v", &b"from-env"[..]));
        let (_, bytes) = super::secret("id=STRATA_TEST_SECRET_VAR").unwrap();
        assert_eq!(bytes, b"from-env");
        for bad in ["src=/x", "id=a,what=b", "id=a,src=/x,env=Y"] {
            let e = super::secret(bad).unwrap_err();
            assert!(e.downcast_ref::<super::Usage>().is_some(), "{bad}: {e}");
        }
        assert!(super::secret("id=a,src=/no/such/file")
            .unwrap_err()
            .to_string()
            .contains("--secret id=a"));
    }

    #[test]
    fn ssh_agents_are_sockets_by_id() {
        let dir = tempfile::tempdir().unwrap();
        let sock = dir.path().join("agent.sock");
        let _listener = std::os::unix::net::UnixListener::bind(&sock).unwrap();
        let file = dir.path().join("id_ed25519");
        std::fs::write(&file, "key").unwrap();
        let specs = ["default".to_string(), format!("other={}", sock.display())];
        let agents = super::ssh_agents(&specs, Some(sock.clone().into())).unwrap();
        assert_eq!(agents.ids().collect::<Vec<_>>(), ["default", "other"]);
        assert_eq!(agents.get("default"), Some(sock.as_path()));
        let usage = |spec: String, auth: Option<&std::path::Path>| {
            let e =
                super::ssh_agents(std::slice::from_ref(&spec), auth.map(|p| p.into())).unwrap_err();
            assert!(e.downcast_ref::<super::Usage>().is_some(), "{spec}: {e}");
            e.to_string()
        };
        assert!(usage("default".into(), None).contains("SSH_AUTH_SOCK is not set"));
        assert!(usage(format!("k={}", file.display()), None).contains("is not a socket"));
        assert!(
            usage(format!("k={0},{0}", sock.display()), None).contains("one agent socket per id")
        );
        assert!(usage("=x".into(), None).contains("expected default"));
        assert!(super::ssh_agents(&["a=/no/such/sock".to_string()], None)
            .unwrap_err()
            .to_string()
            .contains("--ssh a"));
    }

    #[test]
    fn rfc3339_dates() {
        assert_eq!(super::rfc3339(0), "1970-01-01T00:00:00Z");
        assert_eq!(super::rfc3339(1_700_000_000), "2023-11-14T22:13:20Z");
        assert_eq!(super::rfc3339(951_782_400), "2000-02-29T00:00:00Z");
    }
}
