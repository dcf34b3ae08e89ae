use strata_parser::Span;

/// A build definition error, located in the Dockerfile when it comes from a line.
#[derive(Debug, thiserror::Error)]
#[error("{kind}")]
pub struct LowerError {
    /// `None` for errors that are not about one line (unknown target, …).
    pub span: Option<Span>,
    #[source]
    pub kind: LowerErrorKind,
}

#[derive(Debug, thiserror::Error)]
pub enum LowerErrorKind {
    #[error("{0}")]
    Parse(#[from] strata_parser::ParseError),
    #[error("{0}")]
    Instruction(strata_instructions::InstructionErrorKind),
    #[error("{0}")]
    Expand(#[from] strata_shell::ShellError),
    #[error("target stage {target:?} could not be found; stages: {}", if stages.is_empty() { "(none named)".to_string() } else { stages.join(", ") })]
    UnknownTarget { target: String, stages: Vec<String> },
    #[error("circular dependency detected on stage: {0}")]
    Cycle(String),
    #[error("base name ({0:?}) should not be blank")]
    BlankBase(String),
    #[error("invalid base image reference {value:?}: {message}")]
    BadBase { value: String, message: String },
    #[error("invalid platform {0:?}")]
    BadPlatform(String),
    #[error("failed to resolve {reference}: {source}")]
    Resolve {
        reference: String,
        #[source]
        source: crate::ResolveError,
    },
    #[error("invalid --chown value {0:?}")]
    Chown(String),
    #[error("invalid --chmod value {0:?}: use octal (0755) or symbolic (u+x,g-w) notation")]
    Chmod(String),
    #[error("invalid port {0:?}: expected PORT[/PROTOCOL] with tcp, udp or sctp")]
    Port(String),
    #[error("{0}")]
    Mount(String),
    #[error("--checksum is only supported for HTTP(S) and git sources, not {0:?}")]
    ChecksumSource(String),
    #[error("invalid checksum {0:?}: expected sha256:<64 hex>")]
    Checksum(String),
    #[error("{0} is not supported in ONBUILD triggers")]
    OnbuildTrigger(String),
    #[error("lint: {count} warning(s) and the Dockerfile sets `# check=error=true`")]
    LintFailed { count: usize },
    #[error("{0}")]
    Other(String),
}

impl LowerError {
    pub fn at(span: Span, kind: LowerErrorKind) -> Self {
        LowerError {
            span: Some(span),
            kind,
        }
    }
    pub fn global(kind: LowerErrorKind) -> Self {
        LowerError { span: None, kind }
    }
}

impl From<strata_instructions::InstructionError> for LowerError {
    fn from(e: strata_instructions::InstructionError) -> Self {
        LowerError {
            span: Some(e.span),
            kind: LowerErrorKind::Instruction(e.kind),
        }
    }
}

impl From<strata_parser::ParseError> for LowerError {
    fn from(e: strata_parser::ParseError) -> Self {
        let line = e.line();
        LowerError {
            span: Some(Span {
                start: line,
                end: line,
            }),
            kind: LowerErrorKind::Parse(e),
        }
    }
}
