//! `strata login` and `strata logout`: check credentials against the registry and
//! keep them where docker does (`$DOCKER_CONFIG/config.json` or
//! `~/.docker/config.json`, or the credential helper it names).

use std::io::Read;
use std::process::ExitCode;

use anyhow::{Context as _, Result};
use clap::Args;
use strata_registry::{Client, CredentialSource, Credentials, RegistryError, Stored};

use crate::diagnostics::Usage;

#[derive(Debug, Args)]
pub struct LoginArgs {
    /// User name.
    #[arg(short = 'u', long = "username", value_name = "USER")]
    pub username: Option<String>,
    /// Password (visible to other users of this machine; prefer --password-stdin).
    #[arg(short = 'p', long = "password", value_name = "PASSWORD")]
    pub password: Option<String>,
    /// Read the password from stdin.
    #[arg(long, conflicts_with = "password")]
    pub password_stdin: bool,
    /// The registry (`host[:port]`; default: docker.io).
    #[arg(value_name = "REGISTRY")]
    pub registry: Option<String>,
}

#[derive(Debug, Args)]
pub struct LogoutArgs {
    /// The registry (`host[:port]`; default: docker.io).
    #[arg(value_name = "REGISTRY")]
    pub registry: Option<String>,
}

fn config_path() -> Result<std::path::PathBuf> {
    strata_registry::docker_config_path()
        .context("neither DOCKER_CONFIG nor HOME is set: no place for config.json")
}

pub fn login(args: LoginArgs) -> Result<ExitCode> {
    let registry = strata_registry::registry_host(args.registry.as_deref().unwrap_or("docker.io"));
    let tty = rustix::termios::isatty(std::io::stdin());
    let username = match args.username.clone() {
        Some(u) => u,
        None if tty && !args.password_stdin => prompt("Username", false)?,
        None => {
            return Err(Usage(
                "strata login needs -u USER when stdin is not a terminal (and the password \
                 from --password-stdin or -p)"
                    .into(),
            )
            .into())
        }
    };
    let password = if let Some(p) = args.password {
        eprintln!(
            "WARNING! Using --password on the command line is insecure. Use --password-stdin."
        );
        p
    } else if args.password_stdin {
        let mut p = String::new();
        std::io::stdin()
            .read_to_string(&mut p)
            .context("reading the password from stdin")?;
        p.trim_end_matches(['\n', '\r']).to_string()
    } else if tty {
        prompt("Password", true)?
    } else {
        return Err(Usage(
            "stdin is not a terminal: give the password with --password-stdin (or -p)".into(),
        )
        .into());
    };
    if username.is_empty() || password.is_empty() {
        return Err(Usage("the user name and the password must not be empty".into()).into());
    }
    let creds = Credentials::Basic { username, password };
    let mut opts = crate::config::client_options()?;
    opts.credentials = CredentialSource::Static([(registry.clone(), creds.clone())].into());
    let client = Client::new(opts)?;
    let identity = client.check_credentials(&registry).map_err(|e| match e {
        RegistryError::Denied { status, .. } => anyhow::anyhow!(
            "login to {registry} failed: the registry refused the user name or password (HTTP {status})"
        ),
        e => anyhow::Error::from(e).context(format!("login to {registry} failed")),
    })?;
    // A refresh token from the registry's token service is kept instead of the
    // password, as docker does.
    let creds = identity.map_or(creds, Credentials::IdentityToken);
    let path = config_path()?;
    match strata_registry::store_credentials(&path, &registry, &creds)? {
        Stored::File(p) if matches!(creds, Credentials::Basic { .. }) => eprintln!(
            "WARNING! The password is stored unencrypted (base64) in {}; a credential helper \
             (credsStore in that file) keeps it in a keychain instead.",
            p.display()
        ),
        Stored::File(p) => eprintln!("An identity token is stored in {}.", p.display()),
        Stored::Helper(h) => eprintln!("Credentials stored by docker-credential-{h}."),
    }
    eprintln!("Login Succeeded");
    Ok(ExitCode::SUCCESS)
}

/// Asks on stderr and reads a line from the terminal on stdin; `hidden` turns the
/// echo off while the line is typed.
fn prompt(label: &str, hidden: bool) -> Result<String> {
    use rustix::termios::{tcgetattr, tcsetattr, LocalModes, OptionalActions};
    let stdin = std::io::stdin();
    eprint!("{label}: ");
    let saved = if hidden {
        let saved = tcgetattr(&stdin).context("reading the terminal's settings")?;
        let mut quiet = saved.clone();
        quiet.local_modes.remove(LocalModes::ECHO);
        tcsetattr(&stdin, OptionalActions::Now, &quiet).context("turning the echo off")?;
        Some(saved)
    } else {
        None
    };
    let mut line = String::new();
    let read = stdin.read_line(&mut line);
    if let Some(saved) = saved {
        let _ = tcsetattr(&stdin, OptionalActions::Now, &saved);
        eprintln!();
    }
    read.context("reading from the terminal")?;
    Ok(line.trim_end_matches(['\n', '\r']).to_string())
}

pub fn logout(args: LogoutArgs) -> Result<ExitCode> {
    let registry = strata_registry::registry_host(args.registry.as_deref().unwrap_or("docker.io"));
    let path = config_path()?;
    if strata_registry::erase_credentials(&path, &registry)? {
        eprintln!("Removing login credentials for {registry}");
    } else {
        eprintln!("Not logged in to {registry}");
    }
    Ok(ExitCode::SUCCESS)
}
