//! No panics on arbitrary input, structural invariants, and linear-time parsing of big files.

use strata_parser::{parse, parse_bytes, Dockerfile, Node};

/// xorshift64*: deterministic, dependency-free.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        let mut x = self.0;
        x ^= x >> 12;
        x ^= x << 25;
        x ^= x >> 27;
        self.0 = x;
        x.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }

    fn below(&mut self, n: usize) -> usize {
        (self.next() % n as u64) as usize
    }
}

const FRAGMENTS: &[&str] = &[
    "FROM alpine",
    "RUN echo hi",
    "run",
    "ONBUILD ",
    "ONBUILD ONBUILD ",
    "COPY ",
    "ADD ",
    "ENV ",
    "LABEL ",
    "ARG ",
    "HEALTHCHECK ",
    "CMD ",
    "ENTRYPOINT ",
    "SHELL ",
    "VOLUME ",
    "EXPOSE 80",
    "--mount=type=cache,target=/x ",
    "--",
    "--flag",
    "--f=\"a b\" ",
    "<<EOF",
    "<<-EOF",
    "<<'EOF'",
    "<<\"EOF\"",
    "3<<X",
    "EOF",
    "\tEOF",
    "X",
    "<<",
    "<<<",
    "\\",
    "`",
    "# escape=`",
    "# escape=\\",
    "# syntax=x",
    "# check=skip=all;error=true",
    "# check=foo",
    "#",
    "# comment",
    "#!/bin/sh",
    "\n",
    "\n",
    "\n",
    "\r\n",
    " ",
    "\t",
    "\u{a0}",
    "\u{feff}",
    "[\"a\", \"b\"]",
    "[1]",
    "[\"a\"",
    "[",
    "]",
    "\"",
    "'",
    "${",
    "${X}",
    "$X",
    "}",
    "=",
    "a=b",
    "k v",
    "é",
    "日本",
    "\u{0}",
    "\r",
    "\u{b}",
    "c:\\",
    "x \\\\",
    "NONE",
];

fn random_input(rng: &mut Rng) -> String {
    let n = 1 + rng.below(40);
    let mut s = String::new();
    for _ in 0..n {
        s.push_str(FRAGMENTS[rng.below(FRAGMENTS.len())]);
        if rng.below(3) == 0 {
            s.push(' ');
        }
    }
    s
}

fn check_node(node: &Node, lines: usize, prev_end: usize) {
    assert!(
        node.span.start >= 1 && node.span.start <= node.span.end,
        "{node:?}"
    );
    assert!(
        node.span.end <= lines,
        "span past the end ({lines} lines): {node:?}"
    );
    assert!(node.span.start > prev_end, "overlapping spans: {node:?}");
    assert_eq!(node.rest, node.rest.trim(), "rest is trimmed");
    if let Some(sub) = &node.sub {
        assert_eq!(sub.span, node.span);
    }
}

fn check_invariants(src: &str, df: &Dockerfile) {
    let lines = src.split_inclusive('\n').count();
    assert!(!df.nodes.is_empty());
    let mut prev_end = 0;
    for node in &df.nodes {
        check_node(node, lines, prev_end);
        prev_end = node.span.end;
    }
    assert!(df.directives.escape == '\\' || df.directives.escape == '`');
}

#[test]
fn random_inputs_never_panic() {
    let mut rng = Rng(0x9e37_79b9_7f4a_7c15);
    let (mut ok, mut err) = (0, 0);
    for _ in 0..5000 {
        let src = random_input(&mut rng);
        match parse(&src) {
            Ok(df) => {
                check_invariants(&src, &df);
                let _ = strata_parser::dump(&df);
                ok += 1;
            }
            Err(e) => {
                assert!(e.line() >= 1, "error without a line for {src:?}: {e}");
                assert!(!e.to_string().is_empty());
                err += 1;
            }
        }
        for node in parse(&src).map(|d| d.nodes).unwrap_or_default() {
            let _ = strata_parser::parse_json_array(&node.rest);
            let _ = strata_parser::split_words(&node.rest, '`');
            let _ = strata_parser::split_whitespace_words(&node.rest);
            let _ = strata_parser::parse_name_val(&node.rest, "ENV", '\\');
            let _ = strata_parser::parse_name_or_name_val(&node.rest, "ARG", '\\');
        }
    }
    // The generator must exercise both outcomes.
    assert!(ok > 500 && err > 100, "ok={ok} err={err}");
}

#[test]
fn random_bytes_never_panic() {
    let mut rng = Rng(42);
    for _ in 0..3000 {
        let len = rng.below(200);
        let bytes: Vec<u8> = (0..len)
            .map(|_| match rng.below(4) {
                0 => b"\n\\<#` \"'["[rng.below(9)],
                1 => (rng.next() & 0xff) as u8,
                _ => b"RUNFROMCOPYEOF"[rng.below(14)],
            })
            .collect();
        if let Err(e) = parse_bytes(&bytes) {
            assert!(e.line() >= 1);
        }
    }
}

fn big_dockerfile(instructions: usize) -> String {
    let mut s = String::from("# syntax=docker/dockerfile:1\nFROM alpine AS base\n");
    for i in 0..instructions {
        match i % 5 {
            0 => s.push_str(&format!(
                "RUN --mount=type=cache,target=/c{i} echo {i} \\\n    && true\n"
            )),
            1 => s.push_str(&format!("# comment {i}\nENV K{i}=v{i} L{i}=\"x y\"\n")),
            2 => s.push_str(&format!("COPY <<EOF /f{i}\nline {i}\nEOF\n")),
            3 => s.push_str(&format!("CMD [\"echo\", \"{i}\"]\n")),
            _ => s.push_str(&format!("LABEL a{i}=b\n")),
        }
    }
    s
}

#[test]
fn big_file_parses_completely() {
    let src = big_dockerfile(5000);
    let df = parse(&src).expect("parses");
    assert_eq!(df.nodes.len(), 5001);
    check_invariants(&src, &df);
    assert_eq!(
        df.nodes.iter().filter(|n| !n.heredocs.is_empty()).count(),
        1000
    );
    // A single huge logical line and a huge heredoc stay linear too.
    let long = format!("FROM a\nRUN {}true\n", "x \\\n".repeat(20_000));
    assert_eq!(parse(&long).expect("parses").nodes[1].span.end, 20_002);
    let body = format!("FROM a\nRUN <<EOF\n{}EOF\n", "line\n".repeat(50_000));
    assert_eq!(
        parse(&body).expect("parses").nodes[1].heredocs[0]
            .content
            .len(),
        250_000
    );
}

#[test]
fn api_basics() {
    // BOM in str and bytes; the same AST either way.
    let a = parse("\u{feff}FROM a\n").unwrap();
    let b = parse_bytes(b"\xef\xbb\xbfFROM a\n").unwrap();
    assert_eq!(a, b);
    assert_eq!(a.directives, strata_parser::Directives::default());
    // Errors carry spans and display the message only.
    let e = parse("FROM a\nRUN <<EOF\nbody\n").unwrap_err();
    assert_eq!((e.line(), e.span().end), (2, 3));
    assert!(matches!(
        e.kind(),
        strata_parser::ParseErrorKind::UnterminatedHeredoc { name } if name == "EOF"
    ));
    assert_eq!(
        e.to_string(),
        "unterminated heredoc: no line matching the terminator \"EOF\""
    );
    let e = strata_parser::parse_name_val("a", "ENV", '\\').unwrap_err();
    assert_eq!(e.line(), 0);
    let e = e.with_span(strata_parser::Span { start: 7, end: 8 });
    assert_eq!(e.line(), 7);
}
