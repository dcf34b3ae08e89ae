//! One pass over one word: quotes, escapes, `$` expansions, and the fields of
//! the result. The structure follows BuildKit's `shellWord`: a loop that reads
//! up to a stop character and hands `$`, `'` and `"` to their own readers, and
//! a `${…}` reader that runs that loop again, up to `}` or `/`, for the word
//! inside.

use std::collections::BTreeSet;

use crate::error::{Fault, Quote};
use crate::unicode::{is_digit, is_letter, is_space};
use crate::{pattern, Env, Lexer, MAX_NESTING};

/// The state of one expansion.
pub(crate) struct Expansion<'a> {
    lexer: &'a Lexer,
    env: &'a dyn Env,
    input: Vec<char>,
    pos: usize,
    /// Whether escape characters are kept right now: the lexer's setting at the
    /// top, always for patterns and replacements, never for other `${…}` words.
    raw_escapes: bool,
    depth: usize,
    pub(crate) matched: BTreeSet<String>,
    pub(crate) unmatched: BTreeSet<String>,
}

/// The fields of a word: split on unquoted, unescaped whitespace that is in
/// the word itself or comes out of a `$` expansion.
#[derive(Default)]
pub(crate) struct Fields {
    done: Vec<String>,
    current: String,
    in_field: bool,
}

impl Fields {
    /// A character that splits when it is whitespace.
    fn push_char(&mut self, c: char) {
        if is_space(c) {
            if self.in_field && !self.current.is_empty() {
                self.done.push(std::mem::take(&mut self.current));
                self.in_field = false;
            }
        } else {
            self.push_raw_char(c);
        }
    }

    /// A character that never splits (escaped).
    fn push_raw_char(&mut self, c: char) {
        self.current.push(c);
        self.in_field = true;
    }

    /// The result of a `$` expansion: splits on whitespace.
    fn push_str(&mut self, s: &str) {
        s.chars().for_each(|c| self.push_char(c));
    }

    /// The content of quotes: never splits, and starts a field even when empty
    /// (an empty field is still dropped at the end, as BuildKit does).
    fn push_raw_str(&mut self, s: &str) {
        self.current.push_str(s);
        self.in_field = true;
    }

    pub(crate) fn finish(mut self) -> Vec<String> {
        if !self.current.is_empty() {
            self.done.push(self.current);
        }
        self.done
    }
}

/// What a `${…}` does with the word after its operator.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Op {
    Default,   // -
    Alternate, // +
    Required,  // ?
    Prefix,    // #
    Suffix,    // %
    Other,
}

impl<'a> Expansion<'a> {
    pub(crate) fn new(lexer: &'a Lexer, env: &'a dyn Env, word: &str) -> Self {
        let mut input: Vec<char> = word.chars().collect();
        // BuildKit reads the word with Go's text/scanner, which drops a
        // byte-order mark at the very start.
        if input.first() == Some(&'\u{feff}') {
            input.remove(0);
        }
        Expansion {
            lexer,
            env,
            input,
            pos: 0,
            raw_escapes: lexer.raw_escapes,
            depth: 0,
            matched: BTreeSet::new(),
            unmatched: BTreeSet::new(),
        }
    }

    /// Expands the whole word: its value and its fields.
    pub(crate) fn run(&mut self) -> Result<(String, Fields), Fault> {
        self.read_until(None, self.lexer.raw_escapes)
    }

    fn peek(&self) -> Option<char> {
        self.input.get(self.pos).copied()
    }

    fn next(&mut self) -> Option<char> {
        let c = self.peek();
        if c.is_some() {
            self.pos += 1;
        }
        c
    }

    fn at_end(&self) -> bool {
        self.pos >= self.input.len()
    }

    fn lookup(&mut self, name: &str) -> Option<String> {
        let value = self.env.lookup(name);
        let seen = if value.is_some() {
            &mut self.matched
        } else {
            &mut self.unmatched
        };
        if !seen.contains(name) {
            seen.insert(name.to_owned());
        }
        value
    }

    /// Reads up to `stop` (consumed) or, with no stop, to the end.
    fn read_until(
        &mut self,
        stop: Option<char>,
        raw_escapes: bool,
    ) -> Result<(String, Fields), Fault> {
        if self.depth >= MAX_NESTING {
            return Err(Fault::TooDeep);
        }
        self.depth += 1;
        let outer = std::mem::replace(&mut self.raw_escapes, raw_escapes);
        let result = self.read_until_inner(stop);
        self.raw_escapes = outer;
        self.depth -= 1;
        result
    }

