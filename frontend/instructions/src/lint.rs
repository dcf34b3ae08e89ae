//! BuildKit's lint rules, as data. Rules fire in this crate (casing, legacy forms,
//! deprecated instructions) and during lowering (undefined variables, base-image
//! arguments, ignored files); both report a [`Warning`] naming a [`Rule`].

use strata_parser::Span;

/// A lint rule as `docker build --check` documents it.
#[derive(Debug, PartialEq, Eq)]
pub struct Rule {
    pub name: &'static str,
    pub description: &'static str,
    pub url: &'static str,
    /// Runs only when enabled by `# check=experimental=NAME` (or `all`).
    pub experimental: bool,
}

macro_rules! rules {
    ($($ident:ident = $name:literal, $slug:literal, $desc:literal, $exp:literal;)*) => {
        $(pub static $ident: Rule = Rule {
            name: $name,
            description: $desc,
            url: concat!("https://docs.docker.com/go/dockerfile/rule/", $slug, "/"),
            experimental: $exp,
        };)*
        /// Every rule we implement.
        pub static ALL: &[&Rule] = &[$(&$ident),*];
    };
}

rules! {
    STAGE_NAME_CASING = "StageNameCasing", "stage-name-casing", "Stage names should be lowercase", false;
    FROM_AS_CASING = "FromAsCasing", "from-as-casing", "The 'as' keyword should match the case of the 'from' keyword", false;
    NO_EMPTY_CONTINUATION = "NoEmptyContinuation", "no-empty-continuation", "Empty continuation lines will become errors in a future release", false;
    CONSISTENT_INSTRUCTION_CASING = "ConsistentInstructionCasing", "consistent-instruction-casing", "All commands within the Dockerfile should use the same casing (either upper or lower)", false;
    DUPLICATE_STAGE_NAME = "DuplicateStageName", "duplicate-stage-name", "Stage names should be unique", false;
    RESERVED_STAGE_NAME = "ReservedStageName", "reserved-stage-name", "Reserved words should not be used as stage names", false;
    JSON_ARGS_RECOMMENDED = "JSONArgsRecommended", "json-args-recommended", "JSON arguments recommended for ENTRYPOINT/CMD to prevent unintended behavior related to OS signals", false;
    MAINTAINER_DEPRECATED = "MaintainerDeprecated", "maintainer-deprecated", "The MAINTAINER instruction is deprecated, use a label instead to define an image author", false;
    UNDEFINED_ARG_IN_FROM = "UndefinedArgInFrom", "undefined-arg-in-from", "FROM command must use declared ARGs", false;
    WORKDIR_RELATIVE_PATH = "WorkdirRelativePath", "workdir-relative-path", "Relative workdir without an absolute workdir declared within the build can have unexpected results if the base image changes", false;
    UNDEFINED_VAR = "UndefinedVar", "undefined-var", "Variables should be defined before their use", false;
    MULTIPLE_INSTRUCTIONS_DISALLOWED = "MultipleInstructionsDisallowed", "multiple-instructions-disallowed", "Multiple instructions of the same type should not be used in the same stage", false;
    LEGACY_KEY_VALUE_FORMAT = "LegacyKeyValueFormat", "legacy-key-value-format", "Legacy key/value format with whitespace separator should not be used", false;
    INVALID_BASE_IMAGE_PLATFORM = "InvalidBaseImagePlatform", "invalid-base-image-platform", "Base image platform does not match expected target platform", false;
    REDUNDANT_TARGET_PLATFORM = "RedundantTargetPlatform", "redundant-target-platform", "Setting platform to predefined $TARGETPLATFORM in FROM is redundant as this is the default behavior", false;
    SECRETS_USED_IN_ARG_OR_ENV = "SecretsUsedInArgOrEnv", "secrets-used-in-arg-or-env", "Sensitive data should not be used in the ARG or ENV commands", false;
    INVALID_DEFAULT_ARG_IN_FROM = "InvalidDefaultArgInFrom", "invalid-default-arg-in-from", "Default value for global ARG results in an empty or invalid base image name", false;
    FROM_PLATFORM_FLAG_CONST_DISALLOWED = "FromPlatformFlagConstDisallowed", "from-platform-flag-const-disallowed", "FROM --platform flag should not use a constant value", false;
    COPY_IGNORED_FILE = "CopyIgnoredFile", "copy-ignored-file", "Attempting to Copy file that is excluded by .dockerignore", true;
}

/// A rule that fired at a place.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Warning {
    pub rule: &'static Rule,
    pub message: String,
    pub span: Span,
}

impl Warning {
    pub fn new(rule: &'static Rule, span: Span, message: impl Into<String>) -> Self {
        Warning {
            rule,
            message: message.into(),
            span,
        }
    }
}

/// Which rules run and whether warnings fail the build (`# check=` plus CLI overrides).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct LintConfig {
    pub skip: Vec<String>,
    pub skip_all: bool,
    pub experimental: Vec<String>,
    pub experimental_all: bool,
    pub error: bool,
}

