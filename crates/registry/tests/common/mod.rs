//! A real Docker distribution registry (Debian's `docker-registry`) on 127.0.0.1 with
//! a free port and storage in a temp dir; killed by PID on drop.

#![allow(dead_code)]

use std::io::Read;
use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

pub struct Registry {
    pub addr: String,
    pub dir: tempfile::TempDir,
    /// The CA that signed the registry's certificate (`start_secure`), else None.
    pub ca: Option<PathBuf>,
    /// Files the registry reads while it runs (certificates, htpasswd).
    keep: Option<tempfile::TempDir>,
    child: Child,
}

/// Skips (None, a note on stderr) or, under CI=true, fails when a tool is missing.
fn need(tool: &str, package: &str) -> Option<PathBuf> {
    let found = ["/usr/bin", "/usr/sbin", "/bin", "/usr/local/bin"]
        .iter()
        .map(|d| Path::new(d).join(tool))
        .find(|p| p.exists());
    if found.is_none() {
        let reason = format!("{tool} is not installed (apt-get install {package})");
        if std::env::var("CI").is_ok_and(|v| !v.is_empty() && v != "false" && v != "0") {
            panic!("CI=true and this test cannot run: {reason}");
        }
        eprintln!("skipping: {reason}");
    }
    found
}

fn run_tool(cmd: &mut Command) -> Vec<u8> {
    let out = cmd.output().unwrap();
    assert!(
        out.status.success(),
        "{cmd:?} failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    out.stdout
}

/// A throwaway CA (`ca.pem`) and a server certificate it signed for 127.0.0.1 and
/// localhost (`server.pem`, `server.key`), made in `dir` with the openssl CLI.
pub fn make_certificates(dir: &Path) -> Option<()> {
    let openssl = need("openssl", "openssl")?;
    let ossl = |args: &[&str]| {
        run_tool(Command::new(&openssl).current_dir(dir).args(args));
    };
    let ec = [
        "-newkey",
        "ec",
        "-pkeyopt",
        "ec_paramgen_curve:prime256v1",
        "-nodes",
    ];
    let mut ca = vec!["req", "-x509", "-days", "2", "-subj", "/CN=strata test CA"];
    ca.extend(ec);
    ca.extend([
        "-keyout",
        "ca.key",
        "-out",
        "ca.pem",
        "-addext",
        "basicConstraints=critical,CA:TRUE",
        "-addext",
        "keyUsage=critical,keyCertSign,cRLSign",
    ]);
    ossl(&ca);
    let mut csr = vec!["req", "-subj", "/CN=127.0.0.1"];
    csr.extend(ec);
    csr.extend(["-keyout", "server.key", "-out", "server.csr"]);
    ossl(&csr);
    std::fs::write(
        dir.join("ext.cnf"),
        "subjectAltName=IP:127.0.0.1,DNS:localhost\nbasicConstraints=CA:FALSE\nextendedKeyUsage=serverAuth\n",
    )
    .unwrap();
    ossl(&[
        "x509",
        "-req",
        "-in",
        "server.csr",
        "-CA",
        "ca.pem",
        "-CAkey",
        "ca.key",
        "-CAcreateserial",
        "-days",
        "2",
        "-extfile",
        "ext.cnf",
        "-out",
        "server.pem",
    ]);
    Some(())
}

/// An htpasswd file (bcrypt, as docker-registry requires) with one user.
pub fn make_htpasswd(path: &Path, user: &str, password: &str) -> Option<()> {
    let htpasswd = need("htpasswd", "apache2-utils")?;
    let line = run_tool(Command::new(htpasswd).args(["-Bbn", user, password]));
    std::fs::write(path, line).unwrap();
    Some(())
}

pub fn registry_binary() -> Option<PathBuf> {
    ["/usr/bin/docker-registry", "/usr/sbin/docker-registry"]
        .iter()
        .map(PathBuf::from)
        .find(|p| p.exists())
}

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

impl Registry {
    /// None (and a note on stderr) when docker-registry is not installed.
    pub fn start() -> Option<Registry> {
        Self::start_with("")
    }

    /// TLS (a throwaway CA: [`Registry::ca`]) and htpasswd basic auth for one user.
    pub fn start_secure(user: &str, password: &str) -> Option<Registry> {
        let certs = tempfile::tempdir().unwrap();
        make_certificates(certs.path())?;
        make_htpasswd(&certs.path().join("htpasswd"), user, password)?;
        let p = |n: &str| certs.path().join(n).display().to_string();
        let mut reg = Self::start_with(&format!(
            "  tls:\n    certificate: {}\n    key: {}\nauth:\n  htpasswd:\n    realm: strata-test\n    path: {}\n",
            p("server.pem"),
            p("server.key"),
            p("htpasswd")
        ))?;
        reg.ca = Some(certs.path().join("ca.pem"));
        reg.keep = Some(certs);
        Some(reg)
    }

    /// `extra` is appended to the config after `http:\n  addr: …\n` (so it may go on
    /// with `http:` keys indented by two spaces, e.g. `tls:`), e.g. an `auth:` section.
    pub fn start_with(extra: &str) -> Option<Registry> {
        let Some(bin) = registry_binary() else {
            let reason = "docker-registry is not installed (apt-get install docker-registry)";
            if std::env::var("CI").is_ok_and(|v| !v.is_empty() && v != "false" && v != "0") {
                panic!("CI=true and this test cannot run: {reason}");
            }
            eprintln!("skipping: {reason}");
            return None;
        };
        let dir = tempfile::tempdir().unwrap();
        let port = free_port();
        let addr = format!("127.0.0.1:{port}");
        let config = dir.path().join("config.yml");
        std::fs::write(
            &config,
            format!(
                "version: 0.1\nlog:\n  level: info\n  accesslog:\n    disabled: false\nstorage:\n  filesystem:\n    rootdirectory: {}\n  delete:\n    enabled: true\nhttp:\n  addr: {addr}\n{extra}",
                dir.path().join("data").display()
            ),
        )
        .unwrap();
        let log = std::fs::File::create(dir.path().join("registry.log")).unwrap();
        let child = Command::new(bin)
            .arg("serve")
            .arg(&config)
            .stdin(Stdio::null())
            .stdout(log.try_clone().unwrap())
            .stderr(log)
            .spawn()
            .unwrap();
        let reg = Registry {
            addr,
            dir,
            ca: None,
            keep: None,
            child,
        };
        reg.wait_ready();
        Some(reg)
    }

    fn wait_ready(&self) {
        let deadline = Instant::now() + Duration::from_secs(20);
        while Instant::now() < deadline {
            if let Ok(mut s) = std::net::TcpStream::connect(&self.addr) {
                use std::io::Write;
                let _ = write!(s, "GET /v2/ HTTP/1.0\r\nHost: {}\r\n\r\n", self.addr);
                let mut buf = [0u8; 12];
                if s.read_exact(&mut buf).is_ok() && buf.starts_with(b"HTTP/1.") {
                    return;
                }
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        panic!(
            "docker-registry did not answer on {} within 20 s; log:\n{}",
            self.addr,
            self.log()
        );
    }

    pub fn log(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("registry.log")).unwrap_or_default()
    }

    pub fn data(&self) -> PathBuf {
        self.dir.path().join("data")
    }

    /// The file holding blob `hex` in the registry's storage.
    pub fn blob_file(&self, hex: &str) -> PathBuf {
        self.data()
            .join("docker/registry/v2/blobs/sha256")
            .join(&hex[..2])
            .join(hex)
            .join("data")
    }

    pub fn path(&self) -> &Path {
        self.dir.path()
    }
}

impl Drop for Registry {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
