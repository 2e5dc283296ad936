//! Request heads: parsed strictly, limited as ALB limits them, framed unambiguously.
//!
//! Anything that could make two HTTP parsers disagree about where a request ends (both
//! `Content-Length` and `Transfer-Encoding`, several `Content-Length` fields, a coding
//! list that is not exactly `chunked`, bare LF line endings) is refused here, before a
//! byte reaches a target. The refusal names ALB's desync-mitigation reason code.

use bytes::{Bytes, BytesMut};

use super::fields::{FieldKind, HeaderField, Span, mark_connection_listed};
use super::{
    BodyKind, MAX_HEADER_LINE, MAX_REQUEST_FIELDS, MAX_REQUEST_HEAD, MAX_REQUEST_LINE, Version, find_bare_lf,
    is_tchar, list_elements, parse_content_length, trim_ows,
};

/// Why a request head was refused, and the status hostalb answers with. Every refusal
/// closes the connection: after a framing error nobody knows where the next request starts.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct HeadError {
    pub(crate) status: u16,
    /// ALB's desync reason code where one applies, else a short description.
    pub(crate) reason: &'static str,
}

impl HeadError {
    const fn new(status: u16, reason: &'static str) -> HeadError {
        HeadError { status, reason }
    }
}

/// A complete, validated request head. Field values are spans into `buf`.
#[derive(Debug)]
pub(crate) struct RequestHead {
    pub(crate) buf: Bytes,
    pub(crate) method: Span,
    pub(crate) version: Version,
    pub(crate) fields: Vec<HeaderField>,
    pub(crate) body: BodyKind,
    /// The client wants the connection kept open after this exchange.
    pub(crate) keep_alive: bool,
    /// `Expect: 100-continue` (HTTP/1.1 only).
    pub(crate) expect_continue: bool,
    /// The `Upgrade` value of a WebSocket upgrade request.
    pub(crate) upgrade: Option<Span>,
    /// The authority the request is for: the absolute-form target's, else the first Host.
    pub(crate) host: Option<Span>,
    /// The path (`/x/y`, or `*` for `OPTIONS *`); empty for an absolute-form target
    /// without one, which means `/`.
    pub(crate) path: Span,
    /// The query without its `?`; `None` when the target has no `?`.
    pub(crate) query: Option<Span>,
    /// Addresses listed in all X-Forwarded-For fields.
    pub(crate) xff_addresses: usize,
    /// An ALB "Acceptable" desync class reason (non-compliant but harmless); blocked only
    /// in `strictest` mode.
    pub(crate) non_compliant: Option<&'static str>,
}

impl RequestHead {
    #[inline]
    pub(crate) fn method(&self) -> &[u8] {
        self.method.get(&self.buf)
    }

    /// The path as routed and forwarded.
    #[inline]
    pub(crate) fn path(&self) -> &[u8] {
        if self.path.is_empty() {
            b"/"
        } else {
            self.path.get(&self.buf)
        }
    }

    #[inline]
    pub(crate) fn query(&self) -> Option<&[u8]> {
        self.query.map(|q| q.get(&self.buf))
    }

    #[inline]
    pub(crate) fn host(&self) -> Option<&[u8]> {
        self.host.map(|h| h.get(&self.buf))
    }

    /// Values of every field of `kind`, in order.
    pub(crate) fn values_of(&self, kind: FieldKind) -> impl Iterator<Item = &[u8]> {
        self.fields
            .iter()
            .filter(move |f| f.kind == kind)
            .map(|f| f.value.get(&self.buf))
    }

    /// Values of every field named `name` (lower-case), in order.
    pub(crate) fn values_named<'a>(&'a self, name: &'a [u8]) -> impl Iterator<Item = &'a [u8]> + 'a {
        self.fields
            .iter()
            .filter(move |f| f.name.get(&self.buf).eq_ignore_ascii_case(name))
            .map(|f| f.value.get(&self.buf))
    }

    pub(crate) fn is_method(&self, m: &[u8]) -> bool {
        self.method() == m
    }
}

