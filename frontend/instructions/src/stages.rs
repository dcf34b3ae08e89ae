//! Splitting the instruction stream into global ARGs and stages, with the file-wide
//! lint rules (instruction casing, stage names).

use strata_parser::{split_whitespace_words, Node, Span};

use crate::flags::Flags;
use crate::lint::{self, Linter};
use crate::parse::{parse_instruction, FROM_FLAGS};
use crate::{Command, Instruction, InstructionError, InstructionErrorKind as K};

/// A Dockerfile as typed instructions.
#[derive(Debug, Clone, PartialEq)]
pub struct Dockerfile {
    pub escape: char,
    pub syntax: Option<String>,
    /// ARGs before the first FROM.
    pub global_args: Vec<Instruction>,
    pub stages: Vec<Stage>,
}

/// `FROM base [AS name]` and the instructions up to the next FROM.
#[derive(Debug, Clone, PartialEq)]
pub struct Stage {
    pub index: usize,
    /// Lower-cased name (stage names are case-insensitive).
    pub name: Option<String>,
    /// The base as written (may reference ARGs), unexpanded.
    pub base: String,
    /// `--platform` as written, unexpanded.
    pub platform: Option<String>,
    pub span: Span,
    pub original: String,
    pub instructions: Vec<Instruction>,
}

impl Stage {
    /// `name` or the index, as BuildKit shows it in progress names.
    pub fn display_name(&self) -> String {
        self.name
            .clone()
            .unwrap_or_else(|| format!("stage-{}", self.index))
    }
}

impl Dockerfile {
    /// The stage a `--from`/`FROM` word names: a stage name (case-insensitive) or index.
    pub fn stage_by_ref(&self, word: &str) -> Option<&Stage> {
        let lower = word.to_ascii_lowercase();
        self.stages
            .iter()
            .find(|s| s.name.as_deref() == Some(lower.as_str()))
            .or_else(|| word.parse::<usize>().ok().and_then(|i| self.stages.get(i)))
    }
}

/// Typed view of a parsed Dockerfile. Lint warnings go to `lint`.
pub fn parse_dockerfile(
    df: &strata_parser::Dockerfile,
    lint: &mut Linter,
) -> Result<Dockerfile, InstructionError> {
    let escape = df.directives.escape;
    for w in &df.warnings {
        if w.rule == lint::NO_EMPTY_CONTINUATION.name {
            lint.warn(&lint::NO_EMPTY_CONTINUATION, w.span, w.message.clone());
        }
    }
    check_casing(&df.nodes, lint);

    let mut out = Dockerfile {
        escape,
        syntax: df.directives.syntax.as_ref().map(|(s, _)| s.clone()),
        global_args: Vec::new(),
        stages: Vec::new(),
    };
    for node in &df.nodes {
        if node.keyword.eq_ignore_ascii_case("from") {
            let stage = parse_from(node, out.stages.len(), lint)?;
            if let Some(name) = &stage.name {
                if let Some(first) = out.stages.iter().find(|s| s.name.as_ref() == Some(name)) {
                    lint.warn(
                        &lint::DUPLICATE_STAGE_NAME,
                        stage.span,
                        format!("Duplicate stage name {name:?}, stage names should be unique"),
                    );
                    return Err(InstructionError::new(
                        stage.span,
                        K::DuplicateStage {
                            name: name.clone(),
                            first_line: first.span.start,
                        },
                    ));
                }
            }
            out.stages.push(stage);
            continue;
        }
        let inst = parse_instruction(node, escape, lint)?;
        match out.stages.last_mut() {
            Some(stage) => stage.instructions.push(inst),
            None if matches!(inst.command, Command::Arg(_)) => out.global_args.push(inst),
            None => {
                return Err(InstructionError::new(
                    node.span,
                    K::NoStage(inst.command.name()),
                ))
            }
        }
    }
    if out.stages.is_empty() {
        let span = df
            .nodes
            .last()
            .map(|n| n.span)
            .unwrap_or(Span { start: 1, end: 1 });
        return Err(InstructionError::new(span, K::NoFrom));
    }
    for stage in &out.stages {
        check_multiple(stage, lint);
    }
    Ok(out)
}

