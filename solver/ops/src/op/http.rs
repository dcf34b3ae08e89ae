//! `ADD <url>`: one file downloaded over HTTP(S) into a new layer as `/<filename>`,
//! as BuildKit's HTTP source does it: mode 0600, owner 0:0, mtime from `Last-Modified`
//! (the Unix epoch without one), the body streamed to disk while it is hashed.
//!
//! Caching. With `--checksum` the definition says it all: a definition hit downloads
//! nothing, a miss downloads and verifies. Without one the URL is fetched on every
//! build (as BuildKit does) and the vertex is keyed by what came back: the sha256 of the
//! bytes and the mtime, so an unchanged file is a cache hit for this vertex and its
//! dependents. The validators of the last download (`ETag`, `Last-Modified`) are kept in
//! the store and sent as `If-None-Match` / `If-Modified-Since`: a `304 Not Modified`
//! gives the key without a download.
//!
//! Transient failures (connection errors, resets, timeouts, 408, 429, 5xx) are retried
//! a bounded number of times with exponential backoff; each retry starts the file over.

use std::fs::{File, FileTimes, OpenOptions};
use std::io::{self, Read, Write};
use std::os::unix::fs::OpenOptionsExt;
use std::path::PathBuf;
use std::sync::{Arc, Mutex, OnceLock};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use serde::{Deserialize, Serialize};
use strata_digest::{key, Digest, HashingWriter};
use strata_progress::Stream;
use strata_scheduler::{BoxFuture, CachePolicy, Context, Op, OpError};
use strata_snapshot::{Chain, Layers, NewLayer};
use strata_store::Store;

use super::{blocking, commit_layer};
use crate::Output;

/// Tries per download, the first included.
const ATTEMPTS: u32 = 4;
/// Wait before the first retry; doubled for each further one (0.25 s, 0.5 s, 1 s).
const FIRST_BACKOFF: Duration = Duration::from_millis(250);
/// Mode of the downloaded file (Docker's and BuildKit's).
const FILE_MODE: u32 = 0o600;

#[derive(Debug, thiserror::Error)]
pub enum HttpError {
    #[error("GET {url}: {status}")]
    Status { url: String, status: String },
    #[error("GET {url}")]
    Transport {
        url: String,
        #[source]
        source: ureq::Error,
    },
    #[error("GET {url}: reading the response body")]
    Body {
        url: String,
        #[source]
        source: io::Error,
    },
    #[error("{url}: checksum mismatch: expected {expected}, got {actual}")]
    Checksum {
        url: String,
        expected: Digest,
        actual: Digest,
    },
    #[error(
        "GET {url}: the server said the file was not modified, but now sends different \
         content; build again"
    )]
    Changed { url: String },
    #[error("{url}: invalid file name {name:?}")]
    FileName { url: String, name: String },
    #[error("{path}")]
    Io {
        path: PathBuf,
        #[source]
        source: io::Error,
    },
}

/// What `ADD <url>` fetches (the graph's `Source::Http`).
#[derive(Debug, Clone)]
pub struct HttpSpec {
    pub url: String,
    pub checksum: Option<Digest>,
    /// Name of the file in the layer; the URL's last path segment when absent.
    pub filename: Option<String>,
}

pub struct HttpRunner {
    inner: Arc<Inner>,
}

struct Inner {
    store: Store,
    layers: Arc<Layers>,
    spec: HttpSpec,
    /// Left by `content_key` for `exec`.
    staged: Mutex<Option<Staged>>,
}

enum Staged {
    /// The download the key was computed from, ready to commit.
    Downloaded(Downloaded),
    /// A `304` gave the key: `exec` (a cache miss after all) must get these bytes.
    Expect { digest: Digest, mtime: i64 },
}

struct Downloaded {
    /// Holds `/<filename>`.
    layer: NewLayer,
    digest: Digest,
    mtime: i64,
    etag: Option<String>,
    last_modified: Option<String>,
}

enum Fetched {
    Body(Downloaded),
    NotModified,
}

/// The validators of the last download of a URL, kept in the store between builds.
#[derive(Debug, Clone, Serialize, Deserialize)]
struct Validators {
    etag: Option<String>,
    last_modified: Option<String>,
    digest: Digest,
    mtime: i64,
}

