//! Request heads: read, limited as ALB limits them, classified as ALB's desync mitigation
//! classifies them, and framed by hostalb's own rules.
//!
//! Reading: httparse reads compliant heads (the fast path, no allocation); a head it
//! refuses is read again tolerantly ([`super::tolerant`]) so that what ALB forwards
//! (a space in the target, HTTP/1.2, odd field names) can be forwarded too.
//!
//! Framing: hostalb frames the body from the exact `Transfer-Encoding` and
//! `Content-Length` fields only, and forwards it with one framing field of its own
//! (chunked wins over a length). What it cannot frame (a length that is not a number,
//! two lengths, a coding list it cannot decode) is refused in every desync mode; so is
//! what it cannot forward as well-formed HTTP/1.1 (NUL, CR or LF inside a line, a version
//! that is not HTTP/1.x). Everything else gets the verdict of the listener's mode for
//! its class ([`super::desync`]).

use bytes::{Buf, Bytes, BytesMut};
use hostalb_config::DesyncMitigationMode;

use super::desync::{self, Classification, FramingContext, Verdict};
use super::fields::{FieldKind, HeaderField, Span, mark_connection_listed};
use super::tolerant::{self, LineFindings};
use super::{
    BodyKind, MAX_HEADER_LINE, MAX_REQUEST_FIELDS, MAX_REQUEST_HEAD, MAX_REQUEST_LINE, Version, find_bare_lf,
    is_tchar, list_elements, trim_ows,
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
    pub(crate) const fn new(status: u16, reason: &'static str) -> HeadError {
        HeadError { status, reason }
    }
}

/// A complete request head. Field values are spans into `buf`.
#[derive(Debug)]
pub(crate) struct RequestHead {
    pub(crate) buf: Bytes,
    pub(crate) method: Span,
    pub(crate) version: Version,
    pub(crate) fields: Vec<HeaderField>,
    pub(crate) body: BodyKind,
    /// The client wants the connection kept open after this exchange (and desync
    /// mitigation does not close it).
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
    /// ALB's desync classification (the access log's `classification` and
    /// `classification_reason`).
    pub(crate) desync: Classification,
    /// What the listener's desync mode does with this request.
    pub(crate) verdict: Verdict,
    /// Why hostalb cannot forward this request in any mode (it is answered with this).
    pub(crate) refusal: Option<HeadError>,
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

