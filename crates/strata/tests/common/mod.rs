//! The harness the build integration tests share: the real `strata` binary on a temp
//! `--root`, build contexts from tables, a busybox base image made from Debian's
//! `busybox-static`, file trees read from directories and tars, and the real clients
//! that check our output (skopeo, umoci, a private `dockerd` with its BuildKit).
//!
//! A test that needs a tool calls [`tool`] (or [`busybox_layout`], [`Dockerd::start`]):
//! when the tool is missing it prints why the test is skipped and the test passes, except
//! under CI (`CI` set and not `false`/`0`), where a missing tool fails the test, so a
//! broken CI image cannot hide behind skips. `cargo xtask test` installs them all.

#![allow(dead_code)]

use std::collections::BTreeMap;
use std::ffi::OsStr;
use std::fmt;
use std::io::Read;
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::sync::OnceLock;
use std::time::{Duration, Instant};

use serde_json::Value;
use tempfile::TempDir;

// ---------------------------------------------------------------------------------------
// Tools and skipping

/// Are we running in CI, where every tool must be present?
pub fn in_ci() -> bool {
    std::env::var("CI").is_ok_and(|v| !v.is_empty() && v != "false" && v != "0")
}

/// The test cannot run here: fail under CI, otherwise say why it is skipped.
pub fn skip(reason: &str) {
    if in_ci() {
        panic!("CI=true and this test cannot run: {reason}");
    }
    eprintln!("skipped: {reason}");
}

/// Finds `name` on PATH; when missing, [`skip`]s with the Debian package to install.
pub fn tool(name: &str, package: &str) -> Option<PathBuf> {
    let found = std::env::var_os("PATH").and_then(|paths| {
        std::env::split_paths(&paths)
            .map(|p| p.join(name))
            .find(|p| p.is_file())
    });
    if found.is_none() {
        skip(&format!(
            "{name} is not installed (apt-get install {package}, or `cargo xtask test`)"
        ));
    }
    found
}

pub fn is_root() -> bool {
    rustix::process::geteuid().is_root()
}

/// Runs `cmd`, panicking with its stderr unless it succeeds; returns stdout.
pub fn run_ok(cmd: &mut Command) -> Vec<u8> {
    let out = cmd
        .output()
        .unwrap_or_else(|e| panic!("running {cmd:?}: {e}"));
    assert!(
        out.status.success(),
        "{cmd:?} failed ({}):\nstdout: {}\nstderr: {}",
        out.status,
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    out.stdout
}

// ---------------------------------------------------------------------------------------
// strata

/// The `strata` binary under test, with its own store.
pub struct Strata {
    root: TempDir,
}

impl Default for Strata {
    fn default() -> Self {
        Self::new()
    }
}

impl Strata {
    pub fn new() -> Self {
        Strata {
            root: tempfile::Builder::new()
                .prefix("strata-root-")
                .tempdir()
                .unwrap(),
        }
    }

    pub fn root(&self) -> &Path {
        self.root.path()
    }

    /// `strata --root ROOT`, with no SOURCE_DATE_EPOCH or STRATA_ROOT from the caller.
    pub fn cmd(&self) -> Command {
        let mut c = Command::new(env!("CARGO_BIN_EXE_strata"));
        c.arg("--root")
            .arg(self.root.path())
            .env_remove("SOURCE_DATE_EPOCH")
            .env_remove("STRATA_ROOT")
            .env("NO_COLOR", "1")
            .stdin(Stdio::null());
        c
    }

    pub fn run<S: AsRef<OsStr>>(&self, args: &[S]) -> Output {
        self.cmd().args(args).output().unwrap()
    }

    /// Runs and panics (with stderr) unless it succeeds.
    pub fn ok<S: AsRef<OsStr>>(&self, args: &[S]) -> Output {
        let out = self.run(args);
        assert!(
            out.status.success(),
            "strata {:?} failed ({}):\n{}",
            args.iter().map(|a| a.as_ref()).collect::<Vec<_>>(),
            out.status,
            String::from_utf8_lossy(&out.stderr)
        );
        out
    }

    /// Runs and panics unless it fails; returns stderr.
    pub fn fails<S: AsRef<OsStr>>(&self, args: &[S]) -> String {
        let out = self.run(args);
        assert!(
            !out.status.success(),
            "strata {:?} succeeded but should have failed:\n{}",
            args.iter().map(|a| a.as_ref()).collect::<Vec<_>>(),
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8_lossy(&out.stderr).into_owned()
    }

    /// `strata build --progress json EXTRA… CONTEXT`, which must succeed.
    pub fn build<S: AsRef<OsStr>>(&self, context: &Path, extra: &[S]) -> Build {
        self.build_env(context, extra, &[])
    }

    pub fn build_env<S: AsRef<OsStr>>(
        &self,
        context: &Path,
        extra: &[S],
        env: &[(&str, &str)],
    ) -> Build {
        let mut c = self.cmd();
        c.args(["build", "--progress", "json"])
            .args(extra)
            .arg(context);
        for (k, v) in env {
            c.env(k, v);
        }
        Build::succeeded(c.output().unwrap(), &format!("strata build {context:?}"))
    }
}

/// What a successful `strata build --progress json` reported.
pub struct Build {
    /// The image ID printed on stdout (empty when no image was assembled).
    pub id: String,
    /// The JSON progress events, in order.
    pub events: Vec<Value>,
    pub stderr: String,
}

impl Build {
    /// The output of a build that must have succeeded (`what` names it on failure).
    pub fn succeeded(out: Output, what: &str) -> Build {
        let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
        assert!(
            out.status.success(),
            "{what} failed ({}):\n{stderr}",
            out.status
        );
        Build::parse(&out.stdout, stderr)
    }

    pub fn parse(stdout: &[u8], stderr: String) -> Build {
        let events = stderr
            .lines()
            .filter(|l| l.starts_with('{'))
            .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("bad event {l}: {e}")))
            .collect();
        Build {
            id: String::from_utf8_lossy(stdout).trim().to_string(),
            events,
            stderr,
        }
    }

    /// Names of the vertices that had event `kind` (`started`, `cached`, `completed`…).
    pub fn names(&self, kind: &str) -> Vec<String> {
        self.events
            .iter()
            .filter(|e| e["event"] == kind)
            .map(|e| e["vertex"]["name"].as_str().unwrap().to_string())
            .collect()
    }

    /// Steps that ran (started), without `[internal]` vertices (the context transfer,
    /// which BuildKit also runs on every build).
    pub fn executed(&self) -> Vec<String> {
        let mut v: Vec<String> = self
            .names("started")
            .into_iter()
            .filter(|n| !n.starts_with("[internal]"))
            .collect();
        v.sort();
        v
    }

    /// Steps answered from the cache.
    pub fn cached(&self) -> Vec<String> {
        let mut v = self.names("cached");
        v.sort();
        v
    }

    /// Every user step (not `[internal]`) that was started or cached.
    pub fn steps(&self) -> Vec<String> {
        let mut v = self.executed();
        v.extend(self.cached());
        v.sort();
        v.dedup();
        v
    }
}

