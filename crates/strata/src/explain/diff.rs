//! Why a step missed the cache: its facts against those of its nearest earlier record,
//! one sentence per difference.

use std::collections::BTreeMap;

use super::facts::{Facts, Files};

/// What the comparison needs about the step that ran.
pub struct Current<'a> {
    pub instruction: &'a str,
    pub facts: &'a Facts,
    pub fingerprint: &'a str,
    /// `--no-cache` / `--no-cache-filter` applied to it.
    pub ignore_cache: bool,
    /// Names of its input steps that ran in this build.
    pub inputs_ran: Vec<&'a str>,
}

/// The earlier record it is compared with.
pub struct Earlier<'a> {
    pub instruction: &'a str,
    pub facts: &'a Facts,
    pub fingerprint: &'a str,
}

/// How many names a list shows before `…`.
const SHOWN: usize = 3;

pub fn reasons(now: &Current<'_>, before: Option<&Earlier<'_>>) -> Vec<String> {
    if now.ignore_cache {
        return vec!["the cache is disabled for it (--no-cache or --no-cache-filter)".into()];
    }
    let Some(before) = before else {
        return vec!["never built before".into()];
    };
    let mut out = Vec::new();
    if now.instruction != before.instruction {
        out.push(format!(
            "instruction changed: {} → {}",
            before.instruction, now.instruction
        ));
    }
    let (a, b) = (before.facts, now.facts);
    if a.base != b.base {
        if let (Some(old), Some(new)) = (&a.base, &b.base) {
            let d = |d: &Option<String>| d.clone().unwrap_or_else(|| "(unpinned)".into());
            if old.reference == new.reference {
                out.push(format!(
                    "base image {} changed: {} → {}",
                    new.reference,
                    d(&old.digest),
                    d(&new.digest)
                ));
            } else {
                out.push(format!(
                    "base image changed: {} → {}",
                    old.reference, new.reference
                ));
            }
        }
    }
    vars("build-arg", &a.args, &b.args, &mut out);
    vars("ENV", &a.env, &b.env, &mut out);
    for (k, new) in &b.settings {
        if let Some(old) = a.settings.get(k).filter(|old| *old != new) {
            out.push(format!("{k} changed: {} → {}", shown(old), shown(new)));
        }
    }
    if let Some(s) = files(a.files.as_ref(), b.files.as_ref()) {
        out.push(s);
    }
    if !out.is_empty() {
        return out;
    }
    for name in &now.inputs_ran {
        out.push(format!("input step {name} re-ran"));
    }
    if out.is_empty() {
        let before_inputs: BTreeMap<&str, &str> = a
            .inputs
            .iter()
            .map(|i| (i.name.as_str(), i.fingerprint.as_str()))
            .collect();
        for i in &b.inputs {
            if before_inputs
                .get(i.name.as_str())
                .is_some_and(|fp| *fp != i.fingerprint)
            {
                out.push(format!("input step {} changed", i.name));
            }
        }
    }
    if out.is_empty() {
        out.push(if now.fingerprint == before.fingerprint {
            "built before with the same inputs, but that result is no longer in the cache (pruned)"
                .into()
        } else {
            "its definition changed (mounts, flags or an input that is not a step)".into()
        });
    }
    out
}

fn shown(v: &str) -> &str {
    if v.is_empty() {
        "(empty)"
    } else if v.starts_with(super::facts::HIDDEN) {
        "(hidden)"
    } else {
        v
    }
}

fn vars(
    kind: &str,
    old: &BTreeMap<String, String>,
    new: &BTreeMap<String, String>,
    out: &mut Vec<String>,
) {
    for (k, v) in new {
        match old.get(k) {
            Some(o) if o != v => {
                out.push(format!("{kind} {k} changed: {} → {}", shown(o), shown(v)))
            }
            Some(_) => {}
            None => out.push(format!("{kind} {k} added: {}", shown(v))),
        }
    }
    for (k, o) in old {
        if !new.contains_key(k) {
            out.push(format!("{kind} {k} removed (was {})", shown(o)));
        }
    }
}

