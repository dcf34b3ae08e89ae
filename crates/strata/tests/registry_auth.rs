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

    /// Builds `FROM base` into a local directory; returns the content of its `/x`.
    fn build_from(&self, s: &Strata, global: &[&str], base: &str) -> String {
        let ctx = context(&[("Dockerfile", &format!("FROM {base}\n"), 0o644)]);
        let out = ctx.path().join("out");
        let dest = format!("type=local,dest={}", arg(&out));
        let mut args = global.to_vec();
        args.extend(["build", "--progress", "plain", "-o", &dest]);
        let c = arg(ctx.path());
        args.push(&c);
        self.ok(s, &args);
        std::fs::read_to_string(out.join("x")).unwrap()
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
    // A real client reads the config.json strata login wrote.
    if let Some(skopeo) = tool("skopeo", "skopeo") {
        let certs = tempfile::tempdir().unwrap();
        std::fs::copy(&ca, certs.path().join("ca.crt")).unwrap();
        let out = run_ok(std::process::Command::new(skopeo).args([
            "inspect",
            "--authfile",
            &arg(&env.docker_config()),
            "--cert-dir",
            &arg(certs.path()),
            &format!("docker://{name}"),
        ]));
        let v: Value = serde_json::from_slice(&out).unwrap();
        assert_eq!(v["Layers"].as_array().unwrap().len(), 1, "{v}");
    }
    let s2 = Strata::new();
    env.ok(&s2, &["--registry-ca", &ca, "pull", &name]);
    let s3 = Strata::new();
    let x = env.build_from(&s3, &["--registry-ca", &ca], &name);
    assert_eq!(x, "over TLS\n");

    // The CA from the configuration file instead of the flag.
    env.write_config(&format!(
        "[registry.\"{}\"]\ninsecure = false\nca = \"{ca}\"\n",
        reg.addr
    ));
    env.ok(&Strata::new(), &["pull", &name]);

    // A registry's `ca` is trusted for that registry only.
    env.write_config(&format!(
        "[registry.\"{}\"]\ninsecure = false\n[registry.\"other.example:5000\"]\nca = \"{ca}\"\n",
        reg.addr
    ));
    let err = env.fails(&Strata::new(), &["pull", &name]);
    assert!(err.contains("not trusted"), "{err}");

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
    // The same through a build's FROM.
    let ctx4 = context(&[("Dockerfile", &format!("FROM {name}\n"), 0o644)]);
    let c4 = arg(ctx4.path());
    let err = env.fails(
        &Strata::new(),
        &["--registry-ca", &ca, "build", "--progress", "plain", &c4],
    );
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

/// A fake `docker-credential-NAME` in `bin`: it keeps what `store` gives it in
/// `STATE/NAME.json`, answers `get` from it (or "credentials not found"), and logs each
/// action with the server URL (never the secret) to `STATE/NAME.log`.
fn fake_helper(bin: &Path, state: &Path, name: &str) {
    let script = format!(
        r#"#!/bin/sh
input=$(cat)
case "$1" in
  get)
    echo "get $input" >> {state}/{name}.log
    if [ -f {state}/{name}.json ]; then cat {state}/{name}.json; else echo "credentials not found in native keychain"; exit 1; fi ;;
  store)
    echo "store" >> {state}/{name}.log
    printf '%s' "$input" > {state}/{name}.json ;;
  erase)
    echo "erase $input" >> {state}/{name}.log
    rm -f {state}/{name}.json ;;
  *) exit 2 ;;
esac
"#,
        state = state.display()
    );
    let p = bin.join(format!("docker-credential-{name}"));
    std::fs::write(&p, script).unwrap();
    std::fs::set_permissions(&p, std::fs::Permissions::from_mode(0o755)).unwrap();
}

