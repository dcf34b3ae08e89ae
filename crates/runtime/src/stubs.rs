//! Mount points the runtime creates in the root file system (an image without `/proc`,
//! `/etc/hosts`, a cache mount's target...) must not end up in the layer. Like
//! BuildKit's `MountStubsCleaner`: note which paths are missing before the run, and
//! afterwards remove those that are still empty stubs. The directory that received a
//! stub gets its times back when its entries are what they were, so an unchanged
//! parent looks unchanged.

use std::collections::BTreeSet;
use std::ffi::OsString;
use std::path::{Path, PathBuf};

use rustix::fs::{AtFlags, Timestamps, CWD};

use crate::rootfs;

/// Paths (on the host) that did not exist before the run, deepest first per mount.
#[derive(Debug, Default)]
pub struct Stubs {
    paths: Vec<PathBuf>,
    /// The existing directories the stubs go into, with their times and entries.
    parents: Vec<(PathBuf, Timestamps, BTreeSet<OsString>)>,
}

impl Stubs {
    /// Notes every missing path of each destination (`/a/b/c` with only `/a` present
    /// notes `/a/b/c` and `/a/b`).
    pub fn record<'a>(root: &Path, destinations: impl IntoIterator<Item = &'a str>) -> Stubs {
        let mut paths = Vec::new();
        let mut parents = Vec::new();
        for dest in destinations {
            let mut p = rootfs::resolve(root, dest);
            let mut missing = false;
            while p.starts_with(root) {
                if std::fs::symlink_metadata(&p).is_ok() {
                    if missing && !parents.iter().any(|(d, _, _)| *d == p) {
                        if let Some(state) = dir_state(&p) {
                            parents.push((p.clone(), state.0, state.1));
                        }
                    }
                    break;
                }
                missing = true;
                if !paths.contains(&p) {
                    paths.push(p.clone());
                }
                if !p.pop() {
                    break;
                }
            }
        }
        Stubs { paths, parents }
    }

    /// Removes the noted paths that are empty directories or empty files now; the
    /// directories they were made in get their times back if their entries are the
    /// same as before.
    pub fn clean(mut self) {
        // Deepest first, so a directory is emptied before it is looked at.
        self.paths
            .sort_by_key(|p| std::cmp::Reverse(p.components().count()));
        for p in &self.paths {
            let Ok(meta) = std::fs::symlink_metadata(p) else {
                continue;
            };
            let empty = if meta.is_dir() {
                std::fs::read_dir(p).is_ok_and(|mut d| d.next().is_none())
            } else {
                meta.is_file() && meta.len() == 0
            };
            if !empty {
                continue;
            }
            let _ = if meta.is_dir() {
                std::fs::remove_dir(p)
            } else {
                std::fs::remove_file(p)
            };
        }
        for (dir, times, entries) in &self.parents {
            if dir_state(dir).is_some_and(|(_, now)| now == *entries) {
                let _ = rustix::fs::utimensat(CWD, dir, times, AtFlags::SYMLINK_NOFOLLOW);
            }
        }
    }
}

/// A directory's access and modification times and its entry names.
fn dir_state(dir: &Path) -> Option<(Timestamps, BTreeSet<OsString>)> {
    let st = rustix::fs::stat(dir).ok()?;
    let entries = std::fs::read_dir(dir)
        .ok()?
        .filter_map(|e| e.ok().map(|e| e.file_name()))
        .collect();
    let times = Timestamps {
        last_access: rustix::fs::Timespec {
            tv_sec: st.st_atime as _,
            tv_nsec: st.st_atime_nsec as _,
        },
        last_modification: rustix::fs::Timespec {
            tv_sec: st.st_mtime as _,
            tv_nsec: st.st_mtime_nsec as _,
        },
    };
    Some((times, entries))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn empty_stubs_go_and_parents_keep_their_times() {
        let tmp = tempfile::tempdir().unwrap();
        let root = tmp.path();
        std::fs::create_dir(root.join("etc")).unwrap();
        std::fs::write(root.join("etc/passwd"), "root:x:0:0::/:/bin/sh\n").unwrap();
        let before = std::fs::metadata(root.join("etc"))
            .unwrap()
            .modified()
            .unwrap();
        let stubs = Stubs::record(
            root,
            [
                "/cache/a/b",
                "/etc/hosts",
                "/etc/passwd",
                "/proc",
                "/cache/c",
                "/kept",
            ],
        );
        // What the runtime and the process do meanwhile.
        std::fs::write(root.join("etc/hosts"), "").unwrap();
        std::fs::create_dir(root.join("proc")).unwrap();
        std::fs::create_dir_all(root.join("cache/a/b")).unwrap();
        std::fs::create_dir_all(root.join("cache/c")).unwrap();
        std::fs::create_dir(root.join("kept")).unwrap();
        std::fs::write(root.join("kept/file"), "written by the process").unwrap();
        stubs.clean();
        assert!(!root.join("etc/hosts").exists());
        assert!(root.join("etc/passwd").exists());
        assert!(!root.join("proc").exists());
        assert!(!root.join("cache").exists());
        assert!(root.join("kept/file").exists());
        let after = std::fs::metadata(root.join("etc"))
            .unwrap()
            .modified()
            .unwrap();
        assert_eq!(before, after);
    }
}
