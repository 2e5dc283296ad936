//! Header fields as spans into a message head, classified once at parse time so that later
//! phases test a small enum instead of comparing names again.

/// A byte range into a head buffer (heads are at most 64 K, so `u32` is plenty).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub(crate) struct Span {
    pub(crate) start: u32,
    pub(crate) end: u32,
}

impl Span {
    pub(crate) fn new(start: usize, end: usize) -> Span {
        Span {
            start: start as u32,
            end: end as u32,
        }
    }

    /// The span of `part`, a sub-slice of `whole`.
    pub(crate) fn of(whole: &[u8], part: &[u8]) -> Span {
        let start = part.as_ptr() as usize - whole.as_ptr() as usize;
        Span::new(start, start + part.len())
    }

    #[inline]
    pub(crate) fn get(self, buf: &[u8]) -> &[u8] {
        &buf[self.start as usize..self.end as usize]
    }

    pub(crate) fn len(self) -> usize {
        (self.end - self.start) as usize
    }

    pub(crate) fn is_empty(self) -> bool {
        self.end == self.start
    }
}

/// The fields hostalb treats specially. Everything else is `Other` and passes through.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum FieldKind {
    Other,
    Host,
    ContentLength,
    TransferEncoding,
    Connection,
    KeepAlive,
    ProxyConnection,
    Te,
    Trailer,
    Upgrade,
    Expect,
    XForwardedFor,
    XForwardedProto,
    XForwardedPort,
    XAmznTraceId,
    Cookie,
    SetCookie,
    /// A request field whose name imitates `Transfer-Encoding` (desync `SuspiciousHeader`).
    LooksLikeTransferEncoding,
    /// A request field whose name imitates `Content-Length` (desync `SuspiciousHeader`).
    LooksLikeContentLength,
    /// A request field with an empty or blank name (desync `EmptyHeader`).
    Nameless,
}

impl FieldKind {
    /// Classifies a field name (case-insensitively), deciding by length first so that most
    /// names are rejected after one comparison.
    #[inline]
    pub(crate) fn of(name: &[u8]) -> FieldKind {
        let is = |lit: &[u8]| name.eq_ignore_ascii_case(lit);
        match name.len() {
            2 if is(b"te") => FieldKind::Te,
            4 if is(b"host") => FieldKind::Host,
            6 if is(b"cookie") => FieldKind::Cookie,
            6 if is(b"expect") => FieldKind::Expect,
            7 if is(b"trailer") => FieldKind::Trailer,
            7 if is(b"upgrade") => FieldKind::Upgrade,
            10 if is(b"connection") => FieldKind::Connection,
            10 if is(b"keep-alive") => FieldKind::KeepAlive,
            10 if is(b"set-cookie") => FieldKind::SetCookie,
            14 if is(b"content-length") => FieldKind::ContentLength,
            15 if is(b"x-amzn-trace-id") => FieldKind::XAmznTraceId,
            15 if is(b"x-forwarded-for") => FieldKind::XForwardedFor,
            16 if is(b"proxy-connection") => FieldKind::ProxyConnection,
            16 if is(b"x-forwarded-port") => FieldKind::XForwardedPort,
            17 if is(b"transfer-encoding") => FieldKind::TransferEncoding,
            17 if is(b"x-forwarded-proto") => FieldKind::XForwardedProto,
            _ => FieldKind::Other,
        }
    }

    /// Hop-by-hop fields (RFC 9110 §7.6.1) that never cross the proxy as they came.
    /// Framing fields are included: hostalb always writes its own; so are look-alikes of
    /// them and nameless fields, which a target could read as framing or cannot read.
    pub(crate) fn is_hop_by_hop(self) -> bool {
        matches!(
            self,
            FieldKind::Connection
                | FieldKind::LooksLikeTransferEncoding
                | FieldKind::LooksLikeContentLength
                | FieldKind::Nameless
                | FieldKind::KeepAlive
                | FieldKind::ProxyConnection
                | FieldKind::Te
                | FieldKind::Trailer
                | FieldKind::Upgrade
                | FieldKind::TransferEncoding
                | FieldKind::ContentLength
        )
    }
}

/// One header field of a parsed head.
#[derive(Debug, Clone, Copy)]
pub(crate) struct HeaderField {
    pub(crate) name: Span,
    pub(crate) value: Span,
    pub(crate) kind: FieldKind,
    /// Named in the message's `Connection` field: hop-by-hop, removed when forwarding.
    pub(crate) connection_listed: bool,
}

/// Marks the fields named by `Connection` tokens (other than the standard options) so that
/// forwarding drops them, as RFC 9110 §7.6.1 requires.
pub(crate) fn mark_connection_listed(buf: &[u8], fields: &mut [HeaderField], tokens: &[Span]) {
    if tokens.is_empty() {
        return;
    }
    for f in fields.iter_mut() {
        let name = f.name.get(buf);
        if tokens.iter().any(|t| t.get(buf).eq_ignore_ascii_case(name)) {
            f.connection_listed = true;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn classify_is_case_insensitive_and_exact() {
        assert_eq!(FieldKind::of(b"Host"), FieldKind::Host);
        assert_eq!(FieldKind::of(b"HOST"), FieldKind::Host);
        assert_eq!(FieldKind::of(b"Hosts"), FieldKind::Other);
        assert_eq!(FieldKind::of(b"Transfer-Encoding"), FieldKind::TransferEncoding);
        assert_eq!(FieldKind::of(b"x-forwarded-for"), FieldKind::XForwardedFor);
        assert_eq!(FieldKind::of(b"X-Amzn-Trace-Id"), FieldKind::XAmznTraceId);
        assert_eq!(FieldKind::of(b"content-type"), FieldKind::Other);
    }

    #[test]
    fn span_of_subslice() {
        let whole = b"abcdef";
        let s = Span::of(whole, &whole[2..4]);
        assert_eq!(s.get(whole), b"cd");
        assert_eq!(s.len(), 2);
    }
}
