//! A minimal blocking HTTP/1.1 client: sanity checks of each proxy, hostalb's reload
//! endpoint, the idle connections of scenario (f) and the polling of scenario (g).

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::time::Duration;

use anyhow::{Context, Result, bail};

/// Longest response head accepted.
const MAX_HEAD: usize = 64 * 1024;
/// Longest body read.
const MAX_BODY: usize = 4 * 1024 * 1024;

#[derive(Debug)]
pub(crate) struct Response {
    pub(crate) status: u16,
    pub(crate) headers: Vec<(String, String)>,
    pub(crate) body: Vec<u8>,
}

impl Response {
    pub(crate) fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }
}

pub(crate) fn connect(addr: SocketAddr, timeout: Duration) -> Result<TcpStream> {
    let s = TcpStream::connect_timeout(&addr, timeout).with_context(|| format!("connecting to {addr}"))?;
    s.set_read_timeout(Some(timeout))
        .context("setting a read timeout")?;
    s.set_write_timeout(Some(timeout))
        .context("setting a write timeout")?;
    let _ = s.set_nodelay(true);
    Ok(s)
}

/// Sends one request on `stream` and reads the whole response.
pub(crate) fn exchange(
    stream: &mut TcpStream,
    method: &str,
    path: &str,
    host: &str,
    keep_alive: bool,
) -> Result<Response> {
    let conn = if keep_alive { "keep-alive" } else { "close" };
    let body_header = if method == "POST" {
        "Content-Length: 0\r\n"
    } else {
        ""
    };
    let req = format!("{method} {path} HTTP/1.1\r\nHost: {host}\r\nConnection: {conn}\r\n{body_header}\r\n");
    stream.write_all(req.as_bytes()).context("sending a request")?;
    read_response(stream, method == "HEAD")
}

/// One request on a fresh connection.
pub(crate) fn request(addr: SocketAddr, method: &str, path: &str, timeout: Duration) -> Result<Response> {
    let mut s = connect(addr, timeout)?;
    exchange(&mut s, method, path, &addr.to_string(), false)
}

fn read_response(stream: &mut TcpStream, head_only: bool) -> Result<Response> {
    let mut buf = Vec::with_capacity(1024);
    let mut chunk = [0u8; 16 * 1024];
    let head_end = loop {
        if let Some(i) = find(&buf, b"\r\n\r\n") {
            break i + 4;
        }
        if buf.len() > MAX_HEAD {
            bail!("response head longer than {MAX_HEAD} bytes");
        }
        let n = stream.read(&mut chunk).context("reading a response head")?;
        if n == 0 {
            bail!("connection closed before a complete response head");
        }
        buf.extend_from_slice(&chunk[..n]);
    };
    let head = String::from_utf8_lossy(&buf[..head_end]).into_owned();
    let mut lines = head.split("\r\n");
    let status_line = lines.next().unwrap_or_default();
    let status: u16 = status_line
        .split_whitespace()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .with_context(|| format!("malformed status line {status_line:?}"))?;
    let headers: Vec<(String, String)> = lines
        .filter_map(|l| l.split_once(':'))
        .map(|(n, v)| (n.trim().to_owned(), v.trim().to_owned()))
        .collect();
    let mut resp = Response {
        status,
        headers,
        body: buf[head_end..].to_vec(),
    };
    if head_only || status == 204 || status == 304 || (100..200).contains(&status) {
        return Ok(resp);
    }
    if let Some(len) = resp.header("content-length") {
        let len: usize = len
            .parse()
            .with_context(|| format!("bad Content-Length {len:?}"))?;
        if len > MAX_BODY {
            bail!("body of {len} bytes is longer than {MAX_BODY}");
        }
        while resp.body.len() < len {
            let n = stream.read(&mut chunk).context("reading a response body")?;
            if n == 0 {
                bail!("connection closed after {} of {len} body bytes", resp.body.len());
            }
            resp.body.extend_from_slice(&chunk[..n]);
        }
        resp.body.truncate(len);
        return Ok(resp);
    }
    let chunked = resp
        .header("transfer-encoding")
        .is_some_and(|v| v.to_ascii_lowercase().contains("chunked"));
    // Chunked or close-delimited: read to the end of the chunked framing or to EOF.
    loop {
        let complete = if chunked { dechunk(&resp.body) } else { None };
        if let Some(body) = complete {
            resp.body = body;
            return Ok(resp);
        }
        if resp.body.len() > MAX_BODY {
            bail!("body longer than {MAX_BODY} bytes");
        }
        let n = stream.read(&mut chunk).context("reading a response body")?;
        if n == 0 {
            if chunked {
                bail!("connection closed inside a chunked body");
            }
            return Ok(resp);
        }
        resp.body.extend_from_slice(&chunk[..n]);
    }
}

/// The decoded body when `raw` holds a complete chunked body.
fn dechunk(raw: &[u8]) -> Option<Vec<u8>> {
    let mut out = Vec::new();
    let mut at = 0;
    loop {
        let line_end = at + find(&raw[at..], b"\r\n")?;
        let size_text = std::str::from_utf8(&raw[at..line_end]).ok()?;
        let size = usize::from_str_radix(size_text.split(';').next()?.trim(), 16).ok()?;
        at = line_end + 2;
        if size == 0 {
            // Trailers end with an empty line.
            find(&raw[at..], b"\r\n")?;
            return Some(out);
        }
        if raw.len() < at + size + 2 {
            return None;
        }
        out.extend_from_slice(&raw[at..at + size]);
        at += size + 2;
    }
}

fn find(hay: &[u8], needle: &[u8]) -> Option<usize> {
    hay.windows(needle.len()).position(|w| w == needle)
}
