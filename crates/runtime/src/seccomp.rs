//! The seccomp profile of a sandboxed RUN: an allow-list with the same policy as
//! Docker's default profile (which BuildKit applies to RUN). Every syscall not listed
//! fails with `EPERM`; the ones that reach into the kernel's global state (`mount`,
//! `unshare`, `setns`, `kexec_load`, module loading, `ptrace` before kernel 4.8 ...)
//! are allowed only when the process holds the capability that makes them safe
//! (`CAP_SYS_ADMIN`, `CAP_SYS_MODULE`, ...), which the sandbox's 14 capabilities never
//! include. `clone` may not make namespaces, `clone3` reports `ENOSYS` (so libc falls
//! back to `clone`, whose flags can be checked), `socket` may not open `AF_VSOCK`, and
//! `personality` only takes the harmless personas.
//!
//! `RUN --security=insecure` gets no profile at all.

use oci_spec::runtime::{
    Arch, Capability, LinuxSeccomp, LinuxSeccompAction, LinuxSeccompArgBuilder,
    LinuxSeccompBuilder, LinuxSeccompOperator, LinuxSyscall, LinuxSyscallBuilder,
};

use crate::{Error, Result};

/// `EPERM`: what a denied syscall returns.
const EPERM: u32 = 1;
/// `ENOSYS`: what `clone3` returns without `CAP_SYS_ADMIN`.
const ENOSYS: u32 = 38;
/// `AF_VSOCK`, which `socket` may not open.
const AF_VSOCK: u64 = 40;

