//! Per-instruction flag validation (BuildKit's `BFlags`): each instruction declares its
//! flags and their kinds; anything else is an error naming the flag.

use strata_parser::{Flag, Span};

use crate::{InstructionError, InstructionErrorKind as K};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    /// `--link` or `--link=true|false`.
    Bool,
    /// `--from=x`, once.
    String,
    /// `--mount=…`, repeatable.
    Strings,
}

/// Flag values of one instruction, after validation.
#[derive(Debug, Default)]
pub struct Flags {
    values: Vec<(&'static str, Vec<String>, Option<bool>)>,
}

impl Flags {
    pub fn parse(
        instruction: &'static str,
        spec: &[(&'static str, Kind)],
        flags: &[Flag],
        span: Span,
    ) -> Result<Flags, InstructionError> {
        let err = |kind| InstructionError::new(span, kind);
        let mut out = Flags::default();
        for f in flags {
            let Some(&(name, kind)) = spec.iter().find(|(n, _)| *n == f.name) else {
                let valid = if spec.is_empty() {
                    "none".to_string()
                } else {
                    spec.iter()
                        .map(|(n, _)| format!("--{n}"))
                        .collect::<Vec<_>>()
                        .join(", ")
                };
                return Err(err(K::UnknownFlag {
                    instruction,
                    flag: f.name.clone(),
                    valid,
                }));
            };
            let slot = out.values.iter().position(|(n, _, _)| *n == name);
            match kind {
                Kind::Bool => {
                    let v = match f.value.as_deref() {
                        None => true,
                        Some(v) if v.eq_ignore_ascii_case("true") => true,
                        Some(v) if v.eq_ignore_ascii_case("false") => false,
                        Some(v) => {
                            return Err(err(K::BadBool {
                                flag: name.into(),
                                value: v.into(),
                            }))
                        }
                    };
                    if slot.is_some() {
                        return Err(err(K::DuplicateFlag(name.into())));
                    }
                    out.values.push((name, Vec::new(), Some(v)));
                }
                Kind::String | Kind::Strings => {
                    let Some(v) = f.value.clone() else {
                        return Err(err(K::MissingFlagValue(name.into())));
                    };
                    match (slot, kind) {
                        (Some(_), Kind::String) => return Err(err(K::DuplicateFlag(name.into()))),
                        (Some(i), _) => out.values[i].1.push(v),
                        (None, _) => out.values.push((name, vec![v], None)),
                    }
                }
            }
        }
        Ok(out)
    }

    pub fn string(&self, name: &str) -> Option<String> {
        self.values
            .iter()
            .find(|(n, _, _)| *n == name)
            .and_then(|(_, v, _)| v.first().cloned())
    }

    pub fn strings(&self, name: &str) -> Vec<String> {
        self.values
            .iter()
            .find(|(n, _, _)| *n == name)
            .map(|(_, v, _)| v.clone())
            .unwrap_or_default()
    }

    pub fn bool(&self, name: &str) -> Option<bool> {
        self.values
            .iter()
            .find(|(n, _, _)| *n == name)
            .and_then(|(_, _, b)| *b)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn flag(name: &str, value: Option<&str>) -> Flag {
        Flag {
            name: name.into(),
            value: value.map(str::to_string),
        }
    }

    const COPY: &[(&str, Kind)] = &[
        ("from", Kind::String),
        ("link", Kind::Bool),
        ("exclude", Kind::Strings),
    ];

    #[test]
    fn validates_kinds() {
        let s = Span { start: 3, end: 3 };
        let f = Flags::parse(
            "COPY",
            COPY,
            &[
                flag("from", Some("a")),
                flag("link", None),
                flag("exclude", Some("x")),
                flag("exclude", Some("y")),
            ],
            s,
        )
        .unwrap();
        assert_eq!(f.string("from").as_deref(), Some("a"));
        assert_eq!(f.bool("link"), Some(true));
        assert_eq!(f.strings("exclude"), vec!["x", "y"]);

        let e = Flags::parse("COPY", COPY, &[flag("form", Some("a"))], s).unwrap_err();
        assert_eq!(
            e.to_string(),
            "unknown flag: --form (valid flags for COPY: --from, --link, --exclude)"
        );
        assert_eq!(e.span, s);
        let e = Flags::parse("COPY", COPY, &[flag("from", None)], s).unwrap_err();
        assert_eq!(e.to_string(), "missing a value on flag: --from");
        let e = Flags::parse("COPY", COPY, &[flag("link", Some("yes"))], s).unwrap_err();
        assert_eq!(
            e.to_string(),
            "expecting boolean value for flag --link, not: yes"
        );
        let f = Flags::parse("COPY", COPY, &[flag("link", Some("FALSE"))], s).unwrap();
        assert_eq!(f.bool("link"), Some(false));
        let e = Flags::parse(
            "COPY",
            COPY,
            &[flag("from", Some("a")), flag("from", Some("b"))],
            s,
        )
        .unwrap_err();
        assert_eq!(e.to_string(), "duplicate flag specified: --from");
        let e = Flags::parse("USER", &[], &[flag("x", None)], s).unwrap_err();
        assert_eq!(
            e.to_string(),
            "unknown flag: --x (valid flags for USER: none)"
        );
    }
}
