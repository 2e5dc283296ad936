//! Re-serialising heads across the proxy, with ALB's header rules (alb-spec §5).
//!
//! Towards the target: hop-by-hop fields dropped (and those the client's `Connection`
//! names), `Expect` removed (hostalb answers `100 Continue` itself), one framing field of
//! hostalb's choosing, and `X-Forwarded-For` (append / preserve / remove, optional client
//! port), `X-Forwarded-Proto`, `X-Forwarded-Port`, `X-Amzn-Trace-Id` and `Host` as ALB
//! writes them, and on a mutual-TLS listener the `X-Amzn-Mtls-Clientcert*` fields of the
//! connection's client certificate (client-sent ones removed). Field lines are copied from the client's head bytes as spans: no field is
//! parsed into a map or allocated on its own.
//!
//! Towards the client: hop-by-hop fields dropped and hostalb's own framing and connection
//! fields written, plus stickiness cookies.

use std::net::{IpAddr, SocketAddr};

use bytes::{BufMut, BytesMut};
use hostalb_config::{Listener, XffMode};

use crate::data::client_cert;
use crate::data::respond::{put_decimal, put_status, reason_phrase};
use crate::data::trace_id;
use crate::http1::request::RequestHead;
use crate::http1::response::ResponseHead;
use crate::http1::{BodyKind, FieldKind, Version};

/// What the request head for the target depends on besides the client's head.
#[derive(Debug)]
pub(crate) struct Forwarding<'a> {
    pub(crate) listener: &'a Listener,
    /// The connection's header texts, formatted once when it was accepted.
    pub(crate) texts: &'a ConnTexts,
    /// The address the client connected to.
    pub(crate) local: SocketAddr,
    /// A url-rewrite transform's new path (with query), if one applied.
    pub(crate) path_override: Option<&'a [u8]>,
    /// A host-header-rewrite transform's new host, if one applied.
    pub(crate) host_override: Option<&'a [u8]>,
    /// The framing the body will be sent with.
    pub(crate) body: BodyKind,
    /// Forward the WebSocket upgrade (`Connection: Upgrade` + `Upgrade`).
    pub(crate) upgrade: bool,
}

