//! What the backend answers.
//!
//! Every answer has header `x-backend: <name>` and, unless the status forbids a body
//! (204, 304) or the method is HEAD, a JSON body:
//! `{"backend", "hostname", "port", "method", "target", "version", "headers", "body_len",
//! "health"}` where `port` is the local port the request reached and `headers` lists every
//! header line received as `[name, value]`, in order.
//!
//! | path (after any prefix) | answer |
//! |---|---|
//! | `/health` | the current health status (initially `HEALTH_STATUS`, default 200) |
//! | `POST` or `PUT` `/admin/health/{code}` | sets that health status, answers 200 |
//! | `/delay/{ms}` | waits `ms` milliseconds (at most [`MAX_DELAY`]), then 200 |
//! | `/status/{code}` | status `code` |
//! | anything else | 200 |
//!
//! Codes must be in 200..=999 and delays a number; otherwise the answer is 400 with an
//! `"error"` field. A connection is kept open unless the client asked to close it
//! (`Connection: close`, or HTTP/1.0 without `keep-alive`) or the backend is stopping.

use std::sync::atomic::Ordering;
use std::thread;
use std::time::Duration;

use serde::Serialize;

use crate::conn::{Conn, Request};

/// Longest `/delay/{ms}` honoured: a typo must not park a connection for hours.
const MAX_DELAY: Duration = Duration::from_secs(600);

/// The JSON body of every answer.
#[derive(Debug, Serialize)]
struct Reply<'a> {
    backend: &'a str,
    hostname: &'a str,
    port: u16,
    method: &'a str,
    target: &'a str,
    version: &'a str,
    headers: &'a [(String, String)],
    body_len: u64,
    health: u16,
    #[serde(skip_serializing_if = "Option::is_none")]
    error: Option<&'a str>,
}

/// What a request asks for.
#[derive(Debug, PartialEq, Eq)]
enum Route {
    Health,
    SetHealth(u16),
    Delay(Duration),
    Status(u16),
    Default,
    /// A bad parameter or method: 400 or 405 with the reason.
    Refused(u16, String),
}

/// A status code a test may ask for.
pub(crate) fn parse_status(s: &str) -> Option<u16> {
    s.parse::<u16>().ok().filter(|c| (200..=999).contains(c))
}

fn route(method: &str, target: &str) -> Route {
    let path = target.split(['?', '#']).next().unwrap_or_default();
    let segments: Vec<&str> = path.split('/').collect();
    match segments.as_slice() {
        [.., "admin", "health", code] => {
            if method != "POST" && method != "PUT" {
                return Route::Refused(405, format!("{method} cannot set the health status"));
            }
            match parse_status(code) {
                Some(c) => Route::SetHealth(c),
                None => Route::Refused(400, format!("health status {code:?} is not in 200..=999")),
            }
        }
        [.., "health"] => Route::Health,
        [.., "delay", ms] => match ms.parse::<u64>() {
            Ok(ms) => Route::Delay(Duration::from_millis(ms).min(MAX_DELAY)),
            Err(_) => Route::Refused(400, format!("delay {ms:?} is not a number of milliseconds")),
        },
        [.., "status", code] => match parse_status(code) {
            Some(c) => Route::Status(c),
            None => Route::Refused(400, format!("status {code:?} is not in 200..=999")),
        },
        _ => Route::Default,
    }
}

/// Answers `request`; returns whether the connection stays open.
pub(crate) fn respond(conn: &mut Conn<'_>, request: &Request) -> bool {
    let shared = conn.shared;
    let (status, error) = match route(&request.method, &request.target) {
        Route::Health => (shared.health.load(Ordering::SeqCst), None),
        Route::SetHealth(code) => {
            shared.health.store(code, Ordering::SeqCst);
            (200, None)
        }
        Route::Delay(d) => {
            thread::sleep(d);
            (200, None)
        }
        Route::Status(code) => (code, None),
        Route::Default => (200, None),
        Route::Refused(code, reason) => (code, Some(reason)),
    };
    let keep_alive = if request.minor_version == 0 {
        request.has_token("connection", "keep-alive")
    } else {
        !request.has_token("connection", "close")
    };
    // Read after the work is done: a request that was in flight when the stop signal came
    // is answered with `Connection: close`.
    let keep_alive = keep_alive && !shared.stopping.load(Ordering::SeqCst);
    let version = if request.minor_version == 0 {
        "HTTP/1.0"
    } else {
        "HTTP/1.1"
    };
    let reply = Reply {
        backend: &shared.name,
        hostname: &shared.hostname,
        port: conn.port,
        method: &request.method,
        target: &request.target,
        version,
        headers: &request.headers,
        body_len: request.body_len,
        health: shared.health.load(Ordering::SeqCst),
        error: error.as_deref(),
    };
    let answer = render(
        status,
        &shared.name,
        &reply,
        request.method == "HEAD",
        ConnectionHeader::choose(keep_alive, request.minor_version),
    );
    conn.send(&answer) && keep_alive
}

