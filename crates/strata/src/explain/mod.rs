//! Build history and cache-miss explanations.
//!
//! Every build gets an id and leaves a record in the store: each step the user wrote
//! (stage, position, instruction), whether it ran or came from the cache, a fingerprint
//! of what it depends on and its explainable [`facts`]. A step that ran is compared
//! with its nearest earlier record (same Dockerfile and stage; same instruction, else
//! same position) and the differences ([`diff`]) are stored with it, so
//! `strata build --explain` and `strata cache explain` say why it missed.

pub mod diff;
pub mod facts;

use std::collections::{BTreeSet, HashMap};
use std::sync::{mpsc, Arc, Mutex};

use strata_graph::{Graph, VertexId};
use strata_ops::ReadLog;
use strata_progress::{Event, Reporter, VertexRef};
use strata_store::{BuildRecord, StepRecord, Store};

/// How a step went in this build.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Outcome {
    Ran,
    Cached,
    Failed,
}

impl Outcome {
    fn as_str(o: Option<Outcome>) -> &'static str {
        match o {
            Some(Outcome::Ran) => "ran",
            Some(Outcome::Cached) => "cached",
            Some(Outcome::Failed) => "failed",
            None => "skipped",
        }
    }
}

type Outcomes = Arc<Mutex<HashMap<String, Outcome>>>;

fn outcome_of(outcomes: &Outcomes, id: &VertexId) -> Option<Outcome> {
    let map = outcomes.lock().unwrap_or_else(|e| e.into_inner());
    map.get(&id.to_string()).copied()
}

/// Passes events on and notes which steps ran, hit the cache or failed; with
/// [`Tracker::explain_live`], explains each step as it starts.
pub struct Tracker {
    inner: Arc<dyn Reporter>,
    outcomes: Outcomes,
    live: Mutex<Option<Live>>,
}

/// The thread that explains steps as they start.
struct Live {
    tx: mpsc::Sender<VertexId>,
    thread: std::thread::JoinHandle<()>,
}

impl Tracker {
    pub fn new(inner: Arc<dyn Reporter>) -> Self {
        Tracker {
            inner,
            outcomes: Arc::default(),
            live: Mutex::new(None),
        }
    }

    fn outcome(&self, id: &VertexId) -> Option<Outcome> {
        outcome_of(&self.outcomes, id)
    }

    /// Explains each step that starts, on a thread of its own (the store is read
    /// there, not on the solver's threads): an `explain` event follows its `started`.
    pub fn explain_live(&self, history: &History, graph: &Graph, reads: &ReadLog) {
        let (tx, rx) = mpsc::channel::<VertexId>();
        let (history, graph, reads) = (history.clone(), graph.clone(), reads.clone());
        let (inner, outcomes) = (Arc::clone(&self.inner), Arc::clone(&self.outcomes));
        let thread = std::thread::spawn(move || {
            for id in rx {
                let steps = facts::steps(&graph, id, &reads, &history.arg_names);
                let Some(at) = steps.iter().position(|s| s.id == id) else {
                    continue;
                };
                if steps[at].step.is_none() {
                    continue;
                }
                match history.explain(&steps, at, &|v| outcome_of(&outcomes, v)) {
                    Ok(reasons) => inner.report(Event::Explain {
                        vertex: VertexRef {
                            id: id.to_string(),
                            name: steps[at].name.clone(),
                        },
                        reasons,
                    }),
                    Err(e) => eprintln!("warning: explaining {}: {e:#}", steps[at].name),
                }
            }
        });
        *self.live.lock().unwrap_or_else(|e| e.into_inner()) = Some(Live { tx, thread });
    }

    /// Waits for the live explanations still being made; whether there were any.
    fn stop_live(&self) -> bool {
        let live = self.live.lock().unwrap_or_else(|e| e.into_inner()).take();
        match live {
            Some(Live { tx, thread }) => {
                drop(tx);
                let _ = thread.join();
                true
            }
            None => false,
        }
    }
}

