//! Response heads from targets. A head that is malformed, over 32 K, or ambiguously framed
//! makes the exchange a 502 and the upstream connection is never reused.

use bytes::{Bytes, BytesMut};

use super::fields::{FieldKind, HeaderField, Span, mark_connection_listed};
use super::{
    BodyKind, MAX_RESPONSE_FIELDS, MAX_RESPONSE_HEAD, Version, find_bare_lf, list_elements,
    parse_content_length,
};

/// Why a response head was refused (always answered with 502).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct BadResponse(pub(crate) &'static str);

#[derive(Debug)]
pub(crate) struct ResponseHead {
    pub(crate) buf: Bytes,
    pub(crate) status: u16,
    pub(crate) reason: Span,
    pub(crate) fields: Vec<HeaderField>,
    pub(crate) body: BodyKind,
    /// The target will keep the connection open after this response.
    pub(crate) keep_alive: bool,
}

impl ResponseHead {
    pub(crate) fn reason(&self) -> &[u8] {
        self.reason.get(&self.buf)
    }

    pub(crate) fn is_informational(&self) -> bool {
        (100..200).contains(&self.status)
    }
}

/// Parses one response head from the front of `buf`. `request_is_head` and the status
/// decide whether a body follows (RFC 9112 §6.3).
#[cfg(test)]
pub(crate) fn parse(buf: &mut BytesMut, request_is_head: bool) -> Result<Option<ResponseHead>, BadResponse> {
    parse_with(buf, request_is_head, &mut Vec::new())
}

