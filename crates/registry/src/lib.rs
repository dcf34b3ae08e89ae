//! An OCI distribution client: resolve references to manifests, stream blobs in and
//! out with digest and size checks, push blobs (with cross-repository mounts) and
//! manifests. Authentication follows the registry's `WWW-Authenticate` challenge:
//! anonymous, basic, or bearer tokens from the token endpoint, cached per scope, with
//! credentials from Docker's `config.json`. Transient failures (connection errors,
//! 5xx, 429 with `Retry-After`) are retried with bounded exponential backoff.
//!
//! Loopback registries (127.0.0.0/8, `localhost`, `::1`) speak plain HTTP, as Docker
//! allows; every other registry HTTPS unless listed in [`ClientOptions::insecure`].
//!
//! Blocking I/O (ureq): callers run it on worker threads. [`Client`] is cheap to clone
//! and shares its connection pool and token cache. Depends only on `strata-digest`
//! and `strata-oci`; it knows nothing of the store.

mod auth;
mod error;

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
pub use error::{RegistryError, Result};

/// Manifests (and indexes) larger than this are refused, as containerd does.
pub const MANIFEST_LIMIT: u64 = 4 << 20;

/// What `GET /v2/<name>/manifests/<ref>` accepts.
pub const MANIFEST_ACCEPT: &str = "application/vnd.oci.image.index.v1+json, application/vnd.docker.distribution.manifest.list.v2+json, application/vnd.oci.image.manifest.v1+json, application/vnd.docker.distribution.manifest.v2+json";

#[derive(Debug, Clone)]
pub struct ClientOptions {
    pub credentials: CredentialSource,
    /// Registries (host[:port]) spoken to over plain HTTP besides loopback ones.
    pub insecure: Vec<String>,
    /// PEM files of extra CAs trusted besides the bundled webpki roots.
    pub ca_files: Vec<std::path::PathBuf>,
    /// Attempts per request (at least 1).
    pub attempts: u32,
    /// First backoff; doubles per attempt.
    pub backoff: Duration,
    /// Longest wait honoured for `Retry-After`.
    pub max_backoff: Duration,
}

