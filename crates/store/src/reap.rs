//! What a dead process's `tmp/` session may still hold besides files: processes it
//! started that outlive it (a container whose runtime was orphaned by a SIGKILL) and
//! mounts it made under the session (a RUN step's overlay root). Both must go before
//! the directory can be removed: a mount point cannot be, and walking into a mount to
//! empty it would reach what is mounted there.
//!
//! Processes are named by pid files in the session's `procs/` directory
//! ([`Store::procs_dir`](crate::Store::procs_dir)), written by whoever starts them (e.g.
//! `runc run --pid-file`, or `group PID` for a runtime and the process group it leads). A pid is only killed if that process started before its pid
//! file was written, so a pid reused since is left alone.

use std::io;
use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime};

/// The subdirectory of a session that holds pid files.
pub(crate) const PROCS: &str = "procs";

/// Kills the processes named in `session/procs/` and every other process that has a
/// file open under `session` (a runtime's helper that was waiting for its killed
/// parent, holding a fifo there), then detaches every mount at or under `session`,
/// deepest first.
pub(crate) fn reap(session: &Path) {
    if let Ok(entries) = std::fs::read_dir(session.join(PROCS)) {
        for entry in entries.flatten() {
            kill_recorded(&entry.path());
        }
    }
    for pid in holders(session) {
        let _ = rustix::process::kill_process(pid, rustix::process::Signal::KILL);
    }
    for mount in mounts_under(session) {
        let _ = rustix::mount::unmount(&mount, rustix::mount::UnmountFlags::DETACH);
    }
}

/// SIGKILL to the pid in `file` (`PID`), or to the process group it leads (`group
/// PID`), if that process started before the file was written.
fn kill_recorded(file: &Path) {
    let Ok(text) = std::fs::read_to_string(file) else {
        return;
    };
    let (group, pid) = match text.trim().strip_prefix("group ") {
        Some(pid) => (true, pid),
        None => (false, text.trim()),
    };
    let Ok(pid) = pid.parse::<i32>() else {
        return;
    };
    let Some(pid) = rustix::process::Pid::from_raw(pid) else {
        return;
    };
    let Ok(written) = std::fs::metadata(file).and_then(|m| m.modified()) else {
        return;
    };
    match process_start(pid.as_raw_nonzero().get()) {
        // A second of slack: start times have clock-tick precision, mtimes may be
        // coarser than that.
        Ok(started) if started <= written + Duration::from_secs(1) => {
            let _ = if group {
                rustix::process::kill_process_group(pid, rustix::process::Signal::KILL)
            } else {
                rustix::process::kill_process(pid, rustix::process::Signal::KILL)
            };
        }
        _ => {}
    }
}

/// Other processes with a file open under `dir` (not merely a working directory: a
/// shell someone left there is not ours to kill).
fn holders(dir: &Path) -> Vec<rustix::process::Pid> {
    let me = rustix::process::getpid();
    let Ok(procs) = std::fs::read_dir("/proc") else {
        return Vec::new();
    };
    let under = |link: &Path| {
        std::fs::read_link(link).is_ok_and(|target| {
            let target = target.to_string_lossy();
            Path::new(target.trim_end_matches(" (deleted)")).starts_with(dir)
        })
    };
    procs
        .flatten()
        .filter_map(|e| {
            let pid = e.file_name().to_str()?.parse::<i32>().ok()?;
            let pid = rustix::process::Pid::from_raw(pid).filter(|p| *p != me)?;
            let mut fds = std::fs::read_dir(e.path().join("fd")).ok()?;
            fds.any(|fd| fd.is_ok_and(|fd| under(&fd.path())))
                .then_some(pid)
        })
        .collect()
}

/// When process `pid` started, from its start time in `/proc/<pid>/stat` (clock ticks
/// after boot; USER_HZ is 100 on Linux) and the boot time in `/proc/stat`.
fn process_start(pid: i32) -> io::Result<SystemTime> {
    let (_, ticks) = crate::lease::stat(pid)?;
    let stat = std::fs::read_to_string("/proc/stat")?;
    let boot: u64 = stat
        .lines()
        .find_map(|l| l.strip_prefix("btime "))
        .and_then(|v| v.trim().parse().ok())
        .ok_or_else(|| io::Error::new(io::ErrorKind::InvalidData, "no btime in /proc/stat"))?;
    Ok(SystemTime::UNIX_EPOCH + Duration::from_secs(boot) + Duration::from_millis(ticks * 10))
}