impl HttpRunner {
    pub fn new(store: Store, layers: Arc<Layers>, spec: HttpSpec) -> Self {
        HttpRunner {
            inner: Arc::new(Inner {
                store,
                layers,
                spec,
                staged: Mutex::new(None),
            }),
        }
    }
}

impl Op<Output> for HttpRunner {
    fn cache_policy(&self) -> CachePolicy {
        if self.inner.spec.checksum.is_some() {
            CachePolicy::Definition
        } else {
            CachePolicy::ContentOnly
        }
    }

    fn content_key<'a>(
        &'a self,
        cx: &'a Context,
        _: &'a [Output],
    ) -> BoxFuture<'a, Result<Option<Digest>, OpError>> {
        if self.inner.spec.checksum.is_some() {
            return Box::pin(async { Ok(None) });
        }
        let inner = self.inner.clone();
        let cx = cx.clone();
        Box::pin(blocking(move || {
            let url = &inner.spec.url;
            let filename = inner.filename()?;
            let memo_key = key::encode("strata/http-validators", &(url, &filename));
            let known = inner.validators(&memo_key);
            match fetch(&inner.layers, url, &filename, known.as_ref(), &cx)? {
                Fetched::NotModified => {
                    let v = known.expect("304 only answers a conditional request");
                    cx.log(Stream::Stderr, format!("{url}: not modified\n"));
                    *inner.staged.lock().unwrap() = Some(Staged::Expect {
                        digest: v.digest,
                        mtime: v.mtime,
                    });
                    Ok(Some(content_key(&v.digest, v.mtime)))
                }
                Fetched::Body(d) => {
                    let key = content_key(&d.digest, d.mtime);
                    inner.remember(&memo_key, &d);
                    *inner.staged.lock().unwrap() = Some(Staged::Downloaded(d));
                    Ok(Some(key))
                }
            }
        }))
    }

    fn exec<'a>(
        &'a self,
        cx: &'a Context,
        _: &'a [Output],
    ) -> BoxFuture<'a, Result<Output, OpError>> {
        let inner = self.inner.clone();
        let cx = cx.clone();
        Box::pin(blocking(move || {
            let url = &inner.spec.url;
            let staged = inner.staged.lock().unwrap().take();
            let (d, expect) = match staged {
                Some(Staged::Downloaded(d)) => (d, None),
                other => {
                    let expect = match other {
                        Some(Staged::Expect { digest, mtime }) => Some((digest, mtime)),
                        _ => None,
                    };
                    match fetch(&inner.layers, url, &inner.filename()?, None, &cx)? {
                        Fetched::Body(d) => (d, expect),
                        Fetched::NotModified => unreachable!("an unconditional GET"),
                    }
                }
            };
            if let Some(expected) = inner.spec.checksum {
                if d.digest != expected {
                    return Err(OpError::new(HttpError::Checksum {
                        url: url.clone(),
                        expected,
                        actual: d.digest,
                    }));
                }
            }
            if let Some((digest, mtime)) = expect {
                if (d.digest, d.mtime) != (digest, mtime) {
                    return Err(OpError::new(HttpError::Changed { url: url.clone() }));
                }
            }
            let diff_id = commit_layer(&inner.store, &inner.layers, d.layer)?;
            Ok(Output::Fs(Chain::empty().with(diff_id)))
        }))
    }
}

impl Inner {
    fn filename(&self) -> Result<String, OpError> {
        let url = &self.spec.url;
        let name = match &self.spec.filename {
            Some(n) => n.clone(),
            None => url_basename(url),
        };
        if name.is_empty() || name == "." || name == ".." || name.contains('/') {
            return Err(OpError::new(HttpError::FileName {
                url: url.clone(),
                name,
            }));
        }
        Ok(name)
    }

    fn validators(&self, memo_key: &Digest) -> Option<Validators> {
        let rec = self.store.cache_get(memo_key).ok()??;
        serde_json::from_value(rec.value).ok()
    }

