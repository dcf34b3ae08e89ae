//! Shell-word lexing and variable expansion, with the semantics of BuildKit's
//! `frontend/dockerfile/shell/lex.go`.
//!
//! Used by the instructions that expand (ADD COPY ENV EXPOSE FROM LABEL STOPSIGNAL USER
//! VOLUME WORKDIR ONBUILD-less flag values, heredoc bodies with unquoted delimiters),
//! never on RUN/CMD/ENTRYPOINT text. Depends on no other workspace crate.
//!
//! A [`Lexer`] takes one word of a Dockerfile and gives back its value
//! ([`Lexer::process_word`]) or its whitespace-separated fields
//! ([`Lexer::process_words`]): single and double quotes are removed, the escape
//! character (`\`, or `` ` `` after `# escape=`) escapes the next character, and
//! `$NAME`, `${NAME}` and the modifiers `${V:-w} ${V-w} ${V:+w} ${V+w} ${V:?e}
//! ${V?e} ${V#p} ${V##p} ${V%p} ${V%%p} ${V/p/r} ${V//p/r}` are replaced from an
//! [`Env`]. It is BuildKit's dialect, not POSIX sh: no command substitution, no
//! `${#V}`, no `${V:=w}`, patterns know `*` and `?` but take `[` literally,
//! positional and special parameters (`$1`, `$@`, `$$` …) are plain names that
//! are normally unset, and `$` before anything that cannot start a name is
//! literal. Where BuildKit has quirks, this crate has them too; `tests/`
//! holds BuildKit's own test corpora, ported.
//!
//! The crate is pure: no I/O, no workspace dependency, no global state, and no
//! input makes it panic.
//!
//! Deliberate differences from BuildKit, all on input BuildKit rejects or
//! mangles: a `${NAME` cut short fails as "missing '}'" (BuildKit says
//! "unsupported modifier (\u{FFFD})"); `${…}` nesting stops at [`MAX_NESTING`]
//! levels; and the fields of `a${V:-w}` keep the `a` (recent BuildKit shares one
//! field buffer between nesting levels and loses it; older releases kept it).

mod env;
mod error;
mod expand;
mod pattern;
mod unicode;
mod unicode_tables;

use std::collections::BTreeSet;

pub use env::Env;
pub use error::{Quote, ShellError};
pub use pattern::PatternError;

use expand::Expansion;

/// How deeply `${…}` words may nest inside each other (`${a:-${b:-…}}`); the
/// word itself is the first level. BuildKit has no limit; this one keeps the
/// stack bounded on hostile input.
pub const MAX_NESTING: usize = 128;

/// Expands words the way BuildKit's `shell.Lex` does. Cheap to clone; holds
/// only the escape character and the options.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Lexer {
    escape: char,
    raw_quotes: bool,
    raw_escapes: bool,
    skip_unset_env: bool,
    skip_process_quotes: bool,
}

/// The value of a word and the variables it looked up.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Processed {
    /// The expanded word.
    pub value: String,
    /// Names that were looked up and found set (possibly to the empty string).
    pub matched: BTreeSet<String>,
    /// Names that were looked up and found unset.
    pub unmatched: BTreeSet<String>,
}

impl Default for Lexer {
    /// `Lexer::new('\\')`.
    fn default() -> Self {
        Lexer::new('\\')
    }
}

impl Lexer {
    /// A lexer with the given escape character (`\` by default, `` ` `` after
    /// `# escape=`` ` ``) and every option off.
    pub fn new(escape: char) -> Self {
        Lexer {
            escape,
            raw_quotes: false,
            raw_escapes: false,
            skip_unset_env: false,
            skip_process_quotes: false,
        }
    }

    /// The escape character.
    pub fn escape(&self) -> char {
        self.escape
    }

    /// Keep quote characters in the output (BuildKit's `RawQuotes`); their
    /// content is still read as quoted.
    pub fn raw_quotes(mut self, yes: bool) -> Self {
        self.raw_quotes = yes;
        self
    }

    /// Keep escape characters in the output (BuildKit's `RawEscapes`). Words
    /// after `:-`, `-`, `:+`, `+`, `:?`, `?` lose their escapes regardless, and
    /// patterns and replacements keep them regardless, as in BuildKit.
    pub fn raw_escapes(mut self, yes: bool) -> Self {
        self.raw_escapes = yes;
        self
    }

    /// Leave references to unset variables as written (`$X`, `${X}`,
    /// `${X:-w}` with `w` expanded) instead of expanding them to the empty
    /// string (BuildKit's `SkipUnsetEnv`). `${X?e}` then no longer fails.
    pub fn skip_unset_env(mut self, yes: bool) -> Self {
        self.skip_unset_env = yes;
        self
    }

