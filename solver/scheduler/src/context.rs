use std::sync::Arc;

use strata_digest::Digest;
use strata_progress::{Event, Reporter, Stream, VertexRef};
use tokio_util::sync::CancellationToken;

/// What an [`Op`](crate::Op) gets besides its inputs: the vertex it runs as (for
/// progress and log events), the reporter, the cancellation token and its inputs' keys.
/// Cheap to clone.
#[derive(Clone)]
pub struct Context {
    id: Digest,
    vertex: VertexRef,
    input_keys: Arc<[Option<Digest>]>,
    reporter: Arc<dyn Reporter>,
    cancel: CancellationToken,
}

impl Context {
    /// A context for running an op outside a solve (the scheduler builds its own).
    pub fn new(
        id: Digest,
        name: impl Into<String>,
        reporter: Arc<dyn Reporter>,
        cancel: CancellationToken,
    ) -> Self {
        Context {
            id,
            vertex: VertexRef {
                id: id.to_string(),
                name: name.into(),
            },
            input_keys: Arc::from([]),
            reporter,
            cancel,
        }
    }

    pub fn with_input_keys(mut self, keys: Vec<Option<Digest>>) -> Self {
        self.input_keys = keys.into();
        self
    }

    /// The vertex definition digest.
    pub fn id(&self) -> Digest {
        self.id
    }

    /// The vertex as progress events name it.
    pub fn vertex(&self) -> &VertexRef {
        &self.vertex
    }

    /// The effective cache key of each input, in input order; `None` for a volatile
    /// input (one that is never cached and gave no content key).
    pub fn input_keys(&self) -> &[Option<Digest>] {
        &self.input_keys
    }

    pub fn reporter(&self) -> &Arc<dyn Reporter> {
        &self.reporter
    }

    /// Sends `event` to the reporter.
    pub fn report(&self, event: Event) {
        self.reporter.report(event);
    }

    /// Reports a line of the step's process output.
    pub fn log(&self, stream: Stream, text: impl Into<String>) {
        self.report(Event::Log {
            vertex: self.vertex.clone(),
            stream,
            text: text.into(),
        });
    }

    /// Reports bytes moved for a named piece of work of the step.
    pub fn progress(&self, what: impl Into<String>, current: u64, total: Option<u64>) {
        self.report(Event::Progress {
            vertex: self.vertex.clone(),
            what: what.into(),
            current,
            total,
        });
    }

    /// Completes when the solve is cancelled (a failure elsewhere or the caller's token).
    pub async fn cancelled(&self) {
        self.cancel.cancelled().await
    }

    pub fn is_cancelled(&self) -> bool {
        self.cancel.is_cancelled()
    }

    /// The token itself, to hand to code that takes one (a child process waiter, …).
    pub fn cancellation_token(&self) -> &CancellationToken {
        &self.cancel
    }
}

impl std::fmt::Debug for Context {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Context")
            .field("vertex", &self.vertex)
            .field("input_keys", &self.input_keys)
            .field("cancelled", &self.cancel.is_cancelled())
            .finish_non_exhaustive()
    }
}
