//! The bundle's `config.json`, built with `oci-spec`'s runtime types to match what
//! BuildKit generates for RUN on this host (design §3): Docker's 14 default
//! capabilities, pid/ipc/uts/mount namespaces (a network namespace only for
//! `--network=none`), `/proc`, a minimal `/dev`, read-only `/sys`, Docker's masked
//! and read-only paths, read-only binds of `/etc/hosts` and `/etc/resolv.conf`, and a
//! seccomp profile with Docker's policy ([`crate::seccomp`]) unless the runtime lacks
//! seccomp or the step is `--security=insecure`.

use std::path::Path;

use oci_spec::runtime::{
    Capabilities, Capability, LinuxBuilder, LinuxCapabilitiesBuilder, LinuxDevice,
    LinuxDeviceBuilder, LinuxDeviceCgroup, LinuxDeviceCgroupBuilder, LinuxDeviceType,
    LinuxNamespaceBuilder, LinuxNamespaceType, LinuxResourcesBuilder, Mount as OciMount,
    MountBuilder, PosixRlimitBuilder, PosixRlimitType, ProcessBuilder, RootBuilder, Spec,
    SpecBuilder, UserBuilder,
};

use crate::executor::{MountSource, Network, Process, Security};
use crate::user::User;
use crate::{Error, Mount, Result};

/// Docker's default capability set (moby `oci/caps/defaults.go`).
pub const DEFAULT_CAPABILITIES: [Capability; 14] = [
    Capability::Chown,
    Capability::DacOverride,
    Capability::Fsetid,
    Capability::Fowner,
    Capability::Mknod,
    Capability::NetRaw,
    Capability::Setgid,
    Capability::Setuid,
    Capability::Setfcap,
    Capability::Setpcap,
    Capability::NetBindService,
    Capability::SysChroot,
    Capability::Kill,
    Capability::AuditWrite,
];

/// Every capability oci-spec knows (`--security=insecure`), indexed by number.
pub const ALL_CAPABILITIES: [Capability; 41] = [
    Capability::Chown,
    Capability::DacOverride,
    Capability::DacReadSearch,
    Capability::Fowner,
    Capability::Fsetid,
    Capability::Kill,
    Capability::Setgid,
    Capability::Setuid,
    Capability::Setpcap,
    Capability::LinuxImmutable,
    Capability::NetBindService,
    Capability::NetBroadcast,
    Capability::NetAdmin,
    Capability::NetRaw,
    Capability::IpcLock,
    Capability::IpcOwner,
    Capability::SysModule,
    Capability::SysRawio,
    Capability::SysChroot,
    Capability::SysPtrace,
    Capability::SysPacct,
    Capability::SysAdmin,
    Capability::SysBoot,
    Capability::SysNice,
    Capability::SysResource,
    Capability::SysTime,
    Capability::SysTtyConfig,
    Capability::Mknod,
    Capability::Lease,
    Capability::AuditWrite,
    Capability::AuditControl,
    Capability::Setfcap,
    Capability::MacOverride,
    Capability::MacAdmin,
    Capability::Syslog,
    Capability::WakeAlarm,
    Capability::BlockSuspend,
    Capability::AuditRead,
    Capability::Perfmon,
    Capability::Bpf,
    Capability::CheckpointRestore,
];

/// The capabilities this process may hand on (its bounding set, as a bit mask by
/// capability number); a runtime asked for more fails (`unable to apply caps`).
pub fn bounding_set() -> u64 {
    capability_bits("CapBnd:").unwrap_or(u64::MAX)
}

fn capability_bits(field: &str) -> Option<u64> {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find_map(|l| l.strip_prefix(field))
                .and_then(|v| u64::from_str_radix(v.trim(), 16).ok())
        })
}

/// Docker's masked paths: bound over with `/dev/null` (or an empty read-only tmpfs).
pub const MASKED_PATHS: [&str; 12] = [
    "/proc/asound",
    "/proc/acpi",
    "/proc/interrupts",
    "/proc/kcore",
    "/proc/keys",
    "/proc/latency_stats",
    "/proc/timer_list",
    "/proc/timer_stats",
    "/proc/sched_debug",
    "/proc/scsi",
    "/sys/firmware",
    "/sys/devices/virtual/powercap",
];

