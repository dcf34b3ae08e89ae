//! Lowering a Dockerfile to the build graph.
//!
//! [`lower`] takes the Dockerfile bytes, [`LowerOptions`] (target, build args,
//! platforms, named contexts, `.dockerignore` patterns, cache flags) and an
//! [`ImageMetaResolver`] for base-image configs, and returns a [`Lowered`] build: the
//! graph, the target stage's root, the image config with its history, and lint warnings.
//!
//! What it owns: ARG/ENV scoping and expansion (through `strata-shell`), the stage DAG
//! (names, indexes, `--from`, cycles), reachability — only stages the target reaches are
//! lowered and only their base images resolved —, ONBUILD triggers of base images, and
//! every instruction's effect on the filesystem graph and on the image config.
//!
//! It never touches the disk or the network: base images come through the resolver
//! trait, implemented on the solver's side. It must not depend on solver or exporter
//! crates.

mod error;
mod lower;
mod options;
mod resolver;
mod scope;

pub use error::{LowerError, LowerErrorKind};
pub use lower::{lower, parse_and_lint, Lowered};
pub use options::{LowerOptions, NamedContext};
pub use resolver::{ImageMetaResolver, ImageSource, NoImages, ResolveError, ResolvedImage};
pub use strata_instructions::lint::{LintConfig, Rule, Warning};
