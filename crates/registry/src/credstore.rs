//! Docker's credential stores: `docker-credential-<name>` helpers (`credHelpers`,
//! `credsStore` in `config.json`) and writing `config.json` for `login` / `logout` the
//! way the docker CLI does (`auths` entries with a base64 `auth`, file mode 0600,
//! written atomically, every other key kept).
//!
//! A helper speaks on stdin/stdout: `get` reads the server URL and prints
//! `{"ServerURL","Username","Secret"}` (user name `<token>`: the secret is an identity
//! token); `store` reads that JSON; `erase` reads the server URL. Secrets pass only
//! through pipes, never through arguments, environment or errors.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use serde_json::{Map, Value};

use crate::auth::{auth_key_host, Credentials};
use crate::base64_encode;

/// Errors of the credential store. None carries a secret.
#[derive(Debug, thiserror::Error)]
pub enum CredStoreError {
    #[error("{path}: {source}")]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("{path}: invalid Docker config: {message}")]
    Invalid { path: PathBuf, message: String },
    #[error("the credential helper docker-credential-{helper} is not installed (not on PATH); install it or remove it from config.json")]
    HelperMissing { helper: String },
    #[error("docker-credential-{helper} {action} failed for {server}: {message}")]
    Helper {
        helper: String,
        action: &'static str,
        server: String,
        message: String,
    },
}

/// The server URL Docker's helpers and `auths` use for a registry host:
/// `https://index.docker.io/v1/` for Docker Hub, the host itself otherwise.
pub fn server_url(registry: &str) -> String {
    if registry == "docker.io" {
        "https://index.docker.io/v1/".into()
    } else {
        registry.into()
    }
}

/// A registry as `login` accepts it (`https://host:port/`, `index.docker.io`) as the
/// host references use (`host:port`, `docker.io`).
pub fn registry_host(registry: &str) -> String {
    auth_key_host(registry.trim()).to_string()
}

/// The helper `config` names for `registry`: its `credHelpers` entry, else
/// `credsStore`.
pub(crate) fn helper_for(config: &Value, registry: &str) -> Option<String> {
    let named = config
        .get("credHelpers")
        .and_then(Value::as_object)
        .and_then(|m| {
            m.iter()
                .find(|(k, _)| auth_key_host(k) == registry)
                .and_then(|(_, v)| v.as_str())
        });
    named
        .or_else(|| config.get("credsStore").and_then(Value::as_str))
        .filter(|h| !h.is_empty())
        .map(str::to_string)
}

fn run_helper(
    helper: &str,
    action: &'static str,
    server: &str,
    input: &[u8],
) -> Result<(bool, Vec<u8>), CredStoreError> {
    let program = format!("docker-credential-{helper}");
    let mut child = match Command::new(&program)
        .arg(action)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
    {
        Ok(c) => c,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            return Err(CredStoreError::HelperMissing {
                helper: helper.into(),
            })
        }
        Err(e) => {
            return Err(CredStoreError::Helper {
                helper: helper.into(),
                action,
                server: server.into(),
                message: e.to_string(),
            })
        }
    };
    let mut stdin = child.stdin.take().expect("piped");
    // A helper that exits without reading its input is not an error here.
    let _ = stdin.write_all(input);
    drop(stdin);
    let out = child
        .wait_with_output()
        .map_err(|e| CredStoreError::Helper {
            helper: helper.into(),
            action,
            server: server.into(),
            message: e.to_string(),
        })?;
    Ok((out.status.success(), out.stdout))
}

/// Asks helper `helper` for the credentials of `registry`. None: it has none.
pub fn helper_get(helper: &str, registry: &str) -> Result<Option<Credentials>, CredStoreError> {
    let server = server_url(registry);
    let (ok, stdout) = run_helper(helper, "get", &server, server.as_bytes())?;
    let text = String::from_utf8_lossy(&stdout);
    if !ok {
        if text.contains("credentials not found") {
            return Ok(None);
        }
        // The helper's message (its stdout, by the protocol): never secrets.
        return Err(CredStoreError::Helper {
            helper: helper.into(),
            action: "get",
            server,
            message: text.trim().chars().take(200).collect(),
        });
    }
    #[derive(serde::Deserialize)]
    struct Reply {
        #[serde(rename = "Username", default)]
        username: String,
        #[serde(rename = "Secret", default)]
        secret: String,
    }
    let reply: Reply = serde_json::from_slice(&stdout).map_err(|e| CredStoreError::Helper {
        helper: helper.into(),
        action: "get",
        server: server.clone(),
        message: format!(
            "invalid JSON reply (line {}, column {})",
            e.line(),
            e.column()
        ),
    })?;
    if reply.secret.is_empty() {
        return Ok(None);
    }
    Ok(Some(if reply.username == "<token>" {
        Credentials::IdentityToken(reply.secret)
    } else {
        Credentials::Basic {
            username: reply.username,
            password: reply.secret,
        }
    }))
}