/// Syscalls every sandboxed process may make, grouped by what they touch.
const ALWAYS: &[&[&str]] = &[
    // Files, directories and descriptors.
    &[
        "access",
        "chdir",
        "chmod",
        "chown",
        "chown32",
        "close",
        "close_range",
        "copy_file_range",
        "creat",
        "dup",
        "dup2",
        "dup3",
        "faccessat",
        "faccessat2",
        "fadvise64",
        "fadvise64_64",
        "fallocate",
        "fchdir",
        "fchmod",
        "fchmodat",
        "fchown",
        "fchown32",
        "fchownat",
        "fcntl",
        "fcntl64",
        "fdatasync",
        "flock",
        "fstat",
        "fstat64",
        "fstatat64",
        "fstatfs",
        "fstatfs64",
        "fsync",
        "ftruncate",
        "ftruncate64",
        "futimesat",
        "getcwd",
        "getdents",
        "getdents64",
        "lchown",
        "lchown32",
        "link",
        "linkat",
        "_llseek",
        "lseek",
        "lstat",
        "lstat64",
        "mkdir",
        "mkdirat",
        "mknod",
        "mknodat",
        "name_to_handle_at",
        "newfstatat",
        "open",
        "openat",
        "openat2",
        "pread64",
        "preadv",
        "preadv2",
        "pwrite64",
        "pwritev",
        "pwritev2",
        "read",
        "readahead",
        "readlink",
        "readlinkat",
        "readv",
        "rename",
        "renameat",
        "renameat2",
        "rmdir",
        "sendfile",
        "sendfile64",
        "splice",
        "stat",
        "stat64",
        "statfs",
        "statfs64",
        "statx",
        "symlink",
        "symlinkat",
        "sync",
        "sync_file_range",
        "syncfs",
        "tee",
        "truncate",
        "truncate64",
        "umask",
        "unlink",
        "unlinkat",
        "utime",
        "utimensat",
        "utimensat_time64",
        "utimes",
        "vmsplice",
        "write",
        "writev",
    ],
    // Extended attributes, file notifications, asynchronous I/O.
    &[
        "fgetxattr",
        "flistxattr",
        "fremovexattr",
        "fsetxattr",
        "getxattr",
        "lgetxattr",
        "listxattr",
        "llistxattr",
        "lremovexattr",
        "lsetxattr",
        "removexattr",
        "setxattr",
        "fanotify_mark",
        "inotify_add_watch",
        "inotify_init",
        "inotify_init1",
        "inotify_rm_watch",
        "io_cancel",
        "io_destroy",
        "io_getevents",
        "io_pgetevents",
        "io_pgetevents_time64",
        "io_setup",
        "io_submit",
        "io_uring_enter",
        "io_uring_register",
        "io_uring_setup",
        "ioctl",
        "ioprio_get",
        "ioprio_set",
    ],
    // Waiting on descriptors, events, timers.
    &[
        "epoll_create",
        "epoll_create1",
        "epoll_ctl",
        "epoll_ctl_old",
        "epoll_pwait",
        "epoll_pwait2",
        "epoll_wait",
        "epoll_wait_old",
        "eventfd",
        "eventfd2",
        "_newselect",
        "pause",
        "pipe",
        "pipe2",
        "poll",
        "ppoll",
        "ppoll_time64",
        "pselect6",
        "pselect6_time64",
        "select",
        "signalfd",
        "signalfd4",
        "timerfd_create",
        "timerfd_gettime",
        "timerfd_gettime64",
        "timerfd_settime",
        "timerfd_settime64",
    ],
    // Processes, credentials, limits, scheduling.
    &[
        "capget",
        "capset",
        "execve",
        "execveat",
        "exit",
        "exit_group",
        "fork",
        "getcpu",
        "getegid",
        "getegid32",
        "geteuid",
        "geteuid32",
        "getgid",
        "getgid32",
        "getgroups",
        "getgroups32",
        "getpgid",
        "getpgrp",
        "getpid",
        "getppid",
        "getpriority",
        "getresgid",
        "getresgid32",
        "getresuid",
        "getresuid32",
        "getrlimit",
        "get_robust_list",
        "getrusage",
        "getsid",
        "get_thread_area",
        "gettid",
        "getuid",
        "getuid32",
        "landlock_add_rule",
        "landlock_create_ruleset",
        "landlock_restrict_self",
        "membarrier",
        "pidfd_open",
        "pidfd_send_signal",
        "prctl",
        "prlimit64",
        "process_mrelease",
        "restart_syscall",
        "rseq",
        "sched_getaffinity",
        "sched_getattr",
        "sched_getparam",
        "sched_get_priority_max",
        "sched_get_priority_min",
        "sched_getscheduler",
        "sched_rr_get_interval",
        "sched_rr_get_interval_time64",
        "sched_setaffinity",
        "sched_setattr",
        "sched_setparam",
        "sched_setscheduler",
        "sched_yield",
        "seccomp",
        "setfsgid",
        "setfsgid32",
        "setfsuid",
        "setfsuid32",
        "setgid",
        "setgid32",
        "setgroups",
        "setgroups32",
        "setpgid",
        "setpriority",
        "setregid",
        "setregid32",
        "setresgid",
        "setresgid32",
        "setresuid",
        "setresuid32",
        "setreuid",
        "setreuid32",
        "setrlimit",
        "set_robust_list",
        "setsid",
        "set_thread_area",
        "set_tid_address",
        "setuid",
        "setuid32",
        "sysinfo",
        "ugetrlimit",
        "uname",
        "vfork",
        "wait4",
        "waitid",
        "waitpid",
    ],
    // Memory.
    &[
        "brk",
        "futex",
        "futex_time64",
        "futex_waitv",
        "madvise",
        "memfd_create",
        "memfd_secret",
        "mincore",
        "mlock",
        "mlock2",
        "mlockall",
        "mmap",
        "mmap2",
        "mprotect",
        "mremap",
        "msync",
        "munlock",
        "munlockall",
        "munmap",
        "pkey_alloc",
        "pkey_free",
        "pkey_mprotect",
        "remap_file_pages",
    ],
    // Signals.
    &[
        "alarm",
        "kill",
        "rt_sigaction",
        "rt_sigpending",
        "rt_sigprocmask",
        "rt_sigqueueinfo",
        "rt_sigreturn",
        "rt_sigsuspend",
        "rt_sigtimedwait",
        "rt_sigtimedwait_time64",
        "rt_tgsigqueueinfo",
        "sigaltstack",
        "sigprocmask",
        "sigreturn",
        "tgkill",
        "tkill",
    ],
    // Clocks and timers (reading them; setting the clock needs CAP_SYS_TIME).
    &[
        "adjtimex",
        "clock_adjtime",
        "clock_adjtime64",
        "clock_getres",
        "clock_getres_time64",
        "clock_gettime",
        "clock_gettime64",
        "clock_nanosleep",
        "clock_nanosleep_time64",
        "getitimer",
        "getrandom",
        "gettimeofday",
        "nanosleep",
        "setitimer",
        "time",
        "timer_create",
        "timer_delete",
        "timer_getoverrun",
        "timer_gettime",
        "timer_gettime64",
        "timer_settime",
        "timer_settime64",
        "times",
    ],
    // System V and POSIX IPC.
    &[
        "ipc",
        "mq_getsetattr",
        "mq_notify",
        "mq_open",
        "mq_timedreceive",
        "mq_timedreceive_time64",
        "mq_timedsend",
        "mq_timedsend_time64",
        "mq_unlink",
        "msgctl",
        "msgget",
        "msgrcv",
        "msgsnd",
        "semctl",
        "semget",
        "semop",
        "semtimedop",
        "semtimedop_time64",
        "shmat",
        "shmctl",
        "shmdt",
        "shmget",
    ],
    // Sockets (`socket` itself is filtered below).
    &[
        "accept",
        "accept4",
        "bind",
        "connect",
        "getpeername",
        "getsockname",
        "getsockopt",
        "listen",
        "recv",
        "recvfrom",
        "recvmmsg",
        "recvmmsg_time64",
        "recvmsg",
        "send",
        "sendmmsg",
        "sendmsg",
        "sendto",
        "setsockopt",
        "shutdown",
        "socketcall",
        "socketpair",
    ],
    // Tracing: safe since kernel 4.8 (it no longer bypasses seccomp), and every kernel
    // strata's overlay and openat2 use needs is newer.
    &["process_vm_readv", "process_vm_writev", "ptrace"],
];

