//! A loopback HTTP proxy that sits in front of a real registry and injects faults:
//! error statuses (500, 429 with `Retry-After`), connection resets (before the
//! response, or after part of it) and stalls (nothing more is sent; the client's read
//! timeout must fire). One request per connection (`Connection: close` upstream), so
//! every request is seen and logged. Threads are joined on drop.

#![allow(dead_code)]

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{Shutdown, TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Fault {
    /// Answer with this status (and `Retry-After: secs` when given); the request body
    /// is read first, so the client sees the answer.
    Status(u16, Option<u64>),
    /// Reset the connection as soon as the request head arrives.
    Reset,
    /// Forward, but reset after this many bytes of the response.
    ResetAfter(usize),
    /// Forward this many bytes of the response, then send nothing more (until the
    /// client gives up or the proxy is dropped).
    StallAfter(usize),
    /// Forward nothing and never answer (the request body is read and dropped).
    Stall,
}

/// Faults for requests whose method is `method` and whose path contains `path`; the
/// first `times` matching requests get `fault`.
#[derive(Debug, Clone)]
pub struct Rule {
    pub method: &'static str,
    pub path: String,
    pub fault: Fault,
    pub times: usize,
}

/// One request the proxy saw.
#[derive(Debug, Clone)]
pub struct Seen {
    pub method: String,
    pub path: String,
    pub fault: Option<Fault>,
    pub at: Instant,
}

pub struct FaultProxy {
    pub addr: String,
    upstream: String,
    rules: Arc<Mutex<Vec<Rule>>>,
    seen: Arc<Mutex<Vec<Seen>>>,
    stop: Arc<AtomicBool>,
    acceptor: Option<JoinHandle<()>>,
}

impl FaultProxy {
    pub fn start(upstream: &str) -> FaultProxy {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = listener.local_addr().unwrap().to_string();
        let rules: Arc<Mutex<Vec<Rule>>> = Arc::default();
        let seen: Arc<Mutex<Vec<Seen>>> = Arc::default();
        let stop = Arc::new(AtomicBool::new(false));
        let ctx = Ctx {
            upstream: upstream.to_string(),
            rules: rules.clone(),
            seen: seen.clone(),
            stop: stop.clone(),
        };
        let acceptor = std::thread::spawn(move || {
            let mut workers = Vec::new();
            for conn in listener.incoming() {
                if ctx.stop.load(Ordering::SeqCst) {
                    break;
                }
                let Ok(conn) = conn else { continue };
                let ctx = ctx.clone();
                workers.push(std::thread::spawn(move || {
                    let _ = ctx.serve(conn);
                }));
            }
            for w in workers {
                let _ = w.join();
            }
        });
        FaultProxy {
            addr,
            upstream: upstream.to_string(),
            rules,
            seen,
            stop,
            acceptor: Some(acceptor),
        }
    }

    pub fn inject(&self, method: &'static str, path: &str, fault: Fault, times: usize) {
        self.rules.lock().unwrap().push(Rule {
            method,
            path: path.to_string(),
            fault,
            times,
        });
    }

    pub fn clear(&self) {
        self.rules.lock().unwrap().clear();
    }

    pub fn seen(&self) -> Vec<Seen> {
        self.seen.lock().unwrap().clone()
    }

    /// The faults injected so far.
    pub fn injected(&self) -> Vec<Seen> {
        self.seen()
            .into_iter()
            .filter(|s| s.fault.is_some())
            .collect()
    }
}

impl Drop for FaultProxy {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
        // Wake the acceptor.
        let _ = TcpStream::connect(&self.addr);
        if let Some(a) = self.acceptor.take() {
            let _ = a.join();
        }
    }
}

#[derive(Clone)]
struct Ctx {
    upstream: String,
    rules: Arc<Mutex<Vec<Rule>>>,
    seen: Arc<Mutex<Vec<Seen>>>,
    stop: Arc<AtomicBool>,
}

