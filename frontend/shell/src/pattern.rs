//! The patterns of `${V#p}`, `${V%p}` and `${V/p/r}`.
//!
//! BuildKit turns such a pattern into a Go regular expression and lets Go's
//! regexp package match it. What a pattern means follows from that translation:
//!
//! - `*` is any run of characters except a newline (Go's `.` does not match `\n`),
//!   `?` is one character except a newline;
//! - `\*`, `\?` and `\\` are the character itself; `\}` and `\/` too (the
//!   backslash only kept the character from closing the expansion);
//! - any other backslash escape is an error (`invalid escape '\x'`);
//! - every other character, brackets included, is itself: `[a-z]` is literal
//!   text, not a class.
//!
//! Go's regexp reports the leftmost match and, among the matches starting there,
//! the one a backtracking matcher would find first (greedy stars take as much as
//! they can, lazy ones as little). [`Glob::preferred_ends`] computes exactly that
//! with a table instead of backtracking, in time linear in pattern × text, so no
//! input can make it slow exponentially.

use std::fmt;

/// Why a pattern was rejected.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum PatternError {
    /// A backslash followed by a character other than `* ? \ } /`, or by nothing.
    #[error("invalid escape '\\{}'", display_escaped(*.0))]
    InvalidEscape(Option<char>),
}

// Go prints the end of input (rune -1) with %c as U+FFFD.
fn display_escaped(c: Option<char>) -> char {
    c.unwrap_or(char::REPLACEMENT_CHARACTER)
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Token {
    /// This very character.
    Literal(char),
    /// One character, not a newline.
    One,
    /// Any run of characters without a newline.
    Star,
}

/// A parsed pattern.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct Glob {
    tokens: Vec<Token>,
}

impl Glob {
    pub(crate) fn parse(pattern: &str) -> Result<Self, PatternError> {
        let mut chars = pattern.chars().peekable();
        // Go's text/scanner, which BuildKit reads the pattern with, drops a
        // byte-order mark at the very start of its input.
        if chars.peek() == Some(&'\u{feff}') {
            chars.next();
        }
        let mut tokens = Vec::new();
        while let Some(c) = chars.next() {
            let token = match c {
                '*' => Token::Star,
                '?' => Token::One,
                '\\' => {
                    if matches!(chars.peek(), Some('}' | '/')) {
                        // The next round takes the character as a literal.
                        continue;
                    }
                    match chars.next() {
                        Some(c @ ('*' | '?' | '\\')) => Token::Literal(c),
                        other => return Err(PatternError::InvalidEscape(other)),
                    }
                }
                c => Token::Literal(c),
            };
            tokens.push(token);
        }
        Ok(Glob { tokens })
    }

    /// For every start position `p` in `0..=text.len()`, the end of the match
    /// Go's regexp would prefer among those starting at `p`, if any.
    fn preferred_ends(&self, text: &[char], greedy: bool) -> Vec<Option<usize>> {
        let n = text.len();
        // `after[p]`: preferred end when the remaining tokens start at p.
        let mut after: Vec<Option<usize>> = (0..=n).map(Some).collect();
        let mut here: Vec<Option<usize>> = vec![None; n + 1];
        for token in self.tokens.iter().rev() {
            here.fill(None);
            match *token {
                Token::Literal(want) => {
                    for p in 0..n {
                        if text[p] == want {
                            here[p] = after[p + 1];
                        }
                    }
                }
                Token::One => {
                    for p in 0..n {
                        if text[p] != '\n' {
                            here[p] = after[p + 1];
                        }
                    }
                }
                Token::Star => {
                    here[n] = after[n];
                    for p in (0..n).rev() {
                        let longer = if text[p] != '\n' { here[p + 1] } else { None };
                        here[p] = if greedy {
                            longer.or(after[p])
                        } else {
                            after[p].or(longer)
                        };
                    }
                }
            }
            std::mem::swap(&mut after, &mut here);
        }
        after
    }

    /// The end of the preferred match anchored at the start of `text`.
    fn prefix_end(&self, text: &[char], greedy: bool) -> Option<usize> {
        self.preferred_ends(text, greedy)[0]
    }
}

/// `${V#p}` (`greedy` false) and `${V##p}` (`greedy` true): `value` without the
/// shortest or longest prefix matching `pattern`.
pub(crate) fn trim_prefix(
    pattern: &str,
    value: &str,
    greedy: bool,
) -> Result<String, PatternError> {
    let glob = Glob::parse(pattern)?;
    let text: Vec<char> = value.chars().collect();
    Ok(match glob.prefix_end(&text, greedy) {
        Some(end) => text[end..].iter().collect(),
        None => value.to_owned(),
    })
}

