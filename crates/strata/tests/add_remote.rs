//! `ADD <url>` and `ADD <git url>` through the real binary: a tiny HTTP server and a
//! `git daemon`, both on 127.0.0.1 and started (and stopped) by the tests, serve the
//! sources; builds export the root filesystem with `-o type=local`.
//!
//! Needs root (overlay mounts), as every build test does; the git tests need `git`.
//! Without them a test says why it is skipped, except under CI, where it fails.

use std::collections::BTreeMap;
use std::io::{BufRead, BufReader, Write};
use std::net::{TcpListener, TcpStream};
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tempfile::TempDir;

// ---------------------------------------------------------------------------------------
// Skipping

fn in_ci() -> bool {
    std::env::var("CI").is_ok_and(|v| !v.is_empty() && v != "false" && v != "0")
}

/// Whether the test can run here; says why not (and fails under CI).
fn can_run(needs_git: bool) -> bool {
    let mut missing = Vec::new();
    if !rustix::process::geteuid().is_root() {
        missing.push("root (overlay mounts)");
    }
    if needs_git
        && Command::new("git")
            .arg("--version")
            .stdout(Stdio::null())
            .status()
            .is_err()
    {
        missing.push("git (apt-get install git)");
    }
    if missing.is_empty() {
        return true;
    }
    let reason = format!("needs {}", missing.join(" and "));
    if in_ci() {
        panic!("CI=true and this test cannot run: {reason}");
    }
    eprintln!("skipped: {reason}");
    false
}

// ---------------------------------------------------------------------------------------
// Builds

struct Build {
    ok: bool,
    stderr: String,
    out: PathBuf,
}

/// A store root and a build context that the tests rewrite between builds.
struct Project {
    dir: TempDir,
    builds: usize,
}

impl Project {
    fn new() -> Self {
        let dir = tempfile::tempdir().unwrap();
        std::fs::create_dir(dir.path().join("ctx")).unwrap();
        Project { dir, builds: 0 }
    }

    fn build(&mut self, dockerfile: &str) -> Build {
        std::fs::write(self.dir.path().join("ctx/Dockerfile"), dockerfile).unwrap();
        self.builds += 1;
        let out = self.dir.path().join(format!("out{}", self.builds));
        let o = Command::new(env!("CARGO_BIN_EXE_strata"))
            .arg("--root")
            .arg(self.dir.path().join("root"))
            .args(["build", "--progress", "plain", "-o"])
            .arg(format!("type=local,dest={}", out.display()))
            .arg(self.dir.path().join("ctx"))
            .env_remove("SOURCE_DATE_EPOCH")
            // Loopback only: no proxy may stand between the build and the test servers.
            .env("NO_PROXY", "*")
            .env("no_proxy", "*")
            .env("NO_COLOR", "1")
            .output()
            .unwrap();
        Build {
            ok: o.status.success(),
            stderr: String::from_utf8_lossy(&o.stderr).into_owned(),
            out,
        }
    }
}

impl Build {
    fn assert_ok(&self) -> &Self {
        assert!(self.ok, "build failed:\n{}", self.stderr);
        self
    }

    fn read(&self, path: &str) -> String {
        std::fs::read_to_string(self.out.join(path.trim_start_matches('/')))
            .unwrap_or_else(|e| panic!("{path}: {e}\n{}", self.stderr))
    }

    fn meta(&self, path: &str) -> std::fs::Metadata {
        std::fs::symlink_metadata(self.out.join(path.trim_start_matches('/')))
            .unwrap_or_else(|e| panic!("{path}: {e}\n{}", self.stderr))
    }

    /// Whether the step whose progress name ends with `suffix` was a cache hit
    /// (plain progress: `#N <name>` then `#N CACHED`).
    fn cached(&self, suffix: &str) -> bool {
        let n = self
            .stderr
            .lines()
            .find_map(|l| {
                let (num, name) = l.strip_prefix('#')?.split_once(' ')?;
                (name.trim_end().ends_with(suffix)).then(|| num.to_string())
            })
            .unwrap_or_else(|| panic!("no step ending with {suffix:?} in\n{}", self.stderr));
        self.stderr
            .lines()
            .any(|l| l.trim_end() == format!("#{n} CACHED"))
    }
}

