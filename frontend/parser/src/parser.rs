//! The line loop: physical lines → logical lines → nodes, as BuildKit's `Parse` does it.
//!
//! For every physical line at the top level: collect it as a comment (for the next
//! node), feed it to the directive scanner, drop it if it is a comment or blank, and
//! otherwise start a logical line. While a line ends with the escape character (trailing
//! spaces/tabs allowed, but not an escaped escape), the next physical lines are joined to
//! it: comment lines are skipped, blank lines are skipped with a `NoEmptyContinuation`
//! warning. Then the instruction is split (keyword, flags, rest), checked the way
//! BuildKit's per-instruction line parsers check it, and, for RUN/COPY/ADD in shell form,
//! its heredoc bodies are read from the following lines.

use crate::directives::{self, DirectiveScanner};
use crate::error::{ParseError, ParseErrorKind};
use crate::heredoc;
use crate::line_parsers::{self, classify_json, is_token_space, JsonForm};
use crate::{Directives, Dockerfile, Flag, Heredoc, Node, ParseWarning, Span};

pub(crate) fn parse_str(src: &str) -> Result<Dockerfile, ParseError> {
    let src = src.strip_prefix('\u{feff}').unwrap_or(src);
    let mut p = Parser {
        lines: src.split_inclusive('\n').collect(),
        pos: 0,
        scanner: DirectiveScanner::new(),
    };
    let mut nodes = Vec::new();
    let mut warnings = Vec::new();
    let mut comments: Vec<String> = Vec::new();

    while let Some(raw) = p.next_line() {
        let line_no = p.pos;
        if let Some(text) = comment_text(raw) {
            if text.is_empty() {
                comments.clear();
            } else {
                comments.push(text.to_owned());
            }
        }
        let token = trim_newline(raw).trim_start();
        if p.scanner.line(token, line_no)? {
            comments.pop();
        }
        let token = if is_comment(token) { "" } else { token };
        let escape = p.scanner.escape;
        let (first, mut end_of_line) = trim_continuation(token, escape);
        if end_of_line && first.is_empty() {
            continue;
        }
        let start = line_no;
        let mut line = String::from(first);
        let mut empty_continuation = false;
        while !end_of_line {
            let Some(raw) = p.next_line() else { break };
            // (The directive scanner is done by now: this line's first line was no directive.)
            let token = trim_newline(raw);
            if is_comment(token) {
                continue;
            }
            if token.trim_start().is_empty() {
                empty_continuation = true;
                continue;
            }
            let (piece, eol) = trim_continuation(token, escape);
            line.push_str(piece);
            end_of_line = eol;
        }
        let end = p.pos;
        if empty_continuation {
            warnings.push(ParseWarning {
                rule: "NoEmptyContinuation",
                message: "Empty continuation line".to_owned(),
                span: Span { start: end, end },
            });
        }

        let (mut node, json) =
            node_from_line(&line, escape).map_err(|k| ParseError::at(k, start, end))?;
        node.comments = std::mem::take(&mut comments);

        if line.contains("<<") {
            // For ONBUILD, the trigger instruction decides (and gets the bodies).
            let target = match node.sub.as_deref_mut() {
                Some(sub) => sub,
                None => &mut node,
            };
            if !json && can_contain_heredoc(&target.keyword) {
                let markers =
                    heredoc::markers_in_line(&line).map_err(|k| ParseError::at(k, start, end))?;
                for m in markers {
                    let content = p.heredoc_body(&m, start)?;
                    target.heredocs.push(Heredoc {
                        name: m.name,
                        content,
                        expand: m.expand,
                        chomp: m.chomp,
                    });
                }
            }
        }

        let span = Span { start, end: p.pos };
        node.span = span;
        let mut sub = node.sub.as_deref_mut();
        while let Some(s) = sub {
            s.span = span;
            sub = s.sub.as_deref_mut();
        }
        nodes.push(node);
    }

    if nodes.is_empty() {
        let line = p.lines.len().max(1);
        return Err(ParseError::at(ParseErrorKind::NoInstructions, line, line));
    }

    let raw = directives::scan_raw(src);
    let check = match raw.check {
        Some((value, line)) => Some(directives::parse_check(value, line)?),
        None => None,
    };
    let directives = Directives {
        syntax: raw.syntax.map(|(v, line)| {
            (
                v.to_owned(),
                Span {
                    start: line,
                    end: line,
                },
            )
        }),
        escape: p.scanner.escape,
        check,
    };
    Ok(Dockerfile {
        directives,
        nodes,
        warnings,
    })
}

struct Parser<'a> {
    /// Physical lines, each with its `\n` (the last one may lack it).
    lines: Vec<&'a str>,
    /// Lines consumed so far, i.e. the 1-based number of the last line returned.
    pos: usize,
    scanner: DirectiveScanner,
}

