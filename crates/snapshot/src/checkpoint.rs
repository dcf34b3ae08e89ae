//! The sidecar of a stored layer, `<store>/layers/<diffID hex>.ckpt`: what its
//! canonical tar says about every entry, and sha256 midstates at some entry
//! boundaries, so that the next layer a step makes can resume the hash where
//! the two tars stop agreeing (see [`crate::naming`]). Only an accelerator:
//! a missing, unreadable or damaged sidecar means the tar is hashed in full.
//!
//! Format (integers little-endian):
//!
//! ```text
//! "strata-ckpt\n" version:u32 diff_id:[32] tar_len:u64 usage:u64 entries:u64 marks:u64
//! entries × ( kind:u8  header_sha256:[32]  (kind 1: st_dev:u64 st_ino:u64) )
//! marks   × ( entry:u64 offset:u64 state:[u32; 8] )
//! sha256 of everything before:[32]
//! ```

use std::io::Write;
use std::path::Path;

use sha2::{Digest as _, Sha256};
use strata_digest::Digest;

const MAGIC: &[u8; 12] = b"strata-ckpt\n";
const VERSION: u32 = 2;
/// Sidecars larger than this are not read (about 5 million entries).
const MAX_LEN: u64 = 256 << 20;

/// One entry of a canonical tar, as far as resuming its hash needs to know it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct EntryId {
    /// sha256 of the entry's header bytes (its PAX header included): path,
    /// type, mode, ids, mtime, size, link target, device numbers, xattrs.
    pub header: [u8; 32],
    /// For a regular file with data: (st_dev, st_ino) of the file in the layer
    /// directory. Its bytes are not in the header; a later layer proves it has
    /// the same bytes by sharing the inode (a hardlink into this layer).
    pub inode: Option<(u64, u64)>,
}

/// The hash state at an entry boundary of the tar.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct Mark {
    /// Index of the first entry after the boundary (the entry count for the
    /// boundary before the end marker).
    pub entry: u64,
    /// Tar bytes before the boundary (a multiple of 512).
    pub offset: u64,
    /// sha256 chaining value after those bytes.
    pub state: [u32; 8],
}

/// Everything a sidecar holds.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub(crate) struct Checkpoints {
    pub entries: Vec<EntryId>,
    /// Increasing; the last one is at the end of the entries (before the end marker).
    pub marks: Vec<Mark>,
    /// Length of the whole tar, end marker included.
    pub tar_len: u64,
    /// What the layer directory adds to the store: apparent sizes, a file with several
    /// links counted as size / links, or not at all when its inode is older than the
    /// directory (see [`crate::layer_usage`]).
    pub usage: u64,
}

impl Checkpoints {
    pub(crate) fn encode(&self, diff_id: &Digest) -> Vec<u8> {
        let files = self.entries.iter().filter(|e| e.inode.is_some()).count();
        let mut out =
            Vec::with_capacity(100 + self.entries.len() * 33 + files * 16 + self.marks.len() * 48);
        out.extend_from_slice(MAGIC);
        out.extend_from_slice(&VERSION.to_le_bytes());
        out.extend_from_slice(diff_id.as_bytes());
        out.extend_from_slice(&self.tar_len.to_le_bytes());
        out.extend_from_slice(&self.usage.to_le_bytes());
        out.extend_from_slice(&(self.entries.len() as u64).to_le_bytes());
        out.extend_from_slice(&(self.marks.len() as u64).to_le_bytes());
        for e in &self.entries {
            match e.inode {
                None => {
                    out.push(0);
                    out.extend_from_slice(&e.header);
                }
                Some((dev, ino)) => {
                    out.push(1);
                    out.extend_from_slice(&e.header);
                    out.extend_from_slice(&dev.to_le_bytes());
                    out.extend_from_slice(&ino.to_le_bytes());
                }
            }
        }
        for m in &self.marks {
            out.extend_from_slice(&m.entry.to_le_bytes());
            out.extend_from_slice(&m.offset.to_le_bytes());
            for w in m.state {
                out.extend_from_slice(&w.to_le_bytes());
            }
        }
        let sum = Sha256::digest(&out);
        out.extend_from_slice(&sum);
        out
    }

    /// The checkpoints in `bytes` if they are intact, of this version, for
    /// `diff_id`, and consistent with themselves.
    pub(crate) fn decode(bytes: &[u8], diff_id: &Digest) -> Option<Checkpoints> {
        let (body, sum) = bytes.split_at_checked(bytes.len().checked_sub(32)?)?;
        if Sha256::digest(body)[..] != *sum {
            return None;
        }
        let mut r = Reader(body);
        if r.take(MAGIC.len())? != MAGIC || r.u32()? != VERSION || r.take(32)? != diff_id.as_bytes()
        {
            return None;
        }
        let tar_len = r.u64()?;
        let usage = r.u64()?;
        let n_entries = r.u64()?;
        let n_marks = r.u64()?;
        // Every entry takes at least 33 bytes, every mark 48: bound the counts
        // by what is there before allocating.
        if n_entries.checked_mul(33)? > r.0.len() as u64
            || n_marks.checked_mul(48)? > r.0.len() as u64
        {
            return None;
        }
        let mut entries = Vec::with_capacity(n_entries as usize);
        for _ in 0..n_entries {
            let kind = r.take(1)?[0];
            let header: [u8; 32] = r.take(32)?.try_into().ok()?;
            let inode = match kind {
                0 => None,
                1 => Some((r.u64()?, r.u64()?)),
                _ => return None,
            };
            entries.push(EntryId { header, inode });
        }
        let mut marks = Vec::with_capacity(n_marks as usize);
        for _ in 0..n_marks {
            let entry = r.u64()?;
            let offset = r.u64()?;
            let mut state = [0u32; 8];
            for w in &mut state {
                *w = r.u32()?;
            }
            marks.push(Mark {
                entry,
                offset,
                state,
            });
        }
        if !r.0.is_empty() {
            return None;
        }
        let c = Checkpoints {
            entries,
            marks,
            tar_len,
            usage,
        };
        c.consistent().then_some(c)
    }

