//! Parser directives (`# syntax=`, `# escape=`, `# check=`) at the top of the file.
//!
//! BuildKit reads them twice, with slightly different rules, and so do we:
//! - while parsing ([`DirectiveScanner`] fed line by line, leading whitespace removed):
//!   this pass sets the escape character and rejects a repeated directive;
//! - `syntax` and `check` are read again from the raw text ([`scan_raw`]), where a first
//!   `#!` line is skipped and an indented `#` line is not a directive.
//!
//! Both stop at the first line that is not a known directive: an empty line, a comment,
//! an unknown `# key=value`, an instruction.

use crate::error::{ParseError, ParseErrorKind};
use crate::{CheckDirective, Span};

const KNOWN: [&str; 3] = ["syntax", "escape", "check"];

/// Go RE2's `\s`: `[\t\n\f\r ]` (no `\v`).
fn is_re_space(c: char) -> bool {
    matches!(c, '\t' | '\n' | '\u{c}' | '\r' | ' ')
}

/// Match BuildKit's `^#\s*([a-zA-Z][a-zA-Z0-9]*)\s*=\s*(.+?)\s*$`: the name (lowercased)
/// and the value.
pub(crate) fn match_directive(line: &str) -> Option<(String, &str)> {
    let rest = line.strip_prefix('#')?.trim_start_matches(is_re_space);
    let name_len = rest
        .char_indices()
        .find(|&(i, c)| !(c.is_ascii_alphabetic() || (i > 0 && c.is_ascii_digit())))
        .map_or(rest.len(), |(i, _)| i);
    if name_len == 0 {
        return None;
    }
    let name = rest[..name_len].to_ascii_lowercase();
    let rest = rest[name_len..]
        .trim_start_matches(is_re_space)
        .strip_prefix('=')?;
    let value = rest
        .trim_start_matches(is_re_space)
        .trim_end_matches(is_re_space);
    if !value.is_empty() {
        return Some((name, value));
    }
    // Only whitespace after `=`: the lazy `(.+?)` still takes one character, the last.
    let last = rest.chars().next_back()?;
    Some((name, &rest[rest.len() - last.len_utf8()..]))
}

/// The in-parse directive reader (BuildKit's `DirectiveParser` as `Parse` drives it).
#[derive(Debug)]
pub(crate) struct DirectiveScanner {
    done: bool,
    seen: Vec<String>,
    pub escape: char,
}

impl DirectiveScanner {
    pub fn new() -> Self {
        DirectiveScanner {
            done: false,
            seen: Vec::new(),
            escape: '\\',
        }
    }

    /// Feed one line (newline and leading whitespace removed). `Ok(true)` when the line
    /// was a directive.
    pub fn line(&mut self, line: &str, line_no: usize) -> Result<bool, ParseError> {
        if self.done {
            return Ok(false);
        }
        let Some((name, value)) = match_directive(line) else {
            self.done = true;
            return Ok(false);
        };
        if !KNOWN.contains(&name.as_str()) {
            self.done = true;
            return Ok(false);
        }
        if self.seen.contains(&name) {
            return Err(ParseError::at(
                ParseErrorKind::DuplicateDirective { name },
                line_no,
                line_no,
            ));
        }
        if name == "escape" {
            self.escape = match value {
                "\\" => '\\',
                "`" => '`',
                _ => {
                    return Err(ParseError::at(
                        ParseErrorKind::InvalidEscape {
                            value: value.to_owned(),
                        },
                        line_no,
                        line_no,
                    ))
                }
            };
        }
        self.seen.push(name);
        Ok(true)
    }
}

/// `syntax` and `check` as BuildKit's `DetectSyntax` / `ParseDirective` find them: each
/// `(value, line)`.
#[derive(Debug, Default)]
pub(crate) struct RawDirectives<'a> {
    pub syntax: Option<(&'a str, usize)>,
    pub check: Option<(&'a str, usize)>,
}

pub(crate) fn scan_raw(src: &str) -> RawDirectives<'_> {
    let mut found = RawDirectives::default();
    let mut seen: Vec<String> = Vec::new();
    let mut lines = src.split('\n').enumerate().peekable();
    if let Some((_, first)) = lines.peek() {
        if first.starts_with("#!") {
            lines.next();
        }
    }
    for (i, line) in lines {
        let line = line.strip_suffix('\r').unwrap_or(line);
        let Some((name, value)) = match_directive(line) else {
            break;
        };
        if !KNOWN.contains(&name.as_str()) || seen.contains(&name) {
            break;
        }
        match name.as_str() {
            "syntax" => found.syntax = Some((value, i + 1)),
            "check" => found.check = Some((value, i + 1)),
            _ => {}
        }
        seen.push(name);
    }
    found
}

