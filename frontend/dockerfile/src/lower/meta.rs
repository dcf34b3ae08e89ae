//! Instructions that change only the image config (ENV, LABEL, EXPOSE, VOLUME, USER,
//! ARG, CMD, ENTRYPOINT, SHELL, STOPSIGNAL, HEALTHCHECK, ONBUILD, MAINTAINER) and
//! WORKDIR, which also creates its directory.

use strata_graph::{Chown, FileAction, FileOp, IdOrName, Input, Op};
use strata_instructions::lint;
use strata_instructions::{Command, CommandLine, Healthcheck, Instruction};
use strata_oci::EmptyObject;

use super::{join_path, Lowering, StageState};
use crate::scope::PROXY_ARGS;
use crate::{LowerError, LowerErrorKind};

impl Lowering<'_> {
    pub(super) fn metadata(
        &mut self,
        st: &mut StageState,
        inst: &Instruction,
    ) -> Result<(), LowerError> {
        let span = inst.span;
        let created_by = inst.original.trim().to_string();
        match &inst.command {
            Command::Env(kv) => {
                let mut ex = self.expander(st, span);
                let mut pairs = Vec::with_capacity(kv.pairs.len());
                for (k, v) in &kv.pairs {
                    pairs.push((ex.word(k)?, ex.word(v)?));
                }
                for (k, v) in pairs {
                    set_env(&mut st.image.config.env, &k, &v);
                }
            }
            Command::Label(kv) => {
                let mut ex = self.expander(st, span);
                let mut pairs = Vec::with_capacity(kv.pairs.len());
                for (k, v) in &kv.pairs {
                    pairs.push((ex.word(k)?, ex.word(v)?));
                }
                st.image.config.labels.extend(pairs);
            }
            Command::Expose(ports) => {
                let mut ex = self.expander(st, span);
                let mut out = Vec::new();
                for p in ports {
                    for word in ex.word(p)?.split_whitespace() {
                        out.extend(expand_port(word).map_err(|e| LowerError::at(span, e))?);
                    }
                }
                for p in out {
                    st.image.config.exposed_ports.insert(p, EmptyObject {});
                }
            }
            Command::Volume(vols) => {
                let mut ex = self.expander(st, span);
                let mut out = Vec::new();
                for v in vols {
                    let v = ex.word(v)?;
                    if v.trim().is_empty() {
                        return Err(LowerError::at(
                            span,
                            LowerErrorKind::Other(
                                "VOLUME specified can not be an empty string".into(),
                            ),
                        ));
                    }
                    out.push(v);
                }
                for v in out {
                    st.image.config.volumes.insert(v, EmptyObject {});
                }
            }
            Command::User(u) => {
                let u = self.expander(st, span).word(u)?;
                st.image.config.user = Some(u);
            }
            Command::StopSignal(s) => {
                let s = self.expander(st, span).word(s)?;
                if !valid_signal(&s) {
                    return Err(LowerError::at(
                        span,
                        LowerErrorKind::Other(format!(
                            "invalid STOPSIGNAL {s:?}: use a signal name (SIGTERM) or number"
                        )),
                    ));
                }
                st.image.config.stop_signal = Some(s);
            }
            Command::Arg(decls) => {
                for d in decls {
                    let value = match self.build_arg(&d.name) {
                        Some(v) => Some(v),
                        None => match &d.default {
                            Some(def) => Some(self.expander(st, span).word(def)?),
                            None => self.global.get(&d.name).map(str::to_string),
                        },
                    };
                    st.args.set(&d.name, value);
                }
            }
            Command::Cmd(cl) => {
                st.image.config.cmd = Some(self.command_args(st, cl));
                st.cmd_set = true;
            }
            Command::Entrypoint(cl) => {
                st.image.config.entrypoint = Some(self.command_args(st, cl));
                if !st.cmd_set {
                    st.image.config.cmd = None;
                }
            }
            Command::Shell(sh) => st.image.config.shell = Some(sh.clone()),
            Command::Healthcheck(hc) => {
                st.image.config.healthcheck = Some(match hc {
                    Healthcheck::None => strata_oci::Healthcheck {
                        test: vec!["NONE".into()],
                        ..Default::default()
                    },
                    Healthcheck::Check {
                        test,
                        interval,
                        timeout,
                        start_period,
                        start_interval,
                        retries,
                    } => {
                        let ns = |d: &Option<std::time::Duration>| {
                            d.map(|d| d.as_nanos() as i64).unwrap_or(0)
                        };
                        strata_oci::Healthcheck {
                            test: test.clone(),
                            interval: ns(interval),
                            timeout: ns(timeout),
                            start_period: ns(start_period),
                            start_interval: ns(start_interval),
                            retries: retries.unwrap_or(0),
                        }
                    }
                });
            }
            Command::Onbuild(ob) => {
                st.image
                    .config
                    .on_build
                    .get_or_insert_with(Vec::new)
                    .push(ob.expression.clone());
            }
            Command::Maintainer(m) => st.image.author = Some(m.clone()),
            Command::Run(_) | Command::Copy(_) | Command::Add(_) | Command::Workdir(_) => {
                unreachable!("filesystem instructions are dispatched elsewhere")
            }
        }
        // ARG lines leave no history in BuildKit; everything else is an empty layer.
        if !matches!(inst.command, Command::Arg(_)) {
            Self::history(st, created_by, true);
        }
        Ok(())
    }

    /// CMD/ENTRYPOINT value: exec form as is, shell form through SHELL.
    fn command_args(&self, st: &StageState, cl: &CommandLine) -> Vec<String> {
        match cl {
            CommandLine::Exec(v) => v.clone(),
            CommandLine::Shell(s) => {
                let mut v = shell_of(st);
                v.push(s.clone());
                v
            }
        }
    }

    pub(super) fn workdir(
        &mut self,
        st: &mut StageState,
        inst: &Instruction,
        w: &str,
        step: usize,
    ) -> Result<(), LowerError> {
        let span = inst.span;
        let expanded = self.expander(st, span).word(w)?;
        if !expanded.starts_with('/') && !st.workdir_set {
            self.lint.warn(
                &lint::WORKDIR_RELATIVE_PATH,
                span,
                format!("Relative workdir {expanded:?} can have unexpected results if the base image changes"),
            );
        }
        if expanded.starts_with('/') {
            st.workdir_set = true;
        }
        let base = st.cwd();
        let path = join_path(&base, &expanded);
        let path = if path.len() > 1 {
            path.trim_end_matches('/').to_string()
        } else {
            path
        };
        st.image.config.working_dir = Some(path.clone());
        let owner = st
            .image
            .config
            .user
            .as_deref()
            .filter(|u| !u.is_empty())
            .map(parse_chown_lenient);
        let op = Op::File(FileOp {
            base: Some(0),
            actions: vec![FileAction::Mkdir {
                path,
                mode: 0o755,
                make_parents: true,
                owner,
            }],
        });
        let name = self.vertex_name(st, step, inst);
        let meta = self.meta(st, name);
        let id = self.graph.add(op, vec![st.root], meta);
        st.root = Input::root(id);
        Self::history(st, inst.original.trim().to_string(), false);
        Ok(())
    }
}

