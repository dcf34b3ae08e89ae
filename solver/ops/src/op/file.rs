//! File ops (COPY, ADD, WORKDIR's mkdir, heredoc files…): a new layer written over a
//! read-only view of the base.

use std::sync::Arc;

use sha2::{Digest as _, Sha256};
use strata_digest::Digest;
use strata_graph::{FileAction, FileOp};
use strata_patternmatcher::PatternMatcher;
use strata_scheduler::{BoxFuture, Context, Op, OpError};
use strata_snapshot::{Chain, Layers};

use super::blocking;
use crate::content::{content_digest_reads, StatCache};
use crate::copy::{copy, CopyEnv, Reuse};
use crate::fileop::{apply, resolve_owner};
use crate::reads::ReadLog;
use crate::view::View;
use crate::Output;

pub struct FileRunner {
    pub op: FileOp,
    pub store: strata_store::Store,
    pub layers: Arc<Layers>,
    pub stat: Arc<StatCache>,
    pub tmp: std::path::PathBuf,
    /// Where the files read from local directories are noted.
    pub reads: ReadLog,
}

fn ignore_of(patterns: &[String]) -> Result<Option<PatternMatcher>, OpError> {
    if patterns.is_empty() {
        return Ok(None);
    }
    PatternMatcher::new(patterns)
        .map(Some)
        .map_err(|e| OpError::new(format!("invalid .dockerignore: {e}")))
}

impl Op<Output> for FileRunner {
    /// What the copies read from local directories, plus the keys of the other inputs.
    fn content_key<'a>(
        &'a self,
        cx: &'a Context,
        inputs: &'a [Output],
    ) -> BoxFuture<'a, Result<Option<Digest>, OpError>> {
        let reads_local = inputs.iter().any(|i| matches!(i, Output::Dir { .. }));
        if !reads_local {
            return Box::pin(async { Ok(None) });
        }
        let op = self.op.clone();
        let inputs = inputs.to_vec();
        let keys = cx.input_keys().to_vec();
        let stat = self.stat.clone();
        let (reads, vertex) = (self.reads.clone(), cx.id());
        Box::pin(blocking(move || {
            let mut h = Sha256::new();
            h.update(strata_digest::key::encode("strata/file-op", &op).as_bytes());
            for (i, input) in inputs.iter().enumerate() {
                h.update((i as u64).to_le_bytes());
                match input {
                    Output::Dir { path, ignore } => {
                        let ignore = ignore_of(ignore)?;
                        for a in &op.actions {
                            if let FileAction::Copy(c) = a {
                                if c.input == i {
                                    let (d, read) = content_digest_reads(
                                        path,
                                        ignore.as_ref(),
                                        c,
                                        false,
                                        &stat,
                                    )
                                    .map_err(OpError::new)?;
                                    reads.add(vertex, read);
                                    h.update(d.as_bytes());
                                }
                            }
                        }
                    }
                    Output::Fs(chain) => {
                        // The exact content of a filesystem input is its layer list.
                        let _ = keys.get(i);
                        for d in &chain.0 {
                            h.update(d.as_bytes());
                        }
                    }
                }
            }
            Ok(Some(Digest::from_hasher(h)))
        }))
    }

    fn exec<'a>(
        &'a self,
        cx: &'a Context,
        inputs: &'a [Output],
    ) -> BoxFuture<'a, Result<Output, OpError>> {
        let op = self.op.clone();
        let inputs = inputs.to_vec();
        let layers = self.layers.clone();
        let store = self.store.clone();
        let tmp = self.tmp.clone();
        let token = cx.cancellation_token().clone();
        let stat = self.stat.clone();
        let vertex = cx.id();
        Box::pin(blocking(move || {
            let base_chain = match op.base {
                Some(i) => inputs
                    .get(i)
                    .and_then(Output::chain)
                    .cloned()
                    .ok_or_else(|| OpError::new("the base of a file op is not a filesystem"))?,
                None => Chain::empty(),
            };
            let base = View::open(&layers, &base_chain, &tmp)?;
            // The layer this step made last time over the same base, if still stored.
            let memo =
                strata_digest::key::encode("strata/previous-file-layer", &(vertex, &base_chain));
            let prev_id = store
                .cache_get(&memo)
                .ok()
                .flatten()
                .and_then(|r| r.value.as_str().and_then(|s| s.parse::<Digest>().ok()))
                .filter(|d| {
                    crate::records::pin(&store, &memo, &[strata_store::Resource::Layer(*d)]);
                    layers.has(d)
                });
            let prev = prev_id.map(|d| layers.path(&d));
            let new = layers.begin().map_err(OpError::new)?;
            let diff = new.path().to_path_buf();
            for action in &op.actions {
                if token.is_cancelled() {
                    return Err(OpError::cancelled());
                }
                match action {
                    FileAction::Copy(c) => {
                        let owner = match &c.chown {
                            Some(ch) => {
                                Some(resolve_owner(Some(ch), base.path()).map_err(OpError::new)?)
                            }
                            None => None,
                        };
                        let src = inputs
                            .get(c.input)
                            .ok_or_else(|| OpError::new("copy source input missing"))?;
                        match src {
                            Output::Dir { path, ignore } => {
                                let ignore = ignore_of(ignore)?;
                                let env = CopyEnv {
                                    src_root: path,
                                    src_ignore: ignore.as_ref(),
                                    from_context: true,
                                    base_root: base.path(),
                                    diff: &diff,
                                    owner,
                                    reuse: prev.as_deref().map(|p| Reuse {
                                        prev: p,
                                        stat: &stat,
                                    }),
                                };
                                copy(&env, c).map_err(OpError::new)?;
                            }
                            Output::Fs(chain) => {
                                let view = View::open(&layers, chain, &tmp)?;
                                let env = CopyEnv {
                                    src_root: view.path(),
                                    src_ignore: None,
                                    from_context: false,
                                    base_root: base.path(),
                                    diff: &diff,
                                    owner,
                                    reuse: None,
                                };
                                copy(&env, c).map_err(OpError::new)?;
                            }
                        }
                    }
                    other => apply(other, base.path(), &diff).map_err(OpError::new)?,
                }
            }
            drop(base);
            // Unchanged files are hardlinks into `prev`: naming resumes after them.
            let diff_id = super::commit_layer_after(&store, &layers, new, prev_id.as_ref())?;
            let now = std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map(|d| d.as_secs())
                .unwrap_or(0);
            crate::records::pin(&store, &memo, &[strata_store::Resource::Layer(diff_id)]);
            let _ = store.cache_put(
                &memo,
                &strata_store::CacheRecord {
                    value: serde_json::Value::String(diff_id.to_string()),
                    created: now,
                    last_used: now,
                    use_count: 0,
                    description: "previous layer of a file step (incremental COPY)".into(),
                    size: 0,
                },
            );
            Ok(Output::Fs(base_chain.with(diff_id)))
        }))
    }
}
