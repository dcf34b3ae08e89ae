//! Build history: one record per build and per step, so a cache miss can be explained
//! by comparing a step with its nearest earlier record (`strata build --explain`,
//! `strata cache explain`). The store keeps the facts as opaque JSON; the binary
//! decides what they hold (never secrets). Old builds are dropped past [`KEEP_BUILDS`].

use rusqlite::OptionalExtension;
use serde::{Deserialize, Serialize};

use crate::{Result, Store, StoreError};

/// How many builds the history keeps (the oldest go first).
pub const KEEP_BUILDS: u32 = 200;

/// One build.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct BuildRecord {
    pub id: String,
    /// Unix seconds.
    pub created: u64,
    /// What the build belongs to (the Dockerfile's absolute path): steps are compared
    /// within a project only.
    pub project: String,
    /// `running`, `succeeded` or `failed`.
    pub status: String,
    /// The image ID (config digest) it produced, if any.
    pub image: Option<String>,
    /// The names it gave the image.
    pub names: Vec<String>,
}

/// One step of a build.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct StepRecord {
    /// The stage name as the progress shows it (`build`, `stage-1`).
    pub stage: String,
    /// The instruction's position in its stage (1 is FROM).
    pub position: u32,
    /// The instruction as written (`RUN make`).
    pub instruction: String,
    /// The progress name (`[build 2/4] RUN make`).
    pub name: String,
    /// `ran`, `cached`, `failed` or `skipped`.
    pub outcome: String,
    /// A digest of everything the step's result depends on.
    pub fingerprint: String,
    /// What can explain a change (opaque here).
    pub facts: serde_json::Value,
    /// The local files it read (opaque here; stored once per distinct value).
    pub files: Option<serde_json::Value>,
    /// Why the step missed the cache, one sentence per reason.
    pub explanation: Vec<String>,
}

fn encode(build: &str, v: &impl Serialize) -> Result<String> {
    serde_json::to_string(v).map_err(|source| StoreError::EncodeHistory {
        build: build.to_string(),
        source,
    })
}

fn from_json<T: serde::de::DeserializeOwned>(index: usize, text: &str) -> rusqlite::Result<T> {
    serde_json::from_str(text).map_err(|e| {
        rusqlite::Error::FromSqlConversionFailure(index, rusqlite::types::Type::Text, Box::new(e))
    })
}

const STEP_COLUMNS: &str = "s.stage, s.position, s.instruction, s.name, s.outcome, \
     s.fingerprint, s.facts, s.explanation, f.files";

/// `build_steps s` with its file set `f`.
const STEPS: &str = "build_steps s LEFT JOIN build_file_sets f ON f.digest = s.files";

fn step(row: &rusqlite::Row<'_>) -> rusqlite::Result<StepRecord> {
    Ok(StepRecord {
        stage: row.get(0)?,
        position: row.get(1)?,
        instruction: row.get(2)?,
        name: row.get(3)?,
        outcome: row.get(4)?,
        fingerprint: row.get(5)?,
        facts: from_json(6, &row.get::<_, String>(6)?)?,
        explanation: from_json(7, &row.get::<_, String>(7)?)?,
        files: match row.get::<_, Option<String>>(8)? {
            Some(text) => Some(from_json(8, &text)?),
            None => None,
        },
    })
}

const BUILD_COLUMNS: &str = "id, created, project, status, image, names";

fn build(row: &rusqlite::Row<'_>) -> rusqlite::Result<BuildRecord> {
    Ok(BuildRecord {
        id: row.get(0)?,
        created: row.get(1)?,
        project: row.get(2)?,
        status: row.get(3)?,
        image: row.get(4)?,
        names: from_json(5, &row.get::<_, String>(5)?)?,
    })
}