// ---------------------------------------------------------------------------------------
// A canned HTTP server

#[derive(Clone, Default)]
struct Resource {
    body: Vec<u8>,
    last_modified: Option<String>,
    etag: Option<String>,
    /// Statuses to answer before serving the body (e.g. one 500).
    fail_first: Vec<u16>,
}

#[derive(Default)]
struct State {
    resources: BTreeMap<String, Resource>,
    /// Every request: path and its headers (lower-case names).
    log: Vec<(String, BTreeMap<String, String>)>,
}

struct HttpServer {
    port: u16,
    state: Arc<Mutex<State>>,
    stop: Arc<AtomicBool>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl HttpServer {
    fn start() -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let port = listener.local_addr().unwrap().port();
        let state = Arc::new(Mutex::new(State::default()));
        let stop = Arc::new(AtomicBool::new(false));
        let thread = std::thread::spawn({
            let (state, stop) = (state.clone(), stop.clone());
            move || {
                for conn in listener.incoming() {
                    if stop.load(Ordering::SeqCst) {
                        break;
                    }
                    if let Ok(conn) = conn {
                        // One request per connection; errors only cost that request.
                        let _ = serve(conn, &state);
                    }
                }
            }
        });
        HttpServer {
            port,
            state,
            stop,
            thread: Some(thread),
        }
    }

    fn url(&self, path: &str) -> String {
        format!("http://127.0.0.1:{}{path}", self.port)
    }

    fn put(&self, path: &str, r: Resource) {
        self.state
            .lock()
            .unwrap()
            .resources
            .insert(path.to_string(), r);
    }

    fn requests(&self, path: &str) -> Vec<BTreeMap<String, String>> {
        let s = self.state.lock().unwrap();
        s.log
            .iter()
            .filter(|(p, _)| p == path)
            .map(|(_, h)| h.clone())
            .collect()
    }
}

