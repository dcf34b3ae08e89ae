//! `strata debug shell BUILD_ID [-- CMD…]` and `strata build --on-error=shell`: a
//! process in the file system of a build's failed RUN step, as the command left it,
//! with the step's env, user, workdir and mounts (secrets and SSH agents left out).
//!
//! A failed RUN's state is kept under `ROOT/debug/BUILD_ID/` (its overlay upper
//! directory and a `state.json`); the newest [`KEEP`] of them, none older than
//! [`KEEP_FOR`], survive each build.

use std::io::IsTerminal;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::{Duration, SystemTime};

use anyhow::Context as _;
use clap::{Args, ValueEnum};
use strata_store::Store;

use crate::diagnostics::Usage;

/// How many failed steps are kept.
pub const KEEP: usize = 5;
/// How long a failed step is kept.
pub const KEEP_FOR: Duration = Duration::from_secs(3 * 24 * 3600);

/// `strata build --on-error`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, ValueEnum)]
pub enum OnError {
    /// Stop; keep the failed RUN's state for `strata debug shell BUILD_ID`.
    #[default]
    Fail,
    /// On a terminal, open a shell in the failed RUN's file system.
    Shell,
}

#[derive(Debug, Args)]
pub struct ShellArgs {
    /// The id `strata build` printed for the failed build.
    #[arg(value_name = "BUILD_ID")]
    pub build: String,
    /// OCI runtime: `auto`, `runc`, `crun` or a path.
    #[arg(
        long,
        env = "STRATA_RUNTIME",
        value_name = "RUNTIME",
        default_value = "auto"
    )]
    pub runtime: strata_ops::RuntimeChoice,
    /// What to run (default: `/bin/sh`), after `--`.
    #[arg(last = true, value_name = "CMD")]
    pub command: Vec<String>,
}

/// Where a build's failed step is kept.
pub fn kept_dir(store: &Store, build: &str) -> PathBuf {
    store.root().join("debug").join(build)
}

/// Removes kept failed steps past [`KEEP`] or older than [`KEEP_FOR`].
pub fn prune(store: &Store) {
    let entries = std::fs::read_dir(store.root().join("debug"));
    let mut kept: Vec<(SystemTime, PathBuf)> = entries
        .into_iter()
        .flatten()
        .flatten()
        .map(|e| {
            let t = e.metadata().and_then(|m| m.modified());
            (t.unwrap_or(SystemTime::UNIX_EPOCH), e.path())
        })
        .collect();
    kept.sort_by_key(|k| std::cmp::Reverse(k.0));
    let now = SystemTime::now();
    for (i, (t, path)) in kept.into_iter().enumerate() {
        let old = now.duration_since(t).unwrap_or_default() > KEEP_FOR;
        if i >= KEEP || old {
            let _ = std::fs::remove_dir_all(&path);
        }
    }
    // The layers under a kept step are held from garbage collection while it is
    // kept; release the holds of those that are gone (pruned above, or removed by
    // hand).
    let Ok(holds) = store.kept() else { return };
    for holder in holds {
        let Some(build) = holder.strip_prefix("debug ") else {
            continue;
        };
        if !kept_dir(store, build).join(strata_ops::STATE_FILE).exists() {
            let _ = store.unkeep(&holder);
        }
    }
}

pub fn run(args: ShellArgs, root: Option<&PathBuf>) -> anyhow::Result<ExitCode> {
    if args.build.is_empty() || !args.build.chars().all(|c| c.is_ascii_alphanumeric()) {
        return Err(Usage(format!("{:?} is not a build id", args.build)).into());
    }
    let store = crate::store::open(root)?;
    let dir = kept_dir(&store, &args.build);
    if !dir.join(strata_ops::STATE_FILE).exists() {
        return Err(Usage(format!(
            "build {} kept no failed RUN step (only the last {KEEP} failed builds are kept, for {} days)",
            args.build,
            KEEP_FOR.as_secs() / 86_400
        ))
        .into());
    }
    let command = if args.command.is_empty() {
        vec!["/bin/sh".to_string()]
    } else {
        args.command
    };
    let code = shell(&store, &dir, &args.runtime, command)?;
    Ok(ExitCode::from(code.clamp(0, 255) as u8))
}

