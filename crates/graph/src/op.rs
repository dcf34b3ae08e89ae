//! The closed set of operations. Every type here is keyed: it feeds vertex digests
//! through `strata_digest::key`, so it holds no `HashMap` and its field order is part of
//! the key (changing it means bumping `KEY_VERSION`).

use serde::{Deserialize, Serialize};
use strata_digest::Digest;
use strata_oci::Platform;

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case", tag = "type")]
pub enum Op {
    Source(Source),
    Exec(Exec),
    File(FileOp),
    Merge(Merge),
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case", tag = "kind")]
pub enum Source {
    /// The empty filesystem.
    Scratch,
    /// An image from the local store or a registry (normalised reference).
    Image {
        reference: String,
        platform: Platform,
        /// Manifest digest when the resolver pinned it.
        digest: Option<Digest>,
    },
    /// An image in an OCI layout directory (`--build-context NAME=oci-layout://PATH`).
    OciLayout {
        path: String,
        tag: Option<String>,
        digest: Option<Digest>,
    },
    /// Files of a local context (`context` or a named `--build-context`), narrowed to what
    /// the build reads. Content is keyed by the solver, not here.
    Local {
        name: String,
        include: Vec<String>,
        exclude: Vec<String>,
    },
    /// A file fetched over HTTP(S) (`ADD URL`).
    Http {
        url: String,
        checksum: Option<Digest>,
        filename: Option<String>,
    },
    /// A git repository (`ADD git@…`, `https://…​.git#ref:subdir`).
    Git {
        remote: String,
        reference: Option<String>,
        subdir: Option<String>,
        keep_git_dir: bool,
    },
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "snake_case")]
pub enum NetworkMode {
    /// Docker's `default`: host networking here, as no bridge may be created.
    #[default]
    Default,
    Host,
    None,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "snake_case")]
pub enum SecurityMode {
    #[default]
    Sandbox,
    Insecure,
}

/// A process run in a container; input 0 is the root filesystem, output 0 its result.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Exec {
    pub args: Vec<String>,
    /// `KEY=value`, in order.
    pub env: Vec<String>,
    pub cwd: String,
    /// User as written after expansion (`name`, `uid`, `uid:gid`); resolved in the rootfs.
    pub user: String,
    pub network: NetworkMode,
    pub security: SecurityMode,
    pub mounts: Vec<Mount>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Mount {
    /// Absolute path in the container; empty for an ssh mount written without one (the
    /// executor numbers those `/run/buildkit/ssh_agent.N`, as BuildKit does).
    pub target: String,
    /// Index into the vertex inputs providing the mount's content.
    pub input: Option<usize>,
    /// Sub-path of the input to mount (`source=`).
    pub source: Option<String>,
    pub kind: MountKind,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum CacheSharing {
    Shared,
    Private,
    Locked,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case", tag = "type")]
pub enum MountKind {
    Bind {
        readonly: bool,
    },
    Cache {
        id: String,
        sharing: CacheSharing,
        mode: u32,
        uid: u32,
        gid: u32,
        readonly: bool,
    },
    Tmpfs {
        size: Option<u64>,
    },
    Secret {
        id: String,
        /// Expose as an environment variable instead of (or as well as) a file.
        env: Option<String>,
        required: bool,
        mode: u32,
        uid: u32,
        gid: u32,
    },
    Ssh {
        id: String,
        required: bool,
        mode: u32,
        uid: u32,
        gid: u32,
    },
}

/// A sequence of file actions applied to `base` (an input index; `None` = scratch).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct FileOp {
    pub base: Option<usize>,
    pub actions: Vec<FileAction>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case", tag = "action")]
pub enum FileAction {
    Copy(Copy),
    Mkdir {
        path: String,
        mode: u32,
        make_parents: bool,
        owner: Option<Chown>,
    },
    Mkfile {
        path: String,
        mode: u32,
        data: String,
        owner: Option<Chown>,
    },
    Rm {
        path: String,
        allow_not_found: bool,
        allow_wildcard: bool,
    },
    Symlink {
        target: String,
        link: String,
    },
}

/// COPY/ADD of `sources` (paths in input `input`) to `dest`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Copy {
    pub input: usize,
    pub sources: Vec<String>,
    pub dest: String,
    pub chown: Option<Chown>,
    pub chmod: Option<Chmod>,
    /// Copy a directory's contents rather than the directory (Docker's COPY rule).
    pub dir_contents_only: bool,
    pub follow_symlinks: bool,
    pub allow_wildcard: bool,
    pub allow_empty_wildcard: bool,
    pub create_dest_path: bool,
    /// ADD: extract local tar archives.
    pub unpack: bool,
    /// `--parents`: keep the source paths' parent directories.
    pub parents: bool,
    pub exclude: Vec<String>,
}

/// `--chown=user[:group]` as written after expansion; names are resolved by the solver
/// in the destination's `/etc/passwd` and `/etc/group`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Chown {
    pub user: IdOrName,
    pub group: Option<IdOrName>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum IdOrName {
    Id(u32),
    Name(String),
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Chmod {
    Octal(u32),
    /// `u+x,g-w`, applied by the solver per file.
    Symbolic(String),
}

/// Layers the inputs on top of each other (`COPY --link`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Merge {}

impl Op {
    /// One-line summary for dumps and logs.
    pub fn summary(&self) -> String {
        match self {
            Op::Source(Source::Scratch) => "source scratch".into(),
            Op::Source(Source::Image {
                reference,
                platform,
                ..
            }) => {
                format!("source image {reference} ({platform})")
            }
            Op::Source(Source::OciLayout { path, tag, .. }) => {
                format!(
                    "source oci-layout {path}{}",
                    tag.as_deref().map(|t| format!(":{t}")).unwrap_or_default()
                )
            }
            Op::Source(Source::Local {
                name,
                include,
                exclude,
            }) => {
                format!("source local {name} include={include:?} exclude={exclude:?}")
            }
            Op::Source(Source::Http { url, .. }) => format!("source http {url}"),
            Op::Source(Source::Git {
                remote, reference, ..
            }) => {
                format!(
                    "source git {remote}{}",
                    reference
                        .as_deref()
                        .map(|r| format!("#{r}"))
                        .unwrap_or_default()
                )
            }
            Op::Exec(e) => format!(
                "exec {:?} cwd={} user={:?} mounts={}",
                e.args,
                e.cwd,
                e.user,
                e.mounts.len()
            ),
            Op::File(f) => {
                let parts: Vec<String> = f.actions.iter().map(FileAction::summary).collect();
                format!("file {}", parts.join("; "))
            }
            Op::Merge(_) => "merge".into(),
        }
    }
}

impl FileAction {
    fn summary(&self) -> String {
        match self {
            FileAction::Copy(c) => format!("copy {:?} -> {}", c.sources, c.dest),
            FileAction::Mkdir { path, mode, .. } => format!("mkdir {path} {mode:o}"),
            FileAction::Mkfile {
                path, mode, data, ..
            } => format!("mkfile {path} {mode:o} ({} bytes)", data.len()),
            FileAction::Rm { path, .. } => format!("rm {path}"),
            FileAction::Symlink { target, link } => format!("symlink {link} -> {target}"),
        }
    }
}
