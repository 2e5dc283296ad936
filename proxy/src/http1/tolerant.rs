//! The tolerant reading of a request head that httparse refused.
//!
//! httparse reads compliant heads only, but ALB forwards much that is not compliant (a
//! space in the target, HTTP/1.2, a field name with a trailing space, a control character
//! in a value, ...) and classifies the rest. So when httparse refuses a head, this reads it
//! line by line, notes what desync mitigation needs to know about the request line and the
//! header lines, and rewrites the head into a clean buffer that the rest of hostalb reads
//! like any other: the request line re-serialised (target with SP and control characters
//! percent-encoded, version HTTP/1.1 or HTTP/1.0), each field as `name: value`.
//!
//! What cannot be forwarded at all is marked as a refusal with its status: NUL or CR in
//! the request line, a bare LF line ending, an obs-fold continuation line or a header line
//! without a colon (400), HTTP/2 and later (505), or what is not a version (400). HTTP/0.9
//! (named, or a request line without a version) is read with HTTP/1.0's rules; a head is
//! still complete only at its empty line.
//! This path runs only for heads httparse refused, so it may allocate.

use bytes::{BufMut, Bytes, BytesMut};

use super::desync::{self, Reason};
use super::fields::{FieldKind, HeaderField, Span};
use super::request::HeadError;
use super::{MAX_HEADER_LINE, MAX_REQUEST_FIELDS, MAX_REQUEST_HEAD, MAX_REQUEST_LINE, Version, trim_ows};

/// What the request line and the header lines (not the fields) say, for the classifier.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub(crate) struct LineFindings {
    /// A malformed header line (bare LF, obs-fold, no colon): BadHeader.
    pub(crate) header: Option<Reason>,
    pub(crate) method: Option<Reason>,
    pub(crate) version: Option<Reason>,
    pub(crate) target: Option<Reason>,
}

/// A head read tolerantly. Spans point into `buf`, the rewritten head.
#[derive(Debug)]
pub(crate) struct Tolerant {
    /// How many bytes of the client's buffer the head took.
    pub(crate) len: usize,
    pub(crate) buf: Bytes,
    pub(crate) method: Span,
    pub(crate) target: Span,
    /// The HTTP semantics hostalb applies (HTTP/1.2 to 1.9 read as 1.1).
    pub(crate) version: Version,
    pub(crate) before_1_1: bool,
    pub(crate) before_1_0: bool,
    pub(crate) findings: LineFindings,
    /// Why the head cannot be forwarded in any mode.
    pub(crate) refusal: Option<HeadError>,
}

/// One line of the head: `start..end` without its line ending.
#[derive(Debug, Clone, Copy)]
struct Line {
    start: usize,
    end: usize,
    /// Ended by LF alone.
    bare_lf: bool,
}

/// How the version of the request line reads.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum VersionRead {
    Http10,
    Http11,
    /// HTTP/1.2 to HTTP/1.9: not compliant, harmless (NonCompliantVersion).
    Http1x,
    /// HTTP/0.9 (also a request line without a version): ALB takes it on the front end;
    /// hostalb reads it with HTTP/1.0's rules (NonCompliantVersion).
    Http09,
    /// HTTP/2 and later: not a version hostalb reads on an HTTP/1 connection.
    Later,
    /// Not an HTTP version at all (BadVersion).
    Bad,
}

fn read_version(v: &[u8]) -> VersionRead {
    let Some(rest) = v.strip_prefix(b"HTTP/") else {
        return VersionRead::Bad;
    };
    let (major, minor) = match rest {
        [major] => (*major, None),
        [major, b'.', minor] => (*major, Some(*minor)),
        _ => return VersionRead::Bad,
    };
    if !major.is_ascii_digit() || minor.is_some_and(|m| !m.is_ascii_digit()) {
        return VersionRead::Bad;
    }
    match (major, minor) {
        (b'1', Some(b'0')) => VersionRead::Http10,
        (b'1', Some(b'1')) => VersionRead::Http11,
        (b'1', Some(_)) => VersionRead::Http1x,
        (b'1', None) => VersionRead::Bad,
        (b'0', Some(b'9')) => VersionRead::Http09,
        (b'0', _) => VersionRead::Bad,
        _ => VersionRead::Later,
    }
}

const fn refuse(status: u16, reason: &'static str) -> Option<HeadError> {
    Some(HeadError::new(status, reason))
}

