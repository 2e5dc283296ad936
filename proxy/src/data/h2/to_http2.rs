//! The forward of an HTTP/2 stream to an `HTTP2` or `GRPC` target group: the request
//! head for the target is the one the HTTP/1 forward writes (ALB's `Host`,
//! `X-Forwarded-For`/`-Proto`/`-Port`, `X-Amzn-Trace-Id`, hop-by-hop fields dropped,
//! transforms applied), read back into an HTTP/2 head, and the stream is proxied by
//! [`crate::data::h2_upstream::proxy`] over the target's pooled multiplexed connections,
//! data and trailers both ways.
//!
//! The retry policy is the HTTP/1 forward's ([`crate::data::retry`]): the body is lent
//! to each attempt, and is whole again after a failure that reached nothing.

use std::sync::Arc;
use std::time::Instant;

use hostalb_config::TargetGroupProtocol;
use http::header::{HeaderName, HeaderValue, SET_COOKIE};

use super::stream::H2Stream;
use crate::data::context::RequestCx;
use crate::data::errors::{ErrorKind, ProxyError};
use crate::data::forward;
use crate::data::h2_upstream;
use crate::data::retry::RetryPolicy;
use crate::http1::FieldKind;
use crate::http1::request::HeadError;
use crate::model::target_group::GroupRt;

/// Forwards the stream in `cx`/`s` to a target of `group`. `out`: the HTTP/1.1 request
/// head hostalb would send (its request line and fields become the HTTP/2 head);
/// `set_cookie`: group stickiness `Set-Cookie` lines for the response.
pub(crate) async fn forward(
    cx: &mut RequestCx<'_>,
    s: &mut H2Stream,
    group: &Arc<GroupRt>,
    set_cookie: Vec<u8>,
    out: &[u8],
) -> Result<(), ProxyError> {
    let (shared, listener, head) = (cx.shared, cx.listener, cx.head);
    let tls = group.cfg.protocol == TargetGroupProtocol::Https;
    // `te: trailers` is the one TE HTTP/2 allows, and gRPC servers look for it.
    let te_trailers = head
        .values_of(FieldKind::Te)
        .flat_map(crate::http1::list_elements)
        .any(|t| t.eq_ignore_ascii_case(b"trailers"));
    let request = || {
        let mut request = h2_request(out)
            .ok_or_else(|| ProxyError::new(ErrorKind::BadHead(HeadError::new(400, "BadHeader"))))?;
        if te_trailers {
            request
                .headers_mut()
                .insert(http::header::TE, HeaderValue::from_static("trailers"));
        }
        Ok::<_, ProxyError>(request)
    };
    let H2Stream { respond, body, .. } = s;
    let Some(body) = body.as_mut() else {
        return Err(ProxyError::new(ErrorKind::ClientClosed));
    };
    // The body is lent to each attempt: after a failure that reached nothing it is whole
    // and can go to another target.
    let retry = RetryPolicy::new(head, head.body.is_empty(), group.cfg.retry_idempotent);
    let mut attempts = forward::Attempts::new(retry, forward::sticky_target(shared, group, head));
    let mut head_bytes = 0usize;
    let (target, proxied) = loop {
        let (target, inflight) = attempts.next(shared, group, &mut cx.rec)?;
        cx.rec.dispatched = Some(Instant::now());
        let mut on_head = |parts: &mut http::response::Parts| {
            let mut cookies = set_cookie.clone();
            let sets = |prefix: &[u8]| {
                parts
                    .headers
                    .get_all(SET_COOKIE)
                    .iter()
                    .any(|v| v.as_bytes().starts_with(prefix))
            };
            forward::write_target_cookies_by(shared, group, &target, head, &sets, &mut cookies);
            for line in cookies.split(|b| *b == b'\n') {
                let line = line.strip_suffix(b"\r").unwrap_or(line);
                if let Some(value) = line.strip_prefix(b"Set-Cookie: ") {
                    if let Ok(v) = HeaderValue::from_bytes(value) {
                        parts.headers.append(SET_COOKIE, v);
                    }
                }
            }
            head_bytes = 16
                + parts
                    .headers
                    .iter()
                    .map(|(n, v)| n.as_str().len() + v.len() + 4)
                    .sum::<usize>();
        };
        let proxied = h2_upstream::proxy(
            &target,
            tls,
            request()?,
            &mut *body,
            respond,
            &mut on_head,
            listener.cfg.idle_timeout,
            attempts.retrying(),
        )
        .await;
        drop(inflight);
        match proxied {
            Ok(p) => break (target, p),
            Err(failure) => attempts.failed(group, &target, failure, &mut cx.rec)?,
        }
    };
    let p = proxied;
    let response_time_us = p.answered_at.saturating_duration_since(p.sent_at).as_micros() as u64;
    group.state.metrics.responses.record(p.status, response_time_us);
    target.metrics.responses.record(p.status, response_time_us);
    cx.rec.target_status = Some(p.status);
    cx.rec.status = p.status;
    if cx.logging {
        cx.rec.dispatched = Some(p.sent_at);
        cx.rec.answered = Some(p.answered_at);
        cx.rec.replied = Some(p.answered_at);
    }
    s.received += p.request_bytes;
    s.sent += head_bytes as u64 + p.response_bytes;
    if !p.complete {
        cx.rec.error = Some(p.cut.unwrap_or("ResponseCut"));
    }
    Ok(())
}