/// The shell for shell-form commands: SHELL, or `/bin/sh -c`.
pub(super) fn shell_of(st: &StageState) -> Vec<String> {
    st.image
        .config
        .shell
        .clone()
        .unwrap_or_else(|| vec!["/bin/sh".into(), "-c".into()])
}

/// Replaces `KEY=…` in place or appends it.
fn set_env(env: &mut Vec<String>, key: &str, value: &str) {
    let entry = format!("{key}={value}");
    match env
        .iter_mut()
        .find(|kv| kv.split_once('=').map(|(k, _)| k).unwrap_or(kv) == key)
    {
        Some(slot) => *slot = entry,
        None => env.push(entry),
    }
}

/// `80`, `80/udp`, `8000-8002/tcp` → `["8000/tcp", …]`.
fn expand_port(word: &str) -> Result<Vec<String>, LowerErrorKind> {
    let bad = || LowerErrorKind::Port(word.to_string());
    let (ports, proto) = match word.split_once('/') {
        Some((p, proto)) => (p, proto.to_ascii_lowercase()),
        None => (word, "tcp".to_string()),
    };
    if !matches!(proto.as_str(), "tcp" | "udp" | "sctp") {
        return Err(bad());
    }
    let parse = |s: &str| s.parse::<u16>().ok().filter(|p| *p > 0).ok_or_else(bad);
    let (lo, hi) = match ports.split_once('-') {
        Some((a, b)) => (parse(a)?, parse(b)?),
        None => {
            let p = parse(ports)?;
            (p, p)
        }
    };
    if hi < lo {
        return Err(bad());
    }
    Ok((lo..=hi).map(|p| format!("{p}/{proto}")).collect())
}

