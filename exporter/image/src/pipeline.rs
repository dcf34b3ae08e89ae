//! One layer's bytes through three stages that run at once:
//!
//! 1. a producer thread runs the layer's tar writer (which hashes the tar itself: the
//!    diffID) and hands the bytes to the encoder, cut into blocks for gzip;
//! 2. the encoder compresses: gzip blocks on a shared worker pool
//!    ([`crate::gzip_blocks`]), zstd on libzstd's own workers;
//! 3. the calling thread receives the compressed pieces in order and writes them to
//!    the blob sink (which hashes them and writes the file).
//!
//! A bounded channel joins 1 and 3, so a few blocks are in flight, never the layer.
//! The compressed bytes depend on the input, the algorithm and the level only, never
//! on the number of threads or how the stages were scheduled.

use std::io::{self, Write};
use std::num::NonZeroUsize;
use std::sync::mpsc::{self, Receiver, SyncSender, TrySendError};
use std::sync::OnceLock;

use rayon::ThreadPool;

use crate::gzip_blocks::{self, GzipBlocks};
use crate::Compression;

/// Size of the pieces sent to the sink, and of the uncompressed blocks; gzip cuts
/// its own [`gzip_blocks::BLOCK`]s and zstd its jobs.
const CHUNK: usize = 1 << 20;

/// Uncompressed bytes per zstd job up to level [`ZSTD_SMALL_WINDOW_LEVELS`]; libzstd's
/// choice (four times the window) above. Part of the output format, like gzip's
/// blocks: the worker count never changes it.
const ZSTD_JOB: u32 = 4 << 20;
const ZSTD_SMALL_WINDOW_LEVELS: i32 = 7;

/// What the compressing side sends to the writing side, in stream order.
pub(crate) enum Chunk {
    Ready(Vec<u8>),
    /// A gzip block still being deflated on a worker.
    Pending(Receiver<io::Result<Vec<u8>>>),
}

/// The threads that compress: how many, and (for gzip) the pool they form.
pub(crate) struct Workers {
    threads: NonZeroUsize,
    pool: Pool,
}

enum Pool {
    Inline,
    Shared(&'static ThreadPool),
    Owned(ThreadPool),
}

impl Workers {
    /// `threads` compression threads for `compression` (`None`: the machine's
    /// available parallelism, with a pool shared by every export in the process).
    pub(crate) fn new(threads: Option<NonZeroUsize>, compression: Compression) -> Workers {
        let gzip = matches!(compression, Compression::Gzip { .. });
        match threads {
            None => {
                static SHARED: OnceLock<Option<ThreadPool>> = OnceLock::new();
                let pool = match gzip {
                    true => SHARED.get_or_init(|| build_pool(available())).as_ref(),
                    false => None,
                };
                Workers {
                    threads: available(),
                    pool: pool.map_or(Pool::Inline, Pool::Shared),
                }
            }
            Some(n) => Workers {
                threads: n,
                pool: match gzip {
                    true => build_pool(n).map_or(Pool::Inline, Pool::Owned),
                    false => Pool::Inline,
                },
            },
        }
    }

    /// No worker threads for gzip: every block is deflated on the producer thread
    /// (the same bytes; tests compare the two).
    #[cfg(test)]
    pub(crate) fn inline() -> Workers {
        Workers {
            threads: NonZeroUsize::MIN,
            pool: Pool::Inline,
        }
    }

    fn gzip_pool(&self) -> Option<&ThreadPool> {
        match &self.pool {
            Pool::Inline => None,
            Pool::Shared(p) => Some(p),
            Pool::Owned(p) => Some(p),
        }
    }

