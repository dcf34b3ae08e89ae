//! The `Solver` facade: a build graph in, the target's filesystem out, through the
//! scheduler with the store as its cache.

use std::collections::{BTreeMap, HashMap};
use std::path::PathBuf;
use std::sync::Arc;

use strata_graph::{Graph, Input, Op as GraphOp, Source};
use strata_progress::Reporter;
use strata_scheduler::{CancellationToken, Op, Scheduler, SolveError, Vertex};
use strata_snapshot::{Chain, Layers};
use strata_store::Store;

use crate::content::StatCache;
use crate::op::{
    FileRunner, ImageRunner, LayoutRunner, LocalRunner, MergeRunner, ScratchRunner, Unsupported,
};
use crate::output::StoreCache;
use crate::Output;

/// Everything a solve needs besides the graph.
#[derive(Debug, Clone, Default)]
pub struct SolveOptions {
    /// Local directories by source name (`context` and named `--build-context`s).
    pub local_dirs: BTreeMap<String, PathBuf>,
    /// Concurrent executions (default: the number of CPUs).
    pub parallelism: Option<usize>,
    /// The OCI runtime for RUN (`--runtime`).
    pub runtime: crate::RuntimeChoice,
    /// Build secrets for `RUN --mount=type=secret` (`--secret`).
    pub secrets: crate::Secrets,
    /// SSH agents for `RUN --mount=type=ssh` (`--ssh`).
    pub ssh: crate::SshAgents,
    /// `--allow security.insecure`: `RUN --security=insecure` may run.
    pub allow_insecure: bool,
    /// Where a failing RUN leaves its state for `strata debug shell` (see
    /// [`FailedStep`](crate::FailedStep)); on the store's file system.
    pub keep_failed: Option<PathBuf>,
    /// `--cache-from`/`--cache-to`: imported records, and what the solve used.
    pub sharing: Option<Arc<crate::CacheSharing>>,
}

pub struct Solver {
    store: Store,
    layers: Arc<Layers>,
    stat: Arc<StatCache>,
    runtimes: Arc<crate::Runtimes>,
    reads: crate::ReadLog,
}

impl Solver {
    pub fn new(store: Store) -> Result<Self, strata_snapshot::Error> {
        let layers = Arc::new(Layers::new(store.root(), store.tmp_dir())?);
        // The build's pin lease, taken now so that what it stores from here on is
        // newer than the lease (a collection never sweeps that as a leftover).
        let _ = store.hold();
        let stat = Arc::new(
            StatCache::load(&store.root().join("statcache")).with_tmp_dir(store.tmp_dir()),
        );
        let runtimes = Arc::new(
            crate::Runtimes::new(store.tmp_dir().join("runtime")).with_pid_dir(store.procs_dir()),
        );
        Ok(Solver {
            store,
            layers,
            stat,
            runtimes,
            reads: Default::default(),
        })
    }

    /// The files each step read from local directories in this solver's solves.
    pub fn reads(&self) -> &crate::ReadLog {
        &self.reads
    }

    pub fn layers(&self) -> &Arc<Layers> {
        &self.layers
    }

    pub fn store(&self) -> &Store {
        &self.store
    }