    /// Keeps the validators of a download for the next build's conditional request.
    fn remember(&self, memo_key: &Digest, d: &Downloaded) {
        if d.etag.is_none() && d.last_modified.is_none() {
            return;
        }
        let v = Validators {
            etag: d.etag.clone(),
            last_modified: d.last_modified.clone(),
            digest: d.digest,
            mtime: d.mtime,
        };
        let t = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map(|d| d.as_secs())
            .unwrap_or(0);
        // Losing it only costs a full download next time.
        let _ = self.store.cache_put(
            memo_key,
            &strata_store::CacheRecord {
                value: serde_json::to_value(&v).expect("validators serialize"),
                created: t,
                last_used: t,
                use_count: 0,
                description: format!("http validators of {}", self.spec.url),
                size: 0,
            },
        );
    }
}

/// The key of a download without `--checksum`: its bytes and its mtime (the layer holds
/// both; the URL and file name are in the vertex id).
fn content_key(digest: &Digest, mtime: i64) -> Digest {
    key::encode("strata/http-content", &(digest, mtime))
}

/// The last non-empty path segment of `url`, or `__unnamed__` (BuildKit's fallback).
fn url_basename(url: &str) -> String {
    let no_query = url.split(['?', '#']).next().unwrap_or(url);
    let path = no_query.splitn(4, '/').nth(3).unwrap_or("");
    path.rsplit('/')
        .find(|s| !s.is_empty() && *s != "." && *s != "..")
        .unwrap_or("__unnamed__")
        .to_string()
}

fn agent() -> &'static ureq::Agent {
    static AGENT: OnceLock<ureq::Agent> = OnceLock::new();
    AGENT.get_or_init(|| {
        ureq::Agent::config_builder()
            // Statuses are ours to judge (retry 5xx, name 4xx).
            .http_status_as_error(false)
            .user_agent(concat!("strata/", env!("CARGO_PKG_VERSION")))
            .timeout_connect(Some(Duration::from_secs(30)))
            .timeout_recv_response(Some(Duration::from_secs(60)))
            // A stalled body fails (and is retried) instead of hanging the build; a slow
            // but moving one may take as long as it needs.
            .timeout_per_read(Some(Duration::from_secs(60)))
            .build()
            .into()
    })
}

/// Why one attempt failed, and whether another may succeed.
enum Attempt {
    Retry(HttpError),
    Fatal(OpError),
}

impl From<HttpError> for Attempt {
    fn from(e: HttpError) -> Self {
        Attempt::Fatal(OpError::new(e))
    }
}

/// GETs `url` into a new layer as `/<filename>`, retrying transient failures. With
/// `known` validators the request is conditional and may come back `NotModified`.
fn fetch(
    layers: &Layers,
    url: &str,
    filename: &str,
    known: Option<&Validators>,
    cx: &Context,
) -> Result<Fetched, OpError> {
    let mut backoff = FIRST_BACKOFF;
    for attempt in 1..=ATTEMPTS {
        if cx.is_cancelled() {
            return Err(OpError::cancelled());
        }
        match fetch_once(layers, url, filename, known, cx) {
            Ok(f) => return Ok(f),
            Err(Attempt::Retry(e)) if attempt < ATTEMPTS => {
                cx.log(
                    Stream::Stderr,
                    format!(
                        "{}; retrying in {} ms ({attempt}/{ATTEMPTS})\n",
                        OpError::new(e),
                        backoff.as_millis()
                    ),
                );
                std::thread::sleep(backoff);
                backoff *= 2;
            }
            Err(Attempt::Retry(e)) => return Err(OpError::new(e)),
            Err(Attempt::Fatal(e)) => return Err(e),
        }
    }
    unreachable!("the last attempt returns")
}

