//! The solver's operations and the [`Solver`] facade.
//!
//! Each graph op becomes a scheduler op over [`Output`]s: sources (scratch, images from
//! the store or an OCI layout, local directories, a file over HTTP(S), a git
//! checkout), file ops (COPY/ADD with Docker's semantics ([`copy`]),
//! mkdir/mkfile/rm/symlink ([`fileop`]), ADD's archive extraction) written as new
//! layers over a read-only view of the base, and merges (`COPY --link`). COPY/ADD from
//! a local directory are cached by what they read ([`content`]), never by mtimes.
//!
//! Must never depend on the frontend or the exporter.

pub mod chmod;
pub mod content;
pub mod copy;
pub mod fileop;
mod fsutil;
mod glob;
mod op;
mod output;
mod reads;
pub mod records;
mod run_env;
mod sharing;
mod solver;
mod unpack;
mod view;
mod workers;

pub use fsutil::{resolve_in_root, Attrs};
pub use op::ExecFailed;
pub use op::{commit_layer, ensure_layer, GitError, HttpError, UNCOMPRESSED};
pub use op::{kept_holder, shell as debug_shell, DebugError, FailedStep, ShellRequest, STATE_FILE};
pub use output::Output;
pub use reads::{FileReads, ReadLog, MAX_FILES};
pub use records::record_info;
pub use run_env::{Runtimes, Secrets, SshAgents};
pub use sharing::{CacheSharing, LayerFetcher, SharedRecord};
pub use solver::{SolveOptions, Solver};
pub use strata_runtime::RuntimeChoice;
