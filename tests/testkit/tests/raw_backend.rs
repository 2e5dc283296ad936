//! The raw backend follows its script and records every byte.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::time::Duration;

use hostalb_testkit::{RawBackend, RawBehaviour, RawConn, eventually, parse_responses, raw_exchange};

const T: Duration = Duration::from_secs(5);
const OK: &[u8] = b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn respond_answers_each_head_and_keeps_the_connection() {
    let raw = RawBackend::start(RawBehaviour::Respond(OK.to_vec())).await;
    let mut c = RawConn::connect(raw.addr()).await.unwrap();
    c.send(b"GET /1 HTTP/1.1\r\nHost: h\r\n\r\nGET /2 HTTP/1.1\r\nHost: h\r\n\r\n")
        .await
        .unwrap();
    let a = c.read_response(T).await.unwrap();
    let b = c.read_response(T).await.unwrap();
    assert_eq!((a.status, a.body.as_slice()), (200, &b"ok"[..]));
    assert_eq!(b.body, b"ok");
    assert!(!c.wait_closed(Duration::from_millis(200)).await);
    c.send(b"GET /3 HTTP/1.1\r\nHost: h\r\n\r\n").await.unwrap();
    assert!(c.read_response(T).await.is_some());
    assert_eq!(raw.connections(), 1);
    let got = raw.received();
    assert_eq!(got.len(), 1);
    assert!(got[0].starts_with(b"GET /1"));
    assert!(got[0].ends_with(b"GET /3 HTTP/1.1\r\nHost: h\r\n\r\n"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn respond_with_connection_close_closes() {
    let answer = b"HTTP/1.1 200 OK\r\nConnection: Close\r\nContent-Length: 0\r\n\r\n".to_vec();
    let raw = RawBackend::start(RawBehaviour::Respond(answer)).await;
    let bytes = raw_exchange(raw.addr(), b"GET / HTTP/1.1\r\nHost: h\r\n\r\n", T).await;
    let resps = parse_responses(&bytes);
    assert_eq!(resps.len(), 1);
    assert!(resps[0].closes());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn respond_then_close_and_then_reset() {
    let raw = RawBackend::start(RawBehaviour::RespondThenClose(OK.to_vec())).await;
    let mut c = RawConn::connect(raw.addr()).await.unwrap();
    c.send(b"GET / HTTP/1.1\r\nHost: h\r\n\r\n").await.unwrap();
    assert!(c.wait_closed(T).await);
    assert!(!c.was_reset());
    assert_eq!(parse_responses(c.received())[0].body, b"ok");

    raw.set_behaviour(RawBehaviour::RespondThenReset(
        b"HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\nabc".to_vec(),
    ));
    let mut c = RawConn::connect(raw.addr()).await.unwrap();
    c.send(b"GET / HTTP/1.1\r\nHost: h\r\n\r\n").await.unwrap();
    assert!(c.wait_closed(T).await);
    let resps = parse_responses(c.received());
    if let Some(r) = resps.first() {
        assert!(!r.complete, "a reset response is truncated: {r:?}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn blackhole_records_and_never_answers() {
    let raw = RawBackend::start(RawBehaviour::Blackhole).await;
    let bytes = raw_exchange(
        raw.addr(),
        b"GET / HTTP/1.1\r\nHost: h\r\n\r\n",
        Duration::from_millis(300),
    )
    .await;
    assert!(bytes.is_empty());
    eventually(T, async || raw.received_len() == 27).await;
    assert_eq!(raw.received()[0], b"GET / HTTP/1.1\r\nHost: h\r\n\r\n");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn close_and_reset_immediately() {
    let raw = RawBackend::start(RawBehaviour::CloseImmediately).await;
    let mut c = RawConn::connect(raw.addr()).await.unwrap();
    assert!(c.wait_closed(T).await);
    assert!(!c.was_reset());
    assert!(c.received().is_empty());

    raw.set_behaviour(RawBehaviour::ResetImmediately);
    // The reset can arrive before connect() returns, which then reports it.
    match RawConn::connect(raw.addr()).await {
        Ok(mut c) => {
            assert!(c.wait_closed(T).await);
            assert!(c.was_reset());
        }
        Err(e) => assert_eq!(e.kind(), std::io::ErrorKind::ConnectionReset),
    }

    raw.set_behaviour(RawBehaviour::ResetAfterHead);
    let mut c = RawConn::connect(raw.addr()).await.unwrap();
    c.send(b"GET / HTTP/1.1\r\nHost: h\r\n\r\n").await.unwrap();
    assert!(c.wait_closed(T).await);
    assert!(c.was_reset());
    assert!(c.received().is_empty());
    assert_eq!(raw.connections(), 3);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn stop_closes_every_connection() {
    let raw = RawBackend::start(RawBehaviour::Blackhole).await;
    let mut c = RawConn::connect(raw.addr()).await.unwrap();
    c.send(b"GET / HTTP/1.1\r\n").await.unwrap();
    eventually(T, async || raw.received_len() > 0).await;
    raw.stop().await;
    assert!(c.wait_closed(T).await);
    assert!(tokio::net::TcpStream::connect(raw.addr()).await.is_err());
}
