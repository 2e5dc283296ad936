//! Scenario (i): a large chunked upload through each proxy to a target that reads it.
//!
//! The target is the harness's own sink (two ports, the two targets): it reads each
//! request body to its end, decoding `Content-Length` or chunked framing, and answers with
//! the number of body bytes and their sum, so every upload is checked whole. The sender
//! writes a body framed as `curl -T file -H 'Transfer-Encoding: chunked'` frames it
//! (one chunk per upload buffer) and times the upload to the last byte of the answer.

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};

use crate::http;

/// The path uploads go to (under the proxies' `/api/` rule).
pub(crate) const UPLOAD_PATH: &str = "/api/upload";
/// The sink's read size: large, so the sink is never what limits an upload.
const SINK_READ: usize = 256 * 1024;
/// Socket timeouts of the sink and the sender.
const IO_TIMEOUT: Duration = Duration::from_secs(30);
/// Longest request head the sink accepts.
const MAX_HEAD: usize = 64 * 1024;

/// The body's byte at offset `i`: a pattern whose sum the sink's answer must match.
fn pattern(i: usize) -> u8 {
    (i % 251) as u8
}

/// A body of `len` bytes framed in chunks of `chunk` bytes, with the last chunk.
pub(crate) fn chunked_body(len: usize, chunk: usize) -> (Vec<u8>, u64) {
    let chunk = chunk.max(1);
    let mut out = Vec::with_capacity(len + len / chunk * 12 + 16);
    let mut sum = 0u64;
    let mut at = 0;
    while at < len {
        let n = chunk.min(len - at);
        out.extend_from_slice(format!("{n:x}\r\n").as_bytes());
        for i in at..at + n {
            let b = pattern(i);
            sum += u64::from(b);
            out.push(b);
        }
        out.extend_from_slice(b"\r\n");
        at += n;
    }
    out.extend_from_slice(b"0\r\n\r\n");
    (out, sum)
}

/// The sink: accepts on two ports until dropped.
#[derive(Debug)]
pub(crate) struct Sink {
    pub(crate) ports: [u16; 2],
    stop: Arc<AtomicBool>,
    addrs: [SocketAddr; 2],
}

impl Drop for Sink {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        // Wake the accept loops so they see the flag.
        for a in self.addrs {
            let _ = TcpStream::connect_timeout(&a, Duration::from_millis(200));
        }
    }
}

pub(crate) fn start_sink() -> Result<Sink> {
    let stop = Arc::new(AtomicBool::new(false));
    let mut ports = [0u16; 2];
    let mut addrs = [SocketAddr::from(([127, 0, 0, 1], 0)); 2];
    for i in 0..2 {
        let l = TcpListener::bind(("127.0.0.1", crate::procs::free_port()?)).context("binding the sink")?;
        let addr = l.local_addr().context("the sink's address")?;
        ports[i] = addr.port();
        addrs[i] = addr;
        let stop = Arc::clone(&stop);
        std::thread::spawn(move || {
            for conn in l.incoming() {
                if stop.load(Ordering::Relaxed) {
                    break;
                }
                let Ok(conn) = conn else { continue };
                std::thread::spawn(move || {
                    let _ = serve(conn);
                });
            }
        });
    }
    Ok(Sink { ports, stop, addrs })
}

