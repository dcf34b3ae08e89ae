//! `cargo bench -p strata-image`: layer compression throughput on ~512 MB (half
//! xorshift noise, half text; `STRATA_BENCH_MB` changes the size). Prints MB/s and
//! compressed size for:
//!
//! - the single-stream encoders the exporter used before (flate2 `GzEncoder`, zstd
//!   without workers), compressing from memory;
//! - `build_image` with 1 compression thread and with the default (all cores): the
//!   whole export path (diffID hash, compression, the sink's sha256 of the blob);
//! - `pigz` and `zstd` on the same bytes from a file, when installed, and strata's
//!   figure as a ratio of theirs.
//!
//! Figures only: nothing is asserted, and a busy machine gives lower numbers.

use std::io::{self, Write};
use std::num::NonZeroUsize;
use std::path::Path;
use std::process::{Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

use strata_digest::{Digest, HashingWriter};
use strata_image::{build_image, BlobSink, Compression, ImageOptions, LayerSource};
use strata_oci::{History, ImageConfig};

/// The bytes, handed out as a layer tar would be (in 1 MiB writes).
struct Bytes(Arc<Vec<u8>>, Digest);

impl LayerSource for Bytes {
    fn layer_id(&self) -> Digest {
        self.1
    }

    fn write_tar(&self, w: &mut dyn Write, _: Option<i64>) -> io::Result<Digest> {
        // Hashed as a real tar writer hashes what it writes.
        strata_image::hash_written(w, |w| {
            self.0.chunks(1 << 20).try_for_each(|c| w.write_all(c))
        })
    }
}

/// Hashes what it is given, as a store does, and keeps nothing.
struct Discard;

impl BlobSink for Discard {
    fn has(&self, _: &Digest) -> bool {
        false
    }

    fn put(
        &self,
        write: &mut dyn FnMut(&mut dyn Write) -> io::Result<()>,
    ) -> io::Result<(Digest, u64)> {
        let mut w = HashingWriter::new(io::sink());
        write(&mut w)?;
        let (d, n, _) = w.finish();
        Ok((d, n))
    }

    fn open(&self, _: &Digest) -> io::Result<Box<dyn io::Read + Send>> {
        Err(io::Error::other("the benchmark sink keeps nothing"))
    }
}

fn data(len: usize) -> Vec<u8> {
    let mut x = 0x9e37_79b9_7f4a_7c15u64;
    let mut next = || {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        x
    };
    let mut out = Vec::with_capacity(len + 64);
    // Alternate 4 MiB of noise and 4 MiB of text, as a layer mixes binaries and sources.
    while out.len() < len {
        let end = (out.len() + (4 << 20)).min(len);
        if (out.len() >> 22) % 2 == 0 {
            while out.len() < end {
                out.extend_from_slice(&next().to_le_bytes());
            }
        } else {
            let mut i = 0u64;
            while out.len() < end {
                i += 1;
                let line = format!("{:016x} line {i} of a source file\n", next() % 4096);
                out.extend_from_slice(line.as_bytes());
            }
        }
    }
    out.truncate(len);
    out
}

/// Best of `runs` (the machine is shared: the fastest run is the least disturbed).
fn best<T>(runs: usize, mut f: impl FnMut() -> T) -> (Duration, T) {
    let mut best: Option<(Duration, T)> = None;
    for _ in 0..runs {
        let t = Instant::now();
        let v = f();
        let d = t.elapsed();
        if best.as_ref().is_none_or(|(b, _)| d < *b) {
            best = Some((d, v));
        }
    }
    best.expect("at least one run")
}

/// Bytes written to a counting sink.
struct Count(u64);

impl Write for Count {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        self.0 += buf.len() as u64;
        Ok(buf.len())
    }

    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

fn single_stream(c: Compression, bytes: &[u8]) -> u64 {
    match c {
        Compression::Gzip { level } => {
            let mut e = flate2::GzBuilder::new()
                .mtime(0)
                .write(Count(0), flate2::Compression::new(level));
            e.write_all(bytes).unwrap();
            e.finish().unwrap().0
        }
        Compression::Zstd { level } => {
            let mut e = zstd::Encoder::new(Count(0), level).unwrap();
            e.include_checksum(true).unwrap();
            e.write_all(bytes).unwrap();
            e.finish().unwrap().0
        }
        Compression::Uncompressed => bytes.len() as u64,
    }
}

fn export(c: Compression, layer: &Arc<dyn LayerSource>, threads: Option<usize>) -> u64 {
    let mut config = ImageConfig {
        architecture: "amd64".into(),
        os: "linux".into(),
        ..ImageConfig::default()
    };
    config.history.push(History::default());
    let opts = ImageOptions {
        compression: c,
        compression_threads: threads.and_then(NonZeroUsize::new),
        ..ImageOptions::default()
    };
    let img = build_image(config, std::slice::from_ref(layer), &opts, &Discard).unwrap();
    img.layers[0].0.size
}

/// `tool args… FILE`, its output counted; `None` when the tool is missing or fails.
fn external(tool: &str, args: &[String], file: &Path) -> Option<u64> {
    let mut child = Command::new(tool)
        .args(args)
        .arg(file)
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .ok()?;
    let n = io::copy(&mut child.stdout.take()?, &mut io::sink()).ok()?;
    child.wait().ok()?.success().then_some(n)
}

fn main() {
    // `cargo bench` passes `--bench`; a filter argument is accepted and ignored.
    let mb: usize = std::env::var("STRATA_BENCH_MB")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(512);
    let runs: usize = std::env::var("STRATA_BENCH_RUNS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(2);
    let cores = std::thread::available_parallelism().map_or(1, NonZeroUsize::get);
    let bytes = Arc::new(data(mb << 20));
    let len = bytes.len() as f64;
    let layer: Arc<dyn LayerSource> =
        Arc::new(Bytes(bytes.clone(), strata_digest::sha256(&bytes[..])));
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("layer.tar");
    std::fs::write(&file, &bytes[..]).unwrap();
    let rate = |d: Duration| len / d.as_secs_f64() / 1e6;

    println!(
        "{:.0} MB (half noise, half text), {cores} cores, best of {runs}",
        len / 1e6
    );
    println!("{:<44} {:>9} {:>8}", "", "MB/s", "size %");
    for (c, tool, targs) in [
        (Compression::Gzip { level: 6 }, "pigz", "-6"),
        (Compression::Zstd { level: 3 }, "zstd", "-3"),
    ] {
        let row = |name: String, d: Duration, size: Option<u64>| {
            let size = size.map_or(String::from("-"), |s| {
                format!("{:.1}", 100.0 * s as f64 / len)
            });
            println!("{name:<44} {:>9.0} {size:>8}", rate(d));
        };
        let (d, n) = best(runs, || single_stream(c, &bytes));
        row(
            format!("{c}: single stream, no hashing (before)"),
            d,
            Some(n),
        );
        let (d1, n1) = best(runs, || export(c, &layer, Some(1)));
        row(format!("{c}: export, 1 thread"), d1, Some(n1));
        let (dn, nn) = best(runs, || export(c, &layer, None));
        row(format!("{c}: export, {cores} threads"), dn, Some(nn));
        let threads_flag = |n: usize| match tool {
            "pigz" => format!("-p{n}"),
            _ => format!("-T{n}"),
        };
        for n in [1, cores] {
            let args = vec![threads_flag(n), targs.to_string(), "-c".into(), "-q".into()];
            let args: Vec<String> = match tool {
                // pigz has no -q; -c to stdout.
                "pigz" => args.into_iter().filter(|a| a != "-q").collect(),
                _ => args,
            };
            if external(tool, &args, &file).is_none() {
                println!("{tool} not installed (apt-get install {tool}): no comparison");
                break;
            }
            let (dt, size) = best(runs, || external(tool, &args, &file));
            row(format!("{tool} {}", args[..2].join(" ")), dt, size);
            let ours = if n == 1 { d1 } else { dn };
            println!(
                "{:<44} {:>8.2}x",
                format!(
                    "  strata / {tool} ({n} thread{})",
                    if n == 1 { "" } else { "s" }
                ),
                dt.as_secs_f64() / ours.as_secs_f64()
            );
        }
    }
}