/// Writes the request head the target receives; returns the span of the
/// `X-Amzn-Trace-Id` value written (for the access log).
pub(crate) fn write_request_head(
    out: &mut BytesMut,
    head: &RequestHead,
    f: &Forwarding<'_>,
) -> std::ops::Range<usize> {
    let buf = &head.buf[..];
    out.put_slice(head.method());
    out.put_u8(b' ');
    match f.path_override {
        Some(p) => out.put_slice(p),
        None => {
            out.put_slice(head.path());
            if let Some(q) = head.query() {
                out.put_u8(b'?');
                out.put_slice(q);
            }
        }
    }
    out.put_slice(b" HTTP/1.1\r\n");

    write_host(out, head, f);

    let drop_invalid = f.listener.drop_invalid_header_fields;
    let trace_in = head.values_of(FieldKind::XAmznTraceId).next();
    let strip_mtls = f.texts.mtls.strip;
    copy_kept_lines(out, buf, &head.fields, |field| {
        if field.connection_listed {
            return false;
        }
        match field.kind {
            FieldKind::Host
            | FieldKind::Expect
            | FieldKind::XForwardedProto
            | FieldKind::XForwardedPort
            | FieldKind::XAmznTraceId => false,
            // Append folds every client field into one list, written below.
            FieldKind::XForwardedFor => f.listener.xff_mode == XffMode::Preserve,
            kind if kind.is_hop_by_hop() => false,
            // Only hostalb writes the mutual-TLS fields on a listener that does mutual TLS.
            FieldKind::Other if strip_mtls && client_cert::is_mtls_header(field.name.get(buf)) => false,
            _ => {
                !drop_invalid
                    || field
                        .name
                        .get(buf)
                        .iter()
                        .all(|b| b.is_ascii_alphanumeric() || *b == b'-')
            }
        }
    });
    if f.listener.xff_mode == XffMode::Append {
        let t = f.texts;
        let mut client_values = head
            .values_of(FieldKind::XForwardedFor)
            .map(crate::http1::trim_ows)
            .filter(|v| !v.is_empty())
            .peekable();
        if client_values.peek().is_none() {
            // The common case: one precomputed line.
            out.put_slice(if f.listener.xff_client_port {
                &t.xff_line_with_port
            } else {
                &t.xff_line
            });
        } else {
            out.put_slice(b"X-Forwarded-For: ");
            for value in client_values {
                out.put_slice(value);
                out.put_slice(b", ");
            }
            out.put_slice(if f.listener.xff_client_port {
                &t.peer_with_port
            } else {
                &t.peer
            });
            out.put_slice(b"\r\n");
        }
    }
    // X-Forwarded-Proto, X-Forwarded-Port and the trace id's name: constant per connection.
    out.put_slice(&f.texts.proto_port_trace);
    let trace_start = out.len();
    trace_id::write_value(out, trace_in);
    let trace = trace_start..out.len();
    out.put_slice(b"\r\n");
    out.put_slice(&f.texts.mtls.lines);
    match f.body {
        BodyKind::Length(n) => {
            out.put_slice(b"Content-Length: ");
            put_decimal(out, n);
            out.put_slice(b"\r\n");
        }
        BodyKind::Chunked => out.put_slice(b"Transfer-Encoding: chunked\r\n"),
        BodyKind::Empty | BodyKind::UntilClose => {}
    }
    if f.upgrade {
        if let Some(u) = head.upgrade {
            out.put_slice(b"Connection: Upgrade\r\nUpgrade: ");
            out.put_slice(u.get(buf));
            out.put_slice(b"\r\n");
        }
    }
    out.put_slice(b"\r\n");
    trace
}

/// `Host` as ALB forwards it: lower-cased; on listener ports 80 and 443 any port removed;
/// on other ports the listener port appended when absent. With `preserve_host_header`
/// the client's value goes through untouched. An HTTP/1.0 request without Host gets the
/// address the client connected to.
fn write_host(out: &mut BytesMut, head: &RequestHead, f: &Forwarding<'_>) {
    out.put_slice(b"Host: ");
    if let Some(h) = f.host_override {
        out.put_slice(h);
        out.put_slice(b"\r\n");
        return;
    }
    let Some(host) = head.host() else {
        put_socket_addr(out, f.local);
        out.put_slice(b"\r\n");
        return;
    };
    if f.listener.preserve_host_header {
        out.put_slice(host);
        out.put_slice(b"\r\n");
        return;
    }
    let name = crate::model::rules::host_without_port(host);
    let start = out.len();
    out.put_slice(name);
    out[start..].make_ascii_lowercase();
    let port = f.local.port();
    if port != 80 && port != 443 {
        if name.len() < host.len() {
            out.put_slice(&host[name.len()..]);
        } else {
            out.put_u8(b':');
            put_decimal(out, u64::from(port));
        }
    }
    out.put_slice(b"\r\n");
}

/// Copies the field lines `keep` accepts, as received, one copy per run of adjacent kept
/// lines. The lines were validated by the parser (token names, no CR/LF/NUL in values, no
/// obs-fold, CRLF endings), so copying them is re-serialising, not byte-forwarding: the
/// request line, hop-by-hop fields and framing are all hostalb's own. A field's line runs
/// from its name to the next field's name; the last one ends where the head's final
/// CRLF begins.
fn copy_kept_lines(
    out: &mut BytesMut,
    buf: &[u8],
    fields: &[crate::http1::fields::HeaderField],
    mut keep: impl FnMut(&crate::http1::fields::HeaderField) -> bool,
) {
    let fields_end = buf.len().saturating_sub(2);
    let mut run: Option<usize> = None;
    for field in fields {
        let line_start = field.name.start as usize;
        if keep(field) {
            run.get_or_insert(line_start);
        } else if let Some(start) = run.take() {
            out.put_slice(&buf[start..line_start]);
        }
    }
    if let Some(start) = run {
        out.put_slice(&buf[start..fields_end]);
    }
}

