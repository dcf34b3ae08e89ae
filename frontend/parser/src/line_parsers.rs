//! Argument splitting for an instruction's `rest`, as BuildKit's `line_parsers.go` does it:
//! JSON arrays, whitespace-delimited lists, quote-aware words and `key=value` pairs.
//!
//! Quotes and escapes are kept in the words: removing them (and expanding variables) is
//! the shell lexer's job, later.

use crate::error::{ParseError, ParseErrorKind};

/// BuildKit's `[\t\v\f\r ]+`: the separators of keywords and whitespace-delimited lists.
/// Narrower than Unicode whitespace (no `\n`, no NBSP).
pub(crate) fn is_token_space(c: char) -> bool {
    matches!(c, '\t' | '\u{b}' | '\u{c}' | '\r' | ' ')
}

/// What a possible JSON array turned out to be.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum JsonForm {
    /// A JSON array of strings: the exec form.
    Strings(Vec<String>),
    /// A JSON array with a non-string element: BuildKit rejects the instruction.
    NotStrings,
    /// Anything else: the shell form.
    NotJson,
}

/// BuildKit's `parseJSON`: the whole text (after leading whitespace) must be one JSON array.
pub(crate) fn classify_json(rest: &str) -> JsonForm {
    let rest = rest.trim_start();
    if !rest.starts_with('[') {
        return JsonForm::NotJson;
    }
    let Ok(values) = serde_json::from_str::<Vec<serde_json::Value>>(rest) else {
        return JsonForm::NotJson;
    };
    let mut out = Vec::with_capacity(values.len());
    for v in values {
        match v {
            serde_json::Value::String(s) => out.push(s),
            _ => return JsonForm::NotStrings,
        }
    }
    JsonForm::Strings(out)
}

/// The exec form: `Some(args)` when `rest` is a JSON array of strings, `None` otherwise
/// (shell form). A JSON array with non-string elements is rejected by [`crate::parse`]
/// for the instructions that accept the exec form, so callers only see it via this `None`
/// when they call the helper on other text.
pub fn parse_json_array(rest: &str) -> Option<Vec<String>> {
    match classify_json(rest) {
        JsonForm::Strings(v) => Some(v),
        JsonForm::NotStrings | JsonForm::NotJson => None,
    }
}

/// Go's `regexp.Split(s, n)` with BuildKit's whitespace pattern `[\t\v\f\r ]+`, including
/// its empty leading/trailing pieces. `n < 0` means no limit.
pub(crate) fn split_token_space(s: &str, n: isize) -> Vec<&str> {
    if n == 0 {
        return Vec::new();
    }
    if s.is_empty() {
        return vec![""];
    }
    let mut out = Vec::new();
    let mut beg = 0;
    let mut end = 0;
    let mut iter = s.char_indices().peekable();
    while let Some((i, c)) = iter.next() {
        if !is_token_space(c) {
            continue;
        }
        // A whitespace run [i, j).
        let mut j = i + c.len_utf8();
        while let Some(&(k, d)) = iter.peek() {
            if !is_token_space(d) {
                break;
            }
            j = k + d.len_utf8();
            iter.next();
        }
        if n > 0 && out.len() as isize == n - 1 {
            break;
        }
        end = i;
        out.push(&s[beg..end]);
        beg = j;
    }
    if end != s.len() {
        out.push(&s[beg..]);
    }
    out
}

/// BuildKit's `parseStringsWhitespaceDelimited` (FROM, EXPOSE, and the shell form of
/// ADD/COPY/VOLUME): split on `[\t\v\f\r ]+`, no quote handling.
pub fn split_whitespace_words(rest: &str) -> Vec<String> {
    if rest.is_empty() {
        return Vec::new();
    }
    split_token_space(rest, -1)
        .into_iter()
        .map(str::to_owned)
        .collect()
}