    /// Marks strictly increasing, on block boundaries, within the entries,
    /// the last one at the end of the entries.
    fn consistent(&self) -> bool {
        let n = self.entries.len() as u64;
        let ordered = self
            .marks
            .windows(2)
            .all(|w| w[0].entry < w[1].entry && w[0].offset < w[1].offset);
        let aligned = self
            .marks
            .iter()
            .all(|m| m.offset % 512 == 0 && m.entry <= n);
        let ends = self
            .marks
            .last()
            .is_some_and(|m| m.entry == n && m.offset.checked_add(1024) == Some(self.tar_len));
        ordered && aligned && ends
    }

    /// Reads the sidecar at `path`; `None` when absent or not usable.
    pub(crate) fn load(path: &Path, diff_id: &Digest) -> Option<Checkpoints> {
        let file = std::fs::File::open(path).ok()?;
        if file.metadata().ok()?.len() > MAX_LEN {
            return None;
        }
        let mut bytes = Vec::new();
        std::io::Read::read_to_end(&mut &file, &mut bytes).ok()?;
        Checkpoints::decode(&bytes, diff_id)
    }

    /// Writes the sidecar to a temporary file in `tmp` (same file system) and
    /// renames it to `path`, so readers see all of it or none. Not synced: a
    /// sidecar lost or torn by a crash fails its checksum and is ignored.
    pub(crate) fn store(&self, diff_id: &Digest, tmp: &Path, path: &Path) -> std::io::Result<()> {
        let mut file = tempfile::Builder::new().prefix("ckpt-").tempfile_in(tmp)?;
        file.write_all(&self.encode(diff_id))?;
        file.persist(path).map_err(|e| e.error)?;
        Ok(())
    }
}

struct Reader<'a>(&'a [u8]);

impl<'a> Reader<'a> {
    fn take(&mut self, n: usize) -> Option<&'a [u8]> {
        let (head, rest) = self.0.split_at_checked(n)?;
        self.0 = rest;
        Some(head)
    }

    fn u32(&mut self) -> Option<u32> {
        Some(u32::from_le_bytes(self.take(4)?.try_into().ok()?))
    }

    fn u64(&mut self) -> Option<u64> {
        Some(u64::from_le_bytes(self.take(8)?.try_into().ok()?))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample() -> Checkpoints {
        Checkpoints {
            entries: vec![
                EntryId {
                    header: [1; 32],
                    inode: None,
                },
                EntryId {
                    header: [2; 32],
                    inode: Some((7, 1 << 40)),
                },
            ],
            marks: vec![
                Mark {
                    entry: 1,
                    offset: 512,
                    state: [3; 8],
                },
                Mark {
                    entry: 2,
                    offset: 2048,
                    state: [4, 5, 6, 7, 8, 9, 10, u32::MAX],
                },
            ],
            tar_len: 3072,
            usage: 12345,
        }
    }

    #[test]
    fn round_trips() {
        let d = strata_digest::sha256("layer");
        let c = sample();
        let bytes = c.encode(&d);
        assert_eq!(Checkpoints::decode(&bytes, &d), Some(c));
    }

    #[test]
    fn any_damage_or_another_layer_is_refused() {
        let d = strata_digest::sha256("layer");
        let bytes = sample().encode(&d);
        assert!(Checkpoints::decode(&bytes, &strata_digest::sha256("other")).is_none());
        for i in 0..bytes.len() {
            let mut bad = bytes.clone();
            bad[i] ^= 0x10;
            assert!(Checkpoints::decode(&bad, &d).is_none(), "flipped byte {i}");
        }
        for len in 0..bytes.len() {
            assert!(
                Checkpoints::decode(&bytes[..len], &d).is_none(),
                "cut at {len}"
            );
        }
    }

    #[test]
    fn inconsistent_marks_are_refused_even_with_a_good_checksum() {
        let d = strata_digest::sha256("layer");
        let mut c = sample();
        c.marks[0].offset = 100;
        assert!(
            Checkpoints::decode(&c.encode(&d), &d).is_none(),
            "unaligned"
        );
        let mut c = sample();
        c.tar_len = 4096;
        assert!(
            Checkpoints::decode(&c.encode(&d), &d).is_none(),
            "no end mark"
        );
        let mut c = sample();
        c.marks.swap(0, 1);
        assert!(
            Checkpoints::decode(&c.encode(&d), &d).is_none(),
            "unordered"
        );
        let mut c = sample();
        c.marks.clear();
        assert!(Checkpoints::decode(&c.encode(&d), &d).is_none(), "no marks");
    }
}