/// Runs `command` in the kept step at `dir`, attached to this terminal; its exit code.
pub fn shell(
    store: &Store,
    dir: &Path,
    runtime: &strata_ops::RuntimeChoice,
    command: Vec<String>,
) -> anyhow::Result<i32> {
    let step = strata_ops::FailedStep::load(dir)?;
    let left_out = step.left_out();
    if !left_out.is_empty() {
        eprintln!(
            "note: secret and ssh mounts are not available here: {}",
            left_out.join(", ")
        );
    }
    let terminal = std::io::stdin().is_terminal();
    let rt = tokio::runtime::Runtime::new().context("starting the async runtime")?;
    let status = rt.block_on(async {
        // Ctrl-C is for the process in the container, not for strata.
        tokio::spawn(async { while tokio::signal::ctrl_c().await.is_ok() {} });
        strata_ops::debug_shell(strata_ops::ShellRequest {
            store,
            dir,
            runtime,
            args: command,
            terminal,
        })
        .await
    });
    let status = match status {
        Ok(s) => s,
        Err(e @ strata_ops::DebugError::Mount(_)) => {
            return Err(anyhow::Error::new(e).context(format!(
                "debugging {} (hint: garbage collection may have removed the layers below \
                 it; build again to keep a new state)",
                step.name
            )))
        }
        Err(e) => return Err(anyhow::Error::new(e).context(format!("debugging {}", step.name))),
    };
    Ok(status.code())
}

/// After a failed build: open a shell in the failed RUN (`--on-error=shell` on a
/// terminal), or say how to get there.
pub fn after_failure(
    store: &Store,
    build: &str,
    on_error: OnError,
    runtime: &strata_ops::RuntimeChoice,
    program: &str,
) {
    let dir = kept_dir(store, build);
    let Ok(step) = strata_ops::FailedStep::load(&dir) else {
        return;
    };
    if on_error == OnError::Shell && std::io::stdin().is_terminal() {
        eprintln!(
            "{} failed (exit code {}): opening {program} in its file system; exit to end",
            step.name, step.exit_code
        );
        if let Err(e) = shell(store, &dir, runtime, vec![program.to_string()]) {
            eprintln!("error: {e:#}");
        }
        return;
    }
    eprintln!(
        "hint: the failed step's file system is kept: `strata debug shell {build}` opens a shell in it \
         (`strata debug shell {build} -- CMD…` runs CMD)"
    );
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn prune_keeps_the_newest_recent_states() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(dir.path()).unwrap();
        let now = SystemTime::now();
        // b0 newest … b6 oldest, all within KEEP_FOR: the 5 newest stay.
        for i in 0..7u64 {
            let d = kept_dir(&store, &format!("b{i}"));
            std::fs::create_dir_all(d.join("upper")).unwrap();
            let t = now - Duration::from_secs(i * 60);
            std::fs::File::open(&d).unwrap().set_modified(t).unwrap();
        }
        prune(&store);
        let mut left: Vec<String> = std::fs::read_dir(store.root().join("debug"))
            .unwrap()
            .map(|e| e.unwrap().file_name().into_string().unwrap())
            .collect();
        left.sort();
        assert_eq!(left, ["b0", "b1", "b2", "b3", "b4"]);
    }

    #[test]
    fn an_old_state_goes_even_when_few_are_kept() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(dir.path()).unwrap();
        let old = kept_dir(&store, "old");
        std::fs::create_dir_all(&old).unwrap();
        let t = SystemTime::now() - KEEP_FOR - Duration::from_secs(60);
        std::fs::File::open(&old).unwrap().set_modified(t).unwrap();
        let new = kept_dir(&store, "new");
        std::fs::create_dir_all(&new).unwrap();
        prune(&store);
        assert!(!old.exists());
        assert!(new.exists());
    }
}
