//! Layer compression: the algorithm choice, its parsing from buildx-style options and
//! its media types. The encoders are in `pipeline.rs` and `gzip_blocks.rs`.

use std::fmt;
use std::str::FromStr;

use strata_oci::media_types;

use crate::{ImageError, MediaTypes};

/// Docker's media type for an uncompressed layer (not in `strata_oci::media_types`).
pub const DOCKER_LAYER: &str = "application/vnd.docker.image.rootfs.diff.tar";

/// How layer blobs are compressed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Compression {
    Uncompressed,
    /// Levels 0–9 (zlib-rs backend).
    Gzip {
        level: u32,
    },
    /// The levels `zstd` accepts (1–22, 0 for its default, negative for its fast modes).
    Zstd {
        level: i32,
    },
}

pub const DEFAULT_GZIP_LEVEL: u32 = 6;
pub const DEFAULT_ZSTD_LEVEL: i32 = 3;

impl Default for Compression {
    fn default() -> Self {
        Compression::Gzip {
            level: DEFAULT_GZIP_LEVEL,
        }
    }
}

impl Compression {
    /// From buildx's `compression=` and `compression-level=` values. A level given for
    /// `uncompressed` is ignored, as BuildKit does.
    pub fn from_options(kind: &str, level: Option<&str>) -> Result<Self, ImageError> {
        let c: Compression = kind.parse()?;
        match level {
            Some(l) => c.with_level(l),
            None => Ok(c),
        }
    }

    /// The same algorithm at `level` (a decimal integer), checked against its range.
    pub fn with_level(self, level: &str) -> Result<Self, ImageError> {
        let bad = |range: &str| ImageError::CompressionLevel {
            compression: self.name(),
            level: level.to_string(),
            range: range.to_string(),
        };
        match self {
            Compression::Uncompressed => Ok(self),
            Compression::Gzip { .. } => match level.trim().parse::<u32>() {
                Ok(l) if l <= 9 => Ok(Compression::Gzip { level: l }),
                _ => Err(bad("0-9")),
            },
            Compression::Zstd { .. } => {
                let range = zstd::compression_level_range();
                let text = format!("{}-{}", range.start(), range.end());
                match level.trim().parse::<i32>() {
                    Ok(l) if range.contains(&l) => Ok(Compression::Zstd { level: l }),
                    _ => Err(bad(&text)),
                }
            }
        }
    }

    /// `uncompressed`, `gzip` or `zstd`.
    pub fn name(&self) -> &'static str {
        match self {
            Compression::Uncompressed => "uncompressed",
            Compression::Gzip { .. } => "gzip",
            Compression::Zstd { .. } => "zstd",
        }
    }

    /// The level, for algorithms that have one.
    pub fn level(&self) -> Option<i32> {
        match *self {
            Compression::Uncompressed => None,
            Compression::Gzip { level } => Some(level as i32),
            Compression::Zstd { level } => Some(level),
        }
    }

    /// The layer media type under `media`; zstd has none in Docker's schema 2.
    pub fn layer_media_type(&self, media: MediaTypes) -> Result<&'static str, ImageError> {
        Ok(match (media, self) {
            (MediaTypes::Oci, Compression::Uncompressed) => media_types::OCI_LAYER,
            (MediaTypes::Oci, Compression::Gzip { .. }) => media_types::OCI_LAYER_GZIP,
            (MediaTypes::Oci, Compression::Zstd { .. }) => media_types::OCI_LAYER_ZSTD,
            (MediaTypes::Docker, Compression::Uncompressed) => DOCKER_LAYER,
            (MediaTypes::Docker, Compression::Gzip { .. }) => media_types::DOCKER_LAYER_GZIP,
            (MediaTypes::Docker, Compression::Zstd { .. }) => {
                return Err(ImageError::ZstdWithDockerMedia)
            }
        })
    }
}

impl FromStr for Compression {
    type Err = ImageError;

    /// `uncompressed`, `gzip` or `zstd` at their default levels (gzip 6, zstd 3).
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s.trim().to_ascii_lowercase().as_str() {
            "uncompressed" => Ok(Compression::Uncompressed),
            "gzip" => Ok(Compression::Gzip {
                level: DEFAULT_GZIP_LEVEL,
            }),
            "zstd" => Ok(Compression::Zstd {
                level: DEFAULT_ZSTD_LEVEL,
            }),
            _ => Err(ImageError::UnknownCompression {
                value: s.to_string(),
            }),
        }
    }
}

impl fmt::Display for Compression {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.level() {
            Some(l) => write!(f, "{} (level {l})", self.name()),
            None => f.write_str(self.name()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::pipeline::{compress_stream, Workers};

    #[test]
    fn parses_buildx_options() {
        assert_eq!(
            Compression::from_options("gzip", None).unwrap(),
            Compression::Gzip { level: 6 }
        );
        assert_eq!(
            Compression::from_options("zstd", None).unwrap(),
            Compression::Zstd { level: 3 }
        );
        assert_eq!(
            Compression::from_options("zstd", Some("19")).unwrap(),
            Compression::Zstd { level: 19 }
        );
        assert_eq!(
            Compression::from_options("gzip", Some("9")).unwrap(),
            Compression::Gzip { level: 9 }
        );
        assert_eq!(
            Compression::from_options("uncompressed", Some("5")).unwrap(),
            Compression::Uncompressed
        );
        let e = Compression::from_options("gzip", Some("10")).unwrap_err();
        assert_eq!(
            e.to_string(),
            "compression level \"10\" is out of range for gzip (expected 0-9)"
        );
        assert!(Compression::from_options("zstd", Some("x")).is_err());
        let e = Compression::from_options("estargz", None).unwrap_err();
        assert_eq!(
            e.to_string(),
            "unsupported compression \"estargz\" (expected uncompressed, gzip or zstd)"
        );
    }

    #[test]
    fn gzip_header_carries_no_time_name_or_host() {
        let mut out = Vec::new();
        let workers = Workers::new(None, Compression::default());
        compress_stream(
            Compression::default(),
            &workers,
            |w| w.write_all(b"hello"),
            &mut out,
        )
        .unwrap();
        // magic, CM=deflate, FLG=0 (no name/comment/extra), MTIME=0, XFL, OS=255
        assert_eq!(&out[..4], &[0x1f, 0x8b, 8, 0]);
        assert_eq!(&out[4..8], &[0, 0, 0, 0]);
        assert_eq!(out[9], 255);
    }

    #[test]
    fn media_types_per_kind() {
        let gz = Compression::default();
        assert_eq!(
            gz.layer_media_type(MediaTypes::Oci).unwrap(),
            media_types::OCI_LAYER_GZIP
        );
        assert_eq!(
            gz.layer_media_type(MediaTypes::Docker).unwrap(),
            media_types::DOCKER_LAYER_GZIP
        );
        assert_eq!(
            Compression::Uncompressed
                .layer_media_type(MediaTypes::Docker)
                .unwrap(),
            DOCKER_LAYER
        );
        assert!(matches!(
            Compression::Zstd { level: 3 }.layer_media_type(MediaTypes::Docker),
            Err(ImageError::ZstdWithDockerMedia)
        ));
    }
}
