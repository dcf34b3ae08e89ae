//! The exported cache, our own format: an OCI artifact whose manifest
//! (`artifactType` [`ARTIFACT_TYPE`]) points at a JSON config ([`CacheConfig`]: the
//! records and the layers they use) and at the compressed layer blobs.
//!
//! A record maps a cache key (a definition or a content key) to a result: the
//! effective key dependents compose theirs from, and the layer chain (indexes into
//! `layers`, bottom first). A layer is named by its diffID (the canonical tar's
//! sha256) with the blob that holds it compressed; an empty layer (a step that changed
//! nothing) has no blob. Inline caches (in an image config) omit blobs: the image's
//! own layers hold them.

use serde::{Deserialize, Serialize};
use strata_digest::Digest;
use strata_oci::Descriptor;

pub const ARTIFACT_TYPE: &str = "application/vnd.strata.cache.v1+json";
pub const CONFIG_MEDIA_TYPE: &str = "application/vnd.strata.cache.config.v1+json";
/// The image config field holding an inline cache.
pub const INLINE_FIELD: &str = "strata.cache.v1";
/// The name an OCI layout's index gives the cache manifest.
pub const LAYOUT_REF_NAME: &str = "strata-cache";
pub const VERSION: u32 = 1;

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct CacheConfig {
    pub version: u32,
    /// Algorithm and level of every blob (`gzip`/`zstd`), when known.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub compression: Option<(String, i32)>,
    pub layers: Vec<LayerEntry>,
    pub records: Vec<RecordEntry>,
    /// Cache-mount contents (`cache-mounts=true`).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub mounts: Vec<MountEntry>,
}

/// The content of a `RUN --mount=type=cache` directory, as a gzip layer blob.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct MountEntry {
    /// The directory's name in the store (`cache-mounts/<name>`).
    pub name: String,
    /// The mount's `id=` (or target).
    pub id: String,
    #[serde(rename = "diffID")]
    pub diff_id: Digest,
    pub blob: Descriptor,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct LayerEntry {
    #[serde(rename = "diffID")]
    pub diff_id: Digest,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub blob: Option<Descriptor>,
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub empty: bool,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct RecordEntry {
    pub key: Digest,
    /// The effective key of the result.
    pub result: Digest,
    pub layers: Vec<usize>,
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub description: String,
}

/// The artifact manifest (an OCI image manifest with `artifactType`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ArtifactManifest {
    pub schema_version: u32,
    pub media_type: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub artifact_type: Option<String>,
    pub config: Descriptor,
    pub layers: Vec<Descriptor>,
}

impl CacheConfig {
    pub fn to_bytes(&self) -> Vec<u8> {
        serde_json::to_vec(self).expect("cache configs serialize")
    }

    /// Drops the records that use a layer with neither a blob nor `empty` (an inline
    /// cache whose image holds a rewritten copy of the layer).
    pub fn drop_unresolved(&mut self) {
        let layers = &self.layers;
        self.records.retain(|r| {
            r.layers
                .iter()
                .all(|&i| layers.get(i).is_some_and(|l| l.empty || l.blob.is_some()))
        });
    }

    /// Checks that every record's layer indexes are in range.
    pub fn validate(&self) -> Result<(), String> {
        if self.version != VERSION {
            return Err(format!(
                "cache format version {} (this strata reads {VERSION})",
                self.version
            ));
        }
        for r in &self.records {
            if let Some(i) = r.layers.iter().find(|&&i| i >= self.layers.len()) {
                return Err(format!(
                    "record {} names layer #{i} of {}",
                    r.key,
                    self.layers.len()
                ));
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn configs_round_trip_and_bad_indexes_are_refused() {
        let d = |b: &[u8]| strata_digest::sha256(b);
        let cfg = CacheConfig {
            version: VERSION,
            compression: Some(("gzip".into(), 6)),
            layers: vec![
                LayerEntry {
                    diff_id: d(b"a"),
                    blob: Some(Descriptor::new(
                        strata_oci::media_types::OCI_LAYER_GZIP,
                        d(b"z"),
                        3,
                    )),
                    empty: false,
                },
                LayerEntry {
                    diff_id: d(b"e"),
                    blob: None,
                    empty: true,
                },
            ],
            records: vec![RecordEntry {
                key: d(b"k"),
                result: d(b"r"),
                layers: vec![0, 1],
                description: "[1/2] RUN x".into(),
            }],
            mounts: Vec::new(),
        };
        let back: CacheConfig = serde_json::from_slice(&cfg.to_bytes()).unwrap();
        assert_eq!(back, cfg);
        assert!(String::from_utf8(cfg.to_bytes())
            .unwrap()
            .contains("\"diffID\""));
        back.validate().unwrap();
        let mut bad = cfg.clone();
        bad.records[0].layers.push(2);
        assert!(bad.validate().unwrap_err().contains("layer #2 of 2"));
        bad = cfg;
        bad.version = 9;
        assert!(bad.validate().unwrap_err().contains("version 9"));

        let mut unresolved = back.clone();
        unresolved.drop_unresolved();
        assert_eq!(unresolved, back, "every layer has a blob or is empty");
        unresolved.layers[0].blob = None;
        unresolved.drop_unresolved();
        assert!(unresolved.records.is_empty());
    }
}