/// Reads the head at the front of `input`. `Ok(None)`: the head is not complete yet (the
/// caller applies the limits for partial heads). Fields go to `fields` (cleared first).
pub(crate) fn parse(input: &[u8], fields: &mut Vec<HeaderField>) -> Result<Option<Tolerant>, HeadError> {
    fields.clear();
    // Empty lines before the request line are skipped, as httparse does.
    let mut start = 0;
    loop {
        match &input[start..] {
            [b'\r', b'\n', ..] => start += 2,
            [b'\n', ..] => start += 1,
            _ => break,
        }
    }
    // Lines, up to the first empty one after the request line; nothing is kept (nor
    // allocated) while the head is incomplete, which is every call but the last.
    let lines = || {
        let mut line_start = start;
        memchr::memchr_iter(b'\n', &input[start..]).map(move |at| {
            let lf = start + at;
            let crlf = lf > line_start && input[lf - 1] == b'\r';
            let line = Line {
                start: line_start,
                end: if crlf { lf - 1 } else { lf },
                bare_lf: !crlf,
            };
            line_start = lf + 1;
            line
        })
    };
    let Some((count, last)) = lines().enumerate().find(|(i, l)| *i > 0 && l.start == l.end) else {
        return Ok(None);
    };
    let (len, last_bare_lf) = (last.end + if last.bare_lf { 1 } else { 2 }, last.bare_lf);
    let lines: Vec<Line> = lines().take(count).collect();
    let (request_line, header_lines) = lines.split_first().ok_or(HeadError::new(400, "BadUri"))?;
    if request_line.end - request_line.start > MAX_REQUEST_LINE {
        return Err(HeadError::new(414, "RequestLineTooLong"));
    }
    if len - request_line.end > MAX_REQUEST_HEAD {
        return Err(HeadError::new(431, "HeadersTooLarge"));
    }
    if header_lines.len() > MAX_REQUEST_FIELDS {
        return Err(HeadError::new(431, "TooManyHeaders"));
    }
    if header_lines.iter().any(|l| l.end - l.start > MAX_HEADER_LINE) {
        return Err(HeadError::new(431, "HeaderTooLarge"));
    }

    let mut out = BytesMut::with_capacity(len - start + 64);
    let mut findings = LineFindings::default();
    let mut refusal = None;

    // The request line: method SP target SP version, read from its first and last space.
    let line = &input[request_line.start..request_line.end];
    let (method, rest) = match memchr::memchr(b' ', line) {
        Some(sp) => (&line[..sp], &line[sp + 1..]),
        None => (line, &b""[..]),
    };
    findings.method = desync::method_finding(method);
    if method.is_empty() || method.iter().any(|b| desync::is_line_breaking(*b)) {
        refusal = refusal.or(refuse(400, "BadMethod"));
    }
    // Whitespace after the version, and extra spaces around the target, are tolerated
    // (NonCompliantVersion, SpaceInUri) as desync-guardian tolerates them.
    let trimmed = trim_trailing_ws(rest);
    let trailing_ws = trimmed.len() < rest.len();
    let (target, version) = match memchr::memrchr(b' ', trimmed) {
        Some(sp) => (&trimmed[..sp], Some(&trimmed[sp + 1..])),
        None => (trimmed, None),
    };
    let target_inner = trim_spaces(target);
    findings.target = desync::target_finding(target);
    if memchr::memchr(b' ', line).is_none() {
        refusal = refusal.or(refuse(
            400,
            if findings.method.is_some() {
                "BadMethod"
            } else {
                "BadUri"
            },
        ));
    }
    if findings.target == Some(Reason::BadUri) || request_line.bare_lf {
        findings.target = Some(Reason::BadUri);
        refusal = refusal.or(refuse(400, "BadUri"));
    }
    let read = version.map_or(VersionRead::Http09, read_version);
    findings.version = match read {
        VersionRead::Bad => Some(Reason::BadVersion),
        VersionRead::Http1x | VersionRead::Http09 => Some(Reason::NonCompliantVersion),
        _ if trailing_ws => Some(Reason::NonCompliantVersion),
        _ => None,
    };
    match read {
        VersionRead::Bad => refusal = refusal.or(refuse(400, "BadVersion")),
        VersionRead::Later => refusal = refusal.or(refuse(505, "UnsupportedVersion")),
        _ => {}
    }
    let version = match read {
        VersionRead::Http10 | VersionRead::Http09 => Version::Http10,
        _ => Version::Http11,
    };

    let method_span = put(&mut out, method);
    out.put_u8(b' ');
    let target_start = out.len();
    for &b in target_inner {
        if desync::target_byte(b).is_some() {
            out.put_u8(b'%');
            out.put_slice(&[hex(b >> 4), hex(b & 0xf)]);
        } else {
            out.put_u8(b);
        }
    }
    let target_span = Span::new(target_start, out.len());
    out.put_slice(match version {
        Version::Http10 => b" HTTP/1.0\r\n",
        Version::Http11 => b" HTTP/1.1\r\n",
    });

    // Header lines: `name ":" value`, value without surrounding whitespace.
    for l in header_lines {
        let text = &input[l.start..l.end];
        let malformed = l.bare_lf || matches!(text.first(), Some(b' ' | b'\t'));
        let Some(colon) = memchr::memchr(b':', text).filter(|_| !malformed) else {
            findings.header = Some(Reason::BadHeader);
            refusal = refusal.or(refuse(400, "BadHeader"));
            continue;
        };
        let name = put(&mut out, &text[..colon]);
        out.put_slice(b": ");
        let value = put(&mut out, trim_ows(&text[colon + 1..]));
        out.put_slice(b"\r\n");
        fields.push(HeaderField {
            name,
            value,
            kind: FieldKind::of(name.get(&out)),
            connection_listed: false,
        });
    }
    if last_bare_lf {
        findings.header = Some(Reason::BadHeader);
        refusal = refusal.or(refuse(400, "BadHeader"));
    }
    if request_line.bare_lf {
        // To a parser that ends lines at CRLF only, the request line goes on into the next
        // line: the LF is in the target (BadUri), and what follows it is no header line.
        findings.header = None;
    }
    out.put_slice(b"\r\n");

    Ok(Some(Tolerant {
        len,
        buf: out.freeze(),
        method: method_span,
        target: target_span,
        version,
        before_1_1: matches!(read, VersionRead::Http10 | VersionRead::Http09),
        before_1_0: read == VersionRead::Http09,
        findings,
        refusal,
    }))
}

