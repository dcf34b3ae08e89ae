//! One gzip stream compressed on several cores, as pigz does it: the input is cut
//! into fixed-size blocks, each block is deflated on its own (on a worker) with the
//! previous 32 KiB of input as its dictionary and ends with a sync flush (the last one
//! with the final block), and the pieces are concatenated in order between one header
//! and one trailer (CRC-32 and length of the whole input).
//!
//! The bytes depend only on the input and the level: block boundaries are fixed
//! offsets, each block's deflate state is fresh, and the workers only decide when a
//! block is ready, never what it contains. One worker, many, or none (the block
//! deflated inline) give the same stream.

use std::io::{self, Write};
use std::sync::mpsc;

use flate2::{Compress, Crc, FlushCompress, Status};
use rayon::ThreadPool;

use crate::pipeline::Chunks;

/// Uncompressed bytes per block (pigz's default). Part of the output format: a
/// different size gives different (equally valid) bytes, so it never depends on
/// the machine.
pub(crate) const BLOCK: usize = 128 << 10;

/// Deflate's window: the dictionary each block starts from.
const WINDOW: usize = 32 << 10;

/// The gzip stream being written: blocks are handed over whole by the caller.
pub(crate) struct GzipBlocks<'p> {
    level: u32,
    pool: Option<&'p ThreadPool>,
    /// The last [`WINDOW`] bytes of the previous block.
    dictionary: Vec<u8>,
    crc: Crc,
    out: Chunks,
}

impl<'p> GzipBlocks<'p> {
    /// Start a stream; `pool` deflates the blocks (`None`: inline, on the caller's
    /// thread). Writes the header: no name, mtime 0, OS 255, as flate2's builder does
    /// with `mtime(0)` and `operating_system(255)`.
    pub(crate) fn new(
        level: u32,
        pool: Option<&'p ThreadPool>,
        mut out: Chunks,
    ) -> io::Result<Self> {
        let xfl = match level {
            9.. => 2,
            0 | 1 => 4,
            _ => 0,
        };
        out.write_all(&[0x1f, 0x8b, 8, 0, 0, 0, 0, 0, xfl, 255])?;
        Ok(GzipBlocks {
            level,
            pool,
            dictionary: Vec::new(),
            crc: Crc::new(),
            out,
        })
    }

    /// Compress one full block of [`BLOCK`] bytes.
    pub(crate) fn block(&mut self, data: Vec<u8>) -> io::Result<()> {
        debug_assert_eq!(data.len(), BLOCK);
        self.dispatch(data, false)
    }

    /// Compress the final (possibly empty, at most [`BLOCK`] bytes) block and write
    /// the trailer.
    pub(crate) fn finish(mut self, data: Vec<u8>) -> io::Result<Chunks> {
        self.dispatch(data, true)?;
        let mut trailer = [0u8; 8];
        trailer[..4].copy_from_slice(&self.crc.sum().to_le_bytes());
        // ISIZE: the length modulo 2^32 (Crc counts it in a u32).
        trailer[4..].copy_from_slice(&self.crc.amount().to_le_bytes());
        self.out.write_all(&trailer)?;
        Ok(self.out)
    }

    fn dispatch(&mut self, data: Vec<u8>, last: bool) -> io::Result<()> {
        self.crc.update(&data);
        let dictionary = std::mem::replace(
            &mut self.dictionary,
            data[data.len().saturating_sub(WINDOW)..].to_vec(),
        );
        let level = self.level;
        match self.pool {
            None => {
                let bytes = deflate_block(level, &dictionary, &data, last)?;
                self.out.write_all(&bytes)
            }
            Some(pool) => {
                let (tx, rx) = mpsc::sync_channel(1);
                pool.spawn(move || {
                    // A dropped receiver means the stream was abandoned.
                    let _ = tx.send(deflate_block(level, &dictionary, &data, last));
                });
                self.out.pending(rx)
            }
        }
    }
}

/// Raw deflate of `data` primed with `dictionary`, ending with a sync flush (an empty
/// stored block, so that the next block starts on a byte boundary) or, for the last
/// block, with the final block.
pub(crate) fn deflate_block(
    level: u32,
    dictionary: &[u8],
    data: &[u8],
    last: bool,
) -> io::Result<Vec<u8>> {
    {
        // A fresh state per block: a reset one that compressed other blocks before can
        // find different (equally valid) matches, so the bytes would depend on which
        // worker took which block (zlib-rs keeps hash chains across reset).
        let level = if level > 0 && incompressible(data) {
            0
        } else {
            level
        };
        let c = &mut Compress::new(flate2::Compression::new(level), false);
        if !dictionary.is_empty() {
            c.set_dictionary(dictionary).map_err(io::Error::other)?;
        }
        let flush = if last {
            FlushCompress::Finish
        } else {
            FlushCompress::Sync
        };
        // Room for incompressible data (stored blocks cost 5 bytes per 64 KiB) and the
        // flush marker; grown below if ever short.
        let mut out = Vec::with_capacity(data.len() + data.len() / 256 + 64);
        let mut input = data;
        loop {
            let before = c.total_in();
            let status = c
                .compress_vec(input, &mut out, flush)
                .map_err(io::Error::other)?;
            input = &input[(c.total_in() - before) as usize..];
            // A flush is complete when all input is taken and output space is left
            // over; a finish when deflate says the stream ended.
            let done = match status {
                Status::StreamEnd => true,
                Status::Ok | Status::BufError => {
                    !last && input.is_empty() && out.len() < out.capacity()
                }
            };
            if done {
                return Ok(out);
            }
            out.reserve(out.capacity() / 2 + 64);
        }
    }
}

