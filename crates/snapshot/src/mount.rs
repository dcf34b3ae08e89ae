//! Overlay mounts of layer chains.
//!
//! Options are always `redirect_dir=off,index=off,metacopy=off` (with either
//! on, an upperdir walk gives wrong layers). The lower directories go to the
//! kernel through the new mount API, one `fsconfig(lowerdir+)` call each, so
//! there is no option-page limit (overlayfs itself allows 500 lowers). Kernels
//! before 6.8 lack `lowerdir+`; there we fall back to mount(2) with every
//! directory spelled `/proc/self/fd/N` (about 18 bytes a layer, some 200
//! layers in the 4096-byte page). A chain that names a layer twice is mounted
//! with its topmost occurrence only: overlayfs refuses a repeated lower, and
//! the lower copy could never show through the identical upper one.
//!
//! Writable overlays are `volatile` (Linux 5.10+; mounted without it where the
//! kernel lacks it): overlayfs then skips every sync of the upper file system —
//! `fsync` in the container, the fsync of each copied-up file, and the syncfs of the
//! whole upper file system that unmounting otherwise does (tens of milliseconds per
//! RUN here, over a second when other work has dirtied the page cache). A layer
//! is already stored without syncing its files (see [`crate::Layers::commit`]),
//! and the work directory that records a volatile mount is thrown away with the
//! layer's scratch directory, so nothing is lost that was kept before.

use std::os::fd::{AsRawFd, OwnedFd};
use std::path::{Path, PathBuf};

use rustix::fs::{Mode, OFlags, CWD};
use rustix::io::Errno;
use rustix::mount::{
    FsMountFlags, FsOpenFlags, MountAttrFlags, MountFlags, MoveMountFlags, UnmountFlags,
};

use crate::chain::Chain;
use crate::error::{Error, Result};
use crate::layers::Layers;

const OPTIONS: [(&str, &str); 3] = [
    ("redirect_dir", "off"),
    ("index", "off"),
    ("metacopy", "off"),
];

/// The directories of a writable overlay: `upper` receives the changes (it
/// becomes a layer), `work` is overlayfs's scratch space on the same file
/// system. [`crate::NewLayer::writable`] provides both.
#[derive(Clone, Copy, Debug)]
pub struct Writable<'a> {
    pub upper: &'a Path,
    pub work: &'a Path,
}

/// A mounted view; unmounted (lazily, `MNT_DETACH`) when dropped.
#[derive(Debug)]
#[must_use = "the view is unmounted when the guard is dropped"]
pub struct MountGuard {
    target: PathBuf,
    mounted: bool,
}

impl MountGuard {
    /// Where the view is mounted.
    pub fn path(&self) -> &Path {
        &self.target
    }

    /// Unmounts now, reporting failure (e.g. `EBUSY` while a process uses it).
    /// On failure the guard still detaches the mount when dropped.
    pub fn unmount(mut self) -> Result<()> {
        rustix::mount::unmount(&self.target, UnmountFlags::empty()).map_err(|e| {
            Error::Unmount {
                target: self.target.clone(),
                source: e.into(),
            }
        })?;
        self.mounted = false;
        Ok(())
    }
}

impl Drop for MountGuard {
    fn drop(&mut self) {
        if self.mounted {
            let _ = rustix::mount::unmount(&self.target, UnmountFlags::DETACH);
        }
    }
}

/// Mounts the merged, read-only view of `chain` at the existing directory
/// `target`. An empty chain gives an empty read-only tmpfs; a single layer is
/// stacked on an empty directory (overlayfs wants two lowers without an upper),
/// so its whiteouts and opaque markers are hidden like in any other view.
pub fn mount_chain(layers: &Layers, chain: &Chain, target: &Path) -> Result<MountGuard> {
    let mut lowers = lower_dirs(layers, chain)?;
    if lowers.is_empty() {
        rustix::mount::mount(
            "strata-empty",
            target,
            "tmpfs",
            MountFlags::RDONLY | MountFlags::NOSUID | MountFlags::NODEV,
            c"mode=755,size=4k",
        )
        .map_err(|e| mount_err("an empty view", target, Vec::new(), e))?;
        return Ok(MountGuard {
            target: target.to_path_buf(),
            mounted: true,
        });
    }
    if lowers.len() == 1 {
        lowers.push(layers.empty_dir().to_path_buf());
    }
    mount_overlay(&lowers, None, target, Api::Auto)
}