    fn read_until_inner(&mut self, stop: Option<char>) -> Result<(String, Fields), Fault> {
        let mut value = String::new();
        let mut fields = Fields::default();
        let quotes = !self.lexer.skip_process_quotes;
        while let Some(c) = self.peek() {
            if Some(c) == stop {
                self.pos += 1;
                return Ok((value, fields));
            }
            match c {
                '$' => {
                    let expanded = self.read_dollar()?;
                    value.push_str(&expanded);
                    fields.push_str(&expanded);
                }
                '\'' | '"' if quotes => {
                    let quoted = if c == '\'' {
                        self.read_single_quoted()?
                    } else {
                        self.read_double_quoted()?
                    };
                    value.push_str(&quoted);
                    fields.push_raw_str(&quoted);
                }
                _ => {
                    self.pos += 1;
                    if c == self.lexer.escape {
                        if self.raw_escapes {
                            fields.push_raw_char(c);
                            value.push(c);
                        }
                        // An escape at the very end is dropped.
                        let Some(escaped) = self.next() else { break };
                        fields.push_raw_char(escaped);
                        value.push(escaped);
                    } else {
                        fields.push_char(c);
                        value.push(c);
                    }
                }
            }
        }
        if stop.is_some() {
            // Callers report this as the missing `}` or `/` it is.
            return Err(Fault::MissingBrace);
        }
        Ok((value, fields))
    }

    /// `'…'`: everything literal up to the next `'`; nothing escapes it.
    fn read_single_quoted(&mut self) -> Result<String, Fault> {
        let mut out = String::new();
        self.pos += 1;
        if self.lexer.raw_quotes {
            out.push('\'');
        }
        loop {
            match self.next() {
                None => return Err(Fault::UnterminatedQuote(Quote::Single)),
                Some('\'') => {
                    if self.lexer.raw_quotes {
                        out.push('\'');
                    }
                    return Ok(out);
                }
                Some(c) => out.push(c),
            }
        }
    }

    /// `"…"`: `$` expands; the escape character escapes only `"`, `$` and
    /// itself and is otherwise kept.
    fn read_double_quoted(&mut self) -> Result<String, Fault> {
        let mut out = String::new();
        self.pos += 1;
        if self.lexer.raw_quotes {
            out.push('"');
        }
        loop {
            match self.peek() {
                None => return Err(Fault::UnterminatedQuote(Quote::Double)),
                Some('"') => {
                    self.pos += 1;
                    if self.lexer.raw_quotes {
                        out.push('"');
                    }
                    return Ok(out);
                }
                Some('$') => {
                    let expanded = self.read_dollar()?;
                    out.push_str(&expanded);
                }
                Some(mut c) => {
                    self.pos += 1;
                    if c == self.lexer.escape {
                        if self.raw_escapes {
                            out.push(c);
                        }
                        match self.peek() {
                            // Dropped; the loop then reports the open quote.
                            None => continue,
                            Some(n) if n == '"' || n == '$' || n == self.lexer.escape => {
                                c = n;
                                self.pos += 1;
                            }
                            Some(_) => {}
                        }
                    }
                    out.push(c);
                }
            }
        }
    }

    /// A name after `$` or `${`: a run of decimal digits, or one special
    /// parameter character (`@ * # ? - $ !`), or letters, digits and `_`.
    /// Empty when none of these follows.
    fn read_name(&mut self) -> String {
        let mut name = String::new();
        while let Some(c) = self.peek() {
            if name.is_empty() && is_digit(c) {
                while let Some(d) = self.peek().filter(|&d| is_digit(d)) {
                    name.push(d);
                    self.pos += 1;
                }
                return name;
            }
            if name.is_empty() && matches!(c, '@' | '*' | '#' | '?' | '-' | '$' | '!' | '0') {
                self.pos += 1;
                return c.to_string();
            }
            if !is_letter(c) && !is_digit(c) && c != '_' {
                break;
            }
            name.push(c);
            self.pos += 1;
        }
        name
    }

    /// `$name`, `${…}`, or a lone `$`.
    fn read_dollar(&mut self) -> Result<String, Fault> {
        self.pos += 1;
        if self.peek() != Some('{') {
            let name = self.read_name();
            if name.is_empty() {
                return Ok("$".to_owned());
            }
            return Ok(match self.lookup(&name) {
                Some(value) => value,
                None if self.lexer.skip_unset_env => format!("${name}"),
                None => String::new(),
            });
        }
        self.pos += 1;
        match self.peek() {
            None => return Err(Fault::MissingBrace),
            Some('{' | '}' | ':') => return Err(Fault::BadSubstitution),
            Some(_) => {}
        }
        let name = self.read_name();
        // BuildKit reports a `${name` cut short as an unsupported modifier
        // named U+FFFD; a missing brace is what it is.
        let Some(c) = self.next() else {
            return Err(Fault::MissingBrace);
        };
        match c {
            '}' => Ok(match self.lookup(&name) {
                Some(value) => value,
                None if self.lexer.skip_unset_env => format!("${{{name}}}"),
                None => String::new(),
            }),
            ':' | '+' | '-' | '?' | '#' | '%' => self.read_modifier(name, c),
            '/' => self.read_replace(name),
            other => Err(Fault::UnsupportedModifier(other.to_string())),
        }
    }

