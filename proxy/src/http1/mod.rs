//! hostalb's own HTTP/1.x codec for the data plane.
//!
//! Why not hyper's h1 server here: hyper normalises away exactly the evidence ALB's desync
//! mitigation needs (it drops a `Content-Length` that arrives with `Transfer-Encoding` and
//! silently merges duplicate `Content-Length` fields, on requests and on responses), and it
//! answers parse errors itself with fixed codes, so 414/431/501/505/408 at ALB's limits and
//! ALB's desync classes ([`desync`]: forward, forward then close, or 400, by listener mode)
//! cannot be had from it. This codec parses compliant heads with `httparse` (SIMD, no
//! allocation) and the rest tolerantly ([`tolerant`]), keeps header fields as spans into
//! the head bytes (forwarding re-serialises them without copying each one into a map, with
//! one framing field of hostalb's own), and decodes bodies strictly. hyper still serves the
//! admin API.

pub(crate) mod chunked;
pub(crate) mod desync;
pub(crate) mod fields;
pub(crate) mod request;
pub(crate) mod response;
pub(crate) mod tolerant;

pub(crate) use fields::FieldKind;

/// The HTTP/1 minor version of a message.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Version {
    Http10,
    Http11,
}

/// How a message body is delimited.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum BodyKind {
    /// No body at all.
    Empty,
    /// Exactly this many bytes.
    Length(u64),
    /// `Transfer-Encoding: chunked`.
    Chunked,
    /// Until the connection closes (responses only).
    UntilClose,
}

impl BodyKind {
    pub(crate) fn is_empty(self) -> bool {
        matches!(self, BodyKind::Empty | BodyKind::Length(0))
    }
}

/// ALB: the request line may be 16 K.
pub(crate) const MAX_REQUEST_LINE: usize = 16 * 1024;
/// ALB: one header line may be 16 K.
pub(crate) const MAX_HEADER_LINE: usize = 16 * 1024;
/// ALB: all request headers together may be 64 K.
pub(crate) const MAX_REQUEST_HEAD: usize = 64 * 1024;
/// ALB: response headers may be 32 K.
pub(crate) const MAX_RESPONSE_HEAD: usize = 32 * 1024;
/// Header fields per request. 100 is hyper's and httparse's customary bound; ALB gives no
/// count, and 100 fields fit ALB's byte limits comfortably.
pub(crate) const MAX_REQUEST_FIELDS: usize = 100;
/// Header fields per response: targets set many cookies, so more room than requests.
pub(crate) const MAX_RESPONSE_FIELDS: usize = 256;

/// Whether `b` may appear in a token (RFC 9110 `tchar`).
#[inline]
pub(crate) fn is_tchar(b: u8) -> bool {
    matches!(b,
        b'a'..=b'z' | b'A'..=b'Z' | b'0'..=b'9'
        | b'!' | b'#' | b'$' | b'%' | b'&' | b'\'' | b'*' | b'+' | b'-' | b'.' | b'^' | b'_' | b'`' | b'|' | b'~')
}

/// Parses a `Content-Length` value strictly: 1*DIGIT (leading zeros are decimal), no sign,
/// no list, no overflow.
pub(crate) fn parse_content_length(value: &[u8]) -> Option<u64> {
    if value.is_empty() || !value.iter().all(u8::is_ascii_digit) {
        return None;
    }
    value
        .iter()
        .try_fold(0u64, |n, b| n.checked_mul(10)?.checked_add(u64::from(b - b'0')))
}

/// Returns the position of a `\n` not preceded by `\r` (a bare LF line ending), if any.
pub(crate) fn find_bare_lf(head: &[u8]) -> Option<usize> {
    memchr::memchr_iter(b'\n', head).find(|&i| i == 0 || head[i - 1] != b'\r')
}

/// Iterates the comma-separated elements of a list-valued field, trimmed of OWS.
pub(crate) fn list_elements(value: &[u8]) -> impl Iterator<Item = &[u8]> {
    value.split(|b| *b == b',').map(trim_ows)
}

pub(crate) fn trim_ows(mut v: &[u8]) -> &[u8] {
    while let [b' ' | b'\t', rest @ ..] = v {
        v = rest;
    }
    while let [rest @ .., b' ' | b'\t'] = v {
        v = rest;
    }
    v
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn content_length_is_strict_digits() {
        assert_eq!(parse_content_length(b"0"), Some(0));
        assert_eq!(parse_content_length(b"010"), Some(10));
        assert_eq!(parse_content_length(b"18446744073709551615"), Some(u64::MAX));
        assert_eq!(parse_content_length(b"000000000000000000000042"), Some(42));
        for bad in [
            &b""[..],
            b"+1",
            b"-48",
            b"0x10",
            b"1abc",
            b"1_0",
            b"1 0",
            b"1000,1000",
            b"18446744073709551616",
            b"99999999999999999999999",
        ] {
            assert_eq!(
                parse_content_length(bad),
                None,
                "{:?}",
                String::from_utf8_lossy(bad)
            );
        }
    }

    #[test]
    fn bare_lf_is_found() {
        assert_eq!(find_bare_lf(b"GET / HTTP/1.1\r\nA: b\r\n\r\n"), None);
        assert_eq!(find_bare_lf(b"GET / HTTP/1.1\nA: b\r\n\r\n"), Some(14));
        assert_eq!(find_bare_lf(b"\n"), Some(0));
    }

    #[test]
    fn list_elements_trim() {
        let v: Vec<&[u8]> = list_elements(b" gzip ,\tchunked").collect();
        assert_eq!(v, vec![&b"gzip"[..], b"chunked"]);
    }
}