/// Header texts that depend only on the connection, formatted once when it is accepted
/// instead of on every request.
#[derive(Debug)]
pub(crate) struct ConnTexts {
    /// The client address as X-Forwarded-For lists it: `ip`, and `ip:port` (`[ip]:port`).
    pub(crate) peer: Box<[u8]>,
    pub(crate) peer_with_port: Box<[u8]>,
    /// `X-Forwarded-For: <peer>\r\n` for requests that carry none, with and without port.
    pub(crate) xff_line: Box<[u8]>,
    pub(crate) xff_line_with_port: Box<[u8]>,
    /// `X-Forwarded-Proto: ..\r\nX-Forwarded-Port: ..\r\nX-Amzn-Trace-Id: `.
    pub(crate) proto_port_trace: Box<[u8]>,
    /// Mutual TLS: the `X-Amzn-Mtls-Clientcert*` lines, and whether client-sent ones go.
    pub(crate) mtls: crate::data::tls::MtlsTexts,
}

impl ConnTexts {
    pub(crate) fn new(peer_ip: IpAddr, peer_port: u16, local_port: u16, tls: bool) -> ConnTexts {
        let peer = peer_ip.to_string();
        let peer_with_port = match peer_ip {
            IpAddr::V6(v6) => format!("[{v6}]:{peer_port}"),
            ip => format!("{ip}:{peer_port}"),
        };
        let proto = if tls { "https" } else { "http" };
        let boxed = |s: String| s.into_bytes().into_boxed_slice();
        ConnTexts {
            xff_line: boxed(format!("X-Forwarded-For: {peer}\r\n")),
            xff_line_with_port: boxed(format!("X-Forwarded-For: {peer_with_port}\r\n")),
            proto_port_trace: boxed(format!(
                "X-Forwarded-Proto: {proto}\r\nX-Forwarded-Port: {local_port}\r\nX-Amzn-Trace-Id: "
            )),
            peer: boxed(peer),
            peer_with_port: boxed(peer_with_port),
            mtls: crate::data::tls::MtlsTexts::default(),
        }
    }
}

fn put_socket_addr(out: &mut BytesMut, addr: SocketAddr) {
    use std::io::Write;
    let _ = write!(out.writer(), "{addr}");
}

/// How the response travels to the client.
#[derive(Debug, Clone, Copy)]
pub(crate) struct ToClient {
    pub(crate) version: Version,
    /// The framing hostalb sends the body with.
    pub(crate) body: BodyKind,
    /// hostalb closes the client connection after this response.
    pub(crate) close: bool,
    /// Keep `Upgrade`/`Connection` (a 101 to a WebSocket upgrade).
    pub(crate) upgrade: bool,
}

