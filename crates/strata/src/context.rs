//! Loading what a build is defined by: the Dockerfile, its `.dockerignore`, and the
//! command-line options, turned into the frontend's `LowerOptions`.

use std::collections::BTreeMap;
use std::io::Read;
use std::path::{Path, PathBuf};

use anyhow::Context as _;
use strata_dockerfile::{LowerOptions, Lowered, NamedContext};
use strata_oci::Platform;

use crate::cli::DefinitionArgs;
use crate::diagnostics::{DockerfileError, Usage};
use crate::resolver::LocalResolver;

pub struct Definition {
    /// The Dockerfile path as the user named it (for messages).
    pub path: PathBuf,
    /// The build context directory.
    pub context: PathBuf,
    pub source: Vec<u8>,
    pub options: LowerOptions,
}

impl Definition {
    pub fn load(args: &DefinitionArgs) -> anyhow::Result<Self> {
        let context = &args.context;
        if !context.is_dir() {
            return Err(Usage(format!(
                "build context {} is not a directory",
                context.display()
            ))
            .into());
        }
        let (path, source) = match &args.file {
            Some(f) if f.as_os_str() == "-" => {
                let mut buf = Vec::new();
                std::io::stdin()
                    .read_to_end(&mut buf)
                    .context("reading the Dockerfile from stdin")?;
                (PathBuf::from("-"), buf)
            }
            Some(f) => (f.clone(), fs_err::read(f)?),
            None => {
                let p = context.join("Dockerfile");
                (
                    p.clone(),
                    fs_err::read(&p).with_context(|| {
                        format!(
                            "no Dockerfile in {} (use -f to name one)",
                            context.display()
                        )
                    })?,
                )
            }
        };
        let mut options = LowerOptions {
            target: args.target.clone(),
            build_args: parse_build_args(&args.build_args)?,
            no_cache: args.no_cache,
            no_cache_filter: args.no_cache_filter.clone(),
            dockerignore: read_dockerignore(&path, context)?,
            ..LowerOptions::default()
        };
        if let Some(p) = &args.platform {
            options.target_platform = p.parse::<Platform>().map_err(|e| Usage(e.to_string()))?;
        }
        for bc in &args.build_contexts {
            let (name, value) = bc
                .split_once('=')
                .ok_or_else(|| Usage(format!("--build-context {bc:?}: expected NAME=VALUE")))?;
            let ctx = NamedContext::parse(value)
                .map_err(|e| Usage(format!("--build-context {name}: {e}")))?;
            options.named_contexts.insert(name.to_string(), ctx);
        }
        Ok(Definition {
            path,
            context: context.clone(),
            source,
            options,
        })
    }

    /// Local directories by source name: the main context and named local contexts.
    pub fn local_dirs(&self) -> std::collections::BTreeMap<String, PathBuf> {
        // Absolute: RUN binds them into containers, which a relative path cannot name.
        let absolute = |p: PathBuf| std::path::absolute(&p).unwrap_or(p);
        let mut m = std::collections::BTreeMap::new();
        m.insert("context".to_string(), absolute(self.context.clone()));
        for (name, ctx) in &self.options.named_contexts {
            if let NamedContext::Local { path } = ctx {
                m.insert(name.clone(), absolute(PathBuf::from(path)));
            }
        }
        m
    }

    /// `Dockerfile` or the `-f` path, as messages show it.
    pub fn display_name(&self) -> String {
        if self.path.as_os_str() == "-" {
            return "Dockerfile".into();
        }
        self.path.display().to_string()
    }

    /// Lowers the Dockerfile; `allow_unresolved` lets `--check`/graph dumps proceed
    /// without the base images' filesystems.
    pub fn lower(
        &self,
        allow_unresolved: bool,
        store: Option<strata_store::Store>,
    ) -> anyhow::Result<Lowered> {
        self.lower_with(allow_unresolved, store, None)
    }

    /// As [`Definition::lower`], pulling base images the store lacks from `remote`.
    pub fn lower_with(
        &self,
        allow_unresolved: bool,
        store: Option<strata_store::Store>,
        remote: Option<crate::registry::Remote>,
    ) -> anyhow::Result<Lowered> {
        let mut opts = self.options.clone();
        opts.allow_unresolved = allow_unresolved;
        let resolver = LocalResolver { store, remote };
        strata_dockerfile::lower(&self.source, &opts, &resolver).map_err(|err| {
            DockerfileError {
                file: self.display_name(),
                source_text: String::from_utf8_lossy(&self.source).into_owned(),
                err,
            }
            .into()
        })
    }
}

/// `KEY=VALUE`, or `KEY` alone to take the value from the environment (skipped if unset).
fn parse_build_args(raw: &[String]) -> anyhow::Result<BTreeMap<String, String>> {
    let mut out = BTreeMap::new();
    for a in raw {
        match a.split_once('=') {
            Some(("", _)) => return Err(Usage(format!("--build-arg {a:?}: empty name")).into()),
            Some((k, v)) => {
                out.insert(k.to_string(), v.to_string());
            }
            None => {
                if let Ok(v) = std::env::var(a) {
                    out.insert(a.clone(), v);
                }
            }
        }
    }
    Ok(out)
}

/// `<Dockerfile>.dockerignore` beside the Dockerfile wins over `CONTEXT/.dockerignore`.
fn read_dockerignore(dockerfile: &Path, context: &Path) -> anyhow::Result<Vec<String>> {
    let specific = dockerfile.as_os_str().to_string_lossy().to_string() + ".dockerignore";
    let candidates = [PathBuf::from(specific), context.join(".dockerignore")];
    for c in candidates {
        if dockerfile.as_os_str() == "-" && c != context.join(".dockerignore") {
            continue;
        }
        match fs_err::read_to_string(&c) {
            Ok(text) => return Ok(strata_patternmatcher::read_ignore_file(&text)),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => continue,
            Err(e) => return Err(e.into()),
        }
    }
    Ok(Vec::new())
}
