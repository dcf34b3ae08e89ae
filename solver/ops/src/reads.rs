//! What steps read from local directories, kept so a cache miss can be explained
//! (`strata build --explain`): per vertex, the sha256 of each regular file its COPY/ADD
//! (or RUN bind mount) selected, by path relative to the directory. Bounded: past
//! [`MAX_FILES`] per vertex only a count is kept.

use std::collections::{BTreeMap, HashMap};
use std::path::PathBuf;
use std::sync::{Arc, Mutex};

use strata_digest::Digest;

/// Files listed per vertex; more are counted, not listed.
pub const MAX_FILES: usize = 2000;

/// What one vertex read.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct FileReads {
    /// Path (relative to the local directory, `/`-separated) → content digest.
    pub files: BTreeMap<String, Digest>,
    /// Files read but not listed (past [`MAX_FILES`]).
    pub unlisted: usize,
}

/// Shared by every op of a [`Solver`](crate::Solver); cheap to clone.
#[derive(Debug, Default, Clone)]
pub struct ReadLog(Arc<Mutex<HashMap<Digest, FileReads>>>);

impl ReadLog {
    /// Adds what vertex `vertex` read (`(relative path, sha256)` pairs).
    pub(crate) fn add(&self, vertex: Digest, files: Vec<(PathBuf, [u8; 32])>) {
        let mut map = self.0.lock().unwrap_or_else(|e| e.into_inner());
        let reads = map.entry(vertex).or_default();
        for (path, hash) in files {
            let path = path.to_string_lossy().into_owned();
            if reads.files.len() < MAX_FILES || reads.files.contains_key(&path) {
                reads.files.insert(path, Digest::from_bytes(hash));
            } else {
                reads.unlisted += 1;
            }
        }
    }

    /// What `vertex` read in this solve, if it read local files.
    pub fn get(&self, vertex: &Digest) -> Option<FileReads> {
        let map = self.0.lock().unwrap_or_else(|e| e.into_inner());
        map.get(vertex).cloned()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_are_listed_per_vertex_up_to_the_bound() {
        let log = ReadLog::default();
        let v = strata_digest::sha256(b"v");
        let files = (0..MAX_FILES + 5)
            .map(|i| (PathBuf::from(format!("src/{i}.c")), [i as u8; 32]))
            .collect();
        log.add(v, files);
        let r = log.get(&v).unwrap();
        assert_eq!((r.files.len(), r.unlisted), (MAX_FILES, 5));
        assert_eq!(r.files["src/1.c"], Digest::from_bytes([1; 32]));
        assert_eq!(log.get(&strata_digest::sha256(b"other")), None);
    }
}
