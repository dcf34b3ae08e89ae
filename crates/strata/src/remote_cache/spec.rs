//! `--cache-to` / `--cache-from` specifications (buildx syntax), parsed into types.

use std::path::PathBuf;

use strata_oci::Reference;

use crate::diagnostics::Usage;

/// Which records an export covers.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Mode {
    /// Only the steps whose results make the final image.
    #[default]
    Min,
    /// Every step of every stage the build ran or hit.
    Max,
}

/// Layer compression of an exported cache.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Algorithm {
    #[default]
    Gzip,
    Zstd,
}

/// How to export (`mode=`, `compression=`, `cache-mounts=`, `cache-mounts-max=`).
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct ExportOptions {
    pub mode: Mode,
    pub compression: Algorithm,
    /// Export the contents of `RUN --mount=type=cache` directories too.
    pub cache_mounts: bool,
    /// Cap on the cache-mount bytes exported (largest mounts are left out first).
    pub cache_mounts_max: Option<u64>,
    /// `ignore-error=true`: a failed export is a warning, not a failed build.
    pub ignore_error: bool,
}

/// `--cache-to`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CacheTo {
    /// `type=local,dest=DIR`: an OCI layout.
    Local { dest: PathBuf, opts: ExportOptions },
    /// `type=registry,ref=REF`: pushed as an artifact.
    Registry {
        reference: Reference,
        opts: ExportOptions,
    },
    /// `type=inline`: the records in the image config (mode=min).
    Inline,
}

/// `--cache-from`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CacheFrom {
    /// `type=local,src=DIR`.
    Local { src: PathBuf },
    /// `type=registry,ref=REF`: a cache artifact, or an image with inline cache.
    Registry { reference: Reference },
}

fn fields<'a>(flag: &str, spec: &'a str) -> Result<Vec<(&'a str, &'a str)>, Usage> {
    spec.split(',')
        .filter(|f| !f.is_empty())
        .map(|f| {
            f.split_once('=')
                .map(|(k, v)| (k.trim(), v))
                .ok_or_else(|| Usage(format!("{flag} {spec:?}: {f:?} is not key=value")))
        })
        .collect()
}

fn reference(flag: &str, spec: &str, r: Option<&str>) -> Result<Reference, Usage> {
    let r = r.ok_or_else(|| Usage(format!("{flag} {spec:?}: type=registry needs ref=REF")))?;
    Reference::parse(r).map_err(|e| Usage(format!("{flag} {spec:?}: ref={r:?}: {e}")))
}

/// Parses `--cache-to`. A bare `REF` means `type=registry,ref=REF`, as in buildx.
pub fn parse_to(spec: &str) -> Result<CacheTo, Usage> {
    let bad = |m: &str| Usage(format!("--cache-to {spec:?}: {m}"));
    if !spec.contains('=') {
        return parse_to(&format!("type=registry,ref={spec}"));
    }
    let (mut kind, mut dest, mut reference_s) = (None, None, None);
    let mut opts = ExportOptions::default();
    for (k, v) in fields("--cache-to", spec)? {
        match k {
            "type" => kind = Some(v),
            "dest" => dest = Some(PathBuf::from(v)),
            "ref" => reference_s = Some(v),
            "mode" => {
                opts.mode = match v {
                    "min" => Mode::Min,
                    "max" => Mode::Max,
                    _ => return Err(bad("mode= takes min or max")),
                }
            }
            "compression" => {
                opts.compression = match v {
                    "gzip" => Algorithm::Gzip,
                    "zstd" => Algorithm::Zstd,
                    _ => return Err(bad("compression= takes gzip or zstd")),
                }
            }
            "cache-mounts" => {
                opts.cache_mounts = v
                    .parse()
                    .map_err(|_| bad("cache-mounts= takes true or false"))?
            }
            "ignore-error" => {
                opts.ignore_error = v
                    .parse()
                    .map_err(|_| bad("ignore-error= takes true or false"))?
            }
            "cache-mounts-max" => {
                opts.cache_mounts_max = Some(parse_size(v).ok_or_else(|| {
                    bad("cache-mounts-max= takes a size (bytes, or with k, m, g: 500m)")
                })?)
            }
            _ => return Err(bad(&format!("unknown option {k:?}"))),
        }
    }
    match kind {
        Some("local") => Ok(CacheTo::Local {
            dest: dest.ok_or_else(|| bad("type=local needs dest=DIR"))?,
            opts,
        }),
        Some("registry") => Ok(CacheTo::Registry {
            reference: reference("--cache-to", spec, reference_s)?,
            opts,
        }),
        Some("inline") => {
            if opts.mode == Mode::Max || opts.cache_mounts {
                return Err(bad(
                    "type=inline holds mode=min records only, without cache mounts (use type=registry for mode=max)",
                ));
            }
            Ok(CacheTo::Inline)
        }
        Some(other) => Err(bad(&format!(
            "unknown type {other:?} (expected local, registry or inline)"
        ))),
        None => Err(bad("type= is missing (local, registry or inline)")),
    }
}

