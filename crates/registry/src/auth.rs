//! Authentication: `WWW-Authenticate` challenges, credentials from Docker's
//! `config.json`, bearer tokens cached per scope.
//!
//! Credentials are kept in [`Credentials`], whose `Debug` hides the secret; they are
//! sent only in `Authorization` headers and never formatted into errors.

use std::collections::BTreeMap;
use std::fmt;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use serde::Deserialize;

/// A parsed `WWW-Authenticate` challenge.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Challenge {
    Basic {
        realm: Option<String>,
    },
    Bearer {
        realm: String,
        service: Option<String>,
        /// The scope the registry asked for, if it said.
        scope: Option<String>,
    },
}

/// Parses one `WWW-Authenticate` value: `Bearer realm="…",service="…",scope="…"` or
/// `Basic realm="…"`. Quoted values may hold commas; `\"` escapes a quote.
pub fn parse_challenge(header: &str) -> Option<Challenge> {
    let header = header.trim();
    let (scheme, rest) = match header.split_once(char::is_whitespace) {
        Some((s, r)) => (s, r),
        None => (header, ""),
    };
    let params = parse_params(rest);
    match scheme.to_ascii_lowercase().as_str() {
        "basic" => Some(Challenge::Basic {
            realm: params.get("realm").cloned(),
        }),
        "bearer" => Some(Challenge::Bearer {
            realm: params.get("realm")?.clone(),
            service: params.get("service").cloned(),
            scope: params.get("scope").cloned(),
        }),
        _ => None,
    }
}

fn parse_params(s: &str) -> BTreeMap<String, String> {
    let mut out = BTreeMap::new();
    let b = s.as_bytes();
    let mut i = 0;
    while i < b.len() {
        while i < b.len() && (b[i] == b',' || b[i].is_ascii_whitespace()) {
            i += 1;
        }
        let start = i;
        while i < b.len() && b[i] != b'=' && b[i] != b',' {
            i += 1;
        }
        let key = s[start..i].trim().to_ascii_lowercase();
        if i >= b.len() || b[i] != b'=' {
            continue;
        }
        i += 1;
        let mut value = String::new();
        if i < b.len() && b[i] == b'"' {
            i += 1;
            while i < b.len() && b[i] != b'"' {
                if b[i] == b'\\' && i + 1 < b.len() {
                    i += 1;
                }
                // Push whole UTF-8 characters.
                let ch = s[i..].chars().next().expect("in bounds");
                value.push(ch);
                i += ch.len_utf8();
            }
            i += 1;
        } else {
            let vs = i;
            while i < b.len() && b[i] != b',' {
                i += 1;
            }
            value = s[vs..i].trim().to_string();
        }
        if !key.is_empty() {
            out.insert(key, value);
        }
    }
    out
}

/// A user name and secret for one registry. `Debug` never shows the secret.
#[derive(Clone, PartialEq, Eq)]
pub enum Credentials {
    Basic {
        username: String,
        password: String,
    },
    /// An OAuth2 refresh token (`identitytoken` in config.json).
    IdentityToken(String),
}

impl fmt::Debug for Credentials {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Credentials::Basic { username, .. } => f
                .debug_struct("Basic")
                .field("username", username)
                .field("password", &"<redacted>")
                .finish(),
            Credentials::IdentityToken(_) => f.write_str("IdentityToken(<redacted>)"),
        }
    }
}

impl Credentials {
    /// `Basic base64(user:pass)`.
    pub(crate) fn basic_header(&self) -> Option<String> {
        match self {
            Credentials::Basic { username, password } => Some(format!(
                "Basic {}",
                base64_encode(format!("{username}:{password}").as_bytes())
            )),
            Credentials::IdentityToken(_) => None,
        }
    }
}

/// Where credentials come from.
#[derive(Debug, Clone, Default)]
pub enum CredentialSource {
    /// `$DOCKER_CONFIG/config.json`, else `~/.docker/config.json`.
    #[default]
    DockerConfig,
    /// This file (Docker's format).
    File(PathBuf),
    /// Fixed credentials per registry host (tests, `--creds`).
    Static(BTreeMap<String, Credentials>),
    None,
}

impl CredentialSource {
    pub(crate) fn lookup(&self, registry: &str) -> Result<Option<Credentials>, String> {
        match self {
            CredentialSource::None => Ok(None),
            CredentialSource::Static(map) => Ok(map.get(registry).cloned()),
            CredentialSource::File(p) => from_config_file(p, registry),
            CredentialSource::DockerConfig => match docker_config_path() {
                Some(p) => from_config_file(&p, registry),
                None => Ok(None),
            },
        }
    }
}

