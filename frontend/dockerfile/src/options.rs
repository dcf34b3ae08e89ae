use std::collections::BTreeMap;

use strata_oci::{Platform, Reference};

use crate::LintConfig;

/// Everything about a build that is not in the Dockerfile.
#[derive(Debug, Clone)]
pub struct LowerOptions {
    /// `--target`: the stage to build (default: the last).
    pub target: Option<String>,
    /// `--build-arg KEY=VALUE` (a `None` value means "from the environment", resolved by
    /// the CLI before it gets here, so values are final).
    pub build_args: BTreeMap<String, String>,
    /// `--platform` (default: the build platform).
    pub target_platform: Platform,
    /// The platform strata runs on.
    pub build_platform: Platform,
    /// `--no-cache`.
    pub no_cache: bool,
    /// `--no-cache-filter STAGE`: those stages ignore the cache.
    pub no_cache_filter: Vec<String>,
    /// `--build-context NAME=…`: overrides `FROM NAME` and `--from=NAME`.
    pub named_contexts: BTreeMap<String, NamedContext>,
    /// `.dockerignore` patterns of the main context (already read and cleaned).
    pub dockerignore: Vec<String>,
    /// Extra lint configuration from the CLI, merged with `# check=`.
    pub lint: Option<LintConfig>,
    /// Treat images the resolver does not know as empty (for `--check` and graph dumps,
    /// which need no filesystem); a build leaves this off.
    pub allow_unresolved: bool,
}

impl Default for LowerOptions {
    fn default() -> Self {
        LowerOptions {
            target: None,
            build_args: BTreeMap::new(),
            target_platform: Platform::host(),
            build_platform: Platform::host(),
            no_cache: false,
            no_cache_filter: Vec::new(),
            named_contexts: BTreeMap::new(),
            dockerignore: Vec::new(),
            lint: None,
            allow_unresolved: false,
        }
    }
}

/// What a `--build-context NAME=VALUE` points at.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum NamedContext {
    /// A local directory, transferred like the main context.
    Local { path: String },
    /// `docker-image://REF`.
    Image(Reference),
    /// `oci-layout:///path[:tag]` or `oci-layout:///path@sha256:…`.
    OciLayout { path: String, tag: Option<String> },
}

impl NamedContext {
    /// Parses the value of `--build-context NAME=VALUE`.
    pub fn parse(value: &str) -> Result<Self, String> {
        if let Some(r) = value.strip_prefix("docker-image://") {
            return Reference::parse(r)
                .map(NamedContext::Image)
                .map_err(|e| e.to_string());
        }
        if let Some(rest) = value.strip_prefix("oci-layout://") {
            // oci-layout:///abs/path:tag  (the path keeps its leading slash)
            let (path, tag) = match rest.rsplit_once(':') {
                Some((p, t)) if !t.contains('/') && !t.is_empty() => {
                    (p.to_string(), Some(t.to_string()))
                }
                _ => (rest.to_string(), None),
            };
            if path.is_empty() {
                return Err(format!("oci-layout context {value:?} has no path"));
            }
            return Ok(NamedContext::OciLayout { path, tag });
        }
        if value.contains("://") {
            return Err(format!(
                "unsupported build context {value:?}: use a directory, docker-image://REF or oci-layout://PATH[:TAG]"
            ));
        }
        Ok(NamedContext::Local {
            path: value.to_string(),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_build_context_values() {
        assert_eq!(
            NamedContext::parse("oci-layout:///tmp/base:v1").unwrap(),
            NamedContext::OciLayout {
                path: "/tmp/base".into(),
                tag: Some("v1".into())
            }
        );
        assert_eq!(
            NamedContext::parse("oci-layout:///tmp/base").unwrap(),
            NamedContext::OciLayout {
                path: "/tmp/base".into(),
                tag: None
            }
        );
        assert!(
            matches!(NamedContext::parse("docker-image://alpine:3").unwrap(), NamedContext::Image(r) if r.tag.as_deref() == Some("3"))
        );
        assert_eq!(
            NamedContext::parse("../lib").unwrap(),
            NamedContext::Local {
                path: "../lib".into()
            }
        );
        assert!(NamedContext::parse("git://x").is_err());
    }
}
