//! Garbage collection on a store with hand-made layers, records, images and pins.

use std::collections::BTreeSet;
use std::path::Path;

use strata_digest::{sha256, Digest};
use strata_store::{
    CacheRecord, ImageRecord, PruneOptions, RecordInfo, RecordKind, Resource, Store,
};

/// Records here hold a JSON array of layer digests.
fn interpret(_: &Digest, rec: &CacheRecord) -> RecordInfo {
    let refs = rec
        .value
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|v| v.as_str()?.parse().ok())
        .map(Resource::Layer)
        .collect();
    RecordInfo {
        kind: RecordKind::Regular,
        refs,
        derived_from: None,
        what: rec.description.clone(),
    }
}

fn layer(root: &Path, name: &str, bytes: usize) -> Digest {
    let d = sha256(name);
    let dir = root.join("layers").join(d.hex());
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::write(dir.join("f"), vec![7u8; bytes]).unwrap();
    d
}

fn record(store: &Store, name: &str, chain: &[Digest], last_used: u64) -> Digest {
    let key = sha256(format!("key {name}"));
    let value = serde_json::json!(chain.iter().map(|d| d.to_string()).collect::<Vec<_>>());
    store
        .cache_put(
            &key,
            &CacheRecord {
                value,
                created: last_used,
                last_used,
                use_count: 0,
                description: name.into(),
                size: 0,
            },
        )
        .unwrap();
    key
}

fn layers_on_disk(root: &Path) -> BTreeSet<String> {
    std::fs::read_dir(root.join("layers"))
        .unwrap()
        .map(|e| e.unwrap().file_name().into_string().unwrap())
        .collect()
}

fn keys(store: &Store) -> BTreeSet<Digest> {
    store
        .cache_records()
        .unwrap()
        .into_iter()
        .map(|(k, _)| k)
        .collect()
}

const NONE: &dyn Fn(&strata_store::RecordEntry) -> bool = &|_| true;

#[test]
fn lru_keeps_what_a_recent_record_shares_but_not_an_old_sibling_layer() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path();
    let store = Store::open(root).unwrap();
    let (a, b, c, d) = (
        layer(root, "a", 10_000),
        layer(root, "b", 20_000),
        layer(root, "c", 30_000),
        layer(root, "d", 40_000),
    );
    let r1 = record(&store, "r1", &[a], 100);
    let r2 = record(&store, "r2", &[a, b], 200);
    let r4 = record(&store, "r4", &[a, d], 300);
    let r3 = record(&store, "r3", &[a, b, c], 1_000);
    let interpret: &dyn Fn(&Digest, &CacheRecord) -> RecordInfo = &interpret;

    let state = store.gc_state(interpret).unwrap();
    let everything = state.cache_size(&BTreeSet::new());
    assert!(everything >= 100_000, "{everything}");
    // Room for a, b and c (and their directories), not d.
    let keep = everything - 40_000;
    let report = store
        .prune(
            interpret,
            &PruneOptions {
                all: false,
                keep_storage: Some(keep),
                filter: NONE,
                orphan_blobs: false,
            },
        )
        .unwrap();
    // r1 and r2 go (oldest first) without freeing anything; r4 frees d; r3 stays.
    assert_eq!(keys(&store), BTreeSet::from([r3]));
    let gone: BTreeSet<Digest> = report.records.iter().map(|(k, _)| *k).collect();
    assert_eq!(gone, BTreeSet::from([r1, r2, r4]));
    assert_eq!(
        layers_on_disk(root),
        BTreeSet::from([a.hex(), b.hex(), c.hex()])
    );
    assert!(
        report.freed >= 40_000 && report.freed < 50_000,
        "{}",
        report.freed
    );
}

#[test]
fn pins_images_and_leftovers() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path();
    let store = Store::open(root).unwrap();
    let (a, b, c) = (
        layer(root, "a", 100),
        layer(root, "b", 100),
        layer(root, "c", 100),
    );
    record(&store, "uses a", &[a], 1);
    let rb = record(&store, "uses b", &[b], 2);
    record(&store, "uses c", &[c], 3);
    // An image whose (uncompressed) layer is c.
    let config = store.put_bytes(b"{}").unwrap();
    let manifest = serde_json::json!({
        "schemaVersion": 2,
        "config": {"digest": config.to_string(), "size": 2},
        "layers": [{"digest": c.to_string(), "size": 100}],
    });
    let manifest = store
        .put_bytes(serde_json::to_vec(&manifest).unwrap().as_slice())
        .unwrap();
    store
        .put_image(
            "docker.io/library/app:latest",
            &ImageRecord {
                manifest,
                config,
                media_type: "application/vnd.oci.image.manifest.v1+json".into(),
                size: 102,
                created: None,
                platform: "linux/amd64".into(),
            },
        )
        .unwrap();
    let unnamed = store.put_bytes(b"an untagged image's blob").unwrap();
    // Another handle (a concurrent build) pins layer b and its record.
    let build = Store::open(root).unwrap();
    build.pin_record(&rb, &[Resource::Layer(b)]).unwrap();
    // A layer that build stored after taking its lease, not recorded yet.
    let leftover = layer(root, "leftover", 100);
    let interpret: &dyn Fn(&Digest, &CacheRecord) -> RecordInfo = &interpret;

    let opts = PruneOptions {
        all: true,
        keep_storage: None,
        filter: NONE,
        orphan_blobs: false,
    };
    store.prune(interpret, &opts).unwrap();
    let on_disk = layers_on_disk(root);
    assert!(!on_disk.contains(&a.hex()), "a's only record went");
    assert!(on_disk.contains(&b.hex()), "pinned");
    assert!(on_disk.contains(&c.hex()), "an image's layer");
    assert!(
        on_disk.contains(&leftover.hex()),
        "younger than a live lease"
    );
    assert_eq!(keys(&store).len(), 1, "the pinned record stays");
    assert!(
        store.has_blob(&unnamed).unwrap(),
        "blobs only with orphan_blobs"
    );

    // The build ends; this handle's own lease (taken when it wrote blobs) goes too.
    drop(build);
    store.release_pins().unwrap();
    let report = store
        .prune(
            interpret,
            &PruneOptions {
                orphan_blobs: true,
                ..opts
            },
        )
        .unwrap();
    assert_eq!(layers_on_disk(root), BTreeSet::from([c.hex()]));
    assert!(keys(&store).is_empty());
    assert!(!store.has_blob(&unnamed).unwrap());
    assert!(store.has_blob(&manifest).unwrap() && store.has_blob(&config).unwrap());
    assert_eq!(report.resources, 3, "b, the leftover and the blob");
}
