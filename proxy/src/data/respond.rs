//! Answers hostalb makes itself: ALB's error pages, fixed responses and redirects.
//!
//! ALB marks its own answers with `Server: awselb/2.0` (listener attribute
//! `routing.http.response.server.enabled`); hostalb does the same by default so that
//! client code which tells load-balancer errors from application errors by that header
//! behaves the same locally.

use bytes::{BufMut, BytesMut};

use crate::clock;
use crate::http1::Version;

pub(crate) const SERVER: &[u8] = b"awselb/2.0";

/// One response hostalb writes itself.
#[derive(Debug)]
pub(crate) struct Own<'a> {
    pub(crate) status: u16,
    pub(crate) content_type: Option<&'a [u8]>,
    pub(crate) body: &'a [u8],
    /// The connection closes after this response.
    pub(crate) close: bool,
    pub(crate) server_header: bool,
    /// Extra fields, e.g. `Location`.
    pub(crate) extra: &'a [(&'a [u8], &'a [u8])],
}

/// The reason phrase for a status, including ALB's non-standard codes.
pub(crate) fn reason_phrase(status: u16) -> &'static str {
    match status {
        460 => "Client Closed Request",
        463 => "Too Many X-Forwarded-For Addresses",
        464 => "Incompatible Protocol",
        507 => "Redirect URL Too Long",
        _ => http::StatusCode::from_u16(status)
            .ok()
            .and_then(|s| s.canonical_reason())
            .unwrap_or(""),
    }
}

/// Writes `r` as a complete response. For a HEAD request the body is left out but its
/// length is still announced.
pub(crate) fn write_own(out: &mut BytesMut, r: &Own<'_>, client: Version, head_request: bool) {
    out.put_slice(b"HTTP/1.1 ");
    put_status(out, r.status);
    out.put_u8(b' ');
    out.put_slice(reason_phrase(r.status).as_bytes());
    out.put_slice(b"\r\n");
    if r.server_header {
        out.put_slice(b"Server: ");
        out.put_slice(SERVER);
        out.put_slice(b"\r\n");
    }
    out.put_slice(b"Date: ");
    clock::with_http_date(|d| out.put_slice(d));
    out.put_slice(b"\r\n");
    if let Some(ct) = r.content_type {
        out.put_slice(b"Content-Type: ");
        out.put_slice(ct);
        out.put_slice(b"\r\n");
    }
    out.put_slice(b"Content-Length: ");
    put_decimal(out, r.body.len() as u64);
    out.put_slice(b"\r\n");
    for (name, value) in r.extra {
        out.put_slice(name);
        out.put_slice(b": ");
        out.put_slice(value);
        out.put_slice(b"\r\n");
    }
    if r.close {
        out.put_slice(b"Connection: close\r\n");
    } else if client == Version::Http10 {
        out.put_slice(b"Connection: keep-alive\r\n");
    }
    out.put_slice(b"\r\n");
    if !head_request {
        out.put_slice(r.body);
    }
}

/// ALB's error page for `status`.
pub(crate) fn elb_error_body(status: u16) -> Vec<u8> {
    let title = format!("{status} {}", reason_phrase(status));
    format!(
        "<html>\r\n<head><title>{title}</title></head>\r\n<body>\r\n<center><h1>{title}</h1></center>\r\n</body>\r\n</html>\r\n"
    )
    .into_bytes()
}

pub(crate) fn put_status(out: &mut BytesMut, status: u16) {
    let s = status.min(999);
    out.put_slice(&[
        b'0' + (s / 100) as u8,
        b'0' + (s / 10 % 10) as u8,
        b'0' + (s % 10) as u8,
    ]);
}

pub(crate) fn put_decimal(out: &mut BytesMut, mut n: u64) {
    let mut digits = [0u8; 20];
    let mut i = digits.len();
    loop {
        i -= 1;
        digits[i] = b'0' + (n % 10) as u8;
        n /= 10;
        if n == 0 {
            break;
        }
    }
    out.put_slice(&digits[i..]);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn own_response_is_well_formed() {
        let mut out = BytesMut::new();
        write_own(
            &mut out,
            &Own {
                status: 404,
                content_type: Some(b"text/plain"),
                body: b"nope",
                close: false,
                server_header: true,
                extra: &[(b"X-A", b"1")],
            },
            Version::Http11,
            false,
        );
        let text = String::from_utf8(out.to_vec()).unwrap_or_default();
        assert!(text.starts_with("HTTP/1.1 404 Not Found\r\nServer: awselb/2.0\r\nDate: "));
        assert!(text.contains("\r\nContent-Type: text/plain\r\nContent-Length: 4\r\nX-A: 1\r\n\r\nnope"));
    }

    #[test]
    fn head_request_gets_no_body_and_errors_have_pages() {
        let mut out = BytesMut::new();
        let body = elb_error_body(502);
        let own = Own {
            status: 502,
            content_type: Some(b"text/html"),
            body: &body,
            close: true,
            server_header: false,
            extra: &[],
        };
        write_own(&mut out, &own, Version::Http11, true);
        let text = String::from_utf8(out.to_vec()).unwrap_or_default();
        assert!(text.starts_with("HTTP/1.1 502 Bad Gateway\r\n"));
        assert!(text.contains("Connection: close\r\n"));
        assert!(text.ends_with("\r\n\r\n"));
        assert!(!text.contains("Server:"));
        assert!(String::from_utf8_lossy(&elb_error_body(503)).contains("<h1>503 Service Unavailable</h1>"));
    }

    #[test]
    fn decimals() {
        let mut out = BytesMut::new();
        put_decimal(&mut out, 0);
        put_decimal(&mut out, 1234567890);
        assert_eq!(&out[..], b"01234567890");
    }
}
