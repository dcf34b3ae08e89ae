//! An OCI distribution client: resolve references to manifests, stream blobs in and
//! out with digest and size checks, push blobs (with cross-repository mounts) and
//! manifests. Authentication follows the registry's `WWW-Authenticate` challenge:
//! anonymous, basic, or bearer tokens from the token endpoint, cached per scope, with
//! credentials from Docker's `config.json`. Transient failures (connection errors,
//! 5xx, 429 with `Retry-After`) are retried with bounded exponential backoff.
//!
//! Loopback registries (127.0.0.0/8, `localhost`, `::1`) speak plain HTTP, as Docker
//! allows, unless listed in [`ClientOptions::secure`]; every other registry HTTPS
//! unless listed in [`ClientOptions::insecure`].
//!
//! Blocking I/O (ureq): callers run it on worker threads. [`Client`] is cheap to clone
//! and shares its connection pool and token cache. Depends only on `strata-digest`
//! and `strata-oci`; it knows nothing of the store.

mod auth;
mod blob;
mod credstore;
mod error;
mod mirror;
mod scheme;
mod transport;
mod upload;

use std::collections::HashMap;
use std::io::{self, Read, Write};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use strata_digest::{Digest, HashingWriter};
use strata_oci::{media_types, Reference};
use ureq::http::{self, Method};

pub use auth::{
    base64_decode, base64_encode, docker_config_path, parse_challenge, Challenge, CredentialSource,
    Credentials,
};
pub use credstore::{
    erase_credentials, helper_get, registry_host, server_url, store_credentials, CredStoreError,
    Stored,
};
pub use error::{RegistryError, Result};
pub use upload::DEFAULT_CHUNK;

/// Manifests (and indexes) larger than this are refused, as containerd does.
pub const MANIFEST_LIMIT: u64 = 4 << 20;

/// What `GET /v2/<name>/manifests/<ref>` accepts.
pub const MANIFEST_ACCEPT: &str = "application/vnd.oci.image.index.v1+json, application/vnd.docker.distribution.manifest.list.v2+json, application/vnd.oci.image.manifest.v1+json, application/vnd.docker.distribution.manifest.v2+json";

#[derive(Debug, Clone)]
pub struct ClientOptions {
    pub credentials: CredentialSource,
    /// Registries (host[:port]) whose certificates are not checked, as Docker's
    /// insecure registries: HTTPS without verification when they speak TLS, else
    /// plain HTTP.
    pub insecure: Vec<String>,
    /// Registries spoken to over HTTPS even on loopback (`insecure = false`).
    pub secure: Vec<String>,
    /// Per registry host: mirrors (host[:port]) that pulls try first, in order.
    pub mirrors: HashMap<String, Vec<String>>,
    /// PEM files of extra CAs trusted for every registry, besides the system's.
    pub ca_files: Vec<std::path::PathBuf>,
    /// Per registry host: PEM files of CAs trusted for that registry only.
    pub registry_ca_files: HashMap<String, Vec<std::path::PathBuf>>,
    /// Attempts per request (at least 1).
    pub attempts: u32,
    /// First backoff; doubles per attempt.
    pub backoff: Duration,
    /// Longest wait honoured for `Retry-After`.
    pub max_backoff: Duration,
    /// Connecting, and every read or write once connected (a stalled transfer fails
    /// and is retried after this long without progress).
    pub timeout: Duration,
}

impl Default for ClientOptions {
    fn default() -> Self {
        ClientOptions {
            credentials: CredentialSource::DockerConfig,
            insecure: Vec::new(),
            secure: Vec::new(),
            mirrors: HashMap::new(),
            ca_files: Vec::new(),
            registry_ca_files: HashMap::new(),
            attempts: 5,
            backoff: Duration::from_millis(250),
            max_backoff: Duration::from_secs(30),
            timeout: Duration::from_secs(60),
        }
    }
}

/// A registry client. Clones share connections, the token cache and the counters.
#[derive(Clone)]
pub struct Client {
    inner: Arc<Inner>,
}