/// Syscalls allowed only with a capability (none of these capabilities is in the
/// sandbox's set, except `CAP_SYS_CHROOT`).
const WITH_CAPABILITY: &[(Capability, &[&str])] = &[
    (
        Capability::SysAdmin,
        &[
            "bpf",
            "clone",
            "clone3",
            "fanotify_init",
            "fsconfig",
            "fsmount",
            "fsopen",
            "fspick",
            "lookup_dcookie",
            "mount",
            "mount_setattr",
            "move_mount",
            "open_tree",
            "perf_event_open",
            "quotactl",
            "quotactl_fd",
            "setdomainname",
            "sethostname",
            "setns",
            "syslog",
            "umount",
            "umount2",
            "unshare",
        ],
    ),
    (Capability::DacReadSearch, &["open_by_handle_at"]),
    (Capability::SysBoot, &["reboot"]),
    (Capability::SysChroot, &["chroot"]),
    (
        Capability::SysModule,
        &["delete_module", "init_module", "finit_module"],
    ),
    (Capability::SysPacct, &["acct"]),
    (
        Capability::SysPtrace,
        &["kcmp", "pidfd_getfd", "process_madvise"],
    ),
    (Capability::SysRawio, &["iopl", "ioperm"]),
    (
        Capability::SysTime,
        &["settimeofday", "stime", "clock_settime", "clock_settime64"],
    ),
    (Capability::SysTtyConfig, &["vhangup"]),
    (
        Capability::SysNice,
        &[
            "get_mempolicy",
            "mbind",
            "set_mempolicy",
            "set_mempolicy_home_node",
        ],
    ),
    (Capability::Syslog, &["syslog"]),
    (Capability::Bpf, &["bpf"]),
    (Capability::Perfmon, &["perf_event_open"]),
];

/// The namespace flags `clone` may not carry without `CAP_SYS_ADMIN`: `CLONE_NEWNS`,
/// `CLONE_NEWUTS`, `CLONE_NEWIPC`, `CLONE_NEWUSER`, `CLONE_NEWPID`, `CLONE_NEWNET`,
/// `CLONE_NEWCGROUP`.
const CLONE_NAMESPACES: u64 =
    0x0002_0000 | 0x0400_0000 | 0x0800_0000 | 0x1000_0000 | 0x2000_0000 | 0x4000_0000 | 0x0200_0000;

