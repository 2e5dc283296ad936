//! Every answer hostalb makes itself: ALB's errors, fixed responses and redirects.
//!
//! [`error`] is the one place where an error becomes the client's answer: it records and
//! counts it, writes ALB's page, and decides what happens to a request body hostalb did
//! not forward. A body that has fully arrived (or arrives cheaply) is dropped and the
//! connection stays open; otherwise the answer says `Connection: close`, and the session
//! closes the connection gracefully ([`linger`]), so the client reads the answer instead
//! of a reset.

use std::time::Duration;

use hostalb_config::{FixedResponse, ListenerProtocol, Redirect, RedirectProtocol, TemplatePart};
use tokio::io::{AsyncReadExt, AsyncWrite, AsyncWriteExt};

use crate::data::body::{BodyTransfer, flush};
use crate::data::conn::{ClientConn, ClientRead, Next, Record};
use crate::data::context::RequestCx;
use crate::data::error_log;
use crate::data::errors::{ErrorKind, ProxyError};
use crate::data::h2::stream::H2Stream;
use crate::data::respond::{self, Own};
use crate::http1::request::{self, RequestHead};
use crate::model::metrics::inc;
use crate::model::rules;
use crate::model::shared::Shared;
use crate::model::snapshot::ListenerRt;

/// A request body this small is read and dropped when hostalb answers without
/// forwarding, so the connection can stay open; a larger one closes the connection.
const DISCARDABLE_BODY: usize = 64 * 1024;
/// ALB counts a Location longer than this as `HTTP_Redirect_Url_Limit_Exceeded_Count`
/// and answers 507.
const MAX_REDIRECT_URL: usize = 8 * 1024;
/// A connection closed with request bytes still unread is shut for writing, then read
/// and dropped this long at most before it closes: closing with unread bytes would
/// reset it, and a reset can destroy the answer before the client reads it (nginx's
/// lingering close does the same).
const LINGER_TIME: Duration = Duration::from_secs(2);
/// ... and this many bytes at most.
const LINGER_BYTES: usize = 1024 * 1024;

/// What an answer does with a request body that was not forwarded.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Drain {
    /// The client is sending it: read and drop a small rest, waiting for it within the idle
    /// timeout (fixed responses and redirects).
    Wait,
    /// Answer at once: drop only what has already arrived (errors; a target that failed
    /// must not keep the client waiting for its own body).
    Available,
}

/// Whether the connection may stay open after this exchange (before any error).
pub(crate) fn keep_alive_allowed<R, W>(
    shared: &Shared,
    listener: &ListenerRt,
    c: &ClientConn<R, W>,
    head: &RequestHead,
) -> bool {
    head.keep_alive
        && !shared.is_draining()
        && crate::clock::coarse_ms().saturating_sub(c.opened_ms)
            < listener.cfg.client_keep_alive.as_millis() as u64
}