impl<'a> Parser<'a> {
    fn next_line(&mut self) -> Option<&'a str> {
        let line = self.lines.get(self.pos).copied()?;
        self.pos += 1;
        Some(line)
    }

    /// Read a heredoc body up to its terminator line (compared without the line ending,
    /// and without leading tabs for `<<-`).
    fn heredoc_body(&mut self, m: &heredoc::Marker, start: usize) -> Result<String, ParseError> {
        let mut content = String::new();
        while let Some(raw) = self.next_line() {
            let mut candidate = trim_newline(raw);
            if m.chomp {
                candidate = candidate.trim_start_matches('\t');
            }
            if candidate == m.name {
                return Ok(if m.chomp {
                    heredoc::chomp(&content)
                } else {
                    content
                });
            }
            content.push_str(raw);
        }
        Err(ParseError::at(
            ParseErrorKind::UnterminatedHeredoc {
                name: m.name.clone(),
            },
            start,
            self.pos,
        ))
    }
}

/// BuildKit's `newNodeFromLine`: split the keyword and leading flags, then check the
/// arguments the way its per-instruction line parser does. Span and comments are left
/// for the caller. The flag says whether the instruction (for ONBUILD: its trigger) is in
/// JSON form, which rules out heredocs.
fn node_from_line(line: &str, escape: char) -> Result<(Node, bool), ParseErrorKind> {
    let trimmed = line.trim();
    let (keyword, after) = match trimmed.find(is_token_space) {
        Some(i) => (
            &trimmed[..i],
            Some(trimmed[i..].trim_start_matches(is_token_space)),
        ),
        None => (trimmed, None),
    };
    let (args, flags) = match after {
        Some(after) => extract_flags(after, escape),
        None => ("", Vec::new()),
    };
    let rest = args.trim();
    let mut node = Node {
        keyword: keyword.to_owned(),
        flags,
        rest: rest.to_owned(),
        heredocs: Vec::new(),
        original: line.to_owned(),
        span: Span::default(),
        comments: Vec::new(),
        sub: None,
    };
    let mut json = false;
    match keyword.to_ascii_lowercase().as_str() {
        "run" | "cmd" | "entrypoint" | "shell" if !rest.is_empty() => json = exec_form(rest)?,
        "add" | "copy" | "volume" => json = exec_form(rest)?,
        "healthcheck" => {
            let sep = rest.find(char::is_whitespace).unwrap_or(rest.len());
            let cmd = rest[sep..].trim_start();
            if sep > 0 && !cmd.is_empty() {
                json = exec_form(cmd)?;
            }
        }
        "env" => {
            line_parsers::name_val(rest, "ENV", escape)?;
        }
        "label" => {
            line_parsers::name_val(rest, "LABEL", escape)?;
        }
        "onbuild" if !rest.is_empty() => {
            let (sub, sub_json) = node_from_line(rest, escape)?;
            json = sub_json;
            node.sub = Some(Box::new(sub));
        }
        _ => {}
    }
    Ok((node, json))
}

/// Is `rest` the exec form? A JSON array with non-string elements is an error.
fn exec_form(rest: &str) -> Result<bool, ParseErrorKind> {
    match classify_json(rest) {
        JsonForm::Strings(_) => Ok(true),
        JsonForm::NotStrings => Err(ParseErrorKind::JsonNotStrings),
        JsonForm::NotJson => Ok(false),
    }
}

fn can_contain_heredoc(keyword: &str) -> bool {
    ["run", "copy", "add"]
        .iter()
        .any(|k| keyword.eq_ignore_ascii_case(k))
}

/// BuildKit's `extractBuilderFlags`: leading words starting with `--` (quotes removed,
/// escapes applied) until the first other word; a bare `--` ends the flags and is dropped.
/// Returns the text after the flags and the flags.
fn extract_flags(line: &str, escape: char) -> (&str, Vec<Flag>) {
    #[derive(PartialEq)]
    enum Phase {
        Spaces,
        Word,
        Quote,
    }
    let mut words: Vec<String> = Vec::new();
    let mut word = String::new();
    let mut phase = Phase::Spaces;
    let mut quote = '\0';
    let mut blank_ok = false;
    let mut it = line.char_indices().peekable();
    loop {
        let Some((pos, mut ch)) = it.next() else {
            if phase != Phase::Spaces && word != "--" && (blank_ok || !word.is_empty()) {
                words.push(word);
            }
            return ("", to_flags(words));
        };
        if phase == Phase::Spaces {
            if ch.is_whitespace() {
                continue;
            }
            if !line[pos..].starts_with("--") {
                return (&line[pos..], to_flags(words));
            }
            phase = Phase::Word;
        }
        if phase == Phase::Word {
            if ch.is_whitespace() {
                phase = Phase::Spaces;
                if word == "--" {
                    return (&line[pos..], to_flags(words));
                }
                if blank_ok || !word.is_empty() {
                    words.push(std::mem::take(&mut word));
                }
                word.clear();
                blank_ok = false;
                continue;
            }
            if ch == '\'' || ch == '"' {
                quote = ch;
                blank_ok = true;
                phase = Phase::Quote;
                continue;
            }
            if ch == escape {
                match it.next() {
                    Some((_, next)) => ch = next,
                    None => continue,
                }
            }
            word.push(ch);
            continue;
        }
        // Phase::Quote
        if ch == quote {
            phase = Phase::Word;
            continue;
        }
        if ch == escape {
            match it.next() {
                Some((_, next)) => ch = next,
                None => {
                    phase = Phase::Word;
                    continue;
                }
            }
        }
        word.push(ch);
    }
}

