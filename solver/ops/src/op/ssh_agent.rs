//! `RUN --mount=type=ssh`: a socket of the run's own that forwards every connection to
//! the user's SSH agent, as BuildKit does. The agent's socket itself is never exposed:
//! ours has the owner and mode the mount asks for (`uid`, `gid`, `mode`, default 0600
//! root), lives in the run's directory and stops forwarding when the run ends.

use std::io;
use std::os::fd::AsRawFd;
use std::path::{Path, PathBuf};

use tokio::net::{UnixListener, UnixStream};
use tokio::task::{JoinHandle, JoinSet};

/// The longest socket path `bind(2)` takes (`sockaddr_un.sun_path`, with its NUL).
const SUN_PATH_MAX: usize = 107;

/// Forwards connections on a socket to an agent until dropped.
pub(super) struct AgentProxy {
    task: JoinHandle<()>,
}

impl AgentProxy {
    /// Listens at `path` (which must not exist), with `mode`, `uid` and `gid`, and
    /// forwards each connection to the agent at `agent`. Runs on `rt`.
    pub fn start(
        rt: &tokio::runtime::Handle,
        path: &Path,
        agent: PathBuf,
        (mode, uid, gid): (u32, u32, u32),
    ) -> io::Result<AgentProxy> {
        let listener = bind(path)?;
        std::os::unix::fs::chown(path, Some(uid), Some(gid))?;
        {
            use std::os::unix::fs::PermissionsExt;
            std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode))?;
        }
        listener.set_nonblocking(true)?;
        let listener = {
            let _in_runtime = rt.enter();
            UnixListener::from_std(listener)?
        };
        let task = rt.spawn(async move {
            // Dropped with the task: every open connection ends with it.
            let mut conns = JoinSet::new();
            loop {
                tokio::select! {
                    accepted = listener.accept() => {
                        let Ok((mut client, _)) = accepted else { break };
                        let agent = agent.clone();
                        conns.spawn(async move {
                            if let Ok(mut upstream) = UnixStream::connect(&agent).await {
                                let _ = tokio::io::copy_bidirectional(&mut client, &mut upstream).await;
                            }
                        });
                    }
                    Some(_) = conns.join_next(), if !conns.is_empty() => {}
                }
            }
        });
        Ok(AgentProxy { task })
    }
}

impl Drop for AgentProxy {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// Binds a listening socket at `path`; a path too long for `sockaddr_un` is reached
/// through `/proc/self/fd/N/` of its directory.
fn bind(path: &Path) -> io::Result<std::os::unix::net::UnixListener> {
    if path.as_os_str().len() <= SUN_PATH_MAX {
        return std::os::unix::net::UnixListener::bind(path);
    }
    let (Some(dir), Some(name)) = (path.parent(), path.file_name()) else {
        return Err(io::Error::new(
            io::ErrorKind::InvalidInput,
            format!("{}: not a socket path", path.display()),
        ));
    };
    let dir = std::fs::File::open(dir)?;
    let short = Path::new("/proc/self/fd")
        .join(dir.as_raw_fd().to_string())
        .join(name);
    std::os::unix::net::UnixListener::bind(short)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::{Read, Write};
    use std::os::unix::fs::{FileTypeExt, MetadataExt, PermissionsExt};

    /// An "agent" that answers each connection with what it read, reversed.
    fn echo_agent(path: &Path) -> std::thread::JoinHandle<()> {
        let l = std::os::unix::net::UnixListener::bind(path).unwrap();
        std::thread::spawn(move || {
            for c in l.incoming().take(2) {
                let mut c = c.unwrap();
                let mut buf = [0u8; 5];
                c.read_exact(&mut buf).unwrap();
                buf.reverse();
                c.write_all(&buf).unwrap();
            }
        })
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn connections_are_forwarded_with_the_sockets_owner_and_mode() {
        let tmp = tempfile::tempdir().unwrap();
        let agent = tmp.path().join("agent.sock");
        let served = echo_agent(&agent);
        // Longer than sockaddr_un allows.
        let deep = tmp.path().join("d".repeat(60)).join("e".repeat(60));
        std::fs::create_dir_all(&deep).unwrap();
        let sock = deep.join("ssh-0.sock");
        let proxy = AgentProxy::start(
            &tokio::runtime::Handle::current(),
            &sock,
            agent.clone(),
            (0o640, 0, 0),
        )
        .unwrap();
        let meta = std::fs::symlink_metadata(&sock).unwrap();
        assert!(meta.file_type().is_socket());
        assert_eq!(meta.permissions().mode() & 0o7777, 0o640);
        assert_eq!((meta.uid(), meta.gid()), (0, 0));
        let sock2 = sock.clone();
        let got = tokio::task::spawn_blocking(move || {
            (0..2)
                .map(|_| {
                    let dir = std::fs::File::open(sock2.parent().unwrap()).unwrap();
                    let short = Path::new("/proc/self/fd")
                        .join(dir.as_raw_fd().to_string())
                        .join("ssh-0.sock");
                    let mut c = std::os::unix::net::UnixStream::connect(short).unwrap();
                    c.write_all(b"hello").unwrap();
                    let mut buf = [0u8; 5];
                    c.read_exact(&mut buf).unwrap();
                    buf
                })
                .collect::<Vec<_>>()
        })
        .await
        .unwrap();
        assert_eq!(got, [*b"olleh", *b"olleh"]);
        served.join().unwrap();
        drop(proxy);
    }
}
