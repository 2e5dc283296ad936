//! The header rules of hostalb's forwarding, checked on what real backends receive and
//! what clients get back: X-Forwarded-For/-Proto/-Port, X-Amzn-Trace-Id, Host, hop-by-hop
//! fields both ways, Expect, invalid field names and the case of field names.

use std::net::SocketAddr;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use hostalb_testkit::{
    Backend, HostAlb, ParsedResponse, RawBackend, RawBehaviour, RawConn, RecordedRequest, scaled,
};

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

use crate::common::start;

/// Bound on one exchange with hostalb.
const EXCHANGE: Duration = Duration::from_secs(5);

/// Starts hostalb with one listener per `(name, extra listener keys)`, each forwarding to
/// its own target group with its own backend (named like the listener). Backends are
/// returned in the same order.
async fn setup(listeners: &[(&str, &str)]) -> (HostAlb, Vec<Backend>) {
    let mut backends = Vec::new();
    let mut text = String::new();
    for (name, extra) in listeners {
        let backend = Backend::start(name).await;
        text.push_str(&format!(
            r#"
[[listener]]
name = "{name}"
address = "127.0.0.1:0"
{extra}
default_action = {{ type = "forward", target_group = "{name}" }}

[target_group.{name}]
targets = ["{}"]
health_check = {{ enabled = false }}
"#,
            backend.addr()
        ));
        backends.push(backend);
    }
    (start(&text).await, backends)
}

/// Sends `raw` on `conn` and returns the response.
async fn ask(conn: &mut RawConn, raw: &str) -> ParsedResponse {
    conn.send(raw.as_bytes()).await.expect("send the request");
    match conn.read_response(scaled(EXCHANGE)).await {
        Some(r) => r,
        None => panic!(
            "no response to {raw:?}; received {:?}",
            String::from_utf8_lossy(conn.received())
        ),
    }
}

/// Sends `raw` on a new connection, expects the backend's 200, and returns the request
/// the backend received for it.
async fn forwarded(addr: SocketAddr, backend: &Backend, raw: &str) -> RecordedRequest {
    let mut conn = RawConn::connect(addr).await.expect("connect to hostalb");
    forwarded_on(&mut conn, backend, raw).await
}

async fn forwarded_on(conn: &mut RawConn, backend: &Backend, raw: &str) -> RecordedRequest {
    let before = backend.request_count();
    let resp = ask(conn, raw).await;
    assert_eq!(resp.status, 200, "{raw:?} -> {resp:?}");
    assert_eq!(resp.header("x-backend"), Some(backend.name()), "{resp:?}");
    assert_eq!(
        backend.request_count(),
        before + 1,
        "one request reached the backend"
    );
    backend.requests().pop().expect("a recorded request")
}

/// A GET request head with these fields (nothing added).
fn head(target: &str, fields: &[(&str, &str)]) -> String {
    let mut text = format!("GET {target} HTTP/1.1\r\n");
    for (name, value) in fields {
        text.push_str(&format!("{name}: {value}\r\n"));
    }
    text.push_str("\r\n");
    text
}

/// Whether `id` has the X-Ray form `1-<8 hex>-<24 hex>` (lower-case hex).
fn is_trace_id(id: &str) -> bool {
    let hex = |s: &str, n: usize| {
        s.len() == n
            && s.bytes()
                .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
    };
    let parts: Vec<&str> = id.split('-').collect();
    parts.len() == 3 && parts[0] == "1" && hex(parts[1], 8) && hex(parts[2], 24)
}

/// The epoch seconds in a trace id.
fn trace_epoch(id: &str) -> Option<u64> {
    u64::from_str_radix(id.split('-').nth(1)?, 16).ok()
}

fn now_unix() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}