impl Default for ClientOptions {
    fn default() -> Self {
        ClientOptions {
            credentials: CredentialSource::DockerConfig,
            insecure: Vec::new(),
            ca_files: Vec::new(),
            attempts: 5,
            backoff: Duration::from_millis(250),
            max_backoff: Duration::from_secs(30),
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
    opts: ClientOptions,
    /// Per registry: the challenge it answered with (None: no auth needed).
    challenges: Mutex<HashMap<String, Option<Challenge>>>,
    /// (registry, scope) → token.
    tokens: Mutex<HashMap<(String, String), auth::Token>>,
    /// Per registry: credentials once looked up.
    creds: Mutex<HashMap<String, Option<Credentials>>>,
    stats: Mutex<Stats>,
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
        let mut tls = ureq::tls::TlsConfig::builder();
        if !opts.ca_files.is_empty() {
            let mut certs: Vec<ureq::tls::Certificate<'static>> = Vec::new();
            for f in &opts.ca_files {
                let what = f.display().to_string();
                let pem = std::fs::read(f).map_err(|source| RegistryError::Io {
                    what: what.clone(),
                    context: "reading the CA file",
                    source,
                })?;
                for item in ureq::tls::parse_pem(&pem) {
                    match item {
                        Ok(ureq::tls::PemItem::Certificate(c)) => certs.push(c),
                        Ok(_) => {}
                        Err(e) => {
                            return Err(RegistryError::Protocol {
                                what,
                                message: format!("invalid PEM: {e}"),
                            })
                        }
                    }
                }
            }
            // The given CAs join the system's trust store (ureq's rustls takes one root
            // list: bundled webpki roots or ours).
            certs.extend(system_roots());
            tls = tls.root_certs(ureq::tls::RootCerts::new_with_certs(&certs));
        }
        let agent: ureq::Agent = ureq::Agent::config_builder()
            .http_status_as_error(false)
            .user_agent(concat!("strata/", env!("CARGO_PKG_VERSION")))
            .tls_config(tls.build())
            .timeout_connect(Some(Duration::from_secs(30)))
            .timeout_recv_response(Some(Duration::from_secs(120)))
            // A stalled body fails (and is retried) rather than hanging forever.
            .timeout_per_read(Some(Duration::from_secs(60)))
            .max_idle_connections_per_host(16)
            .build()
            .into();
        Ok(Client {
            inner: Arc::new(Inner {
                agent,
                opts,
                challenges: Mutex::default(),
                tokens: Mutex::default(),
                creds: Mutex::default(),
                stats: Mutex::default(),
            }),
        })
    }

    pub fn stats(&self) -> Stats {
        self.inner.stats.lock().expect("stats lock").clone()
    }

    fn bump(&self, f: impl FnOnce(&mut Stats)) {
        f(&mut self.inner.stats.lock().expect("stats lock"));
    }

    /// `http://` or `https://` + host for this registry.
    pub fn base_url(&self, registry: &str) -> String {
        let host = if registry == "docker.io" {
            "registry-1.docker.io"
        } else {
            registry
        };
        let plain = is_loopback(registry) || self.inner.opts.insecure.iter().any(|r| r == registry);
        format!("{}://{host}", if plain { "http" } else { "https" })
    }

    fn repo_url(&self, r: &Reference, tail: &str) -> String {
        format!("{}/v2/{}/{tail}", self.base_url(&r.registry), r.repository)
    }

    /// `GET /v2/`: is the registry there, and what authentication does it want?
    pub fn ping(&self, registry: &str) -> Result<Option<Challenge>> {
        let url = format!("{}/v2/", self.base_url(registry));
        let resp = self.send_once(
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
        )?;
        let challenge = challenge_of(&resp);
        match resp.status().as_u16() {
            200..=299 => Ok(None),
            401 => Ok(challenge),
            s => Err(status_error(registry, "ping", s, resp)),
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

    /// Streams blob `digest` of `repo` into a writer from `make_writer` (called again
    /// for each retry, so a half-written attempt is never mixed with the next). The
    /// bytes are checked against `digest` and `size` (when given) as they pass; on a
    /// mismatch the writer is dropped and the error names both digests.
    pub fn get_blob<W: Write>(
        &self,
        repo: &Reference,
        digest: &Digest,
        size: Option<u64>,
        mut make_writer: impl FnMut() -> io::Result<W>,
    ) -> Result<W> {
        let what = format!("{}@{digest}", repo.name());
        let mut attempt = 1;
        loop {
            match self.get_blob_once(repo, &what, digest, size, &mut make_writer) {
                Ok(w) => return Ok(w),
                Err(e) if attempt < self.inner.opts.attempts && is_transient(&e) => {
                    self.bump(|s| s.retries += 1);
                    std::thread::sleep(self.backoff(attempt, None));
                    attempt += 1;
                }
                Err(e) => return Err(e),
            }
        }
    }

    fn get_blob_once<W: Write>(
        &self,
        repo: &Reference,
        what: &str,
        digest: &Digest,
        size: Option<u64>,
        make_writer: &mut impl FnMut() -> io::Result<W>,
    ) -> Result<W> {
        let mut resp = self.send(Request {
            method: Method::GET,
            url: self.repo_url(repo, &format!("blobs/{digest}")),
            what,
            op: "GET blob",
            registry: &repo.registry,
            scopes: vec![scope(repo, Access::Pull)],
            headers: vec![],
            body: Body::Empty,
        })?;
        let status = resp.status().as_u16();
        if !(200..300).contains(&status) {
            return Err(status_error(what, "GET blob", status, resp));
        }
        let writer = make_writer().map_err(|source| RegistryError::Io {
            what: what.into(),
            context: "opening the destination",
            source,
        })?;
        let mut hashing = HashingWriter::new(writer);
        let limit = size.map_or(u64::MAX, |s| s + 1);
        let mut reader = resp
            .body_mut()
            .with_config()
            .limit(u64::MAX)
            .reader()
            .take(limit);
        let mut buf = vec![0u8; 256 << 10];
        loop {
            let n = match reader.read(&mut buf) {
                Ok(0) => break,
                Ok(n) => n,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(e) => {
                    return Err(RegistryError::Transport {
                        what: what.into(),
                        op: "reading the blob",
                        registry: repo.registry.clone(),
                        source: Box::new(ureq::Error::Io(e)),
                    })
                }
            };
            hashing
                .write_all(&buf[..n])
                .map_err(|source| RegistryError::Io {
                    what: what.into(),
                    context: "writing the blob",
                    source,
                })?;
            self.bump(|s| s.bytes_downloaded += n as u64);
        }
        let (actual, got, writer) = hashing.finish();
        if let Some(expected) = size {
            if got != expected {
                // Short: the connection dropped (retry); long: the registry lies.
                if got < expected {
                    return Err(RegistryError::Transport {
                        what: what.into(),
                        op: "reading the blob",
                        registry: repo.registry.clone(),
                        source: Box::new(ureq::Error::Io(io::Error::new(
                            io::ErrorKind::UnexpectedEof,
                            format!("the body ended after {got} of {expected} bytes"),
                        ))),
                    });
                }
                return Err(RegistryError::SizeMismatch {
                    what: what.into(),
                    expected,
                    actual: got,
                });
            }
        }
        if actual != *digest {
            return Err(RegistryError::DigestMismatch {
                what: what.into(),
                expected: *digest,
                actual,
                size: got,
            });
        }
        Ok(writer)
    }

    /// HEAD a blob: its size if the repository has it.
    pub fn head_blob(
        &self,
        repo: &Reference,
        digest: &Digest,
        access: Access,
    ) -> Result<Option<u64>> {
        let what = format!("{}@{digest}", repo.name());
        let resp = self.send(Request {
            method: Method::HEAD,
            url: self.repo_url(repo, &format!("blobs/{digest}")),
            what: &what,
            op: "HEAD blob",
            registry: &repo.registry,
            scopes: vec![scope(repo, access)],
            headers: vec![],
            body: Body::Empty,
        })?;
        match resp.status().as_u16() {
            200..=299 => Ok(Some(
                header(&resp, "content-length")
                    .and_then(|l| l.parse().ok())
                    .unwrap_or(0),
            )),
            404 => Ok(None),
            s => Err(status_error(&what, "HEAD blob", s, resp)),
        }
    }

    /// Asks the registry to mount `digest` from repository `from` (same registry) into
    /// `repo`. True: mounted; false: the registry declined (the caller uploads).
    pub fn mount_blob(&self, repo: &Reference, digest: &Digest, from: &str) -> Result<bool> {
        let what = format!("{}@{digest}", repo.name());
        let from_ref = Reference {
            registry: repo.registry.clone(),
            repository: from.to_string(),
            tag: None,
            digest: None,
        };
        let resp = self.send(Request {
            method: Method::POST,
            url: format!(
                "{}?mount={digest}&from={from}",
                self.repo_url(repo, "blobs/uploads/")
            ),
            what: &what,
            op: "mount blob",
            registry: &repo.registry,
            scopes: vec![scope(repo, Access::Push), scope(&from_ref, Access::Pull)],
            headers: vec![("Content-Length", "0".into())],
            body: Body::Empty,
        })?;
        match resp.status().as_u16() {
            201 => {
                self.bump(|s| s.blobs_mounted += 1);
                Ok(true)
            }
            // An upload session was opened instead; let it expire (or cancel it).
            202 => {
                if let Some(loc) = header(&resp, "location") {
                    let url = self.resolve_location(repo, &loc);
                    let _ = self.send(Request {
                        method: Method::DELETE,
                        url,
                        what: &what,
                        op: "cancel upload",
                        registry: &repo.registry,
                        scopes: vec![scope(repo, Access::Push)],
                        headers: vec![],
                        body: Body::Empty,
                    });
                }
                Ok(false)
            }
            s => Err(status_error(&what, "mount blob", s, resp)),
        }
    }

    /// Uploads a blob: `POST …/blobs/uploads/` then one monolithic `PUT ?digest=`,
    /// streaming from a reader that `open` creates (again for each retry). The
    /// registry checks the digest; so do we, on the way out, before it is committed.
    pub fn push_blob(
        &self,
        repo: &Reference,
        digest: &Digest,
        size: u64,
        open: &dyn Fn() -> io::Result<Box<dyn Read + Send>>,
    ) -> Result<()> {
        let what = format!("{}@{digest}", repo.name());
        let mut attempt = 1;
        loop {
            match self.push_blob_once(repo, &what, digest, size, open) {
                Ok(()) => {
                    self.bump(|s| {
                        s.blobs_uploaded += 1;
                        s.bytes_uploaded += size;
                    });
                    return Ok(());
                }
                Err(e) if attempt < self.inner.opts.attempts && is_transient(&e) => {
                    self.bump(|s| s.retries += 1);
                    std::thread::sleep(self.backoff(attempt, None));
                    attempt += 1;
                }
                Err(e) => return Err(e),
            }
        }
    }

    fn push_blob_once(
        &self,
        repo: &Reference,
        what: &str,
        digest: &Digest,
        size: u64,
        open: &dyn Fn() -> io::Result<Box<dyn Read + Send>>,
    ) -> Result<()> {
        let resp = self.send(Request {
            method: Method::POST,
            url: self.repo_url(repo, "blobs/uploads/"),
            what,
            op: "start upload",
            registry: &repo.registry,
            scopes: vec![scope(repo, Access::Push)],
            headers: vec![("Content-Length", "0".into())],
            body: Body::Empty,
        })?;
        let status = resp.status().as_u16();
        if status != 202 {
            return Err(status_error(what, "start upload", status, resp));
        }
        let loc = header(&resp, "location").ok_or_else(|| RegistryError::Protocol {
            what: what.into(),
            message: "the registry opened an upload without a Location".into(),
        })?;
        let base = self.resolve_location(repo, &loc);
        let sep = if base.contains('?') { '&' } else { '?' };
        let url = format!("{base}{sep}digest={digest}");
        let resp = self.send(Request {
            method: Method::PUT,
            url,
            what,
            op: "upload blob",
            registry: &repo.registry,
            scopes: vec![scope(repo, Access::Push)],
            headers: vec![("Content-Type", "application/octet-stream".into())],
            body: Body::Stream { open, len: size },
        })?;
        match resp.status().as_u16() {
            201 | 204 => Ok(()),
            s => Err(status_error(what, "upload blob", s, resp)),
        }
    }

    /// PUT a manifest (or index) under `reference` (a tag or its digest). Returns
    /// the digest of the bytes.
    pub fn put_manifest(
        &self,
        repo: &Reference,
        reference: &str,
        media_type: &str,
        bytes: &[u8],
    ) -> Result<Digest> {
        let what = format!("{}:{reference}", repo.name());
        let resp = self.send(Request {
            method: Method::PUT,
            url: self.repo_url(repo, &format!("manifests/{reference}")),
            what: &what,
            op: "PUT manifest",
            registry: &repo.registry,
            scopes: vec![scope(repo, Access::Push)],
            headers: vec![("Content-Type", media_type.into())],
            body: Body::Bytes(bytes),
        })?;
        let digest = strata_digest::sha256(bytes);
        match resp.status().as_u16() {
            200..=299 => {
                if let Some(d) =
                    header(&resp, "docker-content-digest").and_then(|d| d.parse::<Digest>().ok())
                {
                    if d != digest {
                        return Err(RegistryError::DigestMismatch {
                            what,
                            expected: digest,
                            actual: d,
                            size: bytes.len() as u64,
                        });
                    }
                }
                Ok(digest)
            }
            s => Err(status_error(&what, "PUT manifest", s, resp)),
        }
    }

    fn resolve_location(&self, repo: &Reference, loc: &str) -> String {
        if loc.starts_with("http://") || loc.starts_with("https://") {
            loc.to_string()
        } else if loc.starts_with('/') {
            format!("{}{loc}", self.base_url(&repo.registry))
        } else {
            format!("{}/{loc}", self.base_url(&repo.registry))
        }
    }

    fn backoff(&self, attempt: u32, retry_after: Option<Duration>) -> Duration {
        let max = self.inner.opts.max_backoff;
        match retry_after {
            Some(d) => d.min(max),
            None => (self.inner.opts.backoff * 2u32.saturating_pow(attempt - 1)).min(max),
        }
    }

    /// Sends with authentication and retries: transient failures (transport errors,
    /// 5xx, 429) are retried with backoff; a 401 triggers the challenge's flow once.
    fn send(&self, req: Request<'_>) -> Result<Response> {
        let mut attempt = 1;
        let mut authed_after_401 = false;
        loop {
            let auth = self.authorization(&req)?;
            let result = self.send_once(&req, auth.as_deref());
            let (retry_after, err) = match result {
                Ok(resp) => {
                    let status = resp.status().as_u16();
                    if status == 401 && !authed_after_401 {
                        if let Some(ch) = challenge_of(&resp) {
                            // Learn the challenge, drop stale tokens, try again.
                            self.inner
                                .challenges
                                .lock()
                                .expect("challenge lock")
                                .insert(req.registry.to_string(), Some(ch));
                            let key = (req.registry.to_string(), req.scopes.join(" "));
                            self.inner.tokens.lock().expect("token lock").remove(&key);
                            authed_after_401 = true;
                            continue;
                        }
                    }
                    if status == 429 || (500..600).contains(&status) {
                        let ra = header(&resp, "retry-after")
                            .and_then(|v| v.trim().parse::<u64>().ok())
                            .map(Duration::from_secs);
                        (ra, status_error(req.what, req.op, status, resp))
                    } else {
                        return Ok(resp);
                    }
                }
                Err(e) => (None, e),
            };
            if attempt >= self.inner.opts.attempts || !is_transient(&err) {
                return Err(err);
            }
            self.bump(|s| s.retries += 1);
            std::thread::sleep(self.backoff(attempt, retry_after));
            attempt += 1;
        }
    }

    fn send_once(&self, req: &Request<'_>, auth: Option<&str>) -> Result<Response> {
        self.bump(|s| s.requests += 1);
        let mut b = http::Request::builder()
            .method(req.method.clone())
            .uri(&req.url);
        for (k, v) in &req.headers {
            b = b.header(*k, v);
        }
        if let Some(a) = auth {
            b = b.header("Authorization", a);
        }
        let transport = |source: ureq::Error| RegistryError::Transport {
            what: req.what.to_string(),
            op: req.op,
            registry: req.registry.to_string(),
            source: Box::new(source),
        };
        let build_err = |e: http::Error| RegistryError::Protocol {
            what: req.what.to_string(),
            message: format!("bad request for {}: {e}", req.op),
        };
        let agent = &self.inner.agent;
        match &req.body {
            Body::Empty => agent.run(b.body(()).map_err(build_err)?).map_err(transport),
            Body::Bytes(bytes) => agent
                .run(b.body(*bytes).map_err(build_err)?)
                .map_err(transport),
            Body::Stream { open, len } => {
                let mut reader = open().map_err(|source| RegistryError::Io {
                    what: req.what.to_string(),
                    context: "opening the blob",
                    source,
                })?;
                let body = ureq::SendBody::from_reader(&mut reader);
                let b = b.header("Content-Length", len.to_string());
                agent
                    .run(b.body(body).map_err(build_err)?)
                    .map_err(transport)
            }
        }
    }

    fn credentials(&self, registry: &str, what: &str) -> Result<Option<Credentials>> {
        let mut cache = self.inner.creds.lock().expect("creds lock");
        if let Some(c) = cache.get(registry) {
            return Ok(c.clone());
        }
        let c = self
            .inner
            .opts
            .credentials
            .lookup(registry)
            .map_err(|message| RegistryError::Auth {
                what: what.to_string(),
                message,
            })?;
        cache.insert(registry.to_string(), c.clone());
        Ok(c)
    }

    /// The `Authorization` header for this request, fetching a token if the registry's
    /// challenge asks for one and none is cached for these scopes.
    fn authorization(&self, req: &Request<'_>) -> Result<Option<String>> {
        let challenge = self
            .inner
            .challenges
            .lock()
            .expect("challenge lock")
            .get(req.registry)
            .cloned()
            .flatten();
        let Some(challenge) = challenge else {
            return Ok(None);
        };
        match challenge {
            Challenge::Basic { .. } => {
                let creds = self.credentials(req.registry, req.what)?;
                match creds.as_ref().and_then(Credentials::basic_header) {
                    Some(h) => Ok(Some(h)),
                    None => Err(RegistryError::Auth {
                        what: req.what.to_string(),
                        message: format!(
                            "{} asks for a user name and password, and none is configured for it",
                            req.registry
                        ),
                    }),
                }
            }
            Challenge::Bearer { realm, service, .. } => {
                let scopes = req.scopes.join(" ");
                let key = (req.registry.to_string(), scopes);
                {
                    let tokens = self.inner.tokens.lock().expect("token lock");
                    let now = Instant::now();
                    // A push token covers pulls of the same repository.
                    let wider = key.1.replace(":pull", ":pull,push");
                    for k in [&key, &(key.0.clone(), wider)] {
                        if let Some(t) = tokens.get(k).filter(|t| t.expires > now) {
                            return Ok(Some(format!("Bearer {}", t.value)));
                        }
                    }
                }
                let token = self.fetch_token(req, &realm, service.as_deref())?;
                let value = format!("Bearer {}", token.value);
                self.inner
                    .tokens
                    .lock()
                    .expect("token lock")
                    .insert(key, token);
                Ok(Some(value))
            }
        }
    }

    fn fetch_token(
        &self,
        req: &Request<'_>,
        realm: &str,
        service: Option<&str>,
    ) -> Result<auth::Token> {
        let creds = self.credentials(req.registry, req.what)?;
        let mut url = realm.to_string();
        let mut sep = if url.contains('?') { '&' } else { '?' };
        let mut push = |k: &str, v: &str| {
            url.push(sep);
            url.push_str(k);
            url.push('=');
            url.push_str(&query_escape(v));
            sep = '&';
        };
        if let Some(s) = service {
            push("service", s);
        }
        for s in &req.scopes {
            push("scope", s);
        }
        let mut b = http::Request::builder().method(Method::GET).uri(&url);
        match &creds {
            Some(c @ Credentials::Basic { .. }) => {
                b = b.header("Authorization", c.basic_header().expect("basic"));
            }
            // OAuth2 refresh tokens (POST grant_type=refresh_token) are not spoken yet;
            // fall back to an anonymous token.
            Some(Credentials::IdentityToken(_)) | None => {}
        }
        let what = req.what.to_string();
        let mut attempt = 1;
        loop {
            self.bump(|s| s.requests += 1);
            let request = b.body(()).map_err(|e| RegistryError::Protocol {
                what: what.clone(),
                message: format!("bad token request: {e}"),
            })?;
            let result = self.inner.agent.run(request);
            b = http::Request::builder().method(Method::GET).uri(&url);
            if let Some(h) = creds.as_ref().and_then(Credentials::basic_header) {
                b = b.header("Authorization", h);
            }
            let err = match result {
                Ok(mut resp) => {
                    let status = resp.status().as_u16();
                    if (200..300).contains(&status) {
                        let body = resp
                            .body_mut()
                            .with_config()
                            .limit(1 << 20)
                            .read_to_vec()
                            .map_err(|source| RegistryError::Transport {
                                what: what.clone(),
                                op: "reading the token",
                                registry: req.registry.to_string(),
                                source: Box::new(source),
                            })?;
                        let parsed: auth::TokenResponse =
                            serde_json::from_slice(&body).map_err(|e| RegistryError::Auth {
                                what: what.clone(),
                                message: format!("the token endpoint sent invalid JSON: {e}"),
                            })?;
                        return parsed.into_token().ok_or_else(|| RegistryError::Auth {
                            what: what.clone(),
                            message: "the token endpoint sent no token".into(),
                        });
                    }
                    if status == 401 || status == 403 {
                        return Err(RegistryError::Denied {
                            what,
                            status,
                            message: "the token endpoint refused the credentials".into(),
                        });
                    }
                    status_error(&what, "token request", status, resp)
                }
                Err(source) => RegistryError::Transport {
                    what: what.clone(),
                    op: "token request",
                    registry: req.registry.to_string(),
                    source: Box::new(source),
                },
            };
            if attempt >= self.inner.opts.attempts || !is_transient(&err) {
                return Err(err);
            }
            self.bump(|s| s.retries += 1);
            std::thread::sleep(self.backoff(attempt, None));
            attempt += 1;
        }
    }
}

/// The system's CA bundle (Debian's path, then Fedora's), when it has one.
fn system_roots() -> Vec<ureq::tls::Certificate<'static>> {
    for path in [
        "/etc/ssl/certs/ca-certificates.crt",
        "/etc/pki/tls/certs/ca-bundle.crt",
    ] {
        if let Ok(pem) = std::fs::read(path) {
            return ureq::tls::parse_pem(&pem)
                .filter_map(|item| match item {
                    Ok(ureq::tls::PemItem::Certificate(c)) => Some(c),
                    _ => None,
                })
                .collect();
        }
    }
    Vec::new()
}

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
            insecure: vec!["reg.lan:5000".into()],
            ..Default::default()
        })
        .unwrap();
        assert_eq!(c.base_url("127.0.0.1:5000"), "http://127.0.0.1:5000");
        assert_eq!(c.base_url("reg.lan:5000"), "http://reg.lan:5000");
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
