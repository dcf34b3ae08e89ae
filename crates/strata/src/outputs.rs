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
    },
    /// `type=docker,dest=FILE.tar`: loads with `docker load`.
    Docker { dest: PathBuf, name: Option<String> },
    /// `type=local,dest=DIR`: the final root filesystem.
    Local { dest: PathBuf },
    /// `type=tar,dest=FILE`: the final root filesystem as a tar.
    Tar { dest: PathBuf },
}

/// Layer compression from `compression=`/`compression-level=` of any output.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct CompressionSpec {
    pub algorithm: Option<String>,
    pub level: Option<i32>,
}

pub fn parse(spec: &str, compression: &mut CompressionSpec) -> Result<OutputSpec, Usage> {
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
    match kind.as_deref() {
        Some("image") => Ok(OutputSpec::Image {
            names: name
                .map(|n| n.split(',').map(str::to_string).collect())
                .unwrap_or_default(),
        }),
        Some("oci") => Ok(OutputSpec::Oci {
            dest: need_dest(dest)?,
            tar,
            name,
        }),
        Some("docker") => Ok(OutputSpec::Docker {
            dest: need_dest(dest)?,
            name,
        }),
        Some("local") => Ok(OutputSpec::Local {
            dest: need_dest(dest)?,
        }),
        Some("tar") => Ok(OutputSpec::Tar {
            dest: need_dest(dest)?,
        }),
        Some("registry") => Err(bad("pushing to a registry is not implemented yet")),
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
        let mut c = CompressionSpec::default();
        assert_eq!(
            parse("type=oci,dest=out.tar", &mut c).unwrap(),
            OutputSpec::Oci {
                dest: "out.tar".into(),
                tar: true,
                name: None
            }
        );
        assert_eq!(
            parse("type=oci,dest=dir,tar=false", &mut c).unwrap(),
            OutputSpec::Oci {
                dest: "dir".into(),
                tar: false,
                name: None
            }
        );
        assert_eq!(
            parse("out", &mut c).unwrap(),
            OutputSpec::Local { dest: "out".into() }
        );
        assert_eq!(
            parse(
                "type=docker,dest=a.tar,compression=zstd,compression-level=5",
                &mut c
            )
            .unwrap(),
            OutputSpec::Docker {
                dest: "a.tar".into(),
                name: None
            }
        );
        assert_eq!(
            c,
            CompressionSpec {
                algorithm: Some("zstd".into()),
                level: Some(5)
            }
        );
        for bad in [
            "type=oci",
            "type=nope,dest=x",
            "dest=x",
            "type=oci,dest=x,tar=maybe",
            "type=local,dest=x,foo=1",
        ] {
            assert!(
                parse(bad, &mut CompressionSpec::default()).is_err(),
                "{bad}"
            );
        }
    }
}
