//! Behaviours that the line-based corpora cannot spell (newlines, a BOM,
//! depth), and a no-panic sweep over pseudo-random words.

use std::collections::BTreeMap;

use strata_shell::{Lexer, ShellError, MAX_NESTING};

fn vars(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
    pairs
        .iter()
        .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
        .collect()
}

#[test]
fn leading_byte_order_mark_is_dropped_like_go_text_scanner() {
    let l = Lexer::default();
    let env = vars(&[("A", "1")]);
    assert_eq!(l.process_word("\u{feff}$A", &env).unwrap(), "1");
    // only at the very start
    assert_eq!(l.process_word("x\u{feff}$A", &env).unwrap(), "x\u{feff}1");
}

#[test]
fn pattern_wildcards_do_not_cross_newlines() {
    let l = Lexer::default();
    let env = vars(&[("T", "one\ntwo\nthree")]);
    assert_eq!(l.process_word("${T##*o}", &env).unwrap(), "ne\ntwo\nthree");
    assert_eq!(l.process_word("${T%%\n*}", &env).unwrap(), "one\ntwo");
    assert_eq!(l.process_word("${T#*\n}", &env).unwrap(), "two\nthree");
    assert_eq!(
        l.process_word("${T//?/.}", &env).unwrap(),
        "...\n...\n....."
    );
    assert_eq!(l.process_word("${T//*/x}", &env).unwrap(), "x\nx\nx");
}

#[test]
fn newlines_and_unicode_spaces_split_fields() {
    let l = Lexer::default();
    let env = vars(&[("V", "a\nb\u{3000}c\u{85}d")]);
    assert_eq!(l.process_words("$V", &env).unwrap(), ["a", "b", "c", "d"]);
    assert_eq!(
        l.process_words("\"$V\"", &env).unwrap(),
        ["a\nb\u{3000}c\u{85}d"]
    );
    assert_eq!(l.process_words("x\ny", &env).unwrap(), ["x", "y"]);
}

#[test]
fn heredoc_detection_options_keep_everything() {
    // BuildKit's parser finds heredocs with RawQuotes + RawEscapes + SkipUnsetEnv.
    let l = Lexer::default()
        .raw_quotes(true)
        .raw_escapes(true)
        .skip_unset_env(true);
    let none: [(&str, &str); 0] = [];
    assert_eq!(
        l.process_words("COPY <<\"EOF\" a\\ b $X ${Y:-z}", &none)
            .unwrap(),
        ["COPY", "<<\"EOF\"", "a\\ b", "$X", "${Y:-z}"]
    );
}

#[test]
fn replace_all_treats_dollar_in_replacement_as_go_template() {
    let l = Lexer::default();
    let env = vars(&[("V", "abc"), ("R", "<$0>")]);
    // a `$` can only reach the replacement escaped or through a variable
    assert_eq!(l.process_word("${V//b/$R}", &env).unwrap(), "a<b>c");
    assert_eq!(l.process_word("${V/b/$R}", &env).unwrap(), "a<$0>c");
    assert_eq!(l.process_word("${V//b/\\$0}", &env).unwrap(), "a\\bc");
    // and an unset one left as written by SkipUnsetEnv is expanded to nothing
    let skip = Lexer::default().skip_unset_env(true);
    assert_eq!(skip.process_word("${V//b/$NOPE}", &env).unwrap(), "ac");
}

#[test]
fn nesting_is_limited_not_crashing() {
    let l = Lexer::default();
    let none: [(&str, &str); 0] = [];
    let nested = |depth: usize| format!("{}x{}", "${a:-".repeat(depth), "}".repeat(depth));
    // the top level counts as one level
    assert_eq!(
        l.process_word(&nested(MAX_NESTING - 1), &none).unwrap(),
        "x"
    );
    let deep = nested(MAX_NESTING);
    match l.process_word(&deep, &none) {
        Err(ShellError::TooDeep { word, limit }) => {
            assert_eq!(word, deep);
            assert_eq!(limit, MAX_NESTING);
        }
        other => panic!("want TooDeep, got {other:?}"),
    }
    // far deeper input still returns
    assert!(l.process_word(&nested(100_000), &none).is_err());
    assert!(l.process_word(&"${a:-".repeat(100_000), &none).is_err());
}

#[test]
fn long_patterns_and_values_stay_fast_enough() {
    // A backtracking matcher would take exponential time here.
    let l = Lexer::default();
    let value = "a".repeat(2_000);
    let env = vars(&[("V", &value)]);
    let word = format!("${{V##{}b}}", "*a".repeat(200));
    assert_eq!(l.process_word(&word, &env).unwrap(), value);
    let word = format!("${{V//{}/x}}", "?".repeat(300));
    assert_eq!(
        l.process_word(&word, &env).unwrap(),
        format!("{}{}", "x".repeat(6), "a".repeat(200))
    );
}

/// xorshift64*: deterministic, no dependency.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }

    fn below(&mut self, n: usize) -> usize {
        (self.next() % n as u64) as usize
    }
}

const ALPHABET: &[char] = &[
    '$', '$', '$', '{', '{', '}', '}', ':', '-', '+', '?', '#', '#', '%', '%', '/', '/', '\\',
    '\\', '`', '\'', '"', '"', '*', '[', ']', '.', ' ', '\t', '\n', 'A', 'B', 'a', '_', '0', '1',
    '@', '!', '=', 'é', '名', '²', '\u{feff}', '\u{0}', '\u{3000}', '🚀',
];

fn random_word(rng: &mut Rng) -> String {
    let len = rng.below(40);
    (0..len)
        .map(|_| ALPHABET[rng.below(ALPHABET.len())])
        .collect()
}

#[test]
fn random_words_never_panic_and_agree_across_entry_points() {
    let mut rng = Rng(0x9E37_79B9_7F4A_7C15);
    let env = vars(&[
        ("A", "x y"),
        ("B", ""),
        ("a", "*"),
        ("_", "\\"),
        ("é", "}{"),
    ]);
    let lexers = [
        Lexer::default(),
        Lexer::new('`'),
        Lexer::default().raw_quotes(true).raw_escapes(true),
        Lexer::default().skip_unset_env(true),
        Lexer::default()
            .skip_process_quotes(true)
            .skip_unset_env(true),
    ];
    let mut ok = 0;
    for i in 0..5_000 {
        let word = random_word(&mut rng);
        let lexer = &lexers[i % lexers.len()];
        let single = lexer.process_word(&word, &env);
        let fields = lexer.process_words(&word, &env);
        let matches = lexer.process_word_with_matches(&word, &env);
        let refs = lexer.references(&word);
        match (&single, &fields, &matches) {
            (Ok(value), Ok(fields), Ok(p)) => {
                ok += 1;
                assert_eq!(&p.value, value, "{word:?}");
                assert!(fields.iter().all(|f| !f.is_empty()), "{word:?}: {fields:?}");
                assert!(p.matched.is_disjoint(&p.unmatched), "{word:?}");
                // every name looked up is a reference, unless a `?` or pattern
                // on the real values made the reference run differ
                if let Ok(refs) = &refs {
                    assert!(
                        p.matched.is_subset(refs) && p.unmatched.is_subset(refs),
                        "{word:?}"
                    );
                }
            }
            (Err(a), Err(b), Err(c)) => {
                assert_eq!(a, b, "{word:?}");
                assert_eq!(a, c, "{word:?}");
                assert_eq!(a.word(), word);
            }
            other => panic!("{word:?}: entry points disagree: {other:?}"),
        }
    }
    // the generator must exercise both outcomes
    assert!(ok > 500 && ok < 4_500, "{ok} of 5000 succeeded");
}
