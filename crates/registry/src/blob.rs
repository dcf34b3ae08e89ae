//! The blob and manifest calls of the distribution API.

use super::*;

impl Client {
    /// A transport failure; a timeout (nothing moved for `timeout`) says so.
    pub(crate) fn transport_error(
        &self,
        what: &str,
        op: &'static str,
        registry: &str,
        source: ureq::Error,
    ) -> RegistryError {
        let timed_out = match &source {
            ureq::Error::Timeout(_) => true,
            ureq::Error::Io(e) => e.kind() == io::ErrorKind::TimedOut,
            _ => false,
        };
        if timed_out {
            return RegistryError::Stalled {
                what: what.into(),
                op,
                registry: registry.into(),
                timeout: self.inner.opts.timeout,
            };
        }
        RegistryError::Transport {
            what: what.into(),
            op,
            registry: registry.into(),
            source: Box::new(source),
        }
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
        make_writer: impl FnMut() -> io::Result<W>,
    ) -> Result<W> {
        self.get_blob_checked(repo, digest, size, true, make_writer)
    }

    /// [`Client::get_blob`] for a writer that hashes what it receives and checks the
    /// digest itself (the local store's blob writer does, when it commits): the bytes
    /// are counted against `size` here, not hashed a second time.
    pub fn get_blob_hashed_by_writer<W: Write>(
        &self,
        repo: &Reference,
        digest: &Digest,
        size: u64,
        make_writer: impl FnMut() -> io::Result<W>,
    ) -> Result<W> {
        self.get_blob_checked(repo, digest, Some(size), false, make_writer)
    }

    fn get_blob_checked<W: Write>(
        &self,
        repo: &Reference,
        digest: &Digest,
        size: Option<u64>,
        hash: bool,
        mut make_writer: impl FnMut() -> io::Result<W>,
    ) -> Result<W> {
        let what = format!("{}@{digest}", repo.name());
        let mut attempt = 1;
        loop {
            match self.get_blob_once(repo, &what, digest, size, hash, &mut make_writer) {
                Ok(w) => return Ok(w),
                // The request itself was retried by `send` already; the body's
                // failures (a reset, a stall, a short body) are retried here.
                Err(e) if e.retried => return Err(e.error),
                Err(Failed { error: e, .. })
                    if attempt < self.inner.opts.attempts && is_transient(&e) =>
                {
                    self.bump(|s| s.retries += 1);
                    std::thread::sleep(self.backoff(attempt, e.retry_after()));
                    attempt += 1;
                }
                Err(e) => return Err(e.error),
            }
        }
    }