// ---------------------------------------------------------------------------------------
// Build contexts

/// `len` incompressible bytes (xorshift64 from `seed`), the same for the same seed.
pub fn noise(len: usize, seed: u64) -> Vec<u8> {
    let mut x = seed;
    (0..len)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            x as u8
        })
        .collect()
}

/// A build context from `(path, content, mode)`: a path ending in `/` is a directory
/// (content ignored), anything else a file; parents are made 0755. Modes are set after
/// everything is written, directories last, so read-only directories work.
pub fn context(entries: &[(&str, &str, u32)]) -> TempDir {
    let dir = tempfile::Builder::new()
        .prefix("strata-ctx-")
        .tempdir()
        .unwrap();
    write_entries(dir.path(), entries);
    dir
}

pub fn write_entries(root: &Path, entries: &[(&str, &str, u32)]) {
    let mut dirs = Vec::new();
    for (path, content, mode) in entries {
        let p = root.join(path.trim_end_matches('/'));
        if path.ends_with('/') {
            std::fs::create_dir_all(&p).unwrap();
            dirs.push((p, *mode));
        } else {
            std::fs::create_dir_all(p.parent().unwrap()).unwrap();
            std::fs::write(&p, content).unwrap();
            std::fs::set_permissions(&p, std::fs::Permissions::from_mode(*mode)).unwrap();
        }
    }
    dirs.sort_by_key(|(p, _)| std::cmp::Reverse(p.components().count()));
    for (p, mode) in dirs {
        std::fs::set_permissions(&p, std::fs::Permissions::from_mode(mode)).unwrap();
    }
}

/// Writes (or replaces) one file in a context, keeping its mode.
pub fn write(root: &Path, path: &str, content: &str) {
    std::fs::write(root.join(path), content).unwrap();
}

pub fn symlink(root: &Path, path: &str, target: &str) {
    let p = root.join(path);
    std::fs::create_dir_all(p.parent().unwrap()).unwrap();
    std::os::unix::fs::symlink(target, p).unwrap();
}

/// Sets the mtime of every file and directory under `root` (not following symlinks).
pub fn set_mtimes(root: &Path, secs: u64) {
    let t = std::time::UNIX_EPOCH + Duration::from_secs(secs);
    for p in walk(root) {
        let meta = std::fs::symlink_metadata(&p).unwrap();
        if meta.file_type().is_symlink() {
            continue;
        }
        let f = std::fs::File::open(&p).unwrap();
        f.set_modified(t).unwrap();
    }
}

/// Every path under `root` (not `root` itself), parents before children.
pub fn walk(root: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    let mut todo = vec![root.to_path_buf()];
    while let Some(d) = todo.pop() {
        let mut entries: Vec<_> = std::fs::read_dir(&d)
            .unwrap()
            .map(|e| e.unwrap().path())
            .collect();
        entries.sort();
        for p in entries {
            if std::fs::symlink_metadata(&p).unwrap().is_dir() {
                todo.push(p.clone());
            }
            out.push(p);
        }
    }
    out.sort();
    out
}

