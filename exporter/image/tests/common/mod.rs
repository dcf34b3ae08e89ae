//! Fixtures: an in-memory layer source that counts how often it is streamed.
#![allow(dead_code)]

use std::io::{self, Read, Write};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

use strata_digest::{sha256, Digest};
use strata_image::LayerSource;
use strata_oci::{History, ImageConfig};

/// A layer made of files (path, content, mtime); directories are implied.
pub struct TestLayer {
    files: Vec<(String, Vec<u8>, u64)>,
    id: Digest,
    pub writes: AtomicUsize,
}

impl TestLayer {
    pub fn new(files: &[(&str, &[u8], u64)]) -> Arc<Self> {
        let files: Vec<_> = files
            .iter()
            .map(|(p, c, m)| (p.to_string(), c.to_vec(), *m))
            .collect();
        let id = sha256(tar_bytes(&files, None));
        Arc::new(TestLayer {
            files,
            id,
            writes: AtomicUsize::new(0),
        })
    }

    /// A layer with one file whose content is `n` bytes derived from `seed`.
    pub fn generated(seed: u8, n: usize) -> Arc<Self> {
        let content: Vec<u8> = (0..n)
            .map(|i| ((i as u64 * 2_654_435_761 + seed as u64) >> 7) as u8)
            .collect();
        Self::new(&[(&format!("data/file-{seed}"), &content, 1_700_000_000)])
    }

    /// The tar this layer writes.
    pub fn tar(&self, epoch: Option<i64>) -> Vec<u8> {
        tar_bytes(&self.files, epoch)
    }

    pub fn writes(&self) -> usize {
        self.writes.load(Ordering::SeqCst)
    }
}

fn tar_bytes(files: &[(String, Vec<u8>, u64)], epoch: Option<i64>) -> Vec<u8> {
    let mut b = tar::Builder::new(Vec::new());
    let mut files: Vec<_> = files.iter().collect();
    files.sort_by(|a, b| a.0.cmp(&b.0));
    for (path, content, mtime) in files {
        let mtime = match epoch {
            Some(e) => (*mtime).min(e as u64),
            None => *mtime,
        };
        let mut h = tar::Header::new_gnu();
        h.set_path(path).unwrap();
        h.set_size(content.len() as u64);
        h.set_mode(0o644);
        h.set_mtime(mtime);
        h.set_entry_type(tar::EntryType::Regular);
        h.set_cksum();
        b.append(&h, content.as_slice()).unwrap();
    }
    b.into_inner().unwrap()
}

impl LayerSource for TestLayer {
    fn layer_id(&self) -> Digest {
        self.id
    }

    fn write_tar(&self, w: &mut dyn Write, epoch: Option<i64>) -> io::Result<Digest> {
        self.writes.fetch_add(1, Ordering::SeqCst);
        // Small writes, as a real tar writer makes them.
        strata_image::hash_written(w, |w| {
            self.tar(epoch).chunks(512).try_for_each(|c| w.write_all(c))
        })
    }
}

pub fn as_sources(layers: &[Arc<TestLayer>]) -> Vec<Arc<dyn LayerSource>> {
    layers
        .iter()
        .map(|l| l.clone() as Arc<dyn LayerSource>)
        .collect()
}

/// A config with one non-empty history entry per layer plus an ENV entry.
pub fn config(layers: usize) -> ImageConfig {
    let mut c = ImageConfig {
        architecture: "amd64".into(),
        os: "linux".into(),
        ..ImageConfig::default()
    };
    c.config.env = vec!["PATH=/usr/bin:/bin".into()];
    c.config.cmd = Some(vec!["/bin/sh".into()]);
    for i in 0..layers {
        c.history.push(History {
            created_by: Some(format!("RUN step {i}")),
            ..History::default()
        });
    }
    c.history.push(History {
        created_by: Some("ENV A=1".into()),
        empty_layer: true,
        ..History::default()
    });
    c
}

pub fn gunzip(b: &[u8]) -> Vec<u8> {
    let mut out = Vec::new();
    flate2::read::GzDecoder::new(b)
        .read_to_end(&mut out)
        .unwrap();
    out
}

pub fn unzstd(b: &[u8]) -> Vec<u8> {
    zstd::decode_all(b).unwrap()
}

/// The entries of a tar: (path, mtime, content).
pub fn tar_entries(b: &[u8]) -> Vec<(String, u64, Vec<u8>)> {
    let mut a = tar::Archive::new(b);
    a.entries()
        .unwrap()
        .map(|e| {
            let mut e = e.unwrap();
            let path = e.path().unwrap().to_string_lossy().into_owned();
            let mtime = e.header().mtime().unwrap();
            let mut content = Vec::new();
            e.read_to_end(&mut content).unwrap();
            (path, mtime, content)
        })
        .collect()
}
