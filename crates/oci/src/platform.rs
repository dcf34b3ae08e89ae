use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};

/// `os/arch[/variant]`, normalised as containerd does (`x86_64` → `amd64`,
/// `aarch64` → `arm64`, `arm64/v8` → `arm64`).
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub struct Platform {
    pub os: String,
    pub architecture: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub variant: Option<String>,
}

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
#[error("invalid platform {value:?}: expected os/arch[/variant], e.g. linux/amd64{}", list_hint(.value))]
pub struct PlatformError {
    pub value: String,
}

fn list_hint(value: &str) -> &'static str {
    if value.contains(',') {
        " (one platform: multi-platform builds are not supported, build each on its own)"
    } else {
        ""
    }
}

impl Platform {
    /// The platform this process runs on.
    pub fn host() -> Self {
        let arch = match std::env::consts::ARCH {
            "x86_64" => "amd64",
            "aarch64" => "arm64",
            "x86" => "386",
            "arm" => "arm",
            "powerpc64" => "ppc64le",
            other => other,
        };
        let variant = (arch == "arm").then(|| "v7".to_string());
        Platform {
            os: "linux".into(),
            architecture: arch.into(),
            variant,
        }
    }

    pub fn new(os: &str, arch: &str, variant: Option<&str>) -> Self {
        normalise(os, arch, variant)
    }
}

fn normalise(os: &str, arch: &str, variant: Option<&str>) -> Platform {
    let os = os.to_ascii_lowercase();
    let (arch, mut variant) = match (arch.to_ascii_lowercase().as_str(), variant) {
        ("x86_64" | "x86-64", v) => ("amd64".to_string(), v.map(str::to_string)),
        ("aarch64", v) | ("arm64", v) => (
            "arm64".to_string(),
            v.filter(|v| *v != "v8").map(str::to_string),
        ),
        ("armhf", _) => ("arm".to_string(), Some("v7".to_string())),
        ("armel", _) => ("arm".to_string(), Some("v6".to_string())),
        ("i386", v) => ("386".to_string(), v.map(str::to_string)),
        (a, v) => (a.to_string(), v.map(str::to_string)),
    };
    if arch == "arm" && variant.is_none() {
        variant = Some("v7".into());
    }
    Platform {
        os,
        architecture: arch,
        variant,
    }
}

impl FromStr for Platform {
    type Err = PlatformError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let err = || PlatformError {
            value: s.to_string(),
        };
        let parts: Vec<&str> = s.split('/').collect();
        // Components as containerd allows them: letters, digits, `_` and `-`.
        let valid = |p: &&str| {
            !p.is_empty()
                && p.chars()
                    .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-')
        };
        if !parts.iter().all(valid) {
            return Err(err());
        }
        match parts.as_slice() {
            [os, arch] => Ok(normalise(os, arch, None)),
            [os, arch, variant] => Ok(normalise(os, arch, Some(variant))),
            _ => Err(err()),
        }
    }
}

impl fmt::Display for Platform {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.os, self.architecture)?;
        if let Some(v) = &self.variant {
            write!(f, "/{v}")?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_and_normalises() {
        let cases = [
            ("linux/amd64", "linux/amd64"),
            ("linux/x86_64", "linux/amd64"),
            ("linux/aarch64", "linux/arm64"),
            ("linux/arm64/v8", "linux/arm64"),
            ("linux/arm", "linux/arm/v7"),
            ("linux/arm/v6", "linux/arm/v6"),
            ("Linux/AMD64", "linux/amd64"),
        ];
        for (input, want) in cases {
            assert_eq!(
                input.parse::<Platform>().unwrap().to_string(),
                want,
                "{input}"
            );
        }
        for bad in [
            "linux",
            "",
            "linux/",
            "a/b/c/d",
            "linux /amd64",
            "linux/amd64,linux/arm64",
            "linux/amd64;",
        ] {
            assert!(bad.parse::<Platform>().is_err(), "{bad}");
        }
        let list = "linux/amd64,linux/arm64".parse::<Platform>().unwrap_err();
        assert!(
            list.to_string()
                .contains("multi-platform builds are not supported"),
            "{list}"
        );
    }

    #[test]
    fn host_is_linux() {
        assert_eq!(Platform::host().os, "linux");
    }
}
