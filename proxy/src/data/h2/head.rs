//! An HTTP/2 request head as the HTTP/1 codec's [`RequestHead`]: `:method :path
//! HTTP/1.1`, `Host` from `:authority`, the fields as they came (lower-case, as HTTP/2
//! has them; `cookie` fields joined with `; ` as RFC 9113 §8.2.3 says), and
//! `transfer-encoding: chunked` when a body follows without a `content-length`. The text
//! is parsed by [`crate::http1::request::parse_with`], so ALB's limits, desync
//! classification and field kinds are the same for both protocols, and the forward
//! writes its HTTP/1.1 request from the same head.
//!
//! The `h2` crate has already refused what HTTP/2 forbids (upper-case names,
//! connection-specific fields, CR/LF/NUL in values); what HTTP/1 refuses on top is
//! refused here the same way.

use bytes::{BufMut, BytesMut};
use hostalb_config::DesyncMitigationMode;

use crate::http1::fields::HeaderField;
use crate::http1::request::{self, HeadError, RequestHead};

/// The request's content type says gRPC (`application/grpc`, `application/grpc+proto`...).
pub(crate) fn is_grpc(parts: &http::request::Parts) -> bool {
    parts
        .headers
        .get(http::header::CONTENT_TYPE)
        .is_some_and(|v| v.as_bytes().starts_with(b"application/grpc"))
}

/// Translates and parses the head of an HTTP/2 request. `end_stream`: the HEADERS frame
/// ended the stream (no body).
pub(crate) fn request_head(
    parts: &http::request::Parts,
    end_stream: bool,
    mode: DesyncMitigationMode,
    spare: &mut Vec<HeaderField>,
) -> Result<RequestHead, HeadError> {
    let mut buf = BytesMut::with_capacity(256);
    write_http1(&mut buf, parts, end_stream);
    match request::parse_with(&mut buf, spare, mode) {
        Ok(Some(head)) => Ok(head),
        Ok(None) => Err(HeadError::new(400, "BadHeader")),
        Err(e) => Err(e),
    }
}

/// The HTTP/1.1 text of an HTTP/2 request head.
fn write_http1(out: &mut BytesMut, parts: &http::request::Parts, end_stream: bool) {
    out.put_slice(parts.method.as_str().as_bytes());
    out.put_u8(b' ');
    match parts.uri.path_and_query() {
        Some(pq) if parts.method != http::Method::CONNECT => out.put_slice(pq.as_str().as_bytes()),
        _ => {
            if let Some(a) = parts.uri.authority() {
                out.put_slice(a.as_str().as_bytes());
            }
        }
    }
    out.put_slice(b" HTTP/1.1\r\n");
    let authority = parts.uri.authority();
    if let Some(a) = authority {
        out.put_slice(b"host: ");
        out.put_slice(a.as_str().as_bytes());
        out.put_slice(b"\r\n");
    }
    let mut cookies = 0;
    for (name, value) in &parts.headers {
        if *name == http::header::COOKIE {
            cookies += 1;
            continue;
        }
        // `:authority` wins over a `host` field (RFC 9113 §8.3.1).
        if *name == http::header::HOST && authority.is_some() {
            continue;
        }
        out.put_slice(name.as_str().as_bytes());
        out.put_slice(b": ");
        out.put_slice(value.as_bytes());
        out.put_slice(b"\r\n");
    }
    if cookies > 0 {
        out.put_slice(b"cookie: ");
        for (i, value) in parts.headers.get_all(http::header::COOKIE).iter().enumerate() {
            if i > 0 {
                out.put_slice(b"; ");
            }
            out.put_slice(value.as_bytes());
        }
        out.put_slice(b"\r\n");
    }
    if !end_stream && !parts.headers.contains_key(http::header::CONTENT_LENGTH) {
        out.put_slice(b"transfer-encoding: chunked\r\n");
    }
    out.put_slice(b"\r\n");
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::http1::BodyKind;

    fn parts(req: http::Request<()>) -> http::request::Parts {
        req.into_parts().0
    }

    #[test]
    fn pseudo_fields_become_the_request_line_and_host() {
        let p = parts(
            http::Request::post("https://api.example:8443/a/b?x=1")
                .header("x-one", "1")
                .header("cookie", "a=1")
                .header("cookie", "b=2")
                .header("content-type", "application/grpc+proto")
                .body(())
                .unwrap_or_default(),
        );
        let head = request_head(&p, false, DesyncMitigationMode::Defensive, &mut Vec::new())
            .unwrap_or_else(|e| panic!("{e:?}"));
        assert_eq!(head.method(), b"POST");
        assert_eq!(head.path(), b"/a/b");
        assert_eq!(head.query(), Some(&b"x=1"[..]));
        assert_eq!(head.host(), Some(&b"api.example:8443"[..]));
        assert_eq!(
            head.values_named(b"cookie").collect::<Vec<_>>(),
            vec![&b"a=1; b=2"[..]]
        );
        assert_eq!(head.body, BodyKind::Chunked);
        assert!(is_grpc(&p));
    }

    #[test]
    fn a_length_frames_the_body_and_no_body_is_empty() {
        let p = parts(
            http::Request::put("https://h/x")
                .header("content-length", "5")
                .body(())
                .unwrap_or_default(),
        );
        let head = request_head(&p, false, DesyncMitigationMode::Defensive, &mut Vec::new())
            .unwrap_or_else(|e| panic!("{e:?}"));
        assert_eq!(head.body, BodyKind::Length(5));
        let p = parts(http::Request::get("https://h/").body(()).unwrap_or_default());
        let head = request_head(&p, true, DesyncMitigationMode::Defensive, &mut Vec::new())
            .unwrap_or_else(|e| panic!("{e:?}"));
        assert_eq!(head.body, BodyKind::Empty);
        assert!(!is_grpc(&p));
    }

    #[test]
    fn limits_are_http1s() {
        let mut req = http::Request::get("https://h/");
        for i in 0..150 {
            req = req.header(format!("x-{i}"), "v");
        }
        let p = parts(req.body(()).unwrap_or_default());
        let e = request_head(&p, true, DesyncMitigationMode::Defensive, &mut Vec::new()).err();
        assert_eq!(e.map(|e| e.status), Some(431));
    }
}
