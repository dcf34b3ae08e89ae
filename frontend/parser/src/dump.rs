//! A stable text dump of the AST, for golden tests and debugging.
//!
//! ```text
//! escape '\\'
//! syntax "docker/dockerfile:1" L1
//! check skip=["A"] experimental=[] error=true L2
//! L4-6 RUN --mount="type=cache,target=/x" --link "echo hi"
//!   original "RUN --mount=type=cache,target=/x --link echo hi"
//!   json ["only", "for", "exec-form", "instructions"]
//!   comment "a comment above"
//!   heredoc "EOF" expand=true chomp=false "body\n"
//!   sub L4-6 RUN "echo"
//!     original "RUN echo"
//! warning L5-5 NoEmptyContinuation "Empty continuation line"
//! ```
//!
//! One line per node (span, keyword as written, flags, rest), then indented detail lines
//! (`json` is derived with [`crate::parse_json_array`], not stored in the AST).
//! Strings are quoted with Rust's `{:?}`.

use std::fmt::Write;

use crate::{Dockerfile, Node};

pub fn dump(df: &Dockerfile) -> String {
    let mut out = String::new();
    let d = &df.directives;
    let _ = writeln!(out, "escape {:?}", d.escape);
    if let Some((syntax, span)) = &d.syntax {
        let _ = writeln!(out, "syntax {syntax:?} L{}", span.start);
    }
    if let Some(c) = &d.check {
        let _ = writeln!(
            out,
            "check skip={:?} experimental={:?} error={} L{}",
            c.skip, c.experimental, c.error, c.span.start
        );
    }
    for node in &df.nodes {
        dump_node(&mut out, node, 0);
    }
    for w in &df.warnings {
        let _ = writeln!(
            out,
            "warning L{}-{} {} {:?}",
            w.span.start, w.span.end, w.rule, w.message
        );
    }
    out
}

fn dump_node(out: &mut String, node: &Node, depth: usize) {
    let pad = "  ".repeat(depth);
    let _ = write!(
        out,
        "L{}-{} {}",
        node.span.start,
        node.span.end,
        node.keyword.escape_debug()
    );
    for f in &node.flags {
        match &f.value {
            Some(v) => {
                let _ = write!(out, " --{}={v:?}", f.name);
            }
            None => {
                let _ = write!(out, " --{}", f.name);
            }
        }
    }
    let _ = writeln!(out, " {:?}", node.rest);
    let _ = writeln!(out, "{pad}  original {:?}", node.original);
    // Derived, not stored: the exec form as the instructions crate will see it.
    const EXEC_FORM: [&str; 7] = ["run", "cmd", "entrypoint", "shell", "add", "copy", "volume"];
    if EXEC_FORM
        .iter()
        .any(|k| node.keyword.eq_ignore_ascii_case(k))
    {
        if let Some(args) = crate::parse_json_array(&node.rest) {
            let _ = writeln!(out, "{pad}  json {args:?}");
        }
    }
    for c in &node.comments {
        let _ = writeln!(out, "{pad}  comment {c:?}");
    }
    for h in &node.heredocs {
        let _ = writeln!(
            out,
            "{pad}  heredoc {:?} expand={} chomp={} {:?}",
            h.name, h.expand, h.chomp, h.content
        );
    }
    if let Some(sub) = &node.sub {
        let _ = write!(out, "{pad}  sub ");
        dump_node(out, sub, depth + 1);
    }
}
