//! Variable scopes: what `$NAME` means on a given line.
//!
//! Two scopes exist, as in BuildKit. The *global* scope (ARGs before the first FROM plus
//! the predefined platform ARGs) is visible on FROM lines only. A *stage* scope holds the
//! image's ENV (base image ENV plus ENV instructions) and the ARGs declared in the stage;
//! ENV wins over an ARG of the same name. A global ARG is visible in a stage only when the
//! stage redeclares it (`ARG NAME` without a value takes the global value).

use std::collections::BTreeMap;

use strata_instructions::lint::{self, suggest, Linter};
use strata_parser::Span;
use strata_shell::{Env, Lexer};

use crate::{LowerError, LowerErrorKind};

/// Build arguments BuildKit accepts without a declaration: passed to RUN, never recorded
/// in history or the image.
pub const PROXY_ARGS: &[&str] = &[
    "HTTP_PROXY",
    "http_proxy",
    "HTTPS_PROXY",
    "https_proxy",
    "FTP_PROXY",
    "ftp_proxy",
    "NO_PROXY",
    "no_proxy",
    "ALL_PROXY",
    "all_proxy",
];

/// An ordered list of `NAME` → optional value (declared without value = `None`).
#[derive(Debug, Clone, Default)]
pub struct Args {
    vars: Vec<(String, Option<String>)>,
}

impl Args {
    pub fn set(&mut self, name: &str, value: Option<String>) {
        match self.vars.iter_mut().find(|(n, _)| n == name) {
            Some(slot) => slot.1 = value,
            None => self.vars.push((name.to_string(), value)),
        }
    }

    pub fn get(&self, name: &str) -> Option<&str> {
        self.vars
            .iter()
            .find(|(n, _)| n == name)
            .and_then(|(_, v)| v.as_deref())
    }

    pub fn is_declared(&self, name: &str) -> bool {
        self.vars.iter().any(|(n, _)| n == name)
    }

    /// Declared ARGs that have a value, in declaration order.
    pub fn values(&self) -> impl Iterator<Item = (&str, &str)> {
        self.vars
            .iter()
            .filter_map(|(n, v)| v.as_deref().map(|v| (n.as_str(), v)))
    }

    pub fn names(&self) -> impl Iterator<Item = &str> {
        self.vars.iter().map(|(n, _)| n.as_str())
    }
}

/// `$NAME` lookup over an image ENV list and declared ARGs (ENV wins).
pub struct StageEnv<'a> {
    pub env: &'a [String],
    pub args: &'a Args,
}

impl Env for StageEnv<'_> {
    fn lookup(&self, name: &str) -> Option<String> {
        let from_env = self.env.iter().rev().find_map(|kv| {
            let (k, v) = kv.split_once('=').unwrap_or((kv.as_str(), ""));
            (k == name).then(|| v.to_string())
        });
        from_env.or_else(|| self.args.get(name).map(str::to_string))
    }
}

/// Expands words for one instruction, reporting UndefinedVar to the linter.
pub struct Expander<'a> {
    pub lexer: &'a Lexer,
    pub env: StageEnv<'a>,
    pub span: Span,
    pub lint: &'a mut Linter,
}

impl Expander<'_> {
    pub fn word(&mut self, word: &str) -> Result<String, LowerError> {
        let processed = self
            .lexer
            .process_word_with_matches(word, &self.env)
            .map_err(|e| LowerError::at(self.span, LowerErrorKind::Expand(e)))?;
        self.report_unmatched(processed.unmatched.iter().map(String::as_str));
        Ok(processed.value)
    }

    fn report_unmatched<'b>(&mut self, names: impl Iterator<Item = &'b str>) {
        for name in names {
            if self.env.args.is_declared(name) {
                continue;
            }
            let known: Vec<String> = self
                .env
                .env
                .iter()
                .map(|kv| kv.split_once('=').map(|(k, _)| k).unwrap_or(kv).to_string())
                .chain(self.env.args.names().map(str::to_string))
                .collect();
            let hint = suggest(name, known.iter().map(String::as_str));
            let mut msg = format!("Usage of undefined variable '${name}'");
            if let Some(h) = hint {
                msg.push_str(&format!(" (did you mean ${h}?)"));
            }
            self.lint.warn(&lint::UNDEFINED_VAR, self.span, msg);
        }
    }
}

/// The predefined platform ARGs (BUILDPLATFORM, TARGETARCH, …).
pub fn platform_args(
    build: &strata_oci::Platform,
    target: &strata_oci::Platform,
) -> BTreeMap<String, String> {
    let mut m = BTreeMap::new();
    for (prefix, p) in [("BUILD", build), ("TARGET", target)] {
        m.insert(format!("{prefix}PLATFORM"), p.to_string());
        m.insert(format!("{prefix}OS"), p.os.clone());
        m.insert(format!("{prefix}ARCH"), p.architecture.clone());
        m.insert(
            format!("{prefix}VARIANT"),
            p.variant.clone().unwrap_or_default(),
        );
    }
    m
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn env_wins_over_args_and_last_env_wins() {
        let mut args = Args::default();
        args.set("A", Some("arg".into()));
        args.set("B", Some("argb".into()));
        args.set("C", None);
        let env = vec!["A=env1".to_string(), "A=env2".to_string()];
        let e = StageEnv {
            env: &env,
            args: &args,
        };
        assert_eq!(e.lookup("A").as_deref(), Some("env2"));
        assert_eq!(e.lookup("B").as_deref(), Some("argb"));
        assert_eq!(e.lookup("C"), None);
        assert!(args.is_declared("C"));
        assert_eq!(
            args.values().collect::<Vec<_>>(),
            vec![("A", "arg"), ("B", "argb")]
        );
    }

    #[test]
    fn platform_args_cover_build_and_target() {
        let m = platform_args(
            &"linux/amd64".parse().unwrap(),
            &"linux/arm/v7".parse().unwrap(),
        );
        assert_eq!(m["BUILDPLATFORM"], "linux/amd64");
        assert_eq!(m["TARGETARCH"], "arm");
        assert_eq!(m["TARGETVARIANT"], "v7");
        assert_eq!(m["BUILDVARIANT"], "");
        assert_eq!(m.len(), 8);
    }
}