/// Checks a head that is not complete yet: is it already over a limit?
pub(crate) fn check_partial(buf: &[u8]) -> Result<(), HeadError> {
    if buf.len() > MAX_REQUEST_LINE + 2 && memchr::memchr(b'\n', &buf[..MAX_REQUEST_LINE + 2]).is_none() {
        return Err(HeadError::new(414, "RequestLineTooLong"));
    }
    if buf.len() > MAX_REQUEST_LINE + MAX_REQUEST_HEAD + 4 {
        return Err(HeadError::new(431, "HeadersTooLarge"));
    }
    Ok(())
}

/// Parses one request head from the front of `buf`. `Ok(None)`: not complete yet. On
/// success the head's bytes are split off `buf`; what follows (body, pipelined requests)
/// stays in it.
#[cfg(test)]
pub(crate) fn parse(buf: &mut BytesMut) -> Result<Option<RequestHead>, HeadError> {
    parse_with(buf, &mut Vec::new())
}

/// [`parse`], taking the field vector from `spare` (a connection hands back each head's
/// vector, so steady-state parsing allocates nothing).
pub(crate) fn parse_with(
    buf: &mut BytesMut,
    spare: &mut Vec<HeaderField>,
) -> Result<Option<RequestHead>, HeadError> {
    let mut raw = [httparse::EMPTY_HEADER; MAX_REQUEST_FIELDS];
    let mut req = httparse::Request::new(&mut raw);
    let len = match req.parse(buf) {
        Ok(httparse::Status::Complete(n)) => n,
        Ok(httparse::Status::Partial) => {
            check_partial(buf)?;
            return Ok(None);
        }
        Err(e) => return Err(map_parse_error(e, buf)),
    };
    let bytes: &[u8] = buf;
    let (Some(method), Some(target), Some(minor)) = (req.method, req.path, req.version) else {
        return Err(HeadError::new(400, "BadUri"));
    };
    let method = Span::of(bytes, method.as_bytes());
    let target = Span::of(bytes, target.as_bytes());
    let version = if minor == 1 {
        Version::Http11
    } else {
        Version::Http10
    };

    if find_bare_lf(&bytes[..len]).is_some() {
        return Err(HeadError::new(400, "BadHeader"));
    }
    // The request line ends at the first CR after the target.
    let line_end = memchr::memchr(b'\r', &bytes[target.end as usize..len])
        .map(|i| target.end as usize + i)
        .unwrap_or(len);
    if line_end - method.start as usize > MAX_REQUEST_LINE {
        return Err(HeadError::new(414, "RequestLineTooLong"));
    }
    if len - line_end > MAX_REQUEST_HEAD {
        return Err(HeadError::new(431, "HeadersTooLarge"));
    }

    let mut fields = std::mem::take(spare);
    fields.clear();
    fields.reserve(req.headers.len());
    for h in req.headers.iter() {
        let name = Span::of(bytes, h.name.as_bytes());
        let value = Span::of(bytes, h.value);
        if name.len() + 2 + value.len() > MAX_HEADER_LINE {
            return Err(HeadError::new(431, "HeaderTooLarge"));
        }
        fields.push(HeaderField {
            name,
            value,
            kind: FieldKind::of(h.name.as_bytes()),
            connection_listed: false,
        });
    }
    let framing = Framing::read(bytes, &fields, version)?;
    mark_connection_listed(bytes, &mut fields, &framing.listed);
    let method_bytes = method.get(bytes);
    if method_bytes == b"CONNECT" {
        return Err(HeadError::new(405, "ConnectNotSupported"));
    }
    let form = TargetForm::read(bytes, target, method_bytes)?;
    let host = match form.authority {
        Some(a) => Some(a),
        None => match (framing.hosts, version) {
            (0, Version::Http11) => return Err(HeadError::new(400, "MissingHost")),
            (0, Version::Http10) => None,
            (1, _) => framing.host,
            _ => return Err(HeadError::new(400, "MultipleHost")),
        },
    };
    if framing.hosts > 1 {
        return Err(HeadError::new(400, "MultipleHost"));
    }
    if let Some(h) = framing.host {
        if !valid_authority(h.get(bytes)) {
            return Err(HeadError::new(400, "BadHost"));
        }
    }
    let non_compliant = match (&framing.body, method_bytes) {
        (BodyKind::Length(0), b"GET" | b"HEAD") if framing.content_lengths == 1 => {
            Some("GetHeadZeroContentLength")
        }
        _ => None,
    };

    let head_bytes = buf.split_to(len).freeze();
    Ok(Some(RequestHead {
        buf: head_bytes,
        method,
        version,
        fields,
        body: framing.body,
        keep_alive: framing.keep_alive,
        expect_continue: framing.expect_continue && version == Version::Http11,
        upgrade: framing.upgrade,
        host,
        path: form.path,
        query: form.query,
        xff_addresses: framing.xff_addresses,
        non_compliant,
    }))
}

