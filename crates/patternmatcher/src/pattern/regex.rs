//! Parsing the Go regex Docker builds from a pattern, with Go's `regexp/syntax` rules
//! (Perl flags: `^`/`$` are text anchors, `.` skips newlines, negated classes do not),
//! into an NFA program. Only the shapes Docker can produce are handled: literals,
//! escapes, `.`, classes, `*` and `?` after a single-character atom, and `(.*/)?`.

use super::nfa::{Assertion, CharTest, Class, Inst};
use crate::error::SyntaxProblem;

const INVALID_ESCAPE: &str = "invalid escape sequence";
const INVALID_RANGE: &str = "invalid character class range";

pub(super) fn compile(regex: &str) -> Result<Vec<Inst>, SyntaxProblem> {
    let mut parser = Parser {
        chars: regex.chars().collect(),
        pos: 0,
        program: Vec::new(),
        last: Last::Nothing,
    };
    parser.run()?;
    Ok(parser.program)
}

/// What a following `*` or `?` would apply to.
#[derive(Clone, Copy, PartialEq)]
enum Last {
    Nothing,
    /// A single-character atom at this instruction index.
    Atom(usize),
    /// An assertion or a repetition: Go rejects or never sees a repetition here.
    Other,
}

struct Parser {
    chars: Vec<char>,
    pos: usize,
    program: Vec<Inst>,
    last: Last,
}

impl Parser {
    fn peek(&self, ahead: usize) -> Option<char> {
        self.chars.get(self.pos + ahead).copied()
    }

    fn text(&self, from: usize, to: usize) -> String {
        self.chars[from..to.min(self.chars.len())].iter().collect()
    }

    fn error(&self, from: usize, reason: &'static str) -> SyntaxProblem {
        SyntaxProblem::Regex {
            fragment: self.text(from, self.pos),
            reason,
        }
    }

    fn atom(&mut self, test: CharTest) {
        self.last = Last::Atom(self.program.len());
        self.program.push(Inst::One(test));
    }

    fn assert(&mut self, assertion: Assertion) {
        self.last = Last::Other;
        self.program.push(Inst::Assert(assertion));
    }

    fn run(&mut self) -> Result<(), SyntaxProblem> {
        while let Some(c) = self.peek(0) {
            let start = self.pos;
            self.pos += 1;
            match c {
                '^' => self.assert(Assertion::BeginText),
                '$' => self.assert(Assertion::EndText),
                '.' => self.atom(CharTest::NotNewline),
                '[' => {
                    let class = self.class(start)?;
                    self.atom(CharTest::Class(Box::new(class)));
                }
                '*' | '?' => self.repeat(c, start)?,
                '(' => self.any_dirs(start)?,
                '\\' => self.escape(start)?,
                // Docker escapes `+|(){}`; these cannot appear bare.
                '+' | '|' | ')' | '{' => {
                    return Err(SyntaxProblem::Unsupported {
                        fragment: c.to_string(),
                    })
                }
                c => self.atom(CharTest::Is(c)),
            }
        }
        Ok(())
    }

    fn repeat(&mut self, op: char, start: usize) -> Result<(), SyntaxProblem> {
        let Last::Atom(at) = self.last else {
            let reason = match self.last {
                Last::Nothing => "missing argument to repetition operator",
                _ => "invalid nested repetition operator",
            };
            return Err(self.error(start.saturating_sub(1), reason));
        };
        let Inst::One(test) = self.program.pop().expect("atom was pushed") else {
            unreachable!("Last::Atom points at a One");
        };
        if op == '*' {
            self.program.push(Inst::Many(test));
        } else {
            self.program.push(Inst::Fork(at + 2));
            self.program.push(Inst::One(test));
        }
        self.last = Last::Other;
        Ok(())
    }

    /// `(.*/)?`, the only group Docker writes (for `**/`): zero or more directories.
    fn any_dirs(&mut self, start: usize) -> Result<(), SyntaxProblem> {
        let rest = self.text(self.pos, self.pos + 5);
        if rest != ".*/)?" {
            return Err(SyntaxProblem::Unsupported {
                fragment: self.text(start, self.chars.len()),
            });
        }
        self.pos += 5;
        let after = self.program.len() + 2;
        self.program.push(Inst::Fork(after));
        self.program.push(Inst::ToSlash);
        self.last = Last::Other;
        Ok(())
    }