/// `$DOCKER_CONFIG/config.json`, else `$HOME/.docker/config.json`.
pub fn docker_config_path() -> Option<PathBuf> {
    if let Some(dir) = std::env::var_os("DOCKER_CONFIG").filter(|d| !d.is_empty()) {
        return Some(PathBuf::from(dir).join("config.json"));
    }
    std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".docker/config.json"))
}

#[derive(Deserialize, Default)]
struct DockerConfig {
    #[serde(default)]
    auths: BTreeMap<String, AuthEntry>,
}

#[derive(Deserialize, Default)]
struct AuthEntry {
    #[serde(default)]
    auth: Option<String>,
    #[serde(default)]
    username: Option<String>,
    #[serde(default)]
    password: Option<String>,
    #[serde(default)]
    identitytoken: Option<String>,
}

/// Docker's order: the registry's `credHelpers` helper, else `credsStore`, else (or
/// when the helper has nothing for it) the `auths` entry.
fn from_config_file(path: &Path, registry: &str) -> Result<Option<Credentials>, String> {
    let value = crate::credstore::read_config(path).map_err(|e| e.to_string())?;
    if let Some(helper) = crate::credstore::helper_for(&value, registry) {
        if let Some(c) =
            crate::credstore::helper_get(&helper, registry).map_err(|e| e.to_string())?
        {
            return Ok(Some(c));
        }
    }
    let cfg: DockerConfig = serde_json::from_value(value)
        .map_err(|e| format!("{}: invalid Docker config: {e}", path.display()))?;
    let Some(entry) = cfg
        .auths
        .iter()
        .find(|(k, _)| auth_key_host(k) == registry)
        .map(|(_, v)| v)
    else {
        return Ok(None);
    };
    if let Some(tok) = entry.identitytoken.as_ref().filter(|t| !t.is_empty()) {
        return Ok(Some(Credentials::IdentityToken(tok.clone())));
    }
    if let Some(auth) = entry.auth.as_ref().filter(|a| !a.is_empty()) {
        let decoded = base64_decode(auth.trim()).ok_or_else(|| {
            format!(
                "{}: the auth entry for {registry} is not valid base64",
                path.display()
            )
        })?;
        let text = String::from_utf8(decoded).map_err(|_| {
            format!(
                "{}: the auth entry for {registry} is not UTF-8",
                path.display()
            )
        })?;
        let (u, p) = text.split_once(':').ok_or_else(|| {
            format!(
                "{}: the auth entry for {registry} is not user:password",
                path.display()
            )
        })?;
        return Ok(Some(Credentials::Basic {
            username: u.to_string(),
            password: p.to_string(),
        }));
    }
    match (&entry.username, &entry.password) {
        (Some(u), Some(p)) => Ok(Some(Credentials::Basic {
            username: u.clone(),
            password: p.clone(),
        })),
        _ => Ok(None),
    }
}

/// The registry host an `auths` key names: `https://index.docker.io/v1/` is docker.io,
/// `https://host:5000/` and `host:5000` are `host:5000`.
pub(crate) fn auth_key_host(key: &str) -> &str {
    let k = key
        .strip_prefix("https://")
        .or_else(|| key.strip_prefix("http://"))
        .unwrap_or(key);
    let host = k.split('/').next().unwrap_or(k);
    match host {
        "index.docker.io" | "registry-1.docker.io" | "registry.docker.io" => "docker.io",
        h => h,
    }
}

/// A bearer token and when to stop using it.
#[derive(Clone)]
pub(crate) struct Token {
    pub value: String,
    pub expires: Instant,
    /// A refresh token the token service handed out (asked for at login).
    pub refresh: Option<String>,
}

#[derive(Deserialize)]
pub(crate) struct TokenResponse {
    #[serde(default)]
    pub token: Option<String>,
    #[serde(default)]
    pub access_token: Option<String>,
    #[serde(default)]
    pub expires_in: Option<u64>,
    #[serde(default)]
    pub refresh_token: Option<String>,
}

impl TokenResponse {
    pub fn into_token(self) -> Option<Token> {
        let refresh = self.refresh_token.filter(|t| !t.is_empty());
        let value = self.token.or(self.access_token).filter(|t| !t.is_empty())?;
        // The spec's default lifetime is 60 s; renew 10 s early.
        let secs = self.expires_in.unwrap_or(60).max(20);
        Some(Token {
            value,
            expires: Instant::now() + Duration::from_secs(secs - 10),
            refresh,
        })
    }
}