fn map_parse_error(e: httparse::Error, buf: &[u8]) -> HeadError {
    match e {
        httparse::Error::TooManyHeaders => HeadError::new(431, "TooManyHeaders"),
        httparse::Error::Version => {
            // A well-formed `HTTP/x.y` we do not speak is 505; anything else is malformed.
            if looks_like_other_version(buf) {
                HeadError::new(505, "UnsupportedVersion")
            } else {
                HeadError::new(400, "BadVersion")
            }
        }
        httparse::Error::Token => HeadError::new(400, "BadMethod"),
        httparse::Error::HeaderName | httparse::Error::HeaderValue => HeadError::new(400, "BadHeader"),
        httparse::Error::NewLine => HeadError::new(400, "BadHeader"),
        httparse::Error::Status => HeadError::new(400, "BadUri"),
    }
}

/// Whether the request line ends in `HTTP/<digits>.<digits>` (an HTTP version, just not
/// 1.0 or 1.1).
fn looks_like_other_version(buf: &[u8]) -> bool {
    let line_end = memchr::memchr(b'\r', buf).unwrap_or(buf.len());
    let line = &buf[..line_end];
    let Some(sp) = memchr::memrchr(b' ', line) else {
        return false;
    };
    let Some(v) = line[sp + 1..].strip_prefix(b"HTTP/") else {
        return false;
    };
    let mut parts = v.splitn(2, |b| *b == b'.');
    let major = parts.next().unwrap_or_default();
    let minor = parts.next().unwrap_or_default();
    !major.is_empty()
        && !minor.is_empty()
        && major.len() <= 3
        && minor.len() <= 3
        && major.iter().chain(minor).all(u8::is_ascii_digit)
}

/// What the fields say about framing and the connection.
struct Framing {
    body: BodyKind,
    content_lengths: usize,
    keep_alive: bool,
    expect_continue: bool,
    upgrade: Option<Span>,
    hosts: usize,
    host: Option<Span>,
    xff_addresses: usize,
    /// Non-standard `Connection` tokens: names of fields to drop when forwarding.
    listed: Vec<Span>,
}

