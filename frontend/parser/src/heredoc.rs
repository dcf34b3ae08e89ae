//! Heredoc markers (`<<EOF`, `<<-EOF`, `<<"EOF"`, `2<<EOF`) in a RUN/COPY/ADD line.
//!
//! BuildKit splits the whole logical line into shell words (its shell lexer, quotes and
//! escapes kept, unset variables left alone), and every word matching
//! `^(\d*)<<(-?)([^<]*)$` whose remainder is exactly one word is a heredoc. A quoted
//! remainder (`"EOF"`, `E'O'F`) means the body is not expanded. The lexer here mirrors
//! BuildKit's for those purposes: quotes, the `\` escape (always `\`, whatever the
//! `# escape=` directive says) and `${…}` syntax errors; the text inside `${…}` is kept
//! literally.

use crate::error::ParseErrorKind;

/// A heredoc marker found in a line (its body is read by the parser).
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Marker {
    pub name: String,
    pub expand: bool,
    pub chomp: bool,
}

/// The markers of a line, in order. A line the shell lexer rejects has none.
pub(crate) fn markers_in_line(line: &str) -> Result<Vec<Marker>, ParseErrorKind> {
    let Ok(words) = shell_words(line, true, true) else {
        return Ok(Vec::new());
    };
    let mut out = Vec::new();
    for word in &words {
        if let Some(m) = parse_marker(word)? {
            out.push(m);
        }
    }
    Ok(out)
}

/// BuildKit's `ParseHeredoc` on one word.
pub(crate) fn parse_marker(word: &str) -> Result<Option<Marker>, ParseErrorKind> {
    let after_fd = word.trim_start_matches(|c: char| c.is_ascii_digit());
    let Some(after) = after_fd.strip_prefix("<<") else {
        return Ok(None);
    };
    let (chomp, rest) = match after.strip_prefix('-') {
        Some(r) => (true, r),
        None => (false, after),
    };
    if rest.contains('<') || rest.is_empty() {
        return Ok(None);
    }
    let invalid = |reason: String| ParseErrorKind::InvalidHeredoc {
        word: word.to_owned(),
        reason,
    };
    let words = shell_words(rest, false, false).map_err(invalid)?;
    if words.len() != 1 {
        return Ok(None);
    }
    let raw = shell_words(rest, true, false).map_err(invalid)?;
    if raw.len() != 1 {
        return Err(invalid(
            "internal lexing of heredoc produced inconsistent results".into(),
        ));
    }
    let quotes = |s: &str| s.chars().filter(|&c| c == '\'' || c == '"').count();
    let expand = quotes(&words[0]) == quotes(&raw[0]);
    Ok(Some(Marker {
        name: words.into_iter().next().unwrap_or_default(),
        expand,
        chomp,
    }))
}

/// Remove leading tabs from every line (`<<-`).
pub(crate) fn chomp(content: &str) -> String {
    content
        .split_inclusive('\n')
        .map(|l| l.trim_start_matches('\t'))
        .collect()
}

/// Words being built, as BuildKit's `wordsStruct`: whitespace from the source splits words,
/// quoted or escaped text never does, empty words are dropped.
#[derive(Default)]
struct Words {
    words: Vec<String>,
    word: String,
    in_word: bool,
}

impl Words {
    fn add_char(&mut self, c: char) {
        if c.is_whitespace() {
            if self.in_word && !self.word.is_empty() {
                self.words.push(std::mem::take(&mut self.word));
                self.in_word = false;
            }
        } else {
            self.add_raw_char(c);
        }
    }

    fn add_raw_char(&mut self, c: char) {
        self.word.push(c);
        self.in_word = true;
    }

    fn add_raw_str(&mut self, s: &str) {
        self.word.push_str(s);
        self.in_word = true;
    }

    fn add_str(&mut self, s: &str) {
        s.chars().for_each(|c| self.add_char(c));
    }

    fn finish(mut self) -> Vec<String> {
        if !self.word.is_empty() {
            self.words.push(self.word);
        }
        self.words
    }
}

type Chars<'a> = std::iter::Peekable<std::str::Chars<'a>>;

/// Split `s` into shell words with no variables set. `raw_quotes` keeps the quote
/// characters, `raw_escapes` keeps the `\` of escapes.
fn shell_words(s: &str, raw_quotes: bool, raw_escapes: bool) -> Result<Vec<String>, String> {
    let mut w = Words::default();
    let mut it = s.chars().peekable();
    while let Some(&c) = it.peek() {
        match c {
            '\'' => {
                it.next();
                let mut buf = String::new();
                if raw_quotes {
                    buf.push('\'');
                }
                loop {
                    match it.next() {
                        None => {
                            return Err("unexpected end of statement while looking for matching \
                                        single-quote"
                                .into())
                        }
                        Some('\'') => break,
                        Some(ch) => buf.push(ch),
                    }
                }
                if raw_quotes {
                    buf.push('\'');
                }
                w.add_raw_str(&buf);
            }
            '"' => {
                it.next();
                let buf = double_quoted(&mut it, raw_quotes, raw_escapes)?;
                w.add_raw_str(&buf);
            }
            '$' => {
                let text = dollar(&mut it)?;
                w.add_str(&text);
            }
            _ => {
                it.next();
                if c == '\\' {
                    if raw_escapes {
                        w.add_raw_char('\\');
                    }
                    match it.next() {
                        Some(next) => w.add_raw_char(next),
                        None => break,
                    }
                } else {
                    w.add_char(c);
                }
            }
        }
    }
    Ok(w.finish())
}

