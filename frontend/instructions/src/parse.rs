//! One AST node → one typed [`Instruction`].

use std::time::Duration;

use strata_parser::{
    parse_json_array, parse_name_or_name_val, parse_name_val, split_whitespace_words, Node,
};

use crate::flags::{Flags, Kind};
use crate::lint::{self, Linter};
use crate::mount::parse_mount;
use crate::{
    AddCopy, ArgDecl, Command, CommandLine, Healthcheck, Instruction, InstructionError,
    InstructionErrorKind as K, KeyValues, Onbuild, Run,
};

pub(crate) const KEYWORDS: &[&str] = &[
    "from",
    "run",
    "cmd",
    "label",
    "maintainer",
    "expose",
    "env",
    "add",
    "copy",
    "entrypoint",
    "volume",
    "user",
    "workdir",
    "arg",
    "onbuild",
    "stopsignal",
    "healthcheck",
    "shell",
];

const RUN_FLAGS: &[(&str, Kind)] = &[
    ("mount", Kind::Strings),
    ("network", Kind::String),
    ("security", Kind::String),
];
const COPY_FLAGS: &[(&str, Kind)] = &[
    ("from", Kind::String),
    ("chown", Kind::String),
    ("chmod", Kind::String),
    ("link", Kind::Bool),
    ("parents", Kind::Bool),
    ("exclude", Kind::Strings),
];
const ADD_FLAGS: &[(&str, Kind)] = &[
    ("chown", Kind::String),
    ("chmod", Kind::String),
    ("link", Kind::Bool),
    ("keep-git-dir", Kind::Bool),
    ("checksum", Kind::String),
    ("exclude", Kind::Strings),
    ("unpack", Kind::Bool),
];
const HEALTHCHECK_FLAGS: &[(&str, Kind)] = &[
    ("interval", Kind::String),
    ("timeout", Kind::String),
    ("start-period", Kind::String),
    ("start-interval", Kind::String),
    ("retries", Kind::String),
];
pub(crate) const FROM_FLAGS: &[(&str, Kind)] = &[("platform", Kind::String)];

