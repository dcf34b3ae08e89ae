//! How a registry is spoken to: HTTPS verified against the trusted CAs (the default),
//! plain HTTP (loopback registries, as Docker allows), or — for registries configured
//! insecure, as Docker's `insecure-registries` — HTTPS without verifying the
//! certificate when the registry speaks TLS, else plain HTTP. The choice for an
//! insecure registry is made once per client by a probe of `https://HOST/v2/`.

use super::*;

/// The transport for one registry.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Scheme {
    Verified,
    Unverified,
    Plain,
}

impl Client {
    pub(crate) fn scheme(&self, registry: &str) -> Scheme {
        let opts = &self.inner.opts;
        if opts.secure.iter().any(|r| r == registry) {
            return Scheme::Verified;
        }
        if opts.insecure.iter().any(|r| r == registry) {
            if let Some(s) = self
                .inner
                .schemes
                .lock()
                .expect("scheme lock")
                .get(registry)
            {
                return *s;
            }
            // Any HTTP answer over TLS (certificate unchecked) means it speaks HTTPS.
            let probe = http::Request::builder()
                .method(Method::GET)
                .uri(format!("https://{}/v2/", host_of(registry)))
                .body(())
                .map(|req| self.inner.unverified_agent.run(req));
            let s = match probe {
                Ok(Ok(_)) => Scheme::Unverified,
                _ => Scheme::Plain,
            };
            self.inner
                .schemes
                .lock()
                .expect("scheme lock")
                .insert(registry.to_string(), s);
            return s;
        }
        if is_loopback(registry) {
            Scheme::Plain
        } else {
            Scheme::Verified
        }
    }

    /// `http://` or `https://` + host for this registry.
    pub fn base_url(&self, registry: &str) -> String {
        let scheme = match self.scheme(registry) {
            Scheme::Plain => "http",
            Scheme::Verified | Scheme::Unverified => "https",
        };
        format!("{scheme}://{}", host_of(registry))
    }

    /// The agent for requests to `registry` (one that skips certificate checks only
    /// for an insecure registry found speaking TLS).
    pub(crate) fn agent_for(&self, registry: &str) -> &ureq::Agent {
        match self.scheme(registry) {
            Scheme::Unverified => &self.inner.unverified_agent,
            Scheme::Verified | Scheme::Plain => &self.inner.agent,
        }
    }
}

fn host_of(registry: &str) -> &str {
    if registry == "docker.io" {
        "registry-1.docker.io"
    } else {
        registry
    }
}