/// Mounts `chain` writable at `target`: changes land in `rw.upper` in overlay
/// upperdir format, ready for [`Layers::commit`]. Used for RUN.
pub fn mount_rw(
    layers: &Layers,
    chain: &Chain,
    rw: Writable<'_>,
    target: &Path,
) -> Result<MountGuard> {
    let mut lowers = lower_dirs(layers, chain)?;
    if lowers.is_empty() {
        lowers.push(layers.empty_dir().to_path_buf());
    }
    mount_overlay(&lowers, Some(rw), target, Api::Auto)
}

/// Top first, each layer once (its topmost occurrence).
fn lower_dirs(layers: &Layers, chain: &Chain) -> Result<Vec<PathBuf>> {
    let mut seen = std::collections::HashSet::new();
    let mut out = Vec::new();
    for diff_id in chain.layers().iter().rev() {
        if seen.insert(*diff_id) {
            out.push(layers.existing(diff_id)?);
        }
    }
    Ok(out)
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Api {
    /// `fsopen`/`fsconfig(lowerdir+)`, else mount(2).
    Auto,
    /// mount(2) with `/proc/self/fd/N` paths only (tests of the fallback).
    #[cfg_attr(not(test), allow(dead_code))]
    Legacy,
}

/// `lowers` top first.
pub(crate) fn mount_overlay(
    lowers: &[PathBuf],
    rw: Option<Writable<'_>>,
    target: &Path,
    api: Api,
) -> Result<MountGuard> {
    let mut log = Vec::new();
    if api == Api::Auto {
        match new_api(lowers, rw, target) {
            Ok(()) => {
                return Ok(MountGuard {
                    target: target.to_path_buf(),
                    mounted: true,
                })
            }
            // No new mount API, or no `lowerdir+` (before 6.8), or an overlay
            // without fs_context support (before 6.5): try mount(2).
            Err((Errno::NOSYS | Errno::INVAL, messages)) => log = messages,
            Err((e, messages)) => return Err(mount_err("overlay", target, messages, e)),
        }
    }
    legacy(lowers, rw, target).map_err(|e| match e {
        Error::Mount {
            what,
            target,
            log: _,
            source,
        } => Error::Mount {
            what,
            target,
            log,
            source,
        },
        other => other,
    })?;
    Ok(MountGuard {
        target: target.to_path_buf(),
        mounted: true,
    })
}

/// The new mount API; on failure the errno and the kernel's messages.
fn new_api(
    lowers: &[PathBuf],
    rw: Option<Writable<'_>>,
    target: &Path,
) -> Result<(), (Errno, Vec<String>)> {
    let fs = rustix::mount::fsopen("overlay", FsOpenFlags::FSOPEN_CLOEXEC)
        .map_err(|e| (e, Vec::new()))?;
    let fail = |e: Errno| (e, kernel_log(&fs));
    for lower in lowers {
        rustix::mount::fsconfig_set_string(&fs, "lowerdir+", lower.as_path()).map_err(fail)?;
    }
    if let Some(rw) = rw {
        rustix::mount::fsconfig_set_string(&fs, "upperdir", rw.upper).map_err(fail)?;
        rustix::mount::fsconfig_set_string(&fs, "workdir", rw.work).map_err(fail)?;
        if rustix::mount::fsconfig_set_flag(&fs, "volatile").is_err() {
            // Before 5.10: a mount that syncs. Drop the kernel's complaint.
            let _ = kernel_log(&fs);
        }
    }
    for (key, value) in OPTIONS {
        rustix::mount::fsconfig_set_string(&fs, key, value).map_err(fail)?;
    }
    rustix::mount::fsconfig_create(&fs).map_err(fail)?;
    let attrs = if rw.is_some() {
        MountAttrFlags::empty()
    } else {
        MountAttrFlags::MOUNT_ATTR_RDONLY
    };
    let mnt = rustix::mount::fsmount(&fs, FsMountFlags::FSMOUNT_CLOEXEC, attrs).map_err(fail)?;
    rustix::mount::move_mount(
        &mnt,
        "",
        CWD,
        target,
        MoveMountFlags::MOVE_MOUNT_F_EMPTY_PATH,
    )
    .map_err(|e| (e, Vec::new()))?;
    Ok(())
}

/// The messages the kernel queued on an fs context (`e overlayfs: ...`).
fn kernel_log(fs: &OwnedFd) -> Vec<String> {
    let mut out = Vec::new();
    let mut buf = [0u8; 1024];
    while let Ok(n) = rustix::io::read(fs, &mut buf) {
        if n == 0 {
            break;
        }
        out.push(String::from_utf8_lossy(&buf[..n]).trim_end().to_string());
    }
    out
}

fn legacy(lowers: &[PathBuf], rw: Option<Writable<'_>>, target: &Path) -> Result<()> {
    // The fds keep the directories open while the kernel resolves the paths.
    let open = |p: &Path| {
        rustix::fs::open(
            p,
            OFlags::PATH | OFlags::DIRECTORY | OFlags::CLOEXEC,
            Mode::empty(),
        )
        .map_err(|e| Error::Sys {
            op: "opening",
            path: p.to_path_buf(),
            source: e.into(),
        })
    };
    let fd_path = |fd: &OwnedFd| format!("/proc/self/fd/{}", fd.as_raw_fd());
    let lower_fds = lowers.iter().map(|p| open(p)).collect::<Result<Vec<_>>>()?;
    let mut data = String::from("lowerdir=");
    data.push_str(&lower_fds.iter().map(fd_path).collect::<Vec<_>>().join(":"));
    let rw_fds = match rw {
        Some(rw) => Some((open(rw.upper)?, open(rw.work)?)),
        None => None,
    };
    if let Some((upper, work)) = &rw_fds {
        data.push_str(&format!(
            ",upperdir={},workdir={}",
            fd_path(upper),
            fd_path(work)
        ));
    }
    for (key, value) in OPTIONS {
        data.push_str(&format!(",{key}={value}"));
    }
    // One page, including the terminating NUL.
    if data.len() >= 4096 {
        return Err(Error::ChainTooLong {
            layers: lowers.len(),
        });
    }
    let flags = if rw.is_some() {
        MountFlags::empty()
    } else {
        MountFlags::RDONLY
    };
    let mount = |data: &str| {
        let data = std::ffi::CString::new(data).expect("paths given as /proc/self/fd/N");
        rustix::mount::mount("overlay", target, "overlay", flags, data.as_c_str())
    };
    let mounted = match rw {
        // Before 5.10 `volatile` is unknown (EINVAL): mount without it.
        Some(_) => match mount(&format!("{data},volatile")) {
            Err(Errno::INVAL) => mount(&data),
            other => other,
        },
        None => mount(&data),
    };
    mounted.map_err(|e| mount_err("overlay", target, Vec::new(), e))?;
    Ok(())
}

fn mount_err(what: &'static str, target: &Path, log: Vec<String>, e: Errno) -> Error {
    Error::Mount {
        what,
        target: target.to_path_buf(),
        log,
        source: e.into(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// `n` lower directories, each with its own file and its own `top`.
    fn lowers(root: &Path, n: usize) -> Vec<PathBuf> {
        (0..n)
            .map(|i| {
                let dir = root.join(format!("layer-with-a-long-name-{i:04}"));
                fs_err::create_dir(&dir).unwrap();
                fs_err::write(dir.join(format!("f{i}")), "").unwrap();
                fs_err::write(dir.join("top"), i.to_string()).unwrap();
                dir
            })
            .rev()
            .collect()
    }

    fn kernel_at_least(major: u32, minor: u32) -> bool {
        let release = fs_err::read_to_string("/proc/sys/kernel/osrelease").unwrap();
        let mut parts = release.trim().split(|c: char| !c.is_ascii_digit());
        let got: (u32, u32) = (
            parts.next().unwrap().parse().unwrap(),
            parts.next().unwrap().parse().unwrap(),
        );
        got >= (major, minor)
    }

    #[test]
    fn legacy_mount_takes_150_layers_through_proc_fd_paths() {
        let tmp = tempfile::tempdir().unwrap();
        let lowers = lowers(tmp.path(), 150);
        // Spelled out, these paths would need about 10 KB: over the page.
        assert!(
            lowers
                .iter()
                .map(|p| p.as_os_str().len() + 1)
                .sum::<usize>()
                > 4096
        );
        let target = tmp.path().join("view");
        fs_err::create_dir(&target).unwrap();
        let guard = mount_overlay(&lowers, None, &target, Api::Legacy).unwrap();
        assert_eq!(fs_err::read_to_string(target.join("top")).unwrap(), "149");
        assert_eq!(fs_err::read_dir(&target).unwrap().count(), 151);
        guard.unmount().unwrap();
    }

    #[test]
    fn legacy_mount_reports_a_chain_too_long_for_one_page() {
        let tmp = tempfile::tempdir().unwrap();
        let lowers = lowers(tmp.path(), 300);
        let target = tmp.path().join("view");
        fs_err::create_dir(&target).unwrap();
        let err = mount_overlay(&lowers, None, &target, Api::Legacy).unwrap_err();
        assert!(matches!(err, Error::ChainTooLong { layers: 300 }), "{err}");
    }

    #[test]
    fn new_mount_api_takes_300_layers_on_kernels_with_lowerdir_plus() {
        if !kernel_at_least(6, 8) {
            eprintln!("skipped: lowerdir+ needs Linux 6.8");
            return;
        }
        let tmp = tempfile::tempdir().unwrap();
        let lowers = lowers(tmp.path(), 300);
        let target = tmp.path().join("view");
        fs_err::create_dir(&target).unwrap();
        // Straight through the new API, no fallback.
        new_api(&lowers, None, &target)
            .map_err(|(e, log)| format!("{e}: {log:?}"))
            .unwrap();
        let guard = MountGuard {
            target: target.clone(),
            mounted: true,
        };
        assert_eq!(fs_err::read_to_string(target.join("top")).unwrap(), "299");
        guard.unmount().unwrap();
    }

    /// The super options of the mount at `target`, from /proc/self/mountinfo.
    fn super_options(target: &Path) -> String {
        let info = fs_err::read_to_string("/proc/self/mountinfo").unwrap();
        let line = info
            .lines()
            .find(|l| l.split(' ').nth(4) == Some(target.to_str().unwrap()))
            .unwrap_or_else(|| panic!("{} is not mounted", target.display()));
        line.rsplit(' ').next().unwrap().to_string()
    }

    #[test]
    fn writable_overlays_are_volatile_and_read_only_views_not() {
        for api in [Api::Auto, Api::Legacy] {
            let tmp = tempfile::tempdir().unwrap();
            let lowers = lowers(tmp.path(), 2);
            let (upper, work) = (tmp.path().join("upper"), tmp.path().join("work"));
            fs_err::create_dir(&upper).unwrap();
            fs_err::create_dir(&work).unwrap();
            let target = tmp.path().join("rw");
            fs_err::create_dir(&target).unwrap();
            let rw = Writable {
                upper: &upper,
                work: &work,
            };
            let guard = mount_overlay(&lowers, Some(rw), &target, api).unwrap();
            let options = super_options(&target);
            // Shown as `fsync=volatile` since Linux 6.15.
            assert!(
                options
                    .split(',')
                    .any(|o| o == "volatile" || o == "fsync=volatile"),
                "{api:?}: {options}"
            );
            fs_err::write(target.join("new"), "x").unwrap();
            guard.unmount().unwrap();
            assert_eq!(fs_err::read_to_string(upper.join("new")).unwrap(), "x");

            let view = tmp.path().join("ro");
            fs_err::create_dir(&view).unwrap();
            let guard = mount_overlay(&lowers, None, &view, api).unwrap();
            let options = super_options(&view);
            assert!(!options.contains("volatile"), "{api:?}: {options}");
            guard.unmount().unwrap();
        }
    }

    #[test]
    fn mount_errors_name_the_target_and_the_cause() {
        let tmp = tempfile::tempdir().unwrap();
        let target = tmp.path().join("view");
        fs_err::create_dir(&target).unwrap();
        fs_err::create_dir(tmp.path().join("twice")).unwrap();
        // overlayfs refuses the same lower twice (ELOOP), hence our dedup.
        let twice = vec![tmp.path().join("twice"), tmp.path().join("twice")];
        let err = mount_overlay(&twice, None, &target, Api::Auto).unwrap_err();
        let message = err.to_string();
        assert!(message.contains("view"), "{message}");
        match err {
            Error::Mount { source, .. } => {
                assert_eq!(source.raw_os_error(), Some(Errno::LOOP.raw_os_error()))
            }
            other => panic!("unexpected {other}"),
        }
    }

    #[test]
    fn kernel_log_collects_fs_context_messages() {
        let fs = rustix::mount::fsopen("overlay", FsOpenFlags::FSOPEN_CLOEXEC).unwrap();
        let err = rustix::mount::fsconfig_set_string(&fs, "no-such-option", "x").unwrap_err();
        assert_eq!(err, Errno::INVAL);
        assert_eq!(
            kernel_log(&fs),
            ["e overlay: Unknown parameter 'no-such-option'"]
        );
        assert!(kernel_log(&fs).is_empty(), "reading drains the log");
    }
}
