//! Go's `path/filepath` `Clean` and `Dir` for `/`-separated paths, which Docker applies
//! to patterns and to the paths it matches; reproduced so results agree byte for byte.

/// The shortest path equivalent to `path` by lexical processing, as Go's `filepath.Clean`:
/// repeated `/` collapse, `.` elements go, `x/..` pairs go, a rooted path drops leading
/// `..`, a trailing `/` goes (except for the root), and an empty result becomes `.`.
pub(crate) fn clean(path: &str) -> String {
    let rooted = path.starts_with('/');
    let mut parts: Vec<&str> = Vec::new();
    for part in path.split('/') {
        match part {
            "" | "." => {}
            ".." => match parts.last() {
                Some(&last) if last != ".." => {
                    parts.pop();
                }
                // `/..` is `/`; a relative path keeps the `..` it cannot undo.
                _ if rooted => {}
                _ => parts.push(".."),
            },
            _ => parts.push(part),
        }
    }
    let joined = parts.join("/");
    match (rooted, joined.is_empty()) {
        (true, _) => format!("/{joined}"),
        (false, true) => ".".to_owned(),
        (false, false) => joined,
    }
}

/// All but the last element of `path`, cleaned, as Go's `filepath.Dir`: `a/b/c` → `a/b`,
/// `a` → `.`, `/a` → `/`.
pub(crate) fn dir(path: &str) -> String {
    match path.rfind('/') {
        Some(slash) => clean(&path[..=slash]),
        None => ".".to_owned(),
    }
}

/// The ancestors Docker checks for a path whose cleaned parent is `parent` (never `.`):
/// `a/b` yields `a` then `a/b`. Like Go's `strings.Split` + `Join`, `/` yields `` and `/`.
pub(crate) fn ancestors(parent: &str) -> impl Iterator<Item = &str> {
    parent
        .match_indices('/')
        .map(|(at, _)| &parent[..at])
        .chain(std::iter::once(parent))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The cases of Go's `path/filepath` `TestClean`.
    #[test]
    fn clean_matches_go() {
        let cases = [
            ("abc", "abc"),
            ("abc/def", "abc/def"),
            ("a/b/c", "a/b/c"),
            (".", "."),
            ("..", ".."),
            ("../..", "../.."),
            ("../../abc", "../../abc"),
            ("/abc", "/abc"),
            ("/", "/"),
            ("", "."),
            ("abc/", "abc"),
            ("abc/def/", "abc/def"),
            ("a/b/c/", "a/b/c"),
            ("./", "."),
            ("../", ".."),
            ("../../", "../.."),
            ("/abc/", "/abc"),
            ("abc//def//ghi", "abc/def/ghi"),
            ("//abc", "/abc"),
            ("///abc", "/abc"),
            ("//abc//", "/abc"),
            ("abc//", "abc"),
            ("abc/./def", "abc/def"),
            ("/./abc/def", "/abc/def"),
            ("abc/.", "abc"),
            ("abc/def/ghi/../jkl", "abc/def/jkl"),
            ("abc/def/../ghi/../jkl", "abc/jkl"),
            ("abc/def/..", "abc"),
            ("abc/def/../..", "."),
            ("/abc/def/../..", "/"),
            ("abc/def/../../..", ".."),
            ("/abc/def/../../..", "/"),
            ("abc/def/../../../ghi/jkl/../../../mno", "../../mno"),
            ("/../abc", "/abc"),
            ("abc/./../def", "def"),
            ("abc//./../def", "def"),
            ("abc/../../././../def", "../../def"),
            // Docker relies on these for patterns.
            ("./foo", "foo"),
            ("!./foo", "!./foo"),
            ("!a/../b", "b"),
            ("**/", "**"),
        ];
        for (input, want) in cases {
            assert_eq!(clean(input), want, "clean({input:?})");
        }
    }

    #[test]
    fn dir_matches_go() {
        let cases = [
            ("", "."),
            (".", "."),
            ("/.", "/"),
            ("/", "/"),
            ("////", "/"),
            ("/foo", "/"),
            ("x/", "x"),
            ("abc", "."),
            ("abc/def", "abc"),
            ("a/b/.x", "a/b"),
            ("a/b/c.", "a/b"),
            ("a/b/c.x", "a/b"),
            ("dir/dir2/file/", "dir/dir2/file"),
        ];
        for (input, want) in cases {
            assert_eq!(dir(input), want, "dir({input:?})");
        }
    }

    #[test]
    fn ancestors_split_like_go() {
        let got: Vec<&str> = ancestors("a/b/c").collect();
        assert_eq!(got, ["a", "a/b", "a/b/c"]);
        let got: Vec<&str> = ancestors("a").collect();
        assert_eq!(got, ["a"]);
        let got: Vec<&str> = ancestors("/").collect();
        assert_eq!(got, ["", "/"]);
    }
}