/// Answers requests on one connection until it closes: each body is read whole.
fn serve(mut s: TcpStream) -> Result<()> {
    s.set_read_timeout(Some(IO_TIMEOUT))?;
    s.set_write_timeout(Some(IO_TIMEOUT))?;
    let _ = s.set_nodelay(true);
    let mut buf = vec![0u8; SINK_READ];
    // Bytes read and not used yet: buf[start..end].
    let (mut start, mut end) = (0usize, 0usize);
    loop {
        // The head.
        let head_end = loop {
            if let Some(i) = find(&buf[start..end], b"\r\n\r\n") {
                break start + i + 4;
            }
            if end - start > MAX_HEAD {
                bail!("request head too long");
            }
            if end == buf.len() {
                buf.copy_within(start..end, 0);
                (start, end) = (0, end - start);
            }
            let n = s.read(&mut buf[end..])?;
            if n == 0 {
                return Ok(());
            }
            end += n;
        };
        let head = String::from_utf8_lossy(&buf[start..head_end]).to_ascii_lowercase();
        start = head_end;
        let length = head
            .lines()
            .find_map(|l| l.strip_prefix("content-length:"))
            .and_then(|v| v.trim().parse::<u64>().ok());
        let chunked = head
            .lines()
            .any(|l| l.starts_with("transfer-encoding:") && l.contains("chunked"));
        let (mut bytes, mut sum) = (0u64, 0u64);
        let mut take = |data: &[u8]| {
            bytes += data.len() as u64;
            sum += data.iter().map(|b| u64::from(*b)).sum::<u64>();
        };
        if chunked {
            // State: data left of the current chunk, or reading a size line.
            let mut left: u64 = 0;
            let mut in_data = false;
            loop {
                if in_data {
                    if start == end {
                        (start, end) = (0, s.read(&mut buf)?);
                        if end == 0 {
                            bail!("closed inside a chunk");
                        }
                    }
                    let n = left.min((end - start) as u64) as usize;
                    take(&buf[start..start + n]);
                    start += n;
                    left -= n as u64;
                    if left == 0 {
                        in_data = false;
                        // The chunk's CRLF is read as an empty line below.
                    }
                    continue;
                }
                // A line: a size line, or the CRLF after a chunk's data.
                let line_end = loop {
                    if let Some(i) = find(&buf[start..end], b"\r\n") {
                        break start + i;
                    }
                    if end - start > MAX_HEAD {
                        bail!("chunk line too long");
                    }
                    buf.copy_within(start..end, 0);
                    (start, end) = (0, end - start);
                    let n = s.read(&mut buf[end..])?;
                    if n == 0 {
                        bail!("closed inside chunk framing");
                    }
                    end += n;
                };
                let line = std::str::from_utf8(&buf[start..line_end])
                    .unwrap_or("?")
                    .to_owned();
                start = line_end + 2;
                if line.is_empty() {
                    continue;
                }
                let size = u64::from_str_radix(line.split(';').next().unwrap_or("").trim(), 16)
                    .with_context(|| format!("bad chunk size line {line:?}"))?;
                if size == 0 {
                    // Trailers (none expected) end with an empty line.
                    loop {
                        if let Some(i) = find(&buf[start..end], b"\r\n") {
                            start += i + 2;
                            if i == 0 {
                                break;
                            }
                            continue;
                        }
                        buf.copy_within(start..end, 0);
                        (start, end) = (0, end - start);
                        let n = s.read(&mut buf[end..])?;
                        if n == 0 {
                            bail!("closed inside trailers");
                        }
                        end += n;
                    }
                    break;
                }
                left = size;
                in_data = true;
            }
        } else {
            let mut left = length.unwrap_or(0);
            while left > 0 {
                if start == end {
                    (start, end) = (0, s.read(&mut buf)?);
                    if end == 0 {
                        bail!("closed inside a body");
                    }
                }
                let n = left.min((end - start) as u64) as usize;
                take(&buf[start..start + n]);
                start += n;
                left -= n as u64;
            }
        }
        let body = format!("bytes={bytes} sum={sum}\n");
        let answer = format!(
            "HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nContent-Length: {}\r\n\r\n{body}",
            body.len()
        );
        s.write_all(answer.as_bytes())?;
        if head
            .lines()
            .any(|l| l.starts_with("connection:") && l.contains("close"))
        {
            return Ok(());
        }
    }
}

/// One upload of `body` (chunked framing of `len` bytes summing to `sum`) to `addr` on a
/// new connection: the seconds from connecting to the last byte of the answer.
pub(crate) fn upload(addr: SocketAddr, body: &[u8], len: usize, sum: u64) -> Result<f64> {
    let started = Instant::now();
    let mut s = http::connect(addr, IO_TIMEOUT)?;
    let head = format!(
        "POST {UPLOAD_PATH} HTTP/1.1\r\nHost: {addr}\r\nContent-Type: application/octet-stream\r\n\
         Transfer-Encoding: chunked\r\nConnection: close\r\n\r\n"
    );
    s.write_all(head.as_bytes()).context("sending the head")?;
    s.write_all(body).context("sending the body")?;
    let mut answer = Vec::new();
    s.read_to_end(&mut answer).context("reading the answer")?;
    let seconds = started.elapsed().as_secs_f64();
    let text = String::from_utf8_lossy(&answer);
    let expected = format!("bytes={len} sum={sum}\n");
    if !text.starts_with("HTTP/1.1 200") || !text.ends_with(&expected) {
        bail!(
            "the upload was answered `{}`, expected 200 with `{}`",
            text.trim(),
            expected.trim()
        );
    }
    Ok(seconds)
}

fn find(hay: &[u8], needle: &[u8]) -> Option<usize> {
    hay.windows(needle.len()).position(|w| w == needle)
}