/// `personality` values that change nothing dangerous: `PER_LINUX`, `PER_LINUX32`,
/// `UNAME26`, `PER_LINUX32|UNAME26`, and the query `0xffffffff`.
const PERSONAS: [u64; 5] = [0x0, 0x8, 0x20000, 0x20008, 0xffff_ffff];

/// The architectures the filter covers on this host, and its own syscalls.
fn host_arch() -> (Vec<Arch>, &'static [&'static str]) {
    if cfg!(target_arch = "x86_64") {
        (
            vec![Arch::ScmpArchX86_64, Arch::ScmpArchX86, Arch::ScmpArchX32],
            &["arch_prctl", "modify_ldt"],
        )
    } else if cfg!(target_arch = "x86") {
        (vec![Arch::ScmpArchX86], &["modify_ldt"])
    } else if cfg!(target_arch = "aarch64") {
        (
            vec![Arch::ScmpArchAarch64, Arch::ScmpArchArm],
            &[
                "arm_fadvise64_64",
                "arm_sync_file_range",
                "sync_file_range2",
                "breakpoint",
                "cacheflush",
                "set_tls",
            ],
        )
    } else if cfg!(target_arch = "riscv64") {
        (vec![Arch::ScmpArchRiscv64], &["riscv_flush_icache"])
    } else if cfg!(target_arch = "s390x") {
        (
            vec![Arch::ScmpArchS390x, Arch::ScmpArchS390],
            &[
                "s390_pci_mmio_read",
                "s390_pci_mmio_write",
                "s390_runtime_instr",
            ],
        )
    } else if cfg!(target_arch = "powerpc64") {
        (
            vec![Arch::ScmpArchPpc64le],
            &["sync_file_range2", "swapcontext"],
        )
    } else {
        (vec![Arch::ScmpArchNative], &[])
    }
}

fn rule(
    names: impl IntoIterator<Item = impl Into<String>>,
    action: LinuxSeccompAction,
    errno: Option<u32>,
    arg: Option<(usize, u64, LinuxSeccompOperator)>,
) -> Result<LinuxSyscall> {
    let mut b = LinuxSyscallBuilder::default()
        .names(names.into_iter().map(Into::into).collect::<Vec<String>>())
        .action(action);
    if let Some(e) = errno {
        b = b.errno_ret(e);
    }
    if let Some((index, value, op)) = arg {
        b = b.args(vec![LinuxSeccompArgBuilder::default()
            .index(index)
            .value(value)
            .op(op)
            .build()
            .map_err(Error::Spec)?]);
    }
    b.build().map_err(Error::Spec)
}

