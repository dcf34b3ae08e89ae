//! `-o/--output` specifications in buildx syntax, parsed into a closed set.

use std::path::PathBuf;

use crate::diagnostics::Usage;

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum OutputSpec {
    /// `type=image[,name=REF]`: the local image store (default with `-t`).
    Image { names: Vec<String> },
    /// `type=oci,dest=FILE.tar` or `type=oci,dest=DIR,tar=false`.
    Oci {
        dest: PathBuf,
        tar: bool,
        name: Option<String>,
        compression: CompressionSpec,
    },
    /// `type=docker,dest=FILE.tar`: loads with `docker load`.
    Docker {
        dest: PathBuf,
        name: Option<String>,
        compression: CompressionSpec,
    },
    /// `type=local,dest=DIR`: the final root filesystem.
    Local { dest: PathBuf },
    /// `type=tar,dest=FILE`: the final root filesystem as a tar.
    Tar { dest: PathBuf },
    /// `type=registry,name=REF` (or `type=image,…,push=true`): push to a registry.
    Registry {
        names: Vec<String>,
        compression: CompressionSpec,
    },
}

/// Layer compression from an output's `compression=`/`compression-level=` (each output
/// its own, as in buildx; the local store keeps layers uncompressed whatever is asked).
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct CompressionSpec {
    pub algorithm: Option<String>,
    pub level: Option<i32>,
}

pub fn parse(spec: &str) -> Result<OutputSpec, Usage> {
    let bad = |m: &str| Usage(format!("--output {spec:?}: {m}"));
    // `-o DIR` is `type=local,dest=DIR`.
    if !spec.contains('=') {
        return Ok(OutputSpec::Local {
            dest: PathBuf::from(spec),
        });
    }
    let mut kind = None;
    let mut dest = None;
    let mut tar = true;
    let mut name = None;
    let mut push = false;
    let mut compression = CompressionSpec::default();
    for field in spec.split(',') {
        let (k, v) = field
            .split_once('=')
            .ok_or_else(|| bad(&format!("{field:?} is not key=value")))?;
        match k.trim() {
            "type" => kind = Some(v.to_string()),
            "dest" => dest = Some(PathBuf::from(v)),
            "tar" => {
                tar = v.parse().map_err(|_| bad("tar= takes true or false"))?;
            }
            "name" => name = Some(v.to_string()),
            "push" => {
                push = v.parse().map_err(|_| bad("push= takes true or false"))?;
            }
            "compression" => {
                if !matches!(v, "gzip" | "zstd" | "uncompressed") {
                    return Err(bad("compression= takes gzip, zstd or uncompressed"));
                }
                compression.algorithm = Some(v.to_string());
            }
            "compression-level" => {
                compression.level = Some(
                    v.parse()
                        .map_err(|_| bad("compression-level= takes a number"))?,
                );
            }
            "oci-mediatypes" | "force-compression" => {}
            other => return Err(bad(&format!("unknown key {other:?}"))),
        }
    }
    let need_dest = |d: Option<PathBuf>| d.ok_or_else(|| bad("dest= is required"));
    let names = |name: Option<String>| -> Vec<String> {
        name.map(|n| n.split(',').map(str::to_string).collect())
            .unwrap_or_default()
    };
    match kind.as_deref() {
        Some("registry") | Some("image") if push || kind.as_deref() == Some("registry") => {
            Ok(OutputSpec::Registry {
                names: names(name),
                compression,
            })
        }
        Some("image") => Ok(OutputSpec::Image {
            names: name
                .map(|n| n.split(',').map(str::to_string).collect())
                .unwrap_or_default(),
        }),
        Some("oci") => Ok(OutputSpec::Oci {
            dest: need_dest(dest)?,
            tar,
            name,
            compression,
        }),
        Some("docker") if compression.algorithm.as_deref() == Some("zstd") => Err(bad(
            "`docker load` reads gzip or uncompressed layers, not zstd (use type=oci for zstd)",
        )),
        Some("docker") => Ok(OutputSpec::Docker {
            dest: need_dest(dest)?,
            name,
            compression,
        }),
        Some("local") => Ok(OutputSpec::Local {
            dest: need_dest(dest)?,
        }),
        Some("tar") => Ok(OutputSpec::Tar {
            dest: need_dest(dest)?,
        }),
        Some(other) => Err(bad(&format!(
            "unknown type {other:?} (use image, oci, docker, local or tar)"
        ))),
        None => Err(bad("type= is required")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn buildx_syntax() {
        let none = CompressionSpec::default();
        assert_eq!(
            parse("type=oci,dest=out.tar").unwrap(),
            OutputSpec::Oci {
                dest: "out.tar".into(),
                tar: true,
                name: None,
                compression: none.clone(),
            }
        );
        assert_eq!(
            parse("type=oci,dest=dir,tar=false").unwrap(),
            OutputSpec::Oci {
                dest: "dir".into(),
                tar: false,
                name: None,
                compression: none.clone(),
            }
        );
        assert_eq!(
            parse("out").unwrap(),
            OutputSpec::Local { dest: "out".into() }
        );
        assert_eq!(
            parse("type=oci,dest=a.tar,compression=zstd,compression-level=5").unwrap(),
            OutputSpec::Oci {
                dest: "a.tar".into(),
                tar: true,
                name: None,
                compression: CompressionSpec {
                    algorithm: Some("zstd".into()),
                    level: Some(5)
                },
            }
        );
        assert_eq!(
            parse("type=docker,dest=a.tar,compression-level=9").unwrap(),
            OutputSpec::Docker {
                dest: "a.tar".into(),
                name: None,
                compression: CompressionSpec {
                    algorithm: None,
                    level: Some(9)
                },
            }
        );
        assert_eq!(
            parse("type=registry,name=127.0.0.1:5000/a:1").unwrap(),
            OutputSpec::Registry {
                names: vec!["127.0.0.1:5000/a:1".into()],
                compression: none.clone(),
            }
        );
        assert!(matches!(
            parse("type=image,name=r/a,push=true").unwrap(),
            OutputSpec::Registry { .. }
        ));
        for bad in [
            "type=oci",
            "type=nope,dest=x",
            "dest=x",
            "type=oci,dest=x,tar=maybe",
            "type=local,dest=x,foo=1",
            "type=docker,dest=x,compression=zstd",
            "type=registry,name=a,push=maybe",
        ] {
            assert!(parse(bad).is_err(), "{bad}");
        }
    }
}
