//! One client connection: reads requests (head, then body, whatever its framing), hands
//! each to [`crate::answer`], and closes when the client, the request or a stop asks.

use std::io::{self, Read, Write};
use std::net::{Shutdown, TcpStream};
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use crate::Shared;
use crate::answer;

/// Longest request head accepted (request line and headers); longer gets 431.
const MAX_HEAD: usize = 64 * 1024;

/// Most header lines in one request; more gets 431.
const MAX_HEADERS: usize = 256;

/// Longest chunk-size or trailer line of a chunked body.
const MAX_LINE: usize = 4096;

/// Most hex digits of a chunk size (a 64-bit size).
const MAX_CHUNK_SIZE_DIGITS: usize = 16;

/// Bytes read at a time.
const READ_CHUNK: usize = 16 * 1024;

/// How often a read wakes up to look at the stop flags and the idle timeout.
const POLL: Duration = Duration::from_millis(50);

/// How long writing one answer may block on a client that does not read.
const WRITE_TIMEOUT: Duration = Duration::from_secs(30);

/// How long a closing connection reads what the client still sends after the last answer,
/// so that unread bytes do not turn the close into a reset that could destroy that answer.
const LINGER: Duration = Duration::from_millis(500);

/// A request, its body read and dropped.
#[derive(Debug)]
pub(crate) struct Request {
    pub(crate) method: String,
    pub(crate) target: String,
    /// 0 for HTTP/1.0, 1 for HTTP/1.1.
    pub(crate) minor_version: u8,
    /// Header lines in the order received, names as on the wire.
    pub(crate) headers: Vec<(String, String)>,
    pub(crate) body_len: u64,
}

impl Request {
    /// Whether header `name` holds the comma-separated `token` (both case-insensitive).
    pub(crate) fn has_token(&self, name: &str, token: &str) -> bool {
        self.headers
            .iter()
            .filter(|(n, _)| n.eq_ignore_ascii_case(name))
            .flat_map(|(_, v)| v.split(','))
            .any(|t| t.trim().eq_ignore_ascii_case(token))
    }
}

/// How the body of a request is delimited.
#[derive(Debug, Clone, Copy)]
enum Framing {
    Length(u64),
    Chunked,
}

/// What reading the next request gave.
#[derive(Debug)]
enum Next {
    Request(Request),
    /// The client closed, went quiet past the idle timeout, or the server is closing.
    Closed,
    /// A request that cannot be served: answered with this status, then closed.
    Bad(u16, String),
}

/// The connection and what was received on it but not used yet.
#[derive(Debug)]
pub(crate) struct Conn<'a> {
    stream: TcpStream,
    received: Vec<u8>,
    pub(crate) shared: &'a Shared,
    /// The local port the client reached.
    pub(crate) port: u16,
}

/// Why reading stopped.
#[derive(Debug)]
enum ReadError {
    /// Nothing arrived within [`POLL`]: look at the clock and the flags, then read again.
    Quiet,
    /// The connection is gone.
    Gone,
}

/// Serves every request on `stream` until one of the sides closes.
pub(crate) fn serve(stream: TcpStream, shared: &Shared) {
    let port = stream.local_addr().map_or(0, |a| a.port());
    let _ = stream.set_nodelay(true);
    if stream.set_read_timeout(Some(POLL)).is_err() || stream.set_write_timeout(Some(WRITE_TIMEOUT)).is_err()
    {
        return;
    }
    let mut conn = Conn {
        stream,
        received: Vec::with_capacity(READ_CHUNK),
        shared,
        port,
    };
    loop {
        match conn.next_request() {
            Next::Request(request) => {
                if !answer::respond(&mut conn, &request) {
                    conn.close();
                    return;
                }
            }
            Next::Closed => return,
            Next::Bad(status, reason) => {
                answer::refuse(&mut conn, status, &reason);
                conn.close();
                return;
            }
        }
    }
}

