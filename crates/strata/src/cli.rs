//! The command line, as clap types. Strings become types here, at the edge.

use std::path::PathBuf;

use clap::{Args, Parser, Subcommand, ValueEnum};

#[derive(Debug, Parser)]
#[command(
    name = "strata",
    version,
    about = "A daemonless Dockerfile build engine",
    propagate_version = true
)]
pub struct Cli {
    /// The store directory (default: /var/lib/strata as root, else $XDG_DATA_HOME/strata).
    #[arg(long, global = true, env = "STRATA_ROOT", value_name = "DIR")]
    pub root: Option<PathBuf>,
    /// Trust this CA (PEM) for registries besides the system's (repeatable).
    #[arg(long = "registry-ca", global = true, value_name = "FILE")]
    pub registry_ca: Vec<PathBuf>,
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Build an image from a Dockerfile and a context.
    Build(Box<BuildArgs>),
    /// List images in the local store (like `docker images`).
    Images,
    /// Manage images in the local store.
    #[command(subcommand)]
    Image(ImageCommand),
    /// Pull an image from a registry into the local store (like `docker pull`).
    Pull(PullArgs),
    /// Push an image from the local store to a registry (like `docker push`).
    Push(PushArgs),
    /// Log in to a registry (checks the credentials, then saves them as docker does).
    Login(crate::commands::login::LoginArgs),
    /// Remove the saved credentials of a registry.
    Logout(crate::commands::login::LogoutArgs),
    /// Inspect what strata would do.
    #[command(subcommand)]
    Debug(DebugCommand),
    /// Inspect the build cache.
    #[command(subcommand)]
    Cache(crate::commands::cache::CacheCommand),
    /// Manage the store as a whole (disk usage, pruning).
    #[command(subcommand)]
    System(crate::commands::system::SystemCommand),
}

#[derive(Debug, Subcommand)]
pub enum ImageCommand {
    /// List images.
    Ls,
    /// Remove image names (the blobs stay until garbage collection).
    Rm {
        #[arg(required = true)]
        names: Vec<String>,
    },
    /// Print an image's manifest and config as JSON.
    Inspect { name: String },
    /// Show an image's history (like `docker history`).
    History {
        name: String,
        /// Do not truncate commands.
        #[arg(long)]
        no_trunc: bool,
    },
    /// Create an image from a root filesystem tarball (like `docker import`).
    Import {
        /// A tar (plain, gzip or zstd) of the root filesystem; `-` reads stdin.
        tarball: PathBuf,
        /// The name to give it.
        name: String,
    },
    /// Load images from an OCI archive (`type=oci` output), a `docker save` archive (any
    /// Docker version) or an OCI layout.
    Load {
        /// An OCI archive (tar) or an OCI layout directory.
        #[arg(short = 'i', long = "input")]
        input: PathBuf,
        /// Name to give the image when the archive names none.
        #[arg(short = 't', long = "tag")]
        tag: Option<String>,
    },
}

#[derive(Debug, Args)]
pub struct PullArgs {
    /// The image (`alpine`, `host:port/repo:tag`, `repo@sha256:…`).
    #[arg(value_name = "REF")]
    pub reference: String,
    /// The platform to pull from a multi-platform image (default: this machine's).
    #[arg(long, value_name = "PLATFORM")]
    pub platform: Option<String>,
    /// Print only the image name.
    #[arg(short = 'q', long)]
    pub quiet: bool,
    #[command(flatten)]
    pub transfer: crate::commands::registry::ProgressOptions,
}

#[derive(Debug, Args)]
pub struct PushArgs {
    /// The image in the local store.
    #[arg(value_name = "NAME")]
    pub name: String,
    /// Where to push it (default: NAME).
    #[arg(value_name = "DEST")]
    pub dest: Option<String>,
    /// Write the pushed digest as JSON to this file.
    #[arg(long, value_name = "FILE")]
    pub metadata_file: Option<PathBuf>,
    /// Print only the pushed reference.
    #[arg(short = 'q', long)]
    pub quiet: bool,
    #[command(flatten)]
    pub transfer: crate::commands::registry::PushOptions,
}

#[derive(Debug, Subcommand)]
pub enum DebugCommand {
    /// Print the build graph the Dockerfile lowers to, without running it.
    Graph(GraphArgs),
    /// Run a shell (or `-- CMD…`) in the file system of a build's failed RUN step.
    Shell(crate::commands::debug_shell::ShellArgs),
}

/// Options shared by everything that reads a Dockerfile.
#[derive(Debug, Args, Clone)]
pub struct DefinitionArgs {
    /// Name of the Dockerfile (default: CONTEXT/Dockerfile; `-` reads stdin).
    #[arg(short = 'f', long = "file", value_name = "FILE")]
    pub file: Option<PathBuf>,
    /// Build this stage (default: the last one).
    #[arg(long, value_name = "STAGE")]
    pub target: Option<String>,
    /// Set a build-time variable (`KEY=VALUE`, or `KEY` to take it from the environment).
    #[arg(long = "build-arg", value_name = "KEY[=VALUE]")]
    pub build_args: Vec<String>,
    /// Target platform (`os/arch[/variant]`; default: this machine's).
    #[arg(long, value_name = "PLATFORM")]
    pub platform: Option<String>,
    /// Additional build context (`NAME=PATH`, `NAME=docker-image://REF`,
    /// `NAME=oci-layout:///PATH[:TAG]`).
    #[arg(long = "build-context", value_name = "NAME=VALUE")]
    pub build_contexts: Vec<String>,
    /// Do not use the cache.
    #[arg(long)]
    pub no_cache: bool,
    /// Do not use the cache for these stages.
    #[arg(long = "no-cache-filter", value_name = "STAGE")]
    pub no_cache_filter: Vec<String>,
    /// The build context directory.
    #[arg(value_name = "CONTEXT")]
    pub context: PathBuf,
}