    /// How many pieces may wait between the producer and the sink: enough to keep
    /// every worker busy while the sink writes.
    fn depth(&self) -> usize {
        2 * self.threads.get() + 2
    }
}

fn available() -> NonZeroUsize {
    std::thread::available_parallelism().unwrap_or(NonZeroUsize::MIN)
}

/// A pool of `n` gzip workers; `None` (deflate inline) if threads cannot be started.
fn build_pool(n: NonZeroUsize) -> Option<ThreadPool> {
    rayon::ThreadPoolBuilder::new()
        .num_threads(n.get())
        .thread_name(|i| format!("strata-gzip-{i}"))
        // A panicking job drops its sender: the writing side reports the failure
        // instead of the default handler aborting the process.
        .panic_handler(|_| {})
        .build()
        .ok()
}

/// Compress what `produce` writes into `out`; returns what `produce` returned (the
/// layer's diffID: the tar writer hashes what it writes, so the pipeline does not hash
/// the tar a second time). `flush` calls from `produce` are ignored: block boundaries
/// (and so the output) must not depend on them.
pub(crate) fn compress_stream<T: Send>(
    compression: Compression,
    workers: &Workers,
    produce: impl FnOnce(&mut dyn Write) -> io::Result<T> + Send,
    out: &mut dyn Write,
) -> io::Result<T> {
    std::thread::scope(|s| {
        let (tx, rx) = mpsc::sync_channel(workers.depth());
        let producer = std::thread::Builder::new()
            .name("strata-layer".into())
            .spawn_scoped(s, move || {
                let chunks = Chunks {
                    tx,
                    buf: Vec::new(),
                };
                let mut w = Producer::new(compression, workers, chunks)?;
                let value = produce(&mut w)?;
                w.finish()?;
                Ok(value)
            })?;
        let written = drain(rx, out);
        let produced = match producer.join() {
            Ok(r) => r,
            Err(panic) => std::panic::resume_unwind(panic),
        };
        // When the sink fails, the producer fails too (nobody reads); the sink's
        // error is the cause.
        written?;
        produced
    })
}

/// The writing side: pieces in order into `out`. Returning drops the receiver,
/// which stops the producer.
fn drain(rx: Receiver<Chunk>, out: &mut dyn Write) -> io::Result<()> {
    for chunk in rx {
        let bytes = match chunk {
            Chunk::Ready(b) => b,
            Chunk::Pending(r) => r
                .recv()
                .map_err(|_| io::Error::other("a gzip worker stopped without its block"))??,
        };
        out.write_all(&bytes)?;
    }
    out.flush()
}

/// The compressing side's output: bytes gathered into [`CHUNK`]-sized pieces, and
/// pending blocks, sent in order to [`drain`].
pub(crate) struct Chunks {
    tx: SyncSender<Chunk>,
    buf: Vec<u8>,
}

impl Chunks {
    fn send(&mut self, chunk: Chunk) -> io::Result<()> {
        let closed = || {
            io::Error::new(
                io::ErrorKind::BrokenPipe,
                "the blob sink stopped taking the layer",
            )
        };
        let chunk = match self.tx.try_send(chunk) {
            Ok(()) => return Ok(()),
            Err(TrySendError::Full(chunk)) => chunk,
            Err(TrySendError::Disconnected(_)) => return Err(closed()),
        };
        #[cfg(test)]
        tests::ON_FULL.with_borrow(|hook| hook.as_ref().map(|f| f()));
        // The sink is behind: wait for it.
        self.tx.send(chunk).map_err(|_| closed())
    }

    fn send_buffered(&mut self) -> io::Result<()> {
        if self.buf.is_empty() {
            return Ok(());
        }
        let b = std::mem::take(&mut self.buf);
        self.send(Chunk::Ready(b))
    }

    /// A gzip block whose bytes come later, after everything written so far.
    pub(crate) fn pending(&mut self, rx: Receiver<io::Result<Vec<u8>>>) -> io::Result<()> {
        self.send_buffered()?;
        self.send(Chunk::Pending(rx))
    }

    /// Bytes already in final form, sent as they are (after anything buffered).
    fn ready(&mut self, bytes: Vec<u8>) -> io::Result<()> {
        self.send_buffered()?;
        self.send(Chunk::Ready(bytes))
    }