fn helper_store(helper: &str, registry: &str, creds: &Credentials) -> Result<(), CredStoreError> {
    let server = server_url(registry);
    let (username, secret) = match creds {
        Credentials::Basic { username, password } => (username.as_str(), password.as_str()),
        Credentials::IdentityToken(t) => ("<token>", t.as_str()),
    };
    let input = serde_json::json!({"ServerURL": server, "Username": username, "Secret": secret});
    let (ok, stdout) = run_helper(helper, "store", &server, input.to_string().as_bytes())?;
    if ok {
        Ok(())
    } else {
        Err(CredStoreError::Helper {
            helper: helper.into(),
            action: "store",
            server,
            message: String::from_utf8_lossy(&stdout)
                .trim()
                .chars()
                .take(200)
                .collect(),
        })
    }
}

fn helper_erase(helper: &str, registry: &str) -> Result<(), CredStoreError> {
    let server = server_url(registry);
    let (ok, stdout) = run_helper(helper, "erase", &server, server.as_bytes())?;
    let text = String::from_utf8_lossy(&stdout);
    if ok || text.contains("credentials not found") {
        Ok(())
    } else {
        Err(CredStoreError::Helper {
            helper: helper.into(),
            action: "erase",
            server,
            message: text.trim().chars().take(200).collect(),
        })
    }
}

/// Reads `config.json` as JSON (an empty object when it does not exist).
pub(crate) fn read_config(path: &Path) -> Result<Value, CredStoreError> {
    match std::fs::read(path) {
        Ok(bytes) if bytes.iter().all(u8::is_ascii_whitespace) => Ok(Value::Object(Map::new())),
        Ok(bytes) => {
            let v: Value = serde_json::from_slice(&bytes).map_err(|e| CredStoreError::Invalid {
                path: path.into(),
                message: e.to_string(),
            })?;
            if v.is_object() {
                Ok(v)
            } else {
                Err(CredStoreError::Invalid {
                    path: path.into(),
                    message: "not a JSON object".into(),
                })
            }
        }
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(Value::Object(Map::new())),
        Err(source) => Err(CredStoreError::Io {
            path: path.into(),
            source,
        }),
    }
}

/// Writes `config` to `path` atomically (a temporary file in the same directory, mode
/// 0600, synced, renamed over it). A symlinked `config.json` is written through.
fn write_config(path: &Path, config: &Value) -> Result<(), CredStoreError> {
    use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt};
    let io = |path: &Path| {
        let path = path.to_path_buf();
        move |source| CredStoreError::Io { path, source }
    };
    let target = std::fs::canonicalize(path).unwrap_or_else(|_| path.to_path_buf());
    let dir = target.parent().unwrap_or(Path::new("."));
    std::fs::DirBuilder::new()
        .recursive(true)
        .mode(0o700)
        .create(dir)
        .map_err(io(dir))?;
    let mut bytes = serde_json::to_vec_pretty(config).expect("JSON values serialize");
    bytes.push(b'\n');
    let tmp = dir.join(format!(
        ".{}.tmp-{}",
        target
            .file_name()
            .map_or("config.json".into(), |n| n.to_string_lossy()),
        std::process::id()
    ));
    let result = (|| {
        let mut f = std::fs::OpenOptions::new()
            .write(true)
            .create(true)
            .truncate(true)
            .mode(0o600)
            .open(&tmp)?;
        f.write_all(&bytes)?;
        f.sync_all()?;
        std::fs::rename(&tmp, &target)
    })();
    if result.is_err() {
        let _ = std::fs::remove_file(&tmp);
    }
    result.map_err(io(&target))
}

/// Where `login` put the credentials.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Stored {
    /// In `config.json`'s `auths`.
    File(PathBuf),
    /// In this helper (`docker-credential-NAME`).
    Helper(String),
}

/// Saves credentials for `registry` as `docker login` does: through the helper the
/// config names for it, else base64 in `auths`.
pub fn store_credentials(
    path: &Path,
    registry: &str,
    creds: &Credentials,
) -> Result<Stored, CredStoreError> {
    let mut config = read_config(path)?;
    let helper = helper_for(&config, registry);
    if let Some(h) = &helper {
        helper_store(h, registry, creds)?;
    }
    let obj = config.as_object_mut().expect("an object");
    let auths = obj
        .entry("auths")
        .or_insert_with(|| Value::Object(Map::new()));
    if !auths.is_object() {
        *auths = Value::Object(Map::new());
    }
    let auths = auths.as_object_mut().expect("an object");
    auths.retain(|k, _| auth_key_host(k) != registry);
    let mut entry = Map::new();
    if helper.is_none() {
        match creds {
            Credentials::Basic { username, password } => {
                entry.insert(
                    "auth".into(),
                    base64_encode(format!("{username}:{password}").as_bytes()).into(),
                );
            }
            Credentials::IdentityToken(t) => {
                entry.insert("identitytoken".into(), t.clone().into());
            }
        }
    }
    // With a helper, an empty entry records the login (as docker does).
    auths.insert(server_url(registry), Value::Object(entry));
    write_config(path, &config)?;
    Ok(match helper {
        Some(h) => Stored::Helper(h),
        None => Stored::File(path.to_path_buf()),
    })
}

