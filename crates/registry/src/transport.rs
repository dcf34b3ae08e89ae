//! Sending requests: retries with backoff, authentication (challenges, credentials,
//! bearer tokens).

use super::*;

impl Client {
    pub(crate) fn resolve_location(&self, repo: &Reference, loc: &str) -> String {
        if loc.starts_with("http://") || loc.starts_with("https://") {
            loc.to_string()
        } else if loc.starts_with('/') {
            format!("{}{loc}", self.base_url(&repo.registry))
        } else {
            format!("{}/{loc}", self.base_url(&repo.registry))
        }
    }

    pub(crate) fn backoff(&self, attempt: u32, retry_after: Option<Duration>) -> Duration {
        let max = self.inner.opts.max_backoff;
        match retry_after {
            Some(d) => d.min(max),
            None => (self.inner.opts.backoff * 2u32.saturating_pow(attempt - 1)).min(max),
        }
    }

    /// Sends with authentication and retries: transient failures (transport errors,
    /// 5xx, 429) are retried with backoff; a 401 triggers the challenge's flow once.
    pub(crate) fn send_direct(&self, req: Request<'_>) -> Result<Response> {
        self.send_tries(req, self.inner.opts.attempts)
    }

    /// [`Client::send_direct`] with at most `attempts` tries (1: the caller retries,
    /// e.g. an upload whose session a failed attempt may have consumed).
    pub(crate) fn send_tries(&self, req: Request<'_>, attempts: u32) -> Result<Response> {
        let mut attempt = 1;
        let mut authed_after_401 = false;
        loop {
            let auth = self.authorization(&req)?;
            let result = self.send_once(&req, auth.as_deref());
            let err = match result {
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
                        status_error(req.what, req.op, status, resp)
                    } else {
                        return Ok(resp);
                    }
                }
                Err(e) => e,
            };
            if attempt >= attempts || !is_transient(&err) {
                return Err(err);
            }
            self.bump(|s| s.retries += 1);
            std::thread::sleep(self.backoff(attempt, err.retry_after()));
            attempt += 1;
        }
    }

    pub(crate) fn send_once(&self, req: &Request<'_>, auth: Option<&str>) -> Result<Response> {
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
        let transport =
            |source: ureq::Error| self.transport_error(req.what, req.op, req.registry, source);
        let build_err = |e: http::Error| RegistryError::Protocol {
            what: req.what.to_string(),
            message: format!("bad request for {}: {e}", req.op),
        };
        let agent = self.agent_for(req.registry);
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

    pub(crate) fn credentials(&self, registry: &str, what: &str) -> Result<Option<Credentials>> {
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
    pub(crate) fn authorization(&self, req: &Request<'_>) -> Result<Option<String>> {
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
                            "{} asks for a user name and password, and none is configured for it (log in with `strata login {}`)",
                            req.registry, req.registry
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

    pub(crate) fn fetch_token(
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
        if req.op == LOGIN {
            // As docker login: ask for a refresh token to keep instead of the password.
            push("offline_token", "true");
            push("client_id", "strata");
        }
        // An identity token is an OAuth2 refresh token: POST it as a form (the
        // distribution token spec); other credentials go as basic auth on a GET.
        let form = match &creds {
            Some(Credentials::IdentityToken(t)) => {
                let mut f = format!(
                    "grant_type=refresh_token&client_id=strata&refresh_token={}",
                    query_escape(t)
                );
                if let Some(s) = service {
                    f.push_str(&format!("&service={}", query_escape(s)));
                }
                if !req.scopes.is_empty() {
                    f.push_str(&format!("&scope={}", query_escape(&req.scopes.join(" "))));
                }
                Some(f)
            }
            _ => None,
        };
        let basic = creds.as_ref().and_then(Credentials::basic_header);
        let what = req.what.to_string();
        let mut attempt = 1;
        loop {
            self.bump(|s| s.requests += 1);
            let bad = |e: http::Error| RegistryError::Protocol {
                what: what.clone(),
                message: format!("bad token request: {e}"),
            };
            let result = match &form {
                Some(f) => {
                    let request = http::Request::builder()
                        .method(Method::POST)
                        .uri(realm)
                        .header("Content-Type", "application/x-www-form-urlencoded")
                        .body(f.as_bytes())
                        .map_err(bad)?;
                    self.agent_for(req.registry).run(request)
                }
                None => {
                    let mut b = http::Request::builder().method(Method::GET).uri(&url);
                    if let Some(h) = &basic {
                        b = b.header("Authorization", h);
                    }
                    self.agent_for(req.registry).run(b.body(()).map_err(bad)?)
                }
            };
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
            std::thread::sleep(self.backoff(attempt, err.retry_after()));
            attempt += 1;
        }
    }
}