    /// Solves `target` (and what it needs) and returns its filesystem.
    pub async fn solve(
        &self,
        graph: &Graph,
        target: Input,
        opts: &SolveOptions,
        reporter: Arc<dyn Reporter>,
        cancel: CancellationToken,
    ) -> Result<Chain, SolveError> {
        let closure = graph.closure(target.vertex);
        let mut index = HashMap::new();
        let mut vertices = Vec::with_capacity(closure.len());
        for v in &closure {
            let mut op = self.runner(&v.op, opts);
            if let Some(sharing) = &opts.sharing {
                op = Arc::new(crate::sharing::FetchInputs {
                    inner: op,
                    store: self.store.clone(),
                    layers: self.layers.clone(),
                    sharing: sharing.clone(),
                });
            }
            let inputs = v.inputs.iter().map(|i| index[&i.vertex]).collect();
            index.insert(v.id, vertices.len());
            vertices.push(Vertex {
                id: v.id.0,
                name: if v.meta.name.is_empty() {
                    v.op.summary()
                } else {
                    v.meta.name.clone()
                },
                inputs,
                op,
                ignore_cache: v.meta.ignore_cache,
            });
        }
        let target_index = index[&target.vertex];
        let parallelism = opts.parallelism.unwrap_or_else(|| {
            std::thread::available_parallelism()
                .map(|n| n.get())
                .unwrap_or(2)
        });
        let cache = StoreCache {
            store: self.store.clone(),
            layers: self.layers.clone(),
        };
        let sharing = opts
            .sharing
            .clone()
            .map(|sharing| crate::sharing::SharingCache {
                local: StoreCache {
                    store: self.store.clone(),
                    layers: self.layers.clone(),
                },
                sharing,
            });
        let cache: &dyn strata_scheduler::CacheMap<Output> = match &sharing {
            Some(s) => s,
            None => &cache,
        };
        let result = Scheduler::new(parallelism)
            .solve(vertices, &[target_index], cache, reporter, cancel)
            .await;
        let _ = self.stat.save();
        let out = result?.into_iter().next().expect("one result per target");
        match out {
            Output::Fs(chain) => Ok(chain),
            Output::Dir { path, .. } => Err(SolveError::Failed {
                vertex: "target".into(),
                id: target.vertex.0,
                source: strata_scheduler::OpError::new(format!(
                    "the target is a local directory ({}), not a filesystem",
                    path.display()
                )),
            }),
        }
    }

    fn runner(&self, op: &GraphOp, opts: &SolveOptions) -> Arc<dyn Op<Output>> {
        let tmp = self.store.tmp_dir().to_path_buf();
        match op {
            GraphOp::Source(Source::Scratch) => Arc::new(ScratchRunner),
            GraphOp::Source(Source::Image {
                reference,
                platform,
                digest,
            }) => Arc::new(ImageRunner {
                store: self.store.clone(),
                layers: self.layers.clone(),
                reference: reference.clone(),
                digest: *digest,
                platform: platform.clone(),
            }),
            GraphOp::Source(Source::OciLayout {
                path,
                digest: Some(digest),
                ..
            }) => Arc::new(LayoutRunner {
                store: self.store.clone(),
                layers: self.layers.clone(),
                path: PathBuf::from(path),
                digest: *digest,
                platform: strata_oci::Platform::host(),
            }),
            GraphOp::Source(Source::OciLayout { path, .. }) => Arc::new(Unsupported(format!(
                "OCI layout {path}: no image was resolved in it"
            ))),
            GraphOp::Source(Source::Local { name, exclude, .. }) => match opts.local_dirs.get(name)
            {
                Some(p) => Arc::new(LocalRunner {
                    path: p.clone(),
                    ignore: exclude.clone(),
                }),
                None => Arc::new(Unsupported(format!(
                    "no directory was given for the build context {name:?}"
                ))),
            },
            GraphOp::Source(Source::Http {
                url,
                checksum,
                filename,
            }) => Arc::new(crate::op::HttpRunner::new(
                self.store.clone(),
                self.layers.clone(),
                crate::op::HttpSpec {
                    url: url.clone(),
                    checksum: *checksum,
                    filename: filename.clone(),
                },
            )),
            GraphOp::Source(Source::Git {
                remote,
                reference,
                subdir,
                keep_git_dir,
            }) => Arc::new(crate::op::GitRunner::new(
                self.store.clone(),
                self.layers.clone(),
                tmp,
                crate::op::GitSpec {
                    remote: remote.clone(),
                    reference: reference.clone(),
                    subdir: subdir.clone(),
                    keep_git_dir: *keep_git_dir,
                },
            )),
            GraphOp::Exec(e) => Arc::new(crate::op::ExecRunner {
                exec: e.clone(),
                store: self.store.clone(),
                layers: self.layers.clone(),
                stat: self.stat.clone(),
                tmp: tmp.clone(),
                runtimes: self.runtimes.clone(),
                runtime: opts.runtime.clone(),
                secrets: opts.secrets.clone(),
                ssh: opts.ssh.clone(),
                allow_insecure: opts.allow_insecure,
                keep_failed: opts.keep_failed.clone(),
            }),
            GraphOp::File(f) => Arc::new(FileRunner {
                store: self.store.clone(),
                op: f.clone(),
                layers: self.layers.clone(),
                stat: self.stat.clone(),
                tmp,
                reads: self.reads.clone(),
            }),
            GraphOp::Merge(_) => Arc::new(MergeRunner),
        }
    }
}
