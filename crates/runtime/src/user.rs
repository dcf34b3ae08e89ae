//! `USER` resolution in the image's `/etc/passwd` and `/etc/group`, with the rules of
//! BuildKit (`executor/oci/user.go`) and moby/sys/user's `GetExecUser`.

use std::io::{self, Read};
use std::path::Path;

use crate::{rootfs, Error, Result};

/// The ids a process runs as.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct User {
    pub uid: u32,
    pub gid: u32,
    /// Supplementary groups: the groups of `/etc/group` that list the user by name,
    /// when `USER` names no group.
    pub additional_gids: Vec<u32>,
}

/// Resolves `spec` (`""`, `name`, `uid`, `name:group`, `uid:gid`, ...) in the root
/// file system `root`. Files are read inside the root (symlinks cannot lead out).
///
/// - `""` is root (0:0) without reading any file; `uid:gid` with both numeric needs
///   no file either.
/// - The user part matches a passwd entry by name or by uid (the first match wins),
///   which gives the uid, the primary gid and the name; a number with no entry is
///   taken as the uid with gid 0; a name with no entry is an error.
/// - An explicit group matches a group entry by name or gid; a number with no entry is
///   taken as is; a name with no entry is an error.
/// - Without an explicit group, the supplementary groups are those that list the
///   user's name.
pub fn resolve_user(root: &Path, spec: &str) -> Result<User> {
    if spec.is_empty() {
        return Ok(User {
            uid: 0,
            gid: 0,
            additional_gids: Vec::new(),
        });
    }
    let (user_arg, group_arg) = match spec.split_once(':') {
        Some((u, g)) => (u, Some(g)),
        None => (spec, None),
    };
    let user_arg = if user_arg.is_empty() { "0" } else { user_arg };
    if let (Ok(uid), Some(Ok(gid))) = (user_arg.parse::<u32>(), group_arg.map(str::parse::<u32>)) {
        return Ok(User {
            uid,
            gid,
            additional_gids: Vec::new(),
        });
    }
    let passwd = read(root, "/etc/passwd")?;
    let entry = passwd
        .lines()
        .filter_map(parse_passwd)
        .find(|p| p.name == user_arg || p.uid.to_string() == user_arg);
    let (uid, mut gid, name) = match entry {
        Some(p) => (p.uid, p.gid, Some(p.name.to_string())),
        None => match user_arg.parse::<u32>() {
            Ok(uid) => (uid, 0, None),
            Err(_) => {
                return Err(Error::UnknownUser {
                    user: user_arg.to_string(),
                })
            }
        },
    };
    let mut additional_gids = Vec::new();
    let group_arg = group_arg.filter(|g| !g.is_empty());
    if group_arg.is_some() || name.is_some() {
        let groups = read(root, "/etc/group")?;
        let groups: Vec<Group> = groups.lines().filter_map(parse_group).collect();
        match group_arg {
            Some(g) => {
                gid = match groups
                    .iter()
                    .find(|e| e.name == g || e.gid.to_string() == g)
                {
                    Some(e) => e.gid,
                    None => g.parse::<u32>().map_err(|_| Error::UnknownGroup {
                        group: g.to_string(),
                    })?,
                };
            }
            None => {
                let name = name.as_deref().unwrap_or_default();
                additional_gids = groups
                    .iter()
                    .filter(|e| e.members.contains(&name))
                    .map(|e| e.gid)
                    .collect();
            }
        }
    }
    Ok(User {
        uid,
        gid,
        additional_gids,
    })
}

/// The file's text, or `""` when the image has none.
fn read(root: &Path, path: &str) -> Result<String> {
    let mut file = match rootfs::open(root, path) {
        Ok(f) => f,
        Err(e) if matches!(e.kind(), io::ErrorKind::NotFound) => return Ok(String::new()),
        Err(e) if e.raw_os_error() == Some(rustix::io::Errno::NOTDIR.raw_os_error()) => {
            return Ok(String::new())
        }
        Err(source) => {
            return Err(Error::BadPath {
                what: "reading",
                path: path.to_string(),
                source,
            })
        }
    };
    let mut bytes = Vec::new();
    file.read_to_end(&mut bytes)
        .map_err(|source| Error::BadPath {
            what: "reading",
            path: path.to_string(),
            source,
        })?;
    Ok(String::from_utf8_lossy(&bytes).into_owned())
}

struct Passwd<'a> {
    name: &'a str,
    uid: u32,
    gid: u32,
}

struct Group<'a> {
    name: &'a str,
    gid: u32,
    members: Vec<&'a str>,
}