fn fetch_once(
    layers: &Layers,
    url: &str,
    filename: &str,
    known: Option<&Validators>,
    cx: &Context,
) -> Result<Fetched, Attempt> {
    let fatal_io = |path: PathBuf| move |source| Attempt::from(HttpError::Io { path, source });
    let mut req = agent().get(url);
    if let Some(v) = known {
        if let Some(etag) = &v.etag {
            req = req.header("If-None-Match", etag);
        }
        if let Some(lm) = &v.last_modified {
            req = req.header("If-Modified-Since", lm);
        }
    }
    let resp = req.call().map_err(|source| {
        let transient = matches!(
            source,
            ureq::Error::Io(_)
                | ureq::Error::Timeout(_)
                | ureq::Error::ConnectionFailed
                | ureq::Error::Protocol(_)
        );
        let e = HttpError::Transport {
            url: url.to_string(),
            source,
        };
        if transient {
            Attempt::Retry(e)
        } else {
            e.into()
        }
    })?;
    let status = resp.status();
    if status.as_u16() == 304 && known.is_some() {
        return Ok(Fetched::NotModified);
    }
    if !status.is_success() {
        let e = HttpError::Status {
            url: url.to_string(),
            status: format!(
                "{} {}",
                status.as_u16(),
                status.canonical_reason().unwrap_or("")
            )
            .trim_end()
            .to_string(),
        };
        let code = status.as_u16();
        return Err(if code >= 500 || code == 408 || code == 429 {
            Attempt::Retry(e)
        } else {
            e.into()
        });
    }
    let header = |name: &str| {
        resp.headers()
            .get(name)
            .and_then(|v| v.to_str().ok())
            .map(str::to_string)
    };
    let etag = header("ETag");
    let last_modified = header("Last-Modified");
    let mtime = last_modified
        .as_deref()
        .and_then(|s| httpdate::parse_http_date(s).ok())
        .map(unix_seconds)
        .unwrap_or(0);
    let total = resp.body().content_length();

    let layer = layers
        .begin()
        .map_err(|e| Attempt::Fatal(OpError::new(e)))?;
    let path = layer.path().join(filename);
    let file = OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(FILE_MODE)
        .open(&path)
        .map_err(fatal_io(path.clone()))?;
    let mut out = HashingWriter::new(io::BufWriter::with_capacity(1 << 20, file));
    let mut body = resp.into_body().into_reader();
    let mut buf = vec![0u8; 256 << 10];
    let mut done = 0u64;
    let mut reported = 0u64;
    loop {
        if cx.is_cancelled() {
            return Err(Attempt::Fatal(OpError::cancelled()));
        }
        let n = match body.read(&mut buf) {
            Ok(0) => break,
            Ok(n) => n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(source) => {
                return Err(Attempt::Retry(HttpError::Body {
                    url: url.to_string(),
                    source,
                }))
            }
        };
        out.write_all(&buf[..n]).map_err(fatal_io(path.clone()))?;
        done += n as u64;
        if done - reported >= 1 << 20 {
            cx.progress(filename, done, total);
            reported = done;
        }
    }
    cx.progress(filename, done, total);
    let (digest, _, w) = out.finish();
    let file = w
        .into_inner()
        .map_err(|e| fatal_io(path.clone())(e.into_error()))?;
    let t = UNIX_EPOCH + Duration::from_secs(mtime.max(0) as u64);
    file.set_permissions(std::os::unix::fs::PermissionsExt::from_mode(FILE_MODE))
        .and_then(|()| std::os::unix::fs::fchown(&file, Some(0), Some(0)))
        .and_then(|()| file.set_times(FileTimes::new().set_accessed(t).set_modified(t)))
        .map_err(fatal_io(path.clone()))?;
    drop::<File>(file);
    Ok(Fetched::Body(Downloaded {
        layer,
        digest,
        mtime,
        etag,
        last_modified,
    }))
}

fn unix_seconds(t: SystemTime) -> i64 {
    match t.duration_since(UNIX_EPOCH) {
        Ok(d) => d.as_secs() as i64,
        // Before 1970: clamp, as the tar writer cannot say it either.
        Err(_) => 0,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn basenames() {
        assert_eq!(url_basename("https://h/a/b.tar.gz?x=1#f"), "b.tar.gz");
        assert_eq!(url_basename("https://h/a/dir/"), "dir");
        assert_eq!(url_basename("https://h/"), "__unnamed__");
        assert_eq!(url_basename("https://h"), "__unnamed__");
    }

    #[test]
    fn content_keys_cover_bytes_and_mtime() {
        let a = strata_digest::sha256(b"a");
        let b = strata_digest::sha256(b"b");
        assert_ne!(content_key(&a, 0), content_key(&b, 0));
        assert_ne!(content_key(&a, 0), content_key(&a, 1));
        assert_eq!(content_key(&a, 7), content_key(&a, 7));
    }
}