/// Docker's read-only paths.
pub const READONLY_PATHS: [&str; 5] = [
    "/proc/bus",
    "/proc/fs",
    "/proc/irq",
    "/proc/sys",
    "/proc/sysrq-trigger",
];

/// The open-files limit (soft and hard), as BuildKit sets it; see [`nofile_limit`].
pub const NOFILE_LIMIT: u64 = 1_048_576;

/// [`NOFILE_LIMIT`], or our own hard limit when it is lower and we may not raise it
/// (no `CAP_SYS_RESOURCE`, as in some sandboxes): the runtime would fail to set it.
pub fn nofile_limit() -> u64 {
    let hard = rustix::process::getrlimit(rustix::process::Resource::Nofile)
        .maximum
        .unwrap_or(u64::MAX);
    let sys_resource = capability_bits("CapEff:").is_some_and(|b| b & (1 << 24) != 0);
    if hard >= NOFILE_LIMIT || sys_resource {
        NOFILE_LIMIT
    } else {
        hard
    }
}

/// Where the executor's own files go in the container.
pub const HOSTS: &str = "/etc/hosts";
pub const RESOLV_CONF: &str = "/etc/resolv.conf";

/// What [`generate`] needs besides the process.
#[derive(Debug, Clone, Copy)]
pub struct SpecInput<'a> {
    pub rootfs: &'a Path,
    pub process: &'a Process,
    pub user: &'a User,
    /// The caller's mounts, after the executor's own.
    pub mounts: &'a [Mount],
    /// The generated `/etc/hosts` and `/etc/resolv.conf` on the host.
    pub hosts: &'a Path,
    pub resolv_conf: &'a Path,
    /// `RLIMIT_NOFILE`, soft and hard ([`nofile_limit`]).
    pub nofile: u64,
    /// Capabilities that may be granted, by number ([`bounding_set`]); the others are
    /// left out, also under `--security=insecure`.
    pub grantable: u64,
    /// The runtime can apply a seccomp filter: sandboxed steps get one.
    pub seccomp: bool,
}

/// The destinations of the mounts [`generate`] adds itself, in order.
pub fn own_destinations() -> [&'static str; 9] {
    [
        "/proc",
        "/dev",
        "/dev/pts",
        "/dev/shm",
        "/dev/mqueue",
        "/sys",
        "/sys/fs/cgroup",
        HOSTS,
        RESOLV_CONF,
    ]
}

/// The `config.json` for one run.
pub fn generate(input: &SpecInput<'_>) -> Result<Spec> {
    let p = input.process;
    let insecure = p.security == Security::Insecure;
    let granted = granted(input.grantable, insecure);
    let caps: Capabilities = granted.iter().copied().collect();
    // Like Docker since 23.0: no inheritable or ambient capabilities.
    let capabilities = LinuxCapabilitiesBuilder::default()
        .bounding(caps.clone())
        .effective(caps.clone())
        .permitted(caps)
        .inheritable(Capabilities::new())
        .ambient(Capabilities::new())
        .build()
        .map_err(Error::Spec)?;
    let user = UserBuilder::default()
        .uid(input.user.uid)
        .gid(input.user.gid)
        .additional_gids(input.user.additional_gids.clone())
        .build()
        .map_err(Error::Spec)?;
    let process = ProcessBuilder::default()
        .terminal(false)
        .user(user)
        .args(p.args.clone())
        .env(p.env.clone())
        .cwd(p.cwd.clone())
        .capabilities(capabilities)
        .rlimits(vec![PosixRlimitBuilder::default()
            .typ(PosixRlimitType::RlimitNofile)
            .soft(input.nofile)
            .hard(input.nofile)
            .build()
            .map_err(Error::Spec)?])
        .no_new_privileges(false)
        .build()
        .map_err(Error::Spec)?;

    let mut namespaces = vec![
        LinuxNamespaceType::Pid,
        LinuxNamespaceType::Ipc,
        LinuxNamespaceType::Uts,
        LinuxNamespaceType::Mount,
    ];
    if p.network == Network::None {
        // runc and crun bring up loopback in a new network namespace.
        namespaces.push(LinuxNamespaceType::Network);
    }
    let namespaces = namespaces
        .into_iter()
        .map(|typ| LinuxNamespaceBuilder::default().typ(typ).build())
        .collect::<Result<Vec<_>, _>>()
        .map_err(Error::Spec)?;

    let (devices, device_rules) = if insecure {
        (host_devices(), vec![rule(true, None, None, None)?])
    } else {
        (default_devices()?, default_device_rules()?)
    };
    let mut linux = LinuxBuilder::default()
        .namespaces(namespaces)
        .devices(devices)
        .resources(
            LinuxResourcesBuilder::default()
                .devices(device_rules)
                .build()
                .map_err(Error::Spec)?,
        );
    // Set both ways: the builder starts from oci-spec's defaults, which mask paths.
    linux = if insecure {
        linux.masked_paths(Vec::new()).readonly_paths(Vec::new())
    } else {
        linux
            .masked_paths(MASKED_PATHS.map(String::from).to_vec())
            .readonly_paths(READONLY_PATHS.map(String::from).to_vec())
    };
    if !insecure && input.seccomp {
        linux = linux.seccomp(crate::seccomp::profile(&granted)?);
    }
    let linux = linux.build().map_err(Error::Spec)?;

    let mut mounts = own_mounts(input, insecure)?;
    for m in input.mounts {
        mounts.push(user_mount(m)?);
    }

    SpecBuilder::default()
        .version("1.0.2")
        .root(
            RootBuilder::default()
                .path(input.rootfs)
                .readonly(false)
                .build()
                .map_err(Error::Spec)?,
        )
        .hostname(p.hostname.clone())
        .process(process)
        .mounts(mounts)
        .linux(linux)
        .build()
        .map_err(Error::Spec)
}

