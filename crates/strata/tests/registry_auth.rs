//! Registry authentication, configuration and TLS through the real binary, against a
//! real Docker distribution registry on 127.0.0.1: TLS with a throwaway CA plus
//! htpasswd auth, `strata login`/`logout`, Docker's credential helpers, mirrors from
//! config.toml, malformed configuration.

mod common;
#[path = "../../registry/tests/common/mod.rs"]
mod harness;

use std::io::Write;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Output, Stdio};

use common::*;
use serde_json::Value;

const USER: &str = "alice";
const PASSWORD: &str = "pw-Zq81-never-printed";

/// A private HOME, DOCKER_CONFIG and STRATA_CONFIG for the commands of one test.
struct Env {
    dir: tempfile::TempDir,
    path: Option<String>,
}

impl Env {
    fn new() -> Env {
        let dir = tempfile::tempdir().unwrap();
        std::fs::create_dir_all(dir.path().join("docker")).unwrap();
        Env { dir, path: None }
    }

    fn docker_config(&self) -> PathBuf {
        self.dir.path().join("docker/config.json")
    }

    fn write_config(&self, toml: &str) {
        std::fs::write(self.dir.path().join("config.toml"), toml).unwrap();
    }

    fn run(&self, s: &Strata, args: &[&str], stdin: Option<&str>) -> Output {
        let mut c = s.cmd();
        c.args(args)
            .env("HOME", self.dir.path())
            .env("XDG_CONFIG_HOME", self.dir.path().join("xdg"))
            .env("DOCKER_CONFIG", self.dir.path().join("docker"))
            .env("STRATA_CONFIG", self.dir.path().join("config.toml"));
        if let Some(p) = &self.path {
            c.env("PATH", p);
        }
        if !self.dir.path().join("config.toml").exists() {
            c.env_remove("STRATA_CONFIG");
        }
        let out = match stdin {
            Some(input) => {
                let mut child = c
                    .stdin(Stdio::piped())
                    .stdout(Stdio::piped())
                    .stderr(Stdio::piped())
                    .spawn()
                    .unwrap();
                child
                    .stdin
                    .take()
                    .unwrap()
                    .write_all(input.as_bytes())
                    .unwrap();
                child.wait_with_output().unwrap()
            }
            None => c.output().unwrap(),
        };
        let text = format!(
            "{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        assert!(
            !text.contains(PASSWORD) && !text.contains(&b64(&format!("{USER}:{PASSWORD}"))),
            "strata {args:?} printed the password:\n{text}"
        );
        out
    }

    fn ok(&self, s: &Strata, args: &[&str]) -> String {
        let out = self.run(s, args, None);
        let err = String::from_utf8_lossy(&out.stderr).into_owned();
        assert!(out.status.success(), "strata {args:?} failed:\n{err}");
        err
    }

    fn fails(&self, s: &Strata, args: &[&str]) -> String {
        let out = self.run(s, args, None);
        let err = String::from_utf8_lossy(&out.stderr).into_owned();
        assert!(!out.status.success(), "strata {args:?} succeeded:\n{err}");
        err
    }

    fn login(&self, s: &Strata, extra: &[&str], registry: &str, password: &str) -> Output {
        let mut args = extra.to_vec();
        args.extend(["login", "-u", USER, "--password-stdin", registry]);
        self.run(s, &args, Some(&format!("{password}\n")))
    }
}

fn b64(s: &str) -> String {
    strata_like_base64(s.as_bytes())
}

/// Standard base64 (the `auth` field of config.json).
fn strata_like_base64(data: &[u8]) -> String {
    const T: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let mut out = String::new();
    for c in data.chunks(3) {
        let n = (u32::from(c[0]) << 16)
            | (u32::from(*c.get(1).unwrap_or(&0)) << 8)
            | u32::from(*c.get(2).unwrap_or(&0));
        for i in 0..4 {
            out.push(if i <= c.len() {
                T[(n >> (18 - 6 * i) & 63) as usize] as char
            } else {
                '='
            });
        }
    }
    out
}

/// Panics if any file under `root` holds the password (plain or in basic auth).
fn assert_no_secret_under(root: &Path) {
    for p in walk(root) {
        if p.is_file() && !p.is_symlink() {
            let bytes = std::fs::read(&p).unwrap_or_default();
            let text = String::from_utf8_lossy(&bytes);
            assert!(
                !text.contains(PASSWORD) && !text.contains(&b64(&format!("{USER}:{PASSWORD}"))),
                "{} holds the password",
                p.display()
            );
        }
    }
}

fn read_json(p: &Path) -> Value {
    serde_json::from_slice(&std::fs::read(p).unwrap()).unwrap()
}

fn arg(p: &Path) -> String {
    p.to_str().unwrap().to_string()
}

