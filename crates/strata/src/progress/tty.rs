//! The interactive display: one line per running step with its elapsed time and bytes,
//! `CACHED`/`DONE` marks as steps finish, a summary at the end (indicatif). Colour only
//! when `NO_COLOR` is unset.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use indicatif::{MultiProgress, ProgressBar, ProgressDrawTarget, ProgressStyle};
use strata_progress::{Event, Reporter};

pub struct Tty {
    multi: MultiProgress,
    inner: Mutex<State>,
    color: bool,
}

struct State {
    bars: HashMap<String, ProgressBar>,
    t0: Instant,
    done: usize,
    cached: usize,
}

impl Tty {
    pub fn new() -> Self {
        Tty {
            multi: MultiProgress::with_draw_target(ProgressDrawTarget::stderr()),
            inner: Mutex::new(State {
                bars: HashMap::new(),
                t0: Instant::now(),
                done: 0,
                cached: 0,
            }),
            color: std::env::var_os("NO_COLOR").is_none(),
        }
    }

    fn paint(&self, code: &str, s: &str) -> String {
        if self.color {
            format!("\x1b[{code}m{s}\x1b[0m")
        } else {
            s.to_string()
        }
    }

    fn line(&self, text: String) {
        let _ = self.multi.println(text);
    }
}

impl Reporter for Tty {
    fn report(&self, event: Event) {
        let mut s = self.inner.lock().expect("progress lock");
        match event {
            Event::Started { vertex } => {
                let bar = self.multi.add(ProgressBar::new_spinner());
                bar.set_style(
                    ProgressStyle::with_template("{spinner} {msg} {elapsed:>4}").expect("template"),
                );
                bar.set_message(vertex.name);
                bar.enable_steady_tick(Duration::from_millis(100));
                s.bars.insert(vertex.id, bar);
            }
            Event::Cached { vertex } => {
                s.cached += 1;
                self.line(format!("{} {}", self.paint("34", "CACHED"), vertex.name));
            }
            Event::Completed { vertex, duration } => {
                s.done += 1;
                if let Some(bar) = s.bars.remove(&vertex.id) {
                    bar.finish_and_clear();
                }
                self.line(format!(
                    "{} {} {:.1}s",
                    self.paint("32", "DONE  "),
                    vertex.name,
                    duration.as_secs_f64()
                ));
            }
            Event::Failed { vertex, error } => {
                if let Some(bar) = s.bars.remove(&vertex.id) {
                    bar.finish_and_clear();
                }
                self.line(format!(
                    "{} {}: {error}",
                    self.paint("31", "ERROR "),
                    vertex.name
                ));
            }
            Event::Progress {
                vertex,
                what,
                current,
                total,
            } => {
                if let Some(bar) = s.bars.get(&vertex.id) {
                    let amount = match total {
                        Some(t) => format!(
                            "{} / {}",
                            super::plain::human(current),
                            super::plain::human(t)
                        ),
                        None => super::plain::human(current),
                    };
                    bar.set_message(format!("{} ({what} {amount})", vertex.name));
                }
            }
            Event::Log { vertex, text, .. } => {
                for l in text.lines() {
                    self.line(format!(
                        "  {} {l}",
                        self.paint("2", &format!("{}:", short(&vertex.name)))
                    ));
                }
            }
            Event::Warning { message } => {
                self.line(format!("{} {message}", self.paint("33", "WARNING")))
            }
            Event::Explain { vertex, reasons } => {
                for r in reasons {
                    self.line(format!("{} {}: {r}", self.paint("36", "miss"), vertex.name));
                }
            }
        }
    }
}

fn short(name: &str) -> &str {
    name.split(']')
        .next()
        .map(|s| s.trim_start_matches('['))
        .unwrap_or(name)
}

impl super::Display for Tty {
    fn finish(&self, ok: bool) {
        let s = self.inner.lock().expect("progress lock");
        for bar in s.bars.values() {
            bar.finish_and_clear();
        }
        let word = if ok {
            self.paint("32", "Finished")
        } else {
            self.paint("31", "Failed")
        };
        self.line(format!(
            "{word} in {:.1}s: {} step(s) run, {} cached",
            s.t0.elapsed().as_secs_f64(),
            s.done,
            s.cached
        ));
    }
}
