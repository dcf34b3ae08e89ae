//! Runs the case files in `tests/testdata/` (format described at the top of
//! each file) and reports every failing line at once.

use std::fmt::Write as _;

use strata_shell::{Lexer, ShellError};

#[derive(Clone, Copy)]
enum Mode {
    /// `process_word`; the expectation is the value.
    Word,
    /// `process_words`; the expectation is `[f1][f2]…`.
    Words,
}

fn bracketed(s: &str) -> Option<&str> {
    let start = s.find('[')?;
    let end = s.rfind(']')?;
    (start < end).then(|| &s[start + 1..end])
}

fn parse_fields(s: &str) -> Vec<String> {
    let mut fields = Vec::new();
    let mut rest = s;
    while let Some(open) = rest.find('[') {
        let close = rest[open..].find(']').expect("a field closes with ]") + open;
        fields.push(rest[open + 1..close].to_owned());
        rest = &rest[close + 1..];
    }
    assert!(rest.trim().is_empty(), "stray text after fields: {s:?}");
    fields
}

fn parse_lexer(options: &str) -> Lexer {
    let escape = options
        .split_whitespace()
        .find_map(|o| o.strip_prefix("escape="))
        .map_or('\\', |e| {
            let mut chars = e.chars();
            let c = chars.next().expect("escape=C");
            assert!(chars.next().is_none(), "escape is one character");
            c
        });
    let mut lexer = Lexer::new(escape);
    for option in options.split_whitespace() {
        lexer = match option {
            "default" => lexer,
            "raw_quotes" => lexer.raw_quotes(true),
            "raw_escapes" => lexer.raw_escapes(true),
            "skip_unset" => lexer.skip_unset_env(true),
            "skip_quotes" => lexer.skip_process_quotes(true),
            o if o.starts_with("escape=") => lexer,
            other => panic!("unknown lexer option {other:?}"),
        };
    }
    lexer
}

fn check(outcome: Result<String, ShellError>, expected: &str, word: &str) -> Result<(), String> {
    match (outcome, expected.strip_prefix('!')) {
        (Ok(got), None) if got == expected => Ok(()),
        (Ok(got), None) => Err(format!("got {got:?}, want {expected:?}")),
        (Ok(got), Some(_)) => Err(format!("got {got:?}, want an error")),
        (Err(e), Some(text)) => {
            let message = e.to_string();
            let head = format!("failed to process {word:?}: ");
            if !message.starts_with(&head) {
                Err(format!("error {message:?} does not start with {head:?}"))
            } else if e.word() != word {
                Err(format!("error names word {:?}", e.word()))
            } else if message.contains(text) {
                Ok(())
            } else {
                Err(format!("error {message:?} lacks {text:?}"))
            }
        }
        (Err(e), None) => Err(format!("error {e}, want {expected:?}")),
    }
}

/// Runs one file; returns the number of cases.
fn run(name: &str, text: &str, mode: Mode) -> usize {
    let mut env: Vec<(String, String)> = Vec::new();
    let mut lexer = Lexer::default();
    let mut failures = String::new();
    let mut cases = 0;
    for (n, line) in text.lines().enumerate() {
        let line_no = n + 1;
        let trimmed = line.trim();
        if trimmed.is_empty() || trimmed.starts_with('#') {
            continue;
        }
        if let Some(decl) = trimmed.strip_prefix("env ") {
            let (key, _) = decl.split_once('=').expect("env NAME=[value]");
            let value = bracketed(decl).expect("env NAME=[value]");
            env.push((key.to_owned(), value.to_owned()));
            continue;
        }
        if let Some(options) = trimmed.strip_prefix("lexer ") {
            lexer = parse_lexer(options);
            continue;
        }
        let (word, expected) = line
            .split_once(" =>")
            .unwrap_or_else(|| panic!("{name}:{line_no}: no ' =>' in {line:?}"));
        let word = word.trim();
        let expected = expected.trim();
        cases += 1;
        let outcome = match mode {
            Mode::Word => check(lexer.process_word(word, &env), expected, word),
            Mode::Words => match (lexer.process_words(word, &env), expected.starts_with('!')) {
                (Ok(fields), false) => {
                    let want = parse_fields(expected);
                    if fields == want {
                        Ok(())
                    } else {
                        Err(format!("got {fields:?}, want {want:?}"))
                    }
                }
                (Ok(fields), true) => Err(format!("got {fields:?}, want an error")),
                (Err(e), _) => check(Err(e), expected, word),
            },
        };
        if let Err(why) = outcome {
            let _ = writeln!(failures, "{name}:{line_no}: {word:?}: {why}");
        }
    }
    assert!(failures.is_empty(), "failing cases:\n{failures}");
    cases
}

#[test]
fn buildkit_env_var_corpus() {
    let cases = run(
        "env_vars.txt",
        include_str!("testdata/env_vars.txt"),
        Mode::Word,
    );
    assert!(cases > 200, "only {cases} cases read");
}

#[test]
fn buildkit_words_corpus() {
    let cases = run("words.txt", include_str!("testdata/words.txt"), Mode::Words);
    assert!(cases > 30, "only {cases} cases read");
}

#[test]
fn expansions_corpus() {
    let cases = run(
        "expansions.txt",
        include_str!("testdata/expansions.txt"),
        Mode::Word,
    );
    assert!(cases > 150, "only {cases} cases read");
}
