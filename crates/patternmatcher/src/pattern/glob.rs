//! The syntax check Docker runs on every pattern: Go's `filepath.Match(pattern, ".")`,
//! which in current Go reports a malformed pattern wherever it is (Go 1.19 and older
//! stopped checking at the first part that failed to match `.`).

use crate::error::SyntaxProblem;

/// Checks `pattern` against `filepath.Match`'s grammar: `\` must escape something, and a
/// class is `[`, an optional `^`, one or more members (`c` or `lo-hi`, each possibly
/// `\`-escaped; a bare `-` or `]` is an error), then `]`.
pub(super) fn check(pattern: &str) -> Result<(), SyntaxProblem> {
    let mut chars = pattern.chars();
    while let Some(c) = chars.next() {
        match c {
            '\\' if chars.next().is_none() => return Err(SyntaxProblem::TrailingBackslash),
            '[' => check_class(&mut chars)?,
            _ => {}
        }
    }
    Ok(())
}

/// Checks a class after its `[` (Go's `matchChunk` class loop).
fn check_class(chars: &mut std::str::Chars<'_>) -> Result<(), SyntaxProblem> {
    if chars.clone().next() == Some('^') {
        chars.next();
    }
    let mut members = 0;
    loop {
        if members > 0 && chars.clone().next() == Some(']') {
            chars.next();
            return Ok(());
        }
        member(chars)?;
        if chars.clone().next() == Some('-') {
            chars.next();
            member(chars)?;
        }
        members += 1;
    }
}

/// One class character (Go's `getEsc`): not a bare `-` or `]`, and something must follow.
fn member(chars: &mut std::str::Chars<'_>) -> Result<(), SyntaxProblem> {
    match chars.next() {
        None => return Err(SyntaxProblem::UnterminatedClass),
        Some(c @ ('-' | ']')) => return Err(SyntaxProblem::MisplacedInClass(c)),
        Some('\\') if chars.next().is_none() => return Err(SyntaxProblem::UnterminatedClass),
        Some(_) => {}
    }
    if chars.as_str().is_empty() {
        return Err(SyntaxProblem::UnterminatedClass);
    }
    Ok(())
}
