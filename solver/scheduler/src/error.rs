use std::error::Error;
use std::fmt;

use strata_digest::Digest;

/// An error from an [`Op`](crate::Op): anything that implements `Error`, or a message.
///
/// Its `Display` shows the whole chain (`outer: middle: root`), so it is a leaf of the
/// error chain: `source()` is `None`. Reach the typed error with
/// [`OpError::downcast_ref`] or [`OpError::get_ref`].
pub struct OpError(Box<dyn Error + Send + Sync + 'static>);

/// The error [`OpError::cancelled`] wraps.
#[derive(Debug, thiserror::Error)]
#[error("cancelled")]
struct Cancelled;

/// An op's task panicked.
#[derive(Debug, thiserror::Error)]
#[error("op panicked: {0}")]
struct Panicked(String);

impl OpError {
    pub fn new(error: impl Into<Box<dyn Error + Send + Sync + 'static>>) -> Self {
        OpError(error.into())
    }

    /// What an op returns when it stops because [`Context::cancelled`](crate::Context::cancelled) fired.
    pub fn cancelled() -> Self {
        OpError::new(Cancelled)
    }

    pub fn is_cancelled(&self) -> bool {
        self.0.is::<Cancelled>()
    }

    pub(crate) fn panicked(payload: Box<dyn std::any::Any + Send>) -> Self {
        let msg = if let Some(s) = payload.downcast_ref::<&str>() {
            (*s).to_string()
        } else if let Some(s) = payload.downcast_ref::<String>() {
            s.clone()
        } else {
            "non-string panic payload".to_string()
        };
        OpError::new(Panicked(msg))
    }

    pub fn get_ref(&self) -> &(dyn Error + Send + Sync + 'static) {
        &*self.0
    }

    pub fn downcast_ref<E: Error + 'static>(&self) -> Option<&E> {
        self.0.downcast_ref()
    }

    pub fn into_inner(self) -> Box<dyn Error + Send + Sync + 'static> {
        self.0
    }
}

impl fmt::Display for OpError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.0)?;
        let mut source = self.0.source();
        while let Some(e) = source {
            write!(f, ": {e}")?;
            source = e.source();
        }
        Ok(())
    }
}

impl fmt::Debug for OpError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_tuple("OpError").field(&self.0).finish()
    }
}

impl Error for OpError {}

/// Why [`Scheduler::solve`](crate::Scheduler::solve) returned no results.
#[derive(Debug, thiserror::Error)]
pub enum SolveError {
    /// The first vertex that failed; everything else was cancelled.
    #[error("failed to solve {vertex}")]
    Failed {
        vertex: String,
        id: Digest,
        #[source]
        source: OpError,
    },
    /// The caller's cancellation token fired.
    #[error("build cancelled")]
    Cancelled,
    /// A vertex names an input that is not an earlier vertex of the list.
    #[error("vertex {index} ({vertex}) has input {input}, which is not an earlier vertex")]
    InvalidInput {
        index: usize,
        vertex: String,
        input: usize,
    },
    #[error("target {target} is out of range: the graph has {len} vertices")]
    InvalidTarget { target: usize, len: usize },
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Debug, thiserror::Error)]
    #[error("reading /src/a")]
    struct Outer(#[source] std::io::Error);

    #[test]
    fn display_shows_the_chain_once() {
        let io = std::io::Error::new(std::io::ErrorKind::NotFound, "no such file");
        let e = OpError::new(Outer(io));
        assert_eq!(e.to_string(), "reading /src/a: no such file");
        assert!(e.source().is_none());
        assert!(e.downcast_ref::<Outer>().is_some());
        assert_eq!(OpError::new("plain").to_string(), "plain");
        assert!(OpError::cancelled().is_cancelled());
        assert!(!OpError::new("x").is_cancelled());
    }

    #[test]
    fn panic_payloads_become_messages() {
        let e = OpError::panicked(Box::new("boom"));
        assert_eq!(e.to_string(), "op panicked: boom");
        let e = OpError::panicked(Box::new(String::from("bang")));
        assert_eq!(e.to_string(), "op panicked: bang");
        let e = OpError::panicked(Box::new(7u8));
        assert_eq!(e.to_string(), "op panicked: non-string panic payload");
    }
}