struct Inner {
    agent: ureq::Agent,
    /// For insecure registries that speak TLS: no certificate checks.
    unverified_agent: ureq::Agent,
    /// Per registry with CAs of its own: an agent trusting them too.
    registry_agents: HashMap<String, ureq::Agent>,
    /// Per insecure registry: how it turned out to be spoken to.
    schemes: Mutex<HashMap<String, scheme::Scheme>>,
    opts: ClientOptions,
    /// Per registry: the challenge it answered with (None: no auth needed).
    challenges: Mutex<HashMap<String, Option<Challenge>>>,
    /// (registry, scope) → token.
    tokens: Mutex<HashMap<(String, String), auth::Token>>,
    /// Per registry: credentials once looked up.
    creds: Mutex<HashMap<String, Option<Credentials>>>,
    stats: Mutex<Stats>,
    /// Mirrors that could not be reached: skipped from then on.
    down_mirrors: Mutex<std::collections::HashSet<String>>,
}

/// Request counters (for tests and `--debug` output).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Stats {
    pub requests: u64,
    pub retries: u64,
    pub blobs_uploaded: u64,
    pub blobs_mounted: u64,
    pub bytes_uploaded: u64,
    pub bytes_downloaded: u64,
    /// Pull requests a mirror could not answer (sent on to the next, or upstream).
    pub mirror_fallbacks: u64,
}

/// A manifest or index as the registry sent it.
#[derive(Debug, Clone)]
pub struct Manifest {
    pub media_type: String,
    pub digest: Digest,
    pub bytes: Vec<u8>,
}

/// What a HEAD of a manifest says.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ManifestHead {
    pub media_type: String,
    pub digest: Option<Digest>,
    pub size: Option<u64>,
}

/// Pull or push.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Access {
    Pull,
    Push,
}

/// Body of a request, re-creatable for retries.
enum Body<'a> {
    Empty,
    Bytes(&'a [u8]),
    Stream {
        open: &'a dyn Fn() -> io::Result<Box<dyn Read + Send>>,
        len: u64,
    },
}

struct Request<'a> {
    method: Method,
    url: String,
    /// The reference or blob this is about, for errors.
    what: &'a str,
    op: &'static str,
    registry: &'a str,
    /// Token scopes (`repository:NAME:pull`, …).
    scopes: Vec<String>,
    headers: Vec<(&'static str, String)>,
    body: Body<'a>,
}

type Response = http::Response<ureq::Body>;

/// Is this registry on a loopback address (plain HTTP without configuration)?
pub fn is_loopback(registry: &str) -> bool {
    let host = if let Some(rest) = registry.strip_prefix('[') {
        rest.split(']').next().unwrap_or(rest)
    } else if registry.matches(':').count() > 1 {
        registry
    } else {
        registry.split(':').next().unwrap_or(registry)
    };
    if host == "localhost" || host == "::1" {
        return true;
    }
    host.parse::<std::net::Ipv4Addr>()
        .is_ok_and(|ip| ip.is_loopback())
}

impl Client {
    pub fn new(opts: ClientOptions) -> Result<Client> {
        let make_agent = |tls: ureq::tls::TlsConfig| -> ureq::Agent {
            ureq::Agent::config_builder()
                .http_status_as_error(false)
                .user_agent(concat!("strata/", env!("CARGO_PKG_VERSION")))
                .tls_config(tls)
                .timeout_connect(Some(opts.timeout))
                // A registry that stops answering, or a body that stalls either way, fails
                // (and is retried) rather than hanging forever. The response to a large
                // upload may take a while (the registry moves the blob into place).
                .timeout_recv_response(Some(opts.timeout * 2))
                .timeout_per_read(Some(opts.timeout))
                .timeout_per_write(Some(opts.timeout))
                .max_idle_connections_per_host(16)
                .build()
                .into()
        };
        let agent = make_agent(scheme::tls_config(&opts.ca_files, &[])?);
        let mut registry_agents = HashMap::new();
        for (registry, files) in opts.registry_ca_files.iter().filter(|(_, f)| !f.is_empty()) {
            let tls = scheme::tls_config(&opts.ca_files, files)?;
            registry_agents.insert(registry.clone(), make_agent(tls));
        }
        let unverified_agent = make_agent(
            ureq::tls::TlsConfig::builder()
                .disable_verification(true)
                .build(),
        );
        Ok(Client {
            inner: Arc::new(Inner {
                agent,
                unverified_agent,
                registry_agents,
                schemes: Mutex::default(),
                opts,
                challenges: Mutex::default(),
                tokens: Mutex::default(),
                creds: Mutex::default(),
                stats: Mutex::default(),
                down_mirrors: Mutex::default(),
            }),
        })
    }

