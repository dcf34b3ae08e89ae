//! Paths inside a container's root file system, resolved like the runtime resolves
//! them (symlinks followed, but never out of the root).

use std::io;
use std::path::{Component, Path, PathBuf};

use rustix::fs::{Mode, OFlags, ResolveFlags};

/// The host path that `path` (absolute, in the container) names in `root`: every
/// symlink on the way is followed with `root` as `/`, so the result is always under
/// `root`. The path need not exist; resolution stops at the first missing component.
pub fn resolve(root: &Path, path: &str) -> PathBuf {
    let mut todo: Vec<PathBuf> = vec![PathBuf::from(path)];
    let mut done = PathBuf::new(); // relative to root
    let mut hops = 0;
    while let Some(next) = todo.pop() {
        let mut rest: Vec<Component> = next.components().collect();
        rest.reverse();
        while let Some(c) = rest.pop() {
            match c {
                Component::RootDir | Component::CurDir | Component::Prefix(_) => {}
                Component::ParentDir => {
                    done.pop();
                }
                Component::Normal(name) => {
                    let candidate = done.join(name);
                    let host = root.join(&candidate);
                    match std::fs::symlink_metadata(&host) {
                        Ok(m) if m.file_type().is_symlink() && hops < 40 => {
                            hops += 1;
                            let target = std::fs::read_link(&host).unwrap_or_default();
                            // Resolve the target, then what was left.
                            let left: PathBuf = rest.iter().rev().collect();
                            if target.is_absolute() {
                                done = PathBuf::new();
                            }
                            todo.push(left);
                            todo.push(target);
                            break;
                        }
                        _ => done = candidate,
                    }
                }
            }
        }
    }
    root.join(done)
}

/// Opens `path` (absolute, in the container) read-only, resolving it inside `root`
/// (`openat2` with `RESOLVE_IN_ROOT`): a symlink cannot lead out of the image.
pub fn open(root: &Path, path: &str) -> io::Result<std::fs::File> {
    let dir = rustix::fs::open(
        root,
        OFlags::RDONLY | OFlags::DIRECTORY | OFlags::CLOEXEC,
        Mode::empty(),
    )?;
    let fd = rustix::fs::openat2(
        &dir,
        path.trim_start_matches('/'),
        OFlags::RDONLY | OFlags::CLOEXEC,
        Mode::empty(),
        ResolveFlags::IN_ROOT,
    )?;
    Ok(std::fs::File::from(fd))
}

/// `mkdir -p` of `path` (absolute, in the container) inside `root`, new directories
/// 0755 and owned by root. Existing components are followed (inside the root).
pub fn mkdir_all(root: &Path, path: &str) -> io::Result<()> {
    let root_fd = rustix::fs::open(
        root,
        OFlags::PATH | OFlags::DIRECTORY | OFlags::CLOEXEC,
        Mode::empty(),
    )?;
    let mut prefix = PathBuf::new();
    for c in Path::new(path).components() {
        let Component::Normal(name) = c else {
            if c == Component::ParentDir {
                prefix.pop();
            }
            continue;
        };
        let parent = rustix::fs::openat2(
            &root_fd,
            if prefix.as_os_str().is_empty() {
                Path::new(".")
            } else {
                &prefix
            },
            OFlags::PATH | OFlags::DIRECTORY | OFlags::CLOEXEC,
            Mode::empty(),
            ResolveFlags::IN_ROOT,
        )?;
        match rustix::fs::mkdirat(&parent, name, Mode::from_raw_mode(0o755)) {
            Ok(()) => {
                rustix::fs::chownat(
                    &parent,
                    name,
                    Some(rustix::fs::Uid::ROOT),
                    Some(rustix::fs::Gid::ROOT),
                    rustix::fs::AtFlags::SYMLINK_NOFOLLOW,
                )?;
                // mkdir honours the umask; set the mode we promised.
                rustix::fs::chmodat(
                    &parent,
                    name,
                    Mode::from_raw_mode(0o755),
                    rustix::fs::AtFlags::empty(),
                )?;
            }
            Err(rustix::io::Errno::EXIST) => {}
            Err(e) => return Err(e.into()),
        }
        prefix.push(name);
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn resolve_keeps_symlinks_inside_the_root() {
        let tmp = tempfile::tempdir().unwrap();
        let root = tmp.path();
        std::fs::create_dir_all(root.join("real/etc")).unwrap();
        std::os::unix::fs::symlink("/real/etc", root.join("etc")).unwrap();
        std::os::unix::fs::symlink("../../../../outside", root.join("real/etc/up")).unwrap();
        assert_eq!(resolve(root, "/etc/hosts"), root.join("real/etc/hosts"));
        assert_eq!(resolve(root, "/etc/up/x"), root.join("outside/x"));
        assert_eq!(resolve(root, "/a/../b"), root.join("b"));
    }

    #[test]
    fn mkdir_all_creates_missing_directories_inside_the_root() {
        let tmp = tempfile::tempdir().unwrap();
        let root = tmp.path();
        std::os::unix::fs::symlink("/", root.join("loop")).unwrap();
        mkdir_all(root, "/loop/work/dir").unwrap();
        assert!(root.join("work/dir").is_dir());
        mkdir_all(root, "/work/dir").unwrap();
    }
}
