//! crun's seccomp filter, compiled once per profile.
//!
//! crun compiles the `linux.seccomp` section of every container's `config.json` with
//! libseccomp before it starts the process: about 25 ms of a `RUN true` with Docker's
//! profile, every step. crun also takes a compiled filter as is, base64 in the
//! annotation `run.oci.seccomp_bpf_data` (then the rules in `linux.seccomp` are not
//! compiled). So the first sandboxed step of a process has crun compile the profile
//! once, in a container that is created and deleted without ever running
//! (`crun create`, which leaves the filter in its state directory as `seccomp.bpf`),
//! and every step with that profile gets those bytes: the very filter crun would have
//! compiled itself for it (crun compiles nothing but `linux.seccomp`, and the
//! annotation `run.oci.seccomp_fail_unknown_syscall`, which strata never sets; the
//! bytes were checked equal to those of a real step's state). If that fails, steps go
//! on without the annotation.

use std::collections::HashMap;
use std::process::Stdio;
use std::sync::{Arc, Mutex};

use oci_spec::runtime::LinuxSeccomp;

/// The annotation crun reads a compiled filter from.
pub(crate) const ANNOTATION: &str = "run.oci.seccomp_bpf_data";

/// Compiled filters (base64) by profile (its JSON), or why compiling failed.
#[derive(Debug, Default)]
pub(crate) struct Filters(Mutex<HashMap<String, Result<Arc<str>, String>>>);

impl Filters {
    /// The filter for `profile`, compiled by `compile` on first use (one at a time: a
    /// second step waits for the first's compile instead of doing its own); a failure
    /// is remembered too.
    pub(crate) fn get(
        &self,
        profile: &LinuxSeccomp,
        compile: impl FnOnce(&serde_json::Value) -> Result<Vec<u8>, String>,
    ) -> Result<Arc<str>, String> {
        let json = serde_json::to_value(profile).map_err(|e| e.to_string())?;
        let key = json.to_string();
        let mut map = self.0.lock().unwrap_or_else(|e| e.into_inner());
        map.entry(key)
            .or_insert_with(|| compile(&json).map(|bpf| Arc::from(base64(&bpf))))
            .clone()
    }
}

/// The spec of a container that only gets created: an empty root (crun opens its
/// `/dev` and wants the program to exist and be executable), `profile` as its filter.
pub(crate) fn capture_spec(rootfs: &std::path::Path, profile: &serde_json::Value) -> String {
    serde_json::json!({
        "ociVersion": "1.0.2",
        "root": {"path": rootfs},
        "mounts": [],
        "process": {"args": ["/strata-seccomp"], "cwd": "/", "user": {"uid": 0, "gid": 0}},
        "linux": {"namespaces": [{"type": "pid"}, {"type": "mount"}], "seccomp": profile}
    })
    .to_string()
}

/// Writes the root of [`capture_spec`] at `rootfs`.
pub(crate) fn capture_root(rootfs: &std::path::Path) -> std::io::Result<()> {
    use std::os::unix::fs::PermissionsExt;
    fs_err::create_dir_all(rootfs.join("dev"))?;
    let program = rootfs.join("strata-seccomp");
    fs_err::write(&program, b"")?;
    fs_err::set_permissions(&program, std::fs::Permissions::from_mode(0o755))
}

/// Runs `cmd` (`crun create … --log LOG --log-format json`): `Err` with the runtime's
/// messages from `log` unless it succeeds. Quiet: no pipe either, as the container's
/// init (waiting for a start) would hold it open. `started` gets its pid and returns
/// what to keep until it has exited (a record of it for the reaper).
pub(crate) fn create<T>(
    cmd: &mut std::process::Command,
    log: &std::path::Path,
    started: impl FnOnce(u32) -> Option<T>,
) -> Result<(), String> {
    let mut child = cmd
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .map_err(|e| format!("starting {:?}: {e}", cmd.get_program()))?;
    let _record = started(child.id());
    let status = child.wait().map_err(|e| e.to_string())?;
    if status.success() {
        return Ok(());
    }
    Err(crate::oci::runtime_error(log).unwrap_or_else(|| format!("crun create: {status}")))
}

/// Standard base64 with padding.
fn base64(data: &[u8]) -> String {
    const ALPHABET: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let mut out = String::with_capacity(data.len().div_ceil(3) * 4);
    for chunk in data.chunks(3) {
        let b = [
            chunk[0],
            chunk.get(1).copied().unwrap_or(0),
            chunk.get(2).copied().unwrap_or(0),
        ];
        let n = (u32::from(b[0]) << 16) | (u32::from(b[1]) << 8) | u32::from(b[2]);
        for i in 0..4 {
            if i <= chunk.len() {
                out.push(ALPHABET[(n >> (18 - 6 * i)) as usize & 63] as char);
            } else {
                out.push('=');
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn base64_matches_rfc_4648_vectors() {
        for (raw, enc) in [
            ("", ""),
            ("f", "Zg=="),
            ("fo", "Zm8="),
            ("foo", "Zm9v"),
            ("foob", "Zm9vYg=="),
            ("fooba", "Zm9vYmE="),
            ("foobar", "Zm9vYmFy"),
        ] {
            assert_eq!(base64(raw.as_bytes()), enc, "{raw}");
        }
        assert_eq!(base64(&[0xff, 0xfe, 0x00]), "//4A");
    }

    #[test]
    fn a_profile_is_compiled_once_and_a_failure_is_remembered() {
        let filters = Filters::default();
        let profile = crate::seccomp::profile(&[]).unwrap();
        let mut calls = 0;
        for _ in 0..3 {
            let got = filters.get(&profile, |_| {
                calls += 1;
                Ok(vec![1, 2, 3])
            });
            assert_eq!(got.as_deref(), Ok("AQID"));
        }
        assert_eq!(calls, 1);
        let other = crate::seccomp::profile(&[oci_spec::runtime::Capability::SysAdmin]).unwrap();
        assert_eq!(filters.get(&other, |_| Err("no".into())), Err("no".into()));
        assert_eq!(filters.get(&other, |_| Ok(vec![0])), Err("no".into()));
    }
}
