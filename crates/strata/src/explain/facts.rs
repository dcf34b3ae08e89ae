//! What a step's result depends on, in terms a person recognises: the build-args and
//! ENV its process sees, its base image, the context files it read, its instruction and
//! its input steps. Taken from the build graph and the solver's [`ReadLog`] after a
//! solve; never holds a secret (secrets reach RUN through mounts the graph names by id
//! only).

use std::collections::{BTreeMap, BTreeSet, HashMap};

use serde::{Deserialize, Serialize};
use strata_digest::{key, Digest};
use strata_graph::{Graph, Op, Source, Vertex, VertexId};
use strata_ops::ReadLog;

/// A step as the history names it: `[build 2/4] RUN make` → stage `build`, position 2.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StepName {
    pub stage: String,
    pub position: u32,
    pub instruction: String,
}

impl StepName {
    /// `None` for vertices the user did not write (the build context, internal steps).
    pub fn parse(name: &str) -> Option<StepName> {
        let rest = name.strip_prefix('[')?;
        let (label, instruction) = rest.split_once("] ")?;
        let (stage_pos, _total) = label.rsplit_once('/')?;
        let (stage, position) = match stage_pos.rsplit_once(' ') {
            Some((stage, pos)) => (stage.to_string(), pos),
            None => (String::new(), stage_pos),
        };
        Some(StepName {
            stage,
            position: position.parse().ok()?,
            instruction: instruction.to_string(),
        })
    }
}

/// The base image of a step's stage.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Base {
    pub reference: String,
    pub digest: Option<String>,
}

/// Local files a step read.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Files {
    /// Path → `blake3:HEX` of its content (`sha256:HEX` in records of older builds).
    pub listed: BTreeMap<String, String>,
    /// Read but not listed (the list is bounded).
    pub unlisted: usize,
    /// A digest of every file read, listed or not.
    #[serde(default)]
    pub all: String,
}

/// An input step: its name and fingerprint.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct InputFact {
    pub name: String,
    pub fingerprint: String,
}

/// Everything [`super::diff`] compares.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Facts {
    #[serde(default)]
    pub args: BTreeMap<String, String>,
    #[serde(default)]
    pub env: BTreeMap<String, String>,
    /// USER, WORKDIR, network and security mode of a RUN.
    #[serde(default)]
    pub settings: BTreeMap<String, String>,
    #[serde(default)]
    pub base: Option<Base>,
    /// Stored apart (`StepRecord::files`), once per distinct set.
    #[serde(skip)]
    pub files: Option<Files>,
    #[serde(default)]
    pub inputs: Vec<InputFact>,
}

/// One step of a solved graph with its facts.
pub struct Step {
    pub id: VertexId,
    pub name: String,
    pub ignore_cache: bool,
    /// `None` for vertices the user did not write.
    pub step: Option<StepName>,
    pub fingerprint: Digest,
    pub facts: Facts,
    /// Positions (in the step list) of the input steps.
    pub inputs: Vec<usize>,
}

/// The steps `target` needs, inputs first, with their facts. `arg_names` are the names
/// the Dockerfile declares with ARG (and the `--build-arg`s given): those variables of
/// a RUN's environment are build-args, the others ENV.
pub fn steps(
    graph: &Graph,
    target: VertexId,
    reads: &ReadLog,
    arg_names: &BTreeSet<String>,
) -> Vec<Step> {
    let closure = graph.closure(target);
    let mut at: HashMap<VertexId, usize> = HashMap::new();
    let mut out: Vec<Step> = Vec::with_capacity(closure.len());
    for v in closure {
        let inputs: Vec<usize> = v.inputs.iter().map(|i| at[&i.vertex]).collect();
        let mut facts = Facts::default();
        if let Op::Exec(e) = &v.op {
            for kv in &e.env {
                let (k, val) = kv.split_once('=').unwrap_or((kv, ""));
                let map = if arg_names.contains(k) {
                    &mut facts.args
                } else {
                    &mut facts.env
                };
                map.insert(k.to_string(), recorded_value(k, val));
            }
            facts.settings.insert("USER".into(), e.user.clone());
            facts.settings.insert("WORKDIR".into(), e.cwd.clone());
            facts
                .settings
                .insert("network".into(), format!("{:?}", e.network).to_lowercase());
            facts.settings.insert(
                "security".into(),
                format!("{:?}", e.security).to_lowercase(),
            );
        }
        facts.base = base_of(v).or_else(|| inputs.first().and_then(|&i| out[i].facts.base.clone()));
        facts.files = reads.get(&v.id.0).map(|r| Files {
            listed: r
                .files
                .into_iter()
                .map(|(p, h)| (p, format!("blake3:{}", Digest::from_bytes(h).hex())))
                .collect(),
            unlisted: r.unlisted,
            all: r.all.to_string(),
        });
        facts.inputs = inputs
            .iter()
            .map(|&i| InputFact {
                name: out[i].name.clone(),
                fingerprint: out[i].fingerprint.to_string(),
            })
            .collect();
        let input_fps: Vec<Digest> = inputs.iter().map(|&i| out[i].fingerprint).collect();
        let fingerprint = key::encode(
            "strata/explain-fingerprint",
            &(v.id.0, input_fps, &facts.files),
        );
        at.insert(v.id, out.len());
        out.push(Step {
            id: v.id,
            name: v.meta.name.clone(),
            ignore_cache: v.meta.ignore_cache,
            step: StepName::parse(&v.meta.name),
            fingerprint,
            facts,
            inputs,
        });
    }
    out
}

/// Marks a value the history does not show.
pub const HIDDEN: &str = "hidden:";

/// A variable's value as the history keeps it: for a name that looks secret
/// (`API_TOKEN`, `DB_PASSWORD`: the SecretsUsedInArgOrEnv rule), only a short digest,
/// enough to tell that it changed.
fn recorded_value(name: &str, value: &str) -> String {
    if strata_instructions::is_secret_name(name) {
        let d = strata_digest::sha256(format!("{name}\0{value}"));
        format!("{HIDDEN}{}", d.short())
    } else {
        value.to_string()
    }
}

fn base_of(v: &Vertex) -> Option<Base> {
    match &v.op {
        Op::Source(Source::Image {
            reference, digest, ..
        }) => Some(Base {
            reference: reference.clone(),
            digest: digest.map(|d| d.to_string()),
        }),
        Op::Source(Source::OciLayout { path, tag, digest }) => Some(Base {
            reference: match tag {
                Some(t) => format!("oci-layout://{path}:{t}"),
                None => format!("oci-layout://{path}"),
            },
            digest: digest.map(|d| d.to_string()),
        }),
        Op::Source(Source::Scratch) => Some(Base {
            reference: "scratch".into(),
            digest: None,
        }),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn step_names_parse() {
        assert_eq!(
            StepName::parse("[build 2/4] RUN make -j2"),
            Some(StepName {
                stage: "build".into(),
                position: 2,
                instruction: "RUN make -j2".into()
            })
        );
        assert_eq!(
            StepName::parse("[3/3] COPY a b").map(|s| (s.stage, s.position)),
            Some((String::new(), 3))
        );
        assert_eq!(StepName::parse("load build context"), None);
        assert_eq!(recorded_value("VERSION", "1.0"), "1.0");
        let hidden = recorded_value("API_TOKEN", "abc");
        assert!(
            hidden.starts_with(HIDDEN) && !hidden.contains("abc"),
            "{hidden}"
        );
        assert_ne!(hidden, recorded_value("API_TOKEN", "abd"));
        assert_eq!(StepName::parse("[x/y] RUN"), None);
    }
}