impl Ctx {
    fn serve(&self, client: TcpStream) -> std::io::Result<()> {
        client.set_read_timeout(Some(Duration::from_millis(200)))?;
        let mut reader = BufReader::new(client.try_clone()?);
        // The request head (retrying reads that time out, until stopped).
        let mut head = Vec::new();
        loop {
            let mut line = Vec::new();
            loop {
                match reader.read_until(b'\n', &mut line) {
                    Ok(0) => return Ok(()),
                    Ok(_) => break,
                    Err(e) if is_timeout(&e) => {
                        if self.stop.load(Ordering::SeqCst) {
                            return Ok(());
                        }
                    }
                    Err(e) => return Err(e),
                }
            }
            let end = line == b"\r\n";
            head.push(String::from_utf8_lossy(&line).trim_end().to_string());
            if end {
                break;
            }
        }
        let mut parts = head[0].split(' ');
        let method = parts.next().unwrap_or("").to_string();
        let path = parts.next().unwrap_or("").to_string();
        let content_length: u64 = head
            .iter()
            .find_map(|h| {
                let (k, v) = h.split_once(':')?;
                k.eq_ignore_ascii_case("content-length")
                    .then(|| v.trim().parse().ok())?
            })
            .unwrap_or(0);
        let fault = {
            let mut rules = self.rules.lock().unwrap();
            rules
                .iter_mut()
                .find(|r| r.times > 0 && r.method == method && path.contains(&r.path))
                .map(|r| {
                    r.times -= 1;
                    r.fault
                })
        };
        self.seen.lock().unwrap().push(Seen {
            method: method.clone(),
            path: path.clone(),
            fault,
            at: Instant::now(),
        });
        let mut client_w = client.try_clone()?;
        match fault {
            Some(Fault::Reset) => {
                reset(&client);
                return Ok(());
            }
            Some(Fault::Stall) => {
                self.hold(&mut reader);
                return Ok(());
            }
            Some(Fault::Status(code, retry_after)) => {
                self.copy_body(&mut reader, &mut std::io::sink(), content_length)?;
                let body = format!(
                    "{{\"errors\":[{{\"code\":\"INJECTED\",\"message\":\"injected {code}\"}}]}}"
                );
                let mut resp = format!(
                    "HTTP/1.1 {code} Injected\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n",
                    body.len()
                );
                if let Some(s) = retry_after {
                    resp.push_str(&format!("Retry-After: {s}\r\n"));
                }
                resp.push_str("\r\n");
                resp.push_str(&body);
                client_w.write_all(resp.as_bytes())?;
                let _ = client.shutdown(Shutdown::Both);
                return Ok(());
            }
            _ => {}
        }
        // Forward: the head with `Connection: close`, the body, then the response.
        let mut up = TcpStream::connect(&self.upstream)?;
        let mut out = String::new();
        for h in &head[..head.len() - 1] {
            let name = h.split(':').next().unwrap_or("").trim();
            if name.eq_ignore_ascii_case("connection") || name.eq_ignore_ascii_case("keep-alive") {
                continue;
            }
            out.push_str(h);
            out.push_str("\r\n");
        }
        out.push_str("Connection: close\r\n\r\n");
        up.write_all(out.as_bytes())?;
        self.copy_body(&mut reader, &mut up, content_length)?;
        let limit = match fault {
            Some(Fault::ResetAfter(n)) | Some(Fault::StallAfter(n)) => Some(n),
            _ => None,
        };
        let mut sent = 0usize;
        let mut buf = vec![0u8; 64 << 10];
        loop {
            let n = up.read(&mut buf)?;
            if n == 0 {
                break;
            }
            let take = limit.map_or(n, |l| n.min(l - sent));
            client_w.write_all(&buf[..take])?;
            sent += take;
            if limit == Some(sent) {
                break;
            }
        }
        match fault {
            Some(Fault::ResetAfter(_)) => reset(&client),
            Some(Fault::StallAfter(_)) => self.hold(&mut reader),
            _ => {
                let _ = client.shutdown(Shutdown::Both);
            }
        }
        Ok(())
    }

    /// Hold the connection open, sending nothing, until the client closes it (its
    /// timeout fired) or the proxy stops.
    fn hold(&self, reader: &mut BufReader<TcpStream>) {
        let mut buf = vec![0u8; 64 << 10];
        loop {
            match reader.read(&mut buf) {
                Ok(0) => break,
                Ok(_) => {}
                Err(e) if is_timeout(&e) => {
                    if self.stop.load(Ordering::SeqCst) {
                        break;
                    }
                }
                Err(_) => break,
            }
        }
    }

    fn copy_body(
        &self,
        reader: &mut BufReader<TcpStream>,
        to: &mut dyn Write,
        mut len: u64,
    ) -> std::io::Result<()> {
        let mut buf = vec![0u8; 64 << 10];
        while len > 0 {
            let want = buf.len().min(len as usize);
            match reader.read(&mut buf[..want]) {
                Ok(0) => return Ok(()),
                Ok(n) => {
                    to.write_all(&buf[..n])?;
                    len -= n as u64;
                }
                Err(e) if is_timeout(&e) => {
                    if self.stop.load(Ordering::SeqCst) {
                        return Ok(());
                    }
                }
                Err(e) => return Err(e),
            }
        }
        Ok(())
    }
}

fn is_timeout(e: &std::io::Error) -> bool {
    matches!(
        e.kind(),
        std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
    )
}

/// Close with RST (SO_LINGER 0) rather than FIN.
fn reset(s: &TcpStream) {
    let _ = rustix::net::sockopt::set_socket_linger(s, Some(Duration::ZERO));
    let _ = s.shutdown(Shutdown::Read);
}