/// Mount points at or under `dir` in this process's mount namespace, deepest first.
pub(crate) fn mounts_under(dir: &Path) -> Vec<PathBuf> {
    let Ok(info) = std::fs::read_to_string("/proc/self/mountinfo") else {
        return Vec::new();
    };
    let mut found: Vec<PathBuf> = info
        .lines()
        .filter_map(|l| l.split(' ').nth(4))
        .map(|p| PathBuf::from(unescape(p)))
        .filter(|p| p.starts_with(dir))
        .collect();
    found.sort_by_key(|p| std::cmp::Reverse(p.components().count()));
    found.dedup();
    found
}

/// mountinfo escapes space, tab, newline and backslash as `\ooo`.
fn unescape(field: &str) -> String {
    let bytes = field.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        let octal = bytes
            .get(i + 1..i + 4)
            .filter(|o| o.iter().all(|b| (b'0'..=b'7').contains(b)));
        if let (b'\\', Some(o)) = (bytes[i], octal) {
            let value = o.iter().fold(0u32, |v, b| v * 8 + u32::from(b - b'0'));
            if let Ok(b) = u8::try_from(value) {
                out.push(b);
                i += 4;
                continue;
            }
        }
        out.push(bytes[i]);
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn mountinfo_escapes_are_decoded() {
        assert_eq!(unescape(r"/a\040b\011c\134d"), "/a b\tc\\d");
        assert_eq!(unescape("/plain"), "/plain");
        assert_eq!(unescape(r"/trailing\04"), r"/trailing\04");
    }

    #[test]
    fn a_process_holding_a_file_in_the_session_is_killed() {
        let dir = tempfile::tempdir().unwrap();
        let session = dir.path().join("dead-session");
        std::fs::create_dir(&session).unwrap();
        let held = session.join("exec.fifo");
        std::fs::write(&held, b"").unwrap();
        // Holds a file open there, as `runc init` holds its fifo while it waits for its
        // killed parent; an unrelated process beside it is left alone.
        let mut holder = std::process::Command::new("sh")
            .arg("-c")
            .arg("exec 3<\"$0\"; exec sleep 600")
            .arg(&held)
            .spawn()
            .unwrap();
        let mut bystander = std::process::Command::new("sleep")
            .arg("600")
            .current_dir(dir.path())
            .spawn()
            .unwrap();
        let pid = holder.id() as i32;
        while !std::fs::read_dir(format!("/proc/{pid}/fd"))
            .unwrap()
            .flatten()
            .any(|fd| std::fs::read_link(fd.path()).is_ok_and(|t| t == held))
        {
            assert!(holder.try_wait().unwrap().is_none(), "the holder exited");
            std::thread::yield_now();
        }

        reap(&session);
        let status = holder.wait().unwrap();
        assert_eq!(
            std::os::unix::process::ExitStatusExt::signal(&status),
            Some(9)
        );
        assert!(bystander.try_wait().unwrap().is_none());
        bystander.kill().unwrap();
        bystander.wait().unwrap();
    }

    #[test]
    fn a_recorded_child_is_killed_and_a_reused_pid_is_not() {
        let dir = tempfile::tempdir().unwrap();
        let procs = dir.path().join(PROCS);
        std::fs::create_dir(&procs).unwrap();
        let mut child = std::process::Command::new("sleep")
            .arg("600")
            .spawn()
            .unwrap();
        std::fs::write(procs.join("a.pid"), child.id().to_string()).unwrap();
        // A pid file older than its process: the pid was reused since.
        let mut later = std::process::Command::new("sleep")
            .arg("600")
            .spawn()
            .unwrap();
        let old = procs.join("b.pid");
        std::fs::write(&old, later.id().to_string()).unwrap();
        std::fs::File::options()
            .write(true)
            .open(&old)
            .unwrap()
            .set_modified(SystemTime::now() - Duration::from_secs(3600))
            .unwrap();

        reap(dir.path());
        let status = child.wait().unwrap();
        assert_eq!(
            std::os::unix::process::ExitStatusExt::signal(&status),
            Some(9)
        );
        assert!(
            later.try_wait().unwrap().is_none(),
            "a reused pid was killed"
        );
        later.kill().unwrap();
        later.wait().unwrap();
    }
}