fn double_quoted(
    it: &mut Chars<'_>,
    raw_quotes: bool,
    raw_escapes: bool,
) -> Result<String, String> {
    let mut buf = String::new();
    if raw_quotes {
        buf.push('"');
    }
    loop {
        match it.peek().copied() {
            None => {
                return Err(
                    "unexpected end of statement while looking for matching double-quote".into(),
                )
            }
            Some('"') => {
                it.next();
                break;
            }
            Some('$') => {
                let text = dollar(it)?;
                buf.push_str(&text);
            }
            Some(_) => {
                let mut ch = it.next().unwrap_or_default();
                if ch == '\\' {
                    match it.peek().copied() {
                        None => continue,
                        Some('"' | '$' | '\\') => {
                            if raw_escapes {
                                buf.push('\\');
                            }
                            ch = it.next().unwrap_or_default();
                        }
                        Some(_) => {}
                    }
                }
                buf.push(ch);
            }
        }
    }
    if raw_quotes {
        buf.push('"');
    }
    Ok(buf)
}

/// `$…` with nothing set: the text stays as written. `${` must be closed and must not be
/// `${}`, `${{`, `${:`.
fn dollar(it: &mut Chars<'_>) -> Result<String, String> {
    it.next();
    if it.peek() != Some(&'{') {
        return Ok("$".into());
    }
    it.next();
    match it.peek() {
        None => return Err("syntax error: missing '}'".into()),
        Some('{' | '}' | ':') => return Err("syntax error: bad substitution".into()),
        Some(_) => {}
    }
    let mut text = String::from("${");
    let mut depth = 1;
    let mut prev = '{';
    for ch in it.by_ref() {
        text.push(ch);
        match ch {
            '{' if prev == '$' => depth += 1,
            '}' => {
                depth -= 1;
                if depth == 0 {
                    return Ok(text);
                }
            }
            _ => {}
        }
        prev = ch;
    }
    Err("syntax error: missing '}'".into())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn names(line: &str) -> Vec<String> {
        markers_in_line(line)
            .unwrap()
            .into_iter()
            .map(|m| m.name)
            .collect()
    }

    #[test]
    fn markers_from_lines() {
        assert_eq!(names("RUN <<EOF"), ["EOF"]);
        assert_eq!(names("RUN <<-EOF"), ["EOF"]);
        assert_eq!(names("RUN <<'EOF'"), ["EOF"]);
        assert_eq!(names("RUN 4<<EOF"), ["EOF"]);
        assert_eq!(names("RUN <<EOF <<EOF2"), ["EOF", "EOF2"]);
        assert_eq!(names("RUN '<<EOF'"), Vec::<String>::new());
        assert_eq!(names(r#"RUN "<<EOF""#), Vec::<String>::new());
        assert_eq!(names("RUN python3 <<EOF > /out"), ["EOF"]);
        assert_eq!(
            names("COPY --chmod=755 <<a.sh <<b.sh /dest/"),
            ["a.sh", "b.sh"]
        );
        assert_eq!(names("RUN cat <<EOF>out"), ["EOF>out"]);
        assert_eq!(names("RUN x<<EOF"), Vec::<String>::new());
        assert_eq!(names("RUN <<<EOF"), Vec::<String>::new());
        assert_eq!(
            names("RUN \\<<EOF"),
            Vec::<String>::new(),
            "escaped: word is \\<<EOF"
        );
        assert_eq!(names("RUN echo 'unterminated <<EOF"), Vec::<String>::new());
        assert_eq!(names("RUN echo ${X <<EOF"), Vec::<String>::new());
        assert_eq!(names("RUN echo ${X:-a b} <<EOF"), ["EOF"]);
        assert_eq!(names("RUN <<\"A B\""), ["A B"]);
        assert_eq!(names("RUN <<''"), Vec::<String>::new());
    }

    #[test]
    fn marker_words() {
        let m = |s| parse_marker(s).unwrap();
        for src in [
            "<<EOF",
            "<<'EOF'",
            "<<\"EOF\"",
            "<<-EOF",
            "<<-'EOF'",
            "<<-\"EOF\"",
        ] {
            assert_eq!(m(src).unwrap().name, "EOF", "{src}");
        }
        assert_eq!(
            m("<<-'EOF'"),
            Some(Marker {
                name: "EOF".into(),
                expand: false,
                chomp: true
            })
        );
        assert_eq!(
            m("<<E\"O\"F"),
            Some(Marker {
                name: "EOF".into(),
                expand: false,
                chomp: false
            })
        );
        assert_eq!(
            m("<<EOF"),
            Some(Marker {
                name: "EOF".into(),
                expand: true,
                chomp: false
            })
        );
        for src in ["", "EOF", "<<", "<<-", "<EOF", "<<<EOF"] {
            assert_eq!(m(src), None, "{src}");
        }
        for src in ["<<'EOF", "<<\"EOF", "<<EOF'", "<<EOF\""] {
            assert!(parse_marker(src).is_err(), "{src}");
        }
    }

    #[test]
    fn chomp_strips_leading_tabs_per_line() {
        assert_eq!(
            chomp("\thello\n\t\tworld\n  \tkeep\n"),
            "hello\nworld\n  \tkeep\n"
        );
        assert_eq!(chomp("\ta\r\n\tb\r\n"), "a\r\nb\r\n");
    }
}