    /// An escape outside a class; `start` is at the `\`.
    fn escape(&mut self, start: usize) -> Result<(), SyntaxProblem> {
        match self.peek(0) {
            Some('A') => self.assert(Assertion::BeginText),
            Some('z') => self.assert(Assertion::EndText),
            Some('b') => self.assert(Assertion::WordBoundary),
            Some('B') => self.assert(Assertion::NotWordBoundary),
            Some('Q') => {
                // `\Q...\E`: literal text, up to the end if there is no `\E` (then even
                // the final `$` is a literal).
                self.pos += 1;
                while self.pos < self.chars.len() {
                    if self.peek(0) == Some('\\') && self.peek(1) == Some('E') {
                        self.pos += 2;
                        return Ok(());
                    }
                    let c = self.chars[self.pos];
                    self.pos += 1;
                    self.atom(CharTest::Is(c));
                }
                return Ok(());
            }
            Some('C') => {
                self.pos += 1;
                return Err(self.error(start, INVALID_ESCAPE));
            }
            _ => {
                self.pos = start;
                if let Some(class) = self.class_escape()? {
                    self.atom(CharTest::Class(Box::new(class)));
                } else {
                    let c = self.char_escape()?;
                    self.atom(CharTest::Is(c));
                }
                return Ok(());
            }
        }
        self.pos += 1;
        Ok(())
    }

    /// A Perl class (`\d \s \w` and negations) at the `\`, or a Unicode class, which we
    /// do not support.
    fn class_escape(&mut self) -> Result<Option<Class>, SyntaxProblem> {
        if self.peek(0) != Some('\\') {
            return Ok(None);
        }
        let class = match self.peek(1) {
            Some('p' | 'P') => {
                return Err(SyntaxProblem::Unsupported {
                    fragment: self.text(self.pos, self.pos + 3),
                })
            }
            Some(c @ ('d' | 'D')) => perl(c, &[('0', '9')]),
            Some(c @ ('s' | 'S')) => perl(c, &[('\t', '\n'), ('\x0c', '\r'), (' ', ' ')]),
            Some(c @ ('w' | 'W')) => perl(c, WORD),
            _ => return Ok(None),
        };
        self.pos += 2;
        Ok(Some(class))
    }

    /// One escaped character (Go's `parseEscape`) at the `\`.
    fn char_escape(&mut self) -> Result<char, SyntaxProblem> {
        let start = self.pos;
        self.pos += 1;
        let Some(c) = self.peek(0) else {
            return Err(self.error(start, "trailing backslash at end of expression"));
        };
        self.pos += 1;
        let octal = |c: Option<char>| c.filter(|c| ('0'..='7').contains(c));
        let value = match c {
            c if c.is_ascii() && !c.is_ascii_alphanumeric() => Some(c as u32),
            '1'..='7' if octal(self.peek(0)).is_none() => None,
            '0'..='7' => {
                let mut value = c as u32 - '0' as u32;
                for _ in 0..2 {
                    let Some(digit) = octal(self.peek(0)) else {
                        break;
                    };
                    value = value * 8 + (digit as u32 - '0' as u32);
                    self.pos += 1;
                }
                Some(value)
            }
            // `\x{...}` cannot occur: Docker escapes `{`.
            'x' => {
                let high = self.peek(0).and_then(|c| c.to_digit(16));
                let low = self.peek(1).and_then(|c| c.to_digit(16));
                self.pos = (self.pos + 2).min(self.chars.len());
                high.zip(low).map(|(high, low)| high * 16 + low)
            }
            'a' => Some(0x07),
            'f' => Some(0x0c),
            'n' => Some(0x0a),
            'r' => Some(0x0d),
            't' => Some(0x09),
            'v' => Some(0x0b),
            _ => None,
        };
        value
            .and_then(char::from_u32)
            .ok_or_else(|| self.error(start, INVALID_ESCAPE))
    }

