use strata_digest::Digest;

/// What went wrong talking to a registry. Every variant names what was asked for
/// (`what`: the reference, or `repo@digest` for a blob); none carries credentials.
#[derive(Debug, thiserror::Error)]
pub enum RegistryError {
    #[error("{what}: not found in the registry (HTTP {status})")]
    NotFound { what: String, status: u16 },
    #[error("{what}: access denied by the registry (HTTP {status}){}", hint(.status, .message))]
    Denied {
        what: String,
        status: u16,
        message: String,
    },
    #[error("{what}: {op} failed: HTTP {status}{}", detail(.message))]
    Status {
        what: String,
        op: &'static str,
        status: u16,
        message: String,
        /// The registry's `Retry-After` (seconds), on a 429 or 503.
        retry_after: Option<std::time::Duration>,
    },
    #[error("{what}: {op}: {registry}: {source}")]
    Transport {
        what: String,
        op: &'static str,
        registry: String,
        #[source]
        source: Box<ureq::Error>,
    },
    /// Nothing moved for the client's timeout: a stalled connection or registry.
    #[error("{what}: {op}: {registry} stalled: nothing sent or received for {} s (the timeout; STRATA_REGISTRY_TIMEOUT sets it)", .timeout.as_secs_f64())]
    Stalled {
        what: String,
        op: &'static str,
        registry: String,
        timeout: std::time::Duration,
    },
    /// The registry's TLS certificate does not chain to a trusted CA (or does not
    /// name it).
    #[error("{what}: the TLS certificate of {registry} is not trusted ({message}); trust its CA with `--registry-ca FILE` or `ca = \"FILE\"` under [registry.\"{registry}\"] in strata's config.toml")]
    UntrustedCertificate {
        what: String,
        registry: String,
        message: String,
    },
    #[error("{what}: content does not match its digest: expected {expected}, got {actual} ({size} bytes)")]
    DigestMismatch {
        what: String,
        expected: Digest,
        actual: Digest,
        size: u64,
    },
    #[error("{what}: expected {expected} bytes, the registry sent {actual}")]
    SizeMismatch {
        what: String,
        expected: u64,
        actual: u64,
    },
    #[error("{what}: {message}")]
    Protocol { what: String, message: String },
    #[error("{what}: authentication: {message}")]
    Auth { what: String, message: String },
    #[error("{what}: {context}: {source}")]
    Io {
        what: String,
        context: &'static str,
        #[source]
        source: std::io::Error,
    },
}

fn detail(message: &str) -> String {
    if message.is_empty() {
        String::new()
    } else {
        format!(": {message}")
    }
}

fn hint(status: &u16, message: &str) -> String {
    let mut s = detail(message);
    if *status == 401 {
        s.push_str(" (log in with `strata login REGISTRY`, or check the credentials in Docker's config.json)");
    }
    s
}

impl RegistryError {
    /// The HTTP status, when the registry answered.
    pub fn status(&self) -> Option<u16> {
        match self {
            RegistryError::NotFound { status, .. }
            | RegistryError::Denied { status, .. }
            | RegistryError::Status { status, .. } => Some(*status),
            _ => None,
        }
    }

    /// How long the registry asked us to wait before trying again (`Retry-After`).
    pub fn retry_after(&self) -> Option<std::time::Duration> {
        match self {
            RegistryError::Status { retry_after, .. } => *retry_after,
            _ => None,
        }
    }
}

pub type Result<T, E = RegistryError> = std::result::Result<T, E>;