impl Drop for HttpServer {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
        // Wake the accept loop so it sees the flag.
        let _ = TcpStream::connect(("127.0.0.1", self.port));
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

fn serve(conn: TcpStream, state: &Mutex<State>) -> std::io::Result<()> {
    conn.set_read_timeout(Some(Duration::from_secs(10)))?;
    let mut reader = BufReader::new(conn.try_clone()?);
    let mut line = String::new();
    reader.read_line(&mut line)?;
    let path = line.split_whitespace().nth(1).unwrap_or("/").to_string();
    let mut headers = BTreeMap::new();
    loop {
        let mut h = String::new();
        if reader.read_line(&mut h)? == 0 || h.trim().is_empty() {
            break;
        }
        if let Some((k, v)) = h.split_once(':') {
            headers.insert(k.trim().to_ascii_lowercase(), v.trim().to_string());
        }
    }
    let (status, extra, body) = {
        let mut s = state.lock().unwrap();
        s.log.push((path.clone(), headers.clone()));
        match s.resources.get_mut(&path) {
            None => (404, Vec::new(), b"not found".to_vec()),
            Some(r) if !r.fail_first.is_empty() => {
                (r.fail_first.remove(0), Vec::new(), b"oops".to_vec())
            }
            Some(r) => {
                let mut extra = Vec::new();
                if let Some(lm) = &r.last_modified {
                    extra.push(format!("Last-Modified: {lm}"));
                }
                if let Some(e) = &r.etag {
                    extra.push(format!("ETag: {e}"));
                }
                let etag_match =
                    r.etag.is_some() && headers.get("if-none-match") == r.etag.as_ref();
                let date_match = r.etag.is_none()
                    && r.last_modified.is_some()
                    && headers.get("if-modified-since") == r.last_modified.as_ref();
                if etag_match || date_match {
                    (304, extra, Vec::new())
                } else {
                    (200, extra, r.body.clone())
                }
            }
        }
    };
    let reason = match status {
        200 => "OK",
        304 => "Not Modified",
        404 => "Not Found",
        500 => "Internal Server Error",
        503 => "Service Unavailable",
        _ => "Whatever",
    };
    let mut w = conn;
    write!(w, "HTTP/1.1 {status} {reason}\r\nConnection: close\r\n")?;
    for h in extra {
        write!(w, "{h}\r\n")?;
    }
    if status != 304 {
        write!(w, "Content-Length: {}\r\n", body.len())?;
    }
    write!(w, "\r\n")?;
    w.write_all(&body)?;
    w.flush()
}

fn sha256_hex(data: &[u8]) -> String {
    strata_digest::sha256(data).hex()
}

// ---------------------------------------------------------------------------------------
// HTTP

/// Sun, 06 Nov 1994 08:49:37 GMT, RFC 9110's example date.
const LAST_MODIFIED: &str = "Sun, 06 Nov 1994 08:49:37 GMT";
const LAST_MODIFIED_UNIX: i64 = 784_111_777;

#[test]
fn url_to_a_directory_and_a_file_with_mode_owner_mtime_and_chmod() {
    if !can_run(false) {
        return;
    }
    let http = HttpServer::start();
    http.put(
        "/files/hello.txt",
        Resource {
            body: b"hello\n".to_vec(),
            last_modified: Some(LAST_MODIFIED.into()),
            ..Default::default()
        },
    );
    http.put(
        "/undated",
        Resource {
            body: b"no date\n".to_vec(),
            ..Default::default()
        },
    );
    let hello = http.url("/files/hello.txt");
    let undated = http.url("/undated");
    let mut p = Project::new();
    let b = p.build(&format!(
        "FROM scratch\n\
         ADD {hello} /dir/\n\
         ADD {hello} /renamed.txt\n\
         ADD --chmod=755 {hello} /bin/tool\n\
         ADD {undated} /undated\n"
    ));
    b.assert_ok();
    for path in ["/dir/hello.txt", "/renamed.txt", "/bin/tool"] {
        assert_eq!(b.read(path), "hello\n", "{path}");
        let m = b.meta(path);
        assert_eq!((m.uid(), m.gid()), (0, 0), "{path}");
        assert_eq!(
            m.mtime(),
            LAST_MODIFIED_UNIX,
            "{path}: mtime from Last-Modified"
        );
    }
    // Docker's ADD <url>: 0600 unless --chmod.
    assert_eq!(
        b.meta("/dir/hello.txt").permissions().mode() & 0o7777,
        0o600
    );
    assert_eq!(b.meta("/renamed.txt").permissions().mode() & 0o7777, 0o600);
    assert_eq!(b.meta("/bin/tool").permissions().mode() & 0o7777, 0o755);
    // Without Last-Modified, BuildKit uses the Unix epoch.
    assert_eq!(b.read("/undated"), "no date\n");
    assert_eq!(b.meta("/undated").mtime(), 0);
}

#[test]
fn checksum_good_and_bad() {
    if !can_run(false) {
        return;
    }
    let http = HttpServer::start();
    let body = b"pinned content\n".to_vec();
    http.put(
        "/pinned.bin",
        Resource {
            body: body.clone(),
            ..Default::default()
        },
    );
    let url = http.url("/pinned.bin");
    let good = sha256_hex(&body);
    let mut p = Project::new();
    let b = p.build(&format!(
        "FROM scratch\nADD --checksum=sha256:{good} {url} /pinned\n"
    ));
    b.assert_ok();
    assert_eq!(b.read("/pinned"), "pinned content\n");

    // With a checksum the definition is the key: the rebuild downloads nothing.
    let before = http.requests("/pinned.bin").len();
    let b = p.build(&format!(
        "FROM scratch\nADD --checksum=sha256:{good} {url} /pinned\n"
    ));
    b.assert_ok();
    assert!(b.cached(&format!("ADD --checksum=sha256:{good} {url} /pinned")));
    assert_eq!(http.requests("/pinned.bin").len(), before, "no new request");

    let bad = sha256_hex(b"something else");
    let b = p.build(&format!(
        "FROM scratch\nADD --checksum=sha256:{bad} {url} /pinned\n"
    ));
    assert!(!b.ok, "a wrong checksum must fail:\n{}", b.stderr);
    assert!(b.stderr.contains("checksum mismatch"), "{}", b.stderr);
    assert!(
        b.stderr.contains(&format!("expected sha256:{bad}")),
        "{}",
        b.stderr
    );
    assert!(
        b.stderr.contains(&format!("got sha256:{good}")),
        "{}",
        b.stderr
    );
    assert!(b.stderr.contains(&url), "{}", b.stderr);
}

#[test]
fn not_found_names_the_url_and_status() {
    if !can_run(false) {
        return;
    }
    let http = HttpServer::start();
    let url = http.url("/missing.tar.gz");
    let mut p = Project::new();
    let b = p.build(&format!("FROM scratch\nADD {url} /x\n"));
    assert!(!b.ok, "a 404 must fail:\n{}", b.stderr);
    assert!(
        b.stderr.contains(&format!("GET {url}: 404 Not Found")),
        "{}",
        b.stderr
    );
    // A 4xx is not retried.
    assert_eq!(http.requests("/missing.tar.gz").len(), 1);
}

#[test]
fn server_errors_are_retried() {
    if !can_run(false) {
        return;
    }
    let http = HttpServer::start();
    http.put(
        "/flaky",
        Resource {
            body: b"eventually\n".to_vec(),
            fail_first: vec![500, 503],
            ..Default::default()
        },
    );
    let url = http.url("/flaky");
    let mut p = Project::new();
    let b = p.build(&format!("FROM scratch\nADD {url} /flaky\n"));
    b.assert_ok();
    assert_eq!(b.read("/flaky"), "eventually\n");
    assert_eq!(
        http.requests("/flaky").len(),
        3,
        "two failures, one success"
    );
    assert!(
        b.stderr.contains("500 Internal Server Error"),
        "{}",
        b.stderr
    );

    // A server that keeps failing gives up after a bounded number of tries.
    http.put(
        "/down",
        Resource {
            body: b"never".to_vec(),
            fail_first: vec![503; 20],
            ..Default::default()
        },
    );
    let url = http.url("/down");
    let b = p.build(&format!("FROM scratch\nADD {url} /down\n"));
    assert!(!b.ok);
    assert!(
        b.stderr
            .contains(&format!("GET {url}: 503 Service Unavailable")),
        "{}",
        b.stderr
    );
    assert_eq!(http.requests("/down").len(), 4);
}

#[test]
fn unchanged_url_is_cached_and_a_change_reruns() {
    if !can_run(false) {
        return;
    }
    let http = HttpServer::start();
    http.put(
        "/tagged",
        Resource {
            body: b"v1\n".to_vec(),
            etag: Some("\"v1\"".into()),
            last_modified: Some(LAST_MODIFIED.into()),
            ..Default::default()
        },
    );
    http.put(
        "/dated",
        Resource {
            body: b"d1\n".to_vec(),
            last_modified: Some(LAST_MODIFIED.into()),
            ..Default::default()
        },
    );
    let (tagged, dated) = (http.url("/tagged"), http.url("/dated"));
    let dockerfile = format!("FROM scratch\nADD {tagged} /tagged\nADD {dated} /dated\n");
    let mut p = Project::new();
    let b = p.build(&dockerfile);
    b.assert_ok();
    assert!(!b.cached(&format!("ADD {tagged} /tagged")));

    // No change: the URL is asked again, conditionally, and the step is a cache hit.
    let b = p.build(&dockerfile);
    b.assert_ok();
    assert!(b.cached(&format!("ADD {tagged} /tagged")), "{}", b.stderr);
    assert!(b.cached(&format!("ADD {dated} /dated")), "{}", b.stderr);
    let last = http.requests("/tagged").pop().unwrap();
    assert_eq!(
        last.get("if-none-match").map(String::as_str),
        Some("\"v1\"")
    );
    let last = http.requests("/dated").pop().unwrap();
    assert_eq!(
        last.get("if-modified-since").map(String::as_str),
        Some(LAST_MODIFIED)
    );
    assert_eq!(b.read("/tagged"), "v1\n");

    // New content behind the same URL: the step runs again.
    http.put(
        "/tagged",
        Resource {
            body: b"v2\n".to_vec(),
            etag: Some("\"v2\"".into()),
            last_modified: Some(LAST_MODIFIED.into()),
            ..Default::default()
        },
    );
    let b = p.build(&dockerfile);
    b.assert_ok();
    assert!(!b.cached(&format!("ADD {tagged} /tagged")), "{}", b.stderr);
    // The other URL's source is still a hit (its step re-runs: its base changed).
    assert!(b.cached(&format!("ADD {dated}")), "{}", b.stderr);
    assert_eq!(b.read("/tagged"), "v2\n");
    assert_eq!(b.read("/dated"), "d1\n");
}

// ---------------------------------------------------------------------------------------
// git

fn git(dir: &Path, args: &[&str]) -> String {
    let o = Command::new("git")
        .arg("-C")
        .arg(dir)
        .args(args)
        .env("GIT_AUTHOR_NAME", "t")
        .env("GIT_AUTHOR_EMAIL", "t@example.com")
        .env("GIT_COMMITTER_NAME", "t")
        .env("GIT_COMMITTER_EMAIL", "t@example.com")
        .env("GIT_CONFIG_NOSYSTEM", "1")
        .env("HOME", dir)
        .output()
        .unwrap();
    assert!(
        o.status.success(),
        "git {args:?}: {}",
        String::from_utf8_lossy(&o.stderr)
    );
    String::from_utf8_lossy(&o.stdout).trim().to_string()
}

/// A repository `repo.git` under a temp base: commit one (a.txt "one", sub/s.txt,
/// an executable run.sh), annotated tag v1, commit two (a.txt "two"), on `main`.
struct Repo {
    base: TempDir,
}

impl Repo {
    fn new() -> Self {
        let base = tempfile::tempdir().unwrap();
        let r = base.path().join("repo.git");
        std::fs::create_dir(&r).unwrap();
        git(&r, &["init", "-q", "-b", "main"]);
        std::fs::create_dir(r.join("sub")).unwrap();
        std::fs::write(r.join("a.txt"), "one\n").unwrap();
        std::fs::write(r.join("sub/s.txt"), "in sub\n").unwrap();
        std::fs::write(r.join("run.sh"), "#!/bin/sh\necho hi\n").unwrap();
        std::fs::set_permissions(r.join("run.sh"), std::fs::Permissions::from_mode(0o775)).unwrap();
        git(&r, &["add", "-A"]);
        git(&r, &["commit", "-q", "-m", "one"]);
        git(&r, &["tag", "-a", "v1", "-m", "version 1"]);
        std::fs::write(r.join("a.txt"), "two\n").unwrap();
        git(&r, &["commit", "-q", "-am", "two"]);
        Repo { base }
    }