/// Answers a request that could not be read, then the connection is closed.
pub(crate) fn refuse(conn: &mut Conn<'_>, status: u16, reason: &str) {
    let shared = conn.shared;
    let reply = Reply {
        backend: &shared.name,
        hostname: &shared.hostname,
        port: conn.port,
        method: "",
        target: "",
        version: "",
        headers: &[],
        body_len: 0,
        health: shared.health.load(Ordering::SeqCst),
        error: Some(reason),
    };
    let answer = render(status, &shared.name, &reply, false, ConnectionHeader::Close);
    conn.send(&answer);
}

/// The `Connection` header an answer carries.
#[derive(Debug, Clone, Copy)]
enum ConnectionHeader {
    /// HTTP/1.1 keep-alive: no header needed.
    Default,
    /// HTTP/1.0 keep-alive: `Connection: keep-alive`.
    KeepAlive,
    Close,
}

impl ConnectionHeader {
    fn choose(keep_alive: bool, minor_version: u8) -> ConnectionHeader {
        match (keep_alive, minor_version) {
            (false, _) => ConnectionHeader::Close,
            (true, 0) => ConnectionHeader::KeepAlive,
            (true, _) => ConnectionHeader::Default,
        }
    }
}

fn render(status: u16, name: &str, reply: &Reply<'_>, head_only: bool, keep: ConnectionHeader) -> Vec<u8> {
    let body = serde_json::to_vec(reply).unwrap_or_else(|_| b"{}".to_vec());
    let bodiless = status == 204 || status == 304;
    let mut out = format!("HTTP/1.1 {status} {}\r\nx-backend: {name}\r\n", reason(status));
    if !bodiless {
        out.push_str("content-type: application/json\r\n");
        out.push_str(&format!("content-length: {}\r\n", body.len()));
    }
    match keep {
        ConnectionHeader::Default => {}
        ConnectionHeader::KeepAlive => out.push_str("connection: keep-alive\r\n"),
        ConnectionHeader::Close => out.push_str("connection: close\r\n"),
    }
    out.push_str("\r\n");
    let mut out = out.into_bytes();
    if !bodiless && !head_only {
        out.extend_from_slice(&body);
    }
    out
}

fn reason(status: u16) -> &'static str {
    match status {
        200 => "OK",
        201 => "Created",
        202 => "Accepted",
        204 => "No Content",
        301 => "Moved Permanently",
        302 => "Found",
        304 => "Not Modified",
        400 => "Bad Request",
        401 => "Unauthorized",
        403 => "Forbidden",
        404 => "Not Found",
        405 => "Method Not Allowed",
        408 => "Request Timeout",
        429 => "Too Many Requests",
        431 => "Request Header Fields Too Large",
        500 => "Internal Server Error",
        501 => "Not Implemented",
        502 => "Bad Gateway",
        503 => "Service Unavailable",
        504 => "Gateway Timeout",
        _ => "Status",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn routes_follow_any_prefix() {
        assert_eq!(route("GET", "/health"), Route::Health);
        assert_eq!(route("GET", "/api/health?x=1"), Route::Health);
        assert_eq!(route("POST", "/admin/health/503"), Route::SetHealth(503));
        assert_eq!(route("PUT", "/x/admin/health/200"), Route::SetHealth(200));
        assert!(matches!(
            route("GET", "/admin/health/503"),
            Route::Refused(405, _)
        ));
        assert!(matches!(
            route("POST", "/admin/health/99"),
            Route::Refused(400, _)
        ));
        assert_eq!(route("GET", "/delay/25"), Route::Delay(Duration::from_millis(25)));
        assert_eq!(route("GET", "/delay/99999999999"), Route::Delay(MAX_DELAY));
        assert!(matches!(route("GET", "/delay/-1"), Route::Refused(400, _)));
        assert_eq!(route("GET", "/api/status/418"), Route::Status(418));
        assert!(matches!(route("GET", "/status/1000"), Route::Refused(400, _)));
        assert!(matches!(route("GET", "/status/"), Route::Refused(400, _)));
        assert_eq!(route("GET", "/"), Route::Default);
        assert_eq!(route("GET", "*"), Route::Default);
        assert_eq!(route("GET", "/healthz"), Route::Default);
    }
}