/// The profile for a process holding `caps` (its bounding set).
pub fn profile(caps: &[Capability]) -> Result<LinuxSeccomp> {
    use LinuxSeccompAction::{ScmpActAllow as Allow, ScmpActErrno as Errno};
    use LinuxSeccompOperator::{ScmpCmpEq as Eq, ScmpCmpMaskedEq as MaskedEq, ScmpCmpNe as Ne};
    let (arches, arch_calls) = host_arch();
    let mut allowed: Vec<&str> = ALWAYS.iter().flat_map(|g| g.iter().copied()).collect();
    allowed.extend_from_slice(arch_calls);
    for (cap, calls) in WITH_CAPABILITY {
        if caps.contains(cap) {
            allowed.extend_from_slice(calls);
        }
    }
    allowed.sort_unstable();
    allowed.dedup();

    let mut syscalls = vec![rule(allowed, Allow, None, None)?];
    syscalls.push(rule(["socket"], Allow, None, Some((0, AF_VSOCK, Ne)))?);
    for p in PERSONAS {
        syscalls.push(rule(["personality"], Allow, None, Some((0, p, Eq)))?);
    }
    if !caps.contains(&Capability::SysAdmin) {
        // s390 passes the flags second.
        let flags_arg = if cfg!(target_arch = "s390x") { 1 } else { 0 };
        syscalls.push(rule(
            ["clone"],
            Allow,
            None,
            Some((flags_arg, CLONE_NAMESPACES, MaskedEq)),
        )?);
        syscalls.push(rule(["clone3"], Errno, Some(ENOSYS), None)?);
    }
    LinuxSeccompBuilder::default()
        .default_action(Errno)
        .default_errno_ret(EPERM)
        .architectures(arches)
        .syscalls(syscalls)
        .build()
        .map_err(Error::Spec)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::spec::DEFAULT_CAPABILITIES;

    fn allowed(p: &LinuxSeccomp) -> Vec<String> {
        p.syscalls()
            .as_ref()
            .unwrap()
            .iter()
            .filter(|s| s.action() == LinuxSeccompAction::ScmpActAllow && s.args().is_none())
            .flat_map(|s| s.names().clone())
            .collect()
    }

    #[test]
    fn the_sandbox_denies_what_docker_denies() {
        let p = profile(&DEFAULT_CAPABILITIES).unwrap();
        assert_eq!(p.default_action(), LinuxSeccompAction::ScmpActErrno);
        assert_eq!(p.default_errno_ret(), Some(EPERM));
        let allowed = allowed(&p);
        for denied in [
            "mount",
            "umount2",
            "unshare",
            "setns",
            "kexec_load",
            "open_by_handle_at",
            "init_module",
            "bpf",
            "reboot",
            "swapon",
            "keyctl",
            "add_key",
            "userfaultfd",
            "clone3",
            "clone",
            "personality",
            "socket",
            "settimeofday",
        ] {
            assert!(!allowed.iter().any(|a| a == denied), "{denied} allowed");
        }
        for ok in [
            "read",
            "execve",
            "ptrace",
            "chroot",
            "statx",
            "openat2",
            "io_uring_setup",
        ] {
            assert!(allowed.iter().any(|a| a == ok), "{ok} denied");
        }
        let json = serde_json::to_value(&p).unwrap();
        let rules = json["syscalls"].as_array().unwrap();
        let clone = rules.iter().find(|r| r["names"][0] == "clone").unwrap();
        assert_eq!(clone["args"][0]["op"], "SCMP_CMP_MASKED_EQ");
        assert_eq!(clone["args"][0]["value"], 2114060288u64);
        let clone3 = rules.iter().find(|r| r["names"][0] == "clone3").unwrap();
        assert_eq!(
            (clone3["action"].as_str(), clone3["errnoRet"].as_u64()),
            (Some("SCMP_ACT_ERRNO"), Some(38))
        );
        let socket = rules.iter().find(|r| r["names"][0] == "socket").unwrap();
        assert_eq!(
            socket["args"][0],
            serde_json::json!({"index": 0, "value": 40, "op": "SCMP_CMP_NE"})
        );
        if cfg!(target_arch = "x86_64") {
            assert_eq!(
                json["architectures"],
                serde_json::json!(["SCMP_ARCH_X86_64", "SCMP_ARCH_X86", "SCMP_ARCH_X32"])
            );
            assert!(allowed.iter().any(|a| a == "arch_prctl"));
        }
    }

    #[test]
    fn capabilities_open_their_syscalls() {
        let mut caps = DEFAULT_CAPABILITIES.to_vec();
        caps.push(Capability::SysAdmin);
        let p = profile(&caps).unwrap();
        let allowed = allowed(&p);
        for now in ["mount", "unshare", "setns", "clone", "clone3"] {
            assert!(allowed.iter().any(|a| a == now), "{now} still denied");
        }
        let json = serde_json::to_value(&p).unwrap();
        assert!(!json["syscalls"]
            .as_array()
            .unwrap()
            .iter()
            .any(|r| r["action"] == "SCMP_ACT_ERRNO"));
        // Without CAP_SYS_CHROOT, no chroot.
        let fewer: Vec<Capability> = DEFAULT_CAPABILITIES
            .into_iter()
            .filter(|c| *c != Capability::SysChroot)
            .collect();
        assert!(!allowed_of(&fewer).iter().any(|a| a == "chroot"));
    }

    fn allowed_of(caps: &[Capability]) -> Vec<String> {
        allowed(&profile(caps).unwrap())
    }
}