/// The capabilities a step gets: Docker's default set (all with `insecure`), less what
/// this process may not grant (`grantable`, a bit per [`ALL_CAPABILITIES`] entry).
fn granted(grantable: u64, insecure: bool) -> Vec<Capability> {
    let may = |c: &Capability| {
        ALL_CAPABILITIES
            .iter()
            .position(|a| a == c)
            .is_some_and(|n| grantable & (1 << n) != 0)
    };
    if insecure {
        ALL_CAPABILITIES.into_iter().filter(may).collect()
    } else {
        DEFAULT_CAPABILITIES.into_iter().filter(may).collect()
    }
}

/// The seccomp profile of a sandboxed step (as [`generate`] gives it).
pub(crate) fn sandbox_profile(grantable: u64) -> Result<oci_spec::runtime::LinuxSeccomp> {
    crate::seccomp::profile(&granted(grantable, false))
}

fn mount(dest: &str, typ: &str, source: &str, options: &[&str]) -> Result<OciMount> {
    MountBuilder::default()
        .destination(dest)
        .typ(typ)
        .source(source)
        .options(options.iter().map(|o| o.to_string()).collect::<Vec<_>>())
        .build()
        .map_err(Error::Spec)
}

/// `/proc`, `/dev` and friends, `/sys`, and the bound `/etc/hosts` and
/// `/etc/resolv.conf` (the order of [`own_destinations`]).
fn own_mounts(input: &SpecInput<'_>, insecure: bool) -> Result<Vec<OciMount>> {
    let sys_mode = if insecure { "rw" } else { "ro" };
    Ok(vec![
        mount("/proc", "proc", "proc", &["nosuid", "noexec", "nodev"])?,
        mount(
            "/dev",
            "tmpfs",
            "tmpfs",
            &["nosuid", "strictatime", "mode=755", "size=65536k"],
        )?,
        mount(
            "/dev/pts",
            "devpts",
            "devpts",
            &[
                "nosuid",
                "noexec",
                "newinstance",
                "ptmxmode=0666",
                "mode=0620",
                "gid=5",
            ],
        )?,
        mount(
            "/dev/shm",
            "tmpfs",
            "shm",
            &["nosuid", "noexec", "nodev", "mode=1777", "size=65536k"],
        )?,
        mount(
            "/dev/mqueue",
            "mqueue",
            "mqueue",
            &["nosuid", "noexec", "nodev"],
        )?,
        mount(
            "/sys",
            "sysfs",
            "sysfs",
            &["nosuid", "noexec", "nodev", sys_mode],
        )?,
        mount(
            "/sys/fs/cgroup",
            "cgroup",
            "cgroup",
            &["nosuid", "noexec", "nodev", "relatime", sys_mode],
        )?,
        bind(HOSTS, input.hosts, true)?,
        bind(RESOLV_CONF, input.resolv_conf, true)?,
    ])
}

