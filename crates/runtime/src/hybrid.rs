//! crun on cgroup v1 hybrid hosts.
//!
//! A hybrid host mounts the cgroup v1 controllers under `/sys/fs/cgroup/*` and a
//! cgroup2 hierarchy beside them (`/sys/fs/cgroup/unified`). crun 1.8 refuses such a
//! host when that cgroup2 hierarchy has controllers of its own ("cgroups in hybrid
//! mode not supported, drop all controllers from cgroupv2"); runc ignores them. Every
//! crun invocation strata makes there (`run`, `kill`, `delete`, the probe, the
//! attached run of `strata debug shell`) runs in a private mount namespace of its own
//! where the cgroup2 mount is detached: crun then sees a plain cgroup v1 host and
//! makes each container's cgroups in the v1 hierarchies
//! (`/sys/fs/cgroup/<controller>/<container id>`), as runc does. So:
//!
//! - the container's processes are limited and accounted as under runc (the v1
//!   controllers hold every controller the cgroup2 mount does not);
//! - `crun kill`/`delete --force` find the container through its state under
//!   `--root` (a plain directory, the same in every namespace) and remove the v1
//!   cgroups, which are the same directories in the host's namespace;
//! - the stale-cgroup reaper ([`crate::stale`]) removes them from the host's view
//!   (`/sys/fs/cgroup/<controller>/strata-…`) when their strata process died;
//! - a killed strata's container and runtime are found by pid and process group
//!   (`Store::procs_dir`), which mount namespaces do not change.
//!
//! The namespace is made between fork and exec (`unshare(CLONE_NEWNS)`), and dies with
//! the runtime process and its container. Its mounts are made slaves first, so that
//! detaching the cgroup2 mount there never propagates back to the host.

use std::ffi::CString;
use std::os::unix::ffi::OsStrExt;
use std::path::Path;

/// The cgroup2 mount points crun would refuse this host for: on a hybrid host (v1
/// controllers mounted, so `/sys/fs/cgroup` itself is not cgroup2), the cgroup2 mounts
/// whose `cgroup.controllers` is not empty. Empty elsewhere.
pub(crate) fn refused_cgroup2_mounts() -> Vec<CString> {
    let Ok(info) = std::fs::read_to_string("/proc/self/mountinfo") else {
        return Vec::new();
    };
    let mounts = parse_mounts(&info);
    let hybrid = mounts.iter().any(|(_, fs)| fs == "cgroup")
        && !mounts
            .iter()
            .any(|(p, fs)| fs == "cgroup2" && p == "/sys/fs/cgroup");
    if !hybrid {
        return Vec::new();
    }
    mounts
        .into_iter()
        .filter(|(_, fs)| fs == "cgroup2")
        .filter(|(p, _)| {
            std::fs::read_to_string(Path::new(p).join("cgroup.controllers"))
                .is_ok_and(|c| !c.trim().is_empty())
        })
        .filter_map(|(p, _)| CString::new(Path::new(&p).as_os_str().as_bytes()).ok())
        .collect()
}

/// (mount point, file system type) of each line of a `mountinfo`. Mount points with
/// escaped characters (space, tab, newline, backslash) are left out: no cgroup
/// hierarchy is mounted at such a path.
fn parse_mounts(info: &str) -> Vec<(String, String)> {
    info.lines()
        .filter_map(|l| {
            let point = l.split(' ').nth(4)?;
            let (_, after) = l.split_once(" - ")?;
            let fs = after.split(' ').next()?;
            (!point.contains('\\')).then(|| (point.to_string(), fs.to_string()))
        })
        .collect()
}

/// Makes `cmd` start in a private mount namespace without the mounts `hide` (see the
/// module docs). Nothing to do when `hide` is empty.
#[allow(unsafe_code)] // between fork and exec; see the SAFETY notes
pub(crate) fn hide_mounts(cmd: &mut std::process::Command, hide: &[CString]) {
    if hide.is_empty() {
        return;
    }
    let hide = hide.to_vec();
    let pre_exec = move || -> std::io::Result<()> {
        use rustix::mount::{mount_change, unmount, MountPropagationFlags, UnmountFlags};
        // SAFETY: the forked child is single-threaded: no other thread shares its file
        // descriptor table (NEWNS unshares only the mount namespace and fs info).
        unsafe { rustix::thread::unshare_unsafe(rustix::thread::UnshareFlags::NEWNS) }?;
        mount_change(
            c"/",
            MountPropagationFlags::DOWNSTREAM | MountPropagationFlags::REC,
        )?;
        for point in &hide {
            unmount(point.as_c_str(), UnmountFlags::DETACH)?;
        }
        Ok(())
    };
    // SAFETY: the closure only makes raw system calls on memory allocated before the
    // fork (no allocation, no locks): async-signal-safe.
    unsafe {
        std::os::unix::process::CommandExt::pre_exec(cmd, pre_exec);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn mountinfo_lines_give_mount_points_and_types() {
        let info = "\
31 23 0:28 / /sys/fs/cgroup rw,relatime - tmpfs tmpfs rw,mode=755
32 31 0:29 / /sys/fs/cgroup/cpu rw,relatime - cgroup cgroup rw,cpu
41 31 0:38 / /sys/fs/cgroup/unified rw,relatime shared:9 - cgroup2 cgroup2 rw
50 23 0:40 / /mnt/a\\040b rw - ext4 /dev/sda rw
51 23 0:41 / /mnt/c rw - ext4 /dev/sdb rw
";
        assert_eq!(
            parse_mounts(info),
            [
                ("/sys/fs/cgroup", "tmpfs"),
                ("/sys/fs/cgroup/cpu", "cgroup"),
                ("/sys/fs/cgroup/unified", "cgroup2"),
                ("/mnt/c", "ext4"),
            ]
            .map(|(p, f)| (p.to_string(), f.to_string()))
        );
    }
}
