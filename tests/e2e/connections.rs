//! Connections on both sides of hostalb: client keep-alive and pipelining, the upstream
//! keep-alive pool, HTTP/1.0 clients, chunked and large bodies, `Expect: 100-continue`,
//! targets and clients that go away, and WebSocket upgrades.

use std::time::Duration;

use hostalb_testkit::{
    Backend, Conn, RawBackend, RawBehaviour, RawConn, eventually, parse_responses, scaled,
};

use crate::common::start;
use crate::errors::{expect_metric, forward_config, get, send};

/// How long a test waits for an answer that should come at once.
const ANSWER: Duration = Duration::from_secs(5);

/// The body `Backend` generates for `/bytes/{n}` and `/chunked/{n}`.
fn alphabet(n: usize) -> Vec<u8> {
    (0..n).map(|i| b'a' + (i % 26) as u8).collect()
}

/// Waits until hostalb has no client connection open: every exchange before it has
/// finished, upstream connections included (they go back to the pool before hostalb reads
/// the client's next request or end of stream).
async fn wait_no_client_connections(alb: &hostalb_testkit::HostAlb) {
    expect_metric(alb, "hostalb_active_connections", &[], 0.0).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn client_keep_alive_carries_many_requests() {
    let backend = Backend::start("a").await;
    let alb = start(&forward_config(&[backend.addr()], "")).await;
    let mut conn = Conn::connect(alb.listener("web")).await.unwrap();
    for i in 0..20 {
        let resp = conn.get(&format!("/k/{i}")).await.unwrap();
        assert_eq!(resp.status, 200, "request {i}: {resp:?}");
        assert_eq!(resp.reply().unwrap().target, format!("/k/{i}"));
        assert!(
            resp.header("connection")
                .is_none_or(|v| !v.eq_ignore_ascii_case("close"))
        );
    }
    assert!(!conn.is_closed(), "the client connection stays open");
    assert_eq!(backend.request_count(), 20);
    // One upstream connection carried them all, in order.
    let got = backend.requests();
    assert!(got.iter().all(|r| r.connection == 0), "{got:?}");
    assert_eq!(
        got.iter().map(|r| r.index).collect::<Vec<_>>(),
        (0..20).collect::<Vec<_>>()
    );
    expect_metric(&alb, "hostalb_active_connections", &[], 1.0).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn upstream_connection_is_reused_across_requests_and_client_connections() {
    let backend = Backend::start("a").await;
    let alb = start(&forward_config(&[backend.addr()], "")).await;
    let addr = alb.listener("web");
    {
        let mut conn = Conn::connect(addr).await.unwrap();
        for i in 0..5 {
            let resp = conn.get(&format!("/same/{i}")).await.unwrap();
            assert_eq!(resp.status, 200, "{resp:?}");
        }
    }
    wait_no_client_connections(&alb).await;
    for i in 0..5 {
        let mut conn = Conn::connect(addr).await.unwrap();
        let resp = conn.get(&format!("/fresh/{i}")).await.unwrap();
        assert_eq!(resp.status, 200, "{resp:?}");
        drop(conn);
        wait_no_client_connections(&alb).await;
    }
    assert_eq!(backend.request_count(), 10);
    assert_eq!(backend.connections(), 1, "one upstream connection for everything");
    let got = backend.requests();
    assert_eq!(
        got.iter().map(|r| r.index).collect::<Vec<_>>(),
        (0..10).collect::<Vec<_>>()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn target_connection_close_stops_reuse() {
    let backend = Backend::start("a").await;
    let alb = start(&forward_config(&[backend.addr()], "")).await;
    let mut conn = Conn::connect(alb.listener("web")).await.unwrap();
    let mut seen = Vec::new();
    for path in ["/close", "/close", "/a", "/b"] {
        let resp = conn.get(path).await.unwrap();
        assert_eq!(resp.status, 200, "{path}: {resp:?}");
        assert!(
            resp.header("connection")
                .is_none_or(|v| !v.eq_ignore_ascii_case("close")),
            "the target's close is hop-by-hop, the client connection stays: {resp:?}"
        );
        seen.push(resp.header("x-backend-connection").unwrap().to_string());
    }
    assert!(!conn.is_closed());
    assert_eq!(
        seen,
        ["0", "1", "2", "2"],
        "each close forces a new upstream connection"
    );
    assert_eq!(backend.connections(), 3);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pipelined_requests_are_answered_in_order() {
    let backend = Backend::start("a").await;
    let alb = start(&forward_config(&[backend.addr()], "")).await;
    let mut conn = RawConn::connect(alb.listener("web")).await.unwrap();
    // The first one is the slowest: its answer must still come first.
    let mut three = get("/delay/150");
    three.extend_from_slice(&get("/second"));
    three.extend_from_slice(&get("/third"));
    conn.send(&three).await.unwrap();
    let mut targets = Vec::new();
    for _ in 0..3 {
        let resp = conn.read_response(scaled(ANSWER)).await.expect("an answer");
        assert_eq!(resp.status, 200, "{resp:?}");
        assert!(resp.complete);
        targets.push(resp.reply().unwrap().target);
    }
    assert_eq!(targets, ["/delay/150", "/second", "/third"]);
    assert!(!conn.is_closed());
    let got: Vec<String> = backend.requests().into_iter().map(|r| r.target).collect();
    assert_eq!(got, ["/delay/150", "/second", "/third"]);
    assert_eq!(backend.max_in_flight(), 1, "hostalb never pipelines to a target");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn http_1_0_client_connection_closes_unless_keep_alive_is_asked() {
    let backend = Backend::start("a").await;
    let alb = start(&forward_config(&[backend.addr()], "")).await;
    let addr = alb.listener("web");

    let (mut conn, resp) = send(addr, b"GET /ten HTTP/1.0\r\nHost: example.com\r\n\r\n").await;
    assert_eq!(resp.status, 200, "{resp:?}");
    assert_eq!(resp.reply().unwrap().target, "/ten");
    assert!(
        conn.wait_closed(scaled(Duration::from_secs(3))).await,
        "HTTP/1.0 closes by default"
    );

    let keep = b"GET /ten-keep HTTP/1.0\r\nHost: example.com\r\nConnection: keep-alive\r\n\r\n";
    let (mut conn, resp) = send(addr, keep).await;
    assert_eq!(resp.status, 200, "{resp:?}");
    assert!(
        resp.header_all("connection")
            .iter()
            .any(|v| v.eq_ignore_ascii_case("keep-alive")),
        "an HTTP/1.0 client must be told the connection stays: {resp:?}"
    );
    assert!(resp.header("content-length").is_some(), "{resp:?}");
    conn.send(keep).await.unwrap();
    let again = conn.read_response(scaled(ANSWER)).await.expect("second answer");
    assert_eq!(again.status, 200, "{again:?}");
    assert!(!conn.is_closed());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn chunked_response_to_http_1_0_client_is_close_delimited() {
    let backend = Backend::start("a").await;
    let alb = start(&forward_config(&[backend.addr()], "")).await;
    let req = b"GET /chunked/40000 HTTP/1.0\r\nHost: example.com\r\nConnection: keep-alive\r\n\r\n";
    let mut conn = RawConn::connect(alb.listener("web")).await.unwrap();
    conn.send(req).await.unwrap();
    assert!(
        conn.wait_closed(scaled(ANSWER)).await,
        "a close-delimited body ends with the connection"
    );
    let responses = parse_responses(conn.received());
    assert_eq!(responses.len(), 1, "{responses:?}");
    let resp = &responses[0];
    assert_eq!(resp.status, 200);
    assert!(
        resp.header("transfer-encoding").is_none(),
        "no chunked coding for HTTP/1.0: {resp:?}"
    );
    assert!(resp.header("content-length").is_none(), "{resp:?}");
    assert!(
        resp.header("connection")
            .is_none_or(|v| !v.eq_ignore_ascii_case("keep-alive")),
        "{resp:?}"
    );
    assert_eq!(resp.body.len(), 40000);
    assert_eq!(resp.body, alphabet(40000));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn chunked_response_to_http_1_1_client_stays_chunked_and_complete() {
    let backend = Backend::start("a").await;
    let alb = start(&forward_config(&[backend.addr()], "")).await;
    let (mut conn, resp) = send(alb.listener("web"), &get("/chunked/100000")).await;
    assert_eq!(resp.status, 200, "{resp:?}");
    assert!(resp.chunked, "still chunked: {:?}", resp.headers);
    assert!(resp.complete, "ends with the last chunk");
    assert!(resp.header("content-length").is_none());
    assert_eq!(resp.body.len(), 100000);
    assert_eq!(resp.body, alphabet(100000));
    // The connection carries on after the last chunk.
    conn.send(&get("/after")).await.unwrap();
    let next = conn.read_response(scaled(ANSWER)).await.expect("next answer");
    assert_eq!(next.reply().unwrap().target, "/after");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn large_bodies_are_intact_both_ways() {
    const SIZE: usize = 2 * 1024 * 1024;
    let backend = Backend::start("a").await;
    let alb = start(&forward_config(&[backend.addr()], "")).await;
    let mut conn = Conn::connect(alb.listener("web")).await.unwrap();
    let upload: Vec<u8> = (0..SIZE).map(|i| (i * 7 % 251) as u8).collect();
    let echoed = conn.request("POST", "/echo", &[], upload.clone()).await.unwrap();
    assert_eq!(echoed.status, 200);
    assert_eq!(echoed.body.len(), SIZE);
    assert!(
        echoed.body == upload,
        "the echoed 2 MiB differ from what was sent"
    );

    let download = conn.get(&format!("/bytes/{SIZE}")).await.unwrap();
    assert_eq!(download.status, 200);
    assert_eq!(download.header("content-length"), Some(SIZE.to_string().as_str()));
    assert!(download.body == alphabet(SIZE), "the 2 MiB download is corrupted");

    // A chunked upload of 2 MiB in 32 KiB chunks, as raw bytes.
    let mut raw = RawConn::connect(alb.listener("web")).await.unwrap();
    let mut req = b"POST /echo HTTP/1.1\r\nHost: example.com\r\nTransfer-Encoding: chunked\r\n\r\n".to_vec();
    for part in upload.chunks(32 * 1024) {
        req.extend_from_slice(format!("{:x}\r\n", part.len()).as_bytes());
        req.extend_from_slice(part);
        req.extend_from_slice(b"\r\n");
    }
    req.extend_from_slice(b"0\r\n\r\n");
    raw.send(&req).await.unwrap();
    let resp = raw
        .read_response(scaled(Duration::from_secs(10)))
        .await
        .expect("echo answer");
    assert_eq!(resp.status, 200);
    assert!(resp.complete);
    assert!(resp.body == upload, "the chunked 2 MiB upload arrived changed");
    assert_eq!(backend.requests().last().unwrap().body.len(), SIZE);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn expect_100_continue_gets_continue_before_the_answer() {
    let backend = Backend::start("a").await;
    let alb = start(&forward_config(&[backend.addr()], "")).await;
    let mut conn = RawConn::connect(alb.listener("web")).await.unwrap();
    conn.send(
        b"POST /echo HTTP/1.1\r\nHost: example.com\r\nExpect: 100-continue\r\nContent-Length: 5\r\n\r\n",
    )
    .await
    .unwrap();
    let interim = conn.read_response(scaled(ANSWER)).await.expect("100 Continue");
    assert_eq!(interim.status, 100, "{interim:?}");
    conn.send(b"hello").await.unwrap();
    let last = conn.read_response(scaled(ANSWER)).await.expect("final answer");
    assert_eq!(last.status, 200, "{last:?}");
    assert_eq!(last.body, b"hello");
    let got = &backend.requests()[0];
    assert!(
        got.header("expect").is_none(),
        "Expect is answered by hostalb: {got:?}"
    );
    assert_eq!(got.body, b"hello");
    let text = String::from_utf8_lossy(conn.received()).into_owned();
    assert_eq!(
        text.matches("100 Continue").count(),
        1,
        "one 100 Continue: {text}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn expect_100_continue_with_an_error_never_sends_continue() {
    let alb = start(&forward_config(&[], "")).await;
    let mut conn = RawConn::connect(alb.listener("web")).await.unwrap();
    conn.send(
        b"POST /echo HTTP/1.1\r\nHost: example.com\r\nExpect: 100-continue\r\nContent-Length: 5\r\n\r\n",
    )
    .await
    .unwrap();
    let first = conn.read_response(scaled(ANSWER)).await.expect("an answer");
    assert_eq!(first.status, 503, "the final answer comes first: {first:?}");
    assert_eq!(first.header("server"), Some("awselb/2.0"));
    // Whatever hostalb does with the unsent body, no 100 follows.
    let _ = conn.wait_closed(Duration::from_millis(500)).await;
    let text = String::from_utf8_lossy(conn.received()).into_owned();
    assert!(
        !text.contains(" 100 "),
        "no 100 Continue for a refused request: {text}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn target_closing_idle_pooled_connections_causes_no_client_errors() {
    let backend = Backend::builder()
        .name("a")
        .idle_timeout(Duration::from_millis(300))
        .start()
        .await;
    let alb = start(&forward_config(&[backend.addr()], "")).await;
    let mut conn = Conn::connect(alb.listener("web")).await.unwrap();
    let first = conn.get("/r/0").await.unwrap();
    assert_eq!(first.status, 200);
    // Spaced around and past the target's idle timeout, so it closes hostalb's pooled
    // connection between requests (sometimes just as the next one goes out).
    for (i, pause) in [340u64, 300, 320, 400, 290].into_iter().enumerate() {
        tokio::time::sleep(Duration::from_millis(pause)).await;
        let resp = conn.get(&format!("/r/{}", i + 1)).await;
        let resp = resp.unwrap_or_else(|e| panic!("request {} after {pause} ms: {e}", i + 1));
        assert_eq!(resp.status, 200, "request {} after {pause} ms: {resp:?}", i + 1);
    }
    assert_eq!(backend.request_count(), 6);
    assert!(
        backend.connections() >= 2,
        "the target closed idle connections, so new ones were opened ({})",
        backend.connections()
    );
    expect_metric(&alb, "hostalb_httpcode_elb_5xx_total", &[], 0.0).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn client_leaving_mid_body_frees_the_target() {
    let backend = Backend::start("a").await;
    let alb = start(&forward_config(&[backend.addr()], "")).await;
    let mut conn = RawConn::connect(alb.listener("web")).await.unwrap();
    conn.send(b"POST /echo HTTP/1.1\r\nHost: example.com\r\nContent-Length: 1000\r\n\r\n0123456789")
        .await
        .unwrap();
    eventually(Duration::from_secs(3), async || {
        backend.in_flight() == 1 && backend.requests().first().is_some_and(|r| r.body.len() == 10)
    })
    .await;
    drop(conn);
    eventually(Duration::from_secs(3), async || {
        backend.in_flight() == 0 && backend.open_connections() == 0
    })
    .await;
    assert!(!backend.requests()[0].complete, "the body never completed");
    let (_c, ok) = send(alb.listener("web"), &get("/after")).await;
    assert_eq!(ok.status, 200, "{ok:?}");
    assert_eq!(
        ok.header("x-backend-connection"),
        Some("1"),
        "a new upstream connection"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn client_leaving_while_the_target_works_frees_the_target() {
    let backend = Backend::start("a").await;
    let alb = start(&forward_config(&[backend.addr()], "")).await;
    let mut conn = RawConn::connect(alb.listener("web")).await.unwrap();
    conn.send(&get("/delay/3000")).await.unwrap();
    eventually(Duration::from_secs(3), async || backend.in_flight() == 1).await;
    drop(conn);
    // hostalb notices the client is gone (ALB's 460) and drops the exchange, closing the
    // target connection long before the target would have answered.
    eventually(Duration::from_secs(2), async || {
        backend.open_connections() == 0 && backend.in_flight() == 0
    })
    .await;
    assert_eq!(
        backend.requests()[0].status,
        None,
        "the target's answer was abandoned"
    );
    expect_metric(&alb, "hostalb_elb_answers_total", &[("code", "460")], 1.0).await;
    let (_c, ok) = send(alb.listener("web"), &get("/after")).await;
    assert_eq!(ok.status, 200, "{ok:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn websocket_upgrade_tunnels_bytes_both_ways() {
    let switch = b"HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Accept: s3pPLMBiTxaQ9kYGzzhZRbK+xOo=\r\n\r\n";
    let raw = RawBackend::start(RawBehaviour::Respond(switch.to_vec())).await;
    let alb = start(&forward_config(&[raw.addr()], "")).await;
    let mut conn = RawConn::connect(alb.listener("web")).await.unwrap();
    conn.send(
        b"GET /chat HTTP/1.1\r\nHost: example.com\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\
Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n",
    )
    .await
    .unwrap();
    let resp = conn.read_response(scaled(ANSWER)).await.expect("101");
    assert_eq!(resp.status, 101, "{resp:?}");
    assert_eq!(resp.header("upgrade"), Some("websocket"), "{resp:?}");
    assert!(
        resp.header("connection")
            .is_some_and(|v| v.eq_ignore_ascii_case("upgrade")),
        "{resp:?}"
    );
    assert_eq!(
        resp.header("sec-websocket-accept"),
        Some("s3pPLMBiTxaQ9kYGzzhZRbK+xOo=")
    );
    let head = String::from_utf8_lossy(&raw.received()[0]).to_ascii_lowercase();
    assert!(
        head.contains("\r\nupgrade: websocket\r\n"),
        "the target saw the upgrade: {head}"
    );
    assert!(head.contains("\r\nconnection: upgrade\r\n"), "{head}");
    assert!(
        head.contains("sec-websocket-key: dghlihnhbxbszsbub25jzq=="),
        "{head}"
    );

    // Client to target: raw bytes arrive as sent. The raw target answers every blank
    // line with its canned bytes, which proves the way back.
    let frame = b"\x81\x05hello-not-http\r\n\r\n";
    let already = conn.received().len();
    conn.send(frame).await.unwrap();
    eventually(Duration::from_secs(3), async || {
        raw.received()[0].windows(frame.len()).any(|w| w == frame)
    })
    .await;
    let deadline = tokio::time::Instant::now() + scaled(ANSWER);
    // Bounded by the deadline.
    while conn.received().len() < already + switch.len() && tokio::time::Instant::now() < deadline {
        let _ = conn.read_for(Duration::from_millis(50)).await;
    }
    assert_eq!(
        &conn.received()[already..],
        switch,
        "target to client through the tunnel"
    );
    assert_eq!(raw.connections(), 1, "one pinned target connection");
}