impl LintConfig {
    pub fn from_directive(check: Option<&strata_parser::CheckDirective>) -> Self {
        let mut cfg = LintConfig::default();
        if let Some(c) = check {
            for s in &c.skip {
                if s.eq_ignore_ascii_case("all") {
                    cfg.skip_all = true;
                } else {
                    cfg.skip.push(s.clone());
                }
            }
            for e in &c.experimental {
                if e.eq_ignore_ascii_case("all") {
                    cfg.experimental_all = true;
                } else {
                    cfg.experimental.push(e.clone());
                }
            }
            cfg.error = c.error;
        }
        cfg
    }

    pub fn enabled(&self, rule: &Rule) -> bool {
        if self.skip_all || self.skip.iter().any(|s| s == rule.name) {
            return false;
        }
        !rule.experimental
            || self.experimental_all
            || self.experimental.iter().any(|s| s == rule.name)
    }
}

/// Collects warnings, dropping those of disabled rules and exact duplicates.
#[derive(Debug, Clone, Default)]
pub struct Linter {
    pub config: LintConfig,
    warnings: Vec<Warning>,
}

impl Linter {
    pub fn new(config: LintConfig) -> Self {
        Linter {
            config,
            warnings: Vec::new(),
        }
    }

    pub fn warn(&mut self, rule: &'static Rule, span: Span, message: impl Into<String>) {
        if !self.config.enabled(rule) {
            return;
        }
        let w = Warning::new(rule, span, message);
        if !self.warnings.contains(&w) {
            self.warnings.push(w);
        }
    }

    /// Warnings sorted by line, then rule name.
    pub fn into_warnings(mut self) -> Vec<Warning> {
        self.warnings
            .sort_by(|a, b| (a.span.start, a.rule.name).cmp(&(b.span.start, b.rule.name)));
        self.warnings
    }

    pub fn warnings(&self) -> &[Warning] {
        &self.warnings
    }
}

/// The closest candidate within a small edit distance, for "did you mean" hints.
pub fn suggest<'a>(word: &str, candidates: impl IntoIterator<Item = &'a str>) -> Option<&'a str> {
    let w = word.to_ascii_lowercase();
    let mut best: Option<(usize, &str)> = None;
    for c in candidates {
        let d = levenshtein(&w, &c.to_ascii_lowercase());
        let limit = (w.len().max(c.len()) / 3).max(1);
        if d <= limit && d > 0 && best.is_none_or(|(bd, _)| d < bd) {
            best = Some((d, c));
        }
    }
    best.map(|(_, c)| c)
}

/// Optimal-string-alignment distance: edits plus adjacent transpositions (FORM → FROM).
fn levenshtein(a: &str, b: &str) -> usize {
    let a: Vec<char> = a.chars().collect();
    let b: Vec<char> = b.chars().collect();
    let mut d = vec![vec![0usize; b.len() + 1]; a.len() + 1];
    for (i, row) in d.iter_mut().enumerate() {
        row[0] = i;
    }
    for (j, cell) in d[0].iter_mut().enumerate() {
        *cell = j;
    }
    for i in 1..=a.len() {
        for j in 1..=b.len() {
            let cost = usize::from(a[i - 1] != b[j - 1]);
            d[i][j] = (d[i - 1][j] + 1)
                .min(d[i][j - 1] + 1)
                .min(d[i - 1][j - 1] + cost);
            if i > 1 && j > 1 && a[i - 1] == b[j - 2] && a[i - 2] == b[j - 1] {
                d[i][j] = d[i][j].min(d[i - 2][j - 2] + 1);
            }
        }
    }
    d[a.len()][b.len()]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rules_have_unique_names_and_docs_urls() {
        let mut names: Vec<&str> = ALL.iter().map(|r| r.name).collect();
        names.sort();
        names.dedup();
        assert_eq!(names.len(), ALL.len());
        assert!(ALL.len() >= 19);
        assert_eq!(
            UNDEFINED_VAR.url,
            "https://docs.docker.com/go/dockerfile/rule/undefined-var/"
        );
    }

    #[test]
    fn config_skips_and_experimental() {
        let mut cfg = LintConfig::default();
        assert!(cfg.enabled(&UNDEFINED_VAR));
        assert!(!cfg.enabled(&COPY_IGNORED_FILE));
        cfg.experimental.push("CopyIgnoredFile".into());
        assert!(cfg.enabled(&COPY_IGNORED_FILE));
        cfg.skip.push("UndefinedVar".into());
        assert!(!cfg.enabled(&UNDEFINED_VAR));
        cfg.skip_all = true;
        assert!(!cfg.enabled(&STAGE_NAME_CASING));
    }

    #[test]
    fn suggestions() {
        let kws = ["copy", "cmd", "run", "from", "entrypoint"];
        assert_eq!(suggest("COPPY", kws), Some("copy"));
        assert_eq!(suggest("entrypiont", kws), Some("entrypoint"));
        assert_eq!(suggest("xyzzy", kws), None);
        assert_eq!(suggest("FORM", kws), Some("from"));
    }
}
