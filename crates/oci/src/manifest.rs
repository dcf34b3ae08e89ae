use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};
use strata_digest::Digest;

use crate::Platform;

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Descriptor {
    pub media_type: String,
    pub digest: Digest,
    pub size: u64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub platform: Option<Platform>,
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub annotations: BTreeMap<String, String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub artifact_type: Option<String>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub urls: Vec<String>,
}

impl Descriptor {
    /// A plain descriptor: no platform, annotations, artifact type or URLs.
    pub fn new(media_type: &str, digest: Digest, size: u64) -> Self {
        Descriptor {
            media_type: media_type.to_string(),
            digest,
            size,
            platform: None,
            annotations: BTreeMap::new(),
            artifact_type: None,
            urls: Vec::new(),
        }
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ImageManifest {
    pub schema_version: u32,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub media_type: Option<String>,
    pub config: Descriptor,
    pub layers: Vec<Descriptor>,
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub annotations: BTreeMap<String, String>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ImageIndex {
    pub schema_version: u32,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub media_type: Option<String>,
    pub manifests: Vec<Descriptor>,
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub annotations: BTreeMap<String, String>,
}

impl ImageIndex {
    /// The manifest for `platform`, as containerd matches: exact os/arch, variant equal
    /// or unspecified on either side.
    pub fn select(&self, platform: &Platform) -> Option<&Descriptor> {
        let matches = |p: &Platform| {
            p.os == platform.os
                && p.architecture == platform.architecture
                && (p.variant.is_none()
                    || platform.variant.is_none()
                    || p.variant == platform.variant)
        };
        self.manifests.iter().find(|d| {
            d.platform.as_ref().is_some_and(|p| {
                matches(&Platform::new(&p.os, &p.architecture, p.variant.as_deref()))
            })
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn selects_platform_from_index() {
        let d = |p: &str, n: u8| Descriptor {
            media_type: crate::media_types::OCI_MANIFEST.into(),
            digest: strata_digest::sha256([n]),
            size: 1,
            platform: Some(p.parse().unwrap()),
            annotations: BTreeMap::new(),
            artifact_type: None,
            urls: vec![],
        };
        let idx = ImageIndex {
            schema_version: 2,
            media_type: None,
            manifests: vec![
                d("linux/arm64", 1),
                d("linux/amd64", 2),
                d("linux/arm/v6", 3),
            ],
            annotations: BTreeMap::new(),
        };
        assert_eq!(
            idx.select(&"linux/amd64".parse().unwrap()).unwrap().digest,
            strata_digest::sha256([2])
        );
        assert_eq!(
            idx.select(&"linux/arm/v6".parse().unwrap()).unwrap().digest,
            strata_digest::sha256([3])
        );
        assert!(idx.select(&"linux/arm/v7".parse().unwrap()).is_none());
        assert!(idx.select(&"windows/amd64".parse().unwrap()).is_none());
    }
}
