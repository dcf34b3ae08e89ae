//! A sha256 whose state can be saved and resumed at block boundaries.
//!
//! `sha2::Sha256` keeps its chaining value private, so a hash cannot be resumed
//! from the middle of a stream. Built on `sha2::compress256` (the same SHA-NI
//! code path), [`Midstate`] exposes it: after a multiple of 64 bytes the whole
//! state is the eight words plus the length, which is what layer checkpoints
//! store (tar entries are 512-byte aligned, so every entry boundary qualifies).

use sha2::digest::consts::U64;
use sha2::digest::generic_array::GenericArray;

/// The sha256 initial hash value (FIPS 180-4, 5.3.3).
pub(crate) const IV: [u32; 8] = [
    0x6a09_e667,
    0xbb67_ae85,
    0x3c6e_f372,
    0xa54f_f53a,
    0x510e_527f,
    0x9b05_688c,
    0x1f83_d9ab,
    0x5be0_cd19,
];

const BLOCK: usize = 64;
/// Blocks handed to `compress256` per call.
const BATCH: usize = 64;

type Block = GenericArray<u8, U64>;

/// A running sha256 (see the module documentation).
#[derive(Clone, Debug)]
pub(crate) struct Midstate {
    state: [u32; 8],
    /// Bytes hashed so far, the partial block included.
    len: u64,
    partial: [u8; BLOCK],
    partial_len: usize,
}

impl Default for Midstate {
    fn default() -> Self {
        Midstate::new()
    }
}

impl Midstate {
    pub(crate) fn new() -> Midstate {
        Midstate {
            state: IV,
            len: 0,
            partial: [0; BLOCK],
            partial_len: 0,
        }
    }

    /// Continues a hash that had consumed `len` bytes (a multiple of 64) and
    /// reached `state`; `None` when `len` is not on a block boundary.
    pub(crate) fn resume(state: [u32; 8], len: u64) -> Option<Midstate> {
        // BLOCK is a power of two (`is_multiple_of` is newer than our MSRV).
        (len & (BLOCK as u64 - 1) == 0).then_some(Midstate {
            state,
            len,
            partial: [0; BLOCK],
            partial_len: 0,
        })
    }

    /// Bytes consumed so far.
    pub(crate) fn len(&self) -> u64 {
        self.len
    }

    /// The chaining value, when the bytes so far end on a block boundary.
    pub(crate) fn state(&self) -> Option<[u32; 8]> {
        (self.partial_len == 0).then_some(self.state)
    }

    pub(crate) fn update(&mut self, mut data: &[u8]) {
        self.len += data.len() as u64;
        if self.partial_len > 0 {
            let take = (BLOCK - self.partial_len).min(data.len());
            self.partial[self.partial_len..self.partial_len + take].copy_from_slice(&data[..take]);
            self.partial_len += take;
            data = &data[take..];
            if self.partial_len < BLOCK {
                return;
            }
            let block = *Block::from_slice(&self.partial);
            sha2::compress256(&mut self.state, std::slice::from_ref(&block));
            self.partial_len = 0;
        }
        let whole = data.len() - data.len() % BLOCK;
        compress_blocks(&mut self.state, &data[..whole]);
        let rest = &data[whole..];
        self.partial[..rest.len()].copy_from_slice(rest);
        self.partial_len = rest.len();
    }

    /// The digest: standard padding (0x80, zeros, the bit length big-endian).
    pub(crate) fn finalize(mut self) -> [u8; 32] {
        let bits = self.len.wrapping_mul(8);
        let mut tail = [0u8; 2 * BLOCK];
        let n = self.partial_len;
        tail[..n].copy_from_slice(&self.partial[..n]);
        tail[n] = 0x80;
        let total = if n + 1 + 8 <= BLOCK { BLOCK } else { 2 * BLOCK };
        tail[total - 8..total].copy_from_slice(&bits.to_be_bytes());
        compress_blocks(&mut self.state, &tail[..total]);
        let mut out = [0u8; 32];
        for (o, w) in out.chunks_exact_mut(4).zip(self.state) {
            o.copy_from_slice(&w.to_be_bytes());
        }
        out
    }
}