const B64: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";

pub fn base64_encode(data: &[u8]) -> String {
    let mut out = String::with_capacity(data.len().div_ceil(3) * 4);
    for chunk in data.chunks(3) {
        let n = (u32::from(chunk[0]) << 16)
            | (u32::from(*chunk.get(1).unwrap_or(&0)) << 8)
            | u32::from(*chunk.get(2).unwrap_or(&0));
        for i in 0..4 {
            if i <= chunk.len() {
                out.push(B64[(n >> (18 - 6 * i) & 63) as usize] as char);
            } else {
                out.push('=');
            }
        }
    }
    out
}

pub fn base64_decode(s: &str) -> Option<Vec<u8>> {
    let s = s.trim_end_matches('=');
    let mut out = Vec::with_capacity(s.len() * 3 / 4);
    let mut acc = 0u32;
    let mut bits = 0;
    for c in s.bytes() {
        let v = match c {
            b'A'..=b'Z' => c - b'A',
            b'a'..=b'z' => c - b'a' + 26,
            b'0'..=b'9' => c - b'0' + 52,
            b'+' | b'-' => 62,
            b'/' | b'_' => 63,
            _ => return None,
        };
        acc = (acc << 6) | u32::from(v);
        bits += 6;
        if bits >= 8 {
            bits -= 8;
            out.push((acc >> bits) as u8);
            acc &= (1 << bits) - 1;
        }
    }
    Some(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_bearer_and_basic_challenges() {
        let c = parse_challenge(
            r#"Bearer realm="https://auth.docker.io/token",service="registry.docker.io",scope="repository:samalba/my-app:pull,push""#,
        )
        .unwrap();
        assert_eq!(
            c,
            Challenge::Bearer {
                realm: "https://auth.docker.io/token".into(),
                service: Some("registry.docker.io".into()),
                scope: Some("repository:samalba/my-app:pull,push".into()),
            }
        );
        assert_eq!(
            parse_challenge(r#"Basic realm="Registry Realm""#).unwrap(),
            Challenge::Basic {
                realm: Some("Registry Realm".into())
            }
        );
        assert_eq!(
            parse_challenge("bearer realm=http://x/t, service=svc").unwrap(),
            Challenge::Bearer {
                realm: "http://x/t".into(),
                service: Some("svc".into()),
                scope: None
            }
        );
        assert!(parse_challenge("Bearer service=x").is_none());
        assert!(parse_challenge("Negotiate abc").is_none());
    }

    #[test]
    fn base64_round_trips() {
        for s in [
            "",
            "f",
            "fo",
            "foo",
            "foob",
            "fooba",
            "foobar",
            "user:pa:ss",
        ] {
            let e = base64_encode(s.as_bytes());
            assert_eq!(base64_decode(&e).unwrap(), s.as_bytes(), "{s}");
        }
        assert_eq!(base64_encode(b"foobar"), "Zm9vYmFy");
        assert_eq!(base64_encode(b"fo"), "Zm8=");
        assert!(base64_decode("a b").is_none());
    }

    #[test]
    fn reads_docker_config_auths() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("config.json");
        std::fs::write(
            &p,
            format!(
                r#"{{"auths": {{
                    "https://index.docker.io/v1/": {{"auth": "{}"}},
                    "127.0.0.1:5000": {{"auth": "{}"}},
                    "https://reg.example.com": {{"username": "u", "password": "p"}},
                    "tok.example.com": {{"identitytoken": "refresh"}}
                }}, "credsStore": "", "psFormat": "table"}}"#,
                base64_encode(b"hub:secret"),
                base64_encode(b"me:pa:ss")
            ),
        )
        .unwrap();
        let src = CredentialSource::File(p);
        let basic = |u: &str, p: &str| Credentials::Basic {
            username: u.into(),
            password: p.into(),
        };
        assert_eq!(
            src.lookup("docker.io").unwrap(),
            Some(basic("hub", "secret"))
        );
        assert_eq!(
            src.lookup("127.0.0.1:5000").unwrap(),
            Some(basic("me", "pa:ss"))
        );
        assert_eq!(
            src.lookup("reg.example.com").unwrap(),
            Some(basic("u", "p"))
        );
        assert_eq!(
            src.lookup("tok.example.com").unwrap(),
            Some(Credentials::IdentityToken("refresh".into()))
        );
        assert_eq!(src.lookup("other:1").unwrap(), None);
        let dbg = format!("{:?}", basic("hub", "secret"));
        assert!(!dbg.contains("secret"), "{dbg}");
    }
}