/// Removes the credentials of `registry` (its `auths` entries, and from its helper).
/// Returns whether `config.json` had an entry for it.
pub fn erase_credentials(path: &Path, registry: &str) -> Result<bool, CredStoreError> {
    let mut config = read_config(path)?;
    if let Some(h) = helper_for(&config, registry) {
        helper_erase(&h, registry)?;
    }
    let mut found = false;
    if let Some(auths) = config.get_mut("auths").and_then(Value::as_object_mut) {
        let before = auths.len();
        auths.retain(|k, _| auth_key_host(k) != registry);
        found = auths.len() != before;
    }
    if found {
        write_config(path, &config)?;
    }
    Ok(found)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::PermissionsExt;

    #[test]
    fn login_and_logout_edit_auths_like_docker() {
        let dir = tempfile::tempdir().unwrap();
        let real = dir.path().join("real.json");
        std::fs::write(
            &real,
            r#"{"psFormat": "table", "auths": {"https://reg.lan:5000/v1/": {"auth": "b2xkOm9sZA=="}, "other:1": {"auth": "eDp5"}}}"#,
        )
        .unwrap();
        // A symlinked config.json is written through.
        let path = dir.path().join("config.json");
        std::os::unix::fs::symlink(&real, &path).unwrap();
        let creds = Credentials::Basic {
            username: "me".into(),
            password: "pa:ss".into(),
        };
        let stored = store_credentials(&path, "reg.lan:5000", &creds).unwrap();
        assert_eq!(stored, Stored::File(path.clone()));
        assert!(path.is_symlink());
        let v: Value = serde_json::from_slice(&std::fs::read(&real).unwrap()).unwrap();
        assert_eq!(v["psFormat"], "table");
        assert_eq!(v["auths"]["other:1"]["auth"], "eDp5");
        // The old spelling of the same registry is replaced, not duplicated.
        assert!(v["auths"].get("https://reg.lan:5000/v1/").is_none(), "{v}");
        assert_eq!(
            v["auths"]["reg.lan:5000"]["auth"],
            base64_encode(b"me:pa:ss")
        );
        let mode = std::fs::metadata(&real).unwrap().permissions().mode();
        assert_eq!(mode & 0o777, 0o600);
        // No temporary file is left behind.
        assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 2);
        assert_eq!(
            crate::CredentialSource::File(path.clone())
                .lookup("reg.lan:5000")
                .unwrap(),
            Some(creds)
        );

        // Docker Hub's key.
        store_credentials(&path, "docker.io", &Credentials::IdentityToken("rt".into())).unwrap();
        let v: Value = serde_json::from_slice(&std::fs::read(&real).unwrap()).unwrap();
        assert_eq!(
            v["auths"]["https://index.docker.io/v1/"]["identitytoken"],
            "rt"
        );

        assert!(erase_credentials(&path, "reg.lan:5000").unwrap());
        assert!(!erase_credentials(&path, "reg.lan:5000").unwrap());
        let v: Value = serde_json::from_slice(&std::fs::read(&real).unwrap()).unwrap();
        assert!(v["auths"].get("reg.lan:5000").is_none(), "{v}");
        assert_eq!(v["psFormat"], "table");

        // A new file in a new directory (DOCKER_CONFIG that does not exist yet).
        let fresh = dir.path().join("new/config.json");
        store_credentials(&fresh, "h:1", &Credentials::IdentityToken("t".into())).unwrap();
        assert!(fresh.exists());
        // Not JSON: an error naming the file, nothing overwritten.
        std::fs::write(&fresh, "{not json").unwrap();
        let e = store_credentials(&fresh, "h:1", &Credentials::IdentityToken("t".into()))
            .unwrap_err()
            .to_string();
        assert!(e.contains("new/config.json"), "{e}");
        assert_eq!(std::fs::read_to_string(&fresh).unwrap(), "{not json");
    }

    #[test]
    fn helpers_for_a_registry() {
        let v: Value = serde_json::from_str(
            r#"{"credsStore": "desktop", "credHelpers": {"gcr.io": "gcloud", "https://index.docker.io/v1/": "hub"}}"#,
        )
        .unwrap();
        assert_eq!(helper_for(&v, "gcr.io").as_deref(), Some("gcloud"));
        assert_eq!(helper_for(&v, "docker.io").as_deref(), Some("hub"));
        assert_eq!(helper_for(&v, "ghcr.io").as_deref(), Some("desktop"));
        let none: Value = serde_json::from_str(r#"{"credsStore": ""}"#).unwrap();
        assert_eq!(helper_for(&none, "ghcr.io"), None);
        assert_eq!(server_url("docker.io"), "https://index.docker.io/v1/");
        assert_eq!(registry_host("https://index.docker.io/v1/"), "docker.io");
        assert_eq!(registry_host("https://reg.lan:5000/"), "reg.lan:5000");
    }
}
