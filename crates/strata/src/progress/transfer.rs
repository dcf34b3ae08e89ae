//! Progress of a pull or a push: one vertex for the transfer, a `Progress` event per
//! blob (bytes so far / size) at most every [`INTERVAL`] and when it completes, and a
//! log line for each blob that needed no transfer (already there, mounted).

use std::io::{self, Read, Write};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use strata_digest::Digest;
use strata_progress::{Event, Reporter, Stream, VertexRef};

/// Shortest time between two `Progress` events of one blob.
pub const INTERVAL: Duration = Duration::from_millis(250);

/// A pull or push shown as one step.
pub struct Transfer {
    reporter: Arc<dyn Reporter>,
    vertex: VertexRef,
    t0: Instant,
}

impl Transfer {
    /// `kind` is `pull` or `push`; `name` the reference.
    pub fn start(reporter: Arc<dyn Reporter>, kind: &str, name: &str) -> Transfer {
        let vertex = VertexRef {
            id: format!("{kind}:{name}"),
            name: format!("[{kind}] {name}"),
        };
        reporter.report(Event::Started {
            vertex: vertex.clone(),
        });
        Transfer {
            reporter,
            vertex,
            t0: Instant::now(),
        }
    }

    /// The bytes of one blob (`size` of them expected).
    pub fn blob(&self, digest: &Digest, size: u64) -> Arc<Meter> {
        Arc::new(Meter {
            reporter: self.reporter.clone(),
            vertex: self.vertex.clone(),
            what: digest.to_string(),
            total: size,
            state: Mutex::new((0, None)),
        })
    }

    /// A line about a blob that needed no bytes moved (`exists`, `mounted from …`).
    pub fn note(&self, digest: &Digest, what: &str) {
        self.reporter.report(Event::Log {
            vertex: self.vertex.clone(),
            stream: Stream::Stderr,
            text: format!("{digest}: {what}\n"),
        });
    }

    pub fn finish<T>(&self, result: anyhow::Result<T>) -> anyhow::Result<T> {
        match &result {
            Ok(_) => self.reporter.report(Event::Completed {
                vertex: self.vertex.clone(),
                duration: self.t0.elapsed(),
            }),
            Err(e) => self.reporter.report(Event::Failed {
                vertex: self.vertex.clone(),
                error: format!("{e:#}"),
            }),
        }
        result
    }
}

/// Counts one blob's bytes and reports them, throttled.
pub struct Meter {
    reporter: Arc<dyn Reporter>,
    vertex: VertexRef,
    what: String,
    total: u64,
    /// Bytes so far, and when they were last reported.
    state: Mutex<(u64, Option<Instant>)>,
}

impl Meter {
    /// Starts over (a retry).
    pub fn reset(&self) {
        *self.state.lock().expect("meter lock") = (0, None);
    }

    pub fn add(&self, n: u64) {
        let mut s = self.state.lock().expect("meter lock");
        s.0 += n;
        let now = Instant::now();
        let due = s.1.is_none_or(|t| now - t >= INTERVAL) || s.0 >= self.total;
        if due {
            s.1 = Some(now);
            self.reporter.report(Event::Progress {
                vertex: self.vertex.clone(),
                what: self.what.clone(),
                current: s.0,
                total: Some(self.total),
            });
        }
    }
}

/// Counts the bytes through `inner` (from zero: a retry starts over).
pub fn counted<T>(meter: &Arc<Meter>, inner: T) -> Counted<T> {
    meter.reset();
    Counted {
        inner,
        meter: meter.clone(),
    }
}

/// A reader or writer whose bytes a [`Meter`] counts.
pub struct Counted<T> {
    pub inner: T,
    meter: Arc<Meter>,
}

impl<W: Write> Write for Counted<W> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        let n = self.inner.write(buf)?;
        self.meter.add(n as u64);
        Ok(n)
    }

    fn flush(&mut self) -> io::Result<()> {
        self.inner.flush()
    }
}

impl<R: Read> Read for Counted<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let n = self.inner.read(buf)?;
        self.meter.add(n as u64);
        Ok(n)
    }
}