/// Writes the response head the client receives. `extra` is appended as is (stickiness
/// `Set-Cookie` lines).
pub(crate) fn write_response_head(out: &mut BytesMut, resp: &ResponseHead, to: &ToClient, extra: &[u8]) {
    let buf = &resp.buf[..];
    out.put_slice(b"HTTP/1.1 ");
    put_status(out, resp.status);
    out.put_u8(b' ');
    let reason = resp.reason();
    if reason.is_empty() {
        out.put_slice(reason_phrase(resp.status).as_bytes());
    } else {
        out.put_slice(reason);
    }
    out.put_slice(b"\r\n");
    // A HEAD or 304 response announces the length of the body it does not carry: keep it.
    let keep_length =
        resp.body == BodyKind::Empty && resp.status != 204 && !(100..200).contains(&resp.status);
    copy_kept_lines(out, buf, &resp.fields, |field| {
        if field.connection_listed {
            return false;
        }
        match field.kind {
            FieldKind::ContentLength => keep_length,
            FieldKind::Upgrade | FieldKind::Connection => to.upgrade,
            kind => !kind.is_hop_by_hop(),
        }
    });
    out.put_slice(extra);
    match to.body {
        BodyKind::Length(n) if !keep_length => {
            out.put_slice(b"Content-Length: ");
            put_decimal(out, n);
            out.put_slice(b"\r\n");
        }
        BodyKind::Chunked => out.put_slice(b"Transfer-Encoding: chunked\r\n"),
        _ => {}
    }
    if !to.upgrade {
        if to.close {
            out.put_slice(b"Connection: close\r\n");
        } else if to.version == Version::Http10 {
            out.put_slice(b"Connection: keep-alive\r\n");
        }
    }
    out.put_slice(b"\r\n");
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::http1::{request, response};
    use hostalb_config as cfg;

    fn listener(extra: &str) -> Listener {
        let text = format!("[[listener]]\nname = \"web\"\naddress = \"127.0.0.1:8080\"\n{extra}\n");
        match cfg::parse(&text, cfg::Format::Toml, "t") {
            Ok(l) => l.config.listeners[0].clone(),
            Err(e) => panic!("{e}"),
        }
    }

    fn forwarded(raw: &str, listener: &Listener, local: &str) -> String {
        let mut buf = BytesMut::from(raw.as_bytes());
        let head = request::parse(&mut buf)
            .ok()
            .flatten()
            .unwrap_or_else(|| panic!("parse {raw}"));
        let local: SocketAddr = local.parse().unwrap_or(SocketAddr::from(([0, 0, 0, 0], 0)));
        let texts = ConnTexts::new(
            "10.1.2.3".parse().unwrap_or(IpAddr::from([0, 0, 0, 0])),
            5555,
            local.port(),
            false,
        );
        let f = Forwarding {
            listener,
            texts: &texts,
            local,
            path_override: None,
            host_override: None,
            body: head.body,
            upgrade: false,
        };
        let mut out = BytesMut::new();
        write_request_head(&mut out, &head, &f);
        String::from_utf8(out.to_vec()).unwrap_or_default()
    }

    fn header<'a>(text: &'a str, name: &str) -> Vec<&'a str> {
        text.lines()
            .filter_map(|l| l.split_once(": "))
            .filter(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v)
            .collect()
    }

    #[test]
    fn alb_headers_are_added_and_hop_by_hop_dropped() {
        let l = listener("");
        let out = forwarded(
            "POST /p?q=1 HTTP/1.1\r\nHost: API.Example.com\r\nConnection: keep-alive, X-Drop\r\nX-Drop: 1\r\nKeep-Alive: 5\r\nTE: trailers\r\nExpect: 100-continue\r\nX-Forwarded-Proto: https\r\nX-Keep: yes\r\nContent-Length: 3\r\n\r\n",
            &l,
            "127.0.0.1:8080",
        );
        assert!(
            out.starts_with("POST /p?q=1 HTTP/1.1\r\nHost: api.example.com:8080\r\n"),
            "{out}"
        );
        for gone in ["X-Drop", "Keep-Alive", "TE", "Expect", "Connection"] {
            assert!(header(&out, gone).is_empty(), "{gone} in {out}");
        }
        assert_eq!(header(&out, "X-Keep"), vec!["yes"]);
        assert_eq!(header(&out, "X-Forwarded-For"), vec!["10.1.2.3"]);
        assert_eq!(header(&out, "X-Forwarded-Proto"), vec!["http"]);
        assert_eq!(header(&out, "X-Forwarded-Port"), vec!["8080"]);
        assert_eq!(header(&out, "Content-Length"), vec!["3"]);
        assert_eq!(header(&out, "X-Amzn-Trace-Id").len(), 1);
        assert!(out.ends_with("\r\n\r\n"));
    }

    #[test]
    fn xff_modes() {
        let raw = "GET / HTTP/1.1\r\nHost: h\r\nX-Forwarded-For: 1.1.1.1\r\nX-Forwarded-For: 2.2.2.2, 3.3.3.3\r\n\r\n";
        let out = forwarded(raw, &listener(""), "127.0.0.1:8080");
        assert_eq!(
            header(&out, "X-Forwarded-For"),
            vec!["1.1.1.1, 2.2.2.2, 3.3.3.3, 10.1.2.3"]
        );
        let out = forwarded(raw, &listener("xff_client_port = true"), "127.0.0.1:8080");
        assert_eq!(
            header(&out, "X-Forwarded-For"),
            vec!["1.1.1.1, 2.2.2.2, 3.3.3.3, 10.1.2.3:5555"]
        );
        let out = forwarded(raw, &listener("xff_mode = \"preserve\""), "127.0.0.1:8080");
        assert_eq!(
            header(&out, "X-Forwarded-For"),
            vec!["1.1.1.1", "2.2.2.2, 3.3.3.3"]
        );
        let out = forwarded(raw, &listener("xff_mode = \"remove\""), "127.0.0.1:8080");
        assert!(header(&out, "X-Forwarded-For").is_empty());
        let out = forwarded(
            "GET / HTTP/1.1\r\nHost: h\r\n\r\n",
            &listener("xff_mode = \"preserve\""),
            "127.0.0.1:8080",
        );
        assert!(
            header(&out, "X-Forwarded-For").is_empty(),
            "preserve keeps absent absent"
        );
    }

    #[test]
    fn host_rules_by_listener_port() {
        let l = listener("");
        let host_of = |raw: &str, local: &str| header(&forwarded(raw, &l, local), "Host").concat();
        assert_eq!(
            host_of("GET / HTTP/1.1\r\nHost: A.Example:80\r\n\r\n", "127.0.0.1:80"),
            "a.example"
        );
        assert_eq!(
            host_of("GET / HTTP/1.1\r\nHost: a.example:8443\r\n\r\n", "127.0.0.1:443"),
            "a.example"
        );
        assert_eq!(
            host_of("GET / HTTP/1.1\r\nHost: a.example\r\n\r\n", "127.0.0.1:8080"),
            "a.example:8080"
        );
        assert_eq!(
            host_of("GET / HTTP/1.1\r\nHost: a.example:9\r\n\r\n", "127.0.0.1:8080"),
            "a.example:9"
        );
        assert_eq!(
            host_of(
                "GET http://B.example/x HTTP/1.1\r\nHost: a.example\r\n\r\n",
                "127.0.0.1:80"
            ),
            "b.example"
        );
        assert_eq!(
            host_of("GET / HTTP/1.0\r\n\r\n", "127.0.0.1:8080"),
            "127.0.0.1:8080"
        );
        let keep = listener("preserve_host_header = true");
        assert_eq!(
            header(
                &forwarded(
                    "GET / HTTP/1.1\r\nHost: A.Example:80\r\n\r\n",
                    &keep,
                    "127.0.0.1:80"
                ),
                "Host"
            )
            .concat(),
            "A.Example:80"
        );
    }

    #[test]
    fn chunked_body_is_reframed_and_invalid_names_optionally_dropped() {
        let out = forwarded(
            "POST / HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: chunked\r\nX_Under: 1\r\n\r\n",
            &listener(""),
            "127.0.0.1:8080",
        );
        assert_eq!(header(&out, "Transfer-Encoding"), vec!["chunked"]);
        assert_eq!(header(&out, "X_Under"), vec!["1"]);
        let out = forwarded(
            "GET / HTTP/1.1\r\nHost: h\r\nX_Under: 1\r\n\r\n",
            &listener("drop_invalid_header_fields = true"),
            "127.0.0.1:8080",
        );
        assert!(header(&out, "X_Under").is_empty());
    }

    #[test]
    fn mtls_lines_are_written_and_client_copies_removed() {
        let l = listener("");
        let raw = "GET / HTTP/1.1\r\nHost: h\r\nX-Amzn-Mtls-Clientcert-Subject: CN=forged\r\nx-amzn-mtls-clientcert: forged\r\nX-Amzn-Mtls-Other: kept\r\nX-Keep: 1\r\n\r\n";
        let mut buf = BytesMut::from(raw.as_bytes());
        let head = request::parse(&mut buf)
            .ok()
            .flatten()
            .unwrap_or_else(|| panic!("parse"));
        let local: SocketAddr = SocketAddr::from(([127, 0, 0, 1], 8443));
        let mut texts = ConnTexts::new(IpAddr::from([10, 1, 2, 3]), 5555, 8443, true);
        let write = |texts: &ConnTexts| {
            let f = Forwarding {
                listener: &l,
                texts,
                local,
                path_override: None,
                host_override: None,
                body: head.body,
                upgrade: false,
            };
            let mut out = BytesMut::new();
            write_request_head(&mut out, &head, &f);
            String::from_utf8(out.to_vec()).unwrap_or_default()
        };
        // A listener without mutual TLS passes the fields on (they mean nothing there).
        let out = write(&texts);
        assert_eq!(header(&out, "X-Amzn-Mtls-Clientcert-Subject"), vec!["CN=forged"]);
        texts.mtls = crate::data::tls::MtlsTexts {
            strip: true,
            lines: b"X-Amzn-Mtls-Clientcert-Subject: CN=real\r\n"
                .to_vec()
                .into_boxed_slice(),
        };
        let out = write(&texts);
        assert_eq!(header(&out, "X-Amzn-Mtls-Clientcert-Subject"), vec!["CN=real"]);
        assert!(header(&out, "X-Amzn-Mtls-Clientcert").is_empty(), "{out}");
        assert_eq!(header(&out, "X-Amzn-Mtls-Other"), vec!["kept"]);
        assert_eq!(header(&out, "X-Keep"), vec!["1"]);
        assert_eq!(header(&out, "X-Forwarded-Proto"), vec!["https"]);
        assert!(out.ends_with("\r\n\r\n"));
    }

    #[test]
    fn response_head_reframes() {
        let mut buf = BytesMut::from(&b"HTTP/1.1 200 OK\r\nContent-Length: 5\r\nConnection: keep-alive\r\nKeep-Alive: timeout=5\r\nX-App: 1\r\n\r\n"[..]);
        let resp = response::parse(&mut buf, false)
            .ok()
            .flatten()
            .unwrap_or_else(|| panic!("parse"));
        let mut out = BytesMut::new();
        let to = ToClient {
            version: Version::Http11,
            body: BodyKind::Length(5),
            close: true,
            upgrade: false,
        };
        write_response_head(&mut out, &resp, &to, b"Set-Cookie: a=b\r\n");
        assert_eq!(
            &out[..],
            &b"HTTP/1.1 200 OK\r\nX-App: 1\r\nSet-Cookie: a=b\r\nContent-Length: 5\r\nConnection: close\r\n\r\n"[..]
        );
        let mut buf = BytesMut::from(&b"HTTP/1.1 200 OK\r\nContent-Length: 42\r\n\r\n"[..]);
        let resp = response::parse(&mut buf, true)
            .ok()
            .flatten()
            .unwrap_or_else(|| panic!("parse"));
        let mut out = BytesMut::new();
        let to = ToClient {
            version: Version::Http10,
            body: BodyKind::Empty,
            close: false,
            upgrade: false,
        };
        write_response_head(&mut out, &resp, &to, b"");
        assert_eq!(
            &out[..],
            &b"HTTP/1.1 200 OK\r\nContent-Length: 42\r\nConnection: keep-alive\r\n\r\n"[..]
        );
    }
}
