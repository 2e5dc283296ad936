//! The retry policy and the request path off the happy path: a request is sent again
//! only when that cannot execute it twice, a failed target never leaves a client waiting,
//! and idle target connections that the target closed are never used.

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use hostalb_testkit::{Backend, LoadGen, RawBackend, RawBehaviour, RawConn, scaled};

use crate::common::start;
use crate::errors::{assert_elb_page, forward_config_with, send};

const OK: &[u8] = b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok";

/// A forward to `targets` with health checks off; `group_extra` goes into the target group.
fn config(targets: &[SocketAddr], group_extra: &str, listener_extra: &str) -> String {
    forward_config_with(
        targets,
        listener_extra,
        &format!("health_check = {{ enabled = false }}\n{group_extra}"),
    )
}

fn post(path: &str, body: &str) -> Vec<u8> {
    format!(
        "POST {path} HTTP/1.1\r\nHost: example.com\r\nContent-Length: {}\r\n\r\n{body}",
        body.len()
    )
    .into_bytes()
}

fn get(path: &str) -> Vec<u8> {
    format!("GET {path} HTTP/1.1\r\nHost: example.com\r\n\r\n").into_bytes()
}

/// How often `needle` occurs in everything the backends received.
fn seen(backends: &[&RawBackend], needle: &str) -> usize {
    backends
        .iter()
        .flat_map(|b| b.received())
        .map(|conn| {
            conn.windows(needle.len())
                .filter(|w| *w == needle.as_bytes())
                .count()
        })
        .sum()
}

