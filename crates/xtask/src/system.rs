//! Running commands and installing the system packages tests need.

use std::path::PathBuf;
use std::process::Command;

use anyhow::{bail, Context, Result};

/// Debian packages the test suite uses: real clients that check our output (skopeo,
/// umoci, and docker.io's dockerd for `docker load` and BuildKit side by side), a static
/// busybox for base images made at test time, and git (ADD of git repositories, served
/// by `git daemon`), and the OCI runtimes RUN uses (runc; crun, which the tests use
/// only where it works), debootstrap for the Debian base image of the multi-stage gcc
/// build, openssh-client (a real ssh-agent for `RUN --mount=type=ssh`), and
/// docker-registry (Docker distribution, which the registry tests start on 127.0.0.1)
/// with openssl (its throwaway CA) and apache2-utils (htpasswd for its basic auth).
/// Sorted.
pub const TEST_PACKAGES: &[&str] = &[
    "apache2-utils",
    "busybox-static",
    "crun",
    "debootstrap",
    "docker-registry",
    "docker.io",
    "git",
    "openssh-client",
    "openssl",
    "runc",
    "skopeo",
    "umoci",
];

/// Packages the example needs: a static busybox for the locally made base image.
pub const EXAMPLE_PACKAGES: &[&str] = &["busybox-static"];

/// The workspace root.
pub fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("../..")
        .canonicalize()
        .expect("workspace root")
}

pub fn run(cmd: &str, args: &[&str]) -> Result<()> {
    run_env(&[], cmd, args)
}

/// [`run`] with environment variables set.
pub fn run_env(env: &[(&str, &str)], cmd: &str, args: &[&str]) -> Result<()> {
    let vars: Vec<String> = env.iter().map(|(k, v)| format!("{k}={v} ")).collect();
    eprintln!("+ {}{cmd} {}", vars.concat(), args.join(" "));
    let status = Command::new(cmd)
        .args(args)
        .envs(env.iter().copied())
        .current_dir(root())
        .status()
        .with_context(|| format!("running {cmd}"))?;
    if !status.success() {
        bail!("{cmd} {} failed with {status}", args.join(" "));
    }
    Ok(())
}

/// Installs missing Debian packages with apt-get (idempotent); without root, says what
/// to install.
pub fn ensure_packages(pkgs: &[&str]) -> Result<()> {
    let missing: Vec<&str> = pkgs
        .iter()
        .copied()
        .filter(|p| {
            !Command::new("dpkg-query")
                .args(["-W", "-f=${Status}", p])
                .output()
                .map(|o| String::from_utf8_lossy(&o.stdout).contains("install ok installed"))
                .unwrap_or(false)
        })
        .collect();
    if missing.is_empty() {
        return Ok(());
    }
    let is_root = Command::new("id")
        .arg("-u")
        .output()
        .map(|o| o.stdout.starts_with(b"0"))
        .unwrap_or(false);
    if !is_root {
        bail!(
            "missing system packages: {} (install them with: sudo apt-get install -y {})",
            missing.join(" "),
            missing.join(" ")
        );
    }
    let apt = |args: &[&str]| -> Result<()> {
        let status = Command::new("apt-get")
            .args(args)
            .env("DEBIAN_FRONTEND", "noninteractive")
            .status()?;
        if !status.success() {
            bail!("apt-get {} failed", args.join(" "));
        }
        Ok(())
    };
    apt(&["update", "-qq"])?;
    let mut args = vec!["install", "-y", "-qq", "--no-install-recommends"];
    args.extend(missing.iter().copied());
    apt(&args)
}
