//! One JSON object per event per line, with a `time` (seconds since the build began).

use std::io::Write;
use std::sync::Mutex;
use std::time::Instant;

use strata_progress::{Event, Reporter};

pub struct Json<W: Write + Send> {
    inner: Mutex<(W, Instant)>,
}

impl<W: Write + Send> Json<W> {
    pub fn new(out: W) -> Self {
        Json {
            inner: Mutex::new((out, Instant::now())),
        }
    }
}

impl<W: Write + Send> Reporter for Json<W> {
    fn report(&self, event: Event) {
        let mut g = self.inner.lock().expect("progress lock");
        let mut v = serde_json::to_value(&event).unwrap_or_default();
        v["time"] = serde_json::json!((g.1.elapsed().as_secs_f64() * 1000.0).round() / 1000.0);
        let _ = writeln!(g.0, "{v}");
    }
}

impl<W: Write + Send> super::Display for Json<W> {
    fn finish(&self, ok: bool) {
        let mut g = self.inner.lock().expect("progress lock");
        let t = g.1.elapsed().as_secs_f64();
        let _ = writeln!(
            g.0,
            "{}",
            serde_json::json!({"event": "finished", "ok": ok, "time": t})
        );
    }
}
