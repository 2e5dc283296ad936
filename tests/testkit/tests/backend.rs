//! The recording backend answers as documented and records what it received.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::time::Duration;

use hostalb_testkit::{Backend, Client, Conn, RawConn, eventually, parse_responses, raw_exchange};

const T: Duration = Duration::from_secs(5);

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn default_answer_names_the_backend_and_echoes_the_request() {
    let b = Backend::start("a").await;
    let client = Client::new();
    let resp = client
        .request(
            "POST",
            &format!("http://{}/some/path?x=1&y", b.addr()),
            &[("x-one", "1"), ("x-two", "2")],
            "hello",
        )
        .await
        .unwrap();
    assert_eq!(resp.status, 200);
    assert_eq!(resp.backend(), Some("a"));
    let reply = resp.reply().expect("JSON reply");
    assert_eq!(reply.backend, "a");
    assert_eq!(reply.method, "POST");
    assert_eq!(reply.target, "/some/path?x=1&y");
    assert_eq!(reply.path, "/some/path");
    assert_eq!(reply.query.as_deref(), Some("x=1&y"));
    assert_eq!(reply.version, "HTTP/1.1");
    assert_eq!(reply.body_len, 5);
    assert_eq!(reply.connection, 0);
    assert_eq!(reply.index, 0);
    assert_eq!(reply.header("x-one"), Some("1"));
    assert_eq!(reply.header("X-TWO"), Some("2"));

    let recorded = b.requests();
    assert_eq!(recorded.len(), 1);
    let r = &recorded[0];
    assert_eq!(r.method, "POST");
    assert_eq!(r.target, "/some/path?x=1&y");
    assert_eq!(r.path(), "/some/path");
    assert_eq!(r.query(), Some("x=1&y"));
    assert_eq!(r.body, b"hello");
    assert!(r.complete);
    assert_eq!(r.status, Some(200));
    assert_eq!(b.connections(), 1);

    let json = resp.json().unwrap();
    assert_eq!(json["backend"], "a");
    assert!(json["headers"].is_array());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn headers_are_recorded_in_wire_order_with_their_case() {
    let b = Backend::start("order").await;
    let req = b"GET /h HTTP/1.1\r\nX-B: 1\r\nHost: example\r\nx-a: 2\r\nX-B: 3\r\nConnection: close\r\n\r\n";
    let bytes = raw_exchange(b.addr(), req, T).await;
    let resps = parse_responses(&bytes);
    assert_eq!(resps.len(), 1);
    let reply = resps[0].reply().unwrap();
    let names: Vec<&str> = reply.headers.iter().map(|(n, _)| n.as_str()).collect();
    assert_eq!(names, ["X-B", "Host", "x-a", "X-B", "Connection"]);
    assert_eq!(reply.header_all("x-b"), ["1", "3"]);
    assert_eq!(b.requests()[0].headers, reply.headers);
    assert_eq!(b.raw_received(), vec![req.to_vec()]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pipelined_requests_with_bodies_are_told_apart() {
    let b = Backend::start("pipe").await;
    let req: &[u8] = b"POST /one HTTP/1.1\r\nHost: h\r\nContent-Length: 3\r\n\r\nabc\
POST /two HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: chunked\r\nX-Last: 1\r\n\r\n2\r\nde\r\n1;ext=1\r\nf\r\n0\r\nTrailer: t\r\n\r\n\
GET /three HTTP/1.1\r\nHost: h\r\nX-Third: 3\r\nConnection: close\r\n\r\n";
    let bytes = raw_exchange(b.addr(), req, T).await;
    let resps = parse_responses(&bytes);
    assert_eq!(resps.len(), 3, "{resps:?}");
    let recorded = b.requests();
    let targets: Vec<&str> = recorded.iter().map(|r| r.target.as_str()).collect();
    assert_eq!(targets, ["/one", "/two", "/three"]);
    assert_eq!(recorded[0].body, b"abc");
    assert_eq!(recorded[1].body, b"def");
    assert_eq!(recorded[1].header("x-last"), Some("1"));
    assert_eq!(recorded[2].header("X-Third"), Some("3"));
    let indexes: Vec<usize> = recorded.iter().map(|r| r.index).collect();
    assert_eq!(indexes, [0, 1, 2]);
    assert!(recorded.iter().all(|r| r.connection == 0));
    assert_eq!(b.raw_received()[0], req);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn special_paths() {
    let b = Backend::start("s").await;
    let base = format!("http://{}", b.addr());
    let client = Client::new();

    let r = client.get(&format!("{base}/status/503")).await.unwrap();
    assert_eq!(r.status, 503);
    assert_eq!(r.reply().unwrap().backend, "s");
    let r = client.get(&format!("{base}/api/status/204")).await.unwrap();
    assert_eq!(r.status, 204);
    assert!(r.body.is_empty());

    let r = client.get(&format!("{base}/bytes/100000")).await.unwrap();
    assert_eq!(r.body.len(), 100_000);
    assert_eq!(r.header("content-length"), Some("100000"));
    assert!(r.body.starts_with(b"abcdefghijklmnopqrstuvwxyzabc"));

    let r = client.get(&format!("{base}/chunked/40000")).await.unwrap();
    assert_eq!(r.body.len(), 40_000);
    assert_eq!(r.header("transfer-encoding"), Some("chunked"));

    let r = client
        .request("PUT", &format!("{base}/echo"), &[], "round trip")
        .await
        .unwrap();
    assert_eq!(&r.body[..], b"round trip");

    let r = client.get(&format!("{base}/status/99")).await.unwrap();
    assert_eq!(r.status, 400);

    // Raw bytes show the framing: chunked on the wire, then Connection: close.
    let raw = raw_exchange(
        b.addr(),
        b"GET /chunked/5 HTTP/1.1\r\nHost: h\r\n\r\nGET /close HTTP/1.1\r\nHost: h\r\n\r\n",
        T,
    )
    .await;
    let resps = parse_responses(&raw);
    assert_eq!(resps.len(), 2);
    assert!(resps[0].chunked);
    assert_eq!(resps[0].body, b"abcde");
    assert!(resps[1].closes());
    assert!(resps[1].complete);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn delay_is_visible_in_flight() {
    let b = Backend::start("slow").await;
    let url = format!("http://{}/delay/400", b.addr());
    let pending = tokio::spawn(async move { Client::new().get(&url).await });
    eventually(T, async || b.in_flight() == 1).await;
    let during = b.requests();
    assert_eq!(during.len(), 1);
    assert_eq!(during[0].status, None);
    let resp = pending.await.unwrap().unwrap();
    assert_eq!(resp.status, 200);
    eventually(T, async || b.in_flight() == 0).await;
    assert_eq!(b.max_in_flight(), 1);
    assert_eq!(b.requests()[0].status, Some(200));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn health_probes_are_recorded_apart_and_settable() {
    let b = Backend::start("h").await;
    let client = Client::new();
    let url = format!("http://{}/health", b.addr());
    assert_eq!(client.get(&url).await.unwrap().status, 200);
    b.set_health_status(503);
    assert_eq!(b.health_status(), 503);
    assert_eq!(client.get(&url).await.unwrap().status, 503);
    client.get(&format!("http://{}/other", b.addr())).await.unwrap();
    assert_eq!(b.health_probe_count(), 2);
    assert_eq!(b.request_count(), 1);
    assert_eq!(b.requests()[0].target, "/other");
    b.clear();
    assert_eq!(b.health_probe_count(), 0);
    assert_eq!(b.request_count(), 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn connections_and_indexes_follow_keep_alive() {
    let b = Backend::start("k").await;
    let mut c1 = Conn::connect(b.addr()).await.unwrap();
    for i in 0..3 {
        let reply = c1.get("/x").await.unwrap().reply().unwrap();
        assert_eq!((reply.connection, reply.index), (0, i));
    }
    let mut c2 = Conn::connect(b.addr()).await.unwrap();
    let reply = c2.get("/y").await.unwrap().reply().unwrap();
    assert_eq!((reply.connection, reply.index), (1, 0));
    assert_eq!(b.connections(), 2);
    eventually(T, async || b.open_connections() == 2).await;

    let resp = c1.get("/close").await.unwrap();
    assert_eq!(resp.header("connection"), Some("close"));
    assert!(c1.wait_closed(T).await);
    assert!(c1.is_closed());
    eventually(T, async || b.open_connections() == 1).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn idle_timeout_closes_keep_alive_connections() {
    let b = Backend::builder()
        .name("idle")
        .idle_timeout(Duration::from_millis(200))
        .start()
        .await;
    let mut c = Conn::connect(b.addr()).await.unwrap();
    c.get("/").await.unwrap();
    assert!(c.wait_closed(T).await);
    // A request longer than the idle timeout is not cut.
    let mut c = Conn::connect(b.addr()).await.unwrap();
    assert_eq!(c.get("/delay/400").await.unwrap().status, 200);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn stop_closes_listener_and_connections_and_the_port_can_be_reused() {
    let b = Backend::start("gone").await;
    let addr = b.addr();
    let mut raw = RawConn::connect(addr).await.unwrap();
    raw.send(b"GET / HTTP/1.1\r\nHost: h\r\n\r\n").await.unwrap();
    let first = raw.read_response(T).await.unwrap();
    assert_eq!(first.status, 200);
    assert!(!raw.is_closed());

    b.stop().await;
    assert!(raw.wait_closed(T).await, "stop must close open connections");
    assert!(tokio::net::TcpStream::connect(addr).await.is_err());
    assert_eq!(b.open_connections(), 0);

    let again = Backend::builder().name("back").bind(addr).start().await;
    let resp = Client::new().get(&format!("http://{addr}/")).await.unwrap();
    assert_eq!(resp.backend(), Some("back"));
    drop(again);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn aborted_upload_is_recorded_incomplete_and_frees_its_slot() {
    let b = Backend::start("abort").await;
    let mut raw = RawConn::connect(b.addr()).await.unwrap();
    raw.send(b"POST /up HTTP/1.1\r\nHost: h\r\nContent-Length: 100\r\n\r\nabc")
        .await
        .unwrap();
    eventually(T, async || b.requests().first().is_some_and(|r| r.body == b"abc")).await;
    assert_eq!(b.in_flight(), 1);
    drop(raw);
    eventually(T, async || b.in_flight() == 0).await;
    let r = &b.requests()[0];
    assert!(!r.complete);
    assert_eq!(r.status, None);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn recording_is_capped_but_counting_goes_on() {
    let b = Backend::builder()
        .name("capped")
        .max_recorded(2)
        .max_raw_bytes(40)
        .start()
        .await;
    let mut c = Conn::connect(b.addr()).await.unwrap();
    for i in 0..5 {
        let reply = c
            .request("GET", &format!("/n/{i}"), &[("X-Case", "v")], "")
            .await
            .unwrap()
            .reply()
            .unwrap();
        assert_eq!(reply.index, i);
        // Past the raw cap, heads come from hyper's parse: same content, lower-case names.
        assert_eq!(reply.header("x-case"), Some("v"));
        assert_eq!(reply.target, format!("/n/{i}"));
    }
    assert_eq!(b.request_count(), 5);
    let recorded = b.requests();
    assert_eq!(recorded.len(), 2);
    assert_eq!(recorded[1].target, "/n/1");
    assert!(b.raw_received()[0].len() <= 40);
    b.clear();
    assert_eq!(b.request_count(), 0);
    c.get("/after").await.unwrap();
    assert_eq!(b.requests()[0].target, "/after");
}