/// The single value of `name` the backend received; fails if there are several or none.
fn single<'a>(req: &'a RecordedRequest, name: &str) -> &'a str {
    let all = req.header_all(name);
    assert_eq!(
        all.len(),
        1,
        "exactly one {name} field expected: {:?}",
        req.headers
    );
    all[0]
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn x_forwarded_for_modes_append_client_port_preserve_and_remove() {
    let (alb, backends) = setup(&[
        ("append", ""),
        ("port", "xff_client_port = true"),
        ("preserve", "xff_mode = \"preserve\"\nxff_client_port = true"),
        ("remove", "xff_mode = \"remove\""),
    ])
    .await;
    let [append, port, preserve, remove] = &backends[..] else {
        unreachable!()
    };
    let with_xff = head(
        "/xff",
        &[
            ("Host", "xff.test"),
            ("X-Forwarded-For", "1.1.1.1, 2.2.2.2"),
            ("x-forwarded-for", "3.3.3.3"),
        ],
    );
    let without = head("/xff", &[("Host", "xff.test")]);

    // append: every client value joined in order, then the peer address, in one field.
    let req = forwarded(alb.listener("append"), append, &with_xff).await;
    assert_eq!(
        req.header_all("x-forwarded-for"),
        vec!["1.1.1.1, 2.2.2.2, 3.3.3.3, 127.0.0.1"],
        "{:?}",
        req.headers
    );
    let req = forwarded(alb.listener("append"), append, &without).await;
    assert_eq!(
        req.header_all("x-forwarded-for"),
        vec!["127.0.0.1"],
        "{:?}",
        req.headers
    );

    // xff_client_port: the peer is appended as ip:port.
    let mut conn = RawConn::connect(alb.listener("port")).await.unwrap();
    let client_port = conn.local_addr().unwrap().port();
    let req = forwarded_on(
        &mut conn,
        port,
        &head("/xff", &[("Host", "xff.test"), ("X-Forwarded-For", "9.9.9.9")]),
    )
    .await;
    assert_eq!(
        req.header_all("x-forwarded-for"),
        vec![format!("9.9.9.9, 127.0.0.1:{client_port}").as_str()],
        "{:?}",
        req.headers
    );
    let mut conn = RawConn::connect(alb.listener("port")).await.unwrap();
    let client_port = conn.local_addr().unwrap().port();
    let req = forwarded_on(&mut conn, port, &without).await;
    assert_eq!(
        req.header_all("x-forwarded-for"),
        vec![format!("127.0.0.1:{client_port}").as_str()],
        "{:?}",
        req.headers
    );

    // preserve: the client's fields untouched (xff_client_port ignored); absent stays absent.
    let req = forwarded(alb.listener("preserve"), preserve, &with_xff).await;
    assert_eq!(
        req.header_all("x-forwarded-for"),
        vec!["1.1.1.1, 2.2.2.2", "3.3.3.3"],
        "{:?}",
        req.headers
    );
    let req = forwarded(alb.listener("preserve"), preserve, &without).await;
    assert!(req.header_all("x-forwarded-for").is_empty(), "{:?}", req.headers);

    // remove: no X-Forwarded-For at all.
    let req = forwarded(alb.listener("remove"), remove, &with_xff).await;
    assert!(req.header_all("x-forwarded-for").is_empty(), "{:?}", req.headers);
    let req = forwarded(alb.listener("remove"), remove, &without).await;
    assert!(req.header_all("x-forwarded-for").is_empty(), "{:?}", req.headers);
}

