//! ADD's auto-extraction of local tar archives (plain, gzip, bzip2, xz, zstd), detected
//! by content like Docker does, extracted without ever writing outside the destination.

use std::fs::File;
use std::io::{BufReader, Read};
use std::path::{Component, Path};

use crate::copy::CopyError;
use crate::fsutil::{apply_attrs, Attrs};

enum Format {
    Gzip,
    Bzip2,
    Xz,
    Zstd,
    Tar,
}

fn sniff(path: &Path) -> Option<Format> {
    let mut head = [0u8; 512];
    let mut f = File::open(path).ok()?;
    let mut n = 0;
    while n < head.len() {
        match f.read(&mut head[n..]) {
            Ok(0) => break,
            Ok(k) => n += k,
            Err(_) => return None,
        }
    }
    let h = &head[..n];
    if h.starts_with(&[0x1f, 0x8b]) {
        Some(Format::Gzip)
    } else if h.starts_with(b"BZh") {
        Some(Format::Bzip2)
    } else if h.starts_with(&[0xfd, b'7', b'z', b'X', b'Z', 0]) {
        Some(Format::Xz)
    } else if h.starts_with(&[0x28, 0xb5, 0x2f, 0xfd]) {
        Some(Format::Zstd)
    } else if n >= 262 && &h[257..262] == b"ustar" {
        Some(Format::Tar)
    } else {
        None
    }
}

pub fn is_archive(path: &Path) -> bool {
    sniff(path).is_some()
}

/// Extracts the archive at `src` into `dest` (a directory in the layer being made).
pub fn extract(src: &Path, dest: &Path, owner: Option<(u32, u32)>) -> Result<u64, CopyError> {
    let io = |e: std::io::Error| CopyError::Io {
        path: src.to_path_buf(),
        source: e,
    };
    let f = BufReader::with_capacity(1 << 20, File::open(src).map_err(io)?);
    let reader: Box<dyn Read> = match sniff(src) {
        Some(Format::Gzip) => Box::new(flate2::read::MultiGzDecoder::new(f)),
        Some(Format::Bzip2) => Box::new(bzip2::read::MultiBzDecoder::new(f)),
        Some(Format::Xz) => Box::new(xz2::read::XzDecoder::new_multi_decoder(f)),
        Some(Format::Zstd) => Box::new(zstd::stream::read::Decoder::new(f).map_err(io)?),
        Some(Format::Tar) => Box::new(f),
        None => return Ok(0),
    };
    let mut archive = tar::Archive::new(reader);
    let mut count = 0;
    let mut dirs = Vec::new();
    for entry in archive.entries().map_err(io)? {
        let mut entry = entry.map_err(io)?;
        let path = entry.path().map_err(io)?.into_owned();
        // Refuse anything that is not a plain relative path.
        if path
            .components()
            .any(|c| !matches!(c, Component::Normal(_) | Component::CurDir))
        {
            return Err(CopyError::Conflict {
                src: src.display().to_string(),
                dest: path.display().to_string(),
                reason: "archive entry escapes the destination".into(),
            });
        }
        let out = dest.join(&path);
        // Never write through a symlink the archive created earlier.
        let mut cur = dest.to_path_buf();
        for c in path.parent().unwrap_or(Path::new("")).components() {
            cur.push(c);
            match std::fs::symlink_metadata(&cur) {
                Ok(m) if m.file_type().is_symlink() => {
                    return Err(CopyError::Conflict {
                        src: src.display().to_string(),
                        dest: path.display().to_string(),
                        reason: "archive entry is below a symlink".into(),
                    })
                }
                Ok(_) => {}
                Err(_) => std::fs::create_dir(&cur).map_err(io)?,
            }
        }
        let header = entry.header().clone();
        let mode = header.mode().unwrap_or(0o644) & 0o7777;
        let (uid, gid) = owner.unwrap_or((
            header.uid().unwrap_or(0) as u32,
            header.gid().unwrap_or(0) as u32,
        ));
        let mtime = (header.mtime().unwrap_or(0) as i64, 0);
        let attrs = Attrs {
            uid,
            gid,
            mode,
            mtime,
        };
        let kind = header.entry_type();
        if let Ok(m) = std::fs::symlink_metadata(&out) {
            if !(m.is_dir() && kind.is_dir()) {
                let _ = if m.is_dir() {
                    std::fs::remove_dir_all(&out)
                } else {
                    std::fs::remove_file(&out)
                };
            }
        }
        match kind {
            tar::EntryType::Directory => {
                if !out.is_dir() {
                    std::fs::create_dir(&out).map_err(io)?;
                }
                dirs.push((out.clone(), attrs));
            }
            tar::EntryType::Symlink => {
                let target = entry
                    .link_name()
                    .map_err(io)?
                    .unwrap_or_default()
                    .into_owned();
                std::os::unix::fs::symlink(target, &out).map_err(io)?;
                apply_attrs(&out, &attrs, true).map_err(io)?;
            }
            tar::EntryType::Link => {
                let target = entry
                    .link_name()
                    .map_err(io)?
                    .unwrap_or_default()
                    .into_owned();
                if target
                    .components()
                    .any(|c| !matches!(c, Component::Normal(_) | Component::CurDir))
                {
                    return Err(CopyError::Conflict {
                        src: src.display().to_string(),
                        dest: path.display().to_string(),
                        reason: "hardlink target escapes the destination".into(),
                    });
                }
                std::fs::hard_link(dest.join(target), &out).map_err(io)?;
            }
            tar::EntryType::Regular | tar::EntryType::Continuous => {
                let mut f = File::create(&out).map_err(io)?;
                std::io::copy(&mut entry, &mut f).map_err(io)?;
                apply_attrs(&out, &attrs, false).map_err(io)?;
            }
            _ => continue, // devices and fifos from archives are skipped, as Docker does unprivileged
        }
        count += 1;
    }
    // Directory mtimes last, after their contents were written.
    for (d, a) in dirs.iter().rev() {
        apply_attrs(d, a, false).map_err(io)?;
    }
    Ok(count)
}