    /// Treat `'` and `"` as ordinary characters (BuildKit's
    /// `SkipProcessQuotes`), as for heredoc bodies.
    pub fn skip_process_quotes(mut self, yes: bool) -> Self {
        self.skip_process_quotes = yes;
        self
    }

    /// Expands one word: variables, quote removal, escapes; no field splitting.
    pub fn process_word(&self, word: &str, env: &dyn Env) -> Result<String, ShellError> {
        self.process_word_with_matches(word, env).map(|p| p.value)
    }

    /// Expands a word and splits the result into fields on whitespace that is
    /// neither quoted nor escaped, including whitespace that comes out of a
    /// variable (BuildKit's `ProcessWords`). Empty fields are dropped: `""`
    /// alone gives no field.
    pub fn process_words(&self, word: &str, env: &dyn Env) -> Result<Vec<String>, ShellError> {
        let mut expansion = Expansion::new(self, env, word);
        let (_, fields) = expansion.run().map_err(|f| f.in_word(word))?;
        Ok(fields.finish())
    }

    /// Like [`process_word`](Self::process_word), also telling which names
    /// were looked up, set or unset (for the UndefinedVar lint). Every `${…}`
    /// word is expanded whether or not it is used, so `${A:-$B}` looks up `B`
    /// even when `A` is set, as in BuildKit.
    pub fn process_word_with_matches(
        &self,
        word: &str,
        env: &dyn Env,
    ) -> Result<Processed, ShellError> {
        let mut expansion = Expansion::new(self, env, word);
        let (value, _) = expansion.run().map_err(|f| f.in_word(word))?;
        Ok(Processed {
            value,
            matched: expansion.matched,
            unmatched: expansion.unmatched,
        })
    }

    /// The names a word refers to, sorted, whatever their values: empty when
    /// the word has no variable reference. Fails only where the word's syntax
    /// would fail any expansion (an open quote, `${}`, an unknown modifier, a
    /// bad pattern escape).
    pub fn references(&self, word: &str) -> Result<BTreeSet<String>, ShellError> {
        // Every name "set" to a non-empty value: no `?` fails, nothing is skipped.
        let everything_set = |_: &str| Some("x".to_owned());
        self.process_word_with_matches(word, &everything_set)
            .map(|p| p.matched)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn env() -> Vec<(&'static str, &'static str)> {
        vec![("A", "alpha"), ("EMPTY", ""), ("SP", " x  y ")]
    }

    #[test]
    fn builder_sets_each_option() {
        let l = Lexer::new('`')
            .raw_quotes(true)
            .raw_escapes(true)
            .skip_unset_env(true)
            .skip_process_quotes(true);
        assert_eq!(l.escape(), '`');
        assert!(l.raw_quotes && l.raw_escapes && l.skip_unset_env && l.skip_process_quotes);
        assert_eq!(Lexer::default(), Lexer::new('\\'));
    }

    #[test]
    fn word_and_words() {
        let l = Lexer::default();
        assert_eq!(l.process_word("a$SP'b c'", &env()).unwrap(), "a x  y b c");
        assert_eq!(
            l.process_words("a$SP'b c'", &env()).unwrap(),
            ["a", "x", "y", "b c"]
        );
        assert_eq!(
            l.process_words("\"\"", &env()).unwrap(),
            Vec::<String>::new()
        );
        assert_eq!(l.process_words(" a\\ b ", &env()).unwrap(), ["a b"]);
    }

    #[test]
    fn matches_record_set_and_unset() {
        let p = Lexer::default()
            .process_word_with_matches("$A${EMPTY:-$NOPE}${A:+$B}", &env())
            .unwrap();
        assert_eq!(p.value, "alpha");
        assert_eq!(
            p.matched,
            BTreeSet::from(["A".to_owned(), "EMPTY".to_owned()])
        );
        assert_eq!(
            p.unmatched,
            BTreeSet::from(["B".to_owned(), "NOPE".to_owned()])
        );
    }

    #[test]
    fn references_lists_every_name() {
        let l = Lexer::default();
        let refs = l
            .references("$A ${B:?} ${C#$D} ${E//x/$F} '$G' \\$H")
            .unwrap();
        assert_eq!(
            refs.into_iter().collect::<Vec<_>>(),
            ["A", "B", "C", "D", "E", "F"]
        );
        assert!(l.references("plain text $ 50%").unwrap().is_empty());
        assert!(matches!(
            l.references("${A"),
            Err(ShellError::MissingBrace { .. })
        ));
    }

    #[test]
    fn errors_carry_the_word() {
        let err = Lexer::default()
            .process_word("x${V:?msg}", &env())
            .unwrap_err();
        assert_eq!(err.word(), "x${V:?msg}");
        assert_eq!(err.to_string(), "failed to process \"x${V:?msg}\": V: msg");
    }
}
