//! The overlay upperdir conventions that layer directories use, and their tar
//! spellings.

use std::fs::Metadata;
use std::os::unix::fs::{FileTypeExt, MetadataExt};
use std::path::Path;

use crate::error::{Error, Result};

/// Tar name prefix of a whiteout: `.wh.NAME` deletes `NAME` from lower layers.
pub(crate) const WHITEOUT_PREFIX: &[u8] = b".wh.";
/// Tar name inside a directory whose lower contents are hidden.
pub(crate) const OPAQUE_MARKER: &[u8] = b".wh..wh..opq";
/// Extended attributes that belong to overlayfs, never to layer contents.
pub(crate) const OVERLAY_XATTR_PREFIX: &str = "trusted.overlay.";
/// Set to `y` on an opaque directory in an upperdir.
pub(crate) const OPAQUE_XATTR: &str = "trusted.overlay.opaque";

/// An overlay whiteout: a character device with device number 0/0.
pub(crate) fn is_whiteout(meta: &Metadata) -> bool {
    meta.file_type().is_char_device() && meta.rdev() == 0
}

/// Whether the directory at `path` carries `trusted.overlay.opaque=y`.
pub(crate) fn is_opaque(path: &Path) -> Result<bool> {
    match xattr::get(path, OPAQUE_XATTR) {
        Ok(value) => Ok(value.as_deref() == Some(b"y")),
        Err(e) if e.raw_os_error() == Some(rustix::io::Errno::OPNOTSUPP.raw_os_error()) => {
            Ok(false)
        }
        Err(e) => Err(Error::Sys {
            op: "reading the opaque attribute of",
            path: path.to_path_buf(),
            source: e,
        }),
    }
}
