//! BuildKit's plain progress: `#N name`, `#N CACHED`, `#N 0.123 log`, `#N DONE 0.4s`.

use std::collections::HashMap;
use std::io::Write;
use std::sync::Mutex;
use std::time::Instant;

use strata_progress::{Event, Reporter};

pub struct Plain<W: Write + Send> {
    inner: Mutex<State<W>>,
}

struct State<W> {
    out: W,
    numbers: HashMap<String, usize>,
    started: HashMap<String, Instant>,
    t0: Instant,
    cached: usize,
    done: usize,
}

impl<W: Write + Send> Plain<W> {
    pub fn new(out: W) -> Self {
        Plain {
            inner: Mutex::new(State {
                out,
                numbers: HashMap::new(),
                started: HashMap::new(),
                t0: Instant::now(),
                cached: 0,
                done: 0,
            }),
        }
    }

    #[cfg(test)]
    pub fn into_inner(self) -> W {
        self.inner.into_inner().unwrap().out
    }
}

impl<W: Write + Send> State<W> {
    /// The vertex's number, printing its header line the first time.
    fn number(&mut self, id: &str, name: &str) -> usize {
        if let Some(n) = self.numbers.get(id) {
            return *n;
        }
        let n = self.numbers.len() + 1;
        self.numbers.insert(id.to_string(), n);
        let _ = writeln!(self.out, "\n#{n} {name}");
        n
    }
}

impl<W: Write + Send> Reporter for Plain<W> {
    fn report(&self, event: Event) {
        let mut s = self.inner.lock().expect("progress lock");
        match event {
            Event::Started { vertex } => {
                s.number(&vertex.id, &vertex.name);
                s.started.insert(vertex.id, Instant::now());
            }
            Event::Cached { vertex } => {
                let n = s.number(&vertex.id, &vertex.name);
                s.cached += 1;
                let _ = writeln!(s.out, "#{n} CACHED");
            }
            Event::Completed { vertex, duration } => {
                let n = s.number(&vertex.id, &vertex.name);
                s.done += 1;
                let _ = writeln!(s.out, "#{n} DONE {:.1}s", duration.as_secs_f64());
            }
            Event::Failed { vertex, error } => {
                let n = s.number(&vertex.id, &vertex.name);
                let _ = writeln!(s.out, "#{n} ERROR: {error}");
            }
            Event::Progress {
                vertex,
                what,
                current,
                total,
            } => {
                let n = s.number(&vertex.id, &vertex.name);
                match total {
                    Some(t) => {
                        let _ = writeln!(s.out, "#{n} {what} {} / {}", human(current), human(t));
                    }
                    None => {
                        let _ = writeln!(s.out, "#{n} {what} {}", human(current));
                    }
                }
            }
            Event::Log { vertex, text, .. } => {
                let n = s.number(&vertex.id, &vertex.name);
                let t = s
                    .started
                    .get(&vertex.id)
                    .map(|t| t.elapsed())
                    .unwrap_or_default();
                for line in text.lines() {
                    let _ = writeln!(s.out, "#{n} {:.3} {line}", t.as_secs_f64());
                }
            }
            Event::Warning { message } => {
                let _ = writeln!(s.out, "WARNING: {message}");
            }
            Event::Explain { vertex, reasons } => {
                let n = s.number(&vertex.id, &vertex.name);
                for r in reasons {
                    let _ = writeln!(s.out, "#{n} CACHE MISS: {r}");
                }
            }
        }
        let _ = s.out.flush();
    }
}

impl<W: Write + Send> super::Display for Plain<W> {
    fn finish(&self, ok: bool) {
        let mut s = self.inner.lock().expect("progress lock");
        let t = s.t0.elapsed();
        let (done, cached) = (s.done, s.cached);
        let word = if ok { "finished" } else { "failed" };
        let _ = writeln!(
            s.out,
            "\n{word} in {:.1}s: {done} step(s) run, {cached} cached",
            t.as_secs_f64()
        );
    }
}

pub fn human(n: u64) -> String {
    const U: [&str; 5] = ["B", "kB", "MB", "GB", "TB"];
    let mut v = n as f64;
    let mut i = 0;
    while v >= 1000.0 && i < U.len() - 1 {
        v /= 1000.0;
        i += 1;
    }
    if i == 0 {
        format!("{n}B")
    } else {
        format!("{v:.2}{}", U[i])
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;
    use strata_progress::VertexRef;

    #[test]
    fn buildkit_like_lines() {
        let p = Plain::new(Vec::new());
        let a = VertexRef {
            id: "a".into(),
            name: "[1/2] COPY . .".into(),
        };
        let b = VertexRef {
            id: "b".into(),
            name: "[2/2] RUN make".into(),
        };
        p.report(Event::Cached { vertex: a });
        p.report(Event::Started { vertex: b.clone() });
        p.report(Event::Completed {
            vertex: b,
            duration: Duration::from_millis(420),
        });
        let out = String::from_utf8(p.into_inner()).unwrap();
        assert_eq!(
            out,
            "\n#1 [1/2] COPY . .\n#1 CACHED\n\n#2 [2/2] RUN make\n#2 DONE 0.4s\n"
        );
        assert_eq!(human(999), "999B");
        assert_eq!(human(1_500_000), "1.50MB");
    }
}
