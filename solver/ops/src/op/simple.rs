use std::path::PathBuf;

use strata_scheduler::{BoxFuture, CachePolicy, Context, Op, OpError};
use strata_snapshot::Chain;

use crate::Output;

/// `FROM scratch`: the empty filesystem.
pub struct ScratchRunner;

impl Op<Output> for ScratchRunner {
    fn exec<'a>(
        &'a self,
        _: &'a Context,
        _: &'a [Output],
    ) -> BoxFuture<'a, Result<Output, OpError>> {
        Box::pin(async { Ok(Output::Fs(Chain::empty())) })
    }
}

/// A local directory (the build context or a named one). Never cached: what a step
/// reads from it is hashed by that step.
pub struct LocalRunner {
    pub path: PathBuf,
    pub ignore: Vec<String>,
}

impl Op<Output> for LocalRunner {
    fn cache_policy(&self) -> CachePolicy {
        CachePolicy::Never
    }
    fn exec<'a>(
        &'a self,
        _: &'a Context,
        _: &'a [Output],
    ) -> BoxFuture<'a, Result<Output, OpError>> {
        Box::pin(async {
            if !self.path.is_dir() {
                return Err(OpError::new(format!(
                    "build context {} is not a directory",
                    self.path.display()
                )));
            }
            Ok(Output::Dir {
                path: self.path.clone(),
                ignore: self.ignore.clone(),
            })
        })
    }
}

/// `COPY --link`: the inputs' layers stacked.
pub struct MergeRunner;

impl Op<Output> for MergeRunner {
    fn exec<'a>(
        &'a self,
        _: &'a Context,
        inputs: &'a [Output],
    ) -> BoxFuture<'a, Result<Output, OpError>> {
        Box::pin(async move {
            let mut chain = Chain::empty();
            for i in inputs {
                let c = i
                    .chain()
                    .ok_or_else(|| OpError::new("merge input is not a filesystem"))?;
                chain = chain.concat(c);
            }
            Ok(Output::Fs(chain))
        })
    }
}

/// An op this build cannot run yet, with the reason.
pub struct Unsupported(pub String);

impl Op<Output> for Unsupported {
    fn exec<'a>(
        &'a self,
        _: &'a Context,
        _: &'a [Output],
    ) -> BoxFuture<'a, Result<Output, OpError>> {
        Box::pin(async move { Err(OpError::new(self.0.clone())) })
    }
}
