//! Chunked blob uploads: `PATCH` requests of at most a chunk each, with
//! `Content-Range`, streamed from one reader, then `PUT ?digest=` with no body.

use std::sync::{Arc, Mutex};

use super::*;

/// The chunk size of a chunked upload when none is given.
pub const DEFAULT_CHUNK: u64 = 16 << 20;

impl Client {
    /// Uploads a blob in chunks of `chunk` bytes (streamed from a reader `open` creates;
    /// a failed attempt starts over on a new session with a new reader).
    pub fn push_blob_chunked(
        &self,
        repo: &Reference,
        digest: &Digest,
        size: u64,
        open: &dyn Fn() -> io::Result<Box<dyn Read + Send>>,
        chunk: u64,
    ) -> Result<()> {
        let chunk = chunk.max(1);
        self.upload_with_retries(repo, digest, size, &|what| {
            self.push_chunks_once(repo, what, digest, size, open, chunk)
        })
    }

    fn push_chunks_once(
        &self,
        repo: &Reference,
        what: &str,
        digest: &Digest,
        size: u64,
        open: &dyn Fn() -> io::Result<Box<dyn Read + Send>>,
        chunk: u64,
    ) -> Result<(), blob::Failed> {
        let mut url = self
            .start_upload(repo, what)
            .map_err(blob::Failed::retried)?;
        let reader = open().map_err(|source| RegistryError::Io {
            what: what.into(),
            context: "opening the blob",
            source,
        })?;
        let shared = Arc::new(Mutex::new(reader));
        let mut offset = 0;
        while offset < size {
            let len = chunk.min(size - offset);
            let part = || -> io::Result<Box<dyn Read + Send>> {
                Ok(Box::new(Part {
                    shared: shared.clone(),
                    left: len,
                }))
            };
            // One try: the reader cannot go back; the whole upload is retried instead.
            let resp = self.send_tries(
                Request {
                    method: Method::PATCH,
                    url: url.clone(),
                    what,
                    op: "upload chunk",
                    registry: &repo.registry,
                    scopes: vec![scope(repo, Access::Push)],
                    headers: vec![
                        ("Content-Type", "application/octet-stream".into()),
                        ("Content-Range", format!("{offset}-{}", offset + len - 1)),
                    ],
                    body: Body::Stream { open: &part, len },
                },
                1,
            )?;
            match resp.status().as_u16() {
                202 => url = self.location(repo, what, &resp)?,
                s => return Err(status_error(what, "upload chunk", s, resp).into()),
            }
            offset += len;
        }
        let sep = if url.contains('?') { '&' } else { '?' };
        let resp = self.send_tries(
            Request {
                method: Method::PUT,
                url: format!("{url}{sep}digest={digest}"),
                what,
                op: "finish upload",
                registry: &repo.registry,
                scopes: vec![scope(repo, Access::Push)],
                headers: vec![("Content-Length", "0".into())],
                body: Body::Empty,
            },
            1,
        )?;
        match resp.status().as_u16() {
            201 | 204 => Ok(()),
            s => Err(status_error(what, "finish upload", s, resp).into()),
        }
    }
}

/// The next `left` bytes of the shared reader; ends early only if the reader does.
struct Part {
    shared: Arc<Mutex<Box<dyn Read + Send>>>,
    left: u64,
}

impl Read for Part {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        if self.left == 0 {
            return Ok(0);
        }
        let max = buf.len().min(self.left as usize);
        let n = self
            .shared
            .lock()
            .expect("reader lock")
            .read(&mut buf[..max])?;
        self.left -= n as u64;
        Ok(n)
    }
}