    pub fn stats(&self) -> Stats {
        self.inner.stats.lock().expect("stats lock").clone()
    }

    pub(crate) fn bump(&self, f: impl FnOnce(&mut Stats)) {
        f(&mut self.inner.stats.lock().expect("stats lock"));
    }

    pub(crate) fn repo_url(&self, r: &Reference, tail: &str) -> String {
        format!("{}/v2/{}/{tail}", self.base_url(&r.registry), r.repository)
    }

    /// `GET /v2/`: is the registry there, and what authentication does it want?
    pub fn ping(&self, registry: &str) -> Result<Option<Challenge>> {
        let url = format!("{}/v2/", self.base_url(registry));
        let resp = self
            .send_once(
                &Request {
                    method: Method::GET,
                    url,
                    what: registry,
                    op: "ping",
                    registry,
                    scopes: vec![],
                    headers: vec![],
                    body: Body::Empty,
                },
                None,
            )
            .map_err(mirror::untrusted)?;
        let challenge = challenge_of(&resp);
        match resp.status().as_u16() {
            200..=299 => Ok(None),
            401 => Ok(challenge),
            s => Err(status_error(registry, "ping", s, resp)),
        }
    }

    /// Checks this client's credentials for `registry` as `docker login` does: ping
    /// `/v2/`, then answer its challenge (basic auth, or a token from its token
    /// endpoint for no particular scope). A registry that asks for nothing accepts.
    /// Returns the refresh token (an identity token) a token service handed out.
    pub fn check_credentials(&self, registry: &str) -> Result<Option<String>> {
        let Some(challenge) = self.ping(registry)? else {
            return Ok(None);
        };
        self.inner
            .challenges
            .lock()
            .expect("challenge lock")
            .insert(registry.to_string(), Some(challenge.clone()));
        let req = Request {
            method: Method::GET,
            url: format!("{}/v2/", self.base_url(registry)),
            what: registry,
            op: LOGIN,
            registry,
            scopes: vec![],
            headers: vec![],
            body: Body::Empty,
        };
        let (auth, refresh) = match &challenge {
            Challenge::Bearer { realm, service, .. } => {
                let token = self.fetch_token(&req, realm, service.as_deref())?;
                (Some(format!("Bearer {}", token.value)), token.refresh)
            }
            Challenge::Basic { .. } => (self.authorization(&req)?, None),
        };
        let resp = self
            .send_once(&req, auth.as_deref())
            .map_err(mirror::untrusted)?;
        match resp.status().as_u16() {
            200..=299 => Ok(refresh),
            s => Err(status_error(registry, LOGIN, s, resp)),
        }
    }

    /// HEAD the manifest: its digest and media type without its bytes. None: no such
    /// tag or digest.
    pub fn head_manifest(&self, r: &Reference) -> Result<Option<ManifestHead>> {
        let what = r.to_string();
        let resp = self.send(Request {
            method: Method::HEAD,
            url: self.repo_url(r, &format!("manifests/{}", r.reference_str())),
            what: &what,
            op: "HEAD manifest",
            registry: &r.registry,
            scopes: vec![scope(r, Access::Pull)],
            headers: vec![("Accept", MANIFEST_ACCEPT.into())],
            body: Body::Empty,
        })?;
        match resp.status().as_u16() {
            200..=299 => Ok(Some(ManifestHead {
                media_type: header(&resp, "content-type").unwrap_or_default(),
                digest: header(&resp, "docker-content-digest").and_then(|d| d.parse().ok()),
                size: header(&resp, "content-length").and_then(|l| l.parse().ok()),
            })),
            404 => Ok(None),
            s => Err(status_error(&what, "HEAD manifest", s, resp)),
        }
    }