/// Appends `bytes` and returns their span.
fn put(out: &mut BytesMut, bytes: &[u8]) -> Span {
    let start = out.len();
    out.put_slice(bytes);
    Span::new(start, out.len())
}

fn hex(n: u8) -> u8 {
    b"0123456789ABCDEF"[usize::from(n & 0xf)]
}

fn trim_trailing_ws(mut v: &[u8]) -> &[u8] {
    while let [rest @ .., b' ' | b'\t'] = v {
        v = rest;
    }
    v
}

fn trim_spaces(mut v: &[u8]) -> &[u8] {
    while let [b' ', rest @ ..] = v {
        v = rest;
    }
    while let [rest @ .., b' '] = v {
        v = rest;
    }
    v
}

#[cfg(test)]
mod tests {
    use super::*;

    fn read(text: &[u8]) -> (Tolerant, Vec<HeaderField>) {
        let mut fields = Vec::new();
        match parse(text, &mut fields) {
            Ok(Some(t)) => (t, fields),
            other => panic!("{:?}: {other:?}", String::from_utf8_lossy(text)),
        }
    }

    fn line(t: &Tolerant) -> String {
        let end = t.buf.windows(2).position(|w| w == b"\r\n").unwrap_or(t.buf.len());
        String::from_utf8_lossy(&t.buf[..end]).into_owned()
    }

    #[test]
    fn incomplete_heads_wait() {
        let mut fields = Vec::new();
        for text in [&b"GET /a b HTTP/1.1\r\nHost: a\r\n"[..], b"GET /a b", b""] {
            assert!(matches!(parse(text, &mut fields), Ok(None)), "{text:?}");
        }
    }

    #[test]
    fn space_in_the_target_is_encoded() {
        let (t, f) = read(b"GET /a b?q=c d HTTP/1.1\r\nHost: h\r\n\r\nBODY");
        assert_eq!(line(&t), "GET /a%20b?q=c%20d HTTP/1.1");
        assert_eq!(t.target.get(&t.buf), b"/a%20b?q=c%20d");
        assert_eq!(t.findings.target, Some(Reason::SpaceInUri));
        assert_eq!(t.refusal, None);
        assert_eq!(t.len, 36);
        assert_eq!(f.len(), 1);
        assert_eq!(f[0].kind, FieldKind::Host);
        assert_eq!(f[0].value.get(&t.buf), b"h");
    }

    #[test]
    fn controls_in_the_target_are_encoded_and_ambiguous() {
        let (t, _) = read(b"GET /endpoint_a\tx HTTP/1.1\r\nHost: h\r\n\r\n");
        assert_eq!(line(&t), "GET /endpoint_a%09x HTTP/1.1");
        assert_eq!(t.findings.target, Some(Reason::AmbiguousUri));
        let (t, _) = read(b"GET /a\x00b HTTP/1.1\r\nHost: h\r\n\r\n");
        assert_eq!(t.findings.target, Some(Reason::BadUri));
        assert_eq!(t.refusal, Some(HeadError::new(400, "BadUri")));
    }