/// Parses a node that is not FROM (FROM opens a stage; see `stages`).
pub fn parse_instruction(
    node: &Node,
    escape: char,
    lint: &mut Linter,
) -> Result<Instruction, InstructionError> {
    let span = node.span;
    let err = |kind| InstructionError::new(span, kind);
    let kw = node.keyword.to_ascii_lowercase();
    let no_flags = |name: &'static str| Flags::parse(name, &[], &node.flags, span).map(|_| ());
    let rest = node.rest.as_str();
    let command = match kw.as_str() {
        "run" => {
            let flags = Flags::parse("RUN", RUN_FLAGS, &node.flags, span)?;
            if rest.is_empty() {
                return Err(err(K::AtLeastOneArgument("RUN")));
            }
            let mounts = flags.strings("mount");
            let mut mounts_parsed = Vec::with_capacity(mounts.len());
            for m in &mounts {
                mounts_parsed.push(
                    parse_mount(m, &mut |v: &str| Ok(v.to_string()))
                        .map_err(|e| err(K::Mount(e)))?,
                );
            }
            let network = flags.string("network");
            if let Some(n) = &network {
                if !matches!(n.as_str(), "default" | "none" | "host") {
                    return Err(err(K::BadFlagValue {
                        flag: "network".into(),
                        message: format!(
                            "unsupported network mode {n:?} (use default, none or host)"
                        ),
                    }));
                }
            }
            let security = flags.string("security");
            if let Some(s) = &security {
                if !matches!(s.as_str(), "sandbox" | "insecure") {
                    return Err(err(K::BadFlagValue {
                        flag: "security".into(),
                        message: format!(
                            "unsupported security mode {s:?} (use sandbox or insecure)"
                        ),
                    }));
                }
            }
            Command::Run(Run {
                command: command_line(rest),
                heredocs: node.heredocs.clone(),
                mounts,
                mounts_parsed,
                network,
                security,
            })
        }
        "cmd" | "entrypoint" => {
            let name = if kw == "cmd" { "CMD" } else { "ENTRYPOINT" };
            no_flags(name)?;
            let cl = command_line(rest);
            if let CommandLine::Shell(s) = &cl {
                if s.is_empty() {
                    return Err(err(K::AtLeastOneArgument(name)));
                }
                lint.warn(
                    &lint::JSON_ARGS_RECOMMENDED,
                    span,
                    format!("JSON arguments recommended for {name} to prevent unintended behavior related to OS signals"),
                );
            }
            if name == "CMD" {
                Command::Cmd(cl)
            } else {
                Command::Entrypoint(cl)
            }
        }
        "shell" => {
            no_flags("SHELL")?;
            match parse_json_array(rest) {
                Some(v) if !v.is_empty() => Command::Shell(v),
                _ => return Err(err(K::JsonRequired("SHELL"))),
            }
        }
        "label" | "env" => {
            let name = if kw == "env" { "ENV" } else { "LABEL" };
            no_flags(name)?;
            let nv =
                parse_name_val(rest, name, escape).map_err(|e| err(K::Parse(e.to_string())))?;
            if nv.pairs.is_empty() {
                return Err(err(K::AtLeastOneArgument(name)));
            }
            if nv.pairs.iter().any(|(k, _)| k.is_empty()) {
                return Err(err(K::BlankName(name)));
            }
            if nv.legacy {
                lint.warn(
                    &lint::LEGACY_KEY_VALUE_FORMAT,
                    span,
                    format!("\"{name} key=value\" should be used instead of legacy \"{name} key value\" format"),
                );
            }
            if name == "ENV" {
                for (k, _) in &nv.pairs {
                    check_secret_name(lint, span, "ENV", k);
                }
            }
            let kv = KeyValues {
                pairs: nv.pairs,
                legacy: nv.legacy,
            };
            if name == "ENV" {
                Command::Env(kv)
            } else {
                Command::Label(kv)
            }
        }
        "expose" => {
            no_flags("EXPOSE")?;
            let ports = split_whitespace_words(rest);
            if ports.is_empty() {
                return Err(err(K::AtLeastOneArgument("EXPOSE")));
            }
            Command::Expose(ports)
        }
        "add" | "copy" => {
            let (name, spec) = if kw == "add" {
                ("ADD", ADD_FLAGS)
            } else {
                ("COPY", COPY_FLAGS)
            };
            let flags = Flags::parse(name, spec, &node.flags, span)?;
            let (mut words, json_form) = match parse_json_array(rest) {
                Some(v) => (v, true),
                None => (split_whitespace_words(rest), false),
            };
            if words.is_empty() {
                return Err(err(K::AtLeastOneArgument(name)));
            }
            if words.len() < 2 {
                return Err(err(K::NoDestination(name)));
            }
            let dest = words.pop().expect("two or more words");
            let ac = AddCopy {
                sources: words,
                dest,
                heredocs: node.heredocs.clone(),
                from: flags.string("from"),
                chown: flags.string("chown"),
                chmod: flags.string("chmod"),
                link: flags.bool("link").unwrap_or(false),
                parents: flags.bool("parents").unwrap_or(false),
                exclude: flags.strings("exclude"),
                keep_git_dir: flags.bool("keep-git-dir").unwrap_or(false),
                checksum: flags.string("checksum"),
                unpack: flags.bool("unpack"),
                json_form,
            };
            if name == "ADD" {
                Command::Add(ac)
            } else {
                Command::Copy(ac)
            }
        }
        "volume" => {
            no_flags("VOLUME")?;
            let vols = parse_json_array(rest).unwrap_or_else(|| split_whitespace_words(rest));
            if vols.is_empty() {
                return Err(err(K::AtLeastOneArgument("VOLUME")));
            }
            if vols.iter().any(|v| v.trim().is_empty()) {
                return Err(err(K::Parse(
                    "VOLUME specified can not be an empty string".into(),
                )));
            }
            Command::Volume(vols)
        }
        "user" | "workdir" | "stopsignal" | "maintainer" => {
            let name = match kw.as_str() {
                "user" => "USER",
                "workdir" => "WORKDIR",
                "stopsignal" => "STOPSIGNAL",
                _ => "MAINTAINER",
            };
            no_flags(name)?;
            if rest.is_empty() {
                return Err(err(K::ExactlyOneArgument(name)));
            }
            let value = rest.to_string();
            match name {
                "USER" => Command::User(value),
                "WORKDIR" => Command::Workdir(value),
                "STOPSIGNAL" => {
                    if split_whitespace_words(rest).len() != 1 {
                        return Err(err(K::ExactlyOneArgument(name)));
                    }
                    Command::StopSignal(value)
                }
                _ => {
                    lint.warn(
                        &lint::MAINTAINER_DEPRECATED,
                        span,
                        "Maintainer instruction is deprecated in favor of using label",
                    );
                    Command::Maintainer(value)
                }
            }
        }
        "arg" => {
            no_flags("ARG")?;
            let decls = parse_name_or_name_val(rest, "ARG", escape)
                .map_err(|e| err(K::Parse(e.to_string())))?;
            if decls.is_empty() {
                return Err(err(K::AtLeastOneArgument("ARG")));
            }
            if decls.iter().any(|(k, _)| k.is_empty()) {
                return Err(err(K::BlankName("ARG")));
            }
            for (k, _) in &decls {
                check_secret_name(lint, span, "ARG", k);
            }
            Command::Arg(
                decls
                    .into_iter()
                    .map(|(name, default)| ArgDecl { name, default })
                    .collect(),
            )
        }
        "onbuild" => {
            no_flags("ONBUILD")?;
            let Some(sub) = node.sub.as_deref() else {
                return Err(err(K::AtLeastOneArgument("ONBUILD")));
            };
            match sub.keyword.to_ascii_lowercase().as_str() {
                "onbuild" => return Err(err(K::OnbuildChain)),
                "from" | "maintainer" => {
                    return Err(err(K::OnbuildForbidden(sub.keyword.to_ascii_uppercase())))
                }
                _ => {}
            }
            let trigger = parse_instruction(sub, escape, lint)?;
            let expression = sub.original.trim().to_string();
            Command::Onbuild(Onbuild {
                expression,
                trigger: Box::new(trigger),
            })
        }
        "healthcheck" => Command::Healthcheck(parse_healthcheck(node, span)?),
        "from" => unreachable!("FROM is handled by the stage splitter"),
        _ => {
            return Err(err(K::UnknownInstruction {
                word: node.keyword.clone(),
                suggestion: lint::suggest(&node.keyword, KEYWORDS.iter().copied())
                    .map(str::to_ascii_uppercase),
            }))
        }
    };
    Ok(Instruction {
        command,
        span,
        original: node.original.clone(),
        keyword: node.keyword.clone(),
    })
}

