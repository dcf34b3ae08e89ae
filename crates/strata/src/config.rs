//! The configuration file: TOML at `$STRATA_CONFIG`, else
//! `$XDG_CONFIG_HOME/strata/config.toml` (`~/.config/strata/config.toml`), else
//! `/etc/strata/config.toml`; the first that exists wins, none is an empty config.
//! A set `$STRATA_CONFIG` must name a readable file.
//!
//! ```toml
//! [registry."docker.io"]
//! mirrors = ["mirror.example.com:5000"]   # pulls try these first, in order
//! [registry."reg.lan:5000"]
//! insecure = true                         # no certificate checks, or plain HTTP
//!                                         # (false: verified HTTPS on loopback too)
//! ca = "/etc/strata/reg.lan.pem"          # or a list of PEM files
//! [gc]
//! enabled = true                          # collect after each build (default)
//! keep-storage = "10GB"                   # build cache kept, least recently used goes
//! [transfer]
//! push-parallelism = 4                    # blobs uploaded at once
//! timeout = 60                            # seconds without progress: stalled
//! attempts = 5                            # tries per request
//! ```
//!
//! Loaded once, on first use ([`get`]); unknown keys are errors, reported with the
//! file and line.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::OnceLock;

use anyhow::{Context as _, Result};
use serde::Deserialize;

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Config {
    /// Per registry host (`docker.io`, `host:port`).
    #[serde(default)]
    pub registry: BTreeMap<String, RegistryConfig>,
    /// Garbage collection after builds (`commands/gc_auto.rs`).
    #[serde(default)]
    pub gc: crate::commands::gc_auto::GcConfig,
    /// Pulls and pushes: parallelism, stall timeout, attempts (`registry.rs`).
    #[serde(default)]
    pub transfer: crate::registry::TransferConfig,
}

#[derive(Debug, Default, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RegistryConfig {
    /// Registries (`host[:port]`) pulls try first, in order, before this one.
    #[serde(default)]
    pub mirrors: Vec<String>,
    /// `true`: HTTPS without certificate checks if the registry speaks TLS, else
    /// plain HTTP (Docker's insecure registries); `false`: verified HTTPS even on
    /// loopback (where plain HTTP is the default).
    #[serde(default)]
    pub insecure: Option<bool>,
    /// PEM files of CAs to trust for this registry (one path or a list).
    #[serde(default, deserialize_with = "one_or_many")]
    pub ca: Vec<PathBuf>,
}

fn one_or_many<'de, D: serde::Deserializer<'de>>(d: D) -> Result<Vec<PathBuf>, D::Error> {
    #[derive(Deserialize)]
    #[serde(untagged)]
    enum OneOrMany {
        One(PathBuf),
        Many(Vec<PathBuf>),
    }
    Ok(match OneOrMany::deserialize(d)? {
        OneOrMany::One(p) => vec![p],
        OneOrMany::Many(v) => v,
    })
}

/// The configuration file to read, if any exists.
pub fn path() -> Option<PathBuf> {
    if let Some(p) = std::env::var_os("STRATA_CONFIG").filter(|p| !p.is_empty()) {
        return Some(PathBuf::from(p));
    }
    let user = std::env::var_os("XDG_CONFIG_HOME")
        .filter(|d| !d.is_empty())
        .map(PathBuf::from)
        .or_else(|| std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".config")))
        .map(|d| d.join("strata/config.toml"));
    user.into_iter()
        .chain([PathBuf::from("/etc/strata/config.toml")])
        .find(|p| p.exists())
}

impl Config {
    /// Parses `text` (read from `file`); errors name `file:line:column`.
    pub fn parse(file: &Path, text: &str) -> Result<Config> {
        toml::from_str(text).map_err(|e| {
            let (line, col) = match e.span() {
                Some(span) => {
                    let before = &text[..span.start.min(text.len())];
                    let line = before.matches('\n').count() + 1;
                    let col = before.len() - before.rfind('\n').map_or(0, |i| i + 1) + 1;
                    (line, col)
                }
                None => (1, 1),
            };
            anyhow::anyhow!(
                "{}:{line}:{col}: invalid configuration: {}",
                file.display(),
                e.message().trim_end()
            )
        })
    }

    /// Reads the configuration file ([`path`]), or the empty configuration.
    pub fn load() -> Result<Config> {
        let Some(p) = path() else {
            return Ok(Config::default());
        };
        let text = fs_err::read_to_string(&p).context("reading the configuration file")?;
        Config::parse(&p, &text)
    }

    /// The settings for one registry host (empty when it has none).
    #[cfg(test)]
    pub fn registry(&self, host: &str) -> RegistryConfig {
        self.registry.get(host).cloned().unwrap_or_default()
    }
}

static CONFIG: OnceLock<Config> = OnceLock::new();
static CLI_CAS: OnceLock<Vec<PathBuf>> = OnceLock::new();