    /// GETs the manifest or index `r` names (its digest if pinned, else its tag). The
    /// bytes are kept as sent; their digest is checked against the pinned digest and
    /// against `Docker-Content-Digest`.
    pub fn get_manifest(&self, r: &Reference) -> Result<Manifest> {
        let what = r.to_string();
        let mut resp = self.send(Request {
            method: Method::GET,
            url: self.repo_url(r, &format!("manifests/{}", r.reference_str())),
            what: &what,
            op: "GET manifest",
            registry: &r.registry,
            scopes: vec![scope(r, Access::Pull)],
            headers: vec![("Accept", MANIFEST_ACCEPT.into())],
            body: Body::Empty,
        })?;
        let status = resp.status().as_u16();
        if !(200..300).contains(&status) {
            return Err(status_error(&what, "GET manifest", status, resp));
        }
        let header_digest: Option<Digest> =
            header(&resp, "docker-content-digest").and_then(|d| d.parse().ok());
        let content_type = header(&resp, "content-type");
        let bytes = resp
            .body_mut()
            .with_config()
            .limit(MANIFEST_LIMIT)
            .read_to_vec()
            .map_err(|source| RegistryError::Transport {
                what: what.clone(),
                op: "reading the manifest",
                registry: r.registry.clone(),
                source: Box::new(source),
            })?;
        let digest = strata_digest::sha256(&bytes);
        for expected in r.digest.iter().chain(header_digest.iter()) {
            if *expected != digest {
                return Err(RegistryError::DigestMismatch {
                    what,
                    expected: *expected,
                    actual: digest,
                    size: bytes.len() as u64,
                });
            }
        }
        let media_type = match content_type
            .as_deref()
            .map(|c| c.split(';').next().unwrap_or(c).trim())
        {
            Some(c) if media_types::is_index(c) || media_types::is_manifest(c) => c.to_string(),
            _ => {
                #[derive(serde::Deserialize)]
                #[serde(rename_all = "camelCase")]
                struct Probe {
                    media_type: Option<String>,
                    manifests: Option<serde_json::Value>,
                }
                let probe: Probe =
                    serde_json::from_slice(&bytes).map_err(|e| RegistryError::Protocol {
                        what: what.clone(),
                        message: format!("the manifest is not JSON: {e}"),
                    })?;
                match probe.media_type {
                    Some(m) => m,
                    None if probe.manifests.is_some() => media_types::OCI_INDEX.into(),
                    None => media_types::OCI_MANIFEST.into(),
                }
            }
        };
        Ok(Manifest {
            media_type,
            digest,
            bytes,
        })
    }
}

/// The operation of [`Client::check_credentials`]'s requests.
const LOGIN: &str = "login";

/// `repository:NAME:pull` or `repository:NAME:pull,push`.
pub fn scope(r: &Reference, access: Access) -> String {
    match access {
        Access::Pull => format!("repository:{}:pull", r.repository),
        Access::Push => format!("repository:{}:pull,push", r.repository),
    }
}