/// `name:password:uid:gid:gecos:home:shell`; malformed lines and comments are skipped.
fn parse_passwd(line: &str) -> Option<Passwd<'_>> {
    let line = line.trim();
    if line.is_empty() || line.starts_with('#') {
        return None;
    }
    let mut f = line.split(':');
    let name = f.next()?;
    let _password = f.next();
    let uid = f.next()?.parse().ok()?;
    let gid = f.next()?.parse().ok()?;
    Some(Passwd { name, uid, gid })
}

/// `name:password:gid:member,member`.
fn parse_group(line: &str) -> Option<Group<'_>> {
    let line = line.trim();
    if line.is_empty() || line.starts_with('#') {
        return None;
    }
    let mut f = line.split(':');
    let name = f.next()?;
    let _password = f.next();
    let gid = f.next()?.parse().ok()?;
    let members = f
        .next()
        .unwrap_or_default()
        .split(',')
        .map(str::trim)
        .filter(|m| !m.is_empty())
        .collect();
    Some(Group { name, gid, members })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn image() -> tempfile::TempDir {
        let tmp = tempfile::tempdir().unwrap();
        let etc = tmp.path().join("etc");
        std::fs::create_dir(&etc).unwrap();
        std::fs::write(
            etc.join("passwd"),
            "root:x:0:0:root:/root:/bin/sh\n\
             # a comment\n\
             app:x:1000:1001:App:/home/app:/bin/sh\n\
             broken line\n\
             other:x:1002:1002::/:/bin/false\n",
        )
        .unwrap();
        std::fs::write(
            etc.join("group"),
            "root:x:0:\n\
             appgrp:x:1001:\n\
             audio:x:29:app,other\n\
             video:x:44: other , app \n\
             staff:x:50:\n",
        )
        .unwrap();
        tmp
    }

    fn user(uid: u32, gid: u32, sgids: &[u32]) -> User {
        User {
            uid,
            gid,
            additional_gids: sgids.to_vec(),
        }
    }

    #[test]
    fn names_and_ids_resolve_like_docker() {
        let img = image();
        let r = |s: &str| resolve_user(img.path(), s).unwrap();
        assert_eq!(r(""), user(0, 0, &[]));
        assert_eq!(r("root"), user(0, 0, &[]));
        // By name: the passwd gid and the groups that list the name.
        assert_eq!(r("app"), user(1000, 1001, &[29, 44]));
        // By uid, when passwd has it: the same as by name.
        assert_eq!(r("1000"), user(1000, 1001, &[29, 44]));
        // A uid passwd does not know: gid 0, no groups.
        assert_eq!(r("4242"), user(4242, 0, &[]));
        // uid:gid needs no file.
        assert_eq!(r("4242:77"), user(4242, 77, &[]));
        // An explicit group replaces the primary gid and drops the supplementary ones.
        assert_eq!(r("app:staff"), user(1000, 50, &[]));
        assert_eq!(r("app:44"), user(1000, 44, &[]));
        assert_eq!(r("app:9999"), user(1000, 9999, &[]));
        assert_eq!(r("1000:audio"), user(1000, 29, &[]));
        assert_eq!(r(":staff"), user(0, 50, &[]));
    }

    #[test]
    fn unknown_names_are_errors() {
        let img = image();
        let err = resolve_user(img.path(), "nobody").unwrap_err();
        assert_eq!(
            err.to_string(),
            "unable to find user nobody: no matching entries in passwd file"
        );
        let err = resolve_user(img.path(), "app:wheel").unwrap_err();
        assert_eq!(
            err.to_string(),
            "unable to find group wheel: no matching entries in group file"
        );
    }

    #[test]
    fn an_image_without_passwd_takes_numbers_only() {
        let tmp = tempfile::tempdir().unwrap();
        assert_eq!(resolve_user(tmp.path(), "123").unwrap(), user(123, 0, &[]));
        assert!(resolve_user(tmp.path(), "app").is_err());
    }

    #[test]
    fn passwd_is_read_inside_the_root() {
        let tmp = tempfile::tempdir().unwrap();
        let outside = tempfile::tempdir().unwrap();
        std::fs::write(outside.path().join("passwd"), "evil:x:7:7::/:/bin/sh\n").unwrap();
        std::fs::create_dir(tmp.path().join("etc")).unwrap();
        // An absolute symlink is resolved with the image as `/`.
        std::os::unix::fs::symlink(outside.path().join("passwd"), tmp.path().join("etc/passwd"))
            .unwrap();
        assert!(resolve_user(tmp.path(), "evil").is_err());
    }
}