/// BuildKit's `parseWords`: split on whitespace outside quotes; quotes and escapes stay in
/// the words (`foo "a b"` → `foo`, `"a b"`). Inside single quotes the escape character is
/// literal. A lone escape character at the very end is dropped.
pub fn split_words(rest: &str, escape: char) -> Vec<String> {
    #[derive(PartialEq)]
    enum Phase {
        Spaces,
        Word,
        Quote,
    }
    let mut words = Vec::new();
    let mut word = String::new();
    let mut phase = Phase::Spaces;
    let mut quote = '\0';
    let mut blank_ok = false;
    let mut chars = rest.chars().peekable();
    loop {
        let Some(mut ch) = chars.next() else {
            if phase != Phase::Spaces && (blank_ok || !word.is_empty()) {
                words.push(word);
            }
            break;
        };
        if phase == Phase::Spaces {
            if ch.is_whitespace() {
                continue;
            }
            phase = Phase::Word;
        }
        if phase == Phase::Word {
            if ch.is_whitespace() {
                phase = Phase::Spaces;
                if blank_ok || !word.is_empty() {
                    words.push(std::mem::take(&mut word));
                }
                blank_ok = false;
                continue;
            }
            if ch == '\'' || ch == '"' {
                quote = ch;
                blank_ok = true;
                phase = Phase::Quote;
            }
            if ch == escape {
                // An escape at the very end is dropped; otherwise it and the next
                // character (even a quote) go into the word as they are.
                let Some(next) = chars.next() else { continue };
                word.push(ch);
                ch = next;
            }
            word.push(ch);
            continue;
        }
        // Phase::Quote
        if ch == quote {
            phase = Phase::Word;
        }
        if ch == escape && quote != '\'' {
            let Some(next) = chars.next() else {
                phase = Phase::Word;
                continue;
            };
            word.push(ch);
            ch = next;
        }
        word.push(ch);
    }
    words
}

/// `ENV`/`LABEL` arguments.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct NameVals {
    /// Names and values as written (quotes and escapes kept, nothing expanded).
    pub pairs: Vec<(String, String)>,
    /// The legacy `KEY name value…` form (one pair; the value is the raw rest of the line).
    pub legacy: bool,
}

/// BuildKit's `parseNameVal` plus the checks `instructions/parse.go` adds (`ENV requires at
/// least one argument`, `ENV names can not be blank`). `key` (`ENV`, `LABEL`) names the
/// instruction in messages. Errors carry no span: attach the node's with
/// [`ParseError::with_span`].
pub fn parse_name_val(rest: &str, key: &str, escape: char) -> Result<NameVals, ParseError> {
    let vals = name_val(rest, key, escape).map_err(|k| ParseError::new(k, Default::default()))?;
    if vals.pairs.is_empty() {
        return Err(ParseError::new(
            ParseErrorKind::RequiresArgument {
                key: key.to_owned(),
            },
            Default::default(),
        ));
    }
    if vals.pairs.iter().any(|(name, _)| name.is_empty()) {
        return Err(ParseError::new(
            ParseErrorKind::BlankName {
                key: key.to_owned(),
            },
            Default::default(),
        ));
    }
    Ok(vals)
}

/// The parse-time part of [`parse_name_val`]: only the errors BuildKit's parser raises.
pub(crate) fn name_val(rest: &str, key: &str, escape: char) -> Result<NameVals, ParseErrorKind> {
    let words = split_words(rest, escape);
    let Some(first) = words.first() else {
        return Ok(NameVals::default());
    };
    if !first.contains('=') {
        let parts = split_token_space(rest, 2);
        if parts.len() < 2 {
            return Err(ParseErrorKind::MustHaveTwoArguments {
                key: key.to_owned(),
            });
        }
        return Ok(NameVals {
            pairs: vec![(parts[0].to_owned(), parts[1].to_owned())],
            legacy: true,
        });
    }
    let mut pairs = Vec::with_capacity(words.len());
    for word in words {
        let Some((name, value)) = word.split_once('=') else {
            return Err(ParseErrorKind::MissingEquals { word });
        };
        pairs.push((name.to_owned(), value.to_owned()));
    }
    Ok(NameVals {
        pairs,
        legacy: false,
    })
}

