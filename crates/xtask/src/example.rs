//! `cargo xtask example`: makes a busybox base image locally (Debian's busybox-static,
//! as an OCI layout under target/example), then runs strata on testdata/example.

use std::path::Path;
use std::process::Command;

use anyhow::{bail, Context, Result};
use strata_digest::sha256;

use crate::system::{self, root};

pub fn run() -> Result<()> {
    system::ensure_packages(system::EXAMPLE_PACKAGES)?;
    let layout = root().join("target/example/busybox-layout");
    busybox_layout(&layout)?;
    system::run("cargo", &["build", "--release", "-p", "strata"])?;
    let strata = root().join("target/release/strata");
    let strata = strata.to_str().unwrap();
    let bc = format!("busybox=oci-layout://{}:latest", layout.display());
    let rootfs = root().join("target/example/rootfs");
    let _ = std::fs::remove_dir_all(&rootfs);
    // Into the default store (/var/lib/strata as root), plus the root filesystem.
    system::run(
        strata,
        &[
            "build",
            "--check",
            "--build-context",
            &bc,
            "testdata/example",
        ],
    )?;
    system::run(
        strata,
        &[
            "build",
            "--progress",
            "plain",
            "--build-context",
            &bc,
            "-t",
            "strata-example:latest",
            "-o",
            &format!("type=local,dest={}", rootfs.display()),
            "testdata/example",
        ],
    )?;
    system::run(strata, &["images"])?;
    system::run(strata, &["image", "history", "strata-example:latest"])?;
    let out = std::fs::read_to_string(rootfs.join("srv/out.txt"))
        .context("the example's /srv/out.txt")?;
    println!("\nThe image's CMD prints /srv/out.txt, which the build produced:\n{out}");
    Ok(())
}

/// An OCI image layout holding one image: /bin/busybox plus its applet links.
pub fn busybox_layout(layout: &Path) -> Result<()> {
    let work = layout.with_extension("work");
    let _ = std::fs::remove_dir_all(&work);
    let _ = std::fs::remove_dir_all(layout);
    let rootfs = work.join("rootfs");
    std::fs::create_dir_all(rootfs.join("bin"))?;
    std::fs::create_dir_all(rootfs.join("etc"))?;
    std::fs::create_dir_all(rootfs.join("tmp"))?;
    let busybox = ["/bin/busybox", "/usr/bin/busybox"]
        .into_iter()
        .find(|p| Path::new(p).exists())
        .context("busybox-static is not installed")?;
    std::fs::copy(busybox, rootfs.join("bin/busybox"))?;
    let list = Command::new(busybox).arg("--list").output()?;
    for applet in String::from_utf8_lossy(&list.stdout)
        .lines()
        .filter(|a| *a != "busybox")
    {
        std::os::unix::fs::symlink("busybox", rootfs.join("bin").join(applet))?;
    }
    std::fs::write(
        rootfs.join("etc/passwd"),
        "root:x:0:0:root:/root:/bin/sh\nnobody:x:65534:65534:nobody:/:/bin/false\n",
    )?;
    std::fs::write(rootfs.join("etc/group"), "root:x:0:\nnobody:x:65534:\n")?;

    let tar = work.join("layer.tar");
    let status = Command::new("tar")
        .args([
            "--sort=name",
            "--owner=0",
            "--group=0",
            "--numeric-owner",
            "--mtime=@0",
            "--format=pax",
            "-C",
        ])
        .arg(&rootfs)
        .args(["-cf"])
        .arg(&tar)
        .arg(".")
        .status()?;
    if !status.success() {
        bail!("tar failed");
    }
    let diff_id = sha256(std::fs::read(&tar)?);
    let status = Command::new("gzip").args(["-n", "-f"]).arg(&tar).status()?;
    if !status.success() {
        bail!("gzip failed");
    }
    let layer = std::fs::read(work.join("layer.tar.gz"))?;

    let blobs = layout.join("blobs/sha256");
    std::fs::create_dir_all(&blobs)?;
    let put = |bytes: &[u8]| -> Result<(String, usize)> {
        let d = sha256(bytes);
        std::fs::write(blobs.join(d.hex()), bytes)?;
        Ok((d.to_string(), bytes.len()))
    };
    let (layer_d, layer_len) = put(&layer)?;
    let config = format!(
        r#"{{"architecture":"amd64","os":"linux","config":{{"Env":["PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"],"Cmd":["sh"]}},"rootfs":{{"type":"layers","diff_ids":["{diff_id}"]}},"history":[{{"created_by":"busybox-static from Debian (cargo xtask example)"}}]}}"#
    );
    let (cfg_d, cfg_len) = put(config.as_bytes())?;
    let manifest = format!(
        r#"{{"schemaVersion":2,"mediaType":"application/vnd.oci.image.manifest.v1+json","config":{{"mediaType":"application/vnd.oci.image.config.v1+json","digest":"{cfg_d}","size":{cfg_len}}},"layers":[{{"mediaType":"application/vnd.oci.image.layer.v1.tar+gzip","digest":"{layer_d}","size":{layer_len}}}]}}"#
    );
    let (m_d, m_len) = put(manifest.as_bytes())?;
    std::fs::write(
        layout.join("index.json"),
        format!(
            r#"{{"schemaVersion":2,"mediaType":"application/vnd.oci.image.index.v1+json","manifests":[{{"mediaType":"application/vnd.oci.image.manifest.v1+json","digest":"{m_d}","size":{m_len},"annotations":{{"org.opencontainers.image.ref.name":"latest"}}}}]}}"#
        ),
    )?;
    std::fs::write(
        layout.join("oci-layout"),
        r#"{"imageLayoutVersion":"1.0.0"}"#,
    )?;
    let _ = std::fs::remove_dir_all(&work);
    eprintln!("made {} ({m_d})", layout.display());
    Ok(())
}