    /// `${name OP word}`, with `c` the character after the name.
    fn read_modifier(&mut self, name: String, c: char) -> Result<String, Fault> {
        let null_is_unset = c == ':';
        let (op_char, written) = if null_is_unset {
            let op = self.next();
            let shown = op.unwrap_or(char::REPLACEMENT_CHARACTER);
            (op, format!(":{shown}"))
        } else {
            (Some(c), c.to_string())
        };
        let op = match op_char {
            Some('-') => Op::Default,
            Some('+') => Op::Alternate,
            Some('?') => Op::Required,
            Some('#') => Op::Prefix,
            Some('%') => Op::Suffix,
            _ => Op::Other,
        };
        let is_pattern = matches!(op, Op::Prefix | Op::Suffix);
        if null_is_unset && is_pattern {
            return Err(Fault::UnsupportedModifier(written));
        }
        let (word, _) = self.read_nested('}', is_pattern, Fault::MissingBrace)?;

        let value = self.lookup(&name);
        if value.is_none() && self.lexer.skip_unset_env {
            return Ok(format!("${{{name}{written}{word}}}"));
        }
        let set = value.is_some();
        let value = value.unwrap_or_default();
        let null = !set || (null_is_unset && value.is_empty());
        match op {
            Op::Default => Ok(if null { word } else { value }),
            Op::Alternate => Ok(if null { String::new() } else { word }),
            Op::Required => {
                if null {
                    let message = if !word.is_empty() {
                        word
                    } else if !set {
                        "is not allowed to be unset".to_owned()
                    } else {
                        "is not allowed to be empty".to_owned()
                    };
                    return Err(Fault::Required { name, message });
                }
                Ok(value)
            }
            Op::Prefix | Op::Suffix => {
                // The second `#`/`%` is read from the expanded word, as BuildKit does.
                let marker = if op == Op::Prefix { '#' } else { '%' };
                let (pattern, greedy) = match word.strip_prefix(marker) {
                    Some(rest) => (rest, true),
                    None => (word.as_str(), false),
                };
                if op == Op::Prefix {
                    pattern::trim_prefix(pattern, &value, greedy).map_err(|source| {
                        Fault::InvalidPattern {
                            pattern: pattern.to_owned(),
                            source,
                        }
                    })
                } else {
                    pattern::trim_suffix(pattern, &value, greedy)
                        .map_err(|(pattern, source)| Fault::InvalidPattern { pattern, source })
                }
            }
            Op::Other => Err(Fault::UnsupportedModifier(written)),
        }
    }

    /// `${name/pattern/replacement}` and `${name//pattern/replacement}`, after
    /// the first `/`.
    fn read_replace(&mut self, name: String) -> Result<String, Fault> {
        let all = self.peek() == Some('/');
        if all {
            self.pos += 1;
        }
        let (pattern, _) = self.read_nested('/', true, Fault::MissingSlash)?;
        let (replacement, _) = self.read_nested('}', true, Fault::MissingBrace)?;
        let value = self.lookup(&name);
        if value.is_none() && self.lexer.skip_unset_env {
            // BuildKit writes a single `/` back even for `//`.
            return Ok(format!("${{{name}/{pattern}/{replacement}}}"));
        }
        let value = value.unwrap_or_default();
        pattern::replace(&pattern, &value, &replacement, all).map_err(|source| {
            Fault::InvalidPattern {
                pattern: pattern.clone(),
                source,
            }
        })
    }

    /// The word inside `${…}` up to `stop`. Any failure that leaves the input
    /// exhausted is reported as `at_end` (BuildKit does the same, even when
    /// the failure was a nested one).
    fn read_nested(
        &mut self,
        stop: char,
        raw_escapes: bool,
        at_end: Fault,
    ) -> Result<(String, Fields), Fault> {
        match self.read_until(Some(stop), raw_escapes) {
            Err(Fault::TooDeep) => Err(Fault::TooDeep),
            Err(_) if self.at_end() => Err(at_end),
            other => other,
        }
    }
}
