//! FROM: the stage's base (scratch, another stage, a named context or an image), its
//! platform, the global-ARG lint rules, and the base image's ONBUILD triggers.

use strata_graph::{Input, Op, Source, VertexId, VertexMeta};
use strata_instructions::lint;
use strata_instructions::{parse_instruction, Stage};
use strata_oci::{ImageConfig, Platform, Reference};
use strata_parser::Span;

use super::{Lowering, StageState};
use crate::scope::{Args, StageEnv};
use crate::{ImageSource, LowerError, LowerErrorKind, ResolveError};

impl Lowering<'_> {
    pub(super) fn from(&mut self, stage: &Stage) -> Result<StageState, LowerError> {
        let span = stage.span;
        let platform = self.stage_platform(stage)?;
        let base = self.expand_global(&stage.base, span)?;
        if base.is_empty() {
            return Err(LowerError::at(
                span,
                LowerErrorKind::BlankBase(stage.base.clone()),
            ));
        }

        let multi = self.df.stages.len() > 1;
        let display = stage.display_name();
        let prefix = if multi {
            format!("{display} ")
        } else {
            String::new()
        };
        let ignore_cache = self.opts.no_cache
            || self.opts.no_cache_filter.iter().any(|f| {
                f.eq_ignore_ascii_case(&display) || f.parse::<usize>().ok() == Some(stage.index)
            });
        let total = stage.instructions.len() + 1;
        let step = format!("[{prefix}1/{total}]");

        let lower = base.to_ascii_lowercase();
        let named_stage = self
            .df
            .stages
            .iter()
            .find(|s| s.index != stage.index && s.name.as_deref() == Some(lower.as_str()))
            .map(|s| s.index);
        let (root, mut image) = if let Some(ctx) = self.opts.named_contexts.get(&base).cloned() {
            let (input, cfg) =
                self.named_context(&base, &ctx, span, &platform, Some(step.clone()))?;
            (input, cfg.unwrap_or_else(|| empty_config(&platform)))
        } else if let Some(dep) = named_stage {
            let root = self.stage(dep, Some(span))?;
            (root, self.stage_image(dep).clone())
        } else if lower == "scratch" {
            let id = self.graph.add(
                Op::Source(Source::Scratch),
                vec![],
                VertexMeta {
                    name: format!("{step} FROM scratch"),
                    stage: Some(display.clone()),
                    ignore_cache,
                },
            );
            (Input::root(id), empty_config(&platform))
        } else {
            let (id, cfg) = self.image(&base, span, &platform, Some(step))?;
            (Input::root(id), cfg)
        };
        image.architecture = platform.architecture.clone();
        image.os = platform.os.clone();
        image.variant = platform.variant.clone();
        image.created = None;
        let triggers = image.config.on_build.take().unwrap_or_default();

        let mut st = StageState {
            display,
            prefix,
            total,
            root,
            image,
            args: Args::default(),
            cmd_set: false,
            workdir_set: false,
            platform,
            ignore_cache,
        };
        self.onbuild_triggers(&mut st, &triggers, span)?;
        Ok(st)
    }

    /// The FROM-line rules, run for every stage (reachable or not), as BuildKit does:
    /// UndefinedArgInFrom, InvalidDefaultArgInFrom, RedundantTargetPlatform and
    /// FromPlatformFlagConstDisallowed.
    pub(super) fn lint_from(&mut self, stage: &Stage) {
        let span = stage.span;
        let words = std::iter::once(stage.base.as_str()).chain(stage.platform.as_deref());
        let env = StageEnv {
            env: &[],
            args: &self.global,
        };
        let mut unmatched = std::collections::BTreeSet::new();
        for w in words {
            if let Ok(p) = self.lexer.process_word_with_matches(w, &env) {
                unmatched.extend(p.unmatched);
            }
        }
        for name in &unmatched {
            if !self.global.is_declared(name) {
                let declared: Vec<&str> = self.global_declared.iter().map(String::as_str).collect();
                let mut msg = format!("FROM argument '{name}' is not declared");
                if let Some(s) = lint::suggest(name, declared) {
                    msg.push_str(&format!(" (did you mean {s}?)"));
                }
                self.lint.warn(&lint::UNDEFINED_ARG_IN_FROM, span, msg);
            }
        }
        self.check_default_base(stage, span);
        if let Some(raw) = &stage.platform {
            let trimmed = raw.trim_matches('"');
            if trimmed == "$TARGETPLATFORM" || trimmed == "${TARGETPLATFORM}" {
                self.lint.warn(
                    &lint::REDUNDANT_TARGET_PLATFORM,
                    span,
                    format!("Setting platform to predefined {raw} in FROM is redundant as this is the default behavior"),
                );
            } else if !raw.contains('$') {
                self.lint.warn(
                    &lint::FROM_PLATFORM_FLAG_CONST_DISALLOWED,
                    span,
                    format!("FROM --platform flag should not use constant value {raw:?}"),
                );
            }
        }
    }

    /// InvalidDefaultArgInFrom: the base with only the ARG defaults must be a valid name.
    fn check_default_base(&mut self, stage: &Stage, span: Span) {
        if !stage.base.contains('$') {
            return;
        }
        let mut defaults = Args::default();
        for inst in &self.df.global_args {
            if let strata_instructions::Command::Arg(decls) = &inst.command {
                for d in decls {
                    defaults.set(&d.name, d.default.clone());
                }
            }
        }
        let env = StageEnv {
            env: &[],
            args: &defaults,
        };
        let value = self
            .lexer
            .process_word(&stage.base, &env)
            .unwrap_or_default();
        let lower = value.to_ascii_lowercase();
        let is_stage = self
            .df
            .stages
            .iter()
            .any(|s| s.name.as_deref() == Some(lower.as_str()));
        if value.is_empty()
            || (!is_stage && lower != "scratch" && Reference::parse(&value).is_err())
        {
            self.lint.warn(
                &lint::INVALID_DEFAULT_ARG_IN_FROM,
                span,
                format!(
                    "Default value for ARG {} results in empty or invalid base image name",
                    stage.base
                ),
            );
        }
    }

    fn stage_platform(&mut self, stage: &Stage) -> Result<Platform, LowerError> {
        let span = stage.span;
        let Some(raw) = &stage.platform else {
            return Ok(self.opts.target_platform.clone());
        };
        let value = self.expand_global(raw, span)?;
        value
            .parse::<Platform>()
            .map_err(|_| LowerError::at(span, LowerErrorKind::BadPlatform(value)))
    }

    /// An image by reference (as written in FROM or --from), resolved once.
    pub(crate) fn image(
        &mut self,
        word: &str,
        span: Span,
        platform: &Platform,
        step: Option<String>,
    ) -> Result<(VertexId, ImageConfig), LowerError> {
        let r = Reference::parse(word).map_err(|e| {
            LowerError::at(
                span,
                LowerErrorKind::BadBase {
                    value: word.to_string(),
                    message: e.to_string(),
                },
            )
        })?;
        self.resolve_image(ImageSource::Registry(r), span, platform, step)
    }

    pub(crate) fn resolve_image(
        &mut self,
        source: ImageSource,
        span: Span,
        platform: &Platform,
        step: Option<String>,
    ) -> Result<(VertexId, ImageConfig), LowerError> {
        let key = format!("{source} {platform}");
        if let Some(hit) = self.images.get(&key) {
            return Ok(hit.clone());
        }
        let resolved = match self.resolver.resolve(&source, platform) {
            Ok(r) => r,
            Err(ResolveError::NotFound) if self.opts.allow_unresolved => crate::ResolvedImage {
                digest: None,
                config: empty_config(platform),
            },
            Err(e) => {
                return Err(LowerError::at(
                    span,
                    LowerErrorKind::Resolve {
                        reference: source.to_string(),
                        source: e,
                    },
                ))
            }
        };
        if resolved.config.architecture != platform.architecture
            && !resolved.config.architecture.is_empty()
        {
            self.lint.warn(
                &lint::INVALID_BASE_IMAGE_PLATFORM,
                span,
                format!(
                    "Base image {source} was pulled with platform \"{}/{}\", expected {:?} for current build",
                    resolved.config.os,
                    resolved.config.architecture,
                    platform.to_string()
                ),
            );
        }
        let (op, label) = match &source {
            ImageSource::Registry(r) => (
                Source::Image {
                    reference: r.to_string(),
                    platform: platform.clone(),
                    digest: resolved.digest,
                },
                r.to_string(),
            ),
            ImageSource::OciLayout { path, tag } => (
                Source::OciLayout {
                    path: path.clone(),
                    tag: tag.clone(),
                    digest: resolved.digest,
                },
                source.to_string(),
            ),
        };
        // BuildKit names the image vertex after the FROM that uses it, pinned digest included.
        let pinned = match resolved.digest {
            Some(d) => format!("{label}@{d}"),
            None => label,
        };
        let name = match step {
            Some(step) => format!("{step} FROM {pinned}"),
            None => format!("FROM {pinned}"),
        };
        let id = self.graph.add(
            Op::Source(op),
            vec![],
            VertexMeta {
                name,
                ..Default::default()
            },
        );
        let out = (id, resolved.config);
        self.images.insert(key, out.clone());
        Ok(out)
    }

    /// Runs a base image's ONBUILD triggers in the new stage, before its own instructions.
    fn onbuild_triggers(
        &mut self,
        st: &mut StageState,
        triggers: &[String],
        span: Span,
    ) -> Result<(), LowerError> {
        for t in triggers {
            let ast = strata_parser::parse(t).map_err(|e| {
                LowerError::at(
                    span,
                    LowerErrorKind::Other(format!("invalid ONBUILD trigger {t:?}: {e}")),
                )
            })?;
            for node in &ast.nodes {
                let kw = node.keyword.to_ascii_uppercase();
                if matches!(kw.as_str(), "FROM" | "ONBUILD" | "MAINTAINER") {
                    return Err(LowerError::at(span, LowerErrorKind::OnbuildTrigger(kw)));
                }
                let mut inst = parse_instruction(node, self.df.escape, &mut self.lint)
                    .map_err(|e| LowerError::at(span, LowerErrorKind::Instruction(e.kind)))?;
                inst.span = span;
                inst.original = format!("ONBUILD {}", inst.original.trim());
                self.dispatch(st, &inst, 1)?;
            }
        }
        Ok(())
    }
}

fn empty_config(platform: &Platform) -> ImageConfig {
    ImageConfig {
        architecture: platform.architecture.clone(),
        os: platform.os.clone(),
        variant: platform.variant.clone(),
        ..Default::default()
    }
}