fn files(old: Option<&Files>, new: Option<&Files>) -> Option<String> {
    let empty = Files::default();
    let (old, new) = match (old, new) {
        (None, None) => return None,
        (o, n) => (o.unwrap_or(&empty), n.unwrap_or(&empty)),
    };
    let mut changed = Vec::new();
    let mut added = Vec::new();
    for (p, d) in &new.listed {
        match old.listed.get(p) {
            Some(o) if o != d => changed.push(p.as_str()),
            Some(_) => {}
            None => added.push(p.as_str()),
        }
    }
    let removed: Vec<&str> = old
        .listed
        .keys()
        .filter(|p| !new.listed.contains_key(*p))
        .map(String::as_str)
        .collect();
    if changed.is_empty() && added.is_empty() && removed.is_empty() {
        if old.unlisted != new.unlisted || old.all != new.all {
            return Some(format!(
                "context files changed among the {} not listed (of {} read)",
                new.unlisted,
                new.listed.len() + new.unlisted
            ));
        }
        return None;
    }
    let list = |what: &str, names: &[&str]| {
        if names.is_empty() {
            return format!("0 {what}");
        }
        let mut shown = names[..names.len().min(SHOWN)].join(", ");
        if names.len() > SHOWN {
            shown.push_str(", …");
        }
        format!("{} {what} ({shown})", names.len())
    };
    Some(format!(
        "context files changed: {}, {}, {}",
        list("changed", &changed),
        list("added", &added),
        list("removed", &removed)
    ))
}

#[cfg(test)]
mod tests {
    use super::super::facts::Base;
    use super::*;

    fn now<'a>(instruction: &'a str, facts: &'a Facts) -> Current<'a> {
        Current {
            instruction,
            facts,
            fingerprint: "b",
            ignore_cache: false,
            inputs_ran: vec![],
        }
    }

    fn before<'a>(instruction: &'a str, facts: &'a Facts) -> Earlier<'a> {
        Earlier {
            instruction,
            facts,
            fingerprint: "a",
        }
    }

    fn map(kv: &[(&str, &str)]) -> BTreeMap<String, String> {
        kv.iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    #[test]
    fn each_kind_of_change_is_one_sentence() {
        let old = Facts {
            args: map(&[("VERSION", "1.0"), ("GONE", "x")]),
            env: map(&[("PATH", "/bin")]),
            base: Some(Base {
                reference: "busybox:latest".into(),
                digest: Some("sha256:aaa".into()),
            }),
            files: Some(Files {
                listed: map(&[("a", "1"), ("b", "1"), ("c", "1"), ("d", "1"), ("e", "1")]),
                unlisted: 0,
                all: "sha256:1".into(),
            }),
            ..Default::default()
        };
        let new = Facts {
            args: map(&[("VERSION", "1.1"), ("NEW", "")]),
            env: map(&[("PATH", "/usr/bin:/bin")]),
            base: Some(Base {
                reference: "busybox:latest".into(),
                digest: Some("sha256:bbb".into()),
            }),
            files: Some(Files {
                listed: map(&[("a", "2"), ("b", "2"), ("c", "2"), ("d", "2"), ("f", "1")]),
                unlisted: 0,
                all: "sha256:2".into(),
            }),
            ..Default::default()
        };
        let r = reasons(&now("RUN make -j2", &new), Some(&before("RUN make", &old)));
        assert_eq!(
            r,
            vec![
                "instruction changed: RUN make → RUN make -j2",
                "base image busybox:latest changed: sha256:aaa → sha256:bbb",
                "build-arg NEW added: (empty)",
                "build-arg VERSION changed: 1.0 → 1.1",
                "build-arg GONE removed (was x)",
                "ENV PATH changed: /bin → /usr/bin:/bin",
                "context files changed: 4 changed (a, b, c, …), 1 added (f), 1 removed (e)",
            ]
        );
    }

    #[test]
    fn inputs_history_and_pruning() {
        let f = Facts::default();
        assert_eq!(reasons(&now("RUN x", &f), None), ["never built before"]);
        let mut ran = now("RUN x", &f);
        ran.inputs_ran = vec!["[b 2/3] COPY . ."];
        assert_eq!(
            reasons(&ran, Some(&before("RUN x", &f))),
            ["input step [b 2/3] COPY . . re-ran"]
        );
        let mut same = now("RUN x", &f);
        same.fingerprint = "a";
        assert!(reasons(&same, Some(&before("RUN x", &f)))[0].contains("pruned"));
        let mut forced = now("RUN x", &f);
        forced.ignore_cache = true;
        assert!(reasons(&forced, None)[0].contains("--no-cache"));
    }
}
