//! The solver's cache records as garbage collection and `strata cache du` see them:
//! what each references and what made it ([`record_info`]), and the pins a build
//! takes on what it uses (see `strata_store`'s `pin.rs` for why a pin comes before the
//! existence check).
//!
//! Records the solver writes:
//! - a vertex's result (`{"output": {"Fs": [diffID…]}, "key": …}`), described by the
//!   vertex name (`[build 2/4] RUN make`): `regular`, or `source.image` for a `FROM`;
//! - the layer extracted from a pulled blob (a diffID string, `layer of blob <digest>`):
//!   `source.image`, part of every image holding that blob;
//! - the layer a file step made last time (a diffID string): `internal`;
//! - an HTTP download's validators: `source.http`, no files;
//! - a cache mount (`{"cache_mount": name, "id": …, "target": …}`): `exec.cachemount`.

use serde::{Deserialize, Serialize};
use strata_digest::{key, Digest};
use strata_store::{CacheRecord, RecordInfo, RecordKind, Resource, Store};

use crate::Output;

/// What the record `rec` references and what made it.
pub fn record_info(_key: &Digest, rec: &CacheRecord) -> RecordInfo {
    let what = rec.description.clone();
    let info = |kind, refs, derived_from| RecordInfo {
        kind,
        refs,
        derived_from,
        what: what.clone(),
    };
    if let Ok(m) = serde_json::from_value::<CacheMountRecord>(rec.value.clone()) {
        let what = format!("cache mount id={} target={}", m.id, m.target);
        return RecordInfo {
            kind: RecordKind::ExecCacheMount,
            refs: vec![Resource::CacheMount(m.cache_mount)],
            derived_from: None,
            what,
        };
    }
    if let Some(out) = rec.value.get("output") {
        let refs = match serde_json::from_value::<Output>(out.clone()) {
            Ok(Output::Fs(chain)) => layers(chain.layers()),
            _ => Vec::new(),
        };
        let instruction = what.split_once("] ").map_or(what.as_str(), |(_, i)| i);
        let is_from = instruction
            .get(..5)
            .is_some_and(|s| s.eq_ignore_ascii_case("from "));
        let kind = if is_from {
            RecordKind::SourceImage
        } else {
            RecordKind::Regular
        };
        return info(kind, refs, None);
    }
    let layer = rec.value.as_str().and_then(|s| s.parse::<Digest>().ok());
    if let (Some(layer), Some(blob)) = (layer, what.strip_prefix("layer of blob ")) {
        return info(
            RecordKind::SourceImage,
            vec![Resource::Layer(layer)],
            blob.parse().ok(),
        );
    }
    if let Some(layer) = layer {
        return info(RecordKind::Internal, vec![Resource::Layer(layer)], None);
    }
    if what.starts_with("http validators") {
        return info(RecordKind::SourceHttp, Vec::new(), None);
    }
    info(RecordKind::Internal, Vec::new(), None)
}

/// The record of a cache mount.
#[derive(Serialize, Deserialize)]
struct CacheMountRecord {
    cache_mount: String,
    id: String,
    target: String,
}

pub(crate) fn layers(chain: &[Digest]) -> Vec<Resource> {
    chain.iter().copied().map(Resource::Layer).collect()
}

/// Pins a record and its layers for this build; failure is only reported by the
/// caller's later existence check (a concurrent collection may then win).
pub(crate) fn pin(store: &Store, key: &Digest, resources: &[Resource]) {
    let _ = store.pin_record(key, resources);
}

/// Pins a layer this process just stored, then checks it is still there: committing
/// a layer the store already had keeps the stored copy, which a concurrent collection
/// may have been about to sweep as a leftover. Either the pin came first (it stays) or
/// the collection did, and the build fails here instead of later on a missing layer.
pub(crate) fn pin_stored(
    store: &Store,
    layers: &strata_snapshot::Layers,
    diff_id: &Digest,
) -> Result<(), strata_scheduler::OpError> {
    let _ = store.pin(&[Resource::Layer(*diff_id)]);
    if layers.has(diff_id) {
        Ok(())
    } else {
        Err(strata_scheduler::OpError::new(format!(
            "layer {diff_id} was removed by a concurrent garbage collection while this build \
             stored it; run the build again"
        )))
    }
}

