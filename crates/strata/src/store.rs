//! Opening the local store at `--root`.

use std::path::PathBuf;

use anyhow::Context as _;
use strata_store::Store;

/// `--root`, `STRATA_ROOT`, or the default: `/var/lib/strata` for root,
/// `$XDG_DATA_HOME/strata` (or `~/.local/share/strata`) for other users.
pub fn root(flag: Option<&PathBuf>) -> PathBuf {
    if let Some(r) = flag {
        return r.clone();
    }
    if rustix::process::geteuid().is_root() {
        return PathBuf::from("/var/lib/strata");
    }
    match std::env::var_os("XDG_DATA_HOME") {
        Some(x) if !x.is_empty() => PathBuf::from(x).join("strata"),
        _ => {
            PathBuf::from(std::env::var_os("HOME").unwrap_or_default()).join(".local/share/strata")
        }
    }
}

pub fn open(flag: Option<&PathBuf>) -> anyhow::Result<Store> {
    let r = root(flag);
    std::fs::create_dir_all(&r)
        .with_context(|| format!("creating the store at {}", r.display()))?;
    Store::open(&r).with_context(|| format!("opening the store at {}", r.display()))
}

/// The store if it already exists (for commands that should not create one).
pub fn open_existing(flag: Option<&PathBuf>) -> Option<Store> {
    let r = root(flag);
    r.join("meta.db")
        .exists()
        .then(|| Store::open(&r).ok())
        .flatten()
}