// ---------------------------------------------------------------------------------------
// File trees: what a root filesystem holds, from a directory or a tar, comparable.

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Kind {
    File(Vec<u8>),
    Dir,
    Symlink(String),
    Other(String),
}

#[derive(Clone, PartialEq, Eq)]
pub struct Node {
    pub kind: Kind,
    /// Permission bits, including setuid/setgid/sticky (0o7777).
    pub mode: u32,
    pub uid: u64,
    pub gid: u64,
}

impl fmt::Debug for Node {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let kind = match &self.kind {
            Kind::File(c) => format!("file {:?}", String::from_utf8_lossy(c)),
            Kind::Dir => "dir".into(),
            Kind::Symlink(t) => format!("symlink -> {t}"),
            Kind::Other(k) => k.clone(),
        };
        write!(f, "{:04o} {}:{} {kind}", self.mode, self.uid, self.gid)
    }
}

/// Relative path (no leading `/` or `./`, no trailing `/`) → node.
pub type Tree = BTreeMap<String, Node>;

/// The tree under `root` (not `root` itself).
pub fn dir_tree(root: &Path) -> Tree {
    let mut t = Tree::new();
    for p in walk(root) {
        let meta = std::fs::symlink_metadata(&p).unwrap();
        let ft = meta.file_type();
        let kind = if ft.is_dir() {
            Kind::Dir
        } else if ft.is_symlink() {
            Kind::Symlink(std::fs::read_link(&p).unwrap().to_string_lossy().into())
        } else if ft.is_file() {
            Kind::File(std::fs::read(&p).unwrap())
        } else {
            Kind::Other(format!("{ft:?}"))
        };
        let rel = p.strip_prefix(root).unwrap().to_string_lossy().into_owned();
        t.insert(
            rel,
            Node {
                kind,
                mode: meta.mode() & 0o7777,
                uid: meta.uid() as u64,
                gid: meta.gid() as u64,
            },
        );
    }
    t
}

/// The tree a tar describes (hard links resolved to their target's content).
pub fn tar_tree(r: impl Read) -> Tree {
    let mut t = Tree::new();
    let mut archive = tar::Archive::new(r);
    for entry in archive.entries().unwrap() {
        let mut e = entry.unwrap();
        let path = e.path().unwrap().to_string_lossy().into_owned();
        let path = path
            .trim_start_matches("./")
            .trim_start_matches('/')
            .trim_end_matches('/')
            .to_string();
        if path.is_empty() || path == "." {
            continue;
        }
        let h = e.header().clone();
        let kind = match h.entry_type() {
            tar::EntryType::Directory => Kind::Dir,
            tar::EntryType::Symlink => {
                Kind::Symlink(e.link_name().unwrap().unwrap().to_string_lossy().into())
            }
            tar::EntryType::Link => {
                let target = e
                    .link_name()
                    .unwrap()
                    .unwrap()
                    .to_string_lossy()
                    .into_owned();
                let target = target.trim_start_matches("./").trim_start_matches('/');
                t.get(target)
                    .unwrap_or_else(|| panic!("hard link {path} to unknown {target}"))
                    .kind
                    .clone()
            }
            tar::EntryType::Regular | tar::EntryType::Continuous => {
                let mut c = Vec::new();
                e.read_to_end(&mut c).unwrap();
                Kind::File(c)
            }
            other => Kind::Other(format!("{other:?}")),
        };
        t.insert(
            path,
            Node {
                kind,
                mode: h.mode().unwrap() & 0o7777,
                uid: h.uid().unwrap(),
                gid: h.gid().unwrap(),
            },
        );
    }
    t
}

pub fn tar_file_tree(path: &Path) -> Tree {
    tar_tree(std::fs::File::open(path).unwrap())
}

/// A tree literal: `(path, "file:CONTENT" | "dir" | "link:TARGET", mode, uid, gid)`.
pub fn tree(entries: &[(&str, &str, u32, u64, u64)]) -> Tree {
    entries
        .iter()
        .map(|(p, k, mode, uid, gid)| {
            let kind = if let Some(c) = k.strip_prefix("file:") {
                Kind::File(c.as_bytes().to_vec())
            } else if let Some(t) = k.strip_prefix("link:") {
                Kind::Symlink(t.to_string())
            } else if *k == "dir" {
                Kind::Dir
            } else {
                panic!("bad tree kind {k:?}")
            };
            (
                p.to_string(),
                Node {
                    kind,
                    mode: *mode,
                    uid: *uid,
                    gid: *gid,
                },
            )
        })
        .collect()
}

/// Line-per-entry differences between two trees (empty when equal).
pub fn tree_diff(left_name: &str, left: &Tree, right_name: &str, right: &Tree) -> String {
    let mut out = String::new();
    let keys: std::collections::BTreeSet<&String> = left.keys().chain(right.keys()).collect();
    for k in keys {
        match (left.get(k), right.get(k)) {
            (Some(a), Some(b)) if a == b => {}
            (a, b) => {
                out += &format!("  /{k}: {left_name} {a:?}, {right_name} {b:?}\n");
            }
        }
    }
    out
}

// ---------------------------------------------------------------------------------------
// Image files