    fn path(&self) -> PathBuf {
        self.base.path().join("repo.git")
    }

    fn commit(&self, file: &str, data: &str, msg: &str) {
        std::fs::write(self.path().join(file), data).unwrap();
        git(&self.path(), &["add", "-A"]);
        git(&self.path(), &["commit", "-q", "-m", msg]);
    }
}

/// `git daemon` serving a base directory on a free loopback port; killed on drop.
struct GitDaemon {
    child: Child,
    port: u16,
}

impl GitDaemon {
    fn start(base: &Path) -> Self {
        let port = {
            let l = TcpListener::bind("127.0.0.1:0").unwrap();
            l.local_addr().unwrap().port()
        };
        let child = Command::new("git")
            .arg("daemon")
            .arg("--export-all")
            .arg(format!("--base-path={}", base.display()))
            .arg(format!("--port={port}"))
            .arg("--listen=127.0.0.1")
            .arg("--reuseaddr")
            .arg("--informative-errors")
            .arg(base)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        let mut d = GitDaemon { child, port };
        for _ in 0..200 {
            if TcpStream::connect(("127.0.0.1", port)).is_ok() {
                return d;
            }
            if let Ok(Some(status)) = d.child.try_wait() {
                panic!("git daemon exited: {status}");
            }
            std::thread::sleep(Duration::from_millis(25));
        }
        let _ = d.child.kill();
        panic!("git daemon did not listen on 127.0.0.1:{port}");
    }

