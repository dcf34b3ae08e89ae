//! `RUN --mount=…` values: a CSV list of `key=value` fields (BuildKit's `ParseMount`).

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MountType {
    Bind,
    Cache,
    Tmpfs,
    Secret,
    Ssh,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Sharing {
    Shared,
    Private,
    Locked,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MountSpec {
    pub kind: MountType,
    /// Where it appears in the container; defaulted for secret (`/run/secrets/ID`, unless
    /// only `env` is set). An ssh mount without one stays `None`: as in BuildKit, the
    /// executor numbers them (`/run/buildkit/ssh_agent.N`, N counting the step's ssh
    /// mounts).
    pub target: Option<String>,
    pub source: Option<String>,
    pub from: Option<String>,
    pub readonly: bool,
    pub id: Option<String>,
    pub sharing: Sharing,
    pub mode: Option<u32>,
    pub uid: Option<u32>,
    pub gid: Option<u32>,
    pub size: Option<u64>,
    pub required: bool,
    pub env: Option<String>,
}

/// Parses one `--mount` value, expanding every field value except `type` with `expand`.
pub fn parse_mount(
    value: &str,
    expand: &mut dyn FnMut(&str) -> Result<String, String>,
) -> Result<MountSpec, String> {
    let fields = split_csv(value).map_err(|e| format!("invalid mount {value:?}: {e}"))?;
    let mut kind = MountType::Bind;
    for f in &fields {
        if let Some(t) = f.strip_prefix("type=") {
            kind = match t.to_ascii_lowercase().as_str() {
                "bind" => MountType::Bind,
                "cache" => MountType::Cache,
                "tmpfs" => MountType::Tmpfs,
                "secret" => MountType::Secret,
                "ssh" => MountType::Ssh,
                other => {
                    return Err(format!(
                        "unsupported mount type {other:?} (use bind, cache, tmpfs, secret or ssh)"
                    ))
                }
            };
        }
    }
    let mut m = MountSpec {
        kind,
        target: None,
        source: None,
        from: None,
        readonly: matches!(kind, MountType::Bind | MountType::Secret | MountType::Ssh),
        id: None,
        sharing: Sharing::Shared,
        mode: None,
        uid: None,
        gid: None,
        size: None,
        required: false,
        env: None,
    };
    for f in &fields {
        let (key, raw) = match f.split_once('=') {
            Some((k, v)) => (k.trim().to_ascii_lowercase(), Some(v)),
            None => (f.trim().to_ascii_lowercase(), None),
        };
        if key == "type" {
            continue;
        }
        let bool_value = |raw: Option<&str>| -> Result<bool, String> {
            match raw {
                None => Ok(true),
                Some(v) => v
                    .parse::<bool>()
                    .map_err(|_| format!("invalid value for {key}: {v:?}")),
            }
        };
        match key.as_str() {
            "readonly" | "ro" => m.readonly = bool_value(raw)?,
            "readwrite" | "rw" => m.readonly = !bool_value(raw)?,
            "required" => m.required = bool_value(raw)?,
            _ => {
                let Some(raw) = raw else {
                    return Err(format!(
                        "invalid field {key:?} in mount: must be a key=value pair"
                    ));
                };
                let v = expand(raw)?;
                match key.as_str() {
                    "target" | "dst" | "destination" => m.target = Some(v),
                    "source" | "src" => m.source = Some(v),
                    "from" => m.from = Some(v),
                    "id" => m.id = Some(v),
                    "env" => m.env = Some(v),
                    "sharing" => {
                        m.sharing = match v.to_ascii_lowercase().as_str() {
                            "shared" => Sharing::Shared,
                            "private" => Sharing::Private,
                            "locked" => Sharing::Locked,
                            _ => {
                                return Err(format!(
                                "unsupported sharing value {v:?} (use shared, private or locked)"
                            ))
                            }
                        }
                    }
                    "mode" => {
                        m.mode = Some(
                            u32::from_str_radix(&v, 8)
                                .ok()
                                .filter(|m| *m <= 0o7777)
                                .ok_or_else(|| {
                                    format!(
                                        "invalid mode {v:?}: expected an octal number like 0644"
                                    )
                                })?,
                        )
                    }
                    "uid" => m.uid = Some(v.parse().map_err(|_| format!("invalid uid {v:?}"))?),
                    "gid" => m.gid = Some(v.parse().map_err(|_| format!("invalid gid {v:?}"))?),
                    "size" => {
                        m.size = Some(parse_size(&v).ok_or_else(|| format!("invalid size {v:?}"))?)
                    }
                    other => return Err(format!("unexpected key {other:?} in mount {value:?}")),
                }
            }
        }
    }
    validate(&mut m)?;
    Ok(m)
}

fn validate(m: &mut MountSpec) -> Result<(), String> {
    let name = format!("{:?}", m.kind).to_ascii_lowercase();
    if m.size.is_some() && m.kind != MountType::Tmpfs {
        return Err(format!("size is only valid for tmpfs mounts, not {name}"));
    }
    if m.kind == MountType::Tmpfs && (m.from.is_some() || m.source.is_some()) {
        return Err("tmpfs mounts cannot have from or source".into());
    }
    if matches!(
        m.kind,
        MountType::Secret | MountType::Ssh | MountType::Tmpfs
    ) && m.from.is_some()
    {
        return Err(format!("{name} mounts cannot have from"));
    }
    if m.sharing != Sharing::Shared && m.kind != MountType::Cache {
        return Err(format!(
            "sharing is only valid for cache mounts, not {name}"
        ));
    }
    if m.env.is_some() && m.kind != MountType::Secret {
        return Err(format!("env is only valid for secret mounts, not {name}"));
    }
    match m.kind {
        MountType::Secret => {
            if m.id.is_none() {
                let from_target = m
                    .target
                    .as_deref()
                    .and_then(|t| t.rsplit('/').find(|s| !s.is_empty()));
                m.id = from_target.map(str::to_string);
            }
            let Some(id) = m.id.clone() else {
                return Err("secret mount requires an id or a target".into());
            };
            if m.target.is_none() && m.env.is_none() {
                m.target = Some(format!("/run/secrets/{id}"));
            }
        }
        MountType::Ssh => {
            if m.id.is_none() {
                m.id = Some("default".into());
            }
        }
        _ => {
            let target = m.target.as_deref().unwrap_or("");
            if target.is_empty() {
                return Err(format!("{name} mount requires a target"));
            }
            if m.kind == MountType::Cache && m.id.is_none() {
                m.id = m.target.clone();
            }
        }
    }
    Ok(())
}

/// `1024`, `64k`, `10m`, `1g` (binary units, like Docker's RAMInBytes).
fn parse_size(s: &str) -> Option<u64> {
    let s = s.trim().to_ascii_lowercase();
    let s = s.strip_suffix('b').unwrap_or(&s);
    let (num, mult) = match s.chars().last()? {
        'k' => (&s[..s.len() - 1], 1u64 << 10),
        'm' => (&s[..s.len() - 1], 1 << 20),
        'g' => (&s[..s.len() - 1], 1 << 30),
        't' => (&s[..s.len() - 1], 1 << 40),
        _ => (s, 1),
    };
    let n: f64 = num.trim().parse().ok()?;
    (n >= 0.0 && n.is_finite()).then_some((n * mult as f64) as u64)
}

/// One CSV record: fields split on `,`, `"…"` quoting with `""` for a quote.
fn split_csv(s: &str) -> Result<Vec<String>, String> {
    let mut fields = Vec::new();
    let mut cur = String::new();
    let mut chars = s.chars().peekable();
    let mut in_quotes = false;
    while let Some(c) = chars.next() {
        match (c, in_quotes) {
            ('"', true) if chars.peek() == Some(&'"') => {
                chars.next();
                cur.push('"');
            }
            ('"', true) => in_quotes = false,
            ('"', false) => in_quotes = true,
            (',', false) => fields.push(std::mem::take(&mut cur)),
            (c, _) => cur.push(c),
        }
    }
    if in_quotes {
        return Err("unterminated quote".into());
    }
    fields.push(cur);
    Ok(fields
        .into_iter()
        .filter(|f| !f.trim().is_empty())
        .collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn p(s: &str) -> Result<MountSpec, String> {
        parse_mount(s, &mut |v: &str| Ok(v.replace("$T", "/t")))
    }

    #[test]
    fn defaults_per_type() {
        let b = p("target=/src").unwrap();
        assert_eq!((b.kind, b.readonly), (MountType::Bind, true));
        let b = p("type=bind,target=/src,rw").unwrap();
        assert!(!b.readonly);
        let c = p("type=cache,target=/root/.cache").unwrap();
        assert_eq!(
            (c.readonly, c.id.as_deref(), c.sharing),
            (false, Some("/root/.cache"), Sharing::Shared)
        );
        let c = p("type=cache,id=go,target=/go,sharing=locked,mode=0700,uid=1000,gid=1000,from=base,source=/x,ro").unwrap();
        assert_eq!(
            (c.id.as_deref(), c.sharing, c.mode, c.uid, c.gid, c.readonly),
            (
                Some("go"),
                Sharing::Locked,
                Some(0o700),
                Some(1000),
                Some(1000),
                true
            )
        );
        let s = p("type=secret,id=tok").unwrap();
        assert_eq!(s.target.as_deref(), Some("/run/secrets/tok"));
        let s = p("type=secret,id=tok,env=TOKEN").unwrap();
        assert_eq!((s.target, s.env.as_deref()), (None, Some("TOKEN")));
        let s = p("type=secret,target=/etc/key.pem,required").unwrap();
        assert_eq!((s.id.as_deref(), s.required), (Some("key.pem"), true));
        let s = p("type=ssh").unwrap();
        assert_eq!(
            (s.id.as_deref(), s.target.as_deref()),
            (Some("default"), None)
        );
        let t = p("type=tmpfs,target=/tmp,size=64m").unwrap();
        assert_eq!(t.size, Some(64 << 20));
    }

    #[test]
    fn expands_values_and_quotes() {
        let b = p("target=$T,\"source=a,b\"").unwrap();
        assert_eq!(
            (b.target.as_deref(), b.source.as_deref()),
            (Some("/t"), Some("a,b"))
        );
    }

    #[test]
    fn errors_name_the_problem() {
        let cases = [
            ("type=nfs,target=/x", "unsupported mount type \"nfs\""),
            ("type=cache", "cache mount requires a target"),
            ("type=bind,target=/x,foo=bar", "unexpected key \"foo\""),
            (
                "type=cache,target=/x,sharing=all",
                "unsupported sharing value",
            ),
            ("type=cache,target=/x,mode=999", "invalid mode \"999\""),
            (
                "type=tmpfs,target=/x,from=a",
                "tmpfs mounts cannot have from",
            ),
            (
                "type=bind,target=/x,size=1m",
                "size is only valid for tmpfs",
            ),
            ("type=secret", "secret mount requires an id or a target"),
            ("type=bind,target=/x,ro=maybe", "invalid value for ro"),
            ("type=bind,target=/x,env=A", "env is only valid for secret"),
            ("target=\"/x", "unterminated quote"),
        ];
        for (input, want) in cases {
            let e = p(input).unwrap_err();
            assert!(e.contains(want), "{input}: {e}");
        }
    }
}