    pub(crate) fn get_blob_once<W: Write>(
        &self,
        repo: &Reference,
        what: &str,
        digest: &Digest,
        size: Option<u64>,
        hash: bool,
        make_writer: &mut impl FnMut() -> io::Result<W>,
    ) -> Result<W, Failed> {
        let mut resp = self
            .send(Request {
                method: Method::GET,
                url: self.repo_url(repo, &format!("blobs/{digest}")),
                what,
                op: "GET blob",
                registry: &repo.registry,
                scopes: vec![scope(repo, Access::Pull)],
                headers: vec![],
                body: Body::Empty,
            })
            .map_err(Failed::retried)?;
        let status = resp.status().as_u16();
        if !(200..300).contains(&status) {
            return Err(Failed::retried(status_error(
                what, "GET blob", status, resp,
            )));
        }
        let writer = make_writer().map_err(|source| RegistryError::Io {
            what: what.into(),
            context: "opening the destination",
            source,
        })?;
        let mut hashing = Destination::new(writer, hash);
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
                    return Err(self
                        .transport_error(
                            what,
                            "reading the blob",
                            &repo.registry,
                            ureq::Error::Io(e),
                        )
                        .into())
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
                    }
                    .into());
                }
                return Err(RegistryError::SizeMismatch {
                    what: what.into(),
                    expected,
                    actual: got,
                }
                .into());
            }
        }
        if let Some(actual) = actual.filter(|a| a != digest) {
            return Err(RegistryError::DigestMismatch {
                what: what.into(),
                expected: *digest,
                actual,
                size: got,
            }
            .into());
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
    /// When the registry keeps refusing the monolithic upload (an HTTP error after
    /// the retries: a proxy's 413, …), it is tried once more in chunks
    /// ([`DEFAULT_CHUNK`]).
    pub fn push_blob(
        &self,
        repo: &Reference,
        digest: &Digest,
        size: u64,
        open: &dyn Fn() -> io::Result<Box<dyn Read + Send>>,
    ) -> Result<()> {
        match self.push_blob_monolithic(repo, digest, size, open) {
            Err(RegistryError::Status { .. }) if size > 0 => {
                self.push_blob_chunked(repo, digest, size, open, DEFAULT_CHUNK)
            }
            other => other,
        }
    }

    fn push_blob_monolithic(
        &self,
        repo: &Reference,
        digest: &Digest,
        size: u64,
        open: &dyn Fn() -> io::Result<Box<dyn Read + Send>>,
    ) -> Result<()> {
        self.upload_with_retries(repo, digest, size, &|what| {
            self.push_blob_once(repo, what, digest, size, open)
        })
    }

    /// Runs whole upload attempts (each on a new session) until one succeeds. After a
    /// lost session (404) or a transient failure the blob may have been committed all
    /// the same (only the answer was lost): a HEAD says, else the upload starts over.
    pub(crate) fn upload_with_retries(
        &self,
        repo: &Reference,
        digest: &Digest,
        size: u64,
        attempt_once: &dyn Fn(&str) -> Result<(), Failed>,
    ) -> Result<()> {
        let what = format!("{}@{digest}", repo.name());
        let mut attempt = 1;
        loop {
            let e = match attempt_once(&what) {
                Ok(()) => Ok(()),
                // Opening the session was retried by `send` already.
                Err(f) if f.retried => return Err(f.error),
                Err(f) => Err(f.error),
            };
            match e {
                Ok(()) => {
                    self.bump(|s| {
                        s.blobs_uploaded += 1;
                        s.bytes_uploaded += size;
                    });
                    return Ok(());
                }
                Err(e)
                    if attempt < self.inner.opts.attempts
                        && (is_transient(&e) || matches!(e, RegistryError::NotFound { .. })) =>
                {
                    self.bump(|s| s.retries += 1);
                    std::thread::sleep(self.backoff(attempt, e.retry_after()));
                    attempt += 1;
                    if self.head_blob(repo, digest, Access::Push)? == Some(size) {
                        return Ok(());
                    }
                }
                Err(e) => return Err(e),
            }
        }
    }

    /// `POST …/blobs/uploads/`: the URL of a new upload session.
    pub(crate) fn start_upload(&self, repo: &Reference, what: &str) -> Result<String> {
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
        self.location(repo, what, &resp)
    }

    /// The `Location` of an upload response, as an absolute URL.
    pub(crate) fn location(&self, repo: &Reference, what: &str, resp: &Response) -> Result<String> {
        let loc = header(resp, "location").ok_or_else(|| RegistryError::Protocol {
            what: what.into(),
            message: "the registry answered an upload without a Location".into(),
        })?;
        Ok(self.resolve_location(repo, &loc))
    }

    pub(crate) fn push_blob_once(
        &self,
        repo: &Reference,
        what: &str,
        digest: &Digest,
        size: u64,
        open: &dyn Fn() -> io::Result<Box<dyn Read + Send>>,
    ) -> Result<(), Failed> {
        let base = self.start_upload(repo, what).map_err(Failed::retried)?;
        let sep = if base.contains('?') { '&' } else { '?' };
        let url = format!("{base}{sep}digest={digest}");
        // Not retried on the same session: a failed attempt may have consumed it.
        let resp = self.send_tries(
            Request {
                method: Method::PUT,
                url,
                what,
                op: "upload blob",
                registry: &repo.registry,
                scopes: vec![scope(repo, Access::Push)],
                headers: vec![("Content-Type", "application/octet-stream".into())],
                body: Body::Stream { open, len: size },
            },
            1,
        )?;
        match resp.status().as_u16() {
            201 | 204 => Ok(()),
            s => Err(status_error(what, "upload blob", s, resp).into()),
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
}

/// Where a blob's bytes go: hashed on the way, or only counted.
enum Destination<W: Write> {
    Hashing(HashingWriter<W>),
    Counting(W, u64),
}

impl<W: Write> Destination<W> {
    fn new(w: W, hash: bool) -> Self {
        if hash {
            Destination::Hashing(HashingWriter::new(w))
        } else {
            Destination::Counting(w, 0)
        }
    }

    /// The digest (when hashed), the byte count and the writer.
    fn finish(self) -> (Option<Digest>, u64, W) {
        match self {
            Destination::Hashing(h) => {
                let (d, n, w) = h.finish();
                (Some(d), n, w)
            }
            Destination::Counting(w, n) => (None, n, w),
        }
    }
}

impl<W: Write> Write for Destination<W> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        match self {
            Destination::Hashing(h) => h.write(buf),
            Destination::Counting(w, n) => {
                let k = w.write(buf)?;
                *n += k as u64;
                Ok(k)
            }
        }
    }

    fn flush(&mut self) -> io::Result<()> {
        match self {
            Destination::Hashing(h) => h.flush(),
            Destination::Counting(w, _) => w.flush(),
        }
    }
}

/// A failed attempt, and whether what failed was retried already (by `send`, as far
/// as the attempts allow), so that the caller does not retry it again.
pub(crate) struct Failed {
    pub error: RegistryError,
    pub retried: bool,
}

impl Failed {
    pub(crate) fn retried(error: RegistryError) -> Self {
        Failed {
            error,
            retried: true,
        }
    }
}

impl From<RegistryError> for Failed {
    fn from(error: RegistryError) -> Self {
        Failed {
            error,
            retried: false,
        }
    }
}
