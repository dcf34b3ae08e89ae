//! What steps read from local directories, kept so a cache miss can be explained
//! (`strata build --explain`): per vertex, the BLAKE3 of each regular file its COPY/ADD
//! (or RUN bind mount) selected, by path relative to the directory. Bounded: past
//! [`MAX_FILES`] per vertex only a count is kept.

use std::collections::{BTreeMap, HashMap};
use std::path::PathBuf;
use std::sync::{Arc, Mutex};

use sha2::{Digest as _, Sha256};
use strata_digest::Digest;

/// Files listed per vertex; more are counted, not listed.
pub const MAX_FILES: usize = 2000;

/// What one vertex read.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FileReads {
    /// Path (relative to the local directory, `/`-separated) → BLAKE3 of its content.
    pub files: BTreeMap<String, [u8; 32]>,
    /// Files read but not listed (past [`MAX_FILES`]).
    pub unlisted: usize,
    /// A digest of every file read (path and content), listed or not.
    pub all: Digest,
}

/// Shared by every op of a [`Solver`](crate::Solver); cheap to clone.
#[derive(Debug, Default, Clone)]
pub struct ReadLog(Arc<Mutex<HashMap<Digest, FileReads>>>);

impl ReadLog {
    /// Adds what vertex `vertex` read (`(relative path, BLAKE3)` pairs).
    pub(crate) fn add(&self, vertex: Digest, files: Vec<(PathBuf, [u8; 32])>) {
        let mut map = self.0.lock().unwrap_or_else(|e| e.into_inner());
        let reads = map.entry(vertex).or_insert_with(|| FileReads {
            files: BTreeMap::new(),
            unlisted: 0,
            all: Digest::from_bytes([0; 32]),
        });
        let mut all = Sha256::new();
        all.update(reads.all.as_bytes());
        for (path, hash) in files {
            all.update(path.as_os_str().as_encoded_bytes());
            all.update([0]);
            all.update(hash);
            let path = path.to_string_lossy().into_owned();
            if reads.files.len() < MAX_FILES || reads.files.contains_key(&path) {
                reads.files.insert(path, hash);
            } else {
                reads.unlisted += 1;
            }
        }
        reads.all = Digest::from_hasher(all);
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
        assert_eq!(r.files["src/1.c"], [1; 32]);
        assert_eq!(log.get(&strata_digest::sha256(b"other")), None);
        // A change past the bound still changes the digest of everything read.
        let other = ReadLog::default();
        let mut files: Vec<_> = (0..MAX_FILES + 5)
            .map(|i| (PathBuf::from(format!("src/{i}.c")), [i as u8; 32]))
            .collect();
        files[MAX_FILES + 2].1 = [7; 32];
        other.add(v, files);
        let o = other.get(&v).unwrap();
        assert_eq!(o.files, r.files);
        assert_ne!(o.all, r.all);
    }
}