    /// A class; `start` is at the `[` (Go's `parseClass`).
    fn class(&mut self, start: usize) -> Result<Class, SyntaxProblem> {
        let negated = self.peek(0) == Some('^');
        if negated {
            self.pos += 1;
        }
        let mut ranges = Vec::new();
        let mut first = true;
        loop {
            match self.peek(0) {
                None => return Err(self.error(start, "missing closing ]")),
                Some(']') if !first => break,
                _ => {}
            }
            first = false;
            if let Some(named) = self.named_class()? {
                ranges.extend(named);
                continue;
            }
            if let Some(class) = self.class_escape()? {
                ranges.extend(class.ranges_included());
                continue;
            }
            let range_start = self.pos;
            let lo = self.class_char(start)?;
            let mut hi = lo;
            if self.peek(0) == Some('-') && self.peek(1).is_some_and(|c| c != ']') {
                self.pos += 1;
                hi = self.class_char(start)?;
                if hi < lo {
                    return Err(self.error(range_start, INVALID_RANGE));
                }
            }
            ranges.push((lo as u32, hi as u32));
        }
        self.pos += 1;
        Ok(Class { negated, ranges })
    }

    fn class_char(&mut self, class_start: usize) -> Result<char, SyntaxProblem> {
        match self.peek(0) {
            None => Err(self.error(class_start, "missing closing ]")),
            Some('\\') => self.char_escape(),
            Some(c) => {
                self.pos += 1;
                Ok(c)
            }
        }
    }

    /// A POSIX class like `[:alpha:]` or `[:^digit:]` inside a class: Go takes the text up
    /// to the next `:]`, and refuses an unknown name.
    fn named_class(&mut self) -> Result<Option<Vec<(u32, u32)>>, SyntaxProblem> {
        if self.peek(0) != Some('[') || self.peek(1) != Some(':') {
            return Ok(None);
        }
        let rest = &self.chars[self.pos + 2..];
        let Some(end) = rest.windows(2).position(|w| w == [':', ']']) else {
            return Ok(None);
        };
        let start = self.pos;
        let name: String = rest[..end].iter().collect();
        self.pos += 2 + end + 2;
        let (negated, name) = match name.strip_prefix('^') {
            Some(name) => (true, name),
            None => (false, name.as_str()),
        };
        let ranges: &[(char, char)] = match name {
            "alnum" => &[('0', '9'), ('A', 'Z'), ('a', 'z')],
            "alpha" => &[('A', 'Z'), ('a', 'z')],
            "ascii" => &[('\0', '\x7f')],
            "blank" => &[('\t', '\t'), (' ', ' ')],
            "cntrl" => &[('\0', '\x1f'), ('\x7f', '\x7f')],
            "digit" => &[('0', '9')],
            "graph" => &[('!', '~')],
            "lower" => &[('a', 'z')],
            "print" => &[(' ', '~')],
            "punct" => &[('!', '/'), (':', '@'), ('[', '`'), ('{', '~')],
            "space" => &[('\t', '\r'), (' ', ' ')],
            "upper" => &[('A', 'Z')],
            "word" => WORD,
            "xdigit" => &[('0', '9'), ('A', 'F'), ('a', 'f')],
            _ => return Err(self.error(start, INVALID_RANGE)),
        };
        let class = Class {
            negated,
            ranges: ranges
                .iter()
                .map(|&(lo, hi)| (lo as u32, hi as u32))
                .collect(),
        };
        Ok(Some(class.ranges_included()))
    }
}

const WORD: &[(char, char)] = &[('0', '9'), ('A', 'Z'), ('_', '_'), ('a', 'z')];

/// `\d`-style class: lower case includes the ranges, upper case excludes them.
fn perl(letter: char, ranges: &[(char, char)]) -> Class {
    Class {
        negated: letter.is_ascii_uppercase(),
        ranges: ranges
            .iter()
            .map(|&(lo, hi)| (lo as u32, hi as u32))
            .collect(),
    }
}

impl Class {
    /// The ranges this class matches, negation applied, to merge into another class.
    fn ranges_included(&self) -> Vec<(u32, u32)> {
        if !self.negated {
            return self.ranges.clone();
        }
        let mut sorted = self.ranges.clone();
        sorted.sort_unstable();
        let mut out = Vec::new();
        let mut next = 0u32;
        for (lo, hi) in sorted {
            if lo > next {
                out.push((next, lo - 1));
            }
            next = next.max(hi + 1);
        }
        if next <= char::MAX as u32 {
            out.push((next, char::MAX as u32));
        }
        out
    }
}
