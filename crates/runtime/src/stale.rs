//! Cgroups of containers whose strata process died without cleaning up.
//!
//! The runtime makes one cgroup per container, named after the container id
//! (`strata-<pid>-<n>-<nanos>`, see `OciRuntime::container_id`), at the top of each
//! hierarchy, and removes it when the container is deleted. A strata process killed by
//! SIGKILL takes its runtime with it (the store reaps both), and the runtime's cgroups
//! stay behind, empty. They are removed here when the pid in their name is no longer
//! running: an empty cgroup of a live process may be one its runtime just made for a
//! container that has not joined it yet.

use std::path::{Path, PathBuf};

/// Where cgroup hierarchies are mounted.
const CGROUP_ROOT: &str = "/sys/fs/cgroup";

/// Removes the empty cgroups of containers of dead strata processes under `root` (the
/// unified hierarchy at `root`, v1 hierarchies one level below). Returns how many went.
pub(crate) fn remove_stale_cgroups(root: &Path) -> usize {
    let mut dirs = vec![root.to_path_buf()];
    if let Ok(entries) = std::fs::read_dir(root) {
        dirs.extend(entries.flatten().map(|e| e.path()).filter(|p| p.is_dir()));
    }
    dirs.iter()
        .flat_map(|d| stale_in(d))
        // rmdir, never a recursive removal: only an empty cgroup can go.
        .filter(|cgroup| std::fs::remove_dir(cgroup).is_ok())
        .count()
}

/// [`remove_stale_cgroups`] on this host's `/sys/fs/cgroup`.
pub(crate) fn remove_stale() -> usize {
    remove_stale_cgroups(Path::new(CGROUP_ROOT))
}

fn stale_in(dir: &Path) -> Vec<PathBuf> {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return Vec::new();
    };
    entries
        .flatten()
        .filter(|e| {
            let name = e.file_name();
            let owner = name
                .to_str()
                .and_then(|n| n.strip_prefix("strata-"))
                .and_then(|rest| rest.split('-').next())
                .and_then(|pid| pid.parse::<u32>().ok());
            owner.is_some_and(|pid| !Path::new(&format!("/proc/{pid}")).exists())
        })
        .map(|e| e.path())
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_cgroups_of_dead_processes_go() {
        let root = tempfile::tempdir().unwrap();
        let mut child = std::process::Command::new("true").spawn().unwrap();
        let dead = child.id();
        child.wait().unwrap();
        let me = std::process::id();
        for dir in [
            format!("strata-{dead}-1-0000abcd"),
            format!("cpu/strata-{dead}-2-0000abcd"),
            format!("cpu/strata-{me}-1-0000abcd"),
            format!("cpu/other-{dead}"),
            format!("pids/strata-{dead}-3-0000abcd/nested"),
        ] {
            std::fs::create_dir_all(root.path().join(dir)).unwrap();
        }
        // A plain directory with a child cannot be removed by rmdir, as a cgroup with
        // a child cgroup cannot.
        assert_eq!(remove_stale_cgroups(root.path()), 2);
        let left = |p: &str| root.path().join(p).exists();
        assert!(!left(&format!("strata-{dead}-1-0000abcd")));
        assert!(!left(&format!("cpu/strata-{dead}-2-0000abcd")));
        assert!(left(&format!("cpu/strata-{me}-1-0000abcd")));
        assert!(left(&format!("cpu/other-{dead}")));
        assert!(left(&format!("pids/strata-{dead}-3-0000abcd/nested")));
    }
}