/// Compresses whole blocks. `compress256` wants `GenericArray` blocks; copying
/// through a small stack batch keeps this free of `unsafe` and costs nothing
/// measurable next to the compression itself.
fn compress_blocks(state: &mut [u32; 8], data: &[u8]) {
    debug_assert_eq!(data.len() % BLOCK, 0);
    let mut batch = [Block::default(); BATCH];
    for chunk in data.chunks(BLOCK * BATCH) {
        let n = chunk.len() / BLOCK;
        for (b, c) in batch.iter_mut().zip(chunk.chunks_exact(BLOCK)) {
            b.copy_from_slice(c);
        }
        sha2::compress256(state, &batch[..n]);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use sha2::{Digest as _, Sha256};

    fn random(len: usize, seed: u64) -> Vec<u8> {
        let mut x = seed | 1;
        (0..len)
            .map(|_| {
                x ^= x << 13;
                x ^= x >> 7;
                x ^= x << 17;
                x as u8
            })
            .collect()
    }

    fn reference(data: &[u8]) -> [u8; 32] {
        Sha256::digest(data).into()
    }

    #[test]
    fn known_answers() {
        assert_eq!(
            hex(&Midstate::new().finalize()),
            "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"
        );
        let mut h = Midstate::new();
        h.update(b"abc");
        assert_eq!(
            hex(&h.finalize()),
            "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
        );
    }

    fn hex(b: &[u8]) -> String {
        b.iter().map(|b| format!("{b:02x}")).collect()
    }

    #[test]
    fn matches_sha256_for_every_length_around_the_padding_edges() {
        for len in 0..=1100 {
            let data = random(len, len as u64 + 7);
            let mut h = Midstate::new();
            h.update(&data);
            assert_eq!(h.len(), len as u64);
            assert_eq!(h.finalize(), reference(&data), "length {len}");
        }
    }

    #[test]
    fn matches_sha256_when_fed_in_arbitrary_pieces() {
        let mut x = 0x2545_f491_4f6c_dd1du64;
        for round in 0..200 {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            let len = (x % 300_000) as usize;
            let data = random(len, round);
            let mut h = Midstate::new();
            let mut at = 0;
            while at < len {
                x ^= x << 13;
                x ^= x >> 7;
                x ^= x << 17;
                // Mostly small pieces, sometimes large ones.
                let piece = if x & 3 == 0 { x % 70_000 } else { x % 200 } as usize;
                let end = (at + piece).min(len);
                h.update(&data[at..end]);
                at = end;
            }
            assert_eq!(
                h.finalize(),
                reference(&data),
                "round {round}, length {len}"
            );
        }
    }

    #[test]
    fn a_saved_state_resumes_to_the_same_digest() {
        let data = random(10_000, 99);
        for cut in (0..=10_000).step_by(64) {
            let mut h = Midstate::new();
            h.update(&data[..cut / 3]);
            h.update(&data[cut / 3..cut]);
            let state = h.state().expect("a multiple of 64 is a block boundary");
            let mut resumed = Midstate::resume(state, cut as u64).unwrap();
            resumed.update(&data[cut..]);
            assert_eq!(resumed.finalize(), reference(&data), "cut at {cut}");
        }
        let mut h = Midstate::new();
        h.update(&data[..100]);
        assert_eq!(h.state(), None, "100 bytes end inside a block");
        assert!(Midstate::resume(IV, 100).is_none());
    }

    #[test]
    fn a_wrong_state_gives_a_different_digest() {
        // The resume test must be able to fail: a perturbed state does not match.
        let data = random(4096, 5);
        let mut h = Midstate::new();
        h.update(&data[..1024]);
        let mut state = h.state().unwrap();
        state[3] ^= 1;
        let mut resumed = Midstate::resume(state, 1024).unwrap();
        resumed.update(&data[1024..]);
        assert_ne!(resumed.finalize(), reference(&data));
    }
}
