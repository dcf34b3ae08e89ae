//! The AST: what the parser hands to `strata-instructions`.

/// Lines of the Dockerfile, 1-based and inclusive.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub struct Span {
    pub start: usize,
    pub end: usize,
}

/// A parsed Dockerfile.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Dockerfile {
    pub directives: Directives,
    pub nodes: Vec<Node>,
    /// Non-fatal findings of the parser (e.g. an empty continuation line), turned into
    /// lint warnings by `strata-instructions`.
    pub warnings: Vec<ParseWarning>,
}

/// Parser directives found at the top of the file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Directives {
    /// `# syntax=...`: recorded, never acted upon (we are the frontend).
    pub syntax: Option<(String, Span)>,
    /// `# escape=` — `\\` (default) or `` ` ``.
    pub escape: char,
    /// `# check=skip=A,B;error=true`.
    pub check: Option<CheckDirective>,
}

impl Default for Directives {
    /// No directives: the default escape character `\\`.
    fn default() -> Self {
        Directives {
            syntax: None,
            escape: '\\',
            check: None,
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct CheckDirective {
    /// Rule names to skip; `["all"]` skips every rule.
    pub skip: Vec<String>,
    /// `error=true`: lint warnings fail the build.
    pub error: bool,
    /// `experimental=A,B`: experimental rules to enable; `["all"]` enables every one.
    pub experimental: Vec<String>,
    pub span: Span,
}

/// One instruction (one logical line plus its heredoc bodies).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Node {
    /// The keyword as written (`from`, `FROM`, `From`); compare case-insensitively.
    pub keyword: String,
    /// Leading `--name[=value]` flags, in order (repeats kept).
    pub flags: Vec<Flag>,
    /// The text after the keyword and the flags, continuations joined (escape + newline
    /// removed, comment lines inside the continuation dropped), trimmed. Heredoc markers
    /// (`<<EOF`) stay in this text; their bodies do not.
    pub rest: String,
    /// Heredoc bodies, in the order their markers appear in `rest`.
    pub heredocs: Vec<Heredoc>,
    /// The logical line as written (keyword included, continuations joined with the
    /// escape+newline removed), for history `created_by` and error messages. Like
    /// BuildKit's `Original`: leading whitespace removed, trailing whitespace kept, comment
    /// and empty lines of the continuation dropped; for an ONBUILD `sub`, its own text.
    pub original: String,
    pub span: Span,
    /// Comment lines above the instruction (without the `#`, trimmed), as BuildKit's
    /// `PrevComment`: every comment since the previous instruction; blank lines do not
    /// break the run, an empty `#` line restarts it; parser directives are not included.
    pub comments: Vec<String>,
    /// `ONBUILD <instruction>`: the nested instruction, parsed the same way (same span;
    /// heredoc bodies of `ONBUILD RUN <<EOF` are attached here, not to the ONBUILD node).
    pub sub: Option<Box<Node>>,
}

/// `--name=value` or a bare `--name`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Flag {
    pub name: String,
    /// `None` for a bare `--name`.
    pub value: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Heredoc {
    /// The delimiter word (`EOF`), also the file name for `COPY <<EOF dest`.
    pub name: String,
    /// The body, each line ending in `\n` (CRLF files keep `\r\n`); leading tabs removed
    /// when `chomp`.
    pub content: String,
    /// False when the delimiter was quoted (`<<"EOF"`, `<<'EOF'`): no expansion.
    pub expand: bool,
    /// `<<-EOF`: leading tabs stripped.
    pub chomp: bool,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ParseWarning {
    /// BuildKit rule name, e.g. `NoEmptyContinuation`.
    pub rule: &'static str,
    pub message: String,
    pub span: Span,
}
