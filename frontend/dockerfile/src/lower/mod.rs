//! The lowering driver: picks the target, lowers the stages it reaches (each once,
//! dependencies first, cycles rejected) and dispatches instructions to the per-feature
//! modules.

mod copy;
mod from;
mod meta;
mod run;
mod run_mount;

use std::collections::{BTreeMap, BTreeSet};

use strata_graph::{Graph, Input, Op, Source, VertexId, VertexMeta};
use strata_instructions::lint::{LintConfig, Linter, Warning};
use strata_instructions::{Command, Dockerfile, Instruction};
use strata_oci::{History, ImageConfig, Platform};
use strata_parser::Span;
use strata_shell::Lexer;

use crate::scope::{platform_args, Args, Expander, StageEnv};
use crate::{ImageMetaResolver, LowerError, LowerErrorKind, LowerOptions, NamedContext};

/// A lowered build.
#[derive(Debug)]
pub struct Lowered {
    pub graph: Graph,
    /// The target stage's filesystem.
    pub target: Input,
    /// The image config the target stage produces, with its history (`created` and
    /// `rootfs` are the exporter's to fill).
    pub image: ImageConfig,
    pub target_stage: String,
    pub warnings: Vec<Warning>,
    /// `# check=error=true`: warnings must fail the build.
    pub lint_error: bool,
    /// `--build-arg`s no stage declared (Docker warns about them).
    pub unused_build_args: Vec<String>,
    /// Stage names (or `stage-N`) lowered, in order.
    pub stages_lowered: Vec<String>,
}

/// Parses the Dockerfile into typed instructions and runs the parse-time lint rules.
pub fn parse_and_lint(
    src: &[u8],
    extra: Option<&LintConfig>,
) -> Result<(Dockerfile, Linter), LowerError> {
    let ast = strata_parser::parse_bytes(src)?;
    let mut config = LintConfig::from_directive(ast.directives.check.as_ref());
    if let Some(extra) = extra {
        config.skip.extend(extra.skip.iter().cloned());
        config.skip_all |= extra.skip_all;
        config
            .experimental
            .extend(extra.experimental.iter().cloned());
        config.experimental_all |= extra.experimental_all;
        config.error |= extra.error;
    }
    let mut linter = Linter::new(config);
    let df = strata_instructions::parse_dockerfile(&ast, &mut linter)?;
    Ok((df, linter))
}

/// Lowers `src` (a Dockerfile) for `opts.target`, resolving base images through `resolver`.
pub fn lower(
    src: &[u8],
    opts: &LowerOptions,
    resolver: &dyn ImageMetaResolver,
) -> Result<Lowered, LowerError> {
    let (df, linter) = parse_and_lint(src, opts.lint.as_ref())?;
    let lexer = Lexer::new(df.escape);
    let mut l = Lowering {
        df: &df,
        opts,
        resolver,
        lexer,
        lint: linter,
        graph: Graph::new(),
        global: Args::default(),
        global_declared: BTreeSet::new(),
        done: (0..df.stages.len()).map(|_| None).collect(),
        in_progress: vec![false; df.stages.len()],
        used_args: BTreeSet::new(),
        context: None,
        named: BTreeMap::new(),
        images: BTreeMap::new(),
        order: Vec::new(),
    };
    l.global_scope()?;
    for stage in &df.stages {
        l.lint_from(stage);
    }
    let target = l.target_index()?;
    let root = l.stage(target, None)?;
    let image = l.done[target].take().expect("target stage lowered").image;
    let lint_error = l.lint.config.error;
    let warnings = l.lint.into_warnings();
    let unused_build_args = opts
        .build_args
        .keys()
        .filter(|k| !l.used_args.contains(*k) && !crate::scope::PROXY_ARGS.contains(&k.as_str()))
        .filter(|k| !platform_args(&opts.build_platform, &opts.target_platform).contains_key(*k))
        .cloned()
        .collect();
    Ok(Lowered {
        graph: l.graph,
        target: root,
        image,
        target_stage: df.stages[target].display_name(),
        warnings,
        lint_error,
        unused_build_args,
        stages_lowered: l.order,
    })
}

/// What a lowered stage leaves for the stages that use it.
#[derive(Debug)]
pub(crate) struct StageResult {
    pub root: Input,
    pub image: ImageConfig,
}

/// The state of the stage being lowered.
pub(crate) struct StageState {
    pub display: String,
    /// `"build "` in multi-stage files, `""` otherwise: the progress-name prefix.
    pub prefix: String,
    pub total: usize,
    pub root: Input,
    pub image: ImageConfig,
    pub args: Args,
    pub cmd_set: bool,
    pub workdir_set: bool,
    pub platform: Platform,
    pub ignore_cache: bool,
}

impl StageState {
    /// The working directory (`/` when unset).
    pub fn cwd(&self) -> String {
        self.image
            .config
            .working_dir
            .clone()
            .unwrap_or_else(|| "/".into())
    }
}