/// Every way a target can die once it has read a request.
fn deaths() -> Vec<RawBehaviour> {
    vec![
        RawBehaviour::CloseAfterHead,
        RawBehaviour::ResetAfterHead,
        RawBehaviour::AnswerFirstThenClose(OK.to_vec()),
        RawBehaviour::AnswerFirstThenReset(OK.to_vec()),
    ]
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_post_is_never_executed_twice_whatever_the_target_does() {
    for death in deaths() {
        let a = RawBackend::start(death.clone()).await;
        let b = RawBackend::start(death.clone()).await;
        let alb = start(&config(&[a.addr(), b.addr()], "", "")).await;
        let mut statuses = Vec::new();
        let mut conn = RawConn::connect(alb.listener("web")).await.expect("connect");
        for i in 0..8 {
            let req = post(&format!("/pay/{i}"), &format!("charge={i}"));
            if conn.is_closed() {
                conn = RawConn::connect(alb.listener("web")).await.expect("connect");
            }
            conn.send(&req).await.expect("send");
            let resp = conn
                .read_response(scaled(Duration::from_secs(5)))
                .await
                .unwrap_or_else(|| panic!("{death:?}: POST {i} got no answer"));
            statuses.push(resp.status);
            if resp.closes() {
                conn = RawConn::connect(alb.listener("web")).await.expect("connect");
            }
        }
        for i in 0..8 {
            assert_eq!(
                seen(&[&a, &b], &format!("POST /pay/{i} ")),
                1,
                "{death:?}: POST {i} must reach a target exactly once (statuses {statuses:?})"
            );
        }
        assert!(
            statuses.iter().all(|s| *s == 200 || *s == 502),
            "{death:?}: {statuses:?}"
        );
        assert!(
            statuses.contains(&502),
            "{death:?}: a target died with a POST in flight: {statuses:?}"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_idempotent_get_survives_a_target_dying_after_reading_it() {
    for death in deaths() {
        // Targets that answer once per connection: both die the same way and every GET
        // still succeeds, on a new connection. Targets that never answer: the retry goes
        // to the healthy one.
        let answers_first = matches!(
            death,
            RawBehaviour::AnswerFirstThenClose(_) | RawBehaviour::AnswerFirstThenReset(_)
        );
        let a = RawBackend::start(death.clone()).await;
        let b = RawBackend::start(if answers_first {
            death.clone()
        } else {
            RawBehaviour::Respond(OK.to_vec())
        })
        .await;
        let alb = start(&config(&[a.addr(), b.addr()], "", "")).await;
        let mut conn = RawConn::connect(alb.listener("web")).await.expect("connect");
        for i in 0..8 {
            conn.send(&get(&format!("/item/{i}"))).await.expect("send");
            let resp = conn
                .read_response(scaled(Duration::from_secs(5)))
                .await
                .unwrap_or_else(|| panic!("{death:?}: GET {i} got no answer"));
            assert_eq!(resp.status, 200, "{death:?}: GET {i}: {resp:?}");
            assert!(!resp.closes(), "{death:?}: {resp:?}");
        }
        assert!(
            seen(&[&a], "GET /item/") >= 1,
            "{death:?}: the dying target was tried"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn retry_idempotent_false_answers_502_as_alb_does() {
    let a = RawBackend::start(RawBehaviour::CloseAfterHead).await;
    let alb = start(&config(&[a.addr()], "retry_idempotent = false", "")).await;
    let (_conn, resp) = send(alb.listener("web"), &get("/once")).await;
    assert_elb_page(&resp, 502, "Bad Gateway");
    assert_eq!(seen(&[&a], "GET /once"), 1, "sent exactly once");
    // With the default, the same GET is sent once more on a new connection.
    let alb = start(&config(&[a.addr()], "", "")).await;
    let (_conn, resp) = send(alb.listener("web"), &get("/twice")).await;
    assert_elb_page(&resp, 502, "Bad Gateway");
    assert_eq!(seen(&[&a], "GET /twice"), 2, "sent once more");
}

/// A keep-alive POST whose target fails gets its 502 at once (not after the 60 s idle
/// timeout), whether its body has arrived or not.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_body_request_to_a_failing_target_gets_502_at_once() {
    let refused = {
        let l = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
        l.local_addr().expect("addr")
    };
    let closes = RawBackend::start(RawBehaviour::CloseAfterHead).await;
    let resets = RawBackend::start(RawBehaviour::ResetAfterHead).await;
    for target in [refused, closes.addr(), resets.addr()] {
        let alb = start(&config(&[target], "", "idle_timeout_seconds = 60")).await;

        // The whole body came with the head: 502 at once, and the connection stays usable.
        let started = Instant::now();
        let mut conn = RawConn::connect(alb.listener("web")).await.expect("connect");
        conn.send(&post("/a", "0123456789")).await.expect("send");
        let resp = conn.read_response(scaled(Duration::from_secs(5))).await;
        let took = started.elapsed();
        let resp = resp.unwrap_or_else(|| panic!("{target}: no answer"));
        assert_elb_page(&resp, 502, "Bad Gateway");
        assert!(took < scaled(Duration::from_secs(2)), "{target}: took {took:?}");
        assert!(!resp.closes(), "{target}: the body was read whole: {resp:?}");
        conn.send(&get("/next")).await.expect("send");
        let next = conn.read_response(scaled(Duration::from_secs(5))).await;
        assert_eq!(
            next.map(|r| r.status),
            Some(502),
            "{target}: the next request is answered"
        );

        // Half of a large body has arrived and the client is still sending: 502 at once
        // with `Connection: close`, and the connection closes (with a FIN: the answer is
        // readable).
        let started = Instant::now();
        let mut conn = RawConn::connect(alb.listener("web")).await.expect("connect");
        let head = "POST /big HTTP/1.1\r\nHost: example.com\r\nContent-Length: 1000000\r\n\r\n";
        conn.send(head.as_bytes()).await.expect("send");
        conn.send(&vec![b'x'; 100_000]).await.expect("send");
        let resp = conn.read_response(scaled(Duration::from_secs(5))).await;
        let took = started.elapsed();
        let resp = resp.unwrap_or_else(|| panic!("{target}: no answer to the big body"));
        assert_elb_page(&resp, 502, "Bad Gateway");
        assert!(resp.closes(), "{target}: {resp:?}");
        assert!(took < scaled(Duration::from_secs(2)), "{target}: took {took:?}");
        assert!(
            conn.wait_closed(scaled(Duration::from_secs(5))).await,
            "{target}: the connection closes"
        );
    }
}

/// Ten targets that close idle keep-alive connections after 1 s, under steady load whose
/// pauses leave the pooled connections idle about that long: no GET fails.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn targets_closing_idle_connections_lose_no_get() {
    let mut backends = Vec::new();
    for i in 0..10 {
        backends.push(
            Backend::builder()
                .name(format!("t{i}"))
                .idle_timeout(Duration::from_secs(1))
                .start()
                .await,
        );
    }
    let addrs: Vec<SocketAddr> = backends.iter().map(|b| b.addr()).collect();
    let alb = start(&config(&addrs, "", "")).await;
    let load = LoadGen::builder(alb.url("web", "/steady"))
        .concurrency(20)
        .pause(Duration::from_millis(450))
        .max_duration(Duration::from_secs(8))
        .start();
    tokio::time::sleep(Duration::from_secs(7)).await;
    let report = load.stop().await;
    assert!(report.total >= 100, "{report:?}");
    assert!(report.all_ok(), "{report:?}");
    let closed_by_targets: usize = backends.iter().map(|b| b.connections()).sum();
    assert!(
        closed_by_targets > 10,
        "targets closed idle connections, so hostalb opened more than one each: {closed_by_targets}"
    );
}

/// A target that answers before it has read the whole body (a 413, say) and closes: the
/// client reads the whole answer, then the connection closes without a reset.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_early_answer_reaches_the_client_while_its_body_is_still_arriving() {
    let early =
        b"HTTP/1.1 413 Payload Too Large\r\nContent-Length: 8\r\nConnection: close\r\n\r\ntoo big!".to_vec();
    let target = RawBackend::start(RawBehaviour::RespondThenClose(early)).await;
    let alb = start(&config(&[target.addr()], "", "")).await;
    let mut conn = RawConn::connect(alb.listener("web")).await.expect("connect");
    let head = "POST /upload HTTP/1.1\r\nHost: example.com\r\nContent-Length: 4000000\r\n\r\n";
    conn.send(head.as_bytes()).await.expect("send");
    conn.send(&vec![b'x'; 200_000]).await.expect("send");
    let resp = conn
        .read_response(scaled(Duration::from_secs(5)))
        .await
        .expect("the early answer");
    assert_eq!(resp.status, 413, "{resp:?}");
    assert_eq!(resp.body, b"too big!", "{resp:?}");
    assert!(resp.closes(), "{resp:?}");
    // The client goes on sending a little; the connection still ends with a FIN.
    let _ = conn.send(&vec![b'y'; 10_000]).await;
    assert!(conn.wait_closed(scaled(Duration::from_secs(5))).await);
    assert!(!conn.was_reset(), "closed gracefully, not reset");
}