    /// Whether the target connection may serve another request after this one: not after
    /// an Ambiguous request in defensive mode (a target may have read it differently).
    pub(crate) fn target_reusable(&self) -> bool {
        self.verdict != Verdict::ForwardThenClose
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

/// Whether `pending` (what arrived of a request whose head was not read) is a HEAD
/// request, whose answer must not carry a body.
pub(crate) fn starts_head_request(pending: &[u8]) -> bool {
    let mut p = pending;
    while let [b'\r' | b'\n', rest @ ..] = p {
        p = rest;
    }
    p.starts_with(b"HEAD ")
}

/// Parses one request head from the front of `buf` in the default desync mode.
#[cfg(test)]
pub(crate) fn parse(buf: &mut BytesMut) -> Result<Option<RequestHead>, HeadError> {
    parse_with(buf, &mut Vec::new(), DesyncMitigationMode::Defensive)
}

/// Parses one request head from the front of `buf`. `Ok(None)`: not complete yet. On
/// success the head's bytes are split off `buf`; what follows (body, pipelined requests)
/// stays in it. A complete head is returned even when it is refused (`refusal`, or a
/// `Block` verdict), so that the answer knows its method and the log its classification;
/// `Err` means a limit was crossed before the head could be read. The field vector comes
/// from `spare` (a connection hands back each head's vector, so steady-state parsing
/// allocates nothing).
pub(crate) fn parse_with(
    buf: &mut BytesMut,
    spare: &mut Vec<HeaderField>,
    mode: DesyncMitigationMode,
) -> Result<Option<RequestHead>, HeadError> {
    let mut fields = std::mem::take(spare);
    fields.clear();
    let read = match read_strict(buf, &mut fields) {
        Strict::Read(len, line) => {
            let head = buf.split_to(len).freeze();
            Read { buf: head, ..line }
        }
        Strict::Incomplete => Read::incomplete(),
        Strict::Limit(e) => Read::failed(e),
        Strict::Refused => match tolerant::parse(buf, &mut fields) {
            Ok(Some(t)) => {
                buf.advance(t.len);
                Read {
                    buf: t.buf,
                    method: t.method,
                    target: t.target,
                    version: t.version,
                    before_1_1: t.before_1_1,
                    before_1_0: t.before_1_0,
                    findings: t.findings,
                    refusal: t.refusal,
                    check_chars: true,
                    outcome: Ok(true),
                }
            }
            Ok(None) => Read::incomplete(),
            Err(e) => Read::failed(e),
        },
    };
    match read.outcome {
        Ok(true) => Ok(Some(assemble(read, fields, mode))),
        Ok(false) => {
            *spare = fields;
            check_partial(buf)?;
            Ok(None)
        }
        Err(e) => {
            *spare = fields;
            Err(e)
        }
    }
}

/// A head as one of the two readers read it, before framing and classification.
struct Read {
    buf: Bytes,
    method: Span,
    target: Span,
    version: Version,
    before_1_1: bool,
    before_1_0: bool,
    findings: LineFindings,
    refusal: Option<HeadError>,
    /// Names and values may hold any byte (httparse guarantees clean ones).
    check_chars: bool,
    /// `Ok(true)`: a head; `Ok(false)`: not complete yet; `Err`: over a limit.
    outcome: Result<bool, HeadError>,
}

impl Read {
    fn empty(outcome: Result<bool, HeadError>) -> Read {
        Read {
            buf: Bytes::new(),
            method: Span::default(),
            target: Span::default(),
            version: Version::Http11,
            before_1_1: false,
            before_1_0: false,
            findings: LineFindings::default(),
            refusal: None,
            check_chars: false,
            outcome,
        }
    }

    fn incomplete() -> Read {
        Read::empty(Ok(false))
    }

    fn failed(e: HeadError) -> Read {
        Read::empty(Err(e))
    }
}

/// What httparse made of the buffer.
enum Strict {
    /// A compliant head of this many bytes (`Read` without its buffer).
    Read(usize, Read),
    Incomplete,
    /// Over one of ALB's limits.
    Limit(HeadError),
    /// Not a head httparse reads: read it tolerantly.
    Refused,
}

/// The fast path: httparse, then ALB's limits. Fills `fields` with spans into `buf`.
fn read_strict(buf: &[u8], fields: &mut Vec<HeaderField>) -> Strict {
    let mut raw = [httparse::EMPTY_HEADER; MAX_REQUEST_FIELDS];
    let mut req = httparse::Request::new(&mut raw);
    let len = match req.parse(buf) {
        Ok(httparse::Status::Complete(n)) => n,
        Ok(httparse::Status::Partial) => return Strict::Incomplete,
        Err(httparse::Error::TooManyHeaders) => return Strict::Limit(HeadError::new(431, "TooManyHeaders")),
        Err(_) => return Strict::Refused,
    };
    let (Some(method), Some(target), Some(minor)) = (req.method, req.path, req.version) else {
        return Strict::Refused;
    };
    if find_bare_lf(&buf[..len]).is_some() {
        // httparse takes LF alone as a line end; desync mitigation does not.
        return Strict::Refused;
    }
    let method = Span::of(buf, method.as_bytes());
    let target = Span::of(buf, target.as_bytes());
    // The request line ends at the first CR after the target.
    let line_end = memchr::memchr(b'\r', &buf[target.end as usize..len])
        .map(|i| target.end as usize + i)
        .unwrap_or(len);
    if line_end - method.start as usize > MAX_REQUEST_LINE {
        return Strict::Limit(HeadError::new(414, "RequestLineTooLong"));
    }
    if len - line_end > MAX_REQUEST_HEAD {
        return Strict::Limit(HeadError::new(431, "HeadersTooLarge"));
    }
    fields.reserve(req.headers.len());
    for h in req.headers.iter() {
        let name = Span::of(buf, h.name.as_bytes());
        let value = Span::of(buf, h.value);
        if name.len() + 2 + value.len() > MAX_HEADER_LINE {
            return Strict::Limit(HeadError::new(431, "HeaderTooLarge"));
        }
        fields.push(HeaderField {
            name,
            value,
            kind: FieldKind::of(h.name.as_bytes()),
            connection_listed: false,
        });
    }
    let version = if minor == 1 {
        Version::Http11
    } else {
        Version::Http10
    };
    Strict::Read(
        len,
        Read {
            method,
            target,
            version,
            before_1_1: version == Version::Http10,
            ..Read::empty(Ok(true))
        },
    )
}

/// Classifies, frames and checks a head that was read, and applies the desync mode.
fn assemble(read: Read, mut fields: Vec<HeaderField>, mode: DesyncMitigationMode) -> RequestHead {
    let bytes: &[u8] = &read.buf;
    let version = read.version;
    // Classification, in desync-guardian's order: fields, framing, method, version, target.
    let mut class = Classification::default();
    let bad_chars = desync::check_fields(bytes, &mut fields, read.check_chars, &mut class);
    class.raise_opt(read.findings.header);
    let method_bytes = read.method.get(bytes);
    let cx = FramingContext {
        method: method_bytes,
        before_1_1: read.before_1_1,
        before_1_0: read.before_1_0,
    };
    desync::check_framing(bytes, &fields, cx, &mut class);
    class.raise_opt(read.findings.method);
    class.raise_opt(read.findings.version);
    class.raise_opt(read.findings.target);

    let framing = Framing::read(bytes, &fields, version);
    mark_connection_listed(bytes, &mut fields, &framing.listed);

    // What hostalb cannot forward in any mode, first found first.
    let mut refusal = read
        .refusal
        .or(bad_chars.then_some(HeadError::new(400, "BadHeader")))
        .or(framing.refusal);
    if refusal.is_none() && method_bytes == b"CONNECT" {
        refusal = Some(HeadError::new(405, "ConnectNotSupported"));
    }
    let mut form = TargetForm {
        authority: None,
        path: Span::default(),
        query: None,
    };
    if refusal.is_none() {
        match TargetForm::read(bytes, read.target, method_bytes) {
            Ok(f) => form = f,
            Err(e) => refusal = Some(e),
        }
    }
    let host = match (form.authority, framing.hosts, version) {
        (Some(a), _, _) => Some(a),
        (None, 0, Version::Http11) => {
            refusal = refusal.or(Some(HeadError::new(400, "MissingHost")));
            None
        }
        (None, 0, Version::Http10) => None,
        (None, _, _) => framing.host,
    };
    if framing.hosts > 1 {
        refusal = refusal.or(Some(HeadError::new(400, "MultipleHost")));
    }
    if framing.host.is_some_and(|h| !valid_authority(h.get(bytes))) {
        refusal = refusal.or(Some(HeadError::new(400, "BadHost")));
    }

    let verdict = desync::verdict(mode, class.class);
    let forwarded = refusal.is_none() && verdict != Verdict::Block;
    RequestHead {
        method: read.method,
        version,
        fields,
        body: if forwarded { framing.body } else { BodyKind::Empty },
        keep_alive: framing.keep_alive && forwarded && verdict == Verdict::Forward,
        expect_continue: framing.expect_continue && version == Version::Http11 && forwarded,
        upgrade: framing.upgrade,
        host,
        path: form.path,
        query: form.query,
        xff_addresses: framing.xff_addresses,
        desync: class,
        verdict,
        refusal,
        buf: read.buf,
    }
}

/// What the exact fields say about framing and the connection.
struct Framing {
    body: BodyKind,
    keep_alive: bool,
    expect_continue: bool,
    upgrade: Option<Span>,
    hosts: usize,
    host: Option<Span>,
    xff_addresses: usize,
    /// Non-standard `Connection` tokens: names of fields to drop when forwarding.
    listed: Vec<Span>,
    /// Why the body cannot be framed (or decoded) by hostalb.
    refusal: Option<HeadError>,
}

impl Framing {
    fn read(buf: &[u8], fields: &[HeaderField], version: Version) -> Framing {
        let mut f = Framing {
            body: BodyKind::Empty,
            keep_alive: version == Version::Http11,
            expect_continue: false,
            upgrade: None,
            hosts: 0,
            host: None,
            xff_addresses: 0,
            listed: Vec::new(),
            refusal: None,
        };
        let mut content_length: Option<u64> = None;
        // The first reason the framing is malformed (400), and whether a coding hostalb
        // does not implement was named (501, when nothing is malformed).
        let mut malformed: Option<&'static str> = None;
        let mut unsupported = false;
        let mut chunked = 0usize;
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
                FieldKind::ContentLength => match (desync::content_length(value), content_length) {
                    (None, _) => {
                        malformed.get_or_insert("BadContentLength");
                    }
                    (Some(n), Some(first)) if n != first => {
                        malformed.get_or_insert("MultipleContentLength");
                    }
                    (Some(n), _) => content_length = Some(n),
                },
                FieldKind::TransferEncoding => {
                    for coding in list_elements(value) {
                        if coding.is_empty() || !coding.iter().all(|b| is_tchar(*b) || b";= \t\"".contains(b))
                        {
                            malformed.get_or_insert("BadTransferEncoding");
                        } else if coding.eq_ignore_ascii_case(b"chunked") {
                            chunked += 1;
                        } else if chunked > 0 || !coding.eq_ignore_ascii_case(b"identity") {
                            // A coding hostalb does not decode (parameters included), or
                            // one after chunked, which must be the last (RFC 9112 §6.3).
                            unsupported = true;
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
        if chunked > 1 {
            malformed.get_or_insert("MultipleTransferEncodingChunked");
        }
        f.refusal = match (malformed, unsupported) {
            (Some(reason), _) => Some(HeadError::new(400, reason)),
            (None, true) => Some(HeadError::new(501, "UnsupportedTransferEncoding")),
            (None, false) => None,
        };
        // One framing of hostalb's choice: chunked wins over a length.
        if chunked == 1 {
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
        f
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
    use crate::http1::desync::Class;
    use DesyncMitigationMode::{Defensive, Monitor, Strictest};

    fn parse_in(mode: DesyncMitigationMode, text: &[u8]) -> Result<Option<RequestHead>, HeadError> {
        let mut buf = BytesMut::from(text);
        parse_with(&mut buf, &mut Vec::new(), mode)
    }

    fn head(text: &[u8]) -> RequestHead {
        match parse_in(Defensive, text) {
            Ok(Some(h)) => h,
            other => panic!("{:?}: {other:?}", String::from_utf8_lossy(text)),
        }
    }

    /// What hostalb does with `text` in `mode`: `forward`, `forward+close`, `wait`, or the
    /// status and reason it answers with.
    fn outcome(mode: DesyncMitigationMode, text: &[u8]) -> String {
        match parse_in(mode, text) {
            Ok(None) => "wait".into(),
            Err(e) => format!("{} {}", e.status, e.reason),
            Ok(Some(h)) => match (h.refusal, h.verdict) {
                (Some(e), _) => format!("{} {}", e.status, e.reason),
                (None, Verdict::Block) => format!("400 {}", h.desync.reason.unwrap_or("?")),
                (None, Verdict::ForwardThenClose) => "forward+close".into(),
                (None, Verdict::Forward) => "forward".into(),
            },
        }
    }

    fn defensive(text: &[u8]) -> String {
        outcome(Defensive, text)
    }

    fn reason(text: &[u8]) -> Option<&'static str> {
        head(text).desync.reason
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
        assert_eq!(head.desync, Classification::default());
        assert_eq!((head.verdict, head.refusal), (Verdict::Forward, None));
        assert_eq!(&buf[..], b"GET /next");
    }

    #[test]
    fn partial_heads_wait() {
        assert_eq!(defensive(b"GET / HTTP/1.1\r\nHost: a"), "wait");
        assert_eq!(defensive(b"GET /a b HTTP/1.1\r\nHost: a\r\n"), "wait");
    }

    /// `(request, what defensive mode does, classification reason, body as framed)`.
    type Row = (&'static [u8], &'static str, Option<&'static str>, BodyKind);

    #[test]
    fn framing_in_defensive_mode() {
        use BodyKind::{Chunked, Empty, Length};
        let rows: &[Row] = &[
            (b"POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\nContent-Length: 5\r\n\r\n", "forward+close", Some("BothTeClPresent"), Chunked),
            (b"POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 5\r\nTransfer-Encoding: chunked\r\n\r\n", "forward+close", Some("BothTeClPresent"), Chunked),
            (b"POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: identity\r\nContent-Length: 5\r\n\r\n", "forward+close", Some("BothTeClPresent"), Length(5)),
            (b"POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 5\r\nContent-Length: 5\r\n\r\n", "forward+close", Some("DuplicateContentLength"), Length(5)),
            (b"POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 5\r\nContent-Length: 10\r\n\r\n", "400 MultipleContentLength", Some("MultipleContentLength"), Empty),
            (b"POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 1000,1000\r\n\r\n", "400 BadContentLength", Some("BadContentLength"), Empty),
            (b"POST / HTTP/1.1\r\nHost: a\r\nContent-Length: +1\r\n\r\n", "400 BadContentLength", Some("BadContentLength"), Empty),
            (b"POST / HTTP/1.1\r\nHost: a\r\nContent-Length: \r\n\r\n", "400 BadContentLength", Some("BadContentLength"), Empty),
            (b"POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\nTransfer-Encoding: chunked\r\n\r\n", "400 MultipleTransferEncodingChunked", Some("MultipleTransferEncodingChunked"), Empty),
            (b"POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: ,chunked\r\n\r\n", "400 BadTransferEncoding", Some("BadTransferEncoding"), Empty),
            (b"POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\x11\r\n\r\n", "400 BadTransferEncoding", Some("BadTransferEncoding"), Empty),
            (b"POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: xchunked\r\n\r\n", "501 UnsupportedTransferEncoding", Some("BadTransferEncoding"), Empty),
            (b"POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: gzip, chunked\r\n\r\n", "501 UnsupportedTransferEncoding", None, Empty),
            (b"POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: gzip\r\nContent-Length: 5\r\n\r\n", "501 UnsupportedTransferEncoding", Some("BothTeClPresent"), Empty),
            (b"POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked;x=1\r\n\r\n", "501 UnsupportedTransferEncoding", None, Empty),
            (b"POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked, identity\r\n\r\n", "501 UnsupportedTransferEncoding", None, Empty),
            (b"POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: identity, chunked\r\n\r\n", "forward", None, Chunked),
            (b"POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: identity\r\n\r\n", "forward", None, Empty),
            (b"POST / HTTP/1.0\r\nTransfer-Encoding: chunked\r\n\r\n", "forward+close", Some("UndefinedTransferEncodingSemantics"), Chunked),
            (b"GET / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n", "forward+close", Some("UndefinedTransferEncodingSemantics"), Chunked),
            (b"HEAD / HTTP/1.1\r\nHost: a\r\nContent-Length: 3\r\n\r\n", "forward+close", Some("UndefinedContentLengthSemantics"), Length(3)),
            (b"GET / HTTP/1.1\r\nHost: a\r\nContent-Length: 0\r\n\r\n", "forward", Some("GetHeadZeroContentLength"), Length(0)),
            (b"POST / HTTP/1.1\r\nHost: a\r\nTransfer_Encoding: chunked\r\nContent-Length: 5\r\n\r\n", "forward+close", Some("SuspiciousHeader"), Length(5)),
            (b"POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding : chunked\r\nContent-Length: 5\r\n\r\n", "forward+close", Some("SuspiciousHeader"), Length(5)),
            (b"POST / HTTP/1.1\r\nHost: a\r\nContent_Length: abc\r\n\r\n", "400 BadContentLength", Some("BadContentLength"), Empty),
            (b"POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 010\r\n\r\n", "forward", None, Length(10)),
        ];
        for (text, want, why, body) in rows {
            let what = String::from_utf8_lossy(text);
            assert_eq!(defensive(text), *want, "{what}");
            let h = head(text);
            assert_eq!(h.desync.reason, *why, "{what}");
            assert_eq!(h.body, *body, "{what}");
            assert_eq!(h.keep_alive, *want == "forward", "{what}");
        }
    }

    #[test]
    fn look_alikes_and_nameless_fields_are_never_forwarded() {
        let h = head(
            b"POST / HTTP/1.1\r\nHost: a\r\nTransfer_Encoding: chunked\r\n: x\r\nContent-Length: 2\r\n\r\n",
        );
        let kinds: Vec<FieldKind> = h.fields.iter().map(|f| f.kind).collect();
        assert_eq!(
            kinds,
            vec![
                FieldKind::Host,
                FieldKind::LooksLikeTransferEncoding,
                FieldKind::Nameless,
                FieldKind::ContentLength
            ]
        );
        assert!(kinds[1..].iter().all(|k| k.is_hop_by_hop()));
        assert_eq!(h.desync.reason, Some("SuspiciousHeader"));
        assert!(!h.target_reusable());
    }

    #[test]
    fn request_lines_in_defensive_mode() {
        let rows: &[(&[u8], &str, Option<&str>)] = &[
            (
                b"GET /a b HTTP/1.1\r\nHost: a\r\n\r\n",
                "forward",
                Some("SpaceInUri"),
            ),
            (
                b"GET  / HTTP/1.1\r\nHost: a\r\n\r\n",
                "forward",
                Some("SpaceInUri"),
            ),
            (
                b"GET / HTTP/1.2\r\nHost: a\r\n\r\n",
                "forward",
                Some("NonCompliantVersion"),
            ),
            (
                b"GET / HTTP/1.1 \r\nHost: a\r\n\r\n",
                "forward",
                Some("NonCompliantVersion"),
            ),
            (
                b"GET /a\tb HTTP/1.1\r\nHost: a\r\n\r\n",
                "forward+close",
                Some("AmbiguousUri"),
            ),
            (
                b"GET /a\x7fb HTTP/1.1\r\nHost: a\r\n\r\n",
                "forward+close",
                Some("AmbiguousUri"),
            ),
            (
                b"GET /a\x00b HTTP/1.1\r\nHost: a\r\n\r\n",
                "400 BadUri",
                Some("BadUri"),
            ),
            (
                b"GET /\nHTTP/1.1\r\nHost: a\r\n\r\n",
                "400 BadUri",
                Some("BadUri"),
            ),
            (
                b"G(T / HTTP/1.1\r\nHost: a\r\n\r\n",
                "400 BadMethod",
                Some("BadMethod"),
            ),
            (
                b"GET / HTTP/1.32\r\nHost: a\r\n\r\n",
                "400 BadVersion",
                Some("BadVersion"),
            ),
            (
                b"GET / HTTP/4294967295.255\r\nHost: a\r\n\r\n",
                "400 BadVersion",
                Some("BadVersion"),
            ),
            (
                b"GET / FTP/1.1\r\nHost: a\r\n\r\n",
                "400 BadVersion",
                Some("BadVersion"),
            ),
            (
                b"GET / HTTP/2.0\r\nHost: a\r\n\r\n",
                "505 UnsupportedVersion",
                None,
            ),
            (
                b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n",
                "505 UnsupportedVersion",
                None,
            ),
            (b"GET / HTTP/0.9\r\n\r\n", "forward", Some("NonCompliantVersion")),
            (b"GET /\r\n\r\n", "forward", Some("NonCompliantVersion")),
            (
                b"POST / HTTP/0.9\r\nContent-Length: 2\r\n\r\n",
                "forward+close",
                Some("UndefinedContentLengthSemantics"),
            ),
            (
                b"POST / HTTP/0.9\r\nTransfer-Encoding: chunked\r\n\r\n",
                "forward+close",
                Some("UndefinedTransferEncodingSemantics"),
            ),
        ];
        for (text, want, why) in rows {
            let what = String::from_utf8_lossy(text);
            assert_eq!(defensive(text), *want, "{what}");
            assert_eq!(reason(text), *why, "{what}");
        }
        let h = head(b"GET /a b?c d HTTP/1.2\r\nHost: a\r\n\r\n");
        assert_eq!(h.path(), b"/a%20b");
        assert_eq!(h.query(), Some(&b"c%20d"[..]));
        assert_eq!(h.version, Version::Http11);
        assert!(h.keep_alive);
    }

    #[test]
    fn header_lines_in_defensive_mode() {
        let line = |l: &[u8]| {
            let mut t = b"GET / HTTP/1.1\r\nHost: a\r\n".to_vec();
            t.extend_from_slice(l);
            t.extend_from_slice(b"\r\n\r\n");
            t
        };
        let rows: &[(&[u8], &str, Option<&str>)] = &[
            (b"Content-Length : 1", "forward+close", Some("SuspiciousHeader")),
            (b": empty", "forward+close", Some("EmptyHeader")),
            (b"X\x85: a", "forward", Some("NonCompliantHeader")),
            (b"X-A: a\x01b", "forward", Some("NonCompliantHeader")),
            (b"Content-Length 10", "400 BadHeader", Some("BadHeader")),
            (b"X-A: a\x00b", "400 BadHeader", Some("BadHeader")),
            (b"X-A: a\rb", "400 BadHeader", Some("BadHeader")),
            (b"X-A: a\r\n folded", "400 BadHeader", Some("BadHeader")),
            (b"X-A: a\nX-B: b", "400 BadHeader", Some("BadHeader")),
        ];
        for (l, want, why) in rows {
            let text = line(l);
            let what = String::from_utf8_lossy(&text);
            assert_eq!(defensive(&text), *want, "{what}");
            assert_eq!(reason(&text), *why, "{what}");
        }
        assert_eq!(defensive(b"GET / HTTP/1.1\nHost: a\r\n\r\n"), "400 BadUri");
        assert_eq!(defensive(b"GET / HTTP/1.1\r\nHost: a\n\n"), "400 BadHeader");
    }

    #[test]
    fn modes_apply_to_forwardable_requests_only() {
        let cases: &[(&[u8], [&str; 3])] = &[
            (
                b"GET / HTTP/1.1\r\nHost: a\r\n\r\n",
                ["forward", "forward", "forward"],
            ),
            (
                b"GET /a b HTTP/1.1\r\nHost: a\r\n\r\n",
                ["forward", "forward", "400 SpaceInUri"],
            ),
            (
                b"POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\nContent-Length: 5\r\n\r\n",
                ["forward", "forward+close", "400 BothTeClPresent"],
            ),
            (
                b"G(T / HTTP/1.1\r\nHost: a\r\n\r\n",
                ["forward", "400 BadMethod", "400 BadMethod"],
            ),
            (
                b"POST / HTTP/1.1\r\nHost: a\r\nContent_Length: abc\r\n\r\n",
                ["forward", "400 BadContentLength", "400 BadContentLength"],
            ),
            (
                b"POST / HTTP/1.1\r\nHost: a\r\nContent-Length: abc\r\n\r\n",
                [
                    "400 BadContentLength",
                    "400 BadContentLength",
                    "400 BadContentLength",
                ],
            ),
            (
                b"POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: gzip\r\nContent-Length: 5\r\n\r\n",
                [
                    "501 UnsupportedTransferEncoding",
                    "501 UnsupportedTransferEncoding",
                    "501 UnsupportedTransferEncoding",
                ],
            ),
        ];
        for (text, want) in cases {
            let got = [Monitor, Defensive, Strictest].map(|m| outcome(m, text));
            assert_eq!(got, *want, "{:?}", String::from_utf8_lossy(text));
        }
        let h = parse_in(
            Monitor,
            b"POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 5\r\nContent-Length: 5\r\n\r\n",
        )
        .unwrap()
        .unwrap();
        assert_eq!(h.desync.class, Class::Ambiguous);
        assert!(h.keep_alive && h.target_reusable());
        assert_eq!(h.body, BodyKind::Length(5));
    }

    #[test]
    fn host_rules() {
        assert_eq!(defensive(b"GET / HTTP/1.1\r\n\r\n"), "400 MissingHost");
        assert_eq!(
            defensive(b"GET / HTTP/1.1\r\nHost: a\r\nHost: b\r\n\r\n"),
            "400 MultipleHost"
        );
        assert_eq!(defensive(b"GET / HTTP/1.1\r\nHost: a b\r\n\r\n"), "400 BadHost");
        let h = head(b"GET http://Other.example:8080/p?q HTTP/1.1\r\nHost: a\r\n\r\n");
        assert_eq!(h.host(), Some(&b"Other.example:8080"[..]));
        assert_eq!(h.path(), b"/p");
        assert_eq!(h.query(), Some(&b"q"[..]));
        let h = head(b"GET http://h.example HTTP/1.1\r\nHost: h.example\r\n\r\n");
        assert_eq!(h.path(), b"/");
        assert_eq!(
            defensive(b"GET http://u@h/ HTTP/1.1\r\nHost: h\r\n\r\n"),
            "400 BadUri"
        );
        assert_eq!(
            defensive(b"GET ftp://h/ HTTP/1.1\r\nHost: h\r\n\r\n"),
            "400 BadUri"
        );
        let h = head(b"GET / HTTP/1.0\r\n\r\n");
        assert_eq!(h.version, Version::Http10);
        assert!(!h.keep_alive);
        assert_eq!(h.host(), None);
    }

    #[test]
    fn limits() {
        let status = |t: &[u8]| defensive(t).split(' ').next().unwrap_or_default().to_string();
        let long_target = format!(
            "GET /{} HTTP/1.1\r\nHost: a\r\n\r\n",
            "a".repeat(MAX_REQUEST_LINE)
        );
        assert_eq!(status(long_target.as_bytes()), "414");
        let long_line_partial = format!("GET /{}", "a".repeat(MAX_REQUEST_LINE + 10));
        assert_eq!(status(long_line_partial.as_bytes()), "414");
        let big_header = format!(
            "GET / HTTP/1.1\r\nHost: a\r\nX: {}\r\n\r\n",
            "v".repeat(MAX_HEADER_LINE)
        );
        assert_eq!(status(big_header.as_bytes()), "431");
        let mut many = String::from("GET / HTTP/1.1\r\nHost: a\r\n");
        for i in 0..8 {
            many.push_str(&format!("X-{i}: {}\r\n", "v".repeat(9000)));
        }
        many.push_str("\r\n");
        assert_eq!(status(many.as_bytes()), "431");
        let mut count = String::from("GET / HTTP/1.1\r\nHost: a\r\n");
        for i in 0..99 {
            count.push_str(&format!("X-{i}: v\r\n"));
        }
        assert_eq!(
            status(format!("{count}\r\n").as_bytes()),
            "forward",
            "100 fields are accepted"
        );
        count.push_str("X-last: v\r\n\r\n");
        assert_eq!(status(count.as_bytes()), "431", "101 fields are not");
    }

    #[test]
    fn connection_tokens() {
        let h = head(
            b"GET / HTTP/1.1\r\nHost: a\r\nConnection: close, X-Secret\r\nX-Secret: 1\r\nX-Other: 2\r\n\r\n",
        );
        assert!(!h.keep_alive);
        let listed: Vec<bool> = h.fields.iter().map(|f| f.connection_listed).collect();
        assert_eq!(listed, vec![false, false, true, false]);
        let h = head(b"GET / HTTP/1.0\r\nConnection: keep-alive\r\n\r\n");
        assert!(h.keep_alive);
    }

    #[test]
    fn websocket_upgrade_and_expect() {
        let h = head(b"GET /ws HTTP/1.1\r\nHost: a\r\nConnection: Upgrade\r\nUpgrade: websocket\r\n\r\n");
        assert!(h.upgrade.is_some());
        let h = head(b"GET /ws HTTP/1.1\r\nHost: a\r\nUpgrade: websocket\r\n\r\n");
        assert!(
            h.upgrade.is_none(),
            "Upgrade without Connection: upgrade is not an upgrade"
        );
        let h = head(b"POST / HTTP/1.1\r\nHost: a\r\nExpect: 100-Continue\r\nContent-Length: 3\r\n\r\n");
        assert!(h.expect_continue);
    }

    #[test]
    fn methods_and_forms() {
        assert_eq!(
            defensive(b"CONNECT a:443 HTTP/1.1\r\nHost: a:443\r\n\r\n"),
            "405 ConnectNotSupported"
        );
        assert_eq!(defensive(b"OPTIONS * HTTP/1.1\r\nHost: a\r\n\r\n"), "forward");
        assert_eq!(defensive(b"GET * HTTP/1.1\r\nHost: a\r\n\r\n"), "400 BadUri");
        assert_eq!(
            defensive(b"GET relative HTTP/1.1\r\nHost: a\r\n\r\n"),
            "400 BadUri"
        );
    }

    #[test]
    fn xff_count() {
        let h = head(b"GET / HTTP/1.1\r\nHost: a\r\nX-Forwarded-For: 1.1.1.1, 2.2.2.2\r\nX-Forwarded-For: 3.3.3.3\r\n\r\n");
        assert_eq!(h.xff_addresses, 3);
    }

    #[test]
    fn head_requests_are_recognised_before_their_head_is_read() {
        assert!(starts_head_request(b"HEAD /x"));
        assert!(starts_head_request(b"\r\nHEAD /x"));
        assert!(!starts_head_request(b"GET /x"));
        assert!(!starts_head_request(b"HEADER"));
    }
}

/// The cost of reading a typical compliant head (fast path plus classification). Prints,
/// asserts nothing: `cargo test --release -p hostalb-proxy --lib parse_cost -- --ignored
/// --nocapture`.
#[cfg(test)]
mod parse_cost {
    use super::*;

    const REQUEST: &[u8] = b"POST /api/v1/items?id=42 HTTP/1.1\r\nHost: api.example.com\r\n\
User-Agent: Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36\r\nAccept: application/json, text/plain, */*\r\n\
Accept-Encoding: gzip, deflate, br\r\nAccept-Language: en-US,en;q=0.9\r\nCache-Control: no-cache\r\n\
Connection: keep-alive\r\nContent-Type: application/json\r\nContent-Length: 2\r\n\
Cookie: session=abc123; theme=dark\r\nX-Request-Id: 7f1c2b3a-1111-2222-3333-444455556666\r\n\r\n";

    #[test]
    #[ignore]
    fn typical_head() {
        let mut once = BytesMut::from(REQUEST);
        let head = parse_with(&mut once, &mut Vec::new(), DesyncMitigationMode::Defensive);
        assert!(matches!(head, Ok(Some(h)) if h.refusal.is_none() && h.desync.is_compliant()));
        let mut spare = Vec::new();
        let mut best = u128::MAX;
        for _round in 0..7 {
            let n = 500_000u128;
            let started = std::time::Instant::now();
            for _ in 0..n {
                let mut buf = BytesMut::from(REQUEST);
                let head = parse_with(&mut buf, &mut spare, DesyncMitigationMode::Defensive);
                spare = std::hint::black_box(head)
                    .ok()
                    .flatten()
                    .map(|h| h.fields)
                    .unwrap_or_default();
            }
            best = best.min(started.elapsed().as_nanos() / n);
        }
        println!("ns per head (best of 7 rounds of 500k): {best}");
    }
}
