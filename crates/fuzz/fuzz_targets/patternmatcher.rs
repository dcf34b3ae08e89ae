//! The `.dockerignore` reader and matcher on arbitrary patterns and paths.
//!
//! Input: `.dockerignore` content, `\0`, then one path per line; without a `\0` the
//! first line is the content and the other lines are paths. Bytes that are not UTF-8
//! are replaced. The content is read with `read_ignore_file` and compiled with
//! `PatternMatcher::new`, and so are its raw lines (which `new` cleans itself); every
//! path is then matched with `matches`, `matches_exact` and, component by component as a
//! walker would, `matches_using_parent`. Nothing may panic; refused patterns are fine.
#![no_main]

use libfuzzer_sys::fuzz_target;
use strata_patternmatcher::{read_ignore_file, MatchInfo, PatternMatcher};

fuzz_target!(|data: &[u8]| {
    let text = String::from_utf8_lossy(data);
    let (content, paths) = match text.split_once('\0') {
        Some(split) => split,
        None => text.split_once('\n').unwrap_or((&text, "")),
    };

    let patterns = read_ignore_file(content);
    for matcher in [
        PatternMatcher::new(&patterns),
        PatternMatcher::new(content.lines()),
    ] {
        let Ok(matcher) = matcher else { continue };
        for path in paths.lines() {
            let _ = matcher.matches(path);
            let _ = matcher.matches_exact(path);
            walk(&matcher, path);
        }
    }
});

/// Matches `a`, `a/b`, `a/b/c` for the path `a/b/c`, each with its parent's `MatchInfo`.
fn walk(matcher: &PatternMatcher, path: &str) {
    let mut info = MatchInfo::default();
    for (end, _) in path.match_indices('/').chain([(path.len(), "")]) {
        let (_, child) = matcher.matches_using_parent(&path[..end], info);
        info = child;
    }
}