impl Reporter for Tracker {
    fn report(&self, event: Event) {
        let noted = match &event {
            Event::Started { vertex } => Some((vertex, Outcome::Ran)),
            Event::Cached { vertex } => Some((vertex, Outcome::Cached)),
            Event::Failed { vertex, error } if error != "cancelled" => {
                Some((vertex, Outcome::Failed))
            }
            _ => None,
        };
        let mut started = None;
        if let Some((vertex, outcome)) = noted {
            let mut map = self.outcomes.lock().unwrap_or_else(|e| e.into_inner());
            map.insert(vertex.id.clone(), outcome);
            if outcome == Outcome::Ran {
                started = vertex.id.parse().ok().map(VertexId);
            }
        }
        self.inner.report(event);
        if let Some(id) = started {
            if let Some(live) = &*self.live.lock().unwrap_or_else(|e| e.into_inner()) {
                let _ = live.tx.send(id);
            }
        }
    }
}

/// A build being recorded.
#[derive(Clone)]
pub struct History {
    pub store: Store,
    pub id: String,
    /// The Dockerfile's absolute path: steps are compared within it only.
    pub project: String,
    /// ARG names (and given `--build-arg`s): which RUN variables are build-args.
    pub arg_names: BTreeSet<String>,
    pub created: u64,
}

/// How the build ended, for its record.
pub struct Ending<'a> {
    pub ok: bool,
    /// The image ID produced.
    pub image: Option<String>,
    pub names: &'a [String],
}

impl History {
    pub fn new(store: Store, project: String, arg_names: BTreeSet<String>) -> Self {
        let created = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap_or_default();
        let seed = format!("{project}\0{}\0{}", created.as_nanos(), std::process::id());
        History {
            store,
            id: strata_digest::sha256(seed).hex()[..12].to_string(),
            project,
            arg_names,
            created: created.as_secs(),
        }
    }

    /// The history of a build of `def`.
    pub fn for_build(store: &Store, def: &crate::context::Definition) -> Self {
        let project = if def.path.as_os_str() == "-" {
            let ctx = std::fs::canonicalize(&def.context).unwrap_or(def.context.clone());
            format!("{}/(stdin Dockerfile)", ctx.display())
        } else {
            std::fs::canonicalize(&def.path)
                .unwrap_or(def.path.clone())
                .display()
                .to_string()
        };
        let mut names: BTreeSet<String> = def.options.build_args.keys().cloned().collect();
        if let Ok((df, _)) = strata_dockerfile::parse_and_lint(&def.source, None) {
            let all = df
                .global_args
                .iter()
                .chain(df.stages.iter().flat_map(|s| s.instructions.iter()));
            for inst in all {
                if let strata_instructions::Command::Arg(decls) = &inst.command {
                    names.extend(decls.iter().map(|d| d.name.clone()));
                }
            }
        }
        History::new(store.clone(), project, names)
    }

    /// Records the build; with `explain`, reports why each step that ran missed the
    /// cache. A history that cannot be written costs a warning, never the build.
    pub fn finish(
        &self,
        solved: (&Graph, VertexId, &ReadLog),
        tracker: &Tracker,
        end: Ending<'_>,
        explain: bool,
    ) {
        let (graph, target, reads) = solved;
        let explained_live = tracker.stop_live();
        match self.record(graph, target, reads, tracker, end) {
            Ok(explained) if explain && !explained_live => {
                for (vertex, reasons) in explained {
                    tracker.report(Event::Explain { vertex, reasons });
                }
            }
            Ok(_) => {}
            Err(e) => eprintln!("warning: recording the build history: {e:#}"),
        }
    }