/// The HTTP/2 request for an HTTP/1.1 head hostalb wrote: method and target from the
/// request line, `:authority` from `Host`, every other field lower-cased, except the
/// chunked framing HTTP/2 does not use. `None` when the head is not one hostalb writes.
fn h2_request(out: &[u8]) -> Option<http::Request<()>> {
    let text = out.strip_suffix(b"\r\n\r\n").unwrap_or(out);
    let mut lines = text
        .split(|b| *b == b'\n')
        .map(|l| l.strip_suffix(b"\r").unwrap_or(l));
    let request_line = lines.next()?;
    let mut parts = request_line.splitn(3, |b| *b == b' ');
    let method = http::Method::from_bytes(parts.next()?).ok()?;
    let target = parts.next()?;
    let mut req = http::Request::new(());
    *req.method_mut() = method;
    let mut authority = None;
    for line in lines {
        let colon = memchr::memchr(b':', line)?;
        let (name, value) = (&line[..colon], crate::http1::trim_ows(&line[colon + 1..]));
        if name.eq_ignore_ascii_case(b"host") {
            authority = Some(value);
            continue;
        }
        if name.eq_ignore_ascii_case(b"transfer-encoding") {
            continue;
        }
        let (Ok(n), Ok(v)) = (HeaderName::from_bytes(name), HeaderValue::from_bytes(value)) else {
            continue;
        };
        req.headers_mut().append(n, v);
    }
    let mut uri = http::uri::Builder::new().scheme("http");
    if let Some(a) = authority {
        uri = uri.authority(a);
    }
    *req.uri_mut() = uri.path_and_query(target).build().ok()?;
    Some(req)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_http1_head_becomes_an_http2_head() {
        let out = b"POST /pkg.Svc/Call?x=1 HTTP/1.1\r\nHost: api.example:8443\r\ncontent-type: application/grpc\r\nte: trailers\r\nX-Forwarded-For: 10.0.0.1\r\nX-Forwarded-Proto: https\r\nX-Forwarded-Port: 8443\r\nX-Amzn-Trace-Id: Root=1-2-3\r\nTransfer-Encoding: chunked\r\n\r\n";
        let req = h2_request(out).unwrap_or_else(|| panic!("a request"));
        assert_eq!(req.method(), http::Method::POST);
        assert_eq!(
            req.uri().authority().map(|a| a.as_str()),
            Some("api.example:8443")
        );
        assert_eq!(
            req.uri().path_and_query().map(|p| p.as_str()),
            Some("/pkg.Svc/Call?x=1")
        );
        let h = req.headers();
        assert_eq!(h["x-forwarded-for"], "10.0.0.1");
        assert_eq!(h["x-forwarded-proto"], "https");
        assert_eq!(h["x-forwarded-port"], "8443");
        assert_eq!(h["x-amzn-trace-id"], "Root=1-2-3");
        assert_eq!(h["content-type"], "application/grpc");
        assert!(h.get("transfer-encoding").is_none() && h.get("host").is_none());
    }
}