    fn finish(mut self) -> io::Result<()> {
        self.send_buffered()
    }
}

impl Write for Chunks {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        if self.buf.capacity() == 0 {
            self.buf.reserve_exact(CHUNK);
        }
        let n = buf.len().min(CHUNK - self.buf.len());
        self.buf.extend_from_slice(&buf[..n]);
        if self.buf.len() == CHUNK {
            self.send_buffered()?;
        }
        Ok(n)
    }

    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

enum Encoder<'w> {
    Plain(Chunks),
    Gzip(GzipBlocks<'w>),
    Zstd(zstd::Encoder<'static, Chunks>),
}

/// The producer's writer: blocks of the uncompressed stream, encoded (zstd takes the
/// bytes as they come: it cuts its own jobs).
struct Producer<'w> {
    block: Vec<u8>,
    block_size: usize,
    encoder: Encoder<'w>,
}

impl<'w> Producer<'w> {
    fn new(compression: Compression, workers: &'w Workers, out: Chunks) -> io::Result<Self> {
        let (encoder, block_size) = match compression {
            Compression::Uncompressed => (Encoder::Plain(out), CHUNK),
            Compression::Gzip { level } => (
                Encoder::Gzip(GzipBlocks::new(level, workers.gzip_pool(), out)?),
                gzip_blocks::BLOCK,
            ),
            Compression::Zstd { level } => {
                let mut e = zstd::Encoder::new(out, level)?;
                e.include_checksum(true)?;
                // Always libzstd's multi-threaded mode, even with one worker: its
                // output is the same for any number of workers (but differs from
                // the single-threaded mode's).
                let n = u32::try_from(workers.threads.get()).unwrap_or(u32::MAX);
                e.multithread(n)?;
                if level <= ZSTD_SMALL_WINDOW_LEVELS {
                    // These levels have a 2 MiB window and libzstd cuts 8 MiB jobs;
                    // 4 MiB ones keep twice the window, cost about 0.1% in size on
                    // binaries and 50 MB less of buffers (with two workers).
                    e.set_parameter(zstd::zstd_safe::CParameter::JobSize(ZSTD_JOB))?;
                }
                (Encoder::Zstd(e), 0)
            }
        };
        Ok(Producer {
            block: Vec::with_capacity(block_size),
            block_size,
            encoder,
        })
    }

    /// Hand the current block to the encoder.
    fn emit(&mut self) -> io::Result<()> {
        match &mut self.encoder {
            Encoder::Plain(out) => {
                let next = Vec::with_capacity(self.block_size);
                out.ready(std::mem::replace(&mut self.block, next))
            }
            Encoder::Gzip(g) => {
                let next = Vec::with_capacity(self.block_size);
                g.block(std::mem::replace(&mut self.block, next))
            }
            Encoder::Zstd(z) => {
                z.write_all(&self.block)?;
                self.block.clear();
                Ok(())
            }
        }
    }