    /// Why `steps[at]` ran: its facts against its nearest earlier record.
    fn explain(
        &self,
        steps: &[facts::Step],
        at: usize,
        outcome: &dyn Fn(&VertexId) -> Option<Outcome>,
    ) -> anyhow::Result<Vec<String>> {
        let s = &steps[at];
        let Some(name) = &s.step else {
            return Ok(Vec::new());
        };
        let prev = self.store.history_previous_step(
            &self.project,
            &name.stage,
            &name.instruction,
            name.position,
            &self.id,
        )?;
        let prev_facts: Option<facts::Facts> = prev.as_ref().map(|p| {
            let mut f: facts::Facts = serde_json::from_value(p.facts.clone()).unwrap_or_default();
            f.files = p.files.clone().and_then(|v| serde_json::from_value(v).ok());
            f
        });
        let fingerprint = s.fingerprint.to_string();
        let now = diff::Current {
            instruction: &name.instruction,
            facts: &s.facts,
            fingerprint: &fingerprint,
            ignore_cache: s.ignore_cache,
            inputs_ran: s
                .inputs
                .iter()
                .filter(|&&i| outcome(&steps[i].id) == Some(Outcome::Ran))
                .filter(|&&i| steps[i].step.is_some())
                .map(|&i| steps[i].name.as_str())
                .collect(),
        };
        let before = prev
            .as_ref()
            .zip(prev_facts.as_ref())
            .map(|(p, f)| diff::Earlier {
                instruction: &p.instruction,
                facts: f,
                fingerprint: &p.fingerprint,
            });
        Ok(diff::reasons(&now, before.as_ref()))
    }

    /// Explains the steps that ran, records the build and returns the explanations
    /// (each step that ran or failed with its reasons), inputs first.
    pub fn record(
        &self,
        graph: &Graph,
        target: VertexId,
        reads: &ReadLog,
        tracker: &Tracker,
        end: Ending<'_>,
    ) -> anyhow::Result<Vec<(VertexRef, Vec<String>)>> {
        let steps = facts::steps(graph, target, reads, &self.arg_names);
        let mut records = Vec::new();
        let mut explained = Vec::new();
        for (at, s) in steps.iter().enumerate() {
            let Some(name) = &s.step else { continue };
            let outcome = tracker.outcome(&s.id);
            let mut explanation = Vec::new();
            if matches!(outcome, Some(Outcome::Ran | Outcome::Failed)) {
                explanation = self.explain(&steps, at, &|v| tracker.outcome(v))?;
                explained.push((
                    VertexRef {
                        id: s.id.to_string(),
                        name: s.name.clone(),
                    },
                    explanation.clone(),
                ));
            }
            records.push(StepRecord {
                stage: name.stage.clone(),
                position: name.position,
                instruction: name.instruction.clone(),
                name: s.name.clone(),
                outcome: Outcome::as_str(outcome).into(),
                fingerprint: s.fingerprint.to_string(),
                facts: serde_json::to_value(&s.facts)?,
                files: s
                    .facts
                    .files
                    .as_ref()
                    .map(serde_json::to_value)
                    .transpose()?,
                explanation,
            });
        }
        let build = BuildRecord {
            id: self.id.clone(),
            created: self.created,
            project: self.project.clone(),
            status: if end.ok { "succeeded" } else { "failed" }.into(),
            image: end.image,
            names: end.names.to_vec(),
        };
        self.store.history_put(&build, &records)?;
        Ok(explained)
    }
}

/// The explanations of a recorded build, as `strata cache explain` prints them.
pub fn render(build: &BuildRecord, steps: &[StepRecord]) -> String {
    let count = |o: &str| steps.iter().filter(|s| s.outcome == o).count();
    let mut out = format!(
        "build {} ({}, {}): {} step(s) ran, {} cached{}\n",
        build.id,
        crate::commands::build::rfc3339(build.created as i64),
        build.status,
        count("ran") + count("failed"),
        count("cached"),
        match count("failed") {
            0 => String::new(),
            n => format!(", {n} failed"),
        }
    );
    for s in steps.iter().filter(|s| !s.explanation.is_empty()) {
        out.push_str(&s.name);
        if s.outcome == "failed" {
            out.push_str(" (failed)");
        }
        out.push('\n');
        for r in &s.explanation {
            out.push_str("  ");
            out.push_str(r);
            out.push('\n');
        }
    }
    out
}