/// Records the global `--registry-ca` files (once, before any client is made).
pub fn set_registry_cas(files: Vec<PathBuf>) {
    let _ = CLI_CAS.set(files);
}

/// Registry client options from the configuration and the command line: insecure
/// registries, mirrors (a `http://` one is insecure), the CAs of `--registry-ca` (for
/// every registry) and of each `ca` (for its registry).
pub fn client_options() -> Result<strata_registry::ClientOptions> {
    let cli_cas = CLI_CAS.get().map_or(&[][..], Vec::as_slice);
    Ok(options_from(get()?, cli_cas))
}

fn options_from(cfg: &Config, cli_cas: &[PathBuf]) -> strata_registry::ClientOptions {
    let mut opts = strata_registry::ClientOptions::default();
    opts.ca_files.extend(cli_cas.iter().cloned());
    for (host, r) in &cfg.registry {
        match r.insecure {
            Some(true) => opts.insecure.push(host.clone()),
            Some(false) => opts.secure.push(host.clone()),
            None => {}
        }
        if !r.ca.is_empty() {
            opts.registry_ca_files.insert(host.clone(), r.ca.clone());
        }
        // Docker writes mirrors as URLs: keep the host, and plain HTTP when it says so.
        let mut mirrors = Vec::new();
        for m in &r.mirrors {
            let mirror = strata_registry::registry_host(m);
            if m.starts_with("http://") && !opts.insecure.contains(&mirror) {
                opts.insecure.push(mirror.clone());
            }
            mirrors.push(mirror);
        }
        if !mirrors.is_empty() {
            opts.mirrors.insert(host.clone(), mirrors);
        }
    }
    opts
}

/// The configuration, read on first use.
pub fn get() -> Result<&'static Config> {
    if let Some(c) = CONFIG.get() {
        return Ok(c);
    }
    let c = Config::load()?;
    Ok(CONFIG.get_or_init(|| c))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_registry_settings() {
        let c = Config::parse(
            Path::new("c.toml"),
            r#"
[registry."docker.io"]
mirrors = ["127.0.0.1:5001", "mirror.lan"]

[registry."reg.lan:5000"]
insecure = true
ca = "/ca.pem"

[registry."other"]
ca = ["/a.pem", "/b.pem"]
"#,
        )
        .unwrap();
        assert_eq!(
            c.registry("docker.io").mirrors,
            ["127.0.0.1:5001", "mirror.lan"]
        );
        let lan = c.registry("reg.lan:5000");
        assert_eq!(lan.insecure, Some(true));
        assert_eq!(lan.ca, [PathBuf::from("/ca.pem")]);
        assert_eq!(c.registry("other").ca.len(), 2);
        assert_eq!(c.registry("nowhere").insecure, None);
    }

    #[test]
    fn client_options_from_the_registry_sections() {
        let c = Config::parse(
            Path::new("c.toml"),
            r#"
[registry."docker.io"]
mirrors = ["https://mirror.gcr.io", "http://m.lan:5000/", "127.0.0.1:5001"]
[registry."a:1"]
insecure = true
ca = "/a.pem"
[registry."127.0.0.1:5443"]
insecure = false
"#,
        )
        .unwrap();
        let o = options_from(&c, &[PathBuf::from("/cli.pem")]);
        assert_eq!(
            o.mirrors["docker.io"],
            ["mirror.gcr.io", "m.lan:5000", "127.0.0.1:5001"]
        );
        assert_eq!(o.insecure, ["a:1", "m.lan:5000"]);
        assert_eq!(o.secure, ["127.0.0.1:5443"]);
        assert_eq!(o.ca_files, [PathBuf::from("/cli.pem")]);
        assert_eq!(o.registry_ca_files["a:1"], [PathBuf::from("/a.pem")]);
        assert_eq!(o.registry_ca_files.len(), 1);
    }

    #[test]
    fn errors_name_the_file_and_line() {
        let e = Config::parse(
            Path::new("/x/config.toml"),
            "[registry.\"a\"]\nmirrors = [\"m\"]\nmirror = [\"typo\"]\n",
        )
        .unwrap_err()
        .to_string();
        assert!(e.starts_with("/x/config.toml:3:1: "), "{e}");
        assert!(e.contains("mirror"), "{e}");
        let e = Config::parse(Path::new("c.toml"), "[registry\ninsecure = 1\n")
            .unwrap_err()
            .to_string();
        assert!(e.starts_with("c.toml:1:"), "{e}");
        let e = Config::parse(
            Path::new("c.toml"),
            "[registry.\"a\"]\ninsecure = \"yes\"\n",
        )
        .unwrap_err()
        .to_string();
        assert!(e.starts_with("c.toml:2:12: "), "{e}");
    }
}