    fn finish(self) -> io::Result<()> {
        let out = match self.encoder {
            Encoder::Plain(mut out) => {
                out.write_all(&self.block)?;
                out
            }
            Encoder::Gzip(g) => g.finish(self.block)?,
            Encoder::Zstd(mut z) => {
                z.write_all(&self.block)?;
                z.finish()?
            }
        };
        out.finish()
    }
}

impl Write for Producer<'_> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        if let Encoder::Zstd(z) = &mut self.encoder {
            // libzstd gathers its own jobs: no block to copy into.
            return z.write(buf);
        }
        let n = buf.len().min(self.block_size - self.block.len());
        self.block.extend_from_slice(&buf[..n]);
        if self.block.len() == self.block_size {
            self.emit()?;
        }
        Ok(n)
    }

    /// Deliberately nothing: see [`compress_stream`].
    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Read;
    use std::sync::atomic::{AtomicU64, Ordering};

    /// Text and noise: compressible and incompressible blocks both.
    fn sample(len: usize) -> Vec<u8> {
        let mut x = 0x9e37_79b9_7f4a_7c15u64;
        let mut out = Vec::with_capacity(len);
        let mut i = 0u64;
        while out.len() < len {
            i += 1;
            if (i / 4000).is_multiple_of(2) {
                out.extend_from_slice(format!("line {i} of some layer file\n").as_bytes());
            } else {
                x ^= x << 13;
                x ^= x >> 7;
                x ^= x << 17;
                out.extend_from_slice(&x.to_le_bytes());
            }
        }
        out.truncate(len);
        out
    }

    /// How a producer writes: one call, or tar-like small writes with flushes between.
    #[derive(Clone, Copy, Debug, PartialEq)]
    enum Pattern {
        Whole,
        Small,
    }

    fn compress(c: Compression, workers: &Workers, data: &[u8], p: Pattern) -> Vec<u8> {
        let mut out = Vec::new();
        let produce = |w: &mut dyn Write| match p {
            Pattern::Whole => w.write_all(data),
            Pattern::Small => data.chunks(512).try_for_each(|c| {
                w.write_all(c)?;
                w.flush()
            }),
        };
        compress_stream(c, workers, produce, &mut out).unwrap();
        out
    }

    fn gunzip(b: &[u8]) -> Vec<u8> {
        let mut one = Vec::new();
        flate2::read::GzDecoder::new(b)
            .read_to_end(&mut one)
            .unwrap();
        let mut multi = Vec::new();
        flate2::read::MultiGzDecoder::new(b)
            .read_to_end(&mut multi)
            .unwrap();
        assert_eq!(one, multi);
        one
    }

    #[test]
    fn gzip_bytes_depend_on_neither_threads_nor_write_pattern() {
        use gzip_blocks::BLOCK;
        let gz = Compression::Gzip { level: 6 };
        let pools = [
            Workers::inline(),
            Workers::new(NonZeroUsize::new(1), gz),
            Workers::new(NonZeroUsize::new(4), gz),
            Workers::new(None, gz),
        ];
        let big = sample(9 * BLOCK + 12_345);
        for len in [0, 1, BLOCK - 1, BLOCK, BLOCK + 1, 2 * BLOCK, big.len()] {
            let data = &big[..len];
            let reference = compress(gz, &pools[0], data, Pattern::Whole);
            assert_eq!(gunzip(&reference), data, "{len} bytes");
            for (i, w) in pools.iter().enumerate() {
                for p in [Pattern::Whole, Pattern::Small] {
                    let out = compress(gz, w, data, p);
                    assert!(out == reference, "{len} bytes, pool {i}, {p:?}");
                }
            }
        }
    }

    /// `seq 1 500000` (3.4 MB): with deflate states reused across blocks, the bytes
    /// depended on which worker had compressed which blocks before (found by the crash
    /// test, whose rebuilt blob came out different).
    #[test]
    fn gzip_bytes_do_not_depend_on_which_worker_took_which_block() {
        let gz = Compression::Gzip { level: 6 };
        let data: Vec<u8> = (1..=500_000u32)
            .flat_map(|n| format!("{n}\n").into_bytes())
            .collect();
        let reference = compress(gz, &Workers::inline(), &data, Pattern::Whole);
        let w = Workers::new(NonZeroUsize::new(4), gz);
        for run in 0..3 {
            let out = compress(gz, &w, &data, Pattern::Whole);
            assert!(out == reference, "run {run}");
        }
    }

    #[test]
    fn gzip_is_one_member_with_the_deterministic_header_and_the_right_trailer() {
        let data = sample(5 * gzip_blocks::BLOCK + 77);
        for level in [0, 1, 6, 9] {
            let gz = Compression::Gzip { level };
            let out = compress(gz, &Workers::new(None, gz), &data, Pattern::Whole);
            let xfl = match level {
                9 => 2,
                0 | 1 => 4,
                _ => 0,
            };
            assert_eq!(out[..10], [0x1f, 0x8b, 8, 0, 0, 0, 0, 0, xfl, 255]);
            let n = out.len();
            let mut crc = flate2::Crc::new();
            crc.update(&data);
            assert_eq!(out[n - 8..n - 4], crc.sum().to_le_bytes());
            assert_eq!(out[n - 4..], (data.len() as u32).to_le_bytes());
            assert_eq!(gunzip(&out), data, "level {level}");
            // GzDecoder reads exactly one member, so a multi-member stream would
            // have been cut short above; check the end too.
            let mut d = flate2::bufread::GzDecoder::new(&out[..]);
            io::copy(&mut d, &mut io::sink()).unwrap();
            assert!(d.into_inner().is_empty(), "bytes after the first member");
        }
    }

    #[test]
    fn zstd_bytes_do_not_depend_on_the_worker_count() {
        // Three 4 MiB jobs on one, two and four workers; level 9 keeps libzstd's
        // job size (16 MiB), one job here.
        let data = sample(9 << 20);
        for level in [1, 3, 9] {
            let z = Compression::Zstd { level };
            let reference = compress(
                z,
                &Workers::new(NonZeroUsize::new(1), z),
                &data,
                Pattern::Whole,
            );
            assert_eq!(zstd::decode_all(&reference[..]).unwrap(), data);
            for n in [2, 4] {
                for p in [Pattern::Whole, Pattern::Small] {
                    if level == 9 && (n, p) != (4, Pattern::Whole) {
                        continue; // slow without optimisations; one case suffices
                    }
                    let out = compress(z, &Workers::new(NonZeroUsize::new(n), z), &data, p);
                    assert!(out == reference, "level {level}, {n} workers, {p:?}");
                }
            }
        }
    }

    #[test]
    fn uncompressed_passes_through() {
        let data = sample(3 * CHUNK + 5);
        let u = Compression::Uncompressed;
        let out = compress(u, &Workers::new(None, u), &data, Pattern::Small);
        assert!(out == data);
    }

    thread_local! {
        /// Called on the producer thread when the pipeline is full (the producer
        /// is about to wait for the sink).
        pub(super) static ON_FULL: std::cell::RefCell<Option<Box<dyn Fn()>>> =
            const { std::cell::RefCell::new(None) };
    }

    /// A sink whose first write waits for news from the producer.
    struct Held {
        news: mpsc::Receiver<u64>,
        first: Option<u64>,
        writes: u64,
    }

    impl Write for Held {
        fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
            if self.first.is_none() {
                self.first = Some(self.news.recv().unwrap());
            }
            self.writes += 1;
            Ok(buf.len())
        }

        fn flush(&mut self) -> io::Result<()> {
            Ok(())
        }
    }

    #[test]
    fn gzip_streams_with_a_few_blocks_in_flight() {
        use gzip_blocks::BLOCK;
        let gz = Compression::Gzip { level: 1 };
        let workers = Workers::new(NonZeroUsize::new(2), gz);
        let block = sample(BLOCK);
        let (news, heard) = mpsc::channel();
        let mut sink = Held {
            news: heard,
            first: None,
            writes: 0,
        };
        let produce = |w: &mut dyn Write| {
            // The sink holds its first write until the producer reports how much it
            // wrote when it first had to wait, or that it wrote everything.
            let produced = std::sync::Arc::new(AtomicU64::new(0));
            let (p, tx) = (produced.clone(), news.clone());
            ON_FULL.set(Some(Box::new(move || {
                let _ = tx.send(p.load(Ordering::SeqCst));
            })));
            for _ in 0..64 {
                w.write_all(&block)?;
                produced.fetch_add(BLOCK as u64, Ordering::SeqCst);
            }
            let _ = news.send(produced.load(Ordering::SeqCst));
            Ok(())
        };
        compress_stream(gz, &workers, produce, &mut sink).unwrap();
        // Header, the 64 blocks, the final (empty) block, the trailer.
        assert_eq!(sink.writes, 67);
        // In flight: the channel's pieces, the one the sink holds, the one being sent
        // and the one the producer was filling.
        let blocks = sink.first.unwrap() / BLOCK as u64;
        let bound = workers.depth() as u64 + 3;
        assert!(
            blocks <= bound,
            "{blocks} blocks produced before waiting, > {bound}"
        );
    }

    #[test]
    fn a_failing_sink_stops_the_producer_and_reports_its_own_error() {
        struct Full;
        impl Write for Full {
            fn write(&mut self, _: &[u8]) -> io::Result<usize> {
                Err(io::Error::new(io::ErrorKind::StorageFull, "disk full"))
            }
            fn flush(&mut self) -> io::Result<()> {
                Ok(())
            }
        }
        // Far more than the pipeline holds: the producer has to be stopped.
        let data = sample(24 << 20);
        for c in [
            Compression::Gzip { level: 6 },
            Compression::Zstd { level: 3 },
            Compression::Uncompressed,
        ] {
            let workers = Workers::new(None, c);
            let err = compress_stream(c, &workers, |w| w.write_all(&data), &mut Full).unwrap_err();
            assert_eq!(err.kind(), io::ErrorKind::StorageFull, "{c}: {err}");
        }
    }

    #[test]
    fn a_failing_producer_reports_its_error() {
        let c = Compression::Gzip { level: 6 };
        let workers = Workers::new(None, c);
        let produce = |w: &mut dyn Write| {
            w.write_all(&sample(3 * gzip_blocks::BLOCK))?;
            Err::<(), _>(io::Error::new(
                io::ErrorKind::NotFound,
                "layer file vanished",
            ))
        };
        let err = compress_stream(c, &workers, produce, &mut Vec::new()).unwrap_err();
        assert_eq!(err.kind(), io::ErrorKind::NotFound);
    }
}
