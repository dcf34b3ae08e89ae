//! A small NFA with the meaning of the Go regexes Docker builds: simulated over all
//! reachable states at once, so matching is linear in the path length for any pattern.

/// One instruction. The accepting state is one past the last instruction.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(super) enum Inst {
    /// Consume one character that passes the test, go to the next instruction.
    One(CharTest),
    /// Consume any number of characters that pass the test, then go on (`x*`).
    Many(CharTest),
    /// Go on, or jump to the instruction given (`x?`).
    Fork(usize),
    /// The `.*/` of `(.*/)?`: consume anything but a newline and stay; a `/` may also go on.
    ToSlash,
    /// Go on only where the assertion holds.
    Assert(Assertion),
}

/// Go's empty-width assertions (`^` and `$` mean text start and end: no multi-line flag).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum Assertion {
    /// `^`, `\A`.
    BeginText,
    /// `$`, `\z`.
    EndText,
    /// `\b`: between an ASCII word character and a non-word one (or an end).
    WordBoundary,
    /// `\B`.
    NotWordBoundary,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub(super) enum CharTest {
    Is(char),
    /// `.`: Go's dot without the `s` flag.
    NotNewline,
    Class(Box<Class>),
}

/// A character class as sorted-or-not inclusive ranges of code points.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(super) struct Class {
    pub(super) negated: bool,
    pub(super) ranges: Vec<(u32, u32)>,
}

impl CharTest {
    fn passes(&self, c: char) -> bool {
        match self {
            CharTest::Is(want) => c == *want,
            CharTest::NotNewline => c != '\n',
            CharTest::Class(class) => {
                let c = c as u32;
                class.ranges.iter().any(|&(lo, hi)| lo <= c && c <= hi) != class.negated
            }
        }
    }
}

impl Assertion {
    fn holds(self, before: Option<char>, after: Option<char>) -> bool {
        let word = |c: Option<char>| c.is_some_and(|c| c.is_ascii_alphanumeric() || c == '_');
        match self {
            Assertion::BeginText => before.is_none(),
            Assertion::EndText => after.is_none(),
            Assertion::WordBoundary => word(before) != word(after),
            Assertion::NotWordBoundary => word(before) == word(after),
        }
    }
}

/// Whether `program` matches a prefix of `text` starting at its first character; with
/// the final `$` Docker appends, that is the whole text.
pub(super) fn matches(program: &[Inst], text: &str) -> bool {
    let accept = program.len();
    let mut current = StateSet::new(accept + 1);
    let mut next = StateSet::new(accept + 1);
    let mut stack = Vec::new();
    let mut chars = text.chars().peekable();
    let mut before = None;
    current.close(program, &[0], (before, chars.peek().copied()), &mut stack);
    let mut moved = Vec::new();
    while let Some(c) = chars.next() {
        if current.contains(accept) {
            return true;
        }
        if current.list.is_empty() {
            return false;
        }
        moved.clear();
        for &state in &current.list {
            match &program.get(state) {
                Some(Inst::One(test)) if test.passes(c) => moved.push(state + 1),
                Some(Inst::Many(test)) if test.passes(c) => moved.push(state),
                Some(Inst::ToSlash) => {
                    if c != '\n' {
                        moved.push(state);
                    }
                    if c == '/' {
                        moved.push(state + 1);
                    }
                }
                _ => {}
            }
        }
        before = Some(c);
        next.clear();
        next.close(program, &moved, (before, chars.peek().copied()), &mut stack);
        std::mem::swap(&mut current, &mut next);
    }
    current.contains(accept)
}

/// A set of NFA states: membership flags plus the members in insertion order.
struct StateSet {
    member: Vec<bool>,
    list: Vec<usize>,
}

impl StateSet {
    fn new(states: usize) -> Self {
        StateSet {
            member: vec![false; states],
            list: Vec::new(),
        }
    }

    fn clear(&mut self) {
        for &state in &self.list {
            self.member[state] = false;
        }
        self.list.clear();
    }

    fn contains(&self, state: usize) -> bool {
        self.member[state]
    }

    /// Adds `states` and every state reachable from them without consuming a character,
    /// between the characters `around`. Iterative: thousands of `**` cannot overflow.
    fn close(
        &mut self,
        program: &[Inst],
        states: &[usize],
        around: (Option<char>, Option<char>),
        stack: &mut Vec<usize>,
    ) {
        stack.extend_from_slice(states);
        while let Some(state) = stack.pop() {
            if self.member[state] {
                continue;
            }
            self.member[state] = true;
            self.list.push(state);
            match program.get(state) {
                Some(Inst::Many(_)) => stack.push(state + 1),
                Some(Inst::Fork(to)) => {
                    stack.push(*to);
                    stack.push(state + 1);
                }
                Some(Inst::Assert(assertion)) if assertion.holds(around.0, around.1) => {
                    stack.push(state + 1)
                }
                _ => {}
            }
        }
    }
}