#[test]
fn credential_helpers_from_docker_config() {
    let Some(reg) = harness::Registry::start_secure(USER, PASSWORD) else {
        return;
    };
    let ca = arg(reg.ca.as_ref().unwrap());
    let mut env = Env::new();
    env.write_config(&format!(
        "[registry.\"{}\"]\ninsecure = false\nca = \"{ca}\"\n",
        reg.addr
    ));
    let bin = env.dir.path().join("bin");
    let state = env.dir.path().join("state");
    std::fs::create_dir_all(&bin).unwrap();
    std::fs::create_dir_all(&state).unwrap();
    fake_helper(&bin, &state, "fake");
    env.path = Some(format!(
        "{}:{}",
        bin.display(),
        std::env::var("PATH").unwrap_or_default()
    ));
    let helper_log = || std::fs::read_to_string(state.join("fake.log")).unwrap_or_default();

    // credsStore: login stores through the helper; config.json only records the login.
    std::fs::write(env.docker_config(), r#"{"credsStore": "fake"}"#).unwrap();
    let out = env.login(&Strata::new(), &[], &reg.addr, PASSWORD);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let cfg = read_json(&env.docker_config());
    assert_eq!(cfg["auths"][&reg.addr], serde_json::json!({}), "{cfg}");
    assert_eq!(cfg["credsStore"], "fake", "{cfg}");
    let stored = read_json(&state.join("fake.json"));
    assert_eq!(stored["ServerURL"], reg.addr.as_str(), "{stored}");
    assert_eq!(stored["Username"], USER, "{stored}");
    assert!(helper_log().contains("store"), "{}", helper_log());

    // A push and a pull get the credentials from the helper (`get` with the URL).
    let name = format!("{}/team/helped:v1", reg.addr);
    let ctx = context(&[
        ("Dockerfile", "FROM scratch\nCOPY x /x\n", 0o644),
        ("x", "helped\n", 0o644),
    ]);
    let s = Strata::new();
    env.ok(
        &s,
        &[
            "build",
            "--progress",
            "plain",
            "--push",
            "-t",
            &name,
            &arg(ctx.path()),
        ],
    );
    assert!(
        helper_log().contains(&format!("get {}", reg.addr)),
        "{}",
        helper_log()
    );
    env.ok(&Strata::new(), &["pull", &name]);

    // credHelpers for the registry wins over a credsStore that is not even installed.
    std::fs::write(
        env.docker_config(),
        format!(
            r#"{{"credsStore": "missing", "credHelpers": {{"{}": "fake"}}}}"#,
            reg.addr
        ),
    )
    .unwrap();
    env.ok(&Strata::new(), &["pull", &name]);
    // … and a credsStore helper that is not installed is named.
    std::fs::write(env.docker_config(), r#"{"credsStore": "missing"}"#).unwrap();
    let err = env.fails(&Strata::new(), &["pull", &name]);
    assert!(err.contains("docker-credential-missing"), "{err}");

    // logout erases from the helper; then the registry asks and nothing answers.
    std::fs::write(env.docker_config(), r#"{"credsStore": "fake"}"#).unwrap();
    env.ok(&Strata::new(), &["logout", &reg.addr]);
    assert!(
        helper_log().contains(&format!("erase {}", reg.addr)),
        "{}",
        helper_log()
    );
    assert!(!state.join("fake.json").exists());
    let err = env.fails(&Strata::new(), &["pull", &name]);
    assert!(err.contains("strata login"), "{err}");
    assert_no_secret_under(s.root());
    assert_no_secret_under(&env.dir.path().join("docker"));
}

#[test]
fn mirrors_serve_pulls_and_pushes_go_upstream() {
    let (Some(up), Some(mirror)) = (harness::Registry::start(), harness::Registry::start()) else {
        return;
    };
    let env = Env::new();
    env.write_config(&format!(
        "[registry.\"{}\"]\nmirrors = [\"{}\"]\n",
        up.addr, mirror.addr
    ));
    let uploads = |r: &harness::Registry| r.log().matches("blobs/uploads/").count();
    let s = Strata::new();
    let ctx = context(&[
        ("Dockerfile", "FROM scratch\nCOPY x /x\n", 0o644),
        ("x", "mirrored\n", 0o644),
    ]);
    let app = format!("{}/team/app:v1", up.addr);
    env.ok(
        &s,
        &[
            "build",
            "--progress",
            "plain",
            "--push",
            "-t",
            &app,
            &arg(ctx.path()),
        ],
    );
    // Pushes never go to a mirror.
    assert!(uploads(&up) > 0);
    assert_eq!(uploads(&mirror), 0, "{}", mirror.log());

    // A tag only the mirror has is pulled through the mirror.
    env.ok(
        &s,
        &["push", &app, &format!("{}/team/only:v1", mirror.addr)],
    );
    let only = format!("{}/team/only:v1", up.addr);
    env.ok(&Strata::new(), &["pull", &only]);
    assert!(
        !up.log().contains("/v2/team/only/manifests/v1"),
        "{}",
        up.log()
    );

    // A tag the mirror lacks: the mirror is asked first, the registry answers.
    let before = mirror.log().matches("/v2/team/app/manifests/v1").count();
    env.ok(&Strata::new(), &["pull", &app]);
    assert!(mirror.log().matches("/v2/team/app/manifests/v1").count() > before);

    // Docker Hub names through a mirror (`docker.io/library/x` is `MIRROR/library/x`):
    // a FROM of a Hub image builds offline.
    env.ok(
        &s,
        &[
            "push",
            &app,
            &format!("{}/library/hubimg:latest", mirror.addr),
        ],
    );
    env.write_config(&format!(
        "[registry.\"docker.io\"]\nmirrors = [\"{}\"]\n",
        mirror.addr
    ));
    assert_eq!(env.build_from(&Strata::new(), &[], "hubimg"), "mirrored\n");
}

#[test]
fn a_malformed_configuration_names_its_file_and_line() {
    let env = Env::new();
    // STRATA_CONFIG
    env.write_config("[registry.\"docker.io\"]\nmirrors = [\"m:5000\"]\nmirorrs = 1\n");
    let err = env.fails(&Strata::new(), &["pull", "127.0.0.1:1/x:1"]);
    let path = env.dir.path().join("config.toml");
    assert!(
        err.contains(&format!("{}:3:1: ", path.display())) && err.contains("mirorrs"),
        "{err}"
    );
    // Else $XDG_CONFIG_HOME/strata/config.toml.
    std::fs::remove_file(&path).unwrap();
    let xdg = env.dir.path().join("xdg/strata");
    std::fs::create_dir_all(&xdg).unwrap();
    std::fs::write(
        xdg.join("config.toml"),
        "[registry.\"a\"]\ninsecure = \"yes\"\n",
    )
    .unwrap();
    let err = env.fails(&Strata::new(), &["pull", "127.0.0.1:1/x:1"]);
    assert!(
        err.contains(&format!("{}:2:12: ", xdg.join("config.toml").display())),
        "{err}"
    );
}

#[test]
fn without_the_variables_both_files_are_under_home() {
    let home = tempfile::tempdir().unwrap();
    let s = Strata::new();
    let run = |args: &[&str]| {
        let out = s
            .cmd()
            .args(args)
            .env("HOME", home.path())
            .env_remove("XDG_CONFIG_HOME")
            .env_remove("STRATA_CONFIG")
            .env_remove("DOCKER_CONFIG")
            .output()
            .unwrap();
        (
            out.status.success(),
            String::from_utf8_lossy(&out.stderr).into_owned(),
        )
    };
    // ~/.config/strata/config.toml
    let cfg = home.path().join(".config/strata/config.toml");
    std::fs::create_dir_all(cfg.parent().unwrap()).unwrap();
    std::fs::write(&cfg, "[registry.\"a\"]\nmirrors = \"not a list\"\n").unwrap();
    let (ok, err) = run(&["pull", "127.0.0.1:1/x:1"]);
    assert!(
        !ok && err.contains(&format!("{}:2:", cfg.display())),
        "{err}"
    );
    // ~/.docker/config.json
    let docker = home.path().join(".docker/config.json");
    std::fs::create_dir_all(docker.parent().unwrap()).unwrap();
    std::fs::write(&docker, r#"{"auths": {"h:1": {"auth": "eDp5"}}}"#).unwrap();
    let (ok, err) = run(&["logout", "h:1"]);
    assert!(
        ok && err.contains("Removing login credentials for h:1"),
        "{err}"
    );
    assert_eq!(read_json(&docker)["auths"], serde_json::json!({}));
    let (ok, err) = run(&["logout", "h:1"]);
    assert!(ok && err.contains("Not logged in to h:1"), "{err}");
}

/// A token-authenticated front for a registry: `/token` hands out a bearer token for
/// the right basic credentials (recording the query: service and scopes); any other
/// request needs that token (else 401 with a Bearer challenge) and is forwarded to
/// `upstream`, one request per connection.
struct TokenFront {
    addr: String,
    token_queries: std::sync::Arc<std::sync::Mutex<Vec<String>>>,
}

impl TokenFront {
    fn start(upstream: String) -> TokenFront {
        use std::io::{BufRead, BufReader, Read};
        use std::net::{TcpListener, TcpStream};
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = listener.local_addr().unwrap().to_string();
        let token_queries = std::sync::Arc::new(std::sync::Mutex::new(Vec::new()));
        let (queries, me) = (token_queries.clone(), addr.clone());
        let basic = format!("Basic {}", b64(&format!("{USER}:{PASSWORD}")));
        std::thread::spawn(move || {
            for conn in listener.incoming() {
                let Ok(mut conn) = conn else { return };
                let (queries, me, basic, upstream) =
                    (queries.clone(), me.clone(), basic.clone(), upstream.clone());
                std::thread::spawn(move || {
                    let mut reader = BufReader::new(conn.try_clone().unwrap());
                    let mut head = Vec::new();
                    let (mut len, mut auth) = (0usize, String::new());
                    loop {
                        let mut line = String::new();
                        if reader.read_line(&mut line).unwrap_or(0) == 0 {
                            return;
                        }
                        if line == "\r\n" {
                            break;
                        }
                        let lower = line.to_ascii_lowercase();
                        if let Some(v) = lower.strip_prefix("content-length:") {
                            len = v.trim().parse().unwrap();
                        }
                        if lower.starts_with("authorization:") {
                            auth = line["authorization:".len()..].trim().to_string();
                        }
                        if !lower.starts_with("connection:") {
                            head.push(line);
                        }
                    }
                    let mut body = vec![0u8; len];
                    reader.read_exact(&mut body).unwrap();
                    let path = head[0].split_whitespace().nth(1).unwrap().to_string();
                    let reply = |status: &str, extra: &str, body: &str| {
                        format!(
                            "HTTP/1.1 {status}\r\nConnection: close\r\nContent-Length: {}\r\n{extra}\r\n{body}",
                            body.len()
                        )
                    };
                    let out = if path.starts_with("/token") {
                        queries.lock().unwrap().push(path.clone());
                        // An OAuth2 refresh token (an identity token) as a form POST.
                        let form = String::from_utf8_lossy(&body).into_owned();
                        let refresh = head[0].starts_with("POST ")
                            && form.split('&').any(|p| p == "grant_type=refresh_token")
                            && form.split('&').any(|p| p == "refresh_token=rt-777");
                        if refresh {
                            queries.lock().unwrap().push(format!("POST {form}"));
                        }
                        if auth == basic && path.contains("offline_token=true") {
                            let t = r#"{"token":"tok-42","refresh_token":"rt-777"}"#;
                            reply("200 OK", "", t)
                        } else if auth == basic || refresh {
                            reply("200 OK", "", r#"{"token":"tok-42","expires_in":300}"#)
                        } else {
                            reply("401 Unauthorized", "", "")
                        }
                    } else if auth != "Bearer tok-42" {
                        let challenge = format!(
                            "WWW-Authenticate: Bearer realm=\"http://{me}/token\",service=\"front\"\r\n"
                        );
                        reply("401 Unauthorized", &challenge, "")
                    } else {
                        let mut up = TcpStream::connect(&upstream).unwrap();
                        up.write_all(head.concat().as_bytes()).unwrap();
                        up.write_all(b"Connection: close\r\n\r\n").unwrap();
                        up.write_all(&body).unwrap();
                        std::io::copy(&mut up, &mut conn).unwrap();
                        return;
                    };
                    conn.write_all(out.as_bytes()).unwrap();
                });
            }
        });
        TokenFront {
            addr,
            token_queries,
        }
    }
}

#[test]
fn bearer_tokens_from_a_token_service_for_push_and_pull() {
    let Some(reg) = harness::Registry::start() else {
        return;
    };
    let front = TokenFront::start(reg.addr.clone());
    let env = Env::new();
    let s = Strata::new();
    let name = format!("{}/team/app:v1", front.addr);
    // Without credentials the token service refuses: 401 and the hint.
    let ctx = context(&[
        ("Dockerfile", "FROM scratch\nCOPY x /x\n", 0o644),
        ("x", "behind tokens\n", 0o644),
    ]);
    let build = ["build", "--progress", "plain", "--push", "-t", &name];
    let mut args = build.to_vec();
    let c = arg(ctx.path());
    args.push(&c);
    let err = env.fails(&s, &args);
    assert!(err.contains("401") && err.contains("strata login"), "{err}");
    // login gets a token for no scope, and keeps the refresh token the service
    // hands out instead of the password; push asks for pull,push, pull for pull.
    let out = env.login(&s, &[], &front.addr, PASSWORD);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let cfg = read_json(&env.docker_config());
    assert_eq!(
        cfg["auths"][&front.addr],
        serde_json::json!({"identitytoken": "rt-777"}),
        "{cfg}"
    );
    env.ok(&s, &args);
    assert_eq!(
        env.build_from(&Strata::new(), &[], &name),
        "behind tokens\n"
    );
    let queries = front.token_queries.lock().unwrap().clone();
    let has = |needle: &str| queries.iter().any(|q| q.contains(needle));
    assert!(has("service=front"), "{queries:?}");
    assert!(has("scope=repository:team/app:pull%2Cpush"), "{queries:?}");
    assert!(
        queries
            .iter()
            .any(|q| q.ends_with("scope=repository:team/app:pull")),
        "{queries:?}"
    );
    assert!(!reg.log().is_empty());
    // An identity token from a credential helper (user name `<token>`) is exchanged
    // as an OAuth2 refresh token.
    let bin = env.dir.path().join("bin");
    let state = env.dir.path().join("state");
    std::fs::create_dir_all(&bin).unwrap();
    std::fs::create_dir_all(&state).unwrap();
    fake_helper(&bin, &state, "tok");
    std::fs::write(
        state.join("tok.json"),
        format!(
            r#"{{"ServerURL":"{}","Username":"<token>","Secret":"rt-777"}}"#,
            front.addr
        ),
    )
    .unwrap();
    std::fs::write(
        env.docker_config(),
        format!(r#"{{"credHelpers": {{"{}": "tok"}}}}"#, front.addr),
    )
    .unwrap();
    let mut env = env;
    env.path = Some(format!(
        "{}:{}",
        bin.display(),
        std::env::var("PATH").unwrap_or_default()
    ));
    let tagged = format!("{}/team/app:v2", front.addr);
    let s2 = Strata::new();
    env.ok(&s2, &["pull", &name]);
    env.ok(&s2, &["push", &name, &tagged]);
    let queries = front.token_queries.lock().unwrap().clone();
    let posted = |scope: &str| {
        queries
            .iter()
            .any(|q| q.starts_with("POST ") && q.split('&').any(|p| p == scope))
    };
    assert!(posted("scope=repository:team/app:pull"), "{queries:?}");
    assert!(
        posted("scope=repository:team/app:pull%2Cpush"),
        "{queries:?}"
    );
    assert_no_secret_under(s.root());
}

#[test]
fn insecure_registries_skip_certificate_checks_or_speak_plain_http() {
    let (Some(tls), Some(plain)) = (
        harness::Registry::start_secure(USER, PASSWORD),
        harness::Registry::start(),
    ) else {
        return;
    };
    let env = Env::new();
    env.write_config(&format!(
        "[registry.\"{}\"]\ninsecure = true\n[registry.\"{}\"]\ninsecure = true\n",
        tls.addr, plain.addr
    ));
    let s = Strata::new();
    // TLS with a certificate nobody trusts: accepted without verification.
    let out = env.login(&s, &[], &tls.addr, PASSWORD);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let ctx = context(&[
        ("Dockerfile", "FROM scratch\nCOPY x /x\n", 0o644),
        ("x", "insecure\n", 0o644),
    ]);
    let c = arg(ctx.path());
    for reg in [&tls, &plain] {
        let name = format!("{}/team/app:v1", reg.addr);
        env.ok(
            &s,
            &["build", "--progress", "plain", "--push", "-t", &name, &c],
        );
        assert_eq!(env.build_from(&Strata::new(), &[], &name), "insecure\n");
    }
    // The TLS registry was spoken to over TLS: its log has no plain-HTTP requests.
    assert!(
        tls.log().contains("/v2/team/app/manifests/v1"),
        "{}",
        tls.log()
    );
    assert!(!tls
        .log()
        .contains("client sent an HTTP request to an HTTPS server"));
}

#[test]
fn login_without_a_terminal_needs_its_flags() {
    let env = Env::new();
    let s = Strata::new();
    for (args, needs) in [
        (&["login", "127.0.0.1:1"][..], "-u USER"),
        (
            &["login", "-u", USER, "127.0.0.1:1"][..],
            "--password-stdin",
        ),
    ] {
        let out = env.run(&s, args, None);
        let err = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(2), "{err}");
        assert!(err.contains(needs), "{err}");
    }
    assert!(!env.docker_config().exists());
}