fn parse_from(node: &Node, index: usize, lint: &mut Linter) -> Result<Stage, InstructionError> {
    let span = node.span;
    let flags = Flags::parse("FROM", FROM_FLAGS, &node.flags, span)?;
    let words = split_whitespace_words(&node.rest);
    let (base, name) = match words.as_slice() {
        [base] => (base.clone(), None),
        [base, as_kw, name] if as_kw.eq_ignore_ascii_case("as") => {
            let from_upper = node.keyword.chars().all(|c| c.is_ascii_uppercase());
            let from_lower = node.keyword.chars().all(|c| c.is_ascii_lowercase());
            let as_upper = as_kw.chars().all(|c| c.is_ascii_uppercase());
            let as_lower = as_kw.chars().all(|c| c.is_ascii_lowercase());
            if (from_upper && !as_upper) || (from_lower && !as_lower) {
                lint.warn(
                    &lint::FROM_AS_CASING,
                    span,
                    format!(
                        "'{as_kw}' and '{}' keywords' casing do not match",
                        node.keyword
                    ),
                );
            }
            (base.clone(), Some(name.clone()))
        }
        _ => return Err(InstructionError::new(span, K::FromArguments)),
    };
    let name = match name {
        None => None,
        Some(n) => {
            let lower = n.to_ascii_lowercase();
            if !valid_stage_name(&lower) {
                return Err(InstructionError::new(span, K::StageName(n)));
            }
            if lower != n {
                lint.warn(
                    &lint::STAGE_NAME_CASING,
                    span,
                    format!("Stage name '{n}' should be lowercase"),
                );
            }
            if lower == "scratch" || lower == "context" {
                lint.warn(
                    &lint::RESERVED_STAGE_NAME,
                    span,
                    format!("Stage name should not use the same name as reserved stage {lower:?}"),
                );
            }
            Some(lower)
        }
    };
    Ok(Stage {
        index,
        name,
        base,
        platform: flags.string("platform"),
        span,
        original: node.original.clone(),
        instructions: Vec::new(),
    })
}

/// `^[a-z][a-z0-9-_.]*$`
fn valid_stage_name(s: &str) -> bool {
    let mut chars = s.chars();
    matches!(chars.next(), Some(c) if c.is_ascii_lowercase())
        && chars
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || matches!(c, '-' | '_' | '.'))
}

/// ConsistentInstructionCasing: every keyword should match the file's majority casing.
fn check_casing(nodes: &[Node], lint: &mut Linter) {
    let all: Vec<&Node> = nodes
        .iter()
        .flat_map(|n| std::iter::successors(Some(n), |n| n.sub.as_deref()))
        .collect();
    let lower = all
        .iter()
        .filter(|n| n.keyword.chars().all(|c| !c.is_ascii_uppercase()))
        .count();
    let upper = all
        .iter()
        .filter(|n| n.keyword.chars().all(|c| !c.is_ascii_lowercase()))
        .count();
    let majority_lower = lower > upper;
    for n in all {
        let ok = if majority_lower {
            n.keyword.chars().all(|c| !c.is_ascii_uppercase())
        } else {
            n.keyword.chars().all(|c| !c.is_ascii_lowercase())
        };
        if !ok {
            lint.warn(
                &lint::CONSISTENT_INSTRUCTION_CASING,
                n.span,
                format!(
                    "Command '{}' should match the case of the command majority ({})",
                    n.keyword,
                    if majority_lower {
                        "lowercase"
                    } else {
                        "uppercase"
                    }
                ),
            );
        }
    }
}

/// MultipleInstructionsDisallowed: only the last CMD/ENTRYPOINT/HEALTHCHECK of a stage counts.
fn check_multiple(stage: &Stage, lint: &mut Linter) {
    for name in ["CMD", "ENTRYPOINT", "HEALTHCHECK"] {
        let spans: Vec<Span> = stage
            .instructions
            .iter()
            .filter(|i| i.command.name() == name)
            .map(|i| i.span)
            .collect();
        for span in spans.iter().take(spans.len().saturating_sub(1)) {
            lint.warn(
                &lint::MULTIPLE_INSTRUCTIONS_DISALLOWED,
                *span,
                format!("Multiple {name} instructions should not be used in the same stage because only the last one will be used"),
            );
        }
    }
}
