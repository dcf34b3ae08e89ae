//! Turning errors into messages: `Dockerfile:LINE` with the offending lines and a caret
//! for definition errors, `hint:` lines where we know a fix, and exit codes.

use std::fmt;

use strata_dockerfile::{LowerError, LowerErrorKind};

/// A command-line mistake: exit code 2.
#[derive(Debug)]
pub struct Usage(pub String);

impl fmt::Display for Usage {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}
impl std::error::Error for Usage {}

/// A Dockerfile that cannot be built, with the text to quote.
#[derive(Debug)]
pub struct DockerfileError {
    pub file: String,
    pub source_text: String,
    pub err: LowerError,
}

impl fmt::Display for DockerfileError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.err.span {
            Some(span) => write!(f, "{}:{}: {}", self.file, span.start, self.err),
            None => write!(f, "{}: {}", self.file, self.err),
        }
    }
}
impl std::error::Error for DockerfileError {}

/// A build step failed: the step's name and its error chain.
#[derive(Debug)]
pub struct SolveFailed(pub strata_scheduler::SolveError);

impl fmt::Display for SolveFailed {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.0 {
            strata_scheduler::SolveError::Failed { vertex, source, .. } => {
                write!(f, "{vertex}: {source}")
            }
            other => write!(f, "{other}"),
        }
    }
}
impl std::error::Error for SolveFailed {}

pub fn exit_code(e: &anyhow::Error) -> u8 {
    if e.downcast_ref::<Usage>().is_some() {
        2
    } else {
        1
    }
}

pub fn print_error(e: &anyhow::Error) {
    eprintln!("error: {e}");
    if let Some(d) = e.downcast_ref::<DockerfileError>() {
        if let Some(span) = d.err.span {
            eprint!("{}", quote(&d.source_text, span.start, span.end));
        }
        if let Some(h) = hint(&d.err) {
            eprintln!("hint: {h}");
        }
        return;
    }
    for cause in e.chain().skip(1) {
        eprintln!("  caused by: {cause}");
    }
}

/// The lines `start..=end` (at most 6) with numbers, and a caret line under the first.
pub fn quote(text: &str, start: usize, end: usize) -> String {
    let lines: Vec<&str> = text.lines().collect();
    if start == 0 || start > lines.len() {
        return String::new();
    }
    let end = end.clamp(start, lines.len()).min(start + 5);
    let width = end.to_string().len();
    let mut out = String::new();
    for n in start..=end {
        out.push_str(&format!(
            " {n:>width$} | {}\n",
            lines[n - 1].trim_end_matches('\r')
        ));
        if n == start {
            let line = lines[n - 1];
            let indent = line.len() - line.trim_start().len();
            let len = line.trim().chars().count().max(1);
            out.push_str(&format!(
                " {:>width$} | {}{}\n",
                "",
                " ".repeat(indent),
                "^".repeat(len)
            ));
        }
    }
    out
}

fn hint(e: &LowerError) -> Option<String> {
    match &e.kind {
        LowerErrorKind::UnknownTarget { stages, .. } if !stages.is_empty() => {
            Some(format!("pass one of: --target {}", stages.join(" | --target ")))
        }
        LowerErrorKind::Resolve { .. } => Some(
            "import the base image first (`--build-context NAME=oci-layout:///path`), or check the name".into(),
        ),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn quote_points_at_the_line() {
        let text = "FROM scratch\n  COPPY a b\nRUN x\n";
        assert_eq!(quote(text, 2, 2), " 2 |   COPPY a b\n   |   ^^^^^^^^^\n");
        assert_eq!(quote(text, 9, 9), "");
    }
}