pub(crate) struct Lowering<'a> {
    pub df: &'a Dockerfile,
    pub opts: &'a LowerOptions,
    pub resolver: &'a dyn ImageMetaResolver,
    pub lexer: Lexer,
    pub lint: Linter,
    pub graph: Graph,
    /// Global ARGs (with the predefined platform ARGs), visible on FROM lines.
    pub global: Args,
    pub global_declared: BTreeSet<String>,
    done: Vec<Option<StageResult>>,
    in_progress: Vec<bool>,
    pub used_args: BTreeSet<String>,
    /// The main context source, created on first use.
    context: Option<VertexId>,
    named: BTreeMap<String, VertexId>,
    /// Resolved images by source, so each is resolved once.
    pub images: BTreeMap<String, (VertexId, ImageConfig)>,
    order: Vec<String>,
}

impl<'a> Lowering<'a> {
    fn global_scope(&mut self) -> Result<(), LowerError> {
        for (k, v) in platform_args(&self.opts.build_platform, &self.opts.target_platform) {
            self.global.set(&k, Some(v));
        }
        let df = self.df;
        for inst in &df.global_args {
            let Command::Arg(decls) = &inst.command else {
                continue;
            };
            for d in decls {
                let value = match self.build_arg(&d.name) {
                    Some(v) => Some(v),
                    None => match &d.default {
                        Some(def) => Some(self.expand_global(def, inst.span)?),
                        None => None,
                    },
                };
                self.global.set(&d.name, value);
                self.global_declared.insert(d.name.clone());
            }
        }
        Ok(())
    }

    /// The `--build-arg` value for a declared ARG, recording that it was consumed.
    pub(crate) fn build_arg(&mut self, name: &str) -> Option<String> {
        let v = self.opts.build_args.get(name)?;
        self.used_args.insert(name.to_string());
        Some(v.clone())
    }

    /// Expands a FROM-line word in the global scope.
    pub fn expand_global(&mut self, word: &str, span: Span) -> Result<String, LowerError> {
        let env = StageEnv {
            env: &[],
            args: &self.global,
        };
        self.lexer
            .process_word(word, &env)
            .map_err(|e| LowerError::at(span, LowerErrorKind::Expand(e)))
    }

    fn target_index(&self) -> Result<usize, LowerError> {
        let Some(t) = &self.opts.target else {
            return Ok(self.df.stages.len() - 1);
        };
        let lower = t.to_ascii_lowercase();
        self.df
            .stages
            .iter()
            .position(|s| s.name.as_deref() == Some(lower.as_str()))
            .ok_or_else(|| {
                LowerError::global(LowerErrorKind::UnknownTarget {
                    target: t.clone(),
                    stages: self
                        .df
                        .stages
                        .iter()
                        .filter_map(|s| s.name.clone())
                        .collect(),
                })
            })
    }

    /// Lowers stage `index` (once) and returns its filesystem; its image config is then
    /// in [`Self::stage_image`].
    pub(crate) fn stage(&mut self, index: usize, from: Option<Span>) -> Result<Input, LowerError> {
        if let Some(done) = &self.done[index] {
            return Ok(done.root);
        }
        let df = self.df;
        let stage = &df.stages[index];
        if self.in_progress[index] {
            let err = LowerErrorKind::Cycle(stage.display_name());
            return Err(match from {
                Some(span) => LowerError::at(span, err),
                None => LowerError::global(err),
            });
        }
        self.in_progress[index] = true;
        let mut st = self.from(stage)?;
        for (i, inst) in stage.instructions.iter().enumerate() {
            self.dispatch(&mut st, inst, i + 2)?;
        }
        self.in_progress[index] = false;
        self.order.push(stage.display_name());
        self.done[index] = Some(StageResult {
            root: st.root,
            image: st.image,
        });
        Ok(st.root)
    }

    /// The image config a lowered stage produced.
    pub(crate) fn stage_image(&self, index: usize) -> &ImageConfig {
        &self.done[index]
            .as_ref()
            .expect("stage lowered before use")
            .image
    }

    pub(crate) fn dispatch(
        &mut self,
        st: &mut StageState,
        inst: &Instruction,
        step: usize,
    ) -> Result<(), LowerError> {
        match &inst.command {
            Command::Run(run) => self.run(st, inst, run, step),
            Command::Copy(ac) => self.copy(st, inst, ac, false, step),
            Command::Add(ac) => self.copy(st, inst, ac, true, step),
            Command::Workdir(w) => self.workdir(st, inst, w, step),
            _ => self.metadata(st, inst),
        }
    }

    /// `[build 2/5] RUN make` (or `[2/5] RUN make` in single-stage files).
    pub(crate) fn vertex_name(&self, st: &StageState, step: usize, inst: &Instruction) -> String {
        let text = inst.original.lines().next().unwrap_or("").trim();
        format!("[{}{}/{}] {}", st.prefix, step, st.total, text)
    }