impl Store {
    /// Records a build and its steps (replacing a record with the same id) and drops the
    /// oldest builds past [`KEEP_BUILDS`].
    pub fn history_put(&self, b: &BuildRecord, steps: &[StepRecord]) -> Result<()> {
        let names = encode(&b.id, &b.names)?;
        let rows = steps
            .iter()
            .map(|s| {
                let files = match &s.files {
                    Some(f) => {
                        let text = encode(&b.id, f)?;
                        Some((strata_digest::sha256(&text).to_string(), text))
                    }
                    None => None,
                };
                Ok((
                    encode(&b.id, &s.facts)?,
                    encode(&b.id, &s.explanation)?,
                    files,
                ))
            })
            .collect::<Result<Vec<_>>>()?;
        self.write(
            || format!("recording build {}", b.id),
            |tx| {
                tx.execute("DELETE FROM builds WHERE id = ?1", [&b.id])?;
                tx.execute(
                    &format!(
                        "INSERT INTO builds ({BUILD_COLUMNS}) VALUES (?1, ?2, ?3, ?4, ?5, ?6)"
                    ),
                    (&b.id, b.created, &b.project, &b.status, &b.image, &names),
                )?;
                let mut insert = tx.prepare(
                    "INSERT INTO build_steps (build, seq, stage, position, instruction, name,
                     outcome, fingerprint, facts, explanation, files)
                     VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11)",
                )?;
                let mut insert_files = tx.prepare(
                    "INSERT OR IGNORE INTO build_file_sets (digest, files) VALUES (?1, ?2)",
                )?;
                for (seq, (s, (facts, why, files))) in steps.iter().zip(&rows).enumerate() {
                    if let Some((digest, text)) = files {
                        insert_files.execute((digest, text))?;
                    }
                    insert.execute(rusqlite::params![
                        &b.id,
                        seq as i64,
                        &s.stage,
                        s.position,
                        &s.instruction,
                        &s.name,
                        &s.outcome,
                        &s.fingerprint,
                        facts,
                        why,
                        files.as_ref().map(|(d, _)| d)
                    ])?;
                }
                tx.execute(
                    "DELETE FROM builds WHERE id NOT IN
                     (SELECT id FROM builds ORDER BY created DESC, rowid DESC LIMIT ?1)",
                    [KEEP_BUILDS],
                )?;
                tx.execute(
                    "DELETE FROM build_file_sets WHERE digest NOT IN
                     (SELECT files FROM build_steps WHERE files IS NOT NULL)",
                    [],
                )?;
                Ok(())
            },
        )
    }

    /// The build with this id.
    pub fn history_build(&self, id: &str) -> Result<Option<BuildRecord>> {
        self.read(
            || format!("reading build {id}"),
            |c| {
                c.query_row(
                    &format!("SELECT {BUILD_COLUMNS} FROM builds WHERE id = ?1"),
                    [id],
                    build,
                )
                .optional()
            },
        )
    }

    /// The latest build that produced the image `image` (an image ID).
    pub fn history_build_of_image(&self, image: &str) -> Result<Option<BuildRecord>> {
        self.read(
            || format!("finding the build of {image}"),
            |c| {
                c.query_row(
                    &format!(
                        "SELECT {BUILD_COLUMNS} FROM builds WHERE image = ?1
                         ORDER BY created DESC, rowid DESC LIMIT 1"
                    ),
                    [image],
                    build,
                )
                .optional()
            },
        )
    }

    /// The steps of a build, in the order recorded.
    pub fn history_steps(&self, id: &str) -> Result<Vec<StepRecord>> {
        self.read(
            || format!("reading the steps of build {id}"),
            |c| {
                let mut stmt = c.prepare(&format!(
                    "SELECT {STEP_COLUMNS} FROM {STEPS} WHERE s.build = ?1 ORDER BY s.seq"
                ))?;
                let rows = stmt.query_map([id], step)?;
                rows.collect()
            },
        )
    }

    /// The nearest earlier record of a step: in the same project and stage, from the
    /// latest build other than `except` (and not after it), the one with the same
    /// instruction text if there is one, else the one at the same position.
    pub fn history_previous_step(
        &self,
        project: &str,
        stage: &str,
        instruction: &str,
        position: u32,
        except: &str,
    ) -> Result<Option<StepRecord>> {
        let query = |column: &str| {
            format!(
                "SELECT {STEP_COLUMNS} FROM {STEPS} JOIN builds b ON b.id = s.build
                 WHERE b.project = ?1 AND s.stage = ?2 AND s.{column} = ?3 AND b.id != ?4
                 AND s.outcome != 'skipped'
                 ORDER BY b.created DESC, b.rowid DESC LIMIT 1"
            )
        };
        self.read(
            || format!("finding an earlier record of [{stage} {position}] {instruction}"),
            |c| {
                let same_text = c
                    .query_row(
                        &query("instruction"),
                        rusqlite::params![project, stage, instruction, except],
                        step,
                    )
                    .optional()?;
                if same_text.is_some() {
                    return Ok(same_text);
                }
                c.query_row(
                    &query("position"),
                    rusqlite::params![project, stage, position, except],
                    step,
                )
                .optional()
            },
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn step_rec(stage: &str, position: u32, instruction: &str, outcome: &str) -> StepRecord {
        StepRecord {
            stage: stage.into(),
            position,
            instruction: instruction.into(),
            name: format!("[{stage} {position}/3] {instruction}"),
            outcome: outcome.into(),
            fingerprint: "f".into(),
            facts: serde_json::json!({"args": {"V": "1"}}),
            explanation: vec!["never built before".into()],
            files: Some(serde_json::json!({"src/a.c": "sha256:1"})),
        }
    }

    fn build_rec(id: &str, created: u64, image: Option<&str>) -> BuildRecord {
        BuildRecord {
            id: id.into(),
            created,
            project: "/ctx/Dockerfile".into(),
            status: "succeeded".into(),
            image: image.map(Into::into),
            names: vec!["app:latest".into()],
        }
    }

    #[test]
    fn builds_round_trip_and_previous_steps_prefer_the_same_instruction() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(dir.path()).unwrap();
        let a = build_rec("a", 10, Some("sha256:img"));
        let steps_a = vec![
            step_rec("build", 2, "RUN make", "ran"),
            step_rec("build", 3, "RUN test", "ran"),
        ];
        store.history_put(&a, &steps_a).unwrap();
        store
            .history_put(
                &build_rec("b", 20, None),
                &[step_rec("build", 2, "RUN make -j2", "ran")],
            )
            .unwrap();
        assert_eq!(store.history_build("a").unwrap(), Some(a.clone()));
        assert_eq!(store.history_steps("a").unwrap(), steps_a);
        assert_eq!(store.history_build_of_image("sha256:img").unwrap(), Some(a));
        assert_eq!(store.history_build_of_image("sha256:x").unwrap(), None);

        let p = |inst: &str, pos: u32, except: &str| {
            store
                .history_previous_step("/ctx/Dockerfile", "build", inst, pos, except)
                .unwrap()
                .map(|s| s.instruction)
        };
        // Same text wins over a later record at the same position.
        assert_eq!(p("RUN make", 2, "c").as_deref(), Some("RUN make"));
        // Else the latest at the same position.
        assert_eq!(p("RUN make -j4", 2, "c").as_deref(), Some("RUN make -j2"));
        // The build itself is never its own earlier record.
        assert_eq!(p("RUN make -j2", 2, "b").as_deref(), Some("RUN make"));
        assert_eq!(p("RUN other", 9, "c"), None);
        // Other projects never match.
        assert_eq!(
            store
                .history_previous_step("/other", "build", "RUN make", 2, "c")
                .unwrap(),
            None
        );
    }

    #[test]
    fn old_builds_are_dropped() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(dir.path()).unwrap();
        for i in 0..KEEP_BUILDS + 3 {
            let steps = [step_rec("s", 1, "FROM x", "ran")];
            store
                .history_put(&build_rec(&format!("b{i}"), u64::from(i), None), &steps)
                .unwrap();
        }
        assert_eq!(store.history_build("b0").unwrap(), None);
        assert_eq!(store.history_steps("b2").unwrap(), vec![]);
        assert!(store.history_build("b3").unwrap().is_some());
        // The builds' steps share one file set, kept while a step refers to it.
        let sets = |store: &Store| -> u32 {
            store
                .read(
                    || "test".into(),
                    |c| c.query_row("SELECT COUNT(*) FROM build_file_sets", [], |r| r.get(0)),
                )
                .unwrap()
        };
        assert_eq!(sets(&store), 1);
        assert_eq!(
            store.history_steps("b3").unwrap()[0].files,
            Some(serde_json::json!({"src/a.c": "sha256:1"}))
        );
        let other = StepRecord {
            files: None,
            ..step_rec("s", 1, "FROM x", "ran")
        };
        for i in 0..KEEP_BUILDS {
            let id = format!("c{i}");
            store
                .history_put(
                    &build_rec(&id, 1000 + u64::from(i), None),
                    std::slice::from_ref(&other),
                )
                .unwrap();
        }
        assert_eq!(sets(&store), 0);
    }
}