/// Answers `e` for the request in `cx`, as ALB does.
pub(crate) async fn error<R, W>(cx: &mut RequestCx<'_>, c: &mut ClientConn<R, W>, e: ProxyError) -> Next
where
    R: ClientRead,
    W: AsyncWrite + Unpin,
{
    let req = Some((cx.head, &mut cx.body, cx.continue_sent));
    write_error(cx.shared, cx.listener, c, req, &e, &mut cx.rec).await
}

/// Answers a request head that was refused before it could be routed.
pub(crate) async fn refused<R, W>(
    shared: &Shared,
    listener: &ListenerRt,
    c: &mut ClientConn<R, W>,
    e: &ProxyError,
    rec: &mut Record,
) -> Next
where
    R: ClientRead,
    W: AsyncWrite + Unpin,
{
    write_error(shared, listener, c, None, e, rec).await
}

/// The request an answer is for: its head, its body's progress, and whether hostalb sent
/// `100 Continue` (the client sends an `Expect: 100-continue` body only after it).
type Answered<'a, 'b> = Option<(&'a RequestHead, &'b mut BodyTransfer, bool)>;

/// Records, counts and writes an error answer.
async fn write_error<R, W>(
    shared: &Shared,
    listener: &ListenerRt,
    c: &mut ClientConn<R, W>,
    req: Answered<'_, '_>,
    e: &ProxyError,
    rec: &mut Record,
) -> Next
where
    R: ClientRead,
    W: AsyncWrite + Unpin,
{
    let status = e.status();
    rec.status = status;
    rec.error = Some(e.reason());
    shared.metrics.count_elb_answer(status, e.reason());
    error_log::answered(status, e.reason(), c.peer, rec.target);
    if matches!(e.kind, ErrorKind::ClientClosed) {
        // 460: logged, never sent (the client is gone).
        return Next::Close;
    }
    let body = respond::elb_error_body(status);
    let own = Own {
        status,
        content_type: Some(b"text/html"),
        body: &body,
        close: e.closes_client(),
        server_header: listener.cfg.server_header,
        extra: &[],
    };
    write_own(shared, listener, c, req, own, Drain::Available).await
}

/// Writes an answer hostalb makes itself, dealing with the unread request body as
/// `drain` says.
async fn write_own<R, W>(
    shared: &Shared,
    listener: &ListenerRt,
    c: &mut ClientConn<R, W>,
    req: Answered<'_, '_>,
    own: Own<'_>,
    drain: Drain,
) -> Next
where
    R: ClientRead,
    W: AsyncWrite + Unpin,
{
    let idle = listener.cfg.idle_timeout;
    let mut keep = !own.close;
    let (version, is_head) = match &req {
        Some((h, _, _)) => (h.version, h.is_method(b"HEAD")),
        None => (
            crate::http1::Version::Http11,
            request::starts_head_request(&c.rbuf),
        ),
    };
    if let Some((h, body, continue_sent)) = req {
        keep = keep && keep_alive_allowed(shared, listener, c, h);
        if !body.is_done() {
            if h.expect_continue && !continue_sent {
                // The client waits for `100 Continue` before it sends the body, which
                // never comes: it must not be read as the next request.
                keep = false;
            } else {
                let drained = match drain {
                    Drain::Wait => matches!(
                        body.discard(&mut c.rd, &mut c.rbuf, DISCARDABLE_BODY, idle).await,
                        Ok(true)
                    ),
                    Drain::Available => discard_available(c, body),
                };
                if !drained {
                    keep = false;
                }
            }
        }
    }
    respond::write_own(&mut c.wbuf, &Own { close: !keep, ..own }, version, is_head);
    if flush(&mut c.wr, &mut c.wbuf, idle).await.is_err() {
        return Next::Close;
    }
    if keep { Next::KeepAlive } else { Next::Close }
}

/// Drops the part of the request body that has already arrived, without waiting.
/// Returns whether the body is complete.
fn discard_available<R: ClientRead, W>(c: &mut ClientConn<R, W>, body: &mut BodyTransfer) -> bool {
    let mut sink = bytes::BytesMut::new();
    let mut read = 0;
    loop {
        if body.step_buffered(&mut c.rbuf, &mut sink).is_err() {
            return false;
        }
        sink.clear();
        if body.is_done() {
            return true;
        }
        if read >= DISCARDABLE_BODY {
            return false;
        }
        c.rbuf.reserve(16 * 1024);
        match c.rd.try_read_buf(&mut c.rbuf) {
            Ok(0) | Err(_) => return false,
            Ok(n) => read += n,
        }
    }
}

/// Closes a connection whose request bytes were not all read: shut for writing (the
/// answer is out), then read and drop what the client still sends, bounded in time and
/// bytes, so the close is a FIN and not a reset.
pub(crate) async fn linger<R: ClientRead, W: AsyncWrite + Unpin>(c: &mut ClientConn<R, W>) {
    let _ = tokio::time::timeout(LINGER_TIME, c.wr.shutdown()).await;
    c.rbuf.clear();
    let deadline = tokio::time::Instant::now() + LINGER_TIME;
    let mut read = 0;
    while read < LINGER_BYTES {
        c.rbuf.clear();
        c.rbuf.reserve(16 * 1024);
        match tokio::time::timeout_at(deadline, c.rd.read_buf(&mut c.rbuf)).await {
            Ok(Ok(n)) if n > 0 => read += n,
            _ => break,
        }
    }
    c.rbuf.clear();
}

/// Answers with the rule's fixed response.
pub(crate) async fn fixed<R, W>(cx: &mut RequestCx<'_>, c: &mut ClientConn<R, W>, f: &FixedResponse) -> Next
where
    R: ClientRead,
    W: AsyncWrite + Unpin,
{
    cx.shared.metrics.count_elb_answer(f.status_code, "FixedResponse");
    cx.rec.status = f.status_code;
    let own = Own {
        status: f.status_code,
        content_type: f.content_type.as_deref().map(str::as_bytes),
        body: f.message_body.as_bytes(),
        close: false,
        server_header: cx.listener.cfg.server_header,
        extra: &[],
    };
    let req = Some((cx.head, &mut cx.body, cx.continue_sent));
    write_own(cx.shared, cx.listener, c, req, own, Drain::Wait).await
}

/// Answers with the rule's redirect (507 when the Location would be too long).
pub(crate) async fn redirect<R, W>(cx: &mut RequestCx<'_>, c: &mut ClientConn<R, W>, r: &Redirect) -> Next
where
    R: ClientRead,
    W: AsyncWrite + Unpin,
{
    let (shared, listener) = (cx.shared, cx.listener);
    let location = redirect_location(r, listener.cfg.protocol, c.local.port(), cx.head);
    if location.len() > MAX_REDIRECT_URL {
        inc(&shared.metrics.redirect_url_limit_exceeded);
        let e = ProxyError::new(ErrorKind::RedirectTooLong);
        return error(cx, c, e).await;
    }
    inc(&shared.metrics.redirects);
    shared.metrics.count_elb_answer(r.status_code, "Redirect");
    cx.rec.status = r.status_code;
    if cx.logging {
        cx.rec.redirect = Some(location.as_slice().into());
    }
    let extra: [(&[u8], &[u8]); 1] = [(b"Location", &location)];
    let body = redirect_body(r.status_code);
    let own = Own {
        status: r.status_code,
        content_type: Some(b"text/html"),
        body: body.as_bytes(),
        close: false,
        server_header: listener.cfg.server_header,
        extra: &extra,
    };
    let req = Some((cx.head, &mut cx.body, cx.continue_sent));
    write_own(shared, listener, c, req, own, Drain::Wait).await
}

/// The `Location` of a redirect: `protocol://host:port/path?query`, always with an
/// explicit port, as ALB writes it. Components left unset keep the request's values.
pub(crate) fn redirect_location(
    r: &Redirect,
    listener: ListenerProtocol,
    port: u16,
    head: &RequestHead,
) -> Vec<u8> {
    // `#{protocol}` is the request's protocol; the Location's scheme is the redirect's.
    let request_protocol = match listener {
        ListenerProtocol::Http => "http",
        ListenerProtocol::Https => "https",
    };
    let protocol = match r.protocol {
        RedirectProtocol::Keep => request_protocol,
        RedirectProtocol::Http => "http",
        RedirectProtocol::Https => "https",
    };
    let host_value = head.host().unwrap_or_default();
    let mut host = rules::host_without_port(host_value).to_vec();
    host.make_ascii_lowercase();
    let path = head.path();
    let vars = TemplateVars {
        host: &host,
        path: path.strip_prefix(b"/").unwrap_or(path),
        port,
        protocol: request_protocol,
        query: head.query().unwrap_or_default(),
    };
    let mut out = Vec::with_capacity(64 + path.len());
    out.extend_from_slice(protocol.as_bytes());
    out.extend_from_slice(b"://");
    vars.expand(&r.host.parts, &mut out);
    out.push(b':');
    out.extend_from_slice(r.port.unwrap_or(port).to_string().as_bytes());
    vars.expand(&r.path.parts, &mut out);
    let query_start = out.len() + 1;
    out.push(b'?');
    vars.expand(&r.query.parts, &mut out);
    if out.len() == query_start {
        out.pop();
    }
    out
}

/// The HTTP/2 answers: the same errors, fixed responses and redirects, with the same
/// counting, sent on a stream ([`crate::data::h2`]). An HTTP/2 stream has no body to drain
/// and no connection to close: the `h2` crate ends the request stream itself.
///
/// An error answer to a gRPC request (`content-type: application/grpc*`) is what gRPC
/// clients expect of a proxy: the HTTP status, `content-type: application/grpc`, and
/// `grpc-status` (gRPC's HTTP-to-gRPC mapping of the status) with `grpc-message` in a
/// trailers-only response.
pub(crate) fn h2_error(cx: &mut RequestCx<'_>, s: &mut H2Stream, e: ProxyError) {
    h2_refused(cx.shared, cx.listener, s, &e, &mut cx.rec);
}

/// Answers an HTTP/2 request whose head was refused before it could be routed (or any
/// error: [`h2_error`]).
pub(crate) fn h2_refused(
    shared: &Shared,
    listener: &ListenerRt,
    s: &mut H2Stream,
    e: &ProxyError,
    rec: &mut Record,
) {
    let status = e.status();
    rec.status = status;
    rec.error = Some(e.reason());
    shared.metrics.count_elb_answer(status, e.reason());
    error_log::answered(status, e.reason(), s.peer, rec.target);
    if matches!(e.kind, ErrorKind::ClientClosed) {
        // 460: logged, never sent (the client reset the stream or is gone).
        s.reset(h2::Reason::CANCEL);
        return;
    }
    let body = respond::elb_error_body(status);
    let own = Own {
        status,
        content_type: Some(b"text/html"),
        body: &body,
        close: false,
        server_header: listener.cfg.server_header,
        extra: &[],
    };
    let grpc = s.grpc.then_some(grpc_status(status));
    let resp = h2_head(&own, grpc);
    s.send_own(resp, if grpc.is_some() { b"" } else { own.body });
}

/// Answers an HTTP/2 request with the rule's fixed response.
pub(crate) fn h2_fixed(cx: &mut RequestCx<'_>, s: &mut H2Stream, f: &FixedResponse) {
    cx.shared.metrics.count_elb_answer(f.status_code, "FixedResponse");
    cx.rec.status = f.status_code;
    let own = Own {
        status: f.status_code,
        content_type: f.content_type.as_deref().map(str::as_bytes),
        body: f.message_body.as_bytes(),
        close: false,
        server_header: cx.listener.cfg.server_header,
        extra: &[],
    };
    s.send_own(h2_head(&own, None), own.body);
}

/// Answers an HTTP/2 request with the rule's redirect (507 when the Location would be
/// too long). `port`: the listener port the client connected to.
pub(crate) fn h2_redirect(cx: &mut RequestCx<'_>, s: &mut H2Stream, r: &Redirect, port: u16) {
    let (shared, listener) = (cx.shared, cx.listener);
    let location = redirect_location(r, listener.cfg.protocol, port, cx.head);
    if location.len() > MAX_REDIRECT_URL {
        inc(&shared.metrics.redirect_url_limit_exceeded);
        return h2_error(cx, s, ProxyError::new(ErrorKind::RedirectTooLong));
    }
    inc(&shared.metrics.redirects);
    shared.metrics.count_elb_answer(r.status_code, "Redirect");
    cx.rec.status = r.status_code;
    if cx.logging {
        cx.rec.redirect = Some(location.as_slice().into());
    }
    let extra: [(&[u8], &[u8]); 1] = [(b"location", &location)];
    let body = redirect_body(r.status_code);
    let own = Own {
        status: r.status_code,
        content_type: Some(b"text/html"),
        body: body.as_bytes(),
        close: false,
        server_header: listener.cfg.server_header,
        extra: &extra,
    };
    s.send_own(h2_head(&own, None), own.body);
}

/// The body of a redirect, as ALB writes it.
fn redirect_body(status: u16) -> String {
    format!(
        "<html>\r\n<head><title>{0} {1}</title></head>\r\n<body>\r\n<center><h1>{0} {1}</h1></center>\r\n</body>\r\n</html>\r\n",
        status,
        respond::reason_phrase(status)
    )
}

/// The HTTP/2 response head of an answer hostalb makes itself. `grpc`: the gRPC status of
/// an error answer to a gRPC request (a trailers-only response without the HTML page).
fn h2_head(own: &Own<'_>, grpc: Option<u32>) -> http::Response<()> {
    use http::header::{CONTENT_LENGTH, CONTENT_TYPE, DATE, HeaderName, HeaderValue, SERVER};
    let mut resp = http::Response::new(());
    *resp.status_mut() = http::StatusCode::from_u16(own.status).unwrap_or(http::StatusCode::BAD_GATEWAY);
    let h = resp.headers_mut();
    if own.server_header {
        h.insert(SERVER, HeaderValue::from_static("awselb/2.0"));
    }
    crate::clock::with_http_date(|d| {
        if let Ok(v) = HeaderValue::from_bytes(d) {
            h.insert(DATE, v);
        }
    });
    match grpc {
        Some(code) => {
            h.insert(CONTENT_TYPE, HeaderValue::from_static("application/grpc"));
            h.insert(HeaderName::from_static("grpc-status"), HeaderValue::from(code));
            let message = format!("{} {}", own.status, respond::reason_phrase(own.status));
            if let Ok(v) = HeaderValue::from_str(&message) {
                h.insert(HeaderName::from_static("grpc-message"), v);
            }
        }
        None => {
            if let Some(ct) = own.content_type.and_then(|ct| HeaderValue::from_bytes(ct).ok()) {
                h.insert(CONTENT_TYPE, ct);
            }
            h.insert(CONTENT_LENGTH, HeaderValue::from(own.body.len()));
        }
    }
    for (name, value) in own.extra {
        if let (Ok(n), Ok(v)) = (HeaderName::from_bytes(name), HeaderValue::from_bytes(value)) {
            h.append(n, v);
        }
    }
    resp
}

/// gRPC's status for an HTTP status a proxy answered with (gRPC's
/// `doc/http-grpc-status-mapping.md`): 400 INTERNAL, 401 UNAUTHENTICATED, 403
/// PERMISSION_DENIED, 404 UNIMPLEMENTED, 429/502/503/504 UNAVAILABLE, anything else
/// UNKNOWN.
pub(crate) fn grpc_status(http_status: u16) -> u32 {
    match http_status {
        400 => 13,
        401 => 16,
        403 => 7,
        404 => 12,
        429 | 502 | 503 | 504 => 14,
        _ => 2,
    }
}

struct TemplateVars<'a> {
    host: &'a [u8],
    path: &'a [u8],
    port: u16,
    protocol: &'a str,
    query: &'a [u8],
}

impl TemplateVars<'_> {
    fn expand(&self, parts: &[TemplatePart], out: &mut Vec<u8>) {
        for part in parts {
            match part {
                TemplatePart::Literal(s) => out.extend_from_slice(s.as_bytes()),
                TemplatePart::Host => out.extend_from_slice(self.host),
                TemplatePart::Path => out.extend_from_slice(self.path),
                TemplatePart::Port => out.extend_from_slice(self.port.to_string().as_bytes()),
                TemplatePart::Protocol => out.extend_from_slice(self.protocol.as_bytes()),
                TemplatePart::Query => out.extend_from_slice(self.query),
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use bytes::BytesMut;

    use super::*;
    use crate::http1::request;

    fn head(raw: &str) -> RequestHead {
        let mut buf = BytesMut::from(raw.as_bytes());
        match request::parse(&mut buf) {
            Ok(Some(h)) => h,
            other => panic!("{other:?}"),
        }
    }

    fn redirect(toml_action: &str) -> Redirect {
        let text = format!(
            "[[listener]]\nname = \"w\"\naddress = \"127.0.0.1:80\"\ndefault_action = {toml_action}\n"
        );
        match hostalb_config::parse(&text, hostalb_config::Format::Toml, "t")
            .map(|l| l.config.listeners[0].default_action.clone())
        {
            Ok(hostalb_config::Action::Redirect(r)) => r,
            other => panic!("{other:?}"),
        }
    }

    fn location(action: &str, raw: &str, port: u16) -> String {
        String::from_utf8(redirect_location(
            &redirect(action),
            ListenerProtocol::Http,
            port,
            &head(raw),
        ))
        .unwrap_or_default()
    }

    #[test]
    fn grpc_statuses_follow_grpcs_mapping() {
        assert_eq!(grpc_status(400), 13);
        assert_eq!(grpc_status(404), 12);
        assert_eq!(grpc_status(464), 2);
        for s in [429, 502, 503, 504] {
            assert_eq!(grpc_status(s), 14);
        }
        let own = Own {
            status: 503,
            content_type: Some(b"text/html"),
            body: b"page",
            close: false,
            server_header: true,
            extra: &[],
        };
        let r = h2_head(&own, Some(14));
        assert_eq!(r.status(), 503);
        assert_eq!(r.headers()["grpc-status"], "14");
        assert_eq!(r.headers()["content-type"], "application/grpc");
        assert_eq!(r.headers()["grpc-message"], "503 Service Unavailable");
        let r = h2_head(&own, None);
        assert_eq!(r.headers()["content-length"], "4");
        assert_eq!(r.headers()["server"], "awselb/2.0");
    }

    #[test]
    fn redirect_to_https_keeps_path_and_query_with_explicit_port() {
        let a = r#"{ type = "redirect", protocol = "HTTPS", port = "443", status_code = "HTTP_301" }"#;
        assert_eq!(
            location(a, "GET /a/b?x=1 HTTP/1.1\r\nHost: Example.COM:80\r\n\r\n", 80),
            "https://example.com:443/a/b?x=1"
        );
        assert_eq!(
            location(a, "GET / HTTP/1.1\r\nHost: example.com\r\n\r\n", 80),
            "https://example.com:443/"
        );
    }

    #[test]
    fn protocol_keyword_is_the_request_protocol() {
        let a = r##"{ type = "redirect", protocol = "HTTPS", port = "443", query = "was=#{protocol}", status_code = "HTTP_301" }"##;
        assert_eq!(
            location(a, "GET /p HTTP/1.1\r\nHost: h.example\r\n\r\n", 80),
            "https://h.example:443/p?was=http"
        );
    }

    #[test]
    fn redirect_templates_expand() {
        let a = r##"{ type = "redirect", host = "new.#{host}", path = "/v2/#{path}", query = "from=#{port}&#{query}", status_code = "HTTP_302" }"##;
        assert_eq!(
            location(a, "GET /items?q=1 HTTP/1.1\r\nHost: old.example\r\n\r\n", 8080),
            "http://new.old.example:8080/v2/items?from=8080&q=1"
        );
        let a = r##"{ type = "redirect", path = "/fixed", query = "", status_code = "HTTP_301" }"##;
        assert_eq!(
            location(a, "GET /x?drop=1 HTTP/1.1\r\nHost: h.example\r\n\r\n", 80),
            "http://h.example:80/fixed"
        );
    }
}