    pub(crate) fn meta(&self, st: &StageState, name: String) -> VertexMeta {
        VertexMeta {
            name,
            stage: Some(st.display.clone()),
            ignore_cache: st.ignore_cache,
        }
    }

    /// A history entry; `created` is set by the exporter.
    pub(crate) fn history(st: &mut StageState, created_by: String, empty_layer: bool) {
        st.image.history.push(History {
            created: None,
            created_by: Some(created_by),
            author: None,
            comment: Some("buildkit.dockerfile.v0".into()),
            empty_layer,
        });
    }

    /// An expander for one instruction of `st`.
    pub(crate) fn expander<'s>(&'s mut self, st: &'s StageState, span: Span) -> Expander<'s> {
        Expander {
            lexer: &self.lexer,
            env: StageEnv {
                env: &st.image.config.env,
                args: &st.args,
            },
            span,
            lint: &mut self.lint,
        }
    }

    /// The main build context as a source vertex.
    pub(crate) fn context(&mut self) -> VertexId {
        if let Some(c) = self.context {
            return c;
        }
        let id = self.graph.add(
            Op::Source(Source::Local {
                name: "context".into(),
                include: Vec::new(),
                exclude: self.opts.dockerignore.clone(),
            }),
            Vec::new(),
            VertexMeta {
                name: "[internal] load build context".into(),
                ..Default::default()
            },
        );
        self.context = Some(id);
        id
    }

    /// What `--from=WORD` / `from=WORD` names: a stage, a named context, or an image.
    pub(crate) fn source_ref(
        &mut self,
        word: &str,
        span: Span,
        platform: &Platform,
    ) -> Result<Input, LowerError> {
        if let Some(ctx) = self.opts.named_contexts.get(word).cloned() {
            return self
                .named_context(word, &ctx, span, platform, None)
                .map(|(i, _)| i);
        }
        if let Some(stage) = self.df.stage_by_ref(word) {
            let index = stage.index;
            return self.stage(index, Some(span));
        }
        let (id, _) = self.image(word, span, platform, None)?;
        Ok(Input::root(id))
    }

    /// A named `--build-context` as an input (and an image config for image contexts).
    pub(crate) fn named_context(
        &mut self,
        name: &str,
        ctx: &NamedContext,
        span: Span,
        platform: &Platform,
        step: Option<String>,
    ) -> Result<(Input, Option<ImageConfig>), LowerError> {
        match ctx {
            NamedContext::Local { .. } => {
                if let Some(id) = self.named.get(name) {
                    return Ok((Input::root(*id), None));
                }
                let id = self.graph.add(
                    Op::Source(Source::Local {
                        name: name.to_string(),
                        include: vec![],
                        exclude: vec![],
                    }),
                    vec![],
                    VertexMeta {
                        name: format!("[context {name}] load from client"),
                        ..Default::default()
                    },
                );
                self.named.insert(name.to_string(), id);
                Ok((Input::root(id), None))
            }
            NamedContext::Image(r) => {
                let (id, cfg) = self.resolve_image(
                    crate::ImageSource::Registry(r.clone()),
                    span,
                    platform,
                    step,
                )?;
                Ok((Input::root(id), Some(cfg)))
            }
            NamedContext::OciLayout { path, tag } => {
                let src = crate::ImageSource::OciLayout {
                    path: path.clone(),
                    tag: tag.clone(),
                };
                let (id, cfg) = self.resolve_image(src, span, platform, step)?;
                Ok((Input::root(id), Some(cfg)))
            }
        }
    }
}

/// `path.Join(base, p)` for container paths, keeping a trailing slash of `p`.
pub(crate) fn join_path(base: &str, p: &str) -> String {
    let trailing = p.ends_with('/') || p == "." || p.ends_with("/.");
    let joined = if p.starts_with('/') {
        p.to_string()
    } else {
        format!("{}/{}", base.trim_end_matches('/'), p)
    };
    let mut out = clean_path(&joined);
    if trailing && !out.ends_with('/') {
        out.push('/');
    }
    out
}

/// Lexical cleaning of an absolute container path (`/a/./b/../c` → `/a/c`).
pub(crate) fn clean_path(p: &str) -> String {
    let mut parts: Vec<&str> = Vec::new();
    for seg in p.split('/') {
        match seg {
            "" | "." => {}
            ".." => {
                parts.pop();
            }
            s => parts.push(s),
        }
    }
    format!("/{}", parts.join("/"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn paths_join_like_docker() {
        assert_eq!(join_path("/app", "src"), "/app/src");
        assert_eq!(join_path("/app", "."), "/app/");
        assert_eq!(join_path("/app", "./x/"), "/app/x/");
        assert_eq!(join_path("/app", "/abs"), "/abs");
        assert_eq!(join_path("/", "a/../b"), "/b");
        assert_eq!(clean_path("/../a"), "/a");
    }
}