fn command_line(rest: &str) -> CommandLine {
    match parse_json_array(rest) {
        Some(v) => CommandLine::Exec(v),
        None => CommandLine::Shell(rest.to_string()),
    }
}

/// BuildKit's SecretsUsedInArgOrEnv: a name token (split on `_`) that names a secret.
fn check_secret_name(lint: &mut Linter, span: strata_parser::Span, instruction: &str, name: &str) {
    if is_secret_name(name) {
        lint.warn(
            &lint::SECRETS_USED_IN_ARG_OR_ENV,
            span,
            format!(
                "Do not use ARG or ENV instructions for sensitive data ({instruction} {name:?})"
            ),
        );
    }
}

/// Does a variable name look like it holds a secret (BuildKit's SecretsUsedInArgOrEnv
/// rule: a token of the name, split on `_`, such as `TOKEN` or `PASSWORD`, and none
/// `PUBLIC`)?
pub fn is_secret_name(name: &str) -> bool {
    const SECRET: &[&str] = &[
        "apikey",
        "auth",
        "credential",
        "credentials",
        "key",
        "password",
        "pass",
        "pword",
        "passwd",
        "secret",
        "token",
    ];
    let lower = name.to_ascii_lowercase();
    let tokens: Vec<&str> = lower.split('_').collect();
    !tokens.contains(&"public") && tokens.iter().any(|t| SECRET.contains(t))
}