impl Framing {
    fn read(buf: &[u8], fields: &[HeaderField], version: Version) -> Result<Framing, HeadError> {
        let mut f = Framing {
            body: BodyKind::Empty,
            content_lengths: 0,
            keep_alive: version == Version::Http11,
            expect_continue: false,
            upgrade: None,
            hosts: 0,
            host: None,
            xff_addresses: 0,
            listed: Vec::new(),
        };
        let mut content_length: Option<u64> = None;
        let mut te_seen = false;
        let mut chunked_count = 0usize;
        let mut last_coding_chunked = false;
        let mut other_codings = false;
        let mut close = false;
        let mut keep_alive_token = false;
        let mut upgrade_token = false;
        let mut upgrade_value: Option<Span> = None;
        for field in fields {
            let value = field.value.get(buf);
            match field.kind {
                FieldKind::Host => {
                    f.hosts += 1;
                    if f.host.is_none() {
                        f.host = Some(field.value);
                    }
                }
                FieldKind::ContentLength => {
                    f.content_lengths += 1;
                    let Some(n) = parse_content_length(value) else {
                        return Err(HeadError::new(400, "BadContentLength"));
                    };
                    if f.content_lengths > 1 {
                        let same = content_length == Some(n);
                        return Err(HeadError::new(
                            400,
                            if same {
                                "DuplicateContentLength"
                            } else {
                                "MultipleContentLength"
                            },
                        ));
                    }
                    content_length = Some(n);
                }
                FieldKind::TransferEncoding => {
                    if version == Version::Http10 {
                        return Err(HeadError::new(400, "UndefinedTransferEncodingSemantics"));
                    }
                    te_seen = true;
                    for coding in list_elements(value) {
                        if coding.is_empty() || !coding.iter().all(|b| is_tchar(*b) || b";= \t\"".contains(b))
                        {
                            return Err(HeadError::new(400, "BadTransferEncoding"));
                        }
                        if coding.eq_ignore_ascii_case(b"chunked") {
                            chunked_count += 1;
                            last_coding_chunked = true;
                        } else {
                            other_codings = true;
                            last_coding_chunked = false;
                        }
                    }
                }
                FieldKind::Connection => {
                    for token in list_elements(value) {
                        if token.eq_ignore_ascii_case(b"close") {
                            close = true;
                        } else if token.eq_ignore_ascii_case(b"keep-alive") {
                            keep_alive_token = true;
                        } else if token.eq_ignore_ascii_case(b"upgrade") {
                            upgrade_token = true;
                        } else if !token.is_empty() {
                            f.listed.push(Span::of(buf, token));
                        }
                    }
                }
                FieldKind::Expect if trim_ows(value).eq_ignore_ascii_case(b"100-continue") => {
                    f.expect_continue = true;
                }
                FieldKind::Upgrade => upgrade_value = Some(field.value),
                FieldKind::XForwardedFor => {
                    f.xff_addresses += list_elements(value).filter(|a| !a.is_empty()).count();
                }
                _ => {}
            }
        }
        if te_seen {
            if content_length.is_some() {
                return Err(HeadError::new(400, "BothTeClPresent"));
            }
            if chunked_count > 1 {
                return Err(HeadError::new(400, "MultipleTransferEncodingChunked"));
            }
            if other_codings || !last_coding_chunked {
                // Codings hostalb does not implement (and `identity`, which RFC 9112 retired).
                return Err(HeadError::new(501, "UnsupportedTransferEncoding"));
            }
            f.body = BodyKind::Chunked;
        } else if let Some(n) = content_length {
            f.body = BodyKind::Length(n);
        }
        f.keep_alive = match version {
            Version::Http11 => !close,
            Version::Http10 => keep_alive_token && !close,
        };
        if upgrade_token && version == Version::Http11 {
            if let Some(v) = upgrade_value {
                if v.get(buf)
                    .windows(9)
                    .any(|w| w.eq_ignore_ascii_case(b"websocket"))
                {
                    f.upgrade = Some(v);
                }
            }
        }
        Ok(f)
    }
}

/// The request target's parts.
struct TargetForm {
    authority: Option<Span>,
    path: Span,
    query: Option<Span>,
}

impl TargetForm {
    fn read(buf: &[u8], target: Span, method: &[u8]) -> Result<TargetForm, HeadError> {
        let t = target.get(buf);
        let split = |start: usize| -> (Span, Option<Span>) {
            let rest = &buf[start..target.end as usize];
            match memchr::memchr(b'?', rest) {
                Some(q) => (
                    Span::new(start, start + q),
                    Some(Span::new(start + q + 1, target.end as usize)),
                ),
                None => (Span::new(start, target.end as usize), None),
            }
        };
        match t.first() {
            Some(b'/') => {
                let (path, query) = split(target.start as usize);
                Ok(TargetForm {
                    authority: None,
                    path,
                    query,
                })
            }
            Some(b'*') if t == b"*" => {
                if method != b"OPTIONS" {
                    return Err(HeadError::new(400, "BadUri"));
                }
                Ok(TargetForm {
                    authority: None,
                    path: target,
                    query: None,
                })
            }
            _ => {
                // Absolute form: scheme "://" authority [path-abempty] ["?" query].
                let scheme_len = if t.len() > 7 && t[..7].eq_ignore_ascii_case(b"http://") {
                    7
                } else if t.len() > 8 && t[..8].eq_ignore_ascii_case(b"https://") {
                    8
                } else {
                    return Err(HeadError::new(400, "BadUri"));
                };
                let auth_start = target.start as usize + scheme_len;
                let after = &buf[auth_start..target.end as usize];
                let auth_len = after
                    .iter()
                    .position(|b| matches!(b, b'/' | b'?' | b'#'))
                    .unwrap_or(after.len());
                let authority = Span::new(auth_start, auth_start + auth_len);
                let auth = authority.get(buf);
                if auth.is_empty() || auth.contains(&b'@') || !valid_authority(auth) {
                    return Err(HeadError::new(400, "BadUri"));
                }
                let (path, query) = split(auth_start + auth_len);
                if !path.is_empty() && path.get(buf).first() != Some(&b'/') {
                    return Err(HeadError::new(400, "BadUri"));
                }
                Ok(TargetForm {
                    authority: Some(authority),
                    path,
                    query,
                })
            }
        }
    }
}