impl Conn<'_> {
    /// Writes one whole answer; false when the client is gone.
    pub(crate) fn send(&mut self, bytes: &[u8]) -> bool {
        self.stream
            .write_all(bytes)
            .and_then(|()| self.stream.flush())
            .is_ok()
    }

    /// Closes after the last answer: write side first, then whatever the client still
    /// sends is read and dropped for a moment.
    fn close(mut self) {
        if self.stream.shutdown(Shutdown::Write).is_err() {
            return;
        }
        let deadline = Instant::now() + LINGER;
        let mut sink = [0u8; READ_CHUNK];
        while Instant::now() < deadline {
            match self.stream.read(&mut sink) {
                Ok(0) => return,
                Ok(_) => {}
                Err(e) if is_quiet(&e) => {}
                Err(_) => return,
            }
        }
    }

    fn next_request(&mut self) -> Next {
        let mut last_byte = Instant::now();
        loop {
            if !self.received.is_empty() {
                match parse_head(&self.received) {
                    Head::Complete(_, _, len) if len > MAX_HEAD => {
                        return Next::Bad(431, format!("request head over {MAX_HEAD} bytes"));
                    }
                    Head::Complete(request, framing, len) => {
                        self.received.drain(..len);
                        return self.read_body(request, framing);
                    }
                    Head::Partial if self.received.len() > MAX_HEAD => {
                        return Next::Bad(431, format!("request head over {MAX_HEAD} bytes"));
                    }
                    Head::Partial => {}
                    Head::Invalid(status, reason) => return Next::Bad(status, reason),
                }
            }
            match self.read_some() {
                Ok(()) => last_byte = Instant::now(),
                Err(ReadError::Quiet) => {
                    let closing = self.shared.closing.load(Ordering::SeqCst);
                    if (closing && self.received.is_empty())
                        || last_byte.elapsed() >= self.shared.idle_timeout
                    {
                        return Next::Closed;
                    }
                }
                Err(ReadError::Gone) => return Next::Closed,
            }
        }
    }

    fn read_body(&mut self, mut request: Request, framing: Framing) -> Next {
        let read = match framing {
            Framing::Length(n) => self.discard(n).map(|()| n),
            Framing::Chunked => self.discard_chunked(),
        };
        match read {
            Ok(len) => {
                request.body_len = len;
                Next::Request(request)
            }
            Err(BodyError::Gone) => Next::Closed,
            Err(BodyError::Bad(reason)) => Next::Bad(400, reason),
        }
    }

    /// Reads and drops `n` body bytes.
    fn discard(&mut self, mut n: u64) -> Result<(), BodyError> {
        loop {
            let have = u64::try_from(self.received.len()).unwrap_or(u64::MAX);
            let take = have.min(n);
            let take_usize = usize::try_from(take).unwrap_or(self.received.len());
            self.received.drain(..take_usize);
            n -= take;
            if n == 0 {
                return Ok(());
            }
            self.read_body_bytes()?;
        }
    }

    /// Reads and drops a chunked body (and its trailers); returns the data length.
    fn discard_chunked(&mut self) -> Result<u64, BodyError> {
        let mut total = 0u64;
        loop {
            let line = self.read_line()?;
            let size = parse_chunk_size(&line)
                .ok_or_else(|| BodyError::Bad(format!("bad chunk size line {:?}", lossy(&line))))?;
            if size == 0 {
                // Trailer section: header lines up to an empty one.
                loop {
                    if self.read_line()?.is_empty() {
                        return Ok(total);
                    }
                }
            }
            self.discard(size)?;
            total = total.saturating_add(size);
            if !self.read_line()?.is_empty() {
                return Err(BodyError::Bad("chunk data longer than its size".to_owned()));
            }
        }
    }

    /// One CRLF-terminated line of a chunked body, without the CRLF.
    fn read_line(&mut self) -> Result<Vec<u8>, BodyError> {
        loop {
            if let Some(end) = self.received.windows(2).position(|w| w == b"\r\n") {
                let line = self.received[..end].to_vec();
                self.received.drain(..end + 2);
                return Ok(line);
            }
            if self.received.len() > MAX_LINE {
                return Err(BodyError::Bad(format!("chunked body line over {MAX_LINE} bytes")));
            }
            self.read_body_bytes()?;
        }
    }

    /// Reads more of a body: a body that stalls past the idle timeout ends the connection.
    fn read_body_bytes(&mut self) -> Result<(), BodyError> {
        let start = Instant::now();
        loop {
            match self.read_some() {
                Ok(()) => return Ok(()),
                Err(ReadError::Quiet) if start.elapsed() < self.shared.idle_timeout => {}
                Err(_) => return Err(BodyError::Gone),
            }
        }
    }

    /// One read into `received`.
    fn read_some(&mut self) -> Result<(), ReadError> {
        let mut chunk = [0u8; READ_CHUNK];
        match self.stream.read(&mut chunk) {
            Ok(0) => Err(ReadError::Gone),
            Ok(n) => {
                self.received.extend_from_slice(&chunk[..n]);
                Ok(())
            }
            Err(e) if is_quiet(&e) => Err(ReadError::Quiet),
            Err(_) => Err(ReadError::Gone),
        }
    }
}

