//! The file actions other than copy (mkdir, mkfile, rm, symlink), written into a layer
//! directory over a read-only base view, and `--chown` name resolution.

use std::path::Path;

use strata_graph::{Chown, FileAction, IdOrName};

use crate::copy::{now, CopyError};
use crate::fsutil::{apply_attrs, rel_components, resolve_in_root, whiteout, Attrs};

/// Applies one non-copy action. `base` is the merged view before the op, `diff` the
/// new layer.
pub fn apply(action: &FileAction, base: &Path, diff: &Path) -> Result<(), CopyError> {
    let io = |p: &Path| {
        let p = p.to_path_buf();
        move |source| CopyError::Io { path: p, source }
    };
    match action {
        FileAction::Copy(_) => unreachable!("copies go through copy::copy"),
        FileAction::Mkdir {
            path,
            mode,
            make_parents,
            owner,
        } => {
            let rel =
                resolve_in_root(base, &rel_components(path), true).map_err(io(Path::new(path)))?;
            if base.join(&rel).is_dir() || diff.join(&rel).is_dir() {
                return Ok(()); // mkdir -p of an existing directory changes nothing
            }
            let (uid, gid) = resolve_owner(owner.as_ref(), base)?;
            let mut cur = std::path::PathBuf::new();
            let comps: Vec<_> = rel.components().collect();
            for (i, c) in comps.iter().enumerate() {
                cur.push(c);
                let last = i + 1 == comps.len();
                if diff.join(&cur).is_dir() {
                    continue;
                }
                let attrs = match std::fs::metadata(base.join(&cur)) {
                    Ok(m) if m.is_dir() => Attrs::of(&m),
                    _ if !last && !make_parents => {
                        return Err(CopyError::NotFound {
                            path: format!("/{}", cur.display()),
                        })
                    }
                    _ => Attrs {
                        uid,
                        gid,
                        mode: if last { *mode } else { 0o755 },
                        mtime: now(),
                    },
                };
                let p = diff.join(&cur);
                std::fs::create_dir(&p).map_err(io(&p))?;
                apply_attrs(&p, &attrs, false).map_err(io(&p))?;
            }
        }
        FileAction::Mkfile {
            path,
            mode,
            data,
            owner,
        } => {
            let rel =
                resolve_in_root(base, &rel_components(path), true).map_err(io(Path::new(path)))?;
            let (uid, gid) = resolve_owner(owner.as_ref(), base)?;
            ensure_parents(base, diff, &rel)?;
            let p = diff.join(&rel);
            // Never write through an existing entry: it may be a hardlink into an
            // earlier, immutable layer (incremental COPY).
            let _ = std::fs::remove_file(&p);
            std::fs::write(&p, data.as_bytes()).map_err(io(&p))?;
            apply_attrs(
                &p,
                &Attrs {
                    uid,
                    gid,
                    mode: *mode,
                    mtime: now(),
                },
                false,
            )
            .map_err(io(&p))?;
        }
        FileAction::Rm {
            path,
            allow_not_found,
            ..
        } => {
            let rel =
                resolve_in_root(base, &rel_components(path), false).map_err(io(Path::new(path)))?;
            let in_base = std::fs::symlink_metadata(base.join(&rel)).is_ok();
            let p = diff.join(&rel);
            let in_diff = std::fs::symlink_metadata(&p).is_ok();
            if !in_base && !in_diff && !allow_not_found {
                return Err(CopyError::NotFound { path: path.clone() });
            }
            if in_diff {
                let _ = std::fs::remove_dir_all(&p).or_else(|_| std::fs::remove_file(&p));
            }
            if in_base {
                ensure_parents(base, diff, &rel)?;
                whiteout(&p).map_err(io(&p))?;
            }
        }
        FileAction::Symlink { target, link } => {
            let rel =
                resolve_in_root(base, &rel_components(link), false).map_err(io(Path::new(link)))?;
            ensure_parents(base, diff, &rel)?;
            let p = diff.join(&rel);
            std::os::unix::fs::symlink(target, &p).map_err(io(&p))?;
        }
    }
    Ok(())
}

/// Parent directories of `rel` in the diff, with the base's metadata where they exist.
fn ensure_parents(base: &Path, diff: &Path, rel: &Path) -> Result<(), CopyError> {
    let mut cur = std::path::PathBuf::new();
    let Some(parent) = rel.parent() else {
        return Ok(());
    };
    for c in parent.components() {
        cur.push(c);
        let p = diff.join(&cur);
        if p.is_dir() {
            continue;
        }
        let attrs = match std::fs::metadata(base.join(&cur)) {
            Ok(m) if m.is_dir() => Attrs::of(&m),
            _ => Attrs {
                uid: 0,
                gid: 0,
                mode: 0o755,
                mtime: now(),
            },
        };
        std::fs::create_dir(&p).map_err(|e| CopyError::Io {
            path: p.clone(),
            source: e,
        })?;
        apply_attrs(&p, &attrs, false).map_err(|e| CopyError::Io {
            path: p.clone(),
            source: e,
        })?;
    }
    Ok(())
}

/// `--chown` (and WORKDIR's USER) to numeric ids, names looked up in the destination's
/// `/etc/passwd` and `/etc/group`. A user without a group gets the user's primary group.
pub fn resolve_owner(owner: Option<&Chown>, root: &Path) -> Result<(u32, u32), CopyError> {
    let Some(c) = owner else { return Ok((0, 0)) };
    let (uid, primary) = match &c.user {
        IdOrName::Id(n) => (
            *n,
            lookup_db(root, "etc/passwd", &n.to_string(), true)
                .map(|(_, g)| g)
                .unwrap_or(*n),
        ),
        IdOrName::Name(name) => {
            lookup_db(root, "etc/passwd", name, false).ok_or_else(|| CopyError::UnknownOwner {
                kind: "user",
                name: name.clone(),
                file: "/etc/passwd",
            })?
        }
    };
    let gid = match &c.group {
        None => primary,
        Some(IdOrName::Id(n)) => *n,
        Some(IdOrName::Name(name)) => lookup_db(root, "etc/group", name, false)
            .map(|(g, _)| g)
            .ok_or_else(|| CopyError::UnknownOwner {
                kind: "group",
                name: name.clone(),
                file: "/etc/group",
            })?,
    };
    Ok((uid, gid))
}

/// `name:x:ID:GID:…` lines: by name (or by id when `by_id`) → (field 3, field 4 or 0).
fn lookup_db(root: &Path, file: &str, key: &str, by_id: bool) -> Option<(u32, u32)> {
    let rel = resolve_in_root(root, Path::new(file), true).ok()?;
    let text = std::fs::read_to_string(root.join(rel)).ok()?;
    text.lines().find_map(|line| {
        let f: Vec<&str> = line.split(':').collect();
        let hit = if by_id {
            f.get(2) == Some(&key)
        } else {
            f.first() == Some(&key)
        };
        if !hit {
            return None;
        }
        let id = f.get(2)?.parse().ok()?;
        let g = f.get(3).and_then(|g| g.parse().ok()).unwrap_or(0);
        Some((id, g))
    })
}
