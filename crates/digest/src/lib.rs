//! Content digests for strata: the sha256 [`Digest`] type used for every external
//! identifier (blobs, manifests, configs, diffIDs), hashing readers and writers that
//! compute a digest while bytes stream through, and the versioned cache-key encoder
//! ([`key`]) whose output the solver stores and a golden test pins.
//!
//! It depends on no other workspace crate; everything else depends on it.

mod digest;
mod io;
pub mod key;

pub use digest::{sha256, Digest, DigestError, Sha256};
pub use io::{HashingReader, HashingWriter};
