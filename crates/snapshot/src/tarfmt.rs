//! Byte-exact encoding of one tar entry: a USTAR header, preceded by a PAX
//! extended header when a field does not fit (long path or link, large ids,
//! sizes or times, extended attributes). Field layout follows Go's
//! `archive/tar`, which wrote most layers in the wild.

use std::collections::BTreeMap;
use std::io::{self, Write};

pub(crate) const BLOCK: usize = 512;

/// What a header describes (the USTAR type flag).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Kind {
    File,
    HardLink,
    Symlink,
    Char,
    Block,
    Dir,
    Fifo,
}

impl Kind {
    fn flag(self) -> u8 {
        match self {
            Kind::File => b'0',
            Kind::HardLink => b'1',
            Kind::Symlink => b'2',
            Kind::Char => b'3',
            Kind::Block => b'4',
            Kind::Dir => b'5',
            Kind::Fifo => b'6',
        }
    }
}

/// One entry's metadata. `path` is relative, with a trailing `/` for directories.
pub(crate) struct Entry<'a> {
    pub path: &'a [u8],
    pub kind: Kind,
    pub mode: u32,
    pub uid: u64,
    pub gid: u64,
    /// Seconds since the epoch; negative values are written as 0.
    pub mtime: i64,
    /// Data bytes that follow the header (regular files only).
    pub size: u64,
    /// Symlink target or hardlink target path.
    pub link: &'a [u8],
    pub dev: (u32, u32),
    /// Extended attributes, written as `SCHILY.xattr.<name>` PAX records.
    pub xattrs: &'a BTreeMap<String, Vec<u8>>,
}

/// Writes the PAX header (if needed) and the USTAR header of `e`. The caller
/// writes `e.size` data bytes and then [`write_padding`].
pub(crate) fn write_header(out: &mut impl Write, e: &Entry<'_>) -> io::Result<()> {
    let mut pax: BTreeMap<String, Vec<u8>> = BTreeMap::new();
    let mut h = tar::Header::new_ustar();
    let u = h.as_ustar_mut().expect("new_ustar gives a USTAR header");

    match split_ustar_path(e.path) {
        Some((prefix, name)) => {
            u.prefix[..prefix.len()].copy_from_slice(prefix);
            u.name[..name.len()].copy_from_slice(name);
        }
        None => {
            pax.insert("path".into(), e.path.to_vec());
            let n = e.path.len().min(u.name.len());
            u.name[..n].copy_from_slice(&e.path[..n]);
        }
    }
    if e.link.len() > u.linkname.len() {
        pax.insert("linkpath".into(), e.link.to_vec());
        let n = u.linkname.len();
        u.linkname.copy_from_slice(&e.link[..n]);
    } else {
        u.linkname[..e.link.len()].copy_from_slice(e.link);
    }
    octal(&mut u.mode, u64::from(e.mode & 0o7777));
    numeric(&mut u.uid, e.uid, "uid", &mut pax);
    numeric(&mut u.gid, e.gid, "gid", &mut pax);
    numeric(&mut u.size, e.size, "size", &mut pax);
    numeric(&mut u.mtime, e.mtime.max(0) as u64, "mtime", &mut pax);
    numeric(
        &mut u.dev_major,
        u64::from(e.dev.0),
        "SCHILY.devmajor",
        &mut pax,
    );
    numeric(
        &mut u.dev_minor,
        u64::from(e.dev.1),
        "SCHILY.devminor",
        &mut pax,
    );
    u.typeflag[0] = e.kind.flag();
    for (name, value) in e.xattrs {
        pax.insert(format!("SCHILY.xattr.{name}"), value.clone());
    }
    h.set_cksum();

    if !pax.is_empty() {
        write_pax(out, e.path, &pax)?;
    }
    out.write_all(h.as_bytes())
}

/// Zero bytes that round `size` up to a whole block.
pub(crate) fn write_padding(out: &mut impl Write, size: u64) -> io::Result<()> {
    let rem = (size % BLOCK as u64) as usize;
    if rem != 0 {
        out.write_all(&[0u8; BLOCK][..BLOCK - rem])?;
    }
    Ok(())
}

/// The end-of-archive marker: two zero blocks.
pub(crate) fn write_end(out: &mut impl Write) -> io::Result<()> {
    out.write_all(&[0u8; 2 * BLOCK])
}

fn write_pax(
    out: &mut impl Write,
    path: &[u8],
    records: &BTreeMap<String, Vec<u8>>,
) -> io::Result<()> {
    let mut data = Vec::new();
    for (key, value) in records {
        // "<len> <key>=<value>\n", where <len> counts the whole record, itself included.
        let rest = 1 + key.len() + 1 + value.len() + 1;
        let mut len = rest + 1;
        while len != rest + len.to_string().len() {
            len = rest + len.to_string().len();
        }
        data.extend_from_slice(format!("{len} {key}=").as_bytes());
        data.extend_from_slice(value);
        data.push(b'\n');
    }
    let mut h = tar::Header::new_ustar();
    let u = h.as_ustar_mut().expect("new_ustar gives a USTAR header");
    let trimmed = path.strip_suffix(b"/").unwrap_or(path);
    let base = trimmed.rsplit(|&b| b == b'/').next().unwrap_or(trimmed);
    let mut name = b"PaxHeaders.0/".to_vec();
    name.extend_from_slice(base);
    name.truncate(u.name.len());
    u.name[..name.len()].copy_from_slice(&name);
    octal(&mut u.mode, 0);
    octal(&mut u.uid, 0);
    octal(&mut u.gid, 0);
    octal(&mut u.size, data.len() as u64);
    octal(&mut u.mtime, 0);
    octal(&mut u.dev_major, 0);
    octal(&mut u.dev_minor, 0);
    u.typeflag[0] = b'x';
    h.set_cksum();
    out.write_all(h.as_bytes())?;
    out.write_all(&data)?;
    write_padding(out, data.len() as u64)
}