fn parse_healthcheck(
    node: &Node,
    span: strata_parser::Span,
) -> Result<Healthcheck, InstructionError> {
    let err = |m: String| InstructionError::new(span, K::Healthcheck(m));
    let flags = Flags::parse("HEALTHCHECK", HEALTHCHECK_FLAGS, &node.flags, span)?;
    let rest = node.rest.trim();
    let (kind, args) = match rest.split_once(char::is_whitespace) {
        Some((k, a)) => (k, a.trim()),
        None => (rest, ""),
    };
    if kind.is_empty() {
        return Err(InstructionError::new(
            span,
            K::AtLeastOneArgument("HEALTHCHECK"),
        ));
    }
    if kind.eq_ignore_ascii_case("none") {
        if !args.is_empty() {
            return Err(err("HEALTHCHECK NONE takes no arguments".into()));
        }
        if !node.flags.is_empty() {
            return Err(err("HEALTHCHECK NONE takes no flags".into()));
        }
        return Ok(Healthcheck::None);
    }
    if !kind.eq_ignore_ascii_case("cmd") {
        return Err(err(format!(
            "Unknown type {:?} in HEALTHCHECK (try CMD)",
            kind.to_ascii_uppercase()
        )));
    }
    if args.is_empty() {
        return Err(err("Missing command after HEALTHCHECK CMD".into()));
    }
    let test = match parse_json_array(args) {
        Some(v) => std::iter::once("CMD".to_string()).chain(v).collect(),
        None => vec!["CMD-SHELL".to_string(), args.to_string()],
    };
    let dur = |name: &str| -> Result<Option<Duration>, InstructionError> {
        let Some(v) = flags.string(name) else {
            return Ok(None);
        };
        let d = parse_go_duration(&v).ok_or_else(|| {
            err(format!(
                "invalid duration {v:?} for --{name}: use e.g. 30s, 1m30s, 500ms"
            ))
        })?;
        if !d.is_zero() && d < Duration::from_millis(1) {
            return Err(err(format!("--{name} cannot be less than 1ms")));
        }
        Ok(Some(d))
    };
    let retries = match flags.string("retries") {
        None => None,
        Some(v) => {
            let n: i64 = v
                .parse()
                .map_err(|_| err(format!("invalid --retries {v:?}: expected an integer")))?;
            if n < 0 {
                return Err(err("--retries cannot be negative".into()));
            }
            Some(n)
        }
    };
    Ok(Healthcheck::Check {
        test,
        interval: dur("interval")?,
        timeout: dur("timeout")?,
        start_period: dur("start-period")?,
        start_interval: dur("start-interval")?,
        retries,
    })
}

/// Go's `time.ParseDuration` for non-negative values: `1h2m3.5s`, `300ms`, `10us`, `0`.
pub fn parse_go_duration(s: &str) -> Option<Duration> {
    if s == "0" {
        return Some(Duration::ZERO);
    }
    let mut rest = s;
    let mut total = 0f64;
    if rest.is_empty() {
        return None;
    }
    while !rest.is_empty() {
        let num_len = rest.find(|c: char| !(c.is_ascii_digit() || c == '.'))?;
        if num_len == 0 {
            return None;
        }
        let n: f64 = rest[..num_len].parse().ok()?;
        rest = &rest[num_len..];
        let unit_len = rest
            .find(|c: char| c.is_ascii_digit() || c == '.')
            .unwrap_or(rest.len());
        let mult = match &rest[..unit_len] {
            "ns" => 1e-9,
            "us" | "µs" | "μs" => 1e-6,
            "ms" => 1e-3,
            "s" => 1.0,
            "m" => 60.0,
            "h" => 3600.0,
            _ => return None,
        };
        total += n * mult;
        rest = &rest[unit_len..];
    }
    Some(Duration::from_secs_f64(total))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn go_durations() {
        assert_eq!(parse_go_duration("30s"), Some(Duration::from_secs(30)));
        assert_eq!(parse_go_duration("1m30s"), Some(Duration::from_secs(90)));
        assert_eq!(parse_go_duration("1h"), Some(Duration::from_secs(3600)));
        assert_eq!(parse_go_duration("250ms"), Some(Duration::from_millis(250)));
        assert_eq!(parse_go_duration("1.5s"), Some(Duration::from_millis(1500)));
        assert_eq!(parse_go_duration("0"), Some(Duration::ZERO));
        for bad in ["", "10", "s", "1x", "-1s", "1s2"] {
            assert_eq!(parse_go_duration(bad), None, "{bad}");
        }
    }
}
