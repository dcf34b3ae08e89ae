//! Layer blobs compressed on several threads: the same bytes for any thread count,
//! and readable by flate2's `GzDecoder` and `MultiGzDecoder`, the zstd crate, and the
//! system's `gzip -d`, `pigz -d` and `zstd -d` (each skipped, saying why, when not
//! installed: `apt-get install pigz zstd`).

mod common;

use std::io::{Read, Write};
use std::num::NonZeroUsize;
use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::sync::Arc;

use common::*;
use strata_image::{build_image, Compression, ImageOptions, MemorySink};

/// Text files and incompressible ones, about 2.2 MiB: many 128 KiB gzip blocks (the
/// library's tests cover zstd streams of several jobs).
fn layer() -> Arc<TestLayer> {
    let mut x = 0x9e37_79b9_7f4a_7c15u64;
    let mut noise = |n: usize| -> Vec<u8> {
        (0..n / 8)
            .flat_map(|_| {
                x ^= x << 13;
                x ^= x >> 7;
                x ^= x << 17;
                x.to_le_bytes()
            })
            .collect()
    };
    let text: Vec<u8> = (0..30_000)
        .flat_map(|i| format!("{i:08} a line of a source file\n").into_bytes())
        .collect();
    let (a, b) = (noise(512 << 10), noise((512 << 10) + 4096));
    TestLayer::new(&[
        ("src/text.txt", &text, 1_700_000_000),
        ("bin/a", &a, 1_700_000_000),
        ("bin/b", &b, 1_700_000_000),
        ("etc/small", b"x\n", 1_700_000_000),
    ])
}

/// The layer blob built with `threads` compression threads (`None`: the default).
fn blob(layer: &Arc<TestLayer>, compression: Compression, threads: Option<usize>) -> Vec<u8> {
    let sink = MemorySink::new();
    let opts = ImageOptions {
        compression,
        compression_threads: threads.map(|n| NonZeroUsize::new(n).unwrap()),
        ..ImageOptions::default()
    };
    let img = build_image(
        config(1),
        &as_sources(std::slice::from_ref(layer)),
        &opts,
        &sink,
    )
    .unwrap();
    sink.get(&img.layers[0].0.digest).unwrap().to_vec()
}

#[test]
fn blobs_are_the_same_bytes_for_any_thread_count() {
    let layer = layer();
    for compression in [
        Compression::Gzip { level: 6 },
        Compression::Gzip { level: 1 },
        Compression::Zstd { level: 1 },
        Compression::Zstd { level: 3 },
    ] {
        let one = blob(&layer, compression, Some(1));
        for threads in [Some(2), Some(4), None] {
            let other = blob(&layer, compression, threads);
            assert!(
                other == one,
                "{compression}: {threads:?} threads differ from 1"
            );
        }
    }
}

#[test]
fn flate2_and_zstd_read_the_blobs() {
    let layer = layer();
    let tar = layer.tar(None);
    let gz = blob(&layer, Compression::default(), None);
    let mut one = Vec::new();
    flate2::read::GzDecoder::new(&gz[..])
        .read_to_end(&mut one)
        .unwrap();
    assert!(one == tar, "GzDecoder");
    let mut multi = Vec::new();
    flate2::read::MultiGzDecoder::new(&gz[..])
        .read_to_end(&mut multi)
        .unwrap();
    assert!(multi == tar, "MultiGzDecoder");
    let zst = blob(&layer, Compression::Zstd { level: 3 }, None);
    assert!(zstd::decode_all(&zst[..]).unwrap() == tar, "zstd");
}

fn tool(name: &str) -> Option<PathBuf> {
    let found = std::env::var_os("PATH").and_then(|paths| {
        std::env::split_paths(&paths)
            .map(|p| p.join(name))
            .find(|p| p.is_file())
    });
    if found.is_none() {
        eprintln!("skipped: {name} is not installed (apt-get install {name})");
    }
    found
}

/// `tool args…` with `input` on stdin; its stdout.
fn pipe(tool: &PathBuf, args: &[&str], input: &[u8]) -> Vec<u8> {
    let mut child = Command::new(tool)
        .args(args)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut stdin = child.stdin.take().unwrap();
    let out = std::thread::scope(|s| {
        s.spawn(move || stdin.write_all(input).unwrap());
        child.wait_with_output().unwrap()
    });
    assert!(
        out.status.success(),
        "{} {args:?}: {}",
        tool.display(),
        String::from_utf8_lossy(&out.stderr)
    );
    out.stdout
}

#[test]
fn system_gzip_and_pigz_read_the_gzip_blobs() {
    let layer = layer();
    let tar = layer.tar(None);
    for level in [1, 6, 9] {
        let gz = blob(&layer, Compression::Gzip { level }, None);
        for name in ["gzip", "pigz"] {
            let Some(t) = tool(name) else { continue };
            // -t checks the CRC and length too; -d gives the bytes back.
            pipe(&t, &["-t"], &gz);
            let out = pipe(&t, &["-d", "-c"], &gz);
            assert!(out == tar, "{name} -d, level {level}");
        }
    }
}

#[test]
fn system_zstd_reads_the_zstd_blobs() {
    let Some(t) = tool("zstd") else { return };
    let layer = layer();
    let tar = layer.tar(None);
    let zst = blob(&layer, Compression::Zstd { level: 3 }, None);
    let out = pipe(&t, &["-d", "-c", "-q"], &zst);
    assert!(out == tar, "zstd -d");
}