fn valid_signal(s: &str) -> bool {
    const NAMES: &[&str] = &[
        "ABRT", "ALRM", "BUS", "CHLD", "CLD", "CONT", "FPE", "HUP", "ILL", "INT", "IO", "IOT",
        "KILL", "PIPE", "POLL", "PROF", "PWR", "QUIT", "SEGV", "STKFLT", "STOP", "SYS", "TERM",
        "TRAP", "TSTP", "TTIN", "TTOU", "URG", "USR1", "USR2", "VTALRM", "WINCH", "XCPU", "XFSZ",
    ];
    if let Ok(n) = s.parse::<u32>() {
        return (1..=64).contains(&n);
    }
    let upper = s.to_ascii_uppercase();
    let name = upper.strip_prefix("SIG").unwrap_or(&upper);
    if NAMES.contains(&name) {
        return true;
    }
    // SIGRTMIN+3, SIGRTMAX-1
    ["RTMIN", "RTMAX"].iter().any(|rt| {
        name == *rt
            || name.strip_prefix(rt).is_some_and(|r| {
                (r.starts_with('+') || r.starts_with('-')) && r[1..].parse::<u32>().is_ok()
            })
    })
}

/// `user[:group]` → ids where numeric, names otherwise (resolved later in the rootfs).
pub(super) fn parse_chown_lenient(spec: &str) -> Chown {
    let id = |s: &str| match s.parse::<u32>() {
        Ok(n) => IdOrName::Id(n),
        Err(_) => IdOrName::Name(s.to_string()),
    };
    match spec.split_once(':') {
        Some((u, g)) => Chown {
            user: id(u),
            group: Some(id(g)),
        },
        None => Chown {
            user: id(spec),
            group: None,
        },
    }
}

/// Proxy build args never reach history or the image, but RUN sees them.
pub(super) fn proxy_env(build_args: &std::collections::BTreeMap<String, String>) -> Vec<String> {
    build_args
        .iter()
        .filter(|(k, _)| PROXY_ARGS.contains(&k.as_str()))
        .map(|(k, v)| format!("{k}={v}"))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ports() {
        assert_eq!(expand_port("80").unwrap(), vec!["80/tcp"]);
        assert_eq!(expand_port("53/UDP").unwrap(), vec!["53/udp"]);
        assert_eq!(
            expand_port("8000-8002/tcp").unwrap(),
            vec!["8000/tcp", "8001/tcp", "8002/tcp"]
        );
        for bad in ["0", "x", "80/icmp", "9-8", "70000"] {
            assert!(expand_port(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn signals() {
        for ok in ["SIGTERM", "term", "9", "SIGRTMIN+3", "KILL"] {
            assert!(valid_signal(ok), "{ok}");
        }
        for bad in ["", "SIGFOO", "0", "65", "RTMIN+"] {
            assert!(!valid_signal(bad), "{bad}");
        }
    }

    #[test]
    fn env_replaces_in_place() {
        let mut env = vec!["PATH=/bin".to_string(), "A=1".to_string()];
        set_env(&mut env, "PATH", "/usr/bin");
        set_env(&mut env, "B", "x=y");
        assert_eq!(env, vec!["PATH=/usr/bin", "A=1", "B=x=y"]);
    }
}