/// `ARG` arguments: `name` or `name=value` words (BuildKit's `parseNameOrNameVal` plus
/// `ARG requires at least one argument`). Values keep their quotes.
pub fn parse_name_or_name_val(
    rest: &str,
    key: &str,
    escape: char,
) -> Result<Vec<(String, Option<String>)>, ParseError> {
    let words = split_words(rest, escape);
    if words.is_empty() {
        return Err(ParseError::new(
            ParseErrorKind::RequiresArgument {
                key: key.to_owned(),
            },
            Default::default(),
        ));
    }
    Ok(words
        .into_iter()
        .map(|w| match w.split_once('=') {
            Some((name, value)) => (name.to_owned(), Some(value.to_owned())),
            None => (w, None),
        })
        .collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn s(v: &[&str]) -> Vec<String> {
        v.iter().map(|x| x.to_string()).collect()
    }

    #[test]
    fn json_arrays_of_strings() {
        let valid: &[(&str, &[&str])] = &[
            ("[]", &[]),
            (r#"[""]"#, &[""]),
            (r#"["a"]"#, &["a"]),
            (r#"["a","b"]"#, &["a", "b"]),
            (r#"[ "a", "b" ]"#, &["a", "b"]),
            ("[\t\"a\",\t\"b\"\t]", &["a", "b"]),
            ("\t[\t\"a\",\t\"b\"\t]\t", &["a", "b"]),
            (
                r#"["abc 123", "♥", "☃", "\" \\ \/ \b \f \n \r \t \u0000"]"#,
                &["abc 123", "♥", "☃", "\" \\ / \u{8} \u{c} \n \r \t \u{0}"],
            ),
        ];
        for (src, want) in valid {
            assert_eq!(parse_json_array(src), Some(s(want)), "{src}");
        }
        for src in [
            r#"["a",42,"b"]"#,
            r#"["a",123.456,"b"]"#,
            r#"["a",{},"b"]"#,
            r#"["a",{"c": "d"},"b"]"#,
            r#"["a",["c"],"b"]"#,
            r#"["a",true,"b"]"#,
            r#"["a",false,"b"]"#,
            r#"["a",null,"b"]"#,
        ] {
            assert_eq!(classify_json(src), JsonForm::NotStrings, "{src}");
            assert_eq!(parse_json_array(src), None);
        }
        for src in [
            "",
            "echo hi",
            r#"["a" "b"]"#,
            r#"["a",]"#,
            r#"["a"] trailing"#,
            "['single']",
            r#"{"a": 1}"#,
            r#"["unterminated"#,
        ] {
            assert_eq!(classify_json(src), JsonForm::NotJson, "{src}");
        }
    }

    #[test]
    fn whitespace_words_follow_go_regexp_split() {
        assert_eq!(split_whitespace_words(""), Vec::<String>::new());
        assert_eq!(split_whitespace_words("a"), s(&["a"]));
        assert_eq!(split_whitespace_words("a  b\tc"), s(&["a", "b", "c"]));
        assert_eq!(split_whitespace_words(" a "), s(&["", "a", ""]));
        // Quotes mean nothing here; NBSP is not a separator.
        assert_eq!(
            split_whitespace_words(r#""a b" c"#),
            s(&["\"a", "b\"", "c"])
        );
        assert_eq!(split_whitespace_words("a\u{a0}b"), s(&["a\u{a0}b"]));
        assert_eq!(split_token_space("a b c", 2), vec!["a", "b c"]);
        assert_eq!(split_token_space("a", 2), vec!["a"]);
        assert_eq!(split_token_space("a  ", 2), vec!["a", ""]);
        assert_eq!(split_token_space(" ", -1), vec!["", ""]);
    }

    #[test]
    fn words_keep_quotes_and_escapes() {
        let cases: &[(&str, &[&str])] = &[
            ("foo", &["foo"]),
            ("foo bar", &["foo", "bar"]),
            ("foo\\ bar", &["foo\\ bar"]),
            ("foo=bar", &["foo=bar"]),
            ("foo bar 'abc xyz'", &["foo", "bar", "'abc xyz'"]),
            (r#"foo bar "abc xyz""#, &["foo", "bar", r#""abc xyz""#]),
            ("àöû", &["àöû"]),
            (r#"föo bàr "âbc xÿz""#, &["föo", "bàr", r#""âbc xÿz""#]),
            (r#"a="" b=''"#, &[r#"a="""#, "b=''"]),
            ("\"\"", &["\"\""]),
            (r#"k="a \" b" x"#, &[r#"k="a \" b""#, "x"]),
            (r"k='a \' b", &[r"k='a \'", "b"]),
            ("trailing\\", &["trailing"]),
            ("\"open quote", &["\"open quote"]),
            ("  lead   trail  ", &["lead", "trail"]),
        ];
        for (src, want) in cases {
            assert_eq!(split_words(src, '\\'), s(want), "{src:?}");
        }
        assert_eq!(
            split_words(r"a`  b c\ d", '`'),
            s(&["a` ", "b", "c\\", "d"])
        );
    }

    #[test]
    fn name_val_forms() {
        let v = parse_name_val("foo bar", "LABEL", '\\').unwrap();
        assert_eq!(
            v,
            NameVals {
                pairs: vec![("foo".into(), "bar".into())],
                legacy: true
            }
        );
        let v = parse_name_val("foo  bar baz \"q\"", "ENV", '\\').unwrap();
        assert_eq!(v.pairs, vec![("foo".into(), "bar baz \"q\"".into())]);
        let v = parse_name_val("foo=bar thing=star", "LABEL", '\\').unwrap();
        assert_eq!(
            v,
            NameVals {
                pairs: vec![
                    ("foo".into(), "bar".into()),
                    ("thing".into(), "star".into())
                ],
                legacy: false
            }
        );
        let v = parse_name_val(r#"a="x y" b=c=d e="#, "ENV", '\\').unwrap();
        assert_eq!(
            v.pairs,
            vec![
                ("a".into(), "\"x y\"".into()),
                ("b".into(), "c=d".into()),
                ("e".into(), "".into())
            ]
        );
    }

    #[test]
    fn name_val_errors() {
        let msg = |r: &str, k: &str| parse_name_val(r, k, '\\').unwrap_err().to_string();
        assert_eq!(msg("foo", "ENV"), "ENV must have two arguments");
        assert_eq!(msg("", "ENV"), "ENV requires at least one argument");
        assert_eq!(msg("   ", "LABEL"), "LABEL requires at least one argument");
        assert_eq!(
            msg("a=b c", "ENV"),
            r#"Syntax error - can't find = in "c". Must be of the form: name=value"#
        );
        assert_eq!(msg("=x", "ENV"), "ENV names can not be blank");
        assert_eq!(msg("a=1 =x", "LABEL"), "LABEL names can not be blank");
        // Parse-time subset: empty is fine there (the instruction reports it).
        assert_eq!(name_val("", "ENV", '\\'), Ok(NameVals::default()));
        assert_eq!(
            name_val("=x", "ENV", '\\').unwrap().pairs,
            vec![("".into(), "x".into())]
        );
    }

    #[test]
    fn name_or_name_val() {
        let v = parse_name_or_name_val(r#"a b= c="" d=v=w 'e f'=g"#, "ARG", '\\').unwrap();
        assert_eq!(
            v,
            vec![
                ("a".into(), None),
                ("b".into(), Some("".into())),
                ("c".into(), Some("\"\"".into())),
                ("d".into(), Some("v=w".into())),
                ("'e f'".into(), Some("g".into())),
            ]
        );
        assert_eq!(
            parse_name_or_name_val(" ", "ARG", '\\')
                .unwrap_err()
                .to_string(),
            "ARG requires at least one argument"
        );
    }
}