fn query_escape(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for b in s.bytes() {
        if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.' | b'~' | b':' | b'/') {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

fn header(resp: &Response, name: &str) -> Option<String> {
    resp.headers()
        .get(name)
        .and_then(|v| v.to_str().ok())
        .map(str::to_string)
}

fn challenge_of(resp: &Response) -> Option<Challenge> {
    resp.headers()
        .get_all("www-authenticate")
        .iter()
        .filter_map(|v| v.to_str().ok())
        .filter_map(parse_challenge)
        // Prefer bearer when both are offered.
        .max_by_key(|c| matches!(c, Challenge::Bearer { .. }))
}

/// Turns an unexpected status into an error, with the registry's error message
/// (`{"errors":[{"code":…,"message":…}]}`) when it sent one.
fn status_error(what: &str, op: &'static str, status: u16, mut resp: Response) -> RegistryError {
    let retry_after = header(&resp, "retry-after")
        .and_then(|v| v.trim().parse::<u64>().ok())
        .map(Duration::from_secs);
    let body = resp
        .body_mut()
        .with_config()
        .limit(64 << 10)
        .read_to_vec()
        .unwrap_or_default();
    let message = registry_message(&body);
    match status {
        404 => RegistryError::NotFound {
            what: what.into(),
            status,
        },
        401 | 403 => RegistryError::Denied {
            what: what.into(),
            status,
            message,
        },
        _ => RegistryError::Status {
            what: what.into(),
            op,
            status,
            message,
            retry_after,
        },
    }
}

fn registry_message(body: &[u8]) -> String {
    #[derive(serde::Deserialize)]
    struct Errors {
        errors: Vec<ErrorItem>,
    }
    #[derive(serde::Deserialize)]
    struct ErrorItem {
        #[serde(default)]
        code: String,
        #[serde(default)]
        message: String,
    }
    match serde_json::from_slice::<Errors>(body) {
        Ok(e) => e
            .errors
            .iter()
            .map(|i| match (i.code.is_empty(), i.message.is_empty()) {
                (false, false) => format!("{}: {}", i.code, i.message),
                (false, true) => i.code.clone(),
                _ => i.message.clone(),
            })
            .collect::<Vec<_>>()
            .join("; "),
        Err(_) => String::new(),
    }
}

fn is_transient(e: &RegistryError) -> bool {
    match e {
        RegistryError::Stalled { .. } => true,
        RegistryError::Transport { source, .. } => matches!(
            **source,
            ureq::Error::Io(_)
                | ureq::Error::Timeout(_)
                | ureq::Error::ConnectionFailed
                | ureq::Error::Protocol(_)
        ),
        RegistryError::Status { status, .. } => *status == 429 || *status >= 500,
        _ => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn loopback_registries() {
        for r in [
            "localhost",
            "localhost:5000",
            "127.0.0.1:5000",
            "127.1.2.3",
            "[::1]:5000",
            "::1",
        ] {
            assert!(is_loopback(r), "{r}");
        }
        for r in [
            "docker.io",
            "10.0.0.1:5000",
            "example.com:443",
            "[::2]:80",
            "localhost.example.com",
        ] {
            assert!(!is_loopback(r), "{r}");
        }
        let c = Client::new(ClientOptions {
            insecure: vec!["127.0.0.1:1".into()],
            secure: vec!["127.0.0.1:5443".into()],
            ..Default::default()
        })
        .unwrap();
        assert_eq!(c.base_url("127.0.0.1:5000"), "http://127.0.0.1:5000");
        // Insecure and not speaking TLS (nothing there): plain HTTP.
        assert_eq!(c.base_url("127.0.0.1:1"), "http://127.0.0.1:1");
        assert_eq!(c.base_url("127.0.0.1:5443"), "https://127.0.0.1:5443");
        assert_eq!(c.base_url("ghcr.io"), "https://ghcr.io");
        assert_eq!(c.base_url("docker.io"), "https://registry-1.docker.io");
    }

    #[test]
    fn scopes_and_messages() {
        let r = Reference::parse("127.0.0.1:5000/team/app:v1").unwrap();
        assert_eq!(scope(&r, Access::Pull), "repository:team/app:pull");
        assert_eq!(scope(&r, Access::Push), "repository:team/app:pull,push");
        assert_eq!(
            registry_message(
                br#"{"errors":[{"code":"MANIFEST_UNKNOWN","message":"manifest unknown"}]}"#
            ),
            "MANIFEST_UNKNOWN: manifest unknown"
        );
        assert_eq!(registry_message(b"<html>"), "");
        assert_eq!(
            query_escape("repository:a/b:pull,push"),
            "repository:a/b:pull%2Cpush"
        );
    }
}
