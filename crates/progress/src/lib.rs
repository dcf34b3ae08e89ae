//! Progress events and the [`Reporter`] trait through which libraries tell the CLI what
//! happens during a build. Nothing here draws: the binary renders events as a tty
//! display, plain BuildKit-like lines or JSON. Depends on no other workspace crate.

use std::sync::Mutex;
use std::time::Duration;

use serde::Serialize;

/// A vertex (build step) as the user knows it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct VertexRef {
    /// The vertex digest (`sha256:…`).
    pub id: String,
    /// BuildKit-style name: `[build 2/4] RUN make`.
    pub name: String,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Stream {
    Stdout,
    Stderr,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(tag = "event", rename_all = "snake_case")]
pub enum Event {
    /// The step began executing.
    Started { vertex: VertexRef },
    /// The step's result came from the cache.
    Cached { vertex: VertexRef },
    /// The step finished.
    Completed {
        vertex: VertexRef,
        #[serde(with = "secs")]
        duration: Duration,
    },
    /// The step failed (the build stops).
    Failed { vertex: VertexRef, error: String },
    /// Bytes moved for a named piece of work of a step (a layer, a transfer).
    Progress {
        vertex: VertexRef,
        what: String,
        current: u64,
        total: Option<u64>,
    },
    /// Output of a step's process.
    Log {
        vertex: VertexRef,
        stream: Stream,
        text: String,
    },
    /// Something the user should know that does not stop the build.
    Warning { message: String },
    /// Why a step missed the cache (`strata build --explain`), one sentence per reason.
    Explain {
        vertex: VertexRef,
        reasons: Vec<String>,
    },
}

mod secs {
    pub fn serialize<S: serde::Serializer>(
        d: &std::time::Duration,
        s: S,
    ) -> Result<S::Ok, S::Error> {
        s.serialize_f64((d.as_secs_f64() * 1000.0).round() / 1000.0)
    }
}

/// Where libraries send events. Implementations must be cheap and never block long.
pub trait Reporter: Send + Sync {
    fn report(&self, event: Event);
}

/// Drops every event.
#[derive(Debug, Default, Clone, Copy)]
pub struct NullReporter;

impl Reporter for NullReporter {
    fn report(&self, _: Event) {}
}

/// Keeps every event, for tests.
#[derive(Debug, Default)]
pub struct Collector {
    events: Mutex<Vec<Event>>,
}

impl Collector {
    pub fn events(&self) -> Vec<Event> {
        self.events.lock().expect("collector lock").clone()
    }
}

impl Reporter for Collector {
    fn report(&self, event: Event) {
        self.events.lock().expect("collector lock").push(event);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn events_serialize_with_a_tag() {
        let v = VertexRef {
            id: "sha256:ab".into(),
            name: "[1/2] RUN x".into(),
        };
        let e = Event::Completed {
            vertex: v.clone(),
            duration: Duration::from_millis(1234),
        };
        let json = serde_json::to_string(&e).unwrap();
        assert_eq!(
            json,
            r#"{"event":"completed","vertex":{"id":"sha256:ab","name":"[1/2] RUN x"},"duration":1.234}"#
        );
        let c = Collector::default();
        c.report(Event::Cached { vertex: v });
        assert_eq!(c.events().len(), 1);
    }
}