/// Slices of a block that [`incompressible`] tries, and their length.
const SAMPLES: usize = 4;
const SAMPLE: usize = 4 << 10;

/// Whether deflate would not shrink `data`: at level 1 it saves under 3% on each of
/// [`SAMPLES`] slices spread over the block. Such a block (random or already
/// compressed bytes) is stored (level 0) instead of deflated at the asked level,
/// which would end in stored blocks anyway, at about 60 MB/s per core here against
/// 10 GB/s: zstd skips incompressible data the same way. Text saves about half at
/// level 1; a block that is compressible only between the slices is stored too, and
/// costs that much ratio. A decision made from the bytes only, so the output still
/// depends on the input and the level alone.
fn incompressible(data: &[u8]) -> bool {
    if data.len() < 2 * SAMPLES * SAMPLE {
        return false;
    }
    let stride = data.len() / SAMPLES;
    (0..SAMPLES).all(|i| {
        let sample = &data[i * stride..][..SAMPLE];
        let c = &mut Compress::new(flate2::Compression::new(1), false);
        let mut out = Vec::with_capacity(2 * SAMPLE);
        match c.compress_vec(sample, &mut out, FlushCompress::Finish) {
            Ok(Status::StreamEnd) => out.len() * 100 >= sample.len() * 97,
            _ => false,
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Read;

    fn inflate(raw: &[u8]) -> Vec<u8> {
        let mut out = Vec::new();
        flate2::read::DeflateDecoder::new(raw)
            .read_to_end(&mut out)
            .unwrap();
        out
    }

    #[test]
    fn blocks_primed_with_their_predecessor_concatenate_to_one_deflate_stream() {
        let text: Vec<u8> = (0..3 * BLOCK + 1000)
            .map(|i| b"the quick brown fox "[i % 20] ^ (i / 7919) as u8)
            .collect();
        let blocks: Vec<&[u8]> = text.chunks(BLOCK).collect();
        let mut raw = Vec::new();
        for (i, b) in blocks.iter().enumerate() {
            let dict = if i == 0 {
                &[][..]
            } else {
                &blocks[i - 1][BLOCK - WINDOW..]
            };
            let last = i == blocks.len() - 1;
            let piece = deflate_block(6, dict, b, last).unwrap();
            if !last {
                assert!(piece.ends_with(&[0, 0, 0xff, 0xff]), "sync flush marker");
            }
            raw.extend(piece);
        }
        assert_eq!(inflate(&raw), text);
        // The dictionary pays: far smaller than the repeated text would be without it.
        let cold: usize = blocks
            .iter()
            .map(|b| deflate_block(6, &[], b, false).unwrap().len())
            .sum();
        assert!(raw.len() < cold, "{} vs {cold}", raw.len());
    }

    fn noise(len: usize, seed: u64) -> Vec<u8> {
        let mut x = seed;
        (0..len)
            .map(|_| {
                x ^= x << 13;
                x ^= x >> 7;
                x ^= x << 17;
                x as u8
            })
            .collect()
    }

    #[test]
    fn incompressible_blocks_are_stored_and_mixed_ones_deflated() {
        let random = noise(BLOCK, 0x9E37_79B9_7F4A_7C15);
        assert!(incompressible(&random));
        let raw = deflate_block(6, &random[..WINDOW], &random, true).unwrap();
        assert_eq!(inflate(&raw), random);
        // Stored: 5 bytes per 64 KiB piece and the final block's.
        assert!(raw.len() <= BLOCK + 3 * 5, "{}", raw.len());
        let flushed = deflate_block(6, &random[..WINDOW], &random, false).unwrap();
        assert!(flushed.ends_with(&[0, 0, 0xff, 0xff]), "sync flush marker");

        let text: Vec<u8> = (0..BLOCK)
            .map(|i| b"some text, some more text "[i % 26] ^ (i / 4099) as u8)
            .collect();
        assert!(!incompressible(&text));
        // Random bytes, then text from the middle on: deflated.
        let mut mixed = random[..BLOCK / 2].to_vec();
        mixed.extend_from_slice(&text[BLOCK / 2..]);
        assert!(!incompressible(&mixed));
        let raw = deflate_block(6, &[], &mixed, true).unwrap();
        assert_eq!(inflate(&raw), mixed);
        assert!(raw.len() < BLOCK * 3 / 4, "{}", raw.len());
        // Too short to judge: deflated as asked.
        assert!(!incompressible(&random[..SAMPLES * SAMPLE]));
    }

    #[test]
    fn empty_and_incompressible_blocks() {
        assert_eq!(inflate(&deflate_block(6, &[], &[], true).unwrap()), b"");
        let noise = noise(BLOCK, 0x2545_f491_4f6c_dd1d);
        for level in [0, 1, 6, 9] {
            let raw = deflate_block(level, &[], &noise, true).unwrap();
            assert_eq!(inflate(&raw), noise, "level {level}");
        }
    }
}