/// Why a body could not be read.
#[derive(Debug)]
enum BodyError {
    Gone,
    Bad(String),
}

fn is_quiet(e: &io::Error) -> bool {
    matches!(
        e.kind(),
        io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut | io::ErrorKind::Interrupted
    )
}

fn lossy(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

/// What the bytes received so far hold.
#[derive(Debug)]
enum Head {
    /// A whole head, its body framing and its length in bytes.
    Complete(Request, Framing, usize),
    Partial,
    Invalid(u16, String),
}

fn parse_head(bytes: &[u8]) -> Head {
    let mut headers = [httparse::EMPTY_HEADER; MAX_HEADERS];
    let mut parsed = httparse::Request::new(&mut headers);
    let len = match parsed.parse(bytes) {
        Ok(httparse::Status::Complete(len)) => len,
        Ok(httparse::Status::Partial) => return Head::Partial,
        Err(httparse::Error::TooManyHeaders) => {
            return Head::Invalid(431, format!("more than {MAX_HEADERS} header lines"));
        }
        Err(e) => return Head::Invalid(400, format!("malformed request head: {e}")),
    };
    let (Some(method), Some(target), Some(minor_version)) = (parsed.method, parsed.path, parsed.version)
    else {
        return Head::Invalid(400, "incomplete request line".to_owned());
    };
    let request = Request {
        method: method.to_owned(),
        target: target.to_owned(),
        minor_version,
        headers: parsed
            .headers
            .iter()
            .map(|h| (h.name.to_owned(), lossy(h.value)))
            .collect(),
        body_len: 0,
    };
    match framing(&request) {
        Ok(framing) => Head::Complete(request, framing, len),
        Err(reason) => Head::Invalid(400, reason),
    }
}

/// The body framing a request declares (RFC 9112 section 6), refusing the ambiguous ones.
fn framing(request: &Request) -> Result<Framing, String> {
    let values = |name: &str| -> Vec<&str> {
        request
            .headers
            .iter()
            .filter(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
            .collect()
    };
    let transfer_encoding = values("transfer-encoding");
    let content_length = values("content-length");
    if !transfer_encoding.is_empty() {
        if !content_length.is_empty() {
            return Err("both Content-Length and Transfer-Encoding".to_owned());
        }
        let last = transfer_encoding
            .last()
            .and_then(|v| v.rsplit(',').next())
            .map(str::trim)
            .unwrap_or_default();
        return if last.eq_ignore_ascii_case("chunked") {
            Ok(Framing::Chunked)
        } else {
            Err(format!("transfer coding {last:?} does not end with chunked"))
        };
    }
    let mut length = None;
    for item in content_length.iter().flat_map(|v| v.split(',')).map(str::trim) {
        let n = parse_length(item).ok_or_else(|| format!("bad Content-Length {item:?}"))?;
        if length.is_some_and(|l| l != n) {
            return Err("several different Content-Length values".to_owned());
        }
        length = Some(n);
    }
    Ok(Framing::Length(length.unwrap_or(0)))
}

/// A Content-Length value: 1 to 19 decimal digits.
fn parse_length(s: &str) -> Option<u64> {
    if s.is_empty() || s.len() > 19 || !s.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    s.parse().ok()
}

/// The size on a chunk-size line (extensions after `;` ignored).
fn parse_chunk_size(line: &[u8]) -> Option<u64> {
    let text = std::str::from_utf8(line).ok()?;
    let size = text.split(';').next()?.trim_end_matches([' ', '\t']);
    if size.is_empty() || size.len() > MAX_CHUNK_SIZE_DIGITS || !size.bytes().all(|b| b.is_ascii_hexdigit()) {
        return None;
    }
    u64::from_str_radix(size, 16).ok()
}