/// BuildKit's `linter.ParseLintOptions` on the `check` value (up to its first space, as
/// `ParseDirective` cuts it).
pub(crate) fn parse_check(value: &str, line: usize) -> Result<CheckDirective, ParseError> {
    let err = |reason: String| ParseError::at(ParseErrorKind::InvalidCheck { reason }, line, line);
    let value = value.split(' ').next().unwrap_or_default().trim();
    let mut check = CheckDirective {
        span: Span {
            start: line,
            end: line,
        },
        ..Default::default()
    };
    if value.is_empty() {
        return Ok(check);
    }
    let list = |v: &str| -> Vec<String> {
        let v = v.trim();
        if v == "all" {
            vec!["all".to_owned()]
        } else {
            v.split(',').map(|r| r.trim().to_owned()).collect()
        }
    };
    for part in value.splitn(3, ';') {
        let Some((k, v)) = part.split_once('=') else {
            return Err(err(format!(
                "invalid check option {}",
                crate::error::go_quote(part)
            )));
        };
        match k.trim() {
            "skip" => check.skip = list(v),
            "experimental" => check.experimental = list(v),
            "error" => {
                let v = v.trim();
                check.error = match v {
                    "1" | "t" | "T" | "TRUE" | "true" | "True" => true,
                    "0" | "f" | "F" | "FALSE" | "false" | "False" => false,
                    _ => {
                        return Err(err(format!(
                            "failed to parse check option {}: strconv.ParseBool: parsing {}: \
                             invalid syntax",
                            crate::error::go_quote(part),
                            crate::error::go_quote(v)
                        )))
                    }
                };
            }
            k => {
                return Err(err(format!(
                    "invalid check option {}",
                    crate::error::go_quote(k)
                )));
            }
        }
    }
    Ok(check)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn directive_regex() {
        let m = |s| match_directive(s).map(|(n, v)| (n, v.to_owned()));
        let d = |n: &str, v: &str| Some((n.to_owned(), v.to_owned()));
        assert_eq!(m("# escape=`"), d("escape", "`"));
        assert_eq!(m("#escape=`"), d("escape", "`"));
        assert_eq!(m("#\t escape \t= \t` \t"), d("escape", "`"));
        assert_eq!(m("# EScape=\\"), d("escape", "\\"));
        assert_eq!(
            m("# syntax=docker/dockerfile:1 // opts"),
            d("syntax", "docker/dockerfile:1 // opts")
        );
        assert_eq!(m("# key = FOO bar"), d("key", "FOO bar"));
        assert_eq!(m("# k9=v"), d("k9", "v"));
        assert_eq!(m("# escape=   "), d("escape", " "));
        assert_eq!(m("# escape="), None);
        assert_eq!(m("# 9k=v"), None);
        assert_eq!(m("# my-key=v"), None);
        assert_eq!(m("# just a comment"), None);
        assert_eq!(m(" # escape=`"), None);
        assert_eq!(m("// syntax=x"), None);
        assert_eq!(m(""), None);
    }

    #[test]
    fn scanner_rules() {
        let mut s = DirectiveScanner::new();
        assert_eq!(s.line("# syntax=a", 1), Ok(true));
        assert_eq!(s.line("# escape=`", 2), Ok(true));
        assert_eq!(s.escape, '`');
        let e = s.line("# Syntax=b", 3).unwrap_err();
        assert_eq!(
            e.to_string(),
            "only one syntax parser directive can be used"
        );
        assert_eq!(e.line(), 3);

        let mut s = DirectiveScanner::new();
        assert_eq!(s.line("# unknown=1", 1), Ok(false));
        assert_eq!(s.line("# escape=`", 2), Ok(false));
        assert_eq!(s.escape, '\\');

        let mut s = DirectiveScanner::new();
        let e = s.line("# escape=x", 1).unwrap_err();
        assert_eq!(
            e.to_string(),
            "invalid escape token 'x' does not match ` or \\"
        );
    }

    #[test]
    fn raw_scan_skips_shebang_and_stops_early() {
        let r = scan_raw("#!/bin/sh\n# syntax = dockerfile:experimental\nFROM busybox\n");
        assert_eq!(r.syntax, Some(("dockerfile:experimental", 2)));
        let r = scan_raw("#!/bin/sh\n\n# syntax = x\n");
        assert_eq!(r.syntax, None);
        let r = scan_raw("#check = skip=all // opts\r\nFROM busybox\n");
        assert_eq!(r.check, Some(("skip=all // opts", 1)));
        let r = scan_raw("  # check=skip=all\n");
        assert_eq!(r.check, None);
        let r = scan_raw("# syntax=a\n# syntax=b\n# check=skip=all\n");
        assert_eq!((r.syntax, r.check), (Some(("a", 1)), None));
    }

    #[test]
    fn check_options() {
        let c = parse_check("skip=A, B;error=true", 1).unwrap();
        // BuildKit cuts the value at its first space: `error=true` is never seen.
        assert_eq!(c.skip, vec!["A".to_owned(), String::new()]);
        assert!(!c.error);
        let c = parse_check("skip=A,B;error=TRUE;experimental=all", 2).unwrap();
        assert_eq!(c.skip, vec!["A".to_owned(), "B".to_owned()]);
        assert_eq!(c.experimental, vec!["all".to_owned()]);
        assert_eq!(c.span, Span { start: 2, end: 2 });
        let c = parse_check("skip=all // opts", 1).unwrap();
        assert_eq!(c.skip, vec!["all".to_owned()]);
        let e = |v| parse_check(v, 1).unwrap_err().to_string();
        assert_eq!(
            e("foo"),
            r#"failed to parse check options: invalid check option "foo""#
        );
        assert_eq!(
            e("skp=x"),
            r#"failed to parse check options: invalid check option "skp""#
        );
        assert_eq!(
            e("error=yes"),
            "failed to parse check options: failed to parse check option \"error=yes\": \
             strconv.ParseBool: parsing \"yes\": invalid syntax"
        );
    }
}
