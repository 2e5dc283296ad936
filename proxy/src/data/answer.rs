//! Answers hostalb makes itself: ALB's errors, fixed responses and redirects, each
//! dealing with an unread request body the same way.

use hostalb_config::{FixedResponse, ListenerProtocol, Redirect, RedirectProtocol, TemplatePart};
use tokio::io::{AsyncRead, AsyncWrite};

use crate::data::body::{BodyTransfer, flush};
use crate::data::conn::{ClientConn, Next, Record};
use crate::data::errors::{ErrorKind, ProxyError};
use crate::data::respond::{self, Own};
use crate::http1::BodyKind;
use crate::http1::request::{self, RequestHead};
use crate::model::metrics::inc;
use crate::model::rules;
use crate::model::shared::Shared;
use crate::model::snapshot::ListenerRt;

/// A request body this small is read and dropped when hostalb answers without
/// forwarding, so the connection can stay open; a larger one closes the connection.
const DISCARDABLE_BODY: u64 = 64 * 1024;
/// ALB counts a Location longer than this as `HTTP_Redirect_Url_Limit_Exceeded_Count`
/// and answers 507.
const MAX_REDIRECT_URL: usize = 8 * 1024;

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

/// Writes an answer hostalb makes itself, dealing with an unread request body: a small
/// one is read and dropped so the connection can stay open; otherwise it closes.
pub(crate) async fn answer_own<R, W>(
    shared: &Shared,
    listener: &ListenerRt,
    c: &mut ClientConn<R, W>,
    head: Option<&RequestHead>,
    own: Own<'_>,
    rec: &mut Record,
) -> Next
where
    R: AsyncRead + Unpin,
    W: AsyncWrite + Unpin,
{
    let idle = listener.cfg.idle_timeout;
    let mut keep = !own.close && head.is_some_and(|h| keep_alive_allowed(shared, listener, c, h));
    if let Some(h) = head {
        let discardable = match h.body {
            BodyKind::Empty => true,
            BodyKind::Length(n) => n <= DISCARDABLE_BODY && !h.expect_continue,
            _ => false,
        };
        if keep && !discardable {
            keep = false;
        }
        if keep && !h.body.is_empty() {
            let mut body = BodyTransfer::new(h.body, h.body);
            keep = matches!(
                body.discard(&mut c.rd, &mut c.rbuf, DISCARDABLE_BODY as usize, idle)
                    .await,
                Ok(true)
            );
        }
    }
    let version = head.map(|h| h.version).unwrap_or(crate::http1::Version::Http11);
    let is_head = head.map_or_else(|| request::starts_head_request(&c.rbuf), |h| h.is_method(b"HEAD"));
    respond::write_own(&mut c.wbuf, &Own { close: !keep, ..own }, version, is_head);
    rec.status = own.status;
    if flush(&mut c.wr, &mut c.wbuf, idle).await.is_err() {
        return Next::Close;
    }
    if keep { Next::KeepAlive } else { Next::Close }
}

/// Answers an error as ALB does, counting it.
pub(crate) async fn answer_error<R, W>(
    shared: &Shared,
    listener: &ListenerRt,
    c: &mut ClientConn<R, W>,
    head: Option<&RequestHead>,
    e: &ProxyError,
    rec: &mut Record,
) -> Next
where
    R: AsyncRead + Unpin,
    W: AsyncWrite + Unpin,
{
    let status = e.status();
    rec.status = status;
    rec.error = Some(e.reason());
    shared.metrics.count_elb_answer(status, e.reason());
    if matches!(e.kind, ErrorKind::ClientClosed) {
        // 460: logged, never sent (the client is gone).
        return Next::Close;
    }
    let body = respond::elb_error_body(status);
    answer_own(
        shared,
        listener,
        c,
        head,
        Own {
            status,
            content_type: Some(b"text/html"),
            body: &body,
            close: e.closes_client(),
            server_header: listener.cfg.server_header,
            extra: &[],
        },
        rec,
    )
    .await
}

pub(crate) async fn answer_fixed<R, W>(
    shared: &Shared,
    listener: &ListenerRt,
    c: &mut ClientConn<R, W>,
    head: &RequestHead,
    f: &FixedResponse,
    rec: &mut Record,
) -> Next
where
    R: AsyncRead + Unpin,
    W: AsyncWrite + Unpin,
{
    shared.metrics.count_elb_answer(f.status_code, "FixedResponse");
    let own = Own {
        status: f.status_code,
        content_type: f.content_type.as_deref().map(str::as_bytes),
        body: f.message_body.as_bytes(),
        close: false,
        server_header: listener.cfg.server_header,
        extra: &[],
    };
    answer_own(shared, listener, c, Some(head), own, rec).await
}

pub(crate) async fn answer_redirect<R, W>(
    shared: &Shared,
    listener: &ListenerRt,
    c: &mut ClientConn<R, W>,
    head: &RequestHead,
    r: &Redirect,
    rec: &mut Record,
) -> Next
where
    R: AsyncRead + Unpin,
    W: AsyncWrite + Unpin,
{
    let location = redirect_location(r, listener.cfg.protocol, c.local.port(), head);
    if location.len() > MAX_REDIRECT_URL {
        inc(&shared.metrics.redirect_url_limit_exceeded);
        let e = ProxyError::new(ErrorKind::BadResponse("RedirectUrlTooLong"));
        rec.error = Some(e.reason());
        shared.metrics.count_elb_answer(507, "RedirectUrlTooLong");
        let body = respond::elb_error_body(507);
        let own = Own {
            status: 507,
            content_type: Some(b"text/html"),
            body: &body,
            close: false,
            server_header: listener.cfg.server_header,
            extra: &[],
        };
        return answer_own(shared, listener, c, Some(head), own, rec).await;
    }
    inc(&shared.metrics.redirects);
    shared.metrics.count_elb_answer(r.status_code, "Redirect");
    let extra: [(&[u8], &[u8]); 1] = [(b"Location", &location)];
    let body = format!(
        "<html>\r\n<head><title>{0} {1}</title></head>\r\n<body>\r\n<center><h1>{0} {1}</h1></center>\r\n</body>\r\n</html>\r\n",
        r.status_code,
        respond::reason_phrase(r.status_code)
    );
    let own = Own {
        status: r.status_code,
        content_type: Some(b"text/html"),
        body: body.as_bytes(),
        close: false,
        server_header: listener.cfg.server_header,
        extra: &extra,
    };
    answer_own(shared, listener, c, Some(head), own, rec).await
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
