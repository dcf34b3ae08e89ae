//! Pull-through mirrors: a pull from a registry with mirrors tries each mirror in turn
//! (same repository path: `docker.io/library/x` is `MIRROR/library/x`) and falls back
//! to the registry itself when a mirror fails or lacks the content. Pushes (and any
//! request whose scopes include `push`) never go to a mirror.

use super::*;

impl Client {
    /// Sends `req`, through the mirrors of its registry first when it only reads.
    pub(crate) fn send(&self, req: Request<'_>) -> Result<Response> {
        self.send_mirrored(req).map_err(untrusted)
    }

    fn send_mirrored(&self, req: Request<'_>) -> Result<Response> {
        let mirrors = match self.inner.opts.mirrors.get(req.registry) {
            Some(m) if !m.is_empty() && is_pull(&req) => m,
            _ => return self.send_direct(req),
        };
        let base = self.base_url(req.registry);
        let Some(path) = req.url.strip_prefix(&base) else {
            // An absolute URL elsewhere (a redirect, an upload location): as is.
            return self.send_direct(req);
        };
        for mirror in mirrors {
            let down = self.inner.down_mirrors.lock().expect("mirror lock");
            if down.contains(mirror) {
                continue;
            }
            drop(down);
            let mirrored = Request {
                method: req.method.clone(),
                url: format!("{}{path}", self.base_url(mirror)),
                what: req.what,
                op: req.op,
                registry: mirror,
                scopes: req.scopes.clone(),
                headers: req.headers.clone(),
                body: Body::Empty,
            };
            match self.send_direct(mirrored) {
                Ok(resp) if resp.status().is_success() => return Ok(resp),
                // Missing on the mirror, or refused: the next one.
                Ok(_) => self.bump(|s| s.mirror_fallbacks += 1),
                // Unreachable (after the retries): the next one, and this one no
                // more for this client.
                Err(e) => {
                    self.bump(|s| s.mirror_fallbacks += 1);
                    if matches!(
                        e,
                        RegistryError::Transport { .. } | RegistryError::Stalled { .. }
                    ) {
                        self.inner
                            .down_mirrors
                            .lock()
                            .expect("mirror lock")
                            .insert(mirror.clone());
                    }
                }
            }
        }
        self.send_direct(req)
    }
}

/// Only GETs and HEADs for pull scopes are mirrored.
fn is_pull(req: &Request<'_>) -> bool {
    (req.method == Method::GET || req.method == Method::HEAD)
        && matches!(req.body, Body::Empty)
        && !req.scopes.is_empty()
        && req.scopes.iter().all(|s| s.ends_with(":pull"))
}

/// A TLS failure over the registry's certificate, as its own error (with the fix).
/// rustls reports it as `invalid peer certificate: …` (wrapped in an I/O error).
pub(crate) fn untrusted(e: RegistryError) -> RegistryError {
    let message = match &e {
        RegistryError::Transport { source, .. } => match &**source {
            ureq::Error::Rustls(r) => r.to_string(),
            ureq::Error::Io(io) => io.to_string(),
            _ => return e,
        },
        _ => return e,
    };
    if !message.contains("invalid peer certificate") {
        return e;
    }
    match e {
        RegistryError::Transport { what, registry, .. } => RegistryError::UntrustedCertificate {
            what,
            registry,
            message,
        },
        e => e,
    }
}