/// Parses a response head, taking the field vector from `spare` (handed back by the
/// connection after each exchange).
pub(crate) fn parse_with(
    buf: &mut BytesMut,
    request_is_head: bool,
    spare: &mut Vec<HeaderField>,
) -> Result<Option<ResponseHead>, BadResponse> {
    let mut raw = [httparse::EMPTY_HEADER; MAX_RESPONSE_FIELDS];
    let mut resp = httparse::Response::new(&mut raw);
    let len = match resp.parse(buf) {
        Ok(httparse::Status::Complete(n)) => n,
        Ok(httparse::Status::Partial) => {
            if buf.len() > MAX_RESPONSE_HEAD {
                return Err(BadResponse("ResponseHeadTooLarge"));
            }
            return Ok(None);
        }
        Err(httparse::Error::TooManyHeaders) => return Err(BadResponse("TooManyResponseHeaders")),
        Err(_) => return Err(BadResponse("MalformedResponse")),
    };
    if len > MAX_RESPONSE_HEAD {
        return Err(BadResponse("ResponseHeadTooLarge"));
    }
    let bytes: &[u8] = buf;
    if find_bare_lf(&bytes[..len]).is_some() {
        return Err(BadResponse("MalformedResponse"));
    }
    let (Some(code), Some(minor)) = (resp.code, resp.version) else {
        return Err(BadResponse("MalformedResponse"));
    };
    if !(100..=599).contains(&code) {
        return Err(BadResponse("BadStatusCode"));
    }
    let reason = resp
        .reason
        .map(|r| Span::of(bytes, r.as_bytes()))
        .unwrap_or_default();
    let version = if minor == 1 {
        Version::Http11
    } else {
        Version::Http10
    };
    let mut fields = std::mem::take(spare);
    fields.clear();
    fields.reserve(resp.headers.len());
    for h in resp.headers.iter() {
        fields.push(HeaderField {
            name: Span::of(bytes, h.name.as_bytes()),
            value: Span::of(bytes, h.value),
            kind: FieldKind::of(h.name.as_bytes()),
            connection_listed: false,
        });
    }

    let mut content_length: Option<u64> = None;
    let mut content_lengths = 0;
    let mut te = false;
    let mut te_chunked_last = false;
    let mut close = false;
    let mut keep_alive_token = false;
    let mut listed = Vec::new();
    for f in &fields {
        let value = f.value.get(bytes);
        match f.kind {
            FieldKind::ContentLength => {
                content_lengths += 1;
                let n = parse_content_length(value).ok_or(BadResponse("BadContentLength"))?;
                content_length = Some(n);
            }
            FieldKind::TransferEncoding => {
                te = true;
                for coding in list_elements(value) {
                    te_chunked_last = coding.eq_ignore_ascii_case(b"chunked");
                }
            }
            FieldKind::Connection => {
                for token in list_elements(value) {
                    if token.eq_ignore_ascii_case(b"close") {
                        close = true;
                    } else if token.eq_ignore_ascii_case(b"keep-alive") {
                        keep_alive_token = true;
                    } else if !token.is_empty() && !token.eq_ignore_ascii_case(b"upgrade") {
                        listed.push(Span::of(bytes, token));
                    }
                }
            }
            _ => {}
        }
    }
    mark_connection_listed(bytes, &mut fields, &listed);
    if content_lengths > 1 {
        return Err(BadResponse("MultipleContentLength"));
    }
    if te && content_length.is_some() {
        return Err(BadResponse("BothTeClPresent"));
    }
    if te && version == Version::Http10 {
        return Err(BadResponse("UndefinedTransferEncodingSemantics"));
    }
    let mut keep_alive = match version {
        Version::Http11 => !close,
        Version::Http10 => keep_alive_token && !close,
    };
    let body = if request_is_head || code == 204 || code == 304 || (100..200).contains(&code) {
        BodyKind::Empty
    } else if te {
        if te_chunked_last {
            BodyKind::Chunked
        } else {
            keep_alive = false;
            BodyKind::UntilClose
        }
    } else if let Some(n) = content_length {
        BodyKind::Length(n)
    } else {
        keep_alive = false;
        BodyKind::UntilClose
    };
    let head_bytes = buf.split_to(len).freeze();
    Ok(Some(ResponseHead {
        buf: head_bytes,
        status: code,
        reason,
        fields,
        body,
        keep_alive,
    }))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse_all(text: &[u8], head: bool) -> Result<Option<ResponseHead>, BadResponse> {
        let mut buf = BytesMut::from(text);
        parse(&mut buf, head)
    }

    #[test]
    fn framing() {
        let r = parse_all(b"HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\nhello", false)
            .unwrap()
            .unwrap();
        assert_eq!((r.status, r.body, r.keep_alive), (200, BodyKind::Length(5), true));
        assert_eq!(r.reason(), b"OK");
        let r = parse_all(b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n", false)
            .unwrap()
            .unwrap();
        assert_eq!(r.body, BodyKind::Chunked);
        let r = parse_all(b"HTTP/1.1 200 OK\r\n\r\n", false).unwrap().unwrap();
        assert_eq!((r.body, r.keep_alive), (BodyKind::UntilClose, false));
        let r = parse_all(b"HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\n", true)
            .unwrap()
            .unwrap();
        assert_eq!(r.body, BodyKind::Empty, "HEAD responses have no body");
        let r = parse_all(b"HTTP/1.1 304 Not Modified\r\nContent-Length: 5\r\n\r\n", false)
            .unwrap()
            .unwrap();
        assert_eq!(r.body, BodyKind::Empty);
        let r = parse_all(b"HTTP/1.0 200 OK\r\nContent-Length: 1\r\n\r\n", false)
            .unwrap()
            .unwrap();
        assert!(!r.keep_alive);
        let r = parse_all(
            b"HTTP/1.1 200 OK\r\nConnection: close\r\nContent-Length: 1\r\n\r\n",
            false,
        )
        .unwrap()
        .unwrap();
        assert!(!r.keep_alive);
    }

    #[test]
    fn ambiguous_responses_are_refused() {
        for text in [
            &b"HTTP/1.1 200 OK\r\nContent-Length: 5\r\nTransfer-Encoding: chunked\r\n\r\n"[..],
            b"HTTP/1.1 200 OK\r\nContent-Length: 5\r\nContent-Length: 5\r\n\r\n",
            b"HTTP/1.1 200 OK\r\nContent-Length: 5\r\nContent-Length: 6\r\n\r\n",
            b"HTTP/1.1 200 OK\r\nContent-Length: x\r\n\r\n",
            b"HTTP/1.1 2000 OK\r\n\r\n",
            b"HTTP/1.1 200 OK\nContent-Length: 1\r\n\r\n",
            b"garbage\r\n\r\n",
        ] {
            assert!(
                parse_all(text, false).is_err(),
                "{:?}",
                String::from_utf8_lossy(text)
            );
        }
    }

    #[test]
    fn oversized_head_is_refused() {
        let text = format!("HTTP/1.1 200 OK\r\nX: {}\r\n", "v".repeat(MAX_RESPONSE_HEAD));
        assert_eq!(
            parse_all(text.as_bytes(), false).err(),
            Some(BadResponse("ResponseHeadTooLarge"))
        );
    }
}
