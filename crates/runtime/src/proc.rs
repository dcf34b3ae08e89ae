//! Following a runtime's processes: the lines of their output pipes, and their exit.

use std::time::Duration;

use tokio::io::{AsyncRead, AsyncReadExt};

/// Waits until `pid` has exited (gone, or a zombie), at most `limit`. A container's
/// init exits only after the kernel has killed and reaped the rest of its pid
/// namespace, so once it has, nothing of the container runs.
pub(crate) fn wait_exited(pid: i32, limit: Duration) {
    let stat = format!("/proc/{pid}/stat");
    let start = std::time::Instant::now();
    while start.elapsed() < limit {
        let running = std::fs::read_to_string(&stat).is_ok_and(|s| {
            // `PID (COMM) STATE …`: COMM may hold spaces and parentheses.
            let state = s
                .rsplit_once(") ")
                .and_then(|(_, rest)| rest.chars().next());
            !matches!(state, Some('Z' | 'X'))
        });
        if !running {
            return;
        }
        std::thread::sleep(Duration::from_millis(5));
    }
}

/// Longest line we hand over at once; longer ones are split.
const MAX_LINE: usize = 64 * 1024;

/// Lines of a pipe, cancel-safe (state lives here, reads are cancel-safe).
pub(crate) struct Lines<R> {
    r: R,
    buf: Vec<u8>,
    eof: bool,
}

impl<R: AsyncRead + Unpin> Lines<R> {
    pub(crate) fn new(r: R) -> Self {
        Lines {
            r,
            buf: Vec::new(),
            eof: false,
        }
    }

    pub(crate) async fn next(&mut self) -> Option<String> {
        loop {
            if let Some(pos) = self.buf.iter().position(|&b| b == b'\n') {
                let mut line: Vec<u8> = self.buf.drain(..=pos).collect();
                line.pop();
                if line.last() == Some(&b'\r') {
                    line.pop();
                }
                return Some(String::from_utf8_lossy(&line).into_owned());
            }
            if self.buf.len() >= MAX_LINE || (self.eof && !self.buf.is_empty()) {
                let line = std::mem::take(&mut self.buf);
                return Some(String::from_utf8_lossy(&line).into_owned());
            }
            if self.eof {
                return None;
            }
            let mut chunk = [0u8; 8192];
            match self.r.read(&mut chunk).await {
                Ok(0) | Err(_) => self.eof = true,
                Ok(n) => self.buf.extend_from_slice(&chunk[..n]),
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn waiting_for_a_pid_returns_once_it_exited_and_gives_up_at_the_limit() {
        let mut child = std::process::Command::new("sleep")
            .arg("30")
            .spawn()
            .unwrap();
        let pid = child.id() as i32;
        let start = std::time::Instant::now();
        wait_exited(pid, Duration::from_millis(200));
        assert!(
            start.elapsed() >= Duration::from_millis(200),
            "it was running"
        );
        child.kill().unwrap();
        // Killed, not yet reaped: a zombie counts as exited.
        let start = std::time::Instant::now();
        wait_exited(pid, Duration::from_secs(5));
        assert!(start.elapsed() < Duration::from_secs(1));
        child.wait().unwrap();
        wait_exited(pid, Duration::from_secs(5));
    }

    #[tokio::test]
    async fn lines_split_on_newlines_and_keep_a_last_partial_line() {
        let data: &[u8] = b"one\ntwo\r\n\nthree";
        let mut lines = Lines::new(data);
        let mut got = Vec::new();
        while let Some(l) = lines.next().await {
            got.push(l);
        }
        assert_eq!(got, ["one", "two", "", "three"]);
    }
}
