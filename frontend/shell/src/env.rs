//! Where the values of variables come from.

use std::collections::{BTreeMap, HashMap};
use std::hash::BuildHasher;

/// A set of variables the lexer can look names up in.
///
/// `None` means unset, which is not the same as set to the empty string:
/// `${V-x}` gives `x` only for an unset `V`, `${V:-x}` for an empty one too.
/// Names are compared as given; an implementation that wants Windows'
/// case-insensitive keys (as BuildKit does on Windows) normalizes them itself.
pub trait Env {
    /// The value of `name`, or `None` if it is not set.
    fn lookup(&self, name: &str) -> Option<String>;
}

impl<S: BuildHasher> Env for HashMap<String, String, S> {
    fn lookup(&self, name: &str) -> Option<String> {
        self.get(name).cloned()
    }
}

impl Env for BTreeMap<String, String> {
    fn lookup(&self, name: &str) -> Option<String> {
        self.get(name).cloned()
    }
}

/// A list of `(name, value)` pairs; when a name appears twice the last one wins,
/// like a Dockerfile's `ENV` lines and BuildKit's `EnvsFromSlice`.
impl<K: AsRef<str>, V: AsRef<str>> Env for [(K, V)] {
    fn lookup(&self, name: &str) -> Option<String> {
        self.iter()
            .rev()
            .find(|(k, _)| k.as_ref() == name)
            .map(|(_, v)| v.as_ref().to_owned())
    }
}

impl<K: AsRef<str>, V: AsRef<str>, const N: usize> Env for [(K, V); N] {
    fn lookup(&self, name: &str) -> Option<String> {
        self.as_slice().lookup(name)
    }
}

impl<K: AsRef<str>, V: AsRef<str>> Env for Vec<(K, V)> {
    fn lookup(&self, name: &str) -> Option<String> {
        self.as_slice().lookup(name)
    }
}

/// Any `Fn(&str) -> Option<String>` is an environment.
impl<F: Fn(&str) -> Option<String>> Env for F {
    fn lookup(&self, name: &str) -> Option<String> {
        self(name)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn maps_tell_unset_from_empty() {
        let mut map = BTreeMap::new();
        map.insert("A".to_owned(), String::new());
        assert_eq!(map.lookup("A"), Some(String::new()));
        assert_eq!(map.lookup("B"), None);
        let hash: HashMap<String, String> = [("A".to_owned(), "1".to_owned())].into();
        assert_eq!(hash.lookup("A").as_deref(), Some("1"));
        assert_eq!(hash.lookup("a"), None);
    }

    #[test]
    fn lists_last_wins() {
        let list = [("car", "hat"), ("foo", "bar"), ("car", "bike")];
        assert_eq!(list.lookup("car").as_deref(), Some("bike"));
        assert_eq!(list.lookup("foo").as_deref(), Some("bar"));
        assert_eq!(list.lookup("nope"), None);
        let owned = vec![
            ("x".to_owned(), "1".to_owned()),
            ("x".to_owned(), "2".to_owned()),
        ];
        assert_eq!(owned.lookup("x").as_deref(), Some("2"));
        let empty: Vec<(String, String)> = Vec::new();
        assert_eq!(empty.lookup("x"), None);
    }

    #[test]
    fn closures() {
        let env = |name: &str| (name == "HOME").then(|| "/root".to_owned());
        assert_eq!(env.lookup("HOME").as_deref(), Some("/root"));
        assert_eq!(env.lookup("PATH"), None);
    }
}
