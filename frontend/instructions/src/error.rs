use strata_parser::Span;

/// An instruction that cannot be understood; `span` locates it for `Dockerfile:LINE`.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{kind}")]
pub struct InstructionError {
    pub span: Span,
    pub kind: InstructionErrorKind,
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum InstructionErrorKind {
    #[error("unknown instruction: {word}{}", suggestion.as_ref().map(|s| format!(" (did you mean {s}?)")).unwrap_or_default())]
    UnknownInstruction {
        word: String,
        suggestion: Option<String>,
    },
    #[error("{0} requires at least one argument")]
    AtLeastOneArgument(&'static str),
    #[error("{0} requires exactly one argument")]
    ExactlyOneArgument(&'static str),
    #[error("{0} requires at least two arguments, but only one was provided. Destination could not be determined")]
    NoDestination(&'static str),
    #[error("FROM requires either one or three arguments")]
    FromArguments,
    #[error(
        "invalid name for build stage: {0:?}, name can't start with a number or contain symbols"
    )]
    StageName(String),
    #[error("{0} names can not be blank")]
    BlankName(&'static str),
    #[error("unknown flag: --{flag} (valid flags for {instruction}: {valid})")]
    UnknownFlag {
        instruction: &'static str,
        flag: String,
        valid: String,
    },
    #[error("missing a value on flag: --{0}")]
    MissingFlagValue(String),
    #[error("expecting boolean value for flag --{flag}, not: {value}")]
    BadBool { flag: String, value: String },
    #[error("duplicate flag specified: --{0}")]
    DuplicateFlag(String),
    #[error("--{flag}: {message}")]
    BadFlagValue { flag: String, message: String },
    #[error("{0}")]
    Mount(String),
    #[error("{0} requires the arguments to be in JSON form")]
    JsonRequired(&'static str),
    #[error("{0}")]
    Healthcheck(String),
    #[error("Chaining ONBUILD via `ONBUILD ONBUILD` isn't allowed")]
    OnbuildChain,
    #[error("{0} isn't allowed as an ONBUILD trigger")]
    OnbuildForbidden(String),
    #[error("{0}")]
    Parse(String),
    #[error("no build stage in current context: {0} must follow FROM (only ARG may come before the first FROM)")]
    NoStage(&'static str),
    #[error("the Dockerfile has no FROM instruction")]
    NoFrom,
    #[error("duplicate stage name {name:?}: first defined on line {first_line}")]
    DuplicateStage { name: String, first_line: usize },
}

impl InstructionError {
    pub fn new(span: Span, kind: InstructionErrorKind) -> Self {
        InstructionError { span, kind }
    }
}