/// Parses `--cache-from`. A bare `REF` means `type=registry,ref=REF`.
pub fn parse_from(spec: &str) -> Result<CacheFrom, Usage> {
    let bad = |m: &str| Usage(format!("--cache-from {spec:?}: {m}"));
    if !spec.contains('=') {
        return parse_from(&format!("type=registry,ref={spec}"));
    }
    let (mut kind, mut src, mut reference_s) = (None, None, None);
    for (k, v) in fields("--cache-from", spec)? {
        match k {
            "type" => kind = Some(v),
            "src" => src = Some(PathBuf::from(v)),
            "ref" => reference_s = Some(v),
            _ => return Err(bad(&format!("unknown option {k:?}"))),
        }
    }
    match kind {
        Some("local") => Ok(CacheFrom::Local {
            src: src.ok_or_else(|| bad("type=local needs src=DIR"))?,
        }),
        Some("registry") => Ok(CacheFrom::Registry {
            reference: reference("--cache-from", spec, reference_s)?,
        }),
        Some(other) => Err(bad(&format!(
            "unknown type {other:?} (expected local or registry)"
        ))),
        None => Err(bad("type= is missing (local or registry)")),
    }
}

/// `1234`, `64k`, `500m`, `2g` (powers of 1024; an optional trailing `b`/`ib`).
pub fn parse_size(s: &str) -> Option<u64> {
    let lower = s.trim().to_ascii_lowercase();
    let t = lower.trim_end_matches("ib").trim_end_matches('b');
    let (num, mult) = match t.chars().last()? {
        'k' => (&t[..t.len() - 1], 1u64 << 10),
        'm' => (&t[..t.len() - 1], 1 << 20),
        'g' => (&t[..t.len() - 1], 1 << 30),
        't' => (&t[..t.len() - 1], 1 << 40),
        _ => (t, 1),
    };
    num.trim().parse::<u64>().ok()?.checked_mul(mult)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cache_to_specs() {
        assert_eq!(
            parse_to("type=local,dest=/c,mode=max,compression=zstd").unwrap(),
            CacheTo::Local {
                dest: "/c".into(),
                opts: ExportOptions {
                    mode: Mode::Max,
                    compression: Algorithm::Zstd,
                    ..Default::default()
                }
            }
        );
        let CacheTo::Registry { reference, opts } = parse_to(
            "type=registry,ref=localhost:5000/c:build,cache-mounts=true,cache-mounts-max=5m",
        )
        .unwrap() else {
            panic!("not registry")
        };
        assert_eq!(reference.to_string(), "localhost:5000/c:build");
        assert_eq!(
            (opts.cache_mounts, opts.cache_mounts_max),
            (true, Some(5 << 20))
        );
        assert!(matches!(
            parse_to("localhost:5000/c").unwrap(),
            CacheTo::Registry { .. }
        ));
        assert_eq!(parse_to("type=inline").unwrap(), CacheTo::Inline);
        for (bad, why) in [
            ("type=local", "needs dest=DIR"),
            ("type=registry", "needs ref=REF"),
            ("type=local,dest=d,mode=all", "mode= takes min or max"),
            ("type=local,dest=d,compression=lz4", "gzip or zstd"),
            ("type=s3,dest=d", "unknown type \"s3\""),
            ("type=inline,mode=max", "mode=min records only"),
            ("type=local,dest=d,cache-mounts-max=lots", "takes a size"),
            (
                "type=local,dest=d,ignore-error=maybe",
                "ignore-error= takes true or false",
            ),
            ("type=local,dest=d,color=red", "unknown option \"color\""),
            ("mode=max,dest=d", "type= is missing"),
        ] {
            let e = parse_to(bad).unwrap_err().0;
            assert!(e.contains(why), "{bad}: {e}");
        }
    }

    #[test]
    fn cache_from_specs() {
        assert_eq!(
            parse_from("type=local,src=/c").unwrap(),
            CacheFrom::Local { src: "/c".into() }
        );
        assert!(matches!(
            parse_from("localhost:5000/app:latest").unwrap(),
            CacheFrom::Registry { .. }
        ));
        for (bad, why) in [
            ("type=local", "needs src=DIR"),
            ("type=inline", "unknown type"),
            ("type=registry,ref=UPPER/Case", "ref="),
        ] {
            let e = parse_from(bad).unwrap_err().0;
            assert!(e.contains(why), "{bad}: {e}");
        }
    }

    #[test]
    fn sizes() {
        assert_eq!(parse_size("1234"), Some(1234));
        assert_eq!(parse_size("64k"), Some(65536));
        assert_eq!(parse_size("500MiB"), Some(500 << 20));
        assert_eq!(parse_size("2g"), Some(2 << 30));
        assert_eq!(parse_size("x"), None);
        assert_eq!(parse_size(""), None);
    }
}