fn bind(dest: &str, source: &Path, readonly: bool) -> Result<OciMount> {
    let mut options = vec!["rbind".to_string(), "nosuid".into(), "nodev".into()];
    options.push(if readonly { "ro" } else { "rw" }.into());
    MountBuilder::default()
        .destination(dest)
        .typ("bind")
        .source(source)
        .options(options)
        .build()
        .map_err(Error::Spec)
}

fn user_mount(m: &Mount) -> Result<OciMount> {
    match &m.source {
        MountSource::Bind { path, readonly } => {
            // Binds keep setuid and devices as in the source (a bound stage is data).
            let mut options = vec!["rbind".to_string()];
            options.push(if *readonly { "ro" } else { "rw" }.into());
            MountBuilder::default()
                .destination(m.destination.as_str())
                .typ("bind")
                .source(path)
                .options(options)
                .build()
                .map_err(Error::Spec)
        }
        MountSource::Tmpfs { size } => {
            let mut options: Vec<String> =
                vec!["nosuid".into(), "nodev".into(), "mode=1777".into()];
            if let Some(size) = size {
                options.push(format!("size={size}"));
            }
            MountBuilder::default()
                .destination(m.destination.as_str())
                .typ("tmpfs")
                .source("tmpfs")
                .options(options)
                .build()
                .map_err(Error::Spec)
        }
    }
}

/// `/dev/null`, `zero`, `full`, `random`, `urandom` and `tty`, made by the runtime in
/// the `/dev` tmpfs.
fn default_devices() -> Result<Vec<LinuxDevice>> {
    [
        ("/dev/null", 1, 3),
        ("/dev/zero", 1, 5),
        ("/dev/full", 1, 7),
        ("/dev/random", 1, 8),
        ("/dev/urandom", 1, 9),
        ("/dev/tty", 5, 0),
    ]
    .into_iter()
    .map(|(path, major, minor)| {
        LinuxDeviceBuilder::default()
            .path(path)
            .typ(LinuxDeviceType::C)
            .major(major)
            .minor(minor)
            .file_mode(0o666u32)
            .uid(0u32)
            .gid(0u32)
            .build()
            .map_err(Error::Spec)
    })
    .collect()
}

fn rule(
    allow: bool,
    typ: Option<LinuxDeviceType>,
    major: Option<i64>,
    minor: Option<i64>,
) -> Result<LinuxDeviceCgroup> {
    let mut b = LinuxDeviceCgroupBuilder::default()
        .allow(allow)
        .access("rwm");
    if let Some(t) = typ {
        b = b.typ(t);
    }
    if let Some(m) = major {
        b = b.major(m);
    }
    if let Some(m) = minor {
        b = b.minor(m);
    }
    b.build().map_err(Error::Spec)
}

/// Docker's device cgroup: deny everything, then allow the default devices, ptys and
/// `/dev/net/tun`.
fn default_device_rules() -> Result<Vec<LinuxDeviceCgroup>> {
    let c = Some(LinuxDeviceType::C);
    Ok(vec![
        rule(false, None, None, None)?,
        rule(true, c, Some(1), Some(3))?,
        rule(true, c, Some(1), Some(5))?,
        rule(true, c, Some(1), Some(7))?,
        rule(true, c, Some(1), Some(8))?,
        rule(true, c, Some(1), Some(9))?,
        rule(true, c, Some(5), Some(0))?,
        rule(true, c, Some(5), Some(1))?,
        rule(true, c, Some(5), Some(2))?,
        rule(true, c, Some(136), None)?,
        rule(true, c, Some(10), Some(200))?,
    ])
}