#[test]
fn login_then_push_pull_and_build_from_a_tls_registry_with_htpasswd() {
    let Some(reg) = harness::Registry::start_secure(USER, PASSWORD) else {
        return;
    };
    let ca = reg.ca.clone().unwrap();
    let ca = arg(&ca);
    let env = Env::new();
    // Loopback registries speak plain HTTP unless the configuration says otherwise.
    env.write_config(&format!("[registry.\"{}\"]\ninsecure = false\n", reg.addr));
    std::fs::write(
        env.docker_config(),
        r#"{"experimental": "enabled", "auths": {"other.example:5000": {"auth": "eDp5"}}}"#,
    )
    .unwrap();
    let s = Strata::new();

    // Without the CA: the certificate is untrusted, and the error says how to fix it.
    let out = env.login(&s, &[], &reg.addr, PASSWORD);
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success(), "{err}");
    assert!(
        err.contains("certificate") && err.contains("--registry-ca"),
        "{err}"
    );

    // A wrong password: refused with the HTTP status, nothing written.
    let before = std::fs::read(env.docker_config()).unwrap();
    let out = env.login(&s, &["--registry-ca", &ca], &reg.addr, "wrong-pw-123");
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success(), "{err}");
    assert!(
        err.contains("401") && err.contains(&reg.addr) && !err.contains("wrong-pw-123"),
        "{err}"
    );
    assert_eq!(std::fs::read(env.docker_config()).unwrap(), before);

    // The right one: saved as docker does, 0600, other keys kept.
    let out = env.login(&s, &["--registry-ca", &ca], &reg.addr, PASSWORD);
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{err}");
    assert!(err.contains("Login Succeeded"), "{err}");
    let cfg = read_json(&env.docker_config());
    assert_eq!(cfg["experimental"], "enabled", "{cfg}");
    assert_eq!(cfg["auths"]["other.example:5000"]["auth"], "eDp5", "{cfg}");
    assert_eq!(
        cfg["auths"][&reg.addr]["auth"],
        b64(&format!("{USER}:{PASSWORD}")).as_str(),
        "{cfg}"
    );
    let mode = std::fs::metadata(env.docker_config())
        .unwrap()
        .permissions()
        .mode();
    assert_eq!(mode & 0o777, 0o600);

    // build --push, pull into a fresh root, FROM it in another.
    let name = format!("{}/team/app:v1", reg.addr);
    let ctx = context(&[
        ("Dockerfile", "FROM scratch\nCOPY x /x\n", 0o644),
        ("x", "over TLS\n", 0o644),
    ]);
    env.ok(
        &s,
        &[
            "--registry-ca",
            &ca,
            "build",
            "--progress",
            "plain",
            "--push",
            "-t",
            &name,
            &arg(ctx.path()),
        ],
    );
    let s2 = Strata::new();
    env.ok(&s2, &["--registry-ca", &ca, "pull", &name]);
    let s3 = Strata::new();
    let ctx3 = context(&[("Dockerfile", &format!("FROM {name}\n"), 0o644)]);
    let out = ctx3.path().join("out");
    env.ok(
        &s3,
        &[
            "--registry-ca",
            &ca,
            "build",
            "--progress",
            "plain",
            "-o",
            &format!("type=local,dest={}", arg(&out)),
            &arg(ctx3.path()),
        ],
    );
    assert_eq!(
        std::fs::read_to_string(out.join("x")).unwrap(),
        "over TLS\n"
    );

    // The CA from the configuration file instead of the flag.
    env.write_config(&format!(
        "[registry.\"{}\"]\ninsecure = false\nca = \"{ca}\"\n",
        reg.addr
    ));
    env.ok(&Strata::new(), &["pull", &name]);

    // Without the CA, a pull names the untrusted certificate and the fix.
    env.write_config(&format!("[registry.\"{}\"]\ninsecure = false\n", reg.addr));
    let err = env.fails(&Strata::new(), &["pull", &name]);
    assert!(
        err.contains("certificate") && err.contains("--registry-ca") && err.contains("team/app"),
        "{err}"
    );

    // Logged out: the entry goes, the rest stays; a pull is refused with a hint.
    let err = env.ok(&s, &["logout", &reg.addr]);
    assert!(err.contains(&reg.addr), "{err}");
    let cfg = read_json(&env.docker_config());
    assert!(cfg["auths"].get(&reg.addr).is_none(), "{cfg}");
    assert_eq!(cfg["experimental"], "enabled", "{cfg}");
    let err = env.fails(&Strata::new(), &["--registry-ca", &ca, "pull", &name]);
    assert!(
        err.contains("team/app:v1") && err.contains("strata login"),
        "{err}"
    );

    // Wrong credentials in config.json: the reference, HTTP 401 and the hint.
    std::fs::write(
        env.docker_config(),
        format!(
            r#"{{"auths": {{"{}": {{"auth": "{}"}}}}}}"#,
            reg.addr,
            b64(&format!("{USER}:stale-pw"))
        ),
    )
    .unwrap();
    let err = env.fails(&Strata::new(), &["--registry-ca", &ca, "pull", &name]);
    assert!(
        err.contains("team/app:v1") && err.contains("401") && err.contains("strata login"),
        "{err}"
    );

    for root in [s.root(), s2.root(), s3.root()] {
        assert_no_secret_under(root);
    }
}