/// `host [":" port]` with the characters RFC 3986 allows in a reg-name or IP literal.
fn valid_authority(a: &[u8]) -> bool {
    a.iter().all(|b| AUTHORITY[*b as usize])
}

/// Bytes allowed in an authority, as a table (one load per byte on every request).
static AUTHORITY: [bool; 256] = {
    let mut t = [false; 256];
    let mut b = 0;
    while b < 256 {
        t[b] = (b as u8).is_ascii_alphanumeric();
        b += 1;
    }
    let extra = b"-._~!$&'()*+,;=%:[]";
    let mut i = 0;
    while i < extra.len() {
        t[extra[i] as usize] = true;
        i += 1;
    }
    t
};

#[cfg(test)]
mod tests {
    use super::*;

    fn parse_all(text: &[u8]) -> Result<Option<RequestHead>, HeadError> {
        let mut buf = BytesMut::from(text);
        parse(&mut buf)
    }

    fn status(text: &[u8]) -> u16 {
        match parse_all(text) {
            Ok(Some(_)) => 0,
            Ok(None) => 1,
            Err(e) => e.status,
        }
    }

    fn reason(text: &[u8]) -> &'static str {
        parse_all(text).err().map(|e| e.reason).unwrap_or("accepted")
    }

    #[test]
    fn simple_get_keeps_the_rest_of_the_buffer() {
        let mut buf = BytesMut::from(&b"GET /a/b?x=1 HTTP/1.1\r\nHost: Example.com\r\n\r\nGET /next"[..]);
        let head = parse(&mut buf).unwrap().unwrap();
        assert_eq!(head.method(), b"GET");
        assert_eq!(head.path(), b"/a/b");
        assert_eq!(head.query(), Some(&b"x=1"[..]));
        assert_eq!(head.host(), Some(&b"Example.com"[..]));
        assert_eq!(head.body, BodyKind::Empty);
        assert!(head.keep_alive);
        assert_eq!(&buf[..], b"GET /next");
    }

    #[test]
    fn partial_head_waits() {
        assert_eq!(status(b"GET / HTTP/1.1\r\nHost: a"), 1);
    }

    #[test]
    fn framing_smuggling_cases_are_refused() {
        let cases: &[(&[u8], u16, &str)] = &[
            (b"POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\nContent-Length: 5\r\n\r\n", 400, "BothTeClPresent"),
            (b"POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 5\r\nTransfer-Encoding: chunked\r\n\r\n", 400, "BothTeClPresent"),
            (b"POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 5\r\nContent-Length: 10\r\n\r\n", 400, "MultipleContentLength"),
            (b"POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 5\r\nContent-Length: 5\r\n\r\n", 400, "DuplicateContentLength"),
            (b"POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 1000,1000\r\n\r\n", 400, "BadContentLength"),
            (b"POST / HTTP/1.1\r\nHost: a\r\nContent-Length: +1\r\n\r\n", 400, "BadContentLength"),
            (b"POST / HTTP/1.1\r\nHost: a\r\nContent-Length: \r\n\r\n", 400, "BadContentLength"),
            (b"POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\nTransfer-Encoding: chunked\r\n\r\n", 400, "MultipleTransferEncodingChunked"),
            (b"POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: ,chunked\r\n\r\n", 400, "BadTransferEncoding"),
            (b"POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: xchunked\r\n\r\n", 501, "UnsupportedTransferEncoding"),
            (b"POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: gzip, chunked\r\n\r\n", 501, "UnsupportedTransferEncoding"),
            (b"POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked, identity\r\n\r\n", 501, "UnsupportedTransferEncoding"),
            (b"POST / HTTP/1.0\r\nTransfer-Encoding: chunked\r\n\r\n", 400, "UndefinedTransferEncodingSemantics"),
        ];
        for (text, code, why) in cases {
            let err = parse_all(text)
                .err()
                .unwrap_or_else(|| panic!("accepted {:?}", String::from_utf8_lossy(text)));
            assert_eq!(
                (err.status, err.reason),
                (*code, *why),
                "{:?}",
                String::from_utf8_lossy(text)
            );
        }
    }

    #[test]
    fn leading_zero_content_length_is_decimal() {
        let head = parse_all(b"POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 010\r\n\r\n")
            .unwrap()
            .unwrap();
        assert_eq!(head.body, BodyKind::Length(10));
    }

    #[test]
    fn malformed_lines_are_refused() {
        assert_eq!(
            status(b"GET / HTTP/1.1\r\nContent-Length : 1\r\nHost: a\r\n\r\n"),
            400
        );
        assert_eq!(status(b"GET / HTTP/1.1\r\n: empty\r\nHost: a\r\n\r\n"), 400);
        assert_eq!(
            status(b"GET / HTTP/1.1\r\nContent-Length 10\r\nHost: a\r\n\r\n"),
            400
        );
        assert_eq!(status(b"GET / HTTP/1.1\r\nX: a\x00b\r\nHost: a\r\n\r\n"), 400);
        assert_eq!(
            status(b"GET / HTTP/1.1\r\nX: a\r\n folded\r\nHost: a\r\n\r\n"),
            400
        );
        assert_eq!(status(b"GET / HTTP/1.1\r\nX\x85: a\r\nHost: a\r\n\r\n"), 400);
        assert_eq!(status(b"GET / HTTP/1.1\nHost: a\r\n\r\n"), 400);
        assert_eq!(status(b"GET /\nHTTP/1.1\r\nHost: a\r\n\r\n"), 400);
        assert_eq!(status(b"GET  / HTTP/1.1\r\nHost: a\r\n\r\n"), 400);
    }

    #[test]
    fn versions() {
        assert_eq!(status(b"GET / HTTP/1.32\r\nHost: a\r\n\r\n"), 505);
        assert_eq!(status(b"GET / HTTP/2.0\r\nHost: a\r\n\r\n"), 505);
        assert_eq!(status(b"GET / HTTP/4294967295.255\r\nHost: a\r\n\r\n"), 400);
        assert_eq!(status(b"GET / FTP/1.1\r\nHost: a\r\n\r\n"), 400);
        let head = parse_all(b"GET / HTTP/1.0\r\n\r\n").unwrap().unwrap();
        assert_eq!(head.version, Version::Http10);
        assert!(!head.keep_alive);
        assert_eq!(head.host(), None);
    }

    #[test]
    fn host_rules() {
        assert_eq!(reason(b"GET / HTTP/1.1\r\n\r\n"), "MissingHost");
        assert_eq!(
            reason(b"GET / HTTP/1.1\r\nHost: a\r\nHost: b\r\n\r\n"),
            "MultipleHost"
        );
        assert_eq!(reason(b"GET / HTTP/1.1\r\nHost: a b\r\n\r\n"), "BadHost");
        let head = parse_all(b"GET http://Other.example:8080/p?q HTTP/1.1\r\nHost: a\r\n\r\n")
            .unwrap()
            .unwrap();
        assert_eq!(head.host(), Some(&b"Other.example:8080"[..]));
        assert_eq!(head.path(), b"/p");
        assert_eq!(head.query(), Some(&b"q"[..]));
        let head = parse_all(b"GET http://h.example HTTP/1.1\r\nHost: h.example\r\n\r\n")
            .unwrap()
            .unwrap();
        assert_eq!(head.path(), b"/");
        assert_eq!(reason(b"GET http://u@h/ HTTP/1.1\r\nHost: h\r\n\r\n"), "BadUri");
        assert_eq!(reason(b"GET ftp://h/ HTTP/1.1\r\nHost: h\r\n\r\n"), "BadUri");
    }

    #[test]
    fn limits() {
        let long_target = format!(
            "GET /{} HTTP/1.1\r\nHost: a\r\n\r\n",
            "a".repeat(MAX_REQUEST_LINE)
        );
        assert_eq!(status(long_target.as_bytes()), 414);
        let long_line_partial = format!("GET /{}", "a".repeat(MAX_REQUEST_LINE + 10));
        assert_eq!(status(long_line_partial.as_bytes()), 414);
        let big_header = format!(
            "GET / HTTP/1.1\r\nHost: a\r\nX: {}\r\n\r\n",
            "v".repeat(MAX_HEADER_LINE)
        );
        assert_eq!(status(big_header.as_bytes()), 431);
        let mut many = String::from("GET / HTTP/1.1\r\nHost: a\r\n");
        for i in 0..8 {
            many.push_str(&format!("X-{i}: {}\r\n", "v".repeat(9000)));
        }
        many.push_str("\r\n");
        assert_eq!(status(many.as_bytes()), 431);
        let mut count = String::from("GET / HTTP/1.1\r\nHost: a\r\n");
        for i in 0..99 {
            count.push_str(&format!("X-{i}: v\r\n"));
        }
        assert_eq!(
            status(format!("{count}\r\n").as_bytes()),
            0,
            "100 fields are accepted"
        );
        count.push_str("X-last: v\r\n\r\n");
        assert_eq!(status(count.as_bytes()), 431, "101 fields are not");
    }

    #[test]
    fn connection_tokens() {
        let head = parse_all(
            b"GET / HTTP/1.1\r\nHost: a\r\nConnection: close, X-Secret\r\nX-Secret: 1\r\nX-Other: 2\r\n\r\n",
        )
        .unwrap()
        .unwrap();
        assert!(!head.keep_alive);
        let listed: Vec<bool> = head.fields.iter().map(|f| f.connection_listed).collect();
        assert_eq!(listed, vec![false, false, true, false]);
        let head = parse_all(b"GET / HTTP/1.0\r\nConnection: keep-alive\r\n\r\n")
            .unwrap()
            .unwrap();
        assert!(head.keep_alive);
    }

    #[test]
    fn websocket_upgrade_and_expect() {
        let head =
            parse_all(b"GET /ws HTTP/1.1\r\nHost: a\r\nConnection: Upgrade\r\nUpgrade: websocket\r\n\r\n")
                .unwrap()
                .unwrap();
        assert!(head.upgrade.is_some());
        let head = parse_all(b"GET /ws HTTP/1.1\r\nHost: a\r\nUpgrade: websocket\r\n\r\n")
            .unwrap()
            .unwrap();
        assert!(
            head.upgrade.is_none(),
            "Upgrade without Connection: upgrade is not an upgrade"
        );
        let head =
            parse_all(b"POST / HTTP/1.1\r\nHost: a\r\nExpect: 100-Continue\r\nContent-Length: 3\r\n\r\n")
                .unwrap()
                .unwrap();
        assert!(head.expect_continue);
    }

    #[test]
    fn methods_and_forms() {
        assert_eq!(status(b"CONNECT a:443 HTTP/1.1\r\nHost: a:443\r\n\r\n"), 405);
        assert_eq!(status(b"OPTIONS * HTTP/1.1\r\nHost: a\r\n\r\n"), 0);
        assert_eq!(status(b"GET * HTTP/1.1\r\nHost: a\r\n\r\n"), 400);
        assert_eq!(status(b"GET relative HTTP/1.1\r\nHost: a\r\n\r\n"), 400);
        assert_eq!(status(b"G(T / HTTP/1.1\r\nHost: a\r\n\r\n"), 400);
    }

    #[test]
    fn xff_count_and_non_compliance() {
        let head = parse_all(b"GET / HTTP/1.1\r\nHost: a\r\nX-Forwarded-For: 1.1.1.1, 2.2.2.2\r\nX-Forwarded-For: 3.3.3.3\r\nContent-Length: 0\r\n\r\n").unwrap().unwrap();
        assert_eq!(head.xff_addresses, 3);
        assert_eq!(head.non_compliant, Some("GetHeadZeroContentLength"));
    }
}