/// `${V%p}` and `${V%%p}`. Like BuildKit, reverses pattern and value and trims
/// a prefix; an error therefore names the reversed pattern, as BuildKit's does.
pub(crate) fn trim_suffix(
    pattern: &str,
    value: &str,
    greedy: bool,
) -> Result<String, (String, PatternError)> {
    let reversed = reverse_pattern(pattern);
    let rev_value: String = value.chars().rev().collect();
    match trim_prefix(&reversed, &rev_value, greedy) {
        Ok(trimmed) => Ok(trimmed.chars().rev().collect()),
        Err(e) => Err((reversed, e)),
    }
}

/// Reverses a pattern but keeps each backslash before the character it escapes:
/// `a\*c` becomes `c\*a`. A backslash that ends the pattern stays a lone one.
pub(crate) fn reverse_pattern(pattern: &str) -> String {
    let chars: Vec<char> = pattern.chars().collect();
    let mut units: Vec<&[char]> = Vec::with_capacity(chars.len());
    let mut i = 0;
    while i < chars.len() {
        let width = if chars[i] == '\\' && i + 1 < chars.len() {
            2
        } else {
            1
        };
        units.push(&chars[i..i + width]);
        i += width;
    }
    units.iter().rev().flat_map(|u| u.iter()).collect()
}

/// `${V/p/r}` (`all` false) and `${V//p/r}` (`all` true). Stars are greedy.
///
/// The first form splices `replacement` in literally. The second goes through
/// Go's `Regexp.ReplaceAllString`, so a `$` in the replacement is a template:
/// `$0` / `${0}` is the matched text, `$$` a dollar, any other `$name` empty.
pub(crate) fn replace(
    pattern: &str,
    value: &str,
    replacement: &str,
    all: bool,
) -> Result<String, PatternError> {
    let glob = Glob::parse(pattern)?;
    let text: Vec<char> = value.chars().collect();
    let ends = glob.preferred_ends(&text, true);
    let find_from = |from: usize| (from..=text.len()).find_map(|s| ends[s].map(|e| (s, e)));
    let slice = |a: usize, b: usize| text[a..b].iter().collect::<String>();

    if !all {
        return Ok(match find_from(0) {
            Some((start, end)) => {
                let mut out = slice(0, start);
                out.push_str(replacement);
                out.push_str(&slice(end, text.len()));
                out
            }
            None => value.to_owned(),
        });
    }

    // Go's replaceAll: non-overlapping matches left to right; an empty match
    // right after a previous match is not replaced; always advance by at least
    // one character.
    let mut out = String::with_capacity(value.len());
    let mut last_end = 0;
    let mut search = 0;
    while search <= text.len() {
        let Some((start, end)) = find_from(search) else {
            break;
        };
        out.push_str(&slice(last_end, start));
        if end > last_end || start == 0 {
            expand_template(&mut out, replacement, &slice(start, end));
        }
        last_end = end;
        search = if end > search { end } else { search + 1 };
    }
    out.push_str(&slice(last_end, text.len()));
    Ok(out)
}

/// Go's `Regexp.Expand` for a regexp without groups: `$0` and `${0}` are the
/// whole match, `$$` is `$`, other well-formed `$name`/`${name}` are empty, a
/// malformed `$` is kept.
fn expand_template(out: &mut String, template: &str, matched: &str) {
    let mut rest = template;
    while let Some(i) = rest.find('$') {
        out.push_str(&rest[..i]);
        rest = &rest[i + 1..];
        if let Some(after) = rest.strip_prefix('$') {
            out.push('$');
            rest = after;
            continue;
        }
        match template_name(rest) {
            Some((name, after)) => {
                if name == "0" {
                    out.push_str(matched);
                }
                rest = after;
            }
            None => out.push('$'),
        }
    }
    out.push_str(rest);
}

/// The name after a template `$` and the text after it, like Go's `extract`.
fn template_name(s: &str) -> Option<(&str, &str)> {
    let (braced, body) = match s.strip_prefix('{') {
        Some(body) => (true, body),
        None => (false, s),
    };
    let len: usize = body
        .chars()
        .take_while(|&c| crate::unicode::is_letter(c) || crate::unicode::is_digit(c) || c == '_')
        .map(char::len_utf8)
        .sum();
    if len == 0 {
        return None;
    }
    let (name, after) = body.split_at(len);
    if braced {
        after.strip_prefix('}').map(|after| (name, after))
    } else {
        Some((name, after))
    }
}