/// The host's character and block devices under `/dev` (two levels deep, without
/// `/dev/pts`, `/dev/shm` and `/dev/mqueue`), for `--security=insecure`.
fn host_devices() -> Vec<LinuxDevice> {
    fn walk(dir: &Path, depth: usize, out: &mut Vec<LinuxDevice>) {
        let Ok(entries) = std::fs::read_dir(dir) else {
            return;
        };
        let mut entries: Vec<_> = entries.filter_map(|e| e.ok()).collect();
        entries.sort_by_key(|e| e.file_name());
        for e in entries {
            let path = e.path();
            let Ok(st) = rustix::fs::lstat(&path) else {
                continue;
            };
            let kind = rustix::fs::FileType::from_raw_mode(st.st_mode);
            let typ = match kind {
                rustix::fs::FileType::CharacterDevice => LinuxDeviceType::C,
                rustix::fs::FileType::BlockDevice => LinuxDeviceType::B,
                rustix::fs::FileType::Directory if depth > 0 => {
                    let skip = ["/dev/pts", "/dev/shm", "/dev/mqueue"];
                    if !skip.iter().any(|s| path == Path::new(s)) {
                        walk(&path, depth - 1, out);
                    }
                    continue;
                }
                _ => continue,
            };
            if path == Path::new("/dev/console") || path == Path::new("/dev/ptmx") {
                continue;
            }
            let dev = LinuxDeviceBuilder::default()
                .path(&path)
                .typ(typ)
                .major(rustix::fs::major(st.st_rdev) as i64)
                .minor(rustix::fs::minor(st.st_rdev) as i64)
                .file_mode(st.st_mode & 0o7777)
                .uid(st.st_uid)
                .gid(st.st_gid)
                .build();
            if let Ok(dev) = dev {
                out.push(dev);
            }
        }
    }
    let mut out = Vec::new();
    walk(Path::new("/dev"), 1, &mut out);
    out
}

#[cfg(test)]
mod tests {
    use std::collections::HashSet;
    use std::path::PathBuf;

    use super::*;

    fn process(network: Network, security: Security) -> Process {
        Process {
            args: vec!["/bin/sh".into(), "-c".into(), "true".into()],
            env: vec!["PATH=/bin".into(), "A=1".into()],
            cwd: "/work".into(),
            user: "app".into(),
            network,
            security,
            hostname: "strata".into(),
        }
    }

    fn json(network: Network, security: Security, mounts: &[Mount]) -> serde_json::Value {
        let p = process(network, security);
        let user = User {
            uid: 1000,
            gid: 1001,
            additional_gids: vec![29, 44],
        };
        let spec = generate(&SpecInput {
            rootfs: Path::new("/store/tmp/rootfs"),
            process: &p,
            user: &user,
            mounts,
            hosts: Path::new("/bundle/hosts"),
            resolv_conf: Path::new("/bundle/resolv.conf"),
            nofile: NOFILE_LIMIT,
            grantable: u64::MAX,
            seccomp: true,
        })
        .unwrap();
        serde_json::to_value(&spec).unwrap()
    }

    fn strings(v: &serde_json::Value) -> HashSet<String> {
        v.as_array()
            .unwrap()
            .iter()
            .map(|s| s.as_str().unwrap().to_string())
            .collect()
    }

    #[test]
    fn sandbox_has_dockers_fourteen_capabilities() {
        let v = json(Network::Host, Security::Sandbox, &[]);
        let caps = &v["process"]["capabilities"];
        let expected: HashSet<String> = [
            "CAP_CHOWN",
            "CAP_DAC_OVERRIDE",
            "CAP_FSETID",
            "CAP_FOWNER",
            "CAP_MKNOD",
            "CAP_NET_RAW",
            "CAP_SETGID",
            "CAP_SETUID",
            "CAP_SETFCAP",
            "CAP_SETPCAP",
            "CAP_NET_BIND_SERVICE",
            "CAP_SYS_CHROOT",
            "CAP_KILL",
            "CAP_AUDIT_WRITE",
        ]
        .into_iter()
        .map(String::from)
        .collect();
        for set in ["bounding", "effective", "permitted"] {
            assert_eq!(strings(&caps[set]), expected, "{set}");
        }
        assert!(strings(&caps["inheritable"]).is_empty());
        assert!(strings(&caps["ambient"]).is_empty());
        assert_eq!(v["process"]["noNewPrivileges"], false);
        assert_eq!(
            v["process"]["rlimits"],
            serde_json::json!([{"type": "RLIMIT_NOFILE", "hard": 1048576, "soft": 1048576}])
        );
        assert_eq!(v["linux"]["maskedPaths"].as_array().unwrap().len(), 12);
        assert!(strings(&v["linux"]["readonlyPaths"]).contains("/proc/sys"));
        assert_eq!(v["linux"]["seccomp"]["defaultAction"], "SCMP_ACT_ERRNO");
    }