fn to_flags(words: Vec<String>) -> Vec<Flag> {
    words
        .into_iter()
        .map(|w| {
            let body = w.strip_prefix("--").unwrap_or(&w);
            match body.split_once('=') {
                Some((name, value)) => Flag {
                    name: name.to_owned(),
                    value: Some(value.to_owned()),
                },
                None => Flag {
                    name: body.to_owned(),
                    value: None,
                },
            }
        })
        .collect()
}

fn trim_newline(s: &str) -> &str {
    s.trim_end_matches(['\r', '\n'])
}

fn is_comment(s: &str) -> bool {
    s.trim_start().starts_with('#')
}

/// The text of a comment line (without `#` and surrounding whitespace).
fn comment_text(raw: &str) -> Option<&str> {
    raw.trim_start().strip_prefix('#').map(str::trim)
}

/// BuildKit's line-continuation regex `([^E])E[ \t]*$|^E[ \t]*$`: the line without the
/// escape (and what trails it), and whether the logical line ends here.
fn trim_continuation(line: &str, escape: char) -> (&str, bool) {
    let t = line.trim_end_matches([' ', '\t']);
    if let Some(before) = t.strip_suffix(escape) {
        if before.is_empty() || !before.ends_with(escape) {
            return (before, false);
        }
    }
    (line, true)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn continuation_rule() {
        assert_eq!(trim_continuation("RUN a \\", '\\'), ("RUN a ", false));
        assert_eq!(trim_continuation("RUN a\\ \t ", '\\'), ("RUN a", false));
        assert_eq!(trim_continuation("\\", '\\'), ("", false));
        assert_eq!(trim_continuation("  \\  ", '\\'), ("  ", false));
        assert_eq!(trim_continuation("RUN a \\\\", '\\'), ("RUN a \\\\", true));
        assert_eq!(
            trim_continuation("RUN a \\\\\\", '\\'),
            ("RUN a \\\\\\", true)
        );
        assert_eq!(
            trim_continuation("RUN dir c:\\", '`'),
            ("RUN dir c:\\", true)
        );
        assert_eq!(trim_continuation("RUN a `", '`'), ("RUN a ", false));
        assert_eq!(trim_continuation("", '\\'), ("", true));
    }

    fn flags(line: &str) -> (String, Vec<String>) {
        let (rest, f) = extract_flags(line, '\\');
        let f = f
            .into_iter()
            .map(|f| match f.value {
                Some(v) => format!("{}={}", f.name, v),
                None => f.name,
            })
            .collect();
        (rest.trim().to_owned(), f)
    }

    #[test]
    fn builder_flags() {
        let s = |v: &[&str]| v.iter().map(|x| x.to_string()).collect::<Vec<_>>();
        assert_eq!(
            flags("--a=1 --b echo hi"),
            ("echo hi".into(), s(&["a=1", "b"]))
        );
        assert_eq!(
            flags("--a=\"x y\" --c='q' x"),
            ("x".into(), s(&["a=x y", "c=q"]))
        );
        assert_eq!(flags("--a=1 -- --b x"), ("--b x".into(), s(&["a=1"])));
        assert_eq!(flags("--a --"), ("".into(), s(&["a"])));
        assert_eq!(flags("-- x"), ("x".into(), s(&[])));
        assert_eq!(flags("-a x"), ("-a x".into(), s(&[])));
        assert_eq!(flags("--a=b\\ c d"), ("d".into(), s(&["a=b c"])));
        assert_eq!(flags("--a=\"open"), ("".into(), s(&["a=open"])));
        assert_eq!(flags("--a=\"\" x"), ("x".into(), s(&["a="])));
        assert_eq!(flags("--chown=ü:ä x"), ("x".into(), s(&["chown=ü:ä"])));
        assert_eq!(flags("--"), ("".into(), s(&[])));
    }
}
