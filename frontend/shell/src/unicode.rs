//! The character classes BuildKit's lexer takes from Go's `unicode` package.
//!
//! Rust's `char::is_alphabetic` and `char::is_numeric` are wider than Go's
//! `unicode.IsLetter` (category L) and `unicode.IsDigit` (category Nd): they also
//! take combining marks, letter numbers (`Ⅻ`) and other numbers (`²`). A name
//! must stop exactly where BuildKit's does, so the tables come from the Unicode
//! data Go uses (see `tools/gen_unicode_tables.py`).

use crate::unicode_tables::{DECIMAL_DIGIT, LETTER};

fn in_table(table: &[(u32, u32)], c: char) -> bool {
    let c = u32::from(c);
    table
        .binary_search_by(|&(lo, hi)| {
            if hi < c {
                std::cmp::Ordering::Less
            } else if lo > c {
                std::cmp::Ordering::Greater
            } else {
                std::cmp::Ordering::Equal
            }
        })
        .is_ok()
}

/// Go's `unicode.IsLetter`: general category L.
pub(crate) fn is_letter(c: char) -> bool {
    if c.is_ascii() {
        return c.is_ascii_alphabetic();
    }
    in_table(LETTER, c)
}

/// Go's `unicode.IsDigit`: general category Nd.
pub(crate) fn is_digit(c: char) -> bool {
    if c.is_ascii() {
        return c.is_ascii_digit();
    }
    in_table(DECIMAL_DIGIT, c)
}

/// Go's `unicode.IsSpace`: the White_Space property, which is also what
/// `char::is_whitespace` tests.
pub(crate) fn is_space(c: char) -> bool {
    c.is_whitespace()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn letters_are_category_l_only() {
        for c in ['a', 'Z', 'é', 'ª', 'µ', '名', 'ß', 'ǅ', 'ʰ', '한'] {
            assert!(is_letter(c), "{c:?} is a letter");
        }
        // alphabetic for Rust, not letters for Go
        for c in ['Ⅻ', '\u{0301}', 'Ⓐ', '\u{0903}', '_', '1', '$', ' ', '²'] {
            assert!(!is_letter(c), "{c:?} is not a letter");
        }
    }

    #[test]
    fn digits_are_category_nd_only() {
        for c in ['0', '9', '٣', '۹', '०', '０', '𝟎'] {
            assert!(is_digit(c), "{c:?} is a decimal digit");
        }
        for c in ['²', '½', 'Ⅻ', '①', 'a', '名'] {
            assert!(!is_digit(c), "{c:?} is not a decimal digit");
        }
    }

    #[test]
    fn space_is_white_space_property() {
        for c in [
            ' ', '\t', '\n', '\u{b}', '\u{c}', '\r', '\u{85}', '\u{a0}', '\u{3000}',
        ] {
            assert!(is_space(c), "{c:?} is space");
        }
        for c in ['\u{200b}', 'a', '\u{180e}', '\u{feff}'] {
            assert!(!is_space(c), "{c:?} is not space");
        }
    }

    #[test]
    fn tables_are_sorted_and_disjoint() {
        for table in [LETTER, DECIMAL_DIGIT] {
            for pair in table.windows(2) {
                assert!(pair[0].0 <= pair[0].1 && pair[0].1 < pair[1].0, "{pair:?}");
            }
        }
    }
}