/// Whether a RUN of this process mounted a cache (which may have grown).
static CACHE_MOUNT_USED: std::sync::atomic::AtomicBool = std::sync::atomic::AtomicBool::new(false);

/// Whether this process used a cache mount (see [`use_cache_mount`]): what it wrote
/// there is invisible in the store's directory times.
pub fn cache_mount_used() -> bool {
    CACHE_MOUNT_USED.load(std::sync::atomic::Ordering::Relaxed)
}

/// Records (or touches) the cache mount `name` (`id`, mounted at `target`) and pins it.
pub(crate) fn use_cache_mount(store: &Store, name: &str, id: &str, target: &str) {
    CACHE_MOUNT_USED.store(true, std::sync::atomic::Ordering::Relaxed);
    let k = key::encode("strata/cache-mount", name);
    pin(store, &k, &[Resource::CacheMount(name.to_string())]);
    if let Ok(Some(_)) = store.cache_get(&k) {
        return;
    }
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs());
    let value = CacheMountRecord {
        cache_mount: name.to_string(),
        id: id.to_string(),
        target: target.to_string(),
    };
    let _ = store.cache_put(
        &k,
        &CacheRecord {
            value: serde_json::to_value(value).expect("a cache mount record serializes"),
            created: now,
            last_used: now,
            use_count: 1,
            description: format!("cache mount id={id} target={target}"),
            size: 0,
        },
    );
}

#[cfg(test)]
mod tests {
    use super::*;
    use strata_digest::sha256;

    fn rec(value: serde_json::Value, description: &str) -> CacheRecord {
        CacheRecord {
            value,
            created: 0,
            last_used: 0,
            use_count: 0,
            description: description.into(),
            size: 0,
        }
    }

    #[test]
    fn every_kind_of_record_is_understood() {
        let (a, b, blob) = (sha256("a"), sha256("b"), sha256("blob"));
        let k = sha256("k");
        let vertex = serde_json::json!({"output": {"Fs": [a.to_string(), b.to_string()]}, "key": k.to_string()});
        let i = record_info(&k, &rec(vertex.clone(), "[build 2/4] RUN make"));
        assert_eq!(i.kind, RecordKind::Regular);
        assert_eq!(i.refs, vec![Resource::Layer(a), Resource::Layer(b)]);
        assert_eq!(i.own(), Some(&Resource::Layer(b)));
        assert_eq!(
            record_info(&k, &rec(vertex, "[1/3] FROM busybox")).kind,
            RecordKind::SourceImage
        );

        let extracted = record_info(
            &k,
            &rec(
                serde_json::json!(a.to_string()),
                &format!("layer of blob {blob}"),
            ),
        );
        assert_eq!(extracted.kind, RecordKind::SourceImage);
        assert_eq!(extracted.derived_from, Some(blob));
        assert_eq!(extracted.refs, vec![Resource::Layer(a)]);

        let prev = record_info(
            &k,
            &rec(
                serde_json::json!(b.to_string()),
                "previous layer of a file step (incremental COPY)",
            ),
        );
        assert_eq!(
            (prev.kind, prev.refs),
            (RecordKind::Internal, vec![Resource::Layer(b)])
        );

        let mount =
            serde_json::json!({"cache_mount": "abc-1", "id": "go", "target": "/root/.cache"});
        let m = record_info(&k, &rec(mount, "cache mount id=go target=/root/.cache"));
        assert_eq!(m.kind, RecordKind::ExecCacheMount);
        assert_eq!(m.refs, vec![Resource::CacheMount("abc-1".into())]);
        assert_eq!(m.what, "cache mount id=go target=/root/.cache");

        let http = record_info(
            &k,
            &rec(
                serde_json::json!({"etag": "x"}),
                "http validators of http://h/f",
            ),
        );
        assert_eq!((http.kind, http.refs.len()), (RecordKind::SourceHttp, 0));
    }

    #[test]
    fn a_cache_mount_is_recorded_once_and_pinned() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(dir.path()).unwrap();
        use_cache_mount(&store, "n1", "go", "/root/.cache");
        use_cache_mount(&store, "n1", "go", "/root/.cache");
        let recs = store.cache_records().unwrap();
        assert_eq!(recs.len(), 1);
        assert_eq!(recs[0].1.use_count, 2);
        assert!(store.leased("cache-mount", "n1").unwrap());
    }
}