    /// `(version text, finding, refusal status, semantics)`.
    type Case = (&'static [u8], Option<Reason>, Option<u16>, Version);

    #[test]
    fn versions() {
        let cases: &[Case] = &[
            (
                b"HTTP/1.2",
                Some(Reason::NonCompliantVersion),
                None,
                Version::Http11,
            ),
            (
                b"HTTP/1.9",
                Some(Reason::NonCompliantVersion),
                None,
                Version::Http11,
            ),
            (
                b"HTTP/1.1 ",
                Some(Reason::NonCompliantVersion),
                None,
                Version::Http11,
            ),
            (
                b"HTTP/1.0\t",
                Some(Reason::NonCompliantVersion),
                None,
                Version::Http10,
            ),
            (
                b"HTTP/0.9",
                Some(Reason::NonCompliantVersion),
                None,
                Version::Http10,
            ),
            (b"HTTP/0.1", Some(Reason::BadVersion), Some(400), Version::Http11),
            (b"HTTP/2.0", None, Some(505), Version::Http11),
            (b"HTTP/3", None, Some(505), Version::Http11),
            (b"HTTP/1.32", Some(Reason::BadVersion), Some(400), Version::Http11),
            (
                b"HTTP/4294967295.255",
                Some(Reason::BadVersion),
                Some(400),
                Version::Http11,
            ),
            (b"HTTP/1", Some(Reason::BadVersion), Some(400), Version::Http11),
            (b"FTP/1.1", Some(Reason::BadVersion), Some(400), Version::Http11),
            (b"http/1.1", Some(Reason::BadVersion), Some(400), Version::Http11),
        ];
        for (v, finding, status, version) in cases {
            let mut text = b"GET / ".to_vec();
            text.extend_from_slice(v);
            text.extend_from_slice(b"\r\nHost: h\r\n\r\n");
            let (t, _) = read(&text);
            let what = String::from_utf8_lossy(v);
            assert_eq!(t.findings.version, *finding, "{what}");
            assert_eq!(t.refusal.map(|r| r.status), *status, "{what}");
            assert_eq!(t.version, *version, "{what}");
        }
        let (t, _) = read(b"GET /\r\n\r\n");
        assert_eq!(t.findings.version, Some(Reason::NonCompliantVersion));
        assert_eq!((t.refusal, t.version), (None, Version::Http10));
        assert!(t.before_1_0 && t.before_1_1);
    }

    #[test]
    fn odd_field_names_are_kept_as_written() {
        let (t, f) = read(
            b"POST / HTTP/1.1\r\nHost: h\r\nTransfer-Encoding : chunked\r\nX\x01Y:\t v \r\n: empty\r\n\r\n",
        );
        let names: Vec<&[u8]> = f.iter().map(|f| f.name.get(&t.buf)).collect();
        assert_eq!(names, vec![&b"Host"[..], b"Transfer-Encoding ", b"X\x01Y", b""]);
        assert_eq!(f[2].value.get(&t.buf), b"v");
        assert_eq!(t.refusal, None);
        assert_eq!(t.findings, LineFindings::default());
    }

    #[test]
    fn malformed_lines_are_refused() {
        let cases: &[(&[u8], &str)] = &[
            (
                b"GET / HTTP/1.1\r\nHost: h\r\nX: a\r\n folded\r\n\r\n",
                "BadHeader",
            ),
            (
                b"GET / HTTP/1.1\r\nHost: h\r\nContent-Length 10\r\n\r\n",
                "BadHeader",
            ),
            (b"GET / HTTP/1.1\r\nHost: h\nX: 1\r\n\r\n", "BadHeader"),
            (b"GET / HTTP/1.1\r\nHost: h\r\n\n", "BadHeader"),
            (b"GET /\nHTTP/1.1\r\nHost: h\r\n\r\n", "BadUri"),
            (b"GET\r\nHost: h\r\n\r\n", "BadUri"),
            (b"G\x00T / HTTP/1.1\r\nHost: h\r\n\r\n", "BadMethod"),
            (b" GET / HTTP/1.1\r\nHost: h\r\n\r\n", "BadMethod"),
        ];
        for (text, reason) in cases {
            let (t, _) = read(text);
            assert_eq!(
                t.refusal,
                Some(HeadError::new(400, reason)),
                "{:?}",
                String::from_utf8_lossy(text)
            );
        }
    }

    #[test]
    fn limits_hold_here_too() {
        let long = format!(
            "GET /{} x HTTP/1.1\r\nHost: h\r\n\r\n",
            "a".repeat(MAX_REQUEST_LINE)
        );
        let mut fields = Vec::new();
        assert_eq!(
            parse(long.as_bytes(), &mut fields).err().map(|e| e.status),
            Some(414)
        );
        let big = format!(
            "GET /a b HTTP/1.1\r\nHost: h\r\nX: {}\r\n\r\n",
            "v".repeat(MAX_HEADER_LINE)
        );
        assert_eq!(
            parse(big.as_bytes(), &mut fields).err().map(|e| e.status),
            Some(431)
        );
    }
}
