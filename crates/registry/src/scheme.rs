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

    /// The agent for requests to `registry`: one that also trusts its own CAs, or
    /// one that skips certificate checks for an insecure registry speaking TLS.
    pub(crate) fn agent_for(&self, registry: &str) -> &ureq::Agent {
        match self.scheme(registry) {
            Scheme::Unverified => &self.inner.unverified_agent,
            Scheme::Verified => self
                .inner
                .registry_agents
                .get(registry)
                .unwrap_or(&self.inner.agent),
            Scheme::Plain => &self.inner.agent,
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

/// TLS settings trusting the system's CAs plus `global` and `extra` (PEM files), or
/// the bundled roots when there are no files.
pub(crate) fn tls_config(
    global: &[std::path::PathBuf],
    extra: &[std::path::PathBuf],
) -> Result<ureq::tls::TlsConfig> {
    let tls = ureq::tls::TlsConfig::builder();
    if global.is_empty() && extra.is_empty() {
        return Ok(tls.build());
    }
    let mut certs: Vec<ureq::tls::Certificate<'static>> = Vec::new();
    for f in global.iter().chain(extra) {
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
    // The given CAs join the system's trust store (ureq's rustls takes one root list:
    // bundled webpki roots or ours).
    certs.extend(system_roots());
    Ok(tls
        .root_certs(ureq::tls::RootCerts::new_with_certs(&certs))
        .build())
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