/// Fails with a hint when this machine has no IPv6 loopback.
fn require_ipv6_loopback() {
    if let Err(e) = std::net::TcpListener::bind("[::1]:0") {
        panic!(
            "this test needs the IPv6 loopback ::1 ({e}); enable it with `sysctl -w net.ipv6.conf.lo.disable_ipv6=0`"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn x_forwarded_for_client_port_brackets_an_ipv6_peer() {
    require_ipv6_loopback();
    let backend = Backend::start("v6").await;
    let alb = start(&format!(
        r#"
[[listener]]
name = "v6"
address = "[::1]:0"
xff_client_port = true
default_action = {{ type = "forward", target_group = "v6" }}

[[listener]]
name = "v6-plain"
address = "[::1]:0"
default_action = {{ type = "forward", target_group = "v6" }}

[target_group.v6]
targets = ["{}"]
health_check = {{ enabled = false }}
"#,
        backend.addr()
    ))
    .await;
    let mut conn = RawConn::connect(alb.listener("v6")).await.unwrap();
    let client_port = conn.local_addr().unwrap().port();
    let req = forwarded_on(&mut conn, &backend, &head("/", &[("Host", "v6.test")])).await;
    assert_eq!(
        req.header_all("x-forwarded-for"),
        vec![format!("[::1]:{client_port}").as_str()],
        "{:?}",
        req.headers
    );
    let req = forwarded(
        alb.listener("v6-plain"),
        &backend,
        &head("/", &[("Host", "v6.test")]),
    )
    .await;
    assert_eq!(
        req.header_all("x-forwarded-for"),
        vec!["::1"],
        "{:?}",
        req.headers
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn x_forwarded_proto_and_port_overwrite_what_the_client_sent() {
    let (alb, backends) = setup(&[("web", "")]).await;
    let addr = alb.listener("web");
    let req = forwarded(
        addr,
        &backends[0],
        &head(
            "/",
            &[
                ("Host", "fwd.test"),
                ("X-Forwarded-Proto", "https"),
                ("X-Forwarded-Port", "443"),
                ("x-forwarded-proto", "ftp"),
            ],
        ),
    )
    .await;
    assert_eq!(single(&req, "x-forwarded-proto"), "http");
    assert_eq!(single(&req, "x-forwarded-port"), addr.port().to_string());

    let req = forwarded(addr, &backends[0], &head("/", &[("Host", "fwd.test")])).await;
    assert_eq!(single(&req, "x-forwarded-proto"), "http");
    assert_eq!(single(&req, "x-forwarded-port"), addr.port().to_string());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn trace_id_is_added_as_root_when_absent() {
    let (alb, backends) = setup(&[("web", "")]).await;
    let addr = alb.listener("web");
    let mut roots = Vec::new();
    for _ in 0..3 {
        let req = forwarded(addr, &backends[0], &head("/", &[("Host", "trace.test")])).await;
        let value = single(&req, "x-amzn-trace-id").to_owned();
        let id = value
            .strip_prefix("Root=")
            .unwrap_or_else(|| panic!("Root=... expected, got {value:?}"));
        assert!(is_trace_id(id), "Root=1-<8 hex>-<24 hex> expected, got {value:?}");
        let epoch = trace_epoch(id).unwrap();
        assert!(
            epoch.abs_diff(now_unix()) <= 300,
            "the first part is the current epoch second: {value:?}"
        );
        roots.push(id.to_owned());
    }
    roots.sort();
    roots.dedup();
    assert_eq!(roots.len(), 3, "every request gets its own id: {roots:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn trace_id_with_root_gets_self_in_front_and_a_self_is_replaced() {
    let (alb, backends) = setup(&[("web", "")]).await;
    let addr = alb.listener("web");
    let root = "Root=1-5759e988-bd862e3fe1be46a994272793;CalledFrom=app";

    let req = forwarded(
        addr,
        &backends[0],
        &head("/", &[("Host", "trace.test"), ("X-Amzn-Trace-Id", root)]),
    )
    .await;
    let value = single(&req, "x-amzn-trace-id");
    let (first, rest) = value
        .split_once(';')
        .unwrap_or_else(|| panic!("Self=...;{root} expected, got {value:?}"));
    let id = first
        .strip_prefix("Self=")
        .unwrap_or_else(|| panic!("Self= in front expected, got {value:?}"));
    assert!(is_trace_id(id), "{value:?}");
    assert_eq!(rest, root, "Root and custom fields kept after Self");

    let old_self = "1-00000000-000000000000000000000000";
    let sent = format!("Self={old_self};{root}");
    let req = forwarded(
        addr,
        &backends[0],
        &head("/", &[("Host", "trace.test"), ("X-Amzn-Trace-Id", &sent)]),
    )
    .await;
    let value = single(&req, "x-amzn-trace-id");
    let (first, rest) = value.split_once(';').unwrap_or_else(|| panic!("{value:?}"));
    let id = first
        .strip_prefix("Self=")
        .unwrap_or_else(|| panic!("Self= expected, got {value:?}"));
    assert!(is_trace_id(id), "{value:?}");
    assert_ne!(id, old_self, "the Self value is replaced: {value:?}");
    assert_eq!(rest, root, "only Self changes: {value:?}");

    // A trace header over 7 KB is replaced by a fresh Root.
    let huge = format!("{root};Pad={}", "x".repeat(8 * 1024));
    let req = forwarded(
        addr,
        &backends[0],
        &head("/", &[("Host", "trace.test"), ("X-Amzn-Trace-Id", &huge)]),
    )
    .await;
    let value = single(&req, "x-amzn-trace-id");
    let id = value
        .strip_prefix("Root=")
        .unwrap_or_else(|| panic!("a fresh Root= expected, got {} bytes", value.len()));
    assert!(
        is_trace_id(id),
        "only a fresh Root is left of an oversized header: {value:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn host_is_lower_cased_and_gets_the_listener_port_when_absent() {
    let (alb, backends) = setup(&[("web", "")]).await;
    let addr = alb.listener("web");
    let port = addr.port();
    let backend = &backends[0];

    let req = forwarded(addr, backend, &head("/h", &[("Host", "API.Example.COM")])).await;
    assert_eq!(single(&req, "host"), format!("api.example.com:{port}"));

    let req = forwarded(addr, backend, &head("/h", &[("Host", "Api.Example.com:9999")])).await;
    assert_eq!(
        single(&req, "host"),
        "api.example.com:9999",
        "a port the client gave is kept"
    );

    let req = forwarded(addr, backend, &head("/h", &[("Host", "api.example.com")])).await;
    assert_eq!(single(&req, "host"), format!("api.example.com:{port}"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn absolute_form_host_and_http10_without_host() {
    let (alb, backends) = setup(&[("web", "")]).await;
    let addr = alb.listener("web");
    let port = addr.port();
    let backend = &backends[0];

    let req = forwarded(
        addr,
        backend,
        "GET http://Abs.Example.com/p?q=1 HTTP/1.1\r\nHost: abs.example.com\r\n\r\n",
    )
    .await;
    assert_eq!(
        req.target, "/p?q=1",
        "the target reaches the backend in origin form"
    );
    assert_eq!(single(&req, "host"), format!("abs.example.com:{port}"));

    let req = forwarded(addr, backend, "GET http://abs10.example/x HTTP/1.0\r\n\r\n").await;
    assert_eq!(req.target, "/x");
    assert_eq!(
        single(&req, "host"),
        format!("abs10.example:{port}"),
        "the absolute-form URI gives the Host"
    );

    let req = forwarded(addr, backend, "GET /ten HTTP/1.0\r\n\r\n").await;
    assert_eq!(req.target, "/ten");
    assert_eq!(
        single(&req, "host"),
        addr.to_string(),
        "HTTP/1.0 without Host gets the address the client connected to"
    );
    assert_eq!(req.version, "HTTP/1.1", "hostalb talks HTTP/1.1 to targets");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn preserve_host_header_passes_host_untouched() {
    let (alb, backends) = setup(&[("keep", "preserve_host_header = true")]).await;
    let addr = alb.listener("keep");
    let backend = &backends[0];
    for host in ["MiXed.Example.COM:1234", "Mixed.example.com", "UPPER.EXAMPLE:80"] {
        let req = forwarded(addr, backend, &head("/", &[("Host", host)])).await;
        assert_eq!(single(&req, "host"), host);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hop_by_hop_request_fields_are_removed_including_those_connection_names() {
    let (alb, backends) = setup(&[("web", "")]).await;
    let addr = alb.listener("web");
    let backend = &backends[0];
    let req = forwarded(
        addr,
        backend,
        &head(
            "/hop",
            &[
                ("Host", "hop.test"),
                ("Connection", "keep-alive, X-Secret-Hop"),
                ("connection", "x-other-hop"),
                ("X-Secret-Hop", "1"),
                ("X-Other-Hop", "2"),
                ("Keep-Alive", "timeout=5"),
                ("Proxy-Connection", "keep-alive"),
                ("TE", "trailers"),
                ("Trailer", "X-Checksum"),
                ("Upgrade", "h2c"),
                ("X-End-To-End", "yes"),
            ],
        ),
    )
    .await;
    for gone in [
        "x-secret-hop",
        "x-other-hop",
        "keep-alive",
        "proxy-connection",
        "te",
        "trailer",
        "upgrade",
        "content-length",
        "transfer-encoding",
    ] {
        assert!(
            req.header_all(gone).is_empty(),
            "{gone} must not reach the target: {:?}",
            req.headers
        );
    }
    for value in req.header_all("connection") {
        let lower = value.to_ascii_lowercase();
        assert!(
            !lower.contains("x-secret-hop") && !lower.contains("x-other-hop"),
            "the client's Connection must not be forwarded: {:?}",
            req.headers
        );
    }
    assert_eq!(req.header_all("x-end-to-end"), vec!["yes"]);

    // A chunked request body reaches the target whole, under one framing field of
    // hostalb's own.
    let mut conn = RawConn::connect(addr).await.unwrap();
    let resp = ask(
        &mut conn,
        "POST /echo HTTP/1.1\r\nHost: hop.test\r\nTransfer-Encoding: chunked\r\n\r\n\
         5\r\nhello\r\n6\r\n world\r\n0\r\n\r\n",
    )
    .await;
    assert_eq!(
        (resp.status, resp.text().as_str()),
        (200, "hello world"),
        "{resp:?}"
    );
    let req = backend.requests().pop().unwrap();
    assert!(req.complete);
    assert_eq!(req.body, b"hello world");
    let framing = req.header_all("content-length").len() + req.header_all("transfer-encoding").len();
    assert_eq!(framing, 1, "exactly one framing field: {:?}", req.headers);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn expect_is_removed_and_hostalb_answers_100_continue_itself() {
    let (alb, backends) = setup(&[("web", "")]).await;
    let backend = &backends[0];
    let mut conn = RawConn::connect(alb.listener("web")).await.unwrap();
    conn.send(
        b"POST /echo HTTP/1.1\r\nHost: expect.test\r\nContent-Length: 5\r\nExpect: 100-continue\r\n\r\n",
    )
    .await
    .unwrap();
    let interim = conn
        .read_response(scaled(EXCHANGE))
        .await
        .expect("hostalb answers 100 Continue before the body is sent");
    assert_eq!(interim.status, 100, "{interim:?}");

    conn.send(b"hello").await.unwrap();
    let resp = conn
        .read_response(scaled(EXCHANGE))
        .await
        .expect("the final answer");
    assert_eq!(
        (resp.status, resp.text().as_str()),
        (200, "hello"),
        "one 100 Continue, then the final answer: {resp:?}"
    );
    let req = backend.requests().pop().unwrap();
    assert!(
        req.header_all("expect").is_empty(),
        "Expect must not reach the target: {:?}",
        req.headers
    );
    assert_eq!(req.body, b"hello");

    // The connection is still in step: a next request works.
    let req = forwarded_on(&mut conn, backend, &head("/after", &[("Host", "expect.test")])).await;
    assert_eq!(req.target, "/after");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn expect_gets_no_100_continue_when_the_request_is_not_routed_to_a_target() {
    let alb = start(
        r#"
[[listener]]
name = "web"
address = "127.0.0.1:0"
default_action = { type = "forward", target_group = "empty" }

[target_group.empty]
targets = []
health_check = { enabled = false }
"#,
    )
    .await;
    let mut conn = RawConn::connect(alb.listener("web")).await.unwrap();
    conn.send(b"POST /x HTTP/1.1\r\nHost: expect.test\r\nContent-Length: 5\r\nExpect: 100-continue\r\n\r\n")
        .await
        .unwrap();
    let resp = conn.read_response(scaled(EXCHANGE)).await.expect("an answer");
    assert_eq!(
        resp.status, 503,
        "no target, so no 100 Continue: the final answer comes at once: {resp:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn response_hop_by_hop_fields_are_removed_and_end_to_end_fields_pass() {
    let raw = RawBackend::start(RawBehaviour::Respond(
        b"HTTP/1.1 200 OK\r\n\
          Content-Length: 2\r\n\
          Connection: keep-alive, X-Backend-Hop\r\n\
          X-Backend-Hop: secret\r\n\
          Keep-Alive: timeout=5\r\n\
          Proxy-Connection: keep-alive\r\n\
          Trailer: X-Checksum\r\n\
          Upgrade: h2c\r\n\
          Set-Cookie: a=1; Path=/\r\n\
          Set-Cookie: b=2; HttpOnly\r\n\
          X-Custom: kept\r\n\
          Cache-Control: no-store\r\n\
          \r\n\
          ok"
        .to_vec(),
    ))
    .await;
    let alb = start(&format!(
        r#"
[[listener]]
name = "web"
address = "127.0.0.1:0"
default_action = {{ type = "forward", target_group = "raw" }}

[target_group.raw]
targets = ["{}"]
health_check = {{ enabled = false }}
"#,
        raw.addr()
    ))
    .await;
    let mut conn = RawConn::connect(alb.listener("web")).await.unwrap();
    let resp = ask(&mut conn, &head("/", &[("Host", "resp.test")])).await;
    assert_eq!((resp.status, resp.text().as_str()), (200, "ok"), "{resp:?}");
    for gone in [
        "x-backend-hop",
        "keep-alive",
        "proxy-connection",
        "trailer",
        "upgrade",
    ] {
        assert!(
            resp.header_all(gone).is_empty(),
            "{gone} must not reach the client: {resp:?}"
        );
    }
    for value in resp.header_all("connection") {
        assert!(
            !value.to_ascii_lowercase().contains("x-backend-hop"),
            "the target's Connection must not be relayed: {resp:?}"
        );
    }
    assert_eq!(
        resp.header_all("set-cookie"),
        vec!["a=1; Path=/", "b=2; HttpOnly"],
        "{resp:?}"
    );
    assert_eq!(resp.header("x-custom"), Some("kept"));
    assert_eq!(resp.header("cache-control"), Some("no-store"));
    assert_eq!(resp.header_all("content-length"), vec!["2"], "{resp:?}");

    // The client connection is still usable.
    let again = ask(&mut conn, &head("/", &[("Host", "resp.test")])).await;
    assert_eq!(again.status, 200);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_response_to_head_keeps_the_targets_content_length_and_has_no_body() {
    let raw = RawBackend::start(RawBehaviour::Respond(
        b"HTTP/1.1 200 OK\r\nContent-Length: 42\r\nX-Head: yes\r\n\r\n".to_vec(),
    ))
    .await;
    let alb = start(&format!(
        r#"
[[listener]]
name = "web"
address = "127.0.0.1:0"
default_action = {{ type = "forward", target_group = "raw" }}

[target_group.raw]
targets = ["{}"]
health_check = {{ enabled = false }}
"#,
        raw.addr()
    ))
    .await;
    let mut stream = TcpStream::connect(alb.listener("web")).await.unwrap();
    stream
        .write_all(b"HEAD /a HTTP/1.1\r\nHost: head.test\r\n\r\nHEAD /b HTTP/1.1\r\nHost: head.test\r\n\r\n")
        .await
        .unwrap();
    // Both answers are heads only: read until two complete heads have arrived.
    let mut received = Vec::new();
    let deadline = tokio::time::Instant::now() + scaled(EXCHANGE);
    for _ in 0..1000 {
        if String::from_utf8_lossy(&received).matches("\r\n\r\n").count() >= 2 {
            break;
        }
        let mut buf = [0u8; 4096];
        match tokio::time::timeout_at(deadline, stream.read(&mut buf)).await {
            Ok(Ok(n)) if n > 0 => received.extend_from_slice(&buf[..n]),
            _ => break,
        }
    }
    let text = String::from_utf8_lossy(&received).into_owned();
    let heads: Vec<&str> = text.split_inclusive("\r\n\r\n").collect();
    assert_eq!(heads.len(), 2, "two body-less answers expected: {text:?}");
    for (i, head) in heads.iter().enumerate() {
        assert!(head.starts_with("HTTP/1.1 200 "), "HEAD {i}: {head:?}");
        assert!(head.ends_with("\r\n\r\n"), "HEAD {i}: {head:?}");
        let lengths: Vec<&str> = head
            .lines()
            .filter_map(|l| l.split_once(':'))
            .filter(|(n, _)| n.eq_ignore_ascii_case("content-length"))
            .map(|(_, v)| v.trim())
            .collect();
        assert_eq!(
            lengths,
            vec!["42"],
            "HEAD {i}: the target's Content-Length is kept: {head:?}"
        );
        assert!(head.contains("X-Head: yes"), "HEAD {i}: {head:?}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn drop_invalid_header_fields_drops_names_outside_letters_digits_and_hyphen() {
    let (alb, backends) = setup(&[("strict", "drop_invalid_header_fields = true"), ("lenient", "")]).await;
    let raw = head(
        "/",
        &[
            ("Host", "invalid.test"),
            ("X_Under", "1"),
            ("X.Dot", "2"),
            ("X-Good-1", "3"),
        ],
    );

    let req = forwarded(alb.listener("strict"), &backends[0], &raw).await;
    assert!(req.header_all("x_under").is_empty(), "{:?}", req.headers);
    assert!(req.header_all("x.dot").is_empty(), "{:?}", req.headers);
    assert_eq!(req.header_all("x-good-1"), vec!["3"], "{:?}", req.headers);

    let req = forwarded(alb.listener("lenient"), &backends[1], &raw).await;
    assert_eq!(
        req.header_all("x_under"),
        vec!["1"],
        "kept by default: {:?}",
        req.headers
    );
    assert_eq!(
        req.header_all("x.dot"),
        vec!["2"],
        "kept by default: {:?}",
        req.headers
    );
    assert_eq!(req.header_all("x-good-1"), vec!["3"]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ordinary_field_names_keep_their_case_and_order() {
    let (alb, backends) = setup(&[("web", "")]).await;
    let sent = [
        ("X-MiXeD-CaSe", "v1"),
        ("x-lower", "v2"),
        ("ACCEPT", "*/*"),
        ("user-AGENT", "case-test"),
        ("X-MiXeD-CaSe", "v3"),
    ];
    let mut fields = vec![("Host", "case.test")];
    fields.extend_from_slice(&sent);
    let req = forwarded(alb.listener("web"), &backends[0], &head("/", &fields)).await;
    let received: Vec<(&str, &str)> = req
        .headers
        .iter()
        .filter(|(n, _)| sent.iter().any(|(s, _)| s.eq_ignore_ascii_case(n)))
        .map(|(n, v)| (n.as_str(), v.as_str()))
        .collect();
    assert_eq!(
        received,
        sent.to_vec(),
        "names as sent, in order: {:?}",
        req.headers
    );
}