pub fn read_json(path: &Path) -> Value {
    serde_json::from_slice(&std::fs::read(path).unwrap())
        .unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

/// An OCI layout's blob as JSON.
pub fn layout_blob(layout: &Path, digest: &str) -> Value {
    let hex = digest.strip_prefix("sha256:").unwrap();
    read_json(&layout.join("blobs/sha256").join(hex))
}

/// Unpacks a tar (an OCI archive, a docker archive) into a new directory.
pub fn untar(archive: &Path) -> TempDir {
    let dir = tempfile::tempdir().unwrap();
    tar::Archive::new(std::fs::File::open(archive).unwrap())
        .unpack(dir.path())
        .unwrap();
    dir
}

// ---------------------------------------------------------------------------------------
// skopeo and umoci

pub struct Skopeo(PathBuf);

impl Skopeo {
    pub fn find() -> Option<Skopeo> {
        tool("skopeo", "skopeo").map(Skopeo)
    }

    /// `skopeo inspect [FLAGS] TARGET` as JSON.
    pub fn inspect(&self, flags: &[&str], target: &str) -> Value {
        let out = run_ok(Command::new(&self.0).arg("inspect").args(flags).arg(target));
        serde_json::from_slice(&out).unwrap()
    }

    /// `skopeo inspect --raw TARGET`: the manifest bytes.
    pub fn raw_manifest(&self, target: &str) -> Vec<u8> {
        run_ok(Command::new(&self.0).args(["inspect", "--raw", target]))
    }

    /// `skopeo copy` (reads and verifies every blob).
    pub fn copy(&self, from: &str, to: &str) {
        self.copy_with(&[], from, to)
    }

    /// [`Skopeo::copy`] from a registry served over plain HTTP (the test registries).
    pub fn copy_from_plain_http(&self, from: &str, to: &str) {
        self.copy_with(&["--src-tls-verify=false"], from, to)
    }

    fn copy_with(&self, flags: &[&str], from: &str, to: &str) {
        let mut c = Command::new(&self.0);
        c.args(["copy", "--insecure-policy", "-q"]).args(flags);
        run_ok(c.args([from, to]));
    }
}

pub struct Umoci(PathBuf);

impl Umoci {
    pub fn find() -> Option<Umoci> {
        tool("umoci", "umoci").map(Umoci)
    }

    /// `umoci unpack --image LAYOUT:TAG`, returning the bundle (its rootfs in `rootfs/`).
    pub fn unpack(&self, layout: &Path, tag: &str) -> TempDir {
        let bundle = tempfile::tempdir().unwrap();
        let dest = bundle.path().join("bundle");
        let mut c = Command::new(&self.0);
        c.arg("unpack");
        if !is_root() {
            c.arg("--rootless");
        }
        c.arg("--image")
            .arg(format!("{}:{tag}", layout.display()))
            .arg(&dest);
        run_ok(&mut c);
        bundle
    }
}

/// The rootfs of an unpacked umoci bundle, as a tree (without the bundle's own files).
pub fn umoci_rootfs(bundle: &TempDir) -> Tree {
    dir_tree(&bundle.path().join("bundle/rootfs"))
}

// ---------------------------------------------------------------------------------------
// A busybox base image, as an OCI layout

/// Users and groups in the busybox image (for `--chown=NAME` tests).
pub const PASSWD: &str = "root:x:0:0:root:/root:/bin/sh\n\
                          app:x:1000:1001:app:/home/app:/bin/sh\n\
                          nobody:x:65534:65534:nobody:/:/bin/false\n";
pub const GROUP: &str = "root:x:0:\nstaff:x:50:\napp:x:1001:\nnobody:x:65534:\n";

/// An OCI layout (tag `latest`) holding Debian's static busybox with its applet links,
/// `/etc/passwd` ([`PASSWD`]) and `/etc/group` ([`GROUP`]): the approach of
/// `cargo xtask example`, written with the tar crate so it is byte-stable. Made once per
/// test process under `CARGO_TARGET_TMPDIR`; `None` (skipped) without busybox-static.
pub fn busybox_layout() -> Option<PathBuf> {
    static LAYOUT: OnceLock<Option<PathBuf>> = OnceLock::new();
    LAYOUT
        .get_or_init(|| {
            let Some(busybox) = ["/bin/busybox", "/usr/bin/busybox"]
                .into_iter()
                .map(PathBuf::from)
                .find(|p| p.exists())
            else {
                skip("busybox-static is not installed (apt-get install busybox-static)");
                return None;
            };
            Some(make_busybox_layout(&busybox))
        })
        .clone()
}

fn make_busybox_layout(busybox: &Path) -> PathBuf {
    let base = Path::new(env!("CARGO_TARGET_TMPDIR")).join("strata-busybox");
    std::fs::create_dir_all(&base).unwrap();
    let work = tempfile::tempdir_in(&base).unwrap();
    let layout = work.path().join("layout");
    let blobs = layout.join("blobs/sha256");
    std::fs::create_dir_all(&blobs).unwrap();

    let bin = std::fs::read(busybox).unwrap();
    let list = run_ok(Command::new(busybox).arg("--list"));
    let mut applets: Vec<String> = String::from_utf8_lossy(&list)
        .lines()
        .filter(|a| !a.is_empty() && *a != "busybox")
        .map(str::to_string)
        .collect();
    applets.sort();

    let mut layer = tar::Builder::new(Vec::new());
    let header = |kind: tar::EntryType, mode: u32, size: u64| {
        let mut h = tar::Header::new_ustar();
        h.set_entry_type(kind);
        h.set_mode(mode);
        h.set_size(size);
        h.set_uid(0);
        h.set_gid(0);
        h.set_mtime(0);
        h
    };
    let dir = |b: &mut tar::Builder<Vec<u8>>, p: &str, mode: u32| {
        let mut h = header(tar::EntryType::Directory, mode, 0);
        b.append_data(&mut h, p, std::io::empty()).unwrap();
    };
    let file = |b: &mut tar::Builder<Vec<u8>>, p: &str, mode: u32, data: &[u8]| {
        let mut h = header(tar::EntryType::Regular, mode, data.len() as u64);
        b.append_data(&mut h, p, data).unwrap();
    };
    dir(&mut layer, "bin/", 0o755);
    file(&mut layer, "bin/busybox", 0o755, &bin);
    for a in &applets {
        let mut h = header(tar::EntryType::Symlink, 0o777, 0);
        layer
            .append_link(&mut h, format!("bin/{a}"), "busybox")
            .unwrap();
    }
    dir(&mut layer, "etc/", 0o755);
    file(&mut layer, "etc/group", 0o644, GROUP.as_bytes());
    file(&mut layer, "etc/passwd", 0o644, PASSWD.as_bytes());
    dir(&mut layer, "tmp/", 0o1777);
    let layer_tar = layer.into_inner().unwrap();
    let diff_id = sha256(&layer_tar);
    let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
    std::io::Write::write_all(&mut gz, &layer_tar).unwrap();
    let layer_gz = gz.finish().unwrap();

    let put = |bytes: &[u8]| -> (String, usize) {
        let d = sha256(bytes);
        std::fs::write(blobs.join(d.strip_prefix("sha256:").unwrap()), bytes).unwrap();
        (d, bytes.len())
    };
    let (layer_d, layer_len) = put(&layer_gz);
    let config = format!(
        r#"{{"created":"1970-01-01T00:00:00Z","architecture":"amd64","os":"linux","config":{{"Env":["PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"],"Cmd":["sh"]}},"rootfs":{{"type":"layers","diff_ids":["{diff_id}"]}},"history":[{{"created":"1970-01-01T00:00:00Z","created_by":"busybox-static from Debian (strata tests)"}}]}}"#
    );
    let (cfg_d, cfg_len) = put(config.as_bytes());
    let manifest = format!(
        r#"{{"schemaVersion":2,"mediaType":"application/vnd.oci.image.manifest.v1+json","config":{{"mediaType":"application/vnd.oci.image.config.v1+json","digest":"{cfg_d}","size":{cfg_len}}},"layers":[{{"mediaType":"application/vnd.oci.image.layer.v1.tar+gzip","digest":"{layer_d}","size":{layer_len}}}]}}"#
    );
    let (m_d, m_len) = put(manifest.as_bytes());
    std::fs::write(
        layout.join("index.json"),
        format!(
            r#"{{"schemaVersion":2,"mediaType":"application/vnd.oci.image.index.v1+json","manifests":[{{"mediaType":"application/vnd.oci.image.manifest.v1+json","digest":"{m_d}","size":{m_len},"annotations":{{"org.opencontainers.image.ref.name":"latest"}}}}]}}"#
        ),
    )
    .unwrap();
    std::fs::write(
        layout.join("oci-layout"),
        r#"{"imageLayoutVersion":"1.0.0"}"#,
    )
    .unwrap();

    // Content-named, so concurrent test processes agree; the first rename wins.
    let dest = base.join(&m_d["sha256:".len().."sha256:".len() + 16]);
    if !dest.exists() {
        let _ = std::fs::rename(&layout, &dest);
    }
    assert!(dest.join("index.json").exists(), "{}", dest.display());
    dest
}

pub fn sha256(bytes: &[u8]) -> String {
    strata_digest::sha256(bytes).to_string()
}

/// The busybox layout as a build context argument: `NAME=oci-layout://DIR:latest`.
pub fn busybox_context(name: &str, layout: &Path) -> String {
    format!("{name}=oci-layout://{}:latest", layout.display())
}

/// A fresh store and `--build-context busybox=…` for builds with RUN steps: `None`
/// (skipped, or failing under CI) without root, runc or busybox.
pub fn run_store() -> Option<(Strata, String)> {
    if !is_root() {
        skip("RUN needs root (overlay mounts and runc)");
        return None;
    }
    tool("runc", "runc")?;
    let layout = busybox_layout()?;
    Some((Strata::new(), busybox_context("busybox", &layout)))
}

/// A store and `busybox=oci-layout://…` for tests that RUN, when root, runc and
/// busybox are there (else the test is skipped, or fails under CI).
pub fn run_setup() -> Option<(Strata, String)> {
    if !is_root() {
        skip("RUN needs root (overlay mounts and runc)");
        return None;
    }
    tool("runc", "runc")?;
    let layout = busybox_layout()?;
    Some((Strata::new(), busybox_context("busybox", &layout)))
}

/// A context holding only a Dockerfile.
pub fn dockerfile(text: &str) -> TempDir {
    context(&[("Dockerfile", text, 0o644)])
}

/// Builds with `--build-context BC -o type=local` and returns the root file system.
pub fn build_local(s: &Strata, bc: &str, ctx: &Path, extra: &[&str]) -> (Build, TempDir) {
    let out = tempfile::tempdir().unwrap();
    let dest = format!("type=local,dest={}", out.path().display());
    let mut args = vec!["--build-context", bc, "-o", &dest];
    args.extend_from_slice(extra);
    let b = s.build(ctx, &args);
    (b, out)
}

/// The content of the regular file `path` in `tree`.
pub fn file(tree: &Tree, path: &str) -> String {
    match &tree
        .get(path)
        .unwrap_or_else(|| panic!("{path} missing"))
        .kind
    {
        Kind::File(c) => String::from_utf8_lossy(c).into_owned(),
        other => panic!("{path} is {other:?}"),
    }
}

// ---------------------------------------------------------------------------------------
// A Debian base image, as an OCI layout

/// Debian bookworm from `debootstrap --variant=minbase` (apt caches and `/dev` nodes
/// left out) as an OCI layout with one uncompressed layer, tag `bookworm`. Made once per
/// machine under `<target>/test-cache/`, named after the debootstrap version (a few
/// minutes and the Debian mirror, `STRATA_TEST_DEBIAN_MIRROR` or deb.debian.org); later
/// calls, in any test process, find it there. `None` (skipped) without root or
/// debootstrap, or when debootstrap fails (the reason is printed).
pub fn debian_layout() -> Option<PathBuf> {
    if !is_root() {
        skip("debootstrap needs root");
        return None;
    }
    let debootstrap = tool("debootstrap", "debootstrap")?;
    let version = run_ok(Command::new(&debootstrap).arg("--version"));
    let version = String::from_utf8_lossy(&version)
        .split_whitespace()
        .last()
        .unwrap_or("unknown")
        .replace(['/', '+', '~', ':'], "_");
    let cache = Path::new(env!("CARGO_TARGET_TMPDIR"))
        .parent()
        .unwrap()
        .join("test-cache");
    std::fs::create_dir_all(&cache).unwrap();
    let name = format!("debian-bookworm-minbase-{version}");
    let layout = cache.join(&name);
    // One maker per machine; the others wait for it here.
    let lock = std::fs::File::create(cache.join(format!("{name}.lock"))).unwrap();
    rustix::fs::flock(&lock, rustix::fs::FlockOperation::LockExclusive).unwrap();
    if layout.join("index.json").exists() {
        return Some(layout);
    }
    let started = Instant::now();
    let work = tempfile::tempdir_in(&cache).unwrap();
    let root = work.path().join("rootfs");
    let mirror = std::env::var("STRATA_TEST_DEBIAN_MIRROR")
        .unwrap_or_else(|_| "http://deb.debian.org/debian".to_string());
    let out = Command::new(&debootstrap)
        .args(["--variant=minbase", "bookworm"])
        .arg(&root)
        .arg(&mirror)
        .stdin(Stdio::null())
        .output()
        .unwrap();
    if !out.status.success() {
        let log =
            std::fs::read_to_string(root.join("debootstrap/debootstrap.log")).unwrap_or_default();
        let tail: Vec<&str> = log.lines().rev().take(15).collect();
        skip(&format!(
            "debootstrap --variant=minbase bookworm {mirror} failed ({}):\n{}\n{}",
            out.status,
            String::from_utf8_lossy(&out.stderr),
            tail.into_iter().rev().collect::<Vec<_>>().join("\n")
        ));
        return None;
    }
    for dir in ["var/cache/apt/archives", "var/lib/apt/lists", "dev"] {
        for e in std::fs::read_dir(root.join(dir)).unwrap() {
            let p = e.unwrap().path();
            if p.is_dir() && !p.is_symlink() {
                if p.ends_with("partial") {
                    continue;
                }
                std::fs::remove_dir_all(&p).unwrap();
            } else {
                std::fs::remove_file(&p).unwrap();
            }
        }
    }
    let made = work.path().join("layout");
    let blobs = made.join("blobs/sha256");
    std::fs::create_dir_all(&blobs).unwrap();
    let layer = work.path().join("layer.tar");
    run_ok(
        Command::new("tar")
            .args(["--numeric-owner", "--xattrs", "--sort=name", "-C"])
            .arg(&root)
            .arg("-cf")
            .arg(&layer)
            .arg("."),
    );
    let (diff_id, layer_len) = {
        let mut r = strata_digest::HashingReader::new(std::fs::File::open(&layer).unwrap());
        std::io::copy(&mut r, &mut std::io::sink()).unwrap();
        let (d, len, _) = r.finish();
        (d.to_string(), len)
    };
    std::fs::rename(&layer, blobs.join(&diff_id["sha256:".len()..])).unwrap();
    let put = |bytes: &[u8]| -> (String, usize) {
        let d = sha256(bytes);
        std::fs::write(blobs.join(&d["sha256:".len()..]), bytes).unwrap();
        (d, bytes.len())
    };
    let config = format!(
        r#"{{"created":"1970-01-01T00:00:00Z","architecture":"amd64","os":"linux","config":{{"Env":["PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"],"Cmd":["bash"]}},"rootfs":{{"type":"layers","diff_ids":["{diff_id}"]}},"history":[{{"created":"1970-01-01T00:00:00Z","created_by":"debootstrap --variant=minbase bookworm (strata tests)"}}]}}"#
    );
    let (cfg_d, cfg_len) = put(config.as_bytes());
    let manifest = format!(
        r#"{{"schemaVersion":2,"mediaType":"application/vnd.oci.image.manifest.v1+json","config":{{"mediaType":"application/vnd.oci.image.config.v1+json","digest":"{cfg_d}","size":{cfg_len}}},"layers":[{{"mediaType":"application/vnd.oci.image.layer.v1.tar","digest":"{diff_id}","size":{layer_len}}}]}}"#
    );
    let (m_d, m_len) = put(manifest.as_bytes());
    std::fs::write(
        made.join("index.json"),
        format!(
            r#"{{"schemaVersion":2,"mediaType":"application/vnd.oci.image.index.v1+json","manifests":[{{"mediaType":"application/vnd.oci.image.manifest.v1+json","digest":"{m_d}","size":{m_len},"annotations":{{"org.opencontainers.image.ref.name":"bookworm"}}}}]}}"#
        ),
    )
    .unwrap();
    std::fs::write(made.join("oci-layout"), r#"{"imageLayoutVersion":"1.0.0"}"#).unwrap();
    std::fs::rename(&made, &layout).unwrap();
    eprintln!(
        "made the Debian base image {} in {:.0?} (once per machine)",
        layout.display(),
        started.elapsed()
    );
    Some(layout)
}

// ---------------------------------------------------------------------------------------
// dockerd

/// A private `dockerd` (Debian's docker.io) for this test: no bridge, no iptables, vfs
/// storage, every path in a temp dir, its API on a unix socket there. Stopped (SIGTERM,
/// then SIGKILL for it and anything it started) and its mounts removed on drop.
pub struct Dockerd {
    child: Child,
    dir: TempDir,
    docker: PathBuf,
}

impl Dockerd {
    /// Starts one and waits (bounded) until `docker info` answers; `None` (skipped)
    /// without docker.io or root.
    pub fn start() -> Option<Dockerd> {
        let dockerd = tool("dockerd", "docker.io")?;
        // Debian's client matches its daemon and has BuildKit built in; another `docker`
        // earlier on PATH (a newer CLI wanting the buildx plugin) is not what we test.
        let docker = match std::env::var_os("STRATA_TEST_DOCKER") {
            Some(d) => PathBuf::from(d),
            None if Path::new("/usr/bin/docker").is_file() => PathBuf::from("/usr/bin/docker"),
            None => tool("docker", "docker.io")?,
        };
        if !is_root() {
            skip("dockerd needs root");
            return None;
        }
        // Short: the socket paths under it must fit in sockaddr_un.
        let dir = tempfile::Builder::new().prefix("dk").tempdir().unwrap();
        let d = dir.path();
        std::fs::write(d.join("daemon.json"), "{}").unwrap();
        std::fs::create_dir_all(d.join("config")).unwrap();
        let log = std::fs::File::create(d.join("dockerd.log")).unwrap();
        // Our own containerd namespaces, in case dockerd uses a system containerd (it does
        // when one runs at the default socket) that a system dockerd shares.
        let ns = d.file_name().unwrap().to_string_lossy().into_owned();
        let child = Command::new(dockerd)
            .arg(format!("--containerd-namespace=strata-{ns}"))
            .arg(format!(
                "--containerd-plugins-namespace=strata-{ns}-plugins"
            ))
            .arg("--bridge=none")
            .arg("--iptables=false")
            .arg("--ip6tables=false")
            .arg("--storage-driver=vfs")
            .arg(format!("--config-file={}", d.join("daemon.json").display()))
            .arg(format!("--data-root={}", d.join("data").display()))
            .arg(format!("--exec-root={}", d.join("x").display()))
            .arg(format!("--pidfile={}", d.join("docker.pid").display()))
            .arg(format!("--host=unix://{}", d.join("docker.sock").display()))
            .stdin(Stdio::null())
            .stdout(log.try_clone().unwrap())
            .stderr(log)
            .spawn()
            .expect("starting dockerd");
        let mut me = Dockerd { child, dir, docker };
        me.wait_ready();
        Some(me)
    }

    fn wait_ready(&mut self) {
        let deadline = Instant::now() + Duration::from_secs(60);
        loop {
            if let Some(status) = self.child.try_wait().unwrap() {
                panic!(
                    "dockerd exited ({status}) before it was ready:\n{}",
                    self.log()
                );
            }
            let ok = self
                .docker()
                .args(["info", "--format", "{{.ServerVersion}}"])
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .status()
                .is_ok_and(|s| s.success());
            if ok {
                return;
            }
            assert!(
                Instant::now() < deadline,
                "dockerd not ready after 60s:\n{}",
                self.log()
            );
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    pub fn log(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("dockerd.log")).unwrap_or_default()
    }

    /// `docker` talking to this daemon, with a private client config.
    pub fn docker(&self) -> Command {
        let mut c = Command::new(&self.docker);
        c.env(
            "DOCKER_HOST",
            format!("unix://{}", self.dir.path().join("docker.sock").display()),
        )
        .env("DOCKER_CONFIG", self.dir.path().join("config"))
        .env_remove("DOCKER_CONTEXT")
        .env_remove("DOCKER_TLS_VERIFY")
        .stdin(Stdio::null());
        c
    }

    /// Runs `docker ARGS`, panicking (with the daemon log's tail) unless it succeeds.
    pub fn ok<S: AsRef<OsStr>>(&self, args: &[S]) -> Vec<u8> {
        let out = self.docker().args(args).output().unwrap();
        if !out.status.success() {
            let log = self.log();
            let tail: Vec<&str> = log.lines().rev().take(20).collect();
            panic!(
                "docker {:?} failed ({}):\n{}\n{}\ndockerd log (last lines):\n{}",
                args.iter().map(|a| a.as_ref()).collect::<Vec<_>>(),
                out.status,
                String::from_utf8_lossy(&out.stdout),
                String::from_utf8_lossy(&out.stderr),
                tail.into_iter().rev().collect::<Vec<_>>().join("\n")
            );
        }
        out.stdout
    }

    /// The rootfs of `image` as `docker create` + `docker export` see it, without the
    /// files Docker adds to every container (`.dockerenv`, `/dev`, `/proc`, `/sys`,
    /// `/etc/{hostname,hosts,mtab,resolv.conf}`).
    pub fn exported_tree(&self, image: &str) -> Tree {
        let id = String::from_utf8(self.ok(&["create", image, "/none"])).unwrap();
        let id = id.trim();
        let out = self.docker().args(["export", id]).output().unwrap();
        assert!(out.status.success(), "docker export failed");
        self.ok(&["rm", id]);
        let mut t = tar_tree(out.stdout.as_slice());
        let added = [
            ".dockerenv",
            "dev",
            "proc",
            "sys",
            "etc/hostname",
            "etc/hosts",
            "etc/mtab",
            "etc/resolv.conf",
        ];
        t.retain(|k, _| {
            !added
                .iter()
                .any(|a| k == a || k.starts_with(&format!("{a}/")))
        });
        if t.get("etc").is_some_and(|n| n.kind == Kind::Dir)
            && !t.keys().any(|k| k.starts_with("etc/"))
        {
            t.remove("etc");
        }
        t
    }

    /// Processes this daemon started (containerd, shims), found through /proc.
    fn descendants(&self) -> Vec<i32> {
        let mut out = Vec::new();
        let mut todo = vec![self.child.id() as i32];
        while let Some(pid) = todo.pop() {
            let Ok(tasks) = std::fs::read_dir(format!("/proc/{pid}/task")) else {
                continue;
            };
            for t in tasks.flatten() {
                let children =
                    std::fs::read_to_string(t.path().join("children")).unwrap_or_default();
                for c in children.split_whitespace().filter_map(|c| c.parse().ok()) {
                    out.push(c);
                    todo.push(c);
                }
            }
        }
        out
    }
}

impl Drop for Dockerd {
    fn drop(&mut self) {
        use rustix::process::{kill_process, Pid, Signal};
        let descendants = self.descendants();
        let pid = Pid::from_raw(self.child.id() as i32).expect("dockerd pid");
        let _ = kill_process(pid, Signal::TERM);
        let deadline = Instant::now() + Duration::from_secs(20);
        while self.child.try_wait().ok().flatten().is_none() && Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(50));
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
        // Whatever it started and left behind, by PID (only if still alive).
        // Only if still alive and still ours (its command line names our temp dir), so
        // a reused PID is never hit.
        let root = self.dir.path().to_string_lossy().into_owned();
        for p in descendants {
            let cmdline = std::fs::read(format!("/proc/{p}/cmdline")).unwrap_or_default();
            if !String::from_utf8_lossy(&cmdline).contains(&root) {
                continue;
            }
            if let Some(p) = Pid::from_raw(p) {
                let _ = kill_process(p, Signal::KILL);
            }
        }
        // Mounts under the temp dir (netns, shm, overlay if any), deepest first.
        let mounts = std::fs::read_to_string("/proc/self/mountinfo").unwrap_or_default();
        let mut points: Vec<String> = mounts
            .lines()
            .filter_map(|l| l.split(' ').nth(4))
            .filter(|m| m.starts_with(&root))
            .map(|m| m.replace("\\040", " "))
            .collect();
        points.sort_by_key(|p| std::cmp::Reverse(p.len()));
        for p in points {
            let _ = rustix::mount::unmount(p.as_str(), rustix::mount::UnmountFlags::DETACH);
        }
    }
}