    #[test]
    fn process_user_env_and_cwd_are_passed_through() {
        let v = json(Network::Host, Security::Sandbox, &[]);
        let p = &v["process"];
        assert_eq!(p["args"], serde_json::json!(["/bin/sh", "-c", "true"]));
        assert_eq!(p["env"], serde_json::json!(["PATH=/bin", "A=1"]));
        assert_eq!(p["cwd"], "/work");
        assert_eq!(p["terminal"], false);
        assert_eq!(
            p["user"],
            serde_json::json!({"uid": 1000, "gid": 1001, "additionalGids": [29, 44]})
        );
        assert_eq!(v["hostname"], "strata");
        assert_eq!(v["root"]["path"], "/store/tmp/rootfs");
        assert_eq!(v["root"]["readonly"], false);
    }

    fn namespaces(v: &serde_json::Value) -> Vec<String> {
        v["linux"]["namespaces"]
            .as_array()
            .unwrap()
            .iter()
            .map(|n| {
                assert!(n.get("path").is_none(), "new namespaces only");
                n["type"].as_str().unwrap().to_string()
            })
            .collect()
    }

    #[test]
    fn host_network_unless_none() {
        let host = json(Network::Host, Security::Sandbox, &[]);
        assert_eq!(namespaces(&host), ["pid", "ipc", "uts", "mount"]);
        let none = json(Network::None, Security::Sandbox, &[]);
        assert_eq!(namespaces(&none), ["pid", "ipc", "uts", "mount", "network"]);
    }

    #[test]
    fn mounts_come_in_order_with_binds_of_hosts_and_resolv_conf() {
        let user = [
            Mount {
                destination: "/src".into(),
                source: MountSource::Bind {
                    path: PathBuf::from("/ctx"),
                    readonly: true,
                },
            },
            Mount {
                destination: "/tmp/t".into(),
                source: MountSource::Tmpfs {
                    size: Some(1 << 20),
                },
            },
        ];
        let v = json(Network::Host, Security::Sandbox, &user);
        let mounts = v["mounts"].as_array().unwrap();
        let dests: Vec<&str> = mounts
            .iter()
            .map(|m| m["destination"].as_str().unwrap())
            .collect();
        let mut expected = own_destinations().to_vec();
        expected.extend(["/src", "/tmp/t"]);
        assert_eq!(dests, expected);
        let by = |d: &str| mounts.iter().find(|m| m["destination"] == d).unwrap();
        assert_eq!(by("/proc")["type"], "proc");
        assert_eq!(by("/dev")["type"], "tmpfs");
        assert!(strings(&by("/sys")["options"]).contains("ro"));
        assert_eq!(by("/etc/hosts")["source"], "/bundle/hosts");
        assert!(strings(&by("/etc/hosts")["options"]).contains("ro"));
        assert!(strings(&by("/etc/resolv.conf")["options"]).contains("ro"));
        assert_eq!(by("/src")["source"], "/ctx");
        assert!(strings(&by("/src")["options"]).contains("ro"));
        assert!(strings(&by("/tmp/t")["options"]).contains("size=1048576"));
        let devices: Vec<&str> = v["linux"]["devices"]
            .as_array()
            .unwrap()
            .iter()
            .map(|d| d["path"].as_str().unwrap())
            .collect();
        assert_eq!(
            devices,
            [
                "/dev/null",
                "/dev/zero",
                "/dev/full",
                "/dev/random",
                "/dev/urandom",
                "/dev/tty"
            ]
        );
        let rules = v["linux"]["resources"]["devices"].as_array().unwrap();
        assert_eq!(
            rules[0],
            serde_json::json!({"allow": false, "access": "rwm"})
        );
    }

    #[test]
    fn insecure_has_every_capability_no_masks_and_all_devices() {
        let v = json(Network::Host, Security::Insecure, &[]);
        let caps = strings(&v["process"]["capabilities"]["bounding"]);
        assert_eq!(caps.len(), ALL_CAPABILITIES.len());
        assert!(caps.contains("CAP_SYS_ADMIN"));
        assert_eq!(v["linux"]["maskedPaths"], serde_json::json!([]));
        assert_eq!(v["linux"]["readonlyPaths"], serde_json::json!([]));
        assert!(v["linux"].get("seccomp").is_none(), "insecure: no seccomp");
        assert_eq!(
            v["linux"]["resources"]["devices"],
            serde_json::json!([{"allow": true, "access": "rwm"}])
        );
        let mounts = v["mounts"].as_array().unwrap();
        let sys = mounts.iter().find(|m| m["destination"] == "/sys").unwrap();
        assert!(strings(&sys["options"]).contains("rw"));
    }
}