    fn url(&self, repo: &str) -> String {
        format!("git://127.0.0.1:{}/{repo}", self.port)
    }
}

impl Drop for GitDaemon {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

#[test]
fn git_tag_branch_subdir_commit_and_keep_git_dir() {
    if !can_run(true) {
        return;
    }
    let repo = Repo::new();
    let daemon = GitDaemon::start(repo.base.path());
    let url = daemon.url("repo.git");
    let first = git(&repo.path(), &["rev-parse", "main~1"]);
    let head = git(&repo.path(), &["rev-parse", "main"]);
    let head_time: i64 = git(&repo.path(), &["show", "-s", "--format=%ct", "main"])
        .parse()
        .unwrap();
    let mut p = Project::new();
    let b = p.build(&format!(
        "FROM scratch\n\
         ADD {url}#v1 /v1/\n\
         ADD {url}#main:sub /sub/\n\
         ADD {url}#{first} /first/\n\
         ADD --keep-git-dir {url} /head/\n\
         ADD {url} /plain/\n"
    ));
    b.assert_ok();
    // The annotated tag names the first commit.
    assert_eq!(b.read("/v1/a.txt"), "one\n");
    assert_eq!(b.read("/v1/sub/s.txt"), "in sub\n");
    assert_eq!(b.read("/first/a.txt"), "one\n");
    // A sub-directory's contents, nothing else.
    assert_eq!(b.read("/sub/s.txt"), "in sub\n");
    assert!(!b.out.join("sub/a.txt").exists());
    // The default ref is the remote's HEAD.
    assert_eq!(b.read("/plain/a.txt"), "two\n");
    assert!(
        !b.out.join("plain/.git").exists(),
        ".git is dropped by default"
    );
    assert!(!b.out.join("v1/.git").exists());
    // --keep-git-dir: a repository at the checked-out commit.
    assert_eq!(b.read("/head/a.txt"), "two\n");
    assert!(b.out.join("head/.git").is_dir());
    assert_eq!(git(&b.out.join("head"), &["rev-parse", "HEAD"]), head);
    // Normalised entries: 0:0, git's two modes, the commit time.
    let m = b.meta("/plain/run.sh");
    assert_eq!(m.permissions().mode() & 0o7777, 0o755);
    assert_eq!((m.uid(), m.gid()), (0, 0));
    assert_eq!(m.mtime(), head_time);
    let m = b.meta("/plain/a.txt");
    assert_eq!(m.permissions().mode() & 0o7777, 0o644);
    assert_eq!(m.mtime(), head_time);
    assert_eq!(b.meta("/plain/sub").permissions().mode() & 0o7777, 0o755);

    // A ref that does not exist, and a missing sub-directory, are named.
    let b = p.build(&format!("FROM scratch\nADD {url}#nosuch /x/\n"));
    assert!(!b.ok);
    assert!(b.stderr.contains("no ref \"nosuch\""), "{}", b.stderr);
    assert!(b.stderr.contains(&url), "{}", b.stderr);
    let b = p.build(&format!("FROM scratch\nADD {url}#main:nope /x/\n"));
    assert!(!b.ok);
    assert!(b.stderr.contains("no directory \"nope\""), "{}", b.stderr);
    // git's own error comes with its last stderr lines.
    let missing = daemon.url("missing.git");
    let b = p.build(&format!("FROM scratch\nADD {missing} /x/\n"));
    assert!(!b.ok);
    assert!(b.stderr.contains("git ls-remote failed"), "{}", b.stderr);
    assert!(b.stderr.contains("fatal:"), "{}", b.stderr);
}

#[test]
fn git_unchanged_ref_is_cached_and_a_new_commit_reruns() {
    if !can_run(true) {
        return;
    }
    let repo = Repo::new();
    let daemon = GitDaemon::start(repo.base.path());
    let url = daemon.url("repo.git");
    let dockerfile = format!("FROM scratch\nADD {url}#main /src/\nADD {url}#v1 /v1/\n");
    let mut p = Project::new();
    let b = p.build(&dockerfile);
    b.assert_ok();
    assert!(!b.cached(&format!("ADD {url}#main /src/")));
    assert_eq!(b.read("/src/a.txt"), "two\n");

    let b = p.build(&dockerfile);
    b.assert_ok();
    assert!(b.cached(&format!("ADD {url}#main /src/")), "{}", b.stderr);
    assert!(b.cached(&format!("ADD {url}#v1 /v1/")), "{}", b.stderr);

    repo.commit("a.txt", "three\n", "three");
    let b = p.build(&dockerfile);
    b.assert_ok();
    assert!(!b.cached(&format!("ADD {url}#main /src/")), "{}", b.stderr);
    // The tag's checkout is still a hit (its step re-runs: its base changed).
    assert!(b.cached(&format!("ADD {url}#v1")), "{}", b.stderr);
    assert_eq!(b.read("/src/a.txt"), "three\n");
    assert_eq!(b.read("/v1/a.txt"), "one\n");
}
