//! The shell-word lexer on arbitrary words and variables.
//!
//! Input: `WORD` then up to eight `\0NAME=VALUE` variables (a segment without `=` sets
//! the name to the empty string); bytes that are not UTF-8 are replaced. The word is
//! expanded with `\` and `` ` `` as escape character, each with every option off and
//! with every option on, by `process_word`, `process_words` and `references`: any word
//! expands or fails with a `ShellError`, never a panic.
#![no_main]

use std::collections::BTreeMap;

use libfuzzer_sys::fuzz_target;
use strata_shell::Lexer;

const MAX_VARS: usize = 8;

fuzz_target!(|data: &[u8]| {
    let text = String::from_utf8_lossy(data);
    let mut segments = text.split('\0');
    let word = segments.next().unwrap_or_default();
    let env: BTreeMap<String, String> = segments
        .take(MAX_VARS)
        .map(|var| match var.split_once('=') {
            Some((name, value)) => (name.to_owned(), value.to_owned()),
            None => (var.to_owned(), String::new()),
        })
        .collect();

    for escape in ['\\', '`'] {
        let plain = Lexer::new(escape);
        let raw = Lexer::new(escape)
            .raw_quotes(true)
            .raw_escapes(true)
            .skip_unset_env(true)
            .skip_process_quotes(true);
        for lexer in [&plain, &raw] {
            let _ = lexer.process_word(word, &env);
            let _ = lexer.process_words(word, &env);
        }
        let _ = plain.references(word);
    }
});