impl fmt::Display for Glob {
    /// The pattern written back, for debugging.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for token in &self.tokens {
            match token {
                Token::Literal(c @ ('*' | '?' | '\\')) => write!(f, "\\{c}")?,
                Token::Literal(c) => write!(f, "{c}")?,
                Token::One => f.write_str("?")?,
                Token::Star => f.write_str("*")?,
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tokens(p: &str) -> String {
        Glob::parse(p).expect("valid pattern").to_string()
    }

    #[test]
    fn parse_mirrors_buildkit_translation() {
        // BuildKit's TestConvertShellPatternToRegex, in our terms.
        assert_eq!(tokens("*"), "*");
        assert_eq!(tokens("?"), "?");
        assert_eq!(tokens("\\*"), "\\*");
        assert_eq!(tokens("(()[]{\\}^$.\\*\\?|\\\\"), "(()[]{}^$.\\*\\?|\\\\");
        assert_eq!(tokens("a\\/b"), "a/b");
        assert_eq!(tokens("\u{feff}x\u{feff}"), "x\u{feff}");
    }

    #[test]
    fn invalid_escapes() {
        assert_eq!(Glob::parse("\\"), Err(PatternError::InvalidEscape(None)));
        assert_eq!(
            Glob::parse("\\x"),
            Err(PatternError::InvalidEscape(Some('x')))
        );
        assert_eq!(
            Glob::parse("\\\\\\"),
            Err(PatternError::InvalidEscape(None))
        );
        assert_eq!(
            PatternError::InvalidEscape(Some('x')).to_string(),
            "invalid escape '\\x'"
        );
        assert_eq!(
            PatternError::InvalidEscape(None).to_string(),
            "invalid escape '\\\u{fffd}'"
        );
    }

    #[test]
    fn reverse_keeps_escapes_in_front() {
        // BuildKit's TestReversePattern.
        assert_eq!(reverse_pattern("a\\*c"), "c\\*a");
        assert_eq!(reverse_pattern("\\\\\\ab"), "b\\a\\\\");
        assert_eq!(reverse_pattern("ab\\"), "\\ba");
        assert_eq!(reverse_pattern("👽\\🚀🖖"), "🖖\\🚀👽");
        assert_eq!(reverse_pattern("\\\\b"), "b\\\\");
    }

    #[test]
    fn prefix_shortest_and_longest() {
        assert_eq!(trim_prefix("*x", "axbxc", false).unwrap(), "bxc");
        assert_eq!(trim_prefix("*x", "axbxc", true).unwrap(), "c");
        assert_eq!(trim_prefix("*x*y", "xxyy", false).unwrap(), "y");
        assert_eq!(trim_prefix("*", "xxyy", false).unwrap(), "xxyy");
        assert_eq!(trim_prefix("*", "xxyy", true).unwrap(), "");
        assert_eq!(trim_prefix("b", "abc", true).unwrap(), "abc");
        assert_eq!(trim_prefix("[a]", "[a]b", true).unwrap(), "b");
    }

    #[test]
    fn wildcards_stop_at_newlines() {
        assert_eq!(trim_prefix("*", "ab\ncd", true).unwrap(), "\ncd");
        assert_eq!(trim_prefix("*\n", "a\nb\nc", true).unwrap(), "b\nc");
        assert_eq!(trim_prefix("?b", "\nb", true).unwrap(), "\nb");
        assert_eq!(trim_suffix("\n*", "a\nb\nc", true).unwrap(), "a\nb");
    }

    #[test]
    fn suffix_uses_reversed_pattern() {
        assert_eq!(trim_suffix("x*", "axbxc", false).unwrap(), "axb");
        assert_eq!(trim_suffix("x*", "axbxc", true).unwrap(), "a");
        assert_eq!(trim_suffix("\\**\\*", "a***yy*", true).unwrap(), "a");
        let (reversed, err) = trim_suffix("ab\\x", "v", false).unwrap_err();
        assert_eq!(reversed, "\\xba");
        assert_eq!(err, PatternError::InvalidEscape(Some('x')));
    }

    #[test]
    fn replace_first_and_all() {
        assert_eq!(
            replace("/?/", "/a/foo/b/c.txt", "/", false).unwrap(),
            "/foo/b/c.txt"
        );
        assert_eq!(
            replace("/?/", "/a/foo/b/c.txt", "/", true).unwrap(),
            "/foo/c.txt"
        );
        assert_eq!(replace("", "xxyy", "ww", false).unwrap(), "wwxxyy");
        assert_eq!(replace("", "ab", "-", true).unwrap(), "-a-b-");
        assert_eq!(replace("*", "ab", "r", true).unwrap(), "r");
        assert_eq!(replace("*", "a\nb", "r", true).unwrap(), "r\nr");
        assert_eq!(replace("b*", "abab", "X", true).unwrap(), "aX");
        assert_eq!(replace("z", "abc", "X", true).unwrap(), "abc");
    }

    #[test]
    fn replace_all_expands_go_templates() {
        assert_eq!(replace("b", "abc", "[$0]", true).unwrap(), "a[b]c");
        assert_eq!(replace("b", "abc", "[${0}]", true).unwrap(), "a[b]c");
        assert_eq!(replace("b", "abc", "$$", true).unwrap(), "a$c");
        assert_eq!(replace("b", "abc", "$1$x${y}$00", true).unwrap(), "ac");
        assert_eq!(replace("b", "abc", "$.${", true).unwrap(), "a$.${c");
        assert_eq!(replace("b", "abc", "${0", true).unwrap(), "a${0c");
        // the single replacement is literal
        assert_eq!(replace("b", "abc", "$0", false).unwrap(), "a$0c");
    }
}