#[derive(Debug, Args)]
pub struct BuildArgs {
    #[command(flatten)]
    pub def: DefinitionArgs,
    /// Parse, lower and lint without building; exit 1 if any rule fires.
    #[arg(long)]
    pub check: bool,
    /// Name the result in the local image store (`NAME[:TAG]`; repeatable).
    #[arg(short = 't', long = "tag", value_name = "NAME")]
    pub tags: Vec<String>,
    /// Output (buildx syntax): `type=oci,dest=F.tar`, `type=oci,dest=DIR,tar=false`,
    /// `type=docker,dest=F.tar`, `type=local,dest=DIR`, `type=tar,dest=F`, `type=image`.
    #[arg(short = 'o', long = "output", value_name = "SPEC")]
    pub outputs: Vec<String>,
    /// Push the result to the registry of every `-t` name (`-o type=registry`). A result
    /// only a `--cache-from` cache holds is pushed from its blobs and not stored locally
    /// (add `-o type=image` to keep a copy).
    #[arg(long)]
    pub push: bool,
    /// Blobs uploaded at once when pushing (default: the config's, else 4).
    #[arg(long, value_name = "N")]
    pub push_parallelism: Option<usize>,
    /// Always check the registry for base images, even when the store has them.
    #[arg(long)]
    pub pull: bool,
    /// Progress display.
    #[arg(long, value_enum, default_value_t = crate::progress::ProgressMode::Auto)]
    pub progress: crate::progress::ProgressMode,
    /// Write the image ID (config digest) to this file.
    #[arg(long, value_name = "FILE")]
    pub iidfile: Option<PathBuf>,
    /// Write build metadata (image and config digests) as JSON to this file.
    #[arg(long, value_name = "FILE")]
    pub metadata_file: Option<PathBuf>,
    /// Timestamps for reproducible images (also read from SOURCE_DATE_EPOCH).
    #[arg(long, env = "SOURCE_DATE_EPOCH", value_name = "SECONDS")]
    pub source_date_epoch: Option<i64>,
    /// Print only the image ID on success.
    #[arg(short = 'q', long)]
    pub quiet: bool,
    /// OCI runtime for RUN: `auto` (crun where it works, else runc), `runc`, `crun`,
    /// or the path of a runc-compatible binary.
    #[arg(
        long,
        env = "STRATA_RUNTIME",
        value_name = "RUNTIME",
        default_value = "auto"
    )]
    pub runtime: strata_ops::RuntimeChoice,
    /// A secret for `RUN --mount=type=secret`: `id=ID,src=PATH` (a file) or
    /// `id=ID,env=VAR` (an environment variable; `id=ID` alone reads `$ID`).
    #[arg(long = "secret", value_name = "id=ID,src=PATH|env=VAR")]
    pub secrets: Vec<String>,
    /// An SSH agent for `RUN --mount=type=ssh`: `default` (or `ID`) forwards
    /// `$SSH_AUTH_SOCK`, `ID=SOCKET` the agent listening at SOCKET.
    #[arg(long = "ssh", value_name = "default|ID[=SOCKET]")]
    pub ssh: Vec<String>,
    /// What to do when a RUN fails: `fail`, or `shell` (on a terminal, open a shell in
    /// the failed step's file system; else say how: `strata debug shell BUILD_ID`).
    #[arg(long, value_enum, value_name = "MODE", default_value = "fail")]
    pub on_error: crate::commands::debug_shell::OnError,
    /// The program `--on-error=shell` opens.
    #[arg(long, value_name = "PROGRAM", default_value = "/bin/sh")]
    pub shell: String,
    /// Say why each step that ran missed the cache (compared with its nearest earlier
    /// build; also `explain` events in `--progress json`).
    #[arg(long)]
    pub explain: bool,
    /// Allow an extra privilege: `security.insecure` lets `RUN --security=insecure`
    /// run with every capability.
    #[arg(long = "allow", value_enum, value_name = "ENTITLEMENT")]
    pub allow: Vec<Entitlement>,
    #[command(flatten)]
    pub cache_io: crate::remote_cache::CacheIoArgs,
}

/// What `--allow` may grant.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum Entitlement {
    #[value(name = "security.insecure")]
    SecurityInsecure,
}

#[derive(Debug, Args)]
pub struct GraphArgs {
    #[command(flatten)]
    pub def: DefinitionArgs,
    /// Output format.
    #[arg(long, value_enum, default_value_t = GraphFormat::Text)]
    pub format: GraphFormat,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum GraphFormat {
    Text,
    Json,
    Dot,
}
