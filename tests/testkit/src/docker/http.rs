//! Plain blocking HTTP/1.1 requests to a container, and the test backend's JSON answer.

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::thread;
use std::time::{Duration, Instant};

use serde::Deserialize;

use crate::patience::scaled;
use crate::response::{Parse, ParsedResponse, header_in, parse_one};

/// Bound on one request of [`wait_http`]: a container that takes longer is not ready.
const PROBE_TIMEOUT: Duration = Duration::from_secs(1);

/// First pause between two probes of [`wait_http`]; it doubles up to [`MAX_PAUSE`].
const FIRST_PAUSE: Duration = Duration::from_millis(5);

/// Longest pause between two probes.
const MAX_PAUSE: Duration = Duration::from_millis(100);

/// Bytes read at a time.
const READ_CHUNK: usize = 16 * 1024;

/// The JSON body of the test backend's answers (`hostalb-testbackend`, the program in
/// [`crate::docker::TEST_IMAGE`]).
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
pub struct ContainerReply {
    /// `BACKEND_NAME`, else the container's hostname.
    pub backend: String,
    /// The container's hostname (its short id unless `--hostname` said otherwise).
    pub hostname: String,
    /// The container port the request reached.
    pub port: u16,
    /// Request method.
    pub method: String,
    /// The raw request target, query included.
    pub target: String,
    /// `"HTTP/1.0"` or `"HTTP/1.1"`.
    pub version: String,
    /// Every header line received, in order, names as on the wire.
    pub headers: Vec<(String, String)>,
    /// Length of the request body received.
    pub body_len: u64,
    /// What `/health` answers now.
    pub health: u16,
    /// Why the request was refused (400, 405, 431), when it was.
    #[serde(default)]
    pub error: Option<String>,
}

impl ContainerReply {
    /// Parses a body as the test backend's answer.
    pub fn from_body(body: &[u8]) -> Option<ContainerReply> {
        serde_json::from_slice(body).ok()
    }

    /// The first value of header `name` the backend received (case-insensitive).
    pub fn header(&self, name: &str) -> Option<&str> {
        header_in(&self.headers, name)
    }
}

/// Sends `GET path` (with `Connection: close`) to `addr` and reads one response, all
/// within `timeout`. Blocking; any failure (refused, reset, closed without a response,
/// timeout) is an `Err` with the reason.
pub fn http_get(addr: SocketAddr, path: &str, timeout: Duration) -> Result<ParsedResponse, String> {
    http_request(addr, "GET", path, timeout)
}

/// Like [`http_get`] with any method (no body is sent).
pub fn http_request(
    addr: SocketAddr,
    method: &str,
    path: &str,
    timeout: Duration,
) -> Result<ParsedResponse, String> {
    let deadline = Instant::now() + timeout;
    let mut stream =
        TcpStream::connect_timeout(&addr, timeout).map_err(|e| format!("connect to {addr}: {e}"))?;
    let left = |deadline: Instant| {
        deadline
            .saturating_duration_since(Instant::now())
            .max(Duration::from_millis(1))
    };
    stream
        .set_write_timeout(Some(left(deadline)))
        .map_err(|e| format!("{addr}: {e}"))?;
    let request =
        format!("{method} {path} HTTP/1.1\r\nHost: {addr}\r\nContent-Length: 0\r\nConnection: close\r\n\r\n");
    stream
        .write_all(request.as_bytes())
        .map_err(|e| format!("send to {addr}: {e}"))?;
    let mut received = Vec::new();
    let mut chunk = [0u8; READ_CHUNK];
    loop {
        if Instant::now() >= deadline {
            return Err(format!(
                "no whole response from {addr} within {timeout:?} ({} bytes)",
                received.len()
            ));
        }
        stream
            .set_read_timeout(Some(left(deadline)))
            .map_err(|e| format!("{addr}: {e}"))?;
        let eof = match stream.read(&mut chunk) {
            Ok(0) => true,
            Ok(n) => {
                received.extend_from_slice(&chunk[..n]);
                false
            }
            Err(e)
                if matches!(
                    e.kind(),
                    std::io::ErrorKind::WouldBlock
                        | std::io::ErrorKind::TimedOut
                        | std::io::ErrorKind::Interrupted
                ) =>
            {
                continue;
            }
            Err(e) => return Err(format!("read from {addr}: {e} ({} bytes)", received.len())),
        };
        if eof && received.is_empty() {
            return Err(format!("{addr} closed the connection without a response"));
        }
        match parse_one(&received, eof) {
            Parse::Done(response, _) if response.complete => return Ok(response),
            Parse::Done(_, _) => {
                return Err(format!("{addr} closed in the middle of a response"));
            }
            Parse::NeedMore if eof => {
                return Err(format!(
                    "{addr} closed the connection after {} bytes, without a response",
                    received.len()
                ));
            }
            Parse::NeedMore => {}
            Parse::Invalid => {
                return Err(format!(
                    "{addr} sent something that is not an HTTP response: {:?}",
                    String::from_utf8_lossy(&received)
                ));
            }
        }
    }
}

/// Waits until `GET path` on `addr` gets any HTTP response, for at most `patience`
/// (scaled by the patience factor); returns how long it took, or the last failure.
///
/// A connection that is accepted is not enough: Docker's port proxy accepts on the host
/// port before the program in the container listens, then closes.
pub fn wait_http(addr: SocketAddr, path: &str, patience: Duration) -> Result<Duration, String> {
    let waited = scaled(patience);
    let start = Instant::now();
    let deadline = start + waited;
    let mut pause = FIRST_PAUSE;
    // Bounded by the deadline; the count is a second guard against a clock that does not move.
    let max_probes = 2 + waited.as_millis() / FIRST_PAUSE.as_millis();
    let mut last = String::from("never probed");
    let mut probes = 0u128;
    while probes < max_probes {
        probes += 1;
        let left = deadline.saturating_duration_since(Instant::now());
        match http_get(addr, path, PROBE_TIMEOUT.min(left).max(FIRST_PAUSE)) {
            Ok(_) => return Ok(start.elapsed()),
            Err(e) => last = e,
        }
        let now = Instant::now();
        if now >= deadline {
            break;
        }
        thread::sleep(pause.min(deadline - now));
        pause = (pause * 2).min(MAX_PAUSE);
    }
    Err(format!(
        "{addr}{path} gave no HTTP response within {waited:?} ({probes} probes); last: {last}"
    ))
}