/// Splits a path into USTAR `prefix` and `name` fields, as Go's `splitUSTARPath`.
fn split_ustar_path(path: &[u8]) -> Option<(&[u8], &[u8])> {
    const NAME: usize = 100;
    const PREFIX: usize = 155;
    if path.len() <= NAME {
        return Some((&[], path));
    }
    let mut length = path.len();
    if length > PREFIX + 1 {
        length = PREFIX + 1;
    } else if path[length - 1] == b'/' {
        length -= 1;
    }
    let i = path[..length].iter().rposition(|&b| b == b'/')?;
    let (prefix, name) = (&path[..i], &path[i + 1..]);
    if i == 0 || name.is_empty() || name.len() > NAME || prefix.len() > PREFIX {
        return None;
    }
    Some((prefix, name))
}

/// Writes `value` in octal if it fits the field, else 0 plus a PAX record.
fn numeric(field: &mut [u8], value: u64, key: &str, pax: &mut BTreeMap<String, Vec<u8>>) {
    let digits = field.len() - 1;
    if digits < 22 && value >= 1u64 << (3 * digits) {
        pax.insert(key.into(), value.to_string().into_bytes());
        octal(field, 0);
    } else {
        octal(field, value);
    }
}

/// Zero-padded octal digits followed by a NUL, filling the field.
fn octal(field: &mut [u8], value: u64) {
    let digits = field.len() - 1;
    let mut v = value;
    for d in field[..digits].iter_mut().rev() {
        *d = b'0' + (v & 7) as u8;
        v >>= 3;
    }
    field[digits] = 0;
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(bytes: &[u8]) -> Vec<(String, Vec<u8>, u64, u64, u64)> {
        let mut archive = tar::Archive::new(bytes);
        archive
            .entries()
            .unwrap()
            .map(|e| {
                let e = e.unwrap();
                let h = e.header();
                (
                    String::from_utf8(e.path_bytes().to_vec()).unwrap(),
                    e.link_name_bytes().map(|l| l.to_vec()).unwrap_or_default(),
                    h.uid().unwrap(),
                    e.size(),
                    h.mode().unwrap() as u64,
                )
            })
            .collect()
    }

    fn entry<'a>(
        path: &'a [u8],
        link: &'a [u8],
        uid: u64,
        xattrs: &'a BTreeMap<String, Vec<u8>>,
    ) -> Entry<'a> {
        Entry {
            path,
            kind: if link.is_empty() {
                Kind::File
            } else {
                Kind::Symlink
            },
            mode: 0o4755,
            uid,
            gid: 0,
            mtime: 7,
            size: 0,
            link,
            dev: (0, 0),
            xattrs,
        }
    }

    #[test]
    fn short_fields_make_a_single_ustar_block() {
        let none = BTreeMap::new();
        let mut out = Vec::new();
        write_header(&mut out, &entry(b"a/b", b"", 1000, &none)).unwrap();
        assert_eq!(out.len(), BLOCK);
        assert_eq!(&out[100..108], b"0004755\0");
        assert_eq!(&out[257..263], b"ustar\0");
        write_end(&mut out).unwrap();
        assert_eq!(parse(&out), vec![("a/b".into(), vec![], 1000, 0, 0o4755)]);
    }

    #[test]
    fn long_paths_split_or_use_pax_and_read_back() {
        let none = BTreeMap::new();
        let split = format!("{}/{}", "d".repeat(120), "f".repeat(90));
        let long = "x".repeat(300);
        let link = "l".repeat(150);
        let mut out = Vec::new();
        write_header(&mut out, &entry(split.as_bytes(), b"", 0, &none)).unwrap();
        assert_eq!(out.len(), BLOCK, "a splittable path needs no PAX header");
        write_header(
            &mut out,
            &entry(long.as_bytes(), link.as_bytes(), 3_000_000, &none),
        )
        .unwrap();
        assert_eq!(out[BLOCK + 156], b'x');
        write_end(&mut out).unwrap();
        let got = parse(&out);
        assert_eq!(got[0].0, split);
        assert_eq!(got[1].0, long);
        assert_eq!(got[1].1, link.as_bytes());
        assert_eq!(got[1].2, 3_000_000);
    }

    #[test]
    fn pax_record_lengths_count_themselves() {
        let mut xattrs = BTreeMap::new();
        // A value length that makes the record length cross from 2 to 3 digits.
        xattrs.insert("user.k".to_string(), vec![b'v'; 80]);
        let mut out = Vec::new();
        write_header(&mut out, &entry(b"f", b"", 0, &xattrs)).unwrap();
        let record = &out[BLOCK..];
        let text =
            std::str::from_utf8(&record[..record.iter().position(|&b| b == b'\n').unwrap() + 1])
                .unwrap();
        let (len, _) = text.split_once(' ').unwrap();
        assert_eq!(len.parse::<usize>().unwrap(), text.len());
        write_end(&mut out).unwrap();
        let mut archive = tar::Archive::new(&out[..]);
        let mut e = archive.entries().unwrap().next().unwrap().unwrap();
        let pax: Vec<(String, Vec<u8>)> = e
            .pax_extensions()
            .unwrap()
            .unwrap()
            .map(|r| {
                let r = r.unwrap();
                (r.key().unwrap().to_string(), r.value_bytes().to_vec())
            })
            .collect();
        assert_eq!(
            pax,
            vec![("SCHILY.xattr.user.k".to_string(), vec![b'v'; 80])]
        );
    }
}
