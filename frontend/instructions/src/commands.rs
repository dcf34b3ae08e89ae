//! The typed instructions. Strings are as written (unexpanded) unless noted.

use std::time::Duration;

use strata_parser::{Heredoc, Span};

use crate::MountSpec;

/// One instruction with where it came from.
#[derive(Debug, Clone, PartialEq)]
pub struct Instruction {
    pub command: Command,
    pub span: Span,
    /// The logical line as written, for history and messages.
    pub original: String,
    /// The keyword as written (for ConsistentInstructionCasing).
    pub keyword: String,
}

#[derive(Debug, Clone, PartialEq)]
pub enum Command {
    Run(Run),
    Cmd(CommandLine),
    Entrypoint(CommandLine),
    Shell(Vec<String>),
    Label(KeyValues),
    Env(KeyValues),
    Expose(Vec<String>),
    Add(AddCopy),
    Copy(AddCopy),
    Volume(Vec<String>),
    User(String),
    Workdir(String),
    Arg(Vec<ArgDecl>),
    Onbuild(Onbuild),
    StopSignal(String),
    Healthcheck(Healthcheck),
    Maintainer(String),
}

impl Command {
    /// Upper-case instruction name.
    pub fn name(&self) -> &'static str {
        match self {
            Command::Run(_) => "RUN",
            Command::Cmd(_) => "CMD",
            Command::Entrypoint(_) => "ENTRYPOINT",
            Command::Shell(_) => "SHELL",
            Command::Label(_) => "LABEL",
            Command::Env(_) => "ENV",
            Command::Expose(_) => "EXPOSE",
            Command::Add(_) => "ADD",
            Command::Copy(_) => "COPY",
            Command::Volume(_) => "VOLUME",
            Command::User(_) => "USER",
            Command::Workdir(_) => "WORKDIR",
            Command::Arg(_) => "ARG",
            Command::Onbuild(_) => "ONBUILD",
            Command::StopSignal(_) => "STOPSIGNAL",
            Command::Healthcheck(_) => "HEALTHCHECK",
            Command::Maintainer(_) => "MAINTAINER",
        }
    }
}

/// Shell form (run through SHELL, default `/bin/sh -c`) or exec (JSON) form.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CommandLine {
    Shell(String),
    Exec(Vec<String>),
}

impl CommandLine {
    pub fn is_shell(&self) -> bool {
        matches!(self, CommandLine::Shell(_))
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Network {
    #[default]
    Default,
    None,
    Host,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Security {
    #[default]
    Sandbox,
    Insecure,
}

#[derive(Debug, Clone, PartialEq)]
pub struct Run {
    pub command: CommandLine,
    pub heredocs: Vec<Heredoc>,
    /// `--mount` values as written; parsed again with expansion at lowering time
    /// ([`crate::parse_mount`]), validated here with an identity expansion.
    pub mounts: Vec<String>,
    /// Parsed without expansion, for lint and early errors.
    pub mounts_parsed: Vec<MountSpec>,
    pub network: Option<String>,
    pub security: Option<String>,
}

/// `key=value` pairs of ENV and LABEL; `legacy` for the `ENV key value` form.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KeyValues {
    pub pairs: Vec<(String, String)>,
    pub legacy: bool,
}

/// COPY and ADD share a shape; the flags that only ADD accepts are `None`/false on COPY.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct AddCopy {
    /// Source words (or heredoc names) and the destination, as written.
    pub sources: Vec<String>,
    pub dest: String,
    /// Heredocs whose names appear among the sources.
    pub heredocs: Vec<Heredoc>,
    pub from: Option<String>,
    pub chown: Option<String>,
    pub chmod: Option<String>,
    pub link: bool,
    pub parents: bool,
    pub exclude: Vec<String>,
    // ADD only
    pub keep_git_dir: bool,
    pub checksum: Option<String>,
    pub unpack: Option<bool>,
    /// True when the sources were given in JSON form.
    pub json_form: bool,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ArgDecl {
    pub name: String,
    pub default: Option<String>,
}

#[derive(Debug, Clone, PartialEq)]
pub struct Onbuild {
    /// The trigger text as written (`RUN make`), stored in the image config.
    pub expression: String,
    pub trigger: Box<Instruction>,
}

#[derive(Debug, Clone, PartialEq)]
pub enum Healthcheck {
    None,
    Check {
        /// `CMD` exec form → `["CMD", …]`; shell form → `["CMD-SHELL", "…"]`.
        test: Vec<String>,
        interval: Option<Duration>,
        timeout: Option<Duration>,
        start_period: Option<Duration>,
        start_interval: Option<Duration>,
        retries: Option<i64>,
    },
}

/// A span-less view, for tests.
impl Instruction {
    pub fn line(&self) -> usize {
        self.span.start
    }
}
